"""Carrying a shaded reference's pixels into the matched regions of a drawing (issue 14).

Real cels are shaded: gradients, soft shadows, highlights, and colour areas drawn without lines
(a target's rings, a box's stripes) inside a part. A region that took its colour from a reference
region copies that region's pixels, moved by the region's own motion:

- the motion is the shift that lays the reference region's shape best onto the region's shape
  (`align.mask_shift`): a part that holds still while another part moves over it keeps shift 0
  exactly; a part that turned (its shape's inertia ellipse turned, and the turned shape fits the
  reference's better than the shifted one) carries its shading turned;
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
- a region the reference paints flat (judged by the reference alone: `RefModel.shaded`) stays
  the colour its drawing region took, exactly (flat cels are painted as before, with no noise or
  other colour copied in).

Lines take the colour the reference gives the same stretch of line (coloured outlines). The
motion is `align`'s; what held still and the background are `scenery`'s.
"""

from __future__ import annotations

import cv2
import numpy as np

from ..labels import fill_from_nearest
from .align import best_turn, outline_fits, region_shift
from .pixels import COARSE_CODES, FLAT_LEVEL, coarse_codes, modal_colours
from .regions import PAINTED_ALPHA
from .scenery import MOVED_NEAR

#: a region with less than SHADED_SHARE of its pixels off its base colour (by more than
#: FLAT_LEVEL) is painted flat
SHADED_SHARE = 0.1
#: nor is a region with a single pixel off its base colour: that is a line's faint anti-aliased
#: fringe left off the lines (one of a 106 px region's 6 pixels away from its lines), not a painted
#: tone. (9, a 3x3 patch, cost the synthetic cels' small shaded regions 0.03 points; docs/color-log.md)
SHADED_LEAST_PX = 2
#: share of a region's paint from which a coarse colour counts as one of its colours
PIECE_SHARE = 0.01
#: RGB distance between neighbouring pixels of one region above which the tone changes sharply
#: (a gradient changes by a few levels a pixel, a shadow's or a stripe's edge by tens)
TONE_EDGE = 2 * FLAT_LEVEL
#: how far (share of the frame's height) from a sharp change of tone a carried pixel is unsure
TONE_EDGE_BAND = 0.004
#: line coverage above which a reference pixel is the line itself (its colour is the line's colour)
LINE_CORE = 0.5
#: a drawing's line pixel is a stroke (its colour carried from the reference) within this many line
#: widths + 1 px of paper; deeper inside a solid black area it stays the drawing's ink
STROKE_REACH = 2
#: pixel pairs compared at once when a depth level is filled (bounds the distance matrix's memory)
FILL_PAIRS = 1_000_000


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
    return (off >= SHADED_SHARE * np.maximum(np.bincount(lab, minlength=n), 1)) & (off >= SHADED_LEAST_PX)


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
    code = coarse_codes(image.reshape(-1, image.shape[-1])[sel, :3])
    keys, cnt = np.unique(lab.astype(np.int64) * COARSE_CODES + code, return_counts=True)
    total = np.bincount(lab, minlength=n)
    present = keys[cnt >= PIECE_SHARE * total[keys // COARSE_CODES]]
    q = image[sy, sx, :3].astype(np.int64) >> 4
    reg = region.astype(np.int64) * COARSE_CODES
    hit = np.zeros(len(q), bool)
    for d in np.array(np.meshgrid([-1, 0, 1], [-1, 0, 1], [-1, 0, 1])).reshape(3, -1).T:
        c = np.clip(q + d, 0, 15)
        hit |= np.isin(reg + ((c[:, 0] << 8) | (c[:, 1] << 4) | c[:, 2]), present)
    return hit


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
            step = max(1, FILL_PAIRS // len(ks))  # a level's ring is thin: compare its pixels directly
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
        line = line & (cv2.distanceTransform(line.astype(np.uint8), cv2.DIST_L2, 3) <= STROKE_REACH * (line_width + 1))
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
