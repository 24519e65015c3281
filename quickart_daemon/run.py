"""Running a pipeline on a shot's drawings: stage by stage, a checkpoint after each.

`run_pipeline` knows nothing of the database or of publishing: it takes the inputs, the
shot and the pipeline, runs the steps not yet checkpointed, checks each stage's result
against its kind, saves it through `Checkpoints`, and hands back the final drawings and
one `StageReport` per step. Its caller (the worker process) records the reports.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from . import folders
from .errors import QuickArtError, StageCrashed, StageFailed
from .images import read_png
from .pipeline import Pipeline, StageReport, Step
from .shot import ShotInputs
from .stages.base import Frames, StageContext, StageResult

log = logging.getLogger(__name__)


@dataclass
class Inputs:
    """Every picture a job reads from the shot folder, decoded once."""

    keys: Frames
    refs: Frames = field(default_factory=dict)
    hints: Frames = field(default_factory=dict)


def read_inputs(shot: ShotInputs, max_pixels: int) -> Inputs:
    def read(table: dict[str, dict[int, Path]]) -> Frames:
        return {(layer, frame): read_png(path, max_pixels) for layer, fr in table.items() for frame, path in fr.items()}
    return Inputs(read(shot.keys), read(shot.refs), read(shot.hints))


class Checkpoints:
    """A job's stage outputs on disk: ``{root}/NN-stage/``, one folder per finished step, written
    and read through `folders` with its one naming rule. A folder exists only when complete."""

    def __init__(self, root: Path, max_pixels: int):
        self.root = root
        self.max_pixels = max_pixels

    def folder(self, index: int, stage: str) -> Path:
        return self.root / f"{index:02d}-{stage}"

    def has(self, index: int, stage: str) -> bool:
        return self.folder(index, stage).is_dir()

    def save(self, index: int, stage: str, result: StageResult) -> Path:
        folder = self.folder(index, stage)
        folder.parent.mkdir(exist_ok=True)  # never re-create a staging folder that moved away with its shot
        folders.write_folder_atomically(folder, result.frames, result.variants)
        return folder

    def load(self, index: int, stage: str) -> Frames:
        folder = self.folder(index, stage)
        if not folder.is_dir():
            raise StageFailed(f"the checkpoint of stage {stage} ({folder}) is missing; retry the job to start afresh")
        return folders.read_frames(folder, self.max_pixels)[0]


def resume_point(pipeline: Pipeline, done: dict[int, StageReport], checkpoints: Checkpoints) -> int:
    """How many leading steps can be skipped: each was recorded under the stage this pipeline now
    runs at that index, and its checkpoint is on disk. A renamed or reordered step starts over there."""
    first = 0
    for i, step in enumerate(pipeline.steps):
        record = done.get(i)
        if record is None or record.stage != step.spec.name or not checkpoints.has(i, step.spec.name):
            break
        first = i + 1
    return first


def run_pipeline(inputs: Inputs, shot: ShotInputs, pipeline: Pipeline, checkpoints: Checkpoints, *,
                 done: dict[int, StageReport] | None = None, device: str = "cpu", models_dir: Path = Path("models"),
                 before_stage: Callable[[str], None] = lambda stage: None,
                 progress: Callable[[str, float], None] = lambda stage, fraction: None,
                 on_stage_done: Callable[[StageReport], None] = lambda report: None,
                 ) -> tuple[Frames, list[StageReport]]:
    """Run the steps after the last usable checkpoint; returns the final drawings and every step's report.

    `before_stage(stage)` runs before each stage and `progress(stage, fraction of the whole
    pipeline)` often during one; either may raise to stop the job (the worker process does:
    on shutdown between stages, on cancel at any time). `on_stage_done` gets each new
    checkpoint's report, to record it."""
    done = done or {}
    n = len(pipeline.steps)
    first = resume_point(pipeline, done, checkpoints)
    reports = [done[i] for i in range(first)]
    outputs: dict[int, Frames] = {-1: inputs.keys}

    def output_of(index: int) -> Frames:
        if index not in outputs:
            outputs[index] = checkpoints.load(index, pipeline.steps[index].spec.name)
        return outputs[index]

    for i in range(first, n):
        step = pipeline.steps[i]
        name = step.spec.name
        before_stage(name)
        progress(name, i / n)
        given = output_of(step.input)
        ctx = StageContext(
            schedule=shot.schedule, params=dict(step.params),  # shot.yaml's overrides included (with_shot_params)
            shot_settings=shot.settings.model_dump(), refs=inputs.refs, hints=inputs.hints,
            palette_path=shot.palette, device=device, models_dir=models_dir, scratch_dir=checkpoints.root,
            progress=lambda d, total, i=i, name=name: progress(name, (i + d / max(total, 1)) / n),
            log=logging.getLogger(f"quickart.stage.{name}"))
        started = time.monotonic()
        result = _run_stage(step, given, ctx)
        seconds = time.monotonic() - started
        check_result(step, given, result, shot)
        report = StageReport(i, name, seconds, jsonable(result.report), checkpoints.save(i, name, result))
        outputs[i] = result.frames
        reports.append(report)
        on_stage_done(report)
        log.info("action=stage_done shot=%s stage=%s seconds=%.2f frames=%d", shot.id, name, seconds,
                 len(result.frames))
        progress(name, (i + 1) / n)
    return output_of(n - 1), reports


def _run_stage(step: Step, given: Frames, ctx: StageContext) -> StageResult:
    """The stage call; anything it raises that is not one of our errors becomes one naming the stage."""
    name = step.spec.name
    try:
        return step.spec.run(dict(given), ctx)  # a copy: a stage that edits its input dict cannot touch ours
    except QuickArtError:
        raise  # bad input or a stop request, already one sentence
    except MemoryError:
        raise StageFailed(f"stage {name} ran out of memory") from None
    except Exception as exc:
        raise StageCrashed(f"stage {name} crashed: {type(exc).__name__}: {exc}") from exc


def expected_frames(step: Step, given: Frames, shot: ShotInputs) -> set[tuple[str, int]]:
    """The (layer, frame) keys a step must return: the keys it got, or every scheduled drawing."""
    if step.spec.kind == "keys":
        return set(given)
    return {(layer, d) for layer in {layer for layer, _ in given} for d in shot.schedule.drawings(layer)}


def check_result(step: Step, given: Frames, result: StageResult, shot: ShotInputs) -> None:
    """The contract between a stage and publishing, in one place: raises one sentence naming the stage."""
    name, kind = step.spec.name, step.spec.kind
    if not isinstance(result, StageResult):
        raise StageFailed(f"stage {name} returned {type(result).__name__}, not a StageResult")
    want = expected_frames(step, given, shot)
    got = set(result.frames)
    if got != want:
        missing, extra = sorted(want - got), sorted(got - want)
        what = "; ".join(x for x in (f"missing {_frames_text(missing)}" if missing else "",
                                     f"not asked for {_frames_text(extra)}" if extra else "") if x)
        rule = "the keys it was given" if kind == "keys" else "every drawing of the shot's schedule"
        raise StageFailed(f"stage {name} ({kind} stage) must return {rule}: {what}")
    for table, label in [(result.frames, "frame"), *((v, f"variant {k!r} frame") for k, v in result.variants.items())]:
        for (layer, frame), img in table.items():
            if not isinstance(img, np.ndarray) or img.dtype != np.uint8 or img.ndim not in (2, 3) \
                    or (table is result.frames and (img.ndim != 3 or img.shape[2] != 4)):
                shape = getattr(img, "shape", None)
                raise StageFailed(f"stage {name} returned {label} {layer} {frame} as "
                                  f"{type(img).__name__} {getattr(img, 'dtype', '')} {shape}; frames are "
                                  "height x width x 4 uint8 (RGBA)")


def _frames_text(keys: list[tuple[str, int]], shown: int = 4) -> str:
    text = ", ".join(f"{layer} {frame}" for layer, frame in keys[:shown])
    return text + (f" and {len(keys) - shown} more" if len(keys) > shown else "")


def jsonable(value):
    """A stage report as plain JSON types (numpy scalars to numbers, anything else to text)."""
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if isinstance(value, (np.integer, np.floating)):
        return value.item()
    return value if isinstance(value, (str, int, float, bool)) or value is None else str(value)
