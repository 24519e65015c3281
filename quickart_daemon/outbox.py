"""The tracker outbox: every published version reaches the production tracker once, whatever the tracker's
health when the version was made.

    job published ──put (after the outcome is recorded)──▶ deliveries row (pending)
    daemon's delivery loop ──claim due rows──▶ tracker.deliver(event)
        ok ──▶ done                    (a warning on the job if it had to wait: "delivered after N tries")
        not ok, may pass ──▶ pending, next try after retry_seconds * 2^(tries-1) (at most max_retry_seconds);
                              the first failure puts a warning on the job ("tracker kitsu: ...; will retry")
        not ok, for good ──▶ failed, with its sentence on the job

The job is never failed by the tracker: the worker only puts the row (`put_for_job`, one call after
`process_job` has recorded the job's outcome) and the daemon delivers it (`DeliveryThread`; `quickart run`
tries once before it returns). The row's key (shot, version, event, tracker) is unique, so putting an
event twice (a resumed job that finishes an interrupted publish) delivers it once; a claim is a lease,
so two daemons on one database never deliver the same row at once, and a daemon killed mid-delivery
leaves the row to be claimed again when its lease expires (the tracker module finds its own marker and
does not post twice). `quickart status` shows pending and failed deliveries and the last error.

Paths in a stored event (the contact sheet, the movie, the version folder) are relative to the studio
root: the node that delivers may mount the studio elsewhere than the node that published, so each
delivery resolves them under its own root (`local_paths`; rows written before held absolute paths, which
are still read). The same loop reads the versions' statuses back from the tracker every
`tracker.read_seconds` (tracker_status.py).
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from datetime import timedelta
from pathlib import Path

from sqlalchemy import or_, select, update
from sqlalchemy.exc import IntegrityError

from .db.connector import clock
from .db.models import Delivery, JobRow
from .naming import ShotId

log = logging.getLogger("quickart.outbox")

#: how long a claimed delivery is held before another delivery loop may take it (a loop that died)
CLAIM_SECONDS = 300.0
#: how far back a starting daemon looks for published versions with no delivery (a worker killed
#: between recording its job done and putting the event): a farm restarts its daemons within a day,
#: and a tracker configured today must not receive every version of the studio's past
CATCH_UP = timedelta(hours=24)


# -- putting events ------------------------------------------------------------------------------

def put(sessions, shot_id: int, version: int, event: str, tracker: str, payload: dict,
        job_id: int | None = None) -> bool:
    """Put one event in the outbox; False when that (shot, version, event, tracker) is already there."""
    try:
        with sessions.begin() as s:
            now = clock(s)
            s.add(Delivery(shot_id=shot_id, version=version, event=event, tracker=tracker, job_id=job_id,
                           state="pending", payload=payload, attempts=0, next_attempt_at=now, created_at=now))
        return True
    except IntegrityError:
        return False


def put_for_job(cfg, jq, job) -> bool:
    """The hook after a job's outcome is recorded: a published version (and, with `tracker.on_failure`, a
    job failed for good) goes in the outbox. Never raises: the tracker must not fail a job."""
    from .jobs import JobState
    if cfg.tracker is None:
        return False
    try:
        if job.state is JobState.DONE and job.version:
            event, version, payload = "published", job.version, _published(cfg, jq, job)
        elif job.state is JobState.FAILED and cfg.tracker.on_failure:
            event, version, payload = f"failed:job{job.id}", 0, _failed(cfg, job)
        else:
            return False
        added = put(jq.sessions, job.shot_id, version, event, cfg.tracker.kind, payload, job.id)
        if added:
            log.info("action=tracker_queued job=%s shot=%s event=%s version=%s tracker=%s", job.id, job.shot,
                     payload["event"], version, cfg.tracker.kind)
        return added
    except Exception as exc:  # noqa: BLE001 (a broken outbox is logged, never the job's failure)
        log.warning("action=tracker_queue_failed job=%s error=%s: %s", job.id, type(exc).__name__, exc)
        return False


def put_missing(cfg, jq) -> int:
    """Put the versions published in the last CATCH_UP that have no delivery yet (a worker killed
    between recording its job done and `put_for_job`); the unique key keeps this idempotent.
    Returns how many were put. Run by a starting daemon."""
    if cfg.tracker is None:
        return 0
    with jq.sessions() as s:
        since = clock(s) - CATCH_UP
        delivered = select(Delivery.id).where(Delivery.shot_id == JobRow.shot_id, Delivery.version == JobRow.version,
                                               Delivery.event == "published", Delivery.tracker == cfg.tracker.kind)
        ids = list(s.scalars(select(JobRow.id).where(JobRow.state == "done", JobRow.version.is_not(None),
                                                      JobRow.finished_at >= since, ~delivered.exists())))
    put_now = sum(put_for_job(cfg, jq, jq.get(job_id)) for job_id in ids)
    if put_now:
        log.info("action=tracker_caught_up versions=%d", put_now)
    return put_now


def _published(cfg, jq, job) -> dict:
    from .movie import MOVIE_NAME
    from .shot import OUTPUT_DIR, shot_folder
    # the version folder on this node, from the shot's name (job.output_path is the publishing node's path)
    folder = shot_folder(cfg, job.shot) / OUTPUT_DIR / f"v{job.version:03d}"
    rel = folder.relative_to(cfg.root)  # shot_folder is the shot's name under the root
    manifest = {}
    if (folder / "manifest.json").is_file():
        manifest = json.loads((folder / "manifest.json").read_text())
    timing = manifest.get("timing") or {}
    first, last = timing.get("frame_range") or (0, 0)
    return {
        "event": "published", "show": job.shot.show, "seq": job.shot.seq, "shot": job.shot.shot,
        "frame_in": int(first), "frame_out": int(last), "fps": float(timing.get("fps") or cfg.timing.fps),
        "version": int(job.version), "job_id": job.id, "pipeline": job.pipeline,
        "summary": _summary(job, manifest),
        # relative to the studio root: resolved under the root of the node that delivers (local_paths)
        "contact_sheet": (rel / "contact.png").as_posix() if (folder / "contact.png").is_file() else None,
        "movie": (rel / MOVIE_NAME).as_posix() if (folder / MOVIE_NAME).is_file() else None,
        "version_path": rel.as_posix(), "status": cfg.tracker.status, "error": None,
        "marker": f"quickart:{job.shot}:v{job.version:03d}:published",
    }


#: the keys of an event that name files under the studio root
PATH_KEYS = ("contact_sheet", "movie", "version_path")


def local_paths(cfg, payload: dict) -> dict:
    """The event with its paths on this node: a relative path (as stored since the paths moved under the
    root) is taken under this node's studio root. An absolute one (a row stored before) is used where it
    exists; where it does not (it is another node's mount), the part from the shot's folder on is taken
    under this node's root, and when the shot's folder is not in it, it is left as it was."""
    event = dict(payload)
    try:
        shot_rel = cfg.naming_rules.format_shot_path(ShotId(event["show"], event["seq"], event["shot"]))
    except (KeyError, ValueError):
        shot_rel = None
    for key in PATH_KEYS:
        value = event.get(key)
        if not value:
            continue
        path = Path(value)
        if not path.is_absolute():
            event[key] = str(cfg.root / path)
        elif not path.exists() and shot_rel:
            parts, shot_parts = path.parts, Path(shot_rel).parts
            for i in range(len(parts) - len(shot_parts), 0, -1):  # the last occurrence: the deepest match
                if parts[i:i + len(shot_parts)] == shot_parts:
                    event[key] = str(cfg.root.joinpath(*parts[i:]))
                    break
    return event


def _failed(cfg, job) -> dict:
    return {
        "event": "failed", "show": job.shot.show, "seq": job.shot.seq, "shot": job.shot.shot, "frame_in": 0,
        "frame_out": 0, "fps": float(cfg.timing.fps), "version": 0, "job_id": job.id, "pipeline": job.pipeline,
        "summary": "", "contact_sheet": None, "movie": None, "version_path": None, "status": None,
        "error": job.error, "marker": f"quickart:{job.shot}:job{job.id}.{job.generation}:failed",
    }


def review_payload(cfg, shot, version: int, review: dict, job_id: int | None, pipeline: str | None) -> dict:
    """The event of a review of a version (reviews.py): the published event's keys, plus `review` (its id,
    state, text, author and time); `status` is what the verdict sets on the tracker (approved:
    `tracker.approved_status`, needs_work: `tracker.retake_status`, a note: None, the status unchanged)."""
    status = {"approved": cfg.tracker.approved_status, "needs_work": cfg.tracker.retake_status}.get(review["state"])
    return {
        "event": "review", "show": shot.show, "seq": shot.seq, "shot": shot.shot, "frame_in": 0, "frame_out": 0,
        "fps": float(cfg.timing.fps), "version": int(version), "job_id": job_id, "pipeline": pipeline or "",
        "summary": "", "contact_sheet": None, "movie": None, "version_path": None, "status": status, "error": None,
        "review": {k: review[k] for k in ("id", "state", "text", "author", "at")},
        "marker": f"quickart:{shot}:v{int(version):03d}:review{review['id']}",
    }


def _summary(job, manifest: dict) -> str:
    """One paragraph of what the job did: stages with seconds, total, node, warnings."""
    stages = ", ".join(f"{s.get('stage')} {s.get('seconds', 0):.1f} s" for s in manifest.get("stages") or [])
    parts = [f"Stages: {stages}." if stages else "Keys held on their timing (no stage)."]
    if manifest.get("seconds_total") is not None:
        parts.append(f"{manifest['seconds_total']:.1f} s on {manifest.get('node') or job.node}"
                     f" ({manifest.get('device', '?')}).")
    if job.warnings:
        parts.append("Warnings: " + "; ".join(job.warnings[:5]) + (" ..." if len(job.warnings) > 5 else ""))
    return " ".join(parts)


# -- delivering ------------------------------------------------------------------------------------

class Outbox:
    """Claims due deliveries of one tracker and hands them to it (see the module's docstring)."""

    def __init__(self, cfg, sessions, tracker=None, owner: str | None = None):
        from .trackers import load_tracker
        self.cfg, self.sessions = cfg, sessions
        self.tracker = tracker if tracker is not None else load_tracker(cfg.tracker)
        self.owner = owner or f"{cfg.node}:{os.getpid()}:outbox"

    def claim_due(self, limit: int = 10) -> list[tuple[int, dict, int]]:
        """(id, payload, attempts so far) of up to `limit` due deliveries, each leased to this loop."""
        claimed = []
        with self.sessions.begin() as s:
            now = clock(s)
            free = or_(Delivery.claimed_by.is_(None), Delivery.claim_expires_at < now)
            due = s.execute(select(Delivery.id).where(
                Delivery.state == "pending", Delivery.tracker == self.tracker.name, Delivery.next_attempt_at <= now,
                free).order_by(Delivery.next_attempt_at, Delivery.id).limit(limit)).scalars().all()
            for delivery_id in due:  # conditional UPDATE: one claimer wins each row (rows locked on PostgreSQL)
                taken = s.execute(update(Delivery).where(Delivery.id == delivery_id, Delivery.state == "pending",
                                                         free)
                                  .values(claimed_by=self.owner,
                                          claim_expires_at=now + timedelta(seconds=CLAIM_SECONDS))).rowcount
                if taken == 1:
                    row = s.get(Delivery, delivery_id)
                    claimed.append((row.id, dict(row.payload), row.attempts))
        return claimed

    def deliver_due(self) -> int:
        """One pass: deliver every due delivery; returns how many were delivered."""
        delivered = 0
        for delivery_id, payload, attempts in self.claim_due():
            delivered += self._deliver_one(delivery_id, payload, attempts)
        return delivered

    def _deliver_one(self, delivery_id: int, payload: dict, attempts: int) -> bool:
        from .trackers import DeliveryResult
        try:
            result = self.tracker.deliver(local_paths(self.cfg, payload))
        except Exception as exc:  # noqa: BLE001 (a tracker's bug is a failed delivery, retried)
            result = DeliveryResult(False, f"{type(exc).__name__}: {exc}", True)
        what = _what(payload)
        name = self.tracker.name
        with self.sessions.begin() as s:
            row = s.get(Delivery, delivery_id)
            now = clock(s)
            row.attempts = attempts + 1
            row.claimed_by = row.claim_expires_at = None
            job = s.get(JobRow, row.job_id) if row.job_id is not None else None
            if result.ok:
                row.state, row.delivered_at, row.refs = "done", now, result.refs or None
                if row.attempts > 1:
                    _warn(job, f"tracker {name}: {what} delivered after {row.attempts} tries")
                log.info("action=tracker_delivered delivery=%s job=%s %s tracker=%s tries=%s message=%s",
                         row.id, row.job_id, what, name, row.attempts, result.message)
                return True
            row.last_error = result.message
            if not result.retryable:
                row.state = "failed"
                _warn(job, f"tracker {name}: {what} not delivered: {result.message} (gave up)")
                log.error("action=tracker_failed delivery=%s job=%s %s tracker=%s error=%s", row.id, row.job_id,
                          what, name, result.message)
                return False
            wait = self.backoff(row.attempts)
            row.next_attempt_at = now + timedelta(seconds=wait)
            if row.attempts == 1:  # once per delivery: a long outage does not fill the job's warnings
                _warn(job, f"tracker {name}: {what} not delivered yet: {result.message}; will retry")
            log.warning("action=tracker_retry delivery=%s job=%s %s tracker=%s tries=%s next_in=%.1fs error=%s",
                        row.id, row.job_id, what, name, row.attempts, wait, result.message)
            return False

    def backoff(self, attempts: int) -> float:
        t = self.cfg.tracker
        return min(t.retry_seconds * 2 ** max(attempts - 1, 0), t.max_retry_seconds)


def _what(payload: dict) -> str:
    where = f"{payload.get('show')}/{payload.get('seq')}/{payload.get('shot')}"
    if payload.get("event") == "published":
        return f"{where} v{int(payload.get('version') or 0):03d}"
    if payload.get("event") == "review":
        return f"{where} v{int(payload.get('version') or 0):03d} review {(payload.get('review') or {}).get('id')}"
    return f"{where} job {payload.get('job_id')} failure"


def _warn(job: JobRow | None, sentence: str) -> None:
    """A warning on the job (its state is untouched: the queue alone writes that)."""
    if job is not None:
        job.warnings = list(job.warnings or []) + [sentence]


class DeliveryThread(threading.Thread):
    """The daemon's delivery loop: a pass every `tracker.poll_seconds` until stopped, and every
    `read_every` seconds (0: never) a read of the versions' statuses back from the tracker
    (tracker_status.read_back). A database or tracker fault is logged and the next pass tries again; the
    thread never dies of one."""

    def __init__(self, outbox: Outbox, every: float, read_every: float = 0.0):
        super().__init__(name="tracker-outbox", daemon=True)
        self.outbox, self.every, self.read_every = outbox, every, read_every
        self._halt = threading.Event()  # not _stop: Thread.join calls its own _stop()
        self._read_error: str | None = None  # the last read's failure, logged once until it changes

    def run(self) -> None:
        next_read = time.monotonic()
        while not self._halt.is_set():
            try:
                self.outbox.deliver_due()
            except Exception as exc:  # noqa: BLE001
                log.warning("action=tracker_loop error=%s: %s", type(exc).__name__, _first_line(exc))
            if self.read_every > 0 and time.monotonic() >= next_read:
                next_read = time.monotonic() + self.read_every
                self.read_statuses()
            self._halt.wait(self.every)

    def read_statuses(self) -> None:
        """One read back; a failure is a warning (once while it lasts), never the loop's end."""
        from .tracker_status import read_back
        try:
            read_back(self.outbox.sessions, self.outbox.tracker)
        except Exception as exc:  # noqa: BLE001 (a tracker down, a refused login: the next read tries again)
            error = f"{type(exc).__name__}: {_first_line(exc)}"
            if error != self._read_error:
                log.warning("action=tracker_read_failed tracker=%s error=%s", self.outbox.tracker.name, error)
            self._read_error = error
            return
        if self._read_error is not None:
            log.info("action=tracker_read_back tracker=%s (reads work again)", self.outbox.tracker.name)
            self._read_error = None

    def stop(self, timeout: float = 10.0) -> None:
        self._halt.set()
        self.join(timeout)


def start_delivery_thread(cfg, sessions, tracker=None) -> DeliveryThread | None:
    """The daemon's delivery loop, when a tracker is configured (None otherwise)."""
    if cfg.tracker is None:
        return None
    thread = DeliveryThread(Outbox(cfg, sessions, tracker, owner=f"{cfg.node}:{os.getpid()}:outbox"),
                            cfg.tracker.poll_seconds, cfg.tracker.read_seconds)
    thread.start()
    log.info("action=tracker_ready tracker=%s url=%s", cfg.tracker.kind, _without_userinfo(cfg.tracker.url))
    say_if_no_movie(cfg)
    return thread


def say_if_no_movie(cfg) -> bool:
    """Once per daemon (or `quickart run`): versions get no movie for the tracker on a node without ffmpeg."""
    from .movie import ffmpeg
    if cfg.tracker is None or not cfg.tracker.movie or ffmpeg() is not None:
        return False
    log.info("action=tracker_no_movie node=%s ffmpeg is not installed: versions published here carry the "
             "contact sheet alone to the tracker, no movie (apt-get install ffmpeg; or tracker.movie: false)",
             cfg.node)
    return True


def deliver_now(cfg, jq) -> int:
    """One delivery pass outside the daemon (`quickart run`); a tracker that cannot load is one warning."""
    say_if_no_movie(cfg)
    try:
        return Outbox(cfg, jq.sessions).deliver_due()
    except Exception as exc:  # noqa: BLE001
        log.warning("action=tracker_pass error=%s: %s", type(exc).__name__, exc)
        return 0


def _first_line(exc: Exception) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else ""


def _without_userinfo(url: str) -> str:
    """A URL fit for a log: user and password (https://user:pw@host/) are never written."""
    from urllib.parse import urlsplit, urlunsplit
    parts = urlsplit(url)
    host = parts.hostname or ""
    return urlunsplit(parts._replace(netloc=host + (f":{parts.port}" if parts.port else "")))


# -- what `quickart status` shows -----------------------------------------------------------------

def status(run) -> dict:
    """Pending (and of those, waiting after a failed try), failed and delivered counts, the last error."""
    rows = run("SELECT state, COUNT(*) AS n, SUM(CASE WHEN attempts > 0 THEN 1 ELSE 0 END) AS retrying "
               "FROM deliveries GROUP BY state", {})
    counts = {r["state"]: int(r["n"]) for r in rows}
    retrying = sum(int(r["retrying"] or 0) for r in rows if r["state"] == "pending")
    last = run("SELECT last_error, next_attempt_at, tracker FROM deliveries WHERE state IN ('pending', 'failed') "
               "AND last_error IS NOT NULL ORDER BY id DESC LIMIT 1", {})
    return {"pending": counts.get("pending", 0), "retrying": retrying, "failed": counts.get("failed", 0),
            "done": counts.get("done", 0), "last_error": last[0]["last_error"] if last else None,
            "tracker": last[0]["tracker"] if last else None}

