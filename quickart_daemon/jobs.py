"""What a job is, as everyone reads it: its states and a read-only snapshot of its row.

Kept free of SQLAlchemy so the status commands can read the queue without loading it
(see `db/reads.py`); `queue.py` is the only module that changes a job's state.
"""

from __future__ import annotations

import enum
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from .naming import ShotId


class JobState(str, enum.Enum):
    QUEUED = "queued"          # waiting for a slot (or for its retry time)
    RUNNING = "running"        # leased by a worker
    DONE = "done"              # a version was published
    FAILED = "failed"          # gave up: bad input, or out of attempts
    CANCELLED = "cancelled"    # stopped by a person
    SUPERSEDED = "superseded"  # a newer drop of the same shot replaced it before it ran


#: states a job does not leave by itself
FINISHED = frozenset({JobState.DONE, JobState.FAILED, JobState.CANCELLED, JobState.SUPERSEDED})


def utcnow() -> datetime:
    """Naive UTC, which SQLite and PostgreSQL store alike."""
    return datetime.now(timezone.utc).replace(tzinfo=None)


def parse_when(value: Any) -> datetime | None:
    """A timestamp as SQLite (text) or PostgreSQL (datetime) hands it back."""
    return datetime.fromisoformat(value) if isinstance(value, str) else value


def _optional(record, key: str) -> Any:
    """A column a database not yet migrated lacks (a status command reads before the daemon upgrades)."""
    return record[key] if key in record.keys() else None


def _times_as_text(record: dict) -> dict:
    """A record for JSON output: datetimes (naive UTC) as ISO 8601 text ending in Z."""
    return {k: v.isoformat(timespec="seconds") + "Z" if isinstance(v, datetime) else v for k, v in record.items()}


def parse_json(value: Any) -> Any:
    return json.loads(value) if isinstance(value, str) else value


@dataclass(frozen=True)
class Job:
    """A read-only snapshot of a job row."""

    id: int
    shot_id: int
    shot: ShotId
    shot_path: str
    drop_id: int | None
    state: JobState
    priority: int
    pipeline: str
    attempts: int
    max_attempts: int
    generation: int
    inputs_generation: int | None  # a retry from a chosen stage reads this generation's input snapshot
    run_after: datetime
    lease_owner: str | None
    lease_expires_at: datetime | None
    node: str | None
    slot: str | None
    current_stage: str | None
    progress: float
    cancel_requested: bool
    error: str | None
    warnings: tuple[str, ...]
    version: int | None
    output_path: str | None
    requires_gpu: bool
    node_group: str | None
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None

    @classmethod
    def from_record(cls, r: Mapping[str, Any]) -> "Job":
        """From a row of `db.reads.JOB_SELECT` (the jobs columns plus the shot's as shot_*)."""
        return cls(
            id=r["id"], shot_id=r["shot_id"], shot=ShotId(r["shot_show"], r["shot_seq"], r["shot_name"]),
            shot_path=r["shot_path"], drop_id=r["drop_id"], state=JobState(r["state"]), priority=r["priority"],
            pipeline=r["pipeline"], attempts=r["attempts"], max_attempts=r["max_attempts"],
            generation=r["generation"], inputs_generation=_optional(r, "inputs_generation"),
            run_after=parse_when(r["run_after"]), lease_owner=r["lease_owner"],
            lease_expires_at=parse_when(r["lease_expires_at"]), node=r["node"], slot=r["slot"],
            current_stage=r["current_stage"], progress=r["progress"], cancel_requested=bool(r["cancel_requested"]),
            error=r["error"], warnings=tuple(parse_json(r["warnings"]) or ()), version=r["version"],
            output_path=r["output_path"], requires_gpu=bool(r["requires_gpu"]), node_group=r["node_group"],
            created_at=parse_when(r["created_at"]),
            started_at=parse_when(r["started_at"]), finished_at=parse_when(r["finished_at"]),
        )

    def to_dict(self) -> dict:
        out = {k: getattr(self, k) for k in self.__dataclass_fields__}
        out["shot"] = str(self.shot)
        out["state"] = self.state.value
        out["warnings"] = list(self.warnings)
        return _times_as_text(out)


@dataclass(frozen=True)
class NodeInfo:
    """A daemon (a render node) as `quickart status` and `quickart nodes` see it."""

    name: str
    pid: int
    started_at: datetime
    heartbeat_at: datetime
    slots: list
    watch_mode: str | None
    stopped_at: datetime | None
    gpus: int = 0
    version: str | None = None
    state: str = "up"  # up | down (silent past the lease: its jobs were requeued) | stopped
    running: int = 0  # slots in use: its running jobs
    groups: list = field(default_factory=list)  # its node groups (node_groups in its config)

    @classmethod
    def from_record(cls, r: Mapping[str, Any]) -> "NodeInfo":
        return cls(r["name"], r["pid"], parse_when(r["started_at"]), parse_when(r["heartbeat_at"]),
                   parse_json(r["slots"]) or [], r["watch_mode"], parse_when(r["stopped_at"]),
                   gpus=_optional(r, "gpus") or 0, version=_optional(r, "version"),
                   state=_optional(r, "state") or ("up" if r["stopped_at"] is None else "stopped"),
                   running=_optional(r, "running") or 0, groups=parse_json(_optional(r, "groups")) or [])

    def to_dict(self) -> dict:
        return _times_as_text({k: getattr(self, k) for k in self.__dataclass_fields__})


@dataclass(frozen=True)
class NoticeInfo:
    """Something in a watched folder that was left alone."""

    path: str
    message: str
    node: str | None
    created_at: datetime

    @classmethod
    def from_record(cls, r: Mapping[str, Any]) -> "NoticeInfo":
        return cls(r["path"], r["message"], r["node"], parse_when(r["created_at"]))


@dataclass(frozen=True)
class DropInfo:
    """One complete state of a shot's inputs: the version a job makes is "of" its drop, and a newer
    drop (later `detected_at`) always wins latest."""

    id: int
    signature: str
    detected_at: datetime

    @classmethod
    def from_record(cls, r: Mapping[str, Any]) -> "DropInfo":
        return cls(r["id"], r["signature"], parse_when(r["detected_at"]))

    def to_dict(self) -> dict:
        return {"id": self.id, "signature": self.signature, "detected_at": self.detected_at.isoformat()}


def why_waiting(job: Job, live: list[NodeInfo]) -> str | None:
    """Why a queued job waits, when no live node (`live`) can claim it: it requires a node group none is
    in, or a GPU slot none (of that group) has. None when some live node may take it."""
    if job.state is not JobState.QUEUED:
        return None
    if job.node_group is not None:
        live = [n for n in live if job.node_group in n.groups]
        if not live:
            return f"waiting: no live node is in group {job.node_group}"
    if job.requires_gpu and not any(n.gpus for n in live):
        return "waiting: no live node has a GPU slot" + (f" in group {job.node_group}" if job.node_group else "")
    return None

