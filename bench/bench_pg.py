"""Many claimers, one queue: PostgreSQL vs SQLite (issue 11). Prints a table; not a test, never fails.

Rows:
  claims    N queued jobs (default 10 000), K claiming processes (1, 2, 4, 8) each looping
            `claim_next` + `finish` (the scheduler's work per job) until the queue is empty.
            claims/s = N / wall time; `cycle ms` = mean time of one claim+finish as one claimer sees it;
            `ms/job` = the scheduler's overhead per job for the whole farm (wall / N); every job must be
            claimed exactly once (checked: `dup` column).
  wake-up   an idle daemon loop (`Wakeup.wait(poll_interval)` then `claim_next`, as Daemon.run does)
            and a job queued by another connection: seconds from the enqueue's commit to the claim.
            PostgreSQL: LISTEN/NOTIFY; SQLite: polling at the shipped queue.poll_interval (1 s).
  requeue   a node heartbeats, claims a job and goes silent; another node ticks every 0.2 s
            (`requeue_down_nodes`, as Daemon.tick does): seconds from its last heartbeat to the
            job being back in the queue, with lease_seconds = 2.

Usage:  .venv/bin/python bench/bench_pg.py [--jobs 10000] [--claimers 1,2,4,8] [--wake-trials 10]
PostgreSQL runs in a throw-away cluster (initdb + pg_ctl, fsync off) on this machine; SQLite in a
temp file (WAL). Both on the same disk and CPUs, so compare rows of one run only.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import signal
import statistics
import sys
import tempfile
import threading
import time
from datetime import timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sqlalchemy import insert  # noqa: E402

from quickart_daemon.db.models import JobRow, Shot, utcnow  # noqa: E402
from quickart_daemon.db.pgcluster import PostgresCluster  # noqa: E402
from quickart_daemon.db.session import connect  # noqa: E402
from quickart_daemon.db.wakeup import Wakeup  # noqa: E402
from quickart_daemon.naming import ShotId  # noqa: E402
from quickart_daemon.nodes import NodeRegistry  # noqa: E402
from quickart_daemon.queue import JobQueue, JobState  # noqa: E402


def fill(url: str, jobs: int) -> None:
    """`jobs` queued jobs over 100 shots, inserted in bulk (enqueue's own cost is not what is measured)."""
    sessions = connect(url)
    with sessions.begin() as s:
        s.execute(insert(Shot), [{"show": "B", "seq": "q", "name": f"sh{i:04d}", "path": f"/studio/sh{i:04d}"}
                                 for i in range(1, 101)])
        past = utcnow() - timedelta(seconds=5)
        s.execute(insert(JobRow), [{"shot_id": 1 + i % 100, "state": "queued", "priority": 0, "pipeline": "default",
                                    "max_attempts": 3, "run_after": past, "warnings": []} for i in range(jobs)])


def claimer(url: str, name: str, start, out) -> None:
    jq = JobQueue(connect(url, migrate=False), lease_seconds=60)
    got = []
    start.wait()
    t0 = time.perf_counter()
    while (job := jq.claim_next(f"{name}:1:s", name, "s")) is not None:
        jq.finish(job.id, f"{name}:1:s", version=1, output_path="", artifacts={})
        got.append(job.id)
    out.put((name, got, t0, time.perf_counter()))


def bench_claims(url: str, jobs: int, k: int) -> dict:
    fill(url, jobs)
    ctx = mp.get_context("spawn")
    start, out = ctx.Event(), ctx.Queue()
    procs = [ctx.Process(target=claimer, args=(url, f"c{i}", start, out)) for i in range(k)]
    for p in procs:
        p.start()
    time.sleep(1.0 + 0.3 * k)  # let every process import and connect before the clock starts
    start.set()
    results = [out.get(timeout=3600) for _ in procs]
    for p in procs:
        p.join()
    ids = [j for _, got, _, _ in results for j in got]
    wall = max(r[3] for r in results) - min(r[2] for r in results)
    per_job = [(end - t0) / max(len(got), 1) for _, got, t0, end in results if got]
    return {"claims_s": len(ids) / wall, "ms_per_job": 1000 * statistics.mean(per_job), "wall": wall,
            "claimed": len(ids), "dup": len(ids) - len(set(ids))}


def bench_wakeup(url: str, trials: int, poll_interval: float = 1.0) -> list[float]:
    """Seconds from an enqueue's commit to an idle loop's claim."""
    jq = JobQueue(connect(url))
    daemon_q = JobQueue(connect(url, migrate=False))
    wakeup, stop = Wakeup(url), threading.Event()
    claimed_at: list[float] = []

    def idle_loop():
        while not stop.is_set():
            wakeup.wait(poll_interval, stop)
            while daemon_q.claim_next("d:1:s", "d", "s") is not None:
                claimed_at.append(time.perf_counter())

    loop = threading.Thread(target=idle_loop)
    loop.start()
    time.sleep(0.5)
    latencies = []
    for i in range(trials):
        time.sleep(0.37 + (i % 5) * 0.29)  # land at different points of the poll interval
        jq.enqueue(ShotId("B", "q", f"sh{i:04d}"), f"/studio/w{i}", "default")
        queued = time.perf_counter()
        deadline = queued + 10
        while len(claimed_at) <= i and time.perf_counter() < deadline:
            time.sleep(0.002)
        latencies.append(claimed_at[i] - queued if len(claimed_at) > i else float("nan"))
    stop.set()
    loop.join()
    wakeup.close()
    return latencies


def bench_requeue(url: str, lease: float = 2.0, tick: float = 0.2) -> float:
    jq = JobQueue(connect(url), lease_seconds=lease)
    registry = NodeRegistry(jq.db, jq)
    job = jq.enqueue(ShotId("B", "q", "shX"), "/studio/x", "default")
    registry.heartbeat("dead", 1, ["s"], None, starting=True)
    jq.claim_next("dead:1:s", "dead", "s")
    registry.heartbeat("dead", 1, ["s"], None)
    silent_from = time.perf_counter()
    while jq.get(job.id).state is not JobState.QUEUED:
        registry.heartbeat("alive", 2, ["s"], None)
        registry.requeue_down_nodes(lease, me="alive")
        jq.requeue_stale()
        time.sleep(tick)
    return time.perf_counter() - silent_from


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--jobs", type=int, default=10_000)
    ap.add_argument("--claimers", default="1,2,4,8")
    ap.add_argument("--wake-trials", type=int, default=10)
    args = ap.parse_args()
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # a killed run still stops its cluster
    print(f"machine: {os.cpu_count()} CPUs, load {os.getloadavg()[0]:.2f}; python {sys.version.split()[0]}")
    cluster = PostgresCluster()
    tmp = Path(tempfile.mkdtemp(prefix="bench-pg-"))
    try:
        def fresh(kind: str, tag: str) -> str:
            return cluster.create_database() if kind == "postgresql" else f"sqlite:///{tmp / (tag + '.db')}"

        print(f"\nclaims: {args.jobs} queued jobs, K processes each looping claim_next + finish")
        print(f"{'database':<11}{'K':>3}{'claims/s':>10}{'ms/job':>8}{'cycle ms':>10}{'wall s':>8}{'claimed':>9}"
              f"{'dup':>5}")
        rows = {}
        for k in [int(x) for x in args.claimers.split(",")]:
            for kind in ("postgresql", "sqlite"):
                r = bench_claims(fresh(kind, f"claims{k}"), args.jobs, k)
                rows[kind, k] = r
                print(f"{kind:<11}{k:>3}{r['claims_s']:>10.0f}{1000 / r['claims_s']:>8.2f}{r['ms_per_job']:>10.2f}"
                      f"{r['wall']:>8.1f}{r['claimed']:>9}{r['dup']:>5}", flush=True)
        ks = [int(x) for x in args.claimers.split(",")]
        print("ratio PG/SQLite claims/s: " + "  ".join(
            f"K={k}: {rows['postgresql', k]['claims_s'] / rows['sqlite', k]['claims_s']:.2f}" for k in ks))

        print(f"\nwake-up: enqueue -> idle loop's claim, {args.wake_trials} trials (poll interval 1 s)")
        print(f"{'database':<11}{'how':<14}{'median s':>9}{'max s':>8}")
        for kind, how in (("postgresql", "LISTEN/NOTIFY"), ("sqlite", "polling")):
            lat = bench_wakeup(fresh(kind, "wake"), args.wake_trials)
            print(f"{kind:<11}{how:<14}{statistics.median(lat):>9.3f}{max(lat):>8.3f}", flush=True)

        print("\nrequeue after a node goes silent (lease_seconds 2, tick 0.2 s)")
        for kind in ("postgresql", "sqlite"):
            print(f"{kind:<11}{bench_requeue(fresh(kind, 'requeue')):>8.2f} s", flush=True)
        print(f"\nload at end {os.getloadavg()[0]:.2f}")
    finally:
        cluster.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
