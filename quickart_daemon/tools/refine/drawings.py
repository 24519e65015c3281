"""Procedural clean drawings for the refiner's training data, independent of `synth.py`.

A `Drawing` is what an animator's clean-up pass would produce: strokes (black ink, or a red /
blue / green colour-trace line) in paint order, where a shape's fill hides what was drawn
before it, plus the guide lines (line of action, head circles, axes, perspective lines) that
the rough has and the clean drawing does not. `rough_families.py` draws it in different
media; `render_clean` gives the targets.

The content is deliberately unlike the generator's characters: figures of random blobs and
bent limbs with tapered strokes, hair strands, folds and open shadow lines, solid blacks,
hatching, boxes in perspective, spirals, handwriting-like squiggles, at line widths from
1.5 to 6 px at 960x540.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import cv2
import numpy as np

INK, RED, BLUE, GREEN = 0, 1, 2, 3
#: clean colours of the stroke classes (RGB), as the refine stage draws them
CLASS_RGB = {INK: (0, 0, 0), RED: (220, 30, 30), BLUE: (30, 60, 220), GREEN: (30, 160, 60)}
#: supersampling of the clean render: widths are drawn to a third of a pixel
SUPERSAMPLE = 3
_SHIFT = 4


@dataclass
class Stroke:
    pts: np.ndarray  # (N, 2) float, pixels
    width: float  # clean line width, pixels
    cls: int = INK
    closed: bool = False
    taper: bool = False  # thins towards both ends (a brush or a pressure-sensitive pen)


@dataclass
class Item:
    """Strokes drawn after `fill` (a polygon or None) hides everything under it; `solid`
    fills the polygon with ink (pupils, spotted blacks)."""
    strokes: list[Stroke] = field(default_factory=list)
    fill: np.ndarray | None = None
    solid: bool = False


@dataclass
class Drawing:
    size: tuple[int, int]  # (w, h)
    items: list[Item]
    guides: list[np.ndarray]  # polylines of construction lines, not part of the clean drawing
    width: float  # the drawing's typical ink width


def fixed(pts: np.ndarray, scale: float = 1.0) -> np.ndarray:
    """OpenCV fixed-point polyline (sub-pixel bits `_SHIFT`)."""
    return np.round(np.asarray(pts) * scale * (1 << _SHIFT)).astype(np.int32).reshape(-1, 1, 2)


def resample(pts: np.ndarray, step: float, closed: bool = False) -> np.ndarray:
    """Points about `step` pixels apart along the polyline (closed: back to the start)."""
    p = np.vstack([pts, pts[:1]]) if closed else np.asarray(pts, np.float64)
    seg = np.hypot(*np.diff(p, axis=0).T)
    s = np.concatenate([[0.0], np.cumsum(seg)])
    n = max(3, int(s[-1] / max(step, 0.5)) + 1)
    q = np.linspace(0.0, s[-1], n)
    return np.stack([np.interp(q, s, p[:, 0]), np.interp(q, s, p[:, 1])], axis=1)


def taper_profile(n: int, taper: bool) -> np.ndarray:
    """Relative width along a stroke of `n` points: 1, or a swelling from thin ends."""
    if not taper or n < 4:
        return np.ones(n)
    s = np.linspace(0, 1, n)
    return np.clip(np.sin(np.pi * s) ** 0.5, 0.25, 1.0)


# ----------------------------------------------------------------------------------
# shapes


def _blob(rng, c, rx, ry, angle=0.0, wobble=0.12, n=72) -> np.ndarray:
    th = np.linspace(0, 2 * np.pi, n, endpoint=False)
    r = np.ones(n)
    for k in range(2, 6):
        r += rng.uniform(-wobble, wobble) / k * np.cos(k * th + rng.uniform(0, 2 * np.pi))
    x, y = rx * r * np.cos(th), ry * r * np.sin(th)
    ca, sa = np.cos(angle), np.sin(angle)
    return np.stack([c[0] + ca * x - sa * y, c[1] + sa * x + ca * y], 1)


def _limb(rng, a, b, r0, r1, bend) -> np.ndarray:
    """Closed outline of a bent tube from a (radius r0) to b (radius r1)."""
    a, b = np.asarray(a, float), np.asarray(b, float)
    s = np.linspace(0, 1, 24)
    d = b - a
    nrm = np.array([-d[1], d[0]]) / max(1e-6, float(np.hypot(*d)))
    axis = a + s[:, None] * d + (bend * np.sin(np.pi * s))[:, None] * nrm
    tang = np.gradient(axis, axis=0)
    tn = np.stack([-tang[:, 1], tang[:, 0]], 1) / np.maximum(1e-6, np.hypot(*tang.T))[:, None]
    rad = (r0 + (r1 - r0) * s)[:, None]
    cap = np.linspace(-np.pi / 2, np.pi / 2, 10)  # round end caps
    ang_b = np.arctan2(tang[-1, 1], tang[-1, 0])
    end = np.stack([axis[-1, 0] + rad[-1, 0] * np.cos(ang_b + cap), axis[-1, 1] + rad[-1, 0] * np.sin(ang_b + cap)], 1)
    ang_a = np.arctan2(-tang[0, 1], -tang[0, 0])
    start = np.stack([axis[0, 0] + rad[0, 0] * np.cos(ang_a + cap), axis[0, 1] + rad[0, 0] * np.sin(ang_a + cap)], 1)
    return np.vstack([axis - tn * rad, end, (axis + tn * rad)[::-1], start])


def _arc(rng, c, rx, ry, a0, a1, angle=0.0, n=24) -> np.ndarray:
    th = np.linspace(a0, a1, n)
    x, y = rx * np.cos(th), ry * np.sin(th)
    ca, sa = np.cos(angle), np.sin(angle)
    return np.stack([c[0] + ca * x - sa * y, c[1] + sa * x + ca * y], 1)


def _curve(rng, p0, p1, bow, n=20) -> np.ndarray:
    """Quadratic curve from p0 to p1 bowed sideways by `bow` (fraction of its length)."""
    p0, p1 = np.asarray(p0, float), np.asarray(p1, float)
    d = p1 - p0
    mid = (p0 + p1) / 2 + bow * np.array([-d[1], d[0]])
    s = np.linspace(0, 1, n)[:, None]
    return (1 - s) ** 2 * p0 + 2 * s * (1 - s) * mid + s ** 2 * p1


def _inside(pts: np.ndarray, poly: np.ndarray) -> np.ndarray:
    c = poly.astype(np.float32).reshape(-1, 1, 2)
    return np.array([cv2.pointPolygonTest(c, (float(x), float(y)), False) > 0 for x, y in pts])


def _clip_runs(pts: np.ndarray, poly: np.ndarray, min_pts: int = 3) -> list[np.ndarray]:
    """The pieces of polyline `pts` that lie inside `poly` (shadow lines end at the outline)."""
    inside = _inside(pts, poly)
    runs, cur = [], []
    for p, ok in zip(pts, inside):
        if ok:
            cur.append(p)
        elif cur:
            runs.append(np.array(cur))
            cur = []
    if cur:
        runs.append(np.array(cur))
    return [r for r in runs if len(r) >= min_pts]


# ----------------------------------------------------------------------------------
# scenes


def _trace_class(rng) -> int:
    return int(rng.choice([RED, BLUE, GREEN], p=[0.45, 0.35, 0.2]))


def _shadow_lines(rng, outline: np.ndarray, width: float, scale: float) -> list[Stroke]:
    """Open colour-trace lines across a shape (shadow / highlight boundaries), clipped to it."""
    out = []
    c = outline.mean(0)
    ext = np.ptp(outline, 0)
    for _ in range(int(rng.integers(0, 3))):
        ang = rng.uniform(0, 2 * np.pi)
        shift = rng.uniform(0.1, 0.4) * ext * np.array([np.cos(ang), np.sin(ang)])
        span = 0.8 * max(ext)
        d = np.array([-np.sin(ang), np.cos(ang)]) * span
        line = resample(_curve(rng, c + shift - d, c + shift + d, rng.uniform(-0.3, 0.3), 40), 2.0 * scale)
        cls = _trace_class(rng)
        for run in _clip_runs(line, outline):
            out.append(Stroke(run, width * rng.uniform(0.5, 0.8), cls))
    if rng.random() < 0.25:  # a closed highlight shape inside
        r = 0.15 * min(ext)
        hl = _blob(rng, c + rng.uniform(-0.2, 0.2, 2) * ext, r * rng.uniform(0.7, 1.4), r, rng.uniform(0, 3))
        if _inside(hl, outline).all():
            out.append(Stroke(hl, width * rng.uniform(0.5, 0.8), _trace_class(rng), closed=True))
    return out


def _figure(rng, c, h, width, scale, guides) -> list[Item]:
    """A character-like figure about `h` pixels tall centred at c, in paint order."""
    items: list[Item] = []
    taper = rng.random() < 0.4

    def shape_item(poly, w=width):
        st = [Stroke(poly, w * rng.uniform(0.85, 1.15), INK, closed=True, taper=False)]
        if rng.random() < 0.7:
            st += _shadow_lines(rng, poly, width, scale)
        return Item(st, fill=poly)

    body_c = np.array([c[0], c[1] + 0.1 * h])
    body = _blob(rng, body_c, h * rng.uniform(0.13, 0.22), h * rng.uniform(0.18, 0.28), rng.uniform(-0.4, 0.4))
    head_c = body_c + np.array([rng.uniform(-0.08, 0.08) * h, -h * rng.uniform(0.32, 0.4)])
    hr = h * rng.uniform(0.11, 0.17)
    head = _blob(rng, head_c, hr * rng.uniform(0.9, 1.2), hr, rng.uniform(-0.3, 0.3), wobble=0.08)
    limbs = []
    for side in (-1, 1):
        for kind in ("arm", "leg"):
            if rng.random() < 0.15:
                continue
            if kind == "arm":
                a = body_c + np.array([side * 0.12 * h, -0.12 * h])
                b = a + np.array([side * rng.uniform(0.1, 0.3), rng.uniform(-0.2, 0.25)]) * h
                r0 = 0.045 * h
            else:
                a = body_c + np.array([side * 0.07 * h, 0.2 * h])
                b = a + np.array([side * rng.uniform(0.0, 0.15), rng.uniform(0.2, 0.32)]) * h
                r0 = 0.055 * h
            limbs.append(_limb(rng, a, b, r0, r0 * rng.uniform(0.6, 0.9), rng.uniform(-0.06, 0.06) * h))
    behind = [l for l in limbs if rng.random() < 0.5]
    for l in behind:
        items.append(shape_item(l))
    items.append(shape_item(body))
    # folds: open curves inside the body
    folds = []
    for _ in range(int(rng.integers(0, 4))):
        p0 = body_c + rng.uniform(-0.12, 0.12, 2) * h
        fold = _curve(rng, p0, p0 + rng.uniform(-0.08, 0.08, 2) * h, rng.uniform(-0.3, 0.3))
        folds += [Stroke(r, width * 0.8, INK, taper=True) for r in _clip_runs(fold, body)]
    items[-1].strokes += folds
    for l in limbs:
        if not any(l is b for b in behind):
            items.append(shape_item(l))
    items.append(shape_item(head))
    face: list[Stroke] = []
    eye_items: list[Item] = []
    look = np.array([rng.uniform(-0.3, 0.3), rng.uniform(-0.2, 0.2)]) * hr
    for side in (-1, 1):
        ec = head_c + np.array([side * 0.38 * hr, -0.05 * hr]) + look
        er = hr * rng.uniform(0.14, 0.24)
        eye = _blob(rng, ec, er * 0.8, er, 0, wobble=0.05, n=36)
        eye_items.append(Item([Stroke(eye, width * 0.8, INK, closed=True)], fill=eye))
        pupil = _blob(rng, ec + look * 0.2, er * 0.35, er * 0.45, 0, wobble=0.02, n=24)
        eye_items.append(Item([], fill=pupil, solid=True))
        if rng.random() < 0.5:  # brow
            face.append(Stroke(_arc(rng, ec - np.array([0, 1.5 * er]), er, 0.4 * er, np.pi * 1.15, np.pi * 1.85),
                               width * 0.9, INK, taper=True))
    mouth_c = head_c + np.array([0, 0.45 * hr]) + look * 0.5
    face.append(Stroke(_arc(rng, mouth_c, 0.3 * hr, 0.12 * hr, 0.15 * np.pi, 0.85 * np.pi), width * 0.9, INK, taper=taper))
    items += eye_items
    items.append(Item(face))
    # hair strands from the top of the head, tapered
    hair = []
    for _ in range(int(rng.integers(0, 9))):
        a = rng.uniform(-np.pi * 0.95, -np.pi * 0.05)
        p0 = head_c + hr * 0.95 * np.array([np.cos(a), np.sin(a)])
        p1 = p0 + hr * rng.uniform(0.3, 0.9) * np.array([np.cos(a + rng.uniform(-0.8, 0.8)), np.sin(a) * 0.5 + 0.3])
        hair.append(Stroke(_curve(rng, p0, p1, rng.uniform(-0.4, 0.4)), width * rng.uniform(0.6, 1.0), INK, taper=True))
    items.append(Item(hair))
    # guides an animator draws first
    guides.append(_curve(rng, head_c, body_c + np.array([0, 0.25 * h]), rng.uniform(-0.2, 0.2)))
    guides.append(_blob(rng, head_c, hr * 1.05, hr * 1.05, 0, wobble=0.02, n=48))
    guides.append(_arc(rng, head_c, 0.15 * hr, hr, -np.pi / 2, np.pi / 2))
    guides.append(_arc(rng, head_c + np.array([0, 0.1 * hr]), hr, 0.1 * hr, 0, np.pi))
    if rng.random() < 0.5:
        guides.append(_blob(rng, body_c, h * 0.2, h * 0.26, 0, wobble=0.03))
    return items


def _box(rng, c, s, vp, width) -> tuple[Item, list[np.ndarray]]:
    """A box in one-point perspective towards vanishing point vp: straight ink edges."""
    x0, y0 = c[0] - s / 2, c[1] - s / 2
    front = np.array([[x0, y0], [x0 + s, y0], [x0 + s, y0 + s], [x0, y0 + s]])
    k = rng.uniform(0.15, 0.35)
    back = front + k * (vp - front)
    strokes = [Stroke(np.vstack([front[i], front[(i + 1) % 4]]), width, INK) for i in range(4)]
    strokes += [Stroke(np.vstack([back[i], back[(i + 1) % 4]]), width * 0.9, INK) for i in range(4)]
    strokes += [Stroke(np.vstack([front[i], back[i]]), width * 0.9, INK) for i in range(4)]
    for s_ in strokes:
        s_.pts = resample(s_.pts, 4.0)
    guides = [np.vstack([front[i], vp]) for i in range(4) if rng.random() < 0.6]
    return Item(strokes), guides


def _props(rng, w, h, width, scale, guides) -> list[Item]:
    items = []
    for _ in range(int(rng.integers(0, 3))):
        kind = rng.choice(["box", "hatch", "spiral", "squiggle", "star", "ground"])
        c = np.array([rng.uniform(0.1, 0.9) * w, rng.uniform(0.1, 0.9) * h])
        s = rng.uniform(0.08, 0.2) * h
        if kind == "box":
            vp = np.array([rng.uniform(-0.2, 1.2) * w, rng.uniform(-0.3, 0.4) * h])
            it, g = _box(rng, c, s, vp, width)
            items.append(it)
            guides += g
        elif kind == "hatch":
            ang = rng.uniform(0, np.pi)
            d = np.array([np.cos(ang), np.sin(ang)])
            n = np.array([-d[1], d[0]])
            gap = rng.uniform(2.5, 5.0) * width
            items.append(Item([Stroke(resample(np.vstack([c + n * k * gap - d * s / 2, c + n * k * gap + d * s / 2]), 4.0),
                                      width * 0.7, INK, taper=True) for k in range(int(rng.integers(3, 9)))]))
        elif kind == "spiral":
            th = np.linspace(0, rng.uniform(3, 6) * np.pi, 120)
            r = s * 0.5 * th / th[-1]
            items.append(Item([Stroke(np.stack([c[0] + r * np.cos(th), c[1] + r * np.sin(th)], 1), width, INK)]))
        elif kind == "squiggle":  # handwriting-like
            x = np.linspace(0, 2.5 * s, 90)
            y = 0.2 * s * np.sin(x / (0.08 * s) + rng.uniform(0, 6)) * (0.6 + 0.4 * np.sin(x / (0.3 * s)))
            items.append(Item([Stroke(np.stack([c[0] + x - s, c[1] + y], 1), width * 0.7, INK)]))
        elif kind == "star":
            k = int(rng.integers(4, 8))
            th = np.linspace(0, 2 * np.pi, 2 * k, endpoint=False) + rng.uniform(0, 1)
            r = np.where(np.arange(2 * k) % 2 == 0, s * 0.5, s * rng.uniform(0.2, 0.35))
            poly = np.stack([c[0] + r * np.cos(th), c[1] + r * np.sin(th)], 1)
            items.append(Item([Stroke(resample(poly, 3.0, closed=True), width, INK, closed=True)], fill=poly))
        else:  # ground line with a horizon guide
            y = rng.uniform(0.75, 0.95) * h
            line = resample(_curve(rng, (0.02 * w, y), (0.98 * w, y + rng.uniform(-0.05, 0.05) * h), rng.uniform(-0.03, 0.03)), 6.0)
            items.append(Item([Stroke(line, width, INK)]))
            guides.append(np.array([[0.0, y - 0.2 * h], [w - 1.0, y - 0.2 * h]]))
    return items


def make_drawing(rng: np.random.Generator, size: tuple[int, int]) -> Drawing:
    """A random clean drawing: one to three figures and a few props, with their guide lines."""
    w, h = size
    scale = h / 540.0
    width = float(rng.uniform(1.5, 6.0)) * scale
    guides: list[np.ndarray] = []
    items = _props(rng, w, h, width, scale, guides)
    n_fig = int(rng.choice([1, 1, 2, 3]))
    for i in range(n_fig):
        fh = h * rng.uniform(0.5, 1.0) / (1 + 0.35 * (n_fig - 1))
        c = np.array([w * (i + 0.5) / n_fig + rng.uniform(-0.1, 0.1) * w / n_fig, h * rng.uniform(0.45, 0.6)])
        items += _figure(rng, c, fh, width, scale, guides)
    if rng.random() < 0.3:  # a frame border or panel line
        m = rng.uniform(0.02, 0.06) * h
        border = np.array([[m, m], [w - m, m], [w - m, h - m], [m, h - m]])
        items.append(Item([Stroke(resample(border, 6.0, closed=True), width * 1.2, INK, closed=True)]))
    return Drawing((w, h), items, guides, width)


# ----------------------------------------------------------------------------------
# clean rendering


def draw_polyline(canvas: np.ndarray, pts: np.ndarray, width: float, value: float, closed: bool = False,
                  profile: np.ndarray | None = None, scale: float = 1.0) -> None:
    """Anti-aliased polyline of float `width` (pixels at 1x) into `canvas` drawn at `scale`;
    with `profile` the width varies along the points."""
    if profile is None or np.all(profile == profile[0]):
        t = max(1, int(round(width * scale * (profile[0] if profile is not None else 1.0))))
        cv2.polylines(canvas, [fixed(pts, scale)], closed, value, t, cv2.LINE_AA, _SHIFT)
        return
    for i in range(len(pts) - 1):
        t = max(1, int(round(width * scale * profile[i])))
        cv2.polylines(canvas, [fixed(pts[i:i + 2], scale)], False, value, t, cv2.LINE_AA, _SHIFT)


def render_clean(d: Drawing) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(ink, trace) coverages, float32 in [0, 1] (trace lies under the ink), and the class
    (RED, BLUE, GREEN; 0 elsewhere) of each trace pixel, uint8."""
    w, h = d.size
    s = SUPERSAMPLE
    ink = np.zeros((h * s, w * s), np.uint8)
    trace = np.zeros_like(ink)
    cls = np.zeros((h, w), np.uint8)
    for item in d.items:
        if item.fill is not None:
            fill = np.zeros_like(ink)
            cv2.fillPoly(fill, [fixed(item.fill, s)], 255, cv2.LINE_AA, _SHIFT)
            hide = fill > 127
            ink[hide] = 0
            trace[hide] = 0
            if item.solid:
                np.maximum(ink, fill, out=ink)
        for st in item.strokes:
            canvas = ink if st.cls == INK else trace
            pts = resample(st.pts, 2.0, st.closed) if st.taper else st.pts
            draw_polyline(canvas, pts, st.width, 255, st.closed and not st.taper,
                          taper_profile(len(pts), st.taper), s)
            if st.cls != INK:
                draw_polyline(cls, pts, st.width + 2, st.cls, st.closed)
    ink_f = cv2.resize(ink, (w, h), interpolation=cv2.INTER_AREA).astype(np.float32) / 255.0
    tr_f = cv2.resize(trace, (w, h), interpolation=cv2.INTER_AREA).astype(np.float32) / 255.0
    return ink_f, tr_f * (1.0 - ink_f), cls
