"""The job state machine on a real SQLite file and a real PostgreSQL database (every test runs on both)."""

from __future__ import annotations

import multiprocessing as mp
import time
from datetime import timedelta

import pytest

from quickart_daemon.db.models import utcnow
from quickart_daemon.db.session import connect
from quickart_daemon.errors import InvalidTransition
from quickart_daemon.naming import ShotId
from quickart_daemon.nodes import NodeRegistry
from quickart_daemon.process import Controls, Heartbeat
from quickart_daemon.queue import TRANSITIONS, JobQueue, JobState, LeaseLost, RetryPolicy

SHOT = ShotId("BRV", "sq010", "sh0040")


@pytest.fixture
def jq(db_url):
    return JobQueue(connect(db_url), RetryPolicy(3, 30, 2, 600), lease_seconds=60)


def _queue(jq, shot=SHOT, **kw):
    return jq.enqueue(shot, f"/studio/{shot}", "default", signature="sig", **kw)


def test_claim_checkpoint_finish(jq):
    job = _queue(jq)
    assert job.state is JobState.QUEUED
    claimed = jq.claim_next("nodeA:1:cpu.0", "nodeA", "cpu.0")
    assert (claimed.id, claimed.state, claimed.attempts, claimed.node) == (job.id, JobState.RUNNING, 1, "nodeA")
    assert jq.claim_next("nodeA:1:cpu.1", "nodeA", "cpu.1") is None  # nothing else to claim
    jq.checkpoint(job.id, "nodeA:1:cpu.0", index=0, name="hold", seconds=0.5, checkpoint="/x",
                  report={"warnings": ["w1"]}, progress=0.5)
    assert set(jq.done_stages(job.id)) == {0}
    done = jq.finish(job.id, "nodeA:1:cpu.0", version=1, output_path="/v001", artifacts={"otio": "/a.otio"})
    assert done.state is JobState.DONE and done.version == 1 and done.warnings == ("hold: w1",)
    assert jq.artifacts(job.id) == {"otio": "/a.otio"}


def test_only_the_lease_owner_may_write(jq):
    job = _queue(jq)
    jq.claim_next("a", "n", "s")
    with pytest.raises(LeaseLost):
        jq.heartbeat(job.id, "b")
    with pytest.raises(LeaseLost):
        jq.finish(job.id, "b", version=1, output_path="", artifacts={})


def test_newest_drop_supersedes_queued_older_drop(jq):
    old = _queue(jq)
    other_shot = _queue(jq, ShotId("BRV", "sq010", "sh0050"))
    new = _queue(jq)
    assert jq.get(old.id).state is JobState.SUPERSEDED
    assert jq.get(other_shot.id).state is JobState.QUEUED
    assert jq.claim_next("o", "n", "s").id == other_shot.id  # FIFO among equal priorities
    assert jq.claim_next("o2", "n", "s").id == new.id


def test_priority_wins(jq):
    low = _queue(jq)
    high = _queue(jq, ShotId("BRV", "sq010", "sh0050"), priority=10)
    assert jq.claim_next("o", "n", "s").id == high.id
    assert jq.claim_next("o2", "n", "s").id == low.id


def test_retry_with_backoff_then_give_up(jq):
    job = _queue(jq)
    now = utcnow()
    for attempt in (1, 2):
        claimed = jq.claim_next("o", "n", "s", now=now)
        assert claimed.attempts == attempt
        failed = jq.fail(job.id, "o", "disk hiccup", retryable=True)
        assert failed.state is JobState.QUEUED
        delay = (failed.run_after - utcnow()).total_seconds()
        assert abs(delay - 30 * 2 ** (attempt - 1)) < 5  # 30 s, then 60 s
        assert jq.claim_next("o", "n", "s", now=now) is None  # not before its time
        now = failed.run_after + timedelta(seconds=1)
    jq.claim_next("o", "n", "s", now=now)
    final = jq.fail(job.id, "o", "disk hiccup", retryable=True)
    assert final.state is JobState.FAILED and final.attempts == 3


def test_bad_input_fails_at_once(jq):
    job = _queue(jq)
    jq.claim_next("o", "n", "s")
    assert jq.fail(job.id, "o", "corrupt PNG", retryable=False).state is JobState.FAILED


def test_cancel_queued_and_running(jq):
    queued = _queue(jq)
    assert jq.cancel(queued.id).state is JobState.CANCELLED
    running = _queue(jq)
    jq.claim_next("o", "n", "s")
    assert jq.heartbeat(running.id, "o") is False
    assert jq.cancel(running.id).cancel_requested
    assert jq.heartbeat(running.id, "o") is True  # the worker learns at its next heartbeat
    assert jq.stopped(running.id, "o").state is JobState.CANCELLED
    with pytest.raises(InvalidTransition):
        jq.cancel(running.id)


def test_expired_lease_is_requeued_and_resumes(jq):
    job = _queue(jq)
    jq.claim_next("dead-worker", "n", "s")
    jq.checkpoint(job.id, "dead-worker", index=0, name="refine", seconds=1, checkpoint="/c", report={}, progress=0.25)
    assert jq.requeue_stale() == []  # lease still valid
    assert jq.requeue_stale(now=utcnow() + timedelta(seconds=61)) == [job.id]
    again = jq.claim_next("new-worker", "n", "s")
    assert again.id == job.id and again.attempts == 2
    assert set(jq.done_stages(job.id)) == {0}  # resumes after the checkpointed stage


def test_restarted_node_requeues_its_own_jobs_only(jq):
    mine, theirs = _queue(jq), _queue(jq, ShotId("BRV", "sq010", "sh0050"))
    jq.claim_next("me:1:s", "me", "s")
    jq.claim_next("them:1:s", "them", "s")
    assert jq.requeue_stale(node="me") == [mine.id]
    assert jq.get(theirs.id).state is JobState.RUNNING


def test_manual_retry_starts_a_new_generation(jq):
    job = _queue(jq)
    jq.claim_next("o", "n", "s")
    jq.checkpoint(job.id, "o", index=0, name="hold", seconds=1, checkpoint="/c", report={}, progress=1)
    jq.fail(job.id, "o", "bad", retryable=False)
    retried = jq.retry(job.id)
    assert retried.state is JobState.QUEUED and retried.attempts == 0 and retried.error is None
    assert jq.done_stages(job.id) == {}  # a manual retry runs every stage again


def test_release_does_not_count_an_attempt(jq):
    job = _queue(jq)
    jq.claim_next("o", "n", "s")
    released = jq.release(job.id, "o")
    assert released.state is JobState.QUEUED and released.attempts == 0


def test_a_done_job_leaves_done_only_by_a_manual_retry():
    assert TRANSITIONS[JobState.DONE] == {JobState.QUEUED}  # `retry`: run it again for a new version
    assert all(JobState.RUNNING not in TRANSITIONS[s] for s in JobState if s is not JobState.QUEUED)


def _claim_all(url: str, owner: str, out) -> None:
    jq = JobQueue(connect(url, migrate=False))
    got = []
    while (job := jq.claim_next(owner, "n", owner)) is not None:
        got.append(job.id)
    out.put(got)


def test_concurrent_claims_never_hand_a_job_out_twice(db_url):
    url = db_url
    jq = JobQueue(connect(url))
    ids = {_queue(jq, ShotId("S", "q", f"sh{i:04d}")).id for i in range(60)}
    ctx = mp.get_context("spawn")
    out = ctx.Queue()
    procs = [ctx.Process(target=_claim_all, args=(url, f"w{i}", out)) for i in range(4)]
    for p in procs:
        p.start()
    claimed = [jid for _ in procs for jid in out.get(timeout=60)]
    for p in procs:
        p.join(30)
    assert sorted(claimed) == sorted(ids), "every job claimed exactly once"


@pytest.mark.parametrize("skew_minutes", [10, -10])
def test_a_node_with_a_skewed_clock_does_not_steal_live_leases(pg_url, monkeypatch, skew_minutes):
    """Leases are timed by the PostgreSQL server's clock: a node whose own clock runs minutes ahead
    (or behind) neither requeues another node's live job nor takes a lease that looks expired to others,
    and the times it stamps on a job (started, finished) are the server's too."""
    import datetime as dt

    from quickart_daemon import jobs

    class Skewed(dt.datetime):
        @classmethod
        def now(cls, tz=None):
            return dt.datetime.now(tz) + timedelta(minutes=skew_minutes)

    honest = JobQueue(connect(pg_url), lease_seconds=60)
    skewed = JobQueue(connect(pg_url, migrate=False), lease_seconds=60)
    first, second = _queue(honest), _queue(honest, ShotId("BRV", "sq010", "sh0050"))
    assert honest.claim_next("honest:1:s", "honest", "s").id == first.id
    monkeypatch.setattr(jobs, "datetime", Skewed)  # this node's clock: every utcnow() in it
    skew = utcnow() - dt.datetime.now(dt.timezone.utc).replace(tzinfo=None)
    assert abs(skew.total_seconds() - 60 * skew_minutes) < 5  # the patch took
    assert skewed.requeue_stale() == []  # the honest node's lease is live by the server's clock
    assert skewed.claim_next("skewed:1:s", "skewed", "s").id == second.id
    skewed.heartbeat(second.id, "skewed:1:s")
    monkeypatch.undo()
    assert honest.requeue_stale() == []  # and the skewed node's lease is not expired for the others
    lease_left = (honest.get(second.id).lease_expires_at - utcnow()).total_seconds()
    assert 50 < lease_left <= 61, lease_left
    assert honest.get(first.id).state is JobState.RUNNING and honest.get(first.id).lease_owner == "honest:1:s"
    monkeypatch.setattr(jobs, "datetime", Skewed)
    skewed.finish(second.id, "skewed:1:s", version=1, output_path="v001", artifacts={})
    monkeypatch.undo()
    done = honest.get(second.id)
    took = (done.finished_at - done.started_at).total_seconds()
    assert done.state is JobState.DONE and 0 <= took < 60, took  # not the node's minutes of skew


def test_a_silent_node_is_marked_down_and_its_jobs_requeued(jq):
    mine, theirs = _queue(jq), _queue(jq, ShotId("BRV", "sq010", "sh0050"))
    registry = NodeRegistry(jq.db, jq)
    registry.heartbeat("gone", 11, ["gpu0.0"], "native", starting=True, gpus=1, version="0.1.0")
    registry.heartbeat("alive", 12, ["cpu.0"], "native", starting=True)
    jq.claim_next("gone:11:gpu0.0", "gone", "gpu0.0")
    jq.claim_next("alive:12:cpu.0", "alive", "cpu.0")
    assert registry.requeue_down_nodes(lease_seconds=60, me="alive") == {}  # both heartbeated just now
    time.sleep(1.2)
    registry.heartbeat("alive", 12, ["cpu.0"], "native")
    assert registry.requeue_down_nodes(lease_seconds=1, me="alive") == {"gone": [mine.id]}
    assert registry.requeue_down_nodes(lease_seconds=1, me="other") == {}  # marked once: nothing more to do
    requeued = jq.get(mine.id)
    assert requeued.state is JobState.QUEUED and requeued.error == "node gone down; requeued"
    assert jq.get(theirs.id).state is JobState.RUNNING
    nodes = {n.name: n for n in registry.list()}
    assert (nodes["gone"].state, nodes["gone"].gpus, nodes["gone"].version, nodes["gone"].running) == \
        ("down", 1, "0.1.0", 0)
    assert (nodes["alive"].state, nodes["alive"].running) == ("up", 1)
    registry.heartbeat("gone", 11, ["gpu0.0"], "native", gpus=1)  # it comes back
    assert {n.name: n.state for n in registry.list()}["gone"] == "up"


def test_an_expired_lease_of_a_silent_node_names_the_node(jq):
    short = JobQueue(jq.sessions, lease_seconds=1)
    of_silent_node, of_live_node = _queue(jq), _queue(jq, ShotId("BRV", "sq010", "sh0050"))
    registry = NodeRegistry(short.db, short)
    registry.heartbeat("gone", 11, ["s"], None, starting=True)
    registry.heartbeat("alive", 12, ["s"], None, starting=True)
    short.claim_next("gone:11:s", "gone", "s")
    short.claim_next("alive:12:s", "alive", "s")
    time.sleep(1.2)
    registry.heartbeat("alive", 12, ["s"], None)  # its daemon lives; only its worker went quiet
    # another daemon's tick leaves a live node's expired job to that node; the silent node's it takes back
    assert short.requeue_stale(me="third") == [of_silent_node.id]
    assert short.requeue_stale(me="alive") == [of_live_node.id]
    assert jq.get(of_silent_node.id).error == "node gone down; requeued"
    assert jq.get(of_live_node.id).error == "worker alive:12:s stopped responding (lease expired); requeued"



def test_a_jobs_heartbeat_thread_sees_a_cancel_and_joins_after_it_is_stopped(jq):
    job = _queue(jq)
    owner = "nodeA:1:cpu.0"
    claimed = jq.claim_next(owner, "nodeA", "cpu.0")
    jq.cancel(job.id)  # running on a live lease: its worker is asked to stop at the next heartbeat
    controls = Controls()
    beat = Heartbeat(jq, claimed, owner, every=0.05, controls=controls)
    beat.start()
    assert controls.cancel.wait(30), "the heartbeat passes the cancel request on"
    beat.stop()
    beat.join(30)  # Thread.join calls the thread's own _stop(): a stop flag of that name made this a TypeError
    assert not beat.is_alive()

# -- affinity and the per-node blocklist ------------------------------------------------------------

def test_a_gpu_job_goes_only_to_a_gpu_slot_and_a_group_job_only_to_its_group(jq):
    gpu_job = _queue(jq, requires_gpu=True)
    fx_job = _queue(jq, ShotId("BRV", "sq010", "sh0050"), node_group="fx")
    plain = _queue(jq, ShotId("BRV", "sq010", "sh0060"))
    assert jq.claim_next("cpu-node:1:cpu.0", "cpu-node", "cpu.0").id == plain.id  # a CPU-only node skips the others
    assert jq.claim_next("cpu-node:1:cpu.1", "cpu-node", "cpu.1") is None
    assert jq.claim_next("gpu-node:1:gpu0", "gpu-node", "gpu0", gpu=True).id == gpu_job.id
    assert jq.claim_next("gpu-node:1:gpu1", "gpu-node", "gpu1", gpu=True) is None  # fx needs the fx group
    assert jq.claim_next("fx-node:1:cpu.0", "fx-node", "cpu.0", groups=["fx", "comp"]).id == fx_job.id


def test_a_node_that_keeps_failing_a_job_stops_claiming_it(jq):
    jq.retry_policy, jq.block_node_after = RetryPolicy(5, 0, 1, 0), 2  # a farm's setting (off by default)
    job = _queue(jq)
    for attempt in range(2):
        claimed = jq.claim_next(f"nodeA:{attempt}:s", "nodeA", "s")
        assert claimed is not None and claimed.id == job.id
        jq.fail(job.id, claimed.lease_owner, "stage color crashed: RuntimeError: CUDA error", retryable=True)
    assert jq.claim_next("nodeA:9:s", "nodeA", "s") is None, "nodeA failed it twice (block_node_after 2)"
    assert jq.claim_next("nodeB:1:s", "nodeB", "s").id == job.id
    assert any("node nodeA no longer takes this job" in w for w in jq.get(job.id).warnings)
