"""Real line drawings for evaluation: clip art from Debian's ``openclipart-svg``, and the line
art of real cartoon animation from the project's development set (``../shared/realset``).

The Open Clip Art Library (public domain dedication, see
/usr/share/doc/openclipart-svg/copyright) ships about 8,000 SVG drawings by many artists;
about 1,600 of them use only black lines and white (or no) fills. They are real people's
line work, so they show what no generator of ours draws: their shapes, their line weights,
hatching, lettering. Nothing is committed: `real_pairs` renders them at evaluation time with
``rsvg-convert`` (Debian ``librsvg2-bin``) when both packages are installed
(``apt-get install openclipart-svg librsvg2-bin``) and returns nothing otherwise.

``cartoon-scan`` takes the pixel-aligned line art of the four real animations with strokes
(Telegram's animated stickers, GPL-3.0+, built by ``../shared/realset/make_dev.py`` under
``$REALSET_OUT``, default ~/.cache/quickart-realset; never committed), every third frame.
They are evaluated only, never tuned on.

The rough side is the drawing gone over roughly in pencil (`_pencil_page`: displaced repeat
passes, lifts, light guides, grain; a raster rough-maker that training never uses) and then
captured by a flatbed scan (``real-scan``) or by a phone photo (``real-photo``, the held-out
capture family of `rough_families`); the target is the drawing's own ink. Neither the
drawings nor this rough-maker are ever used for training.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
from functools import lru_cache
from pathlib import Path

import cv2
import numpy as np

from . import rough_families
from ...stages.refine.skeleton import thin

ROOT = Path("/usr/share/openclipart/svg")
#: typical clean line width (px at 960x540) the drawings are scaled to
INK_WIDTH = 3.0
KINDS = ("real-scan", "real-photo", "cartoon-scan")
REALSET_LINES = Path(os.environ.get("REALSET_OUT") or Path.home() / ".cache" / "quickart-realset") / "color"
_COLOUR = re.compile(r'(?:fill|stroke|stop-color)\s*[:=]\s*"?\s*([#a-zA-Z0-9]+)')
#: folders of generated geometry, maps, icons and logos rather than drawings (and the AIGA
#: pictograms: signs, not drawings)
NOT_DRAWINGS = {"shapes", "signs_and_symbols", "geography", "computer", "logos"}
_BLACK = {"#000000", "#000", "black"}
_PLAIN = _BLACK | {"none", "#ffffff", "#fff", "white", "currentcolor", "inherit"}


def available() -> bool:
    return ROOT.is_dir() and shutil.which("rsvg-convert") is not None


@lru_cache(maxsize=1)
def line_art_files() -> tuple[str, ...]:
    """SVGs (relative paths, sorted) drawn only in black strokes with white or no fills."""
    out = []
    for p in sorted(ROOT.rglob("*.svg")):
        if p.relative_to(ROOT).parts[0] in NOT_DRAWINGS or "aiga" in p.name:
            continue
        text = p.read_text(errors="ignore")
        if "<image" in text or "stroke" not in text or len(text) > 400_000:
            continue
        colours = {c.lower() for c in _COLOUR.findall(text)}
        if colours and colours <= _PLAIN and colours & _BLACK:
            out.append(str(p.relative_to(ROOT)))
    return tuple(out)


def _rasterise(rel: str, box: tuple[int, int]) -> np.ndarray | None:
    with tempfile.TemporaryDirectory() as tmp:
        png = Path(tmp) / "a.png"
        r = subprocess.run(["rsvg-convert", "-w", str(box[0]), "-h", str(box[1]), "--keep-aspect-ratio",
                            "-b", "white", "-o", str(png), str(ROOT / rel)], capture_output=True, timeout=60)
        return cv2.imread(str(png), cv2.IMREAD_GRAYSCALE) if r.returncode == 0 else None


def line_width(solid: np.ndarray) -> float:
    """Mean width of the lines of a mask: area over centre-line length."""
    return float(solid.sum()) / max(1.0, float(thin(solid).sum()))


def render_ink(rel: str, size: tuple[int, int]) -> np.ndarray | None:
    """Ink coverage (float32, [0, 1]) of one SVG centred in `size`, scaled so that its lines
    are about INK_WIDTH px wide at 960x540 (clip art is drawn at any weight) but never above
    90 % of the frame; None when it does not render or is not line art (blank, or mostly
    filled black: silhouettes)."""
    w, h = size
    box = (int(w * 0.9), int(h * 0.9))
    img = _rasterise(rel, box)
    if img is None or (img < 128).sum() < 50:
        return None
    width = line_width(img < 128) * 540.0 / h
    if width > INK_WIDTH * 1.3:
        f = max(0.35, INK_WIDTH / width)
        img = _rasterise(rel, (int(box[0] * f), int(box[1] * f)))
        if img is None:
            return None
    page = np.full((h, w), 255, np.uint8)
    ih, iw = img.shape
    y0, x0 = (h - ih) // 2, (w - iw) // 2
    page[y0:y0 + ih, x0:x0 + iw] = img
    ink = (255.0 - page.astype(np.float32)) / 255.0
    solid = ink >= 0.5
    if not 0.003 < solid.mean() < 0.15:
        return None
    k = max(3, int(round(2.5 * INK_WIDTH * h / 540)) | 1)  # thicker than the lines
    if cv2.erode(solid.astype(np.uint8), np.ones((k, k), np.uint8)).sum() > 0.1 * solid.sum():
        return None
    return ink


def _pencil_page(rng: np.random.Generator, ink: np.ndarray) -> np.ndarray:
    """The drawing gone over roughly in graphite, raster by raster (no strokes to follow): one
    to three passes, each the drawing displaced by a smooth field of 0.5-2 px and broken where
    the pencil lifted, pressure varying across the page, a few light guide ellipses and lines
    around it, paper tooth, paper."""
    h, w = ink.shape
    s = h / 540.0
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    marks = np.zeros_like(ink)
    for k in range(int(rng.integers(1, 4))):
        amp = rng.uniform(0.5, 2.0) * s
        cell = rng.uniform(30, 120) * s
        dx = amp * rough_families.noise(rng, (w, h), cell)
        dy = amp * rough_families.noise(rng, (w, h), cell)
        moved = cv2.remap(ink, xx + dx, yy + dy, cv2.INTER_LINEAR)
        lifted = rough_families.noise(rng, (w, h), rng.uniform(3, 8) * s) > rng.uniform(0.7, 0.97)
        moved[lifted] = 0
        pressure = rng.uniform(0.5, 0.9) + 0.15 * rough_families.noise(rng, (w, h), rng.uniform(30, 90) * s)
        moved *= np.clip(pressure, 0.2, 1.0) * (1.0 if k == 0 else rng.uniform(0.4, 0.8))
        marks = 1 - (1 - marks) * (1 - moved)
    ys, xs = np.nonzero(ink > 0.5)
    guides = np.zeros((h, w), np.uint8)
    if len(ys):
        y0, y1, x0, x1 = ys.min(), ys.max(), xs.min(), xs.max()
        for _ in range(int(rng.integers(1, 5))):
            c = (int(rng.uniform(x0, x1)), int(rng.uniform(y0, y1)))
            if rng.random() < 0.6:
                ax = (int(rng.uniform(0.1, 0.6) * (x1 - x0 + 1)), int(rng.uniform(0.1, 0.6) * (y1 - y0 + 1)))
                cv2.ellipse(guides, c, ax, rng.uniform(0, 180), 0, 360, int(rng.uniform(40, 90)), 1, cv2.LINE_AA)
            else:
                a = rng.uniform(0, np.pi)
                d = np.array([np.cos(a), np.sin(a)]) * max(x1 - x0, y1 - y0)
                cv2.line(guides, tuple(int(v) for v in c - d), tuple(int(v) for v in c + d), int(rng.uniform(40, 90)),
                         1, cv2.LINE_AA)
    marks = 1 - (1 - marks) * (1 - guides.astype(np.float32) / 255.0)
    grain = rough_families.paper_tooth(rng, (w, h), rng.uniform(0.2, 0.5))
    a = cv2.GaussianBlur(marks, (0, 0), 0.6) * grain
    lead = np.array([rng.uniform(50, 90)] * 2 + [rng.uniform(60, 100)], np.float32) / 255.0
    page = rough_families.paper(rng, (w, h))
    page *= 1.0 - a[..., None] * (1.0 - lead)
    return page


def real_pairs(kind: str, size: tuple[int, int] = (960, 540), n: int = 4, seed: int = 0) -> list:
    """Up to `n` (rough, ink) pairs of `kind` from clip-art line drawings; [] when the packages
    are missing. The drawings are spread evenly over the sorted list (deterministic)."""
    from .data import Pair
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {', '.join(KINDS)}")
    if kind == "cartoon-scan":
        return [Pair(np.ascontiguousarray(rough_families.scan(np.random.default_rng([seed, i, 37]),
                                                              _pencil_page(np.random.default_rng([seed, i, 41]), ink))),
                     ink, np.zeros_like(ink), name=name)
                for i, (name, ink) in enumerate(cartoon_inks(size, n))]
    if not available():
        return []
    files = line_art_files()
    pairs = []
    for k in range(n):
        # the first drawing that renders as line art from each of n evenly spaced places
        start = (k * len(files)) // n + seed
        for i in range(start, start + len(files) // n):
            rel = files[i % len(files)]
            ink = render_ink(rel, size)
            if ink is not None:
                break
        else:
            continue
        rng = np.random.default_rng([seed, i, 31])
        page = _pencil_page(rng, ink)
        trace = np.zeros_like(ink)
        if kind == "real-photo":
            hom = rough_families.page_homography(rng, size)
            rough = rough_families.capture_photo(rng, page, hom)
            ink = cv2.warpPerspective(ink, hom, size, flags=cv2.INTER_LINEAR)
        else:
            rough = rough_families.scan(rng, page)
        pairs.append(Pair(np.ascontiguousarray(rough), ink, trace, name=rel))
    return pairs


def cartoon_inks(size: tuple[int, int], n: int) -> list[tuple[str, np.ndarray]]:
    """Up to `n` (name, ink coverage) of the real animations' line art, centred in `size`
    (the frames are 512x512, about the line weight of a 960x540 drawing); [] when the
    development set has not been built."""
    anims = sorted(p.parent.name for p in REALSET_LINES.glob("*/lines"))
    out = []
    w, h = size
    for k in range(n):
        if not anims:
            break
        anim = anims[k % len(anims)]
        frames = sorted((REALSET_LINES / anim / "lines").glob("frame_*.png"))
        if not frames:
            continue
        f = frames[(3 * (k // len(anims)) + 1) % len(frames)]
        grey = cv2.imread(str(f), cv2.IMREAD_GRAYSCALE)
        fh, fw = grey.shape
        if fh > h or fw > w:
            s = min(h / fh, w / fw)
            grey = cv2.resize(grey, (int(fw * s), int(fh * s)), interpolation=cv2.INTER_AREA)
            fh, fw = grey.shape
        page = np.full((h, w), 255, np.uint8)
        page[(h - fh) // 2:(h - fh) // 2 + fh, (w - fw) // 2:(w - fw) // 2 + fw] = grey
        out.append((f"{anim}/{f.name}", (255.0 - page.astype(np.float32)) / 255.0))
    return out
