"""The job path end to end: run -> publish -> record, for any pipeline a studio writes.

Real components: a config.yaml and a SQLite file in tmp_path, shots from the synth
generator, the real `quickart` CLI (in-process, or as a subprocess where the exit status
matters), studio stage packages installed through the `quickart.stages` entry-point group
(the `stage_package` fixture).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

from quickart_daemon import cli
from quickart_daemon.errors import PipelineError, UnknownStage
from quickart_daemon.images import read_png
from quickart_daemon.intake import submit_shot
from quickart_daemon.pipeline import parse_pipeline
from quickart_daemon.process import process_job
from quickart_daemon.queue import JobState, open_queue
from quickart_daemon.tools.synth import write_demo_studio

SIZE = (96, 54)
KEYS = (1001, 1005, 1009)  # on twos: drawings 1001 1003 1005 1007 1009, frames 1001-1010


def qa(*args) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "quickart_daemon.cli", *map(str, args)], capture_output=True,
                          text=True, timeout=300)


def setup_studio(make_config, tmp_path, stages_list, **config):
    """A config whose pipeline `p` is `stages_list`, and one shot with KEYS on twos."""
    (tmp_path / "pipelines").mkdir(exist_ok=True)
    (tmp_path / "pipelines" / "p.yaml").write_text(yaml.safe_dump({"name": "p", "stages": stages_list}))
    cfg = make_config(pipelines_dir="pipelines", pipeline="p", **config)
    shot = write_demo_studio(cfg.root, size=SIZE, keys=KEYS, fx=False)
    return cfg, shot


def run_in_process(cfg, jq, job):
    """One attempt, as a worker process makes it (the daemon's path, retries allowed)."""
    return process_job(cfg, jq, jq.claim(job.id, "test:1", "test", "cpu"), "test:1")


# -- the three bugs of issue 10 -------------------------------------------------------------------

def test_a_refine_only_pipeline_publishes_the_keys_on_their_exposure(make_config, tmp_path):
    cfg, shot = setup_studio(make_config, tmp_path, [{"stage": "refine", "params": {"method": "classical"}}])
    assert cli.main(["--config", str(cfg.source), "run", str(shot)]) == 0
    v = shot / "quickart" / "v001"
    frames = sorted(p.name for p in (v / "frames").glob("*.png"))
    assert frames == [f"sh0010_char.{f}.png" for f in range(1001, 1011)]
    assert sorted(p.name for p in (v / "refine").glob("*.png")) == [f"sh0010_char.{k}.png" for k in KEYS]
    # no in-betweens: every frame shows the refined key exposed on it (1003 and 1004 hold 1001)
    for frame in range(1001, 1011):
        key = max(k for k in KEYS if k <= frame)
        assert np.array_equal(read_png(v / "frames" / f"sh0010_char.{frame}.png"),
                              read_png(v / "refine" / f"sh0010_char.{key}.png")), frame
    assert len(list((v / "comp").glob("*.png"))) == 10


def test_a_custom_output_template_survives_a_resume(make_config, tmp_path, stage_package):
    marker = tmp_path / "crashed"
    cfg, shot = setup_studio(make_config, tmp_path,
                             [{"stage": "test-identity"}, {"stage": "test-crash-once", "params": {"marker": str(marker)}},
                              {"stage": "hold"}],
                             naming={"output_file": "{shot}_{layer}_qa.{frame}.png"}, retry={"backoff_seconds": 0})
    jq = open_queue(cfg)
    job = submit_shot(cfg, jq, shot, "test", force=True)
    first = run_in_process(cfg, jq, job)
    assert first.state is JobState.QUEUED and "first attempt fails" in first.error  # retryable, requeued
    done = run_in_process(cfg, jq, first)
    assert done.state is JobState.DONE, done.error
    assert [r["stage"] for r in jq.stage_runs(job.id) if r["state"] == "done"] == \
        ["test-identity", "test-crash-once", "hold"], "stage 0 was resumed from its checkpoint, not re-run"
    v = shot / "quickart" / "v001"
    assert sorted(p.name for p in (v / "frames").glob("*.png")) == [f"sh0010_char_qa.{f}.png" for f in range(1001, 1011)]
    assert sorted(p.name for p in (v / "ident").glob("*.png")) == [f"sh0010_char_qa.{k}.png" for k in KEYS]


def test_a_step_renamed_between_attempts_runs_again_instead_of_loading_nothing(make_config, tmp_path, stage_package):
    marker = tmp_path / "crashed"
    steps = [{"stage": "test-identity"}, {"stage": "test-crash-once", "params": {"marker": str(marker)}},
             {"stage": "hold"}]
    cfg, shot = setup_studio(make_config, tmp_path, steps, retry={"backoff_seconds": 0})
    jq = open_queue(cfg)
    job = run_in_process(cfg, jq, submit_shot(cfg, jq, shot, "test", force=True))
    assert job.state is JobState.QUEUED
    steps[0] = {"stage": "test-identity2"}  # the TD edits the pipeline before the retry
    (tmp_path / "pipelines" / "p.yaml").write_text(yaml.safe_dump({"name": "p", "stages": steps}))
    job = run_in_process(cfg, jq, job)
    assert job.state is JobState.DONE, job.error
    assert [r["stage"] for r in jq.stage_runs(job.id) if r["state"] == "done"] == \
        ["test-identity", "test-identity2", "test-crash-once", "hold"]
    assert len(list((shot / "quickart" / "v001" / "frames").glob("*.png"))) == 10


# -- every exception ends in a queue verb ----------------------------------------------------------

def test_an_unexpected_exception_fails_the_job_under_quickart_run(make_config, tmp_path, stage_package):
    cfg, shot = setup_studio(make_config, tmp_path, [{"stage": "test-crash"}, {"stage": "hold"}])
    r = qa("--config", cfg.source, "run", shot)
    assert r.returncode == 1 and "Traceback" not in r.stderr
    assert "stage test-crash crashed: RuntimeError: injected fault for the test" in r.stderr
    jq = open_queue(cfg)
    job = jq.list()[0]
    assert job.state is JobState.FAILED, "a foreground run never leaves the job running or queued"
    shown = qa("--config", cfg.source, "job", job.id)
    assert "failed" in shown.stdout and "RuntimeError: injected fault for the test" in shown.stdout
    log = Path(jq.artifacts(job.id)["log"])
    assert "Traceback" in log.read_text() and "_crash" in log.read_text()
    assert not list((shot / "quickart").glob(".job-*")), "no staging folder outlives a failed job"


def test_a_stage_returning_the_wrong_frames_fails_naming_the_stage(make_config, tmp_path, stage_package):
    cfg, shot = setup_studio(make_config, tmp_path, [{"stage": "test-drop-one"}, {"stage": "hold"}])
    jq = open_queue(cfg)
    job = run_in_process(cfg, jq, submit_shot(cfg, jq, shot, "test", force=True))
    assert job.state is JobState.FAILED
    assert job.error == "stage test-drop-one (keys stage) must return the keys it was given: missing char 1001"


# -- pipelines of one, two and four stages ---------------------------------------------------------

@pytest.mark.parametrize("steps, published", [
    (["inbetween-blend"], []),
    (["color", "hold"], ["color"]),
    (["refine", "color", "light", "inbetween-blend"], ["refine", "color", "light"]),
])
def test_pipelines_of_one_two_and_four_stages(make_config, tmp_path, steps, published):
    stage_params = {"refine": {"method": "classical"}}
    cfg, shot = setup_studio(make_config, tmp_path, [{"stage": s, "params": stage_params.get(s, {})} for s in steps])
    assert cli.main(["--config", str(cfg.source), "run", str(shot)]) == 0
    v = shot / "quickart" / "v001"
    for folder in published:
        assert sorted(p.name for p in (v / folder).glob("*.png")) == [f"sh0010_char.{k}.png" for k in KEYS]
    frames = {f: read_png(v / "frames" / f"sh0010_char.{f}.png") for f in range(1001, 1011)}
    timing_ran = steps[-1] != "hold"
    # the in-between drawing 1003 is new when a timing stage generated it, held (= key 1001) otherwise
    assert np.array_equal(frames[1003], frames[1001]) != timing_ran
    assert np.array_equal(frames[1003], frames[1004]), "each drawing is held for its two frames"


# -- pipeline validation ---------------------------------------------------------------------------

def test_pipeline_validation_names_every_problem(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump({"name": "bad", "stages": [
        {"stage": "inbetween-blend"}, {"stage": "refine"}, {"stage": "sharpen"},
        {"stage": "hold", "input": "color"}]}))
    with pytest.raises(UnknownStage) as err:
        parse_pipeline(bad)
    text = str(err.value)
    assert f"{bad}: stages[1] (refine): a keys stage after the timing stage inbetween-blend" in text
    assert f"{bad}: stages[2]: unknown stage 'sharpen'" in text
    assert f"{bad}: stages[3] (hold): input 'color' is not written by an earlier step" in text


def test_a_step_reads_an_earlier_steps_output_by_name(tmp_path):
    ok = tmp_path / "ok.yaml"
    ok.write_text(yaml.safe_dump({"name": "ok", "stages": [
        {"stage": "refine"}, {"stage": "color"}, {"stage": "inbetween-blend", "input": "refine"}]}))
    assert [s.input for s in parse_pipeline(ok).steps] == [-1, 0, 0]
    twice = tmp_path / "twice.yaml"
    twice.write_text(yaml.safe_dump({"name": "t", "stages": [{"stage": "hold"}, {"stage": "inbetween-blend"}]}))
    with pytest.raises(PipelineError, match=r"stages\[1\] \(inbetween-blend\): a second timing stage after hold"):
        parse_pipeline(twice)


# -- stages from other packages --------------------------------------------------------------------

def test_a_broken_stage_package_is_named_and_does_not_hide_the_others(stage_package, tmp_path):
    from quickart_daemon import stages
    assert {"test-identity", "hold", "refine"} <= set(stages.available())
    assert "test-broken" not in stages.available()
    with pytest.raises(UnknownStage, match="test-broken.*installed, but quickart_test_stages_missing:SPEC failed "
                                           "to load: ModuleNotFoundError"):
        stages.get("test-broken")


def test_stages_from_a_test_do_not_stay_registered(tmp_path):
    """Runs after the tests above in this file: their package left sys.path, so its stages are gone."""
    from quickart_daemon import stages
    assert not any(name.startswith("test-") for name in stages.available())


def test_shot_and_pipeline_requirements_reach_the_job(make_config, tmp_path):
    cfg, shot = setup_studio(make_config, tmp_path, [{"stage": "hold"}])
    data = yaml.safe_load((tmp_path / "pipelines" / "p.yaml").read_text())
    (tmp_path / "pipelines" / "p.yaml").write_text(yaml.safe_dump({**data, "requires": "gpu"}))
    (shot / "shot.yaml").write_text(yaml.safe_dump({**yaml.safe_load((shot / "shot.yaml").read_text()),
                                                    "requires": ["group:lighting"]}))
    jq = open_queue(cfg)
    job = submit_shot(cfg, jq, shot, "watch")
    assert (job.requires_gpu, job.node_group) == (True, "lighting")
    assert jq.claim_next("n:1:cpu.0", "n", "cpu.0", groups=["lighting"]) is None  # no GPU slot
    assert jq.claim_next("n:1:gpu0", "n", "gpu0", gpu=True, groups=["lighting"]).id == job.id
    (shot / "shot.yaml").write_text("requires: [group:a, group:b]\n")
    with pytest.raises(PipelineError, match="two node groups"):
        submit_shot(cfg, jq, shot, "watch", force=True)
