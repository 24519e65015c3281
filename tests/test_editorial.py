"""Editorial timelines: written with real frames on disk, read back with OTIO's own reader.

The baseline in tests/data/version_timeline_baseline.otio is regenerated with

    python -m tests.test_editorial --regen
"""

from __future__ import annotations

import difflib
import json
import multiprocessing
import sys
from pathlib import Path

import numpy as np
import opentimelineio as otio
import pytest

from quickart_daemon.editorial import Sequence, update_sequence_timeline, version_timeline, write_timeline
from quickart_daemon.outputs import PublishLocks
from quickart_daemon.images import write_png
from quickart_daemon.naming import Naming, ShotId

BASELINE = Path(__file__).parent / "data" / "version_timeline_baseline.otio"
REGEN = "python -m tests.test_editorial --regen"  # run from the repository root
SHOT = ShotId("BRV", "sq010", "sh0040")
NAMING = Naming(shot_path="{show}/{seq}/{shot}", key_file="{shot}_{layer}.{frame}.png",
                key_file_single="{shot}.{frame}.png", output_file="{shot}_{layer}.{frame}.png",
                comp_file="{shot}.{frame}.png", frame_padding=4)
META = {"job_id": 42, "pipeline": "standard", "stages": ["refine", "inbetween-blend"]}


def _version_dir(root: Path) -> Path:
    return root / "BRV" / "sq010" / "sh0040" / "quickart" / "v003"


def _sequences(root: Path, char_start: int = 1001) -> list[Sequence]:
    """comp first, then layers top to bottom, as the worker passes them."""
    vdir = _version_dir(root)
    comp = Sequence("comp", vdir / "comp", *NAMING.output_prefix_suffix("sh0040", None), 1001, 1008, 4)
    layers = [Sequence(layer, vdir / "frames", *NAMING.output_prefix_suffix("sh0040", layer), start, 1008, 4)
              for layer, start in (("char", char_start), ("bg", 1001))]
    return [comp, *layers]


def _write_frames(seqs: list[Sequence]) -> None:
    tiny = np.zeros((4, 6, 4), np.uint8)
    for seq in seqs:
        seq.folder.mkdir(parents=True, exist_ok=True)
        for frame in range(seq.start, seq.end + 1):
            write_png(seq.folder / f"{seq.prefix}{frame:0{seq.padding}d}{seq.suffix}", tiny)


def _round_trip(tmp_path: Path, timeline: otio.schema.Timeline) -> otio.schema.Timeline:
    path = _version_dir(tmp_path) / "sh0040_v003.otio"
    path.parent.mkdir(parents=True, exist_ok=True)
    write_timeline(timeline, path)
    assert not [p for p in path.parent.iterdir() if p.name.endswith(".tmp")]
    return otio.adapters.read_from_file(str(path))


def test_version_timeline_names_frames_on_disk(tmp_path):
    seqs = _sequences(tmp_path)
    _write_frames(seqs)
    tl = _round_trip(tmp_path, version_timeline(SHOT, 3, 24.0, seqs, [1008, 1001, 1005], META))

    assert tl.name == "sh0040_v003"
    assert tl.global_start_time == otio.opentime.RationalTime(1001, 24)
    # V1 at the bottom, comp on the top (most visible) track
    assert [t.name for t in tl.video_tracks()] == ["bg", "char", "comp"]
    for track, seq in zip(tl.video_tracks(), reversed(seqs)):
        (clip,) = list(track)
        ref = clip.media_reference
        assert isinstance(ref, otio.schema.ImageSequenceReference)
        assert ref.rate == 24.0 and ref.start_frame == 1001 and ref.frame_step == 1
        assert ref.frame_zero_padding == 4
        assert (ref.name_prefix, ref.name_suffix) == (seq.prefix, seq.suffix)
        assert ref.missing_frame_policy == otio.schema.ImageSequenceReference.MissingFramePolicy.error
        assert ref.target_url_base == seq.folder.as_posix() + "/"
        assert ref.abstract_target_url("#") == f"{seq.folder.as_posix()}/{seq.prefix}#{seq.suffix}"
        assert ref.number_of_images_in_sequence() == 8
        first, last = Path(ref.target_url_for_image_number(0)), Path(ref.target_url_for_image_number(7))
        assert first.is_file() and first.name == f"{seq.prefix}1001{seq.suffix}"
        assert last.is_file() and last.name == f"{seq.prefix}1008{seq.suffix}"
        for rng in (clip.source_range, ref.available_range):
            assert rng.start_time == otio.opentime.RationalTime(1001, 24)
            assert rng.duration == otio.opentime.RationalTime(8, 24)
        assert clip.metadata["quickart"]["sequence"] == seq.name

    assert Path(tl.video_tracks()[2][0].media_reference.target_url_for_image_number(0)).name == "sh0040.1001.png"
    assert Path(tl.video_tracks()[1][0].media_reference.target_url_for_image_number(0)).name == "sh0040_char.1001.png"

    comp_clip = tl.video_tracks()[-1][0]
    assert [(m.name, m.marked_range.start_time.to_frames(), m.color) for m in comp_clip.markers] == [
        ("key 1001", 1001, "RED"), ("key 1005", 1005, "RED"), ("key 1008", 1008, "RED")]
    assert all(not c.markers for t in tl.video_tracks()[:-1] for c in t)

    meta = tl.metadata["quickart"]
    assert meta["job_id"] == 42 and meta["pipeline"] == "standard" and meta["version"] == 3
    assert meta["shot"] == "BRV/sq010/sh0040" and list(meta["stages"]) == ["refine", "inbetween-blend"]


def test_layer_starting_later_stays_in_sync(tmp_path):
    tl = version_timeline(SHOT, 3, 24.0, _sequences(tmp_path, char_start=1004), [1001], META)
    char = tl.video_tracks()[1]
    assert isinstance(char[0], otio.schema.Gap) and char[0].duration().to_frames() == 3
    assert char.range_of_child_at_index(1).start_time.to_frames() == 3  # record time of frame 1004
    assert char[1].source_range.start_time.to_frames() == 1004


def test_bad_input_is_refused(tmp_path):
    with pytest.raises(ValueError, match="outside"):
        version_timeline(SHOT, 3, 24.0, _sequences(tmp_path), [1009], META)
    with pytest.raises(ValueError):
        version_timeline(SHOT, 3, 24.0, [], [], META)


# sequence timeline ----------------------------------------------------------------

def _comp(root: Path, shot: str, version: int, end: int = 1008) -> Sequence:
    folder = root / "BRV" / "sq010" / shot / "quickart" / f"v{version:03d}" / "comp"
    return Sequence("comp", folder, f"{shot}.", ".png", 1001, end, 4)


def _shots(path: Path) -> list[tuple[str, int]]:
    (track,) = otio.adapters.read_from_file(str(path)).video_tracks()
    return [(c.name, c.metadata["quickart"]["version"]) for c in track]


def test_sequence_timeline_sorted_and_replaced(tmp_path):
    path = tmp_path / "BRV" / "editorial" / "sq010.otio"  # editorial/ does not exist yet
    for shot, version in (("sh0030", 1), ("sh0010", 2)):
        update_sequence_timeline(path, ShotId("BRV", "sq010", shot), version, 24.0,
                                 _comp(tmp_path, shot, version), {"job_id": version})
    assert _shots(path) == [("sh0010_v002", 2), ("sh0030_v001", 1)]

    update_sequence_timeline(path, ShotId("BRV", "sq010", "sh0030"), 4, 24.0,
                             _comp(tmp_path, "sh0030", 4, end=1020), {"job_id": 9})
    assert _shots(path) == [("sh0010_v002", 2), ("sh0030_v004", 4)]
    tl = otio.adapters.read_from_file(str(path))
    clip = tl.video_tracks()[0][1]
    assert clip.media_reference.target_url_base.endswith("/sh0030/quickart/v004/comp/")
    assert clip.source_range.duration.to_frames() == 20
    assert clip.metadata["quickart"]["job_id"] == 9
    assert tl.video_tracks()[0].range_of_child_at_index(1).start_time.to_frames() == 8  # after sh0010
    assert sorted(p.name for p in path.parent.iterdir()) == ["sq010.otio"]  # no temporary file left

    # a retried older job finishing late does not replace the newer version
    update_sequence_timeline(path, ShotId("BRV", "sq010", "sh0030"), 3, 24.0, _comp(tmp_path, "sh0030", 3), {})
    assert _shots(path) == [("sh0010_v002", 2), ("sh0030_v004", 4)]


def _publish(args: tuple[str, str, int]) -> None:
    root, shot, rounds = args
    path = Path(root) / "BRV" / "editorial" / "sq010.otio"
    for version in range(1, rounds + 1):
        with PublishLocks().sequence(path):  # what publishing holds around the update on one machine
            update_sequence_timeline(path, ShotId("BRV", "sq010", shot), version, 24.0,
                                     _comp(Path(root), shot, version), {"pid": multiprocessing.current_process().name})


def test_sequence_timeline_concurrent_publishers(tmp_path):
    shots = [f"sh{n:03d}0" for n in range(8, 0, -1)]
    with multiprocessing.get_context("spawn").Pool(8) as pool:
        pool.map(_publish, [(str(tmp_path), shot, 5) for shot in shots])
    path = tmp_path / "BRV" / "editorial" / "sq010.otio"
    assert _shots(path) == [(f"{s}_v005", 5) for s in sorted(shots)]


# baseline -------------------------------------------------------------------------

def _baseline_json(root: Path) -> dict:
    """The version timeline of a fixed shot, with the temporary root replaced by "{root}"."""
    tl = version_timeline(SHOT, 3, 24.0, _sequences(root, char_start=1003), [1001, 1005, 1008], META)
    text = otio.adapters.write_to_string(tl, "otio_json")
    return json.loads(text.replace(root.as_posix(), "{root}"))


def test_version_timeline_matches_baseline(tmp_path):
    fresh = _baseline_json(tmp_path)
    stored = json.loads(BASELINE.read_text())
    if fresh != stored:
        diff = "\n".join(list(difflib.unified_diff(
            json.dumps(stored, indent=2, sort_keys=True).splitlines(),
            json.dumps(fresh, indent=2, sort_keys=True).splitlines(), "baseline", "fresh", lineterm=""))[:60])
        pytest.fail(f"version timeline differs from {BASELINE.name}; if the change is intended, "
                    f"regenerate it with `{REGEN}` and review the diff\n{diff}")


if __name__ == "__main__":
    if sys.argv[1:] != ["--regen"]:
        sys.exit(f"usage: {REGEN}")
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        data = _baseline_json(Path(tmp))
    BASELINE.parent.mkdir(parents=True, exist_ok=True)
    BASELINE.write_text(json.dumps(data, indent=4) + "\n")
    print(f"wrote {BASELINE}")
