"""The colour stage run with a subset of its passes (issue 22's ablation: `bench/color_ablation.py`,
`bench_real.py --without / --only / --ablate`): the benches' shortcut (one preparation, a copy per
variant) is the stage, and every pass the benches leave out leaves a whole frame."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest

from quickart_daemon.stages.color import reference, stage
from quickart_daemon.stages.color.palette import Palette
from quickart_daemon.tools import color_metrics as metrics
from quickart_daemon.tools import synth

_spec = importlib.util.spec_from_file_location("color_ablation",
                                               Path(__file__).parents[1] / "bench" / "color_ablation.py")
ablation = sys.modules["color_ablation"] = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(ablation)


@pytest.fixture(scope="module")
def drawing():
    seq = synth.sequence(1, [1001, 1005], size=(480, 270), rough=False)
    colours = reference.Colours()
    ref = reference.build_ref(1001, seq[1001].color, seq[1001].clean, 0, colours)
    return seq[1005], ref, colours


def test_a_prepared_drawing_copied_per_variant_colours_as_the_stage_does(drawing):
    f, ref, colours = drawing
    whole = stage.colour_drawing(f.clean, [ref], None, Palette(), colours, {}, 1005)
    base = stage.drawing_state(f.clean, [ref], None, Palette(), colours, {}, 1005)
    for _ in range(2):  # the second run from the same base: no pass wrote into what the copies share
        s = ablation.run(base, ablation.FULL, {})
        assert np.array_equal(s.image, whole.image)
        assert np.array_equal(s.conf_map, whole.confidence)


def test_each_pass_left_out_still_gives_a_whole_frame(drawing):
    f, ref, colours = drawing
    m = metrics.character_mask(f)
    full = metrics.correct(stage.colour_drawing(f.clean, [ref], None, Palette(), colours, {}, 1005).image, f)[m].mean()
    assert full >= 0.95
    for name in ablation.skippable():
        v = ablation.without([name])
        res = stage.colour_drawing(f.clean, [ref], None, Palette(), colours, {}, 1005, v.passes, v.reference_passes)
        assert res.image.shape == f.color.shape and res.confidence.shape == f.color.shape[:2], name
        # every character pixel painted, mostly right: a pass left out loses a detail, not the frame
        assert (res.image[..., 3][m] > 0).mean() > 0.99, name
        assert metrics.correct(res.image, f)[m].mean() >= full - 0.1, name


def test_passes_every_output_needs_cannot_be_left_out_and_a_pass_goes_with_the_one_it_reads():
    for name in ("snap", "paint", "keep_best"):
        with pytest.raises(SystemExit, match="cannot be left out"):
            ablation.without([name])
    assert ablation.without(["scenery"]).left_out == {"scenery", "hold"}
    only = ablation.only("trace_tones")
    assert {"carry", "scenery", "hold"} <= only.left_out and not only.left_out & {"snap", "paint"}
    assert [p.__name__ for p in only.reference_passes] == [p.__name__ for p in stage.REFERENCE_PASSES]


def test_the_segmentation_is_read_only_once_built_and_more_background_is_a_new_one(drawing):
    """Issue 22: no pass writes into a drawing's segmentation (its arrays are locked when `prepare`
    builds it, so a write raises); a pass that finds more background makes a new `Prepared`."""
    f, ref, colours = drawing
    base = stage.drawing_state(f.clean, [ref], None, Palette(), colours, {}, 1005)
    prep = base.prep
    for part in (prep.art, prep.seg, prep.regs):
        for name, value in vars(part).items():
            if isinstance(value, np.ndarray):
                assert not value.flags.writeable, name
    with pytest.raises(ValueError, match="read-only"):
        prep.regs.outside[1] = True
    before = prep.regs.outside.copy()
    s = ablation.run(base, ablation.FULL, {})  # every pass, on the locked segmentation
    assert s.image is not None and np.array_equal(prep.regs.outside, before)
    inner = int(np.nonzero(~before)[0][1])
    grown = prep.with_background(np.array([inner]))
    assert grown.regs.outside[inner] and not prep.regs.outside[inner]
    assert grown.regs.outside.sum() == before.sum() + 1 and grown.seg is prep.seg
