"""The stage interface every image stage plugs into.

A stage is a plain function ``run(frames, ctx) -> StageResult``. ``frames`` maps
(layer, frame number) to an RGBA uint8 frame; a stage returns frames keyed the same
way, plus a short report. It never touches the database or the shot folder: the
worker does that around it, so the same function serves the daemon, `quickart run`
and `quickart stage`.

Two kinds of stage exist, and the job path checks every result against its kind:
- ``keys``: works on each key drawing it is given (refine, color, light); it returns
  exactly the (layer, frame) keys it was given.
- ``timing``: turns keys into every drawing of the schedule (hold, inbetween-blend,
  inbetween); it returns ``schedule.drawings(layer)`` of every layer it was given.
A pipeline runs its keys stages first and at most one timing stage after them.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Literal, Protocol

import numpy as np

from ..timing import Schedule

FrameKey = tuple[str, int]
Frames = dict[FrameKey, np.ndarray]


def _no_progress(done: int, total: int) -> None:
    pass


@dataclass
class StageContext:
    """Everything a stage may read besides its input frames."""

    schedule: Schedule
    params: dict[str, Any] = field(default_factory=dict)
    shot_settings: dict[str, Any] = field(default_factory=dict)   # shot.yaml, validated (fps, light, ...)
    refs: Frames = field(default_factory=dict)                    # colour references by (layer, frame)
    hints: Frames = field(default_factory=dict)                   # colour hint scribbles by (layer, frame)
    palette_path: Path | None = None
    device: str = "cpu"                                           # "cpu" or "cuda:N"
    models_dir: Path = Path("models")
    scratch_dir: Path = Path("/tmp")
    progress: Callable[[int, int], None] = _no_progress
    log: logging.Logger = logging.getLogger("quickart.stage")


@dataclass
class StageResult:
    """What a stage returns.

    `frames` go on to the next stage. `variants` are extra named outputs that only get
    published: colour styles ("night"), confidence maps, light setups, the light layer.
    They are written to `{publish_folder}/{name}/` in the version (and to `OUT/{name}/`
    by `quickart stage`). `report` is JSON-able: "warnings" is a list of sentences shown
    on the job; "models" maps model names to sha256 for the manifest."""

    frames: Frames
    report: dict[str, Any] = field(default_factory=dict)
    variants: dict[str, Frames] = field(default_factory=dict)


class StageFunction(Protocol):
    def __call__(self, frames: Frames, ctx: StageContext) -> StageResult: ...


@dataclass(frozen=True)
class Option:
    """A stage parameter, also offered as `quickart stage NAME --flag` on the command line."""

    name: str
    type: Callable[[str], Any]
    default: Any
    help: str


@dataclass(frozen=True)
class StageSpec:
    name: str
    run: StageFunction
    kind: Literal["keys", "timing"]
    #: the folder of the version that shows this stage's output (refine, color, light), or None
    publish_folder: str | None
    description: str
    options: tuple[Option, ...] = ()

    def defaults(self) -> dict[str, Any]:
        return {o.name: o.default for o in self.options}
