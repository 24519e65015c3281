"""`refine`: rough pencil keys -> clean line art (black ink, colour-trace lines in their colours).

Two methods behind one stage:

* ``classical`` (`classical.py`): paper flattening, adaptive threshold, despeckle, end-point
  gap closing, spur pruning, width normalisation, anti-aliased rendering. Fast on a CPU.
* ``learned`` (`net.py`): a small U-Net trained in this repository on pairs from several
  independent rough-makers (training code: `train.py`, `data.py`, `drawings.py`,
  `rough_families.py`, never imported here; weights ``models/refine-v2.pt``, manifest entry
  ``refine-v2``),
  run tiled on ``ctx.device``. Its ink and trace coverages are coloured by the input's hue
  (red, blue or green trace lines) and, when ``line-width`` is set, redrawn at that width.
* ``auto`` (default): learned when its weights are present and match the manifest, else
  classical, with a warning in the report.

The output has the input's size: black ink on white (``background: white``) or on
transparency (``background: transparent``).
"""

from __future__ import annotations

import time

import cv2
import numpy as np

from ...errors import ModelLoadError, StageFailed
from ..base import Frames, Option, StageContext, StageResult, StageSpec
from . import classical
from .colours import CHROMA_RATIO, CLASS_NAMES, darkness_and_chroma, flatten_paper, trace_class, vote_trace_class

MODEL_NAME = "refine-v2"
METHODS = ("classical", "learned", "auto")
#: a scan pixel whose chroma exceeds this fraction of its darkness is a colour line, not ink
INK_NEVER_ABOVE = 0.55


def _method(value: str) -> str:
    value = str(value).strip().lower()
    if value not in METHODS:
        raise ValueError(f"method must be one of {', '.join(METHODS)}, not {value!r}")
    return value


def _background(value: str) -> str:
    value = str(value).strip().lower()
    if value not in ("white", "transparent"):
        raise ValueError(f"background must be white or transparent, not {value!r}")
    return value


def learned_coverages(model, frame: np.ndarray, device: str) -> dict[str, tuple[np.ndarray, tuple[int, int, int, int]]]:
    """Per-class coverage patches of the learned refiner for one RGBA/RGB frame."""
    from .net import refine
    rgb = classical.to_rgb(frame)
    flat = flatten_paper(rgb)
    cov = refine(model, flat, device)
    h, w = rgb.shape[:2]
    box = (0, h, 0, w)
    # firm up the edges (ghosts of construction lines below a quarter coverage go) and drop
    # pieces too small to be a drawn line
    cov -= 0.25
    cov *= 2.0
    np.maximum(cov, 0.0, out=cov)  # in place: np.clip costs several times more on a 1080p frame
    np.minimum(cov, 1.0, out=cov)
    min_area = max(4, int(12 * (min(h, w) / 540.0) ** 2))
    for c in range(2):
        solid = (cov[..., c] >= 0.5).astype(np.uint8)
        n, lab, stats, _ = cv2.connectedComponentsWithStats(solid, connectivity=8)
        small = stats[:, cv2.CC_STAT_AREA] < min_area
        small[0] = False
        if small.any():
            cov[..., c][small[lab]] = 0.0
    ink = cov[..., 0]
    trace = cov[..., 1]
    _recolour_vivid_ink(flat, ink, trace)
    out = {"ink": (ink, box)}
    ys, xs = np.nonzero(trace >= 0.02)
    if len(ys):
        # colour of each trace pixel: the hue of the coloured scan pixels around it
        dark, chroma = darkness_and_chroma(flat)
        coloured = (chroma > CHROMA_RATIO * np.maximum(dark, 1e-3)) & (dark > 0.1)
        cls = np.zeros((h, w), np.uint8)
        cy, cx = np.nonzero(coloured)
        if len(cy):
            cls[cy, cx] = trace_class(flat[cy, cx][None])[0]
        # red when no colour evidence is near
        winner = vote_trace_class(cls, chroma, ys, xs, max(1.5, 0.004 * min(h, w)), default=1)
        for idx in (1, 2, 3):
            sel = winner == idx
            if sel.any():
                c = np.zeros((h, w), np.float32)
                c[ys[sel], xs[sel]] = trace[ys[sel], xs[sel]]
                out[CLASS_NAMES[idx]] = (c, box)
    return out


def _recolour_vivid_ink(flat: np.ndarray, ink: np.ndarray, trace: np.ndarray) -> None:
    """In place: a piece of predicted ink drawn almost entirely over strongly coloured scan
    pixels with no graphite on them is a colour line, not ink (the network saw trace colours
    as bright as red and blue pencils; a darker green can fool it). Whole pieces move, so an
    outline that merely runs along a red line stays black."""
    solid = (ink >= 0.5).astype(np.uint8)
    n, lab = cv2.connectedComponents(solid, connectivity=8)
    if n <= 1:
        return
    soft = cv2.GaussianBlur(flat, (0, 0), 1.0)
    dark, chroma = darkness_and_chroma(soft)
    r, g, b = cv2.split(soft)
    ink_evidence = (1.0 - cv2.max(cv2.max(r, g), b)) - classical.INK_CHROMA * chroma
    vivid = (chroma > INK_NEVER_ABOVE * np.maximum(dark, 1e-3)) & (ink_evidence < 0.2)
    total = np.bincount(lab.ravel(), minlength=n)
    hits = np.bincount(lab[vivid], minlength=n)
    move = (hits > 0.7 * np.maximum(total, 1))
    move[0] = False
    if not move.any():
        return
    region = cv2.dilate(move[lab].astype(np.uint8), np.ones((5, 5), np.uint8)).view(bool)
    np.maximum(trace, np.where(region, ink, 0), out=trace)
    ink[region] = 0


def renormalise(covs: dict, width: float, shape: tuple[int, int]) -> dict:
    """Coverages redrawn from their centre lines at `width` pixels (despeckled, gaps closed)."""
    masks = {}
    for name, (c, (y0, y1, x0, x1)) in covs.items():
        m = np.zeros(shape, np.uint8)
        m[y0:y1, x0:x1] = c >= 0.5
        if m.any():
            masks[name] = m
    if not masks:
        return {}
    skels, _, _, solids = classical.skeletons_from_masks(masks, classical.CleanupSettings())
    return {name: classical.with_solid(classical.coverage(sk, width), solids.get(name)) for name, sk in skels.items()}


def is_painted(frame: np.ndarray) -> bool:
    """A finished cel rather than a drawing: it has transparency, and most of its opaque pixels
    survive an erosion (filled areas, not lines). Scans and lines on paper have no transparency;
    lines on transparency are thin and erode away."""
    if frame.ndim != 3 or frame.shape[2] != 4:
        return False
    opaque = frame[..., 3] >= 128
    if opaque.all() or opaque.sum() < 64:
        return False
    k = max(3, int(min(frame.shape[:2]) / 120) | 1)  # wider than a line at this size
    core = cv2.erode(opaque.astype(np.uint8), np.ones((k, k), np.uint8))
    return core.sum() > 0.3 * opaque.sum()


def run(frames: Frames, ctx: StageContext) -> StageResult:
    p = {**SPEC.defaults(), **ctx.params}
    method = _method(p["method"])
    transparent = _background(p["background"]) == "transparent"
    width = float(p["line-width"] or 0)
    if width < 0:
        raise StageFailed(f"refine: line-width must be 0 (as drawn) or a positive number of pixels, not {width}")
    warnings: list[str] = []
    report: dict = {"warnings": warnings}
    model = None
    device = ctx.device or "cpu"
    if method in ("learned", "auto"):
        try:
            from ...weights import load_manifest, verified_path
            path = verified_path(MODEL_NAME, ctx.models_dir)
            import torch
            from . import net
            if device.startswith("cuda") and not torch.cuda.is_available():
                warnings.append(f"refine: device {device} is not available here; the learned refiner ran on the CPU")
                device = "cpu"
            model = net.load(path, device)
            report["models"] = {MODEL_NAME: load_manifest()[MODEL_NAME].sha256}
            method = "learned"
        except ModelLoadError as exc:
            if method == "learned":
                raise StageFailed(f"refine: method learned needs the {MODEL_NAME} weights: {exc}") from None
            warnings.append(f"refine: learned refiner unavailable ({exc}); used the classical cleanup")
            method = "classical"
    report["method"] = method
    report["device"] = device if method == "learned" else "cpu"
    settings = classical.CleanupSettings(threshold=float(p["threshold"]), line_width=width or None,
                                         gap=float(p["gap"]) or None, transparent=transparent)
    out: Frames = {}
    seconds, widths, closed = [], [], 0
    keys = sorted(frames)
    for i, key in enumerate(keys):
        frame = frames[key]
        if frame.ndim != 3 or frame.shape[2] not in (3, 4):
            raise StageFailed(f"refine: frame {key[0]} {key[1]} is not an RGB(A) image")
        if is_painted(frame):
            out[key] = frame  # a finished cel (an fx or bg layer): cleanup would destroy its fills
            warnings.append(f"layer {key[0]} frame {key[1]}: already painted (filled areas on transparency), "
                            "passed through")
            ctx.progress(i + 1, len(keys))
            continue
        t0 = time.perf_counter()
        h, w = frame.shape[:2]
        if method == "learned":
            covs = learned_coverages(model, frame, device)
            if width:
                covs = renormalise(covs, width, (h, w))
            img = classical.compose(covs, (h, w), transparent)
        else:
            res = classical.cleanup(frame, settings)
            img = res.rgba
            widths.append(res.width)
            closed += res.gaps_closed
        assert img.shape[:2] == (h, w)
        out[key] = img
        seconds.append(time.perf_counter() - t0)
        ctx.progress(i + 1, len(keys))
    report["frames"] = len(keys)
    report["seconds_per_frame"] = round(float(np.mean(seconds)), 3) if seconds else 0.0
    if method == "classical":
        report["line_width"] = round(float(np.median(widths)), 2) if widths else 0.0
        report["gaps_closed"] = closed
    return StageResult(out, report)


SPEC = StageSpec(
    name="refine", run=run, kind="keys", publish_folder="refine",
    description="rough pencil keys -> clean line art (classical cleanup or the learned refiner)",
    options=(
        Option("method", _method, "auto", "classical, learned or auto (learned when its weights verify)"),
        Option("line-width", float, 0.0, "output line width in pixels; 0 keeps the drawing's own weight"),
        Option("background", _background, "white", "white or transparent"),
        Option("threshold", float, 0.2, "classical: darkness against the local paper that starts a line (0..1)"),
        Option("gap", float, 0.0, "classical: largest gap between line ends that is closed, pixels; 0 = 3.5 line widths"),
    ),
)
