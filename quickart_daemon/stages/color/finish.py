"""Painting the frame from the regions' colours.

- lines: ink lines keep the drawing's ink (or a set line colour) with their anti-aliasing,
  or are absorbed into the fill; trace lines are always painted over with the region colour.
"""

from __future__ import annotations

import numpy as np


#: line coverage under which no ink is drawn over the fill
INK_VISIBLE = 0.02


def paint(labels: np.ndarray, lut: np.ndarray, coverage: np.ndarray, ink: np.ndarray, trace: np.ndarray,
          ink_rgb, line_mode: str, fill: np.ndarray | None = None,
          line_rgb: np.ndarray | None = None) -> np.ndarray:
    """RGBA frame: region colours (lut: (n+1, 4) uint8, or a per-pixel `fill` that carries shading),
    then the ink lines composited on top (in `ink_rgb`, or per pixel in `line_rgb` where it is not -1)."""
    out = lut[labels] if fill is None else fill.copy()
    if line_mode == "absorb":
        return out
    a = np.where(trace, 0.0, coverage).astype(np.float32)
    a[ink] = np.maximum(a[ink], 0.0)
    sel = a > INK_VISIBLE
    if not sel.any():
        return out
    aa = a[sel][:, None]
    base = out[sel].astype(np.float32)
    ink_c = np.array(ink_rgb, np.float32)[None, :]
    if line_rgb is not None:  # per-pixel line colours where known (-1: the drawing's ink)
        known = line_rgb[sel][:, 0] >= 0
        ink_c = np.where(known[:, None], line_rgb[sel].astype(np.float32), ink_c)
    ba = base[:, 3:] / 255.0
    # ink over the fill (premultiplied "over")
    oa = aa + ba * (1 - aa)
    rgb = (ink_c * aa + base[:, :3] * ba * (1 - aa)) / np.maximum(oa, 1e-6)
    out[sel] = np.concatenate([np.clip(rgb + 0.5, 0, 255), np.clip(oa * 255 + 0.5, 0, 255)], 1).astype(np.uint8)
    return out
