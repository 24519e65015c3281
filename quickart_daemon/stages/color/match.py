"""Matching the regions of a drawing to the regions of a coloured reference.

Every target region t gets a probability over reference regions r from a cost that mixes
- position within the character (centroid relative to the character's centre and size),
  corrected by the displacement its matched neighbours show (so a forearm follows its
  upper arm through a large pose change),
- size (log area ratio) and shape (elongation),
- line context (which share of its outline is ink, red trace, blue trace),
- pixel overlap after aligning the two characters (strong for small motion),
and is refined by relaxation over the neighbourhood graph: a pairing is supported when
the neighbours of t are matched to neighbours of r. The colour of t is the colour with
the highest total probability; that probability is the region's confidence.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .features import Regions

TRANSPARENT = -1  # colour index of "no paint" (holes, outside)


@dataclass
class MatchResult:
    colour: np.ndarray      # (n+1,) index into the reference's colour table, TRANSPARENT for none
    confidence: np.ndarray  # (n+1,) 0..1
    ref_region: np.ndarray  # (n+1,) best reference region


def _overlap(t_lab: np.ndarray, r_lab: np.ndarray, shift: np.ndarray, nt: int, nr: int) -> np.ndarray:
    """ov[t, r]: share of target region t that lands on reference region r after moving the
    reference by `shift` (pixels), both label maps at the same resolution (subsampled)."""
    h, w = t_lab.shape
    step = max(1, int(round(np.sqrt(h * w / 250_000))))
    tl = t_lab[::step, ::step]
    dx, dy = int(round(shift[0] / step)), int(round(shift[1] / step))
    rl = r_lab[::step, ::step]
    moved = np.zeros_like(tl)
    hh, ww = tl.shape
    ys0, ys1 = max(0, dy), min(hh, hh + dy)
    xs0, xs1 = max(0, dx), min(ww, ww + dx)
    if ys1 > ys0 and xs1 > xs0:
        moved[ys0:ys1, xs0:xs1] = rl[ys0 - dy:ys1 - dy, xs0 - dx:xs1 - dx]
    code = tl.astype(np.int64).ravel() * (nr + 1) + moved.ravel()
    m = np.bincount(code, minlength=(nt + 1) * (nr + 1)).reshape(nt + 1, nr + 1).astype(np.float64)
    return m / np.maximum(m.sum(1, keepdims=True), 1)


def match(tgt: Regions, t_lab: np.ndarray, ref: Regions, r_lab: np.ndarray, ref_colour: np.ndarray,
          n_colours: int, iterations: int = 4, line_weight: float = 1.0) -> MatchResult:
    nt, nr = tgt.n, ref.n
    T = np.arange(1, nt + 1)
    R = np.array([r for r in range(1, nr + 1) if not ref.outside[r]], int)
    colour = np.full(nt + 1, TRANSPARENT, int)
    conf = np.ones(nt + 1)
    best_r = np.zeros(nt + 1, int)
    if len(R) == 0:
        return MatchResult(colour, conf, best_r)
    s_t, s_r = tgt.char_scale, ref.char_scale
    zoom = s_t / max(s_r, 1.0)
    # positions in character units
    pt = (tgt.centroid[T] - tgt.char_center) / s_t
    pr = (ref.centroid[R] - ref.char_center) / s_r
    la_t = np.log(np.maximum(tgt.full_area[T], 1) / s_t ** 2)
    la_r = np.log(np.maximum(ref.full_area[R], 1) / s_r ** 2)
    el_t = tgt.size[T, 1] / np.maximum(tgt.size[T, 0], 1e-6)
    el_r = ref.size[R, 1] / np.maximum(ref.size[R, 0], 1e-6)
    c_area = np.abs(la_t[:, None] - la_r[None, :])
    c_shape = np.abs(el_t[:, None] - el_r[None, :])
    c_line = np.abs(tgt.line_ctx[T, None, :3] - ref.line_ctx[None, R, :3]).sum(2)
    # same-scale overlap: move the reference character onto the target character
    if t_lab.shape == r_lab.shape and abs(np.log(zoom)) < 0.25:
        ov_full = _overlap(t_lab, r_lab, tgt.char_center - ref.char_center, nt, nr)
        ov = ov_full[np.ix_(T, R)]
    else:
        ov = np.zeros((nt, len(R)))
    # tiny regions have unreliable shapes
    small_t = np.clip(np.sqrt(tgt.full_area[T]) / 12.0, 0.2, 1.0)[:, None]
    base = (1.2 * c_area + 1.5 * c_shape * small_t + 3.0 * line_weight * c_line - 2.5 * ov)
    # neighbourhood: row-normalised adjacency of the target, reachability within the reference
    At = tgt.adj[np.ix_(T, T)].astype(np.float64)
    np.fill_diagonal(At, 0)
    At /= np.maximum(At.sum(1, keepdims=True), 1)
    Ar = ref.adj[np.ix_(R, R)] > 0
    np.fill_diagonal(Ar, True)
    nbr = [np.nonzero(Ar[j])[0] for j in range(len(R))]
    disp = np.zeros((nt, 2))  # displacement of each target region in character units
    P = None
    w_pos = 6.0
    for it in range(iterations):
        c_pos = np.linalg.norm((pt - disp)[:, None, :] - pr[None, :, :], axis=2)
        cost = base + w_pos * c_pos
        if P is not None:
            Q = np.stack([P[:, nb].max(1) for nb in nbr], 1)
            support = At @ Q
            cost = cost - 2.5 * support
        cost -= cost.min(1, keepdims=True)
        P = np.exp(-cost / 0.35)
        P /= P.sum(1, keepdims=True)
        # displacement: from confident matches, smoothed over the neighbourhood graph
        j = P.argmax(1)
        c = P.max(1)
        d = pt - pr[j]
        wgt = (c * np.sqrt(tgt.full_area[T]))[:, None]
        W = At + np.eye(nt)
        num = W @ (d * wgt)
        den = W @ wgt
        glob = (d * wgt).sum(0) / max(wgt.sum(), 1e-9)
        disp = np.where(den > 1e-9, num / np.maximum(den, 1e-9), glob)
        # mix own and neighbourhood estimate: own when confident
        disp = c[:, None] * d + (1 - c[:, None]) * disp
    # colour probabilities
    cols = ref_colour[R]
    Pc = np.zeros((nt, n_colours + 1))  # last column: transparent
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
