"""Independent ways of turning a clean `drawings.Drawing` into a rough scan (training data).

Each family is its own model of how a rough looks, so that no single generator's look is
what the refiner learns (the project's own `synth.py` rough is one more family, in
`data.py`). Every family draws the drawing's strokes as passes of a medium (their band
of marks is about as wide as the clean line, so the clean line lies where the rough's mass
is), adds what is not in the clean drawing (guide lines, searching strokes, under-drawing,
smudges), and finishes with a paper and a capture:

* ``graphite``: soft pencil on toothy paper, one or two passes, pressure varying along the
  stroke, pencil lifts (1-3 px gaps), light guide lines, smudges; flatbed scan.
* ``ballpoint``: thin dark pen, two to four hairy passes per line, ink skipping, blobs at
  stroke starts, faint guide lines; flatbed scan.
* ``sketchy``: loose multi-strokes, short overlapping dashes per line, big overshoots, ghost
  lines beside the drawn one, heavy guides, lines of hidden shapes only half erased.
* ``colour_under``: a colour-pencil under-drawing (blue, red, violet or orange, sketchy,
  with its guides) and the clean pass on top in graphite or pen.
* ``photo`` (held out of training): a phone photo of a graphite, ballpoint or sketchy rough:
  perspective, a cast shadow, strong uneven light and colour cast, defocus, resampling,
  sharpening halos, chroma noise, hard JPEG. `capture_photo` warps the targets with the page.

`render_rough(family, drawing, rng)` returns the rough RGB uint8 and (for ``photo``) the
page homography; training and evaluation pair it with `drawings.render_clean`.
"""

from __future__ import annotations

import cv2
import numpy as np

from .drawings import CLASS_RGB, INK, Drawing, Stroke, fixed, resample, taper_profile

#: families used for training, and the one held out of training for every reported figure
TRAIN_FAMILIES = ("graphite", "ballpoint", "sketchy", "colour_under")
HELD_OUT_FAMILY = "photo"
FAMILIES = TRAIN_FAMILIES + (HELD_OUT_FAMILY,)
#: rough strokes are drawn at this supersampling (half-pixel widths)
_SS = 2
_SHIFT = 4


def noise(rng: np.random.Generator, size: tuple[int, int], cell: float) -> np.ndarray:
    """Smooth noise in about [-1, 1], features about `cell` pixels wide (float32 h x w)."""
    w, h = size
    gh, gw = max(2, int(h / cell) + 2), max(2, int(w / cell) + 2)
    return cv2.resize(rng.uniform(-1, 1, (gh, gw)).astype(np.float32), (w, h), interpolation=cv2.INTER_CUBIC)


class Layers:
    """Marks of one medium per (layer, pass): darkness canvases at `_SS` x, combined like
    pigment (overlapping passes darken), erased where a later shape's fill covers them."""

    def __init__(self, size: tuple[int, int]):
        self.w, self.h = size
        self.canvases: dict[tuple[str, int], np.ndarray] = {}
        self.colours: dict[str, tuple] = {}

    def draw(self, layer: str, rgb, k: int, pts: np.ndarray, thick: float, dark: float) -> None:
        key = (layer, k)
        if key not in self.canvases:
            self.canvases[key] = np.zeros((self.h * _SS, self.w * _SS), np.uint8)
        self.colours[layer] = rgb
        t = max(1, int(round(thick * _SS)))
        cv2.polylines(self.canvases[key], [fixed(pts, _SS)], False, int(np.clip(dark, 0, 1) * 255), t,
                      cv2.LINE_AA, _SHIFT)

    def erase(self, poly: np.ndarray, keep: float = 0.0) -> None:
        x0, y0 = np.floor(poly.min(0) * _SS).astype(int) - 2
        x1, y1 = np.ceil(poly.max(0) * _SS).astype(int) + 2
        x0, y0 = max(0, x0), max(0, y0)
        x1, y1 = min(self.w * _SS, x1), min(self.h * _SS, y1)
        if x1 <= x0 or y1 <= y0:
            return
        mask = np.zeros((y1 - y0, x1 - x0), np.uint8)
        cv2.fillPoly(mask, [fixed(poly, _SS) - np.array([[x0, y0]]) * (1 << _SHIFT)], 1, cv2.LINE_8, _SHIFT)
        hide = mask.astype(bool)
        for c in self.canvases.values():
            sub = c[y0:y1, x0:x1]
            sub[hide] = (sub[hide] * keep).astype(np.uint8)

    def alphas(self) -> dict[str, np.ndarray]:
        """Per layer: coverage at 1x, float32 in [0, 1]."""
        out: dict[str, np.ndarray] = {}
        for (layer, _k), c in self.canvases.items():
            a = cv2.resize(c, (self.w, self.h), interpolation=cv2.INTER_AREA).astype(np.float32) / 255.0
            out[layer] = 1 - (1 - out[layer]) * (1 - a) if layer in out else a
        return out


def _passes(rng, st: Stroke, *, n_pass: int, jitter: float, overshoot: float, lift: float, thick: float,
            dark: tuple[float, float], dash: float = 0.0, scale: float = 1.0):
    """Rough rendition of one stroke: yields (pass index, polyline, thickness, darkness).

    Closed strokes are split into 1-3 overlapping pieces; every piece overshoots its ends;
    each pass wanders sideways smoothly (`jitter` px), with pressure varying along it and
    pencil lifts (probability `lift` per few pixels); `dash` > 0 cuts passes into short
    overlapping dashes of about that length, each with its own offset (loose sketching)."""
    step = 2.0
    pts = resample(st.pts, step, st.closed)
    n = len(pts)
    if st.closed and n > 12:
        k = int(rng.integers(1, 4))
        start = int(rng.integers(n))
        pts = np.roll(pts[:-1], -start, axis=0)
        cuts = np.sort(rng.choice(np.arange(3, len(pts) - 3), k - 1, replace=False)) if k > 1 else np.array([], int)
        bounds = np.concatenate([[0], cuts, [len(pts)]])
        ext = np.vstack([pts, pts[:6]])
        pieces = [ext[a:min(len(ext), b + int(rng.integers(1, 6)))] for a, b in zip(bounds[:-1], bounds[1:])]
    else:
        pieces = [pts]
    prof_all = taper_profile(n, st.taper)
    for piece in pieces:
        if len(piece) < 2:
            continue
        d0, d1 = piece[0] - piece[1], piece[-1] - piece[-2]
        d0 /= max(1e-6, float(np.hypot(*d0)))
        d1 /= max(1e-6, float(np.hypot(*d1)))
        o0, o1 = rng.uniform(0, overshoot, 2)
        piece = np.vstack([piece[0] + d0 * o0, piece, piece[-1] + d1 * o1])
        piece = resample(piece, step)
        m = len(piece)
        tang = np.gradient(piece, axis=0)
        nrm = np.stack([-tang[:, 1], tang[:, 0]], 1) / np.maximum(1e-6, np.hypot(*tang.T))[:, None]
        s = np.arange(m) * step
        prof = np.interp(np.linspace(0, 1, m), np.linspace(0, 1, len(prof_all)), prof_all)
        for k in range(n_pass):
            off = (jitter * np.sin(2 * np.pi * s / rng.uniform(25, 90) * scale ** -1 + rng.uniform(0, 7))
                   + 0.4 * jitter * np.sin(2 * np.pi * s / rng.uniform(6, 15) + rng.uniform(0, 7))
                   + rng.uniform(-jitter, jitter))
            line = piece + nrm * off[:, None]
            press = rng.uniform(*dark) * (0.8 + 0.2 * np.sin(2 * np.pi * s / rng.uniform(30, 120) + rng.uniform(0, 7)))
            press = press * (0.55 + 0.45 * prof) * (1.0 if k == 0 else rng.uniform(0.6, 1.0))
            chunk = max(2, int(round((dash or rng.uniform(6, 16)) / step)))
            i = 0
            while i < m - 1:
                if i > 0 and rng.random() < lift:
                    i += int(rng.integers(1, 3))  # the pencil lifted: a 2-4 px gap
                    continue
                j = min(m, i + chunk + 1)
                seg = line[i:j]
                if dash:  # each dash sits a little off the line, and overlaps the next
                    seg = seg + nrm[i] * rng.uniform(-jitter, jitter)
                w = thick * max(0.35, float(prof[min(i, m - 1)]))
                yield k, seg, w, float(np.mean(press[i:j]))
                i = j - 1 if not dash else max(i + 1, j - 1 - int(rng.integers(0, max(1, chunk // 3))))


def _pencil_rgb(rng, cls: int) -> tuple:
    """A coloured pencil near the trace class's hue, or graphite for ink."""
    if cls == INK:
        g = float(rng.uniform(45, 95))
        return (g, g, g + rng.uniform(0, 15))
    base = np.array(CLASS_RGB[cls], np.float32)
    return tuple(np.clip(base + rng.uniform(-25, 25, 3), 0, 255))


def paper(rng, size) -> np.ndarray:
    w, h = size
    base = np.array([rng.uniform(228, 252), rng.uniform(226, 250), rng.uniform(215, 245)], np.float32)
    img = np.empty((h, w, 3), np.float32)
    tex = 3.0 * noise(rng, size, rng.uniform(20, 80)) + rng.normal(0, rng.uniform(0.5, 2.5), (h, w)).astype(np.float32)
    img[:] = base
    img += tex[..., None]
    return img


def paper_tooth(rng, size, strength: float) -> np.ndarray:
    """Paper tooth: the fraction of pencil that sticks, per pixel (grain, slightly streaky)."""
    w, h = size
    g = rng.random((h, w), dtype=np.float32)
    if rng.random() < 0.5:
        g = cv2.GaussianBlur(g, (0, 0), sigmaX=rng.uniform(0.5, 1.5), sigmaY=0.4)
        g = (g - g.min()) / max(1e-6, float(np.ptp(g)))
    return 1.0 - strength * g


def _composite(paper: np.ndarray, layers: Layers, grain: np.ndarray | None, grain_layers=()) -> np.ndarray:
    img = paper
    for name, a in layers.alphas().items():
        if grain is not None and name in grain_layers:
            a = a * grain
        rgb = np.asarray(layers.colours[name], np.float32) / 255.0
        img *= 1.0 - a[..., None] * (1.0 - rgb)
    return img


def _draw(rng, d: Drawing, layers: Layers, style: dict, erase_keep: float = 0.0,
          ink_layer: str = "ink", colour_of=None) -> None:
    """Every item of `d` in paint order, fills erasing what lies under them."""
    scale = d.size[1] / 540.0
    for item in d.items:
        if item.fill is not None:
            layers.erase(item.fill, erase_keep)
            if item.solid:  # filled in with scribbles of the medium
                layers.draw(ink_layer, colour_of(INK), 0, item.fill, 1.0, style["dark"][1])
                _fill_scribble(layers, ink_layer, colour_of(INK), item.fill, style["dark"][1])
        for st in item.strokes:
            name = ink_layer if st.cls == INK else f"trace{st.cls}"
            rgb = colour_of(st.cls)
            for k, seg, thick, dark in _passes(rng, st, n_pass=style["n_pass"](), jitter=style["jitter"] * st.width,
                                              overshoot=style["overshoot"] * scale, lift=style["lift"],
                                              thick=style["thick"] * st.width, dark=style["dark"],
                                              dash=style.get("dash", 0.0) * scale, scale=scale):
                layers.draw(name, rgb, k, seg, thick, dark)


def _fill_scribble(layers: Layers, name: str, rgb, poly: np.ndarray, dark: float) -> None:
    key = (name, 0)
    if key not in layers.canvases:
        layers.canvases[key] = np.zeros((layers.h * _SS, layers.w * _SS), np.uint8)
        layers.colours[name] = rgb
    cv2.fillPoly(layers.canvases[key], [fixed(poly, _SS)], int(dark * 255), cv2.LINE_AA, _SHIFT)


def _guides(rng, d: Drawing, layers: Layers, name: str, rgb, dark: tuple[float, float], thick: float,
            keep: float = 1.0) -> None:
    for g in d.guides:
        if rng.random() > keep:
            continue
        st = Stroke(resample(g, 3.0), d.width)
        for k, seg, t, dk in _passes(rng, st, n_pass=1, jitter=0.5, overshoot=8, lift=0.08, thick=thick, dark=dark):
            layers.draw(name, rgb, k, seg, t, dk)


def _smudges(rng, size, layers: Layers, name: str, rgb) -> None:
    """Soft graphite smudges: blurred blobs of low darkness."""
    w, h = size
    key = (name + "_smudge", 0)
    c = np.zeros((h * _SS, w * _SS), np.uint8)
    for _ in range(int(rng.integers(0, 5))):
        ctr = (int(rng.uniform(0, w * _SS)), int(rng.uniform(0, h * _SS)))
        ax = (int(rng.uniform(10, 60) * _SS), int(rng.uniform(5, 25) * _SS))
        cv2.ellipse(c, ctr, ax, rng.uniform(0, 180), 0, 360, int(rng.uniform(15, 50)), -1)
    layers.canvases[key] = cv2.GaussianBlur(c, (0, 0), 8 * _SS)
    layers.colours[name + "_smudge"] = rgb


# ----------------------------------------------------------------------------------
# families


def _graphite(rng, d: Drawing) -> np.ndarray:
    layers = Layers(d.size)
    lead = _pencil_rgb(rng, INK)
    trace_rgb = {c: _pencil_rgb(rng, c) for c in (1, 2, 3)}
    colour_of = lambda c: lead if c == INK else trace_rgb[c]  # noqa: E731
    _guides(rng, d, layers, "guide", lead, (0.12, 0.35), rng.uniform(0.4, 0.8) * d.width, keep=rng.uniform(0.3, 1.0))
    style = dict(n_pass=lambda: int(rng.integers(1, 3)), jitter=rng.uniform(0.1, 0.3), overshoot=rng.uniform(0, 5),
                 lift=rng.uniform(0.02, 0.1), thick=rng.uniform(0.6, 1.0), dark=(rng.uniform(0.35, 0.7), 0.95))
    _draw(rng, d, layers, style, colour_of=colour_of)
    if rng.random() < 0.5:
        _smudges(rng, d.size, layers, "ink", lead)
    grain = paper_tooth(rng, d.size, rng.uniform(0.2, 0.6))
    layers_with_grain = [n for n in layers.colours if not n.endswith("_smudge")]
    return _composite(paper(rng, d.size), layers, grain, layers_with_grain)


def _ballpoint(rng, d: Drawing) -> np.ndarray:
    layers = Layers(d.size)
    v = rng.uniform(15, 45)
    pen = (v, v, v + rng.uniform(0, 30))  # black or blue-black, never a colour line
    trace_rgb = {c: _pencil_rgb(rng, c) for c in (1, 2, 3)}
    colour_of = lambda c: pen if c == INK else trace_rgb[c]  # noqa: E731
    _guides(rng, d, layers, "guide", pen, (0.15, 0.4), 0.5, keep=rng.uniform(0.2, 0.8))
    n_max = int(rng.integers(2, 5))
    style = dict(n_pass=lambda: int(rng.integers(1, n_max + 1)), jitter=rng.uniform(0.15, 0.35),
                 overshoot=rng.uniform(1, 6), lift=rng.uniform(0.05, 0.15), thick=rng.uniform(0.3, 0.55),
                 dark=(0.6, 1.0))
    _draw(rng, d, layers, style, colour_of=colour_of)
    # blobs where the pen starts
    for item in d.items:
        for st in item.strokes:
            if st.cls == INK and rng.random() < 0.3:
                layers.draw("ink", pen, 0, st.pts[:2], max(1.0, 0.8 * st.width), 1.0)
    skip = paper_tooth(rng, d.size, rng.uniform(0.0, 0.35))  # ink skipping on the paper's texture
    return _composite(paper(rng, d.size), layers, skip, ("ink", "guide"))


def _sketchy(rng, d: Drawing) -> np.ndarray:
    layers = Layers(d.size)
    lead = _pencil_rgb(rng, INK)
    trace_rgb = {c: _pencil_rgb(rng, c) for c in (1, 2, 3)}
    colour_of = lambda c: lead if c == INK else trace_rgb[c]  # noqa: E731
    _guides(rng, d, layers, "guide", lead, (0.2, 0.45), rng.uniform(0.4, 0.8) * d.width)
    n_max = int(rng.integers(2, 6))
    style = dict(n_pass=lambda: int(rng.integers(2, n_max + 1)), jitter=rng.uniform(0.25, 0.5),
                 overshoot=rng.uniform(3, 12), lift=rng.uniform(0.0, 0.06), thick=rng.uniform(0.35, 0.7),
                 dark=(rng.uniform(0.3, 0.55), 0.85), dash=rng.uniform(12, 45))
    _draw(rng, d, layers, style, erase_keep=rng.uniform(0.0, 0.4), colour_of=colour_of)
    # searching strokes: lighter lines beside the drawn ones that the clean-up leaves out
    for item in d.items:
        for st in item.strokes:
            if st.cls == INK and rng.random() < 0.4 and len(st.pts) > 3:
                shift = rng.uniform(1.5, 3.5) * st.width * rng.choice([-1, 1])
                pts = resample(st.pts, 2.0, st.closed)
                tang = np.gradient(pts, axis=0)
                nrm = np.stack([-tang[:, 1], tang[:, 0]], 1) / np.maximum(1e-6, np.hypot(*tang.T))[:, None]
                a, b = sorted(rng.integers(0, len(pts), 2))
                if b - a > 4:
                    layers.draw("guide", lead, 1, pts[a:b] + nrm[a:b] * shift, 0.5 * st.width, rng.uniform(0.15, 0.35))
    grain = paper_tooth(rng, d.size, rng.uniform(0.2, 0.5))
    return _composite(paper(rng, d.size), layers, grain, tuple(layers.colours))


def _colour_under(rng, d: Drawing) -> np.ndarray:
    layers = Layers(d.size)
    under = {"blue": (110, 150, 230), "red": (235, 120, 110), "violet": (170, 120, 220),
             "orange": (240, 160, 90)}[str(rng.choice(["blue", "red", "violet", "orange"]))]
    under = tuple(np.clip(np.array(under) + rng.uniform(-20, 20, 3), 0, 255))
    _guides(rng, d, layers, "under", under, (0.3, 0.7), rng.uniform(0.5, 0.9) * d.width)
    loose = dict(n_pass=lambda: int(rng.integers(1, 4)), jitter=rng.uniform(0.3, 0.8), overshoot=rng.uniform(3, 12),
                 lift=0.05, thick=rng.uniform(0.5, 0.9), dark=(0.35, 0.8), dash=rng.uniform(15, 50))
    _draw(rng, d, layers, loose, erase_keep=1.0, ink_layer="under", colour_of=lambda c: under)
    for key in [k for k in layers.canvases if k[0].startswith("trace")]:  # the under-drawing is all one colour
        layers.canvases[("under", 10 + key[1])] = layers.canvases.pop(key)
    if rng.random() < 0.5:
        lead = _pencil_rgb(rng, INK)
        clean = dict(n_pass=lambda: 1, jitter=rng.uniform(0.05, 0.2), overshoot=rng.uniform(0, 3), lift=0.03,
                     thick=rng.uniform(0.75, 1.0), dark=(0.7, 1.0))
    else:  # inked over the pencil
        v = rng.uniform(0, 40)
        lead = (v, v, v)
        clean = dict(n_pass=lambda: 1, jitter=0.05, overshoot=rng.uniform(0, 2), lift=0.01,
                     thick=rng.uniform(0.85, 1.05), dark=(0.9, 1.0))
    trace_rgb = {c: _pencil_rgb(rng, c) for c in (1, 2, 3)}
    under_layers = dict(layers.canvases), dict(layers.colours)
    layers.canvases, layers.colours = {}, {}
    _draw(rng, d, layers, clean, colour_of=lambda c: lead if c == INK else trace_rgb[c])
    layers.canvases.update(under_layers[0])  # the clean pass does not erase the under-drawing
    layers.colours.update(under_layers[1])
    grain = paper_tooth(rng, d.size, rng.uniform(0.1, 0.4))
    return _composite(paper(rng, d.size), layers, grain, ("under",))


_STYLES = {"graphite": _graphite, "ballpoint": _ballpoint, "sketchy": _sketchy, "colour_under": _colour_under}


def scan(rng, img: np.ndarray) -> np.ndarray:
    """Flatbed capture of a float RGB page: blur, sometimes a low scan resolution scaled up,
    sensor noise, 8 bits, JPEG."""
    img = cv2.GaussianBlur(img, (0, 0), float(rng.uniform(0.4, 1.3)))
    if rng.random() < 0.35:
        img = resample_down_up(rng, img)
    return sensor_and_jpeg(rng, img, noise=(0.5, 3), jpeg_p=0.7, quality=(70, 95))


def sensor_and_jpeg(rng, img: np.ndarray, noise: tuple[float, float], jpeg_p: float,
                    quality: tuple[int, int]) -> np.ndarray:
    """Float RGB -> uint8 with sensor noise (sigma drawn from `noise`) and, with probability
    `jpeg_p`, a JPEG round trip at a quality drawn from `quality`."""
    img += rng.normal(0, rng.uniform(*noise), img.shape).astype(np.float32)
    out = np.clip(img + 0.5, 0, 255).astype(np.uint8)
    if rng.random() < jpeg_p:
        ok, buf = cv2.imencode(".jpg", out, [cv2.IMWRITE_JPEG_QUALITY, int(rng.integers(*quality))])
        out = cv2.imdecode(buf, cv2.IMREAD_UNCHANGED)
    return out


def resample_down_up(rng, img: np.ndarray) -> np.ndarray:
    """A capture at 55-90 % of the frame's resolution, scaled up to the frame."""
    h, w = img.shape[:2]
    f = rng.uniform(0.55, 0.9)
    small = cv2.resize(img, (max(8, int(w * f)), max(8, int(h * f))), interpolation=cv2.INTER_AREA)
    return cv2.resize(small, (w, h), interpolation=cv2.INTER_LINEAR if rng.random() < 0.5 else cv2.INTER_CUBIC)


def page_homography(rng, size) -> np.ndarray:
    """A phone held slightly off square: each page corner moves by up to 4 % of the frame."""
    w, h = size
    src = np.float32([[0, 0], [w, 0], [w, h], [0, h]])
    dst = src + rng.uniform(-0.04, 0.04, (4, 2)).astype(np.float32) * np.float32([w, h])
    return cv2.getPerspectiveTransform(src, dst)


def capture_photo(rng, img: np.ndarray, hom: np.ndarray) -> np.ndarray:
    """Phone photo of a float RGB page (page warped by `hom`): shadow, light, colour, optics."""
    h, w = img.shape[:2]
    img = cv2.warpPerspective(img, hom, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    # uneven light: a broad gradient and a vignette
    ang = rng.uniform(0, 2 * np.pi)
    ramp = (np.cos(ang) * xx / w + np.sin(ang) * yy / h)
    ramp = (ramp - ramp.min()) / max(1e-6, float(np.ptp(ramp)))
    light = 1.0 - rng.uniform(0.1, 0.4) * ramp
    r2 = ((xx / w - 0.5) ** 2 + (yy / h - 0.5) ** 2) / 0.5
    light *= 1.0 - rng.uniform(0.0, 0.3) * r2
    # cast shadow of a hand or a phone: a soft-edged polygon, darker and bluer
    if rng.random() < 0.8:
        k = int(rng.integers(3, 6))
        c = np.array([rng.uniform(0, w), rng.uniform(0, h)])
        th = np.sort(rng.uniform(0, 2 * np.pi, k))
        poly = c + np.stack([np.cos(th), np.sin(th)], 1) * rng.uniform(0.3, 0.8, (k, 1)) * max(w, h)
        m = np.zeros((h, w), np.float32)
        cv2.fillPoly(m, [poly.astype(np.int32)], 1.0)
        m = cv2.GaussianBlur(m, (0, 0), rng.uniform(3, 25))
        depth = rng.uniform(0.15, 0.45)
        img *= (1.0 - depth * m[..., None] * np.array([1.0, 0.97, 0.9], np.float32))
    img *= light[..., None]
    img *= rng.uniform(0.85, 1.1, 3).astype(np.float32)  # white balance
    # optics and processing: defocus, lower resolution, sharpening, chroma noise, JPEG
    img = cv2.GaussianBlur(img, (0, 0), float(rng.uniform(0.6, 1.6)))
    img = resample_down_up(rng, img)
    if rng.random() < 0.7:
        amt = rng.uniform(0.3, 1.0)
        img = cv2.addWeighted(img, 1 + amt, cv2.GaussianBlur(img, (0, 0), 2.0), -amt, 0)
    noise = rng.normal(0, rng.uniform(1, 5), (h // 2 + 1, w // 2 + 1, 3)).astype(np.float32)
    img += cv2.resize(noise, (w, h), interpolation=cv2.INTER_LINEAR)
    out = np.clip(img + 0.5, 0, 255).astype(np.uint8)
    ok, buf = cv2.imencode(".jpg", out, [cv2.IMWRITE_JPEG_QUALITY, int(rng.integers(40, 80))])
    return cv2.imdecode(buf, cv2.IMREAD_UNCHANGED)


def render_rough(family: str, d: Drawing, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray | None]:
    """(rough RGB uint8, page homography or None) of drawing `d` in `family`."""
    if family == HELD_OUT_FAMILY:
        page = _STYLES[str(rng.choice(["graphite", "ballpoint", "sketchy"]))](rng, d)
        hom = page_homography(rng, d.size)
        return capture_photo(rng, page, hom), hom
    if family not in _STYLES:
        raise ValueError(f"unknown rough family {family!r}; one of {', '.join(FAMILIES)}")
    return scan(rng, _STYLES[family](rng, d)), None
