"""Held-out evaluation of the refine methods (used by tests/test_refine.py and bench/bench_refine.py).

For every held-out pair (generator seed `data.HELD_OUT_SEED`, never used in training) and
every method it measures, against the clean target:

* ink F1 / precision / recall at 1-pixel tolerance (output black ink vs target ink);
* trace F1 (output colour-trace lines vs target trace lines, any colour);
* the fraction of the scan's gaps closed (`metrics.gaps_closed`; the gaps are the stretches
  of target centre line that the raw scan, thresholded at mid-grey, leaves empty);
* spurious components (output line pieces far from every target line).

Methods: ``raw`` (the scan thresholded at mid-grey: ink = dark and grey), ``adaptive``
(OpenCV's Gaussian adaptive threshold, the textbook baseline), ``classical``, ``learned``
(the stage's model, `MODEL_NAME`) and any other learned model by its manifest name (e.g.
``refine-v1``, to compare models).

`SETS` names the evaluation sets: the generator's held-out seed, each rough family of
`rough_families` on held-out drawing seeds (the held-out family among them) and real line
drawings (`clipart`: clip art and real cartoon line art; empty when their packages or the
development set are missing); `pairs_of` builds one.
"""

from __future__ import annotations

import time
from pathlib import Path

import cv2
import numpy as np

from ...stages.refine import classical
from . import clipart, data, metrics, rough_families
from ...stages.refine.colours import CHROMA_RATIO

METHODS = ("raw", "adaptive", "classical", "learned")
#: evaluation sets: the generator's held-out seed, the rough families, real drawings
SETS = ("generator",) + rough_families.FAMILIES + clipart.KINDS


def role(name: str) -> str:
    """How an evaluation set relates to training: 'trained' (the family is in training, the
    drawings are not), 'held out' (neither is) or 'real' (real drawings, held-out capture)."""
    if name in clipart.KINDS:
        return "real"
    return "held out" if name == rough_families.HELD_OUT_FAMILY else "trained"


def pairs_of(name: str, size: tuple[int, int] = (960, 540), n: int = 4) -> list[data.Pair]:
    """`n` held-out pairs of evaluation set `name` (see `SETS`)."""
    if name == "generator":
        return data.held_out_pairs(size, n)
    if name in clipart.KINDS:
        return clipart.real_pairs(name, size, n)
    return data.family_held_out_pairs(name, size, n)


def _grey_and_coloured(rgb: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    f = rgb.astype(np.float32)
    mx, mn = f.max(2), f.min(2)
    dark = 255.0 - mn
    return cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY), (mx - mn) > CHROMA_RATIO * np.maximum(dark, 1.0)


def raw_lines(rgb: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(ink, any line) masks of the scan thresholded at mid-grey."""
    grey, coloured = _grey_and_coloured(rgb)
    line = grey < 128
    return line & ~coloured, line


def adaptive_lines(rgb: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    grey, coloured = _grey_and_coloured(rgb)
    block = 2 * max(5, min(rgb.shape[:2]) // 40) + 1
    line = cv2.adaptiveThreshold(grey, 255, cv2.ADAPTIVE_THRESH_GAUSSIAN_C, cv2.THRESH_BINARY_INV, block, 10) > 0
    return line & ~coloured, line


def output_lines(rgba: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(ink, trace, any line) masks of a refine output (on white or on transparency)."""
    a = rgba[..., 3].astype(np.float32) / 255.0
    rgb = rgba[..., :3].astype(np.float32) * a[..., None] + 255.0 * (1 - a[..., None])
    mx, mn = rgb.max(2), rgb.min(2)
    ink = mx < 128
    trace = ((mx - mn) > 100) & ~ink
    return ink, trace, ink | trace


def score(pair: data.Pair, ink: np.ndarray, line: np.ndarray, trace: np.ndarray | None,
          gaps: list[np.ndarray]) -> dict[str, float]:
    f = metrics.line_f1(ink, pair.ink >= 0.5)
    out = {"f1": f["f1"], "precision": f["precision"], "recall": f["recall"],
           "gaps_closed": metrics.gaps_closed(line, gaps),
           "spurious": metrics.spurious_components(line, (pair.ink >= 0.5) | (pair.trace >= 0.5))}
    out["trace_f1"] = metrics.line_f1(trace, pair.trace >= 0.5)["f1"] if trace is not None else float("nan")
    return out


def evaluate(pairs: list[data.Pair], methods=METHODS, models_dir: Path | None = None, device: str = "cpu",
             keep_outputs: bool = False) -> dict:
    """Mean figures per method over `pairs`, plus the outputs when `keep_outputs`."""
    from ...weights import verified_path
    from ...stages.refine import MODEL_NAME, learned_coverages, net
    models = {m: net.load(verified_path(MODEL_NAME if m == "learned" else m, models_dir or Path("models")), device)
              for m in methods if m not in ("raw", "adaptive", "classical")}
    rows: dict[str, list[dict]] = {m: [] for m in methods}
    outputs: dict[str, list[np.ndarray]] = {m: [] for m in methods}
    for pair in pairs:
        gaps = metrics.gap_segments(raw_lines(pair.rough)[1], pair.ink >= 0.5)
        frame = np.dstack([pair.rough, np.full(pair.ink.shape, 255, np.uint8)])
        for m in methods:
            t0 = time.perf_counter()
            if m == "raw":
                ink, line = raw_lines(pair.rough)
                trace, img = line & ~ink, None
            elif m == "adaptive":
                ink, line = adaptive_lines(pair.rough)
                trace, img = line & ~ink, None
            else:
                if m == "classical":
                    img = classical.cleanup(frame).rgba
                else:
                    img = classical.compose(learned_coverages(models[m], frame, device), pair.ink.shape)
                ink, trace, line = output_lines(img)
            r = score(pair, ink, line, trace, gaps)
            r["seconds"] = time.perf_counter() - t0
            r["gaps"] = len(gaps)
            rows[m].append(r)
            if keep_outputs:
                outputs[m].append(img if img is not None else _mask_image(ink, line))
    table = {m: {k: float(np.mean([r[k] for r in rs])) for k in rs[0]} for m, rs in rows.items()}
    return {"table": table, "outputs": outputs} if keep_outputs else {"table": table}


def _mask_image(ink: np.ndarray, line: np.ndarray) -> np.ndarray:
    img = np.full(ink.shape + (4,), 255, np.uint8)
    img[line & ~ink, :3] = (200, 60, 60)
    img[ink, :3] = 0
    return img


def format_table(table: dict) -> str:
    cols = ("f1", "precision", "recall", "trace_f1", "gaps_closed", "spurious")
    lines = [f"{'method':<10} " + " ".join(f"{c:>11}" for c in cols)]
    for m, r in table.items():
        lines.append(f"{m:<10} " + " ".join(f"{r[c]:>11.3f}" if c != "spurious" else f"{r[c]:>11.1f}" for c in cols))
    return "\n".join(lines)
