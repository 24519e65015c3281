"""Large motion between cel keys: flat-colour regions matched between the keys (AnimeInterp-style).

A cel is a partition into flat-colour regions bounded by ink lines, and between two keys each
part of the drawing moves (and bends) roughly as a whole. So, once per key pair (:func:`estimate`):

1. :func:`segment_cel`: each key (composited over white) is cut into regions of constant colour,
   and pieces that are one paint in different light (a cel shadow, a highlight band, the steps
   of a gradient: no ink between them, tones that are one colour times a factor) are joined
   (:func:`merge_shading`), so a shaded part stays one region and moves with its shading;
   pixels on a colour edge (ink lines, anti-aliased fringes) and too-thin pieces (line cores) join
   the nearest region, and every pixel that is not the background's colour joins the nearest
   painted region, so a part carries its whole outline with it. The largest region touching the
   frame border is the background (paper or transparency).
2. :func:`match_regions`: regions are paired between the keys by colour (flat paint keeps its
   colour through any motion), area and position; the position a region is expected at comes
   from the motions of its matched neighbours, over a few rounds, so a forearm follows its upper
   arm through a large swing; same-colour groups (two shoes, two eyes) get the assignment of least
   total cost. Pieces of a region split by an occluder join the same partner.
3. :func:`fit_affine`: per matched pair an affine motion from the masks' moments, refined by ECC
   on the blurred masks; of fits about as good, the one that turns least (a symmetric limb fits
   as well turned half round, and must not spin through 180 degrees in the in-betweens).
   :func:`_verify` then checks every motion against the drawing (outline and inner lines) and
   takes a neighbour's motion or the global shift where that explains the region clearly better.
4. :func:`depth_order`: which region is in front, by voting: a region that moves onto the place
   where the other key shows region X went under X.

Then per time t (:func:`prealign`): each key is re-drawn at t region by region, back to front
(painter's algorithm), every region moved by its motion interpolated to t (rotation and stretch
interpolated separately, the centroid moving on a straight line). Where the two re-drawings
disagree on which region is visible, the one in front wins, so a part uncovered at t is taken
from the key that shows it; background uncovered in both is painted the background colour.
The stage puts this re-drawn frame, the same pair through RIFE and the other candidates into
:func:`consensus`.
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import permutations

import cv2
import numpy as np

from ..labels import RegionGeometry, geometry, nearest_labels
from . import classical

#: colour change (0..255, max over channels, 3x3 neighbourhood) that marks a region edge
EDGE_LEVEL = 24
#: regions whose colours differ by more than this (RGB distance, 0..255) never match
COLOUR_GATE = 30.0
#: matching cost weights: colour (per 255), position (per character size), log area ratio
W_COLOUR, W_POS, W_AREA = 8.0, 6.0, 1.0
MATCH_ROUNDS = 3


@dataclass
class Regions(RegionGeometry):
    """A key's regions: their geometry (`stages.labels.RegionGeometry`: area with edges included,
    centroid, moments, bounding box, shared boundary) and what matching and re-drawing need."""

    labels: np.ndarray    # int32 (H, W): 1..n, every pixel (edges joined to the nearest region)
    colour: np.ndarray    # (n+1, 3) mean RGB of the flat interior, 0..255
    bg: int               # the background region (0 when there is none)
    grey: np.ndarray      # float32 (H, W): the key over white, 0..1 (to check motions on)


def segment_cel(p: np.ndarray) -> Regions:
    """Flat-colour regions of a premultiplied RGBA key (see the module docstring)."""
    h, w = p.shape[:2]
    rgb = (np.clip(classical.over_white(p), 0, 1) * 255 + 0.5).astype(np.uint8)
    k = np.ones((3, 3), np.uint8)
    grad = (cv2.dilate(rgb, k).astype(np.int16) - cv2.erode(rgb, k)).max(axis=2)
    free = (grad < EDGE_LEVEL).astype(np.uint8)
    n, lab = cv2.connectedComponents(free, connectivity=4, ltype=cv2.CV_32S)
    # too thin to be a painted region (the core of an ink line): joins its neighbours
    dist = cv2.distanceTransform(free, cv2.DIST_L2, 3)
    thick = np.zeros(n, np.float32)
    np.maximum.at(thick, lab.ravel(), dist.ravel())
    mean = np.bincount(lab.ravel(), dist.ravel(), n) / np.maximum(np.bincount(lab.ravel(), minlength=n), 1)
    unit = min(h, w) / 540.0  # line widths grow with the frame
    # a network of line cores is thin on average even where lines meet in a blob
    keep = (thick >= max(1.0, 2.0 * unit)) & (mean >= max(1.0, 1.4 * unit))
    keep[0] = False
    ids = np.zeros(n, np.int32)
    ids[keep] = np.arange(1, int(keep.sum()) + 1)
    interior = ids[lab]
    if not keep.any():
        return describe(np.ones((h, w), np.int32), rgb, interior > 0)
    interior = merge_shading(interior, rgb)
    labels, _ = nearest_labels(interior)
    # the outline belongs to the drawing, not to the background: every pixel that is not the
    # background's colour joins the nearest painted region (so a moved part keeps its outline
    # and its anti-aliased fringe)
    edge = interior == 0
    bg = _background(labels, int(keep.sum()))
    if bg and keep.sum() > 1:
        paper = np.median(rgb[interior == bg], axis=0)
        drawn = (labels == bg) & (np.abs(rgb.astype(np.int16) - paper).max(axis=2) > 8)
        fg_lab, _ = nearest_labels(np.where(interior == bg, 0, interior))
        labels = np.where(drawn, fg_lab, labels)
    return describe(labels, rgb, ~edge)


#: a colour darker than this share of the darker of two neighbouring tones, along their
#: boundary, is ink between them: a line separates two parts, shading does not
LINE_DARKNESS = 0.7
#: two tones are one paint under different light when the darker is the lighter times one
#: factor in every channel (a shadow multiplies): the factor may differ per channel by this
SHADE_TOLERANCE = 0.12


def _shade_of(c1: np.ndarray, c2: np.ndarray) -> bool:
    """True when the darker colour is the lighter times about one factor (a shadow or a light
    on the same paint), not another paint."""
    lo, hi = (c1, c2) if c1.sum() < c2.sum() else (c2, c1)
    ratio = (lo + 8.0) / (hi + 8.0)
    return bool(ratio.max() - ratio.min() <= SHADE_TOLERANCE and ratio.mean() >= 0.3)


def merge_shading(interior: np.ndarray, rgb: np.ndarray) -> np.ndarray:
    """Join flat pieces that are one part in different light (a cel shadow, a highlight band, the
    steps of a gradient): neighbours across a boundary with no ink on it, whose tones are shades
    of one paint. Lines still separate parts, and so do different paints that touch."""
    n = int(interior.max())
    if n < 2:
        return interior
    flat = interior.ravel()
    cnt = np.maximum(np.bincount(flat, minlength=n + 1), 1)
    mean = np.stack([np.bincount(flat, rgb[..., c].ravel().astype(np.float64), n + 1) / cnt for c in range(3)], 1)
    # neighbours: pieces within 4 px of each other across edge pixels (a soft edge is a few
    # pixels wide); the darkest edge pixel between them says if there is ink
    grey = rgb.astype(np.float32).mean(axis=2)
    k = np.ones((3, 3), np.uint8)
    grown, _ = nearest_labels(interior)
    near = cv2.dilate((interior > 0).astype(np.uint8), k, iterations=4) > 0
    edge = (interior == 0) & near
    parent = np.arange(n + 1)

    def root(i):
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    pairs: dict[tuple[int, int], float] = {}
    for dy, dx in ((0, 1), (1, 0)):
        x0 = grown[: grown.shape[0] - dy, : grown.shape[1] - dx]
        x1 = grown[dy:, dx:]
        e = edge[: grown.shape[0] - dy, : grown.shape[1] - dx] | edge[dy:, dx:]
        d = (x0 != x1) & e & (x0 > 0) & (x1 > 0)
        if not d.any():
            continue
        a, b = np.minimum(x0[d], x1[d]), np.maximum(x0[d], x1[d])
        g = np.minimum(grey[: grown.shape[0] - dy, : grown.shape[1] - dx][d], grey[dy:, dx:][d])
        key = a.astype(np.int64) * (n + 1) + b
        order = np.argsort(key)
        key, g = key[order], g[order]
        first = np.r_[True, key[1:] != key[:-1]]
        for kk, gmin in zip(key[first], np.minimum.reduceat(g, np.nonzero(first)[0])):
            i, j = divmod(int(kk), n + 1)
            pairs[(i, j)] = min(pairs.get((i, j), 255.0), float(gmin))
    for (i, j), gmin in pairs.items():
        darker = min(mean[i].mean(), mean[j].mean())
        if gmin < LINE_DARKNESS * darker:  # ink on the boundary: a line
            continue
        if _shade_of(mean[i], mean[j]):
            parent[root(j)] = root(i)
    roots = np.array([root(i) for i in range(n + 1)])
    ids = np.zeros(n + 1, np.int32)  # joined pieces take one number; numbers stay 1..m
    kept = np.unique(roots[1:])
    ids[kept] = np.arange(1, len(kept) + 1)
    return ids[roots][interior]


def _background(labels: np.ndarray, n: int) -> int:
    """The largest region touching the frame border (0: none)."""
    edge = np.concatenate([labels[0], labels[-1], labels[:, 0], labels[:, -1]])
    on_border = np.bincount(edge, minlength=n + 1) > 0
    on_border[0] = False
    if not on_border.any():
        return 0
    area = np.bincount(labels.ravel(), minlength=n + 1)
    return int(np.argmax(np.where(on_border, area, -1)))


def describe(labels: np.ndarray, rgb: np.ndarray, interior: np.ndarray) -> Regions:
    shape = geometry(labels)
    n, flat, inner = shape.n, labels.ravel(), interior.ravel()
    ni = np.maximum(np.bincount(flat[inner], minlength=n + 1), 1)
    colour = np.stack([np.bincount(flat[inner], rgb[..., c].ravel()[inner].astype(np.float64), n + 1) / ni
                       for c in range(3)], 1)
    grey = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY).astype(np.float32) / 255.0
    return Regions(**vars(shape), labels=labels, colour=colour, bg=_background(labels, n), grey=grey)


# -- matching ---------------------------------------------------------------------------------

def _greedy(cost: np.ndarray) -> np.ndarray:
    """One-to-one assignment by increasing cost (rows -> column or -1); inf never assigned."""
    out = np.full(cost.shape[0], -1)
    taken = np.zeros(cost.shape[1], bool)
    order = np.argsort(cost, axis=None)
    for flat in order:
        r, c = divmod(int(flat), cost.shape[1])
        if not np.isfinite(cost[r, c]):
            break
        if out[r] < 0 and not taken[c]:
            out[r], taken[c] = c, True
    return out


def _best_injection(cost: np.ndarray) -> list[int]:
    """Columns for every row (rows <= columns) with the least total cost, by exhaustive search."""
    best, best_cost = None, np.inf
    for cols in permutations(range(cost.shape[1]), cost.shape[0]):
        c = cost[np.arange(cost.shape[0]), cols].sum()
        if c < best_cost:
            best, best_cost = list(cols), c
    return best if best is not None else [-1] * cost.shape[0]


def _assign(cost: np.ndarray, exhaustive: int = 6) -> np.ndarray:
    """One-to-one assignment (rows -> column or -1) of least total cost within each group of
    mutually possible pairs (same colour), exhaustive for small groups (two shoes, two eyes:
    the cheapest single pair first can force the wrong partner on the other), greedy else."""
    out = _greedy(cost)
    finite = np.isfinite(cost)
    seen_r = np.zeros(cost.shape[0], bool)
    for r0 in range(cost.shape[0]):
        if seen_r[r0] or not finite[r0].any():
            continue
        rows, cols = {r0}, set()
        grow = True
        while grow:  # connected component of the bipartite graph of finite costs
            new_c = set(np.nonzero(finite[sorted(rows)].any(0))[0]) - cols
            cols |= new_c
            new_r = set(np.nonzero(finite[:, sorted(cols)].any(1))[0]) - rows
            rows |= new_r
            grow = bool(new_c or new_r)
        seen_r[sorted(rows)] = True
        R, C = sorted(rows), sorted(cols)
        if len(R) == 1 or len(C) == 1 or min(len(R), len(C)) > exhaustive or max(len(R), len(C)) > exhaustive + 2:
            continue
        sub = np.where(finite[np.ix_(R, C)], cost[np.ix_(R, C)], 1e6)
        if len(R) <= len(C):
            pick = _best_injection(sub)
            for r, c in zip(R, pick):
                out[r] = C[c] if sub[R.index(r), c] < 1e6 else -1
        else:
            pick = _best_injection(sub.T)
            for r in R:
                out[r] = -1
            for c, r in zip(C, pick):
                if sub[r, C.index(c)] < 1e6:
                    out[R[r]] = c
    return out


def _cost(ra: Regions, rb: Regions, disp: np.ndarray, scale: float) -> np.ndarray:
    pred = ra.centroid + disp
    dpos = np.linalg.norm(pred[:, None] - rb.centroid[None], axis=2) / scale
    dcol = np.linalg.norm(ra.colour[:, None] - rb.colour[None], axis=2)
    darea = np.abs(np.log(np.maximum(ra.area, 1)[:, None] / np.maximum(rb.area, 1)[None]))
    cost = W_COLOUR * dcol / 255.0 + W_POS * dpos + W_AREA * darea
    cost[dcol > COLOUR_GATE] = np.inf
    cost[0, :] = cost[:, 0] = np.inf
    if ra.bg and rb.bg:  # the background only ever matches the background
        cost[ra.bg, :] = cost[:, rb.bg] = np.inf
        cost[ra.bg, rb.bg] = 0.0
    return cost


def _predict(ra: Regions, ab: np.ndarray, fits: dict, fallback: np.ndarray) -> np.ndarray:
    """Displacement of each region as its matched neighbours' motions predict it (their affine
    applied to its centroid, weighted by shared outline and size): not its own match, so a
    wrong match is corrected by the part it hangs from."""
    disp = np.broadcast_to(fallback, (ra.n + 1, 2)).copy()
    for i in range(1, ra.n + 1):
        if i == ra.bg:
            continue
        num, den = np.zeros(2), 0.0
        for k in np.nonzero(ra.adj[i] > 0)[0]:
            if k == i or k == ra.bg or ab[k] < 0 or (k, ab[k]) not in fits:
                continue
            w = ra.adj[i, k] * np.sqrt(ra.area[k])
            M = fits[(k, ab[k])]
            num += w * (M[:, :2] @ ra.centroid[i] + M[:, 2] - ra.centroid[i])
            den += w
        if den > 0:
            disp[i] = num / den
    return disp


def match_regions(ra: Regions, rb: Regions, shift: np.ndarray) -> tuple[np.ndarray, np.ndarray, dict]:
    """(a -> b, b -> a, fitted affines by pair): partner region or -1. One-to-one first, then
    leftover pieces (a region split by an occluder) join their best partner."""
    fg = [i for i in range(1, ra.n + 1) if i != ra.bg]
    scale = float(np.sqrt(max(ra.area[fg].sum(), 1.0))) if fg else 1.0
    shift = np.asarray(shift, np.float64)
    disp = np.broadcast_to(shift, (ra.n + 1, 2)).copy()
    fits: dict[tuple[int, int], np.ndarray] = {}
    for _ in range(MATCH_ROUNDS):
        cost = _cost(ra, rb, disp, scale)
        ab = _assign(cost)
        for i in fg:
            if ab[i] >= 0 and (i, ab[i]) not in fits:
                fits[(i, ab[i])] = fit_affine(ra, i, rb, ab[i])
        disp = _predict(ra, ab, fits, shift)
    ba = np.full(rb.n + 1, -1)
    ba[ab[ab >= 0]] = np.nonzero(ab >= 0)[0]
    # leftover pieces: nearest partner by the same cost, not exclusive (limited to a close fit)
    limit = W_COLOUR * 20 / 255 + W_POS * 0.25 + W_AREA * 3.0
    for j in np.nonzero(ba < 0)[0]:
        if j == 0:
            continue
        c = cost[:, j]
        i = int(np.argmin(c))
        if c[i] < limit:
            ba[j] = i
    for i in np.nonzero(ab < 0)[0]:
        if i == 0:
            continue
        c = cost[i]
        j = int(np.argmin(c))
        if c[j] < limit:
            ab[i] = j
    return ab, ba, fits


# -- per-region motion ------------------------------------------------------------------------

def _sqrtm(c: np.ndarray, inverse: bool = False) -> np.ndarray:
    vals, vecs = np.linalg.eigh(c)
    vals = np.maximum(vals, 1e-2)
    return (vecs * (vals ** (-0.5 if inverse else 0.5))) @ vecs.T


def _rot(theta: float) -> np.ndarray:
    c, s = np.cos(theta), np.sin(theta)
    return np.array([[c, -s], [s, c]])


def _angle(L: np.ndarray) -> float:
    """Rotation angle of the linear map L (its polar decomposition), radians in (-pi, pi]."""
    U, _, Vt = np.linalg.svd(L)
    R = U @ Vt
    return float(np.arctan2(R[1, 0], R[0, 0]))


def _crop(reg: Regions, i: int, pad: int) -> tuple[np.ndarray, int, int]:
    h, w = reg.labels.shape
    x0, y0, x1, y1 = reg.bbox[i].astype(int)
    x0, y0, x1, y1 = max(0, x0 - pad), max(0, y0 - pad), min(w, x1 + pad + 1), min(h, y1 + pad + 1)
    return (reg.labels[y0:y1, x0:x1] == i).astype(np.float32), x0, y0


def _iou(ma: np.ndarray, oa: tuple, mb: np.ndarray, ob: tuple, M: np.ndarray) -> float:
    """Overlap of mask a moved by M (full-frame 2x3) with mask b."""
    T = M.copy()
    T[:, 2] += M[:, :2] @ np.array(oa, np.float64) - np.array(ob, np.float64)
    moved = cv2.warpAffine(ma, T, (mb.shape[1], mb.shape[0]), flags=cv2.INTER_LINEAR)
    inter = float(np.minimum(moved, mb).sum())
    return inter / max(float(moved.sum()) + float(mb.sum()) - inter, 1.0)


def fit_affine(ra: Regions, i: int, rb: Regions, j: int) -> np.ndarray:
    """2x3 affine taking region i of key a onto region j of key b (full-frame pixels)."""
    ca, cb = ra.centroid[i], rb.centroid[j]
    size = float(np.sqrt(max(ra.area[i], rb.area[j])))
    pad = int(4 + 0.3 * size)
    ma, xa, ya = _crop(ra, i, pad)
    mb, xb, yb = _crop(rb, j, pad + int(0.5 * size))
    La, Lb = _sqrtm(ra.cov[i], inverse=True), _sqrtm(rb.cov[j])
    ang_a = 0.5 * np.arctan2(2 * ra.cov[i, 0, 1], ra.cov[i, 0, 0] - ra.cov[i, 1, 1])
    ang_b = 0.5 * np.arctan2(2 * rb.cov[j, 0, 1], rb.cov[j, 0, 0] - rb.cov[j, 1, 1])
    cands = []
    for theta in (ang_b - ang_a, ang_b - ang_a + np.pi, 0.0):
        for L in (Lb @ _rot(theta) @ La, _rot(theta)):  # moments (follows stretch) or rigid
            M = np.hstack([L, (cb - L @ ca)[:, None]])
            cands.append((_iou(ma, (xa, ya), mb, (xb, yb), M), abs(_angle(L)), M))
    # a symmetric shape fits as well turned half round: of the fits about as good as the best,
    # the one that turns least (an in-between must not spin a limb through 180 degrees)
    top = max(c[0] for c in cands)
    near = [c for c in cands if c[0] >= top - 0.03]
    errs = [_appearance_error(ra, i, rb, c[2]) for c in near]  # the inner lines may tell them apart
    near = [c for c, e in zip(near, errs) if e <= 1.1 * min(errs) + 0.002]
    best_iou, _, best = min(near, key=lambda c: c[1])
    # refine: ECC on the blurred masks (the blur widens the basin of convergence)
    sig = max(1.5, 0.05 * size)
    ta = cv2.GaussianBlur(ma, (0, 0), sig)
    tb = cv2.GaussianBlur(mb, (0, 0), sig)
    W = best.copy()
    W[:, 2] += W[:, :2] @ np.array([xa, ya], np.float64) - np.array([xb, yb], np.float64)
    try:
        _, W = cv2.findTransformECC(ta, tb, W.astype(np.float32), cv2.MOTION_AFFINE,
                                    (cv2.TERM_CRITERIA_EPS | cv2.TERM_CRITERIA_COUNT, 60, 1e-4), None, 1)
        M = W.astype(np.float64)
        M[:, 2] += np.array([xb, yb], np.float64) - M[:, :2] @ np.array([xa, ya], np.float64)
        if _iou(ma, (xa, ya), mb, (xb, yb), M) > best_iou and abs(np.linalg.det(M[:, :2])) > 0.2:
            best = M
    except cv2.error:
        pass
    return best


def _appearance_error(reg: Regions, i: int, other: Regions, M: np.ndarray) -> float:
    """Mean |difference| over region i and its outline between this key and the other key
    pulled back along M: how well M explains the region's drawing."""
    h, w = other.grey.shape
    r = max(1, round(2 * min(h, w) / 540.0))
    mask, x0, y0 = _crop(reg, i, r + 1)
    sel = cv2.dilate(mask, np.ones((2 * r + 1, 2 * r + 1), np.uint8)) > 0
    th, tw = mask.shape
    T = M.copy()
    T[:, 2] += M[:, :2] @ np.array([x0, y0], np.float64)  # crop coordinates -> other key
    back = cv2.warpAffine(other.grey, T, (tw, th), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                          borderMode=cv2.BORDER_REPLICATE)
    return float(np.abs(back - reg.grey[y0:y0 + th, x0:x0 + tw])[sel].mean())


def _verify(reg: Regions, other: Regions, motion: np.ndarray, shift: np.ndarray) -> None:
    """Check every region's motion against the drawing: a neighbour's motion or the global shift
    replaces it when it explains the region clearly better (a wrong match of a small region, a
    fit thrown off by a changed shape or an occluder)."""
    glob = np.array([[1.0, 0, shift[0]], [0, 1.0, shift[1]]])
    for i in range(1, reg.n + 1):
        if i == reg.bg:
            continue
        own = _appearance_error(reg, i, other, motion[i])
        cands = [motion[k] for k in np.nonzero(reg.adj[i] > 0)[0] if k not in (0, i, reg.bg)] + [glob]
        errs = [_appearance_error(reg, i, other, M) for M in cands]
        k = int(np.argmin(errs))
        if errs[k] < 0.7 * own:
            motion[i] = cands[k]


def _invert(M: np.ndarray) -> np.ndarray:
    return cv2.invertAffineTransform(M.astype(np.float64))


def interpolate(M: np.ndarray, centre: np.ndarray, t: float) -> np.ndarray:
    """The motion M taken a fraction t of the way: rotation angle and stretch interpolated
    separately (polar decomposition), the centre moving on a straight line."""
    L = M[:, :2]
    U, s, Vt = np.linalg.svd(L)
    R = U @ Vt
    if np.linalg.det(R) < 0:  # a reflection: no rotation to interpolate
        Lt = (1 - t) * np.eye(2) + t * L
    else:
        S = Vt.T @ np.diag(s) @ Vt
        theta = np.arctan2(R[1, 0], R[0, 0])
        Lt = _rot(t * theta) @ ((1 - t) * np.eye(2) + t * S)
    moved = centre + t * (L @ centre + M[:, 2] - centre)
    return np.hstack([Lt, (moved - Lt @ centre)[:, None]])


# -- depth ------------------------------------------------------------------------------------

def _moved_labels(reg: Regions, i: int, M: np.ndarray, other: np.ndarray) -> np.ndarray:
    """Labels of `other` under region i moved by M (full frame)."""
    h, w = other.shape
    mask, x0, y0 = _crop(reg, i, 2)
    corners = np.array([[x0, y0], [x0 + mask.shape[1], y0], [x0, y0 + mask.shape[0]],
                        [x0 + mask.shape[1], y0 + mask.shape[0]]], np.float64) @ M[:, :2].T + M[:, 2]
    bx0, by0 = np.floor(corners.min(0)).astype(int)
    bx1, by1 = np.ceil(corners.max(0)).astype(int)
    bx0, by0, bx1, by1 = max(0, bx0), max(0, by0), min(w, bx1 + 1), min(h, by1 + 1)
    if bx1 <= bx0 or by1 <= by0:
        return np.zeros(0, np.int32)
    T = M.copy()
    T[:, 2] += M[:, :2] @ np.array([x0, y0], np.float64) - np.array([bx0, by0], np.float64)
    cov = cv2.warpAffine(mask, T, (bx1 - bx0, by1 - by0), flags=cv2.INTER_LINEAR) > 0.5
    return other[by0:by1, bx0:bx1][cov]


def depth_order(ra: Regions, rb: Regions, ab: np.ndarray, ba: np.ndarray, Ma: np.ndarray,
                Mb: np.ndarray) -> np.ndarray:
    """Depth score per region of key a (higher = in front): region i moved onto key b lands
    partly on b-regions of other parts; each such pixel votes that part in front of i."""
    n = ra.n
    front = np.zeros((n + 1, n + 1))  # front[l, i]: pixels saying l covers i
    for i in range(1, n + 1):
        if ab[i] < 0 or i == ra.bg:
            continue
        under = _moved_labels(ra, i, Ma[i], rb.labels)
        l = ba[under]
        sel = (l > 0) & (l != i) & (l != ra.bg)
        np.add.at(front, (l[sel], np.full(int(sel.sum()), i)), 1.0)
    for j in range(1, rb.n + 1):
        i = ba[j]
        if i < 0 or j == rb.bg:
            continue
        l = _moved_labels(rb, j, Mb[j], ra.labels)
        sel = (l > 0) & (l != i) & (l != ra.bg)
        np.add.at(front, (l[sel], np.full(int(sel.sum()), i)), 1.0)
    net = front - front.T
    # a vote counts when it is a real overlap, not a sliver along a shared outline
    thresh = 0.02 * np.sqrt(np.outer(ra.area, ra.area)) + 10
    wins = (net > thresh).astype(np.float64)
    depth = wins.sum(1) - wins.sum(0)
    if ra.bg:
        depth[ra.bg] = -1e9
    return depth


# -- the pair ---------------------------------------------------------------------------------

@dataclass
class Side:
    reg: Regions
    motion: np.ndarray  # (n+1, 2, 3): each region onto the other key
    depth: np.ndarray   # (n+1,)
    partner: np.ndarray  # (n+1,) region of the other key, -1 none


@dataclass
class PairMotion:
    a: Side
    b: Side


def _borrow(reg: Regions, motion: np.ndarray, known: np.ndarray) -> None:
    """Regions without a motion take their largest known neighbour's (repeated, rings outwards)."""
    for _ in range(4):
        todo = [i for i in range(1, reg.n + 1) if not known[i] and i != reg.bg]
        if not todo:
            return
        for i in todo:
            nb = np.nonzero((reg.adj[i] > 0) & known)[0]
            nb = nb[nb != reg.bg]
            if len(nb):
                k = nb[np.argmax(reg.adj[i, nb] * np.sqrt(reg.area[nb]))]
                motion[i] = motion[k]
                known[i] = True


def _matched_motions(reg: Regions, match: np.ndarray, translation, fit) -> tuple[np.ndarray, np.ndarray]:
    """One affine per region of `reg` towards the other key: `fit(i, j)` for a region matched to
    j, the identity for the background, `translation` (the global shift) for the unmatched; and
    which regions got a fitted motion."""
    eye = np.array([[1.0, 0, 0], [0, 1.0, 0]])
    M = np.tile(eye, (reg.n + 1, 1, 1))
    M[:, :, 2] = translation
    known = np.zeros(reg.n + 1, bool)
    for i in range(1, reg.n + 1):
        j = match[i]
        if j < 0:
            continue
        M[i] = eye if i == reg.bg else fit(i, j)
        known[i] = True
    return M, known


def estimate(a: np.ndarray, b: np.ndarray, shift: np.ndarray) -> PairMotion:
    """Regions, matches, per-region motions and depth for premultiplied keys a, b (once per pair)."""
    ra, rb = segment_cel(a), segment_cel(b)
    ab, ba, fits = match_regions(ra, rb, shift)

    def fit_ab(i: int, j: int) -> np.ndarray:
        if (i, j) not in fits:
            fits[(i, j)] = fit_affine(ra, i, rb, j)
        return fits[(i, j)]

    def fit_ba(j: int, i: int) -> np.ndarray:  # the inverse of a->b's fit where there is one
        M = fits.get((i, j))
        return _invert(M) if M is not None else fit_affine(rb, j, ra, i)

    Ma, known_a = _matched_motions(ra, ab, shift, fit_ab)
    Mb, known_b = _matched_motions(rb, ba, -np.asarray(shift), fit_ba)
    _borrow(ra, Ma, known_a)
    _borrow(rb, Mb, known_b)
    _verify(ra, rb, Ma, shift)
    _verify(rb, ra, Mb, -np.asarray(shift, np.float64))
    da = depth_order(ra, rb, ab, ba, Ma, Mb)
    db = np.zeros(rb.n + 1)
    db[ba >= 0] = da[ba[ba >= 0]]
    if rb.bg:
        db[rb.bg] = -1e9
    return PairMotion(Side(ra, Ma, da, ab), Side(rb, Mb, db, ba))


def _redraw(side: Side, t: float) -> tuple[np.ndarray, np.ndarray]:
    """Backward flow (H, W, 2) from time t into this key, and the region seen at each pixel:
    every region moved a fraction t of its motion, drawn back to front."""
    reg = side.reg
    h, w = reg.labels.shape
    flow = np.zeros((h, w, 2), np.float32)
    seen = np.full((h, w), reg.bg, np.int32)
    gx, gy = np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32))
    kernel = np.ones((3, 3), np.uint8)
    for i in np.argsort(side.depth, kind="stable"):
        if i == 0 or i == reg.bg:
            continue
        A = interpolate(side.motion[i], reg.centroid[i], t)
        mask, x0, y0 = _crop(reg, i, 3)
        mask = cv2.dilate(mask, kernel)  # 1 px overlap: no cracks between neighbouring regions
        corners = np.array([[x0, y0], [x0 + mask.shape[1], y0], [x0, y0 + mask.shape[0]],
                            [x0 + mask.shape[1], y0 + mask.shape[0]]], np.float64) @ A[:, :2].T + A[:, 2]
        bx0, by0 = np.floor(corners.min(0)).astype(int)
        bx1, by1 = np.ceil(corners.max(0)).astype(int)
        bx0, by0, bx1, by1 = max(0, bx0), max(0, by0), min(w, bx1 + 1), min(h, by1 + 1)
        if bx1 <= bx0 or by1 <= by0:
            continue
        T = A.copy()
        T[:, 2] += A[:, :2] @ np.array([x0, y0], np.float64) - np.array([bx0, by0], np.float64)
        cov = cv2.warpAffine(mask, T, (bx1 - bx0, by1 - by0), flags=cv2.INTER_LINEAR) > 0.5
        inv = _invert(A)
        X, Y = gx[by0:by1, bx0:bx1][cov], gy[by0:by1, bx0:bx1][cov]
        sx = inv[0, 0] * X + inv[0, 1] * Y + inv[0, 2]
        sy = inv[1, 0] * X + inv[1, 1] * Y + inv[1, 2]
        flow[by0:by1, bx0:bx1][cov] = np.stack([sx - X, sy - Y], 1)
        seen[by0:by1, bx0:bx1][cov] = i
    return flow, seen


def _background_colour(p: np.ndarray, reg: Regions) -> np.ndarray:
    """Premultiplied RGBA of the background (paper or transparency): its median."""
    if not reg.bg:
        return np.zeros(4, np.float32)
    sel = reg.labels == reg.bg
    return np.median(p[sel][:: max(1, int(sel.sum()) // 20000)], axis=0).astype(np.float32)


def prealign(a: np.ndarray, b: np.ndarray, pm: PairMotion, t: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(a at t, b at t, their fusion): both keys re-drawn at time t; where they disagree on the
    visible region, the one in front is used in both. Background a key only shows behind where
    its own drawing was (uncovered at t) is a hole: taken from the other key, or, uncovered in
    both, painted the background colour."""
    fa, sa = _redraw(pm.a, t)
    fb, sb = _redraw(pm.b, 1.0 - t)
    pa, pb = classical.backward_warp(a, fa), classical.backward_warp(b, fb)
    bg = _background_colour(a, pm.a.reg)
    # background seen through where the key itself shows some drawing (even a faint fringe)
    hole_a = (sa == pm.a.reg.bg) & (np.abs(a - bg).max(axis=2) > 0.02)
    hole_b = (sb == pm.b.reg.bg) & (np.abs(b - bg).max(axis=2) > 0.02)
    za = np.where(hole_a, -2e9, pm.a.depth[sa])
    zb = np.where(hole_b, -2e9, pm.b.depth[sb])
    same = (pm.a.partner[sa] == sb) & ~hole_a & ~hole_b
    take_a = (~same & (za > zb))[..., None]
    take_b = (~same & (zb > za))[..., None]
    both = (hole_a & hole_b)[..., None]
    pa2 = np.where(both, bg, np.where(take_b, pb, pa))
    pb2 = np.where(both, bg, np.where(take_a, pa, pb))
    fused = (1.0 - t) * pa2 + t * pb2
    return pa2, pb2, fused


# -- fusing the candidates --------------------------------------------------------------------

#: per-pixel tolerance (premultiplied RGBA, max over channels) within which a candidate counts
#: as agreeing with the others' median (0.05, 0.1, 0.2, 0.3 and 0.6 measured: 0.6 the best)
CONSENSUS_SIGMA = 0.6


def consensus(cands: list[np.ndarray], sigma: float = CONSENSUS_SIGMA) -> np.ndarray:
    """Per-pixel robust mean of candidate frames: each candidate weighted by how close it is to
    the candidates' median there. Where they agree this is their (sharp) common answer; where one
    is off (a wrong match, a broken flow) it drops out; where all disagree (motion the keys leave
    ambiguous) it is their mean, the least-squares answer to an ambiguity."""
    S = np.stack(cands)
    med = np.median(S, axis=0)
    w = np.exp(-(np.abs(S - med).max(axis=-1, keepdims=True) / sigma) ** 2) + 1e-3
    return (S * w).sum(0) / w.sum(0)
