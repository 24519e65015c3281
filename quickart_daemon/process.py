"""A worker process: one job, from lease to outcome.

`process_job` holds the lease (a heartbeat thread renews it and notices cancel requests),
runs the pipeline (`run.run_pipeline`), publishes (`publish.publish_version`) and records
the outcome. Every exception ends in a queue verb, so no job is ever left `running` by a
fault: bad input fails at once with its sentence; anything unexpected fails (retryable)
with its type and message on the job and the traceback in job.log. The daemon runs it in
a child process per slot (`run_in_child`); `quickart run` calls it in the foreground.
"""

from __future__ import annotations

import logging
import os
import platform
import signal
import threading
import time
import traceback
from dataclasses import dataclass
from pathlib import Path

from . import __version__
from .config import Config
from .errors import DropChanged, OutputError, QuickArtError, StageCrashed
from .logs import JobLog
from .outbox import put_for_job
from .outputs import CHECKPOINTS, INPUTS, keep_job_log, remove_staging, restore_work, retire_staging, staging_dir
from .pipeline import StageReport, load_pipeline, with_shot_params
from .publish import Provenance, Version, finish_interrupted_publish, publish_version
from .publish_locks import DatabasePublishLocks
from .jobs import DropInfo
from .queue import Job, JobQueue, JobState, LeaseLost
from .run import Checkpoints, read_inputs, run_pipeline
from .shot import OUTPUT_DIR, load_shot, shot_folder
from .snapshot import Snapshot, load_snapshot, take_snapshot

log = logging.getLogger(__name__)


class JobInterrupted(QuickArtError):
    """The job was stopped (cancel, daemon shutdown, or its lease was lost)."""


class WorkNotKept(QuickArtError):
    """A retry from a chosen stage found its earlier run's work files removed (never worth retrying)."""


class ShotGone(QuickArtError):
    """The job's shot folder is no longer there (renamed or moved while the job ran): nothing is written
    at its old path, and a retry cannot help (the folder under its new name makes its own job)."""

    def __init__(self, shot_dir: Path):
        super().__init__(f"the shot folder {shot_dir} is gone (renamed or moved while the job ran?); nothing was "
                         "written there, and the folder under its new name gets its own job")


def _check_shot_there(shot_dir: Path) -> None:
    """Before each write: a shot folder that went away is never re-created by writing into it."""
    if not shot_dir.is_dir():
        raise ShotGone(shot_dir)


class Controls:
    """Flags a running job watches: set by heartbeats (cancel, lease lost) or signals (shutdown)."""

    def __init__(self):
        self.cancel = threading.Event()
        self.shutdown = threading.Event()
        self.lease_lost = threading.Event()


class Heartbeat(threading.Thread):
    """Extends the job's lease and reports progress; notices cancel requests and a lost lease."""

    def __init__(self, jq: JobQueue, job: Job, owner: str, every: float, controls: Controls):
        super().__init__(name=f"heartbeat-{job.id}", daemon=True)
        self.jq, self.job, self.owner, self.every, self.controls = jq, job, owner, every, controls
        self.stage: str | None = None
        self.progress = 0.0
        self._halt = threading.Event()  # not _stop: Thread.join calls its own _stop()

    def run(self) -> None:
        while not self._halt.wait(self.every):
            self.beat()

    def beat(self) -> None:
        try:
            if self.jq.heartbeat(self.job.id, self.owner, stage=self.stage, progress=self.progress):
                self.controls.cancel.set()
        except LeaseLost:
            self.controls.lease_lost.set()
        except Exception as exc:  # a locked database must not kill the job; the next beat retries
            log.warning("action=heartbeat job=%s error=%s", self.job.id, exc)

    def stop(self) -> None:
        self._halt.set()


@dataclass
class _Attempt:
    """What the outcome handlers of `process_job` need to know of how far an attempt got."""

    shot_dir: Path
    staging: Path
    snapshot: Snapshot | None = None
    job_log: JobLog | None = None
    phase: str = "loading the shot"
    stage: str | None = None

    def shown(self, text: str) -> str:
        """Messages name the shot's own files, not their copies in the snapshot."""
        return text if self.snapshot is None else text.replace(str(self.snapshot.folder), str(self.shot_dir))


def process_job(cfg: Config, jq: JobQueue, job: Job, owner: str, device: str = "cpu",
                controls: Controls | None = None, on_progress=None, retry: bool = True) -> Job:
    """Run `job` to an outcome and record it; returns the job as recorded.

    `retry=False` (a person running the shot in the foreground) makes every failure final. A published
    version then goes in the tracker outbox (never failing the job; see outbox.py)."""
    outcome = _process_job(cfg, jq, job, owner, device, controls, on_progress, retry)
    put_for_job(cfg, jq, outcome)
    return outcome


def _process_job(cfg: Config, jq: JobQueue, job: Job, owner: str, device: str, controls: Controls | None,
                 on_progress, retry: bool) -> Job:
    controls = controls or Controls()
    started = time.monotonic()
    try:  # checked before anything on disk is touched (a shot folder linked out of the studio root)
        shot_dir = shot_folder(cfg, job.shot)
    except QuickArtError as exc:
        return jq.fail(job.id, owner, str(exc), retryable=False)
    hb = Heartbeat(jq, job, owner, cfg.queue.heartbeat_seconds, controls)
    hb.start()
    attempt = _Attempt(shot_dir, staging_dir(shot_dir / OUTPUT_DIR, job.id))
    try:
        version = _run_attempt(cfg, jq, job, owner, device, controls, hb, attempt, on_progress, started)
        hb.stop()
        retire_staging(attempt.staging, cfg.retry.keep_stage_outputs_of)  # the version took the rest
        note = [*version.warnings] if version.latest else [
            f"v{version.number:03d} is kept but not latest: v{version.latest_version:03d} was made from a newer drop"]
        finished = jq.finish(job.id, owner, version=version.number, output_path=str(version.path),
                             artifacts=version.artifacts, warnings=note)
        log.info("action=done job=%s shot=%s version=v%03d seconds=%.2f", job.id, job.shot, version.number,
                 time.monotonic() - started)
        return finished
    except JobInterrupted as exc:
        hb.stop()
        return _interrupted(cfg, jq, job, owner, controls, attempt.staging, exc)
    except DropChanged as exc:
        hb.stop()
        log.info("action=superseded job=%s shot=%s reason=%s", job.id, job.shot, exc)
        remove_staging(attempt.staging)
        return jq.superseded_while_running(job.id, owner, str(exc))
    except KeyboardInterrupt:  # Ctrl-C or SIGTERM in `quickart run`: never leave the job running
        hb.stop()
        if retry:
            _hand_back(jq, job, owner)
        else:  # the person who started it stopped it
            jq.stopped(job.id, owner)
            retire_staging(attempt.staging, cfg.retry.keep_stage_outputs_of)
        raise
    except Exception as exc:
        hb.stop()
        if not attempt.shot_dir.is_dir():  # whatever failed, this is why, and no retry can help
            exc = ShotGone(attempt.shot_dir)
        error, retryable = _describe(exc, attempt.phase)
        error = attempt.shown(error)
        if not isinstance(exc, (QuickArtError, OSError)) or isinstance(exc, StageCrashed):
            trace = "".join(traceback.format_exception(exc))
            log.error("action=unexpected job=%s while=%r\n%s", job.id, attempt.phase, trace)
            if attempt.job_log is not None:
                attempt.job_log.write(trace)
        if attempt.job_log is not None:
            attempt.job_log.footer(f"failed: {error}", started)
            attempt.job_log.close()
        return _failed(cfg, jq, job, owner, error, retryable and retry, attempt.stage, attempt.staging)
    finally:
        hb.stop()
        if attempt.job_log is not None:
            attempt.job_log.close()


def _run_attempt(cfg: Config, jq: JobQueue, job: Job, owner: str, device: str, controls: Controls, hb: Heartbeat,
                 attempt: _Attempt, on_progress, started: float) -> Version:
    """Read the shot (from the job's snapshot), run the pipeline from its last checkpoint, publish."""
    drop = jq.drop(job.drop_id) if job.drop_id is not None else None
    # one version per run of a job: a resumed attempt that finds its own version finishes that publish
    series = f"job {job.id} generation {job.generation} created {job.created_at.isoformat()}"
    attempt.phase = "publishing"
    published = finish_interrupted_publish(job.shot, attempt.staging.parent, series, drop, naming=cfg.naming_rules,
                                           studio_root=cfg.root, locks=DatabasePublishLocks.of_job(jq.db, job))
    if published is not None:
        log.info("action=publish_finished job=%s shot=%s version=v%03d", job.id, job.shot, published.number)
        return published
    attempt.phase = "loading the shot"
    attempt.snapshot, fresh = _snapshot(cfg, job, attempt, drop)
    shot = load_shot(attempt.shot_dir, cfg, inputs=attempt.snapshot.folder)  # limits checked before any stage loads
    pipeline = with_shot_params(load_pipeline(job.pipeline, [cfg.pipelines_dir]), shot.settings.stages,
                                attempt.shot_dir / "shot.yaml")
    if fresh and (attempt.snapshot.skipped or shot.problems):
        jq.warn(job.id, owner, [*attempt.snapshot.skipped, *(attempt.shown(p) for p in shot.problems)])
    checkpoints = Checkpoints(attempt.staging / CHECKPOINTS, cfg.max_image_pixels)
    done = {i: StageReport(i, r.name, r.seconds, r.report, checkpoints.folder(i, r.name))
            for i, r in jq.done_stages(job.id).items()}
    attempt.job_log = JobLog(attempt.staging / "job.log")
    attempt.job_log.open(_log_header(cfg, job, pipeline, device, shot))
    log.info("action=start job=%s shot=%s pipeline=%s device=%s", job.id, job.shot, pipeline.name, device)

    def before_stage(stage: str) -> None:
        attempt.phase, attempt.stage = f"stage {stage}", stage
        if controls.cancel.is_set() or controls.shutdown.is_set() or controls.lease_lost.is_set():
            raise JobInterrupted(f"stopped before stage {stage}")
        _check_shot_there(attempt.shot_dir)
        hb.stage = stage
        hb.beat()

    def progress(stage: str, fraction: float) -> None:
        hb.progress = fraction
        if on_progress:
            on_progress(stage, fraction)
        if controls.cancel.is_set() or controls.lease_lost.is_set():
            raise JobInterrupted(f"stopped during stage {stage}")

    def record(report: StageReport) -> None:
        jq.checkpoint(job.id, owner, index=report.index, name=report.stage, seconds=report.seconds,
                      checkpoint=str(report.checkpoint), report=report.report,
                      progress=(report.index + 1) / len(pipeline.steps))

    drawings, reports = run_pipeline(
        read_inputs(shot, cfg.max_image_pixels), shot, pipeline, checkpoints, done=done, device=device,
        models_dir=cfg.models_dir, before_stage=before_stage, progress=progress, on_stage_done=record)
    attempt.phase, attempt.stage = "publishing", None
    _check_shot_there(attempt.shot_dir)
    attempt.job_log.close()  # the log travels into the version, whose footer is its last line: nothing may follow
    made_by = Provenance(job.id, cfg.node, device, started, attempt.snapshot.manifest_inputs(), drop, series)
    return publish_version(shot, pipeline, drawings, reports, staging=attempt.staging, naming=cfg.naming_rules,
                           studio_root=cfg.root, made_by=made_by, locks=DatabasePublishLocks.of_job(jq.db, job),
                           make_movie=cfg.tracker is not None and cfg.tracker.movie)


def _snapshot(cfg: Config, job: Job, attempt: _Attempt, drop: DropInfo | None) -> tuple[Snapshot, bool]:
    """The job's snapshot of its inputs, and whether it was taken now (else resumed from an earlier attempt,
    or carried over by a retry from a chosen stage)."""
    # this job's attempt series: a manual retry starts a new one (a retry from a chosen stage goes on
    # with the snapshot of the run it carries steps over from), and a folder left by a job of another
    # database (same id, other creation time) is not this job's
    generation = job.generation if job.inputs_generation is None else job.inputs_generation
    series = f"job {job.id} generation {generation} created {job.created_at.isoformat()}"
    snapshot = load_snapshot(attempt.staging / INPUTS)
    if snapshot is not None and snapshot.owner == series:
        return snapshot, False
    if job.inputs_generation is not None:  # a retry from a chosen stage: its run's work was set aside
        snapshot = load_snapshot(attempt.staging / INPUTS) if restore_work(attempt.staging) else None
        if snapshot is None or snapshot.owner != series:
            raise WorkNotKept(f"job {job.id}'s input snapshot and stage outputs are no longer kept "
                              "(retry.keep_stage_outputs_of); retry it from the start")
        return snapshot, False
    remove_staging(attempt.staging)  # nothing to resume from: start clean
    _check_shot_there(attempt.shot_dir)
    attempt.staging.parent.mkdir(exist_ok=True)  # the shot's output folder, never the shot folder itself
    attempt.staging.mkdir()
    # the first attempt reads exactly its drop; a manual retry (generation > 0) the files as they are now
    expected = drop.signature if drop is not None and job.generation == 0 else None
    return take_snapshot(attempt.shot_dir, cfg, attempt.staging / INPUTS, series, expected), True


def _describe(exc: BaseException, phase: str) -> tuple[str, bool]:
    """(the sentence recorded on the job, whether a retry may help) for any exception."""
    if isinstance(exc, QuickArtError):
        text = str(exc)
        where = f"{phase}: " if phase.startswith("stage ") and not text.startswith("stage ") else ""
        return where + text, exc.retryable
    if isinstance(exc, OSError):  # a file system fault outside the image/JSON writers (mkdir, copy, rename)
        text = f"{exc.filename}: {exc.strerror}" if exc.filename and exc.strerror else str(exc)
        return f"{phase}: {text}", OutputError.retryable
    return f"unexpected error while {phase}: {type(exc).__name__}: {exc} (traceback in job.log)", True


def _failed(cfg: Config, jq: JobQueue, job: Job, owner: str, error: str, retryable: bool, stage: str | None,
            staging: Path | None) -> Job:
    """Record a failure; a job that failed for good keeps its log and its work (for a retry from a
    stage) and gives its staging space back."""
    final = not retryable or job.attempts >= job.max_attempts
    kept = keep_job_log(staging, job.id) if final and staging is not None else None
    try:
        failed = jq.fail(job.id, owner, error, retryable=retryable, stage=stage,
                         artifacts={"log": str(kept)} if kept else None)
    except LeaseLost:
        log.warning("action=lease_lost job=%s shot=%s error=%s", job.id, job.shot, error)
        return jq.get(job.id)
    log.error("action=failed job=%s shot=%s state=%s error=%s", job.id, job.shot, failed.state.value, error)
    if failed.state is JobState.FAILED and staging is not None:
        retire_staging(staging, cfg.retry.keep_stage_outputs_of)  # no resume will follow
    return failed


def _interrupted(cfg: Config, jq: JobQueue, job: Job, owner: str, controls: Controls, staging: Path,
                 exc: JobInterrupted) -> Job:
    if controls.lease_lost.is_set():
        log.warning("action=lease_lost job=%s shot=%s", job.id, job.shot)
        return jq.get(job.id)
    if controls.cancel.is_set():
        log.info("action=cancelled job=%s shot=%s", job.id, job.shot)
        retire_staging(staging, cfg.retry.keep_stage_outputs_of)
        return jq.stopped(job.id, owner)
    log.info("action=released job=%s shot=%s reason=%s", job.id, job.shot, exc)
    return jq.release(job.id, owner)


def _hand_back(jq: JobQueue, job: Job, owner: str) -> None:
    try:
        jq.release(job.id, owner)
    except QuickArtError as exc:
        log.warning("action=release job=%s error=%s", job.id, exc)


def _log_header(cfg: Config, job: Job, pipeline, device: str, shot) -> str:
    return (f"=== job {job.id} attempt {job.attempts}  {shot.id}  pipeline {pipeline.name}\n"
            f"node {cfg.node}  device {device}  CUDA_VISIBLE_DEVICES={os.environ.get('CUDA_VISIBLE_DEVICES', '')!r}"
            f"  quickart {__version__}  python {platform.python_version()}\n"
            f"inputs: {len(shot.files)} files; steps: {' -> '.join(s.spec.name for s in pipeline.steps)}")


# -- the worker process ------------------------------------------------------------------------

def _set_parent_death_signal() -> None:
    """Ask Linux to SIGKILL this worker if the daemon dies (kill -9), so no orphan keeps a lease."""
    try:
        import ctypes
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except OSError:
        pass


def run_in_child(job_id: int, owner: str, config_path: str, slot_env: dict[str, str], device: str) -> None:
    """Entry point of a worker process (multiprocessing, spawn)."""
    _set_parent_death_signal()
    os.environ.update(slot_env)
    from .config import load_config
    from .logs import setup_logging
    from .queue import open_queue

    cfg = load_config(config_path)
    setup_logging(cfg.log_level)
    jq = open_queue(cfg, migrate=False)
    controls = Controls()
    # SIGTERM from the daemon: finish the running stage, checkpoint it, hand the job back
    signal.signal(signal.SIGTERM, lambda *_: controls.shutdown.set())
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        process_job(cfg, jq, jq.get(job_id), owner, device, controls)
    except Exception as exc:  # the outcome could not be recorded (the database is gone): one line, not a traceback
        log.error("action=worker_error job=%s cannot record the job's outcome: %s: %s", job_id,
                  type(exc).__name__, str(exc).splitlines()[0] if str(exc) else "")
        raise SystemExit(1) from None
