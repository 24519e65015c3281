"""Drops: input files, completeness, and safe zip unpacking (real files in tmp_path)."""

from __future__ import annotations

import io
import os
import stat
import struct
import zipfile
from pathlib import Path

import pytest
from PIL import Image

from quickart_daemon import drops
from quickart_daemon.drops import (check_complete, input_files, is_ignored_name, signature, unpack_zip,
                                   unpack_zip_drops)
from quickart_daemon.errors import DropError, UnsafeArchive


def png_bytes(size: int = 16) -> bytes:
    buf = io.BytesIO()
    Image.new("RGBA", (size, size), (200, 10, 10, 255)).save(buf, format="PNG")
    return buf.getvalue()


def make_shot(tmp_path: Path) -> tuple[Path, Path]:
    root = tmp_path / "studio"
    shot = root / "BRV" / "sq010" / "sh0040"
    for d in ("keys", "refs", "hints"):
        (shot / d).mkdir(parents=True)
    return root, shot


def tree(folder: Path) -> set[str]:
    return {p.relative_to(folder).as_posix() for p in folder.rglob("*")} if folder.exists() else set()


# names and inputs -----------------------------------------------------------------
@pytest.mark.parametrize("name", ["~$sh0040.png", ".sh0040.1001.png.swp", "sh0040.1001.png.tmp", "a.png.part",
                                  "a.png.crdownload", "a.png~", ".DS_Store", "Thumbs.db", "A.PNG.TMP"])
def test_temp_names_are_ignored(name):
    assert is_ignored_name(name)


@pytest.mark.parametrize("name", ["sh0040.1001.png", "sh0040_char_a.1001.png", "palette.yaml", "batch.zip"])
def test_real_names_are_not_ignored(name):
    assert not is_ignored_name(name)


def test_input_files_lists_inputs_only(tmp_path):
    root, shot = make_shot(tmp_path)
    wanted = ["keys/sh0040.1001.png", "refs/palette.yaml", "hints/sh0040.1001.png", "shot.yaml",
              "timesheet.csv", "sh0040.xdts", "quickart/unpacked/b-0123456789ab/sh0040.1002.png"]
    unwanted = ["keys/_READY", "keys/sh0040.1003.png.part", "keys/~lock.png", "keys/.hidden.png",
                "quickart/v001/comp/sh0040.1001.png", "quickart/latest.json", "notes.txt",
                "keys/.sync/sh0040.1004.png"]
    for rel in wanted + unwanted:
        (shot / rel).parent.mkdir(parents=True, exist_ok=True)
        (shot / rel).write_bytes(b"x")
    got = [p.relative_to(shot).as_posix() for p in input_files(shot, root)]
    assert got == sorted(got)
    assert set(got) == set(wanted)


def test_symlink_outside_root_is_refused(tmp_path):
    root, shot = make_shot(tmp_path)
    outside = tmp_path / "secret.png"
    outside.write_bytes(png_bytes())
    (shot / "keys" / "sh0040.1001.png").symlink_to(outside)
    with pytest.raises(DropError, match="outside the studio root"):
        input_files(shot, root)


def test_symlinked_folder_outside_root_is_refused(tmp_path):
    root, shot = make_shot(tmp_path)
    (tmp_path / "elsewhere").mkdir()
    (shot / "refs").rmdir()
    (shot / "refs").symlink_to(tmp_path / "elsewhere")
    with pytest.raises(DropError, match="refs"):
        input_files(shot, root)


def test_symlink_inside_root_is_allowed(tmp_path):
    root, shot = make_shot(tmp_path)
    shared = root / "BRV" / "library.png"
    shared.write_bytes(png_bytes())
    (shot / "refs" / "sh0040.1001.png").symlink_to(shared)
    assert input_files(shot, root) == [shot / "refs" / "sh0040.1001.png"]


def test_signature_changes_with_size_and_mtime(tmp_path):
    root, shot = make_shot(tmp_path)
    key = shot / "keys" / "sh0040.1001.png"
    key.write_bytes(b"abc")
    first = signature(input_files(shot, root), shot)
    assert signature(input_files(shot, root), shot) == first
    os.utime(key, ns=(1, 1))
    second = signature(input_files(shot, root), shot)
    assert second != first
    key.write_bytes(b"abcd")
    os.utime(key, ns=(1, 1))
    assert signature(input_files(shot, root), shot) != second


# completeness ---------------------------------------------------------------------
def test_complete_drop_has_no_problems(tmp_path):
    _, shot = make_shot(tmp_path)
    key = shot / "keys" / "sh0040.1001.png"
    key.write_bytes(png_bytes())
    (shot / "shot.yaml").write_text("fps: 24\n")
    assert check_complete([key, shot / "shot.yaml"]) == []


def test_zero_byte_and_truncated_png_are_reported(tmp_path):
    _, shot = make_shot(tmp_path)
    empty = shot / "keys" / "sh0040.1001.png"
    empty.write_bytes(b"")
    truncated = shot / "keys" / "sh0040.1002.png"
    truncated.write_bytes(png_bytes(64)[:-20])
    missing = shot / "keys" / "sh0040.1003.png"
    problems = check_complete([empty, truncated, missing])
    assert len(problems) == 3
    assert "zero bytes" in problems[0] and "sh0040.1001.png" in problems[0]
    assert "truncated PNG" in problems[1] and "sh0040.1002.png" in problems[1]
    assert "cannot be opened" in problems[2]


def test_truncated_zip_is_reported(tmp_path):
    path = tmp_path / "batch.zip"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("sh0040.1001.png", png_bytes())
    path.write_bytes(path.read_bytes()[:-30])
    assert "zip" in check_complete([path])[0]


# zip unpacking --------------------------------------------------------------------
def make_zip(path: Path, entries: dict[str, bytes], compression=zipfile.ZIP_DEFLATED) -> Path:
    with zipfile.ZipFile(path, "w", compression) as zf:
        for name, data in entries.items():
            zf.writestr(name, data)
    return path


def assert_refused(tmp_path: Path, zip_path: Path, match: str, **limits) -> None:
    before = tree(tmp_path)
    dest = tmp_path / "out" / "dest"
    with pytest.raises(UnsafeArchive, match=match):
        unpack_zip(zip_path, dest, **limits)
    assert not dest.exists()
    after = tree(tmp_path)
    assert after - before <= {"out"}, after - before  # no partial folder, nothing outside dest


def test_good_zip_unpacks(tmp_path):
    data = png_bytes()
    z = make_zip(tmp_path / "batch.zip", {"sh0040.1001.png": data, "sub/sh0040_bg.1001.png": data,
                                          "__MACOSX/._sh0040.1001.png": b"junk", "sub/": b""})
    dest = unpack_zip(z, tmp_path / "dest")
    assert tree(dest) == {"sh0040.1001.png", "sub", "sub/sh0040_bg.1001.png"}
    assert (dest / "sub" / "sh0040_bg.1001.png").read_bytes() == data


def test_zip_slip_is_refused(tmp_path):
    z = make_zip(tmp_path / "evil.zip", {"ok.png": png_bytes(), "../evil.png": b"pwned"})
    assert_refused(tmp_path, z, r"evil\.zip.*'\.\./evil\.png'")
    assert not (tmp_path / "out" / "evil.png").exists()


def test_backslash_zip_slip_is_refused(tmp_path):
    z = make_zip(tmp_path / "evil.zip", {"..\\..\\evil.png": b"pwned"})
    assert_refused(tmp_path, z, "outside")


def test_absolute_path_is_refused(tmp_path):
    z = tmp_path / "abs.zip"
    with zipfile.ZipFile(z, "w") as zf:
        info = zipfile.ZipInfo("sh0040.1001.png")
        info.filename = "/tmp/evil.png"  # ZipInfo() strips a leading slash; a hostile tool does not
        zf.writestr(info, b"pwned")
    assert_refused(tmp_path, z, "absolute path")


def test_symlink_entry_is_refused(tmp_path):
    z = tmp_path / "link.zip"
    with zipfile.ZipFile(z, "w") as zf:
        info = zipfile.ZipInfo("sh0040.1001.png")
        info.external_attr = (stat.S_IFLNK | 0o777) << 16
        zf.writestr(info, "/etc/passwd")
    assert_refused(tmp_path, z, "symlink")


def test_too_many_files_is_refused(tmp_path):
    z = make_zip(tmp_path / "many.zip", {f"f{i}.png": b"x" for i in range(11)})
    assert_refused(tmp_path, z, "11 entries", max_files=10)


def test_zip_bomb_by_ratio_is_refused(tmp_path):
    z = make_zip(tmp_path / "bomb.zip", {"sh0040.1001.png": b"\0" * (20 << 20)})
    assert_refused(tmp_path, z, "zip bomb")


def test_zip_bomb_by_total_size_is_refused(tmp_path):
    z = make_zip(tmp_path / "big.zip", {"a.png": os.urandom(3000), "b.png": os.urandom(3000)})
    assert_refused(tmp_path, z, "'b.png'.*5,000", max_total_bytes=5000)


def _lie_about_size(path: Path, claimed: int) -> None:
    """Rewrite the uncompressed size in the local and central headers of a one-entry zip."""
    data = bytearray(path.read_bytes())
    assert data[:4] == b"PK\x03\x04"
    struct.pack_into("<I", data, 22, claimed)  # local header: uncompressed size
    central = data.rindex(b"PK\x01\x02")
    struct.pack_into("<I", data, central + 24, claimed)  # central header: uncompressed size
    path.write_bytes(bytes(data))


def test_lying_header_is_refused(tmp_path):
    z = make_zip(tmp_path / "liar.zip", {"sh0040.1001.png": b"\0" * (20 << 20)})
    _lie_about_size(z, 100_000)  # 100 KB claimed from ~20 KB compressed: looks harmless
    assert zipfile.ZipFile(z).infolist()[0].file_size == 100_000
    assert_refused(tmp_path, z, "does not match its header")


def test_actual_bytes_are_counted_even_if_the_reader_trusts_the_stream(tmp_path, monkeypatch):
    # A zip reader that does not stop at the declared size (older or other libraries):
    # our own byte count must still stop the bomb.
    z = make_zip(tmp_path / "liar.zip", {"sh0040.1001.png": b"tiny"})
    monkeypatch.setattr(zipfile.ZipFile, "open", lambda self, info, *a, **k: io.BytesIO(b"\0" * (8 << 20)))
    assert_refused(tmp_path, z, "expands past its declared size")


def test_existing_dest_is_not_overwritten(tmp_path):
    z = make_zip(tmp_path / "batch.zip", {"sh0040.1001.png": png_bytes()})
    (tmp_path / "dest").mkdir()
    with pytest.raises(DropError, match="already exists"):
        unpack_zip(z, tmp_path / "dest")


def test_unpack_zip_drops_once_per_zip_content(tmp_path):
    root, shot = make_shot(tmp_path)
    make_zip(shot / "keys" / "batch.zip", {"sh0040.1001.png": png_bytes()})
    first = list(unpack_zip_drops(shot, root))
    assert len(first) == 1 and first[0].parent == shot / "quickart" / "unpacked"
    assert first[0].name.startswith("batch-") and len(first[0].name) == len("batch-") + 12
    marker = first[0] / "sh0040.1001.png"
    mtime = marker.stat().st_mtime_ns
    assert list(unpack_zip_drops(shot, root)) == first  # same zip: not unpacked again
    assert marker.stat().st_mtime_ns == mtime
    assert shot / "quickart" / "unpacked" / first[0].name / "sh0040.1001.png" in input_files(shot, root)
    make_zip(shot / "keys" / "batch.zip", {"sh0040.1001.png": png_bytes(32)})
    second = list(unpack_zip_drops(shot, root))
    assert second != first and second[0].exists()


def test_unpack_zip_drops_refuses_unsafe_zip(tmp_path):
    root, shot = make_shot(tmp_path)
    make_zip(shot / "keys" / "evil.zip", {"../../evil.png": b"pwned"})
    with pytest.raises(UnsafeArchive, match="evil.zip"):
        unpack_zip_drops(shot, root)
    assert tree(shot / "quickart") == set()  # headers are checked before anything is created
    assert not (shot / "quickart" / "evil.png").exists()


def test_limits_are_module_defaults():
    # documented defaults: 2 GiB, 10000 files, 200:1
    defaults = unpack_zip.__defaults__
    assert defaults == (2 * 1024**3, 10_000, 200)
    assert drops.MARKER == "_READY"
