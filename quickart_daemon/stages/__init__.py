"""The stage registry: names used in pipelines/*.yaml and on `quickart stage NAME`.

Built-in stages (hold, inbetween-blend) are always present. The image stages
(refine, color, light, inbetween) register themselves when their subpackage exists;
`available()` tells which do, so the default pipeline falls back until then.
"""

from __future__ import annotations

import importlib

from ..errors import UnknownStage
from .base import Frames, Option, StageContext, StageResult, StageSpec

_REGISTRY: dict[str, StageSpec] = {}

# Modules that hold stages. A module that is not there yet (a stage still to be built)
# is skipped; any other import error is a real bug and is raised.
_STAGE_MODULES = ("hold", "blend", "refine", "color", "light", "inbetween")


def register(spec: StageSpec) -> StageSpec:
    if spec.name in _REGISTRY and _REGISTRY[spec.name] is not spec:
        raise ValueError(f"stage {spec.name!r} registered twice")
    _REGISTRY[spec.name] = spec
    return spec


def _load_all() -> None:
    for module in _STAGE_MODULES:
        name = f"{__name__}.{module}"
        try:
            importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name != name:
                raise


def available() -> dict[str, StageSpec]:
    _load_all()
    return dict(_REGISTRY)


def get(name: str) -> StageSpec:
    stages = available()
    if name not in stages:
        raise UnknownStage(f"unknown stage {name!r}; known stages: {', '.join(sorted(stages))}")
    return stages[name]


__all__ = ["Frames", "Option", "StageContext", "StageResult", "StageSpec", "available", "get", "register"]
