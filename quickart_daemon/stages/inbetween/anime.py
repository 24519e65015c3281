"""`method: anime`: in-betweens from GMFSS Fortuna (union), the anime-trained interpolator,
on opaque keys (issue 21).

The network (:mod:`.gmfss`, our torch implementation on the published weights) sees each key
composited over white, as it was trained, and its frame is the in-between of opaque keys (paper,
painted cels). Layers with transparency never reach it: the stage gives them to RIFE
(``_layer_method``), whose motion applies to premultiplied RGBA exactly.

What held still is kept exactly: the fusion net redraws the whole frame from half-resolution
features, so a part that did not move comes out slightly soft or shifted (a box's ink outline
off by up to 143 levels in tests/test_inbetween_anime.py). Where both keys are the same and none
of the keys' changing pixels, carried to t by the pair's own flows and metrics, lands nearby,
the in-between is the key itself: the part holds, it is not redrawn. Everything the moving
parts may cover at t stays the network's.

The stage's confidence for an anime in-between is how well the two keys agree once each is splatted to the in-between's time (the frames the fusion net
starts from): where they show the same thing the motion explains both keys; where they differ
the net had to choose or invent. (Forward-backward flow consistency was tried first: on flat
cel paint the flow inside a fill is ambiguous, so a disk that moved exactly was marked unsure.)
"""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from .gmfss.model import MODEL, GMFSS, load_gmfss, size_multiple
from .gmfss.softsplat import softsplat
# CONFIDENCE_SCALE: the difference of the two splatted keys (0..1, max over channels) at which the
# confidence is 1/e, the guard's, so the confidence maps of all methods read the same
from .guard import CONFIDENCE_SCALE, changing

#: the flow scale of the anime method per frame size: GMFlow's global matching grows with the
#: square of the pixels, and above 2.2 Mpixel (larger than 1080p) a half-resolution flow is
#: the published wrapper's advice for 4K, as for RIFE (set on that advice, not on our data)
HALF_FLOW_ABOVE = 2_200_000

#: pixels around what the keys' moving parts cover at t that are still left to the network
#: (the flow of a flat fill is uncertain by about this much at the network's half resolution)
MOVING_MARGIN_PX = 3
#: a splatted moving-part share above which a pixel is left to the network
MOVING_SHARE = 0.02

_MODELS: dict[tuple, GMFSS] = {}
_LOCK = threading.Lock()


def flow_scale(h: int, w: int) -> float:
    return 0.5 if h * w > HALF_FLOW_ABOVE else 1.0


def get_model(models_dir: Path, device: str, dtype: torch.dtype, scale: float) -> GMFSS:
    """One loaded network per (weights folder, device, dtype, scale) per process; a worker keeps it."""
    key = (str(models_dir), device, str(dtype), scale)
    with _LOCK:
        model = _MODELS.get(key)
        if model is None:
            model = load_gmfss(models_dir, device=device, scale=scale, dtype=dtype)
            _MODELS.clear()  # one resident copy: a render node runs one model at a time
            _MODELS[key] = model
        return model


class AnimeEngine:
    """GMFSS on opaque float32 RGBA keys (H x W x 4, values in [0, 1])."""

    backend = "torch"
    name = MODEL

    def __init__(self, models_dir: Path, device: str = "cpu", dtype: torch.dtype = torch.float32) -> None:
        self.models_dir, self.device, self.dtype = Path(models_dir), device, dtype

    def _tensor(self, x: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(np.ascontiguousarray(x.transpose(2, 0, 1)))[None].to(self.device, self.dtype)

    @torch.inference_mode()
    def pair(self, a: np.ndarray, b: np.ndarray, times: list[float]) -> tuple[list[np.ndarray], list[np.ndarray]]:
        """(premultiplied RGBA frames, confidence maps in [0, 1]) at each time of `times`."""
        h, w = a.shape[:2]
        net = get_model(self.models_dir, self.device, self.dtype, flow_scale(h, w))
        m = size_multiple(net.scale)
        pad = (0, -w % m, 0, -h % m)
        A, B = self._tensor(a), self._tensor(b)
        ra = F.pad(A[:, :3] + (1 - A[:, 3:4]), pad, mode="replicate")  # over white, as trained
        rb = F.pad(B[:, :3] + (1 - B[:, 3:4]), pad, mode="replicate")
        pair = net.prepare(ra, rb)
        changed = torch.from_numpy(changing(a, b).astype(np.float32))[None, None].to(self.device, self.dtype)
        changed_half = F.interpolate(F.pad(changed, pad), scale_factor=0.5, mode="area")
        same = ~changing(a, b)
        frames, confidence = [], []
        for t in times:
            rgb = net.synthesize(pair, float(t))[:, :, :h, :w]
            out = torch.cat((rgb, torch.ones_like(rgb[:, :1])), 1)[0].float().permute(1, 2, 0).cpu().numpy()
            held = same & ~self._moving(pair, changed_half, float(t), h, w)
            out[held] = a[held]
            conf = self._confidence(pair, float(t), h, w)
            conf[held] = 1.0
            frames.append(out)
            confidence.append(conf)
        return frames, confidence

    def _moving(self, pair, changed_half: torch.Tensor, t: float, h: int, w: int) -> np.ndarray:
        """Pixels at t that a moving part of either key may cover: the keys' changing pixels
        splatted to t with the frame's own flows and metrics, grown by MOVING_MARGIN_PX."""
        m0 = softsplat(changed_half, t * pair.flow01, t * pair.metric0, "soft")
        m1 = softsplat(changed_half, (1 - t) * pair.flow10, (1 - t) * pair.metric1, "soft")
        moving = F.interpolate(torch.maximum(m0, m1), scale_factor=2, mode="bilinear") > MOVING_SHARE
        k = 2 * MOVING_MARGIN_PX + 1
        moving = F.max_pool2d(moving.float(), k, stride=1, padding=MOVING_MARGIN_PX) > 0
        return moving[0, 0, :h, :w].cpu().numpy()

    def _confidence(self, pair, t: float, h: int, w: int) -> np.ndarray:
        """exp(-(d / CONFIDENCE_SCALE)^2), d = how far the two half-size keys splatted to t differ."""
        s0 = softsplat(pair.img0, t * pair.flow01, t * pair.metric0, "soft")
        s1 = softsplat(pair.img1, (1 - t) * pair.flow10, (1 - t) * pair.metric1, "soft")
        d = (s0 - s1).abs().amax(1, keepdim=True)
        conf = torch.exp(-(d / CONFIDENCE_SCALE) ** 2)
        conf = F.interpolate(conf, scale_factor=2, mode="bilinear")[:, :, :h, :w]
        return conf[0, 0].float().clamp(0, 1).cpu().numpy()
