"""Every YAML file QuickArt reads from people (config.yaml, shot.yaml, pipelines, palettes) goes
through here: bounded, and every fault is one sentence naming the file and the line.

Bounded twice: a file over `MAX_YAML_BYTES` is refused before it is read, and a document whose
aliases expand to more than `MAX_YAML_NODES` nodes (a "billion laughs" of a few hundred bytes)
is refused before anything is built from it. PyYAML builds an aliased value once and shares it,
so the bomb only goes off later (validation, `model_dump`, the manifest); counting the expanded
tree up front stops it here.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import Any

import yaml

from .errors import QuickArtError

#: settings files are a few kilobytes; a megabyte is far more than any of them needs
MAX_YAML_BYTES = 1 << 20
#: scalars, lists and mappings after aliases are expanded; a large palette has a few thousand
MAX_YAML_NODES = 100_000


def read_yaml(path: Path, error: type[QuickArtError]) -> Any:
    """The document in the YAML file `path` (None when empty); raises `error` with one sentence."""
    return parse_yaml(read_yaml_text(path, error), path, error)


def read_yaml_text(path: Path, error: type[QuickArtError]) -> str:
    """The text of a YAML file, refused when it is not a regular file or over MAX_YAML_BYTES."""
    try:
        # O_NONBLOCK: a FIFO named like the file must not hang us; it is refused below
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
        with os.fdopen(fd, "rb") as fh:
            st = os.fstat(fh.fileno())
            if not stat.S_ISREG(st.st_mode):
                raise error(f"{path}: not a regular file; replace it with a YAML file")
            if st.st_size > MAX_YAML_BYTES:
                raise error(f"{path}: {st.st_size:,} bytes, more than the {MAX_YAML_BYTES:,} a settings file "
                            "may have; is it the right file?")
            data = fh.read(MAX_YAML_BYTES + 1)
    except OSError as exc:
        raise error(f"{path}: cannot read: {exc.strerror or exc}") from None
    try:
        return data.decode("utf-8-sig")  # -sig: a BOM some editors write is not part of the YAML
    except UnicodeDecodeError as exc:
        raise error(f"{path}: not UTF-8 text (byte {exc.start}); save it as UTF-8") from None


def parse_yaml(text: str, path: Path | str, error: type[QuickArtError]) -> Any:
    """The document in `text` (read from `path`, named in messages), bounded as the module says."""
    if len(text.encode("utf-8", "surrogatepass")) > MAX_YAML_BYTES:
        raise error(f"{path}: more than the {MAX_YAML_BYTES:,} bytes a settings file may have; "
                    "is it the right file?")
    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        _check_expansion(node, path, error)
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


def _children(node: yaml.Node) -> list[yaml.Node]:
    if isinstance(node, yaml.SequenceNode):
        return node.value
    if isinstance(node, yaml.MappingNode):
        return [n for pair in node.value for n in pair]
    return []


def _check_expansion(root: yaml.Node, path: Path | str, error: type[QuickArtError]) -> None:
    """Refuse a document whose aliases expand past MAX_YAML_NODES, or refer to themselves.
    Each distinct node is visited once (sizes are memoised), so a bomb costs its own size to check."""
    sizes: dict[int, int] = {}
    open_: set[int] = set()  # nodes on the current path: meeting one again is an alias cycle
    stack: list[tuple[yaml.Node, bool]] = [(root, False)]
    while stack:
        node, finished = stack.pop()
        if finished:
            open_.discard(id(node))
            sizes[id(node)] = size = 1 + sum(sizes[id(c)] for c in _children(node))
            if size > MAX_YAML_NODES:
                raise error(f"{path}: line {node.start_mark.line + 1}: its aliases (*name) expand to more than "
                            f"{MAX_YAML_NODES:,} values; write the settings out instead of repeating anchors")
            continue
        if id(node) in sizes:
            continue
        if id(node) in open_:
            raise error(f"{path}: line {node.start_mark.line + 1}: an alias refers to the value that contains "
                        "it; remove the loop")
        open_.add(id(node))
        stack.append((node, True))
        stack.extend((c, False) for c in _children(node) if id(c) not in sizes)
