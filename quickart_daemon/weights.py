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
from .outputs import sha256_file


@dataclass(frozen=True)
class ModelEntry:
    name: str
    file: str
    sha256: str
    source: str = ""
    license: str = ""


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


def check(entry: ModelEntry, models_dir: Path) -> str | None:
    """None when the file is present and matches, else the problem in one sentence."""
    path = models_dir / entry.file
    if not path.is_file():
        return f"{entry.name}: {path} is missing; run `quickart models install {entry.name}`"
    digest = sha256_file(path)
    if digest != entry.sha256:
        return f"{entry.name}: {path} has sha256 {digest[:12]}…, the manifest pins {entry.sha256[:12]}…; reinstall it"
    return None


def verified_path(name: str, models_dir: Path) -> Path:
    """The path of a model file whose checksum matches its manifest entry."""
    entries = load_manifest()
    if name not in entries:
        raise ModelLoadError(f"model {name!r} is not in {manifest_path()}")
    problem = check(entries[name], models_dir)
    if problem:
        raise ModelLoadError(problem)
    return models_dir / entries[name].file
