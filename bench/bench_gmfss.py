"""Seconds per in-between of our GMFSS Fortuna (quickart_daemon/stages/inbetween/gmfss) on CPU.

    .venv/bin/python bench/bench_gmfss.py --threads 2 --sizes 512x512 1920x1080 --scales 1.0 0.5

Per size and flow scale: the per-pair part (features, flow, metric: `prepare`) and the per-t part
(splatting, RIFE, GridNet: `synthesize`), each the best of `--repeats` runs after a warm-up,
wall and process CPU time. A frame of a pair with k in-betweens costs prepare / k + synthesize.
Needs `quickart models install gmfss-fortuna` (or the test cache, --models).
"""

from __future__ import annotations

import argparse
import math
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from quickart_daemon.stages.inbetween.gmfss import load_gmfss, size_multiple


def timed(fn):
    wall, cpu = time.perf_counter(), time.process_time()
    out = fn()
    return out, time.perf_counter() - wall, time.process_time() - cpu


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", type=Path, default=Path.home() / ".cache" / "quickart-test-models")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--sizes", nargs="+", default=["512x512", "1920x1080"])
    ap.add_argument("--scales", nargs="+", type=float, default=[1.0, 0.5])
    ap.add_argument("--repeats", type=int, default=1)
    ap.add_argument("--no-warmup", action="store_true", help="time the first call (large frames: saves a run)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    for size in args.sizes:
        w, h = map(int, size.split("x"))
        g = torch.Generator().manual_seed(0)
        img0 = F.interpolate(torch.rand(1, 3, h // 16, w // 16, generator=g), (h, w), mode="bilinear")
        img1 = torch.roll(img0, shifts=(3, 8), dims=(2, 3))
        for scale in args.scales:
            model = load_gmfss(args.models, "cpu", scale=scale)
            m = size_multiple(scale)
            ph, pw = math.ceil(h / m) * m, math.ceil(w / m) * m
            a = F.pad(img0, (0, pw - w, 0, ph - h), mode="replicate")
            b = F.pad(img1, (0, pw - w, 0, ph - h), mode="replicate")
            best = {"prepare": (1e9, 1e9), "synthesize": (1e9, 1e9)}
            with torch.inference_mode():
                if not args.no_warmup:  # oneDNN primitives, grids
                    model.synthesize(model.prepare(a, b), 0.5)
                for _ in range(args.repeats):
                    pair, wall, cpu = timed(lambda: model.prepare(a, b))
                    best["prepare"] = min(best["prepare"], (wall, cpu))
                    _, wall, cpu = timed(lambda: model.synthesize(pair, 0.5))
                    best["synthesize"] = min(best["synthesize"], (wall, cpu))
            (pw_, pc), (sw, sc) = best["prepare"], best["synthesize"]
            print(f"{w}x{h} (padded {pw}x{ph}) scale {scale}: prepare {pw_:.2f} s (cpu {pc:.2f}), "
                  f"synthesize {sw:.2f} s (cpu {sc:.2f}), one in-between {pw_ + sw:.2f} s "
                  f"[{args.threads} threads]", flush=True)


if __name__ == "__main__":
    main()
