"""The `color` stage (issue 5): regions, matching to references, hints, trace lines, palettes, CLI.

Floors are set from values measured at 480x270 (see docs/color.md) with a margin."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from quickart_daemon import stages
from quickart_daemon.tools import flat_cels, synth
from quickart_daemon.images import read_png, write_png
from quickart_daemon.stages.base import StageContext
from quickart_daemon.tools import color_metrics as metrics
from quickart_daemon.stages.color.palette import Palette, load_palette
from quickart_daemon.stages.color.reference import Colours, build_ref
from quickart_daemon.stages.color.stage import colour_drawing
from quickart_daemon.timing import schedule_from_timing

SIZE = (480, 270)
SEEDS = (1, 2, 3)


@pytest.fixture(scope="module")
def accuracy():
    rows, _ = metrics.accuracy_table(SEEDS, SIZE)
    return {g: {k: float(np.mean(v)) for k, v in r.items()} for g, r in rows.items()}


def test_stage_is_registered():
    spec = stages.get("color")
    assert spec.kind == "keys" and spec.publish_folder == "color"


def test_reference_matching_floors_and_beats_the_naive_baseline(accuracy):
    # measured at 480x270, seeds 1-3: 96.8 / 96.4 / 95.8 % at gaps 1 / 4 / 8, naive 96.3 / 94.1 /
    # 82.9 % (see docs/color.md); floors leave a margin
    assert accuracy[1]["ours"] >= 0.95
    assert accuracy[4]["ours"] >= 0.945
    assert accuracy[8]["ours"] >= 0.935
    assert accuracy[8]["ours"] > accuracy[8]["naive"] + 0.08
    assert accuracy[4]["ours"] >= accuracy[4]["naive"] + 0.01


def test_shadow_regions_follow_the_reference(accuracy):
    # measured 91.5 / 88.1 / 93.3 % at gaps 1 / 4 / 8
    assert accuracy[1]["shadow"] >= 0.85
    assert accuracy[4]["shadow"] >= 0.82
    assert accuracy[8]["shadow"] >= 0.85


def test_every_hinted_region_takes_its_hint_and_trace_lines_give_tones():
    hinted, n, shadow, highlight = metrics.hint_and_trace(SEEDS[:2], SIZE)
    assert n > 20 and hinted == 1.0
    assert shadow >= 0.6


def test_gaps_up_to_three_pixels_do_not_leak():
    leaks, leaks_clean, regions = metrics.leak_table(SEEDS, (960, 540))
    assert leaks_clean == 0
    assert leaks <= 2, f"{leaks} merged regions of {regions}"


def test_tiny_closed_regions_are_kept():
    img = np.full((120, 160, 4), 255, np.uint8)
    cv2.circle(img, (80, 60), 40, (0, 0, 0, 255), 2)
    cv2.circle(img, (80, 60), 3, (0, 0, 0, 255), 1)  # an eye-sized dot
    from quickart_daemon.stages.color.reference import prepare
    p = prepare(img)
    assert p.seg.n >= 3  # outside, the disc, the dot


def _ctx(refs=None, hints=None, palette=None, keys=None):
    keys = keys or {}
    return StageContext(schedule=schedule_from_timing(keys, 1), refs=refs or {}, hints=hints or {},
                        palette_path=palette)


def test_run_reproduces_the_reference_frame_and_reports_confidence(tmp_path):
    seq = synth.sequence(4, [1001, 1003], size=SIZE, rough=False)
    frames = {("char", f): seq[f].clean for f in seq}
    refs = {("char", 1001): seq[1001].color}
    char = synth.make_character(4)
    pal = tmp_path / "palette.yaml"
    names = dict(char.materials)
    pal.write_text(synth.palette_yaml(char) + "styles:\n  night:\n    tint: '#6070a0'\n    skin: '#404060'\n")
    res = stages.get("color").run(frames, _ctx(refs, palette=pal, keys={"char": [1001, 1003]}))
    repro = res.frames[("char", 1001)].astype(int)
    fills = (seq[1001].labels > 0) & (seq[1001].ink_alpha == 0)
    assert np.array_equal(repro[fills], seq[1001].color[fills])
    assert np.abs(repro - seq[1001].color).max() <= 12  # only near-palette ink fringes snap
    assert set(res.variants) == {"confidence", "night"}
    out = res.frames[("char", 1003)]
    assert out.shape == (SIZE[1], SIZE[0], 4) and out.dtype == np.uint8
    t = seq[1003]
    assert out[0, 0, 3] == 0 and (out[(t.labels == 0) & (t.ink_alpha == 0)][:, 3] == 0).mean() > 0.97
    assert (out[(t.labels > 0)][:, 3] == 255).mean() > 0.97
    # no off-model colour: every fill colour is in the palette (fills = pixels away from ink)
    fill = res.frames[("char", 1003)][(seq[1003].labels > 0) & (seq[1003].ink_alpha == 0)][:, :3]
    allowed = {tuple(v) for v in names.values()}
    assert {tuple(int(c) for c in v) for v in np.unique(fill, axis=0)} <= allowed
    night = res.variants["night"][("char", 1003)]
    assert not np.array_equal(night, out)
    assert isinstance(res.report["low_confidence"], list)
    for item in res.report["low_confidence"]:
        assert {"layer", "frame", "bbox", "centroid", "confidence"} <= set(item)


def test_flats_without_refs_or_hints_and_coloured_frames_pass_through():
    f = synth.sequence(2, [1001], size=SIZE, rough=False)[1001]
    res = stages.get("color").run({("a", 1): f.clean, ("fx", 1): f.color}, _ctx(keys={"a": [1], "fx": [1]}))
    flats = res.frames[("a", 1)]
    inside = (f.labels > 0) & (f.ink_alpha == 0)
    assert len(np.unique(flats[inside][:, :3], axis=0)) >= 10  # a distinct colour per region
    assert np.array_equal(res.frames[("fx", 1)], f.color)
    assert any("flats" in w for w in res.report["warnings"])


def test_lines_on_transparency_and_rough_lines_are_tolerated():
    seq = synth.sequence(3, [1001, 1002], size=SIZE, rough=True)
    colours = Colours()
    ref = build_ref(1001, seq[1001].color, seq[1001].clean_transparent, 0, colours)
    m = metrics.character_mask(seq[1002])
    res = colour_drawing(seq[1002].clean_transparent, [ref], None, Palette(), colours, {}, 1002)
    assert metrics.correct(res.image, seq[1002])[m].mean() >= 0.93  # measured 0.969
    # rough pencil (refine did not run): segmented and painted, but far less accurate (measured 0.35)
    res = colour_drawing(seq[1002].rough, [ref], None, Palette(), colours, {}, 1002)
    assert res.labels.max() >= 10 and res.image[m][:, 3].mean() > 200


def test_palette_schema_errors_are_clear(tmp_path):
    from quickart_daemon.errors import StageFailed
    p = tmp_path / "palette.yaml"
    p.write_text("colors: {skin: '#ffeedd', skin_shadow: '#ccbbaa'}\nstyles: {night: {skin: '#112233', tint: '#8080ff'}}\n")
    pal = load_palette(p)
    assert pal.tone((255, 238, 221), "shadow") == (204, 187, 170)
    assert pal.apply_style("night", (255, 238, 221)) == (17, 34, 51)
    assert pal.apply_style("night", (204, 187, 170)) == (102, 94, 170)
    p.write_text("colors: {skin: 'pink'}\n")
    with pytest.raises(StageFailed, match="colors.skin"):
        load_palette(p)


def test_cli_folder_mode(tmp_path):
    seq = synth.sequence(5, [1001, 1004], size=SIZE, rough=False)
    lines, refs, out = tmp_path / "lines", tmp_path / "refs", tmp_path / "out"
    lines.mkdir(), refs.mkdir()
    for f in seq:
        write_png(lines / f"sh0010_char.{f}.png", seq[f].clean)
    write_png(refs / "sh0010_char.1001.png", seq[1001].color)
    quickart = Path(sys.executable).with_name("quickart")
    r = subprocess.run([str(quickart), "stage", "color", "--in", str(lines), "--out", str(out), "--ref", str(refs)],
                       capture_output=True, text=True, cwd=tmp_path, timeout=120)
    assert r.returncode == 0, r.stderr
    assert sorted(p.name for p in out.glob("*.png")) == ["sh0010_char.1001.png", "sh0010_char.1004.png"]
    assert sorted(p.name for p in (out / "confidence").glob("*.png")) == ["sh0010_char.1001.png", "sh0010_char.1004.png"]
    img = read_png(out / "sh0010_char.1004.png")
    ok = metrics.correct(img, seq[1004])
    assert ok[metrics.character_mask(seq[1004])].mean() >= 0.85


# -- real drawings (issue 14): bold line art, shaded references --------------------------------

def _bold_lines(dx: int = 0) -> np.ndarray:
    """Line art as real productions draw it: thick strokes and solid black parts (pupils)."""
    img = np.full((120, 160, 4), 255, np.uint8)
    cv2.ellipse(img, (60 + dx, 62), (34, 40), 0, 0, 360, (0, 0, 0, 255), 9, cv2.LINE_AA)
    cv2.circle(img, (70 + dx, 50), 9, (0, 0, 0, 255), -1, cv2.LINE_AA)  # a pupil
    cv2.rectangle(img, (112, 20), (150, 100), (0, 0, 0, 255), 8, cv2.LINE_AA)
    return img


def _shaded_cel(lines: np.ndarray, dx: int = 0) -> np.ndarray:
    """The coloured cel of `_bold_lines`: the body a yellow gradient with a soft shadow on its
    lower part and a white highlight, the box flat blue, the ink kept."""
    cel = lines.copy()
    ys, xs = np.mgrid[0:120, 0:160]
    body = ((xs - 60 - dx) / 30.0) ** 2 + ((ys - 62) / 36.0) ** 2 <= 1
    shade = np.clip((ys - 40) / 60.0, 0, 1)[..., None]
    yellow = np.array([255, 215, 60], np.float32) * (1 - 0.35 * shade)  # gradient into a shadow
    cel[body] = np.concatenate([yellow, np.full((120, 160, 1), 255, np.float32)], 2)[body].astype(np.uint8)
    cel[(((xs - 48 - dx) / 6.0) ** 2 + ((ys - 40) / 4.0) ** 2 <= 1)] = (255, 255, 250, 255)  # highlight
    cel[116 - 90:96, 117:146] = (60, 140, 220, 255)
    ink = lines[..., :3].max(axis=2) < 128
    cel[ink] = lines[ink]
    return cel


def test_bold_line_art_is_coloured_not_passed_through():
    """Thick strokes and solid black parts are wide and dark but not paint: the frame is line
    art, and a reference colours it (it used to pass through as 'already coloured')."""
    from quickart_daemon.stages.color.reference import is_coloured
    lines = _bold_lines()
    assert not is_coloured(lines)
    assert is_coloured(_shaded_cel(lines))


def test_shaded_reference_gives_base_colour_and_carries_the_shading():
    lines_ref, lines_tgt = _bold_lines(0), _bold_lines(4)
    ref, truth = _shaded_cel(lines_ref, 0), _shaded_cel(lines_tgt, 4)
    ctx = _ctx(refs={("char", 1): ref}, keys={"char": [1, 2]})
    res = stages.get("color").run({("char", 1): lines_ref, ("char", 2): lines_tgt}, ctx)
    out = res.frames[("char", 2)][..., :3].astype(np.float32)
    ys, xs = np.mgrid[0:120, 0:160]
    body = (((xs - 64) / 26.0) ** 2 + ((ys - 62) / 32.0) ** 2 <= 1) & (lines_tgt[..., 0] > 128)
    body &= ~((((xs - 74) / 12.0) ** 2 + ((ys - 50) / 12.0) ** 2) <= 1)  # not the pupil
    err = np.linalg.norm(out - truth[..., :3].astype(np.float32), axis=2)
    # the shading moved with the part: nearly every body pixel within a few levels of the truth
    assert (err[body] <= 24).mean() >= 0.9, (err[body] <= 24).mean()
    # the flat box stays exactly flat
    box = np.zeros((120, 160), bool)
    box[30:92, 121:142] = True
    assert len(np.unique(out[box].reshape(-1, 3), axis=0)) == 1


def test_region_base_colour_is_robust_to_highlight_and_shadow():
    """A shaded part: a gradient (no two rows the same colour) with a flat white highlight on a
    fifth of it. The most frequent exact colour is the highlight; the base is the gradient's."""
    from quickart_daemon.stages.color.reference import region_colours
    cel = np.zeros((40, 40, 4), np.uint8)
    cel[..., 3] = 255
    for y in range(40):
        cel[y, :, :3] = (180 + y, 90 + y // 2, 40)   # a gradient into the shadow
    cel[:8, :, :3] = 255                             # the highlight
    colours = Colours()
    got = region_colours(np.ones((40, 40), np.int32), np.ones((40, 40), bool), cel, 1, colours)
    r, g, b = colours.table[got[1]]
    assert abs(r - 204) <= 6 and abs(g - 102) <= 4 and b == 40, (r, g, b)


def test_opaque_reference_paints_the_scenery_behind_the_lines():
    """A screen (no lines around its grey glow) behind a character: the background of the line
    art takes the opaque reference's scenery at the same place, marked half sure."""
    lines = _bold_lines(0)
    ref = _shaded_cel(lines, 0)
    ref[2:18, 2:100] = (200, 205, 215, 255)  # scenery painted without lines
    ctx = _ctx(refs={("char", 1): ref}, keys={"char": [1, 2]})
    res = stages.get("color").run({("char", 1): lines, ("char", 2): _bold_lines(2)}, ctx)
    out = res.frames[("char", 2)]
    assert (np.abs(out[5:15, 5:95, :3].astype(int) - (200, 205, 215)).max(axis=2) <= 2).mean() > 0.95
    conf = res.variants["confidence"][("char", 2)][..., 0]
    assert conf[5:15, 5:95].max() <= 130 and conf[110:118, 2:40].min() == 255  # scenery unsure, paper sure


# -- shading carried with the part's own motion (issue 14, real failures) --------------------------

def _box_with_flag(flag_x: int, rim=(0, 0, 0)) -> tuple[np.ndarray, np.ndarray]:
    """A box that holds still, shaded top to bottom (a blue gradient), with a flag that moves across
    it (the mailbox): the box's visible shape changes with the flag. Returns (line art, cel); the
    cel paints the outlines in `rim` (real cels colour their outlines)."""
    lines = np.full((120, 160, 4), 255, np.uint8)
    cv2.rectangle(lines, (20, 20), (140, 100), (0, 0, 0, 255), 3)
    cv2.rectangle(lines, (flag_x, 10), (flag_x + 14, 70), (0, 0, 0, 255), 3)
    ys, xs = np.mgrid[0:120, 0:160]
    cel = lines.copy()
    box = (xs > 21) & (xs < 139) & (ys > 21) & (ys < 99)
    cel[box, :3] = np.stack([20 + ys, 90 + ys, 120 + ys], 2)[box]
    flag = (xs > flag_x + 1) & (xs < flag_x + 13) & (ys > 11) & (ys < 69)
    cel[flag, :3] = (230, 35, 13)
    ink = lines[..., 0] < 128
    cel[ink, :3] = rim
    return lines, cel


def test_a_still_shaded_part_keeps_its_shading_when_another_part_moves_over_it():
    """The box does not move; the flag does, so the box's centroid does (the old offset moved the
    gradient by it). Its shift comes from its outline, which lies where it lay: the gradient
    stays in place."""
    lines_ref, cel_ref = _box_with_flag(30)
    lines_tgt, truth = _box_with_flag(100)
    ctx = _ctx(refs={("char", 1): cel_ref}, keys={"char": [1, 2]})
    out = stages.get("color").run({("char", 1): lines_ref, ("char", 2): lines_tgt}, ctx).frames[("char", 2)]
    box = np.zeros((120, 160), bool)
    box[24:97, 24:136] = True
    box[8:73, 98:117] = False                 # the flag and its lines now
    box[8:73, 28:47] = False                  # where the flag hid the box in the reference (not carried)
    err = np.linalg.norm(out[..., :3].astype(float) - truth[..., :3], axis=2)
    assert (err[box] <= 6).mean() >= 0.97, (err[box] <= 6).mean()


def test_coloured_outlines_keep_the_references_colour():
    """Real cels colour their outlines (an orange rim round a yellow duck): the line art's lines
    take the colour the reference gives the same stretch of line, not the drawing's black."""
    lines_ref, cel_ref = _box_with_flag(30, rim=(20, 60, 140))
    lines_tgt, _ = _box_with_flag(100)
    ctx = _ctx(refs={("char", 1): cel_ref}, keys={"char": [1, 2]})
    out = stages.get("color").run({("char", 1): lines_ref, ("char", 2): lines_tgt}, ctx).frames[("char", 2)]
    core = lines_tgt[..., 0] == 0
    assert (np.abs(out[core][:, :3].astype(int) - (20, 60, 140)).max(axis=1) <= 8).mean() >= 0.9


def _two_rimmed_parts(r_disc: int, dx: int) -> tuple[np.ndarray, np.ndarray]:
    """A yellow disc with an orange outline and a teal ellipse with a dark teal one (a duck, a
    dart: each part's lines have their own colour). Returns (line art, cel)."""
    lines = np.full((120, 200, 4), 255, np.uint8)
    cv2.circle(lines, (55 + dx, 60), r_disc, (0, 0, 0, 255), 4)
    cv2.ellipse(lines, (150, 60), (18, 40), 0, 0, 360, (0, 0, 0, 255), 4)
    ys, xs = np.mgrid[0:120, 0:200]
    cel = lines.copy()
    ink = lines[..., 0] < 128
    disc = np.hypot(xs - 55 - dx, ys - 60) < r_disc
    dart = ((xs - 150) / 18.0) ** 2 + ((ys - 60) / 40.0) ** 2 < 1
    cel[disc & ~ink, :3] = (255, 213, 39)
    cel[dart & ~ink, :3] = (65, 225, 229)
    cel[ink & (np.hypot(xs - 55 - dx, ys - 60) < r_disc + 4), :3] = (250, 140, 20)
    cel[ink & (np.hypot(xs - 55 - dx, ys - 60) >= r_disc + 4), :3] = (7, 100, 105)
    return lines, cel


def test_a_moved_part_whose_lines_are_not_found_keeps_its_outline_colour():
    """A part that grew and moved (its outline lands on none of the reference's lines at any
    shift: the duck's back at d = 8) kept the drawing's black ink on its lines, a thick black
    band round an orange-rimmed duck. A stroke whose own stretch of line is not found takes the
    colour the reference gives its part's outline; the part that held still keeps its own."""
    lines_ref, cel_ref = _two_rimmed_parts(28, 0)
    lines_tgt, _ = _two_rimmed_parts(38, 6)
    ctx = _ctx(refs={("char", 1): cel_ref}, keys={"char": [1, 2]})
    out = stages.get("color").run({("char", 1): lines_ref, ("char", 2): lines_tgt}, ctx).frames[("char", 2)]
    core = lines_tgt[..., 0] == 0
    xs = np.mgrid[0:120, 0:200][1]
    near = lambda rgb: np.abs(out[..., :3].astype(int) - rgb).max(axis=2) <= 12
    assert near((250, 140, 20))[core & (xs < 110)].mean() >= 0.9
    assert near((7, 100, 105))[core & (xs >= 110)].mean() >= 0.9


def test_a_line_takes_its_own_parts_line_colour_not_anothers_it_lands_on():
    """A part that grew (a disc inside a blue ring in the reference, filling the ring's place now):
    its outline lands on the ring's dark blue outer line, another part's. Its lines take the colour
    of its own part's lines (the orange rim round the yellow disc), not the line they land on (a
    dart's fins that took the dartboard's dark red rim)."""
    from quickart_daemon.stages.color.finish import INK_VISIBLE
    from quickart_daemon.stages.color.shading import carry_shading
    from quickart_daemon.stages.color.reference import prepare
    lines_ref = np.full((120, 120, 4), 255, np.uint8)
    cv2.circle(lines_ref, (60, 60), 20, (0, 0, 0, 255), 3)
    cv2.circle(lines_ref, (60, 60), 40, (0, 0, 0, 255), 3)
    ys, xs = np.mgrid[0:120, 0:120]
    r = np.hypot(xs - 60, ys - 60)
    ink = lines_ref[..., 0] < 128
    cel = lines_ref.copy()
    cel[(r < 20) & ~ink, :3] = (255, 213, 39)
    cel[(r >= 20) & (r < 40) & ~ink, :3] = (40, 120, 220)
    cel[ink & (r < 30), :3] = (250, 140, 20)   # the disc's orange rim
    cel[ink & (r >= 30), :3] = (10, 30, 110)   # the ring's dark blue rim
    lines_tgt = np.full((120, 120, 4), 255, np.uint8)
    cv2.circle(lines_tgt, (60, 60), 40, (0, 0, 0, 255), 3)
    colours = Colours()
    ref = build_ref(1, cel, lines_ref, 0.0, colours)
    prep = prepare(lines_tgt)
    lab, n = prep.seg.labels, prep.seg.n
    t, disc = lab[60, 60], ref.prep.seg.labels[60, 60]
    colour = np.full(n + 1, -1)
    colour[t] = ref.colour[disc]
    lut = np.zeros((n + 1, 4), np.uint8)
    lut[t] = (255, 213, 39, 255)
    src_ref, src_reg = np.where(colour >= 0, 0, -1), np.where(colour >= 0, disc, 0)
    _, _, _, line_rgb = carry_shading(lab, prep.regs, lut, colour, src_ref, src_reg, [ref],
                                      prep.art.coverage > INK_VISIBLE, prep.art.line_width, prep.seg.free)
    core = lines_tgt[..., 0] == 0
    assert (np.abs(line_rgb[core].astype(int) - (250, 140, 20)).max(axis=1) <= 12).mean() >= 0.9


def _card_by_a_solid_black_opening(x: int, y: int) -> tuple[np.ndarray, np.ndarray]:
    """A solid black opening (drawn solid in the line art, as a mailbox's inside) and a card shaded
    light above and darker below (an envelope) with its top-left corner at (x, y). Returns
    (line art, cel); the cel is transparent around them."""
    lines = np.full((140, 220, 4), 255, np.uint8)
    cv2.rectangle(lines, (20, 20), (80, 120), (0, 0, 0, 255), -1)
    cv2.rectangle(lines, (x, y), (x + 60, y + 50), (255, 255, 255, 255), -1)
    cv2.rectangle(lines, (x, y), (x + 60, y + 50), (0, 0, 0, 255), 3)
    ys, xs = np.mgrid[0:140, 0:220]
    cel = lines.copy()
    card = (xs > x + 1) & (xs < x + 59) & (ys > y + 1) & (ys < y + 49)
    cel[card & (ys < y + 25), :3] = (235, 235, 235)
    cel[card & (ys >= y + 25), :3] = (150, 150, 150)
    drawn = (xs >= x) & (xs <= x + 60) & (ys >= y) & (ys <= y + 50) | (xs >= 20) & (xs <= 80) & (ys >= 20) & (ys <= 120)
    cel[~drawn, 3] = 0
    return lines, cel


def test_a_part_moved_over_a_solid_black_area_keeps_its_shading():
    """A card (the mailbox's envelope) that moved in front of a solid black opening: its outline
    "lay on the reference's lines" with no shift, since every pixel of a solid black area is line,
    so it was taken for a part that held still, found none of its reference's pixels there and
    was painted flat (the envelope's light top in its darker grey, tg_mailbox frame 5 from 1). An
    outline lies on strokes and on the edges of a solid area, not inside it: the card's shading
    comes with its own motion."""
    lines_ref, cel_ref = _card_by_a_solid_black_opening(140, 70)
    lines_tgt, truth = _card_by_a_solid_black_opening(50, 30)
    ctx = _ctx(refs={("char", 1): cel_ref}, keys={"char": [1, 2]})
    out = stages.get("color").run({("char", 1): lines_ref, ("char", 2): lines_tgt}, ctx).frames[("char", 2)]
    ys, xs = np.mgrid[0:140, 0:220]
    card = (xs > 53) & (xs < 107) & (ys > 33) & (ys < 77) & (np.abs(ys - 55) > 3)  # off the tone edge
    right = np.abs(out[..., :3].astype(int) - truth[..., :3].astype(int)).max(axis=2) <= 12
    assert right[card].mean() >= 0.9


def _target_board(dx: int) -> tuple[np.ndarray, np.ndarray]:
    """A disc drawn by its outline only, painted with red and white rings and a translucent
    shadow (a darker crescent) that no line draws (a dartboard): colour areas without lines."""
    lines = np.full((120, 160, 4), 255, np.uint8)
    cx, cy = 70 + dx, 60
    cv2.circle(lines, (cx, cy), 40, (0, 0, 0, 255), 3)
    ys, xs = np.mgrid[0:120, 0:160]
    r = np.hypot(xs - cx, ys - cy)
    cel = lines.copy()
    disc = r < 39
    ring = ((r // 10).astype(int) % 2 == 0)
    cel[disc & ring, :3] = (230, 40, 40)
    cel[disc & ~ring, :3] = (250, 250, 250)
    shadow = disc & (np.hypot(xs - cx - 15, ys - cy - 15) < 22)
    cel[shadow, :3] = (cel[shadow, :3] * 0.7).astype(np.uint8)  # a translucent shadow over both
    return lines, cel


def test_colour_areas_without_lines_and_a_translucent_shadow_move_with_their_part():
    lines_ref, cel_ref = _target_board(0)
    lines_tgt, truth = _target_board(12)
    ctx = _ctx(refs={("char", 1): cel_ref}, keys={"char": [1, 2]})
    res = stages.get("color").run({("char", 1): lines_ref, ("char", 2): lines_tgt}, ctx)
    out = res.frames[("char", 2)]
    ys, xs = np.mgrid[0:120, 0:160]
    disc = np.hypot(xs - 82, ys - 60) < 36
    err = np.linalg.norm(out[..., :3].astype(float) - truth[..., :3], axis=2)
    assert (err[disc] <= 12).mean() >= 0.97, (err[disc] <= 12).mean()
    # the ring and shadow edges (a shift or a turn puts a pixel on the other side) are marked
    # unsure; the middle of a ring is sure
    conf = res.variants["confidence"][("char", 2)][..., 0]
    r = np.hypot(xs - 82, ys - 60)
    assert conf[disc & (np.abs(r - 20) <= 1)].max() < 128
    assert conf[disc & (np.abs(r - 15) <= 1) & (ys < 50)].min() >= 128


def test_a_part_that_moved_away_leaves_no_ghost_in_the_scenery():
    """An opaque reference (a screen, paper) with a shaded part: in the drawing the part has moved
    on. Where it was, the background shows (the nearest background of the reference), not a
    copy of the part; where the lines held still, the scenery is copied as before."""
    def drawing(cx):
        lines = np.full((120, 160, 4), 255, np.uint8)
        cv2.circle(lines, (cx, 60), 22, (0, 0, 0, 255), 3)
        cv2.rectangle(lines, (120, 10), (150, 40), (0, 0, 0, 255), 3)   # a box that holds still
        return lines
    lines_ref, lines_tgt = drawing(45), drawing(95)
    cel = lines_ref.copy()
    cel[..., :3] = (214, 220, 227)                                      # the screen
    ys, xs = np.mgrid[0:120, 0:160]
    disc = np.hypot(xs - 45, ys - 60) < 21
    cel[disc, :3] = np.stack([120 + ys, 60 + ys // 2, 30 + 0 * ys], 2)[disc]   # a shaded part
    cel[12:39, 122:149, :3] = (90, 160, 90)
    cel[lines_ref[..., 0] < 128, :3] = 0
    ctx = _ctx(refs={("char", 1): cel}, keys={"char": [1, 2]})
    res = stages.get("color").run({("char", 1): lines_ref, ("char", 2): lines_tgt}, ctx)
    out = res.frames[("char", 2)]
    was = np.hypot(xs - 45, ys - 60) < 26
    assert (np.abs(out[was][:, :3].astype(int) - (214, 220, 227)).max(axis=1) <= 2).mean() >= 0.97
    now = np.hypot(xs - 95, ys - 60) < 18
    assert (np.linalg.norm(out[now][:, :3].astype(float) - cel[np.roll(now, -50, axis=1)][:, :3], axis=1) <= 8).mean() >= 0.95
    assert (np.abs(out[15:36, 125:146, :3].astype(int) - (90, 160, 90)).max(axis=2) <= 2).all()


def test_a_part_cut_in_two_by_an_occluder_in_the_reference_keeps_both_pieces_shading():
    """In the reference a bar lies across the whole box (two regions there); in the drawing the
    bar has swung up out of the box, which is one region: its top continues the top piece's
    gradient, not the bottom piece's."""
    def drawing(bar_across: bool):
        lines = np.full((120, 160, 4), 255, np.uint8)
        cv2.rectangle(lines, (20, 20), (140, 110), (0, 0, 0, 255), 3)
        if bar_across:
            cv2.rectangle(lines, (10, 50), (150, 62), (0, 0, 0, 255), 3)
        else:
            cv2.rectangle(lines, (144, 4), (156, 100), (0, 0, 0, 255), 3)
        ys, xs = np.mgrid[0:120, 0:160]
        cel = lines.copy()
        box = (xs > 21) & (xs < 139) & (ys > 21) & (ys < 109)
        cel[box, :3] = np.stack([60 + ys // 2, 100 + ys // 2, 160 + ys // 3], 2)[box]  # a gentle gradient
        bar = ((xs > 11) & (xs < 149) & (ys > 51) & (ys < 61)) if bar_across else \
            ((xs > 145) & (xs < 155) & (ys > 5) & (ys < 99))
        cel[bar, :3] = (230, 35, 13)
        cel[lines[..., 0] < 128, :3] = 0
        return lines, cel
    (lines_ref, cel_ref), (lines_tgt, truth) = drawing(True), drawing(False)
    ctx = _ctx(refs={("char", 1): cel_ref}, keys={"char": [1, 2]})
    out = stages.get("color").run({("char", 1): lines_ref, ("char", 2): lines_tgt}, ctx).frames[("char", 2)]
    err = np.linalg.norm(out[..., :3].astype(float) - truth[..., :3], axis=2)
    top, bottom = err[25:47, 25:135], err[66:105, 25:135]
    assert (bottom <= 6).mean() >= 0.97 and (top <= 6).mean() >= 0.9, ((bottom <= 6).mean(), (top <= 6).mean())


def test_scenery_without_lines_scrolls_with_the_lines_around_it():
    """A chat on a screen scrolls: white bubbles drawn without lines on a grey screen, the text
    bars in them are lines. The background follows the shift of its lines there (a pan works the
    same way): each bubble lands where its text went, not where it was (around its text)."""
    def screen(dy):
        lines = np.full((120, 160, 4), 255, np.uint8)
        cel = np.full((120, 160, 4), 255, np.uint8)
        cel[..., :3] = (214, 220, 227)
        for top in (20, 75):
            cel[top + dy:top + dy + 35, 30:130, :3] = 255           # a bubble, no outline
            for k in range(3):
                y = top + dy + 8 + 9 * k
                cv2.rectangle(lines, (40, y), (100 - 15 * k, y + 3), (0, 0, 0, 255), -1)  # text
        cel[lines[..., 0] < 128, :3] = 0
        return lines, cel
    (lines_ref, cel_ref), (lines_tgt, truth) = screen(0), screen(-12)
    ctx = _ctx(refs={("char", 1): cel_ref}, keys={"char": [1, 2]})
    res = stages.get("color").run({("char", 1): lines_ref, ("char", 2): lines_tgt}, ctx)
    out = res.frames[("char", 2)]
    err = np.linalg.norm(out[..., :3].astype(float) - truth[..., :3], axis=2)
    # around the text (where the lines show the motion) the bubbles are where they went; a
    # bubble's margin farther from any line than the lines' neighbourhood is still copied in place
    text = lines_tgt[..., 0] < 128
    near = cv2.dilate(text.astype(np.uint8), np.ones((5, 5), np.uint8)).astype(bool) & ~text
    assert (err[near] <= 8).mean() >= 0.97, (err[near] <= 8).mean()
    # where the chat moved the map says so
    conf = res.variants["confidence"][("char", 2)][..., 0]
    assert (conf[near] < 128).mean() >= 0.9


def test_what_held_still_is_the_reference_pixel_for_pixel():
    """A hold (or the parts that do not take part in the motion): a part whose lines did not move
    is the reference exactly, its coloured, anti-aliased outline included (no black ink drawn over
    the reference's orange rim), while another part moves elsewhere."""
    def drawing(ball_x):
        lines = np.full((120, 160, 4), 255, np.uint8)
        cv2.circle(lines, (50, 60), 30, (0, 0, 0, 255), 4, cv2.LINE_AA)
        cv2.circle(lines, (ball_x, 30), 8, (0, 0, 0, 255), 2, cv2.LINE_AA)
        return lines
    lines_ref, lines_tgt = drawing(120), drawing(135)
    cov = 1.0 - lines_ref[..., :1].astype(np.float32) / 255           # the lines' coverage
    ys, xs = np.mgrid[0:120, 0:160]
    inside = (np.hypot(xs - 50, ys - 60) < 30)[..., None]
    base = np.where(inside, np.float32([255, 213, 39]), np.float32([255, 255, 255]))
    cel = np.full((120, 160, 4), 255, np.uint8)
    cel[..., :3] = (cov * np.float32([240, 140, 20]) + (1 - cov) * base + 0.5).astype(np.uint8)  # an orange rim
    ctx = _ctx(refs={("char", 1): cel}, keys={"char": [1, 2]})
    out = stages.get("color").run({("char", 1): lines_ref, ("char", 2): lines_tgt}, ctx).frames[("char", 2)]
    held = np.hypot(xs - 50, ys - 60) < 36
    assert (np.abs(out[held][:, :3].astype(int) - cel[held][:, :3]).max(axis=1) <= 3).mean() >= 0.99


def _chat(dy: int) -> tuple[np.ndarray, np.ndarray]:
    """A chat on a screen (line art, cel): white bubbles without outlines on a grey screen, their
    text bars the only lines inside, the screen's frame (left, right, bottom) holding still. The
    chat is scrolled by `dy`; bubbles outside the screen are cut off."""
    lines = np.full((200, 200, 4), 255, np.uint8)
    cel = np.full((200, 200, 4), 255, np.uint8)
    cel[:190, 12:188, :3] = (214, 220, 227)
    for k, top in enumerate((-50, 20, 90, 160, 230)):
        y0 = top + dy
        cel[max(0, y0):max(0, min(186, y0 + 50)), 30:170, :3] = 255     # a bubble, no outline
        for j, (x1, gap) in enumerate(((150, 10), (110, 22), (135, 34))):
            y = y0 + gap
            if 0 <= y and y + 5 < 186:
                cv2.rectangle(lines, (40 + 6 * ((k + j) % 3), y), (x1 - 8 * (k % 2), y + 4), (0, 0, 0, 255), -1)
    cv2.rectangle(lines, (8, -10), (191, 191), (0, 0, 0, 255), 5)         # the frame, open at the top
    cel[lines[..., 0] < 128, :3] = 0
    return lines, cel


def test_a_scrolled_chat_moves_its_bubbles_with_their_text_even_far_from_it():
    """The chat scrolls by more than a bubble's height (tg_ducks_comments: whole bubbles between
    frames): the few motions of the screen's lines are found over the whole frame, each pixel takes
    the one its lines took, and a bubble's margin and the grey gaps between bubbles (no line near
    them) move with the nearest text, while the frame holds still."""
    (lines_ref, cel_ref), (lines_tgt, truth) = _chat(0), _chat(-45)
    ctx = _ctx(refs={("char", 1): cel_ref}, keys={"char": [1, 2]})
    out = stages.get("color").run({("char", 1): lines_ref, ("char", 2): lines_tgt}, ctx).frames[("char", 2)]
    err = np.linalg.norm(out[..., :3].astype(float) - truth[..., :3], axis=2)
    screen = np.zeros((200, 200), bool)
    screen[4:184, 16:184] = True
    screen &= cv2.dilate((lines_tgt[..., 0] < 128).astype(np.uint8), np.ones((5, 5), np.uint8)) == 0
    # measured 0.89 (0.65 before: each patch near changed lines took its own shift, short and
    # mostly wrong, and the rest of the screen stayed in place)
    assert (err[screen] <= 8).mean() >= 0.85, (err[screen] <= 8).mean()


def _boxed_lines() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A 160x120 line art of a box outline (the mailbox tests' start), and its pixel rows, columns."""
    lines = np.full((120, 160, 4), 255, np.uint8)
    cv2.rectangle(lines, (20, 20), (140, 100), (0, 0, 0, 255), 3)
    ys, xs = np.mgrid[0:120, 0:160]
    return lines, ys, xs


def _box_and_flag(flag_across: bool) -> tuple[np.ndarray, np.ndarray]:
    """A box that holds still, shaded top to bottom, and a flag that lies over the box's lower
    right corner or slants across the box's upper part (the mailbox of tg_mailbox). Returns
    (line art, cel)."""
    lines, ys, xs = _boxed_lines()
    flag = np.zeros((120, 160), np.uint8)
    if flag_across:
        cv2.line(flag, (8, 26), (152, 58), 1, 12)
    else:
        flag[62:112, 70:150] = 1
    edge = cv2.morphologyEx(flag, cv2.MORPH_GRADIENT, np.ones((3, 3), np.uint8)).astype(bool)
    cel = lines.copy()
    box = (xs > 21) & (xs < 139) & (ys > 21) & (ys < 99)
    cel[box, :3] = np.stack([10 + 2 * ys, 60 + ys, 100 + ys], 2)[box]
    cel[flag.astype(bool), :3] = (230, 35, 13)
    lines[edge] = (0, 0, 0, 255)
    cel[lines[..., 0] < 128, :3] = 0
    return lines, cel


def test_a_part_partly_hidden_in_the_reference_keeps_its_place_by_its_outline():
    """In the reference the flag lies over the box's lower right corner; in the drawing it slants
    across the box's upper part. The box below the flag overlaps the reference's box (its upper
    part) best when moved up, but its outline (the box's edges) lies on the reference's outline
    where it is: it held still and the gradient stays in place."""
    (lines_ref, cel_ref), (lines_tgt, truth) = _box_and_flag(False), _box_and_flag(True)
    ctx = _ctx(refs={("char", 1): cel_ref}, keys={"char": [1, 2]})
    out = stages.get("color").run({("char", 1): lines_ref, ("char", 2): lines_tgt}, ctx).frames[("char", 2)]
    err = np.linalg.norm(out[..., :3].astype(float) - truth[..., :3], axis=2)
    below = np.zeros((120, 160), bool)
    below[66:97, 24:67] = True            # the part of it that the reference shows (left of its flag)
    # measured 1.0 (0.0 before: moved up by 38 px, the upper part's darker tones)
    assert (err[below] <= 12).mean() >= 0.95, (err[below] <= 12).mean()


def _body(wing: bool, cloud: bool) -> tuple[np.ndarray, np.ndarray]:
    """A yellow body (tg_duck_safe's duck), optionally with a wing line drawn over its lower left
    (it cuts a piece off the body) and a small white cloud beside it. Returns (line art, cel)."""
    lines = np.full((120, 160, 4), 255, np.uint8)
    cv2.ellipse(lines, (70, 62), (48, 40), 0, 0, 360, (0, 0, 0, 255), 4)
    if wing:
        cv2.ellipse(lines, (36, 88), (26, 16), -20, 0, 360, (0, 0, 0, 255), 3)
    if cloud:
        cv2.ellipse(lines, (146, 30), (7, 22), 0, 0, 360, (0, 0, 0, 255), 3)
    cel = lines.copy()
    free = lines[..., 0] > 128
    n, comp = cv2.connectedComponents(free.astype(np.uint8), connectivity=4)
    ys, xs = np.mgrid[0:120, 0:160]
    body = free & (((xs - 70) / 46.0) ** 2 + ((ys - 62) / 38.0) ** 2 <= 1)
    cel[body, :3] = np.stack([250 - ys // 4, 200 - ys // 3, 40 + 0 * ys], 2)[body]   # shaded yellow
    if cloud:
        c = free & (((xs - 146) / 5.0) ** 2 + ((ys - 30) / 20.0) ** 2 <= 1)
        cel[c, :3] = 255
    cel[~free, :3] = (200, 110, 20)                                             # an orange rim
    return lines, cel


def test_a_piece_cut_off_by_a_new_line_keeps_the_colour_it_lies_in_by_its_outline():
    """The wing line is new in the drawing: the piece it cuts off the body lies inside the
    reference's body, and its outline (the body's rim) lies on the reference's lines where it is.
    On tg_duck_safe (d = 8) the area-conserving matcher found the body taken by the rest of the body
    and gave such a piece an unclaimed white highlight far off, with confidence 1; here the match
    is set by hand, and the outline takes the piece back to the body."""
    from quickart_daemon.stages.color.match import match
    from quickart_daemon.stages.color.corrections import inside_by_outline
    from quickart_daemon.stages.color.reference import prepare
    (lines_ref, cel_ref), (lines_tgt, _) = _body(False, True), _body(True, False)
    colours = Colours()
    ref = build_ref(1, cel_ref, lines_ref, 0.0, colours)
    prep = prepare(lines_tgt)
    m = match(prep.regs, prep.seg.labels, ref.prep.regs, ref.prep.seg.labels, ref.colour, len(colours.table))
    piece, cloud, body = prep.seg.labels[84, 42], ref.prep.seg.labels[30, 146], ref.prep.seg.labels[40, 70]
    m.colour[piece], m.ref_region[piece], m.confidence[piece] = ref.colour[cloud], cloud, 1.0
    inside_by_outline(m, prep, ref)
    assert m.ref_region[piece] == body and m.colour[piece] == ref.colour[body]
    # the rest of the body, matched to the body, stays
    assert m.ref_region[prep.seg.labels[40, 70]] == body


def _screen_with_box(closed: bool) -> tuple[np.ndarray, np.ndarray]:
    """A character (a yellow disc) before a screen painted grey-blue, with a white comment box on
    it whose right side the reference's line art leaves out (`closed` False: the box is part of
    the background there) and the drawing draws. Returns (line art, cel)."""
    lines = np.full((120, 160, 4), 255, np.uint8)
    cv2.circle(lines, (40, 70), 22, (0, 0, 0, 255), 3)
    cv2.rectangle(lines, (90, 20), (140, 60), (0, 0, 0, 255), 3)
    if not closed:
        lines[23:58, 137:143] = 255                        # the box's right side is not drawn
    cel = lines.copy()
    cel[..., :3] = (200, 210, 230)                          # the screen
    ys, xs = np.mgrid[0:120, 0:160]
    cel[np.hypot(xs - 40, ys - 70) < 21, :3] = (250, 205, 40)
    cel[22:59, 92:139, :3] = 255                            # the box's inside, white
    cel[lines[..., 0] < 128, :3] = 0
    return lines, cel


def test_a_region_the_drawing_closes_in_the_references_scenery_is_scenery():
    """tg_ducks_comments: the reference's line art leaves a box on the screen open (it is part of
    the background there), the drawing closes it: a region, and the matcher, which leaves the
    background out, gives it the only part there is (the yellow character). It lies in the
    reference's background and its outline lies on the reference's lines where it is: it is
    scenery, copied from the reference (white)."""
    (lines_ref, cel_ref), (lines_tgt, truth) = _screen_with_box(False), _screen_with_box(True)
    ctx = _ctx(refs={("char", 1): cel_ref}, keys={"char": [1, 2]})
    out = stages.get("color").run({("char", 1): lines_ref, ("char", 2): lines_tgt}, ctx).frames[("char", 2)]
    err = np.linalg.norm(out[..., :3].astype(float) - truth[..., :3], axis=2)
    # measured 0.91 (0.0 before: yellow; the rest is the new side's fringe, filled from beside it)
    assert (err[26:56, 95:136] <= 8).mean() >= 0.85, (err[26:56, 95:136] <= 8).mean()


def _box_top_and_flag(swung: bool) -> tuple[np.ndarray, np.ndarray]:
    """A box with a lighter top, and a wide flag that stands up across the top (cutting it in two
    pieces) or has swung down across the box's lower part (tg_mailbox). Returns (line art, cel)."""
    lines, ys, xs = _boxed_lines()
    cv2.line(lines, (20, 50), (140, 50), (0, 0, 0, 255), 3)
    flag = np.zeros((120, 160), np.uint8)
    if swung:
        cv2.line(flag, (40, 90), (120, 62), 1, 14)
    else:
        flag[6:66, 58:102] = 1
    cel = lines.copy()
    cel[(xs > 21) & (xs < 139) & (ys > 21) & (ys < 50), :3] = (100, 190, 228)
    cel[(xs > 21) & (xs < 139) & (ys > 50) & (ys < 99), :3] = (17, 132, 175)
    cel[flag.astype(bool), :3] = (230, 35, 13)
    edge = cv2.morphologyEx(flag, cv2.MORPH_GRADIENT, np.ones((3, 3), np.uint8)).astype(bool)
    lines[flag.astype(bool)] = (255, 255, 255, 255)
    lines[edge] = (0, 0, 0, 255)
    cel[lines[..., 0] < 128, :3] = 0
    return lines, cel


def test_a_region_whose_outline_held_still_is_not_the_part_that_swung_away():
    """tg_mailbox (frame 4 from 12): in the reference a flag stands up across the box's top and cuts
    it in two; in the drawing it has swung down and the top is whole. The area-conserving matcher
    gave the whole top the flag's red (the two pieces are each too small for it). Its outline lies
    on the reference's lines where it is, far better than on the flag's at the flag's shift, and
    the pieces at its place held still: it is the top."""
    (lines_ref, cel_ref), (lines_tgt, truth) = _box_top_and_flag(False), _box_top_and_flag(True)
    ctx = _ctx(refs={("char", 1): cel_ref}, keys={"char": [1, 2]})
    out = stages.get("color").run({("char", 1): lines_ref, ("char", 2): lines_tgt}, ctx).frames[("char", 2)]
    err = np.linalg.norm(out[..., :3].astype(float) - truth[..., :3], axis=2)
    # measured 1.0 (0.0 before: the flag's red)
    assert (err[24:47, 24:136] <= 12).mean() >= 0.95, (err[24:47, 24:136] <= 12).mean()


def _mailbox_inside(envelope_in: bool, decoy=None) -> tuple[np.ndarray, np.ndarray]:
    """A mailbox's dark inside and an envelope that lies, in the reference, to its left or, in the
    drawing, inside the box (the dark inside is then a ring round it); `decoy`: the top left corner
    of a frame as big as the box drawn in the reference (lines that lie there by chance, like the
    box's front edges round tg_mailbox's envelope). Returns (line art, cel)."""
    lines = np.full((160, 260, 4), 255, np.uint8)
    cv2.rectangle(lines, (140, 30), (240, 130), (0, 0, 0, 255), 3)
    if decoy is not None:
        cv2.rectangle(lines, (int(decoy[0]), int(decoy[1])), (int(decoy[0]) + 100, int(decoy[1]) + 100), (0, 0, 0, 255), 3)
    ex = 165 if envelope_in else 25
    cv2.rectangle(lines, (ex, 55), (ex + 50, 105), (0, 0, 0, 255), 3)
    cel = lines.copy()
    cel[32:129, 142:239, :3] = (40, 40, 42)                 # the box's inside
    cel[57:104, ex + 2:ex + 49, :3] = (190, 190, 190)       # the envelope
    cel[lines[..., 0] < 128, :3] = 0
    return lines, cel


def test_an_outline_that_held_still_on_its_own_lines_beats_one_that_lies_on_other_lines_by_chance():
    """tg_mailbox (frame 9 from 1): the envelope went into the box; the box's dark inside is now a
    ring round it, matched to the reference's envelope. At the shift that lays it on the envelope
    its outer rim lies on other lines by chance (there the box's front edges; here a decoy frame
    drawn just there): on all the reference's lines it fits there as well as where it is. On the
    lines of the regions at its place that held still (the box's inside) more than half of its
    outline lies, more than on the envelope's own lines: it is the box's inside."""
    from quickart_daemon.stages.color.match import match
    from quickart_daemon.stages.color.align import crop_region, mask_shift, outline_fit
    from quickart_daemon.stages.color.corrections import held_by_outline
    from quickart_daemon.stages.color.reference import prepare
    prep = prepare(_mailbox_inside(True)[0])
    lab = prep.seg.labels
    ring = lab[40, 190]
    plain = build_ref(1, _mailbox_inside(False)[1], _mailbox_inside(False)[0], 0.0, Colours())
    envelope = plain.prep.seg.labels[80, 50]
    off = mask_shift(*crop_region(lab, ring, prep.regs.bbox[ring]),
                     *crop_region(plain.prep.seg.labels, envelope, plain.prep.regs.bbox[envelope]),
                     plain.prep.regs.centroid[envelope] - prep.regs.centroid[ring])
    lines_ref, cel_ref = _mailbox_inside(False, decoy=(140 + off[0], 30 + off[1]))
    colours = Colours()
    ref = build_ref(1, cel_ref, lines_ref, 0.0, colours)
    m = match(prep.regs, lab, ref.prep.regs, ref.prep.seg.labels, ref.colour, len(colours.table))
    envelope, inside = ref.prep.seg.labels[80, 50], ref.prep.seg.labels[40, 190]
    assert prep.regs.area[ring] > 5000  # one region round the envelope
    m.colour[ring], m.ref_region[ring], m.confidence[ring] = ref.colour[envelope], envelope, 1.0
    # on all the reference's lines, the outline fits no better where it is than at the envelope's
    # shift (the decoy): that test alone keeps the envelope
    r_line = ~ref.prep.seg.free
    assert outline_fit(lab, prep.seg.free, ring, prep.regs.bbox[ring], r_line, off) >= \
        outline_fit(lab, prep.seg.free, ring, prep.regs.bbox[ring], r_line, np.zeros(2))
    held_by_outline(m, prep, ref)
    assert m.ref_region[ring] == inside and m.colour[ring] == ref.colour[inside]


def test_a_moved_part_whose_outline_does_not_fit_its_match_is_unsure():
    """tg_darts (frame 4 from 12): a dart's fin that turned on its way was matched, with confidence
    0.6-1, to a piece of the board far off. A region whose match is not at its place moved; it is
    as sure as its outline lies on its match's own lines at the match's shift (here the swung flag,
    matched by hand to a piece of the box's top it does not fit): below --low-confidence, so the
    map marks it."""
    from quickart_daemon.stages.color.match import match
    from quickart_daemon.stages.color.corrections import held_by_outline
    from quickart_daemon.stages.color.reference import prepare
    (lines_ref, cel_ref), (lines_tgt, _) = _box_top_and_flag(False), _box_top_and_flag(True)
    colours = Colours()
    ref = build_ref(1, cel_ref, lines_ref, 0.0, colours)
    prep = prepare(lines_tgt)
    m = match(prep.regs, prep.seg.labels, ref.prep.regs, ref.prep.seg.labels, ref.colour, len(colours.table))
    flag, piece = prep.seg.labels[76, 80], ref.prep.seg.labels[35, 30]
    body = prep.seg.labels[95, 130]
    m.colour[flag], m.ref_region[flag], m.confidence[flag] = ref.colour[piece], piece, 1.0
    m.confidence[body] = 1.0
    held_by_outline(m, prep, ref)
    assert m.confidence[flag] < 0.5, m.confidence[flag]   # measured 0.17 (1.0 before)
    assert m.confidence[body] == 1.0                      # a region at its match's place keeps its own


def _bar(angle: float, shaded: bool) -> np.ndarray:
    """A bar (an arm, a flag's pole) turned `angle` degrees about its pivot at (80, 90), beside a
    flat box; shaded: its cel, red with a light stripe along one long side and darkening towards
    its far end (else its line art)."""
    img = np.full((160, 200, 4), 255, np.uint8)
    a = np.deg2rad(angle)
    u, v = np.array([np.cos(a), -np.sin(a)]), np.array([np.sin(a), np.cos(a)])  # along, across
    pivot = np.array([80.0, 90.0])
    corners = [pivot + s * 70 * u + c * 12 * v for s, c in ((0, -1), (1, -1), (1, 1), (0, 1))]
    if shaded:
        ys, xs = np.mgrid[0:160, 0:200]
        rel = np.stack([xs - pivot[0], ys - pivot[1]], -1).astype(np.float32)
        along, across = rel @ u, rel @ v
        inside = (along >= 0) & (along <= 70) & (np.abs(across) <= 12)
        red = np.array([230, 40, 40], np.float32) * (1 - 0.4 * np.clip(along / 70, 0, 1))[..., None]
        red = np.where((across < -5)[..., None], np.array([255, 190, 190], np.float32), red)
        img[inside, :3] = red[inside].astype(np.uint8)
        img[20:60, 150:190, :3] = (60, 140, 220)
    cv2.polylines(img, [np.round(corners).astype(np.int32)], True, (0, 0, 0, 255), 3, cv2.LINE_AA)
    cv2.rectangle(img, (150, 20), (190, 60), (0, 0, 0, 255), 3, cv2.LINE_AA)
    return img


def test_a_part_that_turned_carries_its_shading_turned():
    """A flag's pole swings up by 70 degrees: its highlight runs along the pole, and its shadow
    deepens towards the far end. Shifted but not turned, the stripe would lie across the pole."""
    lines_ref, lines_tgt = _bar(10, False), _bar(80, False)
    ref, truth = _bar(10, True), _bar(80, True)
    ctx = _ctx(refs={("char", 1): ref}, keys={"char": [1, 2]})
    res = stages.get("color").run({("char", 1): lines_ref, ("char", 2): lines_tgt}, ctx)
    out = res.frames[("char", 2)][..., :3].astype(np.float32)
    pole = (np.abs(truth[..., :3].astype(np.int16) - lines_tgt[..., :3]).max(axis=2) > 8) \
        & (lines_tgt[..., :3].max(axis=2) > 128)
    pole[:, 140:] = False  # not the box
    err = np.linalg.norm(out - truth[..., :3].astype(np.float32), axis=2)
    assert (err[pole] < 40).mean() >= 0.85, (err[pole] < 40).mean()  # measured 0.98; shifted only: 0.38


def _board_and_dart(dart_at: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """`_target_board` (rings without lines, no shadow) with a dart, a flat disc drawn with its
    outline, at `dart_at`: in front of the board, or hanging beside it."""
    lines = np.full((120, 160, 4), 255, np.uint8)
    cv2.circle(lines, (60, 60), 40, (0, 0, 0, 255), 3)
    cv2.circle(lines, dart_at, 13, (0, 0, 0, 255), 3)
    ys, xs = np.mgrid[0:120, 0:160]
    r = np.hypot(xs - 60, ys - 60)
    cel = lines.copy()
    disc = r < 39
    ring = ((r // 10).astype(int) % 2 == 0)
    cel[disc & ring, :3] = (230, 40, 40)
    cel[disc & ~ring, :3] = (250, 250, 250)
    cel[np.hypot(xs - dart_at[0], ys - dart_at[1]) < 12, :3] = (40, 200, 210)
    cel[lines[..., 0] < 128, :3] = 0
    return lines, cel


def test_rings_hidden_behind_an_occluder_in_the_reference_continue_around_the_part():
    """In the reference a dart hangs in front of the board's rings (off its centre); in the
    drawing it hangs beside the board, which shows whole. The hidden rings continue the
    board's own rings at the same depth inside it (the same distance from its outline), not
    the nearest visible pixel (wedges of the wrong ring) nor the dart's colour."""
    lines_ref, cel_ref = _board_and_dart((80, 60))
    lines_tgt, truth = _board_and_dart((138, 98))
    ctx = _ctx(refs={("char", 1): cel_ref}, keys={"char": [1, 2]})
    out = stages.get("color").run({("char", 1): lines_ref, ("char", 2): lines_tgt}, ctx).frames[("char", 2)]
    ys, xs = np.mgrid[0:120, 0:160]
    r = np.hypot(xs - 60, ys - 60)
    hidden = (np.hypot(xs - 80, ys - 60) < 15) & (r < 36)
    # a ring's edge is a guess to a pixel either way; measured 0.95 (the nearest visible pixel: 0.62)
    sure = hidden & (np.abs(r - np.rint(r / 10) * 10) > 1.5)
    err = np.linalg.norm(out[..., :3].astype(float) - truth[..., :3], axis=2)
    assert (err[sure] <= 40).mean() >= 0.9, (err[sure] <= 40).mean()


def _box_and_pole(pole_in: bool) -> tuple[np.ndarray, np.ndarray]:
    """A box shaded top to bottom, and a pole hanging into it from above (or beside it) that
    casts a shadow, painted without a line, on the box beside it (a flag over a mailbox)."""
    lines = np.full((240, 320, 4), 255, np.uint8)
    cv2.rectangle(lines, (40, 40), (280, 220), (0, 0, 0, 255), 3)
    px = 150 if pole_in else 296
    cv2.rectangle(lines, (px, 10), (px + 12, 140), (0, 0, 0, 255), 3)
    ys, xs = np.mgrid[0:240, 0:320]
    cel = lines.copy()
    box = (xs > 41) & (xs < 279) & (ys > 41) & (ys < 219)
    cel[box, :3] = np.stack([60 + ys // 3, 110 + ys // 3, 170 + ys // 4], 2)[box]
    if pole_in:
        shadow = box & (xs >= px + 14) & (xs < px + 19) & (ys < 150)
        cel[shadow, :3] = (cel[shadow, :3] * 0.6).astype(np.uint8)
    cel[(xs > px + 1) & (xs < px + 11) & (ys > 11) & (ys < 139), :3] = (230, 35, 13)
    cel[lines[..., 0] < 128, :3] = 0
    return lines, cel


def test_the_shadow_a_part_cast_does_not_stay_when_the_part_has_gone():
    """In the reference a pole hangs into a box and casts a shadow on it (the box's own paint: no
    line draws it); in the drawing the pole hangs beside the box. The box's shading is carried
    with it, but not the shadow of what has gone: beside where the pole was, the box continues
    its own tone."""
    lines_ref, cel_ref = _box_and_pole(True)
    lines_tgt, truth = _box_and_pole(False)
    ctx = _ctx(refs={("char", 1): cel_ref}, keys={"char": [1, 2]})
    out = stages.get("color").run({("char", 1): lines_ref, ("char", 2): lines_tgt}, ctx).frames[("char", 2)]
    err = np.linalg.norm(out[..., :3].astype(float) - truth[..., :3], axis=2)
    was_shadow = err[45:145, 165:168]  # measured 0.93 (the shadow carried: 0.0)
    assert (was_shadow <= 12).mean() >= 0.85, (was_shadow <= 12).mean()
    assert (err[45:215, 45:275] <= 12).mean() >= 0.97


# -- trace roles (issue 22: the demo's key 1009) -----------------------------------------------

def _torso_and_hand(hand: tuple[int, int, int], head_shadow: bool = True) -> np.ndarray:
    """A torso with its shadow crescent cut off by a red trace line across its bottom, a round
    head with its own red shadow line, and a round hand at (x, y, radius). Where the hand overlaps
    the torso, its outline there is drawn red (the torso's shadow line running along it, as in the
    demo's key 1009, where the crescent's line ends on the hand)."""
    img = np.full((200, 200, 4), 255, np.uint8)
    black, red = (0, 0, 0, 255), (230, 30, 30, 255)
    cv2.ellipse(img, (100, 110), (40, 60), 0, 0, 360, black, 3, cv2.LINE_AA)
    cv2.line(img, (64, 143), (136, 143), red, 2, cv2.LINE_AA)
    if head_shadow:
        cv2.circle(img, (100, 28), 22, black, 3, cv2.LINE_AA)
        cv2.line(img, (82, 38), (118, 38), red, 2, cv2.LINE_AA)
    hx, hy, hr = hand
    cv2.circle(img, (hx, hy), hr, (255, 255, 255, 255), -1)
    cv2.circle(img, (hx, hy), hr, black, 3, cv2.LINE_AA)
    torso = np.zeros((200, 200), np.uint8)
    cv2.ellipse(torso, (100, 110), (40, 60), 0, 0, 360, 1, -1)
    ring = np.zeros((200, 200), np.uint8)
    cv2.circle(ring, (hx, hy), hr, 1, 3, cv2.LINE_AA)
    img[(torso > 0) & (ring > 0)] = red
    return img


def test_a_lit_part_is_not_the_shadow_of_a_scrap_its_shadow_line_touches():
    """The demo's key 1009 came out with a reddish torso: the torso was taken for the shadow side
    of the hand, because a short stretch of red line lay between them and the torso's outline is
    redder than the hand's, and the trace-line tone rule then gave it skin_shadow over the
    reference's shirt green. A region lies on one side of one trace line, the one it shares most
    of: the torso is the lit side of its crescent, not the shadow of the hand."""
    from quickart_daemon.stages.color import trace
    from quickart_daemon.stages.color.reference import prepare
    lines = _torso_and_hand((157, 105, 20))
    prep = prepare(lines)
    regs, lab = prep.regs, prep.seg.labels
    torso, crescent, hand = lab[90, 100], lab[150, 100], lab[105, 160]
    assert len({torso, crescent, hand}) == 3
    role, partner = trace.roles(regs)
    assert role[torso] == trace.BASE and role[hand] == trace.BASE
    assert role[crescent] == trace.SHADOW and partner[crescent] == torso
    # end to end, from a reference where the hand hangs free: the torso stays shirt green
    palette = Palette({"shirt": (88, 172, 110), "shirt_shadow": (65, 120, 106), "skin": (204, 155, 110),
                       "skin_shadow": (150, 108, 106)})
    ref_lines = _torso_and_hand((170, 170, 20))
    cel = ref_lines.copy()
    rprep = prepare(ref_lines)
    rl = rprep.seg.labels
    paint = {rl[90, 100]: "shirt", rl[150, 100]: "shirt_shadow", rl[170, 170]: "skin",
             rl[20, 100]: "skin", rl[45, 100]: "skin_shadow"}
    for r, name in paint.items():
        cel[(rl == r) & rprep.seg.free] = (*palette.colors[name], 255)
    colours = Colours()
    for rgb in palette.colors.values():
        colours.add(rgb)
    ref = build_ref(1, cel, ref_lines, 0.0, colours)
    res = colour_drawing(lines, [ref], None, palette, colours, {}, 2)
    assert colours.table[res.region_colour[torso]] == palette.colors["shirt"]
    assert colours.table[res.region_colour[crescent]] == palette.colors["shirt_shadow"]
    assert colours.table[res.region_colour[hand]] == palette.colors["skin"]


@pytest.mark.parametrize("paper", [True, False])
@pytest.mark.parametrize("dist", [4, 8])
def test_a_flat_cel_puppet_comes_out_exact_from_references_4_and_8_frames_away(paper, dist):
    # issue 22: a flat reference region stays its exact flat colour (no shading, no noise copied
    # in) on an articulated puppet whose arm swings over its torso; every painted pixel off the
    # lines is the truth's flat colour exactly (measured: 1.000 for both distances, on paper and
    # on transparency, at t = 6; other poses still lose up to 11 % of their pixels to whole parts
    # matched to the wrong reference part at 8 frames)
    key, drawing = flat_cels.puppet(6.0, paper=paper), flat_cels.puppet(6.0 + dist, paper=paper)
    colours = Colours()
    ref = build_ref(0, key.cel, key.lines, 0.0, colours)
    out = colour_drawing(drawing.lines, [ref], None, Palette(), colours, {}, dist).image
    flat = drawing.flat
    paint = (drawing.drawn == 0) & ((flat[..., :3] != 255).any(2) if paper else flat[..., 3] > 0)
    exact = (out[..., :3] == flat[..., :3]).all(2) & (out[..., 3] == 255)
    assert paint.sum() > 5000
    assert exact[paint].all(), f"{int((paint & ~exact).sum())} of {int(paint.sum())} painted pixels off their flat colour"


# (generator, seed, size, paper, t, reference offset, pixels off allowed: the puppet's 3 are a
# sliver of the hand's region under the forearm, creature 10's 10 a hand matched to another limb's;
# creature 12 at 320x240 and creature 10 eight frames back lost 365 and 402 px while a region's
# overlap at its place overrode the matcher, `stayed_put`, removed; the puppet eight frames back and
# creature 3 lost 309 and 56 px, whole regions matched wrong, until a region may be matched as a part
# turned at the joint it shares with a surely matched neighbour; the puppet from 4 frames on and
# creature 2 lost 582 and 8 px, a piece of the torso that the forearm uncovered above the shadow
# line matched to the arm or the hand, until the lit side of a sure shadow is its base colour; the
# puppet from 8 frames on and creature 8 lost 125 and 367 px, the hand matched to the forearm that
# lay near it, until a shape congruent to a candidate whatever its turn is rewarded; creature 2 lost 5 px
# copied from a line's faint fringe, one of the 6 pixels away from the lines of a 106 px reference
# region that made it look shaded, until a shading takes at least SHADED_LEAST_PX pixels; creature 12
# from 4 frames on and creature 8 from 8 frames on lost 664 and 378 px, a piece of the body that a
# limb uncovered matched to the limb, until such a piece takes what lies behind the parts around it;
# the puppet from 8 frames on and creature 5 lost 196 and 69 px, slivers of the body beside a limb that
# had lain over them, until a piece lying along the limb counts as uncovered too)
@pytest.mark.parametrize("case", [("puppet", 0, (480, 360), False, 3, 8, 0), ("creature", 5, (400, 300), False, 5, 8, 0),
                                  ("puppet", 0, (320, 240), True, 0, 8, 0), ("creature", 8, (400, 300), True, 0, -4, 0),
                                  ("creature", 2, (400, 300), True, 5, 4, 0), ("creature", 12, (320, 240), True, 0, 4, 0),
                                  ("creature", 8, (320, 240), True, 5, 8, 0),
                                  ("puppet", 0, (480, 360), True, 3, -4, 3), ("creature", 3, (400, 300), False, 5, -4, 0),
                                  ("puppet", 0, (480, 360), True, 0, 4, 0), ("creature", 2, (320, 240), True, 0, 4, 0),
                                  ("creature", 1, (400, 300), False, 0, 4, 0), ("creature", 10, (400, 300), True, 5, 4, 10),
                                  ("creature", 12, (320, 240), True, 0, -4, 0), ("creature", 10, (400, 300), True, 5, -8, 10),
                                  ("puppet", 0, (480, 360), True, 0, -8, 0), ("creature", 3, (320, 240), False, 5, -8, 0)])
def test_a_flat_reference_carries_no_shading_and_flat_cels_come_out_exact(case):
    """Issue 22: a reference region painted flat is painted flat, in the colour its drawing region
    took; its flat pixels are not copied over that colour. They were, when a region's colour differed
    from its reference region's (a shadow tone from the trace lines): judged against that colour the
    flat region looked shaded (puppet: 87 px of a shadow piece in the torso's colour). Nor does the
    trace-line role rule (the redder side is the shadow) override the reference: a region and its
    partner matched to the two sides of one trace line of the reference (creature 3: its body called
    the shadow of its own shadow, 0.58 with the first fix alone), or a sure match (creature 10: 0.98).
    Measured over 256 flat cases (the puppet and 12 creature seeds, 2 sizes, paper and
    transparency, references 4 and 8 frames either way): pixels off the flat colour of a rightly
    coloured region 1697 -> 5 (one case, 5 px); the errors left are whole regions matched wrong
    (mean 0.9753 puppet, 0.9330 creature). These cases come out exact but for a sliver. A region
    lying where a reference region of another part lies (IoU 0.51-0.62: a limb's segment slid along
    its chain over its neighbour's place) took that part's colour over the matcher's sure answer
    (`stayed_put`, removed: creature 12 at 320x240, 4 frames back, 0.928 -> 1.000)."""
    kind, seed, size, paper, t, d, allowed = case
    if kind == "puppet":
        gen = lambda tt: flat_cels.puppet(tt, size=size, paper=paper)
    else:
        gen = lambda tt: flat_cels.creature(seed, tt, size=size, paper=paper)
    score = flat_cels.flat_errors(gen, t + d, t, paper)
    assert score.painted > 5000
    assert score.copied == 0, f"{score.copied} pixels of rightly coloured regions off their flat colour"
    assert score.wrong <= allowed, f"{score.wrong} of {score.painted} painted pixels off their flat colour"


def test_a_part_the_reference_hides_whole_is_told_from_one_it_shows():
    """The flat bench's `unseen_parts`: creature 1's back limb lies behind its head 4 frames before
    and swings out into view; its forearm, hidden whole in that reference, is a part no reference
    says the colour of. Its hand shows in the reference (a piece beside the head), so it is not
    unseen; nothing is unseen from the drawing's own frame."""
    drawing, key = flat_cels.creature(1, 0.0, size=(400, 300), paper=False), flat_cels.creature(1, -4.0, size=(400, 300), paper=False)
    assert not flat_cels.unseen_parts(drawing, drawing).any()
    unseen = flat_cels.unseen_parts(drawing, key)
    hidden = np.unique(drawing.part[unseen])
    assert len(hidden) == 1 and unseen.sum() > 100, (hidden, int(unseen.sum()))
    shown = (key.part == hidden[0]) & (key.drawn == 0)
    assert not shown.any()
    hand = hidden[0] + 1  # the limb's end follows its last segment in painter's order
    assert ((key.part == hand) & (key.drawn == 0)).any() and ((drawing.part == hand) & ~unseen).any()


def test_a_partly_hidden_twin_is_not_taken_for_what_a_part_uncovered():
    """`uncovered_by_outline` gives a region matched to a reference part that another region has
    taken whole what lies behind the parts around it. Synthetic seed 17, 8 frames from its key: the
    back foot, half hidden behind the front foot, is matched to the front foot's reference part (the
    same colour) while the back foot's own reference part is free. Taken for an uncovered piece it was
    painted the leg's colour (0.967 of the character right); a part whose reference colour another,
    unclaimed, reference part also has is left to the matcher (0.982)."""
    seq = synth.sequence(17, [1001, 1009], size=(960, 540), rough=False)
    colours = Colours()
    ref = build_ref(1001, seq[1001].color, seq[1001].clean, 0, colours)
    f = seq[1009]
    res = colour_drawing(f.clean, [ref], None, Palette(), colours, {}, 1009)
    character = metrics.character_mask(f)
    assert metrics.correct(res.image, f)[character].mean() > 0.975


def test_congruence_is_one_shape_whatever_its_turn_and_not_a_scaled_or_other_one():
    """`align.congruence` (the matcher's reward for a candidate of the same shape): a limb turned by
    any angle is congruent with itself; a circle of the same area, or the limb's thin half (a sliver
    beside it), is not (no scaling)."""
    from quickart_daemon.stages.color.align import congruence as shapes_congruence, shape_of

    def congruence(a, b):
        return shapes_congruence(shape_of(a), shape_of(b))
    limb = np.zeros((120, 120), np.uint8)
    cv2.rectangle(limb, (20, 50), (100, 66), 1, -1)
    for angle in (0, 35, 90, 150):
        turn = cv2.warpAffine(limb, cv2.getRotationMatrix2D((60, 60), angle, 1.0), (120, 120), flags=cv2.INTER_NEAREST)
        assert congruence(turn, limb) > 0.85, angle
    disc = np.zeros((120, 120), np.uint8)
    cv2.circle(disc, (60, 60), int(round(np.sqrt(limb.sum() / np.pi))), 1, -1)
    sliver = limb.copy()
    sliver[58:] = 0
    assert congruence(disc, limb) < 0.5
    assert congruence(sliver, limb) < 0.6


def test_a_forearm_that_swung_out_into_the_paper_is_not_painted_as_paper():
    """Issue 22: the puppet's back forearm, turned at the elbow 4 frames later, lies where the
    reference's paper was, and its outline fitted the reference's lines where it lies (0.32) better
    than at its sure match's shift (0.30): `inside_by_outline` made it background (490 px of the
    480x360 puppet painted as paper). Its outline lies on its match's lines once turned back
    (`best_turn`), so it keeps its match: no painted pixel of the character comes out as paper."""
    paper = True
    key, drawing = flat_cels.puppet(7.0, size=(480, 360), paper=paper), flat_cels.puppet(3.0, size=(480, 360), paper=paper)
    colours = Colours()
    ref = build_ref(0, key.cel, key.lines, 0.0, colours)
    out = colour_drawing(drawing.lines, [ref], None, Palette(), colours, {}, 4).image
    paint, _ = flat_cels.off_flat(out, drawing.flat, drawing.drawn, paper)
    as_paper = paint & (((out[..., :3] == 255).all(2)) | (out[..., 3] < 255))
    assert paint.sum() > 5000
    assert as_paper.sum() == 0, f"{int(as_paper.sum())} painted pixels of the character left as paper"


def test_two_references_without_a_palette_colour_the_drawing():
    """Regions matched to the second reference were looked up in the first one's region table:
    an IndexError whenever the second reference had more regions (5 of 11 generator seeds)."""
    for seed in (2, 7):
        seq = synth.sequence(seed, [1001, 1004, 1009], size=(320, 180), rough=False)
        refs = {("char", 1001): seq[1001].color, ("char", 1009): seq[1009].color}
        res = stages.get("color").run({("char", 1004): seq[1004].clean}, _ctx(refs, keys={"char": [1004]}))
        out, truth = res.frames[("char", 1004)], seq[1004]
        fills = (truth.labels > 0) & (truth.ink_alpha == 0)
        right = (np.abs(out[..., :3].astype(int) - truth.color[..., :3].astype(int)).max(axis=2) <= 12)[fills]
        assert right.mean() > 0.8, (seed, right.mean())
