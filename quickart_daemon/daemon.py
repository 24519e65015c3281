"""The service: watch -> queue -> worker processes, with systemd readiness and watchdog.

One loop in the main thread: requeue expired leases, reap finished workers, start a
worker process for each free slot that can claim a job, ping systemd. Stage code never
runs in this process, so a crash or out-of-memory kill in a job cannot take the
daemon down. SIGTERM: stop claiming, ask workers to checkpoint their running stage
and hand their jobs back, wait, exit.
"""

from __future__ import annotations

import logging
import multiprocessing as mp
import os
import signal
import socket
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from . import __version__, outputs
from .config import Config
from .db.wakeup import Wakeup
from .drops import OUTPUT_DIR
from .errors import JobNotFound, QuickArtError
from .gpu import Slot, make_slots
from .intake import submit_shot
from .nodes import NodeRegistry
from .notices import NoticeBoard
from .queue import FINISHED, JobState, open_queue
from .watch import DropWatcher, choose_observer_kind

log = logging.getLogger("quickart.daemon")


def sd_notify(message: str) -> bool:
    """Send a message to systemd (Type=notify). Hand-written: it is one datagram, and the
    systemd Python bindings need libsystemd headers to build on every node."""
    address = os.environ.get("NOTIFY_SOCKET")
    if not address:
        return False
    if address.startswith("@"):
        address = "\0" + address[1:]
    try:
        # non-blocking: a listener that stopped reading must never stall the daemon's loop
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC | socket.SOCK_NONBLOCK) as sock:
            sock.connect(address)
            sock.send(message.encode())
        return True
    except BlockingIOError:
        return False
    except OSError as exc:
        log.warning("action=sd_notify error=%s", exc)
        return False


@dataclass
class _Running:
    job_id: int
    owner: str
    slot: Slot
    process: mp.Process


class Daemon:
    def __init__(self, cfg: Config, slots: list[Slot] | None = None):
        self.cfg = cfg
        self.node = cfg.node
        # the tracker is loaded before anything starts: one not installed stops the daemon with its sentence
        self.tracker = None
        if cfg.tracker is not None:
            from .trackers import load_tracker
            self.tracker = load_tracker(cfg.tracker)
        self.jq = open_queue(cfg)
        # the other managers over the queue's database (db/connector.py): this node's row, the notices
        self.node_registry = NodeRegistry(self.jq.db, self.jq)
        self.notice_board = NoticeBoard(self.jq.db)
        self.wakeup = Wakeup(cfg.database.url)  # new work wakes the loop at once on PostgreSQL
        self.slots = slots if slots is not None else make_slots(cfg.slots)
        self.running: dict[str, _Running] = {}  # by slot name
        self.stopping = threading.Event()
        self.store_lost = False  # the database file vanished or was replaced: touch it no more
        self.web = None  # the studio web page, when this daemon serves it (web.serve)
        self.outbox = None  # the tracker's delivery loop, when a tracker is configured (outbox.py)
        self.database_down = False  # the database server is unreachable (logged once; the loop retries)
        self.ctx = mp.get_context("spawn")
        self.watch_mode = choose_observer_kind(cfg.root, cfg.watch.mode)
        self.watcher = DropWatcher(
            cfg.root, cfg.naming_rules, mode=self.watch_mode, settle_seconds=cfg.drop.settle_seconds,
            require_marker=cfg.drop.require_marker, rescan_seconds=cfg.watch.rescan_seconds,
            poll_interval=cfg.watch.poll_interval, on_drop=self._on_drop, on_problem=self._on_problem)

    # -- watcher callbacks (watcher thread) ---------------------------------------------
    def _on_drop(self, shot_dir: Path) -> None:
        try:
            submit_shot(self.cfg, self.jq, shot_dir, "watch")
        except QuickArtError as exc:
            self._on_problem(shot_dir, str(exc))

    def _on_problem(self, path: Path, message: str) -> None:
        log.warning("action=notice path=%s message=%s", path, message)
        self.notice_board.record(str(path), message, self.node)

    # -- the loop ------------------------------------------------------------------------
    def run(self) -> int:
        try:
            self._refuse_a_second_daemon()
        except QuickArtError:
            self.wakeup.close()
            raise
        self.cfg.root.mkdir(parents=True, exist_ok=True)
        signal.signal(signal.SIGTERM, lambda *_: self.stopping.set())
        signal.signal(signal.SIGINT, lambda *_: self.stopping.set())
        recovered = self.jq.requeue_stale(node=self.node)
        if recovered:
            log.info("action=recover node=%s requeued=%s", self.node, recovered)
        self._tidy_staging()
        self._heartbeat(starting=True)
        self.watcher.start()
        self.watch_mode = self.watcher.observer_kind or self.watch_mode  # native may have fallen back to polling
        self._heartbeat()
        self.watcher.scan_all()
        if self.cfg.web.serve:
            from .web.server import WebThread  # loaded only when asked for
            self.web = WebThread(self.cfg).start()
        if self.tracker is not None:
            from .outbox import put_missing, start_delivery_thread
            put_missing(self.cfg, self.jq)  # versions a killed worker published but never put in the outbox
            self.outbox = start_delivery_thread(self.cfg, self.jq.sessions, self.tracker)
        log.info("action=ready node=%s root=%s watch=%s slots=%s", self.node, self.cfg.root, self.watch_mode,
                 ",".join(s.name for s in self.slots))
        sd_notify("READY=1\nSTATUS=watching " + str(self.cfg.root))
        last_beat, beat_every = 0.0, min(5.0, self.cfg.queue.heartbeat_seconds)
        store = _store_identity(self.cfg.database.url)
        try:
            while not self.stopping.is_set():
                if store is not None and _store_identity(self.cfg.database.url) != store:
                    log.error("action=database_lost url=%s the database file was deleted or replaced under the "
                              "running daemon; stopping without claiming more work (systemd restarts it)",
                              self.cfg.database.url)
                    self.store_lost = True
                    return 1
                now = time.monotonic()
                beat = now - last_beat >= beat_every
                self._database_pass(beat)
                if beat:
                    sd_notify(f"WATCHDOG=1\nSTATUS={len(self.running)} running")  # the loop lives, even in an outage
                    last_beat = now
                # new work wakes the wait at once on PostgreSQL; the node heartbeat must not wait for the poll
                self.wakeup.wait(min(self.cfg.queue.poll_interval, beat_every), self.stopping)
        finally:
            self.shutdown()
        return 0

    def _database_pass(self, beat: bool) -> None:
        """tick() and the node heartbeat. A database server that is unreachable (restarting, a network cut)
        is logged once and retried at the next pass; running workers keep their stages meanwhile (their
        heartbeats retry too) and no new work is claimed."""
        from sqlalchemy.exc import DBAPIError, OperationalError
        try:
            self.tick()
            if beat:
                self._heartbeat()
        except DBAPIError as exc:
            if not (isinstance(exc, OperationalError) or exc.connection_invalidated):
                raise
            if not self.database_down:
                log.error("action=database_unavailable url=%s error=%s (retrying; running jobs continue)",
                          self.cfg.database.url, str(exc.orig or exc).strip().splitlines()[0])
            self.database_down = True
            return
        if self.database_down:
            log.info("action=database_back url=%s", self.cfg.database.url)
            self.database_down = False

    def _refuse_a_second_daemon(self) -> None:
        """Another daemon of this node name that still heartbeats would have its running jobs taken over
        (requeue_stale(node=...)) and both would run, one unseen: refuse to start. A fresh heartbeat
        alone may be a daemon just killed (systemd restarting it), so wait for a second beat."""
        beat_every = min(5.0, self.cfg.queue.heartbeat_seconds)
        first = self.node_registry.beat(self.node, within=3 * beat_every)
        if first is None:
            return
        time.sleep(2 * beat_every + 0.5)
        again = self.node_registry.beat(self.node, within=3 * beat_every)
        if again is not None and again != first:
            raise QuickArtError(f"a daemon for node {self.node} is already running (pid {again[0]}, heartbeating "
                                "on this database); stop it first, or give this one another node_name")

    def _tidy_staging(self) -> None:
        """At start: remove the staging folders no job will come back to (a job no longer in the database,
        or one that finished without retiring its staging, say when its worker was killed at the end).
        Queued and running jobs keep theirs: they resume from them."""
        for shot in self.watcher.find_shots():
            for job_id, staging in outputs.staging_folders(shot / OUTPUT_DIR).items():
                try:
                    job = self.jq.get(job_id)
                except JobNotFound:
                    job = None
                if job is not None and job.state not in FINISHED:
                    continue
                if job is None:
                    outputs.remove_staging(staging)
                else:  # its work may still serve a retry from a stage
                    outputs.retire_staging(staging, self.cfg.retry.keep_stage_outputs_of)
                log.info("action=tidy removed=%s reason=%s", staging,
                         f"job {job_id} is {job.state.value}" if job else f"job {job_id} is not in the database")

    def _heartbeat(self, starting: bool = False, stopping: bool = False) -> None:
        gpus = len({s.env.get("CUDA_VISIBLE_DEVICES") for s in self.slots if s.device.startswith("cuda")})
        self.node_registry.heartbeat(self.node, os.getpid(), [s.name for s in self.slots], self.watch_mode,
                                     starting=starting, stopping=stopping, gpus=gpus, version=__version__,
                                     groups=self.cfg.node_groups)

    def tick(self) -> None:
        """One pass: requeue expired leases and the jobs of nodes gone silent, reap workers, fill free slots."""
        # a dead node first: its silence is noticed about when its jobs' leases run out, and its name is the
        # better reason to record
        down = self.node_registry.requeue_down_nodes(self.cfg.queue.lease_seconds, me=self.node)
        for node, job_ids in down.items():
            log.warning("action=node_down node=%s requeued=%s", node, job_ids)
        for job_id in self.jq.requeue_stale(me=self.node):
            log.warning("action=requeue_stale job=%s", job_id)
        self._reap()
        for slot in self.slots:
            if slot.name in self.running or self.stopping.is_set():
                continue
            owner = f"{self.node}:{os.getpid()}:{slot.name}"
            job = self.jq.claim_next(owner, self.node, slot.name, gpu=slot.device.startswith("cuda"),
                                     groups=self.cfg.node_groups)
            if job is None:
                continue  # another slot may take what this one may not (a GPU job, say)
            proc = self.ctx.Process(target=_child, name=f"quickart-job-{job.id}",
                                    args=(job.id, owner, str(self.cfg.source), slot.env, slot.device))
            proc.start()
            self.running[slot.name] = _Running(job.id, owner, slot, proc)
            log.info("action=claimed job=%s shot=%s slot=%s pid=%s attempt=%s", job.id, job.shot, slot.name,
                     proc.pid, job.attempts)

    def _reap(self) -> None:
        for name, run in list(self.running.items()):
            if run.process.is_alive():
                continue
            run.process.join()
            del self.running[name]
            code = run.process.exitcode
            job = self.jq.get(run.job_id)
            if job.state is JobState.RUNNING and job.lease_owner == run.owner:
                # the worker died without recording an outcome: a crash, or the kernel's OOM killer
                why = f"signal {-code}" + (" (killed: out of memory?)" if code == -signal.SIGKILL else "") \
                    if code and code < 0 else f"exit status {code}"
                failed = self.jq.fail(run.job_id, run.owner, f"worker process died ({why}) in stage "
                                      f"{job.current_stage or '?'}", retryable=True)
                log.error("action=worker_died job=%s shot=%s %s state=%s", run.job_id, job.shot, why,
                          failed.state.value)

    def shutdown(self) -> None:
        log.info("action=stopping node=%s running=%d", self.node, len(self.running))
        sd_notify("STOPPING=1")
        if self.web is not None:
            self.web.stop()
        if self.outbox is not None:
            self.outbox.stop()
        self.wakeup.close()
        self.watcher.stop()
        # SIGTERM: finish or checkpoint the stage, then release; with the database gone nothing could be
        # recorded, so the workers stop at once
        stop_signal = signal.SIGKILL if self.store_lost else signal.SIGTERM
        for run in self.running.values():
            if run.process.is_alive():
                os.kill(run.process.pid, stop_signal)
        deadline = time.monotonic() + 600
        for run in self.running.values():
            while run.process.is_alive() and time.monotonic() < deadline:
                run.process.join(1.0)
                sd_notify("EXTEND_TIMEOUT_USEC=5000000")
        if self.store_lost:
            log.info("action=stopped node=%s (database lost: nothing recorded)", self.node)
            return
        self._reap()
        self._heartbeat(stopping=True)
        log.info("action=stopped node=%s", self.node)


def _store_identity(url: str) -> tuple[int, int] | None:
    """(device, inode) of a SQLite database file, to notice it being deleted or replaced; None for
    other databases (a server reports its own faults) and for a file that is not there."""
    if not url.startswith("sqlite:///") or ":memory:" in url:
        return None
    try:
        st = os.stat(url[len("sqlite:///"):])
    except OSError:
        return (-1, -1)
    return st.st_dev, st.st_ino


def _child(job_id: int, owner: str, config_path: str, env: dict[str, str], device: str) -> None:
    from .process import run_in_child  # imported in the child only: the daemon never loads stage code

    run_in_child(job_id, owner, config_path, env, device)
