"""The colour stage: first pass (every region gets a colour), second pass (finish), output."""

from __future__ import annotations

import colorsys
from dataclasses import dataclass, field

import cv2
import numpy as np

from . import finish, trace
from .features import Regions, describe
from .match import TRANSPARENT, MatchResult, match, region_overlap
from .palette import RGB, Palette
from .regions import (PAINTED_ALPHA, LineArt, Segmentation, extract_lines, is_ink, line_strength, on_transparency,
                      segment)
from .shading import (ALIGN_SIZE, away_from_lines, shaded_regions, border_fit, carry_shading, crop_region, hold_still, lines_moved, mask_shift,
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


#: line strength (`line_strength`) above which a pixel is drawn, not paper grain or compression noise
DRAWN = 0.15
#: eroded paint (areas wider than a line) makes up at least this share of what is drawn in a painted
#: frame: line art measures 0.00-0.07 (bold strokes and solid black parts are ink, fringes are too
#: thin to survive the erosion), painted cels 0.59 and more
PAINTED_SHARE = 0.15
#: paint wider than a line: the erosion's width is this share of the frame's smaller side (at least
#: PAINT_WIDTH_MIN px): thicker than the boldest strokes
PAINT_WIDTH_SHARE = 1 / 120
PAINT_WIDTH_MIN = 7


def is_coloured(img: np.ndarray) -> bool:
    """True for a frame that is already painted (filled areas, not just lines).

    Paint is what is drawn but not dark like ink (colour, or a tone). Bold line art
    (thick strokes, solid black pupils) is wide and dark but has no paint, and anti-aliased
    line fringes are paint-like but thin: so a frame is painted when eroded paint (areas
    wider than a line) makes up a good share of everything drawn."""
    s = line_strength(img)
    strong = s > DRAWN
    if strong.sum() < 16:
        return False
    paint = strong & ~is_ink(img)
    k = max(PAINT_WIDTH_MIN, int(round(min(img.shape[:2]) * PAINT_WIDTH_SHARE)) | 1)
    core = cv2.erode(paint.astype(np.uint8), np.ones((k, k), np.uint8))
    return core.sum() > PAINTED_SHARE * strong.sum()


def lines_from_cel(cel: np.ndarray) -> LineArt:
    """Line art recovered from a coloured cel: dark ink plus the edges between colour fills."""
    alpha = cel[..., 3]
    ink = (alpha >= PAINTED_ALPHA) & is_ink(cel)
    key = (cel[..., 0].astype(np.int64) << 24) | (cel[..., 1].astype(np.int64) << 16) | \
          (cel[..., 2].astype(np.int64) << 8) | (alpha >= PAINTED_ALPHA)
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
    away: np.ndarray                 # where its paint is read (`away_from_lines`)
    shaded: np.ndarray               # (n+1,) bool: it paints the region off the region's own colour
                                     # (`shaded_regions`), so its shading is carried; else it is flat


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
    painted = c[:, 3] >= PAINTED_ALPHA
    dark = is_ink(c)
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


#: line strength from which a pixel of a hint drawn on paper is part of a scribble (a stroke's core,
#: not its anti-aliased fringe, which would touch the regions beside it)
HINT_STROKE = 0.25


def hint_colours(hint: np.ndarray, labels: np.ndarray, n: int, colours: Colours) -> np.ndarray:
    """Regions touched by a hint scribble, and the scribble's colour (TRANSPARENT-1 = no hint)."""
    if hint.shape[:2] != labels.shape:
        hint = cv2.resize(hint, (labels.shape[1], labels.shape[0]), interpolation=cv2.INTER_NEAREST)
    if on_transparency(hint):
        mask = hint[..., 3] >= PAINTED_ALPHA
    else:
        mask = line_strength(hint) > HINT_STROKE
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
    painted = col >= 0
    base = np.zeros((len(col), 3), np.float32)
    base[painted] = np.array(colours.table, np.float32).reshape(-1, 3)[col[painted]]
    away = away_from_lines(prep)
    # built once per reference: every drawing coloured from it asks for them
    return RefModel(frame, cel, prep, col, from_lines, outline_lines(prep),
                    rim_colours(prep, cel) if from_lines else None, away,
                    shaded_regions(prep.seg.labels, away, cel, base) & painted)


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
        votes[key] = votes.get(key, 0.0) + ref.prep.regs.area[t]
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


#: weight of the line context in the matcher's cost for a reference without its key's line art: its
#: "lines" are every colour edge of the cel, so which share of a region's outline is ink says little
CEL_EDGE_LINE_WEIGHT = 0.2


def match_reference(regs: Regions, lab: np.ndarray, ref: RefModel, n_colours: int, veto: np.ndarray | None = None):
    """The drawing's regions matched to the reference's (`match`, without the `veto`ed pairs), the
    regions that stayed put taking the region they lie on (`stayed_put`)."""
    m = match(regs, lab, ref.prep.regs, ref.prep.seg.labels, ref.colour, n_colours,
              line_weight=1.0 if ref.from_lines else CEL_EDGE_LINE_WEIGHT, veto=veto)
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
#: a region whose match covers less than this share of it at its place moved (or its match is wrong):
#: `held_by_outline` asks its outline (half: the match lies mostly elsewhere)
MATCH_AT_PLACE = 0.5
#: the pixels, beside mask_shift's grid step, by which a region that held still may seem to have
#: moved (a pixel of line on either side)
HELD_SLACK_PX = 2.0


def held_by_outline(m, prep: Prepared, ref: RefModel) -> np.ndarray:
    """A region whose outline lies on the reference's lines where it is better than at its match's
    own shift (`outline_fit`; or, on more than half of it, on the lines of the reference regions
    that held still at its place better than on its match's own lines, `border_fit`: the inside
    of a mailbox whose rim an envelope's edge now follows) held still, whatever the matcher's areas
    and positions said: a box's upper part that a flag hid in two pieces in the reference is not
    the flag, which has swung away (the area-conserving matcher gives the box's top the
    reference's flag, and the flag the box). It takes the reference region at its place that also held still (the shift that
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
    cand = ~regs.outside & (m.ref_region > 0) & (share[np.arange(n + 1), m.ref_region] < MATCH_AT_PLACE)
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
        tol = HELD_SLACK_PX + max(tm.shape) / ALIGN_SIZE
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


@dataclass
class DrawingState:
    """What the passes of one drawing (`PASSES`) share: the drawing's regions, each region's colour
    and confidence as the passes decide them, and the per-pixel fill, image and confidence map that
    the last ones build. Every pass reads and writes only the fields its docstring names."""
    prep: Prepared
    refs: list[RefModel]
    hint: np.ndarray | None
    palette: Palette
    colours: Colours
    params: dict
    frame_no: int
    role: np.ndarray                 # each region's trace role and partner (`trace.roles`, taken before
    partner: np.ndarray              # any pass adds regions to the background)
    # per region, index 0 the lines
    colour: np.ndarray               # index into colours.table, or TRANSPARENT
    conf: np.ndarray                 # confidence
    fixed: np.ndarray                # decided by a hint: the second pass leaves it alone
    best: np.ndarray                 # best score over the references so far (confidence - RANK_PENALTY x rank)
    src_ref: np.ndarray              # which reference (rank) and region each region's colour came from
    src_reg: np.ndarray
    ref_role_same: np.ndarray        # matched to a reference region in the same trace role that the
                                     # reference painted this very colour (then the reference, not the
                                     # role rule, decides)
    # the reference being matched (`match_references` runs `REFERENCE_PASSES` for each in turn)
    rank: int = -1
    ref: RefModel | None = None
    m: MatchResult | None = None     # its match
    # finish
    speck: float = 0.0               # area up to which a region is a speck
    low_conf: float = 0.5            # --low-confidence
    line_colour: str = ""            # --line-color ("" keeps the ink's)
    ink_rgb: tuple = (0, 0, 0)
    mode: str = "keep"               # --lines
    lut: np.ndarray | None = None    # (n+1, 4) uint8: the snapped colour of each region
    coverage: np.ndarray | None = None   # ink coverage to draw over the fill
    fill: np.ndarray | None = None   # per-pixel fill carrying the references' shading (None: flat)
    carried: np.ndarray | None = None    # where the fill is known (not a guess inside its region)
    line_rgb: np.ndarray | None = None   # the carried lines' colours
    moved: np.ndarray | None = None  # where something moved (the lines differ nearby)
    scenery: np.ndarray | None = None    # scenery copied from the reference at the same place
    # outputs
    image: np.ndarray | None = None
    styles: dict = field(default_factory=dict)
    conf_map: np.ndarray | None = None
    low: list = field(default_factory=list)

    @property
    def regs(self) -> Regions:
        return self.prep.regs

    @property
    def lab(self) -> np.ndarray:
        return self.prep.seg.labels

    @property
    def n(self) -> int:
        return self.prep.regs.n

    @property
    def same_size(self) -> bool:
        """The nearest reference has the drawing's size (so its pixels at the same place count)."""
        return bool(self.refs) and self.refs[0].image.shape[:2] == self.lab.shape


#: a region of at most SPECK_SHARE of the frame (41 px at 1080p), and at least SPECK_MIN_PX, is a
#: speck: where lines cross or nearly touch, too small for its shape or place to say what it is
SPECK_SHARE = 2e-5
SPECK_MIN_PX = 4.0


def drawing_state(img: np.ndarray, refs: list[RefModel], hint: np.ndarray | None, palette: Palette,
                  colours: Colours, params: dict, frame_no: int) -> DrawingState:
    """The drawing segmented (`prepare`), every region still uncoloured (TRANSPARENT, confidence 1)."""
    prep = prepare(img, float(params.get("gap", 0.0)))
    n = prep.regs.n
    role, partner = trace.roles(prep.regs)
    h, w = prep.seg.labels.shape
    s = DrawingState(prep, refs, hint, palette, colours, params, frame_no, role, partner,
                     colour=np.full(n + 1, TRANSPARENT, int), conf=np.ones(n + 1), fixed=np.zeros(n + 1, bool),
                     best=-np.ones(n + 1), src_ref=np.full(n + 1, -1), src_reg=np.zeros(n + 1, int),
                     ref_role_same=np.zeros(n + 1, bool))
    s.speck = max(SPECK_MIN_PX, SPECK_SHARE * h * w)
    s.low_conf = float(params.get("low-confidence", 0.5))
    s.ink_rgb = prep.art.ink_rgb
    s.line_colour = str(params.get("line-color", "") or "")
    if s.line_colour:
        from .palette import parse_hex
        s.ink_rgb = parse_hex(s.line_colour, "line-color")
    s.mode = str(params.get("lines", "keep"))
    s.coverage = prep.art.coverage
    s.carried = np.zeros(prep.seg.labels.shape, bool)
    s.moved = s.scenery = np.zeros(prep.seg.labels.shape, bool)
    return s


# --- the passes over one reference (`match_references` runs them for each, nearest in time first) ---

def match_one(s: DrawingState) -> None:
    """The drawing's regions matched to the reference `s.ref`'s (`match_reference`: the matcher, and
    the regions that stayed put). Reads regs (its background), ref; writes m (colour, ref_region,
    confidence per region: the matcher's probability, at least the overlap of a region that stayed)."""
    s.m = match_reference(s.regs, s.lab, s.ref, len(s.colours.table))


def correct_by_outline(s: DrawingState) -> None:
    """Lines are exact evidence of where a part was: regions whose outline lies on the reference's
    lines at their place held still (`held_by_outline`; the matcher runs again without the pairs it
    vetoed, and the test once more on the new match), then regions lying inside one reference region
    take it (`inside_by_outline`). Reads prep, ref, rank, palette; writes m (colour, ref_region, and
    the confidence: at most the outline's fit) and regs.outside: against the nearest reference,
    without a palette, a region lying in its painted background is background (the later
    references are matched with it so)."""
    vetoed = held_by_outline(s.m, s.prep, s.ref)
    if len(vetoed):  # the reference regions they left are free for the parts that moved
        s.m = match_reference(s.regs, s.lab, s.ref, len(s.colours.table), vetoed)
        held_by_outline(s.m, s.prep, s.ref)
    # the nearest reference paints the background when there is no palette to keep to
    background = inside_by_outline(s.m, s.prep, s.ref,
                                   s.rank == 0 and s.palette.empty and paints_scenery(s.ref, s.lab.shape))
    s.regs.outside[background] = True


#: what each step further in time costs a reference's match against the nearer references' (a
#: nearer drawing differs less: at the same confidence its match is likelier right; a small cost, so
#: a clearly surer match from further away still wins)
RANK_PENALTY = 0.03


def keep_best(s: DrawingState) -> None:
    """Per region the best reference wins: confidence - RANK_PENALTY x rank in time. Reads m, ref, rank, role;
    writes colour, conf (the match's confidence), best, src_ref, src_reg, ref_role_same of the
    regions it takes."""
    m, ref = s.m, s.ref
    score = m.confidence - RANK_PENALTY * s.rank
    take = score > s.best
    s.colour[take], s.conf[take], s.best[take] = m.colour[take], m.confidence[take], score[take]
    s.src_ref[take], s.src_reg[take] = s.rank, m.ref_region[take]
    if ref.from_lines:
        r_role = trace.roles(ref.prep.regs)[0]
        mine, theirs = m.ref_region, m.ref_region[s.partner]
        same = (r_role[mine] == s.role) & (ref.colour[mine] == m.colour) & (mine > 0)
        # the role rule (the redder side is the shadow) is a guess where parts cross a trace line's
        # regions; a region and its partner matched to the two sides of one trace line of the
        # reference are painted as the reference paints those sides, whichever the rule calls the
        # shadow (highlight): the region keeps its match's colour
        pairs = np.zeros(s.n + 1, bool)
        for tone in (trace.SHADOW, trace.HIGHLIGHT):
            sides = trace.trace_pairs(ref.prep.regs, tone)
            pairs |= (s.role == tone) & sides[mine, theirs]
        same |= pairs & (mine > 0) & (theirs > 0) & (ref.colour[mine] == m.colour)
    else:
        same = np.zeros(s.n + 1, bool)
    s.ref_role_same[take] = same[take]


#: what `match_references` does with each reference, in this order (the background that one finds is
#: the background when the next is matched)
REFERENCE_PASSES = [match_one, correct_by_outline, keep_best]


# --- the passes over the drawing (`PASSES`) ---

def match_references(s: DrawingState) -> None:
    """Every reference, nearest in time first, through `REFERENCE_PASSES` (none without references).
    Reads refs; writes rank, ref, m and what those passes write (colour, conf, src_ref, src_reg,
    ref_role_same, regs.outside)."""
    for s.rank, s.ref in enumerate(s.refs):
        for p in REFERENCE_PASSES:
            p(s)


#: matcher probability from which a region's match is evidence that outweighs the trace-line role
#: rule (a guess: the redder side of a red line is the shadow, which parts crossing the line upset)
SURE_MATCH = 0.9
#: the partner's colour, from which the tone is derived, must be about as sure as the region's own
#: match (a fifth less at most) for the tone to replace that match
PARTNER_AS_SURE = 0.8


def trace_tones(s: DrawingState) -> None:
    """With references: shadows / highlights from the trace lines, in the tones the nearest reference
    paints next to their partner's colour (`tone_tables`), unless the reference itself decided
    (ref_role_same) or the partner is much less sure. Reads refs, role, partner, ref_role_same,
    colour, conf; writes colour and conf (at most the partner's) of the shadow / highlight regions."""
    if not s.refs:
        return
    colour, conf = s.colour, s.conf
    shadow_of, light_of = tone_tables(s.refs[0], s.colours)
    for t in np.nonzero(s.role)[0]:
        if s.ref_role_same[t]:
            continue
        table = shadow_of if s.role[t] == trace.SHADOW else light_of
        b = colour[s.partner[t]]
        want = table.get(int(b)) if b >= 0 else None
        if want is not None and colour[t] != want and conf[t] < SURE_MATCH and \
                conf[s.partner[t]] >= conf[t] * PARTNER_AS_SURE:
            colour[t] = want
            conf[t] = min(conf[t], conf[s.partner[t]])


def flats(s: DrawingState) -> None:
    """Without references: flats, one distinct colour per region (confidence stays 1). Reads refs,
    regs.outside; writes colour (and adds to colours)."""
    if s.refs:
        return
    for t in range(1, s.n + 1):
        if not s.regs.outside[t]:
            s.colour[t] = s.colours.add(flats_colour(t))


def clear_background(s: DrawingState) -> None:
    """The background is transparent. Reads regs.outside; writes colour."""
    s.colour[s.regs.outside] = TRANSPARENT


def hints(s: DrawingState) -> None:
    """Hints, strongest: a scribble colours every region it touches (`hint_colours`). Reads hint;
    writes colour, conf (1) and fixed of the hinted regions."""
    if s.hint is None:
        return
    hc = hint_colours(s.hint, s.lab, s.n, s.colours)
    hinted = hc >= -1
    hinted[0] = False
    s.colour[hinted] = hc[hinted]
    s.conf[hinted] = 1.0
    s.fixed |= hinted


def flat_tones(s: DrawingState) -> None:
    """Without references: shadow / highlight regions take their partner's (hinted or flat) colour's
    tone from the palette (`Palette.tone`). Reads refs, role, partner, fixed, regs.outside, colour;
    writes colour (confidence unchanged)."""
    if s.refs:
        return
    for t in np.nonzero(s.role)[0]:
        if s.fixed[t] or s.regs.outside[t]:
            continue
        b = s.colour[s.partner[t]]
        if b >= 0:
            tone = "shadow" if s.role[t] == trace.SHADOW else "highlight"
            s.colour[t] = s.colours.add(s.palette.tone(s.colours.table[b], tone))


def specks(s: DrawingState) -> None:
    """Second pass: specks and unsure scraps take their main neighbour's colour
    (`finish.absorb_specks`). Reads regs, fixed, speck, low_conf; writes colour and conf (at most the
    neighbour's; 0.5 for a speck)."""
    finish.absorb_specks(s.regs, s.colour, s.conf, s.fixed, s.speck, s.low_conf)


def snap(s: DrawingState) -> None:
    """Every region's colour snapped to the palette. Reads colour, palette; writes lut."""
    lut = np.zeros((s.n + 1, 4), np.uint8)
    for t in range(1, s.n + 1):
        if s.colour[t] >= 0:
            rgb, _ = s.palette.snap(s.colours.table[s.colour[t]])
            lut[t, :3], lut[t, 3] = rgb, 255
    s.lut = lut


def carry(s: DrawingState) -> None:
    """With references and no palette to keep to, the references' shading comes along
    (`shading.carry_shading`). Reads lut, colour, src_ref, src_reg, refs, line_colour; writes fill,
    carried, line_rgb and conf (at most how well the shading could be carried)."""
    if not (s.refs and s.palette.empty):
        return
    art = s.prep.art
    s.fill, s.carried, fit, s.line_rgb = carry_shading(s.lab, s.regs, s.lut, s.colour, s.src_ref, s.src_reg, s.refs,
                                                       None if s.line_colour else art.coverage > finish.INK_VISIBLE,
                                                       art.line_width, s.prep.seg.free)
    s.conf = np.minimum(s.conf, fit)


def scenery(s: DrawingState) -> None:
    """The nearest reference's painted background at the same place (`paint_scenery`), where the
    lines held still (`lines_moved`). Only over a carried fill, from a reference of the drawing's
    size. Reads fill, refs; writes fill, moved and scenery (the confidence map's scenery)."""
    if s.fill is None or not s.same_size:
        return
    moved = lines_moved(~s.prep.seg.free, s.refs[0])
    s.scenery, shifted = paint_scenery(s.fill, s.prep, moved, s.refs[0])
    moved |= shifted & s.scenery  # the scenery there moved: not the reference at the same place
    s.moved = moved


def hold(s: DrawingState) -> None:
    """Where the drawing held still, the reference's pixels, its lines as it draws them
    (`hold_still`; with the lines kept in their own colour). Reads fill, moved, regs.outside, refs,
    line_colour, mode; writes fill, coverage (none where held) and carried."""
    if s.fill is None or not s.same_size or s.line_colour or s.mode != "keep":
        return
    still = hold_still(s.fill, s.lab, ~s.prep.seg.free, s.moved, s.regs.outside, s.refs[0])
    s.coverage = np.where(still, 0.0, s.coverage).astype(np.float32)
    s.carried |= still


def paint(s: DrawingState) -> None:
    """The frame: the fill (or the lut's flat colours) with the lines over it (`finish.paint`). Reads
    lut, coverage, fill, line_rgb, ink_rgb, mode; writes image."""
    art = s.prep.art
    s.image = finish.paint(s.lab, s.lut, s.coverage, art.ink, art.red | art.blue, s.ink_rgb, s.mode, s.fill,
                           s.line_rgb)


def paint_styles(s: DrawingState) -> None:
    """One flat frame per palette style. Reads lut, palette, ink_rgb, mode; writes styles."""
    art = s.prep.art
    for style in s.palette.styles:
        slut = s.lut.copy()
        for t in range(1, s.n + 1):
            if slut[t, 3]:
                slut[t, :3] = s.palette.apply_style(style, tuple(int(c) for c in s.lut[t, :3]))
        s.styles[style] = finish.paint(s.lab, slut, art.coverage, art.ink, art.red | art.blue,
                                       s.palette.apply_style(style, s.ink_rgb), s.mode)


def confidence(s: DrawingState) -> None:
    """The confidence map: each region's confidence, over a carried fill lowered to UNSURE_CONFIDENCE
    where the fill is a guess inside its region (not carried), and on scenery SCENERY_CONFIDENCE
    (UNSURE_CONFIDENCE where it moved); and the low-confidence regions. Reads conf, lut, fill,
    carried, scenery, moved, low_conf, speck; writes conf_map and low."""
    regs = s.regs
    conf_map = s.conf.astype(np.float32)[s.lab]
    if s.fill is not None:  # a pixel whose region's shading could not be carried is a guess inside it
        conf_map = np.where(s.carried | (s.lut[:, 3] == 0)[s.lab], conf_map,
                            np.minimum(conf_map, UNSURE_CONFIDENCE))
        conf_map = np.where(s.scenery, np.where(s.moved, UNSURE_CONFIDENCE, SCENERY_CONFIDENCE), conf_map)
    s.conf_map = conf_map
    for t in range(1, s.n + 1):
        if s.conf[t] < s.low_conf and not regs.outside[t] and regs.area[t] > s.speck:
            x0, y0, x1, y1 = (int(v) for v in regs.bbox[t])
            s.low.append({"frame": s.frame_no, "bbox": [x0, y0, x1, y1],
                          "centroid": [round(float(regs.centroid[t, 0]), 1), round(float(regs.centroid[t, 1]), 1)],
                          "area": int(regs.area[t]), "confidence": round(float(s.conf[t]), 3)})


#: the passes over one drawing, in this order (the order matters: each reads what the earlier ones
#: decided); see each pass's docstring for the fields of `DrawingState` it reads and writes
PASSES = [match_references, trace_tones, flats, clear_background, hints, flat_tones, specks, snap, carry,
          scenery, hold, paint, paint_styles, confidence]


def colour_drawing(img: np.ndarray, refs: list[RefModel], hint: np.ndarray | None, palette: Palette,
                   colours: Colours, params: dict, frame_no: int) -> FrameResult:
    s = drawing_state(img, refs, hint, palette, colours, params, frame_no)
    for p in PASSES:
        p(s)
    return FrameResult(s.image, s.conf_map, s.low, s.colour, s.lab, s.styles)
