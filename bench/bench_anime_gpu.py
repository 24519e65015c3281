"""The anime in-between on CUDA: fp32 and fp16, speed, memory, agreement (issue 21's device check).

    .venv/bin/python bench/bench_anime_gpu.py [--size 1920x1080] [--pairs 3] [--times 3]

Run on a render node (or a lent GPU machine) with `quickart models install gmfss-fortuna` done.
Per precision: seconds per in-between (a pair's `prepare` shared by its --times in-betweens, after
a warm-up, CUDA synchronised), peak GPU memory, and for fp16 the PSNR of its frames against fp32
(above 40 dB: the same picture; the stage's `precision: fp16` is only worth turning on then).
Also the same frames through the stage's AnimeEngine (the alpha and held-still handling) in fp32,
and the reference RIFE v4 network (our IFNet, fp32) on the same pairs for the ratio. Keys: the
real development set's tg_duck_safe scaled up, or smooth synthetic frames with --synthetic.
Prints a table; exits non-zero without CUDA (`--device cpu` tries the script itself).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))


def key_frames(size: tuple[int, int], n: int, synthetic: bool) -> list[np.ndarray]:
    w, h = size
    if synthetic:
        yy, xx = np.mgrid[:h, :w].astype(np.float32)
        out = []
        for i in range(n):
            cx, cy = w * (0.3 + 0.05 * i), h * 0.5
            disk = ((xx - cx) ** 2 + (yy - cy) ** 2 < (h * 0.15) ** 2)
            img = np.full((h, w, 4), 255, np.uint8)
            img[disk] = (40, 90, 200, 255)
            out.append(img)
        return out
    from bench_real import fit_frame, load_rgba, realset_root
    root = realset_root(None)
    return [fit_frame(load_rgba(root / "interp" / "tg_duck_safe" / f"frame_{2 * i:04d}.png"), size) for i in range(n)]


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return 99.0 if mse == 0 else 10 * np.log10(1.0 / mse)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size", default="1920x1080")
    ap.add_argument("--pairs", type=int, default=3)
    ap.add_argument("--times", type=int, default=3)
    ap.add_argument("--synthetic", action="store_true")
    ap.add_argument("--models", default=str(ROOT / "models"))
    ap.add_argument("--device", default="cuda:0", help="cuda:N; cpu only to try the script itself (fp16 on CPU)")
    a = ap.parse_args()
    cuda = a.device.startswith("cuda")
    if cuda and not torch.cuda.is_available():
        sys.exit("no CUDA device: this check runs on a GPU render node")
    from quickart_daemon.stages.inbetween import anime, classical, engine
    from quickart_daemon.weights import verified_path
    size = tuple(int(v) for v in a.size.split("x"))
    keys = [classical.premultiply(k) for k in key_frames(size, a.pairs + 1, a.synthetic)]
    times = [(i + 1) / (a.times + 1) for i in range(a.times)]
    device = a.device

    def sync() -> None:
        if cuda:
            torch.cuda.synchronize()

    def peak() -> str:
        return f"{torch.cuda.max_memory_allocated() / 2**30:.2f} GiB" if cuda else "n/a"

    def reset() -> None:
        if cuda:
            torch.cuda.reset_peak_memory_stats()
            torch.cuda.empty_cache()
    gpu = torch.cuda.get_device_name(0) if cuda else "CPU (a dry run of the script)"
    print(f"\n## anime in-betweens on {gpu} at {a.size}: {a.pairs} pairs x "
          f"{a.times} in-betweens\n")
    print("| run | s per in-between | peak GPU memory | PSNR vs fp32 |")
    print("|---|---|---|---|")
    results = {}
    rows = [("anime fp32", torch.float32), ("anime fp16", torch.float16)]
    for name, dtype in rows:
        eng = anime.AnimeEngine(Path(a.models), device, dtype)
        eng.pair(keys[0], keys[1], times[:1])  # warm-up: loads the weights, compiles kernels
        sync()
        reset()
        t0 = time.perf_counter()
        frames = []
        for k0, k1 in zip(keys, keys[1:]):
            frames += eng.pair(k0, k1, times)[0]
        sync()
        took = (time.perf_counter() - t0) / len(frames)
        results[name] = frames
        agree = "" if name.endswith("fp32") else \
            f"{min(psnr(x, y) for x, y in zip(frames, results['anime fp32'])):.1f} dB (worst frame)"
        print(f"| {name} | {took:.3f} | {peak()} | {agree} |", flush=True)
        del eng
        anime._MODELS.clear()
        reset()
    path = verified_path("rife-v4", Path(a.models))
    from quickart_daemon.filehash import sha256_file
    rife = engine.TorchEngine(engine.get_model(path, sha256_file(path), device, torch.float32), device)
    rife.pair(keys[0], keys[1], times[:1])
    sync()
    reset()
    t0 = time.perf_counter()
    n = 0
    for k0, k1 in zip(keys, keys[1:]):
        n += len(rife.pair(k0, k1, times, disagreement=False).frames)
    sync()
    print(f"| rife fp32 (reference network) | {(time.perf_counter() - t0) / n:.3f} | {peak()} | |")


if __name__ == "__main__":
    main()
