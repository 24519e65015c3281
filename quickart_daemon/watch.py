"""Watching the studio root: call back when a shot's drop is complete.

Events only say *where* to look; the decision is always made from the files on disk
(``drops.input_files``, ``drops.signature``, ``drops.check_complete``), so a missed or
duplicated event costs latency, never a wrong drop. The startup scan and the periodic
rescan catch whatever happened while the daemon was down or events were lost.
"""

from __future__ import annotations

import datetime
import logging
import os
import re
import tempfile
import threading
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path, PurePath, PurePosixPath

from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.schedulers.background import BackgroundScheduler
from watchdog.events import (DirCreatedEvent, DirDeletedEvent, DirMovedEvent, FileAttribEvent, FileClosedEvent,
                             FileCreatedEvent, FileDeletedEvent, FileModifiedEvent, FileMovedEvent,
                             FileSystemEvent, FileSystemEventHandler)
from watchdog.observers import Observer
from watchdog.observers.api import BaseObserver
from watchdog.observers.polling import PollingObserver

from .drops import (INPUT_DIRS, INPUT_FILES, MARKER, OUTPUT_DIR, SHEET_SUFFIX, UNPACKED_DIR, check_complete,
                    input_files, is_ignored_name, signature, unpack_zip_drops)
from .errors import ConfigError, DropError
from .naming import Naming

log = logging.getLogger(__name__)

# Not a watch scheduled twice (start() schedules one): watchdog's recursive inotify emitter warns when a
# folder is created and another one moved into it before it has watched the new one, as a publish does
# (`outputs.set_work_aside`: .kept/job-N made, the job's .inputs moved in). It finds the moved folder
# already watched and reuses that watch, so no event is lost; the warning was printed on every publish.
# Filtered, not avoided: any watched folder renamed into a folder whose creation watchdog has not seen yet
# does it (building .kept/job-N under a dot-named staging name and renaming it into place still warned,
# 2-4 times in 3 publishes against 6). A .kept/job-N made when the job starts is watched in time (0), but
# would count among the kept jobs' folders that prune_kept_work keeps while the job runs.
warnings.filterwarnings("ignore", message=r"Callback with id .* already exists for watch", category=RuntimeWarning,
                        module=r"watchdog\.")

#: File systems where changes made by *other hosts* (or the VM host) raise no inotify
#: event on this one, so only polling sees them. fuse.* covers sshfs, rclone, s3fs,
#: gcsfuse, ceph-fuse, glusterfs' fuse client. virtiofs, 9p, vboxsf and vmhgfs are
#: host-to-VM shares: inotify in the guest sees only the guest's own writes. fuseblk
#: (ntfs-3g on a local disk) is local and stays native.
REMOTE_FS_TYPES = frozenset({
    "nfs", "nfs4", "cifs", "smb3", "smbfs", "ncpfs", "fuse", "9p", "virtiofs", "vboxsf", "vmhgfs",
    "ceph", "glusterfs", "afs", "openafs", "lustre", "gpfs", "beegfs", "davfs", "panfs", "ocfs2", "gfs2",
})
OBSERVER_MODES = ("auto", "native", "polling")

# Events that can mean an input changed. Opened/closed-without-write events are left
# out on purpose: our own completeness checks open the files and would wake us again.
_EVENTS: list[type[FileSystemEvent]] = [
    FileCreatedEvent, FileModifiedEvent, FileDeletedEvent, FileMovedEvent, FileClosedEvent, FileAttribEvent,
    DirCreatedEvent, DirDeletedEvent, DirMovedEvent,
]


def is_remote_fs(fstype: str) -> bool:
    return fstype in REMOTE_FS_TYPES or fstype.startswith(("fuse.", "nfs"))


def _unescape_mount_field(text: str) -> str:
    # /proc/self/mounts escapes space, tab, newline and backslash as \040 \011 \012 \134
    return re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), text)


def mount_fs_type(path: Path, mounts_file: str | os.PathLike = "/proc/self/mounts") -> str | None:
    """File system type of the mount holding ``path`` (longest mount point prefix), or None."""
    try:
        lines = Path(mounts_file).read_text(errors="replace").splitlines()
    except OSError:
        return None  # not Linux, or no /proc: let watchdog pick its native observer
    real = os.path.realpath(path)
    best, best_type = "", None
    for line in lines:
        fields = line.split()
        if len(fields) < 3:
            continue
        mount_point, fstype = _unescape_mount_field(fields[1]), fields[2]
        inside = mount_point == "/" or real == mount_point or real.startswith(mount_point.rstrip("/") + "/")
        if inside and len(mount_point) >= len(best):  # >=: a later mount on the same point hides earlier ones
            best, best_type = mount_point, fstype
    return best_type


def choose_observer_kind(root: Path, mode: str, mounts_file: str | os.PathLike = "/proc/self/mounts") -> str:
    """"native" or "polling" for watching ``root``: forced by ``mode``, or picked from the mount table ("auto")."""
    if mode in ("native", "polling"):
        return mode
    if mode != "auto":
        raise ConfigError(f"watch mode {mode!r}: use one of {', '.join(OBSERVER_MODES)}")
    fstype = mount_fs_type(root, mounts_file)
    kind = "polling" if fstype is not None and is_remote_fs(fstype) else "native"
    log.info("watching %s with %s observer (file system %s)", root, kind, fstype or "unknown")
    return kind


@dataclass
class _Dirty:
    due: float  # monotonic time from which the shot may be examined
    gen: int  # bumped on every event, so a decision never swallows a newer event


class _Handler(FileSystemEventHandler):
    def __init__(self, watcher: DropWatcher):
        self._watcher = watcher

    def on_any_event(self, event: FileSystemEvent) -> None:
        for path in (event.src_path, getattr(event, "dest_path", "")):
            if path:
                self._watcher._on_event_path(os.fsdecode(path), event.event_type)


class DropWatcher:
    """Watch a studio root and call ``on_drop(shot_dir)`` once per complete drop.

    Timing contract:

    * Any event on a shot's inputs (``keys/``, ``refs/``, ``hints/``, ``shot.yaml``,
      ``timesheet.csv``, ``*.xdts``) marks the shot dirty. Events under ``quickart/``
      and on ignored names (temp files, partial downloads, hidden files) are dropped.
    * Settle mode (default): a dirty shot is taken when no event arrived for
      ``settle_seconds`` *and* the signature (name, size, mtime) of its input files is
      the same at two checks ``check_interval`` apart *and* ``check_complete`` finds
      nothing. Latency is therefore settle_seconds + up to 2 * check_interval after the
      last write (plus the observer's own delay: ~0.5 s for inotify, up to
      ``poll_interval`` for polling).
    * Marker mode (``require_marker``): a shot is taken at the next check once
      ``keys/_READY`` appears or is touched again (its mtime/inode changed), with no
      settle wait; files must still pass ``check_complete``. Files that change while
      the marker stays as it was are not taken (reported once): the artist touches
      ``_READY`` again to submit them.
    * Incomplete files (zero bytes, truncated PNG/zip, unreadable): keep waiting and
      re-check every max(settle_seconds, 0.5) s; each distinct problem is reported once
      via ``on_problem`` until the shot is next taken.
    * Zip drops in ``keys/`` are unpacked (``drops.unpack_zip_drops``) before
      ``on_drop``; a refused zip is reported and the drop is not taken.
    * Names in watched folders that do not parse are reported; the drop is still taken.
    * A shot whose inputs are unchanged since it was last taken (or refused) by this
      watcher is not taken again; after a restart the caller dedups by signature.
    * ``on_drop``/``on_problem`` run in the checker thread; keep them short (enqueue).
      Their exceptions are logged and never stop the checker.
    * ``scan_all()`` marks every shot with inputs dirty (call it after ``start()``);
      every ``rescan_seconds`` a rescan marks dirty each shot whose signature differs
      from the one last seen.
    """

    def __init__(self, root: Path, naming: Naming, *, mode: str = "auto", settle_seconds: float = 5.0,
                 require_marker: bool = False, rescan_seconds: float = 60.0, poll_interval: float = 1.0,
                 on_drop: Callable[[Path], None], on_problem: Callable[[Path, str], None] | None = None,
                 check_interval: float = 0.25, mounts_file: str | os.PathLike = "/proc/self/mounts"):
        if mode not in OBSERVER_MODES:
            raise ConfigError(f"watch mode {mode!r}: use one of {', '.join(OBSERVER_MODES)}")
        self.root = Path(root).absolute()
        self.naming = naming
        self.mode = mode
        self.settle_seconds = settle_seconds
        self.require_marker = require_marker
        self.rescan_seconds = rescan_seconds
        self.poll_interval = poll_interval
        self.check_interval = check_interval
        self.on_drop = on_drop
        self.on_problem = on_problem
        self.mounts_file = mounts_file
        self.observer_kind: str | None = None  # what start() actually used
        self._depth = naming.shot_depth()
        self._real_root = self.root.resolve()
        self._lock = threading.Lock()
        self._dirty: dict[Path, _Dirty] = {}
        self._gen = 0
        self._pending: dict[Path, str] = {}  # state seen at the previous check (settle mode)
        self._seen: dict[Path, str] = {}  # state when the shot was last taken or refused
        self._taken_marker: dict[Path, tuple[int, int]] = {}
        self._reported: dict[Path, set[str]] = {}
        self._stop = threading.Event()
        self._observer: BaseObserver | None = None
        self._checker: threading.Thread | None = None
        self._scheduler: BackgroundScheduler | None = None

    # lifecycle --------------------------------------------------------------------
    def start(self) -> None:
        if self._checker is not None:
            raise RuntimeError("DropWatcher already started")
        if not self.root.is_dir():
            raise ConfigError(f"studio root {self.root} is not a folder")
        self._stop.clear()
        self._observer = self._start_observer(choose_observer_kind(self.root, self.mode, self.mounts_file))
        self._checker = threading.Thread(target=self._check_loop, name="quickart-drop-checker", daemon=True)
        self._checker.start()
        self._scheduler = BackgroundScheduler(executors={"default": ThreadPoolExecutor(1)},
                                              timezone=datetime.timezone.utc)
        self._scheduler.add_job(self._rescan, "interval", seconds=self.rescan_seconds, id="quickart-rescan",
                                max_instances=1, coalesce=True)
        self._scheduler.start()
        log.info("watching %s (%s, %s)", self.root, self.observer_kind,
                 "marker _READY" if self.require_marker else f"settle {self.settle_seconds:g}s")

    def _start_observer(self, kind: str) -> BaseObserver:
        observer = PollingObserver(timeout=self.poll_interval) if kind == "polling" else Observer()
        # Watch the real path: inotify does not follow a symlinked root.
        observer.schedule(_Handler(self), str(self._real_root), recursive=True, event_filter=_EVENTS)
        try:
            observer.start()
        except OSError as exc:  # e.g. ENOSPC: fs.inotify.max_user_watches reached on a big tree
            if kind == "polling":
                raise
            log.warning("native watching of %s failed (%s); polling every %gs instead",
                        self.root, exc, self.poll_interval)
            return self._start_observer("polling")
        self.observer_kind = kind
        return observer

    def stop(self) -> None:
        """Stop watching and join every thread this watcher started. Safe to call twice."""
        self._stop.set()
        if self._observer is not None:
            self._observer.stop()
            self._observer.join()
            self._observer = None
        if self._scheduler is not None:
            self._scheduler.shutdown(wait=True)
            self._scheduler = None
        if self._checker is not None:
            self._checker.join()
            self._checker = None

    def __enter__(self) -> DropWatcher:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # events -----------------------------------------------------------------------
    def shot_of(self, path: str | os.PathLike) -> Path | None:
        """The shot folder an event path belongs to, or None when the path is not a shot input."""
        path = PurePath(path)
        for base in (self._real_root, self.root):
            if path.is_relative_to(base):
                parts = path.relative_to(base).parts
                break
        else:
            return None
        if len(parts) < self._depth or any(is_ignored_name(p) for p in parts):
            return None
        rest = parts[self._depth:]
        if rest and rest[0] not in INPUT_DIRS and rest[0] not in INPUT_FILES \
                and not rest[0].lower().endswith(SHEET_SUFFIX):
            return None  # quickart/ outputs (and our own unpacking) land here too
        if self.naming.parse_shot_path(PurePosixPath(*parts[:self._depth])) is None:
            return None
        return self.root.joinpath(*parts[:self._depth])

    def _on_event_path(self, path: str, event_type: str) -> None:
        shot = self.shot_of(path)
        if shot is not None:
            log.debug("%s %s", event_type, path)
            self._mark(shot, self.settle_seconds)

    def _mark(self, shot: Path, delay: float) -> None:
        with self._lock:
            self._gen += 1
            due = time.monotonic() + (0.0 if self.require_marker else delay)
            old = self._dirty.get(shot)
            self._dirty[shot] = _Dirty(max(due, old.due) if old else due, self._gen)
            self._pending.pop(shot, None)

    def _finish(self, shot: Path, gen: int, state: str | None) -> None:
        """Done with a shot: forget it unless an event came in meanwhile; remember its state."""
        with self._lock:
            entry = self._dirty.get(shot)
            if entry is not None and entry.gen == gen:
                del self._dirty[shot]
            self._pending.pop(shot, None)
            if state is not None:
                self._seen[shot] = state

    def _retry_later(self, shot: Path, gen: int, delay: float) -> None:
        with self._lock:
            entry = self._dirty.get(shot)
            if entry is not None and entry.gen == gen:
                entry.due = time.monotonic() + delay

    # scanning ---------------------------------------------------------------------
    def find_shots(self) -> list[Path]:
        """Every shot folder under the root (folders at the template's depth that parse). A folder there
        that holds keys/, refs/ or hints/ but whose path does not parse is reported (status, log)."""
        level = [self.root]
        for _ in range(self._depth):
            below = []
            for folder in level:
                try:
                    entries = sorted(os.scandir(folder), key=lambda e: e.name)
                except OSError:
                    continue
                below += [Path(e.path) for e in entries if not is_ignored_name(e.name) and e.is_dir()]
            level = below
        shots = []
        for folder in level:
            rel = folder.relative_to(self.root).as_posix()
            if self.naming.parse_shot_path(rel) is not None:
                shots.append(folder)
            elif any((folder / d).is_dir() for d in INPUT_DIRS):  # looks like a shot: say why it is not one
                self._problem(folder, f"{folder}: not a shot folder: {rel!r} does not match naming.shot_path "
                                      f"{self.naming.shot_path.text!r}; its drops are ignored until it is renamed")
        return shots

    def scan_all(self) -> list[Path]:
        """Startup scan: mark every shot folder that has input files dirty; return them."""
        marked = []
        for shot in self.find_shots():
            try:
                has_inputs = bool(input_files(shot, self.root))
            except DropError:
                has_inputs = True  # let the checker report it
            if has_inputs:
                self._mark(shot, 0.0)
                marked.append(shot)
        log.info("startup scan: %d shot(s) with inputs under %s", len(marked), self.root)
        return marked

    def rescan(self) -> list[Path]:
        """Mark dirty every shot whose input signature differs from the one last seen; return them."""
        marked = []
        for shot in self.find_shots():
            if self._stop.is_set():
                break
            try:
                files = input_files(shot, self.root)
                state = self._state(shot, files) if files else None
            except DropError:
                state = "refused"
            with self._lock:
                changed = state is not None and state != self._seen.get(shot) and shot not in self._dirty
            if changed:
                log.info("rescan: %s changed", shot)
                self._mark(shot, 0.0)
                marked.append(shot)
        return marked

    def _rescan(self) -> None:
        try:
            self.rescan()
        except Exception:
            log.exception("rescan of %s failed", self.root)

    def _state(self, shot: Path, files: list[Path]) -> str:
        marker = shot / "keys" / MARKER
        if self.require_marker and os.path.lexists(marker):
            files = [*files, marker]  # a new or touched marker is a change
        return signature(files, shot)

    # checking ---------------------------------------------------------------------
    def _check_loop(self) -> None:
        while not self._stop.wait(self.check_interval):
            try:
                self.check_now()
            except Exception:
                log.exception("drop check failed; continuing")

    def check_now(self) -> None:
        """Examine every dirty shot that is due (the checker thread calls this every check_interval)."""
        now = time.monotonic()
        with self._lock:
            due = sorted((shot, entry.gen) for shot, entry in self._dirty.items() if entry.due <= now)
        for shot, gen in due:
            if self._stop.is_set():
                return
            self._examine(shot, gen)

    def _examine(self, shot: Path, gen: int) -> None:
        if not shot.is_dir():
            self._finish(shot, gen, None)
            return
        skipped: list[str] = []
        try:
            files = input_files(shot, self.root, skipped)
        except DropError as exc:
            self._problem(shot, exc.message)
            self._finish(shot, gen, "refused")
            return
        for problem in skipped:  # a FIFO named like a key: never opened, never waited for
            self._problem(shot, problem)
        if not files:
            self._finish(shot, gen, None)
            return
        state = self._state(shot, files)
        marker_id = None
        if self.require_marker:
            marker_id = _stat_id(shot / "keys" / MARKER)
            if marker_id is None:
                self._finish(shot, gen, state)  # not submitted yet
                return
            if marker_id == self._taken_marker.get(shot):
                if state != self._seen.get(shot):
                    self._problem(shot, f"files changed after keys/{MARKER} was set; touch keys/{MARKER} "
                                        "again to submit them")
                self._finish(shot, gen, state)
                return
        else:
            if state == self._seen.get(shot):
                self._finish(shot, gen, state)  # nothing new (a restart, or a metadata-only event)
                return
            with self._lock:
                stable = self._pending.get(shot) == state
                self._pending[shot] = state
            if not stable:
                self._retry_later(shot, gen, self.check_interval)
                return
        bad: list[str] = []
        problems = check_complete(files, bad)
        for problem in bad:  # a TIFF saved as .png: reported, and the job fails naming it; no waiting
            self._problem(shot, problem)
        if problems:
            for problem in problems:
                self._problem(shot, problem)
            self._retry_later(shot, gen, max(self.settle_seconds, 0.5))
            return
        try:
            unpack_zip_drops(shot, self.root)
            files = input_files(shot, self.root)  # unpacked files are inputs (those of replaced zips no longer)
            state = self._state(shot, files)
        except DropError as exc:  # UnsafeArchive included
            self._problem(shot, exc.message)
            self._finish(shot, gen, state)
            return
        self._report_bad_names(shot, files)
        self._finish(shot, gen, state)
        if marker_id is not None:
            self._taken_marker[shot] = marker_id
        log.info("drop complete: %s (%d input files)", shot, len(files))
        try:
            self.on_drop(shot)
        except Exception:
            log.exception("on_drop failed for %s", shot)
        with self._lock:
            self._reported.pop(shot, None)  # a later drop reports its problems afresh

    def _report_bad_names(self, shot: Path, files: list[Path]) -> None:
        shot_id = self.naming.parse_shot_path(shot.relative_to(self.root).as_posix())
        if shot_id is None:
            return
        unpacked = (OUTPUT_DIR, UNPACKED_DIR)
        for path in files:
            rel = path.relative_to(shot)
            where = rel.parts[0]
            if where not in INPUT_DIRS and rel.parts[:2] != unpacked:
                continue  # shot.yaml, timesheet.csv, *.xdts: parsed (and reported) by their readers
            name = path.name
            if name.lower().endswith(".png"):
                if self.naming.parse_key_name(name, shot_id.shot) is None:
                    example = self.naming.format_key_name(shot_id.shot, "char", 1)
                    self._problem(shot, f"{rel.as_posix()}: name does not match the naming convention "
                                        f"(e.g. {example}); ignored")
            elif not ((where == "keys" and name.lower().endswith(".zip"))
                      or (where == "refs" and name == "palette.yaml")):
                self._problem(shot, f"{rel.as_posix()}: not a QuickArt input (expected PNG drawings); ignored")

    def _problem(self, shot: Path, message: str) -> None:
        with self._lock:
            reported = self._reported.setdefault(shot, set())
            if message in reported:
                return
            reported.add(message)
        log.warning("%s: %s", shot, message)
        if self.on_problem is not None:
            try:
                self.on_problem(shot, message)
            except Exception:
                log.exception("on_problem failed for %s", shot)


def _stat_id(path: Path) -> tuple[int, int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_mtime_ns, st.st_ino


# benchmark helper ---------------------------------------------------------------------
def _bench_naming() -> Naming:
    return Naming("{show}/{seq}/{shot}", "{shot}_{layer}.{frame}.png", "{shot}.{frame}.png",
                  "{shot}_{layer}.{frame}.png", "{shot}.{frame}.png")


def measure_detection_latency(mode: str, settle_seconds: float = 0.2, poll_interval: float = 0.1,
                              timeout: float = 30.0, root: Path | None = None) -> float:
    """Seconds from a PNG written into a fresh shot until on_drop fires (settle_seconds included).

    ``root``: a folder to run in (e.g. on the NFS share being evaluated); default a temp folder.
    """
    from PIL import Image  # only the benchmark needs it here

    with tempfile.TemporaryDirectory(dir=root) as tmp:
        studio = Path(tmp)
        keys = studio / "BENCH" / "sq010" / "sh0010" / "keys"
        keys.mkdir(parents=True)
        fired = threading.Event()
        with DropWatcher(studio, _bench_naming(), mode=mode, settle_seconds=settle_seconds,
                         poll_interval=poll_interval, check_interval=0.05, rescan_seconds=3600,
                         on_drop=lambda shot: fired.set()):
            start = time.perf_counter()
            Image.new("RGBA", (64, 64), (255, 255, 255, 255)).save(keys / "sh0010.0001.png")
            if not fired.wait(timeout):
                raise TimeoutError(f"no drop detected within {timeout}s ({mode})")
            return time.perf_counter() - start
