"""The review loop's first half (issue 24): every published version reaches the production tracker once.

The outbox with a tracker double (fast), the `tracker:` config block, and end to end against a real Kitsu
(Zou 1.0.97 through gazu 1.3.1, tests/kitsu.py): a shot published by `quickart run` lands on Kitsu with its
frame range, a task in "wfa", a comment naming the version and the contact sheet as a ready preview; a
tracker killed while a daemon publishes costs a warning, and the version is delivered once when it is back.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import numpy as np
import pytest
import yaml
from sqlalchemy import select, update

from quickart_daemon.config import load_config
from quickart_daemon.db.models import Delivery
from quickart_daemon.errors import ConfigError
from quickart_daemon.naming import ShotId
from quickart_daemon.outbox import Outbox, put, put_for_job, put_missing, status
from quickart_daemon.queue import JobState, open_queue
from quickart_daemon.trackers import DeliveryResult, load_tracker
from quickart_daemon.tools.synth import write_demo_studio

REPO = Path(__file__).resolve().parents[1]


# -- the outbox with a tracker double --------------------------------------------------------------

class FlakyTracker:
    """A tracker that is down for its first `down` calls, then takes every event (and records it)."""

    name = "kitsu"

    def __init__(self, down: int = 0, retryable: bool = True):
        self.down, self.retryable, self.calls, self.taken = down, retryable, 0, []

    def deliver(self, event):
        self.calls += 1
        if self.calls <= self.down:
            return DeliveryResult(False, "ConnectionError: connection refused", self.retryable)
        self.taken.append(event)
        return DeliveryResult(True, "ok", refs={"comment": f"c{self.calls}"})


def _config(make_config, tmp_path, database: dict | None = None, **tracker):
    (tmp_path / "kitsu.pw").write_text("s3cret-pw\n")
    return make_config(**({"database": database} if database else {}), tracker={"kind": "kitsu", "url": "http://127.0.0.1:9", "user": "qa@example.com",
                                "password_file": "kitsu.pw", "retry_seconds": 0.2, "max_retry_seconds": 0.4,
                                **tracker})


def _published_job(cfg, jq, version: int = 1):
    """A job of DEMO/sq010/sh0010 recorded as done with `version` (as process_job leaves it)."""
    job = jq.enqueue(ShotId("DEMO", "sq010", "sh0010"), "DEMO/sq010/sh0010", "default")
    owner = "test:1:cpu0"
    jq.claim(job.id, owner, "test", "cpu0")
    return jq.finish(job.id, owner, version=version, output_path=str(cfg.root / "nowhere" / f"v{version:03d}"),
                     artifacts={})


def _status(jq):
    from sqlalchemy import text
    with jq.sessions() as s:
        return status(lambda sql, params: s.execute(text(sql), params).mappings().all())


def test_an_event_is_put_once_and_delivered_once(make_config, tmp_path, db_url):
    cfg = _config(make_config, tmp_path, database={"url": db_url})
    jq = open_queue(cfg)
    job = _published_job(cfg, jq)
    assert put_for_job(cfg, jq, job) is True
    assert put_for_job(cfg, jq, job) is False  # a resumed job finishing its publish puts it again: no copy
    tracker = FlakyTracker()
    box = Outbox(cfg, jq.sessions, tracker)
    assert box.deliver_due() == 1 and box.deliver_due() == 0
    [event] = tracker.taken
    assert (event["event"], event["show"], event["seq"], event["shot"], event["version"], event["status"]) == \
        ("published", "DEMO", "sq010", "sh0010", 1, "wfa")
    assert event["marker"] == "quickart:DEMO/sq010/sh0010:v001:published"
    assert _status(jq) | {"last_error": None} == {"pending": 0, "retrying": 0, "failed": 0, "done": 1,
                                                  "last_error": None, "tracker": None}
    assert jq.get(job.id).warnings == ()


def test_a_version_published_by_a_killed_worker_is_put_when_a_daemon_starts(make_config, tmp_path, db_url):
    """A worker killed between recording its job done and putting the event left a version no tracker
    would ever see: a starting daemon puts what the last day published without a delivery, once, and
    not the older past (a tracker configured today does not receive the studio's history)."""
    from datetime import timedelta

    from quickart_daemon.db.models import JobRow
    cfg = _config(make_config, tmp_path, database={"url": db_url})
    jq = open_queue(cfg)
    killed, old, delivered = (_published_job(cfg, jq, version=v) for v in (1, 2, 3))
    put_for_job(cfg, jq, delivered)
    with jq.sessions.begin() as s:
        row = s.get(JobRow, old.id)
        row.finished_at = row.finished_at - timedelta(days=3)
    assert put_missing(cfg, jq) == 1
    assert put_missing(cfg, jq) == 0
    with jq.sessions() as s:
        assert sorted(s.scalars(select(Delivery.version))) == [1, 3]


def test_a_tracker_that_is_down_is_retried_with_backoff_and_warns_the_job_once(make_config, tmp_path):
    cfg = _config(make_config, tmp_path)
    jq = open_queue(cfg)
    job = _published_job(cfg, jq)
    put_for_job(cfg, jq, job)
    tracker = FlakyTracker(down=3)
    box = Outbox(cfg, jq.sessions, tracker)
    assert [box.backoff(n) for n in (1, 2, 3, 4)] == [0.2, 0.4, 0.4, 0.4]
    assert box.deliver_due() == 0 and tracker.calls == 1
    assert box.deliver_due() == 0 and tracker.calls == 1  # not due yet: backoff
    now = _status(jq)
    assert (now["pending"], now["retrying"], now["last_error"]) == (1, 1, "ConnectionError: connection refused")
    deadline = time.monotonic() + 10
    while not tracker.taken and time.monotonic() < deadline:
        box.deliver_due()
        time.sleep(0.05)
    assert tracker.calls == 4 and len(tracker.taken) == 1
    job = jq.get(job.id)
    assert job.state is JobState.DONE  # never failed by the tracker
    assert job.warnings == ("tracker kitsu: DEMO/sq010/sh0010 v001 not delivered yet: ConnectionError: connection "
                            "refused; will retry", "tracker kitsu: DEMO/sq010/sh0010 v001 delivered after 4 tries")
    assert _status(jq)["done"] == 1


def test_a_refusal_for_good_fails_the_delivery_not_the_job(make_config, tmp_path):
    cfg = _config(make_config, tmp_path)
    jq = open_queue(cfg)
    job = _published_job(cfg, jq)
    put_for_job(cfg, jq, job)
    box = Outbox(cfg, jq.sessions, FlakyTracker(down=1, retryable=False))
    box.deliver_due()
    assert box.deliver_due() == 0
    assert _status(jq)["failed"] == 1 and jq.get(job.id).state is JobState.DONE
    assert jq.get(job.id).warnings[-1].endswith("(gave up)")


def test_two_delivery_loops_never_take_the_same_delivery(make_config, tmp_path, db_url):
    cfg = _config(make_config, tmp_path, database={"url": db_url})
    jq = open_queue(cfg)
    put(jq.sessions, jq.upsert_shot(ShotId("DEMO", "sq010", "sh0010"), "DEMO/sq010/sh0010"), 1, "published",
        "kitsu", {"event": "published", "version": 1})
    a, b = Outbox(cfg, jq.sessions, FlakyTracker(), "a"), Outbox(cfg, jq.sessions, FlakyTracker(), "b")
    assert len(a.claim_due()) == 1 and b.claim_due() == []


def test_the_delivery_thread_delivers_and_stops(make_config, tmp_path):
    from quickart_daemon.outbox import start_delivery_thread
    cfg = _config(make_config, tmp_path, poll_seconds=0.05)
    jq = open_queue(cfg)
    put_for_job(cfg, jq, _published_job(cfg, jq))
    tracker = FlakyTracker(down=1)
    thread = start_delivery_thread(cfg, jq.sessions, tracker)
    deadline = time.monotonic() + 10
    while not tracker.taken and time.monotonic() < deadline:
        time.sleep(0.05)
    thread.stop()
    assert not thread.is_alive() and len(tracker.taken) == 1


def test_a_job_failed_for_good_is_posted_only_with_on_failure(make_config, tmp_path):
    for on_failure in (False, True):
        cfg = _config(make_config, tmp_path, on_failure=on_failure,
                      database={"url": f"sqlite:///{tmp_path / f'{on_failure}.db'}"})
        jq = open_queue(cfg)
        job = jq.enqueue(ShotId("DEMO", "sq010", "sh0010"), "DEMO/sq010/sh0010", "default")
        jq.claim(job.id, "t", "test", "cpu0")
        failed = jq.fail(job.id, "t", "stage color: no colour reference", retryable=False)
        assert put_for_job(cfg, jq, failed) is on_failure
        tracker = FlakyTracker()
        Outbox(cfg, jq.sessions, tracker).deliver_due()
        if on_failure:
            [event] = tracker.taken
            assert (event["event"], event["error"], event["status"]) == ("failed", "stage color: no colour reference",
                                                                         None)
        else:
            assert tracker.taken == []


# -- configuration -------------------------------------------------------------------------------

def test_a_review_goes_in_the_outbox_with_its_verdicts_status(make_config, tmp_path):
    """Issue 24: a review of a version from the web page is the event "review:<id>" of that version; its
    status is tracker.approved_status / retake_status, none for a note; the job's warnings stay as they are."""
    from quickart_daemon import reviews
    cfg = _config(make_config, tmp_path, approved_status="approved-ish")
    jq = open_queue(cfg)
    job = _published_job(cfg, jq)
    with jq.sessions.begin() as s:  # the version's number, as publishing allocates it
        from quickart_daemon.db.models import VersionRow
        s.add(VersionRow(shot_id=job.shot_id, number=1, job_id=job.id))
    shot = ShotId("DEMO", "sq010", "sh0010")
    shot_id = jq.upsert_shot(shot, "DEMO/sq010/sh0010")
    made = [reviews.add(cfg, jq.sessions, shot_id, shot, 1, state, text, "Ana")
            for state, text in (("approved", "good"), ("needs_work", "the hat"), ("note", "later"))]
    tracker = FlakyTracker(down=1)
    box = Outbox(cfg, jq.sessions, tracker)
    assert box.deliver_due() == 2  # the first refused (down): tried again after its backoff
    time.sleep(0.25)
    assert box.deliver_due() == 1
    events = sorted(tracker.taken, key=lambda e: e["review"]["id"])
    assert [(e["event"], e["status"], e["review"]["state"], e["review"]["text"]) for e in events] == [
        ("review", "approved-ish", "approved", "good"), ("review", "retake", "needs_work", "the hat"),
        ("review", None, "note", "later")]
    first = events[0]
    assert (first["show"], first["seq"], first["shot"], first["version"], first["job_id"], first["pipeline"]) == \
        ("DEMO", "sq010", "sh0010", 1, job.id, "default")
    assert first["review"]["author"] == "Ana" and first["review"]["at"] == made[0]["at"]
    assert first["marker"] == f"quickart:DEMO/sq010/sh0010:v001:review{made[0]['id']}"
    with jq.sessions() as s:
        assert sorted(s.scalars(select(Delivery.event)).all()) == sorted(f"review:{r['id']}" for r in made)
    assert jq.get(job.id).warnings == ()


def test_the_password_never_goes_in_the_config_nor_in_its_error(tmp_path):
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump({"tracker": {"kind": "kitsu", "url": "https://kitsu.example/api",
                                                "user": "qa@example.com", "password": "hunter2-secret"}}))
    with pytest.raises(ConfigError) as err:
        load_config(path)
    assert "tracker.password: the password never goes in config.yaml" in str(err.value)
    assert "hunter2" not in str(err.value)
    path.write_text(yaml.safe_dump({"tracker": {"kind": "kitsu", "url": "kitsu.example", "user": "x"}}))
    with pytest.raises(ConfigError, match="tracker.url: must start with http"):
        load_config(path)
    path.write_text(yaml.safe_dump({"tracker": {"kind": "kitsu", "url": "https://k", "user": "x"}}))
    with pytest.raises(ConfigError, match="a user needs password_file or password_env"):
        load_config(path)
    path.write_text(yaml.safe_dump({"tracker": {"kind": "shotgun", "url": "https://k"}}))
    with pytest.raises(ConfigError, match="no tracker named 'shotgun' is installed"):
        load_tracker(load_config(path).tracker)


def test_no_tracker_by_default_and_the_shipped_config_loads():
    cfg = load_config(REPO / "config.yaml")
    assert cfg.tracker is None


# -- end to end against a real Kitsu ---------------------------------------------------------------

def _kitsu_config(tmp_path: Path, server, project: str, **extra) -> Path:
    pw = tmp_path / "kitsu-password"
    pw.write_text(server.password + "\n")
    pw.chmod(0o600)
    data = {"root": "studio", "state_dir": "state", "database": {"url": "sqlite:///state/q.db"},
            "pipelines_dir": str(REPO / "pipelines"), "pipeline": "blend", "slots": {"gpus": "none"},
            "drop": {"settle_seconds": 0.3}, "queue": {"poll_interval": 0.2, "heartbeat_seconds": 1.0},
            "tracker": {"kind": "kitsu", "url": server.url, "user": "admin@example.com",
                        "password_file": str(pw), "projects": {"DEMO": project}, "task_type": "Compositing",
                        "poll_seconds": 0.2, "retry_seconds": 0.5, "max_retry_seconds": 1.0, "timeout_seconds": 20},
            **extra}
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(data))
    (tmp_path / "studio").mkdir(exist_ok=True)
    return path


def _kitsu_shot(server, project: str):
    """(client, shot, task, comments) of DEMO/sq010/sh0010 in `project` as Kitsu has them."""
    import gazu
    client = server.client()
    proj = gazu.project.get_project_by_name(project, client=client)
    seq = gazu.shot.get_sequence_by_name(proj, "sq010", client=client)
    shot = gazu.shot.get_shot_by_name(seq, "sh0010", client=client) if seq else None
    task_type = gazu.task.get_task_type_by_name("Compositing", client=client)
    task = gazu.task.get_task_by_entity(shot, task_type, client=client) if shot else None
    comments = gazu.task.all_comments_for_task(task, client=client) if task else []
    return client, shot, task, comments


def _new_project(server) -> str:
    import gazu
    name = f"QuickArt Demo {uuid.uuid4().hex[:6]}"
    gazu.project.new_project(name, client=server.client())
    return name


def _quickart(config: Path, *args, check=True) -> subprocess.CompletedProcess:
    r = subprocess.run([sys.executable, "-m", "quickart_daemon.cli", "--config", str(config), *map(str, args)],
                       capture_output=True, text=True, timeout=300)
    if check and r.returncode != 0:
        raise AssertionError(f"quickart {args} failed:\n{r.stdout}\n{r.stderr}")
    return r


def _read_png(path) -> np.ndarray:
    from PIL import Image
    with Image.open(path) as im:
        return np.asarray(im.convert("RGB"))


def test_a_published_version_reaches_kitsu(kitsu, tmp_path):
    import gazu
    project = _new_project(kitsu)
    config = _kitsu_config(tmp_path, kitsu, project)
    shot_dir = write_demo_studio(tmp_path / "studio", size=(160, 90), keys=(1001, 1005))
    r = _quickart(config, "run", shot_dir)
    assert "warning" not in r.stdout, r.stdout
    version = shot_dir / "quickart" / "v001"
    manifest = json.loads((version / "manifest.json").read_text())
    first, last = manifest["timing"]["frame_range"]

    client, shot, task, comments = _kitsu_shot(kitsu, project)
    assert shot is not None, kitsu.log_tail()
    assert (shot["nb_frames"], shot["data"]["frame_in"], shot["data"]["frame_out"]) == (last - first + 1, first, last)
    status = gazu.task.get_task_status(task["task_status_id"], client=client)
    assert status["short_name"] == "wfa"
    [comment] = comments
    assert "QuickArt v001 of DEMO/sq010/sh0010" in comment["text"] and f"frames {first}-{last}" in comment["text"]
    assert "[quickart:DEMO/sq010/sh0010:v001:published]" in comment["text"]
    [preview_id] = [p["id"] if isinstance(p, dict) else p for p in comment["previews"]]
    preview = gazu.files.get_preview_file(preview_id, client=client)
    assert preview["status"] == "ready" and preview["extension"] == "png"
    gazu.files.download_preview_file(preview, str(tmp_path / "downloaded.png"), client=client)
    np.testing.assert_array_equal(_read_png(tmp_path / "downloaded.png"), _read_png(version / "contact.png"))

    # the tracker took it, then the worker died before the outbox recorded it: delivered again, posted once
    cfg = load_config(config)
    jq = open_queue(cfg)
    with jq.sessions.begin() as s:
        s.execute(update(Delivery).values(state="pending", delivered_at=None))
    assert Outbox(cfg, jq.sessions).deliver_due() == 1
    assert len(_kitsu_shot(kitsu, project)[3]) == 1
    with jq.sessions() as s:
        assert s.scalar(select(Delivery.refs))["comment"] == comment["id"]

    # with on_failure, a job failed for good is a comment; the task keeps its status
    from quickart_daemon.trackers.kitsu import KitsuTracker
    result = KitsuTracker(cfg.tracker).deliver({
        "event": "failed", "show": "DEMO", "seq": "sq010", "shot": "sh0010", "job_id": 2, "pipeline": "blend",
        "error": "stage color: no colour reference", "marker": "quickart:DEMO/sq010/sh0010:job2.0:failed"})
    assert result.ok, result.message
    _, _, task, comments = _kitsu_shot(kitsu, project)
    assert len(comments) == 2 and "QuickArt job 2 of DEMO/sq010/sh0010 failed: stage color" in comments[0]["text"]
    assert gazu.task.get_task_status(task["task_status_id"], client=client)["short_name"] == "wfa"

    # the credentials appear in no log: not the command's output, not the job's log
    for text in (r.stdout, r.stderr, (version / "job.log").read_text(), config.read_text()):
        assert kitsu.password not in text
    status = json.loads(_quickart(config, "status", "--json").stdout)["tracker"]
    assert (status["done"], status["pending"], status["failed"]) == (1, 0, 0)
    doctor = _quickart(config, "doctor", "--json", check=False)
    [check] = [c for c in json.loads(doctor.stdout) if c["check"] == "tracker"]
    assert check["ok"] and check["detail"].startswith(f"logged in to Kitsu at {kitsu.url} as admin@example.com")
    assert kitsu.password not in doctor.stdout + doctor.stderr
    (tmp_path / "kitsu-password").write_text("not-the-password\n")
    doctor = _quickart(config, "doctor", "--json", check=False)
    [check] = [c for c in json.loads(doctor.stdout) if c["check"] == "tracker"]
    assert not check["ok"] and check["detail"] == f"Kitsu at {kitsu.url} refused the login of admin@example.com"
    assert "not-the-password" not in doctor.stdout + doctor.stderr


def test_a_review_on_the_page_reaches_kitsu_as_a_status_and_a_comment(kitsu, tmp_path):
    """Issue 24: approving a published version on the web page (with a note) puts the Kitsu task in
    approved_status ("done") with the note as the comment; needs work: "retake"; a note alone: a comment,
    the status kept. Each once, however often the outbox hands it over."""
    import gazu
    from starlette.testclient import TestClient
    from quickart_daemon.web.app import create_app
    project = _new_project(kitsu)
    config = _kitsu_config(tmp_path, kitsu, project)
    shot_dir = write_demo_studio(tmp_path / "studio", size=(160, 90), keys=(1001, 1005))
    _quickart(config, "run", shot_dir)
    cfg = load_config(config)
    cfg = cfg.model_copy(update={"web": cfg.web.model_copy(update={"token": "review-token-0123456789"})})
    jq = open_queue(cfg)
    box = Outbox(cfg, jq.sessions)
    url = "/api/shot/DEMO/sq010/sh0010/versions/v001/reviews"
    auth = {"Authorization": "Bearer review-token-0123456789"}

    def review(state, text, author="Ana"):
        with TestClient(create_app(cfg), base_url="http://127.0.0.1") as c:
            r = c.post(url, json={"state": state, "text": text, "author": author}, headers=auth)
        assert r.status_code == 201, r.text
        started = time.monotonic()
        assert box.deliver_due() == 1
        client, _, task, comments = _kitsu_shot(kitsu, project)
        return time.monotonic() - started, gazu.task.get_task_status(task["task_status_id"], client=client), comments

    seconds, status, comments = review("approved", "Approved: the line weight is right now.")
    assert status["short_name"] == "done", status
    assert len(comments) == 2  # the version's own comment, then the review
    newest = comments[0]
    assert "QuickArt review of v001 of DEMO/sq010/sh0010: approved, by Ana" in newest["text"]
    assert "Approved: the line weight is right now." in newest["text"]
    assert newest["task_status_id"] == status["id"]
    print(f"a review delivered to Kitsu in {seconds:.2f} s")

    _, status, comments = review("needs_work", "The hat flickers at 1003.", author="Bo")
    assert status["short_name"] == "retake" and "needs work, by Bo" in comments[0]["text"]
    _, status, comments = review("note", "Keep the shadow softer.")
    assert status["short_name"] == "retake" and len(comments) == 4  # a note keeps the status
    assert "Keep the shadow softer." in comments[0]["text"]

    # handed over again (the process died after Kitsu took it): found by its marker, not posted twice
    with jq.sessions.begin() as s:
        s.execute(update(Delivery).where(Delivery.event.like("review:%")).values(state="pending", delivered_at=None))
    assert box.deliver_due() == 3
    assert len(_kitsu_shot(kitsu, project)[3]) == 4
    assert _status(jq)["done"] == 4


def _wait(check, seconds: float, what: str, proc=None, log: Path | None = None):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        if proc is not None and proc.poll() is not None:
            raise AssertionError(f"daemon exited ({proc.returncode}) waiting for {what}:\n"
                                 f"{log.read_text() if log else ''}")
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}:\n{log.read_text()[-4000:] if log else ''}")


def test_a_tracker_down_during_a_publish_gets_the_version_once_when_back(kitsu, tmp_path):
    project = _new_project(kitsu)
    config = _kitsu_config(tmp_path, kitsu, project)
    log = tmp_path / "daemon.log"
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    with open(log, "w") as out:
        daemon = subprocess.Popen([sys.executable, "-m", "quickart_daemon.cli", "--config", str(config), "daemon"],
                                  stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True)
    try:
        _wait(lambda: "action=ready" in log.read_text(), 60, "the daemon", daemon, log)
        kitsu.kill()  # the tracker is gone before the job publishes, and stays gone while it does
        staging = tmp_path / "staging"
        shot_dir = write_demo_studio(staging, size=(160, 90), keys=(1001, 1005))
        target = tmp_path / "studio" / "DEMO" / "sq010" / "sh0010"
        target.parent.mkdir(parents=True)
        os.rename(shot_dir, target)

        def job():
            jobs = json.loads(_quickart(config, "jobs", "--json").stdout)
            return jobs[-1] if jobs and jobs[-1]["state"] == "done" and jobs[-1]["warnings"] else None
        done = _wait(job, 120, "the job with the tracker's warning", daemon, log)
        assert (target / "quickart" / "v001" / "contact.png").is_file()  # published without the tracker
        assert any(w.startswith("tracker kitsu: DEMO/sq010/sh0010 v001 not delivered yet:") and
                   w.endswith("; will retry") for w in done["warnings"]), done["warnings"]
        tracker = json.loads(_quickart(config, "status", "--json").stdout)["tracker"]
        assert tracker["pending"] == 1 and tracker["retrying"] == 1 and tracker["last_error"]
        text = _quickart(config, "status").stdout
        assert "tracker kitsu: 0 delivered, 1 pending (1 retrying), 0 failed; last error: cannot reach Kitsu at " \
            f"{kitsu.url}: connection refused" in text
        print(f"\nwhile down: {text.splitlines()[-1]}\njob warnings: {done['warnings']}")

        kitsu.start()
        back = time.monotonic()
        _wait(lambda: json.loads(_quickart(config, "status", "--json").stdout)["tracker"]["done"] == 1, 60,
              "the delivery after the tracker came back", daemon, log)
        print(f"delivered {time.monotonic() - back:.1f} s after the tracker came back")
        time.sleep(1.5)  # more passes of the delivery loop: nothing more is posted
        _, shot, task, comments = _kitsu_shot(kitsu, project)
        assert len(comments) == 1 and "QuickArt v001" in comments[0]["text"], comments
        job = json.loads(_quickart(config, "job", done["id"], "--json").stdout)
        assert any(w.startswith("tracker kitsu: DEMO/sq010/sh0010 v001 delivered after") for w in job["warnings"])
    finally:
        if daemon.poll() is None:
            os.killpg(daemon.pid, signal.SIGTERM)
            daemon.wait(60)
        if kitsu.gunicorn is None or kitsu.gunicorn.poll() is not None:
            kitsu.start()  # the session's server stays up for the tests after this one
    text = log.read_text()
    assert daemon.returncode == 0 and "action=stopped node=" in text  # the delivery thread stopped with it
    assert "action=tracker_retry" in text and "action=tracker_delivered" in text
    assert kitsu.password not in text
    assert kitsu.password not in (target / "quickart" / "v001" / "job.log").read_text()
