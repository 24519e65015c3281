"""Synthetic cel animation with ground truth: the test bed of every image stage.

QuickArt's image stages (line refinement, colouring from a reference, colour-trace
shadows, lighting, in-betweening) need drawings whose right answer is known. This
module draws them, deterministically from a seed, so the same scene can be rebuilt
anywhere without shipping data sets:

* a :class:`Character` is a hierarchy of closed smooth parts (body, head, hair, limbs,
  eyes, irises, an eye highlight, a mouth, ...) with flat colours; some parts carry a
  shadow region (bounded by a RED colour-trace line) and a highlight region (bounded by
  a BLUE trace line), as in production cels;
* :func:`render` draws it at a continuous time ``t`` (in frames) with large non-rigid
  motion (a travelling root, joint rotations, squash and stretch, shape deformation)
  and returns a :class:`SynthFrame`: clean line art, a rough pencil scan of the same
  drawing, the finished flat-colour cel, an int32 region map with consistent ids across
  frames, the palette, shadow/highlight/ink masks and the outline polygons (point-to-point
  correspondences between frames, for in-betweening ground truth);
* :func:`render_background` paints a simple opaque background, :func:`make_fx` builds a
  small effect (a bouncing outlined ball with orbiting sparkles) rendered the same way;
* :func:`sequence` renders integer frames at a given speed, and :func:`write_demo_studio`
  writes a small demo shot folder that follows ``STUDIO_LAYOUT.md``.

Conventions: frames are RGBA uint8 (H, W, 4) in RGB order, as everywhere in QuickArt.
Label 0 is outside the character, :data:`INK_LABEL` (-1) marks ink-line pixels (ink
coverage >= 50 %), positive ids are the regions of ``Character.regions``. Pixels at the
faint anti-aliased fringe of a line (0 < coverage < 50 %) keep their region label but
their colour is blended with the ink. All randomness comes from
``numpy.random.default_rng`` seeded by the character seed and the time, so every output
is reproducible bit for bit.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import cv2
import numpy as np
import yaml

from .. import images

# ----------------------------------------------------------------------------------
# constants

#: Design resolution: character sizes and motion amplitudes are given for this frame.
DESIGN_SIZE = (960, 540)
#: Label of ink-line pixels in ``SynthFrame.labels``.
INK_LABEL = -1
#: Colour-trace line colours (RGB): red bounds shadows, blue bounds highlights.
TRACE_SHADOW_RGB = (220, 30, 30)
TRACE_HIGHLIGHT_RGB = (30, 60, 220)
INK_RGB = (0, 0, 0)
#: Direction towards the key light in screen coordinates (upper left), unit length.
LIGHT_DIR = (-0.6, -0.8)
#: Ink outline and trace line widths in pixels at the design size.
INK_WIDTH = 3.0
TRACE_WIDTH = 2.0
_SHIFT = 4  # OpenCV sub-pixel bits for drawing
_ONE = 1 << _SHIFT

PAPER_RGB = (243, 240, 231)
GRAPHITE_RGB = (62, 62, 72)

TONE_BASE, TONE_SHADOW, TONE_HIGHLIGHT = "base", "shadow", "highlight"


# ----------------------------------------------------------------------------------
# data


@dataclass(frozen=True)
class Shape:
    """A closed smooth blob in part-local coordinates.

    ``r(theta) = 1 + sum_k amp_k * (1 + deform * sin(2 pi t / period_k + phase_k)) *
    cos(k theta + angle_k)`` scaled to an ellipse of radii ``(rx, ry)`` centred at
    ``(cx, cy)``. ``harmonics`` is a tuple of ``(k, amp, angle, phase, period)``.
    """

    rx: float
    ry: float
    cx: float = 0.0
    cy: float = 0.0
    harmonics: tuple[tuple[int, float, float, float, float], ...] = ()
    deform: float = 0.0
    points: int = 64


@dataclass(frozen=True)
class Part:
    """One drawn part (or an invisible pivot when ``shape`` is None).

    The part's frame is ``parent * T(joint) * R(angle(t)) * S(1, stretch(t))`` with
    ``angle(t) = angle + swing * sin(2 pi t / period + phase) + spin * t``.
    """

    name: str
    parent: str | None
    joint: tuple[float, float]
    shape: Shape | None
    material: str = ""
    angle: float = 0.0
    swing: float = 0.0
    period: float = 48.0
    phase: float = 0.0
    spin: float = 0.0
    stretch: float = 0.0
    outlined: bool = True
    shadow: bool = False
    #: highlight island in part-local coordinates (drawn with a blue trace), or None
    highlight: Shape | None = None


@dataclass(frozen=True)
class RootMotion:
    """Motion of the root: a Lissajous path, a bounce, a tilt and squash/stretch."""

    cx: float  # centre, fraction of frame width
    cy: float  # centre, fraction of frame height
    ax: float  # x amplitude, design pixels
    ay: float
    period_x: float  # frames
    period_y: float
    phase: float
    bounce: float  # design pixels
    bounce_period: float
    tilt: float  # radians
    tilt_period: float
    squash: float  # relative amplitude
    scale: float = 1.0


@dataclass(frozen=True)
class Region:
    """One semantic colour region of a character; ids are stable across frames."""

    id: int
    name: str  # e.g. "head_shadow"
    part: str  # e.g. "head"
    material: str  # e.g. "skin"
    tone: str  # "base", "shadow" or "highlight"
    rgb: tuple[int, int, int]

    @property
    def color_name(self) -> str:
        """The palette name of this colour, e.g. ``skin_shadow``."""
        return self.material if self.tone == TONE_BASE else f"{self.material}_{self.tone}"


@dataclass(frozen=True)
class Character:
    """A seeded character (or effect): parts in drawing order, root motion, regions."""

    seed: int
    kind: str  # "char" or "fx"
    parts: tuple[Part, ...]  # back to front
    motion: RootMotion
    materials: dict[str, tuple[int, int, int]] = field(hash=False)  # colour name -> RGB
    regions: tuple[Region, ...] = ()

    def region_ids(self, part: str) -> dict[str, int]:
        """tone -> region id for one part."""
        return {r.tone: r.id for r in self.regions if r.part == part}

    @property
    def palette(self) -> dict[int, Region]:
        return {r.id: r for r in self.regions}


@dataclass
class SynthFrame:
    """Everything drawn for one character at one time, with its ground truth."""

    t: float
    size: tuple[int, int]  # (width, height)
    clean: np.ndarray  # RGBA uint8: black ink + red/blue trace lines on white, opaque
    rough: np.ndarray | None  # RGBA uint8: rough pencil scan on paper, opaque
    color: np.ndarray  # RGBA uint8: finished flat cel on transparency
    labels: np.ndarray  # int32 region ids, 0 outside, INK_LABEL on ink
    regions: np.ndarray  # int32 region ids before the ink is marked (0 outside)
    palette: dict[int, Region]
    shadow: np.ndarray  # bool: shadow-tone regions
    highlight: np.ndarray  # bool: highlight-tone regions
    ink: np.ndarray  # bool: ink line pixels (coverage >= 50 %)
    ink_alpha: np.ndarray  # uint8 anti-aliased ink coverage
    trace_shadow: np.ndarray  # uint8 coverage of the red (shadow) trace lines
    trace_highlight: np.ndarray  # uint8 coverage of the blue (highlight) trace lines
    silhouette: np.ndarray  # bool: inside some part (hard fill, without the outer ink)
    outlines: dict[str, np.ndarray]  # part name -> (N, 2) float32 screen points

    @property
    def clean_transparent(self) -> np.ndarray:
        """The clean lines on transparency: line colours with coverage as alpha."""
        return lines_on_transparency(self.ink_alpha, self.trace_shadow, self.trace_highlight)

    def color_of(self, region_id: int) -> tuple[int, int, int]:
        return self.palette[region_id].rgb


# ----------------------------------------------------------------------------------
# characters


def _harmonics(rng: np.random.Generator, ks: Sequence[int], amp: float) -> tuple:
    return tuple(
        (int(k), float(rng.uniform(0.3, 1.0) * amp / k ** 0.5), float(rng.uniform(0, 2 * math.pi)),
         float(rng.uniform(0, 2 * math.pi)), float(rng.uniform(30, 70)))
        for k in ks
    )


def _shadow_tone(rgb: Sequence[int]) -> tuple[int, int, int]:
    r, g, b = (float(c) for c in rgb)
    return (int(r * 0.74), int(g * 0.70), int(min(255, b * 0.80 + 18)))


def _highlight_tone(rgb: Sequence[int]) -> tuple[int, int, int]:
    return tuple(int(c + (255 - c) * 0.5) for c in rgb)  # type: ignore[return-value]


def _jitter_rgb(rng: np.random.Generator, rgb: Sequence[int], amount: int = 12) -> tuple[int, int, int]:
    return tuple(int(np.clip(c + rng.integers(-amount, amount + 1), 40, 250)) for c in rgb)  # type: ignore[return-value]


_HAIR = [(92, 62, 140), (200, 120, 60), (60, 90, 150), (170, 60, 80), (230, 190, 90)]
_SHIRT = [(70, 150, 200), (220, 90, 90), (90, 170, 110), (240, 170, 60), (150, 110, 190)]
_PANTS = [(60, 70, 110), (110, 80, 60), (70, 100, 90), (90, 90, 100)]
_SKIN = [(250, 221, 196), (240, 200, 170), (200, 150, 115)]
_IRIS = [(60, 110, 170), (120, 70, 40), (60, 130, 80), (140, 60, 140)]


def _finish(seed: int, kind: str, parts: list[Part], motion: RootMotion,
            base: dict[str, tuple[int, int, int]]) -> Character:
    """Assign region ids and shadow/highlight tones; make every colour name distinct in RGB."""
    materials: dict[str, tuple[int, int, int]] = {}
    used: set[tuple[int, int, int]] = {INK_RGB, TRACE_SHADOW_RGB, TRACE_HIGHLIGHT_RGB}

    def claim(name: str, rgb: tuple[int, int, int]) -> tuple[int, int, int]:
        if name in materials:
            return materials[name]
        r, g, b = rgb
        while (r, g, b) in used:  # nudge until unique (never happens with the tables above)
            r, g, b = max(0, r - 3), g, min(255, b + 2)
        materials[name] = (r, g, b)
        used.add((r, g, b))
        return materials[name]

    regions: list[Region] = []
    for part in parts:
        if part.shape is None:
            continue
        rgb = base[part.material]
        tones = [(TONE_BASE, rgb)]
        if part.shadow:
            tones.append((TONE_SHADOW, _shadow_tone(rgb)))
        if part.highlight is not None:
            tones.append((TONE_HIGHLIGHT, _highlight_tone(rgb)))
        for tone, col in tones:
            cname = part.material if tone == TONE_BASE else f"{part.material}_{tone}"
            col = claim(cname, col)
            name = part.name if tone == TONE_BASE else f"{part.name}_{tone}"
            regions.append(Region(len(regions) + 1, name, part.name, part.material, tone, col))
    return Character(seed, kind, tuple(parts), motion, materials, tuple(regions))


def make_character(seed: int) -> Character:
    """A seeded anime-style character: outlined flat-colour parts with shadows and highlights."""
    rng = np.random.default_rng([seed, 1])
    u = lambda lo, hi: float(rng.uniform(lo, hi))  # noqa: E731
    ph = lambda: float(rng.uniform(0, 2 * math.pi))  # noqa: E731
    base = {
        "skin": _jitter_rgb(rng, _SKIN[rng.integers(len(_SKIN))], 6),
        "hair": _jitter_rgb(rng, _HAIR[rng.integers(len(_HAIR))]),
        "shirt": _jitter_rgb(rng, _SHIRT[rng.integers(len(_SHIRT))]),
        "pants": _jitter_rgb(rng, _PANTS[rng.integers(len(_PANTS))]),
        "shoe": _jitter_rgb(rng, (120, 70, 50), 15),
        "eye_white": (238, 242, 250),
        "iris": _jitter_rgb(rng, _IRIS[rng.integers(len(_IRIS))]),
        "eye_glint": (255, 255, 255),
        "mouth": (200, 80, 90),
    }
    bw, bh = u(46, 58), u(66, 80)  # torso half sizes
    hw, hh = u(50, 58), u(50, 58)  # head
    arm_len, arm_w = u(58, 70), u(12, 15)
    leg_len, leg_w = u(62, 74), u(15, 19)
    limb_period = u(40, 56)
    P = Part
    S = Shape

    def limb(name: str, parent: str, joint: tuple[float, float], length: float, width: float,
             material: str, angle: float, swing: float, phase: float, period: float) -> Part:
        shape = S(width, length / 2 + width * 0.4, 0.0, length / 2, _harmonics(rng, (2, 3), 0.06), 0.5, 40)
        return P(name, parent, joint, shape, material, angle, swing, period, phase,
                 stretch=u(0.05, 0.10), shadow=True)

    arm_phase, leg_phase = ph(), ph()
    parts: list[Part] = []
    # back limbs first (drawn behind the torso)
    parts.append(limb("leg_back_upper", "body", (-bw * 0.35, bh * 0.8), leg_len, leg_w, "pants",
                      0.15, u(0.45, 0.65), leg_phase + math.pi, limb_period))
    parts.append(limb("leg_back_lower", "leg_back_upper", (0, leg_len * 0.92), leg_len, leg_w * 0.85, "shoe",
                      0.2, u(0.35, 0.55), leg_phase + math.pi + 0.9, limb_period))
    parts.append(limb("arm_back_upper", "body", (-bw * 0.8, -bh * 0.7), arm_len, arm_w, "shirt",
                      0.35, u(0.6, 0.9), arm_phase, limb_period))
    parts.append(limb("arm_back_lower", "arm_back_upper", (0, arm_len * 0.92), arm_len * 0.9, arm_w * 0.85, "skin",
                      -0.3, u(0.5, 0.8), arm_phase + 1.1, limb_period))
    parts.append(P("body", None, (0.0, 0.0), S(bw, bh, 0, 0, _harmonics(rng, (2, 3, 4), 0.07), 0.6, 80),
                   "shirt", 0.0, u(0.05, 0.12), u(50, 70), ph(), stretch=0.0, shadow=True,
                   highlight=S(bw * 0.22, bh * 0.30, -bw * 0.45, -bh * 0.35, _harmonics(rng, (2,), 0.1), 0.5, 32)))
    parts.append(limb("leg_front_upper", "body", (bw * 0.35, bh * 0.8), leg_len, leg_w, "pants",
                      -0.1, u(0.45, 0.65), leg_phase, limb_period))
    parts.append(limb("leg_front_lower", "leg_front_upper", (0, leg_len * 0.92), leg_len, leg_w * 0.85, "shoe",
                      0.2, u(0.35, 0.55), leg_phase + 0.9, limb_period))
    parts.append(P("head", "body", (0.0, -bh * 0.92), S(hw, hh, 0, -hh * 0.85, _harmonics(rng, (2, 3), 0.05), 0.5, 80),
                   "skin", 0.0, u(0.15, 0.28), u(36, 52), ph(), stretch=0.04, shadow=True))
    hair_h = _harmonics(rng, (2, 3), 0.06) + ((6, u(0.10, 0.16), ph(), ph(), u(30, 50)),)
    parts.append(P("hair", "head", (0.0, -hh * 1.45), S(hw * 1.15, hh * 0.62, 0, -hh * 0.15, hair_h, 0.6, 96),
                   "hair", 0.0, u(0.08, 0.16), u(30, 44), ph(), stretch=0.05, shadow=True,
                   highlight=S(hw * 0.55, hh * 0.12, -hw * 0.15, -hh * 0.38, _harmonics(rng, (2, 3), 0.12), 0.5, 40)))
    mouth = S(hw * 0.16, hh * 0.07, 0, 0, _harmonics(rng, (2,), 0.08), 0.4, 32)
    parts.append(P("mouth", "head", (hw * 0.05, -hh * 0.3), mouth, "mouth", 0.0, 0.1, u(14, 22), ph(), stretch=0.9))
    for side, ex in (("l", -hw * 0.38), ("r", hw * 0.38)):
        parts.append(P(f"eye_{side}", "head", (ex, -hh * 0.68), S(hw * 0.18, hh * 0.24, 0, 0, (), 0.0, 40),
                       "eye_white", 0.0, 0.0, 60, 0.0, stretch=0.08))
        parts.append(P(f"iris_{side}", f"eye_{side}", (hw * 0.03, hh * 0.04), S(hw * 0.11, hh * 0.16, 0, 0, (), 0.0, 32),
                       "iris", 0.0, 0.0, 60, 0.0))
        parts.append(P(f"glint_{side}", f"iris_{side}", (-hw * 0.03, -hh * 0.06), S(hw * 0.04, hh * 0.045, 0, 0, (), 0.0, 16),
                       "eye_glint", 0.0, 0.0, 60, 0.0, outlined=False))
    parts.append(limb("arm_front_upper", "body", (bw * 0.8, -bh * 0.7), arm_len, arm_w, "shirt",
                      -0.35, u(0.6, 0.9), arm_phase + math.pi, limb_period))
    parts.append(limb("arm_front_lower", "arm_front_upper", (0, arm_len * 0.92), arm_len * 0.9, arm_w * 0.85, "skin",
                      -0.3, u(0.5, 0.8), arm_phase + math.pi + 1.1, limb_period))
    motion = RootMotion(cx=0.5, cy=0.56, ax=u(200, 250), ay=u(10, 22), period_x=u(88, 110), period_y=u(50, 70),
                        phase=ph(), bounce=u(18, 28), bounce_period=limb_period, tilt=u(0.12, 0.2),
                        tilt_period=u(60, 80), squash=u(0.06, 0.10), scale=0.95)
    return _finish(seed, "char", parts, motion, base)


def make_fx(seed: int) -> Character:
    """A small effect: a bouncing outlined ball (shadow + highlight) with orbiting sparkles."""
    rng = np.random.default_rng([seed, 2])
    u = lambda lo, hi: float(rng.uniform(lo, hi))  # noqa: E731
    base = {"ball": _jitter_rgb(rng, (250, 200, 70), 8), "spark": _jitter_rgb(rng, (150, 230, 250), 8)}
    r = u(26, 32)
    parts = [
        Part("ball", None, (0, 0), Shape(r, r, 0, 0, _harmonics(rng, (2,), 0.03), 0.4, 64), "ball",
             spin=u(0.05, 0.1), shadow=True,
             highlight=Shape(r * 0.28, r * 0.2, -r * 0.35, -r * 0.4, (), 0.0, 24)),
        Part("orbit", "ball", (0, 0), None, spin=u(0.12, 0.18) * (1 if rng.random() < 0.5 else -1)),
    ]
    star = ((4, 0.55, 0.0, 0.0, 40.0),)
    for i in range(3):
        a = 2 * math.pi * i / 3
        d = r * u(1.9, 2.4)
        s = u(9, 13)
        parts.append(Part(f"spark_{i}", "orbit", (d * math.cos(a), d * math.sin(a)),
                          Shape(s, s, 0, 0, star, 0.3, 48), "spark", spin=u(-0.2, 0.2),
                          stretch=0.2, period=u(16, 24), phase=a))
    motion = RootMotion(cx=0.5, cy=0.3, ax=u(300, 360), ay=u(20, 40), period_x=u(100, 130), period_y=u(70, 90),
                        phase=float(rng.uniform(0, 2 * math.pi)), bounce=u(60, 90), bounce_period=u(30, 40),
                        tilt=0.0, tilt_period=60.0, squash=0.15, scale=1.0)
    return _finish(seed, "fx", parts, motion, base)


# ----------------------------------------------------------------------------------
# geometry


def _affine(tx: float, ty: float, angle: float, sx: float = 1.0, sy: float = 1.0) -> np.ndarray:
    c, s = math.cos(angle), math.sin(angle)
    return np.array([[c * sx, -s * sy, tx], [s * sx, c * sy, ty], [0.0, 0.0, 1.0]])


def _shape_points(shape: Shape, t: float) -> np.ndarray:
    theta = np.linspace(0.0, 2 * math.pi, shape.points, endpoint=False)
    r = np.ones_like(theta)
    for k, amp, ang, phase, period in shape.harmonics:
        a = amp * (1.0 + shape.deform * math.sin(2 * math.pi * t / period + phase))
        r += a * np.cos(k * theta + ang + 0.25 * shape.deform * math.sin(2 * math.pi * t / (period * 1.3) + phase))
    return np.stack([shape.cx + shape.rx * r * np.cos(theta), shape.cy + shape.ry * r * np.sin(theta)], axis=1)


def _apply(m: np.ndarray, pts: np.ndarray) -> np.ndarray:
    return pts @ m[:2, :2].T + m[:2, 2]


def _root_matrix(motion: RootMotion, t: float, size: tuple[int, int]) -> np.ndarray:
    w, h = size
    s = min(w / DESIGN_SIZE[0], h / DESIGN_SIZE[1]) * motion.scale
    m = motion
    x = m.cx * w + s * m.ax * math.sin(2 * math.pi * t / m.period_x + m.phase)
    y = (m.cy * h + s * m.ay * math.sin(2 * math.pi * t / m.period_y + 2 * m.phase)
         - s * m.bounce * abs(math.sin(math.pi * t / m.bounce_period)))
    tilt = m.tilt * math.sin(2 * math.pi * t / m.tilt_period + m.phase)
    sq = 1.0 + m.squash * math.cos(2 * math.pi * t / m.bounce_period)
    return _affine(x, y, tilt, s / sq ** 0.5, s * sq)


def part_matrices(character: Character, t: float, size: tuple[int, int]) -> dict[str, np.ndarray]:
    """Part-local to screen transforms (3x3) of every part at time ``t``."""
    out: dict[str, np.ndarray] = {}
    root = _root_matrix(character.motion, t, size)
    for part in character.parts:  # parents may come later in drawing order: resolve lazily
        _resolve(character, part, t, root, out)
    return out


def _resolve(character: Character, part: Part, t: float, root: np.ndarray, out: dict[str, np.ndarray]) -> np.ndarray:
    if part.name in out:
        return out[part.name]
    if part.parent is None:
        parent = root
    else:
        parent = _resolve(character, next(p for p in character.parts if p.name == part.parent), t, root, out)
    wave = math.sin(2 * math.pi * t / part.period + part.phase)
    angle = part.angle + part.swing * wave + part.spin * t
    stretch = 1.0 + part.stretch * math.sin(2 * math.pi * t / part.period + part.phase + 0.7)
    out[part.name] = parent @ _affine(part.joint[0], part.joint[1], angle, 1.0, stretch)
    return out[part.name]


def outlines(character: Character, t: float, size: tuple[int, int] = DESIGN_SIZE) -> dict[str, np.ndarray]:
    """Screen-space outline polygons (N, 2) of every visible part; point i corresponds across times."""
    mats = part_matrices(character, t, size)
    return {p.name: _apply(mats[p.name], _shape_points(p.shape, t)).astype(np.float32)
            for p in character.parts if p.shape is not None}


# ----------------------------------------------------------------------------------
# rendering helpers


def _fixed(pts: np.ndarray, origin: tuple[int, int]) -> np.ndarray:
    return np.round((pts - np.asarray(origin, np.float64)) * _ONE).astype(np.int32).reshape(-1, 1, 2)


def _fill(shape: tuple[int, int], pts: np.ndarray, origin: tuple[int, int]) -> np.ndarray:
    m = np.zeros(shape, np.uint8)
    cv2.fillPoly(m, [_fixed(pts, origin)], 1, cv2.LINE_8, _SHIFT)
    return m.view(bool)


def _bbox(pts: np.ndarray, pad: int, size: tuple[int, int]) -> tuple[int, int, int, int] | None:
    w, h = size
    x0 = max(0, int(math.floor(pts[:, 0].min())) - pad)
    y0 = max(0, int(math.floor(pts[:, 1].min())) - pad)
    x1 = min(w, int(math.ceil(pts[:, 0].max())) + pad + 1)
    y1 = min(h, int(math.ceil(pts[:, 1].max())) + pad + 1)
    return None if x0 >= x1 or y0 >= y1 else (x0, y0, x1, y1)


def _resample(pts: np.ndarray, step: float, closed: bool) -> np.ndarray:
    """Points spaced ``step`` pixels apart along the polyline."""
    p = np.vstack([pts, pts[:1]]) if closed else pts
    seg = np.hypot(*np.diff(p, axis=0).T)
    s = np.concatenate([[0.0], np.cumsum(seg)])
    n = max(4, int(s[-1] / step))
    q = np.linspace(0.0, s[-1], n, endpoint=not closed)
    return np.stack([np.interp(q, s, p[:, 0]), np.interp(q, s, p[:, 1])], axis=1)


def _pencil_strokes(rng: np.random.Generator, pts: np.ndarray, closed: bool, scale: float,
                    pressure: float = 1.0) -> list[tuple[np.ndarray, int, int]]:
    """A rough rendition of a curve: (polyline, darkness 0..255, thickness) chunks.

    The curve is split into a few strokes that overlap and overshoot at their ends, each
    drawn twice with smooth independent jitter, with pressure varying along the stroke
    and small gaps where the pencil lifted.
    """
    step = 3.0 * scale
    q = _resample(pts, step, closed)
    n = len(q)
    if closed:
        n_strokes = int(rng.integers(2, 4))
        start = int(rng.integers(n))
        cuts = np.sort(rng.choice(np.arange(1, n), n_strokes - 1, replace=False)) if n_strokes > 1 else np.array([], int)
        bounds = np.concatenate([[0], cuts, [n]])
        q = np.roll(q, -start, axis=0)
        q_ext = np.vstack([q[-4:], q, q[:4]])  # wrap-around so strokes can overlap
        spans = [(int(a), int(b) + 8) for a, b in zip(bounds[:-1], bounds[1:])]
    else:
        q_ext = q
        spans = [(0, n)]
    out: list[tuple[np.ndarray, int, int]] = []
    for a, b in spans:
        seg = q_ext[a: b]
        if len(seg) < 3:
            continue
        # overshoot: extend both ends along their tangents by a few pixels
        over0, over1 = rng.uniform(1.5, 6.0, 2) * scale
        d0 = seg[0] - seg[1]
        d1 = seg[-1] - seg[-2]
        d0 /= max(1e-6, float(np.hypot(*d0)))
        d1 /= max(1e-6, float(np.hypot(*d1)))
        seg = np.vstack([seg[0] + d0 * over0, seg, seg[-1] + d1 * over1])
        tang = np.gradient(seg, axis=0)
        normal = np.stack([-tang[:, 1], tang[:, 0]], axis=1)
        normal /= np.maximum(1e-6, np.hypot(normal[:, 0], normal[:, 1]))[:, None]
        sidx = np.arange(len(seg), dtype=np.float64)
        for pas in range(2 if rng.random() < 0.85 else 1):
            amp1, amp2 = rng.uniform(0.4, 1.3) * scale, rng.uniform(0.2, 0.6) * scale
            l1, l2 = rng.uniform(12, 30), rng.uniform(4, 9)
            off = (amp1 * np.sin(2 * np.pi * sidx / l1 + rng.uniform(0, 6.3))
                   + amp2 * np.sin(2 * np.pi * sidx / l2 + rng.uniform(0, 6.3))
                   + rng.uniform(-0.6, 0.6) * scale)
            line = seg + normal * off[:, None]
            press = 0.72 + 0.22 * np.sin(2 * np.pi * sidx / rng.uniform(15, 40) + rng.uniform(0, 6.3))
            press *= pressure * (1.0 if pas == 0 else 0.7)
            chunk = int(rng.integers(4, 8))
            for i in range(0, len(line) - 1, chunk):
                if i > 0 and rng.random() < 0.07:
                    continue  # the pencil lifted: a small gap
                piece = line[i: i + chunk + 1]
                dark = int(np.clip(press[i] * 255 + rng.normal(0, 12), 50, 250))
                thick = 2 if (scale > 1.3 or rng.random() < 0.35) else 1
                out.append((piece, dark, thick))
    return out


def _draw_strokes(canvas: np.ndarray, strokes: list[tuple[np.ndarray, int, int]], origin: tuple[int, int]) -> None:
    for piece, dark, thick in strokes:
        cv2.polylines(canvas, [_fixed(piece, origin)], False, dark, thick, cv2.LINE_AA, _SHIFT)


def lines_on_transparency(ink: np.ndarray, trace_shadow: np.ndarray, trace_highlight: np.ndarray) -> np.ndarray:
    """RGBA lines on transparency from coverages: ink over the red and blue trace lines."""
    a_ink = ink.astype(np.float32) / 255.0
    a_r = trace_shadow.astype(np.float32) / 255.0 * (1 - a_ink)
    a_b = trace_highlight.astype(np.float32) / 255.0 * (1 - a_ink - a_r).clip(0, 1)
    alpha = (a_ink + a_r + a_b).clip(0, 1)
    rgb = (a_r[..., None] * np.array(TRACE_SHADOW_RGB, np.float32)
           + a_b[..., None] * np.array(TRACE_HIGHLIGHT_RGB, np.float32)) / np.maximum(alpha, 1e-6)[..., None]
    return np.dstack([np.clip(rgb + 0.5, 0, 255).astype(np.uint8),
                      np.clip(alpha * 255 + 0.5, 0, 255).astype(np.uint8)])


def _over(base: np.ndarray, rgb: Sequence[int], alpha: np.ndarray) -> None:
    """In place: ``base = base * (1 - alpha) + rgb * alpha`` (float32 H x W x 3, alpha 0..1)."""
    a = alpha[..., None]
    base *= 1.0 - a
    base += a * np.asarray(rgb, np.float32)


def _noise_field(rng: np.random.Generator, size: tuple[int, int], cell: int) -> np.ndarray:
    """Smooth noise in [-1, 1] (float32 H x W), features about ``cell`` pixels wide."""
    w, h = size
    small = rng.uniform(-1, 1, (max(2, h // cell + 2), max(2, w // cell + 2))).astype(np.float32)
    return cv2.resize(small, (w, h), interpolation=cv2.INTER_CUBIC)


# ----------------------------------------------------------------------------------
# rendering


def _time_key(t: float) -> int:
    return int(round(t * 1000.0)) & 0x7FFFFFFF


def render(character: Character, t: float, size: tuple[int, int] = DESIGN_SIZE, rough: bool = True) -> SynthFrame:
    """Draw ``character`` at time ``t`` (frames at the character's natural speed).

    Returns clean lines, the rough pencil scan (unless ``rough`` is False), the
    finished colour cel and all ground truth; see :class:`SynthFrame`.
    """
    w, h = int(size[0]), int(size[1])
    size = (w, h)
    scale = min(w / DESIGN_SIZE[0], h / DESIGN_SIZE[1])
    ink_w = max(1, int(round(INK_WIDTH * scale)))
    trace_w = max(1, int(round(TRACE_WIDTH * scale)))
    light = np.array(LIGHT_DIR)
    mats = part_matrices(character, t, size)
    rng = np.random.default_rng([character.seed, 3, _time_key(t)])

    regions = np.zeros((h, w), np.int32)
    ink = np.zeros((h, w), np.uint8)
    tr_r = np.zeros((h, w), np.uint8)
    tr_b = np.zeros((h, w), np.uint8)
    if rough:
        p_ink = np.zeros((h, w), np.uint8)
        p_r = np.zeros((h, w), np.uint8)
        p_b = np.zeros((h, w), np.uint8)
    polys: dict[str, np.ndarray] = {}
    pad = ink_w + int(8 * scale) + 2

    for part in character.parts:
        if part.shape is None:
            continue
        m = mats[part.name]
        pts = _apply(m, _shape_points(part.shape, t))
        polys[part.name] = pts.astype(np.float32)
        box = _bbox(pts, pad, size)
        if box is None:
            continue
        x0, y0, x1, y1 = box
        org = (x0, y0)
        rs = (y1 - y0, x1 - x0)
        ids = character.region_ids(part.name)
        mask = _fill(rs, pts, org)
        reg = regions[y0:y1, x0:x1]
        reg[mask] = ids[TONE_BASE]
        for layer in (ink, tr_r, tr_b) + ((p_ink, p_r, p_b) if rough else ()):
            layer[y0:y1, x0:x1][mask] = 0  # this part covers whatever was drawn behind it
        lit_pts = hl_pts = None
        if part.shadow:
            # lit side = the part shifted towards the light; the rest is the shadow crescent
            sh = part.shape
            off = 0.3 * min(sh.rx, sh.ry) * float(np.hypot(*m[:2, 0]))
            c = pts.mean(axis=0)
            lit_pts = (pts - c) * 1.04 + c + light * off
            shadow = mask & ~_fill(rs, lit_pts, org)
            reg[shadow] = ids[TONE_SHADOW]
        if part.highlight is not None:
            hl_pts = _apply(m, _shape_points(part.highlight, t))
            hl = mask & _fill(rs, hl_pts, org)
            if part.shadow:
                hl &= reg != ids[TONE_SHADOW]
            reg[hl] = ids[TONE_HIGHLIGHT]
        for trace_pts, layer, p_layer in ((lit_pts, tr_r, p_r if rough else None),
                                          (hl_pts, tr_b, p_b if rough else None)):
            if trace_pts is None:
                continue
            tmp = np.zeros(rs, np.uint8)
            cv2.polylines(tmp, [_fixed(trace_pts, org)], True, 255, trace_w, cv2.LINE_AA, _SHIFT)
            tmp[~mask] = 0
            np.maximum(layer[y0:y1, x0:x1], tmp, out=layer[y0:y1, x0:x1])
            if p_layer is not None:
                tmp[:] = 0
                _draw_strokes(tmp, _pencil_strokes(rng, trace_pts, True, scale, 0.9), org)
                tmp[~mask] = 0
                np.maximum(p_layer[y0:y1, x0:x1], tmp, out=p_layer[y0:y1, x0:x1])
        if part.outlined:
            cv2.polylines(ink[y0:y1, x0:x1], [_fixed(pts, org)], True, 255, ink_w, cv2.LINE_AA, _SHIFT)
            if rough:
                _draw_strokes(p_ink[y0:y1, x0:x1], _pencil_strokes(rng, pts, True, scale), org)

    # clean line art on white
    ink_f = ink.astype(np.float32) / 255.0
    clean_rgb = np.full((h, w, 3), 255.0, np.float32)
    _over(clean_rgb, TRACE_SHADOW_RGB, tr_r.astype(np.float32) / 255.0)
    _over(clean_rgb, TRACE_HIGHLIGHT_RGB, tr_b.astype(np.float32) / 255.0)
    _over(clean_rgb, INK_RGB, ink_f)
    clean = np.dstack([np.clip(clean_rgb + 0.5, 0, 255).astype(np.uint8), np.full((h, w), 255, np.uint8)])

    # finished colour: region colours, trace lines painted over, ink on top
    lut = np.zeros((len(character.regions) + 1, 3), np.float32)
    for r in character.regions:
        lut[r.id] = r.rgb
    col_rgb = lut[regions]
    _over(col_rgb, INK_RGB, ink_f)
    silhouette = regions > 0
    alpha = np.where(silhouette, np.uint8(255), ink)
    color = np.dstack([np.clip(col_rgb + 0.5, 0, 255).astype(np.uint8), alpha])
    color[alpha == 0, :3] = 0

    ink_mask = ink >= 128
    labels = regions.copy()
    labels[ink_mask] = INK_LABEL
    shadow_ids = [r.id for r in character.regions if r.tone == TONE_SHADOW]
    hl_ids = [r.id for r in character.regions if r.tone == TONE_HIGHLIGHT]

    rough_img = None
    if rough:
        rough_img = _rough_finish(rng, character, mats, size, scale, p_ink, p_r, p_b)

    return SynthFrame(
        t=float(t), size=size, clean=clean, rough=rough_img, color=color, labels=labels, regions=regions,
        palette=character.palette, shadow=np.isin(regions, shadow_ids), highlight=np.isin(regions, hl_ids),
        ink=ink_mask, ink_alpha=ink, trace_shadow=tr_r, trace_highlight=tr_b, silhouette=silhouette,
        outlines=polys,
    )


def _construction_lines(rng: np.random.Generator, character: Character, mats: dict[str, np.ndarray],
                        scale: float) -> list[np.ndarray]:
    """A few light guide lines an animator draws first: line of action, head guides, masses."""
    lines: list[np.ndarray] = []
    names = {p.name: p for p in character.parts}
    if character.kind == "char" and "head" in names and "body" in names:
        hm, bm = mats["head"], mats["body"]
        head = names["head"].shape
        hc = _apply(hm, np.array([[head.cx, head.cy]]))[0]
        hip = _apply(bm, np.array([[0.0, names["body"].shape.ry]]))[0]
        mid = (hc + hip) / 2 + rng.normal(0, 6, 2) * scale
        s = np.linspace(0, 1, 24)[:, None]
        lines.append((1 - s) ** 2 * hc + 2 * s * (1 - s) * mid + s ** 2 * hip)  # line of action
        th = np.linspace(0, 2 * np.pi, 48, endpoint=False)
        circle = np.stack([head.cx + head.rx * 0.95 * np.cos(th), head.cy + head.ry * 0.95 * np.sin(th)], 1)
        lines.append(_apply(hm, np.vstack([circle, circle[:1]])))
        th2 = np.linspace(-0.5 * np.pi, 0.5 * np.pi, 20)
        vert = np.stack([head.cx + head.rx * 0.15 * np.cos(th2), head.cy + head.ry * np.sin(th2)], 1)
        lines.append(_apply(hm, vert))
        horiz = np.stack([head.cx + head.rx * np.sin(th2), head.cy + head.ry * 0.2 + head.ry * 0.08 * np.cos(th2)], 1)
        lines.append(_apply(hm, horiz))
    else:
        for p in character.parts[:1]:
            if p.shape is not None:
                th = np.linspace(0, 2 * np.pi, 40)
                lines.append(_apply(mats[p.name], np.stack([p.shape.rx * 1.05 * np.cos(th), p.shape.ry * 1.05 * np.sin(th)], 1)))
    return lines


def _rough_finish(rng: np.random.Generator, character: Character, mats: dict[str, np.ndarray],
                  size: tuple[int, int], scale: float, p_ink: np.ndarray, p_r: np.ndarray,
                  p_b: np.ndarray) -> np.ndarray:
    """Paper, grain, construction lines, scan blur and a JPEG round trip."""
    w, h = size
    for line in _construction_lines(rng, character, mats, scale):
        for piece, dark, thick in _pencil_strokes(rng, line, False, scale, 0.4):
            cv2.polylines(p_ink, [_fixed(piece, (0, 0))], False, min(dark, 110), 1, cv2.LINE_AA, _SHIFT)
    grain = 0.72 + 0.28 * rng.random((h, w), dtype=np.float32)  # pencil tooth on paper
    paper = np.empty((h, w, 3), np.float32)
    blotch = 4.0 * _noise_field(rng, size, max(8, int(48 * scale)))
    fibre = rng.normal(0.0, 1.6, (h, w)).astype(np.float32)
    tint = blotch + fibre
    for c in range(3):
        paper[..., c] = PAPER_RGB[c] + tint
    _over(paper, GRAPHITE_RGB, p_ink.astype(np.float32) * (grain / 255.0))
    _over(paper, TRACE_SHADOW_RGB, p_r.astype(np.float32) * (grain / 255.0))
    _over(paper, TRACE_HIGHLIGHT_RGB, p_b.astype(np.float32) * (grain / 255.0))
    img = cv2.GaussianBlur(paper, (0, 0), 0.6 * max(1.0, scale))
    img8 = np.clip(img + 0.5, 0, 255).astype(np.uint8)
    quality = int(rng.integers(72, 88))
    ok, buf = cv2.imencode(".jpg", img8[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:  # pragma: no cover - OpenCV always encodes JPEG
        raise RuntimeError("JPEG encoding failed")
    rgb = cv2.imdecode(buf, cv2.IMREAD_COLOR)[..., ::-1]
    return np.dstack([rgb, np.full((h, w), 255, np.uint8)])


def render_background(seed: int, size: tuple[int, int] = DESIGN_SIZE) -> np.ndarray:
    """A simple painted background (sky, clouds, two ranges of hills, ground, trees), opaque RGBA."""
    w, h = int(size[0]), int(size[1])
    rng = np.random.default_rng([seed, 4])
    top = np.array(_jitter_rgb(rng, (110, 165, 225), 15), np.float32)
    bottom = np.array(_jitter_rgb(rng, (205, 228, 245), 8), np.float32)
    ramp = np.linspace(0, 1, h, dtype=np.float32)[:, None, None]
    img = np.broadcast_to(top * (1 - ramp) + bottom * ramp, (h, w, 3)).copy()
    s = min(w / DESIGN_SIZE[0], h / DESIGN_SIZE[1])
    clouds = np.zeros((h, w), np.uint8)
    for _ in range(int(rng.integers(3, 6))):
        cx, cy = rng.uniform(0, w), rng.uniform(0.05, 0.35) * h
        for _ in range(4):
            cv2.ellipse(clouds, (int(cx + rng.uniform(-50, 50) * s), int(cy + rng.uniform(-10, 10) * s)),
                        (int(rng.uniform(30, 60) * s), int(rng.uniform(14, 24) * s)), 0, 0, 360, 255, -1, cv2.LINE_AA)
    clouds_f = cv2.GaussianBlur(clouds, (0, 0), 3 * s).astype(np.float32) / 255.0
    _over(img, (250, 250, 252), clouds_f * 0.9)
    xs = np.arange(w, dtype=np.float64)
    for level, col in ((0.55, _jitter_rgb(rng, (120, 160, 140), 10)), (0.68, _jitter_rgb(rng, (90, 150, 90), 10))):
        ridge = level * h + sum(rng.uniform(8, 25) * s * np.sin(2 * np.pi * xs / rng.uniform(200, 600) / s
                                                                 + rng.uniform(0, 6.3)) for _ in range(3))
        poly = np.vstack([np.stack([xs, ridge], 1), [[w, h], [0, h]]])
        m = np.zeros((h, w), np.uint8)
        cv2.fillPoly(m, [_fixed(poly, (0, 0))], 255, cv2.LINE_AA, _SHIFT)
        _over(img, col, m.astype(np.float32) / 255.0)
    ground = int(0.82 * h)
    img[ground:] = img[ground:] * 0.5 + np.array(_jitter_rgb(rng, (150, 175, 100), 10), np.float32) * 0.5
    for _ in range(int(rng.integers(2, 5))):
        x = int(rng.uniform(0.05, 0.95) * w)
        y = int(rng.uniform(0.66, 0.8) * h)
        r = int(rng.uniform(18, 30) * s)
        cv2.rectangle(img, (x - max(1, r // 6), y), (x + max(1, r // 6), y + int(2 * r)), (110, 80, 60), -1)
        cv2.circle(img, (x, y), r, _jitter_rgb(rng, (60, 120, 70), 10), -1, cv2.LINE_AA)
        cv2.circle(img, (x - r // 3, y - r // 3), max(1, r // 2), _jitter_rgb(rng, (90, 150, 90), 10), -1, cv2.LINE_AA)
    img = cv2.GaussianBlur(img, (0, 0), 0.8 * s)
    img += 2.0 * _noise_field(rng, (w, h), max(4, int(12 * s)))[..., None]
    return np.dstack([np.clip(img + 0.5, 0, 255).astype(np.uint8), np.full((h, w), 255, np.uint8)])


# ----------------------------------------------------------------------------------
# sequences and the demo studio


def sequence(seed: int, frames: Sequence[int] | int, size: tuple[int, int] = DESIGN_SIZE, speed: float = 1.0,
             kind: str = "char", start: int = 1001, rough: bool = True) -> dict[int, SynthFrame]:
    """Render integer frames of the seeded character (``kind="char"``) or effect (``"fx"``).

    ``frames`` is a list of frame numbers, or a count of consecutive frames from ``start``.
    Frame ``f`` is drawn at time ``t = f * speed``; at speed 1 the parts of a character
    move about 8-15 pixels per frame at 960x540.
    """
    character = make_character(seed) if kind == "char" else make_fx(seed)
    numbers = list(range(start, start + frames)) if isinstance(frames, int) else [int(f) for f in frames]
    return {f: render(character, f * speed, size, rough=rough) for f in numbers}


def mean_displacement(a: SynthFrame, b: SynthFrame) -> float:
    """Mean screen distance between corresponding outline points of two frames."""
    d = [np.hypot(*(b.outlines[k] - a.outlines[k]).T).mean() for k in a.outlines if k in b.outlines]
    return float(np.mean(d))


def palette_yaml(*characters: Character) -> str:
    """``colors: {name: "#rrggbb"}`` for every colour of the characters (base, shadow, highlight tones):
    one palette per shot, covering every layer."""
    colors = {name: "#%02x%02x%02x" % rgb for c in characters for name, rgb in c.materials.items()}
    return yaml.safe_dump({"colors": colors}, sort_keys=False)


def write_demo_studio(root: Path, show: str = "DEMO", seq: str = "sq010", shot: str = "sh0010",
                      keys: Sequence[int] = (1001, 1005, 1009, 1013), timing: int = 2,
                      size: tuple[int, int] = DESIGN_SIZE, seed: int = 7, style: str = "rough",
                      fx: bool = True, speed: float = 1.0) -> Path:
    """Write a small demo shot folder (per STUDIO_LAYOUT.md) and return it.

    ``keys/{shot}_char.{frame}.png`` are the character keys (rough pencil scans, or clean
    lines on white with ``style="clean"``), ``keys/{shot}_fx.{frame}.png`` the effect keys
    (clean inked lines), ``refs/{shot}_{char,fx}.{first}.png`` the coloured references of
    the first key, ``refs/palette.yaml`` the named colours and ``shot.yaml``
    the fps and timing.
    """
    if style not in ("rough", "clean"):
        raise ValueError(f"style must be 'rough' or 'clean', not {style!r}")
    shot_dir = Path(root) / show / seq / shot
    (shot_dir / "keys").mkdir(parents=True, exist_ok=True)
    (shot_dir / "refs").mkdir(parents=True, exist_ok=True)
    char = make_character(seed)
    fx_char = make_fx(seed)
    keys = sorted(int(k) for k in keys)
    for i, frame in enumerate(keys):
        f = render(char, frame * speed, size, rough=(style == "rough"))
        images.write_png(shot_dir / "keys" / f"{shot}_char.{frame:04d}.png", f.rough if style == "rough" else f.clean)
        if i == 0:
            images.write_png(shot_dir / "refs" / f"{shot}_char.{frame:04d}.png", f.color)
        if fx:
            # the effect is drawn clean (inked) and coloured from its own reference, as in production
            fx_frame = render(fx_char, frame * speed, size, rough=False)
            images.write_png(shot_dir / "keys" / f"{shot}_fx.{frame:04d}.png", fx_frame.clean)
            if i == 0:
                images.write_png(shot_dir / "refs" / f"{shot}_fx.{frame:04d}.png", fx_frame.color)
    images.write_bytes_atomic(shot_dir / "refs" / "palette.yaml",
                              palette_yaml(char, *([fx_char] if fx else [])).encode())
    images.write_bytes_atomic(shot_dir / "shot.yaml",
                              yaml.safe_dump({"fps": 24, "timing": int(timing)}, sort_keys=False).encode())
    return shot_dir


def write_clean_keys(root: Path, **kwargs) -> Path:
    """:func:`write_demo_studio` with clean line keys instead of rough pencil."""
    return write_demo_studio(root, style="clean", **kwargs)
