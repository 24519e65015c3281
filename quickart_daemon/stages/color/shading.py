"""Carrying a shaded reference's pixels into the matched regions of a drawing (issue 14).

Real cels are shaded: gradients, soft shadows, highlights, and colour areas drawn without lines
(a target's rings, a box's stripes) inside a part. A region that took its colour from a reference
region copies that region's pixels, moved by the region's own motion:

- the motion is the shift that lays the reference region's shape best onto the region's shape
  (the largest overlap of the two masks, by cross-correlation): a part that holds still while
  another part moves over it keeps shift 0 exactly, where the offset of the centroids would
  move with whatever hides it; a part that turned (its shape's inertia ellipse turned, and the
  turned shape fits the reference's better than the shifted one) carries its shading turned;
- a pixel whose moved place lies in another piece of the reference that is painted in the same
  colours (the part was cut in two by an occluder there) copies that piece;
- pixels whose moved place is on the reference's lines take the nearest carried pixel of the
  same region: a gradient continues instead of breaking into the flat base colour;
- pixels whose moved place is off the reference region (the part came out from behind another,
  or grew) take the nearest carried pixel of the same region at the same depth in it (distance
  from its outline: shading follows a part's shape), not the nearest one, which cuts wedges of
  the neighbouring rings or bands into what was hidden (`fill_hidden`);
- a carried pixel beside a part that has gone (a reference line, moved with the region, with no
  line of the drawing near it) whose tone differs from what the rest of its region gives there
  (`drop_ghosts`: the nearest carried pixel and the nearest at the same depth agree on another
  tone) was the shadow or light of that part: it takes the region's tone;
- a region the reference paints flat stays its exact base colour (flat cels are painted as
  before, with no noise copied in).

Lines take the colour the reference gives the same stretch of line (coloured outlines). What held
still (no line moved nearby) is the reference pixel for pixel (`hold_still`). The background
comes from the reference too (`paint_scenery`): in place where its lines held still, shifted with
them where they moved, never as the ghost of a part that has gone.
"""

from __future__ import annotations

import cv2
import numpy as np

from ..labels import fill_from_nearest
from .regions import PAINTED_ALPHA

#: a reference pixel within this RGB distance of its region's base colour is the flat paint
#: (compression and anti-aliasing noise), and a region with less than SHADED_SHARE of its pixels
#: off its base colour is painted flat
FLAT_LEVEL = 12.0
SHADED_SHARE = 0.1
#: the masks are correlated at a resolution where a region is at most this many pixels across
#: (the shift is then known to within half a step: shading varies slowly)
ALIGN_SIZE = 160
#: share of a region's paint from which a coarse colour counts as one of its colours
PIECE_SHARE = 0.01
#: RGB distance between neighbouring pixels of one region above which the tone changes sharply
#: (a gradient changes by a few levels a pixel, a shadow's or a stripe's edge by tens)
TONE_EDGE = 2 * FLAT_LEVEL
#: how far (share of the frame's height) from a sharp change of tone a carried pixel is unsure
TONE_EDGE_BAND = 0.004
#: width (pixels) of a line's anti-aliased fringe in the reference's background
SCENERY_FRINGE_PX = 3.0
#: how near (share of the frame's height) a difference between the drawing's and the reference's
#: lines makes the background there "moved"
MOVED_NEAR = 0.02
#: half-width (share of the frame's height) of the window in which the lines decide which motion a
#: piece of scenery took (a few lines of text: enough lines to tell the motions apart)
SCENERY_WINDOW = 0.05
#: motions of the scenery tried beside holding still, and the least correlation (share of the best)
#: that makes a shift a candidate
SCENERY_MOTIONS = 3
PEAK_SHARE = 0.3
#: cost of a region's shift per region size (sqrt of its area), against its overlap score (at
#: most 2: outlines and areas): moving by a whole region size costs an eighth of a perfect fit
STILL_BIAS = 0.25
#: line coverage above which a reference pixel is the line itself (its colour is the line's colour)
LINE_CORE = 0.5
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


def _moved_outline(lab: np.ndarray, free: np.ndarray, t: int, bbox, off) -> tuple[np.ndarray, np.ndarray]:
    """(rows, columns) of region t's outline (the line pixels it takes) moved by `off` (x, y)."""
    x0, y0, x1, y1 = (int(v) for v in bbox)
    ys, xs = np.nonzero((lab[y0:y1 + 1, x0:x1 + 1] == t) & ~free[y0:y1 + 1, x0:x1 + 1])
    return ys + y0 + int(round(off[1])), xs + x0 + int(round(off[0]))


def outline_fit(lab: np.ndarray, free: np.ndarray, t: int, bbox, r_line: np.ndarray, off) -> float:
    """Share of region t's outline (the line pixels it takes) that lands on the reference's lines
    when moved by `off`. Lines are exact where areas are not: a part that another part hid in the
    reference (or hides now) overlaps its reference region at the wrong shift, but its outline
    lies on the reference's outline only at the right one."""
    sy, sx = _moved_outline(lab, free, t, bbox, off)
    if len(sy) == 0:
        return 0.0
    ok = (sy >= 0) & (sy < r_line.shape[0]) & (sx >= 0) & (sx < r_line.shape[1])
    return float(r_line[sy[ok], sx[ok]].sum()) / len(sy)


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
    """Share of region t's outline (the line pixels it takes) that lands, moved by `off`, on the
    reference's lines within `reach` pixels of the reference regions `rset`: `outline_fit` with the
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
    if len(xs) < 9:
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


def away_from_lines(prep) -> np.ndarray:
    """The pixels of a drawing off its lines and not touching them (the pixel right beside a line
    is mostly its anti-aliasing: ink mixed into the paint): where a cel's paint is read."""
    cross = cv2.getStructuringElement(cv2.MORPH_CROSS, (3, 3))
    return ~cv2.dilate((~prep.seg.free).astype(np.uint8), cross).astype(bool)


def shaded_regions(ref_labels: np.ndarray, away: np.ndarray, image: np.ndarray, base_rgb: np.ndarray) -> np.ndarray:
    """Per reference region: does the reference paint it with shading (enough of its pixels off
    its base colour), rather than flat?"""
    n = len(base_rgb)
    idx = np.flatnonzero(away & (image[..., 3] >= PAINTED_ALPHA))
    lab = ref_labels.ravel()[idx]
    px = image.reshape(-1, image.shape[-1])[idx]
    d2 = np.zeros(len(idx), np.float32)  # squared RGB distance, channel by channel
    for c in range(3):
        d = px[:, c].astype(np.float32) - base_rgb[lab, c]
        d2 += d * d
    off = np.bincount(lab, d2 > FLAT_LEVEL ** 2, n)
    return off >= SHADED_SHARE * np.maximum(np.bincount(lab, minlength=n), 1)


def _coarse(rgb: np.ndarray) -> np.ndarray:
    """Colour code on a coarse grid (16 levels a channel)."""
    q = rgb.astype(np.int64) >> 4
    return (q[..., 0] << 8) | (q[..., 1] << 4) | q[..., 2]


def same_paint(image: np.ndarray, rlab: np.ndarray, away: np.ndarray, region: np.ndarray,
               sy: np.ndarray, sx: np.ndarray) -> np.ndarray:
    """For the reference pixels at (sy, sx): is each a colour that the reference region `region`
    (per pixel) itself uses (on the coarse grid, a neighbouring cell counting: a gradient
    continues)? A colour counts when it makes up at least PIECE_SHARE of the region's paint."""
    n = int(rlab.max()) + 1
    asked = np.zeros(n, bool)
    asked[region] = True
    sel = np.flatnonzero(away & asked[rlab])  # the paint of the regions asked about
    lab = rlab.ravel()[sel]
    code = _coarse(image.reshape(-1, image.shape[-1])[sel, :3])
    keys, cnt = np.unique(lab.astype(np.int64) * 4096 + code, return_counts=True)
    total = np.bincount(lab, minlength=n)
    present = keys[cnt >= PIECE_SHARE * total[keys // 4096]]
    q = image[sy, sx, :3].astype(np.int64) >> 4
    reg = region.astype(np.int64) * 4096
    hit = np.zeros(len(q), bool)
    for d in np.array(np.meshgrid([-1, 0, 1], [-1, 0, 1], [-1, 0, 1])).reshape(3, -1).T:
        c = np.clip(q + d, 0, 15)
        hit |= np.isin(reg + ((c[:, 0] << 8) | (c[:, 1] << 4) | c[:, 2]), present)
    return hit


def modal_colours(lab: np.ndarray, rgb: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """The colour of each label (0..n) among pixels with labels `lab` and colours `rgb` (k, 3): the
    most frequent coarse colour (16 levels a channel: a gradient's neighbouring steps fall together,
    a highlight or a shadow is another colour), its value there the per-channel median (two paints
    are never mixed). Returns (colours (n+1, 3) int64, pixel counts (n+1,); 0: no colour)."""
    lab = lab.astype(np.int64)
    med = np.zeros((n + 1, 3), np.int64)
    if lab.size == 0:
        return med, np.zeros(n + 1, np.int64)
    coarse = _coarse(rgb)
    pair = lab * 4096 + coarse
    modal = np.full(n + 1, -1, np.int64)
    if (n + 1) * 4096 <= min(max(4 * lab.size, 1 << 22), 1 << 23):
        # a count per (label, coarse colour): the most frequent, the lowest code on a tie
        hist = np.bincount(pair, minlength=(n + 1) * 4096).reshape(n + 1, 4096)
        has = hist.any(1)
        modal[has] = hist[has].argmax(1)
    else:
        u, cnt = np.unique(pair, return_counts=True)
        order = np.lexsort((-cnt, u // 4096))
        first = np.r_[True, (u // 4096)[order][1:] != (u // 4096)[order][:-1]]
        modal[u[order][first] // 4096] = u[order][first] % 4096
    pick = coarse == modal[lab]
    lk = lab[pick]
    counts = np.bincount(lk, minlength=n + 1)
    if (n + 1) * 256 <= max(4 * lk.size, 1 << 20):
        # its value there: the median, the (counts // 2)-th smallest, from a histogram per label
        for ch in range(3):
            cum = np.bincount(lk * 256 + rgb[pick, ch], minlength=(n + 1) * 256).reshape(n + 1, 256).cumsum(1)
            med[:, ch] = (cum <= (counts // 2)[:, None]).sum(1)
        med[counts == 0] = 0
        return med, counts
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    for ch in range(3):  # its value there: the median (sort by label, then value)
        v = rgb[pick, ch].astype(np.int64)
        order = np.lexsort((v, lk))
        med[:, ch] = v[order][np.minimum(starts + counts // 2, lk.size - 1)]
    return med, counts


def rim_colours(prep, image: np.ndarray) -> np.ndarray:
    """Per region of a reference (`prep`, its cel `image`), the colour the cel gives its outline
    (`modal_colours` of the line pixels it takes, on the line's core), (n+1, 3) int16, -1 for a
    region with no line painted. Coloured lines are a property of the part (an orange rim round a
    yellow duck, a dark teal one round a teal dart): a stroke whose own stretch of line is not found
    in the reference (the part moved, turned or grew) still has its part's line colour; on a
    black-ink cel this is black."""
    rlab = prep.seg.labels
    n = int(rlab.max())
    core = (prep.art.coverage >= LINE_CORE) & ~prep.seg.free & (image[..., 3] >= PAINTED_ALPHA)
    med, counts = modal_colours(rlab[core], image[..., :3][core], n)
    return np.where(counts[:, None] > 0, med, -1).astype(np.int16)


def fill_hidden(fill: np.ndarray, known: np.ndarray, want: np.ndarray, lab: np.ndarray, bbox: np.ndarray,
                nearest: bool = True) -> np.ndarray:
    """Pixels in `want` (their region's shading is unknown there: another part hid it in the
    reference, or the part grew or turned) continue the `known` fill of their own region (in
    place): the nearest known pixel at the same depth in the region (its distance from the
    region's outline, to the pixel), or, where no known pixel has that depth, the nearest one.
    Shading and colour areas without lines follow a part's shape (rings round a board's centre,
    a shadow or a rim light along its edge): a hidden stretch of a ring continues that ring,
    where the nearest visible pixel would cut wedges of the rings beside it into it. A pixel
    whose nearest known pixel lies in another region is too far from its own region's shading
    to continue it: it keeps the region's base colour. Without `nearest`, only the depth fill
    (no fallback). Returns where it filled by depth."""
    by_depth = np.zeros_like(want)
    if nearest:
        want = fill_from_nearest(fill, known, want, lab)
    for t in np.unique(lab[want]):
        x0, y0, x1, y1 = (int(v) for v in bbox[t])
        inside = lab[y0:y1 + 1, x0:x1 + 1] == t
        k = known[y0:y1 + 1, x0:x1 + 1] & inside
        w = want[y0:y1 + 1, x0:x1 + 1] & inside
        depth = np.rint(cv2.distanceTransform(np.pad(inside, 1).astype(np.uint8), cv2.DIST_L2,
                                              cv2.DIST_MASK_PRECISE)[1:-1, 1:-1]).astype(int)
        ky, kx = np.nonzero(k)
        wy, wx = np.nonzero(w)
        kd, wd = depth[ky, kx], depth[wy, wx]
        ko, wo = np.argsort(kd, kind="stable"), np.argsort(wd, kind="stable")
        kd, wd = kd[ko], wd[wo]
        f = fill[y0:y1 + 1, x0:x1 + 1]  # a view: filled in place
        got = by_depth[y0:y1 + 1, x0:x1 + 1]
        for level in np.unique(wd):
            ks = ko[np.searchsorted(kd, level):np.searchsorted(kd, level, "right")]
            if len(ks) == 0:
                continue
            ws = wo[np.searchsorted(wd, level):np.searchsorted(wd, level, "right")]
            step = max(1, 1_000_000 // len(ks))  # a level's ring is thin: compare its pixels directly
            for i in range(0, len(ws), step):
                c = ws[i:i + step]
                d2 = (wy[c, None] - ky[None, ks]) ** 2 + (wx[c, None] - kx[None, ks]) ** 2
                src = ks[np.argmin(d2, axis=1)]
                f[wy[c], wx[c]] = f[ky[src], kx[src]]
                got[wy[c], wx[c]] = True
    return by_depth


def beside_gone(lab: np.ndarray, free: np.ndarray, bbox: np.ndarray, regions, off: np.ndarray,
                r_line: np.ndarray) -> np.ndarray:
    """Pixels of `regions` near (MOVED_NEAR of the frame's height) a reference line that, moved
    with the region (`off`), has no line of the drawing near it: a part that lay there in the
    reference has gone, and what the reference paints beside it (the shadow it cast, its
    reflected light) may be its own, not the region's."""
    h, w = lab.shape
    reach = max(3, int(round(MOVED_NEAR * h)))
    k = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * reach + 1, 2 * reach + 1))
    near_line = cv2.dilate((~free).astype(np.uint8), k).astype(bool)
    out = np.zeros((h, w), bool)
    for t in regions:
        x0, y0, x1, y1 = (int(v) for v in bbox[t])
        x0, y0, x1, y1 = max(0, x0 - reach), max(0, y0 - reach), min(w, x1 + reach + 1), min(h, y1 + reach + 1)
        dx, dy = int(round(off[t, 0])), int(round(off[t, 1]))
        moved_line = np.zeros((y1 - y0, x1 - x0), bool)
        ry0, ry1 = max(y0 + dy, 0), min(y1 + dy, r_line.shape[0])
        rx0, rx1 = max(x0 + dx, 0), min(x1 + dx, r_line.shape[1])
        if ry1 <= ry0 or rx1 <= rx0:
            continue
        moved_line[ry0 - y0 - dy:ry1 - y0 - dy, rx0 - x0 - dx:rx1 - x0 - dx] = r_line[ry0:ry1, rx0:rx1]
        gone = moved_line & ~near_line[y0:y1, x0:x1]
        if gone.any():
            out[y0:y1, x0:x1] |= cv2.dilate(gone.astype(np.uint8), k).astype(bool) & (lab[y0:y1, x0:x1] == t)
    return out


def drop_ghosts(fill: np.ndarray, carried: np.ndarray, doubt: np.ndarray, lab: np.ndarray, bbox: np.ndarray) -> None:
    """Carried pixels beside a part that has gone (`doubt`, `beside_gone`) take the tone that two
    guesses from the rest of their region's carried pixels agree on (within TONE_EDGE) — the
    nearest at the same depth (`fill_hidden`) and the nearest — where theirs differs from both by
    more (in place): the shadow that a flag cast on a box does not stay when the flag has swung
    away. Where the guesses disagree (a region shaded across, not along its outline) or one of
    them agrees with the carried tone (a board's rings beside where a dart hung), it stays."""
    rest = carried & ~doubt
    nearest = fill.copy()
    odd = _far(nearest, fill, fill_from_nearest(nearest, rest, doubt, lab))
    if not odd.any():
        return
    by_depth = fill.copy()
    ghost = _far(by_depth, fill, fill_hidden(by_depth, rest, odd, lab, bbox, nearest=False))
    ghost[ghost] = ~_far(by_depth, nearest, ghost)[ghost]
    np.copyto(fill, by_depth, where=ghost[..., None])


def _far(a: np.ndarray, b: np.ndarray, where: np.ndarray) -> np.ndarray:
    """Pixels of `where` at which the RGB of `a` and `b` are more than TONE_EDGE apart."""
    idx = np.flatnonzero(where)
    fa, fb = a.reshape(-1, a.shape[-1])[idx], b.reshape(-1, b.shape[-1])[idx]
    d2 = np.zeros(len(idx), np.float32)  # squared distance, channel by channel
    for c in range(3):
        d = fa[:, c].astype(np.float32) - fb[:, c]
        d2 += d * d
    out = np.zeros(where.shape, bool)
    out.ravel()[idx[d2 > TONE_EDGE ** 2]] = True
    return out


def carry_shading(lab: np.ndarray, regs, lut: np.ndarray, colour: np.ndarray, src_ref: np.ndarray,
                  src_reg: np.ndarray, refs, line: np.ndarray | None = None, line_width: float = 1.0,
                  free: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray | None]:
    """Per-pixel fill that carries the references' shading into the regions that took their colour
    from them (see the module). Returns
    - the fill;
    - where it is known: the moved place lies in the reference region (or the region is flat),
      and not beside a sharp change of the carried tone (`tone_edges`);
    - per region the share whose moved place lies in its reference region (a shape that does not
      fit is a doubtful match);
    - given the drawing's `line` mask (where ink is drawn) and line width, the colour the
      references give its lines, (h, w, 3) int16, -1 where they give none (the drawing's ink)."""
    h, w = lab.shape
    n1 = len(colour)
    fill = lut[lab]
    painted = (lut[:, 3] > 0)[lab]
    inside_all = np.zeros((h, w), bool)
    doubt = np.zeros((h, w), bool)
    copied = np.zeros((h, w), bool)
    flat_px = np.zeros((h, w), bool)
    fit = np.ones(n1)
    line_rgb = np.zeros((h, w, 3), np.uint8)
    line_known = np.zeros((h, w), bool)
    rim_rgb = np.zeros((h, w, 3), np.uint8)  # the colour of each stroke's part's outline (rim_colours)
    rim_known = np.zeros((h, w), bool)
    if line is not None:
        # only strokes: deep inside a solid black area (a mailbox's dark opening) the regions that
        # share it out move each their own way, and it stays the drawing's ink
        line = line & (cv2.distanceTransform(line.astype(np.uint8), cv2.DIST_L2, 3) <= 2 * (line_width + 1))
    lab_flat = lab.ravel()
    fill_flat = fill.reshape(-1, 4)  # (a view: `fill` is a fresh contiguous array)
    for rank, ref in enumerate(refs):
        sel_reg = (src_ref == rank) & (colour >= 0)
        sel_reg[0] = False
        if not sel_reg.any():
            continue
        rregs, rlab = ref.prep.regs, ref.prep.seg.labels
        # copied from the pixels off the reference's lines and not touching them (`away_from_lines`),
        # for the regions the reference paints shaded: whether it does is the reference region's
        # alone (RefModel.shaded: off its own colour). Judged against the colour the drawing's
        # region took, a region that took another colour (a shadow tone from the trace lines, a
        # speck its neighbour's) made a flat reference region look shaded and had its flat pixels
        # copied over the colour decided. src_reg names regions of each region's own reference:
        # only this reference's index its table
        away = ref.away
        shaded = sel_reg & ref.shaded[np.where(sel_reg, src_reg, 0)]
        r_line = ref.outline
        off = np.zeros((n1, 2))
        turned = {}
        for t in np.nonzero(sel_reg)[0]:
            off[t], t_crop, r_crop = region_shift(lab, regs, t, rlab, rregs, src_reg[t])
            if free is not None:
                at_rest, at_shift = outline_fits(lab, free, t, regs.bbox[t], r_line, off[t])
                if at_rest >= at_shift:
                    off[t] = 0  # it held still (a tie too: copying in place is the safe guess)
                    continue
            if shaded[t]:
                # a part that turned (or squashed) carries its shading turned with it
                turn = best_turn(t_crop, r_crop, off[t])
                if turn is not None:
                    turned[t] = turn
        # per pixel of the regions it colours (flat indices `pix`, their labels `pl`): its moved
        # place (sy, sx; flat `src` in the reference)
        pix = np.flatnonzero(sel_reg[lab])
        pl = lab_flat[pix]
        py, pxx = np.divmod(pix, w)
        fx, fy = pxx + off[pl, 0], py + off[pl, 1]
        for t, a in turned.items():
            m = np.flatnonzero(pl == t)
            bx, by = pxx[m], py[m]
            fx[m] = a[0, 0] * bx + a[0, 1] * by + a[0, 2]
            fy[m] = a[1, 0] * bx + a[1, 1] * by + a[1, 2]
        sx = np.clip(np.rint(fx), 0, rlab.shape[1] - 1).astype(int)
        sy = np.clip(np.rint(fy), 0, rlab.shape[0] - 1).astype(int)
        src = sy * rlab.shape[1] + sx
        r_at = rlab.ravel()[src]
        own = r_at == src_reg[pl]
        opaque = ref.image[..., 3].ravel()[src] >= PAINTED_ALPHA
        inside = own & opaque
        away_at = away.ravel()[src]
        shaded_p = shaded[pl]
        ok = inside & away_at & shaded_p
        # a part the reference shows cut in two by an occluder (a flag across a box) is one region
        # in the drawing: where its moved place lies in another piece painted in the same colours,
        # that piece's shading continues it
        off_piece = ~inside & shaded_p & away_at & opaque & ~rregs.outside[r_at]
        if off_piece.any():
            ok[off_piece] = same_paint(ref.image, rlab, away, src_reg[pl[off_piece]], sy[off_piece], sx[off_piece])
        ref_flat = ref.image.reshape(-1, 4)
        fill_flat[pix[ok]] = ref_flat[src[ok]]
        ok_img = np.zeros(h * w, bool)
        ok_img[pix[ok]] = True
        ok_img = ok_img.reshape(h, w)
        if free is not None:
            # (its lines moved by the region's shift: a region that turned is left out)
            shifted = [t for t in np.nonzero(shaded)[0] if t not in turned]
            doubt |= beside_gone(lab, free, regs.bbox, shifted, off, r_line) & ok_img
        copied |= ok_img
        inside_all.ravel()[pix[inside]] = True
        flat_px.ravel()[pix[~shaded_p]] = True
        if line is not None:
            # a line keeps the colour the reference gives the same stretch of line (coloured
            # outlines: an orange rim round a yellow part, a dark blue one round a blue box): a
            # line of its own reference region (the line pixels a region takes are its outline),
            # not another part's that its moved place happens to cross (a dart's fin's lines on
            # the board's dark red rim)
            on_line = line.ravel()[pix]
            on = on_line & (ref.prep.art.coverage.ravel()[src] >= LINE_CORE) & ~ref.prep.seg.free.ravel()[src] & own
            line_rgb.reshape(-1, 3)[pix[on]] = ref_flat[src[on], :3]
            line_known.ravel()[pix[on]] = True
            if ref.rim is not None:
                rim = ref.rim[src_reg[pl[on_line]]]
                part = rim[:, 0] >= 0
                at = pix[on_line][part]
                rim_rgb.reshape(-1, 3)[at] = rim[part]
                rim_known.ravel()[at] = True
        has = np.bincount(pl, minlength=n1)
        fit[sel_reg] = np.bincount(pl[inside], minlength=n1)[sel_reg] / np.maximum(has[sel_reg], 1)
    # what a part that has gone cast on the region (its shadow) is not the region's shading
    drop_ghosts(fill, copied, doubt, lab, regs.bbox)
    # the rest of a shaded region continues its own carried shading: beside its lines (where the
    # reference's pixel is mostly its lines' anti-aliasing) the nearest carried pixel, where its
    # moved place is off the reference region (hidden there, or the part grew) `fill_hidden`
    want = ~copied & ~flat_px & painted
    copied |= fill_from_nearest(fill, copied, want & inside_all, lab)
    fill_hidden(fill, copied, want & ~inside_all, lab, regs.bbox)
    known = (inside_all | flat_px) & ~tone_edges(fill, lab, ~flat_px & painted)
    if line is None or not (line_known | rim_known).any():
        return fill, known, fit, None
    # a line is one line on both sides of its middle (the half that borders the background too)
    line_known |= fill_from_nearest(line_rgb, line_known, line & ~line_known, None, line_width + 1)
    # a stroke whose stretch of line is not found nearby takes its part's outline colour, and
    # passes it on to the other half of its line
    rim_only = rim_known & ~line_known
    line_rgb[rim_only] = rim_rgb[rim_only]
    line_known |= rim_only
    line_known |= fill_from_nearest(line_rgb, line_known, line & ~line_known, None, line_width + 1)
    return fill, known, fit, np.where(line_known[..., None], line_rgb.astype(np.int16), -1)


def tone_edges(fill: np.ndarray, lab: np.ndarray, carried: np.ndarray) -> np.ndarray:
    """Carried pixels near a sharp change of tone inside their region (a shadow's edge, a ring of
    a target): a shift or a turn of a few pixels puts them on the other side, so their colour is
    a guess. The band is TONE_EDGE_BAND of the frame's height wide on either side."""
    h, w = lab.shape
    edge = np.zeros(lab.shape, bool)  # a pixel with a step of more than TONE_EDGE to a neighbour
    for dy, dx in ((0, 1), (1, 0)):
        d2 = np.zeros((h - dy, w - dx), np.int32)  # squared RGB distance, channel by channel
        for c in range(3):
            d = fill[: h - dy, : w - dx, c].astype(np.int32) - fill[dy:, dx:, c]
            d2 += d * d
        e = (d2 > TONE_EDGE ** 2) & (lab[: h - dy, : w - dx] == lab[dy:, dx:])
        edge[: h - dy, : w - dx] |= e
        edge[dy:, dx:] |= e
    edge &= carried
    r = max(2, int(round(TONE_EDGE_BAND * lab.shape[0])))
    k = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * r + 1, 2 * r + 1))
    return cv2.dilate(edge.astype(np.uint8), k).astype(bool) & carried


def _shifted(img: np.ndarray, off) -> np.ndarray:
    """out[p] = img[p + off] (zero where p + off is off the frame)."""
    h, w = img.shape[:2]
    dx, dy = int(off[0]), int(off[1])
    out = np.zeros_like(img)
    ys0, ys1, xs0, xs1 = max(0, -dy), min(h, h - dy), max(0, -dx), min(w, w - dx)
    if ys1 > ys0 and xs1 > xs0:
        out[ys0:ys1, xs0:xs1] = img[ys0 + dy:ys1 + dy, xs0 + dx:xs1 + dx]
    return out


def _window(height: int) -> int:
    """Half-width in pixels of the window that chooses a scenery motion (SCENERY_WINDOW)."""
    return max(3, int(round(SCENERY_WINDOW * height)))


def scenery_motions(t_lines: np.ndarray, r_lines: np.ndarray, k: int) -> list[np.ndarray]:
    """Up to `k` shifts (x, y; added to a drawing pixel to reach the reference), besides none, under
    which the reference's lines `r_lines` lie on the drawing's `t_lines`: the peaks of their
    cross-correlation over the whole frame (at most 2 x ALIGN_SIZE cells across), each at least
    PEAK_SHARE of the best. No cost on a shift's length (a chat scrolls by a whole bubble): which
    candidate holds where is decided locally (`scenery_layers`)."""
    h, w = t_lines.shape
    s = max(1, int(np.ceil(max(h, w) / (2 * ALIGN_SIZE))))
    t = cv2.resize(t_lines.astype(np.float32), (max(1, w // s), max(1, h // s)), interpolation=cv2.INTER_AREA)
    r = cv2.resize(r_lines.astype(np.float32), (max(1, w // s), max(1, h // s)), interpolation=cv2.INTER_AREA)
    hh, ww = t.shape
    H, W = 2 * hh, 2 * ww
    c = np.fft.irfft2(np.conj(np.fft.rfft2(t, (H, W))) * np.fft.rfft2(r, (H, W)), (H, W))
    ky = np.arange(H)
    ky = np.where(ky >= hh, ky - H, ky)
    kx = np.arange(W)
    kx = np.where(kx >= ww, kx - W, kx)
    out: list[np.ndarray] = []
    # motions nearer each other than the window that chooses between them (`scenery_layers`) are
    # one motion (a shift by one dash of a dashed text line); holding still is always a candidate
    sep = max(2, _window(h) // s)
    near = lambda y, x: np.ix_(np.abs(ky - y) <= sep, np.abs(kx - x) <= sep)
    c[near(0, 0)] = -np.inf
    best = float(c.max())
    if best <= 1e-6:
        return out
    for _ in range(k):
        iy, ix = np.unravel_index(int(np.argmax(c)), c.shape)
        if c[iy, ix] < PEAK_SHARE * best:
            break
        out.append(np.array([kx[ix] * s, ky[iy] * s]))
        c[near(ky[iy], kx[ix])] = -np.inf
    return out


def scenery_layers(t_lines: np.ndarray, r_lines: np.ndarray, want: np.ndarray, lab: np.ndarray,
                   motions: list[np.ndarray]) -> np.ndarray:
    """Per pixel of `want`, which of `motions` (the first: none) its scenery took (index): the one
    under which the reference's lines agree best with the drawing's in a window around it
    (SCENERY_WINDOW of the frame's height: a few text lines), ties to the first. A pixel with no
    line in its window takes the choice of the nearest decided pixel of its region (a bubble's
    margin moves with its text, the gap between two bubbles too)."""
    r = _window(want.shape[0])
    # (counts of pixels: exact in float32, whatever the input type)
    box = lambda m: cv2.boxFilter(m.view(np.uint8), cv2.CV_32F, (2 * r + 1, 2 * r + 1), normalize=False)
    t_box = box(t_lines)
    dice = lambda b: 2 * box(t_lines & b) / np.maximum(t_box + box(b), 1.0)
    best = dice(r_lines)
    pick = np.where(best > 0, 0, -1).astype(np.int32)
    for i, off in enumerate(motions[1:], 1):
        agree = dice(_shifted(r_lines, off))
        take = agree > best
        best[take], pick[take] = agree[take], i
    pick[~want] = -1
    known = pick >= 0
    spread = pick[..., None].copy()
    fill_from_nearest(spread, known, want & ~known, lab)
    return spread[..., 0]


def _scenery_moved(fill: np.ndarray, prep, moved: np.ndarray, ref, source: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The background, where its own lines moved (a scrolling screen, a pan): the few motions that
    lay the reference's moved scenery lines on the drawing's (`scenery_motions`) and holding still
    are the candidates, every pixel of the background takes the one its surrounding lines took
    (`scenery_layers`; a pixel far from any line, the one of its nearest lines: a bubble's margin
    moves with its text) and copies the reference's background (`source`) from its moved place.
    Returns where it copied (in place) and where the scenery moved (the reference's pixel at the
    same place is not its colour)."""
    lab, rlab = prep.seg.labels, ref.prep.seg.labels
    outside = prep.regs.outside[lab]
    tline = ~prep.seg.free & outside
    rline = ~ref.prep.seg.free & ref.prep.regs.outside[rlab]
    none = np.zeros_like(outside)
    # the motion shows in the lines that moved: the pixels where only one drawing has a line (a
    # screen's frame that held still would pull every candidate its way), and, as a stroke that
    # moved can fall in part on another one by chance (text lines a line apart), the lines where
    # something moved
    sep = _window(lab.shape[0])
    motions = [np.zeros(2, int)]
    for cand in scenery_motions(tline & ~rline, rline & ~tline, SCENERY_MOTIONS) + \
            scenery_motions(tline & moved, rline & moved, SCENERY_MOTIONS):
        if all(np.abs(cand - m).max() > sep for m in motions):
            motions.append(cand)
    if len(motions) == 1:
        return none, none
    pick = scenery_layers(tline, rline, outside, lab, motions)
    h, w = outside.shape
    ys, xs = np.nonzero(pick > 0)
    off = np.array(motions)[pick[ys, xs]]
    sy, sx = ys + off[:, 1], xs + off[:, 0]
    ok = (sy >= 0) & (sy < h) & (sx >= 0) & (sx < w)
    ok[ok] = source[sy[ok], sx[ok]]
    fill[ys[ok], xs[ok]] = ref.image[sy[ok], sx[ok]]
    copied = none.copy()
    copied[ys[ok], xs[ok]] = True
    return copied, pick > 0


def _off_colour(img: np.ndarray, rgb, level: float) -> np.ndarray:
    """Pixels of `img` with a channel more than `level` off the colour `rgb` (channel by channel:
    a reduction over the last axis of three is slow in numpy)."""
    rgb = np.broadcast_to(np.asarray(rgb, np.float64), (3,))
    out = np.zeros(img.shape[:2], bool)
    for c in range(3):
        out |= np.abs(img[..., c].astype(np.int16) - rgb[c]) > level
    return out


def lines_moved(line: np.ndarray, ref) -> np.ndarray:
    """Where the drawing's lines and the reference's differ nearby (within MOVED_NEAR of the
    frame's height): something moved there. Elsewhere the drawing holds still."""
    r = max(3, int(round(MOVED_NEAR * line.shape[0])))
    k = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * r + 1, 2 * r + 1))
    return cv2.dilate((line != ~ref.prep.seg.free).astype(np.uint8), k).astype(bool)


def hold_still(fill: np.ndarray, lab: np.ndarray, line: np.ndarray, moved: np.ndarray, outside: np.ndarray,
               ref) -> np.ndarray:
    """A region none of whose lines moved, and the lines on the background away from lines that
    moved, held still (a hold, or the parts of a drawing that do not take part in the motion):
    the reference there is the answer, pixel for pixel, its lines' colours and anti-aliasing
    included (in place in `fill`; the background between the lines is `paint_scenery`'s).
    Returns where the drawing held still (no ink to draw over: the reference's pixels show it)."""
    still = np.bincount(lab[moved], minlength=len(outside)) == 0
    still[outside] = False
    px = still[lab] | (outside[lab] & line & ~moved)
    np.copyto(fill, ref.image, where=px[..., None])
    return still[lab] | (outside[lab] & ~moved)


def paints_scenery(ref, shape) -> bool:
    """Does the reference paint the background of a drawing of this shape (an opaque cel of the
    same size: a screen, paper, a sky), so that `paint_scenery` copies it?"""
    return ref.image.shape[:2] == tuple(shape[:2]) and not (ref.image[..., 3] < 255).any()


def paint_scenery(fill: np.ndarray, prep, moved: np.ndarray, ref) -> tuple[np.ndarray, np.ndarray]:
    """An opaque reference paints its background too (paper, a screen, a sky: parts with no
    lines around them). The background does not move with the characters: where the line art
    shows background, the fill takes the reference's pixel at the same place (in place in
    `fill`). Whether the scenery there held still shows in the lines: where the drawing's lines
    and the reference's differ nearby (`moved`), something moved, and a part the reference's lines
    close there (a duck that has since stepped aside, a bubble that scrolled) is not copied: the
    nearest background of the reference continues. Where the lines agree, a part that the drawing
    leaves open (a post drawn without its bottom line) is copied like the background; where the
    scenery's own lines moved, it moves with them (`_scenery_moved`). Returns where the result is
    scenery (not paper, or moved) and where the scenery moved. A reference with transparency keeps
    the background transparent."""
    img, lab = ref.image, prep.seg.labels
    outside = prep.regs.outside[lab]
    if not paints_scenery(ref, fill.shape):
        return np.zeros(outside.shape, bool), np.zeros(outside.shape, bool)
    rlab = ref.prep.seg.labels
    part = ~ref.prep.regs.outside[rlab]
    # a part of the reference that lies on the drawing's background where lines moved (a fin the
    # dart has taken elsewhere) has moved as a whole, its inside too
    gone = np.bincount(rlab[outside & moved & part], minlength=ref.prep.regs.n + 1) > 0
    # the anti-aliased fringe of a reference line: copied where the line still is, never
    # spread into what was hidden (it would streak grey) nor left where the line has gone
    fringe = cv2.distanceTransform(ref.prep.seg.free.astype(np.uint8), cv2.DIST_L2, 3) < SCENERY_FRINGE_PX
    seen = outside & ref.prep.seg.free & ~(part & gone[rlab]) & ~(fringe & moved)
    np.copyto(fill, img, where=seen[..., None])
    copied, shifted = _scenery_moved(fill, prep, moved, ref, ~part & ref.prep.seg.free & ~fringe)
    seen = (seen & ~shifted) | copied
    got = seen | fill_from_nearest(fill, seen & ~fringe, outside & ~seen, lab)
    paper = np.median(img[..., :3][seen][:: max(1, int(seen.sum()) // 20000)], axis=0) if seen.any() else 255
    scenery = got & _off_colour(fill, paper, FLAT_LEVEL)
    # scenery that took a motion is a guess away from its lines, even where it is paper-coloured (a
    # white chat bubble), when the reference has scenery that is not paper (at least a window's
    # area of it, SCENERY_WINDOW: not a line's fringe, not a speck); paper is paper whichever way
    # it moved
    r = _window(lab.shape[0])
    ref_scenery = ~part & ref.prep.seg.free & ~fringe & \
        _off_colour(img, paper, FLAT_LEVEL)
    if int(ref_scenery.sum()) >= (2 * r + 1) ** 2:
        scenery |= got & shifted
    return scenery, shifted
