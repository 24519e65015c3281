"""config.yaml: the shipped file is valid and documented; mistakes are one line naming the key."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from quickart_daemon.config import Config, load_config, parse_config
from quickart_daemon.errors import ConfigError

REPO = Path(__file__).parent.parent


def test_shipped_config_is_valid_and_documents_every_setting():
    cfg = load_config(REPO / "config.yaml")
    assert cfg.timing.default == 2 and cfg.watch.mode == "auto"
    text = (REPO / "config.yaml").read_text()
    for section, model in Config.model_fields.items():
        if section == "source":
            continue
        assert f"{section}:" in text, f"config.yaml does not show {section}"
        sub = getattr(model.annotation, "model_fields", {})
        for key in sub:
            assert f"  {key}:" in text, f"config.yaml does not show {section}.{key}"


@pytest.mark.parametrize("text,key", [
    ("retry: {max_atempts: 2}", "retry.max_atempts"),
    ("watch: {mode: nfs}", "watch.mode"),
    ("slots: {jobs_per_gpu: 0}", "slots.jobs_per_gpu"),
    ("naming: {key_file: '{shot}.png'}", "naming.key_file"),
    ("timing: {default: 13}", "timing.default"),
    ("layers_order: ['*', bg, '*']", "layers_order"),
    ("timing: {fps: .inf}", "timing.fps"),  # issue 23 D4: non-finite or absurd fps breaks the OTIO timelines
    ("timing: {fps: .nan}", "timing.fps"),
    ("timing: {fps: 1e-300}", "timing.fps"),
    ("timing: {fps: 100000}", "timing.fps"),
    # issue 23 D6: output names that leave the version folder
    ("naming: {output_file: '../../{shot}_{layer}.{frame}.png'}", "naming.output_file"),
    ("naming: {output_file: '{layer}/{shot}.{frame}.png'}", "naming.output_file"),
    ("naming: {output_file: '{shot}_{layer}..{frame}.png'}", "naming.output_file"),
    ("naming: {comp_file: '/tmp/{shot}.{frame}.png'}", "naming.comp_file"),
])
def test_bad_values_name_the_key(text, key, tmp_path):
    with pytest.raises(ConfigError) as err:
        parse_config(text, tmp_path / "config.yaml")
    assert key in str(err.value) and "\n" not in str(err.value)


def test_relative_paths_are_relative_to_the_file(tmp_path):
    cfg = parse_config("root: studio\ndatabase: {url: 'sqlite:///state/q.db'}\n", tmp_path / "config.yaml")
    assert cfg.root == tmp_path / "studio"
    assert cfg.database.url == f"sqlite:///{tmp_path}/state/q.db"


def test_lookup_order(tmp_path, monkeypatch):
    (tmp_path / "config.yaml").write_text("root: from-cwd\n")
    env = tmp_path / "env.yaml"
    env.write_text("root: from-env\n")
    monkeypatch.chdir(tmp_path)
    assert load_config().root.name == "from-cwd"
    monkeypatch.setenv("QUICKART_CONFIG", str(env))
    assert load_config().root.name == "from-env"
    explicit = tmp_path / "explicit.yaml"
    explicit.write_text("root: explicit\n")
    assert load_config(explicit).root.name == "explicit"


def test_daemon_refuses_to_start_on_a_bad_config(tmp_path):
    bad = tmp_path / "config.yaml"
    bad.write_text("retry: {max_attempts: zero}\n")
    r = subprocess.run([sys.executable, "-m", "quickart_daemon.cli", "--config", str(bad), "daemon"],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 1
    assert r.stderr.count("\n") == 1 and "retry.max_attempts" in r.stderr and "Traceback" not in r.stderr


def test_config_alias_bomb_is_one_short_line(tmp_path):
    """Issue 23 U6: a config whose aliases expand (here 9**6 values) printed the whole expansion as a
    'one-line' error (226 MB for a bigger bomb); it is refused before validation, and quoted input is cut."""
    from test_shot import yaml_bomb
    text = yaml_bomb(6, key="anchors").replace("anchors:\n", "x_anchors:\n") + "timing: {fps: *f}\n"
    with pytest.raises(ConfigError, match=r"line \d+: its aliases") as err:
        parse_config(text, tmp_path / "config.yaml")
    assert len(str(err.value)) < 300
    with pytest.raises(ConfigError, match="timing.fps") as err:
        parse_config("timing: {fps: [" + "lol, " * 10_000 + "]}\n", tmp_path / "config.yaml")
    assert len(str(err.value)) < 300


def test_pipeline_alias_bomb_is_refused(tmp_path):
    from quickart_daemon.errors import PipelineError
    from quickart_daemon.pipeline import parse_pipeline
    from test_shot import yaml_bomb
    path = tmp_path / "bomb.yaml"
    path.write_text("name: bomb\nstages: [{stage: hold}]\n" + yaml_bomb(9, key="x"))
    with pytest.raises(PipelineError, match=r"bomb.yaml: line \d+: its aliases"):
        parse_pipeline(path)


def test_the_naming_rules_are_built_once_and_follow_a_copy_with_other_naming(tmp_path):
    """A page of 1,000 shots and the live feed ask for the rules once per shot: built anew each time, they
    were most of the shot list's time. A copy with another naming section gets its own rules, not the old."""
    cfg = parse_config("naming: {shot_path: '{show}/{seq}/{shot}'}\n", tmp_path / "config.yaml")
    assert cfg.naming_rules is cfg.naming_rules
    other = cfg.model_copy(update={"naming": cfg.naming.model_copy(update={"shot_path": "{show}/{shot}/{seq}"})})
    assert other.naming_rules.shot_path.text == "{show}/{shot}/{seq}"
    assert cfg.naming_rules.shot_path.text == "{show}/{seq}/{shot}"
    assert other.naming_rules is other.naming_rules
