"""The farm's status, one model for every reader: `quickart status`, `quickart nodes`, `quickart job`
and the web page's farm view and live feed.

A node is alive when the database says so: its state column is `up` (not `down`, marked by a node
that saw it silent past the lease, nor `stopped`, written by its own clean exit) and its last
heartbeat is younger than ALIVE_SECONDS by the database's clock (the clock that wrote the heartbeat,
never the reader's). Like `db/reads.py` it needs no SQLAlchemy on SQLite, so the status commands
start fast.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from .db import reads
from .jobs import Job, JobState, NodeInfo, NoticeInfo, why_waiting

#: a daemon whose heartbeat is older than this (or whose state is not `up`) is reported as not running
ALIVE_SECONDS = 30


def is_alive(node: NodeInfo, now: datetime) -> bool:
    """The one definition: state `up` and a heartbeat within ALIVE_SECONDS of `now` (the database's clock)."""
    return node.state == "up" and (now - node.heartbeat_at) < timedelta(seconds=ALIVE_SECONDS)


@dataclass(frozen=True)
class NodeStatus:
    """A node as the status readers show it: its row and whether it is alive."""

    info: NodeInfo
    alive: bool

    @property
    def name(self) -> str:
        return self.info.name

    @property
    def shown_state(self) -> str:
        """Its state for a table: `silent` for a node still `up` whose heartbeat stopped."""
        return self.info.state if self.info.state != "up" or self.alive else "silent"

    def to_dict(self) -> dict:
        """`quickart nodes --json`: the row's fields and `alive`."""
        return self.info.to_dict() | {"alive": self.alive}


def read_nodes(run: reads.Run) -> list[NodeStatus]:
    """Every node, alive or not by the database's clock."""
    now = reads.database_now(run)
    return [NodeStatus(n, is_alive(n, now)) for n in reads.nodes(run)]


def live_nodes(run: reads.Run) -> list[NodeInfo]:
    """The nodes that are alive (the ones that may claim a queued job: `jobs.why_waiting`)."""
    return [n.info for n in read_nodes(run) if n.alive]


@dataclass(frozen=True)
class FarmStatus:
    """Nodes (alive or down), their slots, the queue's counts, running jobs, why queued jobs wait,
    the last errors and the notices of the watched folders."""

    nodes: list[NodeStatus]
    counts: dict[str, int]
    running: list[Job]
    failed: list[Job]
    waiting: list[tuple[Job, str]]
    notices: list[NoticeInfo]

    @property
    def queue_depth(self) -> int:
        return self.counts.get(JobState.QUEUED.value, 0)

    def slots(self) -> list[dict]:
        """Each slot of each alive node and whether a running job holds it."""
        busy = {j.slot for j in self.running}
        return [{"node": n.name, "slot": s, "busy": s in busy} for n in self.nodes if n.alive for s in n.info.slots]

    def node_slots(self) -> list[dict]:
        """The page's nodes: name, alive, watch mode, heartbeat and each slot with the job it runs."""
        by_slot = {(j.node, j.slot): j.id for j in self.running}
        return [{"name": n.name, "alive": n.alive, "watch_mode": n.info.watch_mode,
                 "heartbeat": n.info.heartbeat_at.isoformat(timespec="seconds") + "Z",
                 "slots": [{"slot": s, "job": by_slot.get((n.name, s))} for s in n.info.slots]}
                for n in self.nodes]

    def to_dict(self) -> dict:
        """`quickart status --json`."""
        nodes = [{"node": n.name, "pid": n.info.pid, "alive": n.alive, "state": n.info.state,
                  "heartbeat": n.info.heartbeat_at, "started": n.info.started_at, "slots": n.info.slots,
                  "watch_mode": n.info.watch_mode, "gpus": n.info.gpus, "groups": n.info.groups,
                  "running": n.info.running, "version": n.info.version} for n in self.nodes]
        return {
            "nodes": nodes,
            "queue_depth": self.queue_depth,
            "counts": self.counts,
            "running": [{"job": j.id, "shot": str(j.shot), "stage": j.current_stage, "progress": round(j.progress, 3),
                         "node": j.node, "slot": j.slot, "attempt": j.attempts} for j in self.running],
            "slots": self.slots(),
            "last_errors": [{"job": j.id, "shot": str(j.shot), "error": j.error, "at": j.finished_at}
                            for j in self.failed],
            "waiting": [{"job": j.id, "shot": str(j.shot), "reason": reason} for j, reason in self.waiting],
            "notices": [{"path": n.path, "message": n.message, "at": n.created_at} for n in self.notices],
        }


def read_status(run: reads.Run, *, last_errors: int = 5, notices: int = 5, queued: bool = True) -> FarmStatus:
    """The whole status in one read. `queued=False` (the page's feed, every quarter second) skips
    reading the queued jobs to say why they wait."""
    nodes = read_nodes(run)
    live = [n.info for n in nodes if n.alive]
    waiting = [(j, reason) for j in reads.list_jobs(run, [JobState.QUEUED]) if (reason := why_waiting(j, live))] \
        if queued else []
    return FarmStatus(nodes=nodes, counts=reads.count_states(run), running=reads.list_jobs(run, [JobState.RUNNING]),
                      failed=reads.list_jobs(run, [JobState.FAILED], limit=last_errors) if last_errors else [],
                      waiting=waiting, notices=reads.notices(run, notices) if notices else [])


def page_nodes(run: reads.Run, running: list[Job]) -> list[dict]:
    """The web page's nodes (`FarmStatus.node_slots`) with the running jobs the caller already read."""
    return FarmStatus(nodes=read_nodes(run), counts={}, running=running, failed=[], waiting=[],
                      notices=[]).node_slots()
