"""Coloured figures drawn unlike quickart_daemon/tools/synth.py, and the figure-scale light measure.

The light stage is judged on drawings it never saw, so its tests and bench/bench_light.py
do not rely on our own generator alone. Two looks, each with several part layouts
(standing, reaching, four-legged, sitting) chosen by the seed:

- ``"blobs"``: round parts (ellipses), thin 1-2 px black lines, pastel fills, on transparency;
- ``"blocks"``: angular parts (polygons, rounded boxes), thick 3-5 px dark-brown lines,
  saturated fills, some parts painted in two tones (a base and a shadow tone split by a line),
  on an OPAQUE white background (no alpha to find the figure by).

Frames are drawn 3x larger and reduced (area average), so fills and lines are anti-aliased
the way a paint program's are. A sequence moves a little from frame to frame (limbs swing,
the figure drifts).

``side_response`` is the figure-scale measure of issue 15: lit from the left and then from the
right, how much brighter the figure's left half is under the left light, and its right half
under the right light.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

LUMA = np.array([0.299, 0.587, 0.114])
SUPERSAMPLE = 3
LAYOUTS = ("standing", "reaching", "four_legged", "sitting")


@dataclass
class Figure:
    color: np.ndarray    # RGBA uint8
    figure: np.ndarray   # bool: the figure's pixels (fills and lines), not the background
    labels: np.ndarray   # int32: region id per pixel, 0 background, -1 ink
    palette: dict[str, tuple[int, int, int]]   # fill name -> RGB (base tones and NAME_shadow tones)


def _ellipse(cx, cy, rx, ry, angle=0.0, n=48):
    t = np.linspace(0, 2 * np.pi, n, endpoint=False)
    x, y = rx * np.cos(t), ry * np.sin(t)
    c, s = math.cos(angle), math.sin(angle)
    return np.stack([cx + c * x - s * y, cy + s * x + c * y], 1)


def _box(cx, cy, w, h, angle=0.0, corner=0.0, n=8):
    """A rectangle, its corners cut by ``corner`` (0 sharp .. 0.5 octagon-like)."""
    cw, ch = corner * w, corner * h
    pts = np.array([(-w / 2 + cw, -h / 2), (w / 2 - cw, -h / 2), (w / 2, -h / 2 + ch), (w / 2, h / 2 - ch),
                    (w / 2 - cw, h / 2), (-w / 2 + cw, h / 2), (-w / 2, h / 2 - ch), (-w / 2, -h / 2 + ch)])
    c, s = math.cos(angle), math.sin(angle)
    return np.stack([cx + c * pts[:, 0] - s * pts[:, 1], cy + s * pts[:, 0] + c * pts[:, 1]], 1)


def _limb(x0, y0, angle, length, width, style):
    """A limb hanging from (x0, y0) at ``angle`` (0 = straight down)."""
    cx, cy = x0 + math.sin(-angle) * length / 2, y0 + math.cos(angle) * length / 2
    if style == "blobs":
        return _ellipse(cx, cy, width / 2, length / 2, angle)
    return _box(cx, cy, width, length, angle, corner=0.2)


def _parts(layout: str, style: str, rng: np.random.Generator, t: float):
    """(name, polygon in design units of a 100 x 100 box, two-tone split or None) back to front."""
    swing = 0.25 * math.sin(0.6 * t + rng.uniform(0, 6))
    head = _ellipse if style == "blobs" else (lambda cx, cy, rx, ry, a=0.0: _box(cx, cy, 2 * rx, 2 * ry, a, 0.3))
    body = _ellipse if style == "blobs" else (lambda cx, cy, rx, ry, a=0.0: _box(cx, cy, 2 * rx, 2 * ry, a, 0.15))
    k = rng.uniform(0.85, 1.15)  # proportions differ from figure to figure
    parts = []
    if layout == "standing":
        parts += [("leg_l", _limb(44, 62, 0.08 + swing, 34, 9 * k, style)),
                  ("leg_r", _limb(56, 62, -0.08 - swing, 34, 9 * k, style)),
                  ("body", body(50, 48, 13 * k, 19)),
                  ("arm_l", _limb(37, 36, 0.35 + swing, 28, 7 * k, style)),
                  ("arm_r", _limb(63, 36, -0.35 + swing, 28, 7 * k, style)),
                  ("head", head(50, 20, 11, 12 * k))]
    elif layout == "reaching":  # one arm stretched far out to the side, the figure leans
        parts += [("leg_l", _limb(46, 64, 0.25, 32, 10, style)),
                  ("leg_r", _limb(58, 64, -0.1, 32, 10, style)),
                  ("body", body(52, 50, 14, 18 * k, 0.15)),
                  ("arm_l", _limb(40, 40, 1.35 + swing, 36 * k, 8, style)),
                  ("arm_r", _limb(64, 38, -0.2, 26, 8, style)),
                  ("head", head(58, 22, 12 * k, 11))]
    elif layout == "four_legged":  # a wide animal: body across, head at one end, a tail
        parts += [("tail", _limb(80, 45, -1.9 + swing, 22, 6, style)),
                  ("leg_bl", _limb(70, 55, 0.1 + swing, 26, 8, style)),
                  ("leg_fl", _limb(32, 55, -0.1 - swing, 26, 8, style)),
                  ("body", body(52, 48, 30 * k, 12)),
                  ("leg_br", _limb(76, 56, -0.05 - swing, 25, 8, style)),
                  ("leg_fr", _limb(27, 56, 0.05 + swing, 25, 8, style)),
                  ("head", head(20, 34, 12, 10 * k, -0.2))]
    else:  # sitting: a wide low mass with knees, arms resting
        parts += [("seat", body(50, 72, 26 * k, 9)),
                  ("body", body(48, 50, 16, 17)),
                  ("knee_l", head(36, 70, 11, 8)),
                  ("knee_r", head(64, 70, 11, 8)),
                  ("arm_l", _limb(35, 42, 0.6 + swing, 24, 7, style)),
                  ("arm_r", _limb(61, 42, -0.7, 24, 7, style)),
                  ("head", head(47, 23, 13, 12 * k, 0.1))]
    return parts


BLOB_FILLS = [(250, 214, 196), (196, 226, 250), (214, 240, 200), (250, 236, 180), (228, 208, 244),
              (248, 196, 214), (200, 236, 230)]
BLOCK_FILLS = [(230, 60, 50), (40, 110, 210), (250, 190, 20), (60, 170, 90), (150, 70, 190),
               (240, 120, 30), (30, 160, 170)]


def shadow_tone(rgb):
    """The painted shadow tone of a fill in the "blocks" look (a colour designer's choice)."""
    return tuple(int(c * 0.62 + 10) for c in rgb)


def figure(style: str, seed: int, t: float = 0.0, size: tuple[int, int] = (480, 270)) -> Figure:
    """One frame of the seeded figure at time ``t`` (frames)."""
    rng = np.random.default_rng(seed)
    layout = LAYOUTS[seed % len(LAYOUTS)]
    parts = _parts(layout, style, rng, t)
    w, h = size
    s = SUPERSAMPLE
    scale = 0.9 * min(w, h) / 100.0 * s
    shift = np.array([(w * s - 100 * scale) / 2 + math.sin(0.3 * t) * 3 * s, (h * s - 100 * scale) / 2])
    fills = BLOB_FILLS if style == "blobs" else BLOCK_FILLS
    order = rng.permutation(len(fills))
    if style == "blobs":
        ink, width = (0, 0, 0), int(round(rng.uniform(1.0, 2.0) * s))
    else:
        ink, width = (45, 28, 32), int(round(rng.uniform(3.0, 5.0) * s))
    opaque = style == "blocks"
    big = np.full((h * s, w * s, 3), 255, np.uint8)
    cover = np.zeros((h * s, w * s), np.uint8)
    labels = np.zeros((h * s, w * s), np.int32)
    palette: dict[str, tuple[int, int, int]] = {}
    colour_of: dict[str, tuple[int, int, int]] = {}
    next_id = 1
    for name, poly in parts:
        material = name.split("_")[0]
        rgb = colour_of.setdefault(material, fills[order[len(colour_of) % len(fills)]])
        palette[material] = rgb
        pts = np.round(poly * scale + shift).astype(np.int32)
        mask = np.zeros_like(cover)
        cv2.fillPoly(mask, [pts], 1)
        big[mask > 0] = rgb
        labels[mask > 0] = next_id
        next_id += 1
        if opaque and material in ("body", "head", "seat"):  # a painted two-tone part: one side in shadow
            tone = shadow_tone(rgb)
            palette[f"{material}_shadow"] = tone
            (cx, cy), span = pts.mean(0), np.ptp(pts[:, 0])
            # the half-plane (x - cx) + 0.4 (y - cy) > span / 4: right of a slanted line
            top, bottom = cx + 0.25 * span + 0.4 * cy, cx + 0.25 * span - 0.4 * (h * s - cy)
            side = np.zeros_like(cover)
            cv2.fillPoly(side, [np.array([(top, 0), (bottom, h * s), (w * s, h * s), (w * s, 0)], np.int32)], 1)
            big[(mask > 0) & (side > 0)] = tone
            labels[(mask > 0) & (side > 0)] = next_id
            next_id += 1
            split = (mask > 0) & (side > 0) & (cv2.erode(side, np.ones((width, width), np.uint8)) == 0)
            big[split] = ink
            labels[split] = -1
        cover |= mask
        cv2.polylines(big, [pts], True, ink, width, cv2.LINE_8)
        line = np.zeros_like(cover)
        cv2.polylines(line, [pts], True, 1, width, cv2.LINE_8)
        labels[line > 0] = -1
        cover |= line
        if material == "head":  # eyes: small dark details on the face
            for dx in (-0.35, 0.35):
                eye = np.round(_ellipse(0, 0, 1.4, 2.0) * scale + (pts.mean(0) + [dx * np.ptp(pts[:, 0]) / 2, 0])).astype(np.int32)
                cv2.fillPoly(big, [eye], ink)
                cv2.fillPoly(labels, [eye], -1)
    small = cv2.resize(big, size, interpolation=cv2.INTER_AREA)
    alpha = np.full((h, w), 255, np.uint8) if opaque else cv2.resize(cover * 255, size, interpolation=cv2.INTER_AREA)
    if not opaque:  # transparent pixels carry no colour; edge pixels keep the fill's (unpremultiplied)
        small[alpha == 0] = 0
    lab = labels[s // 2::s, s // 2::s][:h, :w]
    fig = cv2.resize(cover * 255, size, interpolation=cv2.INTER_AREA) >= 128
    return Figure(np.dstack([small, alpha]), fig, lab, palette)


def sequence(style: str, seed: int, frames: int = 3, size: tuple[int, int] = (480, 270)) -> list[Figure]:
    return [figure(style, seed, 2.0 * i, size) for i in range(frames)]


def side_response(lit_left: list[np.ndarray], lit_right: list[np.ndarray], labels: list[np.ndarray],
                  per_region: bool = False) -> tuple[float, float]:
    """(left gain, right gain) in luma levels, averaged over the frames of a sequence.

    left gain: mean luma of the figure's left half lit from the left minus lit from the right;
    right gain: the same for the right half, right light minus left light. Both > 0: the figure
    as a whole turns to the light. The figure is every labelled pixel (``labels != 0``: fills and
    lines); the halves split it at its mean x, so a figure off to one side of the frame is still
    measured on its own halves.

    ``per_region``: each fill region (label > 0) counts with its own mean difference, as if painted
    flat, so a part that only brightens on its own lit side and darkens on the other (a bump per
    part) adds nothing: what remains is whether whole parts on the left get brighter than whole
    parts on the right."""
    gains = []
    for a, b, lab in zip(lit_left, lit_right, labels):
        diff = (a[..., :3].astype(np.float64) - b[..., :3]) @ LUMA
        if per_region:
            fill = lab > 0
            sums = np.bincount(lab[fill], diff[fill])
            counts = np.maximum(np.bincount(lab[fill]), 1)
            diff = np.where(fill, (sums / counts)[np.maximum(lab, 0)], 0.0)
            ys, xs = np.nonzero(fill)
        else:
            ys, xs = np.nonzero(lab != 0)
        left = xs < xs.mean()
        d = diff[ys, xs]
        gains.append((float(d[left].mean()), float(-d[~left].mean())))
    g = np.mean(gains, 0)
    return float(g[0]), float(g[1])
