"""Line extraction and gap-tolerant region segmentation (hierarchical trapped-ball).

`extract_lines` turns a line drawing (lines on white, on paper, or on transparency) into
line coverage plus three masks: ink, red colour-trace (shadow) and blue colour-trace
(highlight). `segment` cuts the non-line pixels into closed regions:

1. the distance of every free pixel to the nearest line pixel is computed once;
2. for ball radii r1 > r2 > ... (the largest one set by the gap to close), the pixels
   where a ball of radius r fits (distance > r) fall into connected "cores"; a core of a
   level becomes a region seed only when it contains no seed of a larger level. A ball
   too big to pass through a gap in a line cannot carry one region's seed into the next
   region, so regions bigger than the ball never leak; narrower regions get their seed at
   a smaller radius (a leak at that level can only cost a narrow region its own seed);
3. finally every closed component of free pixels without a seed becomes a region of its
   own: tiny closed regions (eyes, highlights) are kept, whatever their size;
4. the seeds grow over the remaining free pixels one ring at a time (geodesic, so never
   across a line), and every line pixel takes the label of the nearest free pixel: lines
   split down their middle, gaps split where the two growing regions meet, and every
   line pixel knows the region it borders (for "absorb" line mode and trace lines).
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from ..labels import nearest_labels


@dataclass
class LineArt:
    coverage: np.ndarray   # float32 0..1: how much ink (not trace line) covers the pixel
    line: np.ndarray       # bool: line pixels (any colour) used as region boundaries
    ink: np.ndarray        # bool: ink (dark) line pixels
    red: np.ndarray        # bool: red colour-trace (shadow) line pixels
    blue: np.ndarray       # bool: blue colour-trace (highlight) line pixels
    ink_rgb: tuple[int, int, int]
    line_width: float      # estimated ink line width in pixels


#: ink is near black in every channel: a pixel whose channels are all below INK_LEVEL is ink (a
#: stroke's core, a solid black pupil). Paint is not, however dark: a deep red, brown or navy fill
#: keeps one channel higher (a mean or a sum of the channels would call it ink), and real cels paint
#: dark grey areas with every channel between 40 and 90, which a higher
#: level took for ink drawn inside a region (its colour was then read from the rest). One definition
#: for every "is this ink?" of the stage: telling painted frames from line art (`is_coloured`), the
#: strokes of a cel without line art (`lines_from_cel`), the ink drawn inside a region that is not
#: its colour (`region_colours`)
INK_LEVEL = 40


def is_ink(rgb: np.ndarray) -> np.ndarray:
    """Per pixel of `rgb` (..., 3+): ink (every channel below INK_LEVEL), not paint. Channel by
    channel: a reduction over the last axis of three is slow in numpy."""
    return (rgb[..., 0] < INK_LEVEL) & (rgb[..., 1] < INK_LEVEL) & (rgb[..., 2] < INK_LEVEL)


#: a drawing is on transparency when more than TRANSPARENT_SHARE of its pixels have alpha below
#: OPAQUE_ALPHA (a scan or a drawing on paper is opaque but for a few edited pixels)
TRANSPARENT_SHARE = 0.05
OPAQUE_ALPHA = 250
#: a cel's pixel is painted (its colour counts) from this alpha: more paint than transparency
PAINTED_ALPHA = 128


def on_transparency(rgba: np.ndarray) -> bool:
    """Is the drawing on transparency (its lines in the alpha), not on paper?"""
    return bool((rgba[..., 3] < OPAQUE_ALPHA).mean() > TRANSPARENT_SHARE)


def line_strength(rgba: np.ndarray) -> np.ndarray:
    """Coverage estimate in 0..1: alpha for lines on transparency, else darkness against the paper."""
    alpha = rgba[..., 3]
    if on_transparency(rgba):
        return alpha.astype(np.float32) / 255.0
    rgb = rgba[..., :3]
    # paper colour: the median of a subsample (most pixels of a line drawing are paper)
    sub = rgb[:: max(1, rgb.shape[0] // 256), :: max(1, rgb.shape[1] // 256)].reshape(-1, 3)
    bg = np.maximum(np.median(sub, axis=0), 100.0).astype(np.float32)
    s = np.zeros(rgb.shape[:2], np.float32)
    for c in range(3):
        np.maximum(s, (bg[c] - rgb[..., c].astype(np.float32)) / bg[c], out=s)
    return np.clip(s, 0.0, 1.0)


def ink_coverage(rgba: np.ndarray, strength: np.ndarray) -> np.ndarray:
    """How much *ink* (a grey/black line) covers a pixel: coloured trace lines and their
    anti-aliased fringes count for nothing, so painting them over leaves no dark rim."""
    r, g, b = rgba[..., 0], rgba[..., 1], rgba[..., 2]  # (channel by channel: a reduction over
    # the last axis of three is slow in numpy)
    chroma = (np.maximum(np.maximum(r, g), b) - np.minimum(np.minimum(r, g), b)).astype(np.float32) / 255.0
    # a fully covered red/blue trace pixel has chroma ~0.75; ink has ~0
    grey = np.clip(1.0 - chroma / np.maximum(strength * 0.5, 1e-3), 0.0, 1.0)
    return strength * grey


#: the adaptive line threshold: LINE_OF_DARKEST of the strength of the drawing's darkest strokes
#: (its DARKEST_PERCENTILE: line pixels are a few percent of a drawing), between LINE_LEAST (faint
#: pencil) and LINE_MOST (clean ink: its anti-aliased fringe below, its core above)
LINE_OF_DARKEST = 0.45
DARKEST_PERCENTILE = 99.7
LINE_LEAST, LINE_MOST = 0.15, 0.4
#: a trace line is red (blue) where that channel exceeds the other two by TRACE_CHROMA, from
#: TRACE_FAINT of the line threshold: coloured lines count even where faint, so they cut regions
TRACE_CHROMA = 40
TRACE_FAINT = 0.5
#: strength from which an ink pixel is the stroke's core (the ink's colour is read there)
INK_CORE = 0.9


def extract_lines(rgba: np.ndarray, threshold: float = 0.0) -> LineArt:
    """Line masks of a drawing; `threshold` 0 adapts to the drawing (clean ink: LINE_MOST, faint
    pencil: about half the strength of its darkest strokes)."""
    rgba = np.ascontiguousarray(rgba)
    cov = line_strength(rgba)
    if threshold <= 0:
        sub = cov[:: max(1, cov.shape[0] // 512), :: max(1, cov.shape[1] // 512)]
        threshold = float(np.clip(LINE_OF_DARKEST * np.percentile(sub, DARKEST_PERCENTILE), LINE_LEAST, LINE_MOST))
    line = cov >= threshold
    r = rgba[..., 0].astype(np.int16)
    g = rgba[..., 1].astype(np.int16)
    b = rgba[..., 2].astype(np.int16)
    weak = cov >= threshold * TRACE_FAINT
    red = weak & (r - np.maximum(g, b) > TRACE_CHROMA)
    blue = weak & (b - np.maximum(r, g) > TRACE_CHROMA)
    ink = line & ~red & ~blue
    # coloured trace lines count as lines even where faint (anti-aliased), so they cut regions
    line = line | red | blue
    if ink.any():
        sel = ink & (cov > INK_CORE)
        if not sel.any():
            sel = ink
        ink_rgb = tuple(int(v) for v in np.median(rgba[..., :3][sel], axis=0))
    else:
        ink_rgb = (0, 0, 0)
    # line width: mean distance to the line's edge over line pixels is about width / 4
    if line.any():
        d = cv2.distanceTransform(line.astype(np.uint8), cv2.DIST_L2, 3)
        ridge = line & (d >= cv2.dilate(d, np.ones((3, 3), np.uint8)))
        width = float(max(1.0, 2.0 * np.median(d[ridge]) - 1.0)) if ridge.any() else 1.0
    else:
        width = 1.0
    return LineArt(ink_coverage(rgba, cov), line, ink, red, blue, ink_rgb, width)


@dataclass
class Segmentation:
    labels: np.ndarray     # int32: region id of every pixel, lines absorbed into a neighbour (1..n)
    free: np.ndarray       # bool: not a line pixel
    n: int                 # number of regions
    line: LineArt


def _components(mask: np.ndarray) -> tuple[int, np.ndarray]:
    n, lab = cv2.connectedComponents(mask.astype(np.uint8), connectivity=4, ltype=cv2.CV_32S)
    return n, lab


def segment(art: LineArt, gap: float = 0.0, min_core: int = 4) -> Segmentation:
    """Regions of `art`; `gap` is the widest line gap (pixels) to close (0: from the line width)."""
    free = ~art.line
    h, w = free.shape
    if gap <= 0:
        gap = max(3.0, art.line_width)
    dist = cv2.distanceTransform(free.astype(np.uint8), cv2.DIST_L2, 5)
    # the image border counts as a line for the ball (so the outside stays one region)
    r_gap = gap / 2.0 + 0.5
    radii = sorted({round(r_gap * 3, 1), round(r_gap * 1.75, 1), round(r_gap, 1), 1.0}, reverse=True)
    seeds = np.zeros((h, w), np.int32)
    flat_seeds = seeds.ravel()
    n_seeds = 0
    # the cores are nested (a core of a larger ball lies inside one of a smaller one), so a seed
    # lies whole in one component of every later level: one pixel of each tells which components
    # hold a seed, and a new seed's pixels are all among the core's pixels not yet seeded
    reps = np.zeros(0, np.int64)
    for level, r in enumerate(radii + [0.0]):
        core = dist > r if r > 0 else free
        n, lab = _components(core)
        if n <= 1:
            continue
        # components that already hold a seed
        has = np.zeros(n, bool)
        flat = lab.ravel()
        has[flat[reps]] = True
        has[0] = True
        todo = np.flatnonzero(core & (seeds == 0))
        lt = flat[todo]
        new = ~has
        if r > 0 and min_core > 1:
            new &= np.bincount(lt, minlength=n) >= min_core  # (a new component lies all in `todo`)
        if not new.any():
            continue
        ids = np.zeros(n, np.int32)
        ids[new] = np.arange(n_seeds + 1, n_seeds + 1 + int(new.sum()), dtype=np.int32)
        n_seeds += int(new.sum())
        got = new[lt]
        flat_seeds[todo[got]] = ids[lt[got]]
        rep = np.zeros(n, np.int64)
        rep[lt[got]] = todo[got]  # one pixel of each new seed (whichever write wins)
        reps = np.concatenate([reps, rep[new]])
    if n_seeds == 0:  # an empty drawing: one region
        return Segmentation(np.ones((h, w), np.int32), free, 1, art)
    # grow the seeds over the free pixels (geodesic, one ring per step), then give every
    # line pixel the label of the nearest free pixel: lines split down their middle
    lab = _grow(seeds, free & (seeds == 0), 4 * int(radii[0] + 8))
    markers, _ = nearest_labels(lab)
    return Segmentation(markers.astype(np.int32), free, n_seeds, art)


def _grow(seeds: np.ndarray, todo: np.ndarray, max_steps: int) -> np.ndarray:
    """The labels `seeds` (0: none) grown over the pixels `todo` one ring (4-neighbours) per step,
    at most `max_steps` rings: a pixel reached in a step takes the largest label among its
    neighbours labelled before that step (a 3x3 cross dilation of the labels, repeated). Only
    the ring's pixels are visited (the frame is padded by one pixel: no neighbour wraps)."""
    h, w = seeds.shape
    W = w + 2
    lab = np.zeros((h + 2, W), np.int32)
    lab[1:-1, 1:-1] = seeds
    left = np.zeros((h + 2, W), bool)
    left[1:-1, 1:-1] = todo
    L, T = lab.ravel(), left.ravel()
    nbr = np.array([-1, 1, -W, W])
    kernel = cv2.getStructuringElement(cv2.MORPH_CROSS, (3, 3))
    ring = np.flatnonzero(left & cv2.dilate((lab > 0).astype(np.uint8), kernel).astype(bool))
    stamp = np.zeros(L.size, np.int32)
    steps = 0
    while len(ring) and steps < max_steps:
        L[ring] = L[ring[:, None] + nbr].max(1)
        T[ring] = False
        steps += 1
        cand = (ring[:, None] + nbr).ravel()
        cand = cand[T[cand]]
        stamp[cand] = np.arange(len(cand))  # one of each (whichever write wins)
        ring = cand[stamp[cand] == np.arange(len(cand))]
    return lab[1:-1, 1:-1].copy()
