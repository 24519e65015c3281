"""The colour stage's method for one drawing: `PASSES`, in order, over one `DrawingState` (each pass's
docstring names the fields it reads and writes). The passes call into the modules by concern:
`reference` (the reference model), `match` and `corrections` (which reference region each region
is), `trace` (shadow and highlight sides), `finish` (painting), `shading` (carrying the
reference's shading), `scenery` (the background, what held still)."""

from __future__ import annotations

import colorsys
from dataclasses import dataclass, field

import cv2
import numpy as np

from . import finish, trace
from .corrections import held_by_outline, inside_by_outline, match_reference, uncovered_by_outline
from .features import Regions
from .match import TRANSPARENT, MatchResult
from .palette import RGB, Palette
from .reference import Colours, Prepared, RefModel, prepare, region_colours
from .regions import PAINTED_ALPHA, line_strength, on_transparency
from .scenery import hold_still, lines_moved, paint_scenery, paints_scenery
from .shading import carry_shading


def flats_colour(i: int) -> RGB:
    """A distinct colour for region i (flats): hues a golden-ratio step apart never repeat and stay
    far from their neighbours; saturation and value cycle over 3 and 4 steps, so neighbouring
    ids also differ in lightness."""
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
    # what `match_references` runs for each reference (a subset only for the ablation, `colour_drawing`)
    reference_passes: list = field(default_factory=lambda: REFERENCE_PASSES)
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


def match_one(s: DrawingState) -> None:
    """The drawing's regions matched to the reference `s.ref`'s (`match_reference`). Reads regs (its
    background), ref; writes m (colour, ref_region, confidence per region: the matcher's probability)."""
    s.m = match_reference(s.regs, s.lab, s.ref, len(s.colours.table))


def correct_by_outline(s: DrawingState) -> None:
    """Lines are exact evidence of where a part was: regions whose outline lies on the reference's
    lines at their place held still (`held_by_outline`; the matcher runs again without the pairs it
    vetoed, and the test once more on the new match), then pieces that a moved part uncovered take
    what lies behind the parts around them (`uncovered_by_outline`), then regions lying inside one
    reference region take it (`inside_by_outline`). Reads prep, ref, rank, palette; writes m
    (colour, ref_region, and the confidence: at most the outline's fit) and prep: against the
    nearest reference, without a palette, a region lying in its painted background is background,
    in a new `Prepared` (`with_background`; the later references are matched with it so)."""
    vetoed = held_by_outline(s.m, s.prep, s.ref)
    if len(vetoed):  # the reference regions they left are free for the parts that moved
        s.m = match_reference(s.regs, s.lab, s.ref, len(s.colours.table), vetoed)
        held_by_outline(s.m, s.prep, s.ref)
    uncovered_by_outline(s.m, s.prep, s.ref)
    # the nearest reference paints the background when there is no palette to keep to
    background = inside_by_outline(s.m, s.prep, s.ref,
                                   s.rank == 0 and s.palette.empty and paints_scenery(s.ref, s.lab.shape))
    if np.any(background):
        s.prep = s.prep.with_background(background)


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
        r_role = ref.role
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


def match_references(s: DrawingState) -> None:
    """Every reference, nearest in time first, through `REFERENCE_PASSES` (none without references).
    Reads refs; writes rank, ref, m and what those passes write (colour, conf, src_ref, src_reg,
    ref_role_same, regs.outside)."""
    for s.rank, s.ref in enumerate(s.refs):
        for p in s.reference_passes:
            p(s)


#: matcher probability from which a region's match is evidence that outweighs the trace-line role
#: rule (a guess: the redder side of a red line is the shadow, which parts crossing the line upset)
SURE_MATCH = 0.9
#: the partner's colour, from which the tone is derived, must be about as sure as the region's own
#: match (a fifth less at most) for the tone to replace that match
PARTNER_AS_SURE = 0.8


def trace_tones(s: DrawingState) -> None:
    """With references: shadows / highlights from the trace lines, in the tones the nearest reference
    paints next to their partner's colour (`RefModel.tones`), unless the reference itself decided
    (ref_role_same) or the partner is much less sure. Reads refs, role, partner, ref_role_same,
    colour, conf; writes colour and conf (at most the partner's) of the shadow / highlight regions."""
    if not s.refs:
        return
    colour, conf = s.colour, s.conf
    shadow_of, light_of = s.refs[0].tones
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


def lit_sides(s: DrawingState) -> None:
    """With references, the other way across a trace line: an unsure region (below SURE_MATCH) most of
    whose trace line it shares with sure regions of one shadow (highlight) tone is that tone's base
    colour, as the nearest reference paints them (`RefModel.tones`), unless it already is the base or
    one of its tones (a shadow meeting its own highlight). A sliver of torso that a forearm
    uncovered above the shadow line: the role rule calls it the shadow (its outline is the redder),
    the matcher the hand that lay there. Only a tone painted beside one base and never as a base
    itself tells the base. Reads refs, the drawing's trace lines, colour, conf; writes colour (its
    confidence stays the match's: unsure)."""
    if not s.refs:
        return
    colour, conf = s.colour, s.conf
    shadow_of, light_of = s.refs[0].tones
    for tone, table in ((trace.SHADOW, shadow_of), (trace.HIGHLIGHT, light_of)):
        tones = list(table.values())
        base_of = {v: k for k, v in table.items() if tones.count(v) == 1 and v not in table}
        pairs = trace.trace_pairs(s.regs, tone)
        length = trace.along(s.regs, tone)
        for a in np.nonzero(pairs.any(1) & (conf < SURE_MATCH))[0]:
            votes: dict[int, float] = {}
            for b in np.nonzero(pairs[a])[0]:
                want = base_of.get(int(colour[b])) if conf[b] >= SURE_MATCH else None
                if want is not None:
                    votes[want] = votes.get(want, 0.0) + length[a, b]
            if not votes:
                continue
            want, said = max(votes.items(), key=lambda kv: kv[1])
            if said * 2 > length[a, pairs[a]].sum() and \
                    colour[a] not in (want, shadow_of.get(want), light_of.get(want)):
                colour[a] = want


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
#: decided); see each pass's docstring for the fields of `DrawingState` it reads and writes. Removed
#: after the ablation: `specks`, which changed nothing measurable on any bench (docs/color.md, "Ablation")
PASSES = [match_references, trace_tones, lit_sides, flats, clear_background, hints, flat_tones, snap, carry,
          scenery, hold, paint, paint_styles, confidence]


def colour_drawing(img: np.ndarray, refs: list[RefModel], hint: np.ndarray | None, palette: Palette,
                   colours: Colours, params: dict, frame_no: int, passes: list = PASSES,
                   reference_passes: list = REFERENCE_PASSES) -> FrameResult:
    """One drawing through `passes` (each reference through `reference_passes`). Subsets of the two
    lists, in their order, are for measuring what a pass is worth (`bench/ablation.py`)."""
    s = drawing_state(img, refs, hint, palette, colours, params, frame_no)
    s.reference_passes = reference_passes
    for p in passes:
        p(s)
    return FrameResult(s.image, s.conf_map, s.low, s.colour, s.lab, s.styles)
