"""Knowing when the motion is not known: each in-between as a mix of a hold, an eased blend and the
motion estimate, weighted by how well each predicted the shot's own keys.

Real animation breaks motion estimation in ways the estimate cannot see in itself: large,
occluding and non-rigid motion, and timing (holds, then a fast move; ease in and out) that no
two keys reveal. Video interpolation then morphs where an animator would hold or smear, and
scores below doing nothing. But a shot carries its own test: every key with a key on each side
is an in-between of its neighbours whose truth is known. So, per pair of keys:

1. **Self-check** (:func:`held_out`): each of the pair's keys that has a neighbour on both sides is
   predicted from those neighbours by four candidates: a *hold* of the nearer neighbour, an
   *eased blend* (the classic slow-in/slow-out spacing ``3t^2 - 2t^3``, the timing an animator
   gives a move when nothing says otherwise), a *snap* (per pixel the key the motion estimate
   is closer to: the motion decides where, the keys what: drawings that hold and then jump)
   and the *motion* estimate itself (RIFE on the two keys).
   The errors of the candidates (their Gram matrix over the pixels that change) say how much
   each can be trusted in this shot.
   Keys are held out over the nearest neighbours (t = 0.5) and, where the shot has them, with
   one side a key further (t = 1/3, 2/3): whether a drawing holds or moves depends on how close
   to a key it is, and the shot's own timing shows it.
2. **Weights** (:func:`fit_weights`): the convex mix of the four with the best mean PSNR over the
   held-out keys nearest in time to the in-between (a grid over the simplex; every held-out
   drawing counts once, as every in-between does for a reviewer); no constant is fitted to any
   data set: the shot's own keys decide. Where no key can be held out (a shot of two keys, neighbours across cuts)
   nothing says the motion is wrong: it is used as it is, recorded as ``unchecked``, and its
   confidence map still shows where the candidates disagree.
3. **Confidence** (:func:`confidence_map`): per pixel, how far the candidates disagree with the
   answer (where hold, blend and motion all agree nothing is in doubt; where they differ, the
   mix may be wrong), times how well the mix predicted the held-out keys (:func:`reliability`). Published as the ``confidence`` variant, with a per-frame record in the
   job report, so a reviewer checks the low ones first.

4. **Drawn frames before synthesized ones** (:func:`drawn_instead`): animators reuse drawings
   (cycles, ping-pongs, holds), and no mix of two keys is ever exactly a drawing. So the mix is
   replaced by a key of the shot where that is the better bet:

   * *reuse*: a key of the shot other than the pair's that lies between the pair's keys (nearer
     to each of them than they are to each other, :func:`between`) and is nearer to the mix than
     either key is: the shot already has that in-between (no constant: a comparison of distances);
   * *held (bet)*: the nearer key, when the expected gain of betting on a held drawing beats the
     expected loss (:func:`bet_on_hold`): if the key is the truth the in-between is exact instead
     of the mix's expected error (from the self-check); if not, the key is off by about the mix's
     error plus its distance to the mix. The only constant is the prior share of in-betweens that
     are held keys (``HELD_PRIOR``).

A weight of (almost) zero for snap and motion skips the motion estimate of that pair altogether.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from itertools import product

import numpy as np

CANDIDATES = ("hold", "blend", "snap", "motion")
#: pixel change (premultiplied, max over channels) below which the keys count as the same there
CHANGE_LEVEL = 2.0 / 255
#: weights are searched on this grid over the simplex (1/20: finer changes no frame visibly)
GRID = 20
#: a weight of snap + motion below this skips the motion estimate (its share would be invisible)
MIN_MOTION_WEIGHT = 0.05
#: PSNR (dB, 8-bit) of a synthesized frame that is right up to its rounding (uniform error of half a
#: level: MSE 1/12 level^2): the best a mix can do; a drawn frame that is the truth is exact
EXACT_DB = 10.0 * np.log10(12 * 255.0 ** 2)
#: prior share of in-betweens that are a key held (exposed again) where the keys cannot show it:
#: one in fifty. The bet on a hold is taken where its expected gain beats its expected loss
#: under this prior (see docs/inbetween.md for the sensitivity to it)
HELD_PRIOR = 0.02
#: longest side of the thumbnails on which keys are compared for reuse: mean differences of
#: area-averaged frames keep their order at this size (the same keys found between as at full
#: size on all 77 key pairs of the real development set at 512 px; one differed at 128)
THUMB_SIDE = 256
#: disagreement (0..1 intensity, max over channels) at which confidence falls to 1/e: a 20 %
#: difference between plausible answers is a visible error on any drawing
CONFIDENCE_SCALE = 0.2


def sureness(difference):
    """Confidence 0..1 of a disagreement (0..1 intensity, a number or an array): 1 where none,
    1/e at CONFIDENCE_SCALE. Every method's confidence map reads on this one scale."""
    return np.exp(-(np.asarray(difference) / CONFIDENCE_SCALE) ** 2)


def ease(t: float) -> float:
    """Slow in and slow out: the spacing of a move eased at both keys."""
    return 3.0 * t * t - 2.0 * t ** 3


def hold(a: np.ndarray, b: np.ndarray, t: float) -> np.ndarray:
    """The nearer key (the earlier on a tie, as a held drawing shows)."""
    return a if t <= 0.5 else b


def eased_blend(a: np.ndarray, b: np.ndarray, t: float) -> np.ndarray:
    s = ease(t)
    return (1.0 - s) * a + s * b


def snap(a: np.ndarray, b: np.ndarray, motion: np.ndarray) -> np.ndarray:
    """Per pixel the key the motion estimate is closer to: the motion says where the drawing
    is at t, the keys say what it looks like there (no morph, no blur: drawn pixels only)."""
    import cv2
    da = cv2.blur(np.abs(motion - a).max(axis=2), (3, 3))
    db = cv2.blur(np.abs(motion - b).max(axis=2), (3, 3))
    return np.where((da <= db)[..., None], a, b)


def changing(*frames: np.ndarray) -> np.ndarray:
    """Pixels where any two of the frames differ."""
    out = np.zeros(frames[0].shape[:2], bool)
    for x, y in zip(frames, frames[1:]):
        out |= np.abs(x - y).max(axis=2) > CHANGE_LEVEL
    return out


@dataclass
class Test:
    """One held-out key: its distance in time to the nearer neighbour used (0..0.5 of the span),
    the Gram matrix of the candidates' errors over the pixels that change, and their count."""
    key: int
    d: float
    gram: np.ndarray
    pixels: int


@dataclass
class Evidence:
    tests: list[Test] = field(default_factory=list)

    def __add__(self, other: "Evidence") -> "Evidence":
        return Evidence(self.tests + other.tests)

    @property
    def keys(self) -> list[int]:
        return sorted({x.key for x in self.tests})

    def near(self, t: float) -> list[Test]:
        """The tests whose time is closest to an in-between at t (by distance to the nearer key):
        whether a drawing holds or moves depends on how close to a key it is."""
        d = min(t, 1.0 - t)
        usable = [x for x in self.tests if x.pixels]
        if not usable:
            return []
        best = min(abs(x.d - d) for x in usable)
        return [x for x in usable if abs(x.d - d) <= best + 1e-6]


def held_out(prev: np.ndarray, key: np.ndarray, nxt: np.ndarray, t: float, motion: np.ndarray,
             name: int) -> Test:
    """The candidates' errors predicting `key` (at t between the keys `prev` and `nxt`);
    `motion` is the motion estimate's prediction of it."""
    sel = changing(prev, key, nxt)
    d = round(min(t, 1.0 - t), 4)
    if not sel.any():
        return Test(name, d, np.zeros((len(CANDIDATES),) * 2), 0)
    errs = [(c - key)[sel].ravel().astype(np.float64) for c in
            (hold(prev, nxt, t), eased_blend(prev, nxt, t), snap(prev, nxt, motion), motion)]
    gram = np.array([[float(x @ y) for y in errs] for x in errs])
    return Test(name, d, gram, int(sel.sum()))


def _simplex(n: int = len(CANDIDATES), steps: int = GRID) -> np.ndarray:
    pts = [p for p in product(range(steps + 1), repeat=n - 1) if sum(p) <= steps]
    return np.array([[*p, steps - sum(p)] for p in pts], np.float64) / steps


_GRID_POINTS = _simplex()
#: mean squared error floor (0..1 intensity) of a test: 100 dB, an exact match
MSE_FLOOR = 1e-10


def _test_db(tests: list[Test], w: np.ndarray) -> np.ndarray:
    """PSNR (dB, on the changing pixels) of each weighting in w (k, n) on each test: (k, tests)."""
    mse = np.stack([np.einsum("ki,ij,kj->k", w, x.gram, w) / (x.pixels * 4) for x in tests], 1)
    return -10.0 * np.log10(np.maximum(mse, MSE_FLOOR))


def fit_weights(ev: Evidence, t: float) -> dict[str, float] | None:
    """Weights of the candidates with the best mean PSNR over the held-out keys nearest in time to
    t (each held-out drawing counts once, as each in-between does for a reviewer), or None
    without evidence. On a tie the earlier grid point wins (motion last: the cheaper)."""
    tests = ev.near(t)
    if not tests:
        return None
    w = _GRID_POINTS[int(np.argmax(_test_db(tests, _GRID_POINTS).mean(1)))]
    return dict(zip(CANDIDATES, (float(x) for x in w)))


def self_check_psnr(ev: Evidence, t: float, weights: dict[str, float]) -> float:
    """Mean PSNR (dB, on the changing pixels) of the weighted mix on the held-out keys used for t."""
    w = np.array([[weights[c] for c in CANDIDATES]])
    return float(_test_db(ev.near(t), w).mean())


def mix(a: np.ndarray, b: np.ndarray, t: float, motion: np.ndarray | None,
        weights: dict[str, float] | None) -> np.ndarray:
    """The in-between: the weighted candidates; without weights (nothing to check on) the motion."""
    if weights is None:
        return motion
    out = weights["hold"] * hold(a, b, t) + weights["blend"] * eased_blend(a, b, t)
    if motion is not None:
        return out + weights["snap"] * snap(a, b, motion) + weights["motion"] * motion
    # the motion's weights were too small to be worth computing it: shared out by the others
    return out / max(weights["hold"] + weights["blend"], 1e-6)


def _mse(x: np.ndarray, y: np.ndarray) -> float:
    return float(np.mean(np.square(x - y, dtype=np.float32)))


def thumbnail(p: np.ndarray, side: int = THUMB_SIDE) -> np.ndarray:
    """A key shrunk (area average) to at most `side` pixels: enough to order mean differences."""
    import cv2
    h, w = p.shape[:2]
    s = min(1.0, side / max(h, w))
    if s >= 1.0:
        return p
    return cv2.resize(p, (max(1, round(w * s)), max(1, round(h * s))), interpolation=cv2.INTER_AREA)


def between(a: np.ndarray, b: np.ndarray, others: dict[int, np.ndarray]) -> list[int]:
    """The keys (of `others`, thumbnails like a and b) nearer to each of a and b than a and b are
    to each other (mean absolute difference): drawings of the shot that lie between the two."""
    dab = float(np.abs(a - b).mean())
    return [k for k, x in others.items() if float(np.abs(a - x).mean()) < dab and float(np.abs(x - b).mean()) < dab]


def expected_mse(ev: Evidence, t: float, weights: dict[str, float] | None, a: np.ndarray, b: np.ndarray) -> float | None:
    """The mix's expected mean squared error over the whole frame: its self-check error on the
    changing pixels times the share of the pair's pixels that change (None without evidence)."""
    if weights is None:
        return None
    return 10 ** (-self_check_psnr(ev, t, weights) / 10) * float(changing(a, b).mean())


def bet_on_hold(out: np.ndarray, key: np.ndarray, expected: float, prior: float = HELD_PRIOR) -> bool:
    """Whether to show `key` instead of the mix `out` (expected MSE `expected`): if the in-between
    is that key held, it is exact (gain: EXACT_DB over the mix's expected PSNR); if not, the key is
    off by the mix's error plus its distance to the mix (loss: 10 log10(1 + d / expected) dB)."""
    e = max(expected, MSE_FLOOR)
    gain = EXACT_DB + 10.0 * np.log10(e)
    loss = 10.0 * np.log10(1.0 + _mse(out, key) / e)
    return prior * gain > (1.0 - prior) * loss


def drawn_instead(out: np.ndarray, a: np.ndarray, b: np.ndarray, reusable: dict[int, np.ndarray],
                  expected: float | None, keys: tuple[int, int]) -> tuple[np.ndarray, str | None, int | None]:
    """(frame, how, key): a key of the shot instead of the mix `out` where that is the better bet
    (``how`` = "reuse": a drawing of the shot between a and b, nearer to the mix than both;
    "held (bet)": the nearer key, :func:`bet_on_hold`), else (out, None, None). `reusable`: the keys
    :func:`between` a and b (full size); `keys`: the numbers of a and b."""
    da, db = _mse(out, a), _mse(out, b)
    if reusable:
        distance = {k: _mse(out, drawing) for k, drawing in reusable.items()}
        k = min(distance, key=distance.get)
        if distance[k] < min(da, db):
            return reusable[k], "reuse", k
    if expected is not None:
        near, name = (a, keys[0]) if da <= db else (b, keys[1])
        if bet_on_hold(out, near, expected):
            return near, "held (bet)", name
    return out, None, None


def reliability(ev: Evidence, t: float, weights: dict[str, float] | None) -> float:
    """0..1: how well the mix predicted the held-out keys on their changing pixels (1 without
    evidence: nothing says otherwise)."""
    if weights is None:
        return 1.0
    rmse = 10 ** (-self_check_psnr(ev, t, weights) / 20)
    return float(sureness(rmse))


def confidence_map(a: np.ndarray, b: np.ndarray, t: float, motion: np.ndarray | None,
                   out: np.ndarray, trust: float = 1.0) -> np.ndarray:
    """Per pixel 0..1: where the keys agree, 1; where they differ, how well the candidates agree
    with the answer, times `trust` (the pair's :func:`reliability`): a pixel is sure when every
    plausible in-between gives it and the shot's own keys were predicted well."""
    cands = [hold(a, b, t), eased_blend(a, b, t)] + ([snap(a, b, motion), motion] if motion is not None else [])
    d = np.max([np.abs(c - out).max(axis=2) for c in cands], axis=0)
    conf = sureness(d)
    return np.where(changing(a, b), conf * trust, 1.0).astype(np.float32)


def decision(weights: dict[str, float] | None) -> str:
    """What an in-between mostly is, for the report: hold, blend, snap, motion, mix, or unchecked
    (the motion as it is: no key to check it on)."""
    if weights is None:
        return "unchecked"
    name, w = max(weights.items(), key=lambda kv: kv[1])
    return name if w >= 0.6 else "mix"
