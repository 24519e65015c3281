"""Plain folders of frames named ``{stem}.{frame}.png``: the `quickart stage` interface and
the job checkpoints share this one naming rule.

In a checkpoint the stem is the layer. Layer names match ``NAME_PATTERN`` (no dots), so
``char_qa.1001.png`` always reads back as layer ``char_qa``, frame 1001, whatever the
studio's output template looks like.
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Callable
from pathlib import Path

from .errors import QuickArtError, StageFailed
from .images import read_png, write_png
from .naming import NAME_PATTERN, parse_folder_frame
from .stages.base import FrameKey, Frames

DEFAULT_PADDING = 4


def frame_files(folder: Path) -> dict[FrameKey, Path]:
    """(stem, frame) -> path for every ``{stem}.{frame}.png`` directly in `folder` (hidden files skipped)."""
    if not folder.is_dir():
        raise QuickArtError(f"{folder}: {'a file, not a folder' if folder.exists() else 'no such folder'}")
    found: dict[FrameKey, Path] = {}
    for path in sorted(folder.iterdir()):
        parsed = parse_folder_frame(path.name)
        if parsed is not None and not path.name.startswith(".") and path.is_file():
            found[parsed] = path
    return found


def read_frames(folder: Path, max_pixels: int) -> tuple[Frames, dict[str, int]]:
    """The frames of a folder, and the frame-number padding seen per stem."""
    frames: Frames = {}
    padding: dict[str, int] = {}
    for (stem, frame), path in frame_files(folder).items():
        frames[(stem, frame)] = read_png(path, max_pixels)
        padding[stem] = len(path.name[len(stem) + 1:-4])
    return frames, padding


def frame_name(stem: str, frame: int, padding: int = DEFAULT_PADDING) -> str:
    return f"{stem}.{frame:0{padding}d}.png"


def write_frames(folder: Path, frames: Frames, padding: dict[str, int] | None = None,
                 variants: dict[str, Frames] | None = None, compression: int = 3,
                 name: Callable[[str, int], str] | None = None) -> None:
    """Frames as ``{stem}.{frame}.png`` in `folder` (or as `name(stem, frame)` says: publishing uses the
    studio's output names), named variants in ``{folder}/{variant}/``. A frame that is the same array
    as one already written (a held drawing) becomes a hard link."""
    written: dict[int, Path] = {}
    for sub, table in [("", frames), *sorted((variants or {}).items())]:
        if sub and not re.fullmatch(NAME_PATTERN, sub):
            raise StageFailed(f"variant name {sub!r} must match {NAME_PATTERN}")
        (folder / sub).mkdir(parents=True, exist_ok=True)
        for (stem, frame), img in sorted(table.items()):
            path = folder / sub / (name(stem, frame) if name else
                                   frame_name(stem, frame, (padding or {}).get(stem, DEFAULT_PADDING)))
            if id(img) in written:
                link_or_copy(written[id(img)], path)
            else:
                write_png(path, img, compression)
                written[id(img)] = path


def write_folder_atomically(folder: Path, frames: Frames, variants: dict[str, Frames] | None = None,
                            compression: int = 1) -> None:
    """`write_frames` into a hidden partial folder, then one rename: a folder that exists is complete."""
    partial = folder.with_name(f".{folder.name}.partial")
    shutil.rmtree(partial, ignore_errors=True)
    write_frames(partial, frames, variants=variants, compression=compression)
    shutil.rmtree(folder, ignore_errors=True)
    os.rename(partial, folder)


def link_or_copy(src: Path, dst: Path) -> None:
    try:
        os.link(src, dst)
    except OSError:
        shutil.copy2(src, dst)
