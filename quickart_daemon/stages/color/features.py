"""Per-region features and the region adjacency graph of one segmented drawing."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .regions import Segmentation


@dataclass
class Regions:
    n: int                    # regions are 1..n; arrays below are indexed by id (row 0 unused)
    area: np.ndarray          # free pixels of the region (lines excluded)
    full_area: np.ndarray     # pixels including the absorbed lines
    centroid: np.ndarray      # (n+1, 2) x, y in pixels
    size: np.ndarray          # (n+1, 2) sqrt of the covariance eigenvalues (major, minor)
    angle: np.ndarray         # orientation of the major axis (radians)
    bbox: np.ndarray          # (n+1, 4) x0, y0, x1, y1
    line_ctx: np.ndarray      # (n+1, 4) fractions of the region's line pixels: ink, red, blue, and border share
    outside: np.ndarray       # bool: background (touches the frame border and is large)
    border: np.ndarray        # bool: touches the frame border
    adj: np.ndarray           # (n+1, n+1) float: shared boundary length in pixels
    adj_red: np.ndarray       # (n+1, n+1) float: shared boundary running along red trace lines
    adj_blue: np.ndarray      # (n+1, n+1) float: same for blue
    char_center: np.ndarray   # (2,) centroid of the character (all non-outside pixels)
    char_scale: float         # sqrt of the character area


def _pairs(a: np.ndarray, b: np.ndarray, weight: np.ndarray | None, n: int) -> np.ndarray:
    diff = a != b
    code = a[diff].astype(np.int64) * (n + 1) + b[diff]
    w = None if weight is None else weight[diff].astype(np.float64)
    m = np.bincount(code, weights=w, minlength=(n + 1) ** 2).reshape(n + 1, n + 1).astype(np.float64)
    return m + m.T


#: a region touching the frame's border is background when it covers at least this share of the
#: frame (paper or sky round a character; a part cut by the frame's edge is smaller)
OUTSIDE_MIN_SHARE = 0.02
#: border pixels per side of a square of the region's area at which the border share is full: a
#: region along one whole side of its own size (a quarter of a square's perimeter)
BORDER_SIDES = 4.0


def describe(seg: Segmentation, outside_min_fraction: float = OUTSIDE_MIN_SHARE) -> Regions:
    lab = seg.labels
    n = int(lab.max())
    h, w = lab.shape
    art = seg.line
    flat = lab.ravel()
    free = seg.free.ravel()
    area = np.bincount(flat[free], minlength=n + 1).astype(np.float64)
    full = np.bincount(flat, minlength=n + 1).astype(np.float64)
    wgt = np.maximum(full, 1)
    # moments and boxes from the horizontal runs of one label (a few per row): the sums of x, y,
    # x², y², xy over a run are closed forms, and all of them are integers far below 2**53, so
    # the sums are the same in any order (exactly those of a per-pixel bincount)
    starts = np.ones((h, w), bool)
    starts[:, 1:] = lab[:, 1:] != lab[:, :-1]
    first = np.flatnonzero(starts)
    ry, x0 = np.divmod(first, w)
    last = np.r_[first[1:], h * w] - 1
    last = np.where(np.r_[ry[1:], h] != ry, ry * w + w - 1, last)  # a run ends at its row's end
    x1 = last - ry * w
    rl = flat[first]
    cnt = x1 - x0 + 1
    s1 = (x0 + x1) * cnt // 2                                          # sum of x
    s2 = (x1 * (x1 + 1) * (2 * x1 + 1) - (x0 - 1) * x0 * (2 * x0 - 1)) // 6  # sum of x²
    acc = lambda v: np.bincount(rl, v.astype(np.float64), n + 1)
    sx = acc(s1) / wgt
    sy = acc(ry * cnt) / wgt
    sxx = acc(s2) / wgt - sx ** 2
    syy = acc(ry * ry * cnt) / wgt - sy ** 2
    sxy = acc(ry * s1) / wgt - sx * sy
    tr, det = sxx + syy, sxx * syy - sxy ** 2
    disc = np.sqrt(np.maximum(tr ** 2 / 4 - det, 0))
    l1, l2 = np.maximum(tr / 2 + disc, 0), np.maximum(tr / 2 - disc, 0)
    size = np.stack([np.sqrt(l1), np.sqrt(l2)], 1)
    angle = 0.5 * np.arctan2(2 * sxy, sxx - syy)
    bbox = np.zeros((n + 1, 4))
    bbox[:, 0] = np.full(n + 1, w)
    bbox[:, 1] = np.full(n + 1, h)
    # a region's box: the extremes of its runs (runs sorted by label; rows are in order already)
    order = np.argsort(rl, kind="stable")
    ls = rl[order]
    head = np.flatnonzero(np.r_[True, ls[1:] != ls[:-1]])
    ids = ls[head]
    bbox[ids, 0] = np.minimum.reduceat(x0[order], head)
    bbox[ids, 2] = np.maximum.reduceat(x1[order], head)
    bbox[ids, 1] = ry[order][head]
    bbox[ids, 3] = ry[order][np.r_[head[1:], len(ls)] - 1]
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
    # adjacency (right and down neighbours), and how much of it runs along trace lines
    red, blue = art.red, art.blue
    adj = _pairs(lab[:, :-1], lab[:, 1:], None, n) + _pairs(lab[:-1], lab[1:], None, n)
    rr = red[:, :-1] | red[:, 1:]
    rd = red[:-1] | red[1:]
    adj_red = _pairs(lab[:, :-1], lab[:, 1:], rr, n) + _pairs(lab[:-1], lab[1:], rd, n)
    br = blue[:, :-1] | blue[:, 1:]
    bd = blue[:-1] | blue[1:]
    adj_blue = _pairs(lab[:, :-1], lab[:, 1:], br, n) + _pairs(lab[:-1], lab[1:], bd, n)
    inside = ~outside
    inside[0] = False
    ca = full[inside].sum()
    if ca > 0:
        center = np.array([(sx[inside] * full[inside]).sum() / ca, (sy[inside] * full[inside]).sum() / ca])
    else:
        center = np.array([w / 2, h / 2])
    scale = float(np.sqrt(max(ca, 1.0)))
    return Regions(n, area, full, np.stack([sx, sy], 1), size, angle, bbox, ctx, outside, border,
                   adj, adj_red, adj_blue, center, scale)
