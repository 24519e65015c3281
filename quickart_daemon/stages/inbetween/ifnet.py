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


def transposed_as_conv(weight: torch.Tensor, bias: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """A ConvTranspose2d(kernel 4, stride 2, padding 1) as a 3x3 convolution (padding 1) whose
    output, through ``pixel_shuffle(2)``, is the same function.

    Output pixel ``2i + r`` of the transposed conv reads input ``i`` and one neighbour: for
    phase r = 0 kernel tap 1 at offset 0 and tap 3 at offset -1; for r = 1 tap 2 at offset 0
    and tap 0 at offset +1. So each of the 4 phases (ry, rx) is a 3x3 convolution with those
    taps; plane ``co*4 + ry*2 + rx`` holds phase (ry, rx) of output plane co. oneDNN runs a
    plain convolution faster than the transposed one on CPU (about 15 % here)."""
    cin, cout = weight.shape[:2]
    conv = weight.new_zeros(cout, 2, 2, cin, 3, 3)
    taps = {0: {0: 1, -1: 3}, 1: {0: 2, 1: 0}}  # phase -> {input offset: kernel tap}
    for ry in (0, 1):
        for dy, ky in taps[ry].items():
            for rx in (0, 1):
                for dx, kx in taps[rx].items():
                    conv[:, ry, rx, :, dy + 1, dx + 1] = weight[:, :, ky, kx].t()
    return conv.reshape(cout * 4, cin, 3, 3), bias.repeat_interleave(4)


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

    # -- the inference fast path (IFNet._estimate_fast) -----------------------------------------

    def run_small(self, parts: list[torch.Tensor]) -> torch.Tensor:
        """The block on input planes already at its own resolution: the 13 output planes there."""
        return self._tail(self.convblock(self.conv0(torch.cat(parts, 1))), 13)

    def _tail(self, x: torch.Tensor, keep: int) -> torch.Tensor:
        """`lastconv` (transposed conv, then pixel shuffle 2) for the first `keep` output planes,
        as one 3x3 convolution and a pixel shuffle by 4 (`transposed_as_conv`, planes reordered
        so the two shuffles become one)."""
        key = (keep, x.dtype, x.device)
        cache = self.__dict__.setdefault("_tail_cache", {})
        if key not in cache:
            tconv = self.lastconv[0]
            # transposed-conv plane c*4 + sy*2 + sx is plane c, pixel (2y + sy, 2x + sx), after the
            # shuffle; it is itself phase (ry, rx) of y = 2i + ry: final pixel (4i + 2ry + sy, ...)
            w, b = transposed_as_conv(tconv.weight[:, :4 * keep], tconv.bias[:4 * keep])
            cin = w.shape[1]
            w = w.reshape(keep, 2, 2, 2, 2, cin, 3, 3).permute(0, 3, 1, 4, 2, 5, 6, 7).reshape(16 * keep, cin, 3, 3)
            b = b.reshape(keep, 2, 2, 2, 2).permute(0, 3, 1, 4, 2).reshape(16 * keep)
            cache[key] = (w.contiguous(), b.contiguous())
        w, b = cache[key]
        return F.pixel_shuffle(F.conv2d(x, w, b, 1, 1), 4)

    def run_full(self, key0: tuple, key1: tuple, t: torch.Tensor, rest: torch.Tensor, flow: torch.Tensor,
                 keep: int) -> torch.Tensor:
        """The block at full resolution (down = 1), returning only the first `keep` output planes.

        Inputs as `forward` sees them: each key's warped (RGB, features), the time, the previous
        block's mask and features (`rest`) and the flow. The first convolution is linear in its
        input planes, so it runs on groups of planes with their slices of the weights and sums:
        on CPU a stride-2 convolution costs about the same for 1 to 12 input planes and 3x more
        at 16 and up (oneDNN changes kernels), so the 28-plane concatenation is never written;
        each key's RGB and features are joined (7 planes), and the time plane, a constant, is
        t times the convolution of a plane of ones (cached per size). The last layer computes
        only the planes the caller uses (the final block's 8 feature planes go nowhere)."""
        conv = self.conv0[0][0]
        w = conv.weight  # input planes: img0 0:3, img1 3:6, f0 6:10, f1 10:14, t 14, rest 15:24, flow 24:28
        x = F.conv2d(torch.cat(key0, 1), torch.cat((w[:, 0:3], w[:, 6:10]), 1), conv.bias, 2, 1)
        x += F.conv2d(torch.cat(key1, 1), torch.cat((w[:, 3:6], w[:, 10:14]), 1), None, 2, 1)
        x += F.conv2d(rest, w[:, 15:24], None, 2, 1)
        x += F.conv2d(flow, w[:, 24:28], None, 2, 1)
        x += self._ones_conv(flow.shape[2], flow.shape[3], flow.dtype, flow.device) * t.view(-1, 1, 1, 1)
        x = self.conv0[1](self.conv0[0][1](x))
        return self._tail(self.convblock(x), keep)

    def _ones_conv(self, h: int, w: int, dtype, device) -> torch.Tensor:
        """The first convolution's time-plane slice applied to a plane of ones (zero padding included)."""
        cache = self.__dict__.setdefault("_ones_cache", {})
        key = (h, w, dtype, device)
        if key not in cache:
            if len(cache) > 4:
                cache.clear()
            ones = torch.ones((1, 1, h, w), dtype=dtype, device=device)
            cache[key] = F.conv2d(ones, self.conv0[0][0].weight[:, 14:15], None, 2, 1)
        return cache[key]


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
        if self.training or not torch.is_inference_mode_enabled():
            return self.cnn3(self.act(self.cnn2(self.act(self.cnn1(x)))))
        # inference (same function): the 16-plane convolutions run in channels-last, which
        # oneDNN does about 1.5x faster for so few planes, and the transposed conv as a conv
        # plus pixel shuffle (`transposed_as_conv`)
        x = x.contiguous(memory_format=torch.channels_last)
        x = self.act(self.cnn2(self.act(self.cnn1(x))))
        key = (x.dtype, x.device)
        cache = self.__dict__.setdefault("_tail_cache", {})
        if key not in cache:
            cache[key] = transposed_as_conv(self.cnn3.weight, self.cnn3.bias)
        w, b = cache[key]
        y = F.conv2d(x, w, b, 1, 1)  # channels-last: memory (N, h, w, 4 * 4) with plane c*4 + ry*2 + rx
        n, _, h, w_ = y.shape
        # the pixel shuffle straight from that layout, in one copy
        y = y.permute(0, 2, 3, 1).reshape(n, h, w_, 4, 2, 2).permute(0, 3, 1, 4, 2, 5)
        return y.reshape(n, 4, 2 * h, 2 * w_)


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


def sampling_grid(flow: torch.Tensor, height: int, width: int, base: torch.Tensor | None = None) -> torch.Tensor:
    """grid_sample's (N, H', W', 2) grid for a backward warp by `flow` (pixels) in a height x width image.

    `base` is the identity grid at the flow's positions (default: every pixel)."""
    n, _, h, w = flow.shape
    base = base_grid(n, h, w, flow.device, flow.dtype) if base is None else base
    per_px = torch.tensor([2.0 / (width - 1.0), 2.0 / (height - 1.0)], dtype=flow.dtype, device=flow.device)
    # one pass writing the (N, H, W, 2) layout grid_sample reads
    return torch.addcmul(base.permute(0, 2, 3, 1), flow.permute(0, 2, 3, 1), per_px)


def sample(img: torch.Tensor, grid: torch.Tensor) -> torch.Tensor:
    """grid_sample (bilinear, border, align_corners), at most 4 planes per call.

    Measured on CPU at 1080p: a 7-plane call costs about 3.5x a 3-plane one, two calls of
    3 and 4 planes about 2x, so wider inputs are sampled in chunks (same values)."""
    if img.shape[1] <= 4:
        return F.grid_sample(img, grid, mode="bilinear", padding_mode="border", align_corners=True)
    return torch.cat([sample(img[:, i:i + 4], grid) for i in range(0, img.shape[1], 4)], 1)


def warp(img: torch.Tensor, flow: torch.Tensor) -> torch.Tensor:
    """Backward warp: out(x) = img(x + flow(x)), bilinear, border padding, align_corners=True."""
    return sample(img, sampling_grid(flow, img.shape[2], img.shape[3]))


def _phase_index(size: int, down: int, device) -> torch.Tensor:
    """The full-resolution rows (or columns) a bilinear downscale by `down` reads.

    For an even integer factor ``k`` (align_corners=False) output pixel ``i`` sits at source
    coordinate ``k*i + k/2 - 0.5``: the mean of pixels ``k*i + k/2 - 1`` and ``k*i + k/2``.
    So ``downscale(warp(x))`` needs the warp at only 2 of every k rows and columns; sampling just
    those and averaging 2x2 gives the same values (to float rounding) at 4/k^2 of the cost."""
    a = down // 2 - 1
    starts = torch.arange(a, size, down, device=device)
    return torch.stack((starts, starts + 1), 1).reshape(-1)


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
        downs = [d / scale for d in (16, 8, 4, 2, 1)]
        if self.training or not all(d >= 1 and float(d).is_integer() and (d == 1 or int(d) % 2 == 0) for d in downs):
            return self._estimate_plain(img0, img1, f0, f1, t, downs)
        return self._estimate_fast(img0, img1, f0, f1, t, [int(d) for d in downs])

    def _estimate_plain(self, img0, img1, f0, f1, t, downs) -> Estimate:
        """The network as published: every block's inputs and outputs at full resolution."""
        n, _, h, w = img0.shape
        tplane = t.to(img0.dtype).view(n, 1, 1, 1).expand(n, 1, h, w)
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

    def _estimate_fast(self, img0, img1, f0, f1, t, downs: list[int]) -> Estimate:
        """The same function as `_estimate_plain` for integer downscales (flow scale <= 1),
        computing only what each block reads (equal to float rounding; tested).

        The published forward upsamples every block's 13 output planes to full resolution and
        the next block downsamples them again; it also warps the keys at full resolution before
        each block shrinks them. Here, for a block at downscale ``k >= 2``:

        * the warped keys and the flow it reads are sampled only at the 2 of every k rows and
          columns a bilinear downscale by k reads (:func:`_phase_index`), then averaged 2x2;
        * the previous block's mask and features are upscaled by 2 straight from its own
          resolution: a bilinear downscale by k of a bilinear upscale by 2k equals a bilinear
          upscale by 2 (both sample the same point; the two taps never straddle a pixel);
        * the time plane is a constant, made at the block's size.

        The full-resolution flow is still accumulated (the warps need it), 4 planes instead of
        13, and the last block, at full size, skips the concatenation (`IFBlock.run_full`)."""
        n, _, h, w = img0.shape
        dtype, device = img0.dtype, img0.device
        blocks = (self.block0, self.block1, self.block2, self.block3, self.block4)

        def tplane(hh: int, ww: int) -> torch.Tensor:
            return t.to(dtype).view(n, 1, 1, 1).expand(n, 1, hh, ww)

        def shrink(x: torch.Tensor, k: int) -> torch.Tensor:
            if k == 1:
                return x
            return F.avg_pool2d(x.index_select(2, _phase_index(h, k, device)).index_select(3, _phase_index(w, k, device)), 2)

        # block 0 sees the keys and their features, downscaled
        k = downs[0]
        y = blocks[0].run_small([shrink(x, k) for x in (img0, img1, f0, f1)] + [tplane(h // k, w // k)])
        flow = F.interpolate(y[:, :4], scale_factor=k, mode="bilinear", align_corners=False).mul_(k)
        for block, k in zip(blocks[1:], downs[1:]):
            if k == 1:
                rest = F.interpolate(y[:, 4:], scale_factor=2, mode="bilinear", align_corners=False)
                grid0 = sampling_grid(flow[:, :2], h, w)
                grid1 = sampling_grid(flow[:, 2:4], h, w)
                y = block.run_full((sample(img0, grid0), sample(f0, grid0)), (sample(img1, grid1), sample(f1, grid1)),
                                   t.to(dtype), rest, flow, keep=5)
                flow.add_(y[:, :4])
                return Estimate(flow=flow, mask=torch.sigmoid(y[:, 4:5]))
            if k == 2:  # every pixel is read
                fl, base = flow, None
            else:
                rows, cols = _phase_index(h, k, device), _phase_index(w, k, device)
                fl = flow.index_select(2, rows).index_select(3, cols)
                base = base_grid(n, h, w, device, dtype).index_select(2, rows).index_select(3, cols)
            grid0 = sampling_grid(fl[:, :2], h, w, base)
            grid1 = sampling_grid(fl[:, 2:4], h, w, base)
            warped = (sample(img0, grid0), sample(img1, grid1), sample(f0, grid0), sample(f1, grid1))
            parts = [F.avg_pool2d(p, 2) for p in warped] + [
                      tplane(h // k, w // k),
                      F.interpolate(y[:, 4:], scale_factor=2, mode="bilinear", align_corners=False),
                      F.avg_pool2d(fl, 2) * (1.0 / k)]
            y = block.run_small(parts)
            flow.add_(F.interpolate(y[:, :4], scale_factor=k, mode="bilinear", align_corners=False), alpha=k)
        # flow scale < 1: the last block ran below full resolution; its mask is upscaled
        mask = F.interpolate(y[:, 4:5], scale_factor=k, mode="bilinear", align_corners=False)
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
