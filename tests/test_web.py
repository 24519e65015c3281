"""The studio web page: its API on real version folders, its safety, and the page in a real browser.

The API tests use Starlette's test client against a real SQLite file and the version folders
of real jobs (`quickart run` on a synthetic shot: colour, light and cross-dissolve in-betweens,
run twice for two versions). The browser test starts the real daemon serving the page
(`web.serve`) and drives Debian's headless Chromium with Playwright: upload a zip of keys, see
the job appear and finish live, play the flipbook, download the version's zip.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest
import yaml
from starlette.testclient import TestClient

from quickart_daemon.cli import main as quickart
from quickart_daemon.config import Config, load_config
from quickart_daemon.images import write_png
from quickart_daemon.queue import JobState, open_queue
from quickart_daemon.tools.synth import render, make_fx, write_clean_keys
from quickart_daemon.web.app import create_app
from quickart_daemon.web.feed import Feed
from quickart_daemon.web import studio as web_studio

TOKEN = "test-token-0123456789"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
SHOT = "DEMO/sq010/sh0010"
UPLOAD_SHOT = "DEMO/sq010/sh0020"
LOOKS = {"name": "looks", "description": "colour, light, cross-dissolve",
         "stages": [{"stage": "color"}, {"stage": "light"}, {"stage": "inbetween-blend"}]}
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def write_config(base: Path, **web) -> Path:
    (base / "pipelines").mkdir(parents=True, exist_ok=True)
    (base / "pipelines" / "looks.yaml").write_text(yaml.safe_dump(LOOKS))
    data = {"root": "studio", "state_dir": "state", "database": {"url": "sqlite:///state/quickart.db"},
            "pipelines_dir": "pipelines", "slots": {"gpus": "none"}, "drop": {"settle_seconds": 0.3},
            "queue": {"poll_interval": 0.2, "heartbeat_seconds": 1.0}, "web": {"token": TOKEN, **web}}
    (base / "config.yaml").write_text(yaml.safe_dump(data))
    (base / "studio").mkdir(exist_ok=True)
    return base / "config.yaml"


def shot_yaml(shot_dir: Path, **values) -> None:
    data = yaml.safe_load((shot_dir / "shot.yaml").read_text()) | values
    (shot_dir / "shot.yaml").write_text(yaml.safe_dump(data))


@pytest.fixture(scope="module")
def farm(tmp_path_factory):
    """A studio with two published versions of one shot (real jobs) and a second shot without any."""
    base = tmp_path_factory.mktemp("web")
    config = write_config(base)
    cfg = load_config(config)
    shot_dir = write_clean_keys(cfg.root, size=(320, 180), keys=(1001, 1005, 1009))
    shot_yaml(shot_dir, pipeline="looks", fps=12)
    for _ in range(2):
        assert quickart(["--config", str(config), "run", str(shot_dir)]) == 0
    write_clean_keys(cfg.root, shot="sh0020", size=(320, 180), keys=(1001, 1005), fx=False)
    return cfg


@pytest.fixture
def client(farm):
    with TestClient(create_app(farm, feed_interval=0.05), base_url="http://127.0.0.1") as c:
        yield c


def keys_zip(frames=(1001, 1005), layer="fx", shot="sh0020", size=(320, 180)) -> bytes:
    fx = make_fx(3)
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for frame in frames:
            png = io.BytesIO()
            from PIL import Image
            Image.fromarray(render(fx, frame, size, rough=False).clean).save(png, "PNG")
            zf.writestr(f"{shot}_{layer}.{frame:04d}.png", png.getvalue())
    return buf.getvalue()


def png_bytes(w=64, h=32) -> bytes:
    from PIL import Image
    out = io.BytesIO()
    Image.fromarray(np.full((h, w, 4), 200, np.uint8)).save(out, "PNG")
    return out.getvalue()


# -- reading ------------------------------------------------------------------------------------

def test_farm_view_lists_jobs_with_filters(client):
    page = client.get("/")
    assert page.status_code == 200 and 'data-id="2"' in page.text and 'data-id="1"' in page.text
    farm = client.get("/api/farm").json()
    assert [j["id"] for j in farm["jobs"]] == [2, 1]
    assert farm["counts"] == {"done": 2}
    job = farm["jobs"][0]
    assert job["state"] == "done" and job["shot"] == SHOT and job["shot_rel"] == SHOT and job["version"] == 2
    assert client.get("/api/farm?state=failed").json()["jobs"] == []
    assert [j["id"] for j in client.get("/api/farm?shot=sh0010&state=done").json()["jobs"]] == [2, 1]
    assert client.get("/api/farm?shot=sh9999").json()["jobs"] == []
    assert client.get("/api/farm?state=nonsense").status_code == 400
    page = client.get("/?limit=1&state=done").text  # the first paint shows the newest; a link shows more
    assert '<tr data-id="2"' in page and '<tr data-id="1"' not in page
    assert 'href="?state=done&amp;shot=&amp;limit=5"' in page
    assert 'id="more"' not in client.get("/").text
    both = client.get("/api/farm?state=failed&state=done").json()  # the filter form's check boxes
    assert both["filters"]["state"] == ["failed", "done"] and len(both["jobs"]) == 2


def test_shot_view_describes_versions_from_their_folders(client, farm):
    assert client.get(f"/shots/{SHOT}").status_code == 200
    info = client.get(f"/api/shot/{SHOT}").json()
    assert info["versions"] == ["v001", "v002"] and info["latest"] == "v002"
    v = client.get(f"/api/shot/{SHOT}/versions/v002").json()
    assert v["fps"] == 12 and v["frame_range"] == [1001, 1010] and v["job_id"] == 2
    assert v["keys"] == {"char": [1001, 1005, 1009], "fx": [1001, 1005, 1009]}
    names = [s["name"] for s in v["sequences"]]
    assert names[0] == "comp" and {"char", "fx", "color/char", "light/fx"} <= set(names)
    comp = v["sequences"][0]["frames"]
    assert sorted(map(int, comp)) == list(range(1001, 1011))
    overlays = {o["name"]: o for o in v["overlays"]}
    assert overlays["color/confidence"]["blend"] == "multiply" and overlays["light/layer"]["blend"] == "hard-light"
    assert sorted(map(int, overlays["color/confidence"]["layers"]["char"])) == [1001, 1005, 1009]
    # every frame the flipbook asks for is the file on disk, cached for good (versions never change)
    folder = farm.root / SHOT / "quickart" / "v002"
    r = client.get(comp["1004"])
    assert r.status_code == 200 and r.content == (folder / "comp" / "sh0010.1004.png").read_bytes()
    assert "immutable" in r.headers["cache-control"] and r.headers["content-type"] == "image/png"
    assert client.get(v["contact"]).content == (folder / "contact.png").read_bytes()
    assert "=== done: v002" in client.get(f"/api/shot/{SHOT}/versions/v002/log").text
    assert '"job_id": 2' in client.get(f"/api/shot/{SHOT}/versions/v002/manifest").text


def test_job_api_and_its_log(client):
    job = client.get("/api/jobs/1").json()
    assert job["state"] == "done" and [s["stage"] for s in job["stages"]] == ["color", "light", "inbetween-blend"]
    assert job["outputs"]["version"].endswith("v001")
    assert "=== done: v001" in client.get("/api/jobs/1/log").text
    assert client.get("/api/jobs/999").status_code == 404


def test_thumbnails_are_made_once_per_version(client, farm):
    r = client.get(f"/thumbs/{SHOT}/v001.png")
    assert r.status_code == 200
    from PIL import Image
    assert Image.open(io.BytesIO(r.content)).width <= web_studio.THUMB_WIDTH
    made = list((farm.state_dir / "web-thumbs").glob("*.png"))
    assert len(made) == 1
    stamp = made[0].stat().st_mtime_ns
    assert client.get(f"/thumbs/{SHOT}/v001.png").content == r.content
    assert made[0].stat().st_mtime_ns == stamp and len(list((farm.state_dir / "web-thumbs").glob("*.png"))) == 1


def test_version_zip_is_streamed_with_frames_comp_otio_manifest(client, farm):
    folder = farm.root / SHOT / "quickart" / "v001"
    with client.stream("GET", f"/download/{SHOT}/quickart/v001.zip") as r:
        assert r.status_code == 200 and "content-length" not in r.headers  # streamed, not built first
        assert 'filename="sh0010_v001.zip"' in r.headers["content-disposition"]
        data = b"".join(r.iter_bytes())
    zf = zipfile.ZipFile(io.BytesIO(data))
    assert zf.testzip() is None
    names = set(zf.namelist())
    assert {"sh0010_v001/manifest.json", "sh0010_v001/sh0010_v001.otio", "sh0010_v001/contact.png"} <= names
    frames = {f"sh0010_v001/frames/{p.name}" for p in (folder / "frames").iterdir()}
    comp = {f"sh0010_v001/comp/{p.name}" for p in (folder / "comp").iterdir()}
    assert frames <= names and comp <= names and len(frames) == 20
    assert zf.read("sh0010_v001/comp/sh0010.1003.png") == (folder / "comp" / "sh0010.1003.png").read_bytes()


def test_feed_numbers_changes_as_they_happen(farm):
    feed = Feed(farm, lambda shot: web_studio.shot_rel(farm, shot))
    feed.poll()
    seq, _ = feed.since(0)
    jq = open_queue(farm)
    job = jq.enqueue(jq.get(1).shot, str(farm.root / SHOT), "looks", source="submit")
    feed.poll()
    seq2, events = feed.since(seq)
    assert seq2 == seq + 1 and [j["id"] for j in events[0]["jobs"]] == [job.id]
    assert events[0]["jobs"][0]["state"] == "queued" and events[0]["counts"]["queued"] == 1
    jq.set_priority(job.id, 5)
    jq.cancel(job.id)
    feed.poll()
    _, events = feed.since(seq2)
    assert events[0]["jobs"] == [events[0]["jobs"][0]] and events[0]["jobs"][0]["state"] == "cancelled"
    assert events[0]["jobs"][0]["priority"] == 5
    feed.poll()
    assert feed.since(seq2 + 1) == (seq2 + 1, [])  # nothing changed: nothing sent


# -- write actions ------------------------------------------------------------------------------------

def test_actions_need_the_token_then_go_through_the_queue(client, farm):
    jq = open_queue(farm)
    job = jq.enqueue(jq.get(1).shot, str(farm.root / SHOT), "looks", source="submit")
    for headers in ({}, {"Authorization": "Bearer wrong-token-000000"}, {"Authorization": TOKEN}):
        r = client.post(f"/api/jobs/{job.id}/priority", json={"priority": 50}, headers=headers)
        assert r.status_code == 403 and "token" in r.json()["error"]
    assert jq.get(job.id).priority == 0
    r = client.post(f"/api/jobs/{job.id}/priority", json={"priority": 50}, headers=AUTH)
    assert r.status_code == 200 and r.json()["priority"] == 50 and jq.get(job.id).priority == 50
    assert client.post(f"/api/jobs/{job.id}/cancel", headers=AUTH).json()["state"] == "cancelled"
    assert client.post(f"/api/jobs/{job.id}/priority", json={"priority": 1}, headers=AUTH).status_code == 409
    assert client.post(f"/api/jobs/{job.id}/retry", headers=AUTH).json()["state"] == "queued"
    assert jq.get(job.id).state is JobState.QUEUED
    assert client.post("/api/jobs/1/cancel", headers=AUTH).status_code == 409  # a done job cannot be cancelled
    assert client.post(f"/api/jobs/{job.id}/cancel", headers=AUTH).status_code == 200


def test_retry_from_a_chosen_stage_on_the_shot_page(client, farm):
    """Job 2 published v002 through colour, light and a cross-dissolve: its shot page offers to start it
    again at each stage, and a retry from light carries colour over from its kept outputs."""
    page = client.get(f"/shots/{SHOT}").text
    row = page[page.index('<tr data-id="2"'):]
    row = row[:row.index("</tr>")]
    assert '<option value="light">from light</option>' in row and '<option value="inbetween-blend">' in row
    assert client.get("/api/jobs/2").json()["retry_from"] == ["color", "light", "inbetween-blend"]
    r = client.post("/api/jobs/2/retry", json={"from_stage": "lite"}, headers=AUTH)
    assert r.status_code == 400 and "has no stage 'lite'; its stages: color, light, inbetween-blend" in r.json()["error"]
    r = client.post("/api/jobs/2/retry", json={"from_stage": "light"}, headers=AUTH)
    assert r.status_code == 200 and r.json()["state"] == "queued"
    jq = open_queue(farm)
    assert jq.get(2).inputs_generation == 0 and set(jq.done_stages(2)) == {0}  # colour carried over
    assert client.post("/api/jobs/2/cancel", headers=AUTH).status_code == 200
    assert jq.get(2).state is JobState.CANCELLED


def test_reviews_of_a_version_need_a_writer_and_set_its_approval(client, farm):
    """Issue 24: notes and an approval per version, stored in the database; the latest verdict is the
    version's approval (a note after it does not change it)."""
    from datetime import datetime, timedelta
    url = f"/api/shot/{SHOT}/versions/v001/reviews"
    assert client.get(url).json() == {"reviews": [], "approval": None, "notes": 0}
    for headers in ({}, {"Authorization": "Bearer wrong-token-000000"}):
        r = client.post(url, json={"state": "approved", "text": "fine"}, headers=headers)
        assert r.status_code == 403 and "token" in r.json()["error"]
    refusals = [({"state": "great", "text": "x"}, "state: one of approved, needs_work, note"),
                ({"text": "x"}, "state: one of approved, needs_work, note"),
                ({"state": "note", "text": "x" * 4001}, "the note is 4,001 characters long; at most 4,000 are kept"),
                ({"state": "note", "text": "  "}, "a note needs its text"),
                ({"state": "note", "text": 5}, "text: the note, as text"),
                ({"state": "approved", "author": "a" * 65}, "author: a name of at most 64 printable characters")]
    for body, expect in refusals:
        r = client.post(url, json=body, headers=AUTH)
        assert r.status_code == 400 and r.json() == {"error": expect}, (body, r.text)
    for version in ("v009", "v01", "latest"):
        assert client.post(f"/api/shot/{SHOT}/versions/{version}/reviews", json={"state": "approved"},
                           headers=AUTH).status_code == 404
        assert client.get(f"/api/shot/{SHOT}/versions/{version}/reviews").status_code == 404
    assert client.get(url).json()["reviews"] == []  # nothing refused was kept

    evil = "<script>window.pwned = 1</script><img src=x onerror=alert(1)> the fx & the char flicker"
    r = client.post(url, json={"state": "needs_work", "text": evil}, headers=AUTH)
    assert r.status_code == 201, r.text
    first = r.json()
    assert (first["state"], first["label"], first["text"], first["author"]) == ("needs_work", "needs work", evil, "token")
    at = datetime.fromisoformat(first["at"].rstrip("Z"))
    assert abs(at - datetime.utcnow()) < timedelta(minutes=1)  # the database's clock, UTC
    assert client.get(url).json()["approval"]["state"] == "needs_work"
    r = client.post(url, json={"state": "approved", "text": "fixed in the redraw", "author": "  Ana   Lima "},
                    headers=AUTH)
    assert r.status_code == 201 and r.json()["author"] == "Ana Lima"
    assert client.post(url, json={"state": "note", "text": "the hat could be darker", "author": "Bo"},
                       headers=AUTH).status_code == 201
    assert client.post(url, json={"state": "approved"}, headers=AUTH).status_code == 201  # a verdict alone
    data = client.get(url).json()
    assert [(r["state"], r["author"]) for r in data["reviews"]] == \
        [("needs_work", "token"), ("approved", "Ana Lima"), ("note", "Bo"), ("approved", "token")]
    assert data["approval"]["state"] == "approved" and data["approval"]["author"] == "token"
    assert data["notes"] == 3  # the verdict alone has no note
    version = client.get(f"/api/shot/{SHOT}/versions/v001").json()  # the version's description carries them
    assert version["approval"] == data["approval"] and version["notes"] == 3
    other = client.get(f"/api/shot/{SHOT}/versions/v002").json()
    assert other["approval"] is None and other["notes"] == 0
    # the page never carries a note as HTML (the browser test shows it as text)
    page = client.get(f"/shots/{SHOT}").text
    assert "window.pwned" not in page and "onerror" not in page
    assert 'id="review-form"' in page and 'data-review="needs_work"' in page
    # no tracker configured: nothing goes in the outbox
    jq = open_queue(farm)
    from quickart_daemon.db.models import Delivery
    from sqlalchemy import func, select
    with jq.sessions() as s:
        assert s.scalar(select(func.count()).select_from(Delivery)) == 0


def test_without_a_token_in_config_the_page_is_read_only(farm):
    cfg = farm.model_copy(update={"web": farm.web.model_copy(update={"token": None})})
    with TestClient(create_app(cfg), base_url="http://127.0.0.1") as c:
        assert "read-only" in c.get("/").text
        r = c.post("/api/jobs/1/cancel", headers=AUTH)
        assert r.status_code == 403 and "set web.token" in r.json()["error"]
        files = {"files": ("k.zip", keys_zip(), "application/zip")}
        assert c.post(f"/api/shot/{UPLOAD_SHOT}/upload", files=files, headers=AUTH).status_code == 403
        r = c.post(f"/api/shot/{SHOT}/versions/v001/reviews", json={"state": "approved"}, headers=AUTH)
        assert r.status_code == 403 and "set web.token" in r.json()["error"]
        assert 'id="review-form"' not in c.get(f"/shots/{SHOT}").text


def test_upload_a_zip_of_keys_the_watcher_takes_as_a_drop(client, farm):
    from quickart_daemon.shot import load_shot
    shot_dir = farm.root / UPLOAD_SHOT
    r = client.post(f"/api/shot/{UPLOAD_SHOT}/upload", files={"files": ("fx.zip", keys_zip(), "application/zip")},
                    headers=AUTH)
    assert r.status_code == 201, r.text
    [placed] = r.json()["placed"]
    assert web_studio.UPLOAD_RE.fullmatch(placed), placed  # a new zip drop of its own: upload-YYYYmmdd-HHMMSS-N.zip
    assert (shot_dir / "keys" / placed).read_bytes() == keys_zip()
    shot = load_shot(shot_dir, farm)  # what a job of the next drop reads: the zip unpacked as any zip drop
    assert sorted(shot.keys) == ["char", "fx"] and sorted(shot.keys["fx"]) == [1001, 1005]
    assert not [p for p in (shot_dir / "quickart").iterdir() if p.name.startswith(".web-upload")]
    assert not [p for p in (shot_dir / "keys").iterdir() if p.name.startswith(".")]
    assert client.post(f"/api/shot/{UPLOAD_SHOT}/clear-uploads", headers=AUTH).json()["removed"] == [placed]


def test_upload_pngs_into_keys(client, farm):
    shot_dir = farm.root / UPLOAD_SHOT
    files = [("files", ("sh0020_bg.1001.png", png_bytes(), "image/png"))]
    r = client.post(f"/api/shot/{UPLOAD_SHOT}/upload", files=files, headers=AUTH)
    assert r.status_code == 201, r.text
    [placed] = r.json()["placed"]
    assert web_studio.UPLOAD_RE.fullmatch(placed) and r.json()["keys"] == ["sh0020_bg.1001.png"]
    assert zipfile.ZipFile(shot_dir / "keys" / placed).read("sh0020_bg.1001.png") == png_bytes()
    assert client.post(f"/api/shot/{UPLOAD_SHOT}/clear-uploads", headers=AUTH).json()["removed"] == [placed]


def redrawn(frame: int, shade: int) -> bytes:
    """A key of sh0020's char layer at its size, redrawn (a flat shade tells the versions apart)."""
    from PIL import Image
    out = io.BytesIO()
    Image.fromarray(np.full((180, 320, 4), shade, np.uint8)).save(out, "PNG")
    return out.getvalue()


def test_uploaded_redrawn_keys_are_a_new_drop_that_wins_and_the_page_clears_them(client, farm, tmp_path):
    """W7: a zip of redrawn keys (a key that is also loose in keys/) does not break the shot; a later
    upload wins over an earlier one; a PNG upload never writes over the artist's key; "clear uploads"
    takes the page's uploads away and leaves the artist's keys."""
    from quickart_daemon.shot import load_shot
    from quickart_daemon.snapshot import take_snapshot

    shot_dir = farm.root / UPLOAD_SHOT
    keys = shot_dir / "keys"
    artist = (keys / "sh0020_char.1005.png").read_bytes()
    loose_before = sorted(p.name for p in keys.iterdir())

    def used_for_1005():  # what a job reads: a snapshot of the shot's files, then the shot from it
        snap = take_snapshot(shot_dir, farm, tmp_path / f"snap-{len(list(tmp_path.iterdir()))}", "test", None)
        shot = load_shot(shot_dir, farm, inputs=snap.folder)
        return shot.keys["char"][1005].read_bytes(), list(snap.skipped)

    uploads = []
    for shade, files in ((50, [("files", ("redraw.zip", zip_with({"sh0020_char.1005.png": redrawn(1005, 50)}),
                                          "application/zip"))]),
                         (90, [("files", ("redraw.zip", zip_with({"sh0020_char.1005.png": redrawn(1005, 90)}),
                                          "application/zip"))]),
                         (130, [("files", ("sh0020_char.1005.png", redrawn(1005, 130), "image/png"))])):
        time.sleep(0.02)  # a later upload is a later drop
        r = client.post(f"/api/shot/{UPLOAD_SHOT}/upload", files=files, headers=AUTH)
        assert r.status_code == 201, r.text
        uploads += r.json()["placed"]
        data, notes = used_for_1005()
        assert data == redrawn(1005, shade)  # the newest drop wins, consistently
        assert any(f"used quickart/unpacked/{uploads[-1][:-4]}-" in n and "sh0020_char.1005.png" in n
                   and "keys/sh0020_char.1005.png" in n for n in notes), notes
        assert (keys / "sh0020_char.1005.png").read_bytes() == artist  # never written over
    assert len(set(uploads)) == 3

    assert client.post(f"/api/shot/{UPLOAD_SHOT}/clear-uploads").status_code == 403  # a write: the writer check
    r = client.post(f"/api/shot/{UPLOAD_SHOT}/clear-uploads", headers=AUTH)
    assert r.status_code == 200 and sorted(r.json()["removed"]) == sorted(uploads)
    assert sorted(p.name for p in keys.iterdir()) == loose_before
    assert (keys / "sh0020_char.1005.png").read_bytes() == artist
    unpacked = shot_dir / "quickart" / "unpacked"
    assert not [p for p in unpacked.iterdir() if p.name.startswith("upload-")] if unpacked.exists() else True
    assert used_for_1005() == (artist, [])
    assert client.post(f"/api/shot/{UPLOAD_SHOT}/clear-uploads", headers=AUTH).json()["removed"] == []


def zip_with(entries: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name, data in entries.items():
            zf.writestr(name, data)
    return buf.getvalue()


@pytest.mark.parametrize("files, expect", [
    ([("keys.zip", zip_with({"sh0020_fx.1001.png": png_bytes(), "notes.txt": b"redraw 1005", "run.sh": b"rm -rf /"}),
       "application/zip")], "notes.txt: not a key drawing of sh0020: a .txt file is not read"),
    ([("sh0020_fx.1001.png", png_bytes(), "image/png"), ("notes.png", png_bytes(), "image/png")],
     "notes.png: not a key drawing of sh0020"),
    ([("run.sh", b"#!/bin/sh\nrm -rf /\n", "text/x-sh")], "run.sh: not a key drawing of sh0020"),
    ([("sh0020_fx.1001.png", b"#!/bin/sh\nrm -rf /\n", "image/png")], "not a PNG signature"),
])
def test_an_upload_holding_anything_but_png_keys_is_refused_whole(client, farm, files, expect):
    """W6: notes.txt, run.sh, a PNG named like no key, a script named like a key: one sentence, 400,
    and nothing lands in keys/ (no re-render)."""
    shot_dir = farm.root / UPLOAD_SHOT
    before = sorted(p.name for p in (shot_dir / "keys").iterdir())
    r = client.post(f"/api/shot/{UPLOAD_SHOT}/upload", files=[("files", f) for f in files], headers=AUTH)
    assert r.status_code == 400 and expect in r.json()["error"], r.text
    assert "\n" not in r.json()["error"] and "Traceback" not in r.json()["error"]
    assert sorted(p.name for p in (shot_dir / "keys").iterdir()) == before


# -- safe by default ----------------------------------------------------------------------------------------

def test_binds_to_loopback_unless_configured():
    from quickart_daemon.web.server import _server
    assert Config().web.host == "127.0.0.1" and Config().web.token is None
    assert _server(Config()).config.host == "127.0.0.1"


def test_other_host_names_are_refused_on_loopback(client):
    assert client.get("/", headers={"Host": "localhost:8750"}).status_code == 200
    assert client.get("/", headers={"Host": "evil.example"}).status_code == 400  # DNS rebinding


@pytest.mark.parametrize("path", [
    "/files/DEMO/sq010/sh0010/quickart/v001/%2e%2e/%2e%2e/shot.yaml",
    "/files/DEMO/sq010/sh0010/quickart/v001/..%2F..%2Fshot.yaml",
    "/files/DEMO/sq010/sh0010/quickart/v001/..%5C..%5Cshot.yaml",
    "/files/%2Fetc/quickart/v001/passwd",
    "/files//etc/passwd",
    "/files/DEMO/sq010/sh0010/quickart/v001/comp/%252e%252e%252fmanifest.json",
    "/files/DEMO/sq010/sh0010/keys/sh0010_char.1001.png",
    "/files/DEMO/sq010/sh0010/quickart/latest.json",
    "/api/shot/%2e%2e/%2e%2e/etc",
    "/api/shot/DEMO/sq010/..%2F..%2F..%2F/versions/v001",
    "/shots/%2Fetc",
    "/thumbs/DEMO/sq010/sh0010/..%2Fsh0020/v001.png",
    "/download/DEMO/sq010/sh0010/quickart/..%2F..%2Fsh0010/quickart/v001.zip",
    "/api/shot/DEMO/sq010/sh0010/versions/v001%2F..%2F..%2Fkeys",
    "/api/shot/DEMO/sq010/sh0010/versions/v001/..%2F..%2F..%2Fshot.yaml",
])
def test_paths_outside_versions_and_the_root_are_refused(client, farm, path):
    r = client.get(path)
    assert r.status_code in (400, 404), (path, r.status_code)
    assert "Traceback" not in r.text and str(farm.root.resolve()) not in r.text


def test_symlinks_out_of_the_root_are_refused(client, farm, tmp_path):
    secret = tmp_path / "secret.png"
    secret.write_bytes(png_bytes())
    version = farm.root / SHOT / "quickart" / "v001"
    (version / "comp" / "leak.png").symlink_to(secret)
    outside_shot = tmp_path / "elsewhere"
    shutil.copytree(farm.root / "DEMO" / "sq010" / "sh0020", outside_shot)
    (farm.root / "DEMO" / "sq010" / "sh0099").symlink_to(outside_shot)
    try:
        assert client.get(f"/files/{SHOT}/quickart/v001/comp/leak.png").status_code == 404
        assert client.get("/api/shot/DEMO/sq010/sh0099").status_code == 404
        files = {"files": ("k.zip", keys_zip(shot="sh0099"), "application/zip")}
        assert client.post("/api/shot/DEMO/sq010/sh0099/upload", files=files, headers=AUTH).status_code == 404
        assert not (outside_shot / "keys" / "k.zip").exists()
        v = client.get(f"/api/shot/{SHOT}/versions/v001").json()
        assert all("leak" not in url for url in v["sequences"][0]["frames"].values())
    finally:
        (version / "comp" / "leak.png").unlink()
        (farm.root / "DEMO" / "sq010" / "sh0099").unlink()


def test_the_version_zip_never_holds_a_file_from_outside_the_studio(client, farm, tmp_path):
    """W1: a link in a version folder to /etc/passwd or to a config with the web token must not be
    delivered inside the zip (nor read by the thumbnail or the version description)."""
    secret = tmp_path / "config.yaml"
    secret.write_text("web:\n  token: s3cret-token\n")
    version = farm.root / SHOT / "quickart" / "v001"
    links = [version / "comp" / "sh0010.9999.png", version / "frames" / "passwd", version / "leak.otio"]
    for link in links:
        link.symlink_to(secret)
    (version / "comp" / "sh0010.9998.png").symlink_to("/etc/passwd")
    links.append(version / "comp" / "sh0010.9998.png")
    try:
        with client.stream("GET", f"/download/{SHOT}/quickart/v001.zip") as r:
            assert r.status_code == 200
            data = b"".join(r.iter_bytes())
        zf = zipfile.ZipFile(io.BytesIO(data))
        assert zf.testzip() is None
        names = zf.namelist()
        assert "sh0010_v001/manifest.json" in names  # the version's own files are still there
        assert not any(n.endswith(("9999.png", "9998.png", "passwd", "leak.otio")) for n in names), names
        assert b"s3cret-token" not in data and b"root:x:0:0" not in data
    finally:
        for link in links:
            link.unlink()


def test_a_file_swapped_for_a_link_after_the_check_is_not_served(client, farm, tmp_path, monkeypatch):
    """A frame, log or manifest is streamed from the file that was checked when opened, not opened again
    by path: a link put in place between `version_file`'s look and the read (simulated by a look that
    finds the link already there and lets it pass) is refused, its target never sent."""
    from quickart_daemon.web import studio as web_studio
    secret = tmp_path / "config.yaml"
    secret.write_text("web:\n  token: s3cret-token\n")
    version = farm.root / SHOT / "quickart" / "v001"
    link = version / "comp" / "sh0010.9997.png"
    link.symlink_to(secret)
    real_version_file = web_studio.version_file
    monkeypatch.setattr(web_studio, "version_file", lambda cfg, ref, v, inner: version / inner)  # the race lost
    try:
        for url in (f"/files/{SHOT}/quickart/v001/comp/sh0010.9997.png", f"/api/shot/{SHOT}/versions/v001/log"):
            if url.endswith("/log"):
                (version / "job.log").rename(version / "job.log.kept")
                (version / "job.log").symlink_to(secret)
            r = client.get(url)
            assert r.status_code == 404 and b"s3cret-token" not in r.content, (url, r.status_code)
            assert "not a file inside the studio" in r.json()["error"]
        # the job log's route: its lookup (inside_root) finds the link already there and lets it pass
        real_inside_root = web_studio.inside_root
        monkeypatch.setattr(web_studio, "inside_root", lambda root, rel: root / rel)
        for url in ("/api/jobs/1/log", "/api/jobs/1/log?offset=0"):
            r = client.get(url)
            assert r.status_code == 404 and b"s3cret-token" not in r.content, (url, r.status_code)
            assert "not a file inside the studio" in r.json()["error"]
        monkeypatch.setattr(web_studio, "inside_root", real_inside_root)
        monkeypatch.setattr(web_studio, "version_file", real_version_file)
        (version / "job.log").unlink()
        (version / "job.log.kept").rename(version / "job.log")
        ok = client.get(f"/api/shot/{SHOT}/versions/v001/log")  # the version's own file still streams whole
        assert ok.status_code == 200 and ok.content == (version / "job.log").read_bytes()
        assert ok.headers["content-length"] == str(len(ok.content))
        assert client.get("/api/jobs/1/log").content == ok.content
    finally:
        link.unlink()


def test_a_version_folder_linked_out_of_the_studio_is_not_served(client, farm, tmp_path):
    outside = tmp_path / "v777"
    shutil.copytree(farm.root / SHOT / "quickart" / "v001", outside)
    (outside / "manifest.json").write_text('{"job_id": 4242}')
    link = farm.root / SHOT / "quickart" / "v777"
    link.symlink_to(outside)
    try:
        for url in (f"/download/{SHOT}/quickart/v777.zip", f"/api/shot/{SHOT}/versions/v777",
                    f"/thumbs/{SHOT}/v777.png", f"/api/shot/{SHOT}/versions/v777/manifest"):
            r = client.get(url)
            assert r.status_code == 404 and "4242" not in r.text, url
    finally:
        link.unlink()


@contextlib.contextmanager
def linked_out(real: Path, outside: Path, text: str):
    """`real`, a version's file, replaced by a link to `outside` (written with `text`, a file outside the
    studio) for the block; the file is put back as it was after it."""
    kept = real.read_bytes()
    outside.write_text(text)
    real.unlink()
    real.symlink_to(outside)
    try:
        yield
    finally:
        real.unlink()
        real.write_bytes(kept)


def test_a_manifest_linked_out_of_the_studio_is_not_read(client, farm, tmp_path):
    real = farm.root / SHOT / "quickart" / "v001" / "manifest.json"
    with linked_out(real, tmp_path / "manifest.json", '{"job_id": 4242, "pipeline": {"name": "secret-pipeline"}}'):
        v = client.get(f"/api/shot/{SHOT}/versions/v001").json()
        assert v["job_id"] != 4242 and v["pipeline"] != "secret-pipeline"
        assert client.get(f"/api/shot/{SHOT}/versions/v001/manifest").status_code == 404


def zip_of(entries) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for info, data in entries:
            zf.writestr(info, data)
    return buf.getvalue()


def symlink_entry() -> zipfile.ZipInfo:
    info = zipfile.ZipInfo("sh0020_fx.1001.png")
    info.external_attr = (0o120777 << 16)
    return info


@pytest.mark.parametrize("name, payload, expect", [
    ("slip.zip", zip_of([("../../../evil.png", png_bytes())]), "outside the folder"),
    ("abs.zip", zip_of([("/tmp/evil.png", png_bytes())]), "absolute path"),
    ("link.zip", zip_of([(symlink_entry(), "/etc/passwd")]), "symlink"),
    ("bomb.zip", zip_of([("sh0020_fx.1001.png", b"\0" * (40 << 20))]), "zip bomb"),
    ("trunc.zip", zip_of([("sh0020_fx.1001.png", png_bytes()[:-12])]), "truncated PNG"),
    ("notzip.zip", b"PK\x03\x04 not really a zip", "not a readable zip"),
])
def test_unsafe_zip_uploads_are_refused_like_share_drops(client, farm, name, payload, expect):
    shot_dir = farm.root / UPLOAD_SHOT
    before = sorted(p.name for p in (shot_dir / "keys").iterdir())
    r = client.post(f"/api/shot/{UPLOAD_SHOT}/upload", files={"files": (name, payload, "application/zip")}, headers=AUTH)
    assert r.status_code == 400 and expect in r.json()["error"], r.text
    assert "quickart-upload" not in r.json()["error"] and ".web-upload" not in r.json()["error"]  # no temp paths
    assert sorted(p.name for p in (shot_dir / "keys").iterdir()) == before
    assert not (farm.root / "evil.png").exists() and not Path("/tmp/evil.png").exists()
    assert not [p for p in (shot_dir / "quickart").iterdir() if p.name.startswith(".web-upload")] \
        if (shot_dir / "quickart").exists() else True


def test_png_names_meet_the_same_zip_slip_checks(client, farm):
    for bad in ("../../sh0020_fx.1001.png", "/etc/sh0020_fx.1001.png", ".hidden.png"):
        r = client.post(f"/api/shot/{UPLOAD_SHOT}/upload", files={"files": (bad, png_bytes(), "image/png")},
                        headers=AUTH)
        assert r.status_code == 400, (bad, r.text)
    assert not (farm.root / "DEMO" / "sh0020_fx.1001.png").exists()


def test_upload_size_and_pixel_limits(farm):
    web = farm.web.model_copy(update={"max_upload_bytes": 20_000})
    cfg = farm.model_copy(update={"web": web, "max_image_pixels": 1000})
    with TestClient(create_app(cfg), base_url="http://127.0.0.1") as c:
        big = {"files": ("k.zip", os.urandom(30_000), "application/zip")}
        r = c.post(f"/api/shot/{UPLOAD_SHOT}/upload", files=big, headers=AUTH)
        assert r.status_code == 413 and "max_upload_bytes" in r.json()["error"]
        chunked = c.post(f"/api/shot/{UPLOAD_SHOT}/upload", content=iter([b"x" * 100]),
                         headers={**AUTH, "Content-Type": "multipart/form-data; boundary=x"})
        assert chunked.status_code == 411  # no declared length: refused before reading
        r = c.post(f"/api/shot/{UPLOAD_SHOT}/upload", files={"files": ("sh0020_fx.1001.png", png_bytes(64, 32),
                                                                         "image/png")}, headers=AUTH)
        assert r.status_code == 400 and "max_image_pixels" in r.json()["error"]


def test_errors_are_one_sentence_never_a_traceback(farm, monkeypatch):
    def broken(*args, **kwargs):
        raise RuntimeError(f"boom in {farm.root}/secret")

    monkeypatch.setattr(web_studio, "describe_version", broken)
    with TestClient(create_app(farm), base_url="http://127.0.0.1", raise_server_exceptions=False) as c:
        r = c.get(f"/api/shot/{SHOT}/versions/v001")
        assert r.status_code == 500 and r.json() == {"error": "internal error; the log of the web server has the details"}
        r = c.get(f"/api/shot/{SHOT}/versions/v009/log")
        assert r.status_code == 404 and r.json()["error"] == "DEMO/sq010/sh0010 has no v009"
        assert c.post("/api/jobs/1/cancel", content=b"{not json", headers=AUTH).status_code == 400


def test_filters_cannot_inject_script(client):
    page = client.get("/", params={"shot": "</script><script>alert(1)</script>"}).text
    assert "<script>alert(1)" not in page


# -- in a real browser ---------------------------------------------------------------------------------------

def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def listening_addresses(port: int) -> set[str]:
    """Local addresses with a TCP socket listening on `port` (from /proc/net/tcp and tcp6)."""
    found = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            local, state = line.split()[1], line.split()[3]
            address, hex_port = local.split(":")
            if state == "0A" and int(hex_port, 16) == port:
                found.add(address)
    return found


def wait_for(check, timeout: float, what: str, proc=None):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if (value := check()):
            return value
        if proc is not None and proc.poll() is not None:
            raise AssertionError(f"the daemon exited ({proc.returncode}) while waiting for {what}")
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def launch_chromium(playwright):
    if not Path(CHROMIUM).exists():
        pytest.fail(f"Chromium is not installed at {CHROMIUM}: install it with `apt-get install -y chromium`",
                    pytrace=False)
    return playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)


LOCAL_REQUEST = """
import json, sys, urllib.request, urllib.error
url, headers = sys.argv[1], json.loads(sys.argv[2])
body = b'{"priority": 50}' if url.endswith("/priority") else None
request = urllib.request.Request(url, data=body, headers=headers, method="POST" if body else "GET")
try:
    with urllib.request.urlopen(request, timeout=20) as r:
        print(r.status, r.read().decode())
except urllib.error.HTTPError as e:
    print(e.code, e.read().decode())
"""


def local_request(url: str, headers: dict, user: str | None = None) -> tuple[int, str]:
    """A request from another process of this machine, as `user` (a process of another uid)."""
    command = ["/usr/bin/python3", "-c", LOCAL_REQUEST, url, json.dumps(headers)]
    if user is not None:
        command = ["runuser", "-u", user, "--", *command]
    out = subprocess.run(command, capture_output=True, text=True, timeout=60, cwd="/")
    status, _, body = out.stdout.partition(" ")
    assert status.isdigit(), out.stderr
    return int(status), body


@pytest.mark.skipif(os.geteuid() != 0, reason="asking as another user needs root (runuser); CI runs as root")
def test_the_local_user_writes_without_the_token_and_other_users_do_not(tmp_path):
    port = free_port()
    config = write_config(tmp_path, port=port, token=None)
    jq = open_queue(load_config(config))
    from quickart_daemon.naming import ShotId
    job = jq.enqueue(ShotId("DEMO", "sq010", "sh0010"), str(tmp_path / "studio" / SHOT), "looks", source="submit")
    base = f"http://127.0.0.1:{port}"
    page = {"X-Requested-By": "quickart"}

    def serve():
        log = open(tmp_path / "web.log", "ab")
        proc = subprocess.Popen([sys.executable, "-m", "quickart_daemon.cli", "--config", str(config), "web"],
                                stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        wait_for(lambda: listening_addresses(port), 30, "the page to be served", proc)
        return proc

    def stop(proc):
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=20)

    web = serve()
    try:
        me = pwd.getpwuid(os.getuid()).pw_name
        assert f"{me} on this machine" in local_request(f"{base}/", {})[1]
        assert "read-only" in local_request(f"{base}/", {}, user="nobody")[1]
        prio = f"{base}/api/jobs/{job.id}/priority"
        status, body = local_request(prio, {})  # the page's user, but not from the page (a plain form post)
        assert status == 403 and "must come from the QuickArt page itself" in body
        status, body = local_request(prio, page | {"Origin": "http://evil.example"})
        assert status == 403 and "must come from the QuickArt page itself" in body
        status, body = local_request(prio, page, user="nobody")
        assert status == 403 and "write actions are off" in body
        assert jq.get(job.id).priority == 0
        status, body = local_request(prio, page | {"Origin": base})
        assert status == 200 and json.loads(body)["priority"] == 50 and jq.get(job.id).priority == 50
    finally:
        stop(web)

    jq.set_priority(job.id, 0)
    data = yaml.safe_load(config.read_text())
    data["web"] |= {"trust_local_user": False, "local_users": ["nobody"]}
    config.write_text(yaml.safe_dump(data))
    web = serve()
    try:
        status, body = local_request(prio, page)
        assert status == 403 and "write actions are off" in body  # the page's own user, no longer trusted
        status, body = local_request(prio, page, user="nobody")
        assert status == 200 and json.loads(body)["priority"] == 50 and jq.get(job.id).priority == 50
    finally:
        stop(web)


def test_a_rebound_host_name_is_not_trusted_as_the_local_user(tmp_path):
    """W3: with web.host 0.0.0.0 and a token, a page on another host name that resolves to
    127.0.0.1 (DNS rebinding) reaches the page over loopback as the user's own browser; only a
    loopback Host is that browser."""
    port = free_port()
    config = write_config(tmp_path, port=port, host="0.0.0.0")
    jq = open_queue(load_config(config))
    from quickart_daemon.naming import ShotId
    job = jq.enqueue(ShotId("DEMO", "sq010", "sh0010"), str(tmp_path / "studio" / SHOT), "looks", source="submit")
    log = open(tmp_path / "web.log", "ab")
    proc = subprocess.Popen([sys.executable, "-m", "quickart_daemon.cli", "--config", str(config), "web"],
                            stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        wait_for(lambda: listening_addresses(port), 30, "the page to be served", proc)
        prio = f"http://127.0.0.1:{port}/api/jobs/{job.id}/priority"
        rebound = {"X-Requested-By": "quickart", "Host": f"rebind.example:{port}",
                   "Origin": f"http://rebind.example:{port}"}
        status, body = local_request(prio, rebound)
        assert status == 403 and "web token" in body, (status, body)
        assert jq.get(job.id).priority == 0
        status, body = local_request(prio, rebound | {"Host": f"localhost:{port}", "Origin": f"http://localhost:{port}"})
        assert status == 200 and jq.get(job.id).priority == 50
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=20)


def test_no_other_site_can_frame_the_page_and_types_are_never_sniffed(client):
    """W4: an evil page framed the farm and one click retried a job."""
    for url in ("/", f"/shots/{SHOT}", "/api/farm", f"/files/{SHOT}/quickart/v001/contact.png", "/nonexistent"):
        r = client.get(url)
        assert r.headers["x-frame-options"] == "DENY", url
        assert "frame-ancestors 'none'" in r.headers["content-security-policy"], url
        assert r.headers["x-content-type-options"] == "nosniff", url


def test_html_in_a_version_is_never_served_as_a_page(client, farm):
    """W5: /files served HTML from a version as text/html."""
    version = farm.root / SHOT / "quickart" / "v001"
    page = version / "evil.html"
    page.write_text("<script>fetch('/api/jobs/1/retry', {method: 'POST'})</script>")
    svg = version / "comp" / "evil.svg"
    svg.write_text("<svg xmlns='http://www.w3.org/2000/svg'><script>alert(1)</script></svg>")
    try:
        for url in (f"/files/{SHOT}/quickart/v001/evil.html", f"/files/{SHOT}/quickart/v001/comp/evil.svg"):
            r = client.get(url)
            assert r.status_code == 200 and "html" not in r.headers["content-type"] and "svg" not in r.headers["content-type"]
            assert r.headers["content-disposition"].startswith("attachment"), url
        r = client.get(f"/files/{SHOT}/quickart/v001/manifest.json")
        assert r.headers["content-type"].startswith("text/plain") and r.headers["content-disposition"].startswith("inline")
    finally:
        page.unlink()
        svg.unlink()


def test_a_page_from_before_a_restart_of_the_web_server_is_told_to_reload(client):
    """W8: after the web server restarted, the farm page stayed stale while showing "live": its
    event stream named numbers of the old server's feed."""
    page = client.get("/").text
    epoch = json.loads(page.split('id="initial"', 1)[1].split(">", 1)[1].split("</script>", 1)[0])["epoch"]
    assert epoch == client.app.state.feed.epoch
    for query in ("seq=7&epoch=0123456789ab", "seq=999999"):  # another server's epoch; numbers it never gave
        with client.stream("GET", f"/api/events?{query}") as r:
            lines = [line for line in r.iter_lines() if line.startswith("data:")]
        assert lines == ['data: {"type": "reload"}'], query


def test_huge_job_ids_are_a_one_line_404(client):
    """W8/T4: /api/jobs/<a number too large for the database> answered 500 with a traceback."""
    for url in ("/api/jobs/99999999999999999999999", "/api/jobs/-99999999999999999999/log"):
        r = client.get(url)
        assert r.status_code == 404 and "Traceback" not in r.text and "internal error" not in r.text, (url, r.text)


def test_a_missing_chromium_fails_in_one_line_saying_how_to_install_it(monkeypatch):
    monkeypatch.setattr(sys.modules[__name__], "CHROMIUM", "/nonexistent/chromium")
    with pytest.raises(pytest.fail.Exception) as failed:
        launch_chromium(None)
    assert str(failed.value) == ("Chromium is not installed at /nonexistent/chromium: install it with "
                                 "`apt-get install -y chromium`")


def test_in_a_real_browser(tmp_path, stage_package):
    try:
        from playwright.sync_api import expect, sync_playwright
    except ImportError:
        pytest.fail("Playwright is missing: pip install -e '.[test]'", pytrace=False)
    port = free_port()
    config = write_config(tmp_path, serve=True, port=port)
    ran = tmp_path / "ran.txt"  # a line per run of the first step (a test stage), to see what a retry reruns
    (tmp_path / "pipelines" / "two.yaml").write_text(yaml.safe_dump({"name": "two", "stages": [
        {"stage": "test-tint", "params": {"log": str(ran), "tag": "tint", "shift": 0}}, {"stage": "inbetween-blend"}]}))
    cfg = load_config(config)
    shot_dir = write_clean_keys(cfg.root, size=(320, 180), keys=(1001, 1005, 1009), fx=False)
    shot_yaml(shot_dir, pipeline="two")
    assert quickart(["--config", str(config), "run", str(shot_dir)]) == 0  # v001, before the daemon starts
    zip_path = tmp_path / "fx_keys.zip"
    zip_path.write_bytes(keys_zip(frames=(1001, 1005, 1009), shot="sh0010"))
    log = open(tmp_path / "daemon.log", "ab")
    daemon = subprocess.Popen([sys.executable, "-m", "quickart_daemon.cli", "--config", str(config), "daemon"],
                              stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    try:
        wait_for(lambda: listening_addresses(port), 30, "the page to be served", daemon)
        assert listening_addresses(port) == {"0100007F"}  # 127.0.0.1 only
        with sync_playwright() as p:
            browser = launch_chromium(p)
            context = browser.new_context(accept_downloads=True, viewport={"width": 1280, "height": 900})
            errors = []
            farm_page = context.new_page()
            farm_page.on("pageerror", lambda e: errors.append(str(e)))
            farm_page.goto(f"{base}/#token={TOKEN}")
            expect(farm_page.locator('#jobs tr[data-id="1"] .badge')).to_have_text("done")
            expect(farm_page.locator("#live")).to_have_class("live on")
            farm_page.evaluate("window.notReloaded = true")

            page = context.new_page()
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.goto(f"{base}/shots/{SHOT}")
            page.set_input_files("#upload-files", str(zip_path))
            page.click("#upload-form button")
            expect(page.locator("#upload-result")).to_contain_text("placed in keys/: upload-")

            # the job appears and finishes on both pages, live
            expect(farm_page.locator('#jobs tr[data-id="2"]')).to_be_visible(timeout=30_000)
            expect(farm_page.locator('#jobs tr[data-id="2"] .badge')).to_have_text("done", timeout=45_000)
            assert errors == [], errors
            expect(farm_page.locator('#jobs tr[data-id="2"] .version')).to_have_text("v002")
            assert farm_page.evaluate("window.notReloaded") is True
            expect(page.locator('#jobs tr[data-id="2"] .badge')).to_have_text("done", timeout=10_000)
            expect(page.locator("#version option").first).to_have_text("v002", timeout=10_000)

            # the flipbook of the new version plays at the shot's rate, keys marked
            page.select_option("#version", "v002")
            expect(page.locator("#fps")).to_have_text("24 fps")
            expect(page.locator("#frame-no")).to_have_text("1001")
            expect(page.locator("#key-marks .key-mark")).to_have_count(3)
            page.click("#play")
            page.wait_for_timeout(300)
            first = int(page.inner_text("#frame-no"))
            page.wait_for_timeout(300)
            second = int(page.inner_text("#frame-no"))
            assert second != first and 1001 <= first <= 1010 and 1001 <= second <= 1010
            page.click("#play")  # pause
            page.click("#step-fwd")
            stepped = int(page.inner_text("#frame-no"))
            page.click("#step-back")
            assert int(page.inner_text("#frame-no")) == stepped - 1 or stepped == 1010

            with page.expect_download() as download:
                page.click("#download")
            saved = tmp_path / "download.zip"
            download.value.save_as(saved)
            names = set(zipfile.ZipFile(saved).namelist())
            assert {"sh0010_v002/manifest.json", "sh0010_v002/sh0010_v002.otio", "sh0010_v002/comp/sh0010.1005.png",
                    "sh0010_v002/frames/sh0010_fx.1005.png", "sh0010_v002/frames/sh0010_char.1010.png"} <= names
            assert zipfile.ZipFile(saved).testzip() is None

            page.select_option("#compare", "v001")
            page.evaluate("document.getElementById('scrub').value = 1005")
            page.locator("#step-fwd").click()
            page.locator("#step-back").click()
            shot_png = tmp_path / "shot-view.png"
            page.screenshot(path=str(shot_png), full_page=True)
            print(f"screenshot of the shot view: {shot_png}")
            assert shot_png.stat().st_size > 10_000 and errors == []

            # job 1 again from its second stage: the list is filled when opened, the first stage is not rerun
            row = page.locator('#jobs tr[data-id="1"]')
            row.locator("select.retry-from").focus()
            expect(row.locator('select.retry-from option[value="inbetween-blend"]')).to_have_count(1)
            row.locator("select.retry-from").select_option("inbetween-blend")
            row.locator('button[data-act="retry"]').click()
            expect(farm_page.locator('#jobs tr[data-id="1"] .version')).to_have_text("v003", timeout=30_000)
            assert ran.read_text() == "tint\ntint\n", "jobs 1 and 2 ran the first step once each, the retry not"
            # W8: "priority +" on the farm page sends the row's priority, not its progress cell ("100%")
            farm_page.locator('#jobs tr[data-id="1"] button[data-act="priority"]').click()
            expect(farm_page.locator("#toast")).to_contain_text("only a queued job's priority can change")
            # W7: "clear uploads" takes the page's upload away, the artist's keys stay
            page.click("#clear-uploads")
            expect(page.locator("#upload-result")).to_contain_text("removed from keys/: upload-")
            assert sorted(p.name for p in (shot_dir / "keys").iterdir()) == \
                ["sh0010_char.1001.png", "sh0010_char.1005.png", "sh0010_char.1009.png"]
            assert errors == [], errors
            browser.close()
    finally:
        os.killpg(daemon.pid, signal.SIGTERM)
        try:
            daemon.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(daemon.pid, signal.SIGKILL)
            daemon.wait()
        log.close()
    assert daemon.returncode == 0, (tmp_path / "daemon.log").read_text()[-2000:]


def test_a_review_in_a_real_browser(farm, tmp_path):
    """Issue 24: on the shot page, a token holder approves the version shown with a note and a name: the
    badge says so and the note shows as text (HTML in it is never run nor made into elements). The browser
    is not trusted as the local user here, so the page asks for a name (a trusted user is named by login)."""
    from playwright.sync_api import expect, sync_playwright
    port = free_port()
    data = {"root": str(farm.root), "state_dir": str(tmp_path / "state"), "database": {"url": farm.database.url},
            "pipelines_dir": str(farm.pipelines_dir), "slots": {"gpus": "none"}, "web": {"token": TOKEN, "port": port,
                                                                             "trust_local_user": False}}
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump(data))
    log = open(tmp_path / "web.log", "ab")
    proc = subprocess.Popen([sys.executable, "-m", "quickart_daemon.cli", "--config", str(config), "web"],
                            stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    evil = "<img src=x onerror=\"window.pwned=1\">line weight fixed"
    try:
        wait_for(lambda: listening_addresses(port), 30, "the page to be served", proc)
        with sync_playwright() as p:
            browser = launch_chromium(p)
            page = browser.new_page()
            errors = []
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.goto(f"http://127.0.0.1:{port}/shots/{SHOT}#token={TOKEN}")
            expect(page.locator("#review-version")).to_have_text("v002")
            expect(page.locator("#approval")).to_have_text("not reviewed")
            page.fill("#review-text", "the hat flickers")
            page.click('#review-form button[data-review="needs_work"]')
            expect(page.locator("#approval")).to_contain_text("needs work · token")
            page.fill("#review-text", evil)
            page.fill("#review-author", "Ana")
            page.click('#review-form button[data-review="approved"]')
            expect(page.locator("#approval")).to_contain_text("approved · Ana")
            expect(page.locator("#approval")).to_have_class("approval approved")
            expect(page.locator("#notes li")).to_have_count(2)
            expect(page.locator("#notes li .note-text").first).to_have_text(evil)  # newest first, as text
            expect(page.locator("#notes img")).to_have_count(0)
            assert page.evaluate("window.pwned") is None and errors == [], errors
            page.select_option("#version", "v001")  # another version: its own reviews
            expect(page.locator("#review-version")).to_have_text("v001")
            expect(page.locator("#approval")).not_to_contain_text("Ana")
            page.select_option("#version", "v002")
            expect(page.locator("#approval")).to_contain_text("approved · Ana")
            browser.close()
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=20)
        log.close()
