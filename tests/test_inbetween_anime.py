"""The anime in-between (issue 21): GMFSS Fortuna on our network, through the stage.

Small drawn cases, each a mechanism a cel in-between must get right: a part that moves and a part
that holds in the same pair, a line that must not double (no faded copy at either key's place),
a line on a transparent layer, and the default choosing by device (RIFE on a CPU slot). The
real-animation figures live in bench/bench_real.py, not here.
"""

from __future__ import annotations

import numpy as np
import pytest

from quickart_daemon import stages
from quickart_daemon.stages.base import StageContext
from quickart_daemon.timing import schedule_from_timing

W, H = 160, 96


def _run(frames: dict, keys: list[int], models, method: str = "anime", device: str | None = None):
    ctx = StageContext(schedule=schedule_from_timing({"char": keys}, 1), params={"method": method},
                       models_dir=models, device=device)
    return stages.get("inbetween").run({("char", k): v for k, v in frames.items()}, ctx)


def _paper() -> np.ndarray:
    return np.full((H, W, 4), 255, np.uint8)


def _disk(img: np.ndarray, cx: float, cy: float, r: float, colour) -> np.ndarray:
    yy, xx = np.mgrid[:H, :W]
    img[(xx - cx) ** 2 + (yy - cy) ** 2 <= r * r] = (*colour, 255)
    return img


def _scene(disk_x: float) -> np.ndarray:
    """A dark disk that moves and a red box with an ink outline that holds."""
    img = _disk(_paper(), disk_x, 40, 12, (30, 30, 30))
    img[60:88, 110:150] = (20, 20, 20, 255)
    img[63:85, 113:147] = (200, 40, 40, 255)
    return img


@pytest.fixture(scope="module")
def models(gmfss_models):
    """One folder with both networks: the per-user test cache gets rife-v4 beside gmfss-fortuna."""
    from conftest import install_into_test_cache
    return install_into_test_cache("rife-v4")


def test_a_part_moves_while_another_holds_in_the_same_pair(models):
    res = _run({1001: _scene(40), 1003: _scene(64)}, [1001, 1003], models)
    assert res.report["method"] == "anime" and res.report["decisions"] == {"motion": 1}
    mid = res.frames[("char", 1002)].astype(int)
    dark = (mid[..., :3].max(axis=2) < 90)[:60]  # the disk's half of the frame
    assert abs(np.nonzero(dark)[1].mean() - 52) < 1.5, "the disk lands halfway"
    assert 0.85 < dark.sum() / (np.pi * 12 ** 2) < 1.15, "one disk, not a smear or two faded ones"
    # the box that held is the box, to within a few levels, not redrawn or blended
    assert np.abs(mid[58:90, 108:152] - _scene(40)[58:90, 108:152]).max() <= 12
    conf = res.variants["confidence"][("char", 1002)][..., 0]
    assert conf[58:90, 108:152].min() == 255, "what did not change is sure"


def test_a_moving_line_is_one_line_not_two_faded_copies(models):
    def line(x):
        img = _paper()
        img[15:80, x:x + 3] = (10, 10, 10, 255)
        return img
    res = _run({1001: line(50), 1005: line(74)}, [1001, 1005], models)
    for frame, expected in ((1002, 56), (1003, 62), (1004, 68)):
        mid = res.frames[("char", frame)][..., :3].max(axis=2).astype(int)
        row = mid[20:75]
        ink = row < 128
        columns = np.nonzero(ink.any(axis=0))[0]
        assert columns.size and columns.max() - columns.min() <= 6, (frame, columns)  # one line
        assert abs(columns.mean() - (expected + 1)) <= 2, (frame, columns.mean())
        # no faded copy at either key's place (a cross-dissolve leaves two half-grey lines there)
        for x in (50, 74):
            if abs(x - expected) > 4:
                assert row[:, x:x + 3].min() > 200, (frame, x, row[:, x:x + 3].min())


def test_a_line_on_transparency_keeps_its_alpha(models):
    """A layer with transparency goes through RIFE's premultiplied path; the report says so."""
    def line(x):
        img = np.zeros((H, W, 4), np.uint8)
        img[10:80, x:x + 3] = (0, 0, 0, 255)
        return img
    res = _run({1001: line(40), 1003: line(52)}, [1001, 1003], models)
    assert res.report["method"] == "rife"
    mid = res.frames[("char", 1002)]
    visible = mid[..., 3] > 128
    assert visible.any() and mid[..., 3].max() >= 200
    assert mid[..., :3][visible].max() <= 40, "ink stays ink: no white halo from the paper it was composited on"
    assert (mid[:, :30, 3] == 0).all() and (mid[:, 70:, 3] == 0).all(), "transparency kept away from the line"
    assert 42 <= np.nonzero(visible.any(axis=0))[0].mean() <= 50


def test_auto_runs_rife_on_a_cpu_slot_and_says_so(models):
    res = _run({1001: _scene(40), 1003: _scene(64)}, [1001, 1003], models, method="auto", device="cpu")
    assert res.report["asked"] == "auto" and res.report["method"] == "rife"
    assert [f["did"] for f in res.report["frames"]] == ["motion"]
    conf = res.variants["confidence"][("char", 1002)][..., 0]
    assert conf[58:90, 108:152].min() == 255, "what did not change is sure"
    assert res.report["frames"][0]["confident"] > 0.5, "a disk moving cleanly: its two warped keys agree"


def test_altered_anime_weights_are_refused_and_rife_runs_with_a_warning(rife_models, tmp_path):
    import shutil

    from quickart_daemon.weights import load_manifest
    shutil.copy(rife_models / "rife-v4-flownet.pkl", tmp_path / "rife-v4-flownet.pkl")
    (tmp_path / load_manifest()["gmfss-fortuna"].file).write_bytes(b"not the published weights")
    res = _run({1001: _scene(40), 1003: _scene(64)}, [1001, 1003], tmp_path)
    assert res.report["method"] == "rife"
    assert any("not the anime network" in w and "gmfss-fortuna" in w for w in res.report["warnings"])


def test_anime_gives_layers_with_transparency_to_rife():
    """The choice anime (auto on a CUDA slot) makes per layer (no GPU here: the rule itself)."""
    from quickart_daemon.stages.inbetween import _layer_method, resolve_method
    assert resolve_method("auto", "cuda:0") == "anime" and resolve_method("auto", "cpu") == "rife"
    assert resolve_method("auto", None) == "rife" and resolve_method("anime", "cpu") == "anime"
    cel = np.zeros((H, W, 4), np.uint8)
    frames = {("bg", 1001): _scene(40), ("bg", 1003): _scene(64), ("cel", 1001): cel, ("cel", 1003): cel}
    assert _layer_method("anime", frames, "bg") == "anime"
    assert _layer_method("anime", frames, "cel") == "rife"
    assert _layer_method("rife", frames, "bg") == "rife"
