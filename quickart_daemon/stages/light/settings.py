"""Lights as data: parsing `--flag` strings and pipeline/shot.yaml values, keyed lights.

Schema of shot.yaml `light:` (every key optional; see docs/light.md):

    light:
      direction: [-1, -1, 1]        # from the subject towards the light; x right, y down, z to viewer
      color: [255, 244, 230]        # 0-255, or "#fff4e6", or "255,244,230"
      intensity: 0.7                # 0 = no change at all
      ambient: 0.6                  # light level on the side turned away (1 = no darkening)
      edge: soft                    # the shadow's edge: hard (one pixel) or soft
      keys:                         # a moving light: per-frame values, interpolated between keys
        1001: {direction: [-1, 0, 1]}
        1024: {direction: [1, 0, 1], intensity: 0.5}
      setups:                       # extra named light setups, each published as light/{name}/
        rim: {direction: [0, -0.3, -1], intensity: 1.0, keys: {...}}
"""

from __future__ import annotations

import bisect
import math
import re
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from ...errors import StageFailed
from ...naming import NAME_PATTERN

FIELDS = ("direction", "color", "intensity", "ambient", "edge")
DEFAULTS: dict[str, Any] = {"direction": (-1.0, -1.0, 1.0), "color": (255.0, 255.0, 255.0),
                            "intensity": 0.7, "ambient": 0.6, "edge": "soft"}
EDGES = ("hard", "soft")
RESERVED_NAMES = ("layer",)


@dataclass(frozen=True)
class Light:
    direction: tuple[float, float, float]   # unit vector
    color: tuple[float, float, float]       # 0..1
    intensity: float
    ambient: float
    edge: str = "soft"                      # "hard" or "soft": the shadow's edge


def _numbers(value: Any, what: str, n: int) -> tuple[float, ...]:
    if isinstance(value, str):
        parts = [p for p in re.split(r"[,\s]+", value.strip()) if p]
    elif isinstance(value, (list, tuple)):
        parts = list(value)
    else:
        raise ValueError(f"{what} must be {n} numbers like {','.join(['1'] * n)}, not {value!r}")
    try:
        out = tuple(float(p) for p in parts)
    except (TypeError, ValueError):
        raise ValueError(f"{what} must be {n} numbers, not {value!r}") from None
    if len(out) != n or not all(math.isfinite(v) for v in out):
        raise ValueError(f"{what} must be {n} finite numbers, not {value!r}")
    return out


def parse_direction(value: Any) -> tuple[float, float, float]:
    """'X,Y,Z' (or a list): towards the light, image space; normalised."""
    v = np.array(_numbers(value, "direction", 3))
    norm = float(np.linalg.norm(v))
    if norm < 1e-9:
        raise ValueError("direction must not be 0,0,0")
    return tuple(float(c) for c in v / norm)  # type: ignore[return-value]


def parse_color(value: Any) -> tuple[float, float, float]:
    """'R,G,B' in 0-255 (or '#rrggbb', or a list) -> 0-255 floats (parsing twice is harmless)."""
    if isinstance(value, str) and re.fullmatch(r"#?[0-9a-fA-F]{6}", value.strip()):
        h = value.strip().lstrip("#")
        return tuple(float(int(h[i:i + 2], 16)) for i in (0, 2, 4))  # type: ignore[return-value]
    rgb = _numbers(value, "color", 3)
    if any(c < 0 or c > 255 for c in rgb):
        raise ValueError(f"color components must lie in 0-255, not {value!r}")
    return rgb  # type: ignore[return-value]


def _unit_float(what: str, lo: float, hi: float):
    def parse(value: Any) -> float:
        try:
            v = float(value)
        except (TypeError, ValueError):
            raise ValueError(f"{what} must be a number, not {value!r}") from None
        if not (lo <= v <= hi):
            raise ValueError(f"{what} must lie in {lo:g}..{hi:g}, not {value!r}")
        return v
    parse.__name__ = what  # argparse names the type in its error message
    return parse


def parse_edge(value: Any) -> str:
    """'hard' or 'soft'."""
    edge = str(value).strip().lower()
    if edge not in EDGES:
        raise ValueError(f"edge must be {' or '.join(EDGES)}, not {value!r}")
    return edge


parse_intensity = _unit_float("intensity", 0.0, 4.0)
parse_ambient = _unit_float("ambient", 0.0, 1.0)
PARSERS = {"direction": parse_direction, "color": parse_color, "intensity": parse_intensity,
           "ambient": parse_ambient, "edge": parse_edge}


def light_from(values: dict[str, Any], where: str) -> Light:
    """A Light from raw values (strings, lists or numbers), naming `where` in errors."""
    parsed = {}
    for key in FIELDS:
        try:
            parsed[key] = PARSERS[key](values[key])
        except ValueError as exc:
            raise StageFailed(f"{where}: {key}: {exc}") from None
    parsed["color"] = tuple(c / 255.0 for c in parsed["color"])
    return Light(**parsed)


@dataclass(frozen=True)
class Track:
    """A light over a shot: constant, or keyed at frames and interpolated between them."""

    frames: tuple[int, ...]
    lights: tuple[Light, ...]

    def at(self, frame: int) -> Light:
        if len(self.frames) == 1 or frame <= self.frames[0]:
            return self.lights[0]
        if frame >= self.frames[-1]:
            return self.lights[-1]
        i = bisect.bisect_right(self.frames, frame)
        f0, f1 = self.frames[i - 1], self.frames[i]
        a, b = self.lights[i - 1], self.lights[i]
        t = (frame - f0) / (f1 - f0)
        lerp = lambda x, y: tuple(float(u + (v - u) * t) for u, v in zip(x, y))
        d = np.array(lerp(a.direction, b.direction))
        n = float(np.linalg.norm(d))
        # directions are blended and renormalised (an even turn for small steps); opposite
        # keys have no midpoint, so the nearer key holds
        direction = tuple(float(c) for c in d / n) if n > 1e-6 else (a if t < 0.5 else b).direction
        return replace(a, direction=direction, color=lerp(a.color, b.color),  # type: ignore[arg-type]
                       intensity=a.intensity + (b.intensity - a.intensity) * t,
                       ambient=a.ambient + (b.ambient - a.ambient) * t)


def _check_keys(mapping: dict, allowed: tuple[str, ...], where: str) -> None:
    unknown = sorted(set(map(str, mapping)) - set(allowed))
    if unknown:
        raise StageFailed(f"{where}: unknown key {unknown[0]!r} (known keys: {', '.join(allowed)})")


def _track(spec: dict[str, Any], base: dict[str, Any], where: str, allow_setups: bool) -> Track:
    if not isinstance(spec, dict):
        raise StageFailed(f"{where} must be a mapping of {', '.join(FIELDS)}, keys, setups")
    _check_keys(spec, FIELDS + ("keys",) + (("setups",) if allow_setups else ()), where)
    values = {**base, **{k: spec[k] for k in FIELDS if k in spec}}
    keys = spec.get("keys")
    if keys is None:
        return Track((0,), (light_from(values, where),))
    if not isinstance(keys, dict) or not keys:
        raise StageFailed(f"{where}.keys must map frame numbers to light values, e.g. 1001: {{direction: [-1, 0, 1]}}")
    frames, lights = [], []
    for frame, override in sorted(keys.items(), key=lambda kv: _frame(kv[0], where)):
        here = f"{where}.keys.{frame}"
        if not isinstance(override, dict):
            raise StageFailed(f"{here} must be a mapping of {', '.join(FIELDS)}")
        _check_keys(override, FIELDS, here)
        frames.append(_frame(frame, where))
        lights.append(light_from({**values, **override}, here))
    return Track(tuple(frames), tuple(lights))


def _frame(value: Any, where: str) -> int:
    try:
        if isinstance(value, bool):
            raise ValueError
        return int(str(value))
    except ValueError:
        raise StageFailed(f"{where}.keys: {value!r} is not a frame number") from None


def resolve(params: dict[str, Any], shot_light: dict[str, Any] | None) -> dict[str, Track]:
    """The light setups of a job: "" is the main light, then the named setups.

    Pipeline/CLI parameters give the base values; shot.yaml `light:` overrides them key by key
    (the shot is the more specific place); named setups start from the main light's values."""
    base = {k: params.get(k, DEFAULTS[k]) for k in FIELDS}
    base = {k: DEFAULTS[k] if v is None else v for k, v in base.items()}
    spec = dict(shot_light or {})
    tracks = {"": _track(spec, base, "shot.yaml light", allow_setups=True)}
    main_values = {**base, **{k: spec[k] for k in FIELDS if k in spec}}
    setups = spec.get("setups") or {}
    if not isinstance(setups, dict):
        raise StageFailed("shot.yaml light.setups must map setup names to light values")
    for name, sub in setups.items():
        if not isinstance(name, str) or not re.fullmatch(NAME_PATTERN, name) or name in RESERVED_NAMES:
            raise StageFailed(f"shot.yaml light.setups: {name!r} is not a usable setup name "
                              f"(letters, digits, _ and -; not {', '.join(RESERVED_NAMES)})")
        tracks[name] = _track(sub, main_values, f"shot.yaml light.setups.{name}", allow_setups=False)
    return tracks
