"""Training and evaluation pairs for the line refiner, from the procedural generator.

`synth.render` already draws the rough side with jittered double strokes, broken strokes,
overshoots, pencil grain, varying pressure, construction lines, paper texture, scan blur and
a JPEG round trip. This module adds what a real scanner and a real desk add on top, so the
network does not learn the generator's one paper and one pencil:

* drawings at several frame sizes (line widths and stroke scales vary with them);
* scanner light falling off across the page, paper tint and brightness, contrast/gamma
  (light and heavy pencil);
* dust, specks and short hairs (for despeckling);
* a channel permutation (turns the red and blue trace lines into green ones too; grey
  graphite stays grey), flips and quarter turns;
* extra blur, a low scan resolution scaled up, sensor noise and a second JPEG round trip
  at a random quality;
* a few clean drawings as input, so clean line art passes through unharmed.

Targets are the generator's clean ink coverage and colour-trace coverage (ink on top).
Evaluation uses `held_out_pairs`, drawn from a seed that training never sees.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from .. import synth
from . import drawings, rough_families

#: generator seeds used for training (characters); evaluation seeds lie outside this range
TRAIN_SEEDS = range(1000, 1400)
#: the held-out generator seed for every reported figure (tests, bench, model card)
HELD_OUT_SEED = 7
TRAIN_SIZES = ((640, 360), (800, 450), (960, 540), (1120, 630), (1280, 720))


@dataclass
class Pair:
    rough: np.ndarray  # RGB uint8
    ink: np.ndarray  # float32 [0, 1] ink coverage
    trace: np.ndarray  # float32 [0, 1] colour-trace coverage (under the ink)
    frame: synth.SynthFrame | None = None
    name: str = ""  # where the drawing comes from, for reports
    trace_class: np.ndarray | None = None  # uint8 1 red, 2 blue, 3 green where trace lines are (contact sheets)


def targets(f: synth.SynthFrame) -> tuple[np.ndarray, np.ndarray]:
    ink = f.ink_alpha.astype(np.float32) / 255.0
    tr = np.maximum(f.trace_shadow, f.trace_highlight).astype(np.float32) / 255.0
    return ink, tr * (1.0 - ink)


def render_pair(seed: int, t: float, size: tuple[int, int]) -> Pair:
    f = synth.render(synth.make_character(seed), t, size, rough=True)
    ink, tr = targets(f)
    return Pair(np.ascontiguousarray(f.rough[..., :3]), ink, tr, f)


def held_out_pairs(size: tuple[int, int] = (960, 540), n: int = 4, seed: int = HELD_OUT_SEED) -> list[Pair]:
    """`n` pairs of a character seed never used in training, at spread-out times."""
    if seed in TRAIN_SEEDS:
        raise ValueError(f"seed {seed} is a training seed")
    return [render_pair(seed, 1001.0 + 17.0 * i, size) for i in range(n)]


#: drawing seeds of the rough families: training draws from this range, evaluation below it
FAMILY_TRAIN_SEEDS = range(100_000, 1_000_000)
#: the held-out drawing seeds of every reported rough-family figure (never drawn for training)
FAMILY_EVAL_SEED = 11


def family_pair(family: str, seed: int, size: tuple[int, int]) -> Pair:
    """A procedural drawing (`drawings.py`) made rough by one of `rough_families.FAMILIES`."""
    rng = np.random.default_rng([seed, 15])
    d = drawings.make_drawing(rng, size)
    ink, trace, cls = drawings.render_clean(d)
    rough, hom = rough_families.render_rough(family, d, rng)
    if hom is not None:  # a photographed page: the clean drawing moves with it
        w, h = size
        ink = cv2.warpPerspective(ink, hom, (w, h), flags=cv2.INTER_LINEAR)
        trace = cv2.warpPerspective(trace, hom, (w, h), flags=cv2.INTER_LINEAR)
        cls = cv2.warpPerspective(cls, hom, (w, h), flags=cv2.INTER_NEAREST)
    return Pair(np.ascontiguousarray(rough), ink, trace, name=f"{family} drawing {seed}", trace_class=cls)


def family_held_out_pairs(family: str, size: tuple[int, int] = (960, 540), n: int = 4,
                          seed: int = FAMILY_EVAL_SEED) -> list[Pair]:
    """`n` pairs of `family` from drawing seeds training never uses."""
    seeds = [seed * 1000 + i for i in range(n)]
    if any(s in FAMILY_TRAIN_SEEDS for s in seeds):
        raise ValueError(f"seed {seed} gives training drawings")
    return [family_pair(family, s, size) for s in seeds]


def _dust(rng: np.random.Generator, img: np.ndarray) -> None:
    h, w = img.shape[:2]
    n = int(rng.integers(0, 40) * h * w / (960 * 540))
    for _ in range(n):
        x, y = int(rng.integers(w)), int(rng.integers(h))
        shade = float(rng.uniform(40, 170))
        if rng.random() < 0.8:
            cv2.circle(img, (x, y), int(rng.integers(0, 3)), (shade,) * 3, -1, cv2.LINE_AA)
        else:  # a short curled hair
            a = rng.uniform(0, 2 * np.pi)
            L = rng.uniform(4, 14)
            pts = np.array([[x, y], [x + L * np.cos(a), y + L * np.sin(a)],
                            [x + L * np.cos(a + 0.8), y + L * np.sin(a + 0.8) + 3]], np.int32)
            cv2.polylines(img, [pts], False, (shade,) * 3, 1, cv2.LINE_AA)


def degrade(rng: np.random.Generator, rgb: np.ndarray) -> np.ndarray:
    """Scanner and desk degradations on top of the generator's rough scan (RGB uint8)."""
    h, w = rgb.shape[:2]
    img = rgb.astype(np.float32)
    # contrast / gamma: light or heavy pencil
    g = float(rng.uniform(0.7, 1.5))
    img = 255.0 * (img / 255.0) ** g
    # paper tint and brightness, scanner light fall-off
    tint = rng.uniform(0.85, 1.05, 3).astype(np.float32)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    ang = rng.uniform(0, 2 * np.pi)
    ramp = (np.cos(ang) * xx / w + np.sin(ang) * yy / h)
    light = 1.0 - rng.uniform(0.0, 0.25) * (ramp - ramp.min()) / max(1e-6, float(np.ptp(ramp)))
    img *= tint[None, None, :] * light[..., None]
    _dust(rng, img)
    if rng.random() < 0.4:
        img = cv2.GaussianBlur(img, (0, 0), float(rng.uniform(0.3, 1.0)))
    if rng.random() < 0.25:
        img = rough_families.resample_down_up(rng, img)
    return rough_families.sensor_and_jpeg(rng, img, noise=(0, 4), jpeg_p=0.5, quality=(60, 95))


def clean_as_input(f_ink: np.ndarray, f_trace: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Clean line art (black ink over a red or blue trace) as an RGB scan."""
    img = np.full(f_ink.shape + (3,), 255.0, np.float32)
    col = np.array((220, 30, 30) if rng.random() < 0.5 else (30, 60, 220), np.float32)
    img = img * (1 - f_trace[..., None]) + col * f_trace[..., None]
    img = img * (1 - f_ink[..., None])
    return np.clip(img + 0.5, 0, 255).astype(np.uint8)


def augment(rng: np.random.Generator, rough: np.ndarray, ink: np.ndarray, trace: np.ndarray):
    """Geometry and channel augmentations applied identically to input and targets."""
    if rng.random() < 0.5:
        rough, ink, trace = rough[:, ::-1], ink[:, ::-1], trace[:, ::-1]
    k = int(rng.integers(4))
    rough, ink, trace = np.rot90(rough, k), np.rot90(ink, k), np.rot90(trace, k)
    if rng.random() < 0.4:
        rough = rough[..., rng.permutation(3)]
    return np.ascontiguousarray(rough), np.ascontiguousarray(ink), np.ascontiguousarray(trace)
