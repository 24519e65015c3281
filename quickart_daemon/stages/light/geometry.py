"""Stroke density and a coarse normal field, from the colour model's regions.

PaintingLight reads "where strokes pile up" as height: it blurs the stroke density at
several scales (coarse to fine) and takes normals from the result. On a flat cel a
fill is one flat stroke, and blurring its coverage with a Gaussian of width s gives,
at a distance d inside its boundary, a value that rises from 1/2 at the edge to 1
deep inside as a function of d/s alone. So we compute that density directly from a
distance transform, which is edge-aware by construction (the nearest boundary of a
pixel is always its own region's) and cheap (two passes, no per-colour blurs):

- fine scale: distance to any boundary (lines, transparency, a change of flat colour),
  so every closed shape gets its own relief and nothing crosses a colour edge;
- coarse scale: distance to transparency only, the form of the whole drawing (skin
  and its shadow tone are one surface; an eye is drawn on the face, not a hole in it:
  with lines as barriers the face would dip around each eye).

Deep inside a region the density is flat, so flat areas get the normal (0, 0, 1) and
stay clean; only a band along each boundary turns.
"""

from __future__ import annotations

import cv2
import numpy as np

#: density widths as fractions of the frame's shorter side (fine, coarse)
FINE_SCALE = 0.012
COARSE_SCALE = 0.035
#: how much each scale bulges (slope of the height at a boundary, in pixels per pixel)
FINE_BULGE = 1.5
COARSE_BULGE = 0.4
#: blur of the height, as a fraction of the fine scale
SMOOTH = 1.0


def boundaries(region: np.ndarray, hard: np.ndarray) -> np.ndarray:
    """Pixels where the region id changes to a neighbour (either side), or hard barriers."""
    edge = hard.copy()
    dx = region[:, 1:] != region[:, :-1]
    dy = region[1:, :] != region[:-1, :]
    edge[:, 1:] |= dx
    edge[:, :-1] |= dx
    edge[1:, :] |= dy
    edge[:-1, :] |= dy
    return edge


def density(barrier: np.ndarray, scale: float) -> np.ndarray:
    """Stroke density in [0, 1): the saturating profile tanh(d / scale) of the distance d to
    the nearest barrier pixel (0 on barriers)."""
    d = cv2.distanceTransform((~barrier).view(np.uint8), cv2.DIST_L2, cv2.DIST_MASK_PRECISE)
    return np.tanh(d * (1.0 / scale))


def normals(region: np.ndarray, hard: np.ndarray, outside: np.ndarray, short_side: int) -> np.ndarray:
    """Unit normals (H, W, 3), image space: x right, y down, z towards the viewer.

    ``region``: an int map (same value = same flat colour), ``hard``: bool map of lines and
    transparency, ``outside``: transparency alone. ``short_side``: the frame's shorter side, so the look does not depend on
    resolution."""
    fine = max(FINE_SCALE * short_side, 0.75)
    coarse = max(COARSE_SCALE * short_side, 2.0)
    height = (FINE_BULGE * fine) * density(boundaries(region, hard), fine)
    height += (COARSE_BULGE * coarse) * density(outside, coarse)
    # a light blur over the fills only rounds the ridge a distance transform has along a
    # region's middle (a crease under a side light) without filling the valley of a line
    sigma = max(SMOOTH * fine, 0.5)
    fills = (~hard).astype(np.float32)
    height = cv2.GaussianBlur(height, (0, 0), sigma) / np.maximum(cv2.GaussianBlur(fills, (0, 0), sigma), 1e-3)
    height *= fills
    gx = cv2.Sobel(height, cv2.CV_32F, 1, 0, ksize=3, scale=0.125)
    gy = cv2.Sobel(height, cv2.CV_32F, 0, 1, ksize=3, scale=0.125)
    # the height rises inwards, so the surface faces outwards: n ~ (-dh/dx, -dh/dy, 1)
    inv = 1.0 / np.sqrt(gx * gx + gy * gy + 1.0)
    return np.stack([-gx * inv, -gy * inv, inv], axis=-1)
