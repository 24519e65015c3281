"""Per-region features and the region adjacency graph of one segmented drawing."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..labels import RegionGeometry, boundary_lengths, geometry
from .regions import Segmentation


@dataclass
class Regions(RegionGeometry):
    """A drawing's regions: their geometry (`stages.labels.RegionGeometry` of the labels with the
    lines absorbed: area, centroid, moments, bounding box, shared boundary) and what matching them
    needs. Arrays are indexed by region id (row 0 unused)."""

    size: np.ndarray          # (n+1, 2) sqrt of the covariance eigenvalues (major, minor)
    angle: np.ndarray         # orientation of the major axis (radians)
    line_ctx: np.ndarray      # (n+1, 4) fractions of the region's line pixels: ink, red, blue, and border share
    outside: np.ndarray       # bool: background (touches the frame border and is large)
    border: np.ndarray        # bool: touches the frame border
    adj_red: np.ndarray       # (n+1, n+1) float: shared boundary running along red trace lines
    adj_blue: np.ndarray      # (n+1, n+1) float: same for blue
    char_center: np.ndarray   # (2,) centroid of the character (all non-outside pixels)
    char_scale: float         # sqrt of the character area


#: a region touching the frame's border is background when it covers at least this share of the
#: frame (paper or sky round a character; a part cut by the frame's edge is smaller)
OUTSIDE_MIN_SHARE = 0.02
#: border pixels per side of a square of the region's area at which the border share is full: a
#: region along one whole side of its own size (a quarter of a square's perimeter)
BORDER_SIDES = 4.0


def describe(seg: Segmentation, outside_min_fraction: float = OUTSIDE_MIN_SHARE) -> Regions:
    lab = seg.labels
    g = geometry(lab)
    n = g.n
    h, w = lab.shape
    art = seg.line
    flat = lab.ravel()
    free = seg.free.ravel()
    full = g.area
    wgt = np.maximum(full, 1)
    sx, sy = g.centroid[:, 0], g.centroid[:, 1]
    sxx, syy, sxy = g.cov[:, 0, 0], g.cov[:, 1, 1], g.cov[:, 0, 1]
    tr, det = sxx + syy, sxx * syy - sxy ** 2
    disc = np.sqrt(np.maximum(tr ** 2 / 4 - det, 0))
    l1, l2 = np.maximum(tr / 2 + disc, 0), np.maximum(tr / 2 - disc, 0)
    size = np.stack([np.sqrt(l1), np.sqrt(l2)], 1)
    angle = 0.5 * np.arctan2(2 * sxy, sxx - syy)
    # line context: what kind of line a region's absorbed line pixels are
    lines = ~free
    nl = np.maximum(np.bincount(flat[lines], minlength=n + 1), 1).astype(np.float64)
    ctx = np.zeros((n + 1, 4))
    for k, m in enumerate((art.ink, art.red, art.blue)):
        mm = m.ravel()
        ctx[:, k] = np.bincount(flat[mm], minlength=n + 1) / nl
    edge = np.zeros((h, w), bool)
    edge[0, :] = edge[-1, :] = edge[:, 0] = edge[:, -1] = True
    border_px = np.bincount(lab[edge], minlength=n + 1)
    border = border_px > 0
    ctx[:, 3] = np.minimum(border_px / np.sqrt(wgt) / BORDER_SIDES, 1.0)
    outside = border & (full >= outside_min_fraction * h * w)
    if border.any() and not outside.any():
        outside[np.argmax(np.where(border, full, -1))] = True
    outside[0] = False
    # how much of the adjacency (the geometry's) runs along trace lines
    adj_red = boundary_lengths(lab, n, art.red)
    adj_blue = boundary_lengths(lab, n, art.blue)
    inside = ~outside
    inside[0] = False
    ca = full[inside].sum()
    if ca > 0:
        center = np.array([(sx[inside] * full[inside]).sum() / ca, (sy[inside] * full[inside]).sum() / ca])
    else:
        center = np.array([w / 2, h / 2])
    scale = float(np.sqrt(max(ca, 1.0)))
    return Regions(n, full, g.centroid, g.cov, g.bbox, g.adj, size, angle, ctx, outside, border,
                   adj_red, adj_blue, center, scale)
