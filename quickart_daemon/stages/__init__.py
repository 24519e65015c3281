"""The stage registry: names used in pipelines/*.yaml and on `quickart stage NAME`.

Every stage, built in or from another package, is an entry point in the group
``quickart.stages`` whose name is the stage name and whose object is its `StageSpec`:

    [project.entry-points."quickart.stages"]
    my-stage = "my_studio_stages.sharpen:SPEC"

so a studio adds a stage by installing a package, without forking QuickArt. An entry
point that fails to load is left out (a broken plug-in must not stop the daemon) and
its error is named wherever that stage is asked for.
"""

from __future__ import annotations

import logging
import sys
from importlib.metadata import entry_points

from ..errors import UnknownStage
from .base import Frames, Option, StageContext, StageResult, StageSpec

GROUP = "quickart.stages"
log = logging.getLogger(__name__)

# discovery is cached per sys.path: a package put on the path (a test's temp dist-info) is seen
_cache: dict[tuple[str, ...], tuple[dict[str, StageSpec], dict[str, str]]] = {}


def _discover() -> tuple[dict[str, StageSpec], dict[str, str]]:
    key = tuple(sys.path)
    if key in _cache:
        return _cache[key]
    found: dict[str, StageSpec] = {}
    errors: dict[str, str] = {}
    for ep in entry_points(group=GROUP):
        if ep.name in found or ep.name in errors:
            errors[ep.name] = f"two packages provide stage {ep.name!r} ({ep.value} and another); uninstall one"
            found.pop(ep.name, None)
            continue
        try:
            spec = ep.load()
        except Exception as exc:  # a broken plug-in: report it, keep the others
            errors[ep.name] = f"{ep.value} failed to load: {type(exc).__name__}: {exc}"
            log.warning("action=stage_load_failed stage=%s error=%s", ep.name, errors[ep.name])
            continue
        if not isinstance(spec, StageSpec) or spec.name != ep.name:
            errors[ep.name] = f"{ep.value} is not a StageSpec named {ep.name!r}"
            continue
        found[ep.name] = spec
    _cache[key] = (found, errors)
    return found, errors


def available() -> dict[str, StageSpec]:
    return dict(_discover()[0])


def load_error(name: str) -> str:
    """Why an installed stage could not be loaded, as a clause for an error message ('' if none)."""
    error = _discover()[1].get(name)
    return f" (installed, but {error})" if error else ""


def get(name: str) -> StageSpec:
    stages = available()
    if name not in stages:
        raise UnknownStage(f"unknown stage {name!r}{load_error(name)}; known stages: {', '.join(sorted(stages))}")
    return stages[name]


__all__ = ["Frames", "Option", "StageContext", "StageResult", "StageSpec", "available", "get", "load_error"]
