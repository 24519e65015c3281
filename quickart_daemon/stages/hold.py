"""`hold`: every drawing of the schedule shows the last key at or before it.

The pose test every studio watches first: the keys on their timing, nothing invented.
"""

from __future__ import annotations

import bisect

from . import register
from .base import Frames, StageContext, StageResult, StageSpec


def last_key_at_or_before(keys: list[int], frame: int) -> int:
    i = bisect.bisect_right(keys, frame) - 1
    return keys[max(i, 0)]


def hold(frames: Frames, ctx: StageContext) -> StageResult:
    out: Frames = {}
    layers = sorted({layer for layer, _ in frames})
    for layer in layers:
        keys = sorted(f for (l, f) in frames if l == layer)
        for drawing in ctx.schedule.drawings(layer):
            out[(layer, drawing)] = frames[(layer, last_key_at_or_before(keys, drawing))]
    held = len(out) - len(frames)
    return StageResult(out, {"held_drawings": held})


SPEC = register(StageSpec(
    name="hold", run=hold, kind="timing", publish_folder=None,
    description="keys held on their timing (pose test)",
))
