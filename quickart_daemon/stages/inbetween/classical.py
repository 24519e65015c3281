"""Classical pieces of the in-between stage (numpy + OpenCV, no weights needed).

* premultiplied RGBA helpers: every warp and blend happens on premultiplied colour, so a
  line on transparency moves as a line and fades without a grey or dark fringe;
* dense optical flow (OpenCV DIS) in both directions, on the keys composited over white;
* :func:`classical_inbetween`: the fallback when the RIFE weights are not installed:
  backward warps with the flows scaled to time t, blended with occlusion-aware weights from
  a forward-backward consistency check;
* :func:`pair_check`: the safety rails (duplicate keys, cuts).
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np


def premultiply(rgba: np.ndarray) -> np.ndarray:
    """uint8 RGBA -> float32 premultiplied RGBA in [0, 1]."""
    f = rgba.astype(np.float32) / 255.0
    f[..., :3] *= f[..., 3:4]
    return f


def unpremultiply(p: np.ndarray) -> np.ndarray:
    """float premultiplied RGBA -> uint8 RGBA (colour where alpha is 0 is 0)."""
    p = np.clip(p, 0.0, 1.0)
    alpha = p[..., 3:4]
    rgb = np.where(alpha > 1e-6, p[..., :3] / np.maximum(alpha, 1e-6), 0.0)
    return np.clip(np.concatenate([np.minimum(rgb, 1.0), alpha], axis=2) * 255.0 + 0.5, 0, 255).astype(np.uint8)


def over_white(p: np.ndarray) -> np.ndarray:
    """Premultiplied RGBA -> RGB composited over white (what flow estimation looks at)."""
    return p[..., :3] + (1.0 - p[..., 3:4])


def _grey(p: np.ndarray) -> np.ndarray:
    return cv2.cvtColor((over_white(p) * 255.0 + 0.5).astype(np.uint8), cv2.COLOR_RGB2GRAY)


def dis_flow(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Flow from premultiplied a to b (a(x) ~ b(x + F(x))), float32 (H, W, 2), in pixels."""
    dis = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_MEDIUM)
    return dis.calc(_grey(a), _grey(b), None)


def _grid(h: int, w: int) -> tuple[np.ndarray, np.ndarray]:
    return np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32))


def backward_warp(img: np.ndarray, flow: np.ndarray) -> np.ndarray:
    """out(x) = img(x + flow(x)), bilinear, border replicated."""
    h, w = flow.shape[:2]
    gx, gy = _grid(h, w)
    out = cv2.remap(img.astype(np.float32), gx + flow[..., 0], gy + flow[..., 1], cv2.INTER_LINEAR,
                    borderMode=cv2.BORDER_REPLICATE)
    return out.reshape(img.shape[:2] + img.shape[2:])


def visibility(f01: np.ndarray, f10: np.ndarray, tol: float = 1.5) -> np.ndarray:
    """1 where a pixel of frame 0 has a consistent match in frame 1 (forward-backward check)."""
    back = backward_warp(f10, f01)
    err = np.linalg.norm(f01 + back, axis=2)
    mag = np.linalg.norm(f01, axis=2) + np.linalg.norm(back, axis=2)
    return (err < tol + 0.05 * mag).astype(np.float32)


@dataclass
class Flows:
    f01: np.ndarray
    f10: np.ndarray
    v0: np.ndarray  # visibility of frame 0 pixels in frame 1
    v1: np.ndarray


def flows(a: np.ndarray, b: np.ndarray) -> Flows:
    f01, f10 = dis_flow(a, b), dis_flow(b, a)
    return Flows(f01, f10, visibility(f01, f10), visibility(f10, f01))


def prealign(a: np.ndarray, b: np.ndarray, fl: Flows, t: float, smooth: float = 6.0) -> tuple[np.ndarray, np.ndarray]:
    """Both keys moved towards time t along smoothed flows (F_t0 ~ -t F_01, F_t1 ~ -(1-t) F_10)."""
    f01 = cv2.GaussianBlur(fl.f01, (0, 0), smooth) if smooth else fl.f01
    f10 = cv2.GaussianBlur(fl.f10, (0, 0), smooth) if smooth else fl.f10
    return backward_warp(a, -t * f01), backward_warp(b, -(1.0 - t) * f10)


def classical_inbetween(a: np.ndarray, b: np.ndarray, t: float, fl: Flows | None = None) -> np.ndarray:
    """The frame at t between premultiplied keys a and b: flow warps with occlusion-aware blending."""
    fl = fl or flows(a, b)
    wa, wb = backward_warp(a, -t * fl.f01), backward_warp(b, -(1.0 - t) * fl.f10)
    va = backward_warp(fl.v0, -t * fl.f01)[..., None]
    vb = backward_warp(fl.v1, -(1.0 - t) * fl.f10)[..., None]
    wgt_a, wgt_b = (1.0 - t) * (va + 1e-3), t * (vb + 1e-3)
    return (wa * wgt_a + wb * wgt_b) / (wgt_a + wgt_b)


# -- safety rails -----------------------------------------------------------------------------

@dataclass
class PairCheck:
    verdict: str  # "ok", "duplicate" or "cut"
    detail: str
    motion: float  # median flow magnitude over content pixels (pixels), 0 when not measured


def _hist(p: np.ndarray, mask: np.ndarray) -> np.ndarray:
    rgb = (np.clip(over_white(p), 0, 1) * 7.999).astype(np.int32)
    idx = rgb[..., 0] * 64 + rgb[..., 1] * 8 + rgb[..., 2]
    h = np.bincount(idx[mask], minlength=512).astype(np.float64)
    return h / max(h.sum(), 1.0)


def pair_check(a: np.ndarray, b: np.ndarray, fl: Flows | None = None,
               duplicate_tol: float = 1.0 / 255, cut_share: float = 0.35) -> tuple[PairCheck, Flows | None]:
    """Duplicate keys (the same drawing twice) and cuts (keys that share too little content).

    Duplicate: the mean absolute difference of premultiplied RGBA is below ``duplicate_tol``
    and fewer than 0.1 % of the pixels differ by more than 8 levels.
    Cut: over the pixels where either key has content (alpha > 0 and not white), the share that
    the other key explains after dense flow alignment, or the colour-histogram intersection,
    whichever is higher, is below ``cut_share``. Large motion of the same drawing keeps its
    colours (histogram intersection stays high), a new shot does not.
    """
    diff = np.abs(a - b)
    if diff.mean() < duplicate_tol and (diff.max(axis=2) > 8 / 255).mean() < 0.001:
        return PairCheck("duplicate", f"keys differ by {diff.mean() * 255:.2f} levels on average", 0.0), fl
    content_a = (a[..., 3] > 0.02) & (over_white(a).min(axis=2) < 0.98)
    content_b = (b[..., 3] > 0.02) & (over_white(b).min(axis=2) < 0.98)
    content = content_a | content_b
    if content.sum() < 16:
        return PairCheck("ok", "keys are (almost) empty", 0.0), fl
    hist = float(np.minimum(_hist(a, content_a), _hist(b, content_b)).sum()) if content_a.any() and content_b.any() else 0.0
    fl = fl or flows(a, b)
    wb = backward_warp(b, fl.f01)
    explained = (np.abs(wb - a).max(axis=2) < 0.1)[content_a].mean() if content_a.any() else 0.0
    motion = float(np.median(np.linalg.norm(fl.f01, axis=2)[content])) if content.any() else 0.0
    share = max(hist, float(explained))
    if share < cut_share:
        return PairCheck("cut", f"the keys share {share:.0%} of their content (colours {hist:.0%}, "
                                f"flow-aligned {explained:.0%})", motion), fl
    return PairCheck("ok", f"shared content {share:.0%}", motion), fl
