"""The `light` stage, measured on the generator's coloured cels (issue 6, "Measured, not assumed")."""

from __future__ import annotations

import subprocess
import sys

import cv2
import numpy as np
import pytest

from quickart_daemon import stages
from quickart_daemon.errors import StageFailed
from quickart_daemon.images import read_png, write_png
from quickart_daemon.stages.base import StageContext
from quickart_daemon.synth import sequence
from quickart_daemon.timing import schedule_from_timing

SIZE = (480, 270)
FRAMES = [1001, 1002, 1003]
LUMA = np.array([0.299, 0.587, 0.114])


@pytest.fixture(scope="module")
def cels():
    return sequence(3, FRAMES, size=SIZE, rough=False)


def light(frames: dict[int, np.ndarray], shot_light=None, **params):
    keys = sorted(frames)
    ctx = StageContext(schedule=schedule_from_timing({"char": keys}, 1), params=params,
                       shot_settings={"light": shot_light} if shot_light is not None else {})
    return stages.get("light").run({("char", f): frames[f] for f in keys}, ctx)


def test_registered_with_the_cli_options():
    spec = stages.get("light")
    assert spec.kind == "keys" and spec.publish_folder == "light"
    assert [o.name for o in spec.options] == ["direction", "color", "intensity", "ambient"]


def test_intensity_zero_returns_the_input(cels):
    out = light({f: cels[f].color for f in FRAMES}, intensity=0.0, direction="-1,0,1")
    for f in FRAMES:
        assert np.array_equal(out.frames[("char", f)], cels[f].color)
        assert np.all(out.variants["layer"][("char", f)][..., :3] == 128)


def _side_gain(cel, lit) -> list[tuple[int, float, float]]:
    """Per closed shape: mean luma change of its left half and of its right half."""
    change = (lit[..., :3].astype(np.float64) - cel.color[..., :3]) @ LUMA
    rows = []
    for rid in np.unique(cel.labels[cel.labels > 0]):
        ys, xs = np.nonzero(cel.labels == rid)
        if len(xs) < 40:  # a glint of a few pixels has no left and right side to speak of
            continue
        mid = xs.mean()
        rows.append((int(rid), change[ys[xs < mid], xs[xs < mid]].mean(), change[ys[xs > mid], xs[xs > mid]].mean()))
    return rows


@pytest.mark.parametrize("direction,side", [("-1,0,1", "left"), ("1,0,1", "right"), ("-1,0,0.3", "left")])
def test_each_shape_brightens_on_the_side_of_the_light(cels, direction, side):
    out = light({f: cels[f].color for f in FRAMES}, direction=direction)
    checked = 0
    for f in FRAMES:
        for rid, left, right in _side_gain(cels[f], out.frames[("char", f)]):
            lit_side, far_side = (left, right) if side == "left" else (right, left)
            assert lit_side > far_side + 0.5, (f, cels[f].palette[rid].name, left, right)
            checked += 1
    assert checked >= 3 * 15  # most regions of the character are big enough to measure


def test_lines_stay_as_drawn_and_transparency_stays_untouched(cels):
    out = light({f: cels[f].color for f in FRAMES}, direction="-1,-1,1", intensity=1.0, ambient=0.3)
    for f in FRAMES:
        src, lit = cels[f].color, out.frames[("char", f)]
        diff = np.abs(lit.astype(np.int16) - src.astype(np.int16))
        assert np.array_equal(lit[..., 3], src[..., 3])
        assert diff[src[..., 3] == 0].max() == 0
        on_lines = diff[cels[f].ink][:, :3].max(1)
        # measured: 99.9 % of line pixels unchanged, a handful of junction pixels move <= 19 levels
        assert np.percentile(on_lines, 99.5) <= 2 and on_lines.max() <= 24, (np.percentile(on_lines, 99.5), on_lines.max())
        # and it did light the fills, strongly
        fills = cels[f].labels > 0
        assert np.percentile(diff[fills][:, :3].max(1), 90) >= 20


def test_flat_areas_stay_flat(cels):
    """Deep inside a flat region the change is smooth: no noise between neighbours."""
    cel = cels[1001]
    lit = light({1001: cel.color}, direction="-1,0,1").frames[("char", 1001)].astype(np.int16)
    flat = np.zeros(cel.labels.shape, bool)  # pixels of exactly their region's flat colour
    for rid, region in cel.palette.items():
        flat |= (cel.labels == rid) & np.all(cel.color[..., :3] == region.rgb, axis=-1)
    # away from a region's boundary (the rim band, a few pixels at this size) the light
    # only shades gently: neighbours within a few levels, no speckle
    deep = cv2.erode(flat.astype(np.uint8), np.ones((11, 11), np.uint8)).astype(bool)
    src = cel.color.astype(np.int16)
    assert deep.sum() > 1000
    for axis in (0, 1):
        same = (np.roll(cel.labels, 1, axis) == cel.labels) & (np.roll(cel.labels, -1, axis) == cel.labels)
        both = deep & np.roll(deep, 1, axis) & np.roll(deep, -1, axis) & same
        assert np.abs(src - np.roll(src, 1, axis))[..., :3].max(-1)[both].max() == 0
        # second differences: ~0 on a smooth shading gradient, large on speckle or a crease
        curve = np.abs(np.roll(lit, 1, axis) - 2 * lit + np.roll(lit, -1, axis))[..., :3].max(-1)[both]
        assert np.percentile(curve, 99) <= 3 and curve.max() <= 8, (np.percentile(curve, 99), curve.max())


def test_no_flicker_on_a_static_character(cels):
    """The same drawing on every frame (copies, not one array) gets the same light layer."""
    frames = {f: cels[1001].color.copy() for f in range(1001, 1007)}
    layer = light(frames, direction="-1,0,1").variants["layer"]
    first = layer[("char", 1001)].astype(np.int16)
    worst = max(np.abs(layer[("char", f)].astype(np.int16) - first).max() for f in frames)
    assert worst <= 1


def test_the_light_layer_gives_back_the_lit_frame(cels):
    out = light({1001: cels[1001].color}, direction="1,-1,0.5")
    lit, layer, src = out.frames[("char", 1001)], out.variants["layer"][("char", 1001)], cels[1001].color
    rebuilt = src[..., :3].astype(np.int16) + 2 * (layer[..., :3].astype(np.int16) - 128)  # "linear light"
    assert np.abs(rebuilt - lit[..., :3]).max() <= 1
    assert np.array_equal(layer[..., 3], src[..., 3])


def test_a_keyed_light_moves_between_its_keys(cels):
    frames = {f: cels[1001].color for f in (1001, 1003, 1005)}
    moving = light(frames, {"keys": {1001: {"direction": [-1, 0, 1]}, 1005: {"direction": [1, 0, 1]}}})
    front = light({1003: cels[1001].color}, direction="0,0,1").frames[("char", 1003)]
    left = light({1001: cels[1001].color}, direction="-1,0,1").frames[("char", 1001)]
    right = light({1005: cels[1001].color}, direction="1,0,1").frames[("char", 1005)]
    assert np.array_equal(moving.frames[("char", 1001)], left)
    assert np.array_equal(moving.frames[("char", 1003)], front)  # halfway between the keys
    assert np.array_equal(moving.frames[("char", 1005)], right)
    assert not np.array_equal(left, right) and moving.report["moving_light"]


def test_named_setups_are_rendered_as_variants(cels):
    spec = {"direction": [-1, 0, 1], "setups": {"rim": {"direction": [0, 0, -1], "intensity": 1.0},
                                                  "night": {"color": "#6070ff", "ambient": 0.3}}}
    out = light({1001: cels[1001].color}, spec)
    assert set(out.variants) == {"layer", "rim", "night"}
    assert not np.array_equal(out.variants["rim"][("char", 1001)], out.frames[("char", 1001)])
    assert out.report["setups"] == ["main", "rim", "night"]


@pytest.mark.parametrize("spec,words", [
    ({"directoin": [1, 0, 1]}, "'directoin'"),
    ({"direction": [0, 0, 0]}, "direction"),
    ({"intensity": "bright"}, "intensity"),
    ({"keys": {"first": {"direction": [1, 0, 1]}}}, "'first'"),
    ({"keys": {1001: {"colour": [1, 2, 3]}}}, "'colour'"),
    ({"setups": {"layer": {}}}, "'layer'"),
])
def test_bad_light_settings_fail_with_a_sentence_naming_the_key(cels, spec, words):
    with pytest.raises(StageFailed, match=words):
        light({1001: cels[1001].color}, spec)


def test_pipeline_values_may_be_lists_and_numbers(cels):
    a = light({1001: cels[1001].color}, direction=[-1, 0, 1], color=[255, 200, 150], intensity=1, ambient=0.5)
    b = light({1001: cels[1001].color}, direction="-1,0,1", color="255,200,150", intensity="1", ambient="0.5")
    assert np.array_equal(a.frames[("char", 1001)], b.frames[("char", 1001)])


def test_cli_lights_a_folder_from_the_front_left(tmp_path, cels):
    src, out = tmp_path / "in", tmp_path / "out"
    src.mkdir()
    for f in (1001, 1002):
        write_png(src / f"sh0010.{f}.png", cels[f].color)
    r = subprocess.run([sys.executable, "-m", "quickart_daemon.cli", "stage", "light", "--in", str(src),
                        "--out", str(out), "--direction=-1,0,1", "--color", "255,240,220", "--intensity", "0.8",
                        "--ambient", "0.5"], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    for f in (1001, 1002):
        lit = read_png(out / f"sh0010.{f}.png")
        assert lit.shape == cels[f].color.shape and (out / "layer" / f"sh0010.{f}.png").is_file()
        rows = _side_gain(cels[f], lit)
        assert rows and all(left > right for _, left, right in rows)
    bad = subprocess.run([sys.executable, "-m", "quickart_daemon.cli", "stage", "light", "--in", str(src),
                          "--out", str(out), "--direction=1,0"], capture_output=True, text=True, timeout=120)
    assert bad.returncode != 0 and "direction" in bad.stderr and "Traceback" not in bad.stderr


def test_the_colour_model_is_built_once_per_colour_set(cels):
    frames = {f: cels[f].color for f in FRAMES}
    light(frames, direction="-1,0,1")
    again = light(frames, direction="1,0,1")
    assert again.report["colour_model_cache_hits"] == 1
    pal = again.report["palettes"]["char"]
    assert pal["ink"] == "#000000" and 2 <= len(pal["palette"]) <= 6 and pal["fills"] >= 8
