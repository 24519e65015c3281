"""Version folders: built hidden, published by one rename, never overwritten.

A job writes everything into ``{shot}/quickart/.job-{id}.tmp/`` (its staging folder:
its input snapshot under ``.inputs/``, stage checkpoints under ``.stages/``, then the
published folders, manifest, contact sheet, timeline). When the job ends, its snapshot and
checkpoints are set aside in ``.kept/job-{id}/`` (the last few jobs' per shot) so that a
retry can start from a chosen stage. `version_slot` holds the shot's version lock and names the next free
number; `commit_version` renames the staging folder to ``vNNN`` under that lock, so two
jobs of one shot never take the same number and nothing half-written is ever visible
under a version name. Publishing takes its locks through `PublishLocks`: these file locks
on one machine, the database's (`publish_locks.DatabasePublishLocks`) when many nodes share a
PostgreSQL queue and a network drive whose locks may not hold.
"""

from __future__ import annotations

import fcntl
import json
import os
import re
import shutil
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path

from .errors import OutputError
from .images import write_bytes_atomic

VERSION_RE = re.compile(r"^v([0-9]{3,})$")  # ASCII digits only
STAGING_RE = re.compile(r"^\.job-([0-9]+)\.tmp$")
CHECKPOINTS = ".stages"  # in the staging folder: stage outputs, for resuming
INPUTS = ".inputs"  # in the staging folder: the job's snapshot of the shot's inputs
LATEST = "latest.json"
#: in the shot's output folder: finished jobs' snapshots and stage outputs, for a retry from a stage
KEPT = ".kept"


def version_otio_name(shot: str, version: int) -> str:
    """The file name of a version's own OTIO timeline in its folder (``{shot}_vNNN.otio``)."""
    return f"{shot}_v{version:03d}.otio"


def staging_dir(output_dir: Path, job_id: int | str) -> Path:
    return output_dir / f".job-{job_id}.tmp"


def staging_folders(output_dir: Path) -> dict[int, Path]:
    """The staging folders in a shot's output folder, by job id."""
    try:
        return {int(m.group(1)): Path(e.path) for e in os.scandir(output_dir)
                if e.is_dir(follow_symlinks=False) and (m := STAGING_RE.match(e.name))}
    except OSError:
        return {}


def versions(output_dir: Path) -> list[int]:
    if not output_dir.is_dir():
        return []
    return sorted(int(m.group(1)) for p in output_dir.iterdir() if (m := VERSION_RE.match(p.name)))


@contextmanager
def file_lock(path: Path, what: str) -> Iterator[None]:
    """An exclusive flock on `path` (created if need be), released when the file closes, even on a crash."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fh = open(path, "a+")
    except OSError as exc:
        raise OutputError(f"{path.parent}: cannot {what}: {exc.strerror or exc}") from None
    with fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        yield


@contextmanager
def shot_lock(output_dir: Path) -> Iterator[None]:
    """The shot's version lock: whoever holds it numbers versions and writes latest.json."""
    try:
        output_dir.mkdir(exist_ok=True)  # never re-create a shot folder that was renamed away
    except OSError as exc:
        raise OutputError(f"{output_dir}: cannot publish a version: {exc.strerror or exc}") from None
    with file_lock(output_dir / ".lock", "publish a version"):
        yield


@contextmanager
def version_slot(output_dir: Path) -> Iterator[int]:
    """Hold the shot's version lock and yield the next free version number."""
    with shot_lock(output_dir):
        yield (versions(output_dir) or [0])[-1] + 1


class PublishLocks:
    """What serialises publishing: the shot's version number and latest.json decision (`version_slot`),
    and the read-modify-write of a sequence timeline (`sequence`). These defaults are for one machine
    (file locks); many nodes on one database use the database's locks (publish_locks.DatabasePublishLocks),
    never a lock file on the shared drive."""

    def version_slot(self, output_dir: Path) -> AbstractContextManager[int]:
        return version_slot(output_dir)

    def shot(self, output_dir: Path) -> AbstractContextManager[None]:
        """The version lock without taking a number (finishing an interrupted publish)."""
        return shot_lock(output_dir)

    def sequence(self, path: Path) -> AbstractContextManager[None]:
        return file_lock(path.with_name(f".{path.name}.lock"), "update the sequence timeline")


def read_latest(output_dir: Path) -> dict | None:
    """latest.json of a shot: {"version", "path", "drop": {"id", "signature", "detected_at"}}, or None."""
    try:
        data = json.loads((output_dir / LATEST).read_text())
        return data if isinstance(data, dict) else None
    except (OSError, ValueError):
        return None


def commit_version(staging: Path, output_dir: Path, version: int, latest: dict | None) -> Path:
    """Inside `version_slot`: set the work files aside (`set_work_aside`), rename the staging folder
    to vNNN and, given `latest` (what latest.json is to say), point latest.json at it."""
    final = output_dir / f"v{version:03d}"
    try:
        set_work_aside(staging)
        os.rename(staging, final)
    except OSError as exc:
        raise OutputError(f"{output_dir}: cannot publish version: {exc.strerror or exc}") from None
    if latest is not None:
        point_latest(output_dir, latest)
    return final


def point_latest(output_dir: Path, latest: dict) -> None:
    """Inside the shot's version lock: write latest.json. A temporary copy left by a writer killed
    mid-write is stale (only the lock's holder writes latest.json): remove it."""
    for stale in output_dir.glob(f".{LATEST}.*.tmp"):
        stale.unlink(missing_ok=True)
    write_json(output_dir / LATEST, latest)


def version_made_by(output_dir: Path, series: str) -> tuple[int, dict] | None:
    """(number, manifest) of the newest version whose manifest names the job attempt series `series`
    (its job, generation and creation time): a publish that was cut short after the rename."""
    for number in reversed(versions(output_dir)):
        try:
            manifest = json.loads((output_dir / f"v{number:03d}" / "manifest.json").read_text())
        except (OSError, ValueError):
            continue
        if isinstance(manifest, dict) and manifest.get("job_series") == series:
            return number, manifest
    return None


def write_json(path: Path, data) -> None:
    write_bytes_atomic(path, (json.dumps(data, indent=2, sort_keys=False, default=str) + "\n").encode())


def keep_job_log(staging: Path, job_id: int | str) -> Path | None:
    """Move a failed job's log out of its staging folder (which is then removed) to
    ``{shot}/quickart/.logs/job-{id}.log`` (hidden like every work file), so its traceback outlives the job."""
    log = staging / "job.log"
    if not log.is_file():
        return None
    kept = staging.parent / ".logs" / f"job-{job_id}.log"
    try:
        kept.parent.mkdir(exist_ok=True)
        os.replace(log, kept)
    except OSError:
        return None  # the output folder is unwritable (that may be why the job failed): nothing to keep
    return kept


def kept_work(staging: Path) -> Path:
    """Where a finished job's work files wait for a retry from a chosen stage: ``.kept/job-{id}``."""
    return staging.parent / KEPT / staging.name.removeprefix(".").removesuffix(".tmp")


def set_work_aside(staging: Path) -> None:
    """Move a finished job's input snapshot and stage outputs out of its staging folder into
    `kept_work` (a rename: the same file system), replacing what an earlier run of it left there."""
    if not (staging / INPUTS).is_dir():
        return  # it never read its inputs: nothing to start again from
    kept = kept_work(staging)
    shutil.rmtree(kept, ignore_errors=True)
    kept.parent.mkdir(exist_ok=True)
    kept.mkdir()
    _move_work(staging, kept)


def prune_kept_work(output_dir: Path, keep: int) -> None:
    """Keep the work files of the `keep` jobs of this shot that finished last; remove the rest."""
    try:
        kept = sorted((p for p in (output_dir / KEPT).iterdir() if p.is_dir()),
                      key=lambda p: p.stat().st_mtime_ns, reverse=True)
    except OSError:
        return
    for old in kept[keep:]:
        shutil.rmtree(old, ignore_errors=True)


def restore_work(staging: Path) -> bool:
    """Move a job's kept work files back into its (new) staging folder, for a retry from a chosen
    stage; False when nothing is kept (removed by `prune_kept_work`, or never kept)."""
    kept = kept_work(staging)
    if not (kept / INPUTS).is_dir():
        return False
    remove_staging(staging)
    staging.mkdir()
    _move_work(kept, staging)
    shutil.rmtree(kept, ignore_errors=True)
    return True


def _move_work(source: Path, target: Path) -> None:
    """Rename a job's snapshot and checkpoint folders from one folder into another (same file system)."""
    for work in (INPUTS, CHECKPOINTS):
        if (source / work).is_dir():
            os.rename(source / work, target / work)


def retire_staging(staging: Path, keep: int) -> None:
    """A job ended (published, failed for good, cancelled): set its work aside for a retry from a
    stage, remove its staging folder, and keep only the `keep` newest jobs' work of the shot."""
    if keep > 0:
        set_work_aside(staging)
    remove_staging(staging)
    prune_kept_work(staging.parent, keep)


def remove_staging(staging: Path | None) -> None:
    if staging is not None:
        shutil.rmtree(staging, ignore_errors=True)
