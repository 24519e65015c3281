"""Reading a shot folder: keys by layer, zip drops, layer order, timing errors."""

from __future__ import annotations

import time
import zipfile

import pytest

from quickart_daemon.errors import ShotFolderInvalid, TimingError
from quickart_daemon.shot import load_shot, order_layers
from quickart_daemon.tools.synth import write_demo_studio


def _zip(path, names_from):
    with zipfile.ZipFile(path, "w") as zf:
        for src, name in names_from:
            zf.write(src, name)


def test_keys_refs_and_schedule(make_config):
    cfg = make_config()
    shot_dir = write_demo_studio(cfg.root, size=(160, 90), keys=(1001, 1005))
    shot = load_shot(shot_dir, cfg)
    assert str(shot.id) == "DEMO/sq010/sh0010"
    assert {l: sorted(f) for l, f in shot.keys.items()} == {"char": [1001, 1005], "fx": [1001, 1005]}
    assert sorted(shot.refs["char"]) == [1001] and shot.palette is not None
    assert shot.timing == 2 and shot.schedule.drawings("char") == [1001, 1003, 1005]
    assert shot.layer_order == ["char", "fx"]


def test_zip_drop_counts_and_a_replaced_zip_does_not_leave_old_frames(make_config, tmp_path):
    cfg = make_config()
    shot_dir = write_demo_studio(cfg.root, size=(160, 90), keys=(1001, 1005), fx=False)
    src = tmp_path / "src"
    write_demo_studio(src, size=(160, 90), keys=(1009, 1013), fx=False)
    src_keys = src / "DEMO" / "sq010" / "sh0010" / "keys"
    _zip(shot_dir / "keys" / "batch.zip", [(src_keys / "sh0010_char.1009.png", "sh0010_char.1009.png")])
    assert sorted(load_shot(shot_dir, cfg).keys["char"]) == [1001, 1005, 1009]
    _zip(shot_dir / "keys" / "batch.zip", [(src_keys / "sh0010_char.1013.png", "sh0010_char.1013.png")])
    assert sorted(load_shot(shot_dir, cfg).keys["char"]) == [1001, 1005, 1013]


def test_layer_order():
    assert order_layers(["fx", "char", "bg", "bird"], ["bg", "*", "fx"]) == ["bg", "bird", "char", "fx"]
    assert order_layers(["fx", "char"], ["fx", "char"]) == ["fx", "char"]
    assert order_layers(["b", "a"], ["bg"]) == ["a", "b"]


def test_sheet_contradicting_keys_is_a_job_error(make_config):
    cfg = make_config()
    shot_dir = write_demo_studio(cfg.root, size=(160, 90), keys=(1001, 1005), fx=False)
    (shot_dir / "timesheet.csv").write_text("frame,char\n1001,1\n1002,\n1003,\n1004,\n1005,\n")
    with pytest.raises(TimingError, match="1005"):
        load_shot(shot_dir, cfg)


def test_shot_yaml_typo_names_the_key(make_config):
    cfg = make_config()
    shot_dir = write_demo_studio(cfg.root, size=(160, 90), keys=(1001,), fx=False)
    (shot_dir / "shot.yaml").write_text("timeing: 2\n")
    with pytest.raises(ShotFolderInvalid, match="timeing"):
        load_shot(shot_dir, cfg)


def test_folder_outside_the_naming_convention(make_config):
    cfg = make_config()
    bad = cfg.root / "DEMO" / "sh0010"
    (bad / "keys").mkdir(parents=True)
    with pytest.raises(ShotFolderInvalid, match="not a shot folder"):
        load_shot(bad, cfg)


@pytest.mark.parametrize("fps", [".inf", "-.inf", ".nan", "1e-300", "0.5", "1001"])
def test_shot_yaml_fps_must_be_finite_and_sane(make_config, fps):
    """Issue 23 D4: `fps: .inf` or `1e-300` was accepted and broke the sequence OTIO (RationalTime(inf, inf));
    fps is refused at load, in one sentence naming the key."""
    cfg = make_config()
    shot_dir = write_demo_studio(cfg.root, size=(160, 90), keys=(1001,), fx=False)
    (shot_dir / "shot.yaml").write_text(f"fps: {fps}\n")
    with pytest.raises(ShotFolderInvalid, match="shot.yaml: fps: ") as err:
        load_shot(shot_dir, cfg)
    assert "\n" not in str(err.value)
    (shot_dir / "shot.yaml").write_text("fps: 23.976\n")
    assert load_shot(shot_dir, cfg).fps == 23.976


@pytest.mark.parametrize("text,line", [("fps: 24\ntiming: 2: 3\n", 2), ("fps: 24\nlight: [1, 2\n", 3),
                                       ("fps: 24\n---\nfps: 25\n", 2), ("fps: 24\nlight: 'x\n", 3)])
def test_invalid_shot_yaml_is_one_sentence_with_file_and_line(make_config, text, line):
    """Issue 23 T5: invalid YAML in shot.yaml gave PyYAML's 7-line message; now one sentence, file and line."""
    cfg = make_config()
    shot_dir = write_demo_studio(cfg.root, size=(160, 90), keys=(1001,), fx=False)
    (shot_dir / "shot.yaml").write_text(text)
    with pytest.raises(ShotFolderInvalid) as err:
        load_shot(shot_dir, cfg)
    assert str(err.value).startswith(f"{shot_dir / 'shot.yaml'}: line {line}: not valid YAML: ")
    assert "\n" not in str(err.value)


def yaml_bomb(levels: int, key: str = "light") -> str:
    """A 'billion laughs': each level is 9 aliases of the one before; 9 levels are 9**9 values in 421 bytes."""
    names = "abcdefghij"
    lines = [f"{key}:", "  a: &a [lol, lol, lol, lol, lol, lol, lol, lol, lol]"]
    for prev, name in zip(names, names[1:levels]):
        lines.append(f"  {name}: &{name} [{', '.join(['*' + prev] * 9)}]")
    return "\n".join(lines) + "\n"


@pytest.mark.parametrize("levels", [6, 9])
def test_shot_yaml_alias_bomb_is_refused_at_load(make_config, levels):
    """Issue 23 U1: a few hundred bytes of anchors under `light:` expanded to gigabytes later in the job;
    aliases expanding past the bound are refused when shot.yaml is read, in one sentence."""
    cfg = make_config()
    shot_dir = write_demo_studio(cfg.root, size=(160, 90), keys=(1001,), fx=False)
    (shot_dir / "shot.yaml").write_text(yaml_bomb(levels))
    started = time.monotonic()
    with pytest.raises(ShotFolderInvalid, match=r"shot.yaml: line \d+: its aliases \(\*name\) expand to more than"):
        load_shot(shot_dir, cfg)
    assert time.monotonic() - started < 2
    (shot_dir / "shot.yaml").write_text("light: {a: &a [1, 2], b: *a}\n")  # an alias or two is fine
    assert load_shot(shot_dir, cfg).settings.light == {"a": [1, 2], "b": [1, 2]}


@pytest.mark.parametrize("text", ["light: &a [*a]\n", "fps: 24\n" + "#" * (2 << 20) + "\n"])
def test_shot_yaml_loops_and_huge_files_are_refused(make_config, text):
    cfg = make_config()
    shot_dir = write_demo_studio(cfg.root, size=(160, 90), keys=(1001,), fx=False)
    (shot_dir / "shot.yaml").write_text(text)
    with pytest.raises(ShotFolderInvalid, match="shot.yaml: .*(alias refers to the value that contains|bytes, more than)"):
        load_shot(shot_dir, cfg)
