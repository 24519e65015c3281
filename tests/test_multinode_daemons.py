"""Several real daemons (separate processes, different node names) on one PostgreSQL database and one
studio root, as a studio installs them: work is shared, nothing runs twice, nothing is lost when a
node or the database server goes away.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from quickart_daemon.config import load_config
from quickart_daemon.nodes import NodeRegistry
from quickart_daemon.queue import JobState, open_queue

from test_daemon import SLOW_PIPELINE, SLOW_RUNS, SLOW_SHOT, drop_shot, stop, wait_until

pytestmark = pytest.mark.slow


def node_config(tmp_path: Path, name: str, url: str, **overrides):
    """Node `name`'s config: the shared root and database, its own state folder and log."""
    data = {"root": "studio", "state_dir": f"state-{name}", "node_name": name, "database": {"url": url},
            "drop": {"settle_seconds": 0.3}, "queue": {"poll_interval": 0.5, "heartbeat_seconds": 1.0},
            "slots": {"gpus": "none"}, "pipeline": "pose-test", **overrides}
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(data))
    (tmp_path / "studio").mkdir(exist_ok=True)
    return load_config(path)


def start_node(cfg) -> subprocess.Popen:
    log = open(cfg.source.parent / f"{cfg.node}.log", "ab")
    return subprocess.Popen([sys.executable, "-m", "quickart_daemon.cli", "--config", str(cfg.source), "daemon"],
                            stdout=log, stderr=subprocess.STDOUT, start_new_session=True)


def _registered(jq, names) -> bool:
    return {n.name for n in NodeRegistry(jq.db, jq).list() if n.state == "up"} >= set(names)


def test_three_nodes_share_thirty_drops_each_processed_once(tmp_path, pg_url):
    names = ["render01", "render02", "render03"]
    cfgs = [node_config(tmp_path, n, pg_url) for n in names]
    jq = open_queue(cfgs[0])
    daemons = [start_node(c) for c in cfgs]
    try:
        wait_until(lambda: _registered(jq, names), 60, "three nodes to register")
        shots = [drop_shot(cfgs[0], tmp_path / f"s{i}", shot=f"sh{i:04d}", size=(96, 54), keys=(1001, 1003))
                 for i in range(30)]
        wait_until(lambda: len(jq.list(states=[JobState.DONE, JobState.FAILED])) >= 30, 300, "30 finished jobs")
        for proc in daemons:
            assert proc.poll() is None
        jobs = jq.list()
        assert len(jobs) == 30, "one job per drop, though three nodes watched every drop"
        assert all(j.state is JobState.DONE and j.attempts == 1 and j.version == 1 for j in jobs), \
            [(j.id, j.state, j.attempts, j.error) for j in jobs if j.state is not JobState.DONE or j.attempts != 1]
        assert {j.node for j in jobs} == set(names), "work spread over every node"
        for shot_dir in shots:
            assert sorted(p.name for p in (shot_dir / "quickart").iterdir() if p.name.startswith("v")) == ["v001"]
        assert not list(cfgs[0].root.glob("**/.job-*")), "no temporary folder left"
    finally:
        for proc in daemons:
            assert stop(proc) == 0


def _slow_nodes(tmp_path, url, names, lease_seconds):
    pipelines = tmp_path / "pipelines"
    pipelines.mkdir(exist_ok=True)
    (pipelines / "slow.yaml").write_text(yaml.safe_dump(SLOW_PIPELINE))
    return [node_config(tmp_path, n, url, pipelines_dir="pipelines",
                        queue={"poll_interval": 0.2, "heartbeat_seconds": 1.0, "lease_seconds": lease_seconds})
            for n in names]


def test_sigkill_of_a_node_mid_stage_moves_its_job_to_another_node(tmp_path, pg_url, stage_package):
    cfg_a, cfg_b = _slow_nodes(tmp_path, pg_url, ["nodeA", "nodeB"], lease_seconds=4)
    jq = open_queue(cfg_a)
    node_a = start_node(cfg_a)
    node_b = None
    try:
        wait_until(lambda: _registered(jq, ["nodeA"]), 60, "node A to register", node_a)
        shot_dir = drop_shot(cfg_a, tmp_path, **SLOW_SHOT)
        job = wait_until(lambda: next((j for j in jq.list([JobState.RUNNING]) if j.current_stage == "test-slow"),
                                      None), 60, "stage 2 to start on node A", node_a)
        node_b = start_node(cfg_b)  # B is busy-free: A's job can only move if A is declared down
        wait_until(lambda: _registered(jq, ["nodeA", "nodeB"]), 60, "node B to register", node_b)
        stop(node_a, signal.SIGKILL)  # the daemon and its worker: a power cut
        killed_at = time.monotonic()
        requeued = wait_until(lambda: "node nodeA down" in (jq.get(job.id).error or "") and jq.get(job.id),
                              4 + 10, "node B to declare node A down", node_b)
        requeue_seconds = time.monotonic() - killed_at
        print(f"node A's job requeued {requeue_seconds:.2f} s after the kill (lease_seconds 4)")
        assert requeued.error == "node nodeA down; requeued"
        assert requeue_seconds < 4 + 5, f"requeued {requeue_seconds:.1f} s after the kill (lease 4 s)"
        done = wait_until(lambda: (j := jq.get(job.id)).state in (JobState.DONE, JobState.FAILED) and j, 120,
                          "the job to finish on node B", node_b)
        assert done.state is JobState.DONE and done.node == "nodeB", done.error
        runs = [(r["stage"], r["state"]) for r in jq.stage_runs(job.id)]
        assert runs == [(name, "done") for name in SLOW_RUNS], "resumed at its first unfinished stage"
        assert [p.name for p in (shot_dir / "quickart").iterdir() if p.name.startswith("v")] == ["v001"]
        assert not list((shot_dir / "quickart").glob(".job-*")), "no temporary folder left"
        assert {n.name: n.state for n in NodeRegistry(jq.db, jq).list()}["nodeA"] == "down"
    finally:
        if node_b is not None:
            stop(node_b)


def test_database_restart_while_nodes_run(tmp_path, pg_url, postgres, stage_package):
    names = ["nodeA", "nodeB"]
    cfgs = _slow_nodes(tmp_path, pg_url, names, lease_seconds=30)
    jq = open_queue(cfgs[0])
    daemons = [start_node(c) for c in cfgs]
    try:
        wait_until(lambda: _registered(jq, names), 60, "the nodes to register")
        shots = [drop_shot(cfgs[0], tmp_path / f"s{i}", shot=f"sh{i:04d}", **{**SLOW_SHOT, "keys": (1001, 1009)})
                 for i in range(3)]
        wait_until(lambda: any(j.current_stage == "test-slow" for j in jq.list([JobState.RUNNING])), 60,
                   "a slow stage to run")
        postgres.restart()  # pg_ctl restart -m fast: every connection is cut
        wait_until(lambda: len(jq.list(states=[JobState.DONE, JobState.FAILED])) >= 3, 180, "the three jobs")
        jobs = jq.list()
        assert len(jobs) == 3 and all(j.state is JobState.DONE for j in jobs), [(j.id, j.error) for j in jobs]
        assert all(j.attempts == 1 for j in jobs), "running stages carried on through the outage"
        for shot_dir in shots:
            assert sorted(p.name for p in (shot_dir / "quickart").iterdir() if p.name.startswith("v")) == ["v001"]
        for proc in daemons:
            assert proc.poll() is None, "the daemons rode out the outage"
        logs = "".join((tmp_path / f"{n}.log").read_text() for n in names)
        assert "action=database_unavailable" in logs or "action=listen_lost" in logs, "the outage is logged"
    finally:
        for proc in daemons:
            assert stop(proc) == 0


def test_an_idle_node_claims_a_new_job_within_a_second(tmp_path, pg_url):
    """LISTEN/NOTIFY in the daemon's loop: with a 30 s poll interval (the loop then wakes every 5 s for
    its node heartbeat), two new jobs are each claimed well within a second."""
    cfg = node_config(tmp_path, "render01", pg_url,
                      queue={"poll_interval": 30.0, "heartbeat_seconds": 30.0, "lease_seconds": 120})
    jq = open_queue(cfg)
    daemon = start_node(cfg)
    try:
        wait_until(lambda: _registered(jq, ["render01"]), 60, "the node to register", daemon)
        for i in range(2):
            time.sleep(1.0)  # the loop is now waiting
            drop_shot(cfg, tmp_path / f"s{i}", shot=f"sh{i:04d}", size=(96, 54), keys=(1001, 1003))
            job = wait_until(lambda: next((j for j in jq.list() if j.shot.shot == f"sh{i:04d}" and j.started_at),
                                          None), 20, "the job to be claimed", daemon)
            waited = (job.started_at - job.created_at).total_seconds()
            assert waited < 0.5, f"claimed {waited:.2f} s after it was queued"
            wait_until(lambda: jq.get(job.id).state is JobState.DONE, 60, "the job", daemon)
    finally:
        assert stop(daemon) == 0
