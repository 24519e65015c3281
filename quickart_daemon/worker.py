"""Running one job: stage by stage, a checkpoint after each, then one atomic publish.

`execute_job` is the same code for the daemon's worker processes (`run_in_child`)
and for `quickart run` in the foreground. A resumed job (its worker died, or the
daemon was stopped) skips every stage checkpointed in its current generation and
loads the last one's frames from disk.
"""

from __future__ import annotations

import logging
import os
import platform
import re
import resource
import shutil
import signal
import sys
import threading
import time
import traceback
from pathlib import Path

import numpy as np

from . import __version__
from .config import Config
from .contact import Tile, write_contact_sheet
from .editorial import Sequence, update_sequence_timeline, version_timeline, write_timeline
from .errors import OutputError, QuickArtError, StageFailed
from .images import composite_over, read_png, write_png
from .naming import NAME_PATTERN, parse_folder_frame
from .outputs import (expand_to_frames, job_tmp_dir, publish, remove_tmp, sha256_file, stage_checkpoint_dir,
                      write_json)
from .pipeline import Pipeline, load_pipeline
from .queue import Job, JobQueue, LeaseLost
from .shot import ShotInputs, load_shot
from .stages.base import Frames, StageContext

log = logging.getLogger(__name__)


class JobInterrupted(QuickArtError):
    """The job was stopped between stages (cancel or daemon shutdown)."""


class Controls:
    """Flags a running job watches: set by heartbeats (cancel) or signals (shutdown)."""

    def __init__(self):
        self.cancel = threading.Event()
        self.shutdown = threading.Event()
        self.lease_lost = threading.Event()


class _Heartbeat(threading.Thread):
    """Extends the job's lease and reports progress; notices cancel requests."""

    def __init__(self, jq: JobQueue, job: Job, owner: str, every: float, controls: Controls):
        super().__init__(name=f"heartbeat-{job.id}", daemon=True)
        self.jq, self.job, self.owner, self.every, self.controls = jq, job, owner, every, controls
        self.stage: str | None = None
        self.progress = 0.0
        self._stop = threading.Event()

    def run(self) -> None:
        while not self._stop.wait(self.every):
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
        self._stop.set()


def _write_frames(folder: Path, frames: Frames, shot: ShotInputs, naming, compression: int = 1,
                  variants: dict[str, Frames] | None = None) -> None:
    """Write frames (and named variants in subfolders) into a hidden partial folder, then
    rename it into place. A frame that is the same array as one already written (a held
    drawing) becomes a hard link."""
    partial = folder.with_name(f".{folder.name}.partial")
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    written: dict[int, Path] = {}
    for sub, table in [("", frames), *sorted((variants or {}).items())]:
        if sub and not re.fullmatch(NAME_PATTERN, sub):
            raise StageFailed(f"variant name {sub!r} must match {NAME_PATTERN}")
        (partial / sub).mkdir(exist_ok=True)
        for (layer, frame), img in table.items():
            path = partial / sub / naming.format_output_name(shot.id.shot, layer, frame)
            if id(img) in written:
                _link_or_copy(written[id(img)], path)
            else:
                write_png(path, img, compression)
                written[id(img)] = path
    shutil.rmtree(folder, ignore_errors=True)
    os.rename(partial, folder)


def _read_frames(folder: Path, shot: ShotInputs, naming) -> Frames:
    frames: Frames = {}
    for path in sorted(folder.glob("*.png")):
        name = naming.parse_key_name(path.name, shot.id.shot)
        if name is None:
            raise StageFailed(f"checkpoint {folder}: unexpected file {path.name}")
        frames[(name.layer, name.frame)] = read_png(path)
    return frames


def _read_inputs(table: dict[str, dict[int, Path]], max_pixels: int) -> Frames:
    return {(layer, frame): read_png(path, max_pixels) for layer, fr in table.items() for frame, path in fr.items()}


def execute_job(cfg: Config, jq: JobQueue, job: Job, owner: str, device: str = "cpu",
                controls: Controls | None = None, on_progress=None) -> Job:
    """Run `job` to the end; records the outcome on the job and returns it."""
    controls = controls or Controls()
    started = time.monotonic()
    hb = _Heartbeat(jq, job, owner, cfg.queue.heartbeat_seconds, controls)
    hb.start()
    stage_name = None
    tmp: Path | None = None
    job_log: logging.Handler | None = None
    try:
        shot = load_shot(Path(job.shot_path), cfg)
        pipeline = load_pipeline(job.pipeline, [cfg.pipelines_dir])
        naming = cfg.naming_rules
        tmp = job_tmp_dir(shot.output_dir, job.id)
        done = jq.done_stages(job.id)
        first = 0
        while first in done and stage_checkpoint_dir(tmp, first, done[first].name).is_dir():
            first += 1
        if first == 0:
            remove_tmp(tmp)  # nothing to resume from (or a manual retry): start clean
        tmp.mkdir(parents=True, exist_ok=True)
        job_log = _open_job_log(tmp / "job.log", cfg, job, pipeline, device, shot)
        log.info("action=start job=%s shot=%s pipeline=%s device=%s resume_at=%s", job.id, job.shot,
                 pipeline.name, device, first)

        if first == 0:
            frames = _read_inputs(shot.keys, cfg.max_image_pixels)
        else:
            prev = pipeline.steps[first - 1].spec.name
            frames = _read_frames(stage_checkpoint_dir(tmp, first - 1, prev), shot, naming)
        refs = _read_inputs(shot.refs, cfg.max_image_pixels)
        hints = _read_inputs(shot.hints, cfg.max_image_pixels)
        n = len(pipeline.steps)
        for i in range(first, n):
            step = pipeline.steps[i]
            stage_name = step.spec.name
            if controls.cancel.is_set() or controls.shutdown.is_set() or controls.lease_lost.is_set():
                raise JobInterrupted(f"stopped before stage {stage_name}")
            hb.stage, hb.progress = stage_name, i / n
            hb.beat()

            def progress(done_: int, total: int, i=i) -> None:
                hb.progress = (i + done_ / max(total, 1)) / n
                if on_progress:
                    on_progress(stage_name, hb.progress)
                if controls.cancel.is_set() or controls.lease_lost.is_set():
                    raise JobInterrupted(f"stopped during stage {stage_name}")

            params = {**step.params, **shot.settings.stages.get(stage_name, {})}
            ctx = StageContext(schedule=shot.schedule, params=params,
                               shot_settings=shot.settings.model_dump(), refs=refs, hints=hints,
                               palette_path=shot.palette, device=device, models_dir=cfg.models_dir,
                               scratch_dir=tmp, progress=progress,
                               log=logging.getLogger(f"quickart.stage.{stage_name}"))
            t0 = time.monotonic()
            try:
                result = step.spec.run(frames, ctx)
            except QuickArtError:
                raise
            except MemoryError:
                raise StageFailed(f"stage {stage_name} ran out of memory") from None
            except Exception as exc:
                log.error("action=stage_crash job=%s stage=%s\n%s", job.id, stage_name, traceback.format_exc())
                err = StageFailed(f"stage {stage_name} crashed: {type(exc).__name__}: {exc}")
                err.retryable = True
                raise err from None
            seconds = time.monotonic() - t0
            frames = result.frames
            folder = stage_checkpoint_dir(tmp, i, stage_name)
            _write_frames(folder, frames, shot, naming, variants=result.variants)
            jq.checkpoint(job.id, owner, index=i, name=stage_name, seconds=seconds, checkpoint=str(folder),
                          report=_jsonable(result.report), progress=(i + 1) / n)
            log.info("action=stage_done job=%s shot=%s stage=%s seconds=%.2f frames=%d", job.id, job.shot,
                     stage_name, seconds, len(frames))
            if on_progress:
                on_progress(stage_name, (i + 1) / n)
        stage_name = None
        version, final, artifacts = _finalize(cfg, jq, job, shot, pipeline, tmp, frames, device, started)
        _close_job_log(job_log)  # its footer was the last line written before the publish
        job_log = None
        hb.stop()
        finished = jq.finish(job.id, owner, version=version, output_path=str(final), artifacts=artifacts)
        log.info("action=done job=%s shot=%s version=v%03d seconds=%.2f", job.id, job.shot, version,
                 time.monotonic() - started)
        return finished
    except JobInterrupted as exc:
        hb.stop()
        if controls.lease_lost.is_set():
            log.warning("action=lease_lost job=%s shot=%s", job.id, job.shot)
            return jq.get(job.id)
        if controls.cancel.is_set():
            log.info("action=cancelled job=%s shot=%s", job.id, job.shot)
            _discard(tmp)
            return jq.stopped(job.id, owner)
        log.info("action=released job=%s shot=%s reason=%s", job.id, job.shot, exc)
        return jq.release(job.id, owner)
    except (QuickArtError, OSError) as exc:
        hb.stop()
        if isinstance(exc, OSError):  # a file system fault outside the image/JSON writers (mkdir, copy, rename)
            exc = OutputError(f"{exc.filename}: {exc.strerror}" if exc.filename and exc.strerror else str(exc))
        where = f"stage {stage_name}: " if stage_name and not str(exc).startswith("stage ") else ""
        failed = jq.fail(job.id, owner, f"{where}{exc}", retryable=exc.retryable, stage=stage_name)
        log.error("action=failed job=%s shot=%s state=%s error=%s", job.id, job.shot, failed.state.value, exc)
        if failed.state.value == "failed":
            _discard(tmp)  # no resume will follow (a manual retry starts afresh): give the space back
        return failed
    finally:
        hb.stop()
        _close_job_log(job_log)


def _open_job_log(path: Path, cfg: Config, job: Job, pipeline: Pipeline, device: str,
                  shot: ShotInputs) -> logging.Handler:
    """The job's own log (it travels into the version folder): a header saying what ran where,
    then every log line of this job's stages; `_job_log_footer` closes it."""
    with open(path, "a", encoding="utf-8") as fh:
        fh.write(f"=== job {job.id} attempt {job.attempts}  {shot.id}  pipeline {pipeline.name}\n"
                 f"node {cfg.node}  device {device}  CUDA_VISIBLE_DEVICES={os.environ.get('CUDA_VISIBLE_DEVICES', '')!r}"
                 f"  quickart {__version__}  python {platform.python_version()}\n"
                 f"inputs: {len(shot.files)} files; steps: {' -> '.join(s.spec.name for s in pipeline.steps)}\n")
    handler = logging.FileHandler(path, encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s %(message)s"))
    handler.setLevel(logging.INFO)
    for name in ("quickart", "quickart_daemon"):
        logging.getLogger(name).addHandler(handler)
        if logging.getLogger(name).level == logging.NOTSET:
            logging.getLogger(name).setLevel(logging.INFO)
    return handler


def _job_log_footer(path: Path, status: str, started: float) -> None:
    peak_vram = ""
    torch = sys.modules.get("torch")  # only report VRAM when a stage actually used torch
    if torch is not None and torch.cuda.is_available():
        peak_vram = f"  peak VRAM {torch.cuda.max_memory_allocated() / 2**20:.0f} MiB"
    with open(path, "a", encoding="utf-8") as fh:
        fh.write(f"=== {status} after {time.monotonic() - started:.2f} s  peak RSS "
                 f"{resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB{peak_vram}\n")


def _close_job_log(handler: logging.Handler | None) -> None:
    if handler is None:
        return
    for name in ("quickart", "quickart_daemon"):
        logging.getLogger(name).removeHandler(handler)
    handler.close()


def _discard(tmp: Path | None) -> None:
    if tmp is not None:
        remove_tmp(tmp)


def _jsonable(value):
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, (np.integer, np.floating)):
        return value.item()
    return value if isinstance(value, (str, int, float, bool)) or value is None else str(value)


def _finalize(cfg: Config, jq: JobQueue, job: Job, shot: ShotInputs, pipeline: Pipeline, tmp: Path,
              drawings: Frames, device: str, started: float):
    naming = cfg.naming_rules
    runs = jq.done_stages(job.id)
    # published stage folders (refine/, color/, light/) are hard links to the checkpoints
    for i, step in enumerate(pipeline.steps):
        if step.spec.publish_folder:
            dest = tmp / step.spec.publish_folder
            shutil.rmtree(dest, ignore_errors=True)
            shutil.copytree(stage_checkpoint_dir(tmp, i, step.spec.name), dest, copy_function=_link_or_copy)
    layers = [l for l in shot.layer_order if any(k[0] == l for k in drawings)]
    every = expand_to_frames(drawings, shot.schedule, layers)
    first, last = shot.schedule.frame_range()
    _write_frames(tmp / "frames", every, shot, naming)
    comp_dir = tmp / "comp"
    comp_dir.mkdir(exist_ok=True)
    done: dict[tuple, Path] = {}  # frames showing the same drawings share one composite
    for frame in range(first, last + 1):
        path = comp_dir / naming.format_comp_name(shot.id.shot, frame)
        shown = tuple(shot.schedule.shown(layer, frame) for layer in layers)
        if shown in done:
            _link_or_copy(done[shown], path)
            continue
        img = None
        for layer in layers:
            img = every[(layer, frame)] if img is None else composite_over(img, every[(layer, frame)])
        write_png(path, img, 1)
        done[shown] = path

    timing_stage = next((s.spec.name for s in pipeline.steps if s.spec.kind == "timing"), "keys")
    tiles = []
    for layer in layers:
        keys = set(shot.keys.get(layer, {}))
        for drawing in shot.schedule.drawings(layer):
            kind = "key" if drawing in keys else "inbetween"
            tiles.append(Tile(drawings[(layer, drawing)], drawing, kind, timing_stage if kind != "key" else "key", layer))

    inputs = [{"path": str(p.relative_to(shot.dir)), "sha256": sha256_file(p), "bytes": p.stat().st_size}
              for p in shot.files]
    stage_reports = [{"index": i, "stage": r.name, "seconds": round(r.seconds, 3), "report": r.report}
                     for i, r in sorted(runs.items())]
    models = {k: v for r in runs.values() for k, v in (r.report.get("models") or {}).items()}
    key_frames = sorted({f for fr in shot.keys.values() for f in fr})
    output_dir = shot.output_dir
    pad = naming.frame_padding

    def sequences(final: Path) -> list[Sequence]:
        """The comp, then the layers top to bottom, as they lie in the version folder `final`."""
        prefix, suffix = naming.output_prefix_suffix(shot.id.shot, None)
        out = [Sequence("comp", final / "comp", prefix, suffix, first, last, pad)]
        for layer in reversed(layers):
            prefix, suffix = naming.output_prefix_suffix(shot.id.shot, layer)
            out.append(Sequence(layer, final / "frames", prefix, suffix, first, last, pad))
        return out

    def metadata(version: int) -> dict:
        return {"job_id": job.id, "pipeline": pipeline.name, "version": version, "shot": str(shot.id),
                "node": cfg.node}

    def finalize(version: int, folder: Path) -> None:
        # runs under the version lock, once the number is known: these files name their version
        final = output_dir / f"v{version:03d}"
        write_contact_sheet(folder / "contact.png", tiles,
                            f"{shot.id}  v{version:03d}  job {job.id}  pipeline {pipeline.name}")
        tl = version_timeline(shot.id, version, shot.fps, sequences(final), key_frames, metadata(version))
        write_timeline(tl, folder / f"{shot.id.shot}_v{version:03d}.otio")
        write_json(folder / "manifest.json", {
            "quickart": __version__, "job_id": job.id, "shot": str(shot.id), "version": version,
            "node": cfg.node, "device": device, "python": platform.python_version(),
            "pipeline": {"name": pipeline.name, "file": str(pipeline.path), "steps": pipeline.describe(),
                         "notes": list(pipeline.notes)},
            "timing": {"source": shot.schedule.source, "timing": shot.timing, "fps": shot.fps,
                       "frame_range": [first, last], "layers": layers},
            "inputs": inputs, "models": models, "stages": stage_reports,
            "seconds_total": round(time.monotonic() - started, 3),
            "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
            "problems": shot.problems,
        })
        _job_log_footer(folder / "job.log", f"done: v{version:03d}", started)

    version, final = publish(tmp, output_dir, finalize)
    seq_otio = cfg.root / shot.id.show / "editorial" / f"{shot.id.seq}.otio"
    update_sequence_timeline(seq_otio, shot.id, version, shot.fps, sequences(final)[0], metadata(version))
    artifacts = {"version": str(final), "otio": str(final / f"{shot.id.shot}_v{version:03d}.otio"),
                 "contact": str(final / "contact.png"), "manifest": str(final / "manifest.json"),
                 "sequence_otio": str(seq_otio)}
    return version, final, artifacts


def _link_or_copy(src, dst):
    try:
        os.link(src, dst)
    except OSError:
        shutil.copy2(src, dst)


# -- folder mode: `quickart stage NAME --in DIR --out DIR` --------------------------------------

def read_folder(folder: Path, max_pixels: int) -> tuple[Frames, dict[str, int]]:
    """Frames of a plain folder named `{anything}.{frame}.png`; the stem is the layer.
    Returns the frames and the frame-number padding seen per stem."""
    frames: Frames = {}
    padding: dict[str, int] = {}
    if not folder.is_dir():
        raise QuickArtError(f"{folder}: no such folder")
    for path in sorted(folder.iterdir()):
        parsed = parse_folder_frame(path.name)
        if parsed is None or path.name.startswith("."):
            continue
        stem, frame = parsed
        frames[(stem, frame)] = read_png(path, max_pixels)
        padding[stem] = len(path.name[len(stem) + 1:-4])
    return frames, padding


def write_folder(folder: Path, frames: Frames, padding: dict[str, int],
                 variants: dict[str, Frames] | None = None) -> None:
    """Frames as `{stem}.{frame}.png` (the input's padding); variants in `{folder}/{name}/`."""
    for sub, table in [("", frames), *sorted((variants or {}).items())]:
        (folder / sub).mkdir(parents=True, exist_ok=True)
        for (stem, frame), img in sorted(table.items()):
            write_png(folder / sub / f"{stem}.{frame:0{padding.get(stem, 4)}d}.png", img)


# -- worker processes -----------------------------------------------------------------------------

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
    from .daemon import setup_logging
    from .queue import open_queue

    cfg = load_config(config_path)
    setup_logging(cfg.log_level)
    jq = open_queue(cfg, migrate=False)
    controls = Controls()
    # SIGTERM from the daemon: finish the running stage, checkpoint it, hand the job back
    signal.signal(signal.SIGTERM, lambda *_: controls.shutdown.set())
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    execute_job(cfg, jq, jq.get(job_id), owner, device, controls)
