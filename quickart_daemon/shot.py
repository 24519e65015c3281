"""What a shot folder holds: its keys, references, hints, settings and schedule.

Everything a job needs is read here, before any stage runs, so a bad shot fails
with one clear sentence (a name that does not parse is reported and left alone;
keys of different sizes within a layer, a sheet that contradicts the keys, a
symlink leaving the studio root are job errors).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from . import drops
from .config import Config
from .errors import ShotFolderInvalid
from .images import image_size
from .naming import Naming, ShotId
from .timing import Schedule, load_schedule

OUTPUT_DIR = "quickart"


class ShotSettings(BaseModel):
    """shot.yaml: per-shot overrides of the config defaults."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    fps: float | None = Field(None, gt=0)
    timing: int | None = Field(None, ge=1, le=12)
    hold_last: int | None = Field(None, ge=1)
    start_frame: int | None = Field(None, ge=0)
    pipeline: str | None = None
    layers_order: list[str] | None = None
    light: dict[str, Any] | None = None            # read by the light stage
    stages: dict[str, dict[str, Any]] = Field(default_factory=dict)  # per-stage parameter overrides


@dataclass
class ShotInputs:
    id: ShotId
    dir: Path
    settings: ShotSettings
    fps: float
    timing: int
    pipeline: str
    layer_order: list[str]
    keys: dict[str, dict[int, Path]]
    refs: dict[str, dict[int, Path]]
    hints: dict[str, dict[int, Path]]
    palette: Path | None
    schedule: Schedule
    files: list[Path]
    problems: list[str] = field(default_factory=list)

    @property
    def output_dir(self) -> Path:
        return self.dir / OUTPUT_DIR


def shot_id_for(shot_dir: Path, root: Path, naming: Naming) -> ShotId:
    try:
        rel = shot_dir.resolve().relative_to(root.resolve())
    except ValueError:
        raise ShotFolderInvalid(f"{shot_dir} is not inside the studio root {root}") from None
    shot = naming.parse_shot_path(rel.as_posix())
    if shot is None:
        raise ShotFolderInvalid(f"{shot_dir}: not a shot folder: {rel.as_posix()!r} does not match "
                                f"naming.shot_path {naming.shot_path.text!r}")
    return shot


def read_settings(shot_dir: Path) -> ShotSettings:
    path = shot_dir / "shot.yaml"
    if not path.is_file():
        return ShotSettings()
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        return ShotSettings.model_validate(data)
    except yaml.YAMLError as exc:
        raise ShotFolderInvalid(f"{path}: not valid YAML: {exc}") from None
    except ValidationError as exc:
        err = exc.errors()[0]
        key = ".".join(str(p) for p in err["loc"]) or "(top level)"
        msg = "unknown setting" if err["type"] == "extra_forbidden" else err["msg"]
        raise ShotFolderInvalid(f"{path}: {key}: {msg}") from None


def order_layers(layers: list[str], order: list[str]) -> list[str]:
    """Bottom-to-top composite order: named layers where listed, '*' = the rest alphabetically."""
    named = [l for l in order if l != "*" and l in layers]
    rest = sorted(l for l in layers if l not in order)
    if "*" not in order:
        return named + rest
    star = order.index("*")
    before = [l for l in order[:star] if l in layers]
    after = [l for l in order[star + 1:] if l in layers]
    return before + rest + after


def _collect(folder_files: list[Path], shot: str, naming: Naming, problems: list[str],
             what: str) -> dict[str, dict[int, Path]]:
    found: dict[str, dict[int, Path]] = {}
    for path in folder_files:
        if path.suffix.lower() != ".png":
            continue
        name = naming.parse_key_name(path.name, shot)
        if name is None:
            problems.append(f"{path}: name does not match {naming.key_file.text!r} "
                            f"or {naming.key_file_single.text!r}; left alone")
            continue
        layer = found.setdefault(name.layer, {})
        if name.frame in layer:
            raise ShotFolderInvalid(f"{what} layer {name.layer} frame {name.frame} exists twice: "
                                    f"{layer[name.frame]} and {path}; remove one")
        layer[name.frame] = path
    return found


def load_shot(shot_dir: Path, cfg: Config) -> ShotInputs:
    """Read a shot folder into ShotInputs; raises a QuickArtError naming what is wrong."""
    shot_dir = Path(shot_dir)
    naming = cfg.naming_rules
    shot_id = shot_id_for(shot_dir, cfg.root, naming)
    settings = read_settings(shot_dir)
    # zip drops: only the unpacked folders of zips still in keys/ count (a replaced zip's old frames do not)
    current = set(drops.unpack_zip_drops(shot_dir, cfg.root))
    unpacked = shot_dir / OUTPUT_DIR / "unpacked"
    files = [f for f in drops.input_files(shot_dir, cfg.root)
             if not f.is_relative_to(unpacked) or any(f.is_relative_to(c) for c in current)]
    problems: list[str] = []
    by_dir: dict[str, list[Path]] = {"keys": [], "refs": [], "hints": []}
    for f in files:
        top = f.relative_to(shot_dir).parts[0]
        if top in by_dir:
            by_dir[top].append(f)
        elif f.is_relative_to(unpacked):
            by_dir["keys"].append(f)  # zip drops count as keys
    keys = _collect(by_dir["keys"], shot_id.shot, naming, problems, "key")
    if not keys:
        raise ShotFolderInvalid(f"{shot_dir}: no key drawings in keys/ (expected names like "
                                f"{naming.format_key_name(shot_id.shot, 'char', cfg.timing.start_frame)})")
    for layer, frames in keys.items():
        sizes = {frame: image_size(p) for frame, p in frames.items()}
        if len(set(sizes.values())) > 1:
            first = min(sizes)
            odd = next(f for f in sorted(sizes) if sizes[f] != sizes[first])
            raise ShotFolderInvalid(f"{shot_id}: layer {layer}: keys differ in size: frame {first} is "
                                    f"{'x'.join(map(str, sizes[first]))}, frame {odd} is "
                                    f"{'x'.join(map(str, sizes[odd]))}; export every key of a layer at one size")
    refs = _collect(by_dir["refs"], shot_id.shot, naming, problems, "reference")
    hints = _collect(by_dir["hints"], shot_id.shot, naming, problems, "hint")
    timing = settings.timing or cfg.timing.default
    schedule = load_schedule(shot_dir, {l: sorted(f) for l, f in keys.items()}, timing,
                             settings.hold_last or cfg.timing.hold_last,
                             settings.start_frame if settings.start_frame is not None else cfg.timing.start_frame)
    palette = shot_dir / "refs" / "palette.yaml"
    return ShotInputs(
        id=shot_id, dir=shot_dir, settings=settings, fps=settings.fps or cfg.timing.fps, timing=timing,
        pipeline=settings.pipeline or cfg.pipeline,
        layer_order=order_layers(list(keys), settings.layers_order or cfg.layers_order),
        keys=keys, refs=refs, hints=hints, palette=palette if palette.is_file() else None,
        schedule=schedule, files=files, problems=problems,
    )
