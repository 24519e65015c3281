"""Pipelines: declarative stage graphs in pipelines/*.yaml.

A pipeline is an ordered list of steps; each names a registered stage and its
parameters. ``optional: true`` skips a step whose stage is not installed, and
``fallback: NAME`` runs a built-in stage instead; anything else that names an
unknown stage or parameter fails at load, naming the file.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from importlib import resources
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from . import stages
from .errors import PipelineError, UnknownStage
from .naming import NAME_PATTERN
from .stages.base import StageSpec
from .yamlfile import read_yaml


class _StepFile(BaseModel):
    model_config = ConfigDict(extra="forbid")
    stage: str
    params: dict[str, Any] = Field(default_factory=dict)
    optional: bool = False
    fallback: str | None = None
    input: str | None = None  # "keys", or an earlier step's stage name or publish folder (default: the previous step)


class _PipelineFile(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str
    description: str = ""
    requires: list[str] | str = Field(default_factory=list)  # "gpu", "group:NAME": where its jobs may run
    stages: list[_StepFile] = Field(min_length=1)


#: the `input` that names the shot's key drawings
KEYS_INPUT = "keys"


@dataclass(frozen=True)
class Step:
    spec: StageSpec
    params: dict[str, Any]
    requested: str  # the stage the file asked for (differs from spec.name when a fallback runs)
    input: int  # index of the step whose output this step reads; -1 = the key drawings


@dataclass(frozen=True)
class Pipeline:
    name: str
    path: Path
    steps: tuple[Step, ...]
    notes: tuple[str, ...] = field(default=())  # skipped steps and fallbacks, for the manifest

    def describe(self) -> list[dict]:
        return [{"stage": s.spec.name, "requested": s.requested, "params": s.params,
                 "input": KEYS_INPUT if s.input < 0 else self.steps[s.input].spec.name} for s in self.steps]

    @property
    def timing_stage(self) -> str | None:
        """The stage that turns keys into every scheduled drawing, if the pipeline has one."""
        return next((s.spec.name for s in self.steps if s.spec.kind == "timing"), None)


@dataclass(frozen=True)
class StageReport:
    """What one step of a job did: recorded by the worker, shown by `quickart job`, written to the
    manifest by publishing (the contract between running a pipeline and publishing its result)."""

    index: int
    stage: str
    seconds: float
    report: dict
    checkpoint: Path  # the step's frames (and variants in subfolders), named {layer}.{frame}.png

    def to_manifest(self) -> dict:
        return {"index": self.index, "stage": self.stage, "seconds": round(self.seconds, 3), "report": self.report}


def parse_requirements(tokens: list[str], where: str) -> tuple[bool, str | None]:
    """(needs a GPU slot, the node group it needs) from `requires:` entries of a pipeline and a shot."""
    gpu, group = False, None
    for token in tokens:
        if token == "gpu":
            gpu = True
        elif token.startswith("group:") and re.fullmatch(NAME_PATTERN, token[6:]):
            if group not in (None, token[6:]):
                raise PipelineError(f"{where}: requires names two node groups ({group}, {token[6:]}); a job runs "
                                    "on nodes of one group")
            group = token[6:]
        else:
            raise PipelineError(f"{where}: requires: {token!r} is neither 'gpu' nor 'group:NAME'")
    return gpu, group


def pipeline_requirements(name: str, search: list[Path]) -> list[str]:
    """The `requires:` entries of a pipeline file, read without loading any stage (the watcher calls this)."""
    path = find_pipeline(name, search)
    data = read_yaml(path, PipelineError) or {}
    value = data.get("requires") or [] if isinstance(data, dict) else []
    return [value] if isinstance(value, str) else [str(v) for v in value]


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
    """Read and validate a pipeline file; every problem found is named, with the file and the step."""
    data = read_yaml(path, PipelineError)
    try:
        spec = _PipelineFile.model_validate(data)
    except ValidationError as exc:
        raise PipelineError("; ".join(f"{path}: {'.'.join(str(p) for p in e['loc'])}: {e['msg']}"
                                      for e in exc.errors())) from None
    known = stages.available()
    steps: list[Step] = []
    notes: list[str] = []
    problems: list[tuple[type[PipelineError], str]] = []
    for i, step in enumerate(spec.stages):
        where = f"{path}: stages[{i}]"
        chosen = step.stage
        if chosen not in known:
            if step.fallback:
                if step.fallback not in known:
                    problems.append((UnknownStage, f"{where}: fallback {step.fallback!r} is not a stage either"))
                    continue
                notes.append(f"{step.stage} is not installed; {step.fallback} runs instead")
                chosen = step.fallback
            elif step.optional:
                notes.append(f"{step.stage} is not installed; step skipped")
                continue
            else:
                problems.append((UnknownStage, f"{where}: unknown stage {step.stage!r}"
                                 f"{stages.load_error(step.stage)}; known stages: {', '.join(sorted(known))}"))
                continue
        stage = known[chosen]
        params = {**stage.defaults(), **(step.params if chosen == step.stage else {})}
        unknown = set(params) - {o.name for o in stage.options}
        if unknown:
            problems.append((PipelineError, f"{where} ({chosen}): unknown parameter(s) {', '.join(sorted(unknown))}; "
                             f"{chosen} takes: {', '.join(o.name for o in stage.options) or 'none'}"))
        source = _input_index(step.input, steps)
        if source is None:
            written = [KEYS_INPUT] + [n for s in steps for n in dict.fromkeys((s.spec.name, s.spec.publish_folder)) if n]
            problems.append((PipelineError, f"{where} ({chosen}): input {step.input!r} is not written by an earlier "
                             f"step; earlier steps write: {', '.join(written)}"))
            source = len(steps) - 1
        read = steps[source].spec if source >= 0 else None
        if stage.kind == "keys" and read is not None and _timing_before(steps, source):
            problems.append((PipelineError, f"{where} ({chosen}): a keys stage after the timing stage "
                             f"{_timing_before(steps, source)}; it works on key drawings, so put it before"))
        if stage.kind == "timing" and read is not None and _timing_before(steps, source):
            problems.append((PipelineError, f"{where} ({chosen}): a second timing stage after "
                             f"{_timing_before(steps, source)}; a pipeline makes the in-betweens once"))
        steps.append(Step(stage, params, step.stage, source))
    if problems:
        kind = UnknownStage if any(k is UnknownStage for k, _ in problems) else PipelineError
        raise kind("; ".join(text for _, text in problems))
    if not steps:
        raise PipelineError(f"{path}: every step was skipped; nothing would run")
    return Pipeline(spec.name, path, tuple(steps), tuple(notes))


def with_shot_params(pipeline: Pipeline, overrides: dict[str, dict[str, Any]], where: Path) -> Pipeline:
    """The pipeline with a shot's `stages:` overrides (shot.yaml) merged into its steps' params, so each
    step carries the parameters its stage gets (and the manifest records them). An override naming a
    stage the pipeline does not run, or a parameter the stage does not take, is refused as a pipeline
    file's would be: silently ignored, a typo would look like it had done nothing."""
    problems = []
    for name, params in overrides.items():
        spec = next((s.spec for s in pipeline.steps if s.spec.name == name), None)
        if spec is None:
            problems.append(f"{where}: stages.{name}: pipeline {pipeline.name} has no stage {name!r}; its stages: "
                            f"{', '.join(dict.fromkeys(s.spec.name for s in pipeline.steps))}")
            continue
        unknown = set(params) - {o.name for o in spec.options}
        if unknown:
            problems.append(f"{where}: stages.{name}: unknown parameter(s) {', '.join(sorted(unknown))}; {name} takes: "
                            f"{', '.join(o.name for o in spec.options) or 'none'}")
    if problems:
        raise PipelineError("; ".join(problems))
    steps = tuple(replace(s, params={**s.params, **overrides.get(s.spec.name, {})}) for s in pipeline.steps)
    return replace(pipeline, steps=steps)


def _input_index(name: str | None, earlier: list[Step]) -> int | None:
    """The index of the earlier step a step reads (-1: the keys), or None when no earlier step writes `name`."""
    if name is None:
        return len(earlier) - 1
    if name == KEYS_INPUT:
        return -1
    for i in reversed(range(len(earlier))):
        if name in (earlier[i].spec.name, earlier[i].spec.publish_folder):
            return i
    return None


def _timing_before(steps: list[Step], source: int) -> str | None:
    """The timing stage among the steps that produced input `source` (following inputs back), if any."""
    while source >= 0:
        if steps[source].spec.kind == "timing":
            return steps[source].spec.name
        source = steps[source].input
    return None
