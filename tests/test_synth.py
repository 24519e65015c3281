"""The synthetic cel generator: deterministic, self-consistent ground truth, large motion."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
import yaml

from quickart_daemon import images
from quickart_daemon.tools import synth
from quickart_daemon.naming import Naming

SIZE = (960, 540)


@pytest.fixture(scope="module")
def char() -> synth.Character:
    return synth.make_character(7)


@pytest.fixture(scope="module")
def frame(char) -> synth.SynthFrame:
    return synth.render(char, 1001, SIZE)


def test_same_seed_same_arrays_different_seed_differs(char, frame):
    again = synth.render(synth.make_character(7), 1001, SIZE)
    for name in ("clean", "rough", "color", "labels", "ink", "shadow", "highlight"):
        assert np.array_equal(getattr(frame, name), getattr(again, name)), name
    other = synth.render(synth.make_character(8), 1001, SIZE)
    assert not np.array_equal(frame.color, other.color)
    assert not np.array_equal(frame.clean, other.clean)
    assert synth.make_character(8).materials != char.materials or not np.array_equal(frame.labels, other.labels)


def test_output_shapes_and_types(frame):
    h, w = SIZE[1], SIZE[0]
    for img in (frame.clean, frame.rough, frame.color, frame.clean_transparent):
        assert img.shape == (h, w, 4) and img.dtype == np.uint8
    assert frame.labels.shape == (h, w) and frame.labels.dtype == np.int32
    assert (frame.clean[..., 3] == 255).all() and (frame.rough[..., 3] == 255).all()
    # lines on transparency composite over white back to the clean drawing
    white = np.full_like(frame.clean, 255)
    back = images.composite_over(white, frame.clean_transparent)
    assert np.abs(back.astype(int) - frame.clean.astype(int)).max() <= 2


def test_labels_cover_character_and_match_colour(frame):
    labels, color = frame.labels, frame.color
    inside = labels != 0
    # alpha: 0 exactly where no part and no ink; 255 on every filled pixel
    assert (color[..., 3][labels > 0] == 255).all()
    assert (color[..., 3][(labels == 0) & (frame.ink_alpha == 0)] == 0).all()
    assert (color[..., 3][labels == synth.INK_LABEL] >= 128).all()
    assert 0.03 < inside.mean() < 0.5
    # every labelled pixel away from ink has exactly its palette colour
    lut = np.zeros((max(frame.palette) + 1, 3), np.uint8)
    for rid, region in frame.palette.items():
        lut[rid] = region.rgb
    clear = (labels > 0) & (frame.ink_alpha == 0)
    assert clear.sum() > 10_000
    assert (color[..., :3][clear] == lut[labels[clear]]).all()
    # on the anti-aliased fringe of a line the palette colour is blended with black ink
    fill = labels > 0
    cover = frame.ink_alpha[fill].astype(np.float64)[:, None] / 255.0
    expected = lut[labels[fill]] * (1.0 - cover)
    assert np.abs(color[..., :3][fill] - expected).max() <= 1.0
    assert (color[..., :3][fill] == lut[labels[fill]]).all(axis=1).mean() > 0.9
    # every region id used is in the palette, and most regions are visible
    used = set(np.unique(labels)) - {0, synth.INK_LABEL}
    assert used <= set(frame.palette)
    assert len(used) >= 0.7 * len(frame.palette)


def test_label_ids_are_consistent_across_frames(char):
    a, b = synth.render(char, 1001, SIZE, rough=False), synth.render(char, 1009, SIZE, rough=False)
    assert a.palette == b.palette
    head = char.region_ids("head")["base"]
    for f in (a, b):
        ys, xs = np.nonzero(f.regions == head)
        cx, cy = f.outlines["head"].mean(axis=0)
        assert len(xs) > 1000
        assert abs(xs.mean() - cx) < 25 and abs(ys.mean() - cy) < 25


def test_ink_mask_matches_dark_clean_pixels(frame):
    dark = frame.clean[..., :3].max(axis=2) < 128
    inter = (dark & frame.ink).sum()
    union = (dark | frame.ink).sum()
    assert frame.ink.sum() > 5000
    assert inter / union > 0.98
    assert (frame.labels[frame.ink] == synth.INK_LABEL).all()


def test_trace_lines_red_and_blue_and_shadows(frame):
    rgb = frame.clean[..., :3].astype(int)
    red = (np.abs(rgb - synth.TRACE_SHADOW_RGB).sum(axis=2) < 30)
    blue = (np.abs(rgb - synth.TRACE_HIGHLIGHT_RGB).sum(axis=2) < 30)
    assert red.sum() > 300
    assert blue.sum() > 100
    # trace lines lie inside the character
    assert (frame.silhouette | frame.ink)[red].mean() > 0.99
    # shadow and highlight regions exist and carry their tones in the colour cel
    assert frame.shadow.sum() > 2000 and frame.highlight.sum() > 200
    assert not (frame.shadow & frame.highlight).any()
    tones = {r.tone for r in frame.palette.values()}
    assert tones == {"base", "shadow", "highlight"}
    sid = next(r for r in frame.palette.values() if r.name == "body_shadow")
    body = next(r for r in frame.palette.values() if r.name == "body")
    assert sum(sid.rgb) < sum(body.rgb)
    # the finished colour has no trace colours left
    crgb = frame.color[..., :3].astype(int)
    assert (np.abs(crgb - synth.TRACE_SHADOW_RGB).sum(axis=2) < 30)[frame.color[..., 3] > 0].sum() == 0


def test_rough_differs_but_follows_clean(frame):
    grey_rough = cv2.cvtColor(frame.rough[..., :3], cv2.COLOR_RGB2GRAY)
    grey_clean = cv2.cvtColor(frame.clean[..., :3], cv2.COLOR_RGB2GRAY)
    assert np.abs(grey_rough.astype(int) - grey_clean.astype(int)).mean() > 5
    rough_dark = grey_rough < 190
    near = cv2.dilate(rough_dark.astype(np.uint8), np.ones((7, 7), np.uint8)) > 0
    assert near[frame.ink].mean() > 0.85  # clean ink is mostly next to a pencil stroke
    # and pencil strokes are mostly near clean lines (construction lines are the rest)
    lines = frame.ink | (frame.trace_shadow > 0) | (frame.trace_highlight > 0)
    near_clean = cv2.dilate(lines.astype(np.uint8), np.ones((9, 9), np.uint8)) > 0
    assert near_clean[rough_dark].mean() > 0.7
    # coloured pencil on the trace lines
    rgb = frame.rough[..., :3].astype(int)
    reddish = (rgb[..., 0] - rgb[..., 1] > 40) & (rgb[..., 0] - rgb[..., 2] > 40)
    bluish = (rgb[..., 2] - rgb[..., 0] > 40)
    assert reddish.sum() > 100 and bluish.sum() > 50


def test_large_motion_between_keys(char):
    frames = synth.sequence(7, [1001, 1002, 1009], SIZE, rough=False)
    a, b, c = frames[1001], frames[1002], frames[1009]
    assert 5.0 < synth.mean_displacement(a, b) < 25.0
    assert synth.mean_displacement(a, c) > 40.0
    sa, sc = a.silhouette, c.silhouette
    assert 1.0 - (sa & sc).sum() / (sa | sc).sum() > 0.5


def test_speed_scales_motion():
    slow = synth.sequence(3, [1001, 1002], SIZE, speed=0.5, rough=False)
    fast = synth.sequence(3, [1001, 1002], SIZE, speed=1.0, rough=False)
    assert set(slow) == {1001, 1002}
    assert synth.mean_displacement(slow[1001], slow[1002]) < synth.mean_displacement(fast[1001], fast[1002])
    count = synth.sequence(3, 3, (320, 180), rough=False)
    assert sorted(count) == [1001, 1002, 1003] and count[1001].color.shape == (180, 320, 4)


def test_fx_and_background():
    fx = synth.render(synth.make_fx(5), 1001, SIZE, rough=False)
    assert 0.001 < (fx.color[..., 3] > 0).mean() < 0.1
    assert fx.ink.sum() > 200
    bg = synth.render_background(5, SIZE)
    assert bg.shape == (540, 960, 4) and (bg[..., 3] == 255).all()
    assert bg[..., :3].std() > 10
    assert np.array_equal(bg, synth.render_background(5, SIZE))


def test_write_demo_studio(tmp_path: Path):
    shot_dir = synth.write_demo_studio(tmp_path)
    assert shot_dir == tmp_path / "DEMO" / "sq010" / "sh0010"
    naming = Naming("{show}/{seq}/{shot}", "{shot}_{layer}.{frame}.png", "{shot}.{frame}.png",
                    "{shot}_{layer}.{frame}.png", "{shot}.{frame}.png")
    keys = sorted(p.name for p in (shot_dir / "keys").iterdir())
    parsed = [naming.parse_key_name(n, "sh0010") for n in keys]
    assert None not in parsed
    assert {(p.layer, p.frame) for p in parsed} == {(layer, f) for layer in ("char", "fx")
                                                   for f in (1001, 1005, 1009, 1013)}
    ref = shot_dir / "refs" / "sh0010_char.1001.png"
    assert naming.parse_key_name(ref.name, "sh0010").layer == "char"
    ref_img = images.read_png(ref)
    assert (ref_img[..., 3] == 0).any() and (ref_img[..., 3] == 255).any()
    key_img = images.read_png(shot_dir / "keys" / "sh0010_char.1001.png")
    assert (key_img[..., 3] == 255).all()
    palette = yaml.safe_load((shot_dir / "refs" / "palette.yaml").read_text())
    assert {"skin", "skin_shadow", "hair_highlight"} <= set(palette["colors"])
    assert all(len(v) == 7 and v.startswith("#") for v in palette["colors"].values())
    # every region colour of the reference is a palette colour
    hexes = {v for v in palette["colors"].values()}
    filled = ref_img[ref_img[..., 3] == 255][:, :3]
    cols, counts = np.unique(filled, axis=0, return_counts=True)
    big = {"#%02x%02x%02x" % tuple(int(x) for x in c) for c, n in zip(cols, counts) if n > 200}
    assert big - {"#000000"} <= hexes
    shot = yaml.safe_load((shot_dir / "shot.yaml").read_text())
    assert shot == {"fps": 24, "timing": 2}
    total = sum(p.stat().st_size for p in shot_dir.rglob("*") if p.is_file())
    assert total < 5_000_000
    assert not [p for p in shot_dir.rglob(".*")]  # no temporary files left behind


def test_write_clean_keys(tmp_path: Path):
    shot_dir = synth.write_clean_keys(tmp_path, keys=(1001, 1003), fx=False)
    key = images.read_png(shot_dir / "keys" / "sh0010_char.1001.png")
    assert (key[..., :3] == 255).all(axis=2).mean() > 0.9  # clean white, no paper
    assert (key[..., :3].max(axis=2) < 128).sum() > 5000
    assert sorted(p.name for p in (shot_dir / "keys").iterdir()) == ["sh0010_char.1001.png", "sh0010_char.1003.png"]
