"""Benchmark of the `color` stage on synthetic cels with ground truth.

    nice .venv/bin/python bench/bench_color.py [--size 960x540] [--seeds 1,2,3,4,5,6] [--no-speed]
        [--without PASS[,PASS] | --only PASS | --ablate]

Prints, per gap (reference = one key, target 1, 4 and 8 frames later), the share of
character pixels coloured correctly (ours and the naive nearest-centroid baseline), the
shadow-pixel accuracy, hinted-region accuracy, leaks on lines broken with gaps of 1-3 px,
then seconds per 1920x1080 frame for segmentation and matching, and peak RSS at 4K.
Writes a contact sheet (line, ours, truth, error) to bench/out/color_contact.png.
The metrics live in the package (quickart_daemon/tools/color_metrics.py), shared with the tests.

`--without`, `--only`, `--ablate` (bench/color_ablation.py): instead, the accuracy and the shadow
pixels of the stage as shipped and of each variant of its passes (every seed's drawing prepared
once), and each pass's time.
"""

from __future__ import annotations

import argparse
import resource
import sys
import time
from pathlib import Path

import cv2
import numpy as np

from quickart_daemon.tools import synth
from quickart_daemon.tools.color_metrics import accuracy_table, hint_and_trace, leak_table
from quickart_daemon.stages.color.palette import Palette
from quickart_daemon.stages.color.reference import Colours, build_ref, prepare
from quickart_daemon.stages.color.stage import colour_drawing

OUT = Path(__file__).parent / "out"
sys.path.insert(0, str(Path(__file__).parent))
import color_ablation  # noqa: E402


def speed(size=(1920, 1080), reps=2):
    seq = synth.sequence(5, [1001, 1005], size=size, rough=False)
    colours = Colours()
    ref = build_ref(1001, seq[1001].color, seq[1001].clean, 0, colours)
    img = seq[1005].clean
    t_seg = []
    t_all = []
    for _ in range(reps):
        t0 = time.perf_counter()
        prepare(img)
        t_seg.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        colour_drawing(img, [ref], None, Palette(), colours, {}, 1005)
        t_all.append(time.perf_counter() - t0)
    seg, tot = min(t_seg), min(t_all)
    return seg, tot - seg, tot


def contact(sheet, path: Path):
    tiles = []
    for f, ours, ok, m in sheet:
        err = np.full_like(f.color, 255)
        err[m] = (210, 210, 210, 255)
        err[m & ~ok] = (230, 0, 0, 255)
        row = []
        for img in (f.clean, ours, f.color, err):
            a = img[..., 3:].astype(np.float32) / 255
            row.append((img[..., :3] * a + 255 * (1 - a)).astype(np.uint8))
        tiles.append(np.concatenate(row, 1))
    out = np.concatenate(tiles, 0)
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), out[..., ::-1])


def ablation(seeds, size, variants, gaps=(1, 4, 8)) -> None:
    """`accuracy_table`'s accuracy (character pixels, exact colour) and shadow pixels for each variant
    of the passes, every drawing prepared once; and the seconds per pass with all of them."""
    from quickart_daemon.stages.color.stage import drawing_state
    from quickart_daemon.tools.color_metrics import character_mask, correct
    got: dict[tuple[str, int], list] = {}
    times: dict[str, float] = {}
    count = 0
    for seed in seeds:
        seq = synth.sequence(seed, [1001] + [1001 + g for g in gaps], size=size, rough=False)
        colours = Colours()
        t0 = time.perf_counter()
        ref = build_ref(1001, seq[1001].color, seq[1001].clean, 0, colours)
        times["build_ref"] = times.get("build_ref", 0.0) + (time.perf_counter() - t0) / len(gaps)
        for g in gaps:
            f = seq[1001 + g]
            t0 = time.perf_counter()
            base = drawing_state(f.clean, [ref], None, Palette(), colours, {}, 1001 + g)
            times["drawing_state"] = times.get("drawing_state", 0.0) + time.perf_counter() - t0
            count += 1
            m = character_mask(f)
            for v in variants:
                s = color_ablation.run(base, v, times if v is color_ablation.FULL else None)
                ok = correct(s.image, f)
                got.setdefault((v.label, g), []).append((ok[m].mean(), ok[m & f.shadow].mean()))
    full = variants[0].label
    print(f"color stage ablation, synth seeds {seeds}, {size[0]}x{size[1]}, reference = key 1001, gaps "
          f"{' / '.join(map(str, gaps))}: accuracy % (character pixels, exact colour), its worst seed, shadow px %; "
          "then the change with the pass left out (points)")
    print("\n| left out | accuracy | worst seed | shadow px | seeds worse / better |")
    print("|---|---|---|---|---|")
    for v in variants:
        acc = [np.array([x[0] for x in got[(v.label, g)]]) for g in gaps]
        sh = [np.array([x[1] for x in got[(v.label, g)]]) for g in gaps]
        if v.label == full:
            print(f"| (none: {full}) | " + " / ".join(f"{a.mean() * 100:.2f}" for a in acc) + " | "
                  + " / ".join(f"{a.min() * 100:.2f}" for a in acc) + " | "
                  + " / ".join(f"{a.mean() * 100:.1f}" for a in sh) + " | |")
            base_acc, base_sh = acc, sh
            continue
        diff = np.concatenate([a - b for a, b in zip(acc, base_acc)])
        print(f"| {v.label} | " + " / ".join(f"{(a - b).mean() * 100:+.2f}" for a, b in zip(acc, base_acc)) + " | "
              + " / ".join(f"{(a.min() - b.min()) * 100:+.2f}" for a, b in zip(acc, base_acc)) + " | "
              + " / ".join(f"{(a - b).mean() * 100:+.1f}" for a, b in zip(sh, base_sh)) + " | "
              + f"{int((diff < -1e-3).sum())} / {int((diff > 1e-3).sum())} of {len(diff)} |")
    print(f"\nms per drawing, all passes ({count} drawings, one thread): " + ", ".join(
        f"{n} {1000 * times[n] / count:.1f}" for n in ["build_ref", "drawing_state"] + color_ablation.pipeline()
        if n in times))


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size", default="960x540")
    ap.add_argument("--seeds", default="1,2,3,4,5,6")
    ap.add_argument("--no-speed", action="store_true")
    color_ablation.add_arguments(ap)
    a = ap.parse_args(argv)
    size = tuple(int(v) for v in a.size.split("x"))
    seeds = [int(s) for s in a.seeds.split(",")]
    variants = color_ablation.variants(a)
    if variants:
        cv2.setNumThreads(1)
        ablation(seeds, size, variants)
        return
    t0 = time.time()
    rows, sheet = accuracy_table(seeds, size)
    print(f"color stage, synth seeds {seeds}, {size[0]}x{size[1]}, reference = key 1001, clean lines")
    print(f"{'gap':>4} {'ours':>8} {'min':>7} {'naive':>8} {'shadow px':>10} {'highlight px':>13}")
    for g, r in rows.items():
        print(f"{g:>4} {np.mean(r['ours']) * 100:7.2f}% {np.min(r['ours']) * 100:6.2f}% "
              f"{np.mean(r['naive']) * 100:7.2f}% {np.mean(r['shadow']) * 100:9.2f}% {np.mean(r['hl']) * 100:12.2f}%")
    h, hn, sh, hl = hint_and_trace(seeds, size)
    print(f"hints: {h * 100:.1f}% of {hn} hinted regions right; trace lines (hints on base regions only, "
          f"palette): shadow px {sh * 100:.1f}%, highlight px {hl * 100:.1f}%")
    lo, lc, ln = leak_table(seeds, size)
    print(f"leaks: {lo} merged regions of {ln} with 60 gaps of 1-3 px per drawing ({lc} on the unbroken lines)")
    contact(sheet, OUT / "color_contact.png")
    print(f"contact sheet: {OUT / 'color_contact.png'}  ({time.time() - t0:.0f} s)")
    if not a.no_speed:
        seg, mat, tot = speed()
        print(f"1920x1080: segmentation {seg:.2f} s, matching+finish {mat:.2f} s, total {tot:.2f} s per frame")
        seg4, mat4, tot4 = speed((3840, 2160), reps=1)
        rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(f"3840x2160: segmentation {seg4:.2f} s, total {tot4:.2f} s per frame; peak RSS {rss:.0f} MiB")


if __name__ == "__main__":
    sys.exit(main())
