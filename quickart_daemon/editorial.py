"""OpenTimelineIO timelines that editorial imports directly (Resolve, Hiero/Nuke Studio, RV, Kdenlive).

Two files come out of a published version:

* ``{shot}_v{version:03d}.otio`` in the version folder: one video track per image
  sequence of that version. Track order follows what editors expect of a
  timeline: V1 is the bottom track and the highest track is what plays. So the
  layers sit below in compositing order (V1 = the bottom layer, e.g. ``bg``) and
  the comp is the top track: the shot plays as the final picture, and an editor
  or supervisor can disable the comp track to look at the layers underneath.
  Callers list ``sequences`` most visible first: the comp, then the layers from
  top to bottom.
* ``{show}/editorial/{seq}.otio``: the latest version of every shot of a
  sequence, one clip per shot on one video track, in shot-name order.

Media times are shot frame numbers (a clip of frames 1001-1048 has a source range
starting at frame 1001), so the timecode an editor reads names the frame on disk.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import opentimelineio as otio

from .errors import OutputError
from .images import write_bytes_atomic
from .naming import ShotId

#: Marker colour of key drawings on the comp clip.
KEY_MARKER_COLOR = otio.schema.MarkerColor.RED


@dataclass(frozen=True)
class Sequence:
    """One image sequence in a version folder."""

    name: str  # e.g. "comp" or "char"
    folder: Path  # absolute folder holding the frames
    prefix: str  # file name before the frame number, e.g. "sh0010."
    suffix: str  # e.g. ".png"
    start: int  # first frame
    end: int  # last frame (inclusive)
    padding: int  # frame number padding


def _frames(start: int, count: int, fps: float) -> otio.opentime.TimeRange:
    return otio.opentime.TimeRange(otio.opentime.RationalTime(start, fps), otio.opentime.RationalTime(count, fps))


def _clip(seq: Sequence, fps: float, name: str, metadata: dict) -> otio.schema.Clip:
    if seq.end < seq.start:
        raise ValueError(f"sequence {seq.name!r}: end frame {seq.end} is before start frame {seq.start}")
    frames = _frames(seq.start, seq.end - seq.start + 1, fps)
    # A plain absolute path, not realpath: symlinked studio mounts must keep the name
    # the other machines know them by.
    base = Path(os.path.abspath(seq.folder)).as_posix().rstrip("/") + "/"
    ref = otio.schema.ImageSequenceReference(
        target_url_base=base,
        name_prefix=seq.prefix,
        name_suffix=seq.suffix,
        start_frame=seq.start,
        frame_step=1,
        rate=fps,
        frame_zero_padding=seq.padding,
        missing_frame_policy=otio.schema.ImageSequenceReference.MissingFramePolicy.error,
        available_range=frames,
    )
    return otio.schema.Clip(name=name, media_reference=ref, source_range=frames, metadata={"quickart": metadata})


def version_timeline(shot: ShotId, version: int, fps: float, sequences: list[Sequence],
                     key_frames: list[int], metadata: dict) -> otio.schema.Timeline:
    """The timeline of one version: ``sequences[0]`` is the comp (top track), then layers top to bottom.

    ``metadata`` (job id, pipeline, ...) is stored under ``metadata["quickart"]`` of the
    timeline, together with the shot and version.
    """
    if not sequences:
        raise ValueError(f"{shot} v{version:03d}: a version timeline needs at least one image sequence")
    comp = sequences[0]
    outside = [f for f in key_frames if not comp.start <= f <= comp.end]
    if outside:
        raise ValueError(f"{shot} v{version:03d}: key frames {outside} lie outside {comp.start}-{comp.end}")
    info = {**metadata, "shot": str(shot), "version": version}
    origin = min(s.start for s in sequences)
    timeline = otio.schema.Timeline(
        name=f"{shot.shot}_v{version:03d}",
        # timeline timecode starts at the first shot frame, like the media times
        global_start_time=otio.opentime.RationalTime(origin, fps),
        metadata={"quickart": info},
    )
    # OTIO stacks list the bottom track first: reverse so the comp ends on top.
    for seq in reversed(sequences):
        track = otio.schema.Track(name=seq.name, kind=otio.schema.TrackKind.Video)
        if seq.start > origin:  # a layer starting later stays in sync with the comp
            track.append(otio.schema.Gap(source_range=_frames(0, seq.start - origin, fps)))
        clip = _clip(seq, fps, f"{shot.shot}_{seq.name}_v{version:03d}",
                     {"shot": str(shot), "version": version, "sequence": seq.name})
        track.append(clip)
        timeline.tracks.append(track)
    comp_clip = timeline.tracks[-1][-1]
    for frame in sorted(set(key_frames)):
        comp_clip.markers.append(otio.schema.Marker(
            name=f"key {frame}", marked_range=_frames(frame, 1, fps), color=KEY_MARKER_COLOR))
    return timeline


def write_timeline(timeline: otio.schema.Timeline, path: Path) -> None:
    """Write ``timeline`` as ``.otio`` JSON atomically (temporary name, then rename)."""
    try:
        text = otio.adapters.write_to_string(timeline, "otio_json")
    except Exception as exc:  # OTIO raises its own types for unserialisable metadata
        raise OutputError(f"{path}: cannot serialise timeline {timeline.name!r}: {exc}") from None
    write_bytes_atomic(path, text.encode("utf-8"))


def _shot_of(clip: otio.schema.Clip) -> str:
    """The shot name of a clip in the sequence timeline (its name is ``{shot}_v{version:03d}``)."""
    return str(clip.metadata.get("quickart", {}).get("shot_name", clip.name.rsplit("_v", 1)[0]))


def update_sequence_timeline(path: Path, shot: ShotId, version: int, fps: float, comp: Sequence,
                             metadata: dict) -> None:
    """Put ``shot``'s comp of ``version`` into the sequence timeline at ``path``.

    Replaces that shot's clip if present (unless it shows a newer version), inserts it in
    shot-name order otherwise, and keeps every other shot. The write is an atomic rename, so
    readers never see half a file; the read-modify-write must be serialised by the caller
    (`outputs.PublishLocks.sequence`: a file lock on one machine, a database lock for many).
    """
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(f"{path.parent}: cannot create the editorial folder: {exc.strerror or exc}") from None
    if path.exists():
        try:
            timeline = otio.adapters.read_from_file(str(path))
        except Exception as exc:
            raise OutputError(f"{path}: existing sequence timeline is unreadable ({exc}); "
                              "move it aside and re-publish the sequence's shots") from None
    else:
        timeline = otio.schema.Timeline(name=shot.seq)
    tracks = timeline.video_tracks()
    if tracks:
        track = tracks[0]
    else:
        track = otio.schema.Track(name=shot.seq, kind=otio.schema.TrackKind.Video)
        timeline.tracks.append(track)
    clips = {_shot_of(c): c for c in track if isinstance(c, otio.schema.Clip)}
    current = clips.get(shot.shot)
    if current is not None and int(current.metadata.get("quickart", {}).get("version", 0)) > version:
        return  # a newer version was published first (jobs finish out of order): keep it
    info = {**metadata, "shot": str(shot), "shot_name": shot.shot, "version": version}
    clips[shot.shot] = _clip(comp, fps, f"{shot.shot}_v{version:03d}", info)
    track.clear()  # detaches the clips, so they can be appended again in order
    for name in sorted(clips):
        track.append(clips[name])
    write_timeline(timeline, path)
