"""Benchmark of the `color` stage on synthetic cels with ground truth.

    nice .venv/bin/python bench/bench_color.py [--size 960x540] [--seeds 1,2,3,4,5,6] [--no-speed]

Prints, per gap (reference = one key, target 1, 4 and 8 frames later), the share of
character pixels coloured correctly (ours and the naive nearest-centroid baseline), the
shadow-pixel accuracy, hinted-region accuracy, leaks on lines broken with gaps of 1-3 px,
then seconds per 1920x1080 frame for segmentation and matching, and peak RSS at 4K.
Writes a contact sheet (line, ours, truth, error) to bench/out/color_contact.png.
The metrics live in the package (quickart_daemon/tools/color_metrics.py), shared with the tests.
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


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size", default="960x540")
    ap.add_argument("--seeds", default="1,2,3,4,5,6")
    ap.add_argument("--no-speed", action="store_true")
    a = ap.parse_args(argv)
    size = tuple(int(v) for v in a.size.split("x"))
    seeds = [int(s) for s in a.seeds.split(",")]
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
