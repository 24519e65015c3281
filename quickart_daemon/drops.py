"""Drops: which files are a shot's inputs, when they are complete, and safe zip unpacking.

A shot's inputs are the files under ``keys/``, ``refs/`` and ``hints/``, the optional
``shot.yaml``, ``timesheet.csv`` and ``*.xdts`` in the shot folder, and the contents
of unpacked zip drops under ``quickart/unpacked/``. Everything else under
``quickart/`` is QuickArt's own output and never an input. Editor temp files and
partial downloads are never inputs (``is_ignored_name``).

Completeness is checked cheaply (no decoding): zero-byte files, PNGs without their
IEND chunk at the end, zips without their central directory, unreadable files.

Zip drops are untrusted: ``unpack_zip`` refuses path tricks, symlinks and bombs,
counts the bytes it actually writes (a header that lies about sizes gains nothing),
and unpacks into a hidden temporary folder that is renamed into place only when
every entry is written.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import shutil
import stat
import uuid
import zipfile
import zlib
from collections.abc import Iterable
from pathlib import Path

from .errors import DropError, ImageError, UnsafeArchive
from .filehash import sha256_file

log = logging.getLogger(__name__)

INPUT_DIRS = ("keys", "refs", "hints")
INPUT_FILES = ("shot.yaml", "timesheet.csv")
SHEET_SUFFIX = ".xdts"
MARKER = "_READY"
OUTPUT_DIR = "quickart"
UNPACKED_DIR = "unpacked"

_IGNORED_SUFFIXES = (".tmp", ".part", ".crdownload", "~")
_IGNORED_NAMES = frozenset({"thumbs.db", "desktop.ini", "__macosx"})  # .DS_Store is hidden already
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
#: first bytes of what else gets saved under a .png name, to say what the file is
_OTHER_FORMATS = ((b"II*\x00", "TIFF"), (b"MM\x00*", "TIFF"), (b"\xff\xd8\xff", "JPEG"), (b"GIF8", "GIF"),
                  (b"BM", "BMP"), (b"8BPS", "Photoshop (PSD)"), (b"RIFF", "WebP"), (b"\x00\x00\x00\x0cjP", "JPEG 2000"))
_PNG_END = b"IEND\xaeB`\x82"  # IEND chunk type + its constant CRC
_PNG_TAIL = 1024  # how far from the end we look for IEND (tolerates a little trailing junk)
_RATIO_MIN_BYTES = 1 << 20  # tiny text files legitimately compress past 200:1; bombs are big
_CHUNK = 1 << 20


def is_ignored_name(name: str) -> bool:
    """True for names that are never inputs: editor temp files, partial downloads, OS litter."""
    lower = name.lower()
    return name.startswith(("~", ".")) or lower.endswith(_IGNORED_SUFFIXES) or lower in _IGNORED_NAMES


def not_png(path: Path, head: bytes) -> str | None:
    """Why a .png file whose first bytes are `head` is not a PNG (one sentence), or None when it is one.
    The one rule for a shot's pictures: a .png that is something else is a bad file, never an
    unfinished copy, for the watcher and for `quickart run` alike."""
    if head[:8] == PNG_SIGNATURE:
        return None
    if not head:
        return f"{path}: empty file (zero bytes); was the copy interrupted?"
    what = next((name for magic, name in _OTHER_FORMATS if head.startswith(magic)), None)
    return (f"{path}: a {what} file named .png; export it as PNG" if what else
            f"{path}: not a readable image (its first bytes are not a PNG signature); export it as PNG")


def check_png(path: Path) -> None:
    """Raise ImageError when a shot's picture is not a PNG (`not_png`); reads 8 bytes."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(8)
    except OSError as exc:
        raise ImageError(f"{path}: cannot read: {exc.strerror or exc}") from None
    problem = not_png(path, head)
    if problem:
        raise ImageError(problem)


# inputs ---------------------------------------------------------------------------
def input_files(shot_dir: Path, root: Path | None = None, skipped: list[str] | None = None) -> list[Path]:
    """Every input file of a shot, sorted; the ``_READY`` marker is not an input.

    ``root`` is the studio root: a symlink that resolves outside it raises DropError
    (a drop must not pull in files from elsewhere on the server). Without ``root``
    the shot folder itself is the boundary. Only regular files are inputs: a FIFO, socket
    or device named like a key is left out (opening a FIFO blocks forever), with a line in
    ``skipped`` saying so.
    """
    shot_dir = Path(shot_dir)
    boundary = Path(root if root is not None else shot_dir).resolve()
    found: list[Path] = []
    try:
        top = sorted(os.scandir(shot_dir), key=lambda e: e.name)
    except OSError:
        return []
    for entry in top:
        name = entry.name
        if is_ignored_name(name):
            continue
        if name in INPUT_FILES or name.lower().endswith(SHEET_SUFFIX):
            path = Path(entry.path)
            _check_link(path, boundary)
            if not path.is_dir():
                found.append(path)
        elif name in INPUT_DIRS:
            found += _walk(Path(entry.path), boundary)
    found += _walk(shot_dir / OUTPUT_DIR / UNPACKED_DIR, boundary)
    regular = []
    for path in sorted(p for p in found if p.name != MARKER):
        odd = not_regular(path)
        if odd is None:
            regular.append(path)
        elif skipped is not None:
            skipped.append(f"{path}: {odd}, not a file; left alone")
    return regular


def not_regular(path: Path) -> str | None:
    """What `path` is when it is not a regular file ("a FIFO", ...), from stat alone (never opened);
    None for a regular file, or one that vanished (a move in progress: the next look sees it)."""
    try:
        mode = os.stat(path).st_mode
    except OSError:
        return None
    if stat.S_ISREG(mode):
        return None
    kinds = ((stat.S_ISFIFO, "a FIFO (named pipe)"), (stat.S_ISSOCK, "a socket"), (stat.S_ISCHR, "a device"),
             (stat.S_ISBLK, "a device"), (stat.S_ISDIR, "a folder"))
    return next((kind for test, kind in kinds if test(mode)), "a special file")


def _walk(top: Path, boundary: Path) -> list[Path]:
    if not os.path.lexists(top):
        return []
    _check_link(top, boundary)
    if not top.is_dir():
        return []
    out: list[Path] = []
    visited: set[str] = set()

    def warn(exc: OSError) -> None:
        if not isinstance(exc, FileNotFoundError):  # vanished mid-walk: a move in progress
            log.warning("cannot list %s: %s", exc.filename, exc.strerror)

    for dirpath, dirnames, filenames in os.walk(top, onerror=warn, followlinks=True):
        real = os.path.realpath(dirpath)
        if real in visited:  # symlinked folders inside the root may loop
            dirnames[:] = []
            continue
        visited.add(real)
        dirnames[:] = sorted(d for d in dirnames if not is_ignored_name(d))
        for d in dirnames:
            _check_link(Path(dirpath, d), boundary)
        for f in filenames:
            if not is_ignored_name(f):
                path = Path(dirpath, f)
                _check_link(path, boundary)
                out.append(path)
    return out


def _check_link(path: Path, boundary: Path) -> None:
    if not path.is_symlink():
        return
    try:
        target = path.resolve(strict=False)
    except (OSError, RuntimeError) as exc:  # RuntimeError: a symlink loop on Python < 3.13
        raise DropError(f"{path}: symlink cannot be resolved ({exc}); replace it with the file") from None
    if not target.is_relative_to(boundary):
        raise DropError(f"{path}: symlink points outside the studio root (to {target}); "
                        "copy the file into the shot folder instead")


def signature(files: Iterable[Path], base: Path | None = None) -> str:
    """sha256 over (path relative to ``base``, size, mtime_ns) of every file: changes when anything does.

    Cheap (one stat per file, no reading). A file that vanished counts as a change too.
    """
    h = hashlib.sha256()
    for path in sorted(Path(p) for p in files):
        name = (path.relative_to(base) if base is not None else path).as_posix()
        try:
            st = os.stat(path)
            h.update(f"{name}\0{st.st_size}\0{st.st_mtime_ns}\n".encode("utf-8", "surrogateescape"))
        except OSError:
            h.update(f"{name}\0missing\n".encode("utf-8", "surrogateescape"))
    return h.hexdigest()


def check_complete(files: Iterable[Path], bad: list[str] | None = None) -> list[str]:
    """Problems that make a drop incomplete (a copy in progress, or a broken file); [] = complete.

    A .png that is another format (`not_png`) is a bad file, not an unfinished copy: with
    `bad` given, it goes there instead (the watcher takes the drop, and the job fails naming it).
    Reads at most a few bytes per file: no decoding.
    """
    problems: list[str] = []
    for path in files:
        path = Path(path)
        if not_regular(path) is not None:
            problems.append(f"{path}: {not_regular(path)}, not a file")
            continue
        try:
            # O_NONBLOCK: should it become a FIFO between the stat and here, open() still returns
            with os.fdopen(os.open(path, os.O_RDONLY | os.O_NONBLOCK), "rb") as fh:
                size = os.fstat(fh.fileno()).st_size
                if size == 0 and path.name != "shot.yaml":  # an empty shot.yaml is valid: no overrides
                    problems.append(f"{path}: zero bytes (copy not finished?)")
                    continue
                suffix = path.suffix.lower()
                if suffix == ".png":
                    head = fh.read(8)
                    problem = not_png(path, head)
                    if problem:
                        # only zeros: space a copy reserved and has not written yet (keep waiting)
                        unfinished = not head.strip(b"\0")
                        (bad if bad is not None and not unfinished else problems).append(problem)
                        continue
                    fh.seek(max(0, size - _PNG_TAIL))
                    if _PNG_END not in fh.read():
                        problems.append(f"{path}: truncated PNG (no IEND chunk at the end; copy not finished?)")
                elif suffix == ".zip" and not zipfile.is_zipfile(fh):
                    problems.append(f"{path}: truncated or corrupt zip (no central directory; copy not finished?)")
        except OSError as exc:
            problems.append(f"{path}: cannot be opened: {exc.strerror or exc}")
    return problems


# zip drops ------------------------------------------------------------------------
def unpack_zip(zip_path: Path, dest: Path, max_total_bytes: int = 2 * 1024**3,
               max_files: int = 10_000, max_ratio: float = 200) -> Path:
    """Unpack ``zip_path`` into the new folder ``dest``; refuse unsafe archives with UnsafeArchive.

    Refused: absolute paths, ``..`` components, symlink entries, more than ``max_files``
    entries, more than ``max_total_bytes`` declared or actually written, an entry of
    1 MiB or more that expands more than ``max_ratio`` times, duplicate entries, data
    that does not match its header. Entries named like temp files or ``__MACOSX`` are
    skipped. Nothing is ever written outside ``dest``, and ``dest`` appears only when
    complete (hidden temporary folder next to it, then a rename).
    """
    zip_path, dest = Path(zip_path), Path(dest)
    if os.path.lexists(dest):
        raise DropError(f"{dest}: already exists; a zip is unpacked into a new folder")
    try:
        zf = zipfile.ZipFile(zip_path)
    except (zipfile.BadZipFile, OSError) as exc:
        raise DropError(f"{zip_path}: not a readable zip ({exc}); re-export the drop") from None
    with zf:
        plan = _plan(zip_path, zf.infolist(), max_total_bytes, max_files, max_ratio)
        dest.parent.mkdir(parents=True, exist_ok=True)
        tmp = dest.parent / f".{dest.name}.unpacking-{uuid.uuid4().hex[:8]}"
        tmp.mkdir()
        try:
            _extract(zip_path, zf, plan, tmp, max_total_bytes, max_ratio)
            os.rename(tmp, dest)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
    log.info("unpacked %s into %s (%d entries)", zip_path, dest, len(plan))
    return dest


def _entry_parts(zip_path: Path, name: str) -> list[str]:
    norm = name.replace("\\", "/")  # Windows tools write backslashes
    if norm.startswith("/") or re.match(r"[A-Za-z]:", norm):
        raise UnsafeArchive(f"{zip_path}: entry {name!r} has an absolute path; refused")
    parts = [p for p in norm.split("/") if p not in ("", ".")]
    if ".." in parts:
        raise UnsafeArchive(f"{zip_path}: entry {name!r} points outside the folder ('..'); refused")
    if "\0" in name or not parts:
        raise UnsafeArchive(f"{zip_path}: entry {name!r} has an invalid name; refused")
    return parts


def _plan(zip_path: Path, infos: list[zipfile.ZipInfo], max_total_bytes: int, max_files: int,
          max_ratio: float) -> list[tuple[zipfile.ZipInfo, list[str]]]:
    """Check every header before writing anything; return the entries to extract."""
    if len(infos) > max_files:
        raise UnsafeArchive(f"{zip_path}: {len(infos)} entries, more than the {max_files} allowed; refused")
    plan, names, total = [], set(), 0
    for info in infos:
        parts = _entry_parts(zip_path, info.filename)
        if stat.S_ISLNK(info.external_attr >> 16):
            raise UnsafeArchive(f"{zip_path}: entry {info.filename!r} is a symlink; refused")
        total += info.file_size
        if total > max_total_bytes:
            raise UnsafeArchive(f"{zip_path}: entry {info.filename!r} brings the unpacked size past "
                                f"{max_total_bytes:,} bytes; refused (zip bomb?)")
        if _ratio_too_high(info.file_size, info.compress_size, max_ratio):
            raise UnsafeArchive(f"{zip_path}: entry {info.filename!r} expands {info.file_size:,} bytes from "
                                f"{info.compress_size:,} (over {max_ratio:g}:1); refused (zip bomb?)")
        key = tuple(parts)
        if key in names:
            raise UnsafeArchive(f"{zip_path}: entry {info.filename!r} appears twice; refused")
        names.add(key)
        if any(is_ignored_name(p) for p in parts):
            continue
        plan.append((info, parts))
    return plan


def _ratio_too_high(size: int, compressed: int, max_ratio: float) -> bool:
    return size >= _RATIO_MIN_BYTES and size > max_ratio * max(compressed, 1)


def _extract(zip_path: Path, zf: zipfile.ZipFile, plan: list[tuple[zipfile.ZipInfo, list[str]]],
             tmp: Path, max_total_bytes: int, max_ratio: float) -> None:
    total = 0
    for info, parts in plan:
        target = tmp.joinpath(*parts)
        try:
            if info.is_dir():
                target.mkdir(parents=True, exist_ok=True)
                continue
            target.parent.mkdir(parents=True, exist_ok=True)
            written = 0
            # Count what actually comes out of the decompressor: the limits hold even
            # when the header lies (or a zip library trusts the compressed stream).
            with zf.open(info) as src, open(target, "xb") as out:
                while chunk := src.read(_CHUNK):
                    written += len(chunk)
                    total += len(chunk)
                    if (written > info.file_size or total > max_total_bytes
                            or _ratio_too_high(written, info.compress_size, max_ratio)):
                        raise UnsafeArchive(f"{zip_path}: entry {info.filename!r} expands past its declared "
                                            f"size or the limits; refused (zip bomb?)")
                    out.write(chunk)
        except (zipfile.BadZipFile, zlib.error, EOFError) as exc:
            raise UnsafeArchive(f"{zip_path}: entry {info.filename!r}: data does not match its header "
                                f"({exc}); refused (corrupt, or sizes that lie)") from None
        except (NotImplementedError, RuntimeError) as exc:  # unsupported compression, encryption
            raise DropError(f"{zip_path}: entry {info.filename!r} cannot be unpacked: {exc}") from None
        except OSError as exc:
            raise DropError(f"{zip_path}: entry {info.filename!r}: cannot write {target}: "
                            f"{exc.strerror or exc}") from None


def unpacked_folder(shot_dir: Path, zip_path: Path) -> Path:
    """Where the zip drop ``keys/{name}.zip`` is unpacked: ``quickart/unpacked/{zip stem}-{sha256[:12]}/``."""
    return Path(shot_dir) / OUTPUT_DIR / UNPACKED_DIR / f"{zip_path.stem}-{sha256_file(zip_path)[:12]}"


def unpack_zip_drops(shot_dir: Path, root: Path | None = None) -> dict[Path, Path]:
    """Unpack every ``keys/*.zip`` of a shot once; return {unpacked folder: its zip} of the zips present.

    Each zip goes to ``unpacked_folder``; a folder that already exists is this exact zip
    unpacked before, so it is not unpacked again. The folder of a zip no longer there
    (replaced or removed) is removed: its files are no longer inputs (jobs read their own copies).
    """
    shot_dir = Path(shot_dir)
    keys = shot_dir / "keys"
    boundary = Path(root if root is not None else shot_dir).resolve()
    try:
        zips = sorted(Path(e.path) for e in os.scandir(keys)
                      if e.name.lower().endswith(".zip") and not is_ignored_name(e.name) and e.is_file())
    except (FileNotFoundError, NotADirectoryError):
        zips = []
    folders: dict[Path, Path] = {}
    for zip_path in zips:
        _check_link(zip_path, boundary)
        folder = unpacked_folder(shot_dir, zip_path)
        if not folder.exists():
            unpack_zip(zip_path, folder)
        folders[folder] = zip_path
    _remove_replaced_unpacked(shot_dir / OUTPUT_DIR / UNPACKED_DIR, list(folders))
    return folders


def _remove_replaced_unpacked(unpacked: Path, current: list[Path]) -> None:
    """Remove the unpacked folders of zips no longer in keys/ (hidden ones are unpackings in progress)."""
    try:
        stale = [Path(e.path) for e in os.scandir(unpacked)
                 if e.is_dir(follow_symlinks=False) and not is_ignored_name(e.name) and Path(e.path) not in current]
    except OSError:
        return
    for folder in stale:
        shutil.rmtree(folder, ignore_errors=True)
        log.info("action=tidy removed=%s reason=its zip is no longer in keys/", folder)
