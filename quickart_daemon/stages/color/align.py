"""Aligning a region with its match in a reference (issue 14): the shift that lays the reference
region's shape best onto the region's (`mask_shift`: the largest overlap of the two masks and of
their outlines, by cross-correlation; a part that holds still while another moves over it keeps
shift 0 exactly, where the offset of the centroids would move with whatever hides it), the turn
of a part whose inertia ellipse turned (`turns`, `best_turn`), and how well a region's outline
lies on the reference's lines at a shift (`outline_fit`, `outline_fits`, `border_fit`)."""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np


#: the masks are correlated at a resolution where a region is at most this many pixels across
#: (the shift is then known to within half a step: shading varies slowly)
ALIGN_SIZE = 160
#: cost of a region's shift per region size (sqrt of its area), against its overlap score (at
#: most 2: outlines and areas): moving by a whole region size costs an eighth of a perfect fit
STILL_BIAS = 0.25
#: fewest pixels from which a shape's inertia ellipse says anything (a 3 x 3 square)
MOMENT_MIN_PX = 9
#: a shape has a direction (its turn can be read from its inertia ellipse) when its major axis is
#: at least this many times its minor: clearly longer than wide
ELONGATED = 1.5


def outline_lines(prep) -> np.ndarray:
    """The lines of a drawing where an outline can lie: its strokes and the edges of its solid black
    areas (line pixels within a line's width + 1 px of paper, as for a region's lines in
    `border_fit`), not their inside. A part drawn solid black (a mailbox's dark opening) is line
    everywhere: an envelope that moved in front of it had its outline "on the reference's lines"
    with no shift, and was taken for a part that held still (and painted flat)."""
    line = ~prep.seg.free
    reach = prep.art.line_width + 1
    return line & (cv2.distanceTransform(line.astype(np.uint8), cv2.DIST_L2, 3) <= reach)


def crop_region(mask_img: np.ndarray, label: int, bbox) -> tuple[np.ndarray, np.ndarray]:
    x0, y0, x1, y1 = (int(v) for v in bbox)
    return (mask_img[y0:y1 + 1, x0:x1 + 1] == label).astype(np.float32), np.array([x0, y0], float)


def _outline(mask: np.ndarray) -> np.ndarray:
    """A band about 3 px wide along the inside of a mask's border (the middle of its lines)."""
    k = np.ones((3, 3), np.uint8)
    m = np.pad(mask, 1)  # the crop's edge is the mask's edge
    band = m - cv2.erode(m, k)
    return cv2.dilate(band, k)[1:-1, 1:-1]


def mask_shift(t_mask: np.ndarray, t_org: np.ndarray, r_mask: np.ndarray, r_org: np.ndarray,
               prior: np.ndarray) -> np.ndarray:
    """The offset (x, y) to add to a target pixel to reach its place in the reference: the one
    under which the two masks and their outlines overlap most (ties: the one nearest `prior`).
    The outlines decide where the areas cannot: a part half hidden in one frame fits inside the
    other at many shifts, but its visible outline lies on the other's at one; the areas decide
    where the outlines change (a part that turns a little)."""
    size = max(float(np.sqrt(t_mask.sum())), 1.0)
    s = max(1, int(np.ceil(max(*t_mask.shape, *r_mask.shape) / ALIGN_SIZE)))
    if s > 1:
        t_mask = cv2.resize(t_mask, (max(1, t_mask.shape[1] // s), max(1, t_mask.shape[0] // s)),
                            interpolation=cv2.INTER_AREA)
        r_mask = cv2.resize(r_mask, (max(1, r_mask.shape[1] // s), max(1, r_mask.shape[0] // s)),
                            interpolation=cv2.INTER_AREA)
    ht, wt = t_mask.shape
    hr, wr = r_mask.shape
    H, W = ht + hr, wt + wr

    def xcorr(a, b):
        c = np.fft.irfft2(np.conj(np.fft.rfft2(a, (H, W))) * np.fft.rfft2(b, (H, W)), (H, W))
        return c / max(float(c.max()), 1e-9)
    corr = xcorr(_outline(t_mask), _outline(r_mask)) + xcorr(t_mask, r_mask)
    # corr[k] = sum_p t[p] r[p + k], k wrapped: rows -(ht-1)..hr-1
    ky = np.arange(H)
    ky = np.where(ky >= hr, ky - H, ky)
    kx = np.arange(W)
    kx = np.where(kx >= wr, kx - W, kx)
    off_y = r_org[1] + ky * s - t_org[1]
    off_x = r_org[0] + kx * s - t_org[0]
    # most of a drawing holds still between nearby frames: a shift costs STILL_BIAS per region
    # size, so a part whose shape changed (another part now cuts it elsewhere) is not sent far
    # off to where its new outline happens to fit
    moved = np.hypot(off_x[None, :], off_y[:, None]) / size
    near = np.hypot(off_x[None, :] - prior[0], off_y[:, None] - prior[1])
    score = corr - STILL_BIAS * moved - 1e-6 * near  # ties go to the shift nearest the prior
    iy, ix = np.unravel_index(int(np.argmax(score)), score.shape)
    return np.array([off_x[ix], off_y[iy]])


def _moved_outline(lab: np.ndarray, free: np.ndarray, t: int, bbox, pose) -> tuple[np.ndarray, np.ndarray]:
    """(rows, columns) of region t's outline (the line pixels it takes) moved by `pose`: a shift
    (x, y), or a (2, 3) affine map from the target's place to the reference's (a turn, `best_turn`)."""
    x0, y0, x1, y1 = (int(v) for v in bbox)
    ys, xs = np.nonzero((lab[y0:y1 + 1, x0:x1 + 1] == t) & ~free[y0:y1 + 1, x0:x1 + 1])
    ys, xs = ys + y0, xs + x0
    if np.shape(pose) == (2, 3):
        q = np.rint(np.asarray(pose) @ np.stack([xs, ys, np.ones(len(xs))])).astype(int)
        return q[1], q[0]
    return ys + int(round(pose[1])), xs + int(round(pose[0]))


def _share_on_lines(sy: np.ndarray, sx: np.ndarray, r_line: np.ndarray) -> float:
    """Share of the outline pixels (rows `sy`, columns `sx`) that land on the reference's lines."""
    if len(sy) == 0:
        return 0.0
    ok = (sy >= 0) & (sy < r_line.shape[0]) & (sx >= 0) & (sx < r_line.shape[1])
    return float(r_line[sy[ok], sx[ok]].sum()) / len(sy)


def outline_fit(lab: np.ndarray, free: np.ndarray, t: int, bbox, r_line: np.ndarray, off) -> float:
    """Share of region t's outline (the line pixels it takes) that lands on the reference's lines
    when moved by `off` (a shift, or a turn: `_moved_outline`). Lines are exact where areas are not: a part that another part hid in the
    reference (or hides now) overlaps its reference region at the wrong shift, but its outline
    lies on the reference's outline only at the right one."""
    return _share_on_lines(*_moved_outline(lab, free, t, bbox, off), r_line)


def region_shift(lab: np.ndarray, regs, t: int, rlab: np.ndarray, rregs, r: int):
    """(shift, (mask, origin) of region t, (mask, origin) of reference region r): the two regions
    cropped to their boxes and the shift that lays r best on t (`mask_shift`, from the offset of
    their centroids)."""
    tm, to = crop_region(lab, t, regs.bbox[t])
    rm, ro = crop_region(rlab, r, rregs.bbox[r])
    return mask_shift(tm, to, rm, ro, rregs.centroid[r] - regs.centroid[t]), (tm, to), (rm, ro)


def outline_fits(lab: np.ndarray, free: np.ndarray, t: int, bbox, r_line: np.ndarray, off) -> tuple[float, float]:
    """`outline_fit` of region t at no shift and at `off` (its match's shift): an outline that lies
    on the reference's lines better where it lay than where its shape went says the part held
    still, whatever hides it now or hid it then."""
    return (outline_fit(lab, free, t, bbox, r_line, np.zeros(2)),
            outline_fit(lab, free, t, bbox, r_line, off))


def border_fit(lab: np.ndarray, free: np.ndarray, t: int, bbox, r_line: np.ndarray, rlab: np.ndarray,
               rset, off, reach: int) -> float:
    """Share of region t's outline (the line pixels it takes) that lands, moved by `off` (a shift or
    a turn), on the reference's lines within `reach` pixels of the reference regions `rset`: `outline_fit` with the
    lines of those regions only, so that a region whose outline lies on other lines by chance (the
    inside of a box whose rim is also an envelope's edge) is not taken for them."""
    sy, sx = _moved_outline(lab, free, t, bbox, off)
    if len(sy) == 0:
        return 0.0
    h, w = r_line.shape
    cy0, cy1 = max(0, int(sy.min()) - reach), min(h, int(sy.max()) + reach + 1)
    cx0, cx1 = max(0, int(sx.min()) - reach), min(w, int(sx.max()) + reach + 1)
    if cy1 <= cy0 or cx1 <= cx0:
        return 0.0
    near = cv2.dilate(np.isin(rlab[cy0:cy1, cx0:cx1], rset).astype(np.uint8),
                      np.ones((2 * reach + 1, 2 * reach + 1), np.uint8)).astype(bool) & r_line[cy0:cy1, cx0:cx1]
    ok = (sy >= cy0) & (sy < cy1) & (sx >= cx0) & (sx < cx1)
    return float(near[sy[ok] - cy0, sx[ok] - cx0].sum()) / len(sy)


def _moment_frame(mask: np.ndarray, org: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
    """(centre, axes) of a mask's inertia ellipse: axes (2, 2) has the major and the minor axis
    as rows, each scaled by its standard deviation; None where the shape has no direction (a
    round shape: the major axis is less than ELONGATED times the minor)."""
    ys, xs = np.nonzero(mask)
    if len(xs) < MOMENT_MIN_PX:
        return None
    pts = np.stack([xs, ys], 1).astype(np.float64)
    centre = pts.mean(0)
    w, v = np.linalg.eigh(np.cov((pts - centre).T) + 1e-9 * np.eye(2))
    if w[1] < ELONGATED ** 2 * max(w[0], 1e-9):
        return None
    return centre + org, (v[:, ::-1] * np.sqrt(np.maximum(w[::-1], 1e-9))).T


def turns(t_mask: np.ndarray, t_org: np.ndarray, r_mask: np.ndarray, r_org: np.ndarray) -> list[np.ndarray]:
    """Affine maps (2, 3) from the target's place to the reference's that lay the inertia ellipse
    of the target's shape onto the reference's (a part that turned, squashed or stretched), one
    per sign of the major axis (the ellipse does not tell the ends apart; no mirror images).
    Empty where either shape has no direction."""
    ft, fr = _moment_frame(t_mask, t_org), _moment_frame(r_mask, r_org)
    if ft is None or fr is None:
        return []
    (ct, at), (cr, ar) = ft, fr
    out = []
    for flip in (1.0, -1.0):
        # target axes -> reference axes, keeping the handedness (the minor axis follows)
        b = ar * flip
        if np.linalg.det(at) * np.linalg.det(b) < 0:
            b = b * np.array([[1.0], [-1.0]])
        lin = b.T @ np.linalg.inv(at.T)
        out.append(np.hstack([lin, (cr - lin @ ct)[:, None]]))
    return out


def map_fit(t_mask: np.ndarray, t_org: np.ndarray, r_mask: np.ndarray, r_org: np.ndarray, affine: np.ndarray) -> float:
    """Intersection over union of the target's shape mapped by `affine` (2, 3) and the reference's."""
    ys, xs = np.nonzero(t_mask)
    if len(xs) == 0:
        return 0.0
    q = affine @ np.stack([xs + t_org[0], ys + t_org[1], np.ones(len(xs))])
    qx = np.rint(q[0] - r_org[0]).astype(int)
    qy = np.rint(q[1] - r_org[1]).astype(int)
    ok = (qx >= 0) & (qy >= 0) & (qx < r_mask.shape[1]) & (qy < r_mask.shape[0])
    # distinct reference pixels hit: a map that shrinks the shape onto a corner is no fit
    hit = len(np.unique(qy[ok][r_mask[qy[ok], qx[ok]] > 0] * r_mask.shape[1] + qx[ok][r_mask[qy[ok], qx[ok]] > 0]))
    return hit / max(float(len(xs) + r_mask.sum() - hit), 1.0)


def best_turn(t_crop, r_crop, off) -> np.ndarray | None:
    """The map of `turns` ((2, 3) affine) under which the target's shape (`t_crop`: mask, origin)
    fits the reference region's (`r_crop`) better (`map_fit`) than under the shift `off`; None
    where none does (the part moved without turning, or its shape has no direction)."""
    shift = np.array([[1.0, 0.0, off[0]], [0.0, 1.0, off[1]]])
    best, best_fit = None, map_fit(*t_crop, *r_crop, shift)
    for a in turns(*t_crop, *r_crop):
        f = map_fit(*t_crop, *r_crop, a)
        if f > best_fit:
            best, best_fit = a, f
    return best


#: `congruence` lays this many of the target shape's pixels (evenly spaced) on the other shape
CONGRUENCE_SAMPLES = 1500


@dataclass(frozen=True)
class Shape:
    """A region's mask as `congruence` compares it, measured once."""
    mask: np.ndarray           # uint8
    area: int
    centre: np.ndarray         # (x, y) in the mask's crop
    axis: float | None         # angle of the major axis, None for a round shape
    sample: np.ndarray         # (2, k) evenly spaced pixels (x, y): at most about CONGRUENCE_SAMPLES


def shape_of(mask: np.ndarray) -> Shape:
    """A region's mask (any non-zero pixel) measured for `congruence`."""
    m = (mask > 0).astype(np.uint8)
    ys, xs = np.nonzero(m)
    if len(xs) == 0:
        return Shape(m, 0, np.zeros(2), None, np.zeros((2, 0)))
    frame = _moment_frame(m, np.zeros(2))
    axis = None if frame is None else float(np.arctan2(frame[1][0, 1], frame[1][0, 0]))
    step = max(1, len(xs) // CONGRUENCE_SAMPLES)
    return Shape(m, len(xs), np.array([xs.mean(), ys.mean()]), axis,
                 np.stack([xs[::step], ys[::step]]).astype(np.float64))


def region_shape(lab: np.ndarray, label: int, bbox) -> Shape:
    """Region `label` of a label map (its box `bbox`) measured for `congruence`."""
    return shape_of(crop_region(lab, label, bbox)[0])


def congruence(t: Shape, r: Shape) -> float:
    """How much two shapes are one shape whatever their place and turn: the intersection over union of
    the two masks laid on each other by a rigid motion (centroids together, major axes together
    either way round; a round shape: centroids only). No scaling: a sliver is not an arm. A rigid
    motion keeps areas, so the intersection is the share of the target's pixels (a spaced sample)
    that land inside the other shape."""
    if t.area == 0 or r.area == 0:
        return 0.0
    angles = [0.0]
    if t.axis is not None and r.axis is not None:  # both have a direction: major axes together
        angles = [r.axis - t.axis, r.axis - t.axis + np.pi]
    best = 0.0
    for a in angles:
        rot = np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]])
        q = np.rint(rot @ (t.sample - t.centre[:, None]) + r.centre[:, None]).astype(int)
        ok = (q[0] >= 0) & (q[1] >= 0) & (q[0] < r.mask.shape[1]) & (q[1] < r.mask.shape[0])
        hit = t.area * float(r.mask[q[1, ok], q[0, ok]].sum()) / t.sample.shape[1]
        best = max(best, min(1.0, hit / (t.area + r.area - hit)))
    return best
