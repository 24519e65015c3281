"""Version folders: built hidden, published by one rename, never overwritten.

A job writes everything into ``{shot}/quickart/.job-{id}.tmp/`` (stage checkpoints
under ``.stages/``, then the published folders, manifest, contact sheet, timeline).
`publish` renames that folder to the next free ``vNNN`` under a lock, so two jobs
of one shot (even on two nodes) never take the same number and nothing half-written
is ever visible under a version name.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import re
import shutil
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from .errors import OutputError
from .images import write_bytes_atomic
from .timing import Schedule

VERSION_RE = re.compile(r"^v(\d{3,})$")


def job_tmp_dir(output_dir: Path, job_id: int | str) -> Path:
    return output_dir / f".job-{job_id}.tmp"


def stage_checkpoint_dir(tmp: Path, index: int, stage: str) -> Path:
    return tmp / ".stages" / f"{index:02d}-{stage}"


def versions(output_dir: Path) -> list[int]:
    if not output_dir.is_dir():
        return []
    return sorted(int(m.group(1)) for p in output_dir.iterdir() if (m := VERSION_RE.match(p.name)))


@contextmanager
def _locked(output_dir: Path):
    output_dir.mkdir(parents=True, exist_ok=True)
    with open(output_dir / ".lock", "a+") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def publish(tmp: Path, output_dir: Path, finalize=None) -> tuple[int, Path]:
    """Rename the finished temporary folder to the next free version; returns (version, path).

    `finalize(version, tmp)` runs under the lock before the rename, for the files that
    must name their own version (the timeline, the manifest)."""
    try:
        with _locked(output_dir):
            version = (versions(output_dir) or [0])[-1] + 1
            final = output_dir / f"v{version:03d}"
            if finalize is not None:
                finalize(version, tmp)
            shutil.rmtree(tmp / ".stages", ignore_errors=True)
            os.rename(tmp, final)
            write_json(output_dir / "latest.json", {"version": version, "path": final.name})
            return version, final
    except OSError as exc:
        raise OutputError(f"{output_dir}: cannot publish version: {exc.strerror or exc}") from None


def write_json(path: Path, data) -> None:
    write_bytes_atomic(path, (json.dumps(data, indent=2, sort_keys=False, default=str) + "\n").encode())


def sha256_file(path: Path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            h.update(block)
    return h.hexdigest()


def expand_to_frames(drawings: dict[tuple[str, int], np.ndarray], schedule: Schedule,
                     layers: list[str]) -> dict[tuple[str, int], np.ndarray]:
    """Every frame of the shot for every layer: the drawing shown there, or transparent."""
    first, last = schedule.frame_range()
    out = {}
    for layer in layers:
        sample = next(img for (l, _), img in drawings.items() if l == layer)
        blank = np.zeros_like(sample)
        blank[..., 3] = 0
        for frame in range(first, last + 1):
            shown = schedule.shown(layer, frame)
            out[(layer, frame)] = blank if shown is None else drawings[(layer, shown)]
    return out


def remove_tmp(tmp: Path) -> None:
    shutil.rmtree(tmp, ignore_errors=True)
