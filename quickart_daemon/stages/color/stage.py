"""The colour stage: first pass (every region gets a colour), second pass (finish), output."""

from __future__ import annotations

import colorsys
from dataclasses import dataclass, field

import cv2
import numpy as np

from . import finish, trace
from .features import Regions, describe
from .match import TRANSPARENT, match, region_overlap
from .palette import RGB, Palette
from .regions import LineArt, Segmentation, extract_lines, line_strength, segment
from .shading import (ALIGN_SIZE, border_fit, carry_shading, crop_region, hold_still, lines_moved, mask_shift,
                      modal_colours, outline_fits, outline_lines, paint_scenery, paints_scenery, region_shift,
                      rim_colours)


@dataclass
class Prepared:
    art: LineArt
    seg: Segmentation
    regs: Regions


def prepare(img: np.ndarray, gap: float = 0.0) -> Prepared:
    art = extract_lines(img)
    seg = segment(art, gap)
    return Prepared(art, seg, describe(seg))


def is_coloured(img: np.ndarray) -> bool:
    """True for a frame that is already painted (filled areas, not just lines).

    Paint is what is drawn but not dark like ink (colour, or a tone). Bold line art
    (thick strokes, solid black pupils) is wide and dark but has no paint, and anti-aliased
    line fringes are paint-like but thin: so a frame is painted when eroded paint (areas
    wider than a line) makes up a good share of everything drawn."""
    s = line_strength(img)
    strong = s > 0.15
    if strong.sum() < 16:
        return False
    # not ink: ink is dark in every channel
    paint = strong & ((img[..., 0] >= 90) | (img[..., 1] >= 90) | (img[..., 2] >= 90))
    k = max(7, int(round(min(img.shape[:2]) / 120)) | 1)
    core = cv2.erode(paint.astype(np.uint8), np.ones((k, k), np.uint8))
    return core.sum() > 0.15 * strong.sum()


def lines_from_cel(cel: np.ndarray) -> LineArt:
    """Line art recovered from a coloured cel: dark ink plus the edges between colour fills."""
    rgb = cel[..., :3].astype(np.int16)
    alpha = cel[..., 3]
    ink = (alpha >= 128) & (rgb[..., 0] + rgb[..., 1] + rgb[..., 2] < 210)  # the mean below 70
    key = (cel[..., 0].astype(np.int64) << 24) | (cel[..., 1].astype(np.int64) << 16) | \
          (cel[..., 2].astype(np.int64) << 8) | (alpha >= 128)
    edge = np.zeros(ink.shape, bool)
    dx = key[:, 1:] != key[:, :-1]
    dy = key[1:] != key[:-1]
    edge[:, 1:] |= dx
    edge[1:] |= dy
    line = ink | edge
    cov = line.astype(np.float32)
    z = np.zeros_like(ink)
    return LineArt(cov, line, ink, z, z.copy(), (0, 0, 0), 1.0)


@dataclass
class RefModel:
    frame: int
    image: np.ndarray
    prep: Prepared
    colour: np.ndarray               # (n+1,) index into the global colour table or TRANSPARENT
    from_lines: bool                 # regions come from the key's line art (else from the cel's colours)
    outline: np.ndarray              # where an outline can lie on its lines (`outline_lines`)
    rim: np.ndarray | None           # its regions' line colours (`rim_colours`); None without the
                                     # key's line art (then every colour edge of the cel is a "line")


@dataclass
class Colours:
    """The global colour table of a job (every colour that may be painted)."""
    table: list[RGB] = field(default_factory=list)
    index: dict[RGB, int] = field(default_factory=dict)

    def add(self, rgb) -> int:
        rgb = tuple(int(c) for c in rgb)
        if rgb not in self.index:
            self.index[rgb] = len(self.table)
            self.table.append(rgb)
        return self.index[rgb]


def region_colours(labels: np.ndarray, free: np.ndarray, cel: np.ndarray, n: int, colours: Colours) -> np.ndarray:
    """The base colour of `cel` inside every region (TRANSPARENT where mostly unpainted).

    Real cels are shaded: gradients, soft shadows and highlights inside a part, so the most
    frequent exact value may be a highlight or one step of a gradient. The base colour is the
    per-channel median of the pixels in the region's most frequent coarse colour (... its value
    there; on a flat cel the flat colour exactly, and a region straddling two paints takes the
    larger, never a mix). Ink drawn inside a region is not its colour, unless the region is all
    dark (a black part)."""
    step = 1 if labels.size <= 2_500_000 else 2
    lab = labels[::step, ::step].ravel()
    c = cel[::step, ::step].reshape(-1, 4)
    sel = free[::step, ::step].ravel()
    painted = c[:, 3] >= 128
    dark = c[:, 0].astype(np.int16) + c[:, 1] + c[:, 2] < 120  # the mean below 40
    total = np.bincount(lab[sel], minlength=n + 1)
    light = np.bincount(lab[sel & ~dark], minlength=n + 1)
    use = sel & (~dark | (light[lab] == 0))  # a region with no light pixel keeps its dark ones
    n_painted = np.bincount(lab[use & painted], minlength=n + 1)
    n_used = np.bincount(lab[use], minlength=n + 1)
    out = np.full(n + 1, TRANSPARENT, int)
    keep = (total > 0) & (n_painted * 2 > n_used)  # mostly painted
    pick = use & painted & keep[lab]
    if not pick.any():
        return out
    med, counts = modal_colours(lab[pick], c[pick, :3], n)
    for r in np.nonzero(counts > 0)[0]:
        out[r] = colours.add(tuple(int(x) for x in med[r]))
    return out


def flats_colour(i: int) -> RGB:
    h = (i * 0.618033988749895) % 1.0
    s = 0.45 + 0.25 * ((i * 7) % 3) / 2
    v = 0.95 - 0.2 * ((i * 5) % 4) / 3
    r, g, b = colorsys.hsv_to_rgb(h, s, v)
    return (int(r * 255), int(g * 255), int(b * 255))


def hint_colours(hint: np.ndarray, labels: np.ndarray, n: int, colours: Colours) -> np.ndarray:
    """Regions touched by a hint scribble, and the scribble's colour (TRANSPARENT-1 = no hint)."""
    if hint.shape[:2] != labels.shape:
        hint = cv2.resize(hint, (labels.shape[1], labels.shape[0]), interpolation=cv2.INTER_NEAREST)
    if (hint[..., 3] < 250).mean() > 0.05:
        mask = hint[..., 3] >= 128
    else:
        mask = line_strength(hint) > 0.25
    out = np.full(n + 1, -2, int)
    if not mask.any():
        return out
    fake = np.zeros_like(hint)
    fake[..., :3] = hint[..., :3]
    fake[..., 3] = 255
    got = region_colours(labels, mask, fake, n, colours)
    touched = np.bincount(labels[mask], minlength=n + 1) > 0
    out[touched] = got[touched]
    return out


def build_ref(frame: int, cel: np.ndarray, lines: np.ndarray | None, gap: float, colours: Colours) -> RefModel:
    h, w = cel.shape[:2]
    if lines is not None and lines.shape[:2] == (h, w) and not is_coloured(lines):
        prep = prepare(lines, gap)
        from_lines = True
    else:
        art = lines_from_cel(cel)
        seg = segment(art, 1.0, min_core=1)
        prep = Prepared(art, seg, describe(seg))
        from_lines = False
    col = region_colours(prep.seg.labels, prep.seg.free, cel, prep.seg.n, colours)
    # built once per reference: every drawing coloured from it asks for them
    return RefModel(frame, cel, prep, col, from_lines, outline_lines(prep),
                    rim_colours(prep, cel) if from_lines else None)


def tone_tables(ref: RefModel, colours: Colours) -> tuple[dict[int, int], dict[int, int]]:
    """From a reference: base colour index -> shadow / highlight colour index, as painted there."""
    if not ref.from_lines:
        return {}, {}
    role, partner = trace.roles(ref.prep.regs)
    tables: tuple[dict, dict] = ({}, {})
    votes: dict[tuple[int, int, int], float] = {}
    for t in np.nonzero(role)[0]:
        b, c = ref.colour[partner[t]], ref.colour[t]
        if b < 0 or c < 0 or b == c:
            continue
        key = (int(role[t]), int(b), int(c))
        votes[key] = votes.get(key, 0.0) + ref.prep.regs.full_area[t]
    for (r, b, c), v in sorted(votes.items(), key=lambda kv: kv[1]):
        tables[r - 1][b] = c
    return tables


#: overlap (intersection over union) at the same place above which a region is the reference
#: region it lies on: it did not move (most of a drawing holds still between nearby frames), and
#: more than half of either is the other, so no other region can be a better partner
STAYED_IOU = 0.5


def stayed_put(m, lab: np.ndarray, ref: RefModel) -> None:
    """Regions that lie where a reference region lies, with the same shape, are that region
    (whatever the matcher's graph says): their colour and source come from it, and their
    confidence is at least the overlap. Updates the match `m` in place."""
    rlab = ref.prep.seg.labels
    if rlab.shape != lab.shape:
        return
    n = int(lab.max())
    inter = region_overlap(lab, n, rlab, int(rlab.max()))
    area_t, area_r = inter.sum(1), inter.sum(0)
    best = inter.argmax(1)
    iou = inter[np.arange(n + 1), best] / np.maximum(area_t + area_r[best] - inter[np.arange(n + 1), best], 1)
    sel = (iou > STAYED_IOU) & (best > 0) & (ref.colour[best] >= 0)
    sel[0] = False
    m.colour[sel] = ref.colour[best[sel]]
    m.ref_region[sel] = best[sel]
    m.confidence[sel] = np.maximum(m.confidence[sel], iou[sel])


def match_reference(regs: Regions, lab: np.ndarray, ref: RefModel, n_colours: int, veto: np.ndarray | None = None):
    """The drawing's regions matched to the reference's (`match`, without the `veto`ed pairs), the
    regions that stayed put taking the region they lie on (`stayed_put`)."""
    m = match(regs, lab, ref.prep.regs, ref.prep.seg.labels, ref.colour, n_colours,
              line_weight=1.0 if ref.from_lines else 0.2, veto=veto)
    stayed_put(m, lab, ref)
    return m


#: share of a region lying inside one reference region at the same place from which that region is
#: a candidate for it (`inside_by_outline`)
CONTAINED = 0.9


def inside_by_outline(m, prep: Prepared, ref: RefModel, scenery: bool = False) -> np.ndarray:
    """A region that lies inside one reference region at the same place (a part that a new line cut
    off: a duck's wing drawn over its body) while the matcher gave it another, distant one (the
    area-conserving assignment finds the body taken and sends the piece to an unclaimed highlight)
    is the region it lies in when its outline lies on the reference's lines where it is better than
    on its match's at the match's own shift (`outline_fit`): lines are exact evidence of where a
    part was. Updates the match `m` in place. With `scenery` (the reference's background is painted
    and will be copied), a region lying so in the reference's background (a chat's comment box
    that the reference's lines leave open, closed in the drawing) is background; returns those."""
    lab, rlab = prep.seg.labels, ref.prep.seg.labels
    regs, rregs = prep.regs, ref.prep.regs
    background = np.zeros(regs.n + 1, bool)
    if rlab.shape != lab.shape:
        return background
    n = regs.n
    inter = region_overlap(lab, n, rlab, rregs.n)
    r0 = inter.argmax(1)
    share = inter[np.arange(n + 1), r0] / np.maximum(inter.sum(1), 1)
    r_line = ref.outline
    in_scenery = rregs.outside[r0] & scenery
    cand = (share >= CONTAINED) & (r0 != m.ref_region) & ~regs.outside & (m.ref_region > 0) & \
        (in_scenery | (~rregs.outside[r0] & (ref.colour[r0] >= 0) & (ref.colour[r0] != m.colour)))
    cand[0] = False
    for t in np.nonzero(cand)[0]:
        off, _, _ = region_shift(lab, regs, t, rlab, rregs, m.ref_region[t])
        at_rest, at_shift = outline_fits(lab, prep.seg.free, t, regs.bbox[t], r_line, off)
        if at_rest > at_shift:  # strictly: a tie is no evidence against the matcher
            if in_scenery[t]:
                background[t] = True
                continue
            m.colour[t], m.ref_region[t] = ref.colour[r0[t]], r0[t]
            m.confidence[t] = min(m.confidence[t], share[t])
    return background


#: least share of a region that a reference region at the same place must cover to be a candidate
#: for it in `held_by_outline` (a piece of it, not a sliver along its edge)
HELD_SHARE = 0.1
#: share of a region's outline that must lie on the lines of the regions that held still at its
#: place for that to count as evidence on its own (more than half of it)
HELD_MOST = 0.5


def held_by_outline(m, prep: Prepared, ref: RefModel) -> np.ndarray:
    """A region whose outline lies on the reference's lines where it is better than at its match's
    own shift (`outline_fit`; or, on more than half of it, on the lines of the reference regions
    that held still at its place better than on its match's own lines, `border_fit`: the inside
    of a mailbox whose rim an envelope's edge now follows) held still, whatever the matcher's areas
    and positions said: a box's upper part that a flag hid in two pieces in the reference is not
    the flag, which has swung away (tg_mailbox: the area-conserving matcher gave the box's top the reference's flag, and the
    flag the box). It takes the reference region at its place that also held still (the shift that
    lays that region on it best is about none; the largest of them: an occluder in the reference
    may have cut it in pieces) and differs from its match. Updates the match `m` in place (the
    confidence is at most the outline's fit there) and returns the vetoed pairs (region, its old
    match) so that the matcher can be run again without them: the reference region it left is
    free for the part that really moved. A region whose match is not at its place and that keeps it
    moved: it is at most as sure as its outline lies on its match's own lines at the match's shift
    (a part that turned, or a wrong match, fits badly: the confidence map marks it)."""
    lab, rlab = prep.seg.labels, ref.prep.seg.labels
    regs, rregs = prep.regs, ref.prep.regs
    vetoed: list[tuple[int, int]] = []
    if rlab.shape != lab.shape:
        return np.zeros((0, 2), int)
    n = regs.n
    inter = region_overlap(lab, n, rlab, rregs.n)
    share = inter / np.maximum(inter.sum(1, keepdims=True), 1)
    r_line = ref.outline
    zero = np.zeros(2)
    cand = ~regs.outside & (m.ref_region > 0) & (share[np.arange(n + 1), m.ref_region] < 0.5)
    cand[0] = False
    reach = int(np.ceil(prep.art.line_width)) + 1  # a region's lines: those within a line's width of it
    for t in np.nonzero(cand)[0]:
        r = m.ref_region[t]
        off, (tm, to), _ = region_shift(lab, regs, t, rlab, rregs, r)
        fit_m = border_fit(lab, prep.seg.free, t, regs.bbox[t], r_line, rlab, [r], off, reach)
        # a part that moved (its match is not at its place) is as sure as its outline lies on its
        # match's own lines at the match's shift: a part that turned, or a wrong match, fits badly
        sure = m.confidence[t]
        m.confidence[t] = min(sure, fit_m)
        all0, at_shift = outline_fits(lab, prep.seg.free, t, regs.bbox[t], r_line, off)
        on_all = all0 > at_shift
        if not on_all and all0 <= max(fit_m, HELD_MOST):
            continue  # no evidence either way (the fit on some lines is at most that on all of them)
        # the shift is known to about one step of mask_shift's grid (plus a pixel of line)
        tol = 2.0 + max(tm.shape) / ALIGN_SIZE
        held = []
        for rp in np.argsort(-share[t]):
            if share[t, rp] < HELD_SHARE:
                break
            if rp == r or rp == 0 or rregs.outside[rp] or ref.colour[rp] < 0:
                continue
            rm, ro = crop_region(rlab, rp, rregs.bbox[rp])
            if np.abs(mask_shift(tm, to, rm, ro, zero)).max() <= tol:
                held.append(int(rp))
        if not held or ref.colour[held[0]] == m.colour[t]:
            continue
        # the evidence: its outline lies on the lines where it is better than at its match's shift,
        # either on all the reference's lines or on the lines of the regions that held still there;
        # the latter, a looser test (those regions' lines may pass under a part that moved over
        # them), only when it is more than half of its outline
        fit0 = border_fit(lab, prep.seg.free, t, regs.bbox[t], r_line, rlab, held, zero, reach)
        if on_all or fit0 > max(fit_m, HELD_MOST):
            vetoed.append((int(t), int(r)))
            m.colour[t], m.ref_region[t] = ref.colour[held[0]], held[0]
            m.confidence[t] = min(sure, max(fit0, all0))
    return np.array(vetoed, int).reshape(-1, 2)


#: confidence of a pixel whose colour is a guess inside a well-matched region: its moved place is
#: off the reference region (the shading there is unknown), it lies beside a sharp change of the
#: carried tone, or it is scenery copied from the reference at the same place where lines moved
#: nearby. Below the default --low-confidence (0.5), so the map marks it for review.
UNSURE_CONFIDENCE = 0.4
#: confidence of scenery copied from the reference at the same place where the lines around
#: held still (half sure: a colour area without lines may still have moved)
SCENERY_CONFIDENCE = 0.5


@dataclass
class FrameResult:
    image: np.ndarray
    confidence: np.ndarray           # float32 per pixel
    low: list                        # low-confidence regions
    region_colour: np.ndarray
    labels: np.ndarray
    styles: dict[str, np.ndarray]


def colour_drawing(img: np.ndarray, refs: list[RefModel], hint: np.ndarray | None, palette: Palette,
                   colours: Colours, params: dict, frame_no: int) -> FrameResult:
    gap = float(params.get("gap", 0.0))
    prep = prepare(img, gap)
    regs, lab = prep.regs, prep.seg.labels
    n = regs.n
    colour = np.full(n + 1, TRANSPARENT, int)
    conf = np.ones(n + 1)
    fixed = np.zeros(n + 1, bool)
    # (2) references: nearest in time first; per region the best match wins
    if refs:
        best = -np.ones(n + 1)
        src_ref = np.full(n + 1, -1)     # which reference (rank) and region each region's colour came from
        src_reg = np.zeros(n + 1, int)
        # per region: was it matched to a reference region in the same trace role that the
        # reference painted this very colour (then the reference, not the role rule, decides)
        ref_role_same = np.zeros(n + 1, bool)
        role, partner = trace.roles(regs)
        for rank, ref in enumerate(refs):
            m = match_reference(regs, lab, ref, len(colours.table))
            vetoed = held_by_outline(m, prep, ref)
            if len(vetoed):  # the reference regions they left are free for the parts that moved
                m = match_reference(regs, lab, ref, len(colours.table), vetoed)
                held_by_outline(m, prep, ref)
            # the nearest reference paints the background when there is no palette to keep to
            background = inside_by_outline(m, prep, ref, rank == 0 and palette.empty and paints_scenery(ref, lab.shape))
            regs.outside[background] = True
            score = m.confidence - 0.03 * rank
            take = score > best
            colour[take], conf[take], best[take] = m.colour[take], m.confidence[take], score[take]
            src_ref[take], src_reg[take] = rank, m.ref_region[take]
            if ref.from_lines:
                r_role = trace.roles(ref.prep.regs)[0]
                same = (r_role[m.ref_region] == role) & (ref.colour[m.ref_region] == m.colour) & (m.ref_region > 0)
            else:
                same = np.zeros(n + 1, bool)
            ref_role_same[take] = same[take]
        # shadows / highlights from the trace lines, in the tones the nearest reference uses
        shadow_of, light_of = tone_tables(refs[0], colours)
        for t in np.nonzero(role)[0]:
            if ref_role_same[t]:
                continue
            table = shadow_of if role[t] == trace.SHADOW else light_of
            b = colour[partner[t]]
            want = table.get(int(b)) if b >= 0 else None
            if want is not None and colour[t] != want and conf[partner[t]] >= conf[t] * 0.8:
                colour[t] = want
                conf[t] = min(conf[t], conf[partner[t]])
    else:
        # (3) nothing: flats, one distinct colour per region
        role, partner = trace.roles(regs)
        for t in range(1, n + 1):
            if not regs.outside[t]:
                colour[t] = colours.add(flats_colour(t))
    colour[regs.outside] = TRANSPARENT
    # (1) hints, strongest
    hinted = np.zeros(n + 1, bool)
    if hint is not None:
        hc = hint_colours(hint, lab, n, colours)
        hinted = hc >= -1
        hinted[0] = False
        colour[hinted] = hc[hinted]
        conf[hinted] = 1.0
        fixed |= hinted
    if not refs:
        # shadow / highlight tones follow their partner's (hinted or flat) colour
        for t in np.nonzero(role)[0]:
            if fixed[t] or regs.outside[t]:
                continue
            b = colour[partner[t]]
            if b >= 0:
                tone = "shadow" if role[t] == trace.SHADOW else "highlight"
                colour[t] = colours.add(palette.tone(colours.table[b], tone))
    # second pass: specks and unsure scraps
    h, w = lab.shape
    speck = max(4.0, 2e-5 * h * w)
    finish.absorb_specks(regs, colour, conf, fixed, speck, float(params.get("low-confidence", 0.5)))
    # snap to the palette
    lut = np.zeros((n + 1, 4), np.uint8)
    for t in range(1, n + 1):
        if colour[t] >= 0:
            rgb, _ = palette.snap(colours.table[colour[t]])
            lut[t, :3], lut[t, 3] = rgb, 255
    ink_rgb = prep.art.ink_rgb
    lc = str(params.get("line-color", "") or "")
    if lc:
        from .palette import parse_hex
        ink_rgb = parse_hex(lc, "line-color")
    mode = str(params.get("lines", "keep"))
    trace_px = prep.art.red | prep.art.blue
    fill, carried, line_rgb = None, np.zeros(lab.shape, bool), None
    coverage = prep.art.coverage
    if refs and palette.empty:  # no palette to keep to: the reference's shading comes along
        fill, carried, fit, line_rgb = carry_shading(lab, regs, lut, colour, src_ref, src_reg, refs,
                                                     None if lc else prep.art.coverage > finish.INK_VISIBLE,
                                                     prep.art.line_width, prep.seg.free)
        conf = np.minimum(conf, fit)
        if refs[0].image.shape[:2] == lab.shape:
            moved = lines_moved(~prep.seg.free, refs[0])
            scenery, shifted = paint_scenery(fill, prep, moved, refs[0])
            moved |= shifted & scenery  # the scenery there moved: not the reference at the same place
            if not lc and mode == "keep":  # the reference's pixels, its lines as it draws them
                still = hold_still(fill, lab, ~prep.seg.free, moved, regs.outside, refs[0])
                coverage = np.where(still, 0.0, coverage).astype(np.float32)
                carried |= still
        else:
            moved = scenery = np.zeros(lab.shape, bool)
    image = finish.paint(lab, lut, coverage, prep.art.ink, trace_px, ink_rgb, mode, fill, line_rgb)
    styles = {}
    for style in palette.styles:
        slut = lut.copy()
        for t in range(1, n + 1):
            if slut[t, 3]:
                slut[t, :3] = palette.apply_style(style, tuple(int(c) for c in lut[t, :3]))
        styles[style] = finish.paint(lab, slut, prep.art.coverage, prep.art.ink, trace_px,
                                     palette.apply_style(style, ink_rgb), mode)
    conf_map = conf.astype(np.float32)[lab]
    if fill is not None:  # a pixel whose region's shading could not be carried is a guess inside it
        conf_map = np.where(carried | (lut[:, 3] == 0)[lab], conf_map, np.minimum(conf_map, UNSURE_CONFIDENCE))
        conf_map = np.where(scenery, np.where(moved, UNSURE_CONFIDENCE, SCENERY_CONFIDENCE), conf_map)
    thr = float(params.get("low-confidence", 0.5))
    low = []
    for t in range(1, n + 1):
        if conf[t] < thr and not regs.outside[t] and regs.full_area[t] > speck:
            x0, y0, x1, y1 = (int(v) for v in regs.bbox[t])
            low.append({"frame": frame_no, "bbox": [x0, y0, x1, y1],
                        "centroid": [round(float(regs.centroid[t, 0]), 1), round(float(regs.centroid[t, 1]), 1)],
                        "area": int(regs.full_area[t]), "confidence": round(float(conf[t]), 3)})
    return FrameResult(image, conf_map, low, colour, lab, styles)
