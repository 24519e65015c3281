"""Model files are used only when their sha256 matches the manifest."""

import shutil

import pytest

from quickart_daemon.errors import ModelLoadError
from quickart_daemon.weights import check, load_manifest, locate, manifest_path, verified_path


def test_manifest_entries_are_complete():
    for entry in load_manifest().values():
        assert len(entry.sha256) == 64 and entry.file and entry.license


def test_committed_weights_are_found_in_the_package_when_the_models_folder_lacks_them(tmp_path):
    entry = load_manifest()["refine-v1"]
    assert (manifest_path().parent / entry.file).is_file()
    assert verified_path("refine-v1", tmp_path) == manifest_path().parent / entry.file


def test_an_altered_file_is_refused(tmp_path):
    entry = load_manifest()["refine-v1"]
    shutil.copy(locate(entry, tmp_path), tmp_path / entry.file)
    assert check(entry, tmp_path) is None
    with open(tmp_path / entry.file, "r+b") as fh:
        fh.seek(100)
        fh.write(b"\x00\x01")
    with pytest.raises(ModelLoadError, match="sha256"):
        verified_path("refine-v1", tmp_path)


def test_unknown_model():
    with pytest.raises(ModelLoadError, match="not in"):
        verified_path("nope", manifest_path().parent)
