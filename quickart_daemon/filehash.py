"""The sha256 of a file's bytes, read in chunks: the one definition, for model checksums (`weights.py`),
zip drops' unpack folders (`drops.py`) and the in-between engine's cache key."""

from __future__ import annotations

import hashlib
from pathlib import Path

CHUNK = 1 << 20


def sha256_file(path: Path, chunk: int = CHUNK) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            h.update(block)
    return h.hexdigest()
