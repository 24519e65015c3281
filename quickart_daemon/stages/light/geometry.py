"""A height field and its normals at three scales: the whole figure, each part, each region.

PaintingLight reads "where strokes pile up" as height and builds its coarse geometry from
stroke density blurred at several scales. On a flat cel that gives every closed shape its
own bump and nothing more: lit from the left, each region brightens on its left and darkens
on its right, and the figure as a whole has no lit side (issue 15). So the height here is the
sum of three terms, coarse to fine:

- **figure**: the figure's silhouette blurred at a scale of its own size (the spread of a
  Gaussian of about a quarter of the square root of its area): one dome over the whole drawing whose slope turns
  the left of the figure to the left and the right to the right, limbs included (a limb far
  out on one side lies on the dome's flank, so it turns with that side);
- **part**: a round profile of the distance to the silhouette, sqrt(2 R d - d^2) up to R (a
  tube's cross-section): every limb and the head turn away at their outline, which is where
  rim light and the terminator of a side light fall;
- **region**: PaintingLight's stroke density at a fine scale. Blurring a flat stroke's coverage
  gives, at a distance d inside its boundary, a value that depends on d / s alone, so it is
  computed from a distance transform to any boundary (lines, transparency, a change of flat
  colour): edge-aware and cheap. It adds a little relief where colours meet.

The silhouette is what is not transparent; on an opaque frame it is what is not the paper
(the flat colour that holds most of the frame's border, in the pieces touching the border).
Everything here depends only on the frame itself, so a held drawing gets the same normals on
every frame.
"""

from __future__ import annotations

import cv2
import numpy as np

#: region scale: density width as a fraction of the frame's shorter side, and its slope at a boundary
FINE_SCALE = 0.012
FINE_BULGE = 0.35
#: blur of the region term, as a fraction of its scale (rounds the ridge along a region's middle)
SMOOTH = 1.0
#: figure scale: the dome's Gaussian width as a fraction of sqrt(silhouette area), and its slope
FIGURE_SIGMA = 0.28
FIGURE_SLOPE = 2.2
#: part scale: tube radius as a fraction of sqrt(silhouette area), and how far its edge turns
PART_RADIUS = 0.07
PART_BULGE = 1.0
#: an opaque frame's paper must hold at least this share of the frame's border
PAPER_BORDER_SHARE = 0.5


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


def _border(a: np.ndarray) -> np.ndarray:
    return np.concatenate([a[0], a[-1], a[1:-1, 0], a[1:-1, -1]])


def silhouette(region: np.ndarray, transparent: np.ndarray) -> np.ndarray:
    """The figure's pixels (fills and lines): all but transparency, or on an opaque frame all but
    the paper. ``region``: flat-colour ids, -1 on lines. The paper is the colour holding most of
    the border (at least PAPER_BORDER_SHARE of it), in the connected pieces that touch the border:
    a white eye or a gap closed by the drawing stays part of the figure. A frame with no such
    colour (a full painting) is all figure."""
    if transparent.any():
        return ~transparent
    edge = _border(region)
    ids, counts = np.unique(edge[edge >= 0], return_counts=True)
    if len(ids) == 0 or counts.max() < PAPER_BORDER_SHARE * len(edge):
        return np.ones(region.shape, bool)
    paper = (region == ids[counts.argmax()]).view(np.uint8)
    _, pieces = cv2.connectedComponents(paper, connectivity=4)
    touching = np.zeros(pieces.max() + 1, bool)
    touching[_border(pieces)] = True
    touching[0] = False
    return ~touching[pieces]


def figure_height(figure: np.ndarray, size: float) -> np.ndarray:
    """The whole figure's dome: its silhouette blurred at FIGURE_SIGMA * size, in pixels of height."""
    sigma = FIGURE_SIGMA * size
    # three box blurs of width sqrt(4 sigma^2 + 1) make that Gaussian's spread at a cost that does
    # not grow with it, and their sum is smooth to the first derivative: the slope, and so the
    # terminator, has no steps (a blur of a reduced copy, scaled back up, stepped or rippled it)
    width = max(int(round(np.sqrt(4.0 * sigma * sigma + 1.0))) | 1, 3)
    dome = figure.astype(np.float32)
    for _ in range(3):
        dome = cv2.blur(dome, (width, width), borderType=cv2.BORDER_REPLICATE)
    # slope: a blurred edge rises by 1 over about 2.5 sigma, so height sigma * FIGURE_SLOPE / 2.5
    return dome * (FIGURE_SLOPE * sigma / 2.5)


def part_height(figure: np.ndarray, size: float) -> np.ndarray:
    """Each part's round cross-section: a tube of radius PART_RADIUS * size along the silhouette."""
    radius = max(PART_RADIUS * size, 1.5)
    d = cv2.distanceTransform(figure.view(np.uint8), cv2.DIST_L2, cv2.DIST_MASK_PRECISE)
    x = np.minimum(d * (1.0 / radius), 1.0)
    tube = np.sqrt(x * (2.0 - x)) * (PART_BULGE * radius)
    # the profile is vertical at the outline: a blur of a quarter radius keeps it steep, not infinite
    return cv2.GaussianBlur(tube, (0, 0), max(0.15 * radius, 0.5), borderType=cv2.BORDER_REPLICATE)


def region_height(region: np.ndarray, hard: np.ndarray, short_side: int) -> np.ndarray:
    """Each flat region's own relief (PaintingLight's fine stroke density), 0 on lines."""
    fine = max(FINE_SCALE * short_side, 0.75)
    height = (FINE_BULGE * fine) * density(boundaries(region, hard), fine)
    # a light blur over the fills only rounds the ridge a distance transform has along a
    # region's middle (a crease under a side light) without filling the valley of a line
    sigma = max(SMOOTH * fine, 0.5)
    fills = (~hard).astype(np.float32)
    height = cv2.GaussianBlur(height, (0, 0), sigma) / np.maximum(cv2.GaussianBlur(fills, (0, 0), sigma), 1e-3)
    return height * fills


def normals(region: np.ndarray, hard: np.ndarray, figure: np.ndarray, short_side: int) -> np.ndarray:
    """Unit normals (H, W, 3), image space: x right, y down, z towards the viewer.

    ``region``: an int map (same value = same flat colour), ``hard``: bool map of lines and
    transparency, ``figure``: the silhouette (see ``silhouette``). ``short_side``: the frame's
    shorter side, so the fine relief does not depend on resolution; the figure and part scales
    follow the figure's own size."""
    height = region_height(region, hard, short_side)
    area = int(np.count_nonzero(figure))
    if 0 < area < figure.size:  # a figure with an outline: its form (a full painting has none)
        size = float(np.sqrt(area))
        height += figure_height(figure, size) + part_height(figure, size)
    gx = cv2.Sobel(height, cv2.CV_32F, 1, 0, ksize=3, scale=0.125)
    gy = cv2.Sobel(height, cv2.CV_32F, 0, 1, ksize=3, scale=0.125)
    # the height rises inwards, so the surface faces outwards: n ~ (-dh/dx, -dh/dy, 1)
    inv = 1.0 / np.sqrt(gx * gx + gy * gy + 1.0)
    return np.stack([-gx * inv, -gy * inv, inv], axis=-1)
