"""The learned line refiner: a small fully-convolutional U-Net and its tiled inference.

Input: the scan as RGB in [0, 1] after paper flattening (see `classical.flatten_paper`), so
paper tint and uneven scan lighting never reach the network. The first layer folds 2x2
pixels into channels (pixel unshuffle) and the last unfolds them again, so the network's
body runs at half resolution: that is what keeps a 1080p frame near a second on two CPU
cores. Output: two coverage maps in [0, 1]: black ink and colour-trace line (whatever its
hue; the caller assigns red / blue / green from the input's colour).

`load(path, device)` reads a state dict (``torch.load(..., weights_only=True)``);
`refine(model, rgb, device)` runs it tiled with overlapping, feathered tiles, so frames of
any size come out without seams.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import nn

#: bump when the architecture changes; stored next to the weights in the manifest
VERSION = 1
#: tile size and overlap (pixels, full resolution) for inference
TILE = 1024
OVERLAP = 64
#: every tile side must be a multiple of this (unshuffle 2 x two 2x poolings)
MULTIPLE = 8


def _block(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, padding=1), nn.ReLU(inplace=True),
                         nn.Conv2d(cout, cout, 3, padding=1), nn.ReLU(inplace=True))


class LineRefiner(nn.Module):
    """U-Net at half resolution: 12 -> c1 -> c2 -> c3 (dilated) -> c2 -> c1 -> 2x4 -> shuffle."""

    def __init__(self, c1: int = 32, c2: int = 48, c3: int = 64):
        super().__init__()
        self.widths = (c1, c2, c3)
        self.unshuffle = nn.PixelUnshuffle(2)
        self.enc1 = _block(12, c1)
        self.enc2 = _block(c1, c2)
        self.mid = nn.Sequential(nn.Conv2d(c2, c3, 3, padding=1), nn.ReLU(inplace=True),
                                 nn.Conv2d(c3, c3, 3, padding=2, dilation=2), nn.ReLU(inplace=True),
                                 nn.Conv2d(c3, c3, 3, padding=1), nn.ReLU(inplace=True))
        self.up2 = nn.Conv2d(c3, c2, 1)
        self.dec2 = _block(2 * c2, c2)
        self.up1 = nn.Conv2d(c2, c1, 1)
        self.dec1 = _block(2 * c1, c1)
        self.head = nn.Conv2d(c1, 2 * 4, 3, padding=1)
        self.shuffle = nn.PixelShuffle(2)
        self.pool = nn.MaxPool2d(2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: (N, 3, H, W), H and W multiples of 8 -> logits (N, 2, H, W)."""
        e1 = self.enc1(self.unshuffle(x))
        e2 = self.enc2(self.pool(e1))
        m = self.mid(self.pool(e2))
        d2 = self.dec2(torch.cat([nn.functional.interpolate(self.up2(m), scale_factor=2.0, mode="nearest"), e2], 1))
        d1 = self.dec1(torch.cat([nn.functional.interpolate(self.up1(d2), scale_factor=2.0, mode="nearest"), e1], 1))
        return self.shuffle(self.head(d1))


def parameter_count(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def load(path: Path, device: str = "cpu") -> LineRefiner:
    """The refiner with the weights of `path` (a plain state dict), in eval mode on `device`."""
    state = torch.load(path, map_location="cpu", weights_only=True)
    model = LineRefiner()
    model.load_state_dict(state)
    # channels-last runs the convolutions about a quarter faster on CPUs (oneDNN) and on GPUs
    return model.to(device, memory_format=torch.channels_last).eval()


def _layout(size: int, max_tile: int, overlap: int) -> tuple[int, list[int]]:
    """Tile length (a multiple of MULTIPLE) and start offsets covering `size` with the fewest
    tiles of at most `max_tile`, neighbours overlapping by at least `overlap`."""
    if size <= max_tile:
        return size, [0]
    n = -(-(size - overlap) // (max_tile - overlap))
    length = -(-(size + (n - 1) * overlap) // n)
    length = min(size, length + (-length % MULTIPLE))
    starts = [round(i * (size - length) / (n - 1)) for i in range(n)]
    return length, starts


def _weights(length: int, start: int, starts: list[int]) -> np.ndarray:
    """1-D blending weights of one tile: 1 inside, and over each overlap with a neighbour a
    ramp that is 0 on the quarter nearest this tile's own edge (where zero padding shows)
    and 1 on the quarter nearest the neighbour's edge; neighbours' weights sum to 1."""
    w = np.ones(length, np.float32)
    i = starts.index(start)
    if i > 0:  # overlap with the previous tile: [start, prev_end)
        ov = starts[i - 1] + length - start
        x = np.arange(ov, dtype=np.float32)
        w[:ov] = np.clip((x - ov / 4) / max(ov / 2, 1), 0, 1)
    if i < len(starts) - 1:  # overlap with the next tile: [next_start, end)
        ov = start + length - starts[i + 1]
        x = np.arange(ov, dtype=np.float32)
        w[length - ov:] = np.minimum(w[length - ov:], 1 - np.clip((x - ov / 4) / max(ov / 2, 1), 0, 1))
    return w


@torch.inference_mode()
def refine(model: LineRefiner, rgb: np.ndarray, device: str = "cpu", tile: int = TILE,
           overlap: int = OVERLAP) -> np.ndarray:
    """Coverage (H, W, 2) float32 in [0, 1] (ink, trace) of an RGB float32 image in [0, 1].

    Frames larger than `tile` run as the fewest overlapping tiles that cover them; across
    each overlap the outputs cross-fade, and the quarter of the overlap next to a tile's own
    border (where the network sees zero padding) is never used, so no seam shows."""
    h, w = rgb.shape[:2]
    ph, pw = -h % MULTIPLE, -w % MULTIPLE
    img = np.pad(rgb, ((0, ph), (0, pw), (0, 0)), mode="edge") if (ph or pw) else rgb
    H, W = img.shape[:2]
    tile = max(4 * overlap, tile - tile % MULTIPLE)
    th, ys = _layout(H, tile, overlap)
    tw, xs = _layout(W, tile, overlap)
    x = torch.from_numpy(np.ascontiguousarray(img)).permute(2, 0, 1)[None]  # NCHW view, channels last
    if len(ys) == 1 and len(xs) == 1:
        return torch.sigmoid(model(x.to(device)))[0].permute(1, 2, 0).float().cpu().numpy()[:h, :w]
    out = np.zeros((H, W, 2), np.float32)
    for y0 in ys:
        wy = _weights(th, y0, ys)
        for x0 in xs:
            t = x[:, :, y0:y0 + th, x0:x0 + tw].to(device, memory_format=torch.channels_last)
            p = torch.sigmoid(model(t))[0].permute(1, 2, 0).float().cpu().numpy()
            wt = (wy[:, None] * _weights(tw, x0, xs)[None, :])[..., None]
            out[y0:y0 + th, x0:x0 + tw] += p * wt
    return out[:h, :w]
