"""Running a finished job again: from its first stage, or from a chosen one.

A retry from a chosen stage (say `light`, after its palette was fixed) reruns that stage and the
ones after it, and carries over the steps before it from the job's last run: their records in
the queue (`JobQueue.retry(from_step=)`) and their outputs, kept on disk with the job's input
snapshot when the job ended (`outputs.kept_work`, the last `retry.keep_stage_outputs_of` jobs
of each shot). The pipeline is read as it is now, so a changed stage runs with its new settings;
a step whose stage changed since is never carried over (`run.resume_point`).
"""

from __future__ import annotations

from .config import Config
from .errors import QuickArtError
from .jobs import Job
from .outputs import INPUTS, kept_work, staging_dir
from .pipeline import load_pipeline
from .shot import OUTPUT_DIR, shot_folder


def retry_points(cfg: Config, job: Job, stage_runs: list[dict], pipelines: dict | None = None) -> list[str]:
    """The stages of the job's pipeline it can start again at, in order: the first, and each one whose
    earlier steps all finished in its last run under the stages the pipeline now has there, while
    that run's work is still kept. (`stage_runs`: `db.reads.stage_runs` of the job; `pipelines`:
    a dict that keeps each pipeline's steps over the jobs of one page, so each file is read once.)"""
    pipelines = {} if pipelines is None else pipelines
    if job.pipeline not in pipelines:
        try:
            pipelines[job.pipeline] = pipeline_steps(cfg, job.pipeline)
        except QuickArtError:
            pipelines[job.pipeline] = None  # gone or broken: a retry would fail with that sentence
    steps = pipelines[job.pipeline]
    return [] if steps is None else _points(steps, job, stage_runs, _work_kept(cfg, job))


def _points(steps: list[str], job: Job, stage_runs: list[dict], work_kept: bool) -> list[str]:
    if not work_kept:
        return steps[:1]
    done = {r["index"]: r["stage"] for r in stage_runs if r["generation"] == job.generation and r["state"] == "done"}
    points = steps[:1]
    for index, name in enumerate(steps[1:], start=1):
        if done.get(index - 1) != steps[index - 1]:
            break
        points.append(name)
    return points


def retry_job(cfg: Config, jq, job_id: int, from_stage: str | None = None) -> Job:
    """Queue a finished job again, from its first stage or from the stage named `from_stage` (a name
    of its pipeline, or a step number counted from 1 where a pipeline runs one stage twice)."""
    if not from_stage:
        return jq.retry(job_id)
    job = jq.get(job_id)
    steps = pipeline_steps(cfg, job.pipeline)
    index = _step_index(job, steps, from_stage)
    if index == 0:
        return jq.retry(job_id)
    work_kept = _work_kept(cfg, job)
    points = _points(steps, job, jq.stage_runs(job_id), work_kept)
    if index >= len(points):
        why = ("its input snapshot and stage outputs are no longer kept (retry.keep_stage_outputs_of)"
               if not work_kept else "the steps before it did not all finish in its last run")
        can = f"it can start again at {', '.join(points)}" if len(points) > 1 else "retry it from the start"
        raise QuickArtError(f"job {job_id} cannot start again at {steps[index]}: {why}; {can}")
    return jq.retry(job_id, from_step=index)


def pipeline_steps(cfg: Config, pipeline: str) -> list[str]:
    """The stage of each step of a pipeline as its file says now."""
    return [step.spec.name for step in load_pipeline(pipeline, [cfg.pipelines_dir]).steps]


def _step_index(job: Job, steps: list[str], wanted: str) -> int:
    if wanted.isascii() and wanted.isdigit() and 1 <= int(wanted) <= len(steps):
        return int(wanted) - 1
    if steps.count(wanted) == 1:
        return steps.index(wanted)
    if wanted in steps:
        raise QuickArtError(f"pipeline {job.pipeline} runs {wanted} more than once; name the step by its "
                            f"number (1-{len(steps)})")
    raise QuickArtError(f"job {job.id}'s pipeline {job.pipeline} has no stage {wanted!r}; its stages: "
                        + ", ".join(steps))


def _work_kept(cfg: Config, job: Job) -> bool:
    """Whether the job's last run left what a retry from a stage starts from: its snapshot, set aside
    when it ended, or still in its staging folder (a job cancelled while it waited for a retry).
    Only looks (the folder is this node's, inside its studio root): nothing is moved here."""
    staging = staging_dir(shot_folder(cfg, job.shot) / OUTPUT_DIR, job.id)
    return (kept_work(staging) / INPUTS).is_dir() or (staging / INPUTS).is_dir()
