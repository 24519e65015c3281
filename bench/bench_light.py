"""Speed and look of the `light` stage on CPU at 1920x1080.

    nice .venv/bin/python bench/bench_light.py [--frames 6] [--threads 2]

Prints a table (colour model once per layer, then per frame: geometry, one light setup, the
light layer; peak RSS) and writes bench/out/light_contact.png: one frame under several light
directions, cropped to the character, to judge by eye.
"""

from __future__ import annotations

import argparse
import resource
import time
from pathlib import Path

import cv2
import numpy as np

from quickart_daemon.stages.light import palette
from quickart_daemon.stages.light.render import light_layer, shade, surface
from quickart_daemon.stages.light.settings import DEFAULTS, light_from
from quickart_daemon.synth import render_background, sequence

OUT = Path(__file__).parent / "out"
DIRECTIONS = [("front left", "-1,0,1"), ("front right", "1,0,1"), ("top", "0,-1,0.6"),
              ("upper left", "-1,-1,1"), ("behind (rim)", "0,-0.2,-1"), ("behind right", "1,-0.3,-0.7")]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--frames", type=int, default=6)
    ap.add_argument("--threads", type=int, default=2)
    a = ap.parse_args()
    cv2.setNumThreads(a.threads)
    cels = sequence(3, a.frames, size=(1920, 1080), rough=False)
    images = [c.color for c in cels.values()]
    palette._CACHE.clear()
    t0 = time.perf_counter()
    model, _ = palette.model_for(images)
    t_model = time.perf_counter() - t0
    light = light_from({**DEFAULTS, "direction": "-1,0,1"}, "bench")
    geo, lit_t, layer_t = [], [], []
    for img in images:
        t0 = time.perf_counter(); surf = surface(img, model)
        t1 = time.perf_counter(); lit = shade(img, surf, light)
        t2 = time.perf_counter(); light_layer(img, lit)
        t3 = time.perf_counter()
        geo.append(t1 - t0); lit_t.append(t2 - t1); layer_t.append(t3 - t2)
    per = np.array(geo) + np.array(lit_t) + np.array(layer_t)
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"light stage, 1920x1080, {a.frames} frames, cv2 threads {a.threads}")
    print(f"{'step':<34}{'seconds':>10}")
    print(f"{'colour model (once per layer)':<34}{t_model:>10.3f}")
    print(f"{'geometry per frame (median)':<34}{np.median(geo):>10.3f}")
    print(f"{'one light setup per frame (median)':<34}{np.median(lit_t):>10.3f}")
    print(f"{'light layer per frame (median)':<34}{np.median(layer_t):>10.3f}")
    print(f"{'total per frame (median / max)':<34}{np.median(per):>10.3f} / {per.max():.3f}"
          "  (max: the first frame also decomposes its new anti-aliasing colours)")
    print(f"{'peak RSS (MiB)':<34}{rss:>10.0f}")
    print(f"palette: {model.describe()}")

    # contact sheet: the first frame over a background, under each direction
    img = images[0]
    surf = surface(img, model)
    bg = render_background(5, (1920, 1080))[..., :3].astype(np.float32)
    ys, xs = np.nonzero(img[..., 3])
    y0, y1, x0, x1 = max(ys.min() - 20, 0), ys.max() + 21, max(xs.min() - 20, 0), xs.max() + 21
    tiles = []
    for name, d in [("input", None)] + DIRECTIONS:
        out = img if d is None else shade(img, surf, light_from({**DEFAULTS, "direction": d}, name))
        al = out[..., 3:4].astype(np.float32) / 255
        comp = (out[..., :3] * al + bg * (1 - al)).astype(np.uint8)[y0:y1, x0:x1].copy()
        label = name if d is None else f"{name} ({d})"
        cv2.putText(comp, label, (8, 24), cv2.FONT_HERSHEY_SIMPLEX, 0.6, (0, 0, 0), 3, cv2.LINE_AA)
        cv2.putText(comp, label, (8, 24), cv2.FONT_HERSHEY_SIMPLEX, 0.6, (255, 255, 255), 1, cv2.LINE_AA)
        tiles.append(comp)
    half = (len(tiles) + 1) // 2
    tiles += [np.zeros_like(tiles[0])] * (2 * half - len(tiles))
    sheet = np.concatenate([np.concatenate(tiles[:half], 1), np.concatenate(tiles[half:], 1)], 0)
    OUT.mkdir(exist_ok=True)
    cv2.imwrite(str(OUT / "light_contact.png"), sheet[..., ::-1])
    print(f"contact sheet: {OUT / 'light_contact.png'}")


if __name__ == "__main__":
    main()
