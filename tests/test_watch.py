"""DropWatcher with real watchdog observers (inotify and polling) on real folders.

Leaked threads are caught by the autouse ``no_leaked_threads`` fixture in conftest.py.
"""

from __future__ import annotations

import io
import os
import threading
import time
import zipfile
from collections.abc import Callable
from pathlib import Path

import pytest
from PIL import Image

from quickart_daemon.errors import ConfigError
from quickart_daemon.naming import Naming
from quickart_daemon.watch import DropWatcher, choose_observer_kind, measure_detection_latency

SETTLE = 0.3
QUIET = 1.0  # how long we wait to be sure something does NOT happen


@pytest.fixture
def naming() -> Naming:
    return Naming("{show}/{seq}/{shot}", "{shot}_{layer}.{frame}.png", "{shot}.{frame}.png",
                  "{shot}_{layer}.{frame}.png", "{shot}.{frame}.png")


@pytest.fixture
def root(tmp_path) -> Path:
    root = tmp_path / "studio"
    make_shot(root, "sh0040")
    return root


def make_shot(root: Path, shot: str) -> Path:
    folder = root / "BRV" / "sq010" / shot
    (folder / "keys").mkdir(parents=True)
    (folder / "refs").mkdir()
    return folder


def png_bytes(size: int = 32) -> bytes:
    buf = io.BytesIO()
    Image.new("RGBA", (size, size), (10, 200, 10, 255)).save(buf, format="PNG")
    return buf.getvalue()


def wait_until(predicate: Callable[[], bool], timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.02)
    return predicate()


class Recorder:
    def __init__(self):
        self.drops: list[tuple[Path, float]] = []
        self.problems: list[tuple[Path, str]] = []

    def on_drop(self, shot: Path) -> None:
        self.drops.append((shot, time.monotonic()))

    def on_problem(self, shot: Path, message: str) -> None:
        self.problems.append((shot, message))

    @property
    def shots(self) -> list[Path]:
        return [shot for shot, _ in self.drops]

    def problem_text(self) -> str:
        return "\n".join(message for _, message in self.problems)


@pytest.fixture(params=["native", "polling"])
def mode(request) -> str:
    return request.param


@pytest.fixture
def make_watcher(root, naming):
    made: list[DropWatcher] = []

    def make(mode: str = "native", start: bool = True, **kwargs) -> tuple[DropWatcher, Recorder]:
        rec = Recorder()
        options = dict(mode=mode, settle_seconds=SETTLE, poll_interval=0.1, check_interval=0.05,
                       rescan_seconds=3600, on_drop=rec.on_drop, on_problem=rec.on_problem)
        options.update(kwargs)
        watcher = DropWatcher(root, naming, **options)
        made.append(watcher)
        if start:
            watcher.start()
        return watcher, rec

    yield make
    for watcher in made:
        watcher.stop()


# choosing the observer -----------------------------------------------------------------
def write_mounts(tmp_path: Path, *lines: str) -> Path:
    path = tmp_path / "mounts"
    path.write_text("".join(line + "\n" for line in lines))
    return path


def test_auto_picks_polling_on_network_mounts(tmp_path):
    studio = tmp_path.resolve() / "studio"
    for fstype in ("nfs", "nfs4", "cifs", "smb3", "fuse.sshfs", "fuse.rclone", "ceph", "9p", "virtiofs", "lustre"):
        mounts = write_mounts(tmp_path, "/dev/vda / ext4 rw 0 0", f"server:/export {studio} {fstype} rw 0 0")
        assert choose_observer_kind(studio / "BRV", "auto", mounts) == "polling", fstype


def test_auto_picks_native_on_local_disks(tmp_path):
    studio = tmp_path.resolve() / "studio"
    for fstype in ("ext4", "xfs", "btrfs", "zfs", "tmpfs", "overlay", "fuseblk"):
        mounts = write_mounts(tmp_path, "server:/export / nfs4 rw 0 0", f"/dev/sdb1 {studio} {fstype} rw 0 0")
        assert choose_observer_kind(studio, "auto", mounts) == "native", fstype


def test_auto_uses_the_longest_mount_prefix(tmp_path):
    base = tmp_path.resolve()
    mounts = write_mounts(tmp_path, "/dev/vda / ext4 rw 0 0", f"srv:/a {base}/mnt nfs rw 0 0",
                          f"/dev/sdb1 {base}/mnt/local xfs rw 0 0")
    assert choose_observer_kind(base / "mnt" / "local" / "studio", "auto", mounts) == "native"
    assert choose_observer_kind(base / "mnt" / "studio", "auto", mounts) == "polling"
    # a sibling whose name merely starts with the mount point is not under it
    assert choose_observer_kind(base / "mnt-other", "auto", mounts) == "native"


def test_auto_decodes_escaped_mount_points(tmp_path):
    studio = tmp_path.resolve() / "my studio"
    escaped = str(studio).replace(" ", "\\040")
    mounts = write_mounts(tmp_path, "/dev/vda / ext4 rw 0 0", f"//nas/share {escaped} cifs rw 0 0")
    assert choose_observer_kind(studio, "auto", mounts) == "polling"


def test_auto_later_mount_on_same_point_wins(tmp_path):
    studio = tmp_path.resolve() / "studio"
    mounts = write_mounts(tmp_path, "/dev/vda / ext4 rw 0 0", f"/dev/sdb1 {studio} ext4 rw 0 0",
                          f"srv:/x {studio} nfs4 rw 0 0")
    assert choose_observer_kind(studio, "auto", mounts) == "polling"


def test_forced_modes_and_missing_mount_table(tmp_path):
    mounts = write_mounts(tmp_path, "srv:/x / nfs4 rw 0 0")
    assert choose_observer_kind(tmp_path, "native", mounts) == "native"
    assert choose_observer_kind(tmp_path, "polling", tmp_path / "nope") == "polling"
    assert choose_observer_kind(tmp_path, "auto", tmp_path / "nope") == "native"
    with pytest.raises(ConfigError, match="watch mode"):
        choose_observer_kind(tmp_path, "inotify", mounts)


def test_auto_mode_follows_the_mount_table(root, naming, make_watcher, tmp_path):
    mounts = write_mounts(tmp_path, "srv:/studio / nfs4 rw 0 0")
    watcher, _ = make_watcher("auto", mounts_file=mounts)
    assert watcher.observer_kind == "polling"


# which paths count ---------------------------------------------------------------------
def test_shot_of_filters_paths(root, naming):
    watcher = DropWatcher(root, naming, on_drop=lambda shot: None)
    shot = root / "BRV" / "sq010" / "sh0040"
    assert watcher.shot_of(shot / "keys" / "sh0040.1001.png") == shot
    assert watcher.shot_of(shot / "shot.yaml") == shot
    assert watcher.shot_of(shot / "sh0040.xdts") == shot
    assert watcher.shot_of(shot) == shot
    for ignored in ("keys/sh0040.1001.png.part", "keys/~x.png", "keys/.x.png", "quickart/v001/comp/sh0040.1001.png",
                    "quickart/unpacked/b-0123/sh0040.1001.png", "notes.txt"):
        assert watcher.shot_of(shot / ignored) is None, ignored
    assert watcher.shot_of(root / "BRV" / "editorial" / "sq010.otio") is None
    assert watcher.shot_of(root / "BRV") is None
    assert watcher.shot_of(root.parent / "elsewhere" / "x.png") is None


# drops -----------------------------------------------------------------------------------
def test_completed_drop_calls_on_drop_once(root, mode, make_watcher):
    watcher, rec = make_watcher(mode)
    shot = root / "BRV" / "sq010" / "sh0040"
    written = time.monotonic()
    for frame in (1001, 1005):
        (shot / "keys" / f"sh0040_char.{frame}.png").write_bytes(png_bytes())
    (shot / "refs" / "sh0040_char.1001.png").write_bytes(png_bytes())
    assert wait_until(lambda: rec.drops)
    time.sleep(QUIET)
    assert rec.shots == [shot]
    assert rec.drops[0][1] - written >= SETTLE
    assert rec.problems == []


def test_file_still_being_written_is_not_taken(root, mode, make_watcher):
    watcher, rec = make_watcher(mode)
    key = root / "BRV" / "sq010" / "sh0040" / "keys" / "sh0040.1001.png"
    data = png_bytes(64)
    chunks = [data[i * len(data) // 10:(i + 1) * len(data) // 10] for i in range(10)]
    with open(key, "wb") as fh:
        for chunk in chunks:  # a slow copy: a chunk every 0.1 s for 1 s
            fh.write(chunk)
            fh.flush()
            time.sleep(0.1)
    finished = time.monotonic()
    assert rec.drops == []
    assert wait_until(lambda: rec.drops)
    time.sleep(QUIET / 2)
    assert len(rec.drops) == 1 and rec.drops[0][1] >= finished


def test_temp_and_zero_byte_files_never_trigger(root, mode, make_watcher):
    watcher, rec = make_watcher(mode)
    keys = root / "BRV" / "sq010" / "sh0040" / "keys"
    for name in ("sh0040.1001.png.part", "~sh0040.1001.png", ".sh0040.1001.png", "sh0040.1001.png.tmp"):
        (keys / name).write_bytes(png_bytes())
    (keys / "sh0040.1002.png").write_bytes(b"")
    time.sleep(QUIET)
    assert rec.drops == []
    assert wait_until(lambda: "zero bytes" in rec.problem_text())
    assert len(rec.problems) == 1  # reported once, though re-checked
    (keys / "sh0040.1002.png").write_bytes(png_bytes())
    assert wait_until(lambda: rec.drops)


def test_outputs_never_trigger(root, mode, make_watcher):
    shot = root / "BRV" / "sq010" / "sh0040"
    (shot / "keys" / "sh0040.1001.png").write_bytes(png_bytes())
    watcher, rec = make_watcher(mode)
    for rel in ("quickart/v001/comp/sh0040.1001.png", "quickart/latest.json",
                "quickart/unpacked/b-0123456789ab/sh0040.1002.png"):
        (shot / rel).parent.mkdir(parents=True, exist_ok=True)
        (shot / rel).write_bytes(png_bytes())
    (root / "BRV" / "editorial").mkdir()
    (root / "BRV" / "editorial" / "sq010.otio").write_text("{}")
    time.sleep(QUIET)
    assert rec.drops == [] and rec.problems == []


def test_marker_mode_waits_for_ready(root, mode, make_watcher):
    watcher, rec = make_watcher(mode, require_marker=True, settle_seconds=60)
    keys = root / "BRV" / "sq010" / "sh0040" / "keys"
    (keys / "sh0040.1001.png").write_bytes(png_bytes())
    time.sleep(QUIET)
    assert rec.drops == []
    (keys / "_READY").touch()
    assert wait_until(lambda: rec.drops, timeout=5)  # at once: no 60 s settle
    # more files while the marker stays as it was: not taken, reported
    (keys / "sh0040.1002.png").write_bytes(png_bytes())
    assert wait_until(lambda: "touch keys/_READY again" in rec.problem_text())
    assert len(rec.drops) == 1
    # touching the marker again submits them
    os.utime(keys / "_READY", ns=(time.time_ns() + 10**9,) * 2)
    assert wait_until(lambda: len(rec.drops) == 2)


def test_marker_mode_still_requires_complete_files(root, make_watcher):
    watcher, rec = make_watcher("native", require_marker=True)
    keys = root / "BRV" / "sq010" / "sh0040" / "keys"
    (keys / "sh0040.1001.png").write_bytes(png_bytes()[:-12])  # truncated
    (keys / "_READY").touch()
    assert wait_until(lambda: "truncated PNG" in rec.problem_text())
    assert rec.drops == []
    (keys / "sh0040.1001.png").write_bytes(png_bytes())
    assert wait_until(lambda: rec.drops)


def test_change_while_stopped_is_found_by_scan_all(root, naming, make_watcher):
    shot = root / "BRV" / "sq010" / "sh0040"
    other = make_shot(root, "sh0050")
    (shot / "keys" / "sh0040.1001.png").write_bytes(png_bytes())
    (other / "keys" / "sh0050.1001.png").write_bytes(png_bytes())
    watcher, rec = make_watcher("native")
    assert sorted(watcher.scan_all()) == [shot, other]
    assert wait_until(lambda: len(rec.drops) == 2)
    watcher.stop()
    (shot / "keys" / "sh0040.1002.png").write_bytes(png_bytes())  # while the daemon is down
    watcher.start()
    watcher.scan_all()
    assert wait_until(lambda: len(rec.drops) == 3)
    time.sleep(QUIET / 2)
    assert rec.shots[2:] == [shot]  # the unchanged shot is not taken again by the same watcher


def test_rescan_catches_missed_events(root, make_watcher, monkeypatch):
    shot = root / "BRV" / "sq010" / "sh0040"
    monkeypatch.setattr(DropWatcher, "_on_event_path", lambda self, path, event_type: None)  # events lost
    watcher, rec = make_watcher("native", rescan_seconds=0.3)
    (shot / "keys" / "sh0040.1001.png").write_bytes(png_bytes())
    assert wait_until(lambda: rec.drops)
    (shot / "keys" / "sh0040.1002.png").write_bytes(png_bytes())
    assert wait_until(lambda: len(rec.drops) == 2)
    time.sleep(QUIET)
    assert len(rec.drops) == 2


def test_unparseable_names_are_reported(root, mode, make_watcher):
    watcher, rec = make_watcher(mode)
    keys = root / "BRV" / "sq010" / "sh0040" / "keys"
    (keys / "sh0040.1001.png").write_bytes(png_bytes())
    (keys / "sh0041_char.1001.png").write_bytes(png_bytes())  # another shot's name
    (keys / "notes.txt").write_text("hi")
    assert wait_until(lambda: rec.drops)
    text = rec.problem_text()
    assert "keys/sh0041_char.1001.png: name does not match" in text
    assert "keys/notes.txt: not a QuickArt input" in text


def test_zip_drop_is_unpacked_before_on_drop(root, make_watcher):
    shot = root / "BRV" / "sq010" / "sh0040"
    seen: list[list[str]] = []
    watcher, rec = make_watcher("native")
    watcher.on_drop = lambda s: seen.append(sorted(p.name for p in (s / "quickart" / "unpacked").rglob("*.png")))
    with zipfile.ZipFile(shot / "keys" / "batch.tmp", "w") as zf:
        zf.writestr("sh0040.1001.png", png_bytes())
        zf.writestr("sh0040.1002.png", png_bytes())
    (shot / "keys" / "batch.tmp").rename(shot / "keys" / "batch.zip")
    assert wait_until(lambda: seen)
    time.sleep(QUIET / 2)
    assert seen == [["sh0040.1001.png", "sh0040.1002.png"]]


def test_unsafe_zip_is_reported_and_not_dropped(root, tmp_path, make_watcher):
    shot = root / "BRV" / "sq010" / "sh0040"
    watcher, rec = make_watcher("native")
    with zipfile.ZipFile(shot / "keys" / "evil.zip", "w") as zf:
        zf.writestr("../../../../evil.png", png_bytes())
    assert wait_until(lambda: "evil.zip" in rec.problem_text())
    time.sleep(QUIET / 2)
    assert rec.drops == []
    assert not list(tmp_path.rglob("evil.png"))


def test_symlink_outside_root_is_reported(root, tmp_path, make_watcher):
    shot = root / "BRV" / "sq010" / "sh0040"
    (tmp_path / "secret.png").write_bytes(png_bytes())
    watcher, rec = make_watcher("native")
    (shot / "keys" / "sh0040.1001.png").symlink_to(tmp_path / "secret.png")
    assert wait_until(lambda: "outside the studio root" in rec.problem_text())
    time.sleep(QUIET / 2)
    assert rec.drops == []


def test_on_drop_exception_does_not_kill_the_checker(root, make_watcher):
    other = make_shot(root, "sh0050")
    shot = root / "BRV" / "sq010" / "sh0040"
    calls: list[Path] = []

    def explode(s: Path) -> None:
        calls.append(s)
        raise RuntimeError("boom")

    watcher, rec = make_watcher("native", on_drop=explode)
    (shot / "keys" / "sh0040.1001.png").write_bytes(png_bytes())
    assert wait_until(lambda: calls)
    (other / "keys" / "sh0050.1001.png").write_bytes(png_bytes())
    assert wait_until(lambda: len(calls) == 2)
    assert calls == [shot, other]


def test_stop_joins_every_thread(root, mode, make_watcher):
    before = set(threading.enumerate())
    watcher, rec = make_watcher(mode, rescan_seconds=0.1)
    (root / "BRV" / "sq010" / "sh0040" / "keys" / "sh0040.1001.png").write_bytes(png_bytes())
    assert wait_until(lambda: rec.drops)
    watcher.stop()
    watcher.stop()  # twice is fine
    assert set(threading.enumerate()) <= before


def test_measure_detection_latency():
    latency = measure_detection_latency("native", settle_seconds=0.1)
    assert 0.1 <= latency < 5


def test_a_publish_under_the_watched_root_prints_no_watchdog_warning(tmp_path):
    """Issue 23 cosmetic: every publish printed watchdog's "RuntimeWarning: Callback with id ... already
    exists" (a folder made and the job's snapshot moved into it at once, `outputs.set_work_aside`). A real
    watcher on a real root, two real publishes, in a fresh interpreter whose stderr is read."""
    import subprocess
    import sys
    script = """
import sys, time
from pathlib import Path
from quickart_daemon import outputs
from quickart_daemon.naming import Naming
from quickart_daemon.watch import DropWatcher
root = Path(sys.argv[1]); out = root / "DEMO" / "sq010" / "sh0010" / "quickart"; out.mkdir(parents=True)
naming = Naming("{show}/{seq}/{shot}", "{shot}_{layer}.{frame}.png", "{shot}.{frame}.png",
                "{shot}_{layer}.{frame}.png", "{shot}.{frame}.png")
with DropWatcher(root, naming, mode="native", on_drop=lambda shot: None, rescan_seconds=3600):
    for n in (1, 2):
        staging = out / f".job-{n}.tmp"
        for sub in (".inputs/keys", ".checkpoints/00-color", "frames"):
            (staging / sub).mkdir(parents=True)
        (staging / ".inputs" / "keys" / "sh0010.1001.png").write_bytes(b"x")
        time.sleep(0.5)
        outputs.commit_version(staging, out, n, None)
        time.sleep(0.5)
print("published")
"""
    r = subprocess.run([sys.executable, "-W", "default", "-c", script, str(tmp_path)], capture_output=True,
                       text=True, timeout=60)
    assert r.returncode == 0 and "published" in r.stdout, r.stderr
    assert "already exists" not in r.stderr, r.stderr
