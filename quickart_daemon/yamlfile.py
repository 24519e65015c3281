"""Every YAML file QuickArt reads from people (config.yaml, shot.yaml, pipelines, palettes) goes
through here: every fault is one sentence naming the file and the line.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import Any

import yaml

from .errors import QuickArtError


def read_yaml(path: Path, error: type[QuickArtError]) -> Any:
    """The document in the YAML file `path` (None when empty); raises `error` with one sentence."""
    return parse_yaml(read_yaml_text(path, error), path, error)


def read_yaml_text(path: Path, error: type[QuickArtError]) -> str:
    """The text of a YAML file, refused when it is not a regular file."""
    try:
        # O_NONBLOCK: a FIFO named like the file must not hang us; it is refused below
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
        with os.fdopen(fd, "rb") as fh:
            st = os.fstat(fh.fileno())
            if not stat.S_ISREG(st.st_mode):
                raise error(f"{path}: not a regular file; replace it with a YAML file")
            data = fh.read()
    except OSError as exc:
        raise error(f"{path}: cannot read: {exc.strerror or exc}") from None
    try:
        return data.decode("utf-8-sig")  # -sig: a BOM some editors write is not part of the YAML
    except UnicodeDecodeError as exc:
        raise error(f"{path}: not UTF-8 text (byte {exc.start}); save it as UTF-8") from None


def parse_yaml(text: str, path: Path | str, error: type[QuickArtError]) -> Any:
    """The document in `text` (read from `path`, named in messages)."""
    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        return loader.construct_document(node)
    except yaml.YAMLError as exc:
        raise error(f"{path}:{_yaml_problem(exc)}") from None
    except RecursionError:
        raise error(f"{path}: nested too deeply to be a settings file") from None
    finally:
        loader.dispose()


def _yaml_problem(exc: yaml.YAMLError) -> str:
    """' line N: not valid YAML: what' from PyYAML's several-line message (which quotes the text)."""
    mark, context = getattr(exc, "problem_mark", None), getattr(exc, "context_mark", None)
    mark = mark or context
    problem = getattr(exc, "problem", None) or getattr(exc, "context", None) or "cannot be parsed"
    if context is not None and getattr(exc, "context", None) and context.line != mark.line:
        problem += f" ({exc.context} on line {context.line + 1})"
    return f"{f' line {mark.line + 1}:' if mark is not None else ''} not valid YAML: {problem}"
