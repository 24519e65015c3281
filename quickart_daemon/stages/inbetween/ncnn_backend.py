"""The ncnn backend: our IFNet exported with pnnx, run by ncnn (CPU, or Vulkan where ncnn sees a GPU).

Export (:func:`export`, run by ``quickart models install rife-v4-ncnn``): :class:`ExportNet`
re-expresses the IFNet's forward with its own submodules (so the network's weights are the
same tensors) as a pure function of plain tensors, traced with ``torch.jit.trace`` and converted
by the registry's pnnx binary with ``fp16=0``. The result is byte-deterministic (the manifest
pins both files' sha256).
The graph is **size-independent**: nothing in it depends on the frame size.

* the identity sampling grid (1, 2, H, W) and the flow normalisation ``(2/(W-1), 2/(H-1))``
  (1, 2, 1, 1) are inputs, so the warp (``grid_sample`` bilinear / border / align_corners, ncnn
  ``GridSample``) has no grid baked in;
* every resampling is ``interpolate(scale_factor=...)`` (ncnn ``Interp`` with a factor);
* the timestep is an input plane (1, 1, H, W);
* pnnx gets two input shapes (``inputshape``/``inputshape2``) so it keeps shapes dynamic.

One param/bin pair holds three disconnected sub-graphs (ncnn computes only what an extract needs):

* ``in0`` (a frame over white, 3 planes) -> ``out0``: the head's 4 feature planes
  (so a key pair is encoded once for all its timesteps, as in the torch engine);
* ``in1..in7`` (img0, img1, f0, f1, t plane, grid, norm) -> ``out1`` (flow, 4 planes) and
  ``out2`` (sigmoid mask, 1 plane) at flow scale 1.0, and ``out3``/``out4`` at flow scale 0.5
  (the stage's choice above 2.2 Mpixel). Other scales are refused (use the torch backend).

The frames are padded (edge replication) to ``ifnet.pad_multiple(scale)`` like the torch engine,
and the final warp of the premultiplied RGBA keys and the blend run in torch with ``ifnet.warp``,
the very code :class:`engine.TorchEngine` runs, so both backends have the same semantics.

ncnn options: fp32 everywhere (fp16 / bf16 storage, packing and arithmetic off: bf16 storage
dropped PSNR to about 39 dB on this network, REFERENCES.md), threads = ``torch.get_num_threads()``,
Vulkan only when ncnn reports a GPU (``ncnn.get_gpu_count() > 0``). On CPU the engine gives ncnn
its own pool allocators, emptied after every pair, and follows the torch engine's memory rule
with ncnn's measured bytes per pixel (``NCNN_BYTES_PER_PX``: flow in overlapping bands when a
pass would not fit the 8 GiB budget).
"""

from __future__ import annotations

import ctypes.util
import importlib.util
import os
import shutil
import subprocess
import tempfile
import threading
import warnings
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from . import ifnet
from .engine import Result

#: flow scales present in the exported graph, and the output blobs (flow, mask) of each
SCALE_OUTPUTS = {1.0: ("out1", "out2"), 0.5: ("out3", "out4")}
#: input blob names (pnnx numbers the forward's arguments in order)
HEAD_IN, HEAD_OUT = "in0", "out0"
FLOW_INS = ("in1", "in2", "in3", "in4", "in5", "in6", "in7")  # img0 img1 f0 f1 t grid norm
#: the traced example sizes (two, so pnnx keeps the shapes dynamic; multiples of 128)
EXPORT_SHAPES = ((128, 256), (256, 128))
PARAM_SUFFIX, BIN_SUFFIX = ".param", ".bin"


# -- the export-friendly network -------------------------------------------------------------------

def _leaky(x: torch.Tensor) -> torch.Tensor:
    return F.leaky_relu(x, 0.2)


class ExportNet(nn.Module):
    """The IFNet as a pure function of tensors (no size-dependent constants, no in-place ops)."""

    def __init__(self, net: ifnet.IFNet) -> None:
        super().__init__()
        self.net = net

    def head(self, x: torch.Tensor) -> torch.Tensor:
        e = self.net.encode
        x = _leaky(e.cnn0(x))
        x = _leaky(e.cnn1(x))
        x = _leaky(e.cnn2(x))
        return e.cnn3(x)

    @staticmethod
    def block(blk: ifnet.IFBlock, parts: list[torch.Tensor], flow: torch.Tensor | None, down: float):
        if flow is not None:
            parts = parts + [flow]
        parts = [F.interpolate(p, scale_factor=1.0 / down, mode="bilinear", align_corners=False) for p in parts]
        if flow is not None:
            parts[-1] = parts[-1] * (1.0 / down)
        x = torch.cat(parts, 1)
        x = blk.conv0(x)
        for rc in blk.convblock:
            x = _leaky(rc.conv(x) * rc.beta + x)
        y = blk.lastconv(x)
        y = F.interpolate(y, scale_factor=down, mode="bilinear", align_corners=False)
        return y[:, :4] * down, y[:, 4:5], y[:, 5:]

    @staticmethod
    def warp(x: torch.Tensor, flow: torch.Tensor, grid: torch.Tensor, norm: torch.Tensor) -> torch.Tensor:
        g = (grid + flow * norm).permute(0, 2, 3, 1)
        return F.grid_sample(x, g, mode="bilinear", padding_mode="border", align_corners=True)

    def estimate(self, img0, img1, f0, f1, tplane, grid, norm, scale: float):
        n = self.net
        blocks = (n.block0, n.block1, n.block2, n.block3, n.block4)
        downs = [d / scale for d in (16, 8, 4, 2, 1)]
        flow, mask, feat = self.block(blocks[0], [img0, img1, f0, f1, tplane], None, downs[0])
        x0, x1 = torch.cat((img0, f0), 1), torch.cat((img1, f1), 1)
        for blk, down in zip(blocks[1:], downs[1:]):
            w0, w1 = self.warp(x0, flow[:, :2], grid, norm), self.warp(x1, flow[:, 2:4], grid, norm)
            d, mask, feat = self.block(blk, [w0[:, :3], w1[:, :3], w0[:, 3:], w1[:, 3:], tplane, mask, feat], flow, down)
            flow = flow + d
        return flow, torch.sigmoid(mask)

    def forward(self, x, img0, img1, f0, f1, tplane, grid, norm):
        outs = [self.head(x)]
        for scale in SCALE_OUTPUTS:
            outs += list(self.estimate(img0, img1, f0, f1, tplane, grid, norm, scale))
        return tuple(outs)


def identity_grid(h: int, w: int) -> torch.Tensor:
    """(1, 2, H, W) in grid_sample's [-1, 1] coordinates, exactly as `ifnet.base_grid`."""
    return ifnet.base_grid(1, h, w, "cpu", torch.float32).contiguous()


def flow_norm(h: int, w: int) -> torch.Tensor:
    """Pixels -> grid units: (2/(W-1), 2/(H-1)) as (1, 2, 1, 1)."""
    return torch.tensor([2.0 / (w - 1.0), 2.0 / (h - 1.0)], dtype=torch.float32).view(1, 2, 1, 1)


def _example(h: int, w: int, seed: int = 0) -> tuple[torch.Tensor, ...]:
    g = torch.Generator().manual_seed(seed)
    def r(c):
        return torch.rand((1, c, h, w), generator=g)
    return (r(3), r(3), r(3), r(4), r(4), torch.full((1, 1, h, w), 0.5), identity_grid(h, w), flow_norm(h, w))


# -- export -------------------------------------------------------------------------------------------

def pnnx_version() -> str | None:
    from importlib.metadata import PackageNotFoundError, version
    try:
        return version("pnnx")
    except PackageNotFoundError:
        return None


def export(weights_path: Path | str, out_dir: Path | str, stem: str = "rife-v4-ncnn") -> tuple[Path, Path]:
    """Export the IFNet of `weights_path` (already checksum-verified by the caller) to ncnn.

    Writes ``{out_dir}/{stem}.param`` and ``.bin`` and returns their paths. Runs pnnx (the
    registry package) in a temporary folder; its other outputs (TorchScript, pnnx graph, python
    stubs) are discarded. The result is byte-deterministic for a given pnnx version and weights."""
    if importlib.util.find_spec("pnnx") is None:
        raise RuntimeError("pnnx is not installed (pip install pnnx); it is needed to export the ncnn model") from None
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    net = ExportNet(ifnet.load(weights_path, "cpu")).eval()
    (h1, w1), (h2, w2) = EXPORT_SHAPES
    with tempfile.TemporaryDirectory(prefix=".pnnx-", dir=out_dir) as tmp, torch.no_grad():
        tmp = Path(tmp)
        pt = tmp / "ifnet.pt"
        with warnings.catch_warnings():  # torch 2.13 deprecates jit.trace; pnnx reads TorchScript
            warnings.simplefilter("ignore", DeprecationWarning)
            traced = torch.jit.trace(net, _example(h1, w1), check_trace=False)
        traced.save(str(pt))
        del traced
        args = pnnx_args(pt, tmp, _example(h1, w1), _example(h2, w2))
        r = subprocess.run(args, cwd=tmp, capture_output=True, text=True, check=False)
        param, binf = tmp / "m.ncnn.param", tmp / "m.ncnn.bin"
        if r.returncode != 0 or not (param.is_file() and binf.is_file()):
            tail = "\n".join((r.stderr or r.stdout).strip().splitlines()[-5:])
            raise RuntimeError(f"pnnx failed (exit {r.returncode}): {tail}")
        dst_param, dst_bin = out_dir / f"{stem}{PARAM_SUFFIX}", out_dir / f"{stem}{BIN_SUFFIX}"
        shutil.move(str(param), dst_param)
        shutil.move(str(binf), dst_bin)
    return dst_param, dst_bin


def pnnx_args(pt: Path, tmp: Path, ex1, ex2) -> list[str]:
    import pnnx

    def shapes(ex):
        return ",".join("[" + ",".join(str(s) for s in t.shape) + "]f32" for t in ex)
    return [pnnx.EXEC_PATH, str(pt), f"inputshape={shapes(ex1)}", f"inputshape2={shapes(ex2)}",
            "device=cpu", "optlevel=2", "fp16=0",
            f"pnnxparam={tmp / 'm.pnnx.param'}", f"pnnxbin={tmp / 'm.pnnx.bin'}", f"pnnxpy={tmp / 'm_pnnx.py'}",
            f"pnnxonnx={tmp / 'm.pnnx.onnx'}", f"ncnnparam={tmp / 'm.ncnn.param'}",
            f"ncnnbin={tmp / 'm.ncnn.bin'}", f"ncnnpy={tmp / 'm_ncnn.py'}"]


# -- the engine ---------------------------------------------------------------------------------------

#: ncnn's `GpuInfo.type()` of a Vulkan device that is the CPU itself (0 discrete, 1 integrated, 2 virtual,
#: 3 CPU): Mesa's llvmpipe/lavapipe, which Debian installs with any program that pulls mesa-vulkan-drivers
#: (Chromium does). It is no accelerator, and on it ncnn's in-betweens changed from one process to the
#: next (the same pair's confidence 0.38, 0.57 or 0.97 on this 2-core machine), so it is never used.
VULKAN_CPU_DEVICE = 3


def vulkan_gpus() -> list[int]:
    """ncnn's Vulkan device indices that are real GPUs (never a software rasterizer on the CPU); none
    without a Vulkan loader (not even asked, which would print loader errors)."""
    if ctypes.util.find_library("vulkan") is None:
        return []
    try:
        import ncnn
        return [i for i in range(int(ncnn.get_gpu_count())) if ncnn.get_gpu_info(i).type() != VULKAN_CPU_DEVICE]
    except (ImportError, RuntimeError):
        return []


def vulkan_gpu_count() -> int:
    """GPUs ncnn can use through Vulkan (`vulkan_gpus`)."""
    return len(vulkan_gpus())


_NETS: dict[tuple, object] = {}
_LOCK = threading.Lock()


def load_net(param: Path, binf: Path, digest: str, threads: int | None = None, vulkan: bool | None = None):
    """One ncnn.Net per (files, threads, vulkan) per process, fp32 everywhere."""
    import ncnn
    threads = threads or torch.get_num_threads() or os.cpu_count() or 1
    vulkan = vulkan_gpu_count() > 0 if vulkan is None else vulkan
    key = (str(param), digest, threads, vulkan)
    with _LOCK:
        net = _NETS.get(key)
        if net is None:
            net = ncnn.Net()
            o = net.opt
            o.num_threads = threads
            o.use_vulkan_compute = bool(vulkan)
            if vulkan:
                net.set_vulkan_device(vulkan_gpus()[0])  # device 0 may be a CPU rasterizer listed first
            o.use_fp16_storage = o.use_fp16_packed = o.use_fp16_arithmetic = False
            o.use_bf16_storage = o.use_bf16_packed = False
            o.use_int8_inference = o.use_int8_storage = o.use_int8_arithmetic = o.use_int8_packed = False
            if net.load_param(str(param)) != 0 or net.load_model(str(binf)) != 0:
                raise RuntimeError(f"ncnn could not load {param} / {binf}")
            _NETS.clear()
            _NETS[key] = net
        return net


#: ncnn's peak memory for the flow graph, bytes per padded pixel (one timestep), measured with
#: `ru_maxrss` on CPU fp32 with the engine's pool allocators (size-compare ratio 0.5), whole frame:
#: 1360 B/px at 1920x1080 scale 1 (2841 MiB), 705 B/px at 3840x2160 scale 0.5 (5898 MiB). ncnn's
#: pools keep a buffer per distinct blob size during a pass, so this is more than torch's figure;
#: the engine empties its pools after every pair. Used with `engine.ram_budget` (same 8 GiB rule).
NCNN_BYTES_PER_PX = {1.0: 1400, 0.5: 750}
NCNN_FIXED_BYTES = 300 << 20


def band_rows(height: int, width: int, scale: float, budget: int) -> int:
    """Rows of padded frame per flow band so that one ncnn pass fits `budget` (the height: no bands)."""
    from .engine import BAND_OVERLAP
    per_px = NCNN_BYTES_PER_PX[scale]
    room = max(0, budget - NCNN_FIXED_BYTES)
    if per_px * height * width <= room:
        return height
    m = ifnet.pad_multiple(scale)
    rows = (room // (per_px * width)) // m * m
    rows = -(-max(rows, BAND_OVERLAP + 2 * m) // m) * m
    return min(rows, height)


class NcnnEngine:
    """`TorchEngine.pair` on ncnn: same inputs, same padding, same final warp and blend, and the
    same memory rule (flow in overlapping horizontal bands when one pass would not fit the budget,
    with ncnn's own bytes per pixel)."""

    def __init__(self, net, vulkan: bool = False, ram_bound: int | None = None) -> None:
        import ncnn

        from .engine import RAM_BOUND
        self.net, self.vulkan = net, vulkan
        self.device = "vulkan" if vulkan else "cpu"
        self.ram_bound = RAM_BOUND if ram_bound is None else ram_bound
        self.last_rows: int | None = None
        # our own pools, emptied after every pair (ncnn's default pools keep every blob size for good)
        self.blob_pool, self.work_pool = ncnn.PoolAllocator(), ncnn.UnlockedPoolAllocator()
        self.blob_pool.set_size_compare_ratio(0.5)
        self.work_pool.set_size_compare_ratio(0.5)

    def _run(self, inputs: dict[str, np.ndarray], outputs: tuple[str, ...]) -> list[np.ndarray]:
        import ncnn
        keep = {k: np.ascontiguousarray(v[0], dtype=np.float32) for k, v in inputs.items()}  # alive until extract
        with self.net.create_extractor() as ex:
            if not self.vulkan:
                ex.set_blob_allocator(self.blob_pool)
                ex.set_workspace_allocator(self.work_pool)
            for name, arr in keep.items():
                ex.input(name, ncnn.Mat(arr))
            res = []
            for name in outputs:
                ret, m = ex.extract(name)
                if ret != 0:
                    raise RuntimeError(f"ncnn extract {name} failed ({ret})")
                res.append(np.array(m, dtype=np.float32, copy=True)[None])
                del m
        del keep
        return res

    def _tensor(self, p: np.ndarray, multiple: int) -> torch.Tensor:
        x = torch.from_numpy(np.ascontiguousarray(p.transpose(2, 0, 1)))[None].float()
        return ifnet.pad(x, multiple, "replicate")

    def _estimate(self, ra, rb, f0, f1, t: float, scale: float, rows: int) -> tuple[torch.Tensor, torch.Tensor]:
        """(flow, mask) for one time, whole frame or in bands blended as `TorchEngine._estimate` does."""
        from .engine import BAND_OVERLAP, bands
        H, W = ra.shape[2:]
        outs = SCALE_OUTPUTS[scale]

        def run(y0: int, y1: int):
            hh = y1 - y0
            tplane = np.full((1, 1, hh, W), t, dtype=np.float32)
            grid, norm = identity_grid(hh, W).numpy(), flow_norm(hh, W).numpy()
            ins = (ra[:, :, y0:y1], rb[:, :, y0:y1], f0[:, :, y0:y1], f1[:, :, y0:y1], tplane, grid, norm)
            flow, mask = self._run(dict(zip(FLOW_INS, ins)), outs)
            return torch.from_numpy(flow), torch.from_numpy(mask)

        spans = bands(H, rows)
        if len(spans) == 1:
            return run(0, H)
        flow, mask = torch.zeros((1, 4, H, W)), torch.zeros((1, 1, H, W))
        wsum = torch.zeros((1, 1, H, 1))
        for i, (y0, y1) in enumerate(spans):
            fl, mk = run(y0, y1)
            y = torch.arange(y1 - y0, dtype=torch.float32) + 0.5
            wgt = torch.ones_like(y)
            if i > 0:
                wgt = torch.minimum(wgt, y / BAND_OVERLAP)
            if i < len(spans) - 1:
                wgt = torch.minimum(wgt, (y1 - y0 - y) / BAND_OVERLAP)
            wgt = wgt.clamp_min(1e-3).view(1, 1, -1, 1)
            flow[:, :, y0:y1] += fl * wgt
            mask[:, :, y0:y1] += mk * wgt
            wsum[:, :, y0:y1] += wgt
        return flow / wsum, mask / wsum

    @torch.inference_mode()
    def pair(self, a: np.ndarray, b: np.ndarray, times: list[float], scale: float = 1.0,
             disagreement: bool = True) -> Result:
        """Frames at `times` between premultiplied RGBA keys a and b (float32, H x W x 4)."""
        from .engine import ram_budget
        if scale not in SCALE_OUTPUTS:
            raise ValueError(f"the ncnn model has flow scales {sorted(SCALE_OUTPUTS)}, not {scale}; "
                             "use backend: torch for other scales")
        h, w = a.shape[:2]
        m = ifnet.pad_multiple(scale)
        A, B = self._tensor(a, m), self._tensor(b, m)
        H, W = A.shape[2:]
        ra = (A[:, :3] + (1 - A[:, 3:4])).numpy()  # over white
        rb = (B[:, :3] + (1 - B[:, 3:4])).numpy()
        try:
            (f0,) = self._run({HEAD_IN: ra}, (HEAD_OUT,))  # once per key pair
            (f1,) = self._run({HEAD_IN: rb}, (HEAD_OUT,))
            rows = H if self.vulkan else band_rows(H, W, scale, ram_budget(h, w, self.ram_bound))
            self.last_rows = rows
            frames, dis, maps = [], [], []
            for t in times:
                flow, mask = self._estimate(ra, rb, f0, f1, float(t), scale, rows)
                wa, wb = ifnet.warp(A, flow[:, :2]), ifnet.warp(B, flow[:, 2:4])
                out = (wa * mask + wb * (1 - mask))[:, :, :h, :w]
                if disagreement:
                    diff = ((wa[:, :3] - wa[:, 3:4]) - (wb[:, :3] - wb[:, 3:4])).abs()[:, :, :h, :w]
                    dis.append(float(diff.mean(1).mean()))
                    maps.append(diff.amax(1)[0].numpy().copy())
                else:
                    dis.append(float("nan"))
                frames.append(out[0].permute(1, 2, 0).numpy().copy())
                del flow, mask, wa, wb, out
        finally:
            self.blob_pool.clear()
            self.work_pool.clear()
        return Result(frames, dis, maps)
