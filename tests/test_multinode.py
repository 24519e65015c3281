"""Many nodes, one database: the same drop seen by several nodes makes one job; notices are recorded once.

Every test runs on a SQLite file and on a throw-away PostgreSQL database (the `db_url` fixture),
with real processes racing at a barrier.
"""

from __future__ import annotations

import multiprocessing as mp
import os

import pytest

from quickart_daemon.config import load_config
from quickart_daemon.intake import submit_shot
from quickart_daemon.naming import ShotId
from quickart_daemon.nodes import NodeRegistry
from quickart_daemon.notices import NoticeBoard
from quickart_daemon.queue import open_queue
from quickart_daemon.tools.synth import write_demo_studio

RACERS = 2


def _node(config_path: str, node: str, shot_dir: str, rounds: int, barrier, out) -> None:
    """One node's intake: at each barrier, submit the shot as its watcher would."""
    cfg = load_config(config_path)
    jq = open_queue(cfg, migrate=False)
    for _ in range(rounds):
        barrier.wait(timeout=60)
        job = submit_shot(cfg, jq, shot_dir, "watch")
        NoticeBoard(jq.db).record(shot_dir, "keys/readme.txt: not a QuickArt input (expected PNG drawings); ignored", node)
        out.put((node, job.id if job else None))
        barrier.wait(timeout=60)


def test_nodes_seeing_the_same_drop_at_once_make_one_job(make_config, db_url):
    cfg = make_config(database={"url": db_url})
    jq = open_queue(cfg)
    shot_dir = write_demo_studio(cfg.root, shot="sh0010", size=(64, 36), keys=(1001, 1005))
    key = sorted((shot_dir / "keys").glob("*.png"))[0]
    # the key's mtime per round: the third round puts the files back as they were in the first, which
    # is a new drop (the shot changed again), not a repeat
    mtimes = [1_700_000_000, 1_700_000_100, 1_700_000_000, 1_700_000_200, 1_700_000_300, 1_700_000_400]
    ctx = mp.get_context("spawn")
    barrier, out = ctx.Barrier(RACERS + 1), ctx.Queue()
    procs = [ctx.Process(target=_node, args=(str(cfg.source), f"node{i}", str(shot_dir), len(mtimes), barrier, out))
             for i in range(RACERS)]
    for p in procs:
        p.start()
    try:
        for mtime in mtimes:
            os.utime(key, (mtime, mtime))
            barrier.wait(timeout=60)  # go
            results = [out.get(timeout=60) for _ in procs]
            made = [job for _, job in results if job is not None]
            assert len(made) == 1, f"mtime {mtime}: {results}"
            barrier.wait(timeout=60)
    finally:
        for p in procs:
            p.join(30)
    assert [p.exitcode for p in procs] == [0] * RACERS
    jobs = jq.list()
    assert len(jobs) == len(mtimes), "one job per drop, whichever node saw it"
    with jq.sessions() as s:
        from sqlalchemy import func, select

        from quickart_daemon.db.models import Drop
        assert s.scalar(select(func.count(Drop.id))) == len(mtimes)
    notices = NoticeBoard(jq.db).latest()
    assert len(notices) == 1, "a problem seen by every node is recorded once"


def test_forced_submits_always_make_a_new_job(make_config, db_url):
    """`quickart run`/`submit` repeat identical files on purpose: each is a job."""
    cfg = make_config(database={"url": db_url})
    jq = open_queue(cfg)
    shot_dir = write_demo_studio(cfg.root, shot="sh0010", size=(64, 36), keys=(1001, 1005))
    first = submit_shot(cfg, jq, shot_dir, "submit", force=True)
    second = submit_shot(cfg, jq, shot_dir, "submit", force=True)
    assert first is not None and second is not None and first.id != second.id
    assert submit_shot(cfg, jq, shot_dir, "watch") is None  # the watcher sees nothing new


def test_nodes_command_lists_state_slots_and_heartbeat(make_config, db_url, capsys):
    import json

    from quickart_daemon.cli import main
    cfg = make_config(database={"url": db_url})
    jq = open_queue(cfg)
    registry = NodeRegistry(jq.db, jq)
    registry.heartbeat("render01", 101, ["gpu0.0", "gpu1.0"], "native", starting=True, gpus=2, version="0.1.0")
    registry.heartbeat("render02", 102, ["cpu.0"], "polling", starting=True)
    registry.heartbeat("render02", 102, ["cpu.0"], "polling", stopping=True)
    jq.enqueue(ShotId("S", "q", "sh1"), "/studio/sh1", "default")
    jq.claim_next("render01:101:gpu0.0", "render01", "gpu0.0")
    assert main(["--config", str(cfg.source), "nodes", "--json"]) == 0
    nodes = {n["name"]: n for n in json.loads(capsys.readouterr().out)}
    assert (nodes["render01"]["state"], nodes["render01"]["running"], nodes["render01"]["gpus"],
            nodes["render01"]["alive"]) == ("up", 1, 2, True)
    assert (nodes["render02"]["state"], nodes["render02"]["alive"]) == ("stopped", False)
    assert main(["--config", str(cfg.source), "nodes"]) == 0
    table = capsys.readouterr().out
    assert "render01  up" in table and "1/2" in table
    assert main(["--config", str(cfg.source), "status"]) == 0
    assert "daemon render01: alive" in capsys.readouterr().out


def test_an_idle_daemon_wakes_within_a_second_of_a_new_job(pg_url):
    """LISTEN/NOTIFY: the wait returns when a job is queued, not when the (long) poll interval ends."""
    import threading
    import time

    from quickart_daemon.db.session import connect
    from quickart_daemon.db.wakeup import Wakeup
    from quickart_daemon.queue import JobQueue

    jq = JobQueue(connect(pg_url))
    wakeup, stop = Wakeup(pg_url), threading.Event()
    assert wakeup.wait(0.2, stop) is False  # nothing queued: the timeout (the polling fallback)
    woke = {}

    def idle_daemon():
        woke["by_notify"] = wakeup.wait(30, stop)
        woke["at"] = time.monotonic()

    waiter = threading.Thread(target=idle_daemon)
    waiter.start()
    time.sleep(0.5)
    queued_at = time.monotonic()
    jq.enqueue(ShotId("S", "q", "sh1"), "/studio/sh1", "default")
    waiter.join(10)
    wakeup.close()
    assert woke["by_notify"] is True
    assert woke["at"] - queued_at < 1.0, f"woke {woke['at'] - queued_at:.3f} s after the job was queued"


def test_version_numbers_come_from_the_database(pg_url, tmp_path):
    """Publishers on several nodes of one shot take distinct numbers even when the shared drive shows
    none of the others' folders (no folder is made here at all: NFS's cached listing at its worst)."""
    import threading
    import time

    from quickart_daemon.db.session import connect
    from quickart_daemon.publish_locks import DatabasePublishLocks
    from quickart_daemon.queue import JobQueue

    jq = JobQueue(connect(pg_url))
    job = jq.enqueue(ShotId("S", "q", "sh1"), "/studio/sh1", "default")
    output_dir = tmp_path / "sh1" / "quickart"
    (output_dir / "v004").mkdir(parents=True)  # made before the database knew the shot: counts too
    numbers, inside, overlaps = [], [], []

    def publisher(i):
        nodes_queue = JobQueue(connect(pg_url, migrate=False))
        with DatabasePublishLocks(nodes_queue, job.shot_id, job.id).version_slot(output_dir) as number:
            inside.append(i)
            if len(inside) > 1:
                overlaps.append(list(inside))
            time.sleep(0.05)
            inside.remove(i)
            numbers.append(number)

    threads = [threading.Thread(target=publisher, args=(i,)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert sorted(numbers) == [5, 6, 7, 8, 9, 10]
    assert overlaps == [], "one publisher of the shot at a time"


def test_sequence_timeline_updates_are_serialised_by_the_database(pg_url, tmp_path):
    import threading
    import time

    from quickart_daemon.db.session import connect
    from quickart_daemon.publish_locks import DatabasePublishLocks
    from quickart_daemon.queue import JobQueue

    jq = JobQueue(connect(pg_url))
    events = []

    def publisher(i):
        locks = DatabasePublishLocks(JobQueue(connect(pg_url, migrate=False)), 1, i)
        with locks.sequence(tmp_path / "editorial" / "sq010.otio"):
            events.append(("in", i))
            time.sleep(0.05)
            events.append(("out", i))

    threads = [threading.Thread(target=publisher, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert jq.shared
    assert all(events[k][0] == "in" and events[k + 1] == ("out", events[k][1]) for k in range(0, len(events), 2))
    assert len(events) == 8


def test_without_postgresql_the_cluster_says_how_to_install_it(monkeypatch):
    """The PostgreSQL fixture fails with this line (never a silent skip) where the server is not installed."""
    from quickart_daemon.db import pgcluster

    monkeypatch.setattr(pgcluster, "pg_program", lambda name: None)
    with pytest.raises(RuntimeError, match=r"apt-get install -y postgresql$"):
        pgcluster.PostgresCluster()
