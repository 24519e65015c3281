"""The studio naming convention: templates that parse paths and format them back.

Templates use the fields {show}, {seq}, {shot}, {layer}, {frame} and {version}.
Names match ``[A-Za-z0-9][A-Za-z0-9_-]*``; frames are digits, formatted with the
configured padding. Because names may contain ``_``, a key file is parsed with the
shot already known (from its folder), so ``sh0040_char_a.1001.png`` in shot
``sh0040`` is layer ``char_a`` and never a guess. A name that does not parse is
reported, not guessed at.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import PurePosixPath

from .errors import NamingError

NAME_PATTERN = r"[A-Za-z0-9][A-Za-z0-9_-]*"
#: frame and version numbers: ASCII digits only (``\d`` also matches "１" and other Unicode digits,
#: which int() accepts, so "sh1200.１０１７.png" would become key 1017)
DIGITS = "[0-9]"
_FIELD = re.compile(r"\{(show|seq|shot|layer|frame|version)\}")
DEFAULT_LAYER = "main"


@dataclass(frozen=True)
class ShotId:
    show: str
    seq: str
    shot: str

    def __str__(self) -> str:
        return f"{self.show}/{self.seq}/{self.shot}"


@dataclass(frozen=True)
class FrameName:
    layer: str
    frame: int


class Template:
    """One template string, e.g. ``{shot}_{layer}.{frame}.png``."""

    def __init__(self, text: str, padding: int = 4):
        unknown = set(re.findall(r"\{([^}]*)\}", text)) - {"show", "seq", "shot", "layer", "frame", "version"}
        if unknown:
            raise NamingError(f"template {text!r}: unknown field(s) {', '.join(sorted(unknown))}")
        self.text = text
        self.padding = padding
        self.fields = _FIELD.findall(text)

    def regex(self, fixed: dict[str, str] | None = None) -> re.Pattern:
        fixed = fixed or {}
        parts, pos, seen = [], 0, set()
        for m in _FIELD.finditer(self.text):
            parts.append(re.escape(self.text[pos : m.start()]))
            name = m.group(1)
            if name in fixed:
                parts.append(re.escape(fixed[name]))
            elif name in seen:
                parts.append(f"(?P={name})")
            elif name in ("frame", "version"):
                parts.append(rf"(?P<{name}>{DIGITS}{{{self.padding if name == 'frame' else 1},}})")
            else:
                parts.append(rf"(?P<{name}>{NAME_PATTERN})")
            seen.add(name)
            pos = m.end()
        parts.append(re.escape(self.text[pos:]))
        return re.compile("^" + "".join(parts) + "$")

    def parse(self, text: str, **fixed: str) -> dict[str, str] | None:
        m = self.regex(fixed).match(text)
        return None if m is None else {**fixed, **m.groupdict()}

    def format(self, **values) -> str:
        out = {}
        for key, value in values.items():
            if key == "frame":
                out[key] = f"{int(value):0{self.padding}d}"
            elif key == "version":
                out[key] = f"{int(value):03d}"
            else:
                if not re.fullmatch(NAME_PATTERN, str(value)):
                    raise NamingError(f"{key} {value!r} does not match {NAME_PATTERN}")
                out[key] = value
        missing = set(self.fields) - set(out)
        if missing:
            raise NamingError(f"template {self.text!r} needs {', '.join(sorted(missing))}")
        return _FIELD.sub(lambda m: out[m.group(1)], self.text)


class Naming:
    """All templates of one studio, built from the ``naming`` section of the config."""

    def __init__(self, shot_path: str, key_file: str, key_file_single: str, output_file: str,
                 comp_file: str, frame_padding: int = 4):
        self.shot_path = Template(shot_path, frame_padding)
        self.key_file = Template(key_file, frame_padding)
        self.key_file_single = Template(key_file_single, frame_padding)
        self.output_file = Template(output_file, frame_padding)
        self.comp_file = Template(comp_file, frame_padding)
        self.frame_padding = frame_padding
        for name, tpl, need in (("shot_path", self.shot_path, {"show", "seq", "shot"}),
                                ("key_file", self.key_file, {"layer", "frame"}),
                                ("key_file_single", self.key_file_single, {"frame"}),
                                ("output_file", self.output_file, {"shot", "layer", "frame"}),
                                ("comp_file", self.comp_file, {"shot", "frame"})):
            if not need <= set(tpl.fields):
                raise NamingError(f"naming.{name}: template {tpl.text!r} must contain {', '.join('{%s}' % n for n in sorted(need))}")
        for name, tpl in (("output_file", self.output_file), ("comp_file", self.comp_file)):
            # output names are file names inside the version's folders: a "/" or ".." would write
            # frames into other folders, outside the version
            if any(bad in tpl.text for bad in ("/", "\\", "..")):
                raise NamingError(f"naming.{name}: template {tpl.text!r} is a file name inside the version "
                                  "folder; it may not contain '/', '\\' or '..'")

    # shot folders ---------------------------------------------------------------
    def parse_shot_path(self, relative: str | PurePosixPath) -> ShotId | None:
        """A shot folder relative to the studio root, or None when it is not one."""
        values = self.shot_path.parse(str(PurePosixPath(relative)))
        return None if values is None else ShotId(values["show"], values["seq"], values["shot"])

    def shot_depth(self) -> int:
        return len(PurePosixPath(self.shot_path.text).parts)

    def format_shot_path(self, shot: ShotId) -> str:
        return self.shot_path.format(show=shot.show, seq=shot.seq, shot=shot.shot)

    # key, reference and hint files -----------------------------------------------
    def parse_key_name(self, filename: str, shot: str) -> FrameName | None:
        """Layer and frame of a key file name in a known shot, or None when it does not parse."""
        values = self.key_file.parse(filename, shot=shot)
        if values is None:
            values = self.key_file_single.parse(filename, shot=shot)
            if values is None:
                return None
            values.setdefault("layer", DEFAULT_LAYER)
        return FrameName(values.get("layer", DEFAULT_LAYER), int(values["frame"]))

    def why_not_key_name(self, filename: str, shot: str) -> str:
        """Why a file name in keys/ (refs/, hints/) is not a key of `shot`: one clause a TD can act on."""
        expected = f"expected {self.format_key_name(shot, 'char', 1001)} ({self.key_file.text!r})"
        stem, _, ext = filename.rpartition(".")
        if ext != "png":
            if ext.lower() == "png":
                return f"the extension is .{ext}; name it .png (lowercase)"
            return f"a .{ext} file is not read; export the drawing as PNG"
        if not filename.startswith(shot) and filename.lower().startswith(shot.lower()):
            return f"it starts {filename[:len(shot)]!r} but the shot folder is {shot!r} (names are case-sensitive)"
        frame = re.search(rf"[._-](-?)({DIGITS}+)$", stem)
        if frame and frame.group(1):
            return f"frame -{frame.group(2)} is negative; frames are 0 or more"
        if frame and len(frame.group(2)) < self.frame_padding:
            return (f"frame {frame.group(2)} has {len(frame.group(2))} digits; naming.frame_padding asks for "
                    f"at least {self.frame_padding} ({int(frame.group(2)):0{self.frame_padding}d})")
        odd = sorted({c for c in filename if not re.fullmatch(r"[A-Za-z0-9_.-]", c)})
        if odd:
            return f"it contains {' '.join(repr(c) for c in odd)}; names use only A-Z a-z 0-9 _ - ({expected})"
        return f"the name does not match the studio convention; {expected}"

    def format_key_name(self, shot: str, layer: str, frame: int) -> str:
        return self.key_file.format(shot=shot, layer=layer, frame=frame)

    def format_output_name(self, shot: str, layer: str, frame: int) -> str:
        return self.output_file.format(shot=shot, layer=layer, frame=frame)

    def format_comp_name(self, shot: str, frame: int) -> str:
        return self.comp_file.format(shot=shot, frame=frame)

    def output_prefix_suffix(self, shot: str, layer: str | None) -> tuple[str, str]:
        """(name_prefix, name_suffix) around the frame number, for OTIO image sequences."""
        tpl = self.output_file if layer is not None else self.comp_file
        marker = "\x00"
        values = {"shot": shot, "frame": 0}
        if layer is not None:
            values["layer"] = layer
        text = _FIELD.sub(lambda m: marker if m.group(1) == "frame" else str(values[m.group(1)]), tpl.text)
        prefix, _, suffix = text.partition(marker)
        return prefix, suffix


# Names inside the stage folder interface: ``{anything}.{frame}.png``.
_FOLDER_FRAME = re.compile(rf"^(?P<stem>.*)\.(?P<frame>{DIGITS}+)\.png$")


def parse_folder_frame(filename: str) -> tuple[str, int] | None:
    """(stem, frame) of a ``{anything}.{frame}.png`` name, or None."""
    m = _FOLDER_FRAME.match(filename)
    return None if m is None else (m.group("stem"), int(m.group("frame")))
