"""A shot's drawing schedule: which drawing is on screen on every frame of every layer.

Every stage receives the same explicit ``Schedule``: for each layer, one ``Exposure``
per shot frame. A drawing is identified by the shot frame where it is first exposed,
so a key drawing's id is the frame in its file name and a generated in-between's id
is the frame it appears on. The schedule comes from one of three places (see
``load_schedule``):

``timing`` (shot.yaml / config)
    Between consecutive keys ``a < b`` new drawings at ``a+s, a+2s, … < b``, each held
    until the next; the last key is held ``hold_last`` frames (default ``s``).

``timesheet.csv`` (our own simple exposure sheet)
    ::

        frame,bg,char
        1001,A,1
        1002,,
        1003,,2
        1004,,x
        1005,,1

    The header is ``frame`` then one column per layer. There is one row per shot frame,
    in order, numbered in the shot's own numbering (1001-based or 1-based, whatever the
    key files use). A cell is a drawing name (``01`` = ``1``): a name not seen before in that column is
    a new drawing, a name seen before repeats that drawing. An empty cell holds the
    previous cell; ``x`` is an empty cell (nothing shown). Whitespace around cells, a
    UTF-8 BOM and blank lines are ignored; short rows are padded with holds.

``*.xdts`` (eXchange Digital Time Sheet: CLIP STUDIO PAINT, OpenToonz, TVPaint)
    The first line is ``exchangeDigitalTimeSheet Save Data``, then JSON. Only
    ``timeTables[0]`` is read. Its cell field (``fieldId`` 0) has one track per layer
    (``trackNo`` indexes ``timeTableHeaders[fieldId 0].names``); a track lists only the
    frames where the cell changes, 0-based, so shot frame = ``start_frame + frame`` and
    each entry holds until the next. ``duration`` is the shot length in frames.
    ``SYMBOL_NULL_CELL`` is an empty cell and ``SYMBOL_HYPHEN`` continues the cell.

    ``SYMBOL_TICK_1`` / ``SYMBOL_TICK_2`` are the sheet's in-between marks (OpenToonz
    labels them "Inbetween Symbol1 (O)" and "(*)"): OpenToonz writes them only on a
    frame that *holds* the previous drawing, and on import keeps holding that drawing
    and just marks the cell. The mark means "an in-between goes here, not drawn yet".
    QuickArt is the in-betweener, so we read either tick as a new in-between drawing
    starting on that frame (held until the next entry), generated from the keys around
    it. Both ticks are treated alike.

A sheet overrides ``timing`` and must agree with the keys on disk; every contradiction
is a ``TimingError`` naming the file, layer and frame.
"""

from __future__ import annotations

import bisect
import csv
import enum
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from .errors import TimingError
from .naming import NAME_PATTERN

CSV_NAME = "timesheet.csv"
XDTS_HEADER = "exchangeDigitalTimeSheet Save Data"
MAX_TIMING = 12
T = TypeVar("T")


@dataclass(frozen=True)
class Exposure:
    frame: int  # shot frame number
    drawing: int | None  # id of the drawing shown (its first exposed frame); None = nothing shown


@dataclass(frozen=True)
class Inbetween:
    drawing: int  # frame where the generated drawing is first exposed
    before: int  # key drawing before it
    after: int  # key drawing after it
    t: float  # (drawing - before) / (after - before)


@dataclass
class Schedule:
    layers: dict[str, list[Exposure]]  # every frame of the shot range, in order, for every layer
    keys: dict[str, list[int]]  # key drawings on disk per layer
    source: str  # "timing", "timesheet.csv" or "xdts:<file name>"

    def frame_range(self) -> tuple[int, int]:
        """First and last shot frame, inclusive (all layers share one range)."""
        columns = [c for c in self.layers.values() if c]
        if not columns:
            raise TimingError(f"the schedule from {self.source} has no frames; add key drawings or fix the sheet.")
        return min(c[0].frame for c in columns), max(c[-1].frame for c in columns)

    def drawings(self, layer: str) -> list[int]:
        """Sorted distinct drawing ids exposed in the layer (keys and in-betweens)."""
        return sorted({e.drawing for e in self._column(layer) if e.drawing is not None})

    def inbetweens(self, layer: str) -> list[Inbetween]:
        """Every exposed drawing that is not a key, with the keys it is generated from."""
        keys = sorted(self.keys.get(layer, []))
        out = []
        for d in self.drawings(layer):
            if d in keys:
                continue
            before = [k for k in keys if k < d]
            after = [k for k in keys if k > d]
            if not before or not after:
                raise TimingError(
                    f"layer {layer!r}: in-between drawing at frame {d} is not between two keys "
                    f"(schedule from {self.source}); add a key before and after it."
                )
            a, b = before[-1], after[0]
            out.append(Inbetween(drawing=d, before=a, after=b, t=(d - a) / (b - a)))
        return out

    def held(self, drawings: dict[tuple[str, int], T]) -> dict[tuple[str, int], T]:
        """Every scheduled drawing of each layer in `drawings`: the one given, or else the last
        drawing given at or before it (a hold). Keys alone become the keys on their exposure."""
        out: dict[tuple[str, int], T] = {}
        for layer in sorted({layer for layer, _ in drawings}):
            given = sorted(f for (l, f) in drawings if l == layer)
            for d in self.drawings(layer):
                i = bisect.bisect_right(given, d) - 1
                out[(layer, d)] = drawings[(layer, given[max(i, 0)])]
        return out

    def shown(self, layer: str, frame: int) -> int | None:
        """The drawing on screen in the layer at a shot frame (None: nothing, or outside the shot)."""
        column = self._column(layer)
        i = frame - column[0].frame if column else -1
        return column[i].drawing if 0 <= i < len(column) else None

    def to_dict(self) -> dict:
        return {
            "source": self.source,
            "keys": {layer: list(frames) for layer, frames in self.keys.items()},
            "layers": {layer: [[e.frame, e.drawing] for e in col] for layer, col in self.layers.items()},
        }

    @classmethod
    def from_dict(cls, data: dict) -> Schedule:
        try:
            return cls(
                layers={
                    str(layer): [Exposure(int(f), None if d is None else int(d)) for f, d in col]
                    for layer, col in data["layers"].items()
                },
                keys={str(layer): [int(k) for k in ks] for layer, ks in data["keys"].items()},
                source=str(data["source"]),
            )
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise TimingError(f"a stored schedule is malformed ({exc!r}); rebuild it from the shot folder.") from exc

    def _column(self, layer: str) -> list[Exposure]:
        if layer not in self.layers:
            known = ", ".join(self.layers)
            raise TimingError(f"layer {layer!r} is not in the schedule from {self.source} (layers: {known}).")
        return self.layers[layer]


# --- timing ---------------------------------------------------------------------------


def schedule_from_timing(keys: dict[str, list[int]], timing: int, hold_last: int | None = None,
                         max_frames: int | None = None) -> Schedule:
    """The schedule when there is no sheet: in-betweens every ``timing`` frames between keys.
    A shot longer than ``max_frames`` is refused before anything is built."""
    if isinstance(timing, bool) or not isinstance(timing, int) or not 1 <= timing <= MAX_TIMING:
        raise TimingError(f"timing {timing!r} is invalid; set timing to a whole number from 1 (ones) to {MAX_TIMING}.")
    hold = timing if hold_last is None else hold_last
    if isinstance(hold, bool) or not isinstance(hold, int) or hold < 1:
        raise TimingError(f"hold_last {hold_last!r} is invalid; set it to a whole number of frames, 1 or more.")
    keys = _clean_keys(keys)
    if not keys:
        raise TimingError("the shot has no key drawings, so there is nothing to time; drop keys into keys/.")

    starts: dict[str, list[int]] = {}
    for layer, ks in keys.items():
        # New drawings at a, a+s, ... < b between each pair of keys, then the last key.
        starts[layer] = [f for a, b in zip(ks, ks[1:]) for f in range(a, b, timing)] + [ks[-1]]
    first = min(ks[0] for ks in keys.values())
    last = max(ks[-1] + hold - 1 for ks in keys.values())
    check_length(last - first + 1, max_frames, f"keys {first} to {max(ks[-1] for ks in keys.values())} "
                 f"with the last held {hold} frames")

    layers = {}
    for layer, frames in starts.items():
        new = set(frames)
        end = frames[-1] + hold - 1  # this layer shows nothing after its last key's hold
        shown, column = None, []
        for f in range(first, last + 1):
            if f in new:
                shown = f
            column.append(Exposure(f, shown if f <= end else None))
        layers[layer] = column
    return Schedule(layers=layers, keys=keys, source="timing")


def check_length(frames: int, max_frames: int | None, what: str) -> None:
    if max_frames is not None and frames > max_frames:
        raise TimingError(f"the shot would be {frames:,} frames long ({what}), more than limits.max_frames_per_shot "
                          f"({max_frames:,}); check the key frame numbers, or raise the limit in config.yaml.")


def _clean_keys(keys: dict[str, list[int]]) -> dict[str, list[int]]:
    """Sorted, de-duplicated key frames; layers without keys are dropped."""
    return {layer: sorted({int(k) for k in ks}) for layer, ks in keys.items() if ks}


# --- sheets ---------------------------------------------------------------------------


class _Mark(enum.Enum):
    HOLD = "hold"  # keep showing the previous cell
    EMPTY = "empty"  # nothing shown
    TICK = "tick"  # XDTS in-between mark: a new generated drawing starts here


Cell = str | _Mark  # a str is a drawing name


def _schedule_from_sheet(
    columns: dict[str, list[Cell]], first: int, keys: dict[str, list[int]], source: str, path: Path
) -> Schedule:
    """Resolve sheet cells to drawing ids and check them against the keys on disk."""
    keys = _clean_keys(keys)
    last = first + max((len(c) for c in columns.values()), default=0) - 1
    for layer in keys:
        if layer not in columns:
            raise TimingError(
                f"{path}: layer {layer!r} has key drawings but no column in the sheet "
                f"(columns: {', '.join(columns) or 'none'}); add a {layer!r} column or rename the keys."
            )

    layers, used_keys = {}, {}
    for layer, cells in columns.items():
        column, why = _resolve(cells, first)
        drawn = {e.drawing for e in column if e.drawing is not None}
        if not drawn and layer not in keys:
            continue  # an empty column with no keys: not a layer of this shot
        if layer not in keys:
            raise TimingError(
                f"{path}: layer {layer!r} exposes drawings from frame {min(drawn)} but has no key drawings on disk; "
                f"drop its keys or remove the column."
            )
        ks = keys[layer]
        for k in ks:
            if k < first or k > last:
                raise TimingError(
                    f"{path}: layer {layer!r} has a key drawing at frame {k}, outside the sheet's frames "
                    f"{first}-{last}; fix the key's frame number or extend the sheet."
                )
            if k in why:
                raise TimingError(
                    f"{path}: layer {layer!r} has a key drawing at frame {k}, but the sheet {why[k]} there; "
                    f"give that frame a new drawing in the sheet or renumber the key."
                )
        for d in sorted(drawn - set(ks)):
            if d < ks[0] or d > ks[-1]:
                side = "before the first key" if d < ks[0] else "after the last key"
                raise TimingError(
                    f"{path}: layer {layer!r} starts a drawing at frame {d} that is not a key on disk and lies "
                    f"{side} ({ks[0] if d < ks[0] else ks[-1]}), so there is nothing to in-between from; "
                    f"add a key drawing at frame {d} or fix the sheet."
                )
        layers[layer], used_keys[layer] = column, ks
    if not layers:
        raise TimingError(f"{path}: the sheet exposes no drawings; fill in the sheet or remove it.")
    return Schedule(layers=layers, keys=used_keys, source=source)


def _resolve(cells: list[Cell], first: int) -> tuple[list[Exposure], dict[int, str]]:
    """Exposures for one column, and for frames that do not start a new drawing, what they do."""
    column, why, seen, shown = [], {}, {}, None
    for i, cell in enumerate(cells):
        frame = first + i
        if cell is _Mark.HOLD:
            why[frame] = "holds the previous cell"
        elif cell is _Mark.EMPTY:
            shown, why[frame] = None, "has an empty cell"
        elif cell is _Mark.TICK:
            shown = frame
        elif cell in seen:
            shown, why[frame] = seen[cell], f"repeats drawing {cell!r} from frame {seen[cell]}"
        else:
            seen[cell] = shown = frame
        column.append(Exposure(frame, shown))
    return column, why


def read_timesheet_csv(path: Path, keys: dict[str, list[int]], start_frame: int) -> Schedule:
    """Read ``timesheet.csv`` (format in the module docstring).

    The rows already carry shot frame numbers, so ``start_frame`` is not needed; it is
    accepted so both sheet readers share one signature.
    """
    path = Path(path)
    text = _read_text(path)
    rows = [(n, [c.strip() for c in row]) for n, row in enumerate(csv.reader(text.splitlines()), 1)]
    rows = [(n, row) for n, row in rows if any(row)]
    if not rows:
        raise TimingError(f"{path}: the file is empty; write a header line 'frame,<layer>,...' and one row per frame.")

    line, header = rows[0]
    if header[0].lower() != "frame" or len(header) < 2:
        raise TimingError(f"{path}: line {line}: the header must be 'frame,<layer>,<layer>...', not {','.join(header)!r}.")
    names = header[1:]
    for name in names:
        if not re.fullmatch(NAME_PATTERN, name) or names.count(name) > 1:
            raise TimingError(
                f"{path}: line {line}: layer column {name!r} is empty, repeated or not a valid layer name; "
                f"give each column a unique layer name."
            )

    columns: dict[str, list[Cell]] = {name: [] for name in names}
    first = prev = None
    for line, row in rows[1:]:
        try:
            if not row[0].isascii():  # int() takes "１００１" too; frame numbers are ASCII digits
                raise ValueError
            frame = int(row[0])
        except ValueError:
            raise TimingError(
                f"{path}: line {line}: frame {row[0]!r} is not a whole number; put the shot frame in the first column."
            ) from None
        if prev is not None and frame != prev + 1:
            raise TimingError(
                f"{path}: line {line}: frame {frame} does not follow frame {prev}; write one row per frame, in order."
            )
        if len(row) > len(header):
            raise TimingError(
                f"{path}: line {line}: frame {frame} has more cells than the header has layers; remove the extra cells."
            )
        first = frame if first is None else first
        prev = frame
        row = row + [""] * (len(header) - len(row))
        for name, cell in zip(names, row[1:]):
            columns[name].append(_Mark.HOLD if cell == "" else _Mark.EMPTY if cell.lower() == "x" else _name(cell))
    if first is None:
        raise TimingError(f"{path}: the sheet has a header but no frames; add one row per shot frame.")
    return _schedule_from_sheet(columns, first, keys, CSV_NAME, path)


def read_xdts(path: Path, keys: dict[str, list[int]], start_frame: int, max_frames: int | None = None) -> Schedule:
    """Read an XDTS exposure sheet (format and tick-mark handling in the module docstring)."""
    path = Path(path)
    text = _read_text(path)
    if not text.startswith(XDTS_HEADER):
        raise TimingError(f"{path}: line 1 is not {XDTS_HEADER!r}, so this is not an XDTS file; re-export it as XDTS.")
    try:
        # The JSON starts right after the header text, so its line numbers are the file's.
        data = json.loads(text[len(XDTS_HEADER) :])
    except json.JSONDecodeError as exc:
        raise TimingError(f"{path}: line {exc.lineno}: the JSON is invalid ({exc.msg}); re-export the sheet.") from None

    def field(obj, key, kind, where):
        value = obj.get(key) if isinstance(obj, dict) else None
        if not isinstance(value, kind) or isinstance(value, bool):
            kind_name = {int: "whole number", list: "list", dict: "object"}[kind]
            raise TimingError(f"{path}: field {where} is missing or not a {kind_name}; re-export the sheet.")
        return value

    tables = field(data, "timeTables", list, "timeTables")
    if not tables:
        raise TimingError(f"{path}: field timeTables is empty; re-export the sheet with its time table.")
    table = field({"t": tables[0]}, "t", dict, "timeTables[0]")
    duration = field(table, "duration", int, "timeTables[0].duration")
    if duration < 1:
        raise TimingError(f"{path}: field timeTables[0].duration is {duration}; a shot needs at least 1 frame.")
    check_length(duration, max_frames, f"{path.name}: timeTables[0].duration")

    headers = field(table, "timeTableHeaders", list, "timeTables[0].timeTableHeaders")
    names = next((h.get("names") for h in headers if isinstance(h, dict) and h.get("fieldId") == 0), None)
    if not isinstance(names, list):
        raise TimingError(
            f"{path}: field timeTables[0].timeTableHeaders has no names for fieldId 0 (cells); re-export the sheet."
        )
    fields = field(table, "fields", list, "timeTables[0].fields")
    cell_fields = [i for i, f in enumerate(fields) if isinstance(f, dict) and f.get("fieldId") == 0]
    if not cell_fields:
        raise TimingError(f"{path}: field timeTables[0].fields has no cell field (fieldId 0); re-export the sheet.")
    fi = cell_fields[0]

    columns: dict[str, list[Cell]] = {}
    for ti, track in enumerate(field(fields[fi], "tracks", list, f"timeTables[0].fields[{fi}].tracks")):
        where = f"timeTables[0].fields[{fi}].tracks[{ti}]"
        no = field(track, "trackNo", int, f"{where}.trackNo")
        entries = []
        for k, entry in enumerate(field(track, "frames", list, f"{where}.frames")):
            frame = field(entry, "frame", int, f"{where}.frames[{k}].frame")
            items = field(entry, "data", list, f"{where}.frames[{k}].data")
            values = items[0].get("values") if items and isinstance(items[0], dict) else None
            entries.append((frame, _xdts_cell(values, path, f"{where}.frames[{k}].data[0].values")))
        if not entries:
            continue  # OpenToonz skips tracks with no frames too
        name = names[no].strip() if 0 <= no < len(names) and isinstance(names[no], str) else ""
        if not name or name in columns:
            raise TimingError(
                f"{path}: {where} (trackNo {no}) has no name, or the same name as another track, in "
                f"timeTableHeaders; give each layer a unique name and re-export."
            )
        # Cells not written hold the entry before them; before the first entry nothing is shown.
        cells: list[Cell] = [_Mark.EMPTY] + [_Mark.HOLD] * (duration - 1)
        for frame, cell in sorted(entries, key=lambda e: e[0]):
            if frame < duration and cell is not _Mark.HOLD:
                cells[max(frame, 0)] = cell  # CLIP STUDIO may write the opening cell at a negative frame
        columns[name] = cells
    return _schedule_from_sheet(columns, start_frame, keys, f"xdts:{path.name}", path)


def _xdts_cell(values, path: Path, where: str) -> Cell:
    if not values:
        return _Mark.EMPTY
    value = values[0]
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str):
        raise TimingError(f"{path}: field {where} holds {value!r}, not a drawing name or symbol; re-export the sheet.")
    value = value.strip()
    symbols = {
        "": _Mark.EMPTY,
        "SYMBOL_NULL_CELL": _Mark.EMPTY,
        "SYMBOL_HYPHEN": _Mark.HOLD,
        "SYMBOL_TICK_1": _Mark.TICK,
        "SYMBOL_TICK_2": _Mark.TICK,
    }
    if value in symbols:
        return symbols[value]
    if value.startswith("SYMBOL_"):
        raise TimingError(
            f"{path}: field {where} holds the unknown symbol {value!r}; replace it with a drawing or an empty cell."
        )
    return _name(value)


def _name(value: str) -> str:
    return str(int(value)) if value.isascii() and value.isdigit() else value  # "01" and "1": one drawing


def _read_text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8-sig")  # utf-8-sig drops a BOM if there is one
    except (OSError, UnicodeDecodeError) as exc:
        raise TimingError(f"{path}: the exposure sheet cannot be read as UTF-8 text ({exc}); save it as UTF-8.") from None


# --- choosing the source ----------------------------------------------------------------


def load_schedule(
    shot_dir: Path, keys: dict[str, list[int]], timing: int, hold_last: int | None, start_frame: int,
    max_frames: int | None = None,
) -> Schedule:
    """The shot's schedule: ``timesheet.csv`` if present, else one ``*.xdts``, else ``timing``;
    never longer than ``max_frames``."""
    shot_dir = Path(shot_dir)
    sheets = sorted(
        p
        for p in shot_dir.iterdir()
        if p.is_file()
        and not p.name.startswith((".", "~"))  # editor temp files are never read
        and (p.name == CSV_NAME or p.suffix.lower() == ".xdts")
    )
    if len(sheets) > 1:
        raise TimingError(
            f"{shot_dir}: the shot has more than one exposure sheet ({', '.join(p.name for p in sheets)}); "
            f"keep exactly one."
        )
    if not sheets:
        return schedule_from_timing(keys, timing, hold_last, max_frames)
    sheet = sheets[0]
    if sheet.name == CSV_NAME:
        return read_timesheet_csv(sheet, keys, start_frame)  # one row per frame: as long as the file
    return read_xdts(sheet, keys, start_frame, max_frames)
