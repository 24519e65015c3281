"""Bad input and faults: every case gives a clear error on the job (or a clean refusal),
leaves the inputs untouched and never leaves a half-written version visible.

Real components throughout: a config.yaml and a SQLite file in tmp_path, the real
``quickart`` CLI (in-process through ``cli.main``, or as a subprocess where the exit
status and stderr matter), real PNG files from the synth module. The tmpfs cases
(read-only output folder, disk full) need root and mount(8); they skip otherwise.

(The SIGKILL-in-the-middle-of-a-stage case lives in tests/test_daemon.py.)
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import resource
import shutil
import sqlite3
import stat
import struct
import subprocess
import sys
import textwrap
import time
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path

import pytest
from PIL import Image

from quickart_daemon import cli, drops
from quickart_daemon.config import load_config
from quickart_daemon.intake import submit_shot
from quickart_daemon.queue import open_queue
from quickart_daemon.errors import UnsafeArchive
from quickart_daemon.queue import Job, JobState
from quickart_daemon.tools.synth import write_demo_studio
from quickart_daemon.process import process_job

QUICKART = Path(sys.executable).with_name("quickart")
SHOT = "sh0010"
VERSION_RE = re.compile(r"^v\d{3,}$")


# -- helpers ------------------------------------------------------------------------------

@dataclass
class Studio:
    base: Path      # tmp_path: config.yaml, state/, studio/
    config: Path
    root: Path
    shot: Path

    @property
    def keys(self) -> Path:
        return self.shot / "keys"

    @property
    def out(self) -> Path:
        return self.shot / "quickart"


def write_config(base: Path, name: str = "config.yaml", **extra: str) -> Path:
    text = textwrap.dedent("""\
        root: studio
        database: {url: "sqlite:///state/q.db", busy_timeout_ms: %(busy)s}
        retry: {max_attempts: 1}
        drop: {settle_seconds: 0}
        log_level: WARNING
        """) % {"busy": extra.get("busy", 5000)}
    path = base / name
    path.write_text(text)
    return path


def make_studio(base: Path, write_shot: bool = True) -> Studio:
    config = write_config(base)
    root = base / "studio"
    shot = root / "DEMO" / "sq010" / SHOT
    if write_shot:
        write_demo_studio(root, shot=SHOT, size=(192, 108), keys=(1001, 1005), fx=False)
    return Studio(base, config, root, shot)


@pytest.fixture
def studio(tmp_path) -> Studio:
    return make_studio(tmp_path)


def snapshot(*folders: Path, skip_outputs: bool = True) -> dict[str, tuple[str, int]]:
    """sha256 and mtime_ns of every file under the folders (a shot's quickart/ outputs excluded)."""
    out = {}
    for folder in folders:
        paths = [folder] if folder.is_file() else sorted(p for p in folder.rglob("*") if p.is_file())
        for p in paths:
            if skip_outputs and "quickart" in p.relative_to(folder.parent).parts:
                continue
            st = p.stat()
            out[str(p)] = (hashlib.sha256(p.read_bytes()).hexdigest(), st.st_mtime_ns)
    return out


def visible_versions(st: Studio) -> list[str]:
    if not st.out.is_dir():
        return []
    return sorted(p.name for p in st.out.iterdir() if VERSION_RE.match(p.name))


def assert_nothing_published(st: Studio) -> None:
    assert visible_versions(st) == []
    assert not (st.out / "latest.json").exists()
    # anything left behind is hidden (.job-N.tmp work folders, the .lock file)
    if st.out.is_dir():
        assert all(p.name.startswith(".") for p in st.out.iterdir()), sorted(os.listdir(st.out))


def quickart_run(st: Studio, capsys) -> tuple[int, str, Job | None]:
    """`quickart run SHOT` in this process; (exit status, stderr, the job or None)."""
    rc = cli.main(["--config", str(st.config), "run", str(st.shot)])
    err = capsys.readouterr().err
    jobs = open_queue(load_config(st.config), migrate=False).list()
    return rc, err, (jobs[0] if jobs else None)


def last_line(err: str) -> str:
    """stderr without the progress bar (tqdm redraws with \\r)."""
    lines = [l for l in err.replace("\r", "\n").splitlines() if l.strip() and "%|" not in l]
    return lines[-1] if lines else ""


def png_bytes(size=(192, 108), colour=(200, 10, 10, 255)) -> bytes:
    buf = io.BytesIO()
    Image.new("RGBA", size, colour).save(buf, format="PNG")
    return buf.getvalue()


def chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def bomb_png(width: int = 30000, height: int = 30000) -> bytes:
    """A few hundred bytes whose valid IHDR claims width x height RGBA (a decompression bomb)."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 6, 0, 0, 0)
    idat = zlib.compress(b"\0" * 4096, 9)  # the start of the first rows; never reached
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


def key(st: Studio, frame: int, layer: str = "char") -> Path:
    return st.keys / f"{SHOT}_{layer}.{frame:04d}.png"


def failed_job_checks(st: Studio, rc: int, err: str, job: Job | None, before: dict) -> str:
    """The common end state of a failed job; returns its error."""
    assert rc == 1
    assert job is not None and job.state is JobState.FAILED, job
    assert job.error and "Traceback" not in err
    assert job.error in last_line(err)  # the CLI's one line is the job's error
    assert snapshot(st.shot) == before
    assert_nothing_published(st)
    return job.error


# -- 1. corrupt and truncated PNG keys ---------------------------------------------------

def test_corrupt_png_key_fails_the_job_naming_the_file(studio, capsys):
    bad = key(studio, 1003)
    bad.write_bytes(os.urandom(4096))
    before = snapshot(studio.shot)
    error = failed_job_checks(studio, *quickart_run(studio, capsys), before)
    assert str(bad) in error and "not a readable image" in error


def test_truncated_png_key_fails_the_job_naming_the_file(studio, capsys):
    bad = key(studio, 1005)
    data = bad.read_bytes()
    bad.write_bytes(data[: len(data) // 2])
    before = snapshot(studio.shot)
    error = failed_job_checks(studio, *quickart_run(studio, capsys), before)
    assert str(bad) in error and "truncated" in error


# -- 2. zero-byte key ----------------------------------------------------------------------

def test_zero_byte_key_is_an_input_but_never_processed(studio, capsys):
    empty = key(studio, 1003)
    empty.touch()
    # input_files lists it (a drop in progress is still a change) ...
    assert empty in drops.input_files(studio.shot, studio.root)
    # ... check_complete holds the drop back, so the watcher never takes it ...
    assert any(str(empty) in p and "zero bytes" in p for p in drops.check_complete([empty]))
    # ... and run by hand it is a clear job error naming the file, never a blank frame
    before = snapshot(studio.shot)
    error = failed_job_checks(studio, *quickart_run(studio, capsys), before)
    assert str(empty) in error and "zero bytes" in error


# -- 3. a file still being written ---------------------------------------------------------

def test_check_complete_reports_a_png_still_being_written(studio):
    data = png_bytes()
    path = studio.keys / f"{SHOT}_char.1003.png"
    with open(path, "wb") as fh:
        fh.write(data[: len(data) // 2])
        fh.flush()
        problems = drops.check_complete([path])
        assert len(problems) == 1 and str(path) in problems[0] and "truncated PNG" in problems[0]
        fh.write(data[len(data) // 2:])
    assert drops.check_complete([path]) == []
    # (that the watcher does not take such a drop: tests/test_watch.py)


# -- 4. names that do not parse --------------------------------------------------------------

def test_unparseable_names_are_reported_and_left_alone(studio, capsys):
    notes = studio.keys / "notes.png"
    short = studio.keys / f"{SHOT}_char.12.png"  # padding 4 expected: not frame 12, not guessed
    notes.write_bytes(png_bytes())
    short.write_bytes(png_bytes())
    before = snapshot(studio.shot)
    rc, err, job = quickart_run(studio, capsys)
    assert rc == 0, err
    assert job.state is JobState.DONE and job.version == 1
    manifest = json.loads((studio.out / "v001" / "manifest.json").read_text())
    problems = "\n".join(manifest["problems"])
    assert len(manifest["problems"]) == 2
    assert str(notes) in problems and str(short) in problems and "left alone" in problems
    assert manifest["timing"]["frame_range"] == [1001, 1006]  # keys 1001 and 1005 on twos; no frame 12
    outputs = [p.name for p in (studio.out / "v001").rglob("*.png")]
    assert not any(".0012." in n or ".12." in n or n.startswith("notes") for n in outputs)
    assert snapshot(studio.shot) == before


# -- 5. keys of different sizes within a layer -----------------------------------------------

def test_keys_of_different_sizes_fail_naming_layer_and_sizes(studio, capsys):
    Image.new("RGBA", (160, 90), (0, 0, 0, 255)).save(key(studio, 1005))
    before = snapshot(studio.shot)
    error = failed_job_checks(studio, *quickart_run(studio, capsys), before)
    assert "layer char" in error and "192x108" in error and "160x90" in error
    assert "1001" in error and "1005" in error


# -- 6. decompression bomb -------------------------------------------------------------------

def test_decompression_bomb_header_is_refused_without_allocating(studio, capsys):
    bomb = key(studio, 1001, layer="bomb")
    bomb.write_bytes(bomb_png())
    assert len(bomb.read_bytes()) < 1000
    data = bomb.read_bytes()  # the header really says 30000x30000, with a valid CRC
    assert data[12:16] == b"IHDR" and struct.unpack(">II", data[16:24]) == (30000, 30000)
    assert struct.unpack(">I", data[29:33])[0] == zlib.crc32(data[12:29])
    before = snapshot(studio.shot)
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    t0 = time.monotonic()
    result = quickart_run(studio, capsys)
    seconds = time.monotonic() - t0
    grown_mib = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss_before) / 1024
    error = failed_job_checks(studio, *result, before)
    assert str(bomb) in error and "30000x30000" in error and "limit" in error
    assert seconds < 2.0, seconds
    assert grown_mib < 500, f"peak RSS grew by {grown_mib:.0f} MiB (a 30000x30000 RGBA frame is 3433 MiB)"


# -- 7. unsafe zip drops ------------------------------------------------------------------------

def tree(folder: Path) -> set[str]:
    return {p.relative_to(folder).as_posix() for p in folder.rglob("*")}


def test_zip_with_parent_entries_is_refused(studio, tmp_path):
    z = studio.keys / "batch.zip"
    with zipfile.ZipFile(z, "w") as zf:
        zf.writestr(f"{SHOT}_char.1003.png", png_bytes())
        zf.writestr("../../../../evil.txt", b"owned")
    assert drops.check_complete([z]) == []  # a complete zip: the refusal is about its content
    before_tree, before = tree(tmp_path), snapshot(studio.shot)
    with pytest.raises(UnsafeArchive) as info:
        drops.unpack_zip_drops(studio.shot, studio.root)
    msg = str(info.value)
    assert str(z) in msg and "../../../../evil.txt" in msg and "refused" in msg
    assert tree(tmp_path) == before_tree  # nothing written anywhere (not even the safe entry)
    assert not (studio.shot.parent / "evil.txt").exists()  # where the entry points
    assert snapshot(studio.shot) == before


def test_zip_with_symlink_entry_is_refused(studio, tmp_path):
    z = studio.keys / "batch.zip"
    with zipfile.ZipFile(z, "w") as zf:
        zf.writestr(f"{SHOT}_char.1003.png", png_bytes())
        link = zipfile.ZipInfo(f"{SHOT}_char.1007.png")
        link.create_system = 3
        link.external_attr = (stat.S_IFLNK | 0o777) << 16
        zf.writestr(link, "/etc/passwd")
    before_tree, before = tree(tmp_path), snapshot(studio.shot)
    with pytest.raises(UnsafeArchive) as info:
        drops.unpack_zip_drops(studio.shot, studio.root)
    msg = str(info.value)
    assert str(z) in msg and f"{SHOT}_char.1007.png" in msg and "symlink" in msg and "refused" in msg
    assert tree(tmp_path) == before_tree
    assert not (studio.out / "unpacked").exists()
    assert snapshot(studio.shot) == before
    # (the watcher reports such a zip through on_problem and takes no drop: tests/test_watch.py)


# -- 8. symlink in a shot folder ------------------------------------------------------------

@pytest.mark.parametrize("target", ["etc-passwd", "outside-file"])
def test_symlink_out_of_the_root_is_refused(studio, tmp_path, capsys, target):
    if target == "etc-passwd":
        dest = Path("/etc/passwd")
    else:
        dest = tmp_path / "elsewhere" / "drawing.png"
        dest.parent.mkdir()
        dest.write_bytes(png_bytes())
    link = studio.keys / f"{SHOT}_char.1003.png"
    link.symlink_to(dest)
    before = snapshot(studio.shot) | snapshot(dest, skip_outputs=False)

    # run by hand: refused before a job exists, one line naming the link
    rc, err, job = quickart_run(studio, capsys)
    assert rc == 1 and job is None
    line = last_line(err)
    assert str(link) in line and "outside the studio root" in line and "Traceback" not in err

    # a job queued before the link appeared fails with the same clear error
    link.unlink()
    cfg = load_config(studio.config)
    jq = open_queue(cfg)
    job = submit_shot(cfg, jq, studio.shot, "test", force=True)
    link.symlink_to(dest)
    job = process_job(cfg, jq, jq.claim(job.id, "test:1", "test", "cpu"), "test:1")
    assert job.state is JobState.FAILED
    assert str(link) in job.error and "outside the studio root" in job.error
    assert snapshot(studio.shot) | snapshot(dest, skip_outputs=False) == before
    assert_nothing_published(studio)


# -- 9 and 10: output file system faults (tmpfs) ---------------------------------------------

def mount_tmpfs(where: Path, options: str) -> None:
    if os.geteuid() != 0 or shutil.which("mount") is None:
        pytest.skip("needs root and mount(8) to make a read-only / full tmpfs")
    where.mkdir(parents=True, exist_ok=True)
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(where)], capture_output=True, text=True)
    if r.returncode != 0:
        pytest.skip(f"mount -t tmpfs not permitted here: {r.stderr.strip()}")


def unmount(where: Path) -> None:
    if subprocess.run(["umount", str(where)], capture_output=True).returncode != 0:
        subprocess.run(["umount", "-l", str(where)], capture_output=True)


def test_read_only_output_folder_fails_the_job_cleanly(studio, capsys):
    mount_tmpfs(studio.out, "ro,size=1m")
    try:
        before = snapshot(studio.shot)
        error = failed_job_checks(studio, *quickart_run(studio, capsys), before)
        assert "Read-only file system" in error and str(studio.out) in error
    finally:
        unmount(studio.out)


def test_disk_full_while_writing_fails_the_job_cleanly(tmp_path, capsys):
    st = make_studio(tmp_path, write_shot=False)
    mount_tmpfs(st.root, "size=2m")
    try:
        write_demo_studio(st.root, shot=SHOT, size=(192, 108), keys=(1001, 1005), fx=False)
        vfs = os.statvfs(st.root)
        free = vfs.f_bavail * vfs.f_frsize
        leave = 100 * 1024
        with open(st.root / "filler.bin", "wb") as fh:  # outside every shot: not an input
            fh.write(b"\0" * (free - leave))
        vfs = os.statvfs(st.root)
        assert vfs.f_bavail * vfs.f_frsize <= 2 * leave
        before = snapshot(st.shot)
        error = failed_job_checks(st, *quickart_run(st, capsys), before)
        assert "No space left on device" in error
        assert not list((st.shot / "quickart").glob(".job-*")), "a job that failed for good gives its space back"
    finally:
        unmount(st.root)


# -- 11. the database locked by another process ---------------------------------------------

LOCKER = """
import sqlite3, sys, time
con = sqlite3.connect(sys.argv[1], isolation_level=None, timeout=10)
con.execute("BEGIN EXCLUSIVE")
con.execute("UPDATE jobs SET priority = priority")
print("locked", flush=True)
time.sleep(float(sys.argv[2]))
con.execute("COMMIT")
print("released", time.time(), flush=True)
"""


def hold_lock(db: Path, seconds: float) -> subprocess.Popen:
    """Another process holding the database's write lock for `seconds`."""
    proc = subprocess.Popen([sys.executable, "-c", LOCKER, str(db), str(seconds)], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "locked"
    return proc


def released_at(locker: subprocess.Popen) -> float:
    line = locker.stdout.readline().split()
    locker.wait(10)
    assert line[0] == "released"
    return float(line[1])


def quickart_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(QUICKART), *args], capture_output=True, text=True, timeout=60)


def test_locked_database_waits_then_errors_in_one_line(studio, capsys):
    patient = studio.config  # busy_timeout_ms 5000
    impatient = write_config(studio.base, "impatient.yaml", busy=200)
    cfg = load_config(patient)
    jq = open_queue(cfg)
    job = submit_shot(cfg, jq, studio.shot, "test", force=True)
    db = studio.base / "state" / "q.db"
    with sqlite3.connect(db) as con:
        assert con.execute("PRAGMA journal_mode").fetchone()[0] == "wal"

    # a writer waits for the lock (held 3 s, busy_timeout_ms 5000), then succeeds
    locker = hold_lock(db, 3.0)
    try:
        r = quickart_cli("--config", str(patient), "cancel", str(job.id))
        finished = time.time()
    finally:
        released = released_at(locker)
    assert r.returncode == 0, r.stderr
    assert finished > released  # it could only write once the lock was gone
    assert jq.get(job.id).state is JobState.CANCELLED

    # busy_timeout_ms 200 against a lock held 3 s
    locker = hold_lock(db, 3.0)
    try:
        # readers never wait for the writer (WAL): `jobs --json` answers at once under the lock
        t0 = time.monotonic()
        assert cli.main(["--config", str(impatient), "jobs", "--json"]) == 0
        assert time.monotonic() - t0 < 1.5
        assert [j["id"] for j in json.loads(capsys.readouterr().out)] == [job.id]
        # a writer gives up: one line naming the database, exit status 1, no traceback
        r = quickart_cli("--config", str(impatient), "retry", str(job.id))
        finished = time.time()
    finally:
        released = released_at(locker)
    assert finished < released, "the CLI should have given up while the lock was held"
    assert r.returncode == 1
    assert "Traceback" not in r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1, r.stderr
    assert lines[0].startswith("quickart: database ") and "locked" in lines[0] and str(db) in lines[0]
    assert jq.get(job.id).state is JobState.CANCELLED  # unchanged
