"""Pipelines: declarative stage graphs in pipelines/*.yaml.

A pipeline is an ordered list of steps; each names a registered stage and its
parameters. ``optional: true`` skips a step whose stage is not installed, and
``fallback: NAME`` runs a built-in stage instead; anything else that names an
unknown stage or parameter fails at load, naming the file.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from . import stages
from .errors import PipelineError, UnknownStage
from .stages.base import StageSpec


class _StepFile(BaseModel):
    model_config = ConfigDict(extra="forbid")
    stage: str
    params: dict[str, Any] = Field(default_factory=dict)
    optional: bool = False
    fallback: str | None = None


class _PipelineFile(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str
    description: str = ""
    stages: list[_StepFile] = Field(min_length=1)


@dataclass(frozen=True)
class Step:
    spec: StageSpec
    params: dict[str, Any]
    requested: str  # the stage the file asked for (differs from spec.name when a fallback runs)


@dataclass(frozen=True)
class Pipeline:
    name: str
    path: Path
    steps: tuple[Step, ...]
    notes: tuple[str, ...] = field(default=())  # skipped steps and fallbacks, for the manifest

    def describe(self) -> list[dict]:
        return [{"stage": s.spec.name, "requested": s.requested, "params": s.params} for s in self.steps]


def builtin_dir() -> Path:
    return Path(str(resources.files("quickart_daemon._pipelines")))


def find_pipeline(name: str, search: list[Path]) -> Path:
    for folder in [*search, builtin_dir()]:
        candidate = folder / f"{name}.yaml"
        if candidate.is_file():
            return candidate
    known = sorted({p.stem for folder in [*search, builtin_dir()] if folder.is_dir() for p in folder.glob("*.yaml")})
    raise PipelineError(f"no pipeline {name!r} (looked in {', '.join(str(f) for f in search)} and the built-ins); "
                        f"known: {', '.join(known)}")


def load_pipeline(name: str, search: list[Path]) -> Pipeline:
    path = find_pipeline(name, search)
    return parse_pipeline(path)


def parse_pipeline(path: Path) -> Pipeline:
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
        spec = _PipelineFile.model_validate(data)
    except yaml.YAMLError as exc:
        raise PipelineError(f"{path}: not valid YAML: {exc}") from None
    except ValidationError as exc:
        err = exc.errors()[0]
        key = ".".join(str(p) for p in err["loc"])
        raise PipelineError(f"{path}: {key}: {err['msg']}") from None
    known = stages.available()
    steps, notes = [], []
    for i, step in enumerate(spec.stages):
        chosen = step.stage
        if chosen not in known:
            if step.fallback:
                if step.fallback not in known:
                    raise UnknownStage(f"{path}: stages[{i}]: fallback {step.fallback!r} is not a stage either")
                notes.append(f"{step.stage} is not installed; {step.fallback} runs instead")
                chosen = step.fallback
            elif step.optional:
                notes.append(f"{step.stage} is not installed; step skipped")
                continue
            else:
                raise UnknownStage(f"{path}: stages[{i}]: unknown stage {step.stage!r}; "
                                   f"known stages: {', '.join(sorted(known))}")
        stage = known[chosen]
        params = {**stage.defaults(), **(step.params if chosen == step.stage else {})}
        unknown = set(params) - {o.name for o in stage.options}
        if unknown:
            raise PipelineError(f"{path}: stages[{i}] ({chosen}): unknown parameter(s) {', '.join(sorted(unknown))}; "
                                f"{chosen} takes: {', '.join(o.name for o in stage.options) or 'none'}")
        steps.append(Step(stage, params, step.stage))
    if not steps:
        raise PipelineError(f"{path}: every step was skipped; nothing would run")
    return Pipeline(spec.name, path, tuple(steps), tuple(notes))
