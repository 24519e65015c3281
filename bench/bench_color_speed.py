"""Speed of the `color` stage per 1080p drawing, this checkout beside another one, in one run.

    nice .venv/bin/python bench/bench_color_speed.py --old /tmp/wt-colour-base [--size 1920x1080]
        [--reps 2] [--profile 25]

Each checkout runs in its own process (PYTHONPATH set to it, OMP, OpenCV and BLAS on one
thread), alternating, so both see the same load on a shared machine. The drawing is the one of
`bench_real.py --color-speed`: tg_duck_safe's line art of frame 4 coloured from frame 0 (its cel
and line art), scaled to the height and centred on white. Timed: the whole stage on the two keys
(the reference's own segmentation is part of the cost: a job builds it once per key). Printed: the
best of --reps per checkout, the ratio, and whether the two outputs (frame and confidence map)
are identical array for array. --profile N: the N heaviest functions (cProfile, cumulative) of
this checkout's run.

The development set is looked for under $REALSET_OUT or ~/.cache/quickart-realset (see
bench_real.py)."""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
ONE_THREAD = {"OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}

CHILD = r"""
import cProfile, io, json, pstats, sys, time
from pathlib import Path
import cv2, numpy as np
cv2.setNumThreads(1)
sys.path.insert(0, sys.argv[1] + "/bench")
from bench_real import load_rgba
from quickart_daemon import stages
from quickart_daemon.stages.base import StageContext
from quickart_daemon.timing import schedule_from_timing
root, (w, h), reps, out, prof = Path(sys.argv[2]), map(int, sys.argv[3].split("x")), int(sys.argv[4]), sys.argv[5], int(sys.argv[6])
def fit(im):
    im = cv2.resize(im, (h * im.shape[1] // im.shape[0], h), interpolation=cv2.INTER_CUBIC)
    canvas = np.full((h, w, 4), 255, np.uint8)
    x0 = (w - im.shape[1]) // 2
    canvas[:, x0:x0 + im.shape[1]] = im
    return canvas
anim = root / "color" / "tg_duck_safe"
cel = fit(load_rgba(anim / "color" / "frame_0000.png"))
lines = {i: fit(load_rgba(anim / "lines" / f"frame_{i:04d}.png")) for i in (0, 4)}
def once():
    ctx = StageContext(schedule=schedule_from_timing({"char": [0, 4]}, 1), refs={("char", 0): cel})
    return stages.get("color").run({("char", 0): lines[0], ("char", 4): lines[4]}, ctx)
times = []
for _ in range(reps):
    t0 = time.perf_counter()
    res = once()
    times.append(time.perf_counter() - t0)
np.savez_compressed(out, frame=res.frames[("char", 4)], confidence=res.variants["confidence"][("char", 4)])
top = ""
if prof:
    p = cProfile.Profile()
    p.enable(); once(); p.disable()
    s = io.StringIO()
    pstats.Stats(p, stream=s).sort_stats("cumulative").print_stats(prof)
    top = s.getvalue()
print(json.dumps({"times": times, "profile": top}))
"""


def realset_root() -> Path:
    return Path(os.environ.get("REALSET_OUT", Path.home() / ".cache" / "quickart-realset"))


def run_checkout(path: Path, size: str, reps: int, out: Path, profile: int) -> dict:
    env = {**os.environ, **ONE_THREAD, "PYTHONPATH": str(path)}
    p = subprocess.run([sys.executable, "-c", CHILD, str(path), str(realset_root()), size, str(reps), str(out),
                        str(profile)], env=env, capture_output=True, text=True, cwd=path)
    if p.returncode != 0:
        raise SystemExit(f"{path}: the colour stage failed:\n{p.stderr[-2000:]}")
    return json.loads(p.stdout.strip().splitlines()[-1])


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--old", required=True, help="the other checkout (a git worktree of the commit to compare with)")
    ap.add_argument("--size", default="1920x1080")
    ap.add_argument("--reps", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=2, help="alternating rounds (old, new, old, new, ...)")
    ap.add_argument("--profile", type=int, default=0, help="print this checkout's N heaviest functions")
    a = ap.parse_args(argv)
    old = Path(a.old).resolve()
    if not (old / "quickart_daemon" / "stages" / "color").is_dir():
        print(f"--old {old}: not a QuickArt checkout (make one: git worktree add --detach {old} COMMIT)",
              file=sys.stderr)
        return 1
    best = {"old": [], "new": []}
    with tempfile.TemporaryDirectory() as tmp:
        outs = {k: Path(tmp) / f"{k}.npz" for k in best}
        for _ in range(a.rounds):
            for k, path in (("old", old), ("new", ROOT)):
                best[k] += run_checkout(path, a.size, a.reps, outs[k], 0)["times"]
        o, n = np.load(outs["old"]), np.load(outs["new"])
        same = {k: bool(np.array_equal(o[k], n[k])) for k in ("frame", "confidence")}
        diff = int((np.abs(o["frame"].astype(int) - n["frame"].astype(int)).max(2) > 0).sum())
        top = run_checkout(ROOT, a.size, 1, outs["new"], a.profile)["profile"] if a.profile else ""
    print(f"## Colour stage speed: tg_duck_safe frame 4 from 0 at {a.size}, CPU 1 thread\n")
    print(f"| checkout | seconds (best of {len(best['old'])}) | all runs |")
    print("|---|---|---|")
    for k, path in (("old", old), ("new", ROOT)):
        print(f"| {k} ({path}) | {min(best[k]):.2f} | {' '.join(f'{t:.2f}' for t in best[k])} |")
    print(f"\nnew / old: {min(best['new']) / min(best['old']):.2f}; outputs identical: frame {same['frame']}"
          f" ({diff} pixels differ), confidence {same['confidence']}")
    if top:
        print("\n" + top)
    return 0


if __name__ == "__main__":
    sys.exit(main())
