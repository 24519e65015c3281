"""Refine benchmark: held-out quality tables, speed at 1080p and 4K, peak RAM, contact sheets.

    .venv/bin/python bench/bench_refine.py [--frames 4] [--size 960x540] [--threads 1] [--no-speed]

Quality (`quickart_daemon.tools.refine.evaluate`, ink F1 at 1-pixel tolerance against the
clean ink, as everywhere in refine):

1. the generator's held-out seed (never used in training): ink F1, precision, recall,
   trace-line F1, fraction of the scan's gaps closed and spurious components for the raw
   scan, an adaptive-threshold baseline, the classical cleanup and the learned refiner;
2. every rough family of `rough_families` on held-out drawing seeds, the held-out family
   (never in training) beside the training families, and real clip-art line drawings
   (`clipart`, when Debian's openclipart-svg and librsvg2-bin are installed): ink F1 of the
   adaptive threshold, the classical cleanup, the previous model and the stage's model,
   and the stage's margin over the adaptive threshold.

Speed: each (method, size) runs in a fresh process limited to `--threads` CPU threads (the
render node's share) on a frame rendered beforehand, so its peak resident memory is the
stage's own (plus Python, numpy, OpenCV and torch: the "at start" column); seconds per frame
(wall clock, and CPU seconds of the process: one core's work with --threads 1, less disturbed
by other jobs on a shared machine) are the median of a few runs after one warm-up. On a machine with CUDA the learned refiner is
timed on the GPU too. Contact sheets: bench/out/refine_contact.png (generator seed: rough |
adaptive | classical | learned | target) and bench/out/refine_heldout_contact.png (held-out
family and real drawings: input | ours | truth).
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
OUT = ROOT / "bench" / "out"


def _peak_rss_mib() -> float:
    """This process's peak resident memory (VmHWM: unlike ru_maxrss it starts afresh at exec)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _speed_child(method: str, size: str, device: str, threads: int, repeats: int) -> None:
    import numpy as np
    import torch
    torch.set_num_threads(threads)
    import cv2
    cv2.setNumThreads(threads)
    from quickart_daemon.stages.base import StageContext
    from quickart_daemon.stages.refine import SPEC
    from quickart_daemon.timing import schedule_from_timing
    w, h = (int(v) for v in size.split("x"))
    frame = np.load(OUT / f"refine_frame_{size}.npy")  # rendered by the parent: RSS is the stage's own
    base_rss = _peak_rss_mib()
    ctx = StageContext(schedule=schedule_from_timing({"b": [1]}, 1), params={"method": method},
                       device=device, models_dir=ROOT / "models")
    times, cpu = [], []
    for i in range(repeats + 1):
        t0, c0 = time.perf_counter(), time.process_time()
        res = SPEC.run({("b", 1): frame}, ctx)
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        if i:
            times.append(time.perf_counter() - t0)
            cpu.append(time.process_time() - c0)
    assert res.frames[("b", 1)].shape[:2] == (h, w)
    # CPU seconds of the process: on a shared, oversubscribed machine the wall clock also
    # counts the time other jobs held the core; with --threads 1 this is one core's work
    print(json.dumps({"seconds": float(np.median(times)), "cpu_seconds": float(np.median(cpu)),
                      "method": res.report["method"],
                      "peak_rss_mib": _peak_rss_mib(),
                      "rss_before_mib": base_rss}))


def speed(method: str, size: str, device: str, threads: int, repeats: int) -> dict:
    env = dict(os.environ, OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads))
    r = subprocess.run([sys.executable, __file__, "--_child", method, size, device, str(threads), str(repeats)],
                       capture_output=True, text=True, env=env, cwd=ROOT)
    if r.returncode:
        raise SystemExit(f"speed run {method} {size} failed:\n{r.stderr[-2000:]}")
    return json.loads(r.stdout.strip().splitlines()[-1])


def contact_sheet(pairs, outputs, path: Path, crop: int = 360) -> None:
    import cv2
    import numpy as np
    from quickart_daemon.tools.refine.evaluate import METHODS
    rows = []
    for i, pair in enumerate(pairs):
        ys, xs = np.nonzero(pair.ink >= 0.5)
        cy, cx = int(np.median(ys)), int(np.median(xs))
        h, w = pair.ink.shape
        c = min(crop, h, w)
        y0, x0 = min(max(0, cy - c // 2), h - c), min(max(0, cx - c // 2), w - c)
        target = pair.frame.clean[..., :3]  # the generator's clean drawing
        tiles = [pair.rough] + [outputs[m][i][..., :3] for m in METHODS if m != "raw"] + [target]
        rows.append(np.hstack([np.pad(t[y0:y0 + c, x0:x0 + c], ((2, 2), (2, 2), (0, 0)), constant_values=128)
                               for t in tiles]))
    sheet = np.vstack(rows)
    labels = ["rough scan (held out)", "adaptive threshold", "classical", "learned", "target"]
    head = np.full((28, sheet.shape[1], 3), 255, np.uint8)
    step = sheet.shape[1] // len(labels)
    for k, name in enumerate(labels):
        cv2.putText(head, name, (k * step + 8, 20), cv2.FONT_HERSHEY_SIMPLEX, 0.6, (0, 0, 0), 1, cv2.LINE_AA)
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), np.vstack([head, sheet])[..., ::-1])


def heldout_sheet(cases, path: Path, crop: int = 320) -> None:
    """input | ours | truth crops (around the drawing's centre) of a few held-out cases."""
    import cv2
    import numpy as np
    from quickart_daemon.stages.refine.colours import CLASS_NAMES, CLASS_RGB
    rows = []
    for label, pair, out in cases:
        ys, xs = np.nonzero(pair.ink >= 0.5)
        h, w = pair.ink.shape
        c = min(crop, h, w)
        cy, cx = (int(np.median(ys)), int(np.median(xs))) if len(ys) else (h // 2, w // 2)
        y0, x0 = min(max(0, cy - c // 2), h - c), min(max(0, cx - c // 2), w - c)
        truth = np.full((h, w, 3), 255.0, np.float32)
        colour = np.zeros((h, w, 3), np.float32)  # trace lines in their class colours
        cls = pair.trace_class if pair.trace_class is not None else np.ones((h, w), np.uint8)
        for idx, name in enumerate(CLASS_NAMES[1:], start=1):
            colour[cls == idx] = CLASS_RGB[name]
        truth = truth * (1 - pair.trace[..., None]) + colour * pair.trace[..., None]
        truth *= 1 - pair.ink[..., None]
        tiles = [pair.rough, out[..., :3], truth.astype(np.uint8)]
        row = np.hstack([np.pad(t[y0:y0 + c, x0:x0 + c], ((2, 2), (2, 2), (0, 0)), constant_values=128) for t in tiles])
        cv2.putText(row, label, (8, 18), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (0, 0, 200), 1, cv2.LINE_AA)
        rows.append(row)
    sheet = np.vstack(rows)
    head = np.full((28, sheet.shape[1], 3), 255, np.uint8)
    for k, name in enumerate(("input (held out)", "ours", "truth (clean ink)")):
        cv2.putText(head, name, (k * (sheet.shape[1] // 3) + 8, 20), cv2.FONT_HERSHEY_SIMPLEX, 0.6, (0, 0, 0), 1,
                    cv2.LINE_AA)
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), np.vstack([head, sheet])[..., ::-1])


def family_table(size: tuple[int, int], frames: int) -> tuple[list[dict], list]:
    """Ink F1 per evaluation set and method; and (label, pair, output) of a few held-out cases."""
    from quickart_daemon.stages.refine import MODEL_NAME
    from quickart_daemon.tools.refine import evaluate
    previous = ("refine-v1",) if MODEL_NAME != "refine-v1" else ()
    methods = ("adaptive", "classical") + previous + ("learned",)
    rows, cases = [], []
    for name in evaluate.SETS:
        t0 = time.perf_counter()
        pairs = evaluate.pairs_of(name, size, frames)
        if not pairs:
            print(f"{name:<13} (no drawings: apt-get install openclipart-svg librsvg2-bin; "
                  "for cartoon-scan run ../shared/realset/make_dev.py)")
            continue
        res = evaluate.evaluate(pairs, methods=methods, models_dir=ROOT / "models", keep_outputs=True)
        t = res["table"]
        row = {"set": name, "role": evaluate.role(name), "frames": len(pairs),
               **{m: t[m]["f1"] for m in methods}, "learned_detail": t["learned"],
               "drawings": [p.name for p in pairs if evaluate.role(name) == "real"], "seconds": time.perf_counter() - t0}
        rows.append(row)
        print(f"{name:<13} {row['role']:>9} " + " ".join(f"{row[m]:>10.3f}" for m in methods)
              + f" {row['learned'] - row['adaptive']:>+10.3f}", flush=True)
        if row["role"] != "trained":
            cases += [(f"{name} {i}", p, res["outputs"]["learned"][i]) for i, p in enumerate(pairs[:2])]
    return rows, cases


def main() -> int:
    if len(sys.argv) > 1 and sys.argv[1] == "--_child":
        _speed_child(sys.argv[2], sys.argv[3], sys.argv[4], int(sys.argv[5]), int(sys.argv[6]))
        return 0
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--frames", type=int, default=4)
    ap.add_argument("--size", default="960x540")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--no-speed", action="store_true")
    ap.add_argument("--no-families", action="store_true", help="only the generator's held-out seed")
    a = ap.parse_args()
    import numpy as np
    import torch
    torch.set_num_threads(a.threads)
    from quickart_daemon.stages.refine import MODEL_NAME
    from quickart_daemon.tools.refine import data, evaluate
    w, h = (int(v) for v in a.size.split("x"))
    print(f"machine: {os.cpu_count()} CPUs, torch {torch.__version__}, {a.threads} thread(s), load average at start "
          f"{' '.join(f'{v:.1f}' for v in os.getloadavg())} (shared machine: compare rows of one run)")
    t0 = time.perf_counter()
    pairs = data.held_out_pairs((w, h), n=a.frames)
    res = evaluate.evaluate(pairs, models_dir=ROOT / "models", keep_outputs=True)
    print(f"held-out quality: generator seed {data.HELD_OUT_SEED}, {a.frames} frames at {w}x{h} "
          f"(gaps per frame: {res['table']['raw']['gaps']:.0f}); learned = {MODEL_NAME}; "
          f"{time.perf_counter() - t0:.0f} s")
    print(evaluate.format_table(res["table"]))
    contact_sheet(pairs, res["outputs"], OUT / "refine_contact.png")
    print(f"contact sheet: {OUT / 'refine_contact.png'}")
    quality = {"generator": res["table"]}
    if not a.no_families:
        from quickart_daemon.tools.refine.rough_families import HELD_OUT_FAMILY
        previous = ["refine-v1"] if MODEL_NAME != "refine-v1" else []
        print(f"\nink F1 (1 px) by rough family, {a.frames} frames at {w}x{h}, held-out drawing seeds; "
              f"held-out family: {HELD_OUT_FAMILY} (never in training); real: clip art and real cartoons' line art")
        print(f"{'set':<13} {'role':>9} " + " ".join(f"{m:>10}" for m in ["adaptive", "classical"] + previous
                                                     + [MODEL_NAME]) + f" {'vs adapt.':>10}")
        rows, cases = family_table((w, h), a.frames)
        for role in ("trained", "held out", "real"):
            sel = [r for r in rows if r["role"] == role]
            if sel:
                print(f"{'mean ' + role:<23} " + " ".join(
                    f"{np.mean([r[m] for r in sel]):>10.3f}" for m in ["adaptive", "classical"] + previous + ["learned"])
                    + f" {np.mean([r['learned'] - r['adaptive'] for r in sel]):>+10.3f}")
        held = [r for r in rows if r["role"] == "held out"]
        if held:
            print(f"\nheld-out family {HELD_OUT_FAMILY}, {MODEL_NAME} in detail:")
            print(evaluate.format_table({MODEL_NAME: held[0]["learned_detail"]}))
        for r in rows:
            if r["drawings"]:
                print(f"{r['set']} drawings: {', '.join(r['drawings'])}")
        heldout_sheet(cases, OUT / "refine_heldout_contact.png")
        print(f"contact sheet: {OUT / 'refine_heldout_contact.png'}")
        quality["families"] = rows
    (OUT / "refine_quality.json").write_text(json.dumps(quality, indent=1))
    if a.no_speed:
        return 0
    print(f"\nspeed: seconds per frame, {a.threads} CPU thread(s), whole stage (flatten, refine, compose)")
    print(f"{'method':<10} {'size':>10} {'device':>7} {'s/frame':>8} {'CPU s/frame':>12} {'peak RSS MiB':>13} "
          f"{'(at start)':>11}")
    for size in ("1920x1080", "3840x2160"):
        sw, sh = (int(v) for v in size.split("x"))
        pair = data.render_pair(data.HELD_OUT_SEED, 1001.0, (sw, sh))
        np.save(OUT / f"refine_frame_{size}.npy", np.dstack([pair.rough, np.full((sh, sw), 255, np.uint8)]))
        del pair
    devices = ["cpu"] + (["cuda:0"] if torch.cuda.is_available() else [])
    rows = []
    for method in ("classical", "learned"):
        for size in ("1920x1080", "3840x2160"):
            for device in devices if method == "learned" else ["cpu"]:
                r = speed(method, size, device, a.threads, 3 if size == "1920x1080" else 2)
                rows.append({"method": method, "size": size, "device": device, **r})
                print(f"{method:<10} {size:>10} {device:>7} {r['seconds']:>8.3f} {r['cpu_seconds']:>12.3f} "
                      f"{r['peak_rss_mib']:>13.0f} "
                      f"{r['rss_before_mib']:>11.0f}", flush=True)
    (OUT / "refine_speed.json").write_text(json.dumps(rows, indent=1))
    print(f"load average at end {' '.join(f'{v:.1f}' for v in os.getloadavg())}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
