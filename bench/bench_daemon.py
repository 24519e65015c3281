#!/usr/bin/env python
"""QuickArt daemon benchmark: detection latency, scheduler overhead, CLI latency, end to end.

Prints a plain-text table (not a test suite). Everything runs on real files: a real
SQLite database in a temp folder, real studio folders, the real DropWatcher wired to
the real ``Daemon._on_drop -> submit_shot -> JobQueue.enqueue`` path, the real
``JobQueue`` verbs and the installed ``quickart`` command.

    .venv/bin/python bench/bench_daemon.py            # full run (~2 minutes)
    .venv/bin/python bench/bench_daemon.py --quick    # fewer repetitions, no `quickart demo`
    .venv/bin/python bench/bench_daemon.py --json bench/out/results.json

See bench/README.md for what each row means.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import logging
import math
import os
import platform
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import timedelta, timezone
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent

# targets from the issue (seconds)
TARGET_DETECT_S = 2.0       # native observer, drop complete -> job queued
TARGET_SCHED_S = 0.010      # per job: claim_next + heartbeat + checkpoint + finish
TARGET_STATUS_S = 0.300     # `quickart jobs --json` / `quickart status --json`


# -- small helpers -------------------------------------------------------------------------
def quickart_exe() -> str:
    here = Path(sys.executable).parent / "quickart"
    return str(here) if here.exists() else (shutil.which("quickart") or "quickart")


def pct(values: list[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100)."""
    s = sorted(values)
    if not s:
        return float("nan")
    k = max(1, math.ceil(q / 100 * len(s)))
    return s[k - 1]


def summary(values: list[float]) -> dict:
    return {"n": len(values), "median": statistics.median(values) if values else float("nan"),
            "p95": pct(values, 95), "max": max(values) if values else float("nan"),
            "min": min(values) if values else float("nan")}


def machine_info(tmp: Path) -> dict:
    model = "?"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = "?"
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                mem = f"{int(line.split()[1]) / 1024 / 1024:.1f} GiB"
    except OSError:
        pass
    from quickart_daemon.watch import mount_fs_type
    return {"cpu_count": os.cpu_count(), "cpu_model": model, "memory": mem,
            "python": platform.python_version(), "sqlite": sqlite3.sqlite_version,
            "kernel": platform.release(), "tmp_dir": str(tmp), "tmp_fs": mount_fs_type(tmp) or "?",
            "loadavg_start": loadavg()}


def loadavg() -> str:
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "?"


def write_config(folder: Path, **sections) -> Path:
    import yaml
    data = {"root": "studio", "state_dir": "state", "node_name": "bench-node",
            "database": {"url": "sqlite:///state/quickart.db"}, "models_dir": str(REPO / "models"),
            "log_level": "WARNING"}
    data.update(sections)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "studio").mkdir(exist_ok=True)
    path = folder / "config.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def log(msg: str) -> None:
    print(f"  .. {msg}", file=sys.stderr, flush=True)


# -- 1. detection latency ---------------------------------------------------------------
def make_template(tmp: Path) -> tuple[Path, str]:
    """Render the demo shot once (write_demo_studio defaults); drops copy it under new names."""
    from quickart_daemon.tools.synth import write_demo_studio
    shot_dir = write_demo_studio(tmp / "template")
    return shot_dir, shot_dir.name


def copy_shot(template: Path, template_name: str, dest: Path, name: str) -> None:
    """Copy the template shot to `dest`, file by file, renaming files to the new shot name."""
    for src in sorted(template.rglob("*")):
        if src.is_dir():
            continue
        rel = src.relative_to(template)
        out = dest / rel.parent / rel.name.replace(template_name, name)
        out.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(src, out)


def wait_for_job(jq, shot_name: str, timeout: float):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        jobs = jq.list(shot=shot_name, limit=5)
        if jobs:
            return jobs[-1]  # the first job queued for this shot
        time.sleep(0.01)
    return None


def bench_detection(tmp: Path, mode: str, method: str, reps: int, settle: float, poll_interval: float,
                    template: Path, template_name: str) -> dict:
    from quickart_daemon.config import load_config
    from quickart_daemon.daemon import Daemon

    folder = tmp / f"detect-{mode}-{method}"
    cfg_path = write_config(folder, drop={"settle_seconds": settle},
                            watch={"mode": mode, "poll_interval": poll_interval, "rescan_seconds": 60.0})
    cfg = load_config(cfg_path)
    seq_dir = cfg.root / "DEMO" / "sq010"
    seq_dir.mkdir(parents=True)
    staging = folder / "staging"  # same file system as the root, outside it: os.rename is atomic
    daemon = Daemon(cfg, slots=[])  # the real watcher wiring; no worker slots, the loop is not run
    daemon.watcher.start()
    raw, net, missed = [], [], 0
    try:
        if daemon.watcher.observer_kind != mode:
            raise RuntimeError(f"asked for {mode} observer, got {daemon.watcher.observer_kind}")
        time.sleep(max(0.5, poll_interval if mode == "polling" else 0))  # first polling snapshot
        for i in range(reps):
            name = f"sh{(i + 2) * 10:04d}"
            if method == "rename":
                copy_shot(template, template_name, staging / name, name)
                os.rename(staging / name, seq_dir / name)
            else:  # copy: file by file straight into the watched folder
                copy_shot(template, template_name, seq_dir / name, name)
            written = time.time()
            job = wait_for_job(daemon.jq, name, timeout=settle + 4 * poll_interval + 20)
            if job is None:
                missed += 1
                continue
            created = job.created_at.replace(tzinfo=timezone.utc).timestamp()
            raw.append(created - written)
            net.append(created - written - settle)
            time.sleep(0.3)  # let the watcher go idle before the next drop
        total_jobs = len(daemon.jq.list(limit=10_000))
    finally:
        daemon.watcher.stop()
    return {"mode": mode, "method": method, "settle_seconds": settle, "poll_interval": poll_interval,
            "check_interval": daemon.watcher.check_interval, "raw_s": raw, "net_s": net, "missed": missed,
            "extra_jobs": total_jobs - len(raw), "raw": summary(raw), "net": summary(net)}


# -- 2. scheduler overhead ------------------------------------------------------------------
N_JOB_FILES = [f"keys/x_char.{f}.png" for f in (1001, 1005, 1009, 1013)] + \
              [f"keys/x_fx.{f}.png" for f in (1001, 1005, 1009, 1013)] + \
              ["refs/x_char.1001.png", "refs/palette.yaml", "shot.yaml"]
STAGES = ["refine", "color", "light", "inbetween"]
ARTIFACT_KINDS = ["version", "contact", "otio", "sequence_otio", "manifest"]


def seed_jobs(jq, n_jobs: int, n_queued: int, n_running: int = 2) -> dict:
    """Bulk-insert a realistic history: 5 jobs per shot, the newest of `n_queued` shots queued,
    2 running on another node, the rest done / superseded / failed / cancelled; done jobs
    carry their 4 stage runs and 5 artifacts. ORM bulk INSERTs through the models."""
    from sqlalchemy import insert

    from quickart_daemon.db.models import Artifact, Drop, JobRow, Shot, StageRun, utcnow

    per_shot = 5
    n_shots = math.ceil(n_jobs / per_shot)
    now = utcnow()
    t0 = now - timedelta(days=30)
    shots, drops, jobs, runs, arts = [], [], [], [], []
    job_id = 0
    for k in range(n_shots):
        show, seq, name = f"SHOW{k % 3}", f"sq{(k // 100) % 100:03d}0", f"sh{k:05d}"
        path = f"/studio/{show}/{seq}/{name}"
        shots.append({"id": k + 1, "show": show, "seq": seq, "name": name, "path": path,
                      "created_at": t0 + timedelta(seconds=k * 60)})
        for j in range(per_shot):
            job_id += 1
            if job_id > n_jobs:
                break
            created = t0 + timedelta(seconds=job_id * 250)
            last = j == per_shot - 1
            if last:
                state = "queued" if k < n_queued else "done"
            elif job_id % 97 == 0:
                state = "cancelled"
            elif job_id % 23 == 0:
                state = "failed"
            else:
                state = ("done", "superseded")[j % 2]
            if state == "queued" and k < n_running:
                state = "running"
            drops.append({"id": job_id, "shot_id": k + 1, "signature": f"{job_id:064x}",
                          "files": N_JOB_FILES, "source": "watch", "detected_at": created})
            row = {"id": job_id, "shot_id": k + 1, "drop_id": job_id, "state": state, "priority": 0,
                   "pipeline": "default", "attempts": 0 if state in ("queued", "superseded") else 1,
                   "max_attempts": 3, "generation": 0, "run_after": created, "progress": 0.0,
                   "cancel_requested": False, "warnings": [], "created_at": created}
            if state == "running":
                row.update(lease_owner="other-node:1:gpu0", lease_expires_at=now + timedelta(hours=1),
                           node="other-node", slot="gpu0", current_stage="color", started_at=now)
            if state in ("done", "failed", "cancelled"):
                row.update(node="other-node", slot="gpu0", started_at=created + timedelta(seconds=5),
                           finished_at=created + timedelta(seconds=65))
            if state == "failed":
                row["error"] = "stage color crashed: RuntimeError: CUDA out of memory"
            if state == "superseded":
                row.update(superseded_by=job_id + 1, finished_at=created + timedelta(seconds=10))
            if state == "done":
                out = f"{path}/quickart/v{j + 1:03d}"
                row.update(version=j + 1, output_path=out, progress=1.0)
                runs += [{"job_id": job_id, "generation": 0, "index": i, "name": st, "state": "done",
                          "seconds": 12.5, "checkpoint": f"{out}.tmp/{i}-{st}", "report": {"warnings": []},
                          "finished_at": created + timedelta(seconds=10 * (i + 1))}
                         for i, st in enumerate(STAGES)]
                arts += [{"job_id": job_id, "kind": kind, "path": f"{out}/{kind}", "created_at": created}
                         for kind in ARTIFACT_KINDS]
            jobs.append(row)
    with jq.sessions.begin() as s:
        for model, rows in ((Shot, shots), (Drop, drops), (JobRow, jobs), (StageRun, runs), (Artifact, arts)):
            for i in range(0, len(rows), 5000):
                s.execute(insert(model), rows[i:i + 5000])
    counts: dict[str, int] = {}
    for r in jobs:
        counts[r["state"]] = counts.get(r["state"], 0) + 1
    return {"shots": len(shots), "jobs": len(jobs), "drops": len(drops), "stage_runs": len(runs),
            "artifacts": len(arts), "states": counts}


def query_plans(jq) -> dict:
    """EXPLAIN QUERY PLAN of the hot queries (hand-written copies of what JobQueue emits)."""
    engine = jq.sessions.kw["bind"]
    queries = {
        "claim_next": "SELECT jobs.id FROM jobs WHERE jobs.state = 'queued' AND jobs.run_after <= "
                      "'2100-01-01 00:00:00.000000' ORDER BY jobs.priority DESC, jobs.id LIMIT 8",
        "list(limit=50)": "SELECT jobs.* FROM jobs JOIN shots ON shots.id = jobs.shot_id "
                          "ORDER BY jobs.id DESC LIMIT 50",
        "list(running)": "SELECT jobs.* FROM jobs JOIN shots ON shots.id = jobs.shot_id "
                         "WHERE jobs.state IN ('running') ORDER BY jobs.id DESC LIMIT 200",
        "list(shot=name)": "SELECT jobs.* FROM jobs JOIN shots ON shots.id = jobs.shot_id WHERE shots.name = "
                           "'sh00001' OR shots.path = 'sh00001' OR (shots.show || '/' || shots.seq || '/' || "
                           "shots.name) = 'sh00001' ORDER BY jobs.id DESC LIMIT 5",
        "counts": "SELECT jobs.state, count(*) FROM jobs GROUP BY jobs.state",
        "requeue_stale": "SELECT jobs.* FROM jobs WHERE jobs.state = 'running' AND jobs.lease_expires_at < "
                         "'2100-01-01 00:00:00.000000'",
    }
    out = {}
    with engine.connect() as conn:
        for name, sql in queries.items():
            rows = conn.exec_driver_sql("EXPLAIN QUERY PLAN " + sql).all()
            out[name] = "; ".join(r[-1] for r in rows)
    return out


def bench_scheduler(tmp: Path, n_jobs: int, n_measure: int, n_cycle: int) -> tuple[dict, Path]:
    from quickart_daemon.config import load_config
    from quickart_daemon.queue import open_queue
    from quickart_daemon.naming import ShotId
    from quickart_daemon.nodes import NodeRegistry

    folder = tmp / "scheduler"
    cfg_path = write_config(folder)
    cfg = load_config(cfg_path)
    jq = open_queue(cfg)  # runs the migrations: the real schema and indexes
    n_queued = min(n_jobs // 5, max(n_measure + n_cycle + 50, 1000))
    t = time.perf_counter()
    seeded = seed_jobs(jq, n_jobs, n_queued)
    seed_s = time.perf_counter() - t
    NodeRegistry(jq.db, jq).heartbeat(cfg.node, os.getpid(), ["gpu0", "gpu1"], "native", starting=True)
    owner, node = f"{cfg.node}:{os.getpid()}:gpu0", cfg.node
    artifacts = {k: f"/out/{k}" for k in ARTIFACT_KINDS}

    # warm up the connection pool and SQLite page cache (not counted)
    for _ in range(3):
        jq.counts()
        jq.list(limit=50)

    verbs: dict[str, list[float]] = {v: [] for v in ("claim_next", "heartbeat", "done_stages", "checkpoint",
                                                      "finish")}
    per_job, per_job_with_done = [], []
    pc = time.perf_counter
    for _ in range(n_measure):
        t0 = pc()
        job = jq.claim_next(owner, node, "gpu0")
        t1 = pc()
        if job is None:
            raise RuntimeError("queue ran dry")
        jq.heartbeat(job.id, owner, stage="refine", progress=0.0)
        t2 = pc()
        done = jq.done_stages(job.id)
        t3 = pc()
        jq.checkpoint(job.id, owner, index=len(done), name="refine", seconds=1.5, checkpoint="/tmp/0-refine",
                      report={"warnings": ["3 keys had no ink"]}, progress=1.0)
        t4 = pc()
        jq.finish(job.id, owner, version=1, output_path="/out/v001", artifacts=artifacts)
        t5 = pc()
        for v, d in zip(verbs, (t1 - t0, t2 - t1, t3 - t2, t4 - t3, t5 - t4)):
            verbs[v].append(d)
        per_job.append((t5 - t0) - (t3 - t2))  # claim_next + heartbeat + checkpoint + finish
        per_job_with_done.append(t5 - t0)

    # a whole worker cycle for a 4-stage pipeline, as process.process_job drives it
    cycle = []
    for _ in range(n_cycle):
        t0 = pc()
        job = jq.claim_next(owner, node, "gpu0")
        jq.done_stages(job.id)
        for i, st in enumerate(STAGES):
            jq.heartbeat(job.id, owner, stage=st, progress=i / 4)
            jq.checkpoint(job.id, owner, index=i, name=st, seconds=1.0, checkpoint=f"/tmp/{i}-{st}",
                          report={"warnings": []}, progress=(i + 1) / 4)
        jq.finish(job.id, owner, version=1, output_path="/out/v001", artifacts=artifacts)
        cycle.append(pc() - t0)

    # what Daemon.tick() pays every poll_interval even when idle
    stale = []
    for _ in range(30):
        t0 = pc()
        jq.requeue_stale()
        stale.append(pc() - t0)

    # a drop being queued with 10k jobs in the table (enqueue = upsert_shot + drop + job + supersede)
    enq = []
    for i in range(30):
        t0 = pc()
        jq.enqueue(ShotId("BENCH", "sq010", f"sh{i:04d}"), f"/studio/BENCH/sq010/sh{i:04d}", "default",
                   signature=f"{i:064x}", files=N_JOB_FILES)
        enq.append(pc() - t0)

    res = {"seed": seeded, "seed_seconds": seed_s, "total_jobs": sum(jq.counts().values()),
           "per_job_s": per_job, "per_job": summary(per_job),
           "per_job_with_done_stages": summary(per_job_with_done),
           "verbs": {v: summary(x) for v, x in verbs.items()},
           "cycle_4_stages_s": cycle, "cycle_4_stages": summary(cycle),
           "requeue_stale": summary(stale), "enqueue": summary(enq),
           "query_plans": query_plans(jq)}
    jq.sessions.kw["bind"].dispose()
    return res, cfg_path


# -- 3. CLI latency ------------------------------------------------------------------------
def run_wall(cmd: list[str], reps: int, cwd: Path | None = None) -> tuple[list[float], int]:
    times, size = [], 0
    for i in range(reps + 1):  # the first run warms the page cache and is not counted
        t0 = time.perf_counter()
        p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=cwd)
        dt = time.perf_counter() - t0
        if p.returncode != 0:
            raise RuntimeError(f"{' '.join(cmd)} failed ({p.returncode}): {p.stderr.decode()[-500:]}")
        size = len(p.stdout)
        if i:
            times.append(dt)
    return times, size


IMPORT_PROBE = """
import contextlib, io, json, sys, time
t = time.perf_counter(); out = {}
def mark(name):
    global t
    now = time.perf_counter(); out[name] = now - t; t = now
# the modules `quickart jobs --json` imports, in order (no SQLAlchemy on SQLite, no numpy, watchdog
# or apscheduler): the status commands read through db/reads over the standard library's sqlite3
import quickart_daemon.cli; mark("cli+config (pydantic, yaml)")
import quickart_daemon.db.reads; mark("db/reads + jobs (sqlite3)")
with contextlib.redirect_stdout(io.StringIO()):
    rc = quickart_daemon.cli.main(sys.argv[1:])
mark("the command itself (config load, connect, query, JSON)")
assert "sqlalchemy" not in sys.modules, "the SQLite read path must not import SQLAlchemy"
print(json.dumps(out))
"""


# the peer: the same 50 jobs read through the SQLAlchemy queue, as `quickart jobs --json` did before db/reads
ORM_PROBE = """
import json, sys
from quickart_daemon.config import load_config
from quickart_daemon.queue import open_queue
print(json.dumps([j.to_dict() for j in open_queue(load_config(sys.argv[1]), migrate=False).list(limit=50)], default=str))
"""


def bench_cli(cfg_path: Path, reps: int, inproc_reps: int) -> dict:
    from quickart_daemon import cli
    from quickart_daemon.config import load_config
    from quickart_daemon.queue import open_queue

    exe = quickart_exe()
    cfg = str(cfg_path)
    jobs_t, jobs_bytes = run_wall([exe, "--config", cfg, "jobs", "--json"], reps)
    status_t, status_bytes = run_wall([exe, "--config", cfg, "status", "--json"], reps)
    orm_t, _ = run_wall([sys.executable, "-c", ORM_PROBE, cfg], reps)
    python_t, _ = run_wall([sys.executable, "-c", "pass"], reps)
    imp_t, _ = run_wall([sys.executable, "-c", "import quickart_daemon.cli"], reps)
    probes = []
    for _ in range(3):
        probe = subprocess.run([sys.executable, "-c", IMPORT_PROBE, "--config", cfg, "jobs", "--json"],
                               capture_output=True, text=True, check=True)
        probes.append(json.loads(probe.stdout))
    imports = {k: statistics.median(p[k] for p in probes) for k in probes[0]}

    jq = open_queue(load_config(cfg_path), migrate=False)
    jq.list(limit=50)
    lst = []
    for _ in range(inproc_reps):
        t0 = time.perf_counter()
        json.dumps([j.to_dict() for j in jq.list(limit=50)], indent=2, default=str)
        lst.append(time.perf_counter() - t0)

    def inproc(argv: list[str]) -> list[float]:
        out = []
        for i in range(inproc_reps + 1):
            buf = io.StringIO()
            t0 = time.perf_counter()
            with contextlib.redirect_stdout(buf):
                rc = cli.main(argv)
            dt = time.perf_counter() - t0
            if rc != 0:
                raise RuntimeError(f"quickart {' '.join(argv)}: exit {rc}")
            if i:
                out.append(dt)
        return out

    jobs_in = inproc(["--config", cfg, "jobs", "--json"])
    status_in = inproc(["--config", cfg, "status", "--json"])
    return {"jobs_cli_s": jobs_t, "jobs_cli": summary(jobs_t), "jobs_json_bytes": jobs_bytes,
            "status_cli_s": status_t, "status_cli": summary(status_t), "status_json_bytes": status_bytes,
            "jobs_orm": summary(orm_t),
            "python_startup": summary(python_t), "import_cli": summary(imp_t), "import_breakdown_s": imports,
            "list50_json": summary(lst), "jobs_inproc": summary(jobs_in), "status_inproc": summary(status_in)}


# -- 4. end to end --------------------------------------------------------------------------
def bench_e2e(tmp: Path, demo: bool, demo_timeout: float) -> dict:
    from quickart_daemon.tools.synth import write_demo_studio

    exe = quickart_exe()
    folder = tmp / "e2e"
    cfg_path = write_config(folder)
    t0 = time.perf_counter()
    shot_dir = write_demo_studio(folder / "studio")
    write_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    p = subprocess.run([exe, "--config", str(cfg_path), "run", str(shot_dir)], capture_output=True, text=True)
    run_s = time.perf_counter() - t0
    res = {"write_demo_studio_s": write_s, "run_s": run_s, "run_rc": p.returncode,
           "run_tail": p.stdout.strip().splitlines()[:1] + p.stderr.strip().splitlines()[-1:]}
    if demo:
        t0 = time.perf_counter()
        p = subprocess.run([exe, "demo", "--dir", str(tmp / "demo"), "--timeout", str(demo_timeout)],
                           capture_output=True, text=True, cwd=REPO)
        res.update(demo_s=time.perf_counter() - t0, demo_rc=p.returncode,
                   demo_tail=p.stdout.strip().splitlines()[-3:] + p.stderr.strip().splitlines()[-2:])
    return res


# -- the table -------------------------------------------------------------------------------
def fmt_s(x: float | None) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "-"
    return f"{x * 1000:.2f} ms" if x < 1 else f"{x:.2f} s"


def verdict(value: float, target: float) -> str:
    return "PASS" if value < target else "MISS"


def render(results: dict) -> str:
    rows: list[tuple[str, str, str, str, str, str]] = []
    head = ("metric", "median", "p95/max", "n", "target", "verdict")

    def add(name, s=None, target=None, judge="median", worst="p95", value=None):
        if s is None:
            rows.append((name, fmt_s(value), "", "1" if value is not None else "", "", ""))
            return
        v = s[judge]
        rows.append((name, fmt_s(s["median"]), fmt_s(s[worst]), str(s["n"]),
                     f"< {fmt_s(target)} ({judge})" if target else "",
                     verdict(v, target) if target else ""))

    def section(title):
        rows.append((title, "", "", "", "", ""))

    det = results.get("detection", [])
    if det:
        section("1. detection: drop complete -> job row (DropWatcher -> Daemon._on_drop -> submit_shot)")
        for d in det:
            tag = f"{d['mode']}/{d['method']}"
            target = TARGET_DETECT_S if d["mode"] == "native" else None
            add(f"  {tag} raw (settle {d['settle_seconds']:g}s incl.)", d["raw"], target, "max", "max")
            add(f"  {tag} minus settle", d["net"], None, worst="max")
            if d["missed"] or d["extra_jobs"]:
                rows.append((f"  {tag}: {d['missed']} drop(s) missed, {d['extra_jobs']} extra job(s)",
                             "", "", "", "", "!"))
    sch = results.get("scheduler")
    if sch:
        section(f"2. scheduler, {sch['total_jobs']} jobs in the database (per job)")
        add("  claim_next+heartbeat+checkpoint+finish", sch["per_job"], TARGET_SCHED_S, "p95")
        add("  same + done_stages", sch["per_job_with_done_stages"])
        for v, s in sch["verbs"].items():
            add(f"    {v}", s)
        add("  4-stage worker cycle (claim, 4x hb+ckpt, finish)", sch["cycle_4_stages"])
        add("  requeue_stale (every daemon tick)", sch["requeue_stale"])
        add("  enqueue (one drop queued)", sch["enqueue"])
    cli = results.get("cli")
    if cli:
        section("3. status commands, same database")
        add("  `quickart jobs --json` (subprocess wall)", cli["jobs_cli"], TARGET_STATUS_S)
        add("  `quickart status --json` (subprocess wall)", cli["status_cli"], TARGET_STATUS_S)
        add("  peer: the same 50 jobs via SQLAlchemy (subprocess wall)", cli["jobs_orm"])
        rows.append(("    ratio: `jobs --json` / SQLAlchemy peer (median)", "", "", "",
                     f"{cli['jobs_cli']['median'] / cli['jobs_orm']['median']:.2f}x", ""))
        add("    python -c pass (interpreter start)", cli["python_startup"])
        add("    python -c 'import quickart_daemon.cli'", cli["import_cli"])
        add("  cli.main(jobs --json) in-process", cli["jobs_inproc"], TARGET_STATUS_S)
        add("  cli.main(status --json) in-process", cli["status_inproc"], TARGET_STATUS_S)
        add("  JobQueue.list(limit=50) + json.dumps", cli["list50_json"])
    e2e = results.get("e2e")
    if e2e:
        section("4. end to end, demo shot (write_demo_studio defaults, CPU)")
        add("  write_demo_studio (not in the run time)", value=e2e["write_demo_studio_s"])
        add(f"  `quickart run SHOT` wall (exit {e2e['run_rc']})", value=e2e["run_s"])
        if "demo_s" in e2e:
            add(f"  `quickart demo --dir TMP` wall (exit {e2e['demo_rc']})", value=e2e["demo_s"])

    widths = [max(len(r[i]) for r in rows + [head]) for i in range(6)]
    line = "  ".join("-" * w for w in widths)
    out = ["  ".join(h.ljust(w) for h, w in zip(head, widths)), line]
    for r in rows:
        if r[1:] == ("", "", "", "", "") and not r[0].startswith(" "):
            out.append(r[0])
        else:
            out.append("  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip())
    return "\n".join(out)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="fewer repetitions, skip `quickart demo`")
    ap.add_argument("--json", metavar="FILE", help="also write the raw numbers to FILE")
    ap.add_argument("--tmp", metavar="DIR", help="run in a temp folder under DIR (e.g. the NFS share to evaluate)")
    ap.add_argument("--keep", action="store_true", help="keep the temp folder")
    ap.add_argument("--settle", type=float, default=0.5, help="drop.settle_seconds for detection (default 0.5)")
    ap.add_argument("--poll-interval", type=float, default=2.0,
                    help="watch.poll_interval for the polling observer (default 2.0, the shipped default)")
    ap.add_argument("--jobs", type=int, default=10_000, help="jobs in the database for 2. and 3. (default 10000)")
    ap.add_argument("--skip", default="", help="comma list of sections to skip: detect,sched,cli,e2e,demo")
    args = ap.parse_args()
    skip = set(filter(None, args.skip.split(",")))
    if args.quick:
        skip.add("demo")
    reps_detect = 3 if args.quick else 5
    n_measure, n_cycle = (100, 20) if args.quick else (200, 50)
    cli_reps, inproc_reps = (3, 10) if args.quick else (7, 30)

    logging.basicConfig(level=logging.ERROR)  # the watcher logs drops at INFO; keep the table clean
    tmp = Path(tempfile.mkdtemp(prefix="quickart-bench-", dir=args.tmp))
    started = time.perf_counter()
    results: dict = {"machine": machine_info(tmp), "args": vars(args)}
    m = results["machine"]
    print(f"machine: {m['cpu_count']} CPUs, {m['cpu_model']}, {m['memory']} RAM; kernel {m['kernel']}")
    print(f"python {m['python']}, sqlite {m['sqlite']}; temp dir {m['tmp_dir']} ({m['tmp_fs']}); "
          f"load average at start {m['loadavg_start']}", flush=True)
    try:
        if "detect" not in skip:
            log("rendering the demo shot once (template for the drops)")
            template, template_name = make_template(tmp)
            results["detection"] = []
            for mode in ("native", "polling"):
                for method in ("rename", "copy"):
                    log(f"detection {mode}/{method} x{reps_detect}")
                    results["detection"].append(bench_detection(tmp, mode, method, reps_detect, args.settle,
                                                                args.poll_interval, template, template_name))
        cfg_path = None
        if "sched" not in skip or "cli" not in skip:
            log(f"scheduler: seeding {args.jobs} jobs, then {n_measure} claim/checkpoint/finish")
            results["scheduler"], cfg_path = bench_scheduler(tmp, args.jobs, n_measure, n_cycle)
            if "sched" in skip:
                del results["scheduler"]
        if "cli" not in skip:
            log("status commands")
            results["cli"] = bench_cli(cfg_path, cli_reps, inproc_reps)
        if "e2e" not in skip:
            log("end to end: quickart run" + ("" if "demo" in skip else " and quickart demo"))
            results["e2e"] = bench_e2e(tmp, "demo" not in skip, demo_timeout=300)
    finally:
        results["wall_seconds"] = time.perf_counter() - started
        results["machine"]["loadavg_end"] = loadavg()
        if args.json:
            Path(args.json).parent.mkdir(parents=True, exist_ok=True)
            Path(args.json).write_text(json.dumps(results, indent=2, default=str))
        if args.keep:
            print(f"kept {tmp}", file=sys.stderr)
        else:
            shutil.rmtree(tmp, ignore_errors=True)

    print()
    print(render(results))
    sch = results.get("scheduler")
    if sch:
        print(f"\nseeded: {sch['seed']['jobs']} jobs on {sch['seed']['shots']} shots "
              f"({', '.join(f'{v} {k}' for k, v in sorted(sch['seed']['states'].items()))}), "
              f"{sch['seed']['stage_runs']} stage runs, {sch['seed']['artifacts']} artifacts "
              f"in {sch['seed_seconds']:.1f}s")
        print("query plans (EXPLAIN QUERY PLAN):")
        for name, plan in sch["query_plans"].items():
            print(f"  {name:<16} {plan}")
    cli = results.get("cli")
    if cli:
        print("where `quickart jobs --json` spends its time (one fresh process, in order, median of 3; "
              f"plus ~{cli['python_startup']['median'] * 1000:.0f} ms interpreter start):")
        for k, v in cli["import_breakdown_s"].items():
            print(f"  {v * 1000:6.0f} ms  {k}")
    det = results.get("detection")
    if det:
        d = det[0]
        print(f"detection settings: settle_seconds {d['settle_seconds']:g}, check_interval {d['check_interval']:g}, "
              f"polling poll_interval {det[-1]['poll_interval']:g}; verdicts: detection on max, scheduler on p95, "
              "status on median")
    print(f"total bench wall time {results['wall_seconds']:.0f}s; load average at end "
          f"{results['machine']['loadavg_end']} (on {m['cpu_count']} CPUs: other load skews every row)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
