"""Production trackers: where every published version is announced (Kitsu built in; ShotGrid, ftrack...
as one module each).

A tracker is a class built from the `tracker:` block of config.yaml (`TrackerConfig`) with one method,
`deliver(event) -> DeliveryResult`, and optionally a second, `statuses(requests) -> [TrackerStatus |
None]`, that reads back what the studio decided about delivered versions (tracker_status.py; see
below). The daemon never calls `deliver` from a job: a published version is put in the outbox
(`quickart_daemon/outbox.py`, the `deliveries` table), and the outbox's delivery loop calls `deliver`
until the tracker accepts it, with exponential backoff in between. So a tracker that is down never
fails a job, and each (version, event, tracker) is delivered once.

Trackers are found like stages, through the entry-point group `quickart.trackers` (name = `tracker.kind`):

    [project.entry-points."quickart.trackers"]
    shotgrid = "studio_trackers.shotgrid:ShotGridTracker"

`deliver` must be idempotent where it can (the same event may come again when the process died after the
tracker accepted it but before the outbox recorded it): the Kitsu module looks for its own marker in the
task's comments first. See docs/tracker.md.

The event payload (`TrackerEvent`, a plain dict in the outbox, JSON):

    event         "published" (a version was published) | "failed" (a job failed for good; only with
                  tracker.on_failure: true) | "review" (a note on a version, with or without a verdict, from
                  the web page; see `review` below)
    show, seq, shot   the shot's names (the studio layout's {show}/{seq}/{shot})
    frame_in, frame_out   the version's first and last frame (inclusive); 0, 0 for a failure
    fps           frames per second of the shot
    version       the version number (1 for v001); 0 for a failure
    job_id        the job that made it
    pipeline      the pipeline's name
    summary       one paragraph: what the job did (stages and their seconds, warnings, node)
    contact_sheet path of the version's contact.png, or None
    movie         path of the version's comp.mp4 (the comp as H.264, made at publish when ffmpeg is
                  installed and tracker.movie is on), else None
    version_path  the version folder, or None
                  (the three paths are absolute paths on the delivering node: the outbox stores them
                  relative to the studio root and resolves them under the root of the node that delivers)
    status        the tracker status to set ("wfa" by default; config tracker.status); None: leave it.
                  A review: tracker.approved_status ("done") when approved, tracker.retake_status
                  ("retake") when it needs work, None for a note alone
    error         for "failed": the job's error sentence
    marker        a short unique text for this delivery ("quickart:DEMO/sq010/sh0010:v001:published"):
                  put it in what the tracker stores, to find an earlier delivery of the same event
    review        "review" only: {"id", "state" (approved | needs_work | note), "text" (the note, at most
                  4000 characters, may be empty with a verdict), "author", "at" (ISO 8601 UTC, "...Z")};
                  frame_in, frame_out are 0 and summary, contact_sheet, movie, version_path empty, job_id
                  and pipeline those of the job that made the version (when known); the marker is
                  "quickart:DEMO/sq010/sh0010:v001:review<id>"

A tracker that does not know an event may return DeliveryResult(False, sentence, retryable=False): the
delivery fails for good and says why; nothing else waits on it.

Reading back (`statuses`, optional: a tracker without it is never asked): the daemon hands over one
`StatusRequest` per version it delivered (the published event's names, the version, the pipeline and the
delivery's `refs`, the tracker's own ids) and gets a list of the same length, each a `TrackerStatus`
(the status the tracker has for that version) or None (it has none it can tell). It may raise: the read
is retried at the next period and the failure is one log line, never a job's. A version's status is
the task status the tracker gives that version: the newest version of a task has the task's current
status; an older one keeps the status the task had when a newer version arrived (the Kitsu module
reads that from the task's comments).
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from datetime import datetime
from importlib.metadata import entry_points
from typing import Any, Protocol, TypedDict, runtime_checkable

from ..errors import ConfigError

GROUP = "quickart.trackers"

#: built in (also declared in pyproject's entry points; listed here so a checkout on PYTHONPATH finds them)
BUILTIN = {"kitsu": "quickart_daemon.trackers.kitsu:KitsuTracker"}


class TrackerEvent(TypedDict, total=False):
    event: str
    show: str
    seq: str
    shot: str
    frame_in: int
    frame_out: int
    fps: float
    version: int
    job_id: int
    pipeline: str
    summary: str
    contact_sheet: str | None
    movie: str | None
    version_path: str | None
    status: str | None
    error: str | None
    marker: str
    review: dict[str, Any]


@dataclass(frozen=True)
class DeliveryResult:
    """What a tracker did with an event. `ok`: accepted (the outbox marks it delivered). Not ok:
    `retryable` says whether trying again may help (a server down: yes; a project that does not exist in
    the tracker: no, the delivery fails for good and says why). `message` is one sentence, never a
    credential; `refs` are the tracker's ids of what was made (kept with the delivery)."""

    ok: bool
    message: str = ""
    retryable: bool = True
    refs: dict[str, Any] = field(default_factory=dict)


class StatusRequest(TypedDict):
    """One delivered version whose status is asked for (`Tracker.statuses`)."""

    show: str
    seq: str
    shot: str
    version: int
    pipeline: str
    refs: dict[str, Any]  # what the delivery's DeliveryResult.refs kept (Kitsu: project, shot, task, comment)


@dataclass(frozen=True)
class TrackerStatus:
    """A version's status on the tracker. `status`: the short name ("wfa", "done"); `name`: the long one;
    `color`: "#rrggbb"; `approved`: the status counts as approved or done; `at`: when the tracker set it
    (naive UTC); `url`: the task on the tracker's site."""

    status: str
    name: str
    color: str
    approved: bool
    at: datetime | None = None
    url: str | None = None


class TrackerError(Exception):
    """A tracker's refusal, with whether a retry may help (raised inside `deliver`, turned into a result)."""

    def __init__(self, message: str, retryable: bool = True):
        super().__init__(message)
        self.retryable = retryable


@runtime_checkable
class Tracker(Protocol):
    """A production tracker. `name` is the kind (as in config and entry points)."""

    name: str

    def deliver(self, event: TrackerEvent) -> DeliveryResult: ...

    # optional: def statuses(self, requests: list[StatusRequest]) -> list[TrackerStatus | None]


def reads_back(tracker) -> bool:
    """Whether the tracker can read statuses back (it has `statuses`)."""
    return callable(getattr(tracker, "statuses", None))


def available() -> dict[str, str]:
    """kind -> "module:attribute" of every tracker installed (entry points over the built-in ones)."""
    found = dict(BUILTIN)
    for ep in entry_points(group=GROUP):
        found[ep.name] = ep.value
    return found


def load_tracker(cfg) -> Tracker:
    """The tracker of a `TrackerConfig`, built; ConfigError naming the kind when it is not installed."""
    kinds = available()
    target = kinds.get(cfg.kind)
    if target is None:
        raise ConfigError(f"tracker.kind: no tracker named {cfg.kind!r} is installed (installed: "
                          f"{', '.join(sorted(kinds))}); a tracker registers in the entry-point group {GROUP}")
    module, _, attr = target.partition(":")
    try:
        factory = getattr(importlib.import_module(module), attr)
    except (ImportError, AttributeError) as exc:
        raise ConfigError(f"tracker.kind: the tracker {cfg.kind!r} ({target}) cannot be loaded: {exc}") from None
    return factory(cfg)
