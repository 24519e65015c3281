"""Publishing a version: comp, contact sheet, manifest and timelines from a pipeline's result.

`publish_version` takes data (the shot, the pipeline, the final drawings, the stage
reports, where the job staged its files) and works for any pipeline. Without a timing
stage the drawings are the keys, published on their exposure (each held until the next);
with one, they are every scheduled drawing. Stage folders (refine/, color/, light/ and
their variants) are hard links to the checkpoints, renamed to the studio's output names.
"""

from __future__ import annotations

import platform
import resource
import shutil
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import numpy as np

from . import __version__, folders, movie, outputs
from .contact import Tile, write_contact_sheet
from .editorial import Sequence, update_sequence_timeline, version_timeline, write_timeline
from .errors import OutputError
from .images import composite_over, write_png
from .jobs import DropInfo
from .logs import JobLog
from .naming import Naming, ShotId
from .pipeline import Pipeline, StageReport
from .shot import ShotInputs
from .stages.base import Frames


@dataclass(frozen=True)
class Provenance:
    """Who made the version from what, for the manifest, the timelines and latest.json."""

    job_id: int
    node: str
    device: str
    started: float  # time.monotonic() when the job (attempt) started
    inputs: list[dict]  # every input file read, with the sha256 of the bytes read (the job's snapshot)
    drop: DropInfo | None = None  # the drop the job was made for (None: a job without one)
    series: str = ""  # the job's attempt series (id, generation, creation): a resume knows its own version by it


@dataclass(frozen=True)
class Version:
    number: int
    path: Path
    otio: Path
    sequence_otio: Path
    latest: bool = True  # False: a newer drop's version was published first and stays latest
    latest_version: int | None = None  # the version latest.json points at after this publish
    warnings: tuple[str, ...] = ()  # for the job: what of the publish around the version did not happen

    @property
    def artifacts(self) -> dict[str, str]:
        return {"version": str(self.path), "otio": str(self.otio), "contact": str(self.path / "contact.png"),
                "manifest": str(self.path / "manifest.json"), "sequence_otio": str(self.sequence_otio)}


def publish_version(shot: ShotInputs, pipeline: Pipeline, drawings: Frames, reports: list[StageReport], *,
                    staging: Path, naming: Naming, studio_root: Path, made_by: Provenance,
                    locks: outputs.PublishLocks | None = None, make_movie: bool = False) -> Version:
    """Write the version's files into `staging`, then rename it to the next vNNN of the shot. `locks`
    serialise the version number, latest.json and the sequence timeline (default: file locks).
    `make_movie`: also comp.mp4, the comp as a movie for the tracker (when ffmpeg is installed)."""
    locks = locks or outputs.PublishLocks()
    schedule = shot.schedule
    layers = [l for l in shot.layer_order if any(k[0] == l for k in drawings)]
    shown = drawings if pipeline.timing_stage else schedule.held(drawings)
    first, last = schedule.frame_range()
    every = _every_frame(shown, schedule, layers, first, last)

    _link_stage_folders(staging, pipeline, reports, shot.id.shot, naming)
    (staging / "frames").mkdir(exist_ok=True)  # fails if staging moved away with its shot: nothing above is made
    folders.write_frames(staging / "frames", every, compression=1,
                         name=lambda layer, frame: naming.format_output_name(shot.id.shot, layer, frame))
    _write_comp(staging / "comp", every, layers, schedule, first, last,
                lambda frame: naming.format_comp_name(shot.id.shot, frame))
    warnings = []
    if make_movie and movie.ffmpeg() is not None:  # before the version's number: encoding holds no lock
        try:
            comp = [staging / "comp" / naming.format_comp_name(shot.id.shot, f) for f in range(first, last + 1)]
            movie.write_movie(comp, shot.fps, staging / movie.MOVIE_NAME)
        except movie.MovieError as exc:  # the version stands without it: the tracker gets the contact sheet
            warnings.append(f"no movie for the tracker: {exc}")

    with locks.version_slot(shot.output_dir) as number:
        final = shot.output_dir / f"v{number:03d}"
        current = outputs.read_latest(shot.output_dir)
        latest = _is_newer(made_by.drop, current)
        title = f"{shot.id}  v{number:03d}  job {made_by.job_id}  pipeline {pipeline.name}"
        write_contact_sheet(staging / "contact.png", _tiles(shot, pipeline, drawings, layers), title)
        sequences = _sequences(final, shot, layers, naming, first, last)
        metadata = _metadata(made_by.job_id, pipeline.name, number, shot.id, made_by.node)
        key_frames = sorted({f for fr in shot.keys.values() for f in fr})
        otio_name = outputs.version_otio_name(shot.id.shot, number)
        write_timeline(version_timeline(shot.id, number, shot.fps, sequences, key_frames, metadata),
                       staging / otio_name)
        manifest = _manifest(shot, pipeline, reports, layers, number, made_by)
        if not latest:
            manifest["superseded_by"] = {"version": current["version"], "drop": current.get("drop")}
        outputs.write_json(staging / "manifest.json", manifest)
        JobLog(staging / "job.log").footer(f"done: v{number:03d}", made_by.started)
        outputs.commit_version(staging, shot.output_dir, number, {
            "version": number, "path": final.name, "drop": made_by.drop.to_dict() if made_by.drop else None,
        } if latest else None)

    sequence_otio = _sequence_path(studio_root, shot.id)
    if latest:  # the sequence shows what latest.json shows
        warnings += _update_sequence(locks, sequence_otio, shot.id, number, shot.fps, sequences[0], metadata)
    return Version(number, final, final / otio_name, sequence_otio, latest,
                   number if latest else current["version"], tuple(warnings))


def finish_interrupted_publish(shot_id: ShotId, output_dir: Path, series: str, drop: DropInfo | None, *,
                               naming: Naming, studio_root: Path,
                               locks: outputs.PublishLocks | None = None) -> Version | None:
    """A resumed attempt whose own version is already there (its worker was killed between the rename
    and latest.json or the sequence timeline): finish that publish instead of publishing a copy.
    None when the attempt series made no version."""
    found = outputs.version_made_by(output_dir, series)
    if found is None:
        return None
    number, manifest = found
    final = output_dir / f"v{number:03d}"
    locks = locks or outputs.PublishLocks()
    with locks.shot(output_dir):
        current = outputs.read_latest(output_dir)
        latest = "superseded_by" not in manifest and _is_newer(drop, current)
        if latest:
            outputs.point_latest(output_dir, {"version": number, "path": final.name, "drop": manifest.get("drop")})
    timing = manifest["timing"]
    first, last = timing["frame_range"]
    prefix, suffix = naming.output_prefix_suffix(shot_id.shot, None)
    comp = Sequence("comp", final / "comp", prefix, suffix, first, last, naming.frame_padding)
    sequence_otio = _sequence_path(studio_root, shot_id)
    warnings = []
    if latest:
        warnings = _update_sequence(locks, sequence_otio, shot_id, number, timing["fps"], comp,
                                    _metadata(manifest["job_id"], manifest["pipeline"]["name"], number, shot_id,
                                              manifest["node"]))
    return Version(number, final, final / outputs.version_otio_name(shot_id.shot, number), sequence_otio, latest,
                   number if latest else (current or {}).get("version", number), tuple(warnings))


def _update_sequence(locks: outputs.PublishLocks, path: Path, shot_id: ShotId, number: int, fps: float,
                     comp: Sequence, metadata: dict) -> list[str]:
    """Show the version in its sequence timeline. The version is published by now: a timeline that cannot
    be written (a read-only editorial folder, a name too long for its lock file) is a warning on the job,
    not a failure whose retries would publish copies."""
    try:
        with locks.sequence(path):
            update_sequence_timeline(path, shot_id, number, fps, comp, metadata)
    except (OutputError, OSError) as exc:
        reason = (exc.strerror or str(exc)) if isinstance(exc, OSError) else str(exc)
        return [f"v{number:03d} is published, but the sequence timeline {path} was not updated: {reason}"]
    return []


def _sequence_path(studio_root: Path, shot_id: ShotId) -> Path:
    return studio_root / shot_id.show / "editorial" / f"{shot_id.seq}.otio"


def _metadata(job_id: int, pipeline: str, number: int, shot_id: ShotId, node: str) -> dict:
    """What the version's and the sequence's timelines record of who made the version."""
    return {"job_id": job_id, "pipeline": pipeline, "version": number, "shot": str(shot_id), "node": node}


def _is_newer(drop: DropInfo | None, current: dict | None) -> bool:
    """Whether a version of `drop` may become latest: only if no version of a newer drop is latest
    (a version of the same drop, a manual retry say, replaces it)."""
    theirs = (current or {}).get("drop") or {}
    if drop is None or not theirs.get("detected_at"):
        return True
    return datetime.fromisoformat(theirs["detected_at"]) <= drop.detected_at


def _every_frame(shown: Frames, schedule, layers: list[str], first: int, last: int) -> Frames:
    """Every frame of the shot for every layer: the drawing exposed there, or one transparent frame."""
    out: Frames = {}
    for layer in layers:
        blank = np.zeros_like(next(img for (l, _), img in shown.items() if l == layer))
        for frame in range(first, last + 1):
            drawing = schedule.shown(layer, frame)
            out[(layer, frame)] = blank if drawing is None else shown[(layer, drawing)]
    return out


def _link_stage_folders(staging: Path, pipeline: Pipeline, reports: list[StageReport], shot: str,
                        naming: Naming) -> None:
    """refine/, color/, light/ (and their variant subfolders): the checkpoints under the output names.
    A stage without a publish folder (a timing stage: its drawings are frames/ already) publishes its
    variants alone, under its name: inbetween/confidence/, so the review page can lay the in-between
    confidence over the in-betweens as it does the colour confidence over the keys."""
    for report in reports:
        spec = pipeline.steps[report.index].spec
        variants = sorted(p for p in report.checkpoint.iterdir() if p.is_dir()) if report.checkpoint.is_dir() else []
        if spec.publish_folder:
            dest_root, sources = staging / spec.publish_folder, [report.checkpoint, *variants]
        elif variants:
            dest_root, sources = staging / spec.name, variants
        else:
            continue
        shutil.rmtree(dest_root, ignore_errors=True)
        dest_root.mkdir()  # the folder first, then its variants: nothing above staging is made
        for source in sources:
            dest = dest_root / source.relative_to(report.checkpoint)
            dest.mkdir(exist_ok=True)
            for (layer, frame), path in folders.frame_files(source).items():
                folders.link_or_copy(path, dest / naming.format_output_name(shot, layer, frame))


def _write_comp(folder: Path, every: Frames, layers: list[str], schedule, first: int, last: int, name) -> None:
    """All layers composited bottom to top; frames showing the same drawings share one file."""
    folder.mkdir(exist_ok=True)
    done: dict[tuple, Path] = {}
    for frame in range(first, last + 1):
        path = folder / name(frame)
        shown = tuple(schedule.shown(layer, frame) for layer in layers)
        if shown in done:
            folders.link_or_copy(done[shown], path)
            continue
        img = None
        for layer in layers:
            img = every[(layer, frame)] if img is None else composite_over(img, every[(layer, frame)])
        write_png(path, img, 1)
        done[shown] = path


def _tiles(shot: ShotInputs, pipeline: Pipeline, drawings: Frames, layers: list[str]) -> list[Tile]:
    made_by = pipeline.timing_stage or "keys"
    tiles = []
    for layer in layers:
        keys = set(shot.keys.get(layer, {}))
        for drawing in sorted(d for (l, d) in drawings if l == layer):
            kind = "key" if drawing in keys else "inbetween"
            tiles.append(Tile(drawings[(layer, drawing)], drawing, kind, "key" if kind == "key" else made_by, layer))
    return tiles


def _sequences(final: Path, shot: ShotInputs, layers: list[str], naming: Naming, first: int,
               last: int) -> list[Sequence]:
    """The comp, then the layers top to bottom, as they will lie in the version folder `final`."""
    pad = naming.frame_padding
    prefix, suffix = naming.output_prefix_suffix(shot.id.shot, None)
    out = [Sequence("comp", final / "comp", prefix, suffix, first, last, pad)]
    for layer in reversed(layers):
        prefix, suffix = naming.output_prefix_suffix(shot.id.shot, layer)
        out.append(Sequence(layer, final / "frames", prefix, suffix, first, last, pad))
    return out


def _manifest(shot: ShotInputs, pipeline: Pipeline, reports: list[StageReport], layers: list[str], number: int,
              made_by: Provenance) -> dict:
    first, last = shot.schedule.frame_range()
    return {
        "quickart": __version__, "job_id": made_by.job_id, "job_series": made_by.series, "shot": str(shot.id), "version": number,
        "node": made_by.node, "device": made_by.device, "python": platform.python_version(),
        "pipeline": {"name": pipeline.name, "file": str(pipeline.path), "steps": pipeline.describe(),
                     "notes": list(pipeline.notes)},
        "timing": {"source": shot.schedule.source, "timing": shot.timing, "fps": shot.fps,
                   "frame_range": [first, last], "layers": layers},
        "inputs": made_by.inputs,
        "drop": made_by.drop.to_dict() if made_by.drop else None,
        "models": {k: v for r in reports for k, v in (r.report.get("models") or {}).items()},
        "stages": [r.to_manifest() for r in reports],
        "seconds_total": round(time.monotonic() - made_by.started, 3),
        "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "problems": shot.problems,
    }
