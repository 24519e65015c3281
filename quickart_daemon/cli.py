"""quickart: the render daemon and its command line.

  quickart daemon                      run the service in the foreground (what systemd starts)
  quickart status | jobs | job ID      what is happening (from the database; works while the daemon runs)
  quickart nodes                       the render nodes sharing the database: state, slots in use, heartbeat
  quickart submit | run SHOT_DIR       queue a shot, or process it here in the foreground
  quickart retry ID [--from-stage S]   run a finished job again
  quickart cancel ID                   stop a job
  quickart stage NAME --in DIR --out DIR [...]   one stage on plain folders of {anything}.{frame}.png
  quickart doctor                      check config, database, models, GPU, watch mode
  quickart web [--host H] [--port N]   the studio web page (farm, shots, flipbook, uploads, downloads)
  quickart demo [--dir DIR]            make a demo studio, run the daemon on it, show the results
  quickart db upgrade | models list|install  maintenance

Every command finds its config by --config FILE, else $QUICKART_CONFIG, else ./config.yaml,
else /etc/quickart/config.yaml. Errors are one line on stderr and exit status 1.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import sys
from pathlib import Path

from .config import Config, load_config
from .errors import QuickArtError

def _print_json(data) -> None:
    print(json.dumps(data, indent=2, default=str))


def _table(rows: list[list[str]], header: list[str]) -> str:
    widths = [max(len(str(x)) for x in col) for col in zip(header, *rows)]
    fmt = "  ".join(f"{{:<{w}}}" for w in widths)
    return "\n".join([fmt.format(*header)] + [fmt.format(*map(str, r)) for r in rows])


def _ago(when) -> str:
    from .jobs import utcnow
    if when is None:
        return "-"
    s = (utcnow() - when).total_seconds()
    return f"{s:.0f}s ago" if s < 120 else f"{s / 60:.0f}m ago" if s < 7200 else f"{s / 3600:.1f}h ago"


# -- commands -------------------------------------------------------------------------

def cmd_daemon(args, cfg: Config) -> int:
    from .daemon import Daemon
    from .logs import setup_logging
    setup_logging(cfg.log_level)
    return Daemon(cfg).run()


def _reader(cfg: Config):
    """The status commands read the queue through db/reads (stdlib sqlite3 on SQLite: a fast start)."""
    from .db.reads import open_reader
    return open_reader(cfg.database.url, cfg.database.busy_timeout_ms)


def cmd_status(args, cfg: Config) -> int:
    from .jobs import JobState
    from .status import read_status
    with _reader(cfg) as run:
        status = read_status(run)
        tracker = _tracker_status(run) if cfg.tracker is not None else None
    data = status.to_dict() | {"tracker": tracker}
    if args.json:
        _print_json(data)
        return 0
    nodes, running, failed, notices, counts = data["nodes"], status.running, status.failed, status.notices, status.counts
    if not nodes:
        print("daemon: never started against this database")
    for n in nodes:
        state = "alive" if n["alive"] else "DOWN (its jobs were requeued)" if n["state"] == "down" else "NOT RUNNING"
        print(f"daemon {n['node']}: {state} (pid {n['pid']}, heartbeat {_ago(n['heartbeat'])}, watch {n['watch_mode']}, "
              f"slots {n['running']}/{len(n['slots'])} in use)")
    print(f"queue: {data['queue_depth']} queued, {len(running)} running, " +
          ", ".join(f"{v} {k}" for k, v in sorted(counts.items()) if k not in (JobState.QUEUED.value, JobState.RUNNING.value)))
    if data["slots"]:
        print("slots: " + "  ".join(f"{s['slot']}={'busy' if s['busy'] else 'free'}" for s in data["slots"]))
    for r in data["running"]:
        print(f"  job {r['job']} {r['shot']}: {r['stage'] or 'starting'} {r['progress'] * 100:.0f}% on {r['node']}/{r['slot']}")
    for w in data["waiting"]:
        print(f"  job {w['job']} {w['shot']}: {w['reason']}")
    if failed:
        print("last errors:")
        for j in failed:
            print(f"  job {j.id} {j.shot}: {j.error}")
    if tracker is not None:
        print(f"tracker {cfg.tracker.kind}: {tracker['done']} delivered, {tracker['pending']} pending"
              + (f" ({tracker['retrying']} retrying)" if tracker["retrying"] else "")
              + f", {tracker['failed']} failed" + (f"; last error: {tracker['last_error']}"
                                                    if tracker["last_error"] else ""))
        shown = sorted(tracker["statuses"].items(), key=lambda kv: kv[1]["at"] or "", reverse=True)
        for shot, st in shown[:STATUS_SHOTS]:  # the shots whose status changed last
            print(f"  {shot} v{st['version']:03d}: {st['name']} ({st['status']})"
                  + (", approved" if st["approved"] else "") + (f" at {st['at']}" if st["at"] else ""))
        if len(shown) > STATUS_SHOTS:
            print(f"  ... and {len(shown) - STATUS_SHOTS} more shots (quickart status --json: tracker.statuses)")
    if notices:
        print("left alone in watched folders:")
        for n in notices:
            print(f"  {n.message}")
    return 0


#: how many shots' tracker statuses `quickart status` lists (the newest; --json has them all)
STATUS_SHOTS = 10


def _tracker_status(run) -> dict | None:
    """The tracker outbox's counts and, under "statuses", each shot's status read back from the tracker
    (None on a database from before the outbox, not yet upgraded)."""
    from .outbox import status
    from .tracker_status import latest_by_shot
    try:
        counts = status(run)
    except Exception:  # noqa: BLE001 (no deliveries table: `quickart db upgrade` or the daemon makes it)
        return None
    try:
        return counts | {"statuses": latest_by_shot(run)}
    except Exception:  # noqa: BLE001 (no tracker_statuses table yet: the same)
        return counts | {"statuses": {}}


def cmd_nodes(args, cfg: Config) -> int:
    from .status import read_nodes
    with _reader(cfg) as run:
        nodes = read_nodes(run)
    if args.json:
        _print_json([n.to_dict() for n in nodes])
        return 0
    print(_table([[n.name, n.shown_state, f"{n.info.running}/{len(n.info.slots)}", n.info.gpus,
                   ",".join(n.info.groups) or "-", _ago(n.info.heartbeat_at), n.info.version or "-", n.info.pid]
                  for n in nodes],
                 ["NODE", "STATE", "SLOTS USED", "GPUS", "GROUPS", "HEARTBEAT", "VERSION", "PID"]) if nodes
          else "no node has run a daemon against this database")
    return 0


def cmd_jobs(args, cfg: Config) -> int:
    from .db import reads
    from .jobs import JobState
    try:
        states = [JobState(s) for s in args.state.split(",")] if args.state else None
    except ValueError:
        raise QuickArtError(f"--state: one or more of {', '.join(s.value for s in JobState)}") from None
    if not 1 <= args.limit <= reads.MAX_ID:
        raise QuickArtError(f"--limit {args.limit}: give a whole number from 1 to {reads.MAX_ID:,}")
    with _reader(cfg) as run:
        jobs = reads.list_jobs(run, states, args.shot, args.limit)
    if args.json:
        _print_json([j.to_dict() for j in jobs])
        return 0
    rows = [[j.id, j.state.value, str(j.shot), j.pipeline, j.current_stage or "-", f"{j.progress * 100:.0f}%",
             f"v{j.version:03d}" if j.version else "-", _ago(j.created_at), (j.error or "")[:60]] for j in jobs]
    print(_table(rows, ["JOB", "STATE", "SHOT", "PIPELINE", "STAGE", "DONE", "VERSION", "CREATED", "ERROR"]))
    return 0


def cmd_job(args, cfg: Config) -> int:
    from .db import reads
    from .jobs import FINISHED, why_waiting
    from .status import live_nodes
    with _reader(cfg) as run:
        job = reads.get_job(run, args.id)
        data = job.to_dict() | {"stages": reads.stage_runs(run, job.id), "outputs": reads.artifacts(run, job.id)}
        data["waiting"] = why_waiting(job, live_nodes(run))
    if job.state in FINISHED:
        from .rerun import retry_points
        data["retry_from"] = retry_points(cfg, job, data["stages"])
    if args.json:
        _print_json(data)
        return 0
    print(f"job {job.id}  {job.state.value}  {job.shot}  pipeline {job.pipeline}  attempt {job.attempts}/{job.max_attempts}")
    print(f"  shot folder: {cfg.root / cfg.naming_rules.format_shot_path(job.shot)}")
    print(f"  node: {job.node or '-'}  slot: {job.slot or '-'}  created {_ago(job.created_at)}")
    for st in data["stages"]:
        line = f"  stage {st['stage']:<18} {st['state']:<6} {st['seconds']:>8.2f}s"
        print(line + (f"  {st['error']}" if st["error"] else ""))
    if job.error:
        print(f"  error: {job.error}")
    if data["waiting"]:
        print(f"  {data['waiting']}")
    for w in job.warnings:
        print(f"  warning: {w}")
    for kind, path in data["outputs"].items():
        print(f"  {kind}: {path}")
    if data.get("retry_from"):
        print(f"  retry from: {', '.join(data['retry_from'])}  (quickart retry {job.id} --from-stage STAGE)")
    return 0


def cmd_retry(args, cfg: Config) -> int:
    from .queue import open_queue
    from .rerun import retry_job
    job = retry_job(cfg, open_queue(cfg, migrate=False), args.id, args.from_stage)
    start = f" from {args.from_stage}" if args.from_stage else ""
    print(f"job {job.id} queued again{start} ({job.shot})")
    return 0


def cmd_cancel(args, cfg: Config) -> int:
    from .db import reads
    from .queue import open_queue
    from .jobs import JobState, utcnow
    job = open_queue(cfg, migrate=False).cancel(args.id)
    if job.state is not JobState.RUNNING:
        print(f"job {job.id}: {job.state.value}")
        return 0
    with _reader(cfg) as run:
        node = next((n for n in reads.nodes(run) if n.name == job.node), None)
    now = utcnow()
    # the daemon beats every min(5 s, heartbeat_seconds) (daemon.run): three missed beats is a node gone
    # silent, whose worker may well be dead; say what will really happen, not that a worker stops it
    silent = node is None or (now - node.heartbeat_at).total_seconds() > 3 * min(5.0, cfg.queue.heartbeat_seconds)
    if not silent:
        print(f"job {job.id}: cancel requested; its worker on {job.node} stops it at its next check")
    else:
        heard = f"was last heard from {_ago(node.heartbeat_at)}" if node is not None else "is not known here"
        left = max(0, round((job.lease_expires_at - now).total_seconds())) if job.lease_expires_at else 0
        print(f"job {job.id}: its node {job.node} {heard}, so its worker may be gone and not see the request; "
              f"the job will be cancelled (not requeued) when its lease runs out, in about {left} s")
    return 0


def cmd_submit(args, cfg: Config) -> int:
    from .intake import submit_shot
    from .queue import open_queue
    job = submit_shot(cfg, open_queue(cfg), Path(args.shot_dir), "submit", args.priority, force=True)
    print(f"job {job.id} queued for {job.shot} (pipeline {job.pipeline})")
    return 0


def cmd_run(args, cfg: Config) -> int:
    from tqdm import tqdm

    from .intake import submit_shot
    from .logs import setup_logging
    from .process import process_job
    from .queue import open_queue
    setup_logging("WARNING")
    logging.getLogger("quickart_daemon.process").addFilter(_not_the_outcome)  # added once, however many runs
    signal.signal(signal.SIGTERM, _interrupt)  # `kill` stops the job like Ctrl-C: recorded, not left running
    jq = open_queue(cfg)
    job = submit_shot(cfg, jq, Path(args.shot_dir), "run", force=True)
    owner = f"{cfg.node}:{os.getpid()}:foreground"
    job = jq.claim(job.id, owner, cfg.node, "foreground")
    device = args.device
    with tqdm(total=100, desc=str(job.shot), unit="%", file=sys.stderr, bar_format="{desc}: {percentage:3.0f}%|{bar}| {postfix}") as bar:
        def progress(stage, fraction):
            bar.n = round(fraction * 100)
            bar.set_postfix_str(stage)
        # in the foreground a person sees the error at once: a failure is final, not retried later
        job = process_job(cfg, jq, job, owner, device, on_progress=progress, retry=False)
    if cfg.tracker is not None:  # no daemon may be running: try the tracker once now (the daemon retries)
        from .outbox import deliver_now
        deliver_now(cfg, jq)
        job = jq.get(job.id)
    from .summary import report_job
    return report_job(jq, job)


def _not_the_outcome(record: logging.LogRecord) -> bool:
    """`quickart run` prints a failure once, in its summary, not also as the worker's log line."""
    return not record.getMessage().startswith("action=failed")


def _interrupt(signum, frame):
    raise KeyboardInterrupt


def cmd_stage(args, cfg: Config) -> int:
    from tqdm import tqdm

    from . import stages
    from .timing import schedule_from_timing
    from .stages.base import StageContext
    from .folders import frame_files, read_frames, write_frames
    from .shot import check_file_sizes, check_key_limits
    spec = stages.get(args.stage_name)
    in_dir, out_dir = Path(args.in_dir), Path(args.out_dir)
    if out_dir.resolve() == in_dir.resolve() or out_dir.resolve().is_relative_to(in_dir.resolve()):
        raise QuickArtError(f"--out {out_dir} is --in {in_dir} or inside it; a stage never writes among its "
                            "inputs: choose another folder")
    if out_dir.exists() and not out_dir.is_dir():
        raise QuickArtError(f"--out {out_dir} is a file, not a folder")
    # the shot's limits, from names and sizes before anything is decoded (keys 1 and 99999999 were
    # decoded and in-betweened until the kernel killed the command)
    found = {folder: frame_files(folder) for folder in (in_dir, Path(args.ref or in_dir), Path(args.hints or in_dir))}
    keys: dict[str, dict[int, Path]] = {}
    for (stem, frame), path in found[in_dir].items():
        keys.setdefault(stem, {})[frame] = path
    if not keys:
        raise QuickArtError(f"{args.in_dir}: no frames named {{anything}}.{{frame}}.png")
    check_key_limits(keys, cfg.limits)
    check_file_sizes({p: p.stat().st_size for files in found.values() for p in files.values()},
                     cfg.limits.max_file_bytes)
    schedule = schedule_from_timing({k: sorted(v) for k, v in keys.items()}, args.timing,
                                    max_frames=cfg.limits.max_frames_per_shot)
    frames, padding = read_frames(in_dir, cfg.max_image_pixels)
    refs = read_frames(Path(args.ref), cfg.max_image_pixels)[0] if args.ref else {}
    hints = read_frames(Path(args.hints), cfg.max_image_pixels)[0] if args.hints else {}
    params = {o.name: getattr(args, "opt_" + o.name.replace("-", "_")) for o in spec.options}
    with tqdm(total=1, desc=spec.name, file=sys.stderr, disable=None, leave=False) as bar:
        def progress(done, total):
            bar.total, bar.n = total, done
            bar.refresh()
        ctx = StageContext(schedule=schedule, params=params, refs=refs, hints=hints,
                           palette_path=Path(args.palette) if args.palette else None, device=args.device,
                           models_dir=cfg.models_dir, scratch_dir=Path(args.out_dir), progress=progress,
                           log=logging.getLogger(f"quickart.stage.{spec.name}"))
        result = spec.run(frames, ctx)
    write_frames(Path(args.out_dir), result.frames, padding, result.variants)
    for w in result.report.get("warnings", []):
        print(f"warning: {w}", file=sys.stderr)
    print(f"{spec.name}: {len(frames)} in, {len(result.frames)} written to {args.out_dir}")
    return 0


def cmd_doctor(args, cfg: Config) -> int:
    from .queue import open_queue
    from .gpu import detect_gpus, make_slots
    from .pipeline import load_pipeline
    from .watch import choose_observer_kind, mount_fs_type
    from .weights import check, load_manifest
    checks: list[tuple[str, bool, str]] = [("config", True, str(cfg.source))]
    try:
        jq = open_queue(cfg, migrate=False)
        from alembic.runtime.migration import MigrationContext
        with jq.sessions.kw["bind"].connect() as conn:
            rev = MigrationContext.configure(conn).get_current_revision()
        checks.append(("database", rev is not None, f"{cfg.database.url} at revision {rev or 'none: run quickart db upgrade'}"))
    except Exception as exc:
        checks.append(("database", False, f"{cfg.database.url}: {exc}"))
    try:
        pipe = load_pipeline(cfg.pipeline, [cfg.pipelines_dir])
        checks.append(("pipeline", True, f"{pipe.name}: {' -> '.join(s.spec.name for s in pipe.steps)}"
                       + (f" ({'; '.join(pipe.notes)})" if pipe.notes else "")))
    except QuickArtError as exc:
        checks.append(("pipeline", False, str(exc)))
    for entry in load_manifest().values():
        problem = check(entry, cfg.models_dir)
        if problem and entry.optional:
            problem = f"optional, not installed or not verified: {problem}"
            checks.append((f"model {entry.name}", True, problem))
            continue
        checks.append((f"model {entry.name}", problem is None, problem or str(cfg.models_dir / entry.file)))
    gpus = detect_gpus()
    checks.append(("gpu", True, f"{len(gpus)} NVIDIA GPU(s); slots: {', '.join(s.name for s in make_slots(cfg.slots, gpus))}"))
    root_ok = cfg.root.is_dir()
    checks.append(("root", root_ok, f"{cfg.root}" + ("" if root_ok else " does not exist")))
    if root_ok:
        checks.append(("watch", True, f"{choose_observer_kind(cfg.root, cfg.watch.mode)} (mode {cfg.watch.mode}) "
                       f"for {cfg.root} (file system {mount_fs_type(cfg.root) or 'unknown'})"))
    if cfg.tracker is not None:
        checks.append(("tracker", *_check_tracker(cfg)))
    if args.json:
        _print_json([{"check": c, "ok": ok, "detail": d} for c, ok, d in checks])
    else:
        for c, ok, d in checks:
            print(f"{'ok  ' if ok else 'FAIL'} {c:<12} {d}")
    return 0 if all(ok for _, ok, _ in checks) else 1


def _check_tracker(cfg: Config) -> tuple[bool, str]:
    """(ok, one line): the tracker module loads and, when it can check itself, logs in."""
    from .trackers import load_tracker
    try:
        tracker = load_tracker(cfg.tracker)
    except QuickArtError as exc:
        return False, str(exc)
    check = getattr(tracker, "check", None)
    if check is None:
        return True, f"{cfg.tracker.kind} at {cfg.tracker.url} (loaded; this tracker cannot check its login)"
    result = check()
    return result.ok, result.message


def cmd_db(args, cfg: Config) -> int:
    from .db.session import make_engine, upgrade
    upgrade(make_engine(cfg.database.url, cfg.database.busy_timeout_ms))
    print(f"database {cfg.database.url} is at the latest schema")
    return 0


def cmd_models(args, cfg: Config) -> int:
    from .weights import check, install, load_manifest
    if args.action == "install":
        if not args.names:
            raise QuickArtError("name the models to install, e.g. `quickart models install rife-v4`")
        for name in args.names:
            print(f"{name:<16} installed: {install(name, cfg.models_dir)}")
        return 0
    entries = load_manifest()
    if not entries:
        print("no models in the manifest yet")
    for e in entries.values():
        problem = check(e, cfg.models_dir)
        print(f"{e.name:<16} {'ok' if problem is None else problem}")
    return 0


def cmd_web(args, cfg: Config) -> int:
    from .logs import setup_logging
    from .web.server import serve
    setup_logging(cfg.log_level)
    return serve(cfg, args.host, args.port)


def cmd_demo(args, cfg: Config | None) -> int:
    from .demo import run_demo
    return run_demo(Path(args.dir), timeout=args.timeout)


# -- parser ---------------------------------------------------------------------------------

def build_parser(with_stages: bool = True) -> argparse.ArgumentParser:
    """The parser; the stage registry (numpy, opencv) is only loaded for `quickart stage`,
    so status commands start fast."""
    p = argparse.ArgumentParser(prog="quickart", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", help="config file (default: $QUICKART_CONFIG, ./config.yaml, /etc/quickart/config.yaml)")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    sub.add_parser("daemon", help="run the service in the foreground").set_defaults(func=cmd_daemon)
    s = sub.add_parser("status", help="daemons, queue, running jobs, slots, last errors")
    s.add_argument("--json", action="store_true")
    s.set_defaults(func=cmd_status)
    s = sub.add_parser("nodes", help="render nodes: state, slots in use, last heartbeat, version")
    s.add_argument("--json", action="store_true")
    s.set_defaults(func=cmd_nodes)
    s = sub.add_parser("jobs", help="list jobs")
    s.add_argument("--state", help="comma-separated states: queued,running,done,failed,cancelled,superseded")
    s.add_argument("--shot", help="shot name or show/seq/shot")
    s.add_argument("--limit", type=int, default=50)
    s.add_argument("--json", action="store_true")
    s.set_defaults(func=cmd_jobs)
    s = sub.add_parser("job", help="one job: stages, timings, error, outputs")
    s.add_argument("id", type=int)
    s.add_argument("--json", action="store_true")
    s.set_defaults(func=cmd_job)
    s = sub.add_parser("retry", help="run a finished job again (a new version), from the start or a chosen stage")
    s.add_argument("id", type=int)
    s.add_argument("--from-stage", metavar="STAGE", default=None,
                   help="rerun this stage and the ones after it, reusing the job's inputs and earlier stages "
                        "(a stage name of its pipeline, or a step number); `quickart job ID` lists where it can start")
    s.set_defaults(func=cmd_retry)
    s = sub.add_parser("cancel", help="cancel a queued or running job")
    s.add_argument("id", type=int)
    s.set_defaults(func=cmd_cancel)
    s = sub.add_parser("submit", help="queue a shot by hand")
    s.add_argument("shot_dir")
    s.add_argument("--priority", type=int, default=0)
    s.set_defaults(func=cmd_submit)
    s = sub.add_parser("run", help="process one shot here in the foreground (no daemon)")
    s.add_argument("shot_dir")
    s.add_argument("--device", default="cpu", help="cpu or cuda:N")
    s.set_defaults(func=cmd_run)
    s = sub.add_parser("doctor", help="check config, database, models, GPU, watch mode")
    s.add_argument("--json", action="store_true")
    s.set_defaults(func=cmd_doctor)
    s = sub.add_parser("web", help="serve the studio web page (web: in config.yaml)")
    s.add_argument("--host", help="address to bind (default web.host: 127.0.0.1)")
    s.add_argument("--port", type=int, help="port (default web.port)")
    s.set_defaults(func=cmd_web)
    s = sub.add_parser("demo", help="make a demo studio, run the daemon on it and show the results")
    s.add_argument("--dir", default="demo-studio")
    s.add_argument("--timeout", type=float, default=600)
    s.set_defaults(func=cmd_demo, no_config=True)
    s = sub.add_parser("db", help="database maintenance")
    s.add_argument("action", choices=["upgrade"])
    s.set_defaults(func=cmd_db)
    s = sub.add_parser("models", help="model files and their checksums")
    s.add_argument("action", choices=["list", "install"])
    s.add_argument("names", nargs="*", help="models to install (install): e.g. rife-v4")
    s.set_defaults(func=cmd_models)

    st = sub.add_parser("stage", help="run one stage on plain folders of {anything}.{frame}.png")
    st_sub = st.add_subparsers(dest="stage_name", required=True, metavar="NAME")
    if not with_stages:
        return p
    from . import stages
    for name, spec in sorted(stages.available().items()):
        s = st_sub.add_parser(name, help=spec.description)
        s.add_argument("--in", dest="in_dir", required=True, help="input folder")
        s.add_argument("--out", dest="out_dir", required=True, help="output folder")
        s.add_argument("--ref", help="folder of colour references")
        s.add_argument("--hints", help="folder of colour hints")
        s.add_argument("--palette", help="palette.yaml")
        s.add_argument("--timing", type=int, default=1, help="1 = on ones, 2 = on twos ... (default 1)")
        s.add_argument("--device", default="cpu", help="cpu or cuda:N")
        for o in spec.options:
            s.add_argument(f"--{o.name}", dest="opt_" + o.name.replace("-", "_"), type=o.type, default=o.default, help=o.help)
        s.set_defaults(func=cmd_stage, optional_config=True)
    return p


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    parser = build_parser(with_stages="stage" in argv or "-h" in argv or "--help" in argv)
    args = parser.parse_args(argv)
    cfg = None
    try:
        if getattr(args, "no_config", False):
            cfg = None
        elif getattr(args, "optional_config", False):
            from .config import find_config
            cfg = load_config(args.config) if (args.config or find_config()) else Config()
        else:
            cfg = load_config(args.config)
        return args.func(args, cfg)
    except QuickArtError as exc:
        print(f"quickart: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # `quickart status | head`: the reader has what it wanted
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # so the exit's flush is quiet too
        return 141  # 128 + SIGPIPE, as a shell tool killed by it
    except OSError as exc:  # a folder that cannot be made or read (state_dir under a file, in /proc, ...)
        where = f"{exc.filename}: " if exc.filename else ""
        print(f"quickart: {where}{exc.strerror or exc}", file=sys.stderr)
        return 1
    except Exception as exc:
        import sqlite3
        # DatabaseError, not only OperationalError: a file that is not SQLite ("file is not a database")
        if isinstance(exc, sqlite3.DatabaseError):  # the status commands' stdlib reader
            why = str(exc)
        else:
            from sqlalchemy.exc import DatabaseError
            if not isinstance(exc, DatabaseError):
                raise
            why = str(exc.orig) if exc.orig is not None else str(exc).splitlines()[0]
        db = cfg.database if cfg is not None else None
        hint = (f"; another process held it longer than database.busy_timeout_ms ({db.busy_timeout_ms} ms), try again"
                if db is not None and "locked" in why else
                "; database.url names a file that is not QuickArt's SQLite database" if "not a database" in why else "")
        print(f"quickart: database {db.url if db else '?'}: {why}{hint}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
