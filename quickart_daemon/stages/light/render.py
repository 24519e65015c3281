"""Lighting one frame: geometry from the colour model, then cel shading in RGB.

A pixel is ``ink * a + fill * (1 - a)`` (palette.py), the fill part being a convex mix
of the palette. The light acts on the fill part only and the ink share is put back
unchanged, so lines stay as drawn and anti-aliased edges fade the effect out. The
operators are affine in the colour (a mix towards the shadow tone, a screen for the lit
side), so lighting each palette layer and recombining with the weights, as the paper
does, equals lighting the fill colour itself: we do the latter, once per pixel.

Flat cels stay flat: instead of a gradient that follows the normals, each pixel takes one
of three tones, and the normals (geometry.py: whole figure, each part, each region) only
decide where the tone changes. With L the unit direction and n the normal:

    shadow side  where n.L - max(L.z, 0) < -SHADOW_AT (turned further from the light than a
                 surface facing the viewer; under a light behind, everything that faces it
                 less than side-on): the fill's shadow tone, NAME_shadow from palette.yaml or
                 else the colour stage's computed one (darker, cooler), at full strength for
                 the default intensity 0.7 and ambient 0.6 and scaled by intensity * (1 - ambient)
                 from there (ambient 1: no darkening)
    lit side     where n.L - L.z > LIT_AT (turned further towards the light than a surface facing
                 the viewer; under a light behind, the rims on its side): a screen of the light
                 colour, e = intensity * LIT_GAIN * (1 + max(-L.z, 0)) * color
    elsewhere    the painted colour (a surface facing the viewer under a light in front)

The tone edge is hard (anti-aliased over one pixel) or soft (a smooth step a few pixels
wide), measured in pixels from the terminator with the field's own gradient, so its width
does not depend on how fast the form turns. Intensity 0 returns the input exactly.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from .geometry import normals, silhouette
from .palette import ColourModel, pack, shadow_tones as computed_shadow_tones
from .settings import DEFAULTS, Light

#: ink shares over which the light fades out: a line pixel is >= 50 % ink, and the estimate
#: of the share from a blended colour runs a few per cent low, so the fade ends early
LINE_FADE = (0.15, 0.4)
#: where the shadow side and the lit side begin, on n.L against a viewer-facing surface (module docstring)
SHADOW_AT = 0.05
LIT_AT = 0.12
#: strength of the lit side's screen at intensity 1
LIT_GAIN = 0.35
#: the shadow tone is reached at the default light; darker or lighter settings scale from there
DEFAULT_DARKNESS = DEFAULTS["intensity"] * (1.0 - DEFAULTS["ambient"])
#: half-width of a soft edge as a fraction of the frame's shorter side (a hard edge: 1/2 pixel)
SOFT_EDGE = 0.004


@dataclass
class Surface:
    """What a frame offers to any light: computed once, shaded once per light setup."""

    box: tuple[int, int, int, int]      # y0, y1, x0, x1 of the visible pixels
    normal: np.ndarray                  # (h, w, 3) float32
    take: np.ndarray                    # (h, w, 1) float32: how much of the light a pixel takes
    fill: np.ndarray                    # (h, w, 3) float32: fill part (0..1)
    to_shadow: np.ndarray               # (h, w, 3) float32: shadow tone minus flat fill colour
    soft_px: float                      # half-width of a soft tone edge, pixels


def surface(img: np.ndarray, model: ColourModel, shadow_tones: np.ndarray | None = None) -> Surface | None:
    """The frame's normals and receptivity, or None when nothing is visible.

    ``shadow_tones``: (N, 3) 0..1, the shadow tone of each of the model's flat fills
    (``palette.shadow_tones``); computed from the fills when not given."""
    visible = img[..., 3] > 0
    rows, cols = np.flatnonzero(visible.any(1)), np.flatnonzero(visible.any(0))
    if len(rows) == 0:
        return None
    pad = 2  # one pixel of context each side keeps the boundary test and the Sobel exact
    y0, y1 = max(rows[0] - pad, 0), min(rows[-1] + pad + 1, img.shape[0])
    x0, x1 = max(cols[0] - pad, 0), min(cols[-1] + pad + 1, img.shape[1])
    crop = img[y0:y1, x0:x1]
    idx = model.lookup(pack(crop[..., :3]))
    share = model.ink_share[idx]
    transparent = crop[..., 3] < 128
    hard = transparent | (share >= LINE_FADE[1])
    region = np.where(hard, -1, model.fill_index[idx])
    figure = silhouette(region, transparent)
    lo, hi = LINE_FADE
    # the paper around a figure on an opaque frame is not lit, nor is transparency
    take = (1.0 - share) * np.clip((hi - share) / (hi - lo), 0.0, 1.0) * (crop[..., 3] > 0) * figure
    short_side = min(img.shape[:2])
    n = normals(region, hard, figure, short_side)
    if shadow_tones is None:
        shadow_tones = computed_shadow_tones(model.fills, None)
    to_shadow = (shadow_tones - model.fills).astype(np.float32)[model.fill_index[idx]]
    return Surface((y0, y1, x0, x1), n, take.astype(np.float32)[..., None], model.fill_part[idx],
                   to_shadow, max(SOFT_EDGE * short_side, 1.0))


def _coverage(field: np.ndarray, soft_px: float | None) -> np.ndarray:
    """How much of each pixel lies where ``field`` > 0: the field over its own gradient is the
    distance in pixels to the edge; a hard edge ramps over one pixel, a soft one over 2 soft_px."""
    field = field.astype(np.float32)
    gx = cv2.Sobel(field, cv2.CV_32F, 1, 0, ksize=1, scale=0.5)  # central differences
    gy = cv2.Sobel(field, cv2.CV_32F, 0, 1, ksize=1, scale=0.5)
    dist = field / np.maximum(np.sqrt(gx * gx + gy * gy), 1e-6)
    if soft_px is None:
        return np.clip(dist + 0.5, 0.0, 1.0)
    t = np.clip(dist * (0.5 / soft_px) + 0.5, 0.0, 1.0)
    return t * t * (3.0 - 2.0 * t)


def shade(img: np.ndarray, surf: Surface | None, light: Light) -> np.ndarray:
    """The lit frame (RGBA uint8, alpha as given)."""
    if surf is None or light.intensity == 0.0:
        return img.copy()
    y0, y1, x0, x1 = surf.box
    lx, ly, lz = light.direction
    n = surf.normal
    n_l = n[..., 0] * lx + n[..., 1] * ly + n[..., 2] * lz
    soft = surf.soft_px if light.edge == "soft" else None
    in_shadow = _coverage(-SHADOW_AT - (n_l - max(lz, 0.0)), soft)[..., None]
    in_light = _coverage(n_l - lz - LIT_AT, soft)[..., None]
    f = surf.fill
    darkness = light.intensity * (1.0 - light.ambient) / DEFAULT_DARKNESS
    tone = np.clip(f + surf.to_shadow * darkness, 0.0, 1.0)
    # a rim the light reaches is out of its shadow (the two overlap only for a light behind)
    c = f + (tone - f) * (in_shadow * (1.0 - in_light))
    # a light behind is seen only on the rims, so it is the rim's whole brightness
    e = np.minimum(light.intensity * LIT_GAIN * (1.0 + max(-lz, 0.0)) * np.asarray(light.color, np.float32), 1.0)
    c = c + e * (1.0 - c) * in_light
    change = (c - f) * surf.take
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
