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
#: disagreement (0..1 intensity, max over channels) at which confidence falls to 1/e: a 20 %
#: difference between plausible answers is a visible error on any drawing
CONFIDENCE_SCALE = 0.2


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


def reliability(ev: Evidence, t: float, weights: dict[str, float] | None) -> float:
    """0..1: how well the mix predicted the held-out keys on their changing pixels (1 without
    evidence: nothing says otherwise)."""
    if weights is None:
        return 1.0
    rmse = 10 ** (-self_check_psnr(ev, t, weights) / 20)
    return float(np.exp(-(rmse / CONFIDENCE_SCALE) ** 2))


def confidence_map(a: np.ndarray, b: np.ndarray, t: float, motion: np.ndarray | None,
                   out: np.ndarray, trust: float = 1.0) -> np.ndarray:
    """Per pixel 0..1: where the keys agree, 1; where they differ, how well the candidates agree
    with the answer, times `trust` (the pair's :func:`reliability`): a pixel is sure when every
    plausible in-between gives it and the shot's own keys were predicted well."""
    cands = [hold(a, b, t), eased_blend(a, b, t)] + ([snap(a, b, motion), motion] if motion is not None else [])
    d = np.max([np.abs(c - out).max(axis=2) for c in cands], axis=0)
    conf = np.exp(-(d / CONFIDENCE_SCALE) ** 2)
    return np.where(changing(a, b), conf * trust, 1.0).astype(np.float32)


def decision(weights: dict[str, float] | None) -> str:
    """What an in-between mostly is, for the report: hold, blend, snap, motion, mix, or unchecked
    (the motion as it is: no key to check it on)."""
    if weights is None:
        return "unchecked"
    name, w = max(weights.items(), key=lambda kv: kv[1])
    return name if w >= 0.6 else "mix"


def grey(conf: np.ndarray) -> np.ndarray:
    """A confidence map as an opaque grey RGBA frame (white = sure)."""
    g = np.clip(conf * 255 + 0.5, 0, 255).astype(np.uint8)
    return np.dstack([g, g, g, np.full_like(g, 255)])
