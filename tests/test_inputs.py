"""Bad input (issue 23): every bad file is one sentence on the job or in the status notices, never a
hang or a traceback, and the inputs are never modified. Real files, a real SQLite file, the real CLI."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from quickart_daemon.queue import JobState, open_queue
from quickart_daemon.tools.synth import write_demo_studio
from quickart_daemon.watch import DropWatcher

SHOT = "sh0010"


def qa(*args, timeout=60) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "quickart_daemon.cli", *map(str, args)], capture_output=True,
                          text=True, timeout=timeout)


def watcher_takes(cfg, shot: Path, timeout: float = 10) -> tuple[list[Path], list[str]]:
    """What the daemon's watcher does with the shot (drops taken, problems reported), in a thread that
    may not hang: a check stuck in open() would stop the watcher for the whole studio."""
    taken, problems = [], []
    watcher = DropWatcher(cfg.root, cfg.naming_rules, settle_seconds=0, check_interval=0.05,
                          on_drop=taken.append, on_problem=lambda s, p: problems.append(p))

    def check():
        watcher.scan_all()
        for _ in range(4):  # settle mode: the same files at two checks
            watcher.check_now()
            time.sleep(0.06)

    thread = threading.Thread(target=check, daemon=True)
    thread.start()
    thread.join(timeout)
    assert not thread.is_alive(), f"the watcher hangs on {shot}"
    return taken, problems


# -- S1. a FIFO named like a key -------------------------------------------------------------------

def test_a_fifo_named_like_a_key_is_left_alone_and_reported(make_config):
    cfg = make_config(pipeline="blend")
    shot = write_demo_studio(cfg.root, size=(64, 36), keys=(1001, 1005), fx=False)
    fifo = shot / "keys" / f"{SHOT}_char.1003.png"
    os.mkfifo(fifo)
    taken, problems = watcher_takes(cfg, shot)
    assert taken == [shot]
    assert any(str(fifo) in p and "FIFO" in p for p in problems), problems
    r = qa("--config", cfg.source, "run", shot)  # hung in open() before
    assert r.returncode == 0, r.stderr
    assert f"warning: {fifo}: a FIFO (named pipe), not a file; left alone" in r.stdout
    job = open_queue(cfg).list()[0]
    assert job.state is JobState.DONE and any("FIFO" in w for w in job.warnings)
    assert (shot / "keys").joinpath(fifo.name).exists()  # left where it is


# -- S2. a TIFF saved as .png ----------------------------------------------------------------------

def test_a_tiff_saved_as_png_is_a_bad_key_for_run_and_for_the_watcher(make_config):
    """One rule: `run` rendered it and the daemon waited forever ("copy not finished?"); now the watcher
    takes the drop, reporting the file, and the job fails at once naming it, as `run` does."""
    from PIL import Image
    cfg = make_config(pipeline="blend")
    shot = write_demo_studio(cfg.root, size=(64, 36), keys=(1001, 1005), fx=False)
    tiff = shot / "keys" / f"{SHOT}_char.1005.png"
    Image.open(tiff).save(tiff, format="TIFF")
    before = tiff.read_bytes()
    taken, problems = watcher_takes(cfg, shot)
    sentence = f"{tiff}: a TIFF file named .png; export it as PNG"
    assert taken == [shot] and sentence in problems, problems
    r = qa("--config", cfg.source, "run", shot)
    assert r.returncode == 1 and "Traceback" not in r.stderr
    assert r.stderr.strip().endswith(sentence), r.stderr
    job = open_queue(cfg).list()[0]
    assert job.state is JobState.FAILED and job.attempts == 1 and job.error == sentence
    assert tiff.read_bytes() == before


# -- T1. layers of different sizes -------------------------------------------------------------------

def test_layers_of_different_sizes_fail_at_load_in_one_sentence_without_retry(make_config):
    """They failed at publish, with a traceback, after every stage ran, and were retried."""
    from PIL import Image

    from quickart_daemon.intake import submit_shot
    from quickart_daemon.process import process_job
    cfg = make_config(pipeline="blend", retry={"backoff_seconds": 0})
    shot = write_demo_studio(cfg.root, size=(64, 36), keys=(1001, 1005))
    for fx in (shot / "keys").glob(f"{SHOT}_fx.*.png"):
        Image.open(fx).resize((80, 45)).save(fx)
    jq = open_queue(cfg)
    job = jq.claim(submit_shot(cfg, jq, shot, "watch").id, "test:1", "test", "cpu")
    job = process_job(cfg, jq, job, "test:1")
    assert job.state is JobState.FAILED and job.attempts == 1, "bad input: failed at once, not retried"
    assert job.error == (f"DEMO/sq010/{SHOT}: layers differ in size: layer char is 64x36, layer fx is 80x45; "
                         "export every layer of a shot at one size")
    assert not jq.done_stages(job.id), "no stage ran"
    r = qa("--config", cfg.source, "job", job.id)
    assert "layers differ in size" in r.stdout and "Traceback" not in r.stdout + r.stderr


# -- T2. frame numbers --------------------------------------------------------------------------------

@pytest.mark.parametrize("case", ["one-far-key", "start-frame"])
def test_frame_numbers_are_bounded_at_load(make_config, case):
    """A single key at frame 99999999999999999999 passed the limits (no gap to measure) and failed in OTIO
    after every stage; limits.max_frame bounds keys and start_frame before anything is decoded."""
    from PIL import Image
    cfg = make_config(pipeline="blend")
    shot = cfg.root / "DEMO" / "sq010" / "sh0200"
    (shot / "keys").mkdir(parents=True)
    key = Image.new("RGBA", (64, 36), (0, 0, 0, 255))
    if case == "one-far-key":
        key.save(shot / "keys" / "sh0200.99999999999999999999.png")
        why = "is frame 99,999,999,999,999,999,999, more than limits.max_frame (9,999,999)"
    else:
        key.save(shot / "keys" / "sh0200.1001.png")
        (shot / "shot.yaml").write_text("start_frame: 99999999999999999999\n")
        why = "start_frame 99,999,999,999,999,999,999 is more than limits.max_frame"
    r = qa("--config", cfg.source, "run", shot)
    assert r.returncode == 1 and "Traceback" not in r.stderr and why in r.stderr, r.stderr
    job = open_queue(cfg).list()[0]
    assert job.state is JobState.FAILED and job.attempts == 1 and why in job.error
    assert not open_queue(cfg).done_stages(job.id), "no stage ran"


# -- U3. a key's size on disk ------------------------------------------------------------------------

def padded_png(path: Path, image, pad_bytes: int) -> None:
    """A valid PNG made big on disk: a private ancillary chunk of zeros before IEND, written sparse."""
    import io
    import struct
    import zlib
    data = io.BytesIO()
    image.save(data, format="PNG")
    png = data.getvalue()
    iend = png.rindex(b"IEND") - 4
    crc = zlib.crc32(b"quAr")
    zeros = bytes(1 << 20)
    for _ in range(pad_bytes >> 20):
        crc = zlib.crc32(zeros, crc)
    with open(path, "wb") as fh:
        fh.write(png[:iend] + struct.pack(">I", pad_bytes) + b"quAr")
        fh.seek(pad_bytes, os.SEEK_CUR)  # a hole: no disk space, no time
        fh.write(struct.pack(">I", crc) + png[iend:])


def test_a_key_too_big_on_disk_is_refused_before_it_is_read(make_config):
    """A sparse 1 GiB valid PNG was read whole and copied into every job's kept inputs; limits.max_file_bytes
    (default 512 MiB: the default max_image_pixels of 8-bit RGBA are 400 MB) is checked from stat first."""
    from PIL import Image

    from quickart_daemon.config import Config
    assert Config().limits.max_file_bytes == 512 * 1024**2
    cfg = make_config(pipeline="blend", limits={"max_file_bytes": 4 << 20})
    shot = write_demo_studio(cfg.root, size=(64, 36), keys=(1001, 1005), fx=False)
    big = shot / "keys" / f"{SHOT}_char.1005.png"
    padded_png(big, Image.open(big), 8 << 20)
    assert Image.open(big).size == (64, 36)
    r = qa("--config", cfg.source, "run", shot)
    why = f"{big}: {big.stat().st_size:,} bytes, more than limits.max_file_bytes (4,194,304)"
    assert r.returncode == 1 and "Traceback" not in r.stderr and why in r.stderr, r.stderr
    job = open_queue(cfg).list()[0]
    assert job.state is JobState.FAILED and job.attempts == 1 and why in job.error
    assert not [p for p in (shot / "quickart").rglob("*.png") if p.stat().st_size > 1 << 20], "nothing copied"


# -- U2. `quickart stage` applies the limits -----------------------------------------------------------

def stage_folder(folder: Path, frames: list[int]) -> Path:
    from PIL import Image
    folder.mkdir()
    for frame in frames:
        Image.new("RGBA", (16, 9), (0, 0, 0, 255)).save(folder / f"a.{frame:04d}.png")
    return folder


@pytest.mark.parametrize("frames,limits,why", [
    ([1, 99999999], {}, "are 99,999,998 frames apart, more than limits.max_frames_between_keys (1,000)"),
    ([1, 50], {"max_frames_between_keys": 10}, "are 49 frames apart, more than limits.max_frames_between_keys (10)"),
    ([99999999999999], {}, "is frame 99,999,999,999,999, more than limits.max_frame"),
    ([1, 3, 5], {"max_keys_per_drop": 2}, "3 key drawings, more than limits.max_keys_per_drop (2)"),
    ([1, 9], {"max_frames_per_shot": 5}, "more than limits.max_frames_per_shot (5)"),
    ([1, 3], {"max_file_bytes": 50}, "bytes, more than limits.max_file_bytes (50)"),
])
def test_stage_applies_the_limits_before_decoding(tmp_path, frames, limits, why):
    """keys 1 and 99999999 were in-betweened until the kernel killed the command at 8.6 GB."""
    import yaml
    (tmp_path / "config.yaml").write_text(yaml.safe_dump({"limits": limits}))
    src = stage_folder(tmp_path / "in", frames)
    started = time.monotonic()
    r = qa("--config", tmp_path / "config.yaml", "stage", "inbetween-blend", "--in", src, "--out", tmp_path / "out")
    assert r.returncode == 1 and "Traceback" not in r.stderr, r.stderr
    assert why in r.stderr and len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert time.monotonic() - started < 30 and not (tmp_path / "out").exists()


# -- T3. a database file that is not SQLite ---------------------------------------------------------------

@pytest.mark.parametrize("command", [["status"], ["jobs"], ["job", "1"], ["cancel", "1"], ["retry", "1"],
                                     ["nodes"], ["db", "upgrade"], ["daemon"]])
def test_a_database_file_that_is_not_sqlite_is_one_sentence(make_config, command):
    cfg = make_config()
    db = cfg.state_dir / "quickart.db"
    db.parent.mkdir(parents=True, exist_ok=True)
    db.write_bytes(b"these are not the tables you are looking for\n" * 100)
    r = qa("--config", cfg.source, *command)
    assert r.returncode == 1 and "Traceback" not in r.stderr, r.stderr
    assert r.stderr == (f"quickart: database sqlite:///{db}: file is not a database; database.url names a file "
                        "that is not QuickArt's SQLite database\n")


# -- T4. ids too large for the database -------------------------------------------------------------------

HUGE = "99999999999999999999"


@pytest.mark.parametrize("command,said", [(["job", HUGE], f"no job {HUGE}"), (["cancel", HUGE], f"no job {HUGE}"),
                                          (["retry", HUGE], f"no job {HUGE}"),
                                          (["jobs", "--limit", HUGE], f"--limit {HUGE}: give a whole number from 1")])
def test_ids_too_large_for_the_database_are_one_sentence(make_config, command, said):
    from quickart_daemon.db.session import make_engine, upgrade
    cfg = make_config()
    upgrade(make_engine(cfg.database.url, cfg.database.busy_timeout_ms))
    r = qa("--config", cfg.source, *command)
    assert r.returncode == 1 and "Traceback" not in r.stderr, r.stderr
    assert r.stderr.startswith(f"quickart: {said}") and len(r.stderr.splitlines()) == 1, r.stderr


def test_web_api_job_id_too_large_is_a_404_sentence(make_config):
    from starlette.testclient import TestClient

    from quickart_daemon.web.app import create_app
    cfg = make_config()
    open_queue(cfg)
    with TestClient(create_app(cfg), base_url="http://127.0.0.1", raise_server_exceptions=False) as client:
        for path in (f"/api/jobs/{HUGE}", f"/api/jobs/-{HUGE}/log"):
            r = client.get(path)
            assert r.status_code == 404 and "Traceback" not in r.text and HUGE in r.text, r.text


# -- D5. stage parameters in shot.yaml -----------------------------------------------------------------

def tint_shot(make_config, tmp_path, shot_yaml: str):
    import yaml
    (tmp_path / "pipelines").mkdir(exist_ok=True)
    (tmp_path / "pipelines" / "p.yaml").write_text(yaml.safe_dump({"name": "p", "stages": [
        {"stage": "test-tint", "params": {"log": str(tmp_path / "tint.log"), "tag": "from-pipeline", "shift": 0}},
        {"stage": "hold"}]}))
    cfg = make_config(pipelines_dir="pipelines", pipeline="p")
    shot = write_demo_studio(cfg.root, size=(64, 36), keys=(1001, 1005), fx=False)
    (shot / "shot.yaml").write_text(shot_yaml)
    return cfg, shot


def test_a_misspelt_stage_parameter_in_shot_yaml_is_refused(make_config, tmp_path, stage_package):
    """It was ignored silently (pipeline files refuse it); refused the same way, naming shot.yaml."""
    cfg, shot = tint_shot(make_config, tmp_path, "stages:\n  test-tint: {shfit: 40}\n")
    r = qa("--config", cfg.source, "run", shot)
    why = (f"{shot / 'shot.yaml'}: stages.test-tint: unknown parameter(s) shfit; test-tint takes: log, tag, shift")
    assert r.returncode == 1 and "Traceback" not in r.stderr and why in r.stderr, r.stderr
    job = open_queue(cfg).list()[0]
    assert job.state is JobState.FAILED and job.attempts == 1 and job.error == why
    assert not (tmp_path / "tint.log").exists(), "no stage ran"


def test_the_manifest_records_the_params_each_stage_got(make_config, tmp_path, stage_package):
    import json
    cfg, shot = tint_shot(make_config, tmp_path, "stages:\n  test-tint: {tag: from-shot, shift: 40}\n")
    r = qa("--config", cfg.source, "run", shot)
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "tint.log").read_text() == "from-shot\n"
    steps = json.loads((shot / "quickart" / "v001" / "manifest.json").read_text())["pipeline"]["steps"]
    assert steps[0]["params"] == {"log": str(tmp_path / "tint.log"), "tag": "from-shot", "shift": 40}


# -- cosmetics -------------------------------------------------------------------------------------------

def test_status_into_a_closed_pipe_is_quiet(make_config):
    """`quickart status | head`: a "Broken pipe" traceback before."""
    from quickart_daemon.db.session import make_engine, upgrade
    cfg = make_config()
    upgrade(make_engine(cfg.database.url, cfg.database.busy_timeout_ms))
    proc = subprocess.Popen([sys.executable, "-m", "quickart_daemon.cli", "--config", str(cfg.source), "status"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    proc.stdout.close()  # the reader is gone before a line is written
    assert proc.stderr.read() == "" and proc.wait(60) == 141


def test_run_prints_a_failure_once(make_config):
    cfg = make_config(pipeline="blend")
    shot = write_demo_studio(cfg.root, size=(64, 36), keys=(1001, 1005), fx=False)
    from PIL import Image
    tiff = shot / "keys" / f"{SHOT}_char.1005.png"
    Image.open(tiff).save(tiff, format="TIFF")
    r = qa("--config", cfg.source, "run", shot)
    assert r.returncode == 1 and (r.stdout + r.stderr).count("a TIFF file named .png") == 1, r.stdout + r.stderr


def test_stage_in_a_file_says_it_is_a_file(tmp_path):
    (tmp_path / "a.1001.png").write_bytes(b"x")
    r = qa("stage", "hold", "--in", tmp_path / "a.1001.png", "--out", tmp_path / "out")
    assert r.returncode == 1 and r.stderr == f"quickart: {tmp_path / 'a.1001.png'}: a file, not a folder\n"
