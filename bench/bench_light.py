"""Does the light turn the whole figure, are the cels still flat, and how fast: before and after issue 15.

    OMP_NUM_THREADS=1 nice .venv/bin/python bench/bench_light.py [--size 960x540] [--frames 3] [--threads 1]

"before" is the light stage as it was at BEFORE_REV (a bump per region, gradient shading), loaded
from git into bench/out/; "after" is the working tree's. Figure sets: our own generator (synth.py)
and two looks it never draws (tests/light_figures.py: round parts with thin lines on transparency;
angular parts with thick brown lines and painted shadow tones on an opaque white frame), four
sequences each; and, when it has been built (REALSET), the four real cartoon animations with
line art of the development set (measured only: nothing here is tuned on them). Printed:

- the figure-scale direction response (lit from -1,0,1 and from 1,0,1): how much brighter the
  figure's left half is under the left light than under the right, and its right half under the
  right light, in luma levels (0-255), by pixels and by whole regions (each region's mean, so a
  part that only brightens on its own lit side counts for nothing); a sequence passes when both
  halves gain at least PASS_LEVELS;
- flatness: the share of each region's inner pixels in its three commonest colours;
- seconds per 1920x1080 frame on one thread (normals, one light setup, the light layer);

and writes bench/out/light_contact.png: a figure of each set, before and after, lit from the
left, the right, behind and the upper left.
"""

from __future__ import annotations

import argparse
import importlib
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np

from quickart_daemon.tools import synth
from quickart_daemon.stages.light import palette as after_palette
from quickart_daemon.stages.light import render as after_render
from quickart_daemon.stages.light import settings as after_settings

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "bench" / "out"
sys.path.insert(0, str(ROOT / "tests"))
import light_figures  # noqa: E402  (the held-out figures live with the tests that use them)

#: main before issue 15 (light: a bump per region, gradient shading)
BEFORE_REV = "fb2d808"
#: the real cartoon development set (../shared/realset/make_dev.py), measured when it is built; never tuned on
REALSET = Path(os.environ.get("REALSET_OUT") or Path.home() / ".cache" / "quickart-realset") / "color"
#: a flat colour piece of a real frame this big counts as a region
REAL_REGION_MIN = 50
#: a half gains this many luma levels for a sequence to pass (less is not visible)
PASS_LEVELS = 1.0
LEFT, RIGHT = "-1,0,1", "1,0,1"
SHEET_LIGHTS = [("left", "-1,0,1"), ("right", "1,0,1"), ("behind", "0,-0.3,-1"), ("upper left", "-1,-1,1")]


class Method:
    """One version of the light stage's per-frame path: colour model, surface, shade, layer."""

    def __init__(self, name: str, palette, render, settings):
        self.name, self.palette, self.render, self.settings = name, palette, render, settings

    def light(self, direction: str):
        return self.settings.light_from({**self.settings.DEFAULTS, "direction": direction}, self.name)

    def lit(self, images: list[np.ndarray], directions: list[str]) -> list[list[np.ndarray]]:
        """Per direction, the lit frames."""
        self.palette._CACHE.clear()
        model, _ = self.palette.model_for(images)
        surfaces = [self.render.surface(img, model) for img in images]
        return [[self.render.shade(img, s, self.light(d)) for img, s in zip(images, surfaces)] for d in directions]


def before_method(rev: str) -> Method:
    """The light stage at ``rev``, copied out of git into bench/out/ as its own package."""
    root = OUT / f"light_{rev}"
    pkg = root / "light_before"
    if not (pkg / "render.py").is_file():
        pkg.mkdir(parents=True, exist_ok=True)
        for name in ("palette", "geometry", "render", "settings"):
            text = subprocess.run(["git", "show", f"{rev}:quickart_daemon/stages/light/{name}.py"], cwd=ROOT,
                                  capture_output=True, text=True, check=True).stdout
            (pkg / f"{name}.py").write_text(text.replace("from ...", "from quickart_daemon."))
        (pkg / "__init__.py").write_text("")
    sys.path.insert(0, str(root))
    mods = [importlib.import_module(f"light_before.{m}") for m in ("palette", "render", "settings")]
    return Method(f"before ({rev})", *mods)


def figure_sets(size: tuple[int, int], frames: int) -> dict[str, list[list[tuple[np.ndarray, np.ndarray]]]]:
    """set name -> sequences -> frames as (RGBA, region labels: >0 fills, -1 lines, 0 outside)."""
    sets = {"synth (ours)": [[(c.color, c.labels) for c in synth.sequence(seed, frames, size=size, rough=False).values()]
                             for seed in (3, 11, 21, 42)]}
    for style in ("blobs", "blocks"):
        sets[f"{style} (held out)"] = [[(f.color, f.labels) for f in light_figures.sequence(style, seed, frames, size)]
                                       for seed in range(4)]  # seed % 4: the four part layouts
    real = sorted(REALSET.glob("*/color"))
    if real:
        sets["real (dev set)"] = [[real_frame(p) for p in sorted(d.glob("frame_*.png"))[:frames]] for d in real]
    return sets


def real_frame(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """A real cartoon frame (opaque, on white) and labels made from it: each connected piece of one
    exact colour of at least REAL_REGION_MIN pixels is a region, other drawn pixels (gradients,
    lines, anti-aliasing) are -1, the white paper 0."""
    rgb = cv2.imread(str(path), cv2.IMREAD_COLOR)[..., ::-1]
    packed = (rgb[..., 0].astype(np.int64) << 16) | (rgb[..., 1].astype(np.int64) << 8) | rgb[..., 2]
    labels = np.where(packed == 0xFFFFFF, 0, -1).astype(np.int32)
    colours, counts = np.unique(packed[labels < 0], return_counts=True)
    next_id = 1
    for colour in colours[counts >= REAL_REGION_MIN]:
        n, pieces, stats, _ = cv2.connectedComponentsWithStats((packed == colour).view(np.uint8), connectivity=4)
        big = stats[:, cv2.CC_STAT_AREA] >= REAL_REGION_MIN
        big[0] = False  # the background of this colour's mask
        ids = np.zeros(n, np.int32)
        ids[big] = np.arange(next_id, next_id + big.sum())
        next_id += int(big.sum())
        labels = np.where(ids[pieces] > 0, ids[pieces], labels)
    return np.dstack([rgb, np.full(rgb.shape[:2], 255, np.uint8)]), labels


def flat_share(lit: np.ndarray, labels: np.ndarray) -> float:
    """Share of the regions' inner pixels (3 px in from their edges) in their three commonest colours."""
    packed = (lit[..., 0].astype(np.int64) << 16) | (lit[..., 1].astype(np.int64) << 8) | lit[..., 2]
    top = total = 0
    for rid in np.unique(labels[labels > 0]):
        inner = cv2.erode((labels == rid).astype(np.uint8), np.ones((5, 5), np.uint8)).astype(bool)
        if inner.sum() >= 200:
            top += np.sort(np.unique(packed[inner], return_counts=True)[1])[::-1][:3].sum()
            total += inner.sum()
    return top / max(total, 1)


def response_table(methods: list[Method], sets) -> None:
    print(f"\nfigure-scale direction response, lit {LEFT} vs {RIGHT} (luma levels; pass: both halves >= {PASS_LEVELS:g})")
    print(f"{'set':<18}{'method':<20}{'pixels L/R':>14}{'regions L/R':>14}{'pass px':>9}{'pass reg':>9}{'flat':>7}")
    for set_name, sequences in sets.items():
        for m in methods:
            px, reg, flat = [], [], []
            for seq in sequences:
                images, labels = [img for img, _ in seq], [lab for _, lab in seq]
                left, right = m.lit(images, [LEFT, RIGHT])
                px.append(light_figures.side_response(left, right, labels))
                reg.append(light_figures.side_response(left, right, labels, per_region=True))
                flat.append(flat_share(left[0], labels[0]))
            px, reg = np.array(px), np.array(reg)
            passes = lambda g: f"{int((g.min(1) >= PASS_LEVELS).sum())}/{len(g)}"
            print(f"{set_name:<18}{m.name:<20}{px[:, 0].mean():>7.1f}/{px[:, 1].mean():<6.1f}"
                  f"{reg[:, 0].mean():>7.1f}/{reg[:, 1].mean():<6.1f}{passes(px):>9}{passes(reg):>9}{np.mean(flat):>7.2f}")


def speed_table(methods: list[Method], frames: int) -> None:
    size = (1920, 1080)
    cases = {"synth seed 3": [c.color for c in synth.sequence(3, frames, size=size, rough=False).values()],
             "blocks seed 1 (opaque)": [f.color for f in light_figures.sequence("blocks", 1, frames, size)]}
    print(f"\nseconds per 1920x1080 frame, one thread ({frames} frames; median; colour model once per layer apart)")
    print(f"{'drawing':<24}{'method':<20}{'model':>7}{'normals':>9}{'1 light':>9}{'layer':>7}{'total':>7}")
    for case, images in cases.items():
        for m in methods:
            m.palette._CACHE.clear()
            t0 = time.perf_counter()
            model, _ = m.palette.model_for(images)
            t_model = time.perf_counter() - t0
            light = m.light(LEFT)
            geo, shading, layer = [], [], []
            for img in images:
                t0 = time.perf_counter(); surf = m.render.surface(img, model)
                t1 = time.perf_counter(); lit = m.render.shade(img, surf, light)
                t2 = time.perf_counter(); m.render.light_layer(img, lit)
                t3 = time.perf_counter()
                geo.append(t1 - t0); shading.append(t2 - t1); layer.append(t3 - t2)
            g, s, la = np.median(geo), np.median(shading), np.median(layer)
            print(f"{case:<24}{m.name:<20}{t_model:>7.2f}{g:>9.3f}{s:>9.3f}{la:>7.3f}{g + s + la:>7.3f}")


def contact_sheet(methods: list[Method], sets) -> Path:
    """One figure per set: input, then each method under each light, over mid grey."""
    rows = []
    for seqs in sets.values():
        img = seqs[1][0][0]
        ys, xs = np.nonzero(img[..., 3] > 0) if (img[..., 3] < 255).any() else np.nonzero(seqs[1][0][1])
        box = (slice(max(ys.min() - 12, 0), ys.max() + 13), slice(max(xs.min() - 12, 0), xs.max() + 13))
        tiles = [("input", img)]
        for m in methods:
            lits = m.lit([img], [d for _, d in SHEET_LIGHTS])
            tiles += [(f"{m.name.split()[0]}: {name}", lit[0]) for (name, _), lit in zip(SHEET_LIGHTS, lits)]
        row = []
        for label, out in tiles:
            a = out[..., 3:4].astype(np.float32) / 255
            tile = (out[..., :3] * a + 150 * (1 - a)).astype(np.uint8)[box].copy()
            cv2.putText(tile, label, (4, 14), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (0, 0, 0), 3, cv2.LINE_AA)
            cv2.putText(tile, label, (4, 14), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (255, 255, 255), 1, cv2.LINE_AA)
            row.append(tile)
        rows.append(row)
    h = max(t.shape[0] for r in rows for t in r)
    w = max(t.shape[1] for r in rows for t in r)
    pad = lambda t: cv2.copyMakeBorder(t, 0, h - t.shape[0], 0, w - t.shape[1], cv2.BORDER_CONSTANT, value=(150,) * 3)
    sheet = np.concatenate([np.concatenate([pad(t) for t in r], 1) for r in rows], 0)
    OUT.mkdir(parents=True, exist_ok=True)
    path = OUT / "light_contact.png"
    cv2.imwrite(str(path), sheet[..., ::-1])
    return path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size", default="960x540", help="figure sets' frame size (the speed table is always 1080p)")
    ap.add_argument("--frames", type=int, default=3)
    ap.add_argument("--threads", type=int, default=1, help="OpenCV threads")
    ap.add_argument("--before", default=BEFORE_REV, help="git revision of the 'before' light stage")
    ap.add_argument("--no-speed", action="store_true")
    a = ap.parse_args()
    cv2.setNumThreads(a.threads)
    size = tuple(int(v) for v in a.size.split("x"))
    methods = [before_method(a.before), Method("after", after_palette, after_render, after_settings)]
    sets = figure_sets(size, a.frames)  # type: ignore[arg-type]
    response_table(methods, sets)
    if not a.no_speed:
        speed_table(methods, a.frames)
    print(f"\npeak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB")
    print(f"contact sheet: {contact_sheet(methods, sets)}")


if __name__ == "__main__":
    main()
