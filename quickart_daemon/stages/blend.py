"""`inbetween-blend`: cross-dissolve in-betweens, the baseline the learned stage must beat.

Blending happens on premultiplied colour, so a line on transparency fades out instead
of turning into a dark halo where it meets the transparent background.
"""

from __future__ import annotations

import numpy as np

from ..errors import StageFailed
from .base import Frames, StageContext, StageResult, StageSpec


def cross_dissolve(a: np.ndarray, b: np.ndarray, t: float) -> np.ndarray:
    """Blend two RGBA uint8 frames at time t in premultiplied-alpha space."""
    fa, fb = a.astype(np.float32) / 255.0, b.astype(np.float32) / 255.0
    pa = np.concatenate([fa[..., :3] * fa[..., 3:], fa[..., 3:]], axis=2)
    pb = np.concatenate([fb[..., :3] * fb[..., 3:], fb[..., 3:]], axis=2)
    p = (1.0 - t) * pa + t * pb
    alpha = p[..., 3:]
    rgb = np.where(alpha > 1e-6, p[..., :3] / np.maximum(alpha, 1e-6), 0.0)
    return np.clip(np.concatenate([rgb, alpha], axis=2) * 255.0 + 0.5, 0, 255).astype(np.uint8)


def blend(frames: Frames, ctx: StageContext) -> StageResult:
    out: Frames = dict(frames)
    todo = [(layer, ib) for layer in sorted({l for l, _ in frames}) for ib in ctx.schedule.inbetweens(layer)]
    for i, (layer, ib) in enumerate(todo):
        a, b = frames[(layer, ib.before)], frames[(layer, ib.after)]
        if a.shape != b.shape:
            raise StageFailed(f"layer {layer}: keys {ib.before} and {ib.after} differ in size "
                              f"({a.shape[1]}x{a.shape[0]} vs {b.shape[1]}x{b.shape[0]})")
        out[(layer, ib.drawing)] = cross_dissolve(a, b, ib.t)
        ctx.progress(i + 1, len(todo))
    return StageResult(out, {"inbetweens": len(todo)})


SPEC = StageSpec(
    name="inbetween-blend", run=blend, kind="timing", publish_folder=None,
    description="cross-dissolve in-betweens (baseline)",
)
