"""Line-art quality figures against the generator's clean target.

* `line_f1`: precision / recall / F1 of predicted line pixels against target line pixels,
  each counted as a hit when the other side has a line pixel within `tol` pixels
  (Chebyshev distance, a (2 tol + 1)^2 square), the usual tolerant F1 of line-drawing work.
* `gaps`: breaks in the scan. The target's centre lines are thinned to one pixel; the
  stretches of centre line where the raw scan shows no line within 1 pixel are the gaps
  of the drawing (pencil lifts, faint pressure). A method closes a gap when its output
  has a line pixel within 1 pixel of every pixel of that stretch.
* `spurious_components`: connected pieces of output line (8-connected) with no pixel
  within 2 pixels of any target line: specks, dust, construction lines.
"""

from __future__ import annotations

import cv2
import numpy as np

from ...stages.refine.skeleton import thin


def _near(mask: np.ndarray, tol: int) -> np.ndarray:
    if tol <= 0:
        return mask.astype(bool)
    k = np.ones((2 * tol + 1, 2 * tol + 1), np.uint8)
    return cv2.dilate(mask.astype(np.uint8), k).astype(bool)


def line_f1(pred: np.ndarray, target: np.ndarray, tol: int = 1) -> dict[str, float]:
    pred, target = pred.astype(bool), target.astype(bool)
    np_, nt = int(pred.sum()), int(target.sum())
    precision = float((pred & _near(target, tol)).sum() / np_) if np_ else 0.0
    recall = float((target & _near(pred, tol)).sum() / nt) if nt else 1.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"precision": precision, "recall": recall, "f1": f1}


def gap_segments(raw_lines: np.ndarray, target: np.ndarray, min_len: int = 2) -> list[np.ndarray]:
    """Stretches (arrays of (y, x)) of the target's centre line that `raw_lines` misses."""
    centre = thin(target.astype(np.uint8)).astype(bool)
    missing = centre & ~_near(raw_lines, 1)
    n, lab = cv2.connectedComponents(missing.astype(np.uint8), connectivity=8)
    ys, xs = np.nonzero(lab)
    order = np.argsort(lab[ys, xs], kind="stable")
    ys, xs, ids = ys[order], xs[order], lab[ys, xs][order]
    cuts = np.flatnonzero(np.diff(ids)) + 1
    segs = [np.stack([y, x], 1) for y, x in zip(np.split(ys, cuts), np.split(xs, cuts))]
    return [s for s in segs if len(s) >= min_len]


def gaps_closed(pred: np.ndarray, segments: list[np.ndarray]) -> float:
    if not segments:
        return 1.0
    near = _near(pred, 1)
    return float(np.mean([near[s[:, 0], s[:, 1]].all() for s in segments]))


def spurious_components(pred: np.ndarray, target_any: np.ndarray, tol: int = 2) -> int:
    n, lab = cv2.connectedComponents(pred.astype(np.uint8), connectivity=8)
    if n <= 1:
        return 0
    touching = np.unique(lab[_near(target_any, tol) & (lab > 0)])
    return int(n - 1 - len(touching))
