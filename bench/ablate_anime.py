"""Ablation of the anime method's held-still rule (issue 21): the dev set's in-betweens with the
rule (the stage as shipped) and without it (every pixel the network's), per animation, with
issue 21's measures; each animation is its own out-of-sample fold (the rule has no constant
fitted to this set: MOVING_MARGIN_PX and MOVING_SHARE were set on principle).

    .venv/bin/python bench/ablate_anime.py [--every 2] [--gaps 2,4,6]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))
import bench_real  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--every", type=int, default=2)
    ap.add_argument("--gaps", default="2,4,6")
    a = ap.parse_args()
    import torch
    torch.set_num_threads(1)
    from quickart_daemon.stages.inbetween import anime
    root = bench_real.realset_root(None)
    gaps = [int(g) for g in a.gaps.split(",")]
    results = {}
    shipped = anime.AnimeEngine._moving
    for name, moving in (("held-still rule", shipped), ("without", lambda self, pair, ch, t, h, w: np.ones((h, w), bool))):
        anime.AnimeEngine._moving = moving
        _, rows, *_ = bench_real.inbetween_bench(root, bench_real.INTERP, gaps, ["anime"], a.every)
        results[name] = rows
    anime.AnimeEngine._moving = shipped
    print("\n## anime: the held-still rule per animation (aggregate PSNR dB / chamfer px / ghost share)\n")
    print("| gap | animation | with the rule | without | rule - without (dB) |")
    print("|---|---|---|---|---|")
    for gap in gaps:
        gains = []
        for anim in bench_real.INTERP:
            cells = []
            for name in results:
                sel = [r for r in results[name] if r[0] == anim and r[1] == gap]
                cells.append((bench_real.aggregate_psnr([r[7] for r in sel]), np.mean([r[6] for r in sel]),
                              np.mean([r[8] for r in sel])))
            gains.append(cells[0][0] - cells[1][0])
            print(f"| {gap} | {anim} | " + " | ".join(f"{p:.2f} / {c:.2f} / {g:.3f}" for p, c, g in cells)
                  + f" | {gains[-1]:+.2f} |")
        print(f"| {gap} | **worst / mean** | | | {min(gains):+.2f} / {np.mean(gains):+.2f} |")


if __name__ == "__main__":
    main()
