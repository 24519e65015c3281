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

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from . import drops
from .config import Config, Fps, LimitsConfig
from .errors import ShotFolderInvalid
from .images import check_pixels, image_size
from .naming import Naming, ShotId
from .timing import Schedule, load_schedule
from .yamlfile import read_yaml

OUTPUT_DIR = "quickart"
#: the longest output file name we write: 255 bytes (NAME_MAX on Linux file systems) less the
#: ".{name}.{pid}.tmp" our atomic writes add for their temporary name
MAX_OUTPUT_NAME_BYTES = 255 - 20


class ShotSettings(BaseModel):
    """shot.yaml: per-shot overrides of the config defaults."""

    @field_validator("requires", mode="before")
    @classmethod
    def _one_or_many(cls, value):
        return [value] if isinstance(value, str) else value

    model_config = ConfigDict(extra="forbid", frozen=True)
    fps: Fps | None = None
    timing: int | None = Field(None, ge=1, le=12)
    hold_last: int | None = Field(None, ge=1)
    start_frame: int | None = Field(None, ge=0)
    pipeline: str | None = None
    layers_order: list[str] | None = None
    light: dict[str, Any] | None = None            # read by the light stage
    stages: dict[str, dict[str, Any]] = Field(default_factory=dict)  # per-stage parameter overrides
    requires: list[str] | None = None  # "gpu" and/or "group:NAME": where the shot's job may run


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
    source: Path  # where the files were read from: the shot folder, or a job's snapshot of it
    problems: list[str] = field(default_factory=list)

    @property
    def output_dir(self) -> Path:
        return self.dir / OUTPUT_DIR


def shot_folder(cfg: Config, shot: ShotId) -> Path:
    """The shot's folder on this node: its name under this node's studio root. The database keeps
    shot folders relative to the root (nodes may mount it at different paths, a studio may be
    copied), so a folder is never taken from a path another node or an older copy recorded."""
    folder = cfg.root / cfg.naming_rules.format_shot_path(shot)
    shot_id_for(folder, cfg.root, cfg.naming_rules)  # refuses a shot folder linked out of the root
    return folder


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
    data = read_yaml(path, ShotFolderInvalid) or {}
    try:
        return ShotSettings.model_validate(data)
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
             what: str, shown) -> dict[str, dict[int, Path]]:
    found: dict[str, dict[int, Path]] = {}
    for path in folder_files:
        name = naming.parse_key_name(path.name, shot)
        if name is None:
            problems.append(f"{shown(path)}: left alone: {naming.why_not_key_name(path.name, shot)}")
            continue
        layer = found.setdefault(name.layer, {})
        if name.frame in layer:
            raise ShotFolderInvalid(f"{what} layer {name.layer} frame {name.frame} exists twice: "
                                    f"{layer[name.frame]} and {path}; remove one")
        layer[name.frame] = path
    return found


def shot_files(shot_dir: Path, cfg: Config, skipped: list[str] | None = None) -> list[Path]:
    """The files a job of this shot reads: the inputs, with zip drops unpacked (only the unpacked
    folders of zips still in keys/ count: a replaced zip's old frames do not), and of a key found in
    several drops only the newest drop's (`_newest_drop_wins`); what is not a regular file is left
    out, with a line in `skipped`."""
    zips = drops.unpack_zip_drops(shot_dir, cfg.root)
    unpacked = shot_dir / OUTPUT_DIR / drops.UNPACKED_DIR
    files = [f for f in drops.input_files(shot_dir, cfg.root, skipped)
             if not f.is_relative_to(unpacked) or any(f.is_relative_to(c) for c in zips)]
    shot = shot_id_for(shot_dir, cfg.root, cfg.naming_rules).shot
    return _newest_drop_wins(shot_dir, shot, files, zips, cfg.naming_rules, skipped)


def _newest_drop_wins(shot_dir: Path, shot: str, files: list[Path], zips: dict[Path, Path], naming: Naming,
                      notes: list[str] | None) -> list[Path]:
    """`files` less the keys that a newer drop replaces: the one rule for a key (layer and frame) found
    in more than one drop (loose in keys/ and in a zip drop, in two zips: redrawn keys uploaded
    through the page, say). The newest drop wins (a zip's time is its mtime, a loose key's its own;
    equal times go to the later name), with a line in `notes` naming the file used. Two copies of a
    key within one drop are still the shot's error (`_collect`): nothing tells which is meant."""
    keys_dir = shot_dir / "keys"

    def drop_of(path: Path) -> Path | None:  # the zip it came in, or keys/ for a loose key
        return next((z for folder, z in zips.items() if path.is_relative_to(folder)),
                    keys_dir if path.is_relative_to(keys_dir) else None)

    found: dict[tuple[str, int], dict[Path, list[Path]]] = {}  # key -> {drop: its files of that key}
    for path in files:
        drop, name = drop_of(path), naming.parse_key_name(path.name, shot)
        if drop is not None and name is not None:
            found.setdefault((name.layer, name.frame), {}).setdefault(drop, []).append(path)
    replaced: set[Path] = set()
    for (layer, frame), by_drop in sorted(found.items()):
        if len(by_drop) < 2:
            continue
        when = {d: max(_mtime_ns(p) for p in (ps if d == keys_dir else [d])) for d, ps in by_drop.items()}
        newest = max(by_drop, key=lambda d: (when[d], d.name))
        replaced.update(p for d, ps in by_drop.items() if d != newest for p in ps)
        if notes is not None:
            rel = lambda p: p.relative_to(shot_dir).as_posix()  # noqa: E731
            used = ", ".join(rel(p) for p in by_drop[newest])
            older = ", ".join(rel(p) for d, ps in by_drop.items() if d != newest for p in ps)
            notes.append(f"key layer {layer} frame {frame} is in more than one drop: used {used} from the "
                         f"newest drop{'' if newest == keys_dir else ' ' + rel(newest)}, not {older}")
    return [f for f in files if f not in replaced]


def _mtime_ns(path: Path) -> int:
    try:
        return path.stat().st_mtime_ns
    except OSError:
        return 0


def load_shot(shot_dir: Path, cfg: Config, inputs: Path | None = None) -> ShotInputs:
    """Read a shot folder into ShotInputs; raises a QuickArtError naming what is wrong.

    `inputs` is a job's snapshot of the shot's files (see `snapshot.py`): everything is read from
    it, laid out as in the shot folder, and the shot folder only names the shot and its outputs."""
    shot_dir = Path(shot_dir)
    naming = cfg.naming_rules
    shot_id = shot_id_for(shot_dir, cfg.root, naming)
    source = inputs if inputs is not None else shot_dir
    settings = read_settings(source)
    problems: list[str] = []
    files = sorted(p for p in inputs.rglob("*") if p.is_file() and not p.name.startswith(".")) \
        if inputs is not None else shot_files(shot_dir, cfg, problems)
    unpacked = source / OUTPUT_DIR / drops.UNPACKED_DIR
    by_dir: dict[str, list[Path]] = {"keys": [], "refs": [], "hints": []}
    for f in files:
        top = f.relative_to(source).parts[0]
        if f.is_relative_to(unpacked):
            by_dir["keys"].append(f)  # zip drops count as keys
        elif top in by_dir and not (top == "refs" and f.name == "palette.yaml") \
                and not (top == "keys" and f.suffix.lower() == ".zip"):
            by_dir[top].append(f)
    def shown(path: Path) -> Path:  # the shot's own file, where a snapshot copy was read
        return shot_dir / path.relative_to(source)

    keys = _collect(by_dir["keys"], shot_id.shot, naming, problems, "key", shown)
    if not keys:
        ignored = "".join(f"; {p}" for p in problems)
        raise ShotFolderInvalid(f"{shot_dir}: no key drawings in keys/ (expected names like "
                                f"{naming.format_key_name(shot_id.shot, 'char', cfg.timing.start_frame)}){ignored}")
    check_limits(shot_id.shot, keys, settings, cfg)
    refs = _collect(by_dir["refs"], shot_id.shot, naming, problems, "reference", shown)
    hints = _collect(by_dir["hints"], shot_id.shot, naming, problems, "hint", shown)
    for table in (keys, refs, hints):  # another format saved as .png is bad input, here as in the watcher
        for path in (p for frames in table.values() for p in frames.values()):
            drops.check_png(path)
    layer_sizes: dict[str, tuple[int, int]] = {}
    for layer, frames in keys.items():
        sizes = {frame: image_size(p) for frame, p in frames.items()}
        for frame, size in sizes.items():  # a bomb's header is one file's problem: say so before comparing sizes
            check_pixels(frames[frame], size, cfg.max_image_pixels)
        if len(set(sizes.values())) > 1:
            first = min(sizes)
            odd = next(f for f in sorted(sizes) if sizes[f] != sizes[first])
            raise ShotFolderInvalid(f"{shot_id}: layer {layer}: keys differ in size: frame {first} is "
                                    f"{'x'.join(map(str, sizes[first]))}, frame {odd} is "
                                    f"{'x'.join(map(str, sizes[odd]))}; export every key of a layer at one size")
        layer_sizes[layer] = sizes[min(sizes)]
    if len(set(layer_sizes.values())) > 1:  # the comp stacks the layers: they must line up pixel for pixel
        a = min(layer_sizes)
        b = next(layer for layer in sorted(layer_sizes) if layer_sizes[layer] != layer_sizes[a])
        raise ShotFolderInvalid(f"{shot_id}: layers differ in size: layer {a} is {'x'.join(map(str, layer_sizes[a]))}, "
                                f"layer {b} is {'x'.join(map(str, layer_sizes[b]))}; export every layer of a shot "
                                "at one size")
    timing = settings.timing or cfg.timing.default
    schedule = load_schedule(source, {l: sorted(f) for l, f in keys.items()}, timing,
                             settings.hold_last or cfg.timing.hold_last,
                             settings.start_frame if settings.start_frame is not None else cfg.timing.start_frame,
                             cfg.limits.max_frames_per_shot)
    last = schedule.frame_range()[1]  # an exposure sheet numbers frames too
    if last > cfg.limits.max_frame:
        raise ShotFolderInvalid(f"the shot's frames run to {last:,} ({schedule.source}), more than limits.max_frame "
                                f"({cfg.limits.max_frame:,}); check the frame numbers, or raise the limit in config.yaml")
    palette = source / "refs" / "palette.yaml"
    return ShotInputs(
        id=shot_id, dir=shot_dir, settings=settings, fps=settings.fps or cfg.timing.fps, timing=timing,
        pipeline=settings.pipeline or cfg.pipeline,
        layer_order=order_layers(list(keys), settings.layers_order or cfg.layers_order),
        keys=keys, refs=refs, hints=hints, palette=palette if palette.is_file() else None,
        schedule=schedule, files=files, source=source, problems=problems,
    )


def check_limits(shot: str, keys: dict[str, dict[int, Path]], settings: ShotSettings, cfg: Config) -> None:
    """`limits` from the config, checked before any image is decoded or any frame allocated; and every
    output name must fit the file system (a 230-character layer name is the shot's fault, not a fault
    a retry fixes)."""
    limits, naming = cfg.limits, cfg.naming_rules
    start = settings.start_frame if settings.start_frame is not None else cfg.timing.start_frame
    if start > limits.max_frame:
        raise ShotFolderInvalid(f"start_frame {start:,} is more than limits.max_frame ({limits.max_frame:,}); "
                                "fix shot.yaml, or raise the limit in config.yaml")
    hold_last = settings.hold_last or cfg.timing.hold_last
    if hold_last is not None and hold_last > limits.max_hold_last:
        raise ShotFolderInvalid(f"hold_last {hold_last:,} is more than limits.max_hold_last "
                                f"({limits.max_hold_last:,}) frames; fix shot.yaml, or raise the limit in config.yaml")
    check_key_limits(keys, limits)
    for layer, frames in keys.items():
        last = max(frames)
        name = naming.format_output_name(shot, layer, last)
        if len(name.encode()) > MAX_OUTPUT_NAME_BYTES:
            raise ShotFolderInvalid(
                f"{frames[last].name}: layer name {layer[:24]}... gives output names of {len(name.encode())} "
                f"bytes; file systems take {MAX_OUTPUT_NAME_BYTES} here: shorten the layer name")


def check_key_limits(keys: dict[str, dict[int, Path]], limits: LimitsConfig) -> None:
    """The `limits` on keys that their names alone tell (how many, how far apart, how high a frame):
    a shot's keys, or the frames `quickart stage` is given."""
    count = sum(len(frames) for frames in keys.values())
    if count > limits.max_keys_per_drop:
        raise ShotFolderInvalid(f"{count:,} key drawings, more than limits.max_keys_per_drop "
                                f"({limits.max_keys_per_drop:,}); split the shot, or raise the limit in config.yaml")
    for layer, frames in keys.items():
        ordered = sorted(frames)
        for a, b in zip(ordered, ordered[1:]):
            if b - a > limits.max_frames_between_keys:
                raise ShotFolderInvalid(
                    f"layer {layer}: keys {frames[a].name} and {frames[b].name} are {b - a:,} frames apart, more "
                    f"than limits.max_frames_between_keys ({limits.max_frames_between_keys:,}); check the frame "
                    "numbers, or raise the limit in config.yaml")
        if ordered[-1] > limits.max_frame:
            raise ShotFolderInvalid(f"layer {layer}: key {frames[ordered[-1]].name} is frame {ordered[-1]:,}, more than "
                                    f"limits.max_frame ({limits.max_frame:,}); check the frame number, or raise the "
                                    "limit in config.yaml")


def check_file_sizes(sizes: dict[Path, int | None], limit: int) -> None:
    """limits.max_file_bytes, from sizes stat gave (None: the file vanished), before a byte is read:
    a sparse 1 GiB "PNG" is refused unread."""
    for path, size in sizes.items():
        if size is not None and size > limit:
            raise ShotFolderInvalid(f"{path}: {size:,} bytes, more than limits.max_file_bytes ({limit:,}); "
                                    "re-export it smaller, or raise the limit in config.yaml")
