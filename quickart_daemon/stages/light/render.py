"""Lighting one frame: geometry from the colour model, then a light applied in RGB.

A pixel is ``ink * a + fill * (1 - a)`` (palette.py), the fill part being a convex mix
of the palette. The light acts on the fill part only and the ink share is put back
unchanged, so lines stay as drawn and anti-aliased edges fade the effect out. The
light operators are affine in the colour (a multiply for the shadow side, a screen for
the lit side), so lighting each palette layer and recombining with the weights, as the
paper does, equals lighting the fill colour itself: we do the latter, once per pixel
instead of once per layer, on the exact fill part (the 6-colour palette only approximates
some fills; its weights are reported, not needed for the shading).

Shading, with L the unit direction, n the normal and dL = n.L - L.z (how much more the
surface faces the light than a surface facing the viewer does):
    lit side   e = intensity * clamp(dL, 0, 1) * color       (screen: f + e (1 - f))
    dark side  s = intensity * (1 - ambient) * clamp(-dL + max(-L.z, 0), 0, 1)   (multiply)
    fill'      = f (1 - s)(1 - e) + e
A surface facing the viewer keeps its painted colour under a light in front (dL = 0):
the cel's colours are the colour designer's, the light adds relief. A light behind
(L.z < 0) dims the front by ``max(-L.z, 0)`` and lights the rims that turn towards it.
Intensity 0 returns the input exactly.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .geometry import normals
from .palette import ColourModel, pack
from .settings import Light

#: ink shares over which the light fades out: a line pixel is >= 50 % ink, and the estimate
#: of the share from a blended colour runs a few per cent low, so the fade ends early
LINE_FADE = (0.15, 0.4)


@dataclass
class Surface:
    """What a frame offers to any light: computed once, shaded once per light setup."""

    box: tuple[int, int, int, int]      # y0, y1, x0, x1 of the visible pixels
    normal: np.ndarray                  # (h, w, 3) float32
    take: np.ndarray                    # (h, w, 1) float32: how much of the light a pixel takes
    fill: np.ndarray                    # (h, w, 3) float32: fill part (0..1)


def surface(img: np.ndarray, model: ColourModel) -> Surface | None:
    """The frame's normals and receptivity, or None when nothing is visible."""
    visible = img[..., 3] > 0
    rows, cols = np.flatnonzero(visible.any(1)), np.flatnonzero(visible.any(0))
    if len(rows) == 0:
        return None
    pad = 2  # one pixel of context each side keeps the boundary test and the Sobel exact
    y0, y1 = max(rows[0] - pad, 0), min(rows[-1] + pad + 1, img.shape[0])
    x0, x1 = max(cols[0] - pad, 0), min(cols[-1] + pad + 1, img.shape[1])
    crop = img[y0:y1, x0:x1]
    vis = crop[..., 3] > 0
    idx = model.lookup(pack(crop[..., :3]))
    share = model.ink_share[idx]
    hard = (crop[..., 3] < 128) | (share >= LINE_FADE[1])
    region = np.where(hard, -1, model.fill_index[idx])
    lo, hi = LINE_FADE
    take = (1.0 - share) * np.clip((hi - share) / (hi - lo), 0.0, 1.0) * vis
    n = normals(region, hard, crop[..., 3] < 128, min(img.shape[:2]))
    return Surface((y0, y1, x0, x1), n, take.astype(np.float32)[..., None], model.fill_part[idx])


def shade(img: np.ndarray, surf: Surface | None, light: Light) -> np.ndarray:
    """The lit frame (RGBA uint8, alpha as given)."""
    if surf is None or light.intensity == 0.0:
        return img.copy()
    y0, y1, x0, x1 = surf.box
    lx, ly, lz = light.direction
    n = surf.normal
    d_l = n[..., 0] * lx + n[..., 1] * ly + n[..., 2] * lz - lz
    d_l = d_l[..., None]
    color = np.asarray(light.color, np.float32)
    e = np.minimum(light.intensity * np.clip(d_l, 0.0, 1.0) * color, 1.0)
    s = np.minimum(light.intensity * (1.0 - light.ambient) * np.clip(max(-lz, 0.0) - d_l, 0.0, 1.0), 1.0)
    f = surf.fill
    change = (f * (1.0 - s) * (1.0 - e) + e - f) * surf.take
    out = img.copy()
    rgb = out[y0:y1, x0:x1, :3]
    rgb[...] = np.clip(rgb.astype(np.float32) + change * 255.0 + 0.5, 0, 255).astype(np.uint8)
    return out


def light_layer(img: np.ndarray, lit: np.ndarray) -> np.ndarray:
    """The difference the light makes, for a compositor: RGB = 128 + (lit - input) / 2, alpha =
    the input's alpha. Blend it in "linear light" mode (base + 2 * layer - 1) to get the lit
    frame back within one level; 128 grey (or alpha 0) means no change."""
    out = np.full_like(img, 128)
    out[..., 3] = img[..., 3]
    changed = np.any(lit != img, axis=-1)
    rows, cols = np.flatnonzero(changed.any(1)), np.flatnonzero(changed.any(0))
    if len(rows):  # only the changed box is worked on: most of a frame is untouched
        y0, y1, x0, x1 = rows[0], rows[-1] + 1, cols[0], cols[-1] + 1
        diff = lit[y0:y1, x0:x1, :3].astype(np.int16) - img[y0:y1, x0:x1, :3]
        out[y0:y1, x0:x1, :3] = np.clip(128 + np.rint(diff * 0.5), 0, 255).astype(np.uint8)
    out[img[..., 3] == 0, :3] = 128
    return out
