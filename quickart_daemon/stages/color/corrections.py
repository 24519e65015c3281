"""Corrections to a match: evidence the matcher does not weigh. Lines are exact evidence of where a
part was: a region whose outline lies on the reference's lines at its place held still
(`held_by_outline`), one lying inside a reference region is that region (`inside_by_outline`), and
one matched to a part that another region of its shape has taken, while its own outline does not lie
on that part's lines, is what the part uncovered (`uncovered_by_outline`).
(A region's overlap with the reference region at its place is not: the matcher weighs overlaps
already, and overriding it measured nothing on the development set and cost flat and synthetic cels,
docs/color.md's ablation.)"""

from __future__ import annotations

import numpy as np

from .align import (ALIGN_SIZE, best_turn, border_fit, congruence, crop_region, mask_shift, outline_fit, outline_fits,
                    region_shape, region_shift)
from .features import Regions
from .match import CONGRUENT_FROM, match, region_overlap
from .reference import Prepared, RefModel


#: weight of the line context in the matcher's cost for a reference without its key's line art: its
#: "lines" are every colour edge of the cel, so which share of a region's outline is ink says little
CEL_EDGE_LINE_WEIGHT = 0.2


def match_reference(regs: Regions, lab: np.ndarray, ref: RefModel, n_colours: int, veto: np.ndarray | None = None):
    """The drawing's regions matched to the reference's (`match`, without the `veto`ed pairs)."""
    return match(regs, lab, ref.prep.regs, ref.prep.seg.labels, ref.colour, n_colours,
                 line_weight=1.0 if ref.from_lines else CEL_EDGE_LINE_WEIGHT, veto=veto)


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
    that the reference's lines leave open, closed in the drawing) is background, unless its outline
    lies on its match's lines as well once turned back (`best_turn`: a forearm that swung out into
    the paper, its shifted outline a poor fit); returns those. (The turn is asked of the background
    test only: asked of both, it cost tg_duck_safe at 8 frames 0.004, docs/color-log.md.)"""
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
        off, t_crop, r_crop = region_shift(lab, regs, t, rlab, rregs, m.ref_region[t])
        at_rest, at_shift = outline_fits(lab, prep.seg.free, t, regs.bbox[t], r_line, off)
        turn = best_turn(t_crop, r_crop, off) if in_scenery[t] and at_rest > at_shift else None
        if turn is not None:  # a part that turned lies on its match's lines once turned back, not shifted
            at_shift = max(at_shift, outline_fit(lab, prep.seg.free, t, regs.bbox[t], r_line, turn))
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


#: a region whose outline lies on less than this share of its match's lines (shifted or turned onto
#: it) is not that part (`uncovered_by_outline`; 0.4 took pieces of limbs that did lie partly on
#: them, docs/color-log.md)
UNCOVERED_FIT = 0.3
#: or that shares more than this share of its outline with the region that is the part (a sliver of
#: torso beside the upper arm that swung over it, its long side the arm's outline: it lies on the
#: arm's lines at 0.38-0.63); 0.2 took pieces that met the part over less, docs/color.md
UNCOVERED_ALONG = 0.3


def _fit_on_region(lab, free, regs, t: int, rlab, rregs, r: int, r_line, reach: int) -> float:
    """How much of region t's outline lies on reference region r's own lines once laid on r (shifted,
    or turned when that fits its shape better: `best_turn`)."""
    off, t_crop, r_crop = region_shift(lab, regs, t, rlab, rregs, r)
    fit = border_fit(lab, free, t, regs.bbox[t], r_line, rlab, [r], off, reach)
    turn = best_turn(t_crop, r_crop, off)
    if turn is not None:
        fit = max(fit, border_fit(lab, free, t, regs.bbox[t], r_line, rlab, [r], turn, reach))
    return fit


def uncovered_by_outline(m, prep: Prepared, ref: RefModel) -> None:
    """A part that moved uncovers what it lay on: a region at the place a limb left (a piece of the
    body between the limbs that swung away) is matched to the limb, which lay there, while the limb
    itself has moved and is matched too. When a reference part's match includes a region of its
    very shape (`congruence` at least CONGRUENT_FROM) whose outline lies on its lines (more than
    half, HELD_MOST), another region matched to it whose outline does not lie on them
    (UNCOVERED_FIT), or that lies along that region (UNCOVERED_ALONG), is what the part uncovered,
    unless a reference part of the same colour is left unmatched (it is likelier that twin, half
    hidden). It takes what lies behind the parts around it: the reference region that the matches
    of its neighbours border the most (each neighbour weighted by the outline it shares with the
    region, each of its match's borders by its share of that match's outline), at most as sure as
    that vote's share. Updates `m` in place."""
    lab, rlab = prep.seg.labels, ref.prep.seg.labels
    regs, rregs = prep.regs, ref.prep.regs
    if rlab.shape != lab.shape:
        return
    reach = int(np.ceil(prep.art.line_width)) + 1  # a region's lines: those within a line's width of it
    claimants: dict[int, list[int]] = {}
    for t in np.nonzero(~regs.outside & (m.ref_region > 0))[0]:
        if t:
            claimants.setdefault(int(m.ref_region[t]), []).append(int(t))
    # the share of each reference region's outline that it shares with each other region
    r_border = rregs.adj.astype(np.float64)
    np.fill_diagonal(r_border, 0)
    r_border[:, rregs.outside] = 0
    r_border[:, ref.colour < 0] = 0
    r_border /= np.maximum(r_border.sum(1, keepdims=True), 1e-9)
    for r, ts in claimants.items():
        if len(ts) < 2:
            continue
        # a reference part of the same colour that nothing took: the region is likelier that twin,
        # half hidden (a back foot behind the front one), than what the part uncovered
        free_twin = (ref.colour == ref.colour[r]) & ~rregs.outside
        free_twin[[r, *claimants]] = False
        if free_twin.any():
            continue
        fits = {t: _fit_on_region(lab, prep.seg.free, regs, t, rlab, rregs, r, ref.outline, reach) for t in ts}
        r_shape = region_shape(rlab, r, rregs.bbox[r])
        owners = [t for t in ts if fits[t] > HELD_MOST and
                  congruence(region_shape(lab, t, regs.bbox[t]), r_shape) >= CONGRUENT_FROM]
        if not owners:
            continue
        for t in ts:
            if t in owners:
                continue
            # a sliver beside the part that moved over it lies on the part's lines along the side
            # they share: lying along the part is evidence enough
            along = regs.adj[t, owners].sum() / max(regs.adj[t].sum(), 1)
            if fits[t] >= UNCOVERED_FIT and along <= UNCOVERED_ALONG:
                continue
            around = [u for u in np.nonzero(regs.adj[t])[0] if u != t and not regs.outside[u] and m.ref_region[u] > 0]
            behind = sum(regs.adj[t, u] * r_border[m.ref_region[u]] for u in around)
            if not np.any(behind > 0):
                continue
            q = int(np.argmax(behind))
            m.colour[t], m.ref_region[t] = ref.colour[q], q
            m.confidence[t] = min(m.confidence[t], behind[q] / behind.sum())
