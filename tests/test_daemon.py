"""The real daemon as its own process: a drop becomes a version; kill -9 and SIGTERM mid-stage resume.

Each test starts `python -m quickart_daemon.cli daemon` on a studio in tmp_path with a
real SQLite file, real watchdog observers and real worker processes.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import opentimelineio as otio
import pytest
import yaml

from quickart_daemon.queue import open_queue
from quickart_daemon.naming import ShotId
from quickart_daemon.nodes import NodeRegistry
from quickart_daemon.queue import JobState
from quickart_daemon.tools.synth import write_demo_studio

# three stages, so a stop during the middle one (a studio stage from the `stage_package` fixture,
# which takes a few seconds) has a checkpoint to resume from and a stage left to run
SLOW_PIPELINE = {"name": "slow", "stages": [{"stage": "test-identity"}, {"stage": "test-slow"},
                                            {"stage": "inbetween-blend"}]}
SLOW_RUNS = ["test-identity", "test-slow", "inbetween-blend"]
SLOW_SHOT = dict(size=(640, 360), keys=(1001, 1061), timing=1, pipeline="slow")


def start_daemon(cfg, env=None) -> subprocess.Popen:
    log = open(cfg.state_dir.parent / "daemon.log", "ab")
    return subprocess.Popen([sys.executable, "-m", "quickart_daemon.cli", "--config", str(cfg.source), "daemon"],
                            stdout=log, stderr=subprocess.STDOUT, env={**os.environ, **(env or {})},
                            start_new_session=True)


def wait_until(check, timeout, what, proc=None):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        if proc is not None and proc.poll() is not None:
            raise AssertionError(f"daemon exited ({proc.returncode}) while waiting for {what}")
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


# a second studio's convention: deeper shot folders, other key names, 5-digit frames, a suffix on outputs
SECOND_CONVENTION = {"shot_path": "{show}/shots/{seq}/{shot}", "key_file": "{shot}-{layer}-{frame}.png",
                     "key_file_single": "{shot}-{frame}.png", "output_file": "{shot}_{layer}_qa.{frame}.png",
                     "comp_file": "{shot}_comp.{frame}.png", "frame_padding": 5}


def drop_shot(cfg, tmp_path, shot="sh0010", size=(320, 180), keys=(1001, 1005, 1009), **settings) -> Path:
    """Build the shot outside the root (named by the config's convention), then move it in with one
    rename, as a studio copy tool does."""
    staging = tmp_path / "staging"
    shot_dir = write_demo_studio(staging, shot=shot, size=size, keys=keys)
    current = yaml.safe_load((shot_dir / "shot.yaml").read_text())
    (shot_dir / "shot.yaml").write_text(yaml.safe_dump({**current, **settings}))
    naming = cfg.naming_rules
    for path in [*shot_dir.glob("keys/*.png"), *shot_dir.glob("refs/*.png")]:  # written as {shot}_{layer}.{frame}
        layer, frame = path.name[len(shot) + 1:-4].split(".")
        path.rename(path.with_name(naming.key_file.format(shot=shot, layer=layer, frame=int(frame))))
    target = cfg.root / naming.format_shot_path(ShotId("DEMO", "sq010", shot))
    target.parent.mkdir(parents=True, exist_ok=True)
    os.rename(shot_dir, target)
    return target


def stop(proc: subprocess.Popen, sig=signal.SIGTERM, timeout=60) -> int:
    if proc.poll() is None:
        os.killpg(proc.pid, sig)
    return proc.wait(timeout)


def test_drop_becomes_a_version_with_timelines(make_config, tmp_path):
    cfg = make_config()
    daemon = start_daemon(cfg)
    try:
        jq = open_queue(cfg)
        wait_until(lambda: NodeRegistry(jq.db, jq).list(), 30, "the daemon to register", daemon)
        shot_dir = drop_shot(cfg, tmp_path)
        job = wait_until(lambda: next((j for j in jq.list() if j.state in (JobState.DONE, JobState.FAILED)), None),
                         60, "the job", daemon)
        assert job.state is JobState.DONE, job.error
        version = shot_dir / "quickart" / "v001"
        comp = sorted((version / "comp").glob("*.png"))
        assert [p.name for p in comp][:2] == ["sh0010.1001.png", "sh0010.1002.png"]
        assert len(comp) == 1010 - 1001 + 1  # keys on twos, last key held 2 frames
        timeline = otio.adapters.read_from_file(str(version / "sh0010_v001.otio"))
        assert timeline.metadata["quickart"]["job_id"] == job.id
        seq = otio.adapters.read_from_file(str(cfg.root / "DEMO" / "editorial" / "sq010.otio"))
        assert [c.name for c in seq.find_clips()] == ["sh0010_v001"]
        # the daemon ignores its own outputs and unchanged shots: no second job appears
        time.sleep(1.5)
        assert len(jq.list()) == 1
    finally:
        assert stop(daemon) == 0
    assert NodeRegistry(jq.db, jq).list()[0].stopped_at is not None


def _slow_setup(make_config, tmp_path, **overrides):
    """A config running SLOW_PIPELINE (needs the `stage_package` fixture)."""
    pipelines = tmp_path / "pipelines"
    pipelines.mkdir()
    (pipelines / "slow.yaml").write_text(yaml.safe_dump(SLOW_PIPELINE))
    return make_config(pipelines_dir="pipelines", queue={"lease_seconds": 600}, **overrides)


@pytest.mark.parametrize("naming", [None, SECOND_CONVENTION], ids=["default-names", "second-convention"])
def test_sigkill_mid_stage_resumes_at_the_unfinished_stage(make_config, tmp_path, naming, stage_package):
    cfg = _slow_setup(make_config, tmp_path, **({"naming": naming} if naming else {}))
    daemon = start_daemon(cfg)
    jq = open_queue(cfg)
    try:
        wait_until(lambda: NodeRegistry(jq.db, jq).list(), 30, "the daemon to register", daemon)
        shot_dir = drop_shot(cfg, tmp_path, **SLOW_SHOT)
        keys_before = {p.name: p.stat().st_mtime_ns for p in (shot_dir / "keys").iterdir()}
        wait_until(lambda: any(j.current_stage == "test-slow" for j in jq.list([JobState.RUNNING])),
                   60, "stage 2 to start", daemon)
        stop(daemon, signal.SIGKILL)
        job = jq.list()[0]
        assert job.state is JobState.RUNNING  # its worker died with the daemon; the lease is still held
        assert not list((shot_dir / "quickart").glob("v*")), "no version may be visible"
        daemon = start_daemon(cfg)  # the restart requeues it at once (no need to wait for the lease)
        job = wait_until(lambda: (j := jq.get(job.id)).state in (JobState.DONE, JobState.FAILED) and j, 120,
                         "the resumed job", daemon)
        assert job.state is JobState.DONE, job.error
        runs = [(r["stage"], r["state"]) for r in jq.stage_runs(job.id)]
        assert runs == [(name, "done") for name in SLOW_RUNS], "each stage ran once"
        assert job.attempts == 2
        assert [p.name for p in (shot_dir / "quickart").iterdir() if p.name.startswith("v")] == ["v001"]
        rules = cfg.naming_rules  # the resumed stage read its checkpoint back as layers char and fx
        assert sorted(p.name for p in (shot_dir / "quickart" / "v001" / "frames").glob("*.png")) == sorted(
            rules.format_output_name("sh0010", layer, f) for layer in ("char", "fx") for f in range(1001, 1062))
        assert (shot_dir / "quickart" / "v001" / "comp" / rules.format_comp_name("sh0010", 1061)).is_file()
        assert not list((shot_dir / "quickart").glob(".job-*")), "the temporary folder is gone once published"
        assert {p.name: p.stat().st_mtime_ns for p in (shot_dir / "keys").iterdir()} == keys_before
    finally:
        stop(daemon)


def test_sigterm_finishes_the_running_stage_and_hands_the_job_back(make_config, tmp_path, stage_package):
    cfg = _slow_setup(make_config, tmp_path)
    sock_path = tmp_path / "notify.sock"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(sock_path))
    sock.settimeout(30)
    daemon = start_daemon(cfg, {"NOTIFY_SOCKET": str(sock_path)})
    jq = open_queue(cfg)
    try:
        assert "READY=1" in sock.recv(4096).decode()  # systemd readiness
        drop_shot(cfg, tmp_path, **SLOW_SHOT)
        wait_until(lambda: any(j.current_stage == "test-slow" for j in jq.list([JobState.RUNNING])),
                   60, "stage 2 to start", daemon)
        assert stop(daemon, signal.SIGTERM, timeout=120) == 0
        messages = []
        sock.settimeout(0.2)
        try:
            while True:
                messages.append(sock.recv(4096).decode())
        except TimeoutError:
            pass
        assert any("WATCHDOG=1" in m for m in messages) and any("STOPPING=1" in m for m in messages)
        job = jq.list()[0]
        assert job.state is JobState.QUEUED and job.attempts == 0, "handed back without using an attempt"
        assert [r["stage"] for r in jq.stage_runs(job.id)] == SLOW_RUNS[:2], "the stage finished"
        assert not list(cfg.root.glob("DEMO/sq010/sh0010/quickart/v*")), "nothing published yet"
        daemon = start_daemon(cfg)
        done = wait_until(lambda: (j := jq.get(job.id)).state is JobState.DONE and j, 60, "the job", daemon)
        assert done.version == 1
        assert len(jq.stage_runs(job.id)) == 3, "no stage ran twice"
    finally:
        sock.close()
        stop(daemon)


def test_worker_crash_does_not_take_the_daemon_down(make_config, tmp_path, stage_package):
    cfg_retry = _slow_setup(make_config, tmp_path, retry={"max_attempts": 1})
    daemon = start_daemon(cfg_retry)
    jq = open_queue(cfg_retry)
    try:
        wait_until(lambda: NodeRegistry(jq.db, jq).list(), 30, "the daemon to register", daemon)
        drop_shot(cfg_retry, tmp_path, **SLOW_SHOT)
        job = wait_until(lambda: next(iter(jq.list([JobState.RUNNING])), None), 60, "the job to start", daemon)
        worker = wait_until(lambda: _worker_pid(tmp_path / "daemon.log", job.id), 30, "the worker process")
        os.kill(worker, signal.SIGKILL)  # what the kernel's OOM killer does
        failed = wait_until(lambda: (j := jq.get(job.id)).state is JobState.FAILED and j, 30, "the failure", daemon)
        assert "worker process died (signal 9" in failed.error
        assert daemon.poll() is None, "the daemon survives its worker"
    finally:
        stop(daemon)


def _worker_pid(log: Path, job_id: int) -> int | None:
    """The worker's pid, from the daemon's `action=claimed job=N ... pid=P` log line."""
    match = re.search(rf"action=claimed job={job_id} .* pid=(\d+)", log.read_text())
    return int(match.group(1)) if match else None


def test_an_unexpected_exception_in_a_stage_fails_the_job_under_the_daemon(make_config, tmp_path, stage_package):
    (tmp_path / "pipelines").mkdir()
    (tmp_path / "pipelines" / "crash.yaml").write_text(
        yaml.safe_dump({"name": "crash", "stages": [{"stage": "test-crash"}, {"stage": "hold"}]}))
    cfg = make_config(pipelines_dir="pipelines", pipeline="crash", retry={"max_attempts": 2, "backoff_seconds": 0.1})
    daemon = start_daemon(cfg)  # PYTHONPATH carries the stage package to the daemon and its workers
    jq = open_queue(cfg)
    try:
        wait_until(lambda: NodeRegistry(jq.db, jq).list(), 30, "the daemon to register", daemon)
        shot_dir = drop_shot(cfg, tmp_path, size=(96, 54))
        job = wait_until(lambda: next((j for j in jq.list() if j.state is JobState.FAILED), None), 60,
                         "the job to fail", daemon)
        assert job.attempts == 2, "retried once (unexpected faults are retryable), then failed for good"
        r = subprocess.run([sys.executable, "-m", "quickart_daemon.cli", "--config", str(cfg.source), "job",
                            str(job.id)], capture_output=True, text=True, timeout=60)
        assert r.returncode == 0 and "failed" in r.stdout
        assert "stage test-crash crashed: RuntimeError: injected fault for the test" in r.stdout
        assert "Traceback" in (shot_dir / "quickart" / ".logs" / f"job-{job.id}.log").read_text()
        assert daemon.poll() is None
    finally:
        stop(daemon)
