"""Paper flattening and line-colour separation, shared by the classical and learned paths.

A scan is first divided by an estimate of its paper (a blurred maximum over a coarse grid),
so paper tint, yellowing and uneven scanner light become pure white and every later
threshold is relative to the local paper. Each dark pixel is then given a class: black ink
(grey, low chroma) or one of the colour-trace lines (red, blue, green) by its hue.
"""

from __future__ import annotations

import cv2
import numpy as np

#: output colours (RGB) of the line classes; index 0 is black ink
CLASS_NAMES = ("ink", "red", "blue", "green")
CLASS_RGB = {"ink": (0, 0, 0), "red": (220, 30, 30), "blue": (30, 60, 220), "green": (30, 160, 60)}
#: hue centres (OpenCV degrees / 2, 0..180) of the trace colours
_HUES = {"red": 0.0, "green": 60.0, "blue": 115.0}
#: a pixel is a colour-trace pixel when its chroma (max - min of the flattened RGB)
#: exceeds this fraction of its darkness
CHROMA_RATIO = 0.45
#: the paper estimate never falls below this fraction of the sheet's typical paper level
PAPER_FLOOR = 0.7


def flatten_paper(rgb: np.ndarray, cell: int | None = None) -> np.ndarray:
    """RGB float32 in [0, 1] with the paper divided out (paper -> 1.0), per channel.

    The paper estimate is a 7x7 max filter over a grid ~1/120 of the frame's short side
    (wider than any line), floored at PAPER_FLOOR of the typical paper, blurred and scaled
    back up."""
    h, w = rgb.shape[:2]
    cell = cell or max(4, min(h, w) // 120)
    small = cv2.resize(rgb, (max(1, w // cell), max(1, h // cell)), interpolation=cv2.INTER_AREA)
    k = cv2.getStructuringElement(cv2.MORPH_RECT, (7, 7))
    paper = cv2.dilate(small, k).astype(np.float32)
    # paper is never darker than PAPER_FLOOR of the sheet's typical paper: a large solid
    # black (hair, a night sky) stays black instead of being taken for dark paper
    typical = np.percentile(paper.reshape(-1, paper.shape[2] if paper.ndim == 3 else 1), 75, axis=0)
    np.maximum(paper, PAPER_FLOOR * typical.astype(np.float32), out=paper)
    paper = cv2.GaussianBlur(paper, (0, 0), 1.5)
    paper = cv2.resize(paper, (w, h), interpolation=cv2.INTER_LINEAR)
    np.maximum(paper, 24.0, out=paper)  # a black frame edge is not paper
    out = rgb.astype(np.float32)
    out /= paper
    np.minimum(out, 1.0, out=out)
    return out


def darkness_and_chroma(flat: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(darkness, chroma) float32 in [0, 1] of a flattened image."""
    r, g, b = cv2.split(flat)
    mx = cv2.max(cv2.max(r, g), b)
    mn = cv2.min(cv2.min(r, g), b)
    return 1.0 - mn, mx - mn


def trace_class(flat: np.ndarray) -> np.ndarray:
    """uint8 class per pixel by hue: 1 red, 2 blue, 3 green (0 where no hue applies)."""
    hsv = cv2.cvtColor(np.ascontiguousarray(flat), cv2.COLOR_RGB2HSV)
    hue = hsv[..., 0] / 2.0  # OpenCV float hue is 0..360 -> 0..180
    out = np.zeros(flat.shape[:2], np.uint8)
    best = np.full(flat.shape[:2], 1e9, np.float32)
    for idx, name in ((1, "red"), (2, "blue"), (3, "green")):
        d = np.abs(hue - _HUES[name])
        d = np.minimum(d, 180.0 - d)
        better = d < best
        out[better] = idx
        best[better] = d[better]
    return out


def vote_trace_class(cls: np.ndarray, chroma: np.ndarray, ys: np.ndarray, xs: np.ndarray, sigma: float,
                     default: int = 0) -> np.ndarray:
    """For each pixel (ys[i], xs[i]), the colour-line class (1 red, 2 blue, 3 green) with the most
    colour evidence nearby: `chroma` of the pixels labelled that class in `cls`, blurred by `sigma`.
    Pixels with no evidence near them get `default`."""
    best = np.zeros(len(ys), np.float32)
    winner = np.full(len(ys), default, np.uint8)
    for idx in (1, 2, 3):
        if not (cls == idx).any():
            continue
        score = cv2.GaussianBlur(np.where(cls == idx, chroma, 0.0).astype(np.float32), (0, 0), sigma)[ys, xs]
        better = score > best
        winner[better], best[better] = idx, score[better]
    return winner
