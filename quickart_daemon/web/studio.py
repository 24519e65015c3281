"""The studio as the web page sees it: safe paths, shots, versions, thumbnails, uploads, zips.

Every path a request names goes through `inside_root`: resolved (symlinks followed) and
refused unless it lies inside the studio root. Version folders never change once
published (`outputs.py`), so their files are served as immutable and their thumbnails
are made once and kept under `state_dir/web-thumbs/`.
"""

from __future__ import annotations

import hashlib
import io
import itertools
import json
import logging
import os
import re
import shutil
import stat
import time
import uuid
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from ..config import Config
from ..drops import OUTPUT_DIR, check_complete, is_ignored_name, unpack_zip, unpacked_folder
from ..errors import DropError, QuickArtError
from ..images import image_size
from ..naming import ShotId
from ..outputs import VERSION_RE, read_latest, version_otio_name, versions
from ..shot import read_settings, shot_id_for

log = logging.getLogger("quickart.web")


class NotInStudio(QuickArtError):
    """The path is not inside the studio root."""


class NotFound(QuickArtError):
    """No such file or folder."""


class UploadRefused(DropError):
    """The upload was refused."""


#: folders of a version that hold frame sequences; any other folder is a stage's (refine, color, light, ...)
SEQUENCE_DIRS = ("comp", "frames")
#: what a version's zip holds (the issue: frames, comp, OTIO, manifest; plus the contact sheet and job log)
ZIP_DIRS = ("frames", "comp")
ZIP_FILES = ("manifest.json", "contact.png", "job.log")
THUMB_WIDTH = 320
#: how overlays are drawn over a frame: the confidence map darkens doubtful regions, the light
#: layer (128 + difference / 2) brightens and darkens like its compositing mode
OVERLAY_BLEND = {"confidence": "multiply", "layer": "hard-light"}


def inside_root(root: Path, relative: str) -> Path:
    """`relative` (as a request names it) resolved inside the studio root, or NotInStudio.

    Refused before touching the disk: absolute paths, NUL, backslashes and `..`; after
    resolving (symlinks followed): anything whose real path leaves the root."""
    if "\0" in relative or "\\" in relative or relative.startswith("/") or ".." in PurePosixPath(relative).parts:
        raise NotInStudio(f"{relative!r}: not a path inside the studio root")
    base = root.resolve()
    try:
        target = (base / relative).resolve()
    except (OSError, RuntimeError):  # a symlink loop
        raise NotInStudio(f"{relative!r}: not a path inside the studio root") from None
    if not target.is_relative_to(base):
        raise NotInStudio(f"{relative!r}: not a path inside the studio root")
    return target


def open_inside(root: Path, path: Path):
    """`path` opened for reading (a binary file object) only if it is a regular file whose real
    path lies inside the studio root; else NotInStudio or NotFound.

    Every file the page reads goes through here, so a link inside a version folder (to
    /etc/passwd, to config.yaml with the web token) is never opened. The check is made on the
    file actually opened (/proc/self/fd names it), so a link swapped in between check and open
    cannot slip through; a FIFO is opened without blocking and then refused as not a file."""
    base = root.resolve()
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except FileNotFoundError:
        raise NotFound(f"{path.name}: no such file") from None
    except OSError as exc:
        raise NotFound(f"{path.name}: cannot be read ({exc.strerror})") from None
    try:
        real = _opened_path(fd, path)
        if not real.is_relative_to(base):
            raise NotInStudio(f"{path.name}: not a file inside the studio root")
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise NotFound(f"{path.name}: not a file")
        os.set_blocking(fd, True)
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def _opened_path(fd: int, path: Path) -> Path:
    """The real path of an open file: the kernel's name for it where /proc has one."""
    try:
        return Path(os.readlink(f"/proc/self/fd/{fd}"))
    except OSError:
        return Path(os.path.realpath(path))


@dataclass(frozen=True)
class ShotRef:
    """A shot folder named by its path relative to the root (as the page's URLs carry it)."""

    rel: str
    dir: Path
    id: ShotId
    root: Path  # the studio root, resolved: nothing outside it is opened

    @property
    def output_dir(self) -> Path:
        return self.dir / OUTPUT_DIR


def shot_ref(cfg: Config, rel: str) -> ShotRef:
    folder = inside_root(cfg.root, rel)
    if not folder.is_dir():
        raise NotFound(f"no shot folder {rel}")
    try:
        shot = shot_id_for(folder, cfg.root, cfg.naming_rules)
    except QuickArtError:
        raise NotFound(f"{rel} is not a shot folder") from None
    return ShotRef(cfg.naming_rules.format_shot_path(shot), folder, shot, cfg.root.resolve())


def shot_rel(cfg: Config, shot: ShotId) -> str:
    """The shot's folder relative to the root, from its name (a shared database may hold another
    node's absolute paths)."""
    return cfg.naming_rules.format_shot_path(shot)


def version_dir(ref: ShotRef, version: str) -> Path:
    if not VERSION_RE.match(version):
        raise NotFound(f"{version!r} is not a version name like v001")
    folder = ref.output_dir / version
    if not folder.is_dir():
        raise NotFound(f"{ref.id} has no {version}")
    if not folder.resolve().is_relative_to(ref.root):  # a version folder linked to elsewhere
        raise NotInStudio(f"{ref.id} {version} is not a folder inside the studio root")
    return folder


def version_file(cfg: Config, ref: ShotRef, version: str, inner: str) -> Path:
    """A file inside a version folder, resolved inside the studio root."""
    version_dir(ref, version)
    path = inside_root(cfg.root, f"{ref.rel}/{OUTPUT_DIR}/{version}/{inner}")
    if not path.is_file():
        raise NotFound(f"{ref.id} {version} has no {inner}")
    return path


def shot_versions(ref: ShotRef) -> dict:
    latest = read_latest(ref.output_dir) or {}
    return {"versions": [f"v{n:03d}" for n in versions(ref.output_dir)], "latest": latest.get("path")}


def describe_version(cfg: Config, ref: ShotRef, version: str) -> dict:
    """What the shot view needs of one version: fps, frame range, keys per layer, every sequence
    (comp, each layer, each stage folder) and overlay (stage variants) with its frame files."""
    folder = version_dir(ref, version)
    naming = cfg.naming_rules
    manifest = _read_json(ref.root, folder / "manifest.json")
    timing = manifest.get("timing") or {}
    try:
        fps = float(timing.get("fps") or read_settings(ref.dir).fps or cfg.timing.fps)
    except QuickArtError:
        fps = cfg.timing.fps
    shot = ref.id.shot
    keys: dict[str, list[int]] = {}
    for entry in manifest.get("inputs") or []:
        path = PurePosixPath(str(entry.get("path", "")))
        if path.parts[:1] == ("keys",) or path.parts[:2] == (OUTPUT_DIR, "unpacked"):
            name = naming.parse_key_name(path.name, shot)
            if name is not None:
                keys.setdefault(name.layer, []).append(name.frame)
    sequences, overlays = [], []
    base = f"{ref.rel}/{OUTPUT_DIR}/{version}"
    for sub in sorted(p for p in folder.iterdir() if p.is_dir() and not is_ignored_name(p.name)):
        if sub.name == "comp":
            frames = _frame_files(sub, lambda n: naming.comp_file.parse(n, shot=shot), comp=True)
            sequences.insert(0, {"name": "comp", "layer": None, "frames": _urls(base, "comp", frames[None]),
                                 "drawings": _drawings(frames[None])})
            continue
        by_layer = _frame_files(sub, lambda n: naming.output_file.parse(n, shot=shot))
        for layer, frames in sorted(by_layer.items()):
            name = layer if sub.name == "frames" else f"{sub.name}/{layer}"
            sequences.append({"name": name, "layer": layer, "frames": _urls(base, sub.name, frames),
                              "drawings": _drawings(frames)})
        for variant in sorted(p for p in sub.iterdir() if p.is_dir() and not is_ignored_name(p.name)):
            by_layer = _frame_files(variant, lambda n: naming.output_file.parse(n, shot=shot))
            if by_layer:
                overlays.append({"name": f"{sub.name}/{variant.name}",
                                 "blend": OVERLAY_BLEND.get(variant.name, "source-over"),
                                 "layers": {layer: _urls(base, f"{sub.name}/{variant.name}", frames)
                                            for layer, frames in sorted(by_layer.items())}})
    frame_range = timing.get("frame_range") or _range(sequences)
    return {"shot": str(ref.id), "rel": ref.rel, "version": version, "fps": fps, "frame_range": frame_range,
            "keys": {layer: sorted(set(f)) for layer, f in sorted(keys.items())}, "sequences": sequences,
            "overlays": overlays, "job_id": manifest.get("job_id"), "pipeline": (manifest.get("pipeline") or {}).get("name"),
            "contact": f"/files/{base}/contact.png" if (folder / "contact.png").is_file() else None,
            "otio": f"/timeline/{ref.rel}/{version}.otio" if version_otio(ref, version) else None,
            "zip": f"/download/{base}.zip"}


def _frame_files(folder: Path, parse, comp: bool = False) -> dict:
    """{layer (None for the comp): {frame: (file name, inode)}} of the frames in a folder."""
    out: dict = {}
    for entry in os.scandir(folder):
        if not entry.is_file() or is_ignored_name(entry.name):
            continue
        values = parse(entry.name)
        if values is not None:
            out.setdefault(None if comp else values["layer"], {})[int(values["frame"])] = (entry.name, entry.inode())
    return out if not comp else {None: out.get(None, {})}


def _urls(base: str, sub: str, frames: dict[int, tuple[str, int]]) -> dict[str, str]:
    return {str(f): f"/files/{base}/{sub}/{name}" for f, (name, _) in sorted(frames.items())}


def _drawings(frames: dict[int, tuple[str, int]]) -> list[int]:
    """The frames where a sequence shows a new drawing: publishing hard-links a held drawing's frames
    to its first (`folders.write_frames`, `publish._write_comp`), so a frame whose file is the previous
    frame's is a hold. The flipbook steps, onion-skins and buffers by drawing with this. (A studio share
    without hard links gets copies: every frame reads as a drawing, which is still correct to show.)"""
    starts, previous = [], None
    for frame, (_, inode) in sorted(frames.items()):
        if previous is None or previous != (frame - 1, inode) or not inode:  # 0: a file system without numbers
            starts.append(frame)
        previous = (frame, inode)
    return starts


def version_otio(ref: ShotRef, version: str) -> Path | None:
    """The version's own OTIO timeline (as publishing names it, `outputs.version_otio_name`), if it has one."""
    folder = version_dir(ref, version)  # checks the name: vNNN
    path = folder / version_otio_name(ref.id.shot, int(VERSION_RE.match(version).group(1)))
    return path if path.is_file() else None


def _range(sequences: list[dict]) -> list[int]:
    frames = [int(f) for s in sequences for f in s["frames"]]
    return [min(frames), max(frames)] if frames else [0, 0]


def _read_json(root: Path, path: Path) -> dict:
    try:
        with open_inside(root, path) as fh:
            data = json.loads(fh.read().decode("utf-8"))
        return data if isinstance(data, dict) else {}
    except (OSError, ValueError, QuickArtError):
        return {}


# -- thumbnails ---------------------------------------------------------------------------

def thumbnail(cfg: Config, ref: ShotRef, version: str) -> Path:
    """A small PNG of the version's middle comp frame, made on first request and kept (a version
    never changes, so its thumbnail never goes stale)."""
    folder = version_dir(ref, version)
    st = folder.stat()
    key = hashlib.sha256(f"{folder.resolve()}\0{st.st_ino}\0{st.st_mtime_ns}".encode()).hexdigest()[:32]
    out = cfg.state_dir / "web-thumbs" / f"{key}.png"
    if out.is_file():
        return out
    comp = sorted(p for p in (folder / "comp").glob("*.png")) if (folder / "comp").is_dir() else []
    source = comp[len(comp) // 2] if comp else folder / "contact.png"
    if not source.is_file():
        raise NotFound(f"{ref.id} {version} has no frames to show")
    from PIL import Image
    with open_inside(ref.root, source) as fh, Image.open(fh) as img:
        if img.width * img.height > cfg.max_image_pixels:
            raise NotFound(f"{source.name} is larger than max_image_pixels")
        img.thumbnail((THUMB_WIDTH, THUMB_WIDTH))
        buf = io.BytesIO()
        img.save(buf, "PNG")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.{uuid.uuid4().hex[:8]}.tmp")
    tmp.write_bytes(buf.getvalue())
    os.replace(tmp, out)
    return out


# -- a version as a zip, streamed -----------------------------------------------------------

class _Chunks(io.RawIOBase):
    """A write-only, unseekable stream that hands out what was written: zipfile then writes data
    descriptors instead of seeking back, so the zip streams while it is made."""

    def __init__(self) -> None:
        self.parts: list[bytes] = []

    def writable(self) -> bool:
        return True

    def write(self, data) -> int:
        self.parts.append(bytes(data))
        return len(data)

    def take(self) -> bytes:
        out, self.parts = b"".join(self.parts), []
        return out


def version_zip_files(ref: ShotRef, version: str) -> list[tuple[Path, str]]:
    """(file, name in the zip) for a version's download, all under `{shot}_vNNN/`: regular files
    only, and `stream_zip` opens each through `open_inside` (a link out of the studio is left out)."""
    folder = version_dir(ref, version)
    top = f"{ref.id.shot}_{version}"
    files = [(folder / name, f"{top}/{name}") for name in ZIP_FILES if (folder / name).is_file()]
    files += [(p, f"{top}/{p.name}") for p in sorted(folder.glob("*.otio"))]
    for sub in ZIP_DIRS:
        if (folder / sub).is_dir():
            files += [(p, f"{top}/{sub}/{p.name}") for p in sorted((folder / sub).iterdir())
                      if p.is_file() and not is_ignored_name(p.name)]
    return files


def stream_zip(root: Path, files: list[tuple[Path, str]], chunk: int = 1 << 20) -> Iterator[bytes]:
    """The zip of `files`, yielded piece by piece (PNGs are compressed already: stored). A file
    that is not a regular file inside the studio root is left out, never opened."""
    sink = _Chunks()
    with zipfile.ZipFile(sink, "w", compression=zipfile.ZIP_STORED) as zf:
        for path, name in files:
            try:
                src = open_inside(root, path)
            except QuickArtError as exc:
                log.warning("action=web_zip_skip file=%s reason=%s", name, exc)
                continue
            with src, zf.open(zipfile.ZipInfo.from_file(path, name), "w") as dst:
                while data := src.read(chunk):
                    dst.write(data)
                    yield sink.take()
            yield sink.take()
    yield sink.take()


# -- uploads ---------------------------------------------------------------------------------

def accept_upload(cfg: Config, ref: ShotRef, files: list[tuple[str, Path]]) -> dict:
    """Put uploaded keys into the shot's keys/ folder as a new zip drop: one zip, or PNGs.

    Both go through `drops.unpack_zip` with the config's zip limits, the check a zip dropped on
    the share gets (PNGs are packed into a zip first, so their names meet the same zip-slip
    checks); then every file must be a key of the shot by name, a real PNG (its signature),
    complete and within max_image_pixels, or the whole upload is refused. What passes lands as
    ``keys/upload-YYYYmmdd-HHMMSS-N.zip`` (`_place_upload`): never over a file in keys/, so an
    artist's key is never overwritten; the watcher unpacks it as any zip drop, and where it holds
    a key that is also elsewhere the newest drop wins (`shot._newest_drop_wins`)."""
    if not files:
        raise UploadRefused("no files in the upload")
    keys = ref.dir / "keys"
    if os.path.lexists(keys):
        inside_root(cfg.root, f"{ref.rel}/keys")  # keys/ may be a link, but not to outside the root
    keys.mkdir(exist_ok=True)
    work = ref.output_dir / f".web-upload-{uuid.uuid4().hex[:12]}"
    work.mkdir(parents=True)
    try:
        is_zip = len(files) == 1 and files[0][0].lower().endswith(".zip")
        if is_zip:
            archive = files[0][1]
        elif any(name.lower().endswith(".zip") for name, _ in files):
            raise UploadRefused("upload one zip, or PNG files, not both")
        else:
            archive = work / "upload.zip"
            with zipfile.ZipFile(archive, "w", compression=zipfile.ZIP_STORED) as zf:
                for name, path in files:
                    zf.write(path, name)
        try:
            unpacked = unpack_zip(archive, work / "unpacked", cfg.drop.max_zip_bytes, cfg.drop.max_zip_files)
        except DropError as exc:  # named as the person uploaded it, not by our temporary file
            shown = Path(files[0][0]).name if is_zip else "upload"
            raise UploadRefused(str(exc).replace(str(archive), shown)) from None
        pngs = sorted(p for p in unpacked.rglob("*") if p.is_file())
        if not pngs:
            raise UploadRefused("the upload holds no files")
        if not is_zip and any(p.parent != unpacked for p in pngs):
            raise UploadRefused("PNG uploads are plain file names; put folders in a zip")
        _check_key_names(cfg, ref, pngs, unpacked)
        _check_images(cfg, pngs, unpacked)
        placed = _place_upload(archive, keys)
        return {"shot": str(ref.id), "placed": [placed.name], "files": len(pngs),
                "keys": sorted(p.name for p in pngs)}
    finally:
        shutil.rmtree(work, ignore_errors=True)


#: the names `_place_upload` gives; `clear_uploads` removes these zips and nothing else in keys/
UPLOAD_RE = re.compile(r"upload-\d{8}-\d{6}-\d+\.zip")


def _place_upload(archive: Path, keys: Path) -> Path:
    """Copy an upload into keys/ as ``upload-YYYYmmdd-HHMMSS-N.zip``, the first N free: written under a
    hidden name the watcher ignores, then hard-linked to its name, which fails rather than replace a
    file, so nothing in keys/ is ever written over."""
    stamp = time.strftime("%Y%m%d-%H%M%S")
    tmp = keys / f".upload-{uuid.uuid4().hex[:12]}.zip.tmp"
    try:
        shutil.copyfile(archive, tmp)
        for n in itertools.count(1):
            target = keys / f"upload-{stamp}-{n}.zip"
            try:
                os.link(tmp, target)
                return target
            except FileExistsError:
                continue
    except OSError as exc:
        raise UploadRefused(f"keys/ of this shot cannot take the upload: {exc.strerror or exc}") from None
    finally:
        tmp.unlink(missing_ok=True)


def clear_uploads(cfg: Config, ref: ShotRef) -> dict:
    """Remove the page's own uploads of a shot: ``keys/upload-…zip`` (`UPLOAD_RE`) and their unpacked
    folders, so a bad upload is undone from the page (the watcher takes the shot without them as a
    new drop). The artist's keys, loose or in zips of other names, are never touched."""
    keys = ref.dir / "keys"
    if os.path.lexists(keys):
        inside_root(cfg.root, f"{ref.rel}/keys")
    removed = []
    for path in sorted(keys.iterdir()) if keys.is_dir() else []:
        if not UPLOAD_RE.fullmatch(path.name) or path.is_symlink() or not path.is_file():
            continue
        folder = unpacked_folder(ref.dir, path)
        path.unlink()  # the zip first: the watcher never unpacks it again
        shutil.rmtree(folder, ignore_errors=True)
        removed.append(path.name)
    log.info("action=web_clear_uploads shot=%s removed=%s", ref.id, ",".join(removed) or "-")
    return {"shot": str(ref.id), "removed": removed}


def _check_key_names(cfg: Config, ref: ShotRef, files: list[Path], base: Path) -> None:
    """Only key drawings of this shot may be uploaded: anything else (notes.txt, run.sh, a PNG named
    like no key) refuses the whole upload, so nothing but keys ever lands in keys/."""
    naming, shot = cfg.naming_rules, ref.id.shot
    odd = [p for p in files if naming.parse_key_name(p.name, shot) is None]
    if odd:
        more = f" (and {len(odd) - 1} more)" if len(odd) > 1 else ""
        raise UploadRefused(f"{odd[0].relative_to(base)}: not a key drawing of {shot}: "
                            f"{naming.why_not_key_name(odd[0].name, shot)}{more}; upload only PNG keys named like "
                            f"{naming.format_key_name(shot, 'char', 1001)}; nothing was placed")


def _check_images(cfg: Config, files: list[Path], base: Path) -> None:
    problems = [p.replace(str(base) + "/", "") for p in check_complete(files)]
    if problems:
        raise UploadRefused(f"{problems[0]}" + (f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""))
    for path in files:
        if path.suffix.lower() != ".png":
            continue
        w, h = image_size(path)
        if w * h > cfg.max_image_pixels:
            raise UploadRefused(f"{path.relative_to(base)}: {w}x{h} pixels, more than max_image_pixels "
                                f"({cfg.max_image_pixels:,}); refused (decompression bomb?)")
