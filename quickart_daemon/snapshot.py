"""A job's inputs, read once: the bytes a version is made from are the bytes its manifest hashes.

When a job starts it copies every input of its shot (keys, references, hints, shot.yaml,
sheets, palette, unpacked zips) into ``.inputs/`` of its staging folder, hashing each file as
it reads it, and from then on reads only that copy, checkpoints and resumes included. An
artist overwriting or deleting a key mid-job changes nothing in the running job: the change
is a new drop with its own job. A copy is not enough by itself: the files are compared with
the job's drop (their sizes and times, `drops.signature`) before and after the copy, so a
snapshot is exactly the drop that made the job, or the job is superseded.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from . import drops
from .config import Config
from .errors import DropChanged, OutputError
from .shot import check_file_sizes, shot_files

RECORD = ".snapshot.json"


@dataclass(frozen=True)
class Snapshot:
    folder: Path
    owner: str  # the job (and generation) it was taken for: a staging folder left by another is not reused
    files: dict[str, dict]  # path relative to the shot folder -> {"sha256": ..., "bytes": ...}
    skipped: tuple[str, ...] = ()  # what was left out, and why (a FIFO named like a key): the job's warnings

    def manifest_inputs(self) -> list[dict]:
        return [{"path": rel, **info} for rel, info in sorted(self.files.items())]


def load_snapshot(folder: Path) -> Snapshot | None:
    try:
        data = json.loads((folder / RECORD).read_text())
        return Snapshot(folder, str(data["owner"]), dict(data["files"]), tuple(data.get("skipped", ())))
    except (OSError, ValueError, KeyError, TypeError):
        return None  # none, or one cut short by a crash: take it again


def take_snapshot(shot_dir: Path, cfg: Config, folder: Path, owner: str, drop_signature: str | None) -> Snapshot:
    """Copy the shot's inputs into `folder` (replacing what is there). Raises DropChanged when the files
    are not those of the job's drop (`drop_signature`; None takes whatever is there now, as a manual
    retry does) or change while they are read."""
    if drop_signature is not None and \
            drops.signature(drops.input_files(shot_dir, cfg.root), shot_dir) != drop_signature:
        raise DropChanged("the shot's files changed since this drop was taken (before this job read them); "
                          "the newer drop gets its own job")
    partial = folder.with_name(folder.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    files: dict[str, dict] = {}
    try:
        skipped: list[str] = []
        paths = shot_files(shot_dir, cfg, skipped)
        before = {p: _stamp(p) for p in paths}
        check_file_sizes({p: s and s[0] for p, s in before.items()}, cfg.limits.max_file_bytes)  # nothing read yet
        for path in paths:
            rel = path.relative_to(shot_dir)
            data = path.read_bytes()  # read once: what is hashed is what is used
            (partial / rel).parent.mkdir(parents=True, exist_ok=True)
            (partial / rel).write_bytes(data)
            files[rel.as_posix()] = {"sha256": hashlib.sha256(data).hexdigest(), "bytes": len(data)}
        changed = [p for p in paths if _stamp(p) != before[p]]
        if changed:
            raise DropChanged(f"{changed[0]} changed while this job read the shot; the newer drop gets its own job")
        (partial / RECORD).write_text(json.dumps({"owner": owner, "files": files, "skipped": skipped}))
        shutil.rmtree(folder, ignore_errors=True)
        os.rename(partial, folder)
    except DropChanged:
        shutil.rmtree(partial, ignore_errors=True)
        raise
    except FileNotFoundError as exc:  # a file of the drop vanished mid-copy: the drop changed
        shutil.rmtree(partial, ignore_errors=True)
        raise DropChanged(f"{exc.filename} disappeared while this job read the shot; the newer drop gets "
                          "its own job") from None
    except OSError as exc:
        shutil.rmtree(partial, ignore_errors=True)
        raise OutputError(f"{exc.filename or folder}: cannot copy the shot's inputs: {exc.strerror or exc}") from None
    return Snapshot(folder, owner, files, tuple(skipped))


def _stamp(path: Path) -> tuple[int, int] | None:
    try:
        st = path.stat()
    except FileNotFoundError:
        return None
    return st.st_size, st.st_mtime_ns
