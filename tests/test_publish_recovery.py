"""Issue 23: publishing that is cut short, timelines that cannot be written, shot folders that move,
clocks that disagree, leftovers, and jobs or daemons nobody can see. One test (or more) per item, with
real files, a real SQLite file (PostgreSQL where the item is about many nodes) and the real daemon."""

from __future__ import annotations

import json
import time

import opentimelineio as otio
import pytest

from quickart_daemon import outputs
from quickart_daemon.intake import submit_shot
from quickart_daemon.nodes import NodeRegistry
from quickart_daemon.notices import NoticeBoard
from quickart_daemon.process import process_job
from quickart_daemon.queue import JobState, open_queue
from quickart_daemon.tools.synth import write_demo_studio

SHOT = "sh0010"


def one_attempt(cfg, jq, job, owner="test:1"):
    return process_job(cfg, jq, jq.claim(job.id, owner, "test", "cpu"), owner)


def sequence_clips(cfg, seq="sq010") -> list[str]:
    return [c.name for c in otio.adapters.read_from_file(str(cfg.root / "DEMO" / "editorial" / f"{seq}.otio"))
            .find_clips()]


class Killed(BaseException):
    """Stands for kill -9: nothing after it runs, no handler records anything."""


# -- D8. a kill between the version's rename and latest.json -------------------------------------------

def test_a_kill_between_the_rename_and_latest_json_is_finished_by_the_restart(make_config, monkeypatch):
    cfg = make_config(pipeline="blend")
    shot = write_demo_studio(cfg.root, size=(64, 36), keys=(1001, 1003), fx=False)
    out = shot / "quickart"
    jq = open_queue(cfg)
    job = submit_shot(cfg, jq, shot, "watch")
    real_write_json = outputs.write_json

    def killed_writing_latest(path, data):
        if path.name == "latest.json":  # the temporary copy is written, the rename never happens
            (path.parent / f".latest.json.{4242}.tmp").write_text(json.dumps(data))
            raise Killed()
        real_write_json(path, data)

    monkeypatch.setattr(outputs, "write_json", killed_writing_latest)
    with pytest.raises(Killed):
        one_attempt(cfg, jq, job)
    monkeypatch.setattr(outputs, "write_json", real_write_json)
    assert outputs.versions(out) == [1] and not (out / "latest.json").exists()
    assert jq.get(job.id).state is JobState.RUNNING
    jq.requeue_stale(node="test")  # the daemon's restart

    done = one_attempt(cfg, jq, jq.get(job.id), owner="test:2")
    assert done.state is JobState.DONE and done.version == 1, done
    assert outputs.versions(out) == [1], "the restart finished the publish, it did not publish a copy"
    assert json.loads((out / "latest.json").read_text())["version"] == 1
    assert not list(out.glob(".latest.json.*.tmp")), "the killed writer's temporary file is removed"
    assert not list(out.glob(".job-*")), "no staging folder is left"
    assert sequence_clips(cfg) == [f"{SHOT}_v001"]
    assert jq.artifacts(job.id)["version"] == str(out / "v001")


# -- D2. a sequence timeline that cannot be written ------------------------------------------------------

@pytest.mark.parametrize("case", ["editorial-unwritable", "name-too-long-for-its-lock"])
def test_a_sequence_timeline_that_cannot_be_written_is_a_warning_on_a_done_job(make_config, case):
    cfg = make_config(pipeline="blend", retry={"backoff_seconds": 0})
    seq = "q" * 246 if case == "name-too-long-for-its-lock" else "sq010"  # .{seq}.otio.lock: 257 bytes
    shot = write_demo_studio(cfg.root, seq=seq, size=(64, 36), keys=(1001, 1003), fx=False)
    if case == "editorial-unwritable":  # (tests run as root: a file where the folder goes stands for read-only)
        (cfg.root / "DEMO" / "editorial").write_text("not a folder")
    jq = open_queue(cfg)
    job = one_attempt(cfg, jq, submit_shot(cfg, jq, shot, "watch"))
    assert job.state is JobState.DONE and job.version == 1, job
    assert any("sequence timeline" in w and "v001 is published" in w for w in job.warnings), job.warnings
    assert outputs.versions(shot / "quickart") == [1], "one version, no copies"
    assert json.loads((shot / "quickart" / "latest.json").read_text())["version"] == 1


# -- P2. a shot folder renamed while its job runs ----------------------------------------------------------

def test_a_shot_folder_renamed_mid_job_stops_the_job_and_nothing_appears_at_the_old_path(
        make_config, tmp_path, stage_package):
    import threading

    import yaml
    (tmp_path / "pipelines").mkdir()
    (tmp_path / "pipelines" / "p.yaml").write_text(yaml.safe_dump(
        {"name": "p", "stages": [{"stage": "test-slow", "params": {"seconds": 1.5}}, {"stage": "hold"}]}))
    cfg = make_config(pipelines_dir="pipelines", pipeline="p", retry={"backoff_seconds": 0})
    shot = write_demo_studio(cfg.root, size=(64, 36), keys=(1001, 1003), fx=False)
    jq = open_queue(cfg)
    job = jq.claim(submit_shot(cfg, jq, shot, "watch").id, "test:1", "test", "cpu")
    outcome = []
    worker = threading.Thread(target=lambda: outcome.append(process_job(cfg, jq, job, "test:1")))
    worker.start()
    deadline = time.monotonic() + 30
    while jq.get(job.id).current_stage != "test-slow" and time.monotonic() < deadline:
        time.sleep(0.05)
    renamed = shot.with_name("sh0020")
    shot.rename(renamed)  # an artist renames the shot folder mid-job
    worker.join(60)
    failed = outcome[0]
    assert failed.state is JobState.FAILED and failed.attempts == 1, failed
    assert f"the shot folder {shot} is gone" in failed.error and "\n" not in failed.error
    assert not shot.exists(), "the old path is not re-created"
    assert outputs.versions(renamed / "quickart") == [], "no ghost version under the new name either"
    assert not (cfg.root / "DEMO" / "editorial" / "sq010.otio").exists()


# -- D1. a node whose clock is behind ---------------------------------------------------------------------

def test_a_newer_drop_seen_by_a_node_whose_clock_is_behind_becomes_latest(make_config, db_url, monkeypatch):
    import datetime as dt

    import numpy as np

    from quickart_daemon import jobs
    from quickart_daemon.images import read_png, write_png
    cfg = make_config(pipeline="blend", database={"url": db_url})
    shot = write_demo_studio(cfg.root, size=(64, 36), keys=(1001, 1003), fx=False)
    jq = open_queue(cfg)
    assert one_attempt(cfg, jq, submit_shot(cfg, jq, shot, "watch")).version == 1

    class BehindByAnHour(dt.datetime):
        @classmethod
        def now(cls, tz=None):
            return dt.datetime.now(tz) - dt.timedelta(hours=1)

    monkeypatch.setattr(jobs, "datetime", BehindByAnHour)  # this node's clock: every utcnow() here
    key = shot / "keys" / f"{SHOT}_char.1003.png"
    write_png(key, np.ascontiguousarray(read_png(key)[:, ::-1]))  # the artist's newer drawing
    newer = one_attempt(cfg, jq, submit_shot(cfg, jq, shot, "watch"))
    assert newer.state is JobState.DONE and newer.version == 2
    assert not any("not latest" in w for w in newer.warnings), newer.warnings
    assert json.loads((shot / "quickart" / "latest.json").read_text())["version"] == 2
    assert sequence_clips(cfg) == [f"{SHOT}_v002"]


# -- U4/U5. leftovers: replaced zips' unpacked folders, orphaned staging folders -----------------------------

def test_the_unpacked_folder_of_a_replaced_zip_is_removed(make_config, caplog):
    import io
    import logging
    import zipfile

    from quickart_daemon import drops
    cfg = make_config(pipeline="blend")
    shot = write_demo_studio(cfg.root, size=(64, 36), keys=(1001, 1003), fx=False)
    key = (shot / "keys" / f"{SHOT}_char.1003.png").read_bytes()

    def zip_drop(name: str, frame: int) -> None:
        data = io.BytesIO()
        with zipfile.ZipFile(data, "w") as zf:
            zf.writestr(f"{SHOT}_char.{frame}.png", key)
        (shot / "keys" / name).write_bytes(data.getvalue())

    zip_drop("batch.zip", 1005)
    [old] = drops.unpack_zip_drops(shot, cfg.root)
    (shot / "keys" / "batch.zip").unlink()
    zip_drop("batch2.zip", 1007)  # the artist replaces the batch
    with caplog.at_level(logging.INFO, logger="quickart_daemon.drops"):
        [new] = drops.unpack_zip_drops(shot, cfg.root)
    assert not old.exists() and new.is_dir()
    assert f"removed={old}" in caplog.text
    assert not any(f.is_relative_to(old) for f in drops.input_files(shot, cfg.root)), "its frames are no inputs"


def test_a_starting_daemon_removes_staging_folders_no_job_comes_back_to(make_config, tmp_path):
    from test_daemon import start_daemon, stop, wait_until
    cfg = make_config(pipeline="blend")
    shot = write_demo_studio(cfg.root, size=(64, 36), keys=(1001, 1003), fx=False)
    out = shot / "quickart"
    jq = open_queue(cfg)
    done = one_attempt(cfg, jq, submit_shot(cfg, jq, shot, "watch"))
    waiting = jq.enqueue(done.shot, str(shot), "blend", requires_gpu=True)  # no GPU here: stays queued
    for job_id in (done.id, waiting.id, 77):  # 77: a job of a database since replaced
        (out / f".job-{job_id}.tmp" / ".stages").mkdir(parents=True)
    daemon = start_daemon(cfg)
    try:
        wait_until(lambda: NodeRegistry(jq.db, jq).list(), 30, "the daemon to start", daemon)
    finally:
        stop(daemon)
    assert sorted(p.name for p in out.glob(".job-*")) == [f".job-{waiting.id}.tmp"], "the queued job resumes from it"
    log = (tmp_path / "daemon.log").read_text()
    assert f"reason=job {done.id} is done" in log and "reason=job 77 is not in the database" in log


# -- S3. a job no live node can claim says why it waits ----------------------------------------------------

@pytest.mark.parametrize("gpus, reason", [(0, "waiting: no live node has a GPU slot"), (1, None)])
def test_a_gpu_job_no_live_node_can_claim_says_why_it_waits(make_config, capsys, gpus, reason):
    import os

    from quickart_daemon.naming import ShotId
    cfg = make_config(pipeline="blend")
    jq = open_queue(cfg)
    NodeRegistry(jq.db, jq).heartbeat("render01", os.getpid(), ["cpu0"], "native", starting=True, gpus=gpus)
    job = jq.enqueue(ShotId("DEMO", "sq010", SHOT), str(cfg.root / "DEMO" / "sq010" / SHOT), "blend",
                     requires_gpu=True)
    assert_waiting_reason(cfg, capsys, job, reason)


def assert_waiting_reason(cfg, capsys, job, reason: str | None) -> None:
    """`status` and `job` both say why a queued job waits (or neither says anything)."""
    from quickart_daemon import cli
    assert cli.main(["--config", str(cfg.source), "status"]) == 0
    status = capsys.readouterr().out
    assert cli.main(["--config", str(cfg.source), "job", str(job.id)]) == 0
    shown = capsys.readouterr().out
    if reason is None:
        assert "waiting:" not in status + shown
    else:
        assert f"job {job.id} DEMO/sq010/{SHOT}: {reason}" in status
        assert f"  {reason}\n" in shown


@pytest.mark.parametrize("groups, gpus, requires_gpu, reason", [
    ([], 1, False, "waiting: no live node is in group lighting"),
    (["comp"], 1, False, "waiting: no live node is in group lighting"),
    (["lighting"], 0, True, "waiting: no live node has a GPU slot in group lighting"),
    (["comp", "lighting"], 0, False, None),
])
def test_a_job_for_a_node_group_no_live_node_is_in_says_why_it_waits(make_config, capsys, groups, gpus,
                                                                      requires_gpu, reason):
    """S3: `requires: [group:lighting]` with no live node in that group is not queued without a word: each
    node's groups are in the database (its heartbeat), and status and job say what the job waits for."""
    import os

    from quickart_daemon import cli
    from quickart_daemon.naming import ShotId
    cfg = make_config(pipeline="blend")
    jq = open_queue(cfg)
    registry = NodeRegistry(jq.db, jq)
    registry.heartbeat("render01", os.getpid(), ["cpu0"], "native", starting=True, gpus=gpus, groups=groups)
    assert [n.groups for n in registry.list()] == [sorted(groups)]
    job = jq.enqueue(ShotId("DEMO", "sq010", SHOT), str(cfg.root / "DEMO" / "sq010" / SHOT), "blend",
                     requires_gpu=requires_gpu, node_group="lighting")
    assert_waiting_reason(cfg, capsys, job, reason)
    assert cli.main(["--config", str(cfg.source), "nodes"]) == 0
    assert (",".join(sorted(groups)) or "-") in capsys.readouterr().out


# -- S4. shot folders that do not match the naming -----------------------------------------------------------

def test_a_misnamed_shot_folder_is_reported_in_status_and_the_log(make_config, tmp_path, capsys):
    from quickart_daemon import cli
    from test_daemon import start_daemon, stop, wait_until
    cfg = make_config(pipeline="blend")
    good = write_demo_studio(cfg.root, size=(64, 36), keys=(1001, 1003), fx=False)
    bad = good.rename(good.with_name("sh 0010"))  # a space: not a shot name
    (cfg.root / "DEMO" / "sq010" / "notes").mkdir()  # no keys/: not taken for a shot, not reported
    jq = open_queue(cfg)
    daemon = start_daemon(cfg)
    try:
        wait_until(lambda: NoticeBoard(jq.db).latest(), 30, "the misnamed folder to be reported", daemon)
    finally:
        stop(daemon)
    assert cli.main(["--config", str(cfg.source), "status"]) == 0
    status = capsys.readouterr().out
    assert f"{bad}: not a shot folder: 'DEMO/sq010/sh 0010' does not match naming.shot_path" in status
    assert "notes" not in status and jq.list() == []
    log = (tmp_path / "daemon.log").read_text()
    assert f"{bad}: not a shot folder" in log


# -- S5. a second daemon for the same node ------------------------------------------------------------------

def test_a_second_daemon_for_a_live_node_refuses_to_start(make_config, tmp_path):
    import subprocess
    import sys

    from test_daemon import start_daemon, stop, wait_until
    cfg = make_config(pipeline="blend", node_name="render01")
    jq = open_queue(cfg)
    first = start_daemon(cfg)
    try:
        wait_until(lambda: NodeRegistry(jq.db, jq).list(), 30, "the first daemon to register", first)
        second = subprocess.run([sys.executable, "-m", "quickart_daemon.cli", "--config", str(cfg.source), "daemon"],
                                capture_output=True, text=True, timeout=60)
        assert second.returncode != 0
        lines = second.stderr.strip().splitlines()
        assert lines[-1] == (f"quickart: a daemon for node render01 is already running (pid {first.pid}, "
                             "heartbeating on this database); stop it first, or give this one another node_name")
        assert "Traceback" not in second.stderr
        assert first.poll() is None and [n.pid for n in NodeRegistry(jq.db, jq).list()] == [first.pid], "the first one keeps running"
    finally:
        stop(first)
