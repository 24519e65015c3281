"""A movie of a version's comp, for review in the production tracker: H.264 in MP4, yuv420p, even
dimensions, at the shot's fps, transparent pixels over white (paper).

Made at publish (publish.py, when a tracker is configured with `tracker.movie`) into the version's staging
folder as `comp.mp4`, so the rename that commits the version commits the movie with it (never half
there), and it is made once, whichever node delivers it and however often a delivery is retried.
ffmpeg is optional: without it a version has no movie and the tracker gets the contact sheet alone
(the daemon says so once when it starts: `outbox.start_delivery_thread`).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Sequence
from fractions import Fraction
from pathlib import Path

import numpy as np

from .errors import QuickArtError
from .images import read_png

#: the movie's name in a version folder (beside comp/, the frames it shows)
MOVIE_NAME = "comp.mp4"


class MovieError(QuickArtError):
    """ffmpeg could not make the movie (its own last lines say why)."""


def ffmpeg() -> str | None:
    """The ffmpeg program on PATH, or None."""
    return shutil.which("ffmpeg")


def write_movie(frames: Sequence[Path], fps: float, path: Path, program: str | None = None) -> Path:
    """Encode the PNG `frames` (in order, all one size) into `path` at `fps`; written under a temporary
    name and renamed, so `path` is whole or absent. MovieError when ffmpeg fails or is missing."""
    program = program or ffmpeg()
    if program is None:
        raise MovieError("ffmpeg is not installed")
    if not frames:
        raise MovieError("no frames")
    height, width = read_png(frames[0]).shape[:2]
    # yuv420p halves the chroma in both directions: odd sizes are refused by libx264, so one white
    # column or row is added rather than a pixel of the drawing cut
    even_w, even_h = width + width % 2, height + height % 2
    rate = frame_rate(fps)
    part = path.with_name(path.name + ".part")
    command = [program, "-hide_banner", "-nostdin", "-loglevel", "error", "-y",
               "-f", "rawvideo", "-pix_fmt", "rgb24", "-s", f"{even_w}x{even_h}", "-framerate", str(rate), "-i", "-",
               "-an", "-c:v", "libx264", "-preset", "veryfast", "-crf", "18", "-pix_fmt", "yuv420p",
               # no B-frames: Zou's re-encode (normalize_movie) trims a stream copy from 0 s, which drops
               # every video packet of a movie with B-frames (measured, ffmpeg 5.1: the preview is "broken");
               # a key frame each second: a review player stepping frames decodes at most a second's worth
               "-bf", "0", "-g", str(max(1, round(fps))),
               "-movflags", "+faststart", "-f", "mp4", str(part)]
    with tempfile.TemporaryFile() as errors:  # a file, not a pipe: ffmpeg never blocks on a full stderr
        proc = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=errors)
        try:
            held, held_rgb = None, b""
            for frame in frames:
                st = frame.stat()
                key = (st.st_dev, st.st_ino)  # held frames are links to one file: decoded once
                if key != held:
                    held, held_rgb = key, _on_paper(read_png(frame), frame, width, height, even_w, even_h)
                proc.stdin.write(held_rgb)
            proc.stdin.close()
        except BrokenPipeError:  # ffmpeg stopped early: its exit status and message say why
            try:
                proc.stdin.close()
            except OSError:
                pass
        except BaseException:
            proc.kill()
            proc.wait()
            part.unlink(missing_ok=True)
            raise
        code = proc.wait()
        if code != 0:
            part.unlink(missing_ok=True)
            errors.seek(0)
            tail = errors.read().decode(errors="replace").strip().splitlines()[-3:]
            raise MovieError(f"ffmpeg exited with {code}: {' / '.join(tail) or 'no message'}")
    os.replace(part, path)
    return path


def frame_rate(fps: float) -> Fraction:
    """The exact rate for ffmpeg: 23.976, 29.97, 59.94 (as people write them) are the NTSC rates
    24000/1001, 30000/1001, 60000/1001; any other is taken as written (24, 25, 12.5)."""
    ntsc = round(fps * 1.001)
    if ntsc and abs(fps * 1.001 - ntsc) < 0.005 and abs(fps - ntsc) > 0.005:
        return Fraction(ntsc * 1000, 1001)
    return Fraction(fps).limit_denominator(1000)


def _on_paper(rgba: np.ndarray, frame: Path, width: int, height: int, even_w: int, even_h: int) -> bytes:
    if rgba.shape[:2] != (height, width):
        raise MovieError(f"{frame.name} is {rgba.shape[1]}x{rgba.shape[0]}, the first frame {width}x{height}")
    out = np.full((even_h, even_w, 3), 255, np.uint8)
    if rgba[..., 3].min() == 255:  # opaque (a comp over its background): nothing to lay on paper
        out[:height, :width] = rgba[..., :3]
    else:
        alpha = rgba[..., 3:4].astype(np.float32) / 255.0
        rgb = rgba[..., :3].astype(np.float32) * alpha + 255.0 * (1.0 - alpha)
        out[:height, :width] = np.clip(rgb + 0.5, 0, 255).astype(np.uint8)
    return out.tobytes()
