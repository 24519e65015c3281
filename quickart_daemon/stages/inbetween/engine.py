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

import threading
from dataclasses import dataclass
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


@dataclass
class Result:
    frames: list[np.ndarray]  # premultiplied float32 RGBA (H, W, 4), one per time
    disagreement: list[float]  # mean |warp(a) - warp(b)| over the frame: low = the two keys agree


class TorchEngine:
    def __init__(self, model: ifnet.IFNet, device: str = "cpu", dtype: torch.dtype = torch.float32,
                 max_batch_pixels: int = 2_500_000) -> None:
        self.model, self.device, self.dtype = model, torch.device(device), dtype
        self.max_batch_pixels = max_batch_pixels

    def _tensor(self, p: np.ndarray, multiple: int) -> torch.Tensor:
        x = torch.from_numpy(np.ascontiguousarray(p.transpose(2, 0, 1)))[None]
        return ifnet.pad(x.to(self.device, self.dtype), multiple, "replicate")

    @torch.inference_mode()
    def pair(self, a: np.ndarray, b: np.ndarray, times: list[float], scale: float = 1.0) -> Result:
        """Frames at `times` between premultiplied RGBA keys a and b (float32, H x W x 4)."""
        h, w = a.shape[:2]
        m = ifnet.pad_multiple(scale)
        A, B = self._tensor(a, m), self._tensor(b, m)
        ra, rb = A[:, :3] + (1 - A[:, 3:4]), B[:, :3] + (1 - B[:, 3:4])  # over white
        f0, f1 = self.model.encode(ra), self.model.encode(rb)        # once per key pair
        per = max(1, self.max_batch_pixels // (A.shape[2] * A.shape[3]))
        frames, dis = [], []
        for i in range(0, len(times), per):
            ts = torch.tensor(times[i:i + per], device=self.device, dtype=self.dtype)
            e = self.model.estimate(ra, rb, ts, scale, f0, f1)
            n = ts.shape[0]
            wa, wb = ifnet.warp(A.expand(n, -1, -1, -1), e.flow[:, :2]), ifnet.warp(B.expand(n, -1, -1, -1), e.flow[:, 2:4])
            out = (wa * e.mask + wb * (1 - e.mask))[:, :, :h, :w]
            d = ((wa[:, :3] - wa[:, 3:4]) - (wb[:, :3] - wb[:, 3:4])).abs().mean(1)[:, :h, :w]
            dis += [float(x) for x in d.float().mean((1, 2))]
            frames += [o.float().permute(1, 2, 0).cpu().numpy() for o in out]
        return Result(frames, dis)
