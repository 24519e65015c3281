"""Retry from a chosen stage (issue 12): a finished job runs again from one of its stages, reusing
its input snapshot and the outputs of the stages before it, kept on disk when it ended."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

from quickart_daemon.errors import InvalidTransition, QuickArtError
from quickart_daemon.images import read_png, write_png
from quickart_daemon.intake import submit_shot
from quickart_daemon.process import process_job
from quickart_daemon.queue import JobState, open_queue
from quickart_daemon.rerun import retry_job, retry_points
from quickart_daemon.tools.synth import write_demo_studio

SIZE = (96, 54)
KEYS = (1001, 1005, 1009)


def qa(*args) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "quickart_daemon.cli", *map(str, args)], capture_output=True,
                          text=True, timeout=300)


def write_pipeline(base: Path, steps: list[dict]) -> None:
    (base / "pipelines").mkdir(exist_ok=True)
    (base / "pipelines" / "p.yaml").write_text(yaml.safe_dump({"name": "p", "stages": steps}))


def tint(stage: str, tag: str, shift: int, log: Path) -> dict:
    return {"stage": stage, "params": {"tag": tag, "shift": shift, "log": str(log)}}


def run_job(cfg, jq, job):
    """One attempt in the foreground, as `quickart run` makes it."""
    return process_job(cfg, jq, jq.claim(job.id, "test:1", "test", "cpu"), "test:1", retry=False)


def key_png(shot: Path, frame: int) -> Path:
    return shot / "keys" / f"sh0010_char.{frame}.png"


def published(shot: Path, version: int, frame: int) -> np.ndarray:
    return read_png(shot / "quickart" / f"v{version:03d}" / "frames" / f"sh0010_char.{frame}.png")


def shifted(rgba: np.ndarray, shift: int) -> np.ndarray:
    return np.dstack([np.clip(rgba[..., :3].astype(int) + shift, 0, 255).astype(np.uint8), rgba[..., 3:]])


@pytest.fixture
def studio(make_config, tmp_path, stage_package):
    log = tmp_path / "ran.txt"
    write_pipeline(tmp_path, [tint("test-tint", "A", 10, log), tint("test-tint2", "B", 0, log), {"stage": "hold"}])
    cfg = make_config(pipelines_dir="pipelines", pipeline="p")
    shot = write_demo_studio(cfg.root, size=SIZE, keys=KEYS, fx=False)
    return cfg, shot, log


def test_a_published_job_reruns_from_a_chosen_stage_on_its_own_inputs_and_earlier_outputs(studio, tmp_path):
    cfg, shot, log = studio
    jq = open_queue(cfg)
    original = read_png(key_png(shot, 1005))
    job = run_job(cfg, jq, submit_shot(cfg, jq, shot, "test", force=True))
    assert job.state is JobState.DONE and log.read_text() == "A\nB\n"
    assert np.array_equal(published(shot, 1, 1005), shifted(original, 10))
    assert (shot / "quickart" / ".kept" / f"job-{job.id}" / ".inputs").is_dir()
    assert not list((shot / "quickart" / "v001").glob(".*")), "no work files inside a version"

    # the artist redraws a key and the TD changes the second step's setting; the retry from that
    # step must run it alone, with its new setting, on what the first step made of the old key
    write_png(key_png(shot, 1005), np.full_like(original, 77))
    write_pipeline(tmp_path, [tint("test-tint", "A", 10, log), tint("test-tint2", "B", 5, log), {"stage": "hold"}])
    assert retry_points(cfg, job, jq.stage_runs(job.id)) == ["test-tint", "test-tint2", "hold"]
    again = retry_job(cfg, jq, job.id, "test-tint2")
    assert again.state is JobState.QUEUED and again.generation == 1 and again.inputs_generation == 0
    done = run_job(cfg, jq, again)
    assert done.state is JobState.DONE and done.version == 2, done.error
    assert log.read_text() == "A\nB\nB\n", "only the chosen stage and the ones after it ran"
    assert np.array_equal(published(shot, 2, 1005), shifted(original, 15))
    assert np.array_equal(published(shot, 1, 1005), shifted(original, 10)), "v001 is never touched"
    runs = [(r["generation"], r["index"], r["stage"]) for r in jq.stage_runs(job.id) if r["generation"] == 1]
    assert sorted(runs) == [(1, 0, "test-tint"), (1, 1, "test-tint2"), (1, 2, "hold")]

    # from the start: the new key, every step
    done = run_job(cfg, jq, retry_job(cfg, jq, job.id))
    assert done.state is JobState.DONE and done.version == 3 and log.read_text() == "A\nB\nB\nA\nB\n"
    assert np.array_equal(published(shot, 3, 1005), shifted(np.full_like(original, 77), 15))


def test_a_failed_job_restarts_at_the_failed_stage_after_the_pipeline_is_fixed(studio, tmp_path):
    cfg, shot, log = studio
    write_pipeline(tmp_path, [tint("test-tint", "A", 10, log), {"stage": "test-crash"}, {"stage": "hold"}])
    r = qa("--config", cfg.source, "run", shot)
    assert r.returncode == 1 and "injected fault" in r.stderr
    jq = open_queue(cfg)
    job = jq.list()[0]
    assert job.state is JobState.FAILED and log.read_text() == "A\n"
    write_pipeline(tmp_path, [tint("test-tint", "A", 10, log), tint("test-tint2", "C", 1, log), {"stage": "hold"}])
    shown = qa("--config", cfg.source, "job", job.id)
    assert "retry from: test-tint, test-tint2  (quickart retry" in shown.stdout, shown.stdout
    r = qa("--config", cfg.source, "retry", job.id, "--from-stage", "test-tint2")
    assert r.returncode == 0 and "queued again from test-tint2" in r.stdout, r.stderr
    done = run_job(cfg, jq, jq.get(job.id))
    assert done.state is JobState.DONE, done.error
    assert log.read_text() == "A\nC\n", "the first step's output was carried over, not made again"
    original = read_png(key_png(shot, 1001))
    assert np.array_equal(published(shot, 1, 1001), shifted(original, 11))


def test_a_retry_from_a_stage_needs_the_kept_work_and_a_real_stage(studio, make_config):
    cfg, shot, log = studio
    cfg = make_config(pipelines_dir="pipelines", pipeline="p", retry={"keep_stage_outputs_of": 1})
    jq = open_queue(cfg)
    first = run_job(cfg, jq, submit_shot(cfg, jq, shot, "test", force=True))
    second = run_job(cfg, jq, submit_shot(cfg, jq, shot, "test", force=True))
    assert first.state is second.state is JobState.DONE
    kept = sorted(p.name for p in (shot / "quickart" / ".kept").iterdir())
    assert kept == [f"job-{second.id}"], "only the newest finished job's work is kept"
    assert retry_points(cfg, first, jq.stage_runs(first.id)) == ["test-tint"]
    r = qa("--config", cfg.source, "retry", first.id, "--from-stage", "hold")
    last = r.stderr.strip().splitlines()[-1]  # (a line before it names the test package's broken plug-in)
    assert r.returncode == 1 and "Traceback" not in r.stderr
    assert "no longer kept (retry.keep_stage_outputs_of); retry it from the start" in last
    with pytest.raises(QuickArtError, match="has no stage 'lite'; its stages: test-tint, test-tint2, hold"):
        retry_job(cfg, jq, second.id, "lite")
    assert retry_job(cfg, jq, second.id, "3").state is JobState.QUEUED  # step numbers work too
    assert jq.get(first.id).state is JobState.DONE, "a refused retry changes nothing"


def test_the_queue_carries_only_finished_steps(make_config, db_url):
    cfg = make_config(database={"url": db_url})
    jq = open_queue(cfg)
    from quickart_daemon.naming import ShotId
    job = jq.enqueue(ShotId("S", "q", "sh1"), "/nowhere/sh1", "p", source="submit")
    job = jq.claim(job.id, "w", "n", "cpu")
    jq.checkpoint(job.id, "w", index=0, name="refine", seconds=1.0, checkpoint=None,
                  report={"warnings": ["faint lines"]}, progress=0.5)
    jq.fail(job.id, "w", "boom", retryable=False, stage="color")
    with pytest.raises(InvalidTransition, match="step 2 did not finish in its last run"):
        jq.retry(job.id, from_step=2)
    again = jq.retry(job.id, from_step=1)
    assert again.generation == 1 and again.inputs_generation == 0 and again.warnings == ("refine: faint lines",)
    assert set(jq.done_stages(job.id)) == {0}
    # a second retry from a stage goes on reading the snapshot of generation 0, which took it
    jq.cancel(job.id)
    assert jq.retry(job.id, from_step=1).inputs_generation == 0
    jq.cancel(job.id)
    assert jq.retry(job.id).inputs_generation is None


def test_a_copied_studio_runs_its_shots_again_and_never_touches_the_original(studio, tmp_path):
    """Issue 23 P1 and W2: a studio copied elsewhere (with its database, which names the original's
    folders) failed every scan with an IntegrityError, and a retry from a stage moved the original's
    .kept/job-N out and back before failing. The copy acts on its own folders only."""
    import shutil
    from quickart_daemon.config import load_config

    cfg, shot, log = studio
    jq = open_queue(cfg)
    job = run_job(cfg, jq, submit_shot(cfg, jq, shot, "test", force=True))
    assert job.state is JobState.DONE
    kept = shot / "quickart" / ".kept" / f"job-{job.id}"
    before = sorted(str(p.relative_to(shot)) for p in shot.rglob("*"))
    stamp = kept.stat().st_mtime_ns

    copy = tmp_path / "copy"
    copy.mkdir()
    for name in ("config.yaml", "pipelines", "studio", "state"):
        src = tmp_path / name
        (shutil.copytree if src.is_dir() else shutil.copy2)(src, copy / name)
    cfg2 = load_config(copy / "config.yaml")
    shot2 = copy / shot.relative_to(tmp_path)
    jq2 = open_queue(cfg2)
    assert submit_shot(cfg2, jq2, shot2, "test", force=True) is not None  # was: IntegrityError on every scan
    again = retry_job(cfg2, jq2, job.id, "test-tint2")
    again = process_job(cfg2, jq2, jq2.claim(again.id, "copy:1", "copy", "cpu"), "copy:1", retry=False)
    assert again.state is JobState.DONE, again.error
    assert (shot2 / "quickart" / "v002").is_dir()
    assert sorted(str(p.relative_to(shot)) for p in shot.rglob("*")) == before, "the original was touched"
    assert kept.stat().st_mtime_ns == stamp
