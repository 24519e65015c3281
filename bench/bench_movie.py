"""How long the tracker's movie of a comp (quickart_daemon/movie.py, comp.mp4 made at publish) takes.

Synthetic comp frames (the demo character in colour, quickart_daemon/tools/synth.py) on twos, as publish
leaves them (a held frame is a hard link to the one before), encoded by `movie.write_movie`: seconds in
all and per frame, and the file's size. Not a test; prints one line per size.

    .venv/bin/python bench/bench_movie.py                       # 1920x1080 and 3840x2160, 48 frames at 24 fps
    .venv/bin/python bench/bench_movie.py --sizes 1920x1080 --frames 96
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from quickart_daemon import images  # noqa: E402
from quickart_daemon.movie import ffmpeg, write_movie  # noqa: E402
from quickart_daemon.tools.synth import make_character, render  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="1920x1080,3840x2160")
    ap.add_argument("--frames", type=int, default=48)
    ap.add_argument("--fps", type=float, default=24.0)
    ap.add_argument("--repeat", type=int, default=2, help="best of N encodes")
    args = ap.parse_args()
    if ffmpeg() is None:
        print("ffmpeg is not installed: no movie is made (apt-get install -y ffmpeg)")
        return 1
    print(f"cpus {os.cpu_count()}, load {os.getloadavg()[0]:.2f}; {args.frames} frames on twos at {args.fps:g} fps")
    char = make_character(7)
    for size in args.sizes.split(","):
        w, h = (int(v) for v in size.split("x"))
        with tempfile.TemporaryDirectory() as tmp:
            frames = []
            for i in range(args.frames):
                path = Path(tmp) / f"comp.{1001 + i:04d}.png"
                if i % 2:
                    os.link(frames[-1], path)
                else:
                    images.write_png(path, render(char, 1001 + i, (w, h), rough=False).color, 1)
                frames.append(path)
            best = float("inf")
            for _ in range(args.repeat):
                started = time.perf_counter()
                movie = write_movie(frames, args.fps, Path(tmp) / "comp.mp4")
                best = min(best, time.perf_counter() - started)
            print(f"{w}x{h}: {best:.2f} s ({best / args.frames * 1000:.0f} ms per frame), "
                  f"{movie.stat().st_size / 1e6:.2f} MB")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
