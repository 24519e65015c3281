"""The review loop's first half (issue 24): every published version reaches the production tracker once.

The outbox with a tracker double (fast), the `tracker:` config block, and end to end against a real Kitsu
(Zou 1.0.97 through gazu 1.3.1, tests/kitsu.py): a shot published by `quickart run` lands on Kitsu with its
frame range, a task in "wfa", a comment naming the version and the contact sheet as a ready preview; a
tracker killed while a daemon publishes costs a warning, and the version is delivered once when it is back.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
import uuid
from datetime import datetime
from pathlib import Path

import numpy as np
import pytest
import yaml
from sqlalchemy import select, update

from quickart_daemon.config import load_config
from quickart_daemon.db.models import Delivery
from quickart_daemon.errors import ConfigError
from quickart_daemon.movie import frame_rate
from quickart_daemon.naming import ShotId
from quickart_daemon.outbox import Outbox, put, put_for_job, put_missing, status
from quickart_daemon.queue import JobState, open_queue
from quickart_daemon.trackers import DeliveryResult, TrackerError, load_tracker
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


def _version_folder(root: Path, version: int = 1) -> Path:
    """A published version's files as the outbox reads them (manifest, contact sheet, movie)."""
    folder = root / "DEMO" / "sq010" / "sh0010" / "quickart" / f"v{version:03d}"
    folder.mkdir(parents=True)
    (folder / "manifest.json").write_text(json.dumps({"timing": {"frame_range": [1001, 1005], "fps": 24}}))
    (folder / "contact.png").write_bytes(b"png")
    (folder / "comp.mp4").write_bytes(b"mp4")
    return folder


def test_a_delivery_put_by_one_node_is_delivered_by_another_under_its_own_root(make_config, tmp_path):
    """Issue 24: node A mounts the studio at /a, node B at /b. A version A published is put in the outbox
    with paths relative to the studio root; B delivers it with B's paths. A row stored before (absolute
    paths of a mount B does not have) is delivered with B's paths too; an absolute path that exists stays."""
    (tmp_path / "a").mkdir()
    (tmp_path / "b").symlink_to(tmp_path / "a")  # one share, two mount points
    (tmp_path / "kitsu.pw").write_text("pw\n")
    common = {"database": {"url": f"sqlite:///{tmp_path / 'shared.db'}"},
              "tracker": {"kind": "kitsu", "url": "http://127.0.0.1:9", "user": "qa", "password_file": "kitsu.pw"}}
    node_a = make_config(root=str(tmp_path / "a"), node_name="node-a", **common)
    node_b = make_config(root=str(tmp_path / "b"), node_name="node-b", **common)
    _version_folder(tmp_path / "a")
    jq_a = open_queue(node_a)
    assert put_for_job(node_a, jq_a, _published_job(node_a, jq_a)) is True
    with jq_a.sessions() as s:
        stored = s.scalar(select(Delivery.payload))
    rel = "DEMO/sq010/sh0010/quickart/v001"
    assert (stored["contact_sheet"], stored["movie"], stored["version_path"], stored["frame_in"]) == \
        (f"{rel}/contact.png", f"{rel}/comp.mp4", rel, 1001)

    jq_b = open_queue(node_b)
    shot_id = jq_b.upsert_shot(ShotId("DEMO", "sq010", "sh0010"), "DEMO/sq010/sh0010")
    gone = "/mnt/gone/studio/DEMO/sq010/sh0010/quickart/v001"
    old = dict(stored, version=2, contact_sheet=f"{gone}/contact.png", movie=str(tmp_path / "a" / rel / "comp.mp4"),
               version_path=gone, marker="quickart:DEMO/sq010/sh0010:v002:published")
    put(jq_b.sessions, shot_id, 2, "published", "kitsu", old)
    tracker = FlakyTracker()
    assert Outbox(node_b, jq_b.sessions, tracker).deliver_due() == 2
    new, before = sorted(tracker.taken, key=lambda e: e["version"])
    b = tmp_path / "b"
    assert (new["contact_sheet"], new["movie"], new["version_path"]) == \
        (str(b / rel / "contact.png"), str(b / rel / "comp.mp4"), str(b / rel))
    assert Path(new["contact_sheet"]).read_bytes() == b"png"
    assert (before["contact_sheet"], before["movie"], before["version_path"]) == \
        (str(b / rel / "contact.png"), str(tmp_path / "a" / rel / "comp.mp4"), str(b / rel))


class StatusTracker(FlakyTracker):
    """A tracker double that also reads statuses back: `answers` by version, or `fail` raised."""

    def __init__(self):
        super().__init__()
        self.answers, self.asked, self.fail = {}, [], None

    def statuses(self, requests):
        self.asked.append(requests)
        if self.fail:
            raise TrackerError(self.fail)
        return [self.answers.get(r["version"]) for r in requests]


def test_statuses_read_back_are_stored_once_and_shown_per_version_and_per_shot(make_config, tmp_path, db_url):
    """Issue 24: the tracker is asked about each version it took (not one still pending); what it says is
    stored per version, rewritten only when it changes, and read as the web page and `quickart status`
    show it."""
    from quickart_daemon.db.reads import open_reader
    from quickart_daemon.tracker_status import latest, latest_by_shot, read_back
    from quickart_daemon.trackers import TrackerStatus
    cfg = _config(make_config, tmp_path, database={"url": db_url})
    jq = open_queue(cfg)
    tracker = StatusTracker()
    box = Outbox(cfg, jq.sessions, tracker)
    for version in (1, 2):
        put_for_job(cfg, jq, _published_job(cfg, jq, version=version))
    assert box.deliver_due() == 2
    put_for_job(cfg, jq, _published_job(cfg, jq, version=3))  # not delivered yet: not asked about
    shot = ShotId("DEMO", "sq010", "sh0010")
    done = TrackerStatus("done", "Done", "#22d160", True, datetime(2026, 12, 6, 7, 0, 5), "http://k/tasks/t1")
    tracker.answers = {1: done, 2: TrackerStatus("wfa", "Waiting For Approval", "#ab26ff", False,
                                                 datetime(2026, 12, 6, 7, 1), "http://k/tasks/t1")}
    assert read_back(jq.sessions, tracker) == 2
    [asked] = tracker.asked
    assert [(r["show"], r["seq"], r["shot"], r["version"], r["pipeline"]) for r in asked] == [
        ("DEMO", "sq010", "sh0010", 1, "default"), ("DEMO", "sq010", "sh0010", 2, "default")]
    assert asked[0]["refs"] == {"comment": "c1"}
    assert read_back(jq.sessions, tracker) == 0  # the same answer: nothing written
    with open_reader(cfg.database.url, 5000) as run:
        assert latest(run, shot, 1) == {"status": "done", "name": "Done", "color": "#22d160", "approved": True,
                                        "at": "2026-12-06T07:00:05Z", "url": "http://k/tasks/t1", "version": 1}
        assert latest(run, shot, 3) is None and latest(run, ShotId("DEMO", "sq010", "sh9999"), 1) is None
        assert latest_by_shot(run) == {"DEMO/sq010/sh0010": latest(run, shot, 2)}
        assert latest(run, shot, 2)["status"] == "wfa" and latest(run, shot, 2)["approved"] is False
    tracker.answers[2] = TrackerStatus("retake", "Retake", "#ff3860", False, datetime(2026, 12, 6, 8, 0), None)
    tracker.answers.pop(1)  # the tracker has nothing to say about v001 any more: its last status stays
    assert read_back(jq.sessions, tracker) == 1
    with open_reader(cfg.database.url, 5000) as run:
        assert latest_by_shot(run)["DEMO/sq010/sh0010"] == {
            "status": "retake", "name": "Retake", "color": "#ff3860", "approved": False,
            "at": "2026-12-06T08:00:00Z", "url": None, "version": 2}
        assert latest(run, shot, 1)["status"] == "done"
    from quickart_daemon.web.app import WebState, shots_data
    web = WebState.create(cfg)
    try:  # the shot browser shows the same status beside the shot
        [entry] = [e for e in shots_data(web) if e["shot"] == "DEMO/sq010/sh0010"]
        assert entry["tracker"]["status"] == "retake" and entry["tracker"]["version"] == 2
        # and the shot page's version list beside each version (one answer for all of them)
        from test_web_endpoints import _request

        from quickart_daemon.web.app import shot_reviews
        request = _request(web, "/api/reviews/DEMO/sq010/sh0010", path_params={"rel": "DEMO/sq010/sh0010"})
        (cfg.root / "DEMO/sq010/sh0010").mkdir(parents=True, exist_ok=True)  # the page opens shots with a folder
        badges = json.loads(shot_reviews(request).body)["versions"]
        assert {v: b["tracker"]["status"] for v, b in badges.items()} == {"v001": "done", "v002": "retake"}
    finally:
        web.feed.stop()


def test_a_failed_read_back_is_one_warning_and_the_loop_goes_on(make_config, tmp_path, caplog):
    """The read runs in the delivery thread: a tracker that cannot be read costs one warning while it lasts
    (not one per pass), deliveries go on, and the next read that works stores the statuses."""
    import logging

    from quickart_daemon.outbox import start_delivery_thread
    from quickart_daemon.trackers import TrackerStatus
    cfg = _config(make_config, tmp_path, poll_seconds=0.05, read_seconds=0.05)
    jq = open_queue(cfg)
    put_for_job(cfg, jq, _published_job(cfg, jq))
    tracker = StatusTracker()
    tracker.fail = "cannot reach Kitsu at http://127.0.0.1:9: connection refused"
    caplog.set_level(logging.INFO, logger="quickart.outbox")
    thread = start_delivery_thread(cfg, jq.sessions, tracker)
    try:
        _wait(lambda: len(tracker.asked) >= 4, 10, "four failed reads")
        assert len(tracker.taken) == 1  # delivered all the same
        tracker.answers = {1: TrackerStatus("done", "Done", "#22d160", True)}
        tracker.fail = None
        from quickart_daemon.db.reads import open_reader
        from quickart_daemon.tracker_status import latest

        def stored():
            with open_reader(cfg.database.url, 5000) as run:
                return latest(run, ShotId("DEMO", "sq010", "sh0010"), 1)
        assert _wait(stored, 10, "the status read back")["approved"] is True
    finally:
        thread.stop()
    assert not thread.is_alive()
    failed = [r.getMessage() for r in caplog.records if "tracker_read_failed" in r.getMessage()]
    assert failed == ["action=tracker_read_failed tracker=kitsu error=TrackerError: cannot reach Kitsu at "
                      "http://127.0.0.1:9: connection refused"]
    assert any("action=tracker_read_back tracker=kitsu (reads work again)" in r.getMessage() for r in caplog.records)


def test_which_version_a_kitsu_comment_is_about():
    """The Kitsu module's rule, on comments shaped as Zou 1.0.97 lists them (newest first, times in whole
    seconds): a comment is about the version its QuickArt marker names, else the newest version posted
    before it; a status set on the task without a comment is the newest version's."""
    from quickart_daemon.trackers.kitsu import _version_statuses
    at = "2026-12-06T07:00:00"  # one second for all: only their order tells them apart
    marker = "QuickArt ...\n[quickart:DEMO/sq010/sh0010:v{:03d}:{}]"
    oldest_first = [
        {"id": "c1", "task_status_id": "wfa", "created_at": at, "text": marker.format(1, "published")},
        {"id": "c2", "task_status_id": "retake", "created_at": at, "text": "the hat flickers"},
        {"id": "c3", "task_status_id": "wfa", "created_at": at, "text": marker.format(2, "published")},
        {"id": "c4", "task_status_id": "done", "created_at": at, "text": marker.format(1, "review7")},
        {"id": "c5", "task_status_id": "wip", "created_at": "2026-12-06T07:00:09", "text": "looking"},
    ]
    requests = [{"version": 1, "refs": {"comment": "c1"}}, {"version": 2, "refs": {"comment": "c3"}}]
    versions = {1: 0, 2: 1}
    task = {"task_status_id": "wip", "updated_at": "2026-12-06T07:00:09"}
    got = _version_statuses(task, list(reversed(oldest_first)), versions, requests)
    assert got == {1: ("done", datetime(2026, 12, 6, 7, 0)), 2: ("wip", datetime(2026, 12, 6, 7, 0, 9))}
    assert _version_statuses(task, list(reversed(oldest_first[:3])), versions, requests)[1] == \
        ("retake", datetime(2026, 12, 6, 7, 0))  # before v002 arrived, the retake was about v001
    task = {"task_status_id": "done", "updated_at": "2026-12-06T07:05:00"}  # set on the task, no comment
    assert _version_statuses(task, list(reversed(oldest_first)), versions, requests)[2] == \
        ("done", datetime(2026, 12, 6, 7, 5))


# -- the movie ---------------------------------------------------------------------------------------

def _probe(path: Path) -> dict:
    out = subprocess.run(["ffprobe", "-v", "error", "-select_streams", "v:0", "-count_frames", "-show_entries",
                          "stream=codec_name,pix_fmt,width,height,r_frame_rate,nb_read_frames", "-of", "json",
                          str(path)], capture_output=True, text=True, check=True)
    return json.loads(out.stdout)["streams"][0]


def test_the_movie_of_a_comp_is_h264_yuv420p_even_at_the_shots_fps_on_paper(tmp_path):
    """Issue 24: the comp as a movie for the tracker: H.264 in MP4, yuv420p, odd sizes padded to even, the
    fps exact (23.976 as 24000/1001), one picture per frame (held frames too), transparency on white."""
    from quickart_daemon.images import write_png
    from quickart_daemon.movie import MovieError, write_movie
    if shutil.which("ffmpeg") is None:
        pytest.skip("ffmpeg is not installed (apt-get install -y ffmpeg; .ci/run installs it)")
    red = np.zeros((91, 161, 4), np.uint8)
    red[..., 0], red[..., 3] = 255, 255
    red[:, 80:, 3] = 0  # the right half transparent: white in the movie
    blue = np.zeros_like(red)
    blue[..., 2], blue[..., 3] = 255, 255
    write_png(tmp_path / "f1001.png", red)
    os.link(tmp_path / "f1001.png", tmp_path / "f1002.png")  # a held frame: a link, as publish makes it
    write_png(tmp_path / "f1003.png", blue)
    frames = [tmp_path / f"f{n}.png" for n in (1001, 1002, 1003)]
    movie = write_movie(frames, 23.976, tmp_path / "comp.mp4")
    assert _probe(movie) == {"codec_name": "h264", "pix_fmt": "yuv420p", "width": 162, "height": 92,
                             "r_frame_rate": "24000/1001", "nb_read_frames": "3"}
    raw = subprocess.run(["ffmpeg", "-v", "error", "-i", str(movie), "-f", "rawvideo", "-pix_fmt", "rgb24", "-"],
                         capture_output=True, check=True).stdout
    pictures = np.frombuffer(raw, np.uint8).reshape(3, 92, 162, 3).astype(int)
    assert np.abs(pictures[0, 20:70, 10:60] - [255, 0, 0]).max() < 40  # red, within H.264's error
    assert np.abs(pictures[0, 20:70, 100:150] - [255, 255, 255]).max() < 40  # transparent: paper white
    assert np.abs(pictures[2, 20:70, 10:150] - [0, 0, 255]).max() < 40
    write_png(tmp_path / "f1004.png", np.zeros((90, 160, 4), np.uint8))
    with pytest.raises(MovieError, match="f1004.png is 160x90, the first frame 161x91"):
        write_movie([*frames, tmp_path / "f1004.png"], 24, tmp_path / "bad.mp4")
    assert not (tmp_path / "bad.mp4").exists() and not (tmp_path / "bad.mp4.part").exists()


def test_a_failing_ffmpeg_costs_the_movie_and_a_warning_never_the_version(tmp_path):
    """Publishing with a tracker: an ffmpeg that fails leaves the version whole without comp.mp4 (nor a
    partial file) and says why on the job; the contact sheet still goes."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "ffmpeg").write_text("#!/bin/sh\ncat >/dev/null\necho 'Unknown encoder libx264' >&2\nexit 1\n")
    (bin_dir / "ffmpeg").chmod(0o755)
    (tmp_path / "pw").write_text("pw\n")
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump({
        "root": "studio", "state_dir": "state", "database": {"url": "sqlite:///state/q.db"},
        "pipelines_dir": str(REPO / "pipelines"), "pipeline": "blend", "slots": {"gpus": "none"},
        "tracker": {"kind": "kitsu", "url": "http://127.0.0.1:9", "user": "qa", "password_file": "pw",
                    "timeout_seconds": 2}}))
    shot_dir = write_demo_studio(tmp_path / "studio", size=(160, 90), keys=(1001, 1005))
    env = {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}"}
    r = subprocess.run([sys.executable, "-m", "quickart_daemon.cli", "--config", str(config), "run", str(shot_dir)],
                       capture_output=True, text=True, timeout=300, env=env)
    assert r.returncode == 0, r.stdout + r.stderr
    version = shot_dir / "quickart" / "v001"
    assert (version / "contact.png").is_file() and not list(version.glob("comp.mp4*"))
    [job] = json.loads(_quickart(config, "jobs", "--json").stdout)
    assert job["state"] == "done"
    assert "no movie for the tracker: ffmpeg exited with 1: Unknown encoder libx264" in job["warnings"], job
    cfg = load_config(config)
    with open_queue(cfg).sessions() as s:
        payload = s.scalar(select(Delivery.payload))
    assert payload["movie"] is None and payload["contact_sheet"] == "DEMO/sq010/sh0010/quickart/v001/contact.png"


def test_without_ffmpeg_a_node_says_so_once_and_publishes_no_movie(make_config, tmp_path, monkeypatch, caplog):
    import logging

    from quickart_daemon.outbox import say_if_no_movie
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    caplog.set_level(logging.INFO, logger="quickart.outbox")
    assert say_if_no_movie(_config(make_config, tmp_path)) is True
    assert "ffmpeg is not installed: versions published here carry the contact sheet alone" in caplog.text
    assert say_if_no_movie(_config(make_config, tmp_path, movie=False)) is False


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
                        "poll_seconds": 0.2, "retry_seconds": 0.5, "max_retry_seconds": 1.0, "timeout_seconds": 20,
                        "read_seconds": 0.5},
            **extra}
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(data))
    (tmp_path / "studio").mkdir(exist_ok=True)
    return path


def _stored_event(config: Path) -> dict:
    """The published event of the run's version, as the outbox stored it."""
    with open_queue(load_config(config)).sessions() as s:
        return s.scalar(select(Delivery.payload).where(Delivery.event == "published"))


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
    previews = [gazu.files.get_preview_file(p["id"] if isinstance(p, dict) else p, client=client)
                for p in comment["previews"]]
    by_kind = {p["extension"]: p for p in previews}
    preview = by_kind["png"]
    assert preview["status"] == "ready"
    gazu.files.download_preview_file(preview, str(tmp_path / "downloaded.png"), client=client)
    np.testing.assert_array_equal(_read_png(tmp_path / "downloaded.png"), _read_png(version / "contact.png"))
    if shutil.which("ffmpeg") is None:  # no movie is made: the sheet alone
        assert sorted(by_kind) == ["png"] and not (version / "comp.mp4").exists()
    else:  # the movie of the comp, a second preview of the same revision, transcoded by Zou to "ready"
        assert sorted(by_kind) == ["mp4", "png"], previews
        movie = by_kind["mp4"]
        assert movie["status"] == "ready" and movie["revision"] == preview["revision"], movie
        probe = _probe(version / "comp.mp4")
        assert (probe["codec_name"], probe["pix_fmt"], int(probe["nb_read_frames"]), probe["r_frame_rate"]) == \
            ("h264", "yuv420p", last - first + 1, "{0.numerator}/{0.denominator}".format(
                frame_rate(manifest["timing"]["fps"])))
        gazu.files.download_preview_file(movie, str(tmp_path / "downloaded.mp4"), client=client)
        assert _probe(tmp_path / "downloaded.mp4")["nb_read_frames"] == probe["nb_read_frames"]
        # with normalize_movie, Zou re-encodes it to 1920x1080 (with a silent soundtrack) and it is ready too
        from quickart_daemon.outbox import local_paths
        other = _new_project(kitsu)
        normalizing = load_config(config).tracker.model_copy(update={"normalize_movie": True,
                                                                     "projects": {"DEMO": other}})
        result = load_tracker(normalizing).deliver(local_paths(load_config(config), _stored_event(config)))
        assert result.ok, result.message
        normalized = gazu.files.get_preview_file(result.refs["movie"], client=client)
        assert (normalized["status"], normalized["width"], normalized["height"]) == ("ready", 1920, 1080), \
            kitsu.log_tail()

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


def test_a_status_set_on_kitsu_comes_back_to_its_version(kitsu, tmp_path):
    """Issue 24: statuses and approvals read back from Kitsu, shown next to each version. The demo shot
    publishes (v001, "wfa"); a supervisor approves it on Kitsu (a comment with the status "done"): after a
    read, our database, the version's JSON and `quickart status` say so. v002 publishes: v002 is "wfa",
    v001 keeps its "done"."""
    import gazu
    from starlette.testclient import TestClient

    from quickart_daemon.db.reads import open_reader
    from quickart_daemon.tracker_status import latest, latest_by_shot, read_back
    from quickart_daemon.web.app import create_app
    project = _new_project(kitsu)
    config = _kitsu_config(tmp_path, kitsu, project)
    shot_dir = write_demo_studio(tmp_path / "studio", size=(160, 90), keys=(1001, 1005))
    _quickart(config, "run", shot_dir)
    cfg = load_config(config)
    jq = open_queue(cfg)
    tracker = load_tracker(cfg.tracker)
    shot = ShotId("DEMO", "sq010", "sh0010")
    timings = []

    def read() -> int:
        started = time.monotonic()
        written = read_back(jq.sessions, tracker)
        timings.append(f"{time.monotonic() - started:.2f} s ({written} written)")
        return written

    def ours(version: int):
        with open_reader(cfg.database.url, 5000) as run:
            return latest(run, shot, version)

    assert read() == 1
    client, kitsu_shot, task, _ = _kitsu_shot(kitsu, project)
    task_url = f"{kitsu.url}/productions/{task['project_id']}/shots/tasks/{task['id']}/"
    assert ours(1) | {"at": None} == {"status": "wfa", "name": "Waiting For Approval", "color": "#ab26ff",
                                      "approved": False, "at": None, "url": task_url, "version": 1}

    done = gazu.task.get_task_status_by_short_name("done", client=client)
    gazu.task.add_comment(task, done, "Approved on Kitsu: ship it.", client=client)  # the supervisor, on Kitsu
    set_at = datetime.utcnow()
    assert read() == 1 and read() == 0  # then nothing changed: nothing written
    approved = ours(1)
    assert approved | {"at": None} == {"status": "done", "name": "Done", "color": "#22d160", "approved": True,
                                       "at": None, "url": task_url, "version": 1}
    assert abs((datetime.fromisoformat(approved["at"].rstrip("Z")) - set_at).total_seconds()) < 60
    with TestClient(create_app(cfg), base_url="http://127.0.0.1") as c:
        page = c.get("/api/shot/DEMO/sq010/sh0010/versions/v001")
    assert page.status_code == 200 and page.json()["tracker"] == approved

    _quickart(config, "run", shot_dir)  # v002: "wfa" on the task, v001 stays approved
    with TestClient(create_app(cfg), base_url="http://127.0.0.1") as c:  # not read yet: null
        assert c.get("/api/shot/DEMO/sq010/sh0010/versions/v002").json()["tracker"] is None
    assert read() == 1
    assert ours(2)["status"] == "wfa" and ours(1)["status"] == "done"
    with open_reader(cfg.database.url, 5000) as run:
        assert latest_by_shot(run) == {"DEMO/sq010/sh0010": ours(2)}
    with TestClient(create_app(cfg), base_url="http://127.0.0.1") as c:
        assert c.get("/api/shot/DEMO/sq010/sh0010/versions/v002").json()["tracker"]["status"] == "wfa"
    text = _quickart(config, "status").stdout
    assert "  DEMO/sq010/sh0010 v002: Waiting For Approval (wfa) at " in text, text
    listed = json.loads(_quickart(config, "status", "--json").stdout)["tracker"]["statuses"]
    assert listed == {"DEMO/sq010/sh0010": ours(2)}
    print("\nreads back from Kitsu (v001 new, v001 approved, unchanged, v002 new): " + ", ".join(timings))


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
        # the daemon reads the status back by itself (tracker.read_seconds), off the jobs' path
        statuses = _wait(lambda: json.loads(_quickart(config, "status", "--json").stdout)["tracker"]["statuses"],
                         30, "the status read back by the daemon", daemon, log)
        assert statuses["DEMO/sq010/sh0010"]["status"] == "wfa", statuses
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
