"""The command line on a real database and real folders: what a TD types."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import opentimelineio as otio
import pytest

from quickart_daemon.tools.synth import write_demo_studio

REPO = Path(__file__).parent.parent


def qa(*args, cwd=None, check=True) -> subprocess.CompletedProcess:
    r = subprocess.run([sys.executable, "-m", "quickart_daemon.cli", *map(str, args)], capture_output=True,
                       text=True, timeout=300, cwd=cwd)
    if check and r.returncode != 0:
        raise AssertionError(f"quickart {' '.join(map(str, args))} failed:\n{r.stdout}\n{r.stderr}")
    return r


def _frames(folder: Path) -> list[int]:
    return sorted(int(p.name.split(".")[-2]) for p in folder.glob("*.png"))


@pytest.fixture(scope="module")
def ran_shot(tmp_path_factory):
    """One shot run in the foreground with `quickart run`, shared by the read-only tests below."""
    tmp = tmp_path_factory.mktemp("cli")
    (tmp / "config.yaml").write_text("root: studio\ndatabase: {url: 'sqlite:///state/q.db'}\nslots: {gpus: none}\n")
    shot = write_demo_studio(tmp / "studio", size=(320, 180), keys=(1001, 1005, 1009))
    before = {p: p.read_bytes() for p in shot.rglob("*") if p.is_file()}
    r = qa("--config", tmp / "config.yaml", "run", shot)
    return tmp, shot, before, r


def test_run_publishes_a_version_and_leaves_inputs_alone(ran_shot):
    tmp, shot, before, r = ran_shot
    assert "done" in r.stdout and "contact.png" in r.stdout
    assert {p: p.read_bytes() for p in before} == before
    v = shot / "quickart" / "v001"
    assert _frames(v / "comp") == list(range(1001, 1011))
    assert json.loads((shot / "quickart" / "latest.json").read_text())["version"] == 1
    manifest = json.loads((v / "manifest.json").read_text())
    assert {i["path"] for i in manifest["inputs"]} >= {"keys/sh0010_char.1001.png", "shot.yaml"}
    assert all(len(i["sha256"]) == 64 for i in manifest["inputs"])
    assert manifest["stages"] and all("seconds" in s for s in manifest["stages"])
    job_log = (v / "job.log").read_text().splitlines()
    assert job_log[0].startswith("=== job 1 attempt 1  DEMO/sq010/sh0010") and "device cpu" in job_log[1]
    assert any("action=stage_done" in line for line in job_log)
    assert job_log[-1].startswith("=== done: v001") and "peak RSS" in job_log[-1]
    tl = otio.adapters.read_from_file(str(v / "sh0010_v001.otio"))
    ref = tl.tracks[-1][0].media_reference  # the comp: the top track
    assert Path(ref.target_url_for_image_number(0)).is_file()
    assert ref.rate == 24 and ref.start_frame == 1001 and ref.frame_zero_padding == 4


def test_second_run_makes_a_new_version(ran_shot):
    tmp, shot, _, _ = ran_shot
    qa("--config", tmp / "config.yaml", "run", shot)
    assert sorted(p.name for p in (shot / "quickart").glob("v*")) == ["v001", "v002"]
    seq = otio.adapters.read_from_file(str(tmp / "studio" / "DEMO" / "editorial" / "sq010.otio"))
    assert [c.name for c in seq.find_clips()] == ["sh0010_v002"]


def test_status_jobs_and_job_as_json(ran_shot):
    tmp = ran_shot[0]
    cfg = ("--config", tmp / "config.yaml")
    jobs = json.loads(qa(*cfg, "jobs", "--json").stdout)
    assert jobs and jobs[-1]["state"] == "done" and jobs[-1]["shot"] == "DEMO/sq010/sh0010"
    assert json.loads(qa(*cfg, "jobs", "--state", "failed", "--json").stdout) == []
    job = json.loads(qa(*cfg, "job", jobs[-1]["id"], "--json").stdout)
    assert [s["stage"] for s in job["stages"]] and set(job["outputs"]) >= {"version", "otio", "contact"}
    status = json.loads(qa(*cfg, "status", "--json").stdout)
    assert status["queue_depth"] == 0 and status["counts"]["done"] >= 1
    text = qa(*cfg, "job", jobs[-1]["id"]).stdout
    assert "stage" in text and "contact" in text


def test_unknown_job_and_bad_state_are_one_line(ran_shot):
    cfg = ("--config", ran_shot[0] / "config.yaml")
    for args in (("job", 9999), ("jobs", "--state", "exploded"), ("cancel", 1)):
        r = qa(*cfg, *args, check=False)
        assert r.returncode == 1 and r.stderr.count("\n") == 1 and "Traceback" not in r.stderr, r.stderr


def _disc(x: int) -> np.ndarray:
    img = np.full((96, 160, 3), 255, np.uint8)
    cv2.circle(img, (x, 48), 26, (90, 160, 230), -1)
    cv2.circle(img, (x, 48), 26, (0, 0, 0), 2, cv2.LINE_AA)
    return img


@pytest.mark.parametrize("stage,timing,want", [
    ("inbetween-blend", 1, [1001, 1002, 1003, 1004, 1005]),
    ("inbetween-blend", 2, [1001, 1003, 1005]),
    ("hold", 2, [1001, 1003, 1005]),
])
def test_stage_on_plain_folders(tmp_path, stage, timing, want):
    src, out = tmp_path / "in", tmp_path / "out"
    src.mkdir()
    cv2.imwrite(str(src / "anything.1001.png"), _disc(50))
    cv2.imwrite(str(src / "anything.1005.png"), _disc(110))
    qa("stage", stage, "--in", src, "--out", out, "--timing", timing, cwd=tmp_path)
    assert _frames(out) == want
    assert {cv2.imread(str(p)).shape for p in out.glob("*.png")} == {(96, 160, 3)}


def test_stage_on_a_broken_png_is_one_clear_line(tmp_path):
    src = tmp_path / "in"
    src.mkdir()
    (src / "sh0010.1001.png").write_bytes(b"\x89PNG\r\n\x1a\n broken")
    r = qa("stage", "inbetween-blend", "--in", src, "--out", tmp_path / "out", cwd=tmp_path, check=False)
    assert r.returncode == 1 and "1001" in r.stderr and "Traceback" not in r.stderr
    assert r.stderr.count("\n") == 1


def test_doctor_checks_models_and_tolerates_a_missing_optional_one(tmp_path):
    """An empty models folder: each model's row agrees with `weights.check` (a file may still be
    found in the package's own models folder); the optional ncnn export never fails the doctor."""
    from quickart_daemon.weights import check, load_manifest
    (tmp_path / "studio").mkdir()
    (tmp_path / "config.yaml").write_text("root: studio\ndatabase: {url: 'sqlite:///state/q.db'}\n"
                                          "slots: {gpus: none}\nmodels_dir: models\n")
    qa("--config", tmp_path / "config.yaml", "db", "upgrade")
    r = qa("--config", tmp_path / "config.yaml", "doctor", "--json", check=False)
    rows = {row["check"]: row for row in json.loads(r.stdout)}
    manifest = load_manifest()
    for name in ("rife-v4", "refine-v1"):
        problem = check(manifest[name], tmp_path / "models")
        assert rows[f"model {name}"]["ok"] == (problem is None), rows[f"model {name}"]
        if problem:
            assert f"quickart models install {name}" in rows[f"model {name}"]["detail"]
            assert r.returncode == 1
    ncnn = rows["model rife-v4-ncnn"]
    assert ncnn["ok"]
    if check(manifest["rife-v4-ncnn"], tmp_path / "models"):
        assert ncnn["detail"].startswith("optional")
