"""Flat-cel generators unlike `synth` (issue 22): articulated characters whose parts turn at their
joints and overlap, painted in flat colours, each part's outline in ink, shadows cut off by red
trace lines. Shared by the colour tests and bench/bench_flat_cels.py, with the measure of how
exactly a flat cel comes out (`flat_errors`)."""

from __future__ import annotations

from typing import NamedTuple

import cv2
import numpy as np

from ..stages.color.palette import Palette
from ..stages.color.reference import Colours, build_ref
from ..stages.color.stage import colour_drawing


class FlatFrame(NamedTuple):
    """One frame of a flat-cel generator."""
    lines: np.ndarray   # the line art (RGBA)
    cel: np.ndarray     # the coloured cel, lines over flat colours (RGBA)
    flat: np.ndarray    # the flat colours alone: the truth (RGBA)
    drawn: np.ndarray   # ink and trace-line coverage (uint8)
    part: np.ndarray    # which part (index in painter's order, -1 none) each pixel shows, lines aside


# a flat-cel puppet (issue 22): polygons and ellipses with joints, painted in flat colours, each
# part's outline in ink, a shadow area inside the torso and the head cut off by a red trace line
PUPPET = {"torso": (70, 110, 200), "torso_shadow": (40, 70, 150), "head_shadow": (200, 150, 120),
           "head": (240, 200, 160), "arm": (200, 60, 60), "hand": (240, 200, 160), "leg": (60, 60, 70),
           "hat": (250, 220, 40)}


def limb(c, ang, length, width):
    """Corners of a limb from joint c at angle ang (degrees), and its far joint."""
    a = np.deg2rad(ang)
    d, c = np.array([np.cos(a), np.sin(a)]), np.asarray(c, float)
    n = np.array([-d[1], d[0]])
    return np.array([c - n * width / 2 - d * width / 2, c + n * width / 2 - d * width / 2,
                     c + n * width / 2 + d * (length + width / 2), c - n * width / 2 + d * (length + width / 2)]), \
        c + d * length


def puppet(t: float, size=(320, 240), paper: bool = True) -> FlatFrame:
    """The puppet at time t: it sways, its arms swing (the front one over the torso, its forearm
    bending), its legs step. On paper, or on transparency."""
    w, h = size
    s = h / 240
    cx, cy = w * 0.5 + 10 * s * np.sin(t * 0.3), h * 0.45
    sh = np.array([cx + 22 * s, cy - 30 * s])
    ua, el = limb(sh - [44 * s, 0], 100 + 5 * t, 38 * s, 14 * s)
    fa, _ = limb(el, 70 + 6 * t, 32 * s, 12 * s)
    parts = [("arm", "poly", ua), ("arm", "poly", fa)]  # painter's order: the back arm first
    for side, a0 in ((-1, 95), (1, 80)):
        parts.append(("leg", "poly", limb([cx + side * 14 * s, cy + 40 * s], a0 - side * 3 * t, 50 * s, 16 * s)[0]))
    parts += [("torso", "ellipse", ((cx, cy), (36 * s, 52 * s))),
              ("torso_shadow", "shadow", ((cx, cy), np.array([0.5, 0.87]), 20 * s)),
              ("head", "ellipse", ((cx, cy - 78 * s), (26 * s, 26 * s))),
              ("head_shadow", "shadow", ((cx, cy - 78 * s), np.array([-0.7, 0.7]), 10 * s)),
              ("hat", "poly", np.array([[cx - 30 * s, cy - 92 * s], [cx + 30 * s, cy - 92 * s],
                                        [cx + 12 * s, cy - 122 * s], [cx - 12 * s, cy - 122 * s]]))]
    ua, el = limb(sh, 110 - 6 * t, 40 * s, 14 * s)
    fa, wr = limb(el, 200 - 8 * t, 34 * s, 12 * s)
    parts += [("arm", "poly", ua), ("arm", "poly", fa), ("hand", "ellipse", (tuple(wr), (9 * s, 9 * s)))]
    return render_flat([(PUPPET[name], kind, g) for name, kind, g in parts], w, h, s, paper)


def render_flat(parts, w: int, h: int, s: float, paper: bool) -> FlatFrame:
    """The frame of `parts` (colour, kind, geometry) in painter's order: 'poly' corners, 'ellipse'
    (centre, axes), or 'shadow' (a chord's side inside the part before it, the chord a red trace
    line); each part's outline in ink."""
    flat = np.zeros((h, w, 4), np.uint8)
    if paper:
        flat[...] = 255
    ink = np.zeros((h, w), np.uint8)
    red = np.zeros((h, w), np.uint8)
    lw = max(2, int(round(2.5 * s)))
    part = np.full((h, w), -1, np.int16)
    ys, xs = np.mgrid[0:h, 0:w]
    inner = None
    for index, (rgb, kind, g) in enumerate(parts):
        m = np.zeros((h, w), np.uint8)
        o = np.zeros((h, w), np.uint8)
        if kind == "shadow":  # the side of a chord inside the last part, the chord a red line
            (x, y), nrm, dist = g
            side = (inner > 0) & ((xs - x) * nrm[0] + (ys - y) * nrm[1] > dist)
            flat[side] = (*rgb, 255)
            part[side] = index
            chord = np.zeros((h, w), np.uint8)
            p0, along = np.array([x, y]) + nrm * dist, np.array([-nrm[1], nrm[0]]) * 200
            cv2.line(chord, tuple(np.round((p0 - along) * 16).astype(int)), tuple(np.round((p0 + along) * 16).astype(int)),
                     255, 2, cv2.LINE_AA, 4)
            chord[inner == 0] = 0
            red = np.maximum(red, chord)
            continue
        if kind == "poly":
            p = np.round(g * 16).astype(np.int32)
            cv2.fillPoly(m, [p], 255, cv2.LINE_8, 4)
            cv2.polylines(o, [p], True, 255, lw, cv2.LINE_AA, 4)
        else:
            (x, y), (a, b) = g
            c16, ax16 = (int(round(x * 16)), int(round(y * 16))), (int(round(a * 16)), int(round(b * 16)))
            cv2.ellipse(m, c16, ax16, 0, 0, 360, 255, -1, cv2.LINE_8, 4)
            cv2.ellipse(o, c16, ax16, 0, 0, 360, 255, lw, cv2.LINE_AA, 4)
        flat[m > 0] = (*rgb, 255)
        part[m > 0] = index
        ink[m > 0] = 0  # a part in front hides the lines behind it
        red[m > 0] = 0
        ink = np.maximum(ink, o)
        red[o > 0] = 0
        inner = cv2.erode(m, np.ones((3, 3), np.uint8))
    a = ink.astype(np.float32)[..., None] / 255
    ar = red.astype(np.float32)[..., None] / 255 * (1 - a)
    trace_rgb = np.array([230, 30, 30], np.float32)
    if paper:
        rgb = 255 * (1 - a - ar) + trace_rgb * ar
        lines = np.dstack([np.clip(rgb + 0.5, 0, 255).astype(np.uint8), np.full((h, w), 255, np.uint8)])
    else:
        cov = np.maximum(a, ar + a)[..., 0]
        rgb = trace_rgb * ar / np.maximum(cov[..., None], 1e-6)
        lines = np.dstack([np.clip(rgb + 0.5, 0, 255).astype(np.uint8), np.clip(cov * 255 + 0.5, 0, 255).astype(np.uint8)])
    cel = flat.copy()
    cel[..., :3] = (flat[..., :3].astype(np.float32) * (1 - a)).round().astype(np.uint8)
    if not paper:
        cel[..., 3] = np.maximum(cel[..., 3], ink)
    drawn = np.maximum(ink, red)
    return FlatFrame(lines, cel, flat, drawn, part)


def creature(seed: int, t: float, size=(400, 300), paper: bool = True) -> FlatFrame:
    """A flat-cel creature unlike the puppet and the synthetic generator (issue 22): from `seed`,
    random colours and proportions, 2-4 limbs of 2-3 segments that each turn at their joint over
    time (some in front of the body, cutting it in pieces, some behind), a tail, parts that share a
    colour, and a shadow cut off the body by a red trace line or not."""
    rng = np.random.default_rng(seed)
    pal = [tuple(int(v) for v in rng.integers(20, 236, 3)) for _ in range(9)]
    bw, bh = rng.uniform(30, 45), rng.uniform(40, 60)
    head_r = rng.uniform(18, 28)
    tail_len, tail_w, tail_rate = rng.uniform(30, 60), rng.uniform(8, 14), rng.uniform(-4, 4)
    shadow = bool(rng.integers(0, 2))
    sway, bob = rng.uniform(0.1, 0.5), rng.uniform(0, 6)
    chains = []
    for k in range(int(rng.integers(2, 5))):
        nseg = int(rng.integers(2, 4))
        col = pal[3 + (k % 2)] if rng.random() < 0.7 else pal[5 + k % 3]
        segs = [(rng.uniform(22, 40), rng.uniform(9, 15), rng.uniform(-7, 7)) for _ in range(nseg)]
        joint = (rng.uniform(-0.9, 0.9), rng.uniform(-0.8, 0.6))
        chains.append((joint, rng.uniform(0, 360), segs, col, bool(rng.integers(0, 2)),
                       pal[1] if rng.random() < 0.5 else pal[6]))
    w, h = size
    s = h / 240
    cx, cy = w * 0.5 + 12 * s * np.sin(t * sway), h * 0.55 + bob * s * np.sin(t * 0.7)
    back, front = [], []
    for joint, a0, segs, col, in_front, end_col in chains:
        c, ang, pieces = np.array([cx + joint[0] * bw * s, cy + joint[1] * bh * s]), a0, []
        for length, width, rate in segs:
            ang = ang + rate * t + (25 if pieces else 0)
            poly, c = limb(c, ang, length * s, width * s)
            pieces.append((col, "poly", poly))
        pieces.append((end_col, "ellipse", ((c[0], c[1]), (7 * s, 7 * s))))
        (front if in_front else back).extend(pieces)
    parts = [(pal[2], "poly", limb([cx, cy + bh * 0.6 * s], 120 + tail_rate * t, tail_len * s, tail_w * s)[0])]
    parts += back + [(pal[0], "ellipse", ((cx, cy), (bw * s, bh * s)))]
    if shadow:
        parts.append((tuple(max(0, c - 50) for c in pal[0]), "shadow", ((cx, cy), np.array([0.6, 0.8]), 0.45 * bw * s)))
    parts.append((pal[1], "ellipse", ((cx, cy - (bh + head_r * 0.8) * s), (head_r * s, head_r * 0.9 * s))))
    return render_flat(parts + front, w, h, s, paper)


def off_flat(out: np.ndarray, flat: np.ndarray, drawn: np.ndarray, paper: bool) -> tuple[np.ndarray, np.ndarray]:
    """(the painted pixels off the lines, those of them not exactly their flat colour, opaque) of a
    coloured frame `out` against the generator's flat truth."""
    paint = (drawn == 0) & ((flat[..., :3] != 255).any(2) if paper else flat[..., 3] > 0)
    wrong = paint & ~((out[..., :3] == flat[..., :3]).all(2) & (out[..., 3] == 255))
    return paint, wrong


def unseen_parts(frame: FlatFrame, ref: FlatFrame) -> np.ndarray:
    """Where `frame` shows a part that `ref` shows nowhere off its lines (a forearm the reference
    hid whole behind the body): no reference says its colour, so a wrong colour there is a guess
    lost, not a match missed."""
    shown = np.unique(ref.part[(ref.drawn == 0) & (ref.part >= 0)])
    return (frame.drawn == 0) & (frame.part >= 0) & ~np.isin(frame.part, shown)


#: the stage's default --low-confidence: a pixel below it is marked for review
LOW_CONFIDENCE = 0.5


class FlatScore(NamedTuple):
    """How exactly one drawing of a flat generator came out (`flat_errors`), in pixels."""
    painted: int     # painted pixels off the lines
    wrong: int       # of them, off their flat colour
    copied: int      # of those, in a region whose colour is right (copied in, not matched)
    unseen: int      # of those, in parts the reference does not show (`unseen_parts`)
    wrong_low: int   # wrong pixels the confidence map marks (below LOW_CONFIDENCE)
    flagged: int     # painted pixels it marks


def flat_errors(gen, t_ref: float, t: float, paper: bool) -> FlatScore:
    """Colour `gen`'s drawing at t from its cel at t_ref and score it against the flat truth."""
    ref, frame = gen(t_ref), gen(t)
    colours = Colours()
    ref_model = build_ref(0, ref.cel, ref.lines, 0.0, colours)
    res = colour_drawing(frame.lines, [ref_model], None, Palette(), colours, {}, abs(t - t_ref))
    paint, wrong = off_flat(res.image, frame.flat, frame.drawn, paper)
    table = np.array(colours.table + [(0, 0, 0)], int)  # TRANSPARENT (-1): the last row
    region_right = (table[res.region_colour][res.labels] == frame.flat[..., :3]).all(2)
    low = res.confidence < LOW_CONFIDENCE
    return FlatScore(int(paint.sum()), int(wrong.sum()), int((wrong & region_right).sum()),
                     int((wrong & unseen_parts(frame, ref)).sum()), int((wrong & low).sum()), int((paint & low).sum()))
