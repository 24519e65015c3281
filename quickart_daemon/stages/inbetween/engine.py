"""The torch backend: IFNet on premultiplied RGBA keys, encoded once per pair, timesteps batched.

The network sees each key composited over white (RGB, as it was trained on); the flows and
the occlusion mask it returns are then applied to the keys' *premultiplied* RGBA, so alpha is
carried through with exactly the same motion as the colour and a line on transparency stays a
clean line (no grey halo from interpolating colour that sits under zero alpha). For opaque keys
this is exactly the network's own output.

Devices and precision: ``cpu`` (tested), ``cuda:N`` (same code; not tested in CI: no GPU).
``fp16`` is only offered on CUDA and must be checked against fp32 (PSNR above 45 dB) on the
node before a studio turns it on; the default is fp32 everywhere.
"""

from __future__ import annotations

import math
import os
import threading
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from . import ifnet

_MODELS: dict[tuple[str, str, str], ifnet.IFNet] = {}
_LOCK = threading.Lock()


def get_model(path: Path, digest: str, device: str, dtype: torch.dtype) -> ifnet.IFNet:
    """One loaded network per (file, device, dtype) per process: a worker reuses it across jobs."""
    key = (f"{path}:{digest}", device, str(dtype))
    with _LOCK:
        model = _MODELS.get(key)
        if model is None:
            model = ifnet.load(path, device).to(dtype)
            _MODELS.clear()  # keep one resident copy: a render node runs one model at a time
            _MODELS[key] = model
        return model


# -- memory: how much of the frame one forward pass may take -------------------------------------
#
# The rule (CPU; measured with `bench/bench_inbetween.py` and fresh processes, fp32, ru_maxrss):
# one forward pass needs about NET_BYTES_PER_PX[scale] bytes per *padded* pixel per timestep in the
# batch, plus NET_FIXED_BYTES (oneDNN scratch, the head). Measured: 780 B/px at scale 1 (1080p),
# 470-520 B/px at scale 0.5 and 0.25 (1080p, 4K), each extra timestep adding about as much again.
# The stage around it (premultiplied keys, classical flow, pre-aligned candidates) keeps about
# STAGE_BYTES_PER_PX per frame pixel on top. The budget for the network is then
#     min(RAM_BOUND - current RSS, 0.8 * MemAvailable) - stage reserve
# and the engine takes the most timesteps per pass that fit it; when even one timestep of the
# whole frame does not fit, it estimates the flow in horizontal bands (full width, overlapping
# by BAND_OVERLAP rows, feathered) that do fit, and warps the full frame with the assembled flow.
# The flow scale itself stays the quality choice of `choose_scale` (1 up to 2.2 Mpixel, 0.5
# above): lowering it below 0.5 saves almost no memory (the warps run at full resolution).

GiB = 1 << 30
#: the RAM a render node grants the stage (issue 3: 4K within 8 GiB on CPU)
RAM_BOUND = 8 * GiB
NET_BYTES_PER_PX = {0.125: 560, 0.25: 560, 0.5: 560, 1.0: 820, 2.0: 1100}
NET_FIXED_BYTES = 300 << 20
STAGE_BYTES_PER_PX = 200
#: rows two neighbouring flow bands share (blended linearly across them)
BAND_OVERLAP = 256


def mem_available() -> int | None:
    """MemAvailable from /proc/meminfo in bytes (None where there is no /proc)."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def current_rss() -> int:
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return 0


@dataclass
class Plan:
    batch: int  # timesteps per forward pass
    band_rows: int  # rows of padded frame per flow band (= the padded height: no banding)
    budget: int  # bytes the network may use


def plan(height: int, width: int, scale: float, budget: int, element_bytes: int = 4) -> Plan:
    """Timesteps per pass and band height for a padded frame of height x width within `budget` bytes
    (`element_bytes` 2 for fp16: the per-pixel figures were measured in fp32)."""
    per_px = NET_BYTES_PER_PX.get(scale, max(NET_BYTES_PER_PX.values())) * element_bytes // 4
    room = max(0, budget - NET_FIXED_BYTES)
    frame = per_px * height * width
    if frame <= room:
        return Plan(batch=max(1, room // frame), band_rows=height, budget=budget)
    m = ifnet.pad_multiple(scale)
    rows = (room // (per_px * width)) // m * m
    rows = -(-max(rows, BAND_OVERLAP + 2 * m) // m) * m  # a band must reach past its overlap
    return Plan(batch=1, band_rows=min(rows, height), budget=budget)


def ram_budget(height: int, width: int, ram_bound: int = RAM_BOUND, available: int | None = None,
               rss: int | None = None) -> int:
    """Bytes the network may take for a frame of this size (see the rule above)."""
    available = mem_available() if available is None else available
    rss = current_rss() if rss is None else rss
    room = ram_bound - rss
    if available is not None:
        room = min(room, int(0.8 * available))
    return max(256 << 20, room - STAGE_BYTES_PER_PX * height * width)


#: the GPU memory a render node grants the stage (issue 3: 4K within 6 GiB of GPU memory)
VRAM_BOUND = 6 * GiB
#: GPU bytes per frame pixel besides the network: the padded RGBA keys, their over-white RGB and
#: features, and one output (fp32)
GPU_STAGE_BYTES_PER_PX = 100


def vram_budget(height: int, width: int, free: int, reserved: int, element_bytes: int = 4,
                vram_bound: int = VRAM_BOUND) -> int:
    """Bytes the network may take on a GPU: ``min(6 GiB - what this process already reserved,
    0.9 x the device's free memory) - the stage's own tensors``. The same rule as `ram_budget`;
    the per-pixel figures it is used with were measured on CPU (oneDNN) and scaled by element size:
    **not yet measured on a GPU** (no GPU was lent while this was written; cuDNN workspaces may
    need more), which is why the bound is checked again by `torch.cuda` itself (an OOM fails the
    job as retryable)."""
    room = min(vram_bound - reserved, int(0.9 * free))
    return max(256 << 20, room - GPU_STAGE_BYTES_PER_PX * element_bytes // 4 * height * width)


def bands(height: int, rows: int, overlap: int = BAND_OVERLAP) -> list[tuple[int, int]]:
    """Row ranges [y0, y1) of `rows` rows covering `height`, neighbours overlapping by >= `overlap`."""
    if rows >= height:
        return [(0, height)]
    step = max(1, rows - overlap)
    k = 1 + math.ceil((height - rows) / step)
    starts = [round(i * (height - rows) / (k - 1)) for i in range(k)]
    return [(s, s + rows) for s in starts]


@dataclass
class Result:
    frames: list[np.ndarray]  # premultiplied float32 RGBA (H, W, 4), one per time
    disagreement: list[float]  # mean |warp(a) - warp(b)| over the frame: low = the two keys agree
    # per pixel, max over the colour channels of |warp(a) - warp(b)| over white (with disagreement=True):
    # where the two keys carried to t show different things, the in-between had to choose
    maps: list[np.ndarray] = field(default_factory=list)


class TorchEngine:
    def __init__(self, model: ifnet.IFNet, device: str = "cpu", dtype: torch.dtype = torch.float32,
                 max_batch_pixels: int = 2_500_000, ram_bound: int = RAM_BOUND) -> None:
        self.model, self.device, self.dtype = model, torch.device(device), dtype
        self.max_batch_pixels, self.ram_bound = max_batch_pixels, ram_bound
        self.last_plan: Plan | None = None

    def _estimate(self, ra, rb, f0, f1, ts, scale: float, rows: int) -> ifnet.Estimate:
        """The network's estimate, whole frame or in overlapping horizontal bands of `rows` rows."""
        H = ra.shape[2]
        spans = bands(H, rows)
        if len(spans) == 1:
            return self.model.estimate(ra, rb, ts, scale, f0, f1)
        n = ts.shape[0]
        flow = torch.zeros((n, 4, H, ra.shape[3]), device=self.device, dtype=self.dtype)
        mask = torch.zeros((n, 1, H, ra.shape[3]), device=self.device, dtype=self.dtype)
        wsum = torch.zeros((1, 1, H, 1), device=self.device, dtype=self.dtype)
        for i, (y0, y1) in enumerate(spans):
            e = self.model.estimate(ra[:, :, y0:y1], rb[:, :, y0:y1], ts, scale, f0[:, :, y0:y1], f1[:, :, y0:y1])
            y = torch.arange(y1 - y0, device=self.device, dtype=self.dtype) + 0.5
            wgt = torch.ones_like(y)
            if i > 0:  # ramp up across the rows shared with the band above
                wgt = torch.minimum(wgt, y / BAND_OVERLAP)
            if i < len(spans) - 1:
                wgt = torch.minimum(wgt, (y1 - y0 - y) / BAND_OVERLAP)
            wgt = wgt.clamp_min(1e-3).view(1, 1, -1, 1)
            flow[:, :, y0:y1] += e.flow * wgt
            mask[:, :, y0:y1] += e.mask * wgt
            wsum[:, :, y0:y1] += wgt
            del e
        return ifnet.Estimate(flow=flow / wsum, mask=mask / wsum)

    def _tensor(self, p: np.ndarray, multiple: int) -> torch.Tensor:
        x = torch.from_numpy(np.ascontiguousarray(p.transpose(2, 0, 1)))[None]
        return ifnet.pad(x.to(self.device, self.dtype), multiple, "replicate")

    @torch.inference_mode()
    def pair(self, a: np.ndarray, b: np.ndarray, times: list[float], scale: float = 1.0,
             disagreement: bool = True) -> Result:
        """Frames at `times` between premultiplied RGBA keys a and b (float32, H x W x 4).

        `disagreement=False` skips the self-check score (NaN instead) where no candidate is chosen."""
        h, w = a.shape[:2]
        m = ifnet.pad_multiple(scale)
        A, B = self._tensor(a, m), self._tensor(b, m)
        ra, rb = A[:, :3] + (1 - A[:, 3:4]), B[:, :3] + (1 - B[:, 3:4])  # over white
        f0, f1 = self.model.encode(ra), self.model.encode(rb)        # once per key pair
        H, W = A.shape[2:]
        per = max(1, self.max_batch_pixels // (H * W))
        if self.device.type == "cuda":
            free, _total = torch.cuda.mem_get_info(self.device)
            size = torch.finfo(self.dtype).bits // 8
            p = plan(H, W, scale, vram_budget(h, w, free, torch.cuda.memory_reserved(self.device), size), size)
        else:
            p = plan(H, W, scale, ram_budget(h, w, self.ram_bound))
        per, rows = min(per, p.batch), p.band_rows
        self.last_plan = p
        frames, dis, maps = [], [], []
        for i in range(0, len(times), per):
            ts = torch.tensor(times[i:i + per], device=self.device, dtype=self.dtype)
            e = self._estimate(ra, rb, f0, f1, ts, scale, rows)
            n = ts.shape[0]
            wa, wb = ifnet.warp(A.expand(n, -1, -1, -1), e.flow[:, :2]), ifnet.warp(B.expand(n, -1, -1, -1), e.flow[:, 2:4])
            out = (wa * e.mask + wb * (1 - e.mask))[:, :, :h, :w]
            if disagreement:
                diff = ((wa[:, :3] - wa[:, 3:4]) - (wb[:, :3] - wb[:, 3:4])).abs()[:, :, :h, :w]
                dis += [float(x) for x in diff.mean(1).float().mean((1, 2))]
                maps += [m.float().cpu().numpy() for m in diff.amax(1)]
            else:
                dis += [float("nan")] * n
            frames += [o.float().permute(1, 2, 0).cpu().numpy() for o in out]
        return Result(frames, dis, maps)
