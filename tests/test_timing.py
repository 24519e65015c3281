"""The drawing schedule: timing rules, timesheet.csv, XDTS, and every contradiction with the keys on disk."""

from __future__ import annotations

import json

import pytest

from quickart_daemon.errors import TimingError
from quickart_daemon.timing import (
    Exposure,
    Inbetween,
    Schedule,
    load_schedule,
    read_timesheet_csv,
    read_xdts,
    schedule_from_timing,
)


def shown(schedule: Schedule, layer: str) -> list[int | None]:
    return [e.drawing for e in schedule.layers[layer]]


# --- timing ---------------------------------------------------------------------------


def test_on_twos_exact_frames():
    s = schedule_from_timing({"main": [1001, 1009]}, timing=2)
    assert s.source == "timing"
    assert s.frame_range() == (1001, 1010)
    assert s.drawings("main") == [1001, 1003, 1005, 1007, 1009]
    assert [e.frame for e in s.layers["main"]] == list(range(1001, 1011))
    assert shown(s, "main") == [1001, 1001, 1003, 1003, 1005, 1005, 1007, 1007, 1009, 1009]


def test_on_ones_and_threes():
    ones = schedule_from_timing({"main": [1, 4]}, timing=1)
    assert ones.drawings("main") == [1, 2, 3, 4]
    assert ones.frame_range() == (1, 4)

    threes = schedule_from_timing({"main": [1001, 1013]}, timing=3)
    assert threes.drawings("main") == [1001, 1004, 1007, 1010, 1013]
    assert threes.frame_range() == (1001, 1015)
    assert shown(threes, "main")[-3:] == [1013, 1013, 1013]


def test_uneven_gap_holds_last_inbetween_shorter():
    s = schedule_from_timing({"main": [1001, 1006]}, timing=2)
    assert shown(s, "main") == [1001, 1001, 1003, 1003, 1005, 1006, 1006]


def test_hold_last():
    s = schedule_from_timing({"main": [1001, 1005]}, timing=2, hold_last=6)
    assert s.frame_range() == (1001, 1010)
    assert shown(s, "main")[4:] == [1005] * 6
    one = schedule_from_timing({"main": [1001]}, timing=2, hold_last=1)
    assert one.frame_range() == (1001, 1001)
    assert one.inbetweens("main") == []


def test_layers_share_one_range():
    s = schedule_from_timing({"bg": [1001], "char": [1005, 1009]}, timing=2, hold_last=2)
    assert s.frame_range() == (1001, 1010)
    # bg holds its only key for hold_last frames, then shows nothing
    assert shown(s, "bg") == [1001, 1001] + [None] * 8
    # char shows nothing before its first key
    assert shown(s, "char") == [None] * 4 + [1005, 1005, 1007, 1007, 1009, 1009]
    assert s.shown("char", 1004) is None
    assert s.shown("char", 1008) == 1007
    assert s.shown("char", 1200) is None


def test_inbetween_t_values():
    s = schedule_from_timing({"main": [1001, 1009, 1013]}, timing=2)
    assert s.inbetweens("main") == [
        Inbetween(1003, 1001, 1009, 0.25),
        Inbetween(1005, 1001, 1009, 0.5),
        Inbetween(1007, 1001, 1009, 0.75),
        Inbetween(1011, 1009, 1013, 0.5),
    ]


@pytest.mark.parametrize("timing", [0, 13, -2, 2.0, True, "2"])
def test_bad_timing(timing):
    with pytest.raises(TimingError, match="timing"):
        schedule_from_timing({"main": [1001, 1009]}, timing=timing)


def test_bad_hold_last_and_no_keys():
    with pytest.raises(TimingError, match="hold_last"):
        schedule_from_timing({"main": [1001]}, timing=2, hold_last=0)
    with pytest.raises(TimingError, match="no key drawings"):
        schedule_from_timing({"main": []}, timing=2)


def test_round_trip():
    s = schedule_from_timing({"bg": [1001], "char": [1003, 1007]}, timing=2)
    data = json.loads(json.dumps(s.to_dict()))
    back = Schedule.from_dict(data)
    assert back == s
    assert back.layers["bg"][0] == Exposure(1001, 1001)
    assert back.layers["bg"][-1] == Exposure(1008, None)
    assert back.inbetweens("char") == [Inbetween(1005, 1003, 1007, 0.5)]
    with pytest.raises(TimingError, match="malformed"):
        Schedule.from_dict({"layers": {"a": [[1]]}, "keys": {}, "source": "x"})


def test_unknown_layer():
    s = schedule_from_timing({"main": [1]}, timing=1)
    with pytest.raises(TimingError, match="'fx'"):
        s.shown("fx", 1)


# --- timesheet.csv --------------------------------------------------------------------

CSV = """\ufeffframe, bg , char
1001, A ,1
1002,,
1003,,2
1004,,x
1005,,1
1006,,
1007,,3

"""


def write(tmp_path, name, text):
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_csv_holds_empties_repeats(tmp_path):
    path = write(tmp_path, "timesheet.csv", CSV)
    s = read_timesheet_csv(path, {"bg": [1001], "char": [1001, 1007]}, start_frame=1001)
    assert s.source == "timesheet.csv"
    assert s.frame_range() == (1001, 1007)
    assert shown(s, "bg") == [1001] * 7
    # "2" is a new drawing at 1003, "x" shows nothing, "1" at 1005 repeats the drawing from 1001
    assert shown(s, "char") == [1001, 1001, 1003, None, 1001, 1001, 1007]
    assert s.drawings("char") == [1001, 1003, 1007]
    assert s.inbetweens("char") == [Inbetween(1003, 1001, 1007, 2 / 6)]
    assert s.keys == {"bg": [1001], "char": [1001, 1007]}


def test_csv_one_based_short_rows(tmp_path):
    path = write(tmp_path, "timesheet.csv", "frame,main\n1,1\n2\n3,b\n4,c\n5,01\n")
    s = read_timesheet_csv(path, {"main": [1, 4]}, start_frame=1)
    assert shown(s, "main") == [1, 1, 3, 4, 1]  # "01" repeats drawing "1"
    assert [i.t for i in s.inbetweens("main")] == [2 / 3]


def test_csv_key_on_hold_is_named(tmp_path):
    path = write(tmp_path, "timesheet.csv", CSV)
    with pytest.raises(TimingError) as err:
        read_timesheet_csv(path, {"bg": [1001], "char": [1001, 1002, 1007]}, start_frame=1001)
    assert "'char'" in str(err.value) and "1002" in str(err.value) and "holds" in str(err.value)
    assert "timesheet.csv" in str(err.value)


@pytest.mark.parametrize(
    "key, words",
    [(1004, "empty cell"), (1005, "repeats drawing '1' from frame 1001"), (1008, "outside the sheet")],
)
def test_csv_key_contradictions(tmp_path, key, words):
    path = write(tmp_path, "timesheet.csv", CSV)
    with pytest.raises(TimingError, match=str(key)) as err:
        read_timesheet_csv(path, {"bg": [1001], "char": [1001, key, 1007]}, start_frame=1001)
    assert words in str(err.value)


def test_csv_layer_without_keys_and_keys_without_column(tmp_path):
    path = write(tmp_path, "timesheet.csv", CSV)
    with pytest.raises(TimingError, match="'bg' exposes drawings from frame 1001 but has no key"):
        read_timesheet_csv(path, {"char": [1001, 1007]}, start_frame=1001)
    with pytest.raises(TimingError, match="'fx' has key drawings but no column"):
        read_timesheet_csv(path, {"bg": [1001], "char": [1001, 1007], "fx": [1003]}, start_frame=1001)


def test_csv_inbetween_outside_keys(tmp_path):
    path = write(tmp_path, "timesheet.csv", "frame,main\n1001,a\n1002,b\n1003,c\n")
    with pytest.raises(TimingError, match="frame 1003 .*after the last key"):
        read_timesheet_csv(path, {"main": [1001, 1002]}, start_frame=1001)
    with pytest.raises(TimingError, match="frame 1001 .*before the first key"):
        read_timesheet_csv(path, {"main": [1002, 1003]}, start_frame=1001)


@pytest.mark.parametrize(
    "text, words",
    [
        ("layer,main\n1,a\n", "line 1"),
        ("frame,main\n1,a\ntwo,b\n", "line 3: frame 'two' is not a whole number"),
        ("frame,main\n1,a\n3,b\n", "line 3: frame 3 does not follow frame 1"),
        ("frame,main\n1,a,b\n", "line 2: frame 1 has more cells"),
        ("frame,main,main\n1,a,b\n", "line 1"),
        ("frame,main\n", "no frames"),
    ],
)
def test_csv_malformed(tmp_path, text, words):
    path = write(tmp_path, "timesheet.csv", text)
    with pytest.raises(TimingError) as err:
        read_timesheet_csv(path, {"main": [1]}, start_frame=1)
    assert words in str(err.value) and "timesheet.csv" in str(err.value)


# --- XDTS -----------------------------------------------------------------------------


def xdts(tracks: dict[int, list[tuple[int, str]]], names: list[str], duration: int) -> str:
    """A minimal XDTS file as CLIP STUDIO / OpenToonz write it: header line, then JSON."""
    body = {
        "header": {"cut": "1", "scene": "1"},
        "timeTables": [
            {
                "name": "sh0040",
                "duration": duration,
                "timeTableHeaders": [{"fieldId": 0, "names": names}],
                "fields": [
                    {
                        "fieldId": 0,
                        "tracks": [
                            {
                                "trackNo": no,
                                "frames": [{"frame": f, "data": [{"id": 0, "values": [v]}]} for f, v in frames],
                            }
                            for no, frames in tracks.items()
                        ],
                    }
                ],
            }
        ],
        "version": 5,
    }
    return "exchangeDigitalTimeSheet Save Data\n" + json.dumps(body, indent=2)


def test_xdts_cells(tmp_path):
    text = xdts(
        {
            0: [(0, "1")],
            1: [(0, "1"), (2, "2"), (4, "SYMBOL_HYPHEN"), (5, "SYMBOL_NULL_CELL"), (6, "01"), (8, "3"), (10, "SYMBOL_NULL_CELL")],
        },
        names=["bg", "char"],
        duration=10,
    )
    path = write(tmp_path, "sh0040.xdts", text)
    s = read_xdts(path, {"bg": [1001], "char": [1001, 1009]}, start_frame=1001)
    assert s.source == "xdts:sh0040.xdts"
    assert s.frame_range() == (1001, 1010)
    assert shown(s, "bg") == [1001] * 10  # one entry holds to the end of the sheet
    # frame 6 "01" repeats drawing "1"; the closing null cell at frame 10 is past the duration
    assert shown(s, "char") == [1001, 1001, 1003, 1003, 1003, None, 1001, 1001, 1009, 1009]
    assert s.inbetweens("char") == [Inbetween(1003, 1001, 1009, 0.25)]


def test_xdts_ticks_are_new_inbetweens(tmp_path):
    # keys at sheet frames 0 and 6; the animator ticked frames 2 and 4 for in-betweens
    text = xdts({0: [(0, "1"), (2, "SYMBOL_TICK_1"), (4, "SYMBOL_TICK_2"), (6, "2")]}, names=["A"], duration=8)
    path = write(tmp_path, "cut.xdts", text)
    s = read_xdts(path, {"A": [1, 7]}, start_frame=1)
    assert shown(s, "A") == [1, 1, 3, 3, 5, 5, 7, 7]
    assert [(i.drawing, i.t) for i in s.inbetweens("A")] == [(3, 1 / 3), (5, 2 / 3)]


def test_xdts_tick_after_last_key(tmp_path):
    text = xdts({0: [(0, "1"), (2, "SYMBOL_TICK_1")]}, names=["A"], duration=4)
    path = write(tmp_path, "cut.xdts", text)
    with pytest.raises(TimingError, match="'A' starts a drawing at frame 3 .*after the last key"):
        read_xdts(path, {"A": [1]}, start_frame=1)


def test_xdts_key_on_hold(tmp_path):
    text = xdts({0: [(0, "1"), (4, "2")]}, names=["A"], duration=6)
    path = write(tmp_path, "cut.xdts", text)
    with pytest.raises(TimingError, match=r"cut\.xdts: layer 'A' has a key drawing at frame 1003, but the sheet holds"):
        read_xdts(path, {"A": [1001, 1003, 1005]}, start_frame=1001)


def test_xdts_empty_track_and_unnamed_column_are_skipped(tmp_path):
    text = xdts({0: [(0, "1")], 2: []}, names=["A", "", "B"], duration=2)
    s = read_xdts(write(tmp_path, "cut.xdts", text), {"A": [1]}, start_frame=1)
    assert list(s.layers) == ["A"]


@pytest.mark.parametrize(
    "text, words",
    [
        ('{"timeTables": []}', "line 1 is not 'exchangeDigitalTimeSheet Save Data'"),
        ('exchangeDigitalTimeSheet Save Data\n{\n  "timeTables": [,]\n}', "line 3"),
        ("exchangeDigitalTimeSheet Save Data\n{}", "field timeTables is missing"),
        (
            xdts({0: [(0, "1")]}, ["A"], 4).replace('"frame": 0', '"frame": "zero"'),
            "field timeTables[0].fields[0].tracks[0].frames[0].frame is missing or not a whole number",
        ),
        (xdts({0: [(0, "1")]}, ["A"], 4).replace('"duration": 4', '"duration": "4"'), "timeTables[0].duration"),
        (xdts({3: [(0, "1")]}, ["A"], 4), "trackNo 3"),
        (xdts({0: [(0, "SYMBOL_CIRCLE")]}, ["A"], 4), "unknown symbol 'SYMBOL_CIRCLE'"),
    ],
)
def test_xdts_malformed(tmp_path, text, words):
    path = write(tmp_path, "cut.xdts", text)
    with pytest.raises(TimingError) as err:
        read_xdts(path, {"A": [1]}, start_frame=1)
    assert words in str(err.value) and "cut.xdts" in str(err.value)


# --- load_schedule --------------------------------------------------------------------


def test_load_schedule_picks_source(tmp_path):
    keys = {"A": [1001, 1005]}
    s = load_schedule(tmp_path, keys, timing=2, hold_last=None, start_frame=1001)
    assert s.source == "timing" and s.drawings("A") == [1001, 1003, 1005]

    write(tmp_path, "~cut.xdts", "junk")  # editor temp files are never read
    write(tmp_path, "cut.xdts", xdts({0: [(0, "1"), (4, "2")]}, ["A"], 6))
    s = load_schedule(tmp_path, keys, timing=2, hold_last=None, start_frame=1001)
    assert s.source == "xdts:cut.xdts" and s.drawings("A") == [1001, 1005]

    write(tmp_path, "timesheet.csv", "frame,A\n1001,a\n1002,b\n1003\n1004\n1005,c\n")
    with pytest.raises(TimingError, match="cut.xdts, timesheet.csv"):
        load_schedule(tmp_path, keys, timing=2, hold_last=None, start_frame=1001)

    (tmp_path / "cut.xdts").unlink()
    s = load_schedule(tmp_path, keys, timing=2, hold_last=None, start_frame=1001)
    assert s.source == "timesheet.csv" and s.drawings("A") == [1001, 1002, 1005]


def test_load_schedule_two_xdts(tmp_path):
    write(tmp_path, "a.xdts", xdts({0: [(0, "1")]}, ["A"], 2))
    write(tmp_path, "b.XDTS", xdts({0: [(0, "1")]}, ["A"], 2))
    with pytest.raises(TimingError, match="more than one exposure sheet"):
        load_schedule(tmp_path, {"A": [1]}, timing=2, hold_last=None, start_frame=1)
