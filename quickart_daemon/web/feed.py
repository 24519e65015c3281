"""The farm view's live feed: one poller per web process, any number of pages listening.

A thread reads the jobs that may have changed (`db.reads.live_jobs`: queued, running, just
finished, new), the state counts and the nodes every `interval` seconds, compares them with
what it saw last, and numbers each difference as an event. Each page's server-sent-event
stream sends the events it has not seen yet. The database is read by one thread however
many pages are open, and a change reaches a page within interval + its own wait (< 1 s).
"""

from __future__ import annotations

import logging
import threading
import uuid
from collections import deque
from datetime import timedelta

from ..config import Config
from ..db import reads
from ..jobs import Job, utcnow
from ..status import page_nodes

log = logging.getLogger("quickart.web")

#: a finished job stays in the compared set this long (it must be seen finishing at least once)
FINISHED_WINDOW = timedelta(minutes=2)
KEEP_EVENTS = 256


def job_view(job: Job, shot_rel: str) -> dict:
    """A job as the page shows it (also the initial table's rows)."""
    d = job.to_dict()
    return {k: d[k] for k in ("id", "shot", "state", "priority", "pipeline", "attempts", "max_attempts", "node",
                              "slot", "current_stage", "progress", "error", "version", "created_at",
                              "started_at", "finished_at", "cancel_requested")} | {"shot_rel": shot_rel}


def nodes_view(run, running: list[Job]) -> list[dict]:
    """The page's nodes and their slots, alive as `status.py` decides it (the same as `quickart status`)."""
    return page_nodes(run, running)


class Feed:
    def __init__(self, cfg: Config, shot_rel, interval: float = 0.25):
        self.cfg = cfg
        self.shot_rel = shot_rel
        self.interval = interval
        self.seq = 0
        # numbers of one feed mean nothing to another: a page rendered before the web server
        # restarted names this epoch, learns it is gone and reloads instead of staying stale
        self.epoch = uuid.uuid4().hex[:12]
        self.events: deque[tuple[int, dict]] = deque(maxlen=KEEP_EVENTS)
        self._seen: dict[int, dict] = {}
        self._counts: dict | None = None
        self._nodes: list | None = None
        self._max_id = 0
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        with self._lock:
            if self._thread is None:
                self._thread = threading.Thread(target=self._loop, name="quickart-web-feed", daemon=True)
                self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)

    @property
    def stopped(self) -> bool:
        return self._stop.is_set()

    def since(self, seq: int, epoch: str | None = None) -> tuple[int, list[dict]]:
        """(latest sequence number, the events after `seq`); a page too far behind, or rendered by
        another feed (before a restart of the web server), gets a reload."""
        with self._lock:
            latest = self.seq
            events = [e for s, e in self.events if s > seq]
            if (epoch is not None and epoch != self.epoch) or seq > latest or \
                    (seq and self.events and self.events[0][0] > seq + 1):
                events = [{"type": "reload"}]
        return latest, events

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                self.poll()
            except Exception as exc:  # the database is busy or gone for a moment: the page waits
                log.warning("action=web_feed error=%s", str(exc).splitlines()[0] if str(exc) else type(exc).__name__)
            self._stop.wait(self.interval)

    def poll(self) -> None:
        """Read once and number what changed since the last read."""
        with reads.open_reader(self.cfg.database.url, self.cfg.database.busy_timeout_ms) as run:
            jobs = reads.live_jobs(run, utcnow() - FINISHED_WINDOW, self._max_id)
            counts = reads.count_states(run)
            running = [j for j in jobs if j.state.value == "running"]
            nodes = nodes_view(run, running)
        changed = []
        for job in jobs:
            view = job_view(job, self.shot_rel(job.shot))
            if self._seen.get(job.id) != view:
                changed.append(view)
            self._seen[job.id] = view
            self._max_id = max(self._max_id, job.id)
        horizon = {j.id for j in jobs}
        self._seen = {k: v for k, v in self._seen.items() if k in horizon}
        event = {}
        if changed:
            event["jobs"] = changed
        if counts != self._counts:
            event["counts"] = self._counts = counts
        nodes_key = [{**n, "heartbeat": None} for n in nodes]
        if nodes_key != self._nodes:
            self._nodes = nodes_key
            event["nodes"] = nodes
        if event:  # applying an update twice changes nothing, so a page may get one it already shows
            with self._lock:
                self.seq += 1
                self.events.append((self.seq, {"type": "update", **event}))
