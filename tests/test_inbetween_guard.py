"""The in-between guard (issue 14): `method: guarded` (the default `auto` until issue 21) checks its
candidates on the shot's own keys.

Small drawn scenes that reproduce what broke on real animation: a shaded part under a
translucent shadow that changes depth against another part (the motion is learnable: the guard
must keep it), parts that jump to unrelated places between keys (no motion explains them:
the guard must not morph, and must say so in its report and confidence map), a swing out and
back whose in-betweens are drawings the shot already has (a ping-pong: they must be reused
exactly), and a drawing that changes unpredictably and then holds (the in-between next to the
held key must be that key, not a blend of it).
"""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from conftest import over_white, psnr

from quickart_daemon import stages
from quickart_daemon.stages.base import StageContext
from quickart_daemon.stages.inbetween import classical, guard
from quickart_daemon.timing import schedule_from_timing

W, H = 160, 96


def _canvas() -> np.ndarray:
    img = np.zeros((H, W, 4), np.uint8)
    img[...] = 255
    return img


def _shaded_disc(img: np.ndarray, cx: float, cy: float, r: int = 14) -> None:
    """A part with soft shading (radial gradient from a highlight) and an ink outline."""
    ys, xs = np.mgrid[0:H, 0:W]
    d = np.hypot(xs - cx, ys - cy)
    inside = d <= r
    shade = np.clip(np.hypot(xs - cx + r / 3, ys - cy + r / 3) / (1.6 * r), 0, 1)
    for ch, (hi, lo) in enumerate(((255, 200), (210, 120), (90, 20))):
        img[..., ch][inside] = (hi + (lo - hi) * shade[inside]).astype(np.uint8)
    cv2.circle(img, (int(round(cx)), int(round(cy))), r, (30, 30, 30, 255), 2, cv2.LINE_AA)


def _scene(f: float) -> np.ndarray:
    """Frame f of a shot: the shaded disc crosses the frame, passing in front of a box for
    f < 8 and behind it after (an occlusion change), under a translucent shadow band."""
    img = _canvas()
    box = lambda: cv2.rectangle(img, (70, 20), (100, 76), (60, 140, 200, 255), -1)  # noqa: E731
    if f >= 8:
        _shaded_disc(img, 20 + 7.5 * f, 48)
        box()
    else:
        box()
        _shaded_disc(img, 20 + 7.5 * f, 48)
    band = img[60:90].astype(np.float32)
    band[..., :3] *= 0.7  # a translucent shadow: multiplies what is under it
    img[60:90] = band.astype(np.uint8)
    return img


def _jumping(f: int) -> np.ndarray:
    """A drawing whose parts land at unrelated places on every frame (sparks, a flicker): no
    motion connects two keys, so an in-between can only be guessed."""
    rng = np.random.default_rng(1000 + f)
    img = _canvas()
    for _ in range(5):
        x, y = int(rng.integers(15, W - 15)), int(rng.integers(15, H - 15))
        cv2.circle(img, (x, y), int(rng.integers(5, 12)), (200, 40, 40, 255), -1, cv2.LINE_AA)
    return img


def _disc_at(x: float) -> np.ndarray:
    """A shaded disc over a strip of ground, the disc at x."""
    img = _canvas()
    cv2.rectangle(img, (0, 70), (W, H), (90, 160, 90, 255), -1)
    _shaded_disc(img, x, 40, 18)
    return img


def _run(frames: dict, keys: list[int], models, method: str = "guarded"):
    ctx = StageContext(schedule=schedule_from_timing({"char": keys}, 1), params={"method": method}, models_dir=models)
    return stages.get("inbetween").run({("char", k): frames[k] for k in keys}, ctx)


def _score(res, frames, keys) -> float:
    inner = [f for f in range(keys[0], keys[-1]) if f not in keys]
    return float(np.mean([psnr(over_white(res.frames[("char", f)]), over_white(frames[f])) for f in inner]))


# -- the fit --------------------------------------------------------------------------------

def _frames():
    a, b = (classical.premultiply(_jumping(f)) for f in (0, 1))
    motion = classical.premultiply(_scene(3.0))
    return a, b, motion


@pytest.mark.parametrize("truth", ["hold", "blend", "motion"])
def test_fit_picks_the_candidate_that_predicts_the_held_out_key(truth):
    a, b, motion = _frames()
    t = 1 / 3
    key = {"hold": guard.hold(a, b, t), "blend": guard.eased_blend(a, b, t), "motion": motion}[truth]
    ev = guard.Evidence([guard.held_out(a, key, b, t, motion, 5)])
    w = guard.fit_weights(ev, t)
    assert w[truth] == 1.0, w
    assert guard.decision(w) == truth
    assert guard.self_check_psnr(ev, t, w) >= 99.0  # exact


def test_weights_follow_the_held_out_keys_nearest_in_time():
    """A shot that holds near its keys but moves between them: in-betweens near a key take
    the tests near a key (hold), those in the middle the tests in the middle (blend)."""
    a, b, motion = _frames()
    near = guard.held_out(a, guard.hold(a, b, 1 / 3), b, 1 / 3, motion, 4)
    middle = guard.held_out(a, guard.eased_blend(a, b, 0.5), b, 0.5, motion, 8)
    ev = guard.Evidence([near, middle])
    assert guard.fit_weights(ev, 0.25)["hold"] == 1.0
    assert guard.fit_weights(ev, 0.5)["blend"] == 1.0
    assert guard.fit_weights(guard.Evidence(), 0.5) is None  # nothing to check on


def test_without_motion_weight_the_mix_needs_no_motion():
    a, b, _ = _frames()
    w = {"hold": 0.5, "blend": 0.5, "snap": 0.0, "motion": 0.0}
    out = guard.mix(a, b, 0.25, None, w)
    assert np.allclose(out, 0.5 * a + 0.5 * guard.eased_blend(a, b, 0.25))


def test_between_keeps_the_drawings_between_the_two_keys():
    """A key nearer to each of the pair's keys than they are to each other lies between them."""
    a, b = (classical.premultiply(_disc_at(x)) for x in (30, 62))
    others = {k: classical.premultiply(_disc_at(x)) for k, x in ((4, 40), (6, 52), (8, 130), (10, 30))}
    assert guard.between(a, b, others) == [4, 6]
    # the in-between nearest to key 6 is key 6; one nearer to a key of the pair is not replaced
    near6 = 0.9 * others[6] + 0.1 * a
    frame, how, key = guard.drawn_instead(near6, a, b, {k: others[k] for k in (4, 6)}, None, (0, 2))
    assert (how, key) == ("reuse", 6) and frame is others[6]
    frame, how, key = guard.drawn_instead(0.95 * a + 0.05 * b, a, b, {6: others[6]}, None, (0, 2))
    assert how is None and key is None


def test_bet_on_hold_weighs_the_exact_gain_against_the_loss():
    a, b, _ = _frames()
    rough = 10 ** (-18 / 10)  # the mix is expected 18 dB from the truth (a shot its keys predict badly)
    # a mix almost at key a: if the drawing is held, a is exact; if not, a costs a fraction of a dB
    assert guard.bet_on_hold(0.98 * a + 0.02 * b, a, rough)
    # halfway between the keys, showing a key would cost about 3 dB when it is not held
    assert not guard.bet_on_hold(0.5 * a + 0.5 * b, a, rough)
    # a mix expected near-exact (50 dB) gains little from a bet on the key: no bet
    assert not guard.bet_on_hold(0.98 * a + 0.02 * b, a, 10 ** (-50 / 10))
    frame, how, key = guard.drawn_instead(0.98 * b + 0.02 * a, a, b, {}, rough, (3, 7))
    assert (how, key) == ("held (bet)", 7) and frame is b


# -- the stage on drawn shots -------------------------------------------------------------------

def test_keeps_learnable_motion_of_a_shaded_part_through_an_occlusion_change(rife_models):
    frames = {f: _scene(f) for f in range(17)}
    keys = [0, 4, 8, 12, 16]
    ours = _run(frames, keys, rife_models)
    p = {m: _score(_run(frames, keys, rife_models, m) if m != "blend" else
                   stages.get("inbetween-blend").run({("char", k): frames[k] for k in keys},
                                                    StageContext(schedule=schedule_from_timing({"char": keys}, 1))),
                   frames, keys) for m in ("blend", "rife")}
    p["hold"] = float(np.mean([psnr(over_white(frames[min(keys, key=lambda k: (abs(k - f), k))]), over_white(frames[f]))
                               for f in range(17) if f not in keys]))
    p["auto"] = _score(ours, frames, keys)
    # measured 21.4 dB (rife 24.8, blend 19.2, hold 18.0): the self-check predicts keys across
    # twice the gap, where this motion is harder than between neighbours, so it is cautious
    assert p["auto"] >= max(p["hold"], p["blend"]) + 1.5, p
    did = [r["did"] for r in ours.report["frames"]]
    assert any(d in ("motion", "snap", "mix") for d in did), did
    # every in-between has its record and its confidence map
    assert sorted(r["drawing"] for r in ours.report["frames"]) == [f for f in range(1, 16) if f not in keys]
    assert set(ours.variants["confidence"]) == {("char", r["drawing"]) for r in ours.report["frames"]}


def test_does_not_morph_parts_that_jump_and_says_so(rife_models):
    frames = {f: _jumping(f) for f in range(17)}
    keys = [0, 4, 8, 12, 16]
    ours = _run(frames, keys, rife_models)
    blend = stages.get("inbetween-blend").run({("char", k): frames[k] for k in keys},
                                              StageContext(schedule=schedule_from_timing({"char": keys}, 1)))
    # measured 12.96 dB against the blend's 13.40: next to a key the mix is nearly that key, and
    # the stage bets on a held drawing there (guard.bet_on_hold, HELD_PRIOR = 1/50), which these
    # never-held sparks do not reward (13.29 with a prior of 1/100, 13.39 with 1/200; on real
    # animation the bet wins tg_mailbox and tg_darts, docs/inbetween.md)
    assert _score(ours, frames, keys) >= _score(blend, frames, keys) - 0.6
    # checked on the shot's keys, the motion gets at most an even share: it predicts no key
    assert all("weights" in r for r in ours.report["frames"])
    assert np.mean([r["weights"]["motion"] for r in ours.report["frames"]]) <= 0.5
    # the confidence map marks the changing pixels as unsure
    for r in ours.report["frames"]:
        assert r["confident"] < 0.5, r
        conf = ours.variants["confidence"][("char", r["drawing"])]
        assert conf.shape == (H, W, 4) and conf.dtype == np.uint8 and (conf[..., 3] == 255).all()
    assert any("confident" in w for w in ours.report["warnings"])


def test_a_two_key_shot_is_the_motion_unchecked(rife_models):
    frames = {f: _scene(f) for f in range(5)}
    ours = _run(frames, [0, 4], rife_models)
    unguarded = _run(frames, [0, 4], rife_models, "motion")
    assert {r["did"] for r in ours.report["frames"]} == {"unchecked"}
    for f in (1, 2, 3):
        assert np.array_equal(ours.frames[("char", f)], unguarded.frames[("char", f)])


def test_a_ping_pong_reuses_the_drawings_the_shot_already_has(rife_models):
    """tg_darts (issue 14): a part swings out and back; on twos, most in-betweens are drawings
    that are keys elsewhere in the shot. No mix of two keys is ever one of them exactly."""
    swing = [0, 1, 2, 3, 4, 4, 3, 2, 1, 0, 1, 2, 3]
    frames = {f: _disc_at(30 + 14 * x) for f, x in enumerate(swing)}
    keys = [0, 2, 4, 6, 8, 10, 12]
    ours = _run(frames, keys, rife_models)
    rec = {r["drawing"]: r for r in ours.report["frames"]}
    for f, key in ((1, 8), (3, 6), (7, 2)):  # e.g. frame 1 (swing 1) lies between keys 0 and 2: key 8
        assert (rec[f]["did"], rec[f]["copy_of"]) == ("reuse", key), rec[f]
        assert np.array_equal(ours.frames[("char", f)], frames[f])
    assert ours.report["decisions"]["reuse"] == 3


def test_a_drawing_that_changes_then_holds_shows_the_held_key(rife_models):
    """tg_mailbox at gap 6 (issue 14): the drawing changes in ways no motion explains, then
    holds its last drawing for several frames. Next to the held key the mix is nearly that key;
    a blend of it is never the drawing, the key is (exact when held, a fraction of a dB off when
    not): the stage shows the key, and says so."""
    frames = {f: _jumping(min(f, 8)) for f in range(13)}  # frames 8-12: one drawing held
    keys = [0, 6, 12]
    ours = _run(frames, keys, rife_models)
    rec = {r["drawing"]: r for r in ours.report["frames"]}
    assert (rec[11]["did"], rec[11]["copy_of"]) == ("held (bet)", 12), rec[11]
    assert np.array_equal(ours.frames[("char", 11)], frames[11])
    # the bet is taken only next to a key: mid-way the mix stays a mix
    assert "copy_of" not in rec[9] and "copy_of" not in rec[3]
