"""Reliability (issue 13): a version is made from exactly the inputs it records, latest never goes
backwards, and no input makes a job run forever or eat the machine. One test (or more) per
numbered item of the issue, each with real files, a real SQLite file and the real CLI or daemon.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import opentimelineio as otio
import pytest
import yaml
from PIL import Image

from quickart_daemon import cli, drops
from quickart_daemon.images import read_png, write_png
from quickart_daemon.intake import submit_shot
from quickart_daemon.nodes import NodeRegistry
from quickart_daemon.process import process_job
from quickart_daemon.queue import JobState, open_queue
from quickart_daemon.tools.synth import write_demo_studio

from test_daemon import drop_shot, start_daemon, stop, wait_until

SHOT = "sh0010"


def qa(*args, timeout=120) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "quickart_daemon.cli", *map(str, args)], capture_output=True,
                          text=True, timeout=timeout)


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def with_pipeline(make_config, tmp_path, stages_list, **config):
    (tmp_path / "pipelines").mkdir(exist_ok=True)
    (tmp_path / "pipelines" / "p.yaml").write_text(yaml.safe_dump({"name": "p", "stages": stages_list}))
    return make_config(pipelines_dir="pipelines", pipeline="p", **config)


def one_attempt(cfg, jq, job):
    return process_job(cfg, jq, jq.claim(job.id, "test:1", "test", "cpu"), "test:1")


def manifest_inputs(version: Path) -> dict[str, str]:
    return {i["path"]: i["sha256"] for i in json.loads((version / "manifest.json").read_text())["inputs"]}


def redraw(key: Path) -> None:
    """The artist saves a new drawing over a key (another pose: the image flipped)."""
    write_png(key, np.ascontiguousarray(read_png(key)[:, ::-1]))


# -- 1. a version is made from the inputs it records; latest never goes backwards ------------------

def test_keys_changed_mid_job_make_a_new_drop_and_each_version_is_made_from_its_own(
        make_config, tmp_path, stage_package):
    """Item 1 under the daemon: keys 1001/1005/1009/1013; while the job runs, 1005 is overwritten and
    1009 deleted. The running job finishes from what it read; the change is a new drop whose job
    makes the next version, which is latest."""
    cfg = with_pipeline(make_config, tmp_path, [{"stage": "refine", "params": {"method": "classical"}},
                                                {"stage": "test-slow", "params": {"seconds": 4}},
                                                {"stage": "inbetween-blend"}])
    daemon = start_daemon(cfg)
    jq = open_queue(cfg)
    try:
        wait_until(lambda: NodeRegistry(jq.db, jq).list(), 30, "the daemon to register", daemon)
        shot = drop_shot(cfg, tmp_path, size=(160, 90), keys=(1001, 1005, 1009, 1013))
        keys = shot / "keys"
        old = {name: sha(keys / name) for name in (f"{SHOT}_char.1005.png", f"{SHOT}_char.1009.png")}
        wait_until(lambda: any(j.current_stage == "test-slow" for j in jq.list([JobState.RUNNING])), 60,
                   "the job to be mid-way", daemon)
        redraw(keys / f"{SHOT}_char.1005.png")
        (keys / f"{SHOT}_char.1009.png").unlink()
        (keys / f"{SHOT}_fx.1009.png").unlink()
        new_1005 = sha(keys / f"{SHOT}_char.1005.png")
        wait_until(lambda: len(jq.list()) == 2 and all(j.state is JobState.DONE for j in jq.list()), 120,
                   "both drops' jobs", daemon)
    finally:
        stop(daemon)
    first, second = sorted(jq.list(), key=lambda j: j.id)
    assert (first.version, second.version) == (1, 2)
    v1, v2 = shot / "quickart" / "v001", shot / "quickart" / "v002"
    assert manifest_inputs(v1)[f"keys/{SHOT}_char.1005.png"] == old[f"{SHOT}_char.1005.png"]
    assert manifest_inputs(v1)[f"keys/{SHOT}_char.1009.png"] == old[f"{SHOT}_char.1009.png"]
    assert (v1 / "refine" / f"{SHOT}_char.1009.png").is_file(), "v001 is made from the drop it records"
    assert manifest_inputs(v2)[f"keys/{SHOT}_char.1005.png"] == new_1005
    assert f"keys/{SHOT}_char.1009.png" not in manifest_inputs(v2)
    assert not (v2 / "refine" / f"{SHOT}_char.1009.png").exists()
    assert json.loads((shot / "quickart" / "latest.json").read_text())["version"] == 2
    seq = otio.adapters.read_from_file(str(cfg.root / "DEMO" / "editorial" / "sq010.otio"))
    assert [c.name for c in seq.find_clips()] == [f"{SHOT}_v002"]


def test_an_older_drop_finishing_last_is_kept_but_never_becomes_latest(make_config, tmp_path, stage_package):
    """Item 1's order exactly: the old drop's job is interrupted, the new drop's job publishes, then
    the old one resumes and publishes. Its version is kept and marked, latest stays with the newer drop."""
    cfg = with_pipeline(make_config, tmp_path, [
        {"stage": "test-identity"}, {"stage": "test-crash-once", "params": {"marker": str(tmp_path / "m")}},
        {"stage": "inbetween-blend"}], retry={"backoff_seconds": 0})
    shot = write_demo_studio(cfg.root, size=(96, 54), keys=(1001, 1005, 1009, 1013), fx=False)
    jq = open_queue(cfg)
    old_job = submit_shot(cfg, jq, shot, "watch")
    assert one_attempt(cfg, jq, old_job).state is JobState.QUEUED  # a transient fault after stage 0
    # the old job is running again when the artist changes the drop, so the new drop does not supersede it
    jq.claim(old_job.id, "test:2", "test", "cpu")
    old_1005 = sha(shot / "keys" / f"{SHOT}_char.1005.png")
    redraw(shot / "keys" / f"{SHOT}_char.1005.png")
    (shot / "keys" / f"{SHOT}_char.1009.png").unlink()
    new_job = submit_shot(cfg, jq, shot, "watch")
    jq.release(old_job.id, "test:2")  # ...and it is handed back (a shutdown), to finish after the new one
    assert one_attempt(cfg, jq, new_job).version == 1
    late = one_attempt(cfg, jq, jq.get(old_job.id))
    assert late.state is JobState.DONE and late.version == 2
    assert any("not latest" in w and "v001" in w for w in late.warnings)
    out = shot / "quickart"
    assert json.loads((out / "latest.json").read_text())["version"] == 1
    manifest = json.loads((out / "v002" / "manifest.json").read_text())
    assert manifest["superseded_by"]["version"] == 1
    assert manifest_inputs(out / "v002")[f"keys/{SHOT}_char.1005.png"] == old_1005  # the bytes it was made from
    assert f"keys/{SHOT}_char.1009.png" in manifest_inputs(out / "v002")
    seq = otio.adapters.read_from_file(str(cfg.root / "DEMO" / "editorial" / "sq010.otio"))
    assert [c.name for c in seq.find_clips()] == [f"{SHOT}_v001"]


# -- 2. bounded work ---------------------------------------------------------------------------------

@pytest.mark.parametrize("case", ["far-key", "hold-last"])
def test_unbounded_shots_fail_in_one_line_before_allocating(make_config, capsys, case):
    cfg = make_config(pipeline="blend")
    shot = cfg.root / "DEMO" / "sq010" / "sh0200"
    (shot / "keys").mkdir(parents=True)
    key = Image.new("RGBA", (64, 36), (0, 0, 0, 255))
    key.save(shot / "keys" / "sh0200.1001.png")
    if case == "far-key":
        key.save(shot / "keys" / "sh0200.99999999999999999999.png")
    else:
        (shot / "shot.yaml").write_text("hold_last: 99999999\n")
    cli.main(["--config", str(cfg.source), "jobs"])  # warm the CLI's imports: they are not the work measured
    capsys.readouterr()
    started = time.monotonic()
    rc = cli.main(["--config", str(cfg.source), "run", str(shot)])
    assert time.monotonic() - started < 1.0
    err = capsys.readouterr().err
    assert rc == 1 and "Traceback" not in err
    assert ("max_frames_between_keys" if case == "far-key" else "max_hold_last") in err
    job = open_queue(cfg).list()[0]
    assert job.state is JobState.FAILED and job.attempts == 1


def test_a_killed_quickart_run_does_not_leave_its_job_running(make_config, tmp_path, stage_package):
    cfg = with_pipeline(make_config, tmp_path, [{"stage": "test-slow", "params": {"seconds": 30}}, {"stage": "hold"}])
    shot = write_demo_studio(cfg.root, size=(64, 36), keys=(1001, 1003), fx=False)
    run = subprocess.Popen([sys.executable, "-m", "quickart_daemon.cli", "--config", str(cfg.source), "run", str(shot)],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    jq = open_queue(cfg)
    wait_until(lambda: any(j.current_stage == "test-slow" for j in jq.list([JobState.RUNNING])), 60, "the stage")
    run.send_signal(signal.SIGTERM)
    assert run.wait(30) != 0
    job = jq.list()[0]
    assert job.state is JobState.CANCELLED, job
    assert not list((shot / "quickart").glob(".job-*"))


# -- 3. the database deleted under a running daemon -------------------------------------------------

def test_a_deleted_database_stops_the_daemon_and_a_restart_requeues_nothing_published(make_config, tmp_path):
    cfg = make_config(pipeline="blend")
    daemon = start_daemon(cfg)
    jq = open_queue(cfg)
    try:
        wait_until(lambda: NodeRegistry(jq.db, jq).list(), 30, "the daemon to register", daemon)
        for name in ("sh0010", "sh0020"):
            drop_shot(cfg, tmp_path, shot=name, size=(96, 54))
        wait_until(lambda: len(jq.list([JobState.DONE])) == 2, 60, "both shots published", daemon)
        for suffix in ("", "-wal", "-shm"):
            Path(str(cfg.state_dir / "quickart.db") + suffix).unlink(missing_ok=True)
        assert daemon.wait(30) == 1, "the daemon stops, non-zero, so systemd restarts it"
    finally:
        stop(daemon)
    log = (tmp_path / "daemon.log").read_text()
    assert "action=database_lost" in log and "Traceback" not in log
    daemon = start_daemon(cfg)  # systemd's restart: a new, empty database
    try:
        jq = open_queue(cfg)
        wait_until(lambda: NodeRegistry(jq.db, jq).list(), 30, "the daemon to register again", daemon)
        time.sleep(2.0)  # the start-up rescan has seen every shot
        assert jq.list() == [], "shots whose latest version matches their files are not queued again"
        redraw(cfg.root / "DEMO" / "sq010" / "sh0020" / "keys" / "sh0020_char.1005.png")
        job = wait_until(lambda: next(iter(jq.list([JobState.DONE])), None), 60, "a real change's job", daemon)
        assert str(job.shot).endswith("sh0020") and job.version == 2
    finally:
        stop(daemon)


# -- 4 and 5. the command line: --out inside --in, filesystem errors in one line --------------------

def test_stage_refuses_an_output_folder_equal_to_or_inside_its_input(tmp_path):
    src = tmp_path / "in"
    src.mkdir()
    write_png(src / "a.1001.png", np.full((8, 8, 4), 200, np.uint8))
    before = sha(src / "a.1001.png")
    for out in (src, src / "sub"):
        r = qa("stage", "hold", "--in", src, "--out", out)
        assert r.returncode == 1 and "Traceback" not in r.stderr
        assert "inside it" in r.stderr and len(r.stderr.strip().splitlines()) == 1
    assert sha(src / "a.1001.png") == before and sorted(p.name for p in src.iterdir()) == ["a.1001.png"]


def test_filesystem_errors_are_one_line(tmp_path):
    blocker = tmp_path / "afile"
    blocker.write_text("not a folder")
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump({"root": "studio", "state_dir": "afile/state",
                                      "database": {"url": "sqlite:///afile/state/q.db"}, "slots": {"gpus": "none"}}))
    (tmp_path / "studio").mkdir()
    for command in (["status"], ["daemon"], ["jobs", "--json"]):
        r = qa("--config", config, *command, timeout=60)
        assert r.returncode == 1, (command, r.stderr)
        assert "Traceback" not in r.stderr and len(r.stderr.strip().splitlines()) == 1, r.stderr
        assert r.stderr.startswith("quickart: ")
    src = tmp_path / "in"
    src.mkdir()
    write_png(src / "a.1001.png", np.full((8, 8, 4), 200, np.uint8))
    r = qa("stage", "hold", "--in", src, "--out", blocker)
    assert r.returncode == 1 and r.stderr.strip() == f"quickart: --out {blocker} is a file, not a folder"


# -- 6. names the file system refuses --------------------------------------------------------------

def test_a_layer_name_too_long_for_the_file_system_fails_at_once(make_config, tmp_path):
    cfg = make_config(pipeline="blend")
    shot = write_demo_studio(cfg.root, size=(64, 36), keys=(1001, 1003), fx=False)
    layer = "L" * 230
    for key in sorted((shot / "keys").glob("*.png")):
        key.rename(key.with_name(key.name.replace("_char.", f"_{layer}.")))
    for ref in (shot / "refs").glob("*.png"):
        ref.unlink()
    jq = open_queue(cfg)
    job = one_attempt(cfg, jq, submit_shot(cfg, jq, shot, "watch"))
    assert job.state is JobState.FAILED and job.attempts == 1, "bad input: no retries"
    assert f"{SHOT}_{layer}.1003.png" in job.error and "shorten the layer name" in job.error
    assert not list((shot / "quickart").glob(".job-*")), "no temp folder outlives its job"


# -- 7. an empty shot.yaml -----------------------------------------------------------------------------

def test_an_empty_shot_yaml_is_complete_for_the_daemon_and_runs(make_config, capsys):
    cfg = make_config(pipeline="blend")
    shot = write_demo_studio(cfg.root, size=(64, 36), keys=(1001, 1003), fx=False)
    (shot / "shot.yaml").write_text("")
    assert drops.check_complete(drops.input_files(shot, cfg.root)) == []  # the watcher's rule
    assert cli.main(["--config", str(cfg.source), "run", str(shot)]) == 0  # the same rule by hand


# -- 8. cancel of a job whose worker is gone -----------------------------------------------------------

def test_cancelling_an_orphaned_job_cancels_it(make_config):
    from datetime import timedelta
    cfg = make_config(pipeline="blend", queue={"lease_seconds": 60})
    shot = write_demo_studio(cfg.root, size=(64, 36), keys=(1001, 1003), fx=False)
    jq = open_queue(cfg)
    # a daemon was killed mid-job: its job is running, its lease still valid; cancel, then restart
    job = jq.claim(submit_shot(cfg, jq, shot, "watch").id, "node-a:1:cpu", "node-a", "cpu")
    assert jq.cancel(job.id).cancel_requested
    jq.requeue_stale(node="node-a")
    assert jq.get(job.id).state is JobState.CANCELLED
    assert jq.claim_next("node-a:2:cpu", "node-a", "cpu") is None, "never claimed and run again"
    # a worker that stopped responding (lease expired): cancel takes effect at once
    later = jq.claim(jq.retry(job.id).id, "node-b:1:cpu", "node-b", "cpu")
    from quickart_daemon.db.models import JobRow, utcnow
    with jq.sessions.begin() as s:
        s.get(JobRow, later.id).lease_expires_at = utcnow() - timedelta(seconds=1)
    r = qa("--config", cfg.source, "cancel", later.id)
    assert r.returncode == 0 and "cancelled" in r.stdout
    assert jq.get(later.id).state is JobState.CANCELLED


def test_the_cancel_answer_inside_a_dead_workers_lease_window_is_truthful(make_config, capsys):
    """Issue 23: `quickart cancel` of a job whose node died (its lease still running) does not claim a
    worker will stop it: it says the job is cancelled when its lease runs out (and it is, not requeued);
    once the node is marked down the job is cancelled at once; on a live node a worker does stop it."""
    import os
    from datetime import timedelta

    from quickart_daemon.db.models import Node, utcnow
    cfg = make_config(pipeline="blend", queue={"lease_seconds": 60, "heartbeat_seconds": 1.0})
    shot = write_demo_studio(cfg.root, size=(64, 36), keys=(1001, 1003), fx=False)
    jq = open_queue(cfg)
    registry = NodeRegistry(jq.db, jq)

    def running_on(node: str, heard_ago: float, state: str = "up"):
        registry.heartbeat(node, os.getpid(), ["cpu"], "native", starting=True)
        with jq.sessions.begin() as s:
            row = s.get(Node, node)
            row.heartbeat_at, row.state = utcnow() - timedelta(seconds=heard_ago), state
        return jq.claim(submit_shot(cfg, jq, shot, "submit", force=True).id, f"{node}:1:cpu", node, "cpu")

    live = running_on("node-live", 0.5)
    assert cli.main(["--config", str(cfg.source), "cancel", str(live.id)]) == 0
    assert capsys.readouterr().out == f"job {live.id}: cancel requested; its worker on node-live stops it at its next check\n"
    jq.requeue_stale(node="node-live")  # (its daemon restarts: the asked-for cancel is done)

    dead = running_on("node-dead", 20)  # killed 20 s ago: silent, not yet marked down, its lease still valid
    assert cli.main(["--config", str(cfg.source), "cancel", str(dead.id)]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"job {dead.id}: its node node-dead was last heard from 20s ago") and \
        "will be cancelled (not requeued) when its lease runs out, in about " in out and "stops it" not in out, out
    assert jq.get(dead.id).state is JobState.RUNNING and jq.get(dead.id).cancel_requested
    jq.requeue_stale(now=utcnow() + timedelta(seconds=61))  # the lease runs out: as it said
    assert jq.get(dead.id).state is JobState.CANCELLED

    down = running_on("node-down", 90, state="down")  # marked down: nobody runs it, cancel takes effect now
    assert cli.main(["--config", str(cfg.source), "cancel", str(down.id)]) == 0
    assert capsys.readouterr().out == f"job {down.id}: cancelled\n"
    assert jq.get(down.id).state is JobState.CANCELLED and "node node-down is down" in jq.get(down.id).error


# -- 9. two commands on a fresh database ----------------------------------------------------------------

def test_concurrent_commands_on_a_fresh_database_both_migrate(tmp_path):
    for attempt in range(3):
        base = tmp_path / f"try{attempt}"
        (base / "studio").mkdir(parents=True)
        (base / "config.yaml").write_text("root: studio\ndatabase: {url: 'sqlite:///state/q.db'}\n")
        procs = [subprocess.Popen([sys.executable, "-m", "quickart_daemon.cli", "--config", str(base / "config.yaml"),
                                   "db", "upgrade"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
                 for _ in range(4)]
        results = [(p.wait(60), p.stderr.read()) for p in procs]
        assert all(rc == 0 for rc, _ in results), results


# -- 10. files quickart run ignores are named, with the reason --------------------------------------------

def test_run_names_every_ignored_key_file_and_why(make_config, capsys):
    cfg = make_config(pipeline="blend")
    shot = cfg.root / "DEMO" / "sq010" / "sh0140"
    (shot / "keys").mkdir(parents=True)
    png = Image.new("RGBA", (32, 18), (0, 0, 0, 255))
    odd = {"sh0140_char.1001.tif": "export the drawing as PNG", "sh0140_char.1003.PNG": "lowercase",
           "SH0140_char.1005.png": "case-sensitive", "sh0140_my char.1007.png": "' '",
           "sh0140_chär.1009.png": "'ä'", "sh0140.-0004.png": "negative", "sh0140.001.png": "3 digits"}
    for name in odd:
        png.save(shot / "keys" / name, format="PNG")
    assert cli.main(["--config", str(cfg.source), "run", str(shot)]) == 1
    err = capsys.readouterr().err
    for name, why in odd.items():
        assert name in err and why in err, (name, err)
    # with one usable key beside them the shot runs, and each ignored file is a warning
    png.save(shot / "keys" / "sh0140.1001.png")
    assert cli.main(["--config", str(cfg.source), "run", str(shot)]) == 0
    out = capsys.readouterr().out
    assert all(f"warning: {shot / 'keys' / name}: left alone" in out for name in odd), out


def test_a_float_tiff_saved_as_png_keeps_its_values(tmp_path):
    ramp = np.tile(np.linspace(0.0, 1.0, 64, dtype=np.float32), (16, 1))
    Image.fromarray(ramp, mode="F").save(tmp_path / "key.1001.png", format="TIFF")
    grey = read_png(tmp_path / "key.1001.png")[..., 0].astype(int)
    assert grey[0, 0] == 0 and grey[0, -1] == 255 and abs(grey[0, 32] - 130) <= 2
