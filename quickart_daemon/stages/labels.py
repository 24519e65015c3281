"""What the stages that cut a frame into regions share: label images and their measurements.

One home (issue 25) for helpers that had a copy per stage:

* :func:`nearest_labels`: unlabelled pixels take the label of the nearest labelled one (the
  in-between's region cutting, `inbetween/motion.py`; the colour stage's segmentation);
* :func:`fill_from_nearest`: the general form, any per-pixel values copied from the nearest known
  pixel, optionally only within the same region (the colour stage's shading transfer);
* :class:`RegionGeometry` and :func:`geometry`: per-label area, centroid, second moments, bounding
  box and shared boundary length, the base of the in-between's `motion.Regions` and of the colour
  stage's `color/features.Regions`;
* :func:`confidence_image`: a confidence map (0..1) as the opaque grey RGBA frame the stages publish
  as their `confidence` variant (white = sure).
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np


def pixel_labels(idx: np.ndarray, zero: np.ndarray) -> np.ndarray:
    """The labels that cv2.distanceTransformWithLabels (DIST_LABEL_PIXEL) gave the zero pixels
    (flat indices `zero`, in order): 1, 2, ... in raster order, as OpenCV numbers them (checked on
    a sample; read from `idx` otherwise)."""
    flat = idx.ravel()
    k = len(zero)
    probe = np.unique(np.r_[0, k - 1, np.arange(0, k, max(1, k // 997))]) if k else np.zeros(0, int)
    if k and np.array_equal(flat[zero[probe]], probe + 1):
        return np.arange(1, k + 1)
    return flat[zero]


def nearest_labels(labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(labels with every pixel <= 0 given the label of the nearest labelled pixel, the distance
    to it: 0 where a pixel was labelled)."""
    bad = labels <= 0
    if not bad.any():
        return labels, np.zeros(labels.shape, np.float32)
    dist, idx = cv2.distanceTransformWithLabels(bad.astype(np.uint8), cv2.DIST_L2, 3,
                                                labelType=cv2.DIST_LABEL_PIXEL)
    good = np.flatnonzero(~bad)
    lut = np.zeros(len(good) + 1, np.int32)
    lut[pixel_labels(idx, good)] = labels.ravel()[good]
    out = labels.copy()
    b = np.flatnonzero(bad)
    out.ravel()[b] = lut[idx.ravel()[b]]
    return out, dist


def fill_from_nearest(fill: np.ndarray, known: np.ndarray, want: np.ndarray, same: np.ndarray | None = None,
                      max_dist: float = np.inf) -> np.ndarray:
    """Pixels in `want` take the value (last axis of `fill`) of the nearest `known` pixel, in place:
    only from a pixel of the same label in `same` when given, and within `max_dist`. Only the
    pixels asked for are mapped. Returns where that happened."""
    if not known.any() or not want.any():
        return np.zeros_like(want)
    dist, idx = cv2.distanceTransformWithLabels((~known).astype(np.uint8), cv2.DIST_L2, 3,
                                                labelType=cv2.DIST_LABEL_PIXEL)
    kn = np.flatnonzero(known)
    pos = np.zeros(len(kn) + 1, np.int64)
    pos[pixel_labels(idx, kn)] = kn
    wn = np.flatnonzero(want)
    src = pos[idx.ravel()[wn]]
    take = dist.ravel()[wn] <= max_dist
    if same is not None:
        flat = same.ravel()
        take &= flat[src] == flat[wn]
    wn, src = wn[take], src[take]
    got = fill.reshape(-1, fill.shape[-1])[src]
    ys, xs = np.divmod(wn, want.shape[1])
    fill[ys, xs] = got
    ok = np.zeros(want.shape, bool)
    ok[ys, xs] = True
    return ok


@dataclass
class RegionGeometry:
    """Measurements of the labels 1..n of a label image; arrays are indexed by label (row 0: pixels
    labelled 0, if any)."""

    n: int
    area: np.ndarray      # (n+1,) pixels
    centroid: np.ndarray  # (n+1, 2) x, y
    cov: np.ndarray       # (n+1, 2, 2) second moments about the centroid
    bbox: np.ndarray      # (n+1, 4) x0, y0, x1, y1 (inclusive)
    adj: np.ndarray       # (n+1, n+1) shared boundary length in pixels (right and down neighbours)


def boundary_lengths(labels: np.ndarray, n: int, along: np.ndarray | None = None) -> np.ndarray:
    """(n+1, n+1) symmetric: for each pair of labels the number of right/down neighbour pixel pairs
    where one meets the other; with `along` (bool, the image's shape) only pairs touching it."""
    m = np.zeros((n + 1, n + 1))
    for a, b, pick in ((labels[:, :-1], labels[:, 1:], (np.s_[:, :-1], np.s_[:, 1:])),
                       (labels[:-1], labels[1:], (np.s_[:-1], np.s_[1:]))):
        diff = a != b
        if along is not None:
            diff &= along[pick[0]] | along[pick[1]]
        code = a[diff].astype(np.int64) * (n + 1) + b[diff]
        m += np.bincount(code, minlength=(n + 1) ** 2).reshape(n + 1, n + 1)
    return m + m.T


def geometry(labels: np.ndarray) -> RegionGeometry:
    """Area, centroid, covariance, bounding box and adjacency of every label (float64).

    The moments and boxes come from the horizontal runs of one label (a few per row): the sums of
    x, y, x², y², xy over a run are closed forms, and all of them are integers far below 2**53, so
    the sums are the same in any order (exactly those of a per-pixel bincount)."""
    h, w = labels.shape
    n = int(labels.max())
    flat = labels.ravel()
    area = np.bincount(flat, minlength=n + 1).astype(np.float64)
    wgt = np.maximum(area, 1)
    starts = np.ones((h, w), bool)
    starts[:, 1:] = labels[:, 1:] != labels[:, :-1]
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
    cx = acc(s1) / wgt
    cy = acc(ry * cnt) / wgt
    cov = np.zeros((n + 1, 2, 2))
    cov[:, 0, 0] = acc(s2) / wgt - cx ** 2
    cov[:, 1, 1] = acc(ry * ry * cnt) / wgt - cy ** 2
    cov[:, 0, 1] = cov[:, 1, 0] = acc(ry * s1) / wgt - cx * cy
    bbox = np.zeros((n + 1, 4))
    bbox[:, :2] = [w, h]
    # a label's box: the extremes of its runs (runs sorted by label; rows are in order already)
    order = np.argsort(rl, kind="stable")
    ls = rl[order]
    head = np.flatnonzero(np.r_[True, ls[1:] != ls[:-1]])
    ids = ls[head]
    bbox[ids, 0] = np.minimum.reduceat(x0[order], head)
    bbox[ids, 2] = np.maximum.reduceat(x1[order], head)
    bbox[ids, 1] = ry[order][head]
    bbox[ids, 3] = ry[order][np.r_[head[1:], len(ls)] - 1]
    return RegionGeometry(n, area, np.stack([cx, cy], 1), cov, bbox, boundary_lengths(labels, n))


def confidence_image(conf: np.ndarray) -> np.ndarray:
    """A confidence map (0..1) as an opaque grey RGBA frame, uint8 (white = sure)."""
    g = np.clip(conf * 255 + 0.5, 0, 255).astype(np.uint8)
    return np.dstack([g, g, g, np.full_like(g, 255)])
