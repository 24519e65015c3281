"""How exactly the `color` stage colours flat cels (issue 22): a flat reference, a flat drawing.

    nice .venv/bin/python bench/bench_flat_cels.py [--seeds 1-12] [--json FILE]

Cases (quickart_daemon/tools/flat_cels.py, generators unlike `synth`): the puppet at 320x240 and
480x360, on paper and on transparency, t = 0 / 3 / 6 / 9, its reference 4 and 8 frames before and
after (64 cases); the creature of each seed (random parts, limbs turning at their joints, in front
of the body and behind it) at 320x240 and 400x300, on paper for even seeds, t = 0 / 5, the same
references (16 cases a seed). Per generator and distance: cases, how many come out exact, mean
and worst share of painted pixels (off the lines) in their flat colour, and the pixels off the flat
colour in regions whose colour is right (copied in, not matched: 0 when no shading is carried
where the reference is flat). One thread is enough: about a minute.
"""

from __future__ import annotations

import argparse
import json

import numpy as np

from quickart_daemon.tools.flat_cels import creature, flat_errors, puppet


def cases(seeds):
    for size in ((320, 240), (480, 360)):
        for paper in (True, False):
            for t in (0, 3, 6, 9):
                for d in (-8, -4, 4, 8):
                    yield "puppet", None, size, paper, t, d
    for seed in seeds:
        for size in ((320, 240), (400, 300)):
            for t in (0, 5):
                for d in (-8, -4, 4, 8):
                    yield "creature", seed, size, seed % 2 == 0, t, d


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seeds", default="1-12", help="creature seeds: a range a-b or a list")
    ap.add_argument("--json", default=None, help="also write the per-case rows here")
    a = ap.parse_args()
    if "-" in a.seeds:
        lo, hi = (int(v) for v in a.seeds.split("-"))
        seeds = list(range(lo, hi + 1))
    else:
        seeds = [int(v) for v in a.seeds.split(",")]
    rows = []
    for kind, seed, size, paper, t, d in cases(seeds):
        if kind == "puppet":
            gen = lambda tt, size=size, paper=paper: puppet(tt, size=size, paper=paper)
        else:
            gen = lambda tt, size=size, paper=paper, seed=seed: creature(seed, tt, size=size, paper=paper)
        painted, wrong, copied = flat_errors(gen, t + d, t, paper)
        rows.append(dict(kind=kind, seed=seed, size=list(size), paper=paper, t=t, d=d, painted=painted, wrong=wrong,
                         copied=copied, accuracy=1 - wrong / max(painted, 1)))
    print("| generator | distance | cases | exact | mean | worst | px copied off a right colour |")
    print("|---|---|---|---|---|---|---|")
    for kind in ("puppet", "creature"):
        for d in (4, 8):
            rr = [r for r in rows if r["kind"] == kind and abs(r["d"]) == d]
            acc = np.array([r["accuracy"] for r in rr])
            print(f"| {kind} | {d} | {len(rr)} | {int((acc == 1).sum())} | {acc.mean():.4f} | {acc.min():.4f} | "
                  f"{sum(r['copied'] for r in rr)} |")
    if a.json:
        with open(a.json, "w") as f:
            json.dump(rows, f)


if __name__ == "__main__":
    main()
