"""Our implementation of the Practical-RIFE v4 IFNet (the network behind `flownet.pkl`, MIT).

Written from the architecture's published facts (Practical-RIFE `train_log/IFNet_HDv3.py`,
v4.2x): the module and parameter names below are fixed by the state dict, everything else
(encoding once per key pair, batched timesteps, padding, the warp helper) is ours.

The network, for two RGB frames in [0, 1] and a time t:

* ``encode`` (a small "head"): conv 3->16 stride 2, conv 16->16, conv 16->16 (LeakyReLU 0.2
  between), then a transposed conv 16->4 back to full size: a 4-channel feature map per
  frame. It depends only on the frame, so a key pair is encoded once for all its timesteps.
* five ``IFBlock``s, coarse to fine, at downscale factors ``16/s, 8/s, 4/s, 2/s, 1/s`` for a
  flow scale ``s`` (1 = native resolution; 0.5 estimates flow at half resolution, which sees
  twice the motion). Block 0 sees (img0, img1, f0, f1, t) = 15 planes; blocks 1-4 see the
  frames and features warped by the current flow, t, the mask logit and the previous
  block's 8 feature planes (24 planes) plus the current flow (4), and add a residual.
  A block: bilinear downscale, two stride-2 convs (LeakyReLU), eight ``ResConv``
  (``act(conv(x) * beta + x)``), a stride-2 transposed conv to 52 planes and a pixel
  shuffle (x2) to 13 planes at the block's input scale, then bilinear upscale: 4 flow
  planes (t->0 and t->1, in pixels, multiplied by the downscale factor), 1 mask logit,
  8 feature planes.
* the output: ``sigmoid(mask) * warp(img0, F_t0) + (1 - sigmoid(mask)) * warp(img1, F_t1)``.

Warp semantics (must match for the reference test and for any export): backward warping with
``grid_sample(bilinear, padding_mode="border", align_corners=True)`` where the sampling grid is
``linspace(-1, 1, W)`` (``H``) plus the flow divided by ``(W - 1) / 2`` (``(H - 1) / 2``).

Sizes: each block downsamples by up to ``16/s`` and then by 4 more, so frames are padded to
a multiple of ``max(64, 64 / s)`` (:func:`pad_multiple`) and cropped back afterwards.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

#: Keys of the published state dict that only training uses (the privileged "teacher" block
#: and a timestep-estimation head); dropped by name before a strict load.
TRAINING_ONLY_PREFIXES = ("teacher.", "caltime.")
#: Flow scales the network supports (powers of two so every block's size divides evenly).
SCALES = (0.125, 0.25, 0.5, 1.0, 2.0)


def _conv_act(cin: int, cout: int, stride: int) -> nn.Sequential:
    # key layout "<i>.0.weight": a Sequential holding the conv and its activation
    return nn.Sequential(nn.Conv2d(cin, cout, 3, stride, 1, bias=True), nn.LeakyReLU(0.2, inplace=True))


class ResConv(nn.Module):
    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, 1, 1)
        self.beta = nn.Parameter(torch.ones(1, channels, 1, 1))
        self.act = nn.LeakyReLU(0.2, inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not torch.is_inference_mode_enabled() or self.training:
            return self.act(self.conv(x) * self.beta + x)
        # inference: scale in place and add in place (same arithmetic, no extra full-size tensors)
        y = self.conv(x)
        y.mul_(self.beta).add_(x)
        return self.act(y)


class IFBlock(nn.Module):
    """One coarse-to-fine flow block: returns (flow[4], mask logit[1], features[8])."""

    def __init__(self, cin: int, width: int) -> None:
        super().__init__()
        self.conv0 = nn.Sequential(_conv_act(cin, width // 2, 2), _conv_act(width // 2, width, 2))
        self.convblock = nn.Sequential(*[ResConv(width) for _ in range(8)])
        self.lastconv = nn.Sequential(nn.ConvTranspose2d(width, 4 * 13, 4, 2, 1), nn.PixelShuffle(2))

    def forward(self, x, flow: torch.Tensor | None, down: float):
        """`x`: the input planes, one tensor or a sequence of tensors to concatenate.

        Bilinear resampling works plane by plane, so resampling each part and concatenating the
        small results equals resampling the concatenation (without writing the full-size
        concatenation: the largest memory-bound cost at 1080p); at ``down == 1`` it is the
        identity and skipped."""
        parts = [x] if isinstance(x, torch.Tensor) else list(x)
        if flow is not None:
            parts.append(flow)
        if down != 1.0:
            parts = [F.interpolate(p, scale_factor=1.0 / down, mode="bilinear", align_corners=False) for p in parts]
        if flow is not None:
            parts[-1] = parts[-1] * (1.0 / down)
        x = parts[0] if len(parts) == 1 else torch.cat(parts, 1)
        y = self.lastconv(self.convblock(self.conv0(x)))
        y = F.interpolate(y, scale_factor=down, mode="bilinear", align_corners=False)
        return y[:, :4] * down, y[:, 4:5], y[:, 5:]


class Head(nn.Module):
    """Per-frame 4-channel features at full resolution."""

    def __init__(self) -> None:
        super().__init__()
        self.cnn0 = nn.Conv2d(3, 16, 3, 2, 1)
        self.cnn1 = nn.Conv2d(16, 16, 3, 1, 1)
        self.cnn2 = nn.Conv2d(16, 16, 3, 1, 1)
        self.cnn3 = nn.ConvTranspose2d(16, 4, 4, 2, 1)
        self.act = nn.LeakyReLU(0.2, inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.act(self.cnn0(x))
        x = self.act(self.cnn1(x))
        x = self.act(self.cnn2(x))
        return self.cnn3(x)


_GRIDS: dict[tuple, torch.Tensor] = {}


def base_grid(n: int, h: int, w: int, device, dtype) -> torch.Tensor:
    """The identity sampling grid (N, 2, H, W) in grid_sample's [-1, 1] coordinates."""
    key = (n, h, w, str(device), dtype)
    grid = _GRIDS.get(key)
    if grid is None:
        gx = torch.linspace(-1.0, 1.0, w, device=device, dtype=dtype).view(1, 1, 1, w).expand(n, 1, h, w)
        gy = torch.linspace(-1.0, 1.0, h, device=device, dtype=dtype).view(1, 1, h, 1).expand(n, 1, h, w)
        grid = torch.cat((gx, gy), 1)
        if len(_GRIDS) > 16:
            _GRIDS.clear()
        _GRIDS[key] = grid
    return grid


def warp(img: torch.Tensor, flow: torch.Tensor) -> torch.Tensor:
    """Backward warp: out(x) = img(x + flow(x)), bilinear, border padding, align_corners=True."""
    n, _, h, w = flow.shape
    norm = torch.cat((flow[:, 0:1] / ((img.shape[3] - 1.0) / 2.0), flow[:, 1:2] / ((img.shape[2] - 1.0) / 2.0)), 1)
    grid = (base_grid(n, h, w, flow.device, flow.dtype) + norm).permute(0, 2, 3, 1)
    return F.grid_sample(img, grid, mode="bilinear", padding_mode="border", align_corners=True)


@dataclass
class Estimate:
    """What the network says about a time t between two frames (padded size)."""

    flow: torch.Tensor  # (N, 4, H, W): t->0 (x, y) and t->1 (x, y), pixels
    mask: torch.Tensor  # (N, 1, H, W) weight of frame 0 after the sigmoid


class IFNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.block0 = IFBlock(7 + 8, 192)
        self.block1 = IFBlock(8 + 4 + 8 + 8, 128)
        self.block2 = IFBlock(8 + 4 + 8 + 8, 96)
        self.block3 = IFBlock(8 + 4 + 8 + 8, 64)
        self.block4 = IFBlock(8 + 4 + 8 + 8, 32)
        self.encode = Head()

    def estimate(self, img0: torch.Tensor, img1: torch.Tensor, t: torch.Tensor, scale: float = 1.0,
                 f0: torch.Tensor | None = None, f1: torch.Tensor | None = None) -> Estimate:
        """Flows and mask for the times ``t`` (N,) between img0 and img1 ((1 or N), 3, H, W).

        ``f0``/``f1`` are ``encode(img0)``/``encode(img1)`` when the caller already has them.
        With one key pair and N times the pair is broadcast over the batch."""
        n = t.shape[0]
        f0 = self.encode(img0) if f0 is None else f0
        f1 = self.encode(img1) if f1 is None else f1
        if img0.shape[0] != n:
            img0, img1, f0, f1 = (x.expand(n, -1, -1, -1) for x in (img0, img1, f0, f1))
        h, w = img0.shape[2:]
        tplane = t.to(img0.dtype).view(n, 1, 1, 1).expand(n, 1, h, w)
        downs = [d / scale for d in (16, 8, 4, 2, 1)]
        blocks = (self.block0, self.block1, self.block2, self.block3, self.block4)
        flow, mask, feat = blocks[0]((img0, img1, f0, f1, tplane), None, downs[0])
        # each key and its features are warped by the same flow: one grid_sample for both
        x0, x1 = torch.cat((img0, f0), 1), torch.cat((img1, f1), 1)
        for block, down in zip(blocks[1:], downs[1:]):
            wx0, wx1 = warp(x0, flow[:, :2]), warp(x1, flow[:, 2:4])
            parts = (wx0[:, :3], wx1[:, :3], wx0[:, 3:], wx1[:, 3:], tplane, mask, feat)
            d, mask, feat = block(parts, flow, down)
            flow = flow + d
        return Estimate(flow=flow, mask=torch.sigmoid(mask))

    def forward(self, img0: torch.Tensor, img1: torch.Tensor, t: torch.Tensor, scale: float = 1.0) -> torch.Tensor:
        """The merged frame(s) at times t: a pure function of its inputs (what an export wraps)."""
        e = self.estimate(img0, img1, t, scale)
        n = t.shape[0]
        if img0.shape[0] != n:
            img0, img1 = img0.expand(n, -1, -1, -1), img1.expand(n, -1, -1, -1)
        return merge(img0, img1, e)


def merge(a: torch.Tensor, b: torch.Tensor, e: Estimate) -> torch.Tensor:
    """Warp any planes of the two keys (RGB, premultiplied RGBA, ...) with an estimate and blend."""
    return warp(a, e.flow[:, :2]) * e.mask + warp(b, e.flow[:, 2:4]) * (1 - e.mask)


# -- loading ------------------------------------------------------------------------------

def load_state(path: Path | str, device: str | torch.device = "cpu") -> dict[str, torch.Tensor]:
    """The network's tensors from a flownet.pkl: `weights_only=True`, training keys dropped by name."""
    state = torch.load(str(path), map_location=device, weights_only=True)
    if not isinstance(state, dict):
        raise ValueError(f"{path}: not a state dict")
    state = {k[len("module."):] if k.startswith("module.") else k: v for k, v in state.items()}
    return {k: v for k, v in state.items() if not k.startswith(TRAINING_ONLY_PREFIXES)}


def load(path: Path | str, device: str | torch.device = "cpu") -> IFNet:
    """An IFNet in eval mode with the weights of `path` (strict: every key must match).

    The caller checks the file's sha256 first (`weights.verified_path`)."""
    model = IFNet()
    model.load_state_dict(load_state(path, device), strict=True)
    return model.to(device).eval().requires_grad_(False)


# -- inference helpers ----------------------------------------------------------------------

def pad_multiple(scale: float) -> int:
    if scale not in SCALES:
        raise ValueError(f"flow scale {scale} is not one of {SCALES}")
    return max(64, int(math.ceil(64 / scale)))


def pad(x: torch.Tensor, multiple: int, mode: str = "replicate") -> torch.Tensor:
    """Pad right and bottom to a multiple (replicate: no dark seam at the borders)."""
    h, w = x.shape[2:]
    ph, pw = -h % multiple, -w % multiple
    if not (ph or pw):
        return x
    if mode == "constant":
        return F.pad(x, (0, pw, 0, ph))
    return F.pad(x, (0, pw, 0, ph), mode=mode)


@torch.inference_mode()
def interpolate(model: IFNet, a: torch.Tensor, b: torch.Tensor, t, scale: float = 1.0,
                pad_mode: str = "replicate") -> torch.Tensor:
    """Frames between RGB images a, b ((3, H, W) or (1, 3, H, W), float in [0, 1]) at time(s) t.

    Returns (N, 3, H, W) for N times (a float gives N = 1). Any size: padded, then cropped."""
    a = a[None] if a.dim() == 3 else a
    b = b[None] if b.dim() == 3 else b
    p = next(model.parameters())
    a, b = a.to(p.device, p.dtype), b.to(p.device, p.dtype)
    ts = torch.as_tensor([t] if isinstance(t, (int, float)) else list(t), dtype=p.dtype, device=p.device)
    h, w = a.shape[2:]
    m = pad_multiple(scale)
    out = model(pad(a, m, pad_mode), pad(b, m, pad_mode), ts, scale)
    return out[:, :, :h, :w]
