"""The render nodes sharing the queue's database: their registry, heartbeats, and marking a silent node
down (OpenCue's DOWN_HOST) with its running jobs handed back to the state machine.

A node's row (`nodes` table) is written only here: `heartbeat` by its own daemon (state `up`, or
`stopped` on a clean exit), `requeue_down_nodes` by whichever node first sees it silent past the
lease (state `down`). The jobs of a node marked down are requeued by `queue.JobQueue.requeue_lost`
in the same transaction, so exactly one node does it and the job state machine stays the only
writer of a job's state. What a node looks like to people (alive or not) is `status.py`'s.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Protocol

from sqlalchemy import select, update

from .db import reads
from .db.connector import Connector, clock, reader
from .db.models import JobRow, Node
from .jobs import JobState, NodeInfo


class RequeuesLostJobs(Protocol):
    """What the registry needs of the job state machine (`queue.JobQueue`)."""

    def requeue_lost(self, row: JobRow, now: datetime, lost: str) -> int: ...


class NodeRegistry:
    """Every write of a node's row, one verb each, each in its own transaction."""

    def __init__(self, db: Connector, jobs: RequeuesLostJobs):
        self.db, self.jobs = db, jobs

    def heartbeat(self, name: str, pid: int, slots: list[str], watch_mode: str | None,
                  starting: bool = False, stopping: bool = False, gpus: int = 0,
                  version: str | None = None, groups: Sequence[str] = ()) -> None:
        """The daemon of node `name` is alive (state up), or stopping cleanly (state stopped); `groups` are
        its node groups (what `jobs.why_waiting` looks for)."""
        with self.db.sessions.begin() as s:
            row = s.get(Node, name)
            now = clock(s)
            if row is None:
                row = Node(name=name, pid=pid, started_at=now, slots=slots)
                s.add(row)
            if starting:
                row.started_at, row.stopped_at = now, None
            row.pid, row.heartbeat_at, row.slots, row.watch_mode = pid, now, slots, watch_mode
            row.gpus, row.state, row.groups = gpus, "up", sorted(groups)
            row.version = version or row.version
            if stopping:
                row.stopped_at, row.state = now, "stopped"

    def beat(self, name: str, within: float) -> tuple[int, datetime] | None:
        """(pid, heartbeat time) of node `name` when it is up and beat within `within` seconds by the
        database's clock; None otherwise (never started, stopped, down, or silent)."""
        with self.db.sessions() as s:
            row = s.get(Node, name)
            if row is None or row.state != "up" or row.heartbeat_at < clock(s) - timedelta(seconds=within):
                return None
            return row.pid, row.heartbeat_at

    def list(self) -> list[NodeInfo]:
        """Every node with the number of its running jobs (`db/reads.py`, as the status commands read it)."""
        with self.db.sessions() as s:
            return reads.nodes(reader(s))

    def requeue_down_nodes(self, lease_seconds: float, me: str | None = None) -> dict[str, list[int]]:
        """Mark nodes silent for longer than `lease_seconds` down and put their running jobs back in the
        queue (OpenCue's DOWN_HOST). Every node runs this; the conditional UPDATE of the node's row lets
        exactly one of them do it. Returns {node: requeued job ids}."""
        down = {}
        with self.db.sessions.begin() as s:
            now = clock(s)
            lease = timedelta(seconds=lease_seconds)
            silent = s.scalars(select(Node.name).where(Node.silent(now, lease), Node.name != (me or "")))
            for name in silent.all():
                taken = s.execute(update(Node).where(Node.name == name, Node.silent(now, lease))
                                  .values(state="down")).rowcount
                if taken != 1:
                    continue  # another node marked it first (or it came back)
                rows = s.scalars(select(JobRow).where(JobRow.state == JobState.RUNNING.value, JobRow.node == name))
                down[name] = [self.jobs.requeue_lost(row, now, f"node {name} down") for row in rows.all()]
        return down
