"""Matching the regions of a drawing to the regions of a coloured reference.

Every target region t (background excluded) gets a probability over reference regions r
from a cost that mixes
- position within the character (centroid relative to the character's centre and size),
  corrected by the displacement its matched neighbours show, or, whichever is nearer, as a part
  turned at the joint it shares with a surely matched neighbour (`_turned_at_joint`),
- size (log area ratio) and shape (elongation),
- line context (which share of its outline is ink, red trace, blue trace),
- pixel overlap after aligning the two characters (strong for small motion),
- a reward, among its likeliest candidates, for one whose shape is the region's own whatever its
  turn (`align.congruence`: a hand is a circle wherever the forearm swung it),
and is refined by relaxation over the neighbourhood graph (graph matching): a pairing
t -> r is supported when the neighbours t' of t are matched to neighbours r' of r at about
the same distance (|t - t'| ~ |r - r'|, rotation invariant, so a forearm follows its upper
arm through a large swing). Each round's probabilities go through an unbalanced optimal
transport that conserves area (a reference part takes about its own area of the target),
a soft global assignment: two target parts cannot both become the upper arm while the
forearm goes unused. A target region that borders the background never matches an enclosed
hole of the reference (a transparent region that is not the background). The colour of t is the colour with the highest total probability;
that probability is the region's confidence.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .align import Shape, congruence, region_shape
from .features import Regions

TRANSPARENT = -1  # colour index of "no paint" (holes, outside)


@dataclass
class MatchResult:
    colour: np.ndarray      # (n+1,) index into the reference's colour table, TRANSPARENT for none
    confidence: np.ndarray  # (n+1,) 0..1
    ref_region: np.ndarray  # (n+1,) best reference region


def region_overlap(lab: np.ndarray, n: int, rlab: np.ndarray, nr: int) -> np.ndarray:
    """Pixels shared at the same place by each region (0..n) of `lab` and each (0..nr) of `rlab`."""
    pair = lab.astype(np.int64) * (nr + 1) + rlab
    return np.bincount(pair.ravel(), minlength=(n + 1) * (nr + 1)).reshape(n + 1, nr + 1)


def _overlap(t_lab: np.ndarray, r_lab: np.ndarray, shift: np.ndarray, nt: int, nr: int) -> np.ndarray:
    """ov[t, r]: share of target region t that lands on reference region r after moving the
    reference by `shift` (pixels), both label maps at the same resolution (subsampled)."""
    h, w = t_lab.shape
    step = max(1, int(round(np.sqrt(h * w / OVERLAP_PX))))
    tl = t_lab[::step, ::step]
    dx, dy = int(round(shift[0] / step)), int(round(shift[1] / step))
    rl = r_lab[::step, ::step]
    moved = np.zeros_like(tl)
    hh, ww = tl.shape
    ys0, ys1 = max(0, dy), min(hh, hh + dy)
    xs0, xs1 = max(0, dx), min(ww, ww + dx)
    if ys1 > ys0 and xs1 > xs0:
        moved[ys0:ys1, xs0:xs1] = rl[ys0 - dy:ys1 - dy, xs0 - dx:xs1 - dx]
    m = region_overlap(tl, nt, moved, nr).astype(np.float64)
    return m / np.maximum(m.sum(1, keepdims=True), 1)


# matching parameters (tuned on synthetic cels at 960x540, checked on held-out seeds)
TEMP = 0.35        # softmax temperature of the cost
OT_TAU = 1.0       # strength of the reference-area constraint in the transport (0: off)
OT_ITERS = 30
GEO_SIGMA = 0.2    # tolerance on neighbour distances, character units
SELF_W = 0.25      # support for a region continuing the same reference region as its neighbour
W_SUPPORT = 5.0    # weight of the neighbourhood support in the cost
W_POS = 6.0        # weight of the position in the character
W_LINE = 2.0       # weight of the line context
ITERATIONS = 4     # relaxation rounds
W_HOLE = 20.0      # cost of matching a region that borders the background to an enclosed hole
W_AREA = 1.2       # weight of the log area ratio
W_SHAPE = 1.5      # weight of the elongation difference (for regions of SHAPE_SURE_PX across and more)
W_OVERLAP = 2.5    # weight (a reward) of the pixel overlap after aligning the characters
W_CONGRUENT = 4.0     # weight (a reward) of a congruent shape (chosen on the flat cels; docs/color.md)
CONGRUENT_TOP = 3     # candidates per region asked for it (the first round's likeliest)
CONGRUENT_FROM = 0.8  # intersection over union from which a shape counts as congruent (0 there, 1 at 1)
SHAPE_SURE_PX = 12.0   # a region narrower than this (sqrt of its area) has an unreliable shape: its
SHAPE_LEAST = 0.2      # shape's weight scales down with its size, to SHAPE_LEAST at most
SAME_SCALE = 0.25  # |log zoom| below which the two characters are drawn at one scale (the overlap counts)
OVERLAP_PX = 250_000   # the overlap is counted on a grid of about this many pixels (subsampled)


def _transport(K: np.ndarray, a: np.ndarray, b: np.ndarray, rho: float) -> np.ndarray:
    """Unbalanced optimal transport (entropic, Sinkhorn) from the affinities K: every target
    region (mass a: its area) is fully assigned; each reference region takes about its own
    area (mass b), a soft constraint of strength rho (KL). So two target regions cannot
    both claim one reference part while another part of the same size goes unused, yet
    a part split in two by an occluder still maps to one reference region.
    Returns the plan normalised per target row."""
    K = np.maximum(K, 1e-300)
    v = np.ones(K.shape[1])
    u = np.ones(K.shape[0])
    f = rho / (rho + 1.0)
    for _ in range(OT_ITERS):
        u = a / np.maximum(K @ v, 1e-300)
        v = (b / np.maximum(K.T @ u, 1e-300)) ** f
    plan = K * u[:, None] * v[None, :]
    return plan / np.maximum(plan.sum(1, keepdims=True), 1e-300)


def _geo_support(P: np.ndarray, At: np.ndarray, Dt: np.ndarray, edges: tuple) -> np.ndarray:
    """support[t, r]: how well the neighbours of t, as matched now, agree with t -> r. Each
    neighbour t' (weight: its share of t's shared outline) votes with its best match r'
    among the neighbours of r, discounted when the distance t-t' differs from r-r' (a
    rotation-invariant pair relation: a forearm stays as far from its upper arm whatever
    the swing); t' continuing r itself (a part split by an occluder) counts SELF_W."""
    ea, eb, ed = edges  # reference edges a -> b (both directions) and their lengths
    nt, nr = P.shape
    sup = np.zeros((nt, nr))
    for t in range(nt):
        nb = np.nonzero(At[t] > 0)[0]
        if len(nb) == 0:
            continue
        g = np.exp(-((Dt[t, nb][:, None] - ed[None, :]) / GEO_SIGMA) ** 2) * P[nb][:, eb]  # (k, E)
        best = SELF_W * P[nb]                                                           # (k, nr)
        for i in range(len(nb)):
            np.maximum.at(best[i], ea, g[i])
        sup[t] = At[t, nb] @ best
    return sup


def _joint_centres(lab: np.ndarray, n: int) -> np.ndarray:
    """(n+1, n+1, 2): the centre (x, y) of the boundary two regions share (where they are
    jointed), NaN where they do not meet. Summed over the meeting pairs only (a dense float64 sum
    per pair would take 24 bytes a pair: hundreds of MB at thousands of regions)."""
    codes, xs, ys = [], [], []
    for a, b, ox, oy in ((lab[:, :-1], lab[:, 1:], 0.5, 0.0), (lab[:-1], lab[1:], 0.0, 0.5)):
        diff = a != b
        y, x = np.nonzero(diff)
        aa, bb = a[diff].astype(np.int64), b[diff].astype(np.int64)
        codes += [aa * (n + 1) + bb, bb * (n + 1) + aa]
        xs += [x + ox, x + ox]
        ys += [y + oy, y + oy]
    out = np.full(((n + 1) ** 2, 2), np.nan, np.float32)
    if codes:
        pair, inv = np.unique(np.concatenate(codes), return_inverse=True)
        cnt = np.bincount(inv)
        out[pair, 0] = np.bincount(inv, np.concatenate(xs)) / cnt
        out[pair, 1] = np.bincount(inv, np.concatenate(ys)) / cnt
    return out.reshape(n + 1, n + 1, 2)


#: a neighbour's match is relied on as a pivot when it is more likely than all its others together
SURE = 0.5


def _turned_at_joint(P, At, Ar, T, R, pt, pr, jt, jr, sh_t, sh_r, disp) -> np.ndarray:
    """cost[t, r] of t -> r as a part turned at the joint J it shares with a surely matched
    neighbour u -> r' (a forearm swung at the elbow while the upper arm held): the joint moved as
    u did (|J_tu - disp_u - J_rr'|), t is as far from it as r is from J_rr' whatever the turn,
    and the joint is as long a share of both outlines (a limb lying on the body meets it all
    round, a jointed one over a short stretch). All terms in character units or shares of an
    outline, unweighted. inf where no neighbour explains the pair."""
    nT, nR = P.shape
    j = P.argmax(1)
    sure = P.max(1) > SURE
    cost = np.full((nT, nR), np.inf)
    for t in range(nT):
        for u in np.nonzero((At[t] > 0) & sure)[0]:
            rn = np.nonzero(Ar[:, j[u]])[0]
            if len(rn) == 0:
                continue
            J, Jr = jt[T[t], T[u]], jr[R[rn], R[j[u]]]
            c = np.linalg.norm(J - disp[u] - Jr, axis=1) + \
                np.abs(np.linalg.norm(pt[t] - J) - np.linalg.norm(pr[rn] - Jr, axis=1)) + \
                np.abs(sh_t[t, u] - sh_r[rn, j[u]]) + np.abs(sh_t[u, t] - sh_r[j[u], rn])
            cost[t, rn] = np.minimum(cost[t, rn], np.nan_to_num(c, nan=np.inf))
    return cost


def match(tgt: Regions, t_lab: np.ndarray, ref: Regions, r_lab: np.ndarray, ref_colour: np.ndarray,
          n_colours: int, iterations: int | None = None, line_weight: float = 1.0,
          veto: np.ndarray | None = None) -> MatchResult:
    """`veto`: (target, reference) region pairs ruled out by other evidence (their outlines)."""
    nt, nr = tgt.n, ref.n
    iterations = ITERATIONS if iterations is None else iterations
    T = np.array([t for t in range(1, nt + 1) if not tgt.outside[t]], int)
    R = np.array([r for r in range(1, nr + 1) if not ref.outside[r]], int)
    colour = np.full(nt + 1, TRANSPARENT, int)
    conf = np.ones(nt + 1)
    best_r = np.zeros(nt + 1, int)
    if len(R) == 0 or len(T) == 0:
        colour[tgt.outside] = TRANSPARENT
        return MatchResult(colour, conf, best_r)
    nT = len(T)
    s_t, s_r = tgt.char_scale, ref.char_scale
    zoom = s_t / max(s_r, 1.0)
    # positions in character units
    pt = (tgt.centroid[T] - tgt.char_center) / s_t
    pr = (ref.centroid[R] - ref.char_center) / s_r
    la_t = np.log(np.maximum(tgt.area[T], 1) / s_t ** 2)
    la_r = np.log(np.maximum(ref.area[R], 1) / s_r ** 2)
    el_t = tgt.size[T, 1] / np.maximum(tgt.size[T, 0], 1e-6)
    el_r = ref.size[R, 1] / np.maximum(ref.size[R, 0], 1e-6)
    c_area = np.abs(la_t[:, None] - la_r[None, :])
    c_shape = np.abs(el_t[:, None] - el_r[None, :])
    c_line = np.abs(tgt.line_ctx[T, None, :3] - ref.line_ctx[None, R, :3]).sum(2)
    # same-scale overlap: move the reference character onto the target character
    if t_lab.shape == r_lab.shape and abs(np.log(zoom)) < SAME_SCALE:
        ov_full = _overlap(t_lab, r_lab, tgt.char_center - ref.char_center, nt, nr)
        ov = ov_full[np.ix_(T, R)]
    else:
        ov = np.zeros((nT, len(R)))
    # masses for the area-conserving assignment (same total on both sides)
    a_t = np.maximum(tgt.area[T], 1.0) / s_t ** 2
    a_r = np.maximum(ref.area[R], 1.0) / s_r ** 2
    a_r = a_r * a_t.sum() / a_r.sum()
    # tiny regions have unreliable shapes
    small_t = np.clip(np.sqrt(tgt.area[T]) / SHAPE_SURE_PX, SHAPE_LEAST, 1.0)[:, None]
    # enclosed holes (transparent reference regions that are not the background, e.g. the gap
    # between the legs) never border the background; a target region that does over part of
    # its outline is a part of the character, not a hole (legs crossing between key and target)
    out_ids = np.nonzero(tgt.outside)[0]
    out_t = tgt.adj[np.ix_(T, out_ids)].sum(1) / np.maximum(tgt.adj[T].sum(1), 1)
    hole_r = (ref_colour[R] == TRANSPARENT).astype(np.float64)
    c_hole = W_HOLE * out_t[:, None] * hole_r[None, :]
    if veto is not None and len(veto):
        ti, ri = np.full(nt + 1, -1), np.full(nr + 1, -1)
        ti[T], ri[R] = np.arange(nT), np.arange(len(R))
        a, b = ti[veto[:, 0]], ri[veto[:, 1]]
        c_hole[a[(a >= 0) & (b >= 0)], b[(a >= 0) & (b >= 0)]] += W_HOLE
    base = (c_hole + W_AREA * c_area + W_SHAPE * c_shape * small_t + W_LINE * line_weight * c_line - W_OVERLAP * ov)
    if W_CONGRUENT > 0 and abs(np.log(zoom)) < SAME_SCALE:
        # the same shape whatever its turn (the characters are drawn at one scale: no scaling), a
        # reward for the likeliest candidates (a shape cut by an occluder is not congruent, and is
        # not punished for it)
        first = base + W_POS * np.linalg.norm(pt[:, None, :] - pr[None, :, :], axis=2)
        r_shapes: dict[int, Shape] = {}  # a reference region is a candidate of many regions: measured once
        for i in range(nT):
            t_shape = region_shape(t_lab, T[i], tgt.bbox[T[i]])
            for j in np.argsort(first[i])[:CONGRUENT_TOP]:
                if j not in r_shapes:
                    r_shapes[j] = region_shape(r_lab, R[j], ref.bbox[R[j]])
                fit = congruence(t_shape, r_shapes[j])
                base[i, j] -= W_CONGRUENT * max(0.0, (fit - CONGRUENT_FROM) / (1 - CONGRUENT_FROM))
    # neighbourhood: row-normalised adjacency of the target, reachability within the reference
    At = tgt.adj[np.ix_(T, T)].astype(np.float64)
    np.fill_diagonal(At, 0)
    At /= np.maximum(At.sum(1, keepdims=True), 1)
    Ar = ref.adj[np.ix_(R, R)] > 0
    np.fill_diagonal(Ar, False)
    ea, eb = np.nonzero(Ar)
    edges = (ea, eb, np.linalg.norm(pr[ea] - pr[eb], axis=1))
    Dt = np.linalg.norm(pt[:, None] - pt[None], axis=2)
    disp = np.zeros((nT, 2))  # displacement of each target region in character units
    P = None
    w_pos = W_POS
    # joints: where two regions meet, and which share of each one's outline they meet over
    jt = (_joint_centres(t_lab, nt) - tgt.char_center) / s_t
    jr = (_joint_centres(r_lab, nr) - ref.char_center) / s_r
    sh_t = tgt.adj[np.ix_(T, T)] / np.maximum(tgt.adj[T].sum(1, keepdims=True), 1)
    sh_r = ref.adj[np.ix_(R, R)] / np.maximum(ref.adj[R].sum(1, keepdims=True), 1)
    for it in range(iterations):
        c_pos = np.linalg.norm((pt - disp)[:, None, :] - pr[None, :, :], axis=2)
        if P is not None:  # or turned at a joint with a surely matched neighbour, whichever is nearer
            c_pos = np.minimum(c_pos, _turned_at_joint(P, At, Ar, T, R, pt, pr, jt, jr, sh_t, sh_r, disp))
        cost = base + w_pos * c_pos
        if P is not None:
            cost = cost - W_SUPPORT * _geo_support(P, At, Dt, edges)
        cost -= cost.min(1, keepdims=True)
        P = np.exp(-cost / TEMP)
        P /= P.sum(1, keepdims=True)
        if OT_TAU > 0:
            P = _transport(P, a_t, a_r, OT_TAU / TEMP)
        # displacement: from confident matches, smoothed over the neighbourhood graph
        j = P.argmax(1)
        c = P.max(1)
        d = pt - pr[j]
        wgt = (c * np.sqrt(tgt.area[T]))[:, None]
        W = At + np.eye(nT)
        num = W @ (d * wgt)
        den = W @ wgt
        glob = (d * wgt).sum(0) / max(wgt.sum(), 1e-9)
        disp = np.where(den > 1e-9, num / np.maximum(den, 1e-9), glob)
        # mix own and neighbourhood estimate: own when confident
        disp = c[:, None] * d + (1 - c[:, None]) * disp
    # colour probabilities
    cols = ref_colour[R]
    Pc = np.zeros((nT, n_colours + 1))  # last column: transparent
    idx = np.where(cols == TRANSPARENT, n_colours, cols)
    for k in range(len(R)):
        Pc[:, idx[k]] += P[:, k]
    ci = Pc.argmax(1)
    colour[T] = np.where(ci == n_colours, TRANSPARENT, ci)
    conf[T] = Pc.max(1)
    best_r[T] = R[P.argmax(1)]
    colour[tgt.outside] = TRANSPARENT
    conf[tgt.outside] = 1.0
    return MatchResult(colour, conf, best_r)
