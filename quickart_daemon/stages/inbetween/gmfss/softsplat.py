"""Softmax splatting (forward warping) in plain torch.

Niklaus & Liu, "Softmax Splatting for Video Frame Interpolation", CVPR 2020. The semantics
are those of the published CUDA kernel (sniklaus/softmax-splatting ``softsplat.py``, as
shipped in vsgmfss_fortuna 1.0.0), written here with ``index_add_`` so it runs anywhere:

* every source pixel (x, y) goes to (x + u, y + v); a non-finite target is dropped;
* its value is added to the 4 integer neighbours of the target with bilinear weights
  (``(1 - dx)(1 - dy)`` etc.); neighbours outside the frame are dropped (no clamping);
* mode ``soft``: the splatted planes are ``x * exp(m)`` and ``exp(m)`` itself; the output is
  their ratio with ``1e-7`` added to the denominator (``addeps``), so pixels nothing lands on
  come out 0. The metric is not clamped (GMFSS's metric is ``10 * tanh``, so exp <= 2.2e4);
* the arithmetic is float32 whatever the input dtype, the result is cast back.
"""

from __future__ import annotations

import torch

#: added to the splatted weight before dividing (the kernel's default ``addeps``)
NORMALIZE_EPS = 1e-7


def splat_sum(values: torch.Tensor, flow: torch.Tensor) -> torch.Tensor:
    """Summation splatting: each pixel of `values` (N, C, H, W) added bilinearly at its
    position moved by `flow` (N, 2, H, W; x then y, pixels). Float32 in, float32 out."""
    n, c, h, w = values.shape
    gy, gx = torch.meshgrid(torch.arange(h, device=flow.device, dtype=flow.dtype),
                            torch.arange(w, device=flow.device, dtype=flow.dtype), indexing="ij")
    tx = gx + flow[:, 0]  # (N, H, W) target positions
    ty = gy + flow[:, 1]
    finite = torch.isfinite(tx) & torch.isfinite(ty)
    tx = torch.where(finite, tx, torch.zeros_like(tx))
    ty = torch.where(finite, ty, torch.zeros_like(ty))
    x0, y0 = torch.floor(tx), torch.floor(ty)
    fx, fy = tx - x0, ty - y0
    # pixel-major layout (N*H*W, C): one index per pixel moves all its channels at once
    src = values.permute(0, 2, 3, 1).reshape(n * h * w, c)
    out = values.new_zeros(n * h * w, c)
    batch_base = (torch.arange(n, device=flow.device) * (h * w)).view(n, 1, 1)
    for dx, dy, weight in ((0, 0, (1 - fx) * (1 - fy)), (1, 0, fx * (1 - fy)),
                           (0, 1, (1 - fx) * fy), (1, 1, fx * fy)):
        cx, cy = x0 + dx, y0 + dy
        # bounds are tested in float, so a huge finite flow cannot overflow the integer cast
        inside = finite & (cx >= 0) & (cx < w) & (cy >= 0) & (cy < h)
        index = batch_base + cy.clamp(0, h - 1).long() * w + cx.clamp(0, w - 1).long()
        # dropped neighbours add an exact 0 (where, not a multiply, so nothing non-finite leaks);
        # no boolean indexing: no host sync on CUDA
        contrib = torch.where(inside.reshape(-1, 1), src * weight.reshape(-1, 1), src.new_zeros(()))
        out.index_add_(0, index.reshape(-1), contrib)
    return out.view(n, h, w, c).permute(0, 3, 1, 2)


def softsplat(tenIn: torch.Tensor, tenFlow: torch.Tensor, tenMetric: torch.Tensor | None,
              strMode: str = "soft") -> torch.Tensor:  # noqa: N803 (the published signature)
    """Forward-warp `tenIn` (N, C, H, W) by `tenFlow` (N, 2, H, W).

    Modes as published: ``sum``, ``avg``, ``linear`` (weights ``metric``), ``soft`` (weights
    ``exp(metric)``), the last three optionally suffixed ``-addeps`` (default), ``-zeroeps``
    (an empty pixel divides by 1) or ``-clipeps`` (the weight clipped to at least 1e-7).
    GMFSS uses ``soft``: ``sum(w * exp(m) * x) / (sum(w * exp(m)) + 1e-7)``."""
    kind, _, eps_mode = strMode.partition("-")
    if kind not in ("sum", "avg", "linear", "soft"):
        raise ValueError(f"unknown splatting mode {strMode!r}")
    if (tenMetric is None) != (kind in ("sum", "avg")):
        raise ValueError(f"mode {kind!r} {'needs' if tenMetric is None else 'takes no'} metric")
    orig_dtype = tenIn.dtype
    values, flow = tenIn.float(), tenFlow.float()
    if kind == "avg":
        values = torch.cat([values, values.new_ones(values.shape[0], 1, *values.shape[2:])], 1)
    elif kind == "linear":
        metric = tenMetric.float()
        values = torch.cat([values * metric, metric], 1)
    elif kind == "soft":
        weight = tenMetric.float().exp()
        values = torch.cat([values * weight, weight], 1)
    out = splat_sum(values, flow)
    if kind != "sum":
        norm = out[:, -1:]
        if eps_mode in ("", "addeps"):
            norm = norm + NORMALIZE_EPS
        elif eps_mode == "zeroeps":
            norm = torch.where(norm == 0.0, torch.ones_like(norm), norm)
        elif eps_mode == "clipeps":
            norm = norm.clip(NORMALIZE_EPS, None)
        else:
            raise ValueError(f"unknown normalisation {strMode!r}")
        out = out[:, :-1] / norm
    return out.to(orig_dtype)


#: the name the softmax-splatting repository exports
FunctionSoftsplat = softsplat
