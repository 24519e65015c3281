"""The queue's database as every manager over it uses it (procrastinate's connector): the sessions,
which kind of database it is, its clock, and riding out a server restart.

The managers: `queue.JobQueue` (the job state machine, the only writer of a job's state),
`nodes.NodeRegistry` (render nodes), `notices.NoticeBoard` (problems found in watched folders) and
`publish_locks.DatabasePublishLocks` (version numbers and timelines on many nodes). The differences
between SQLite (one machine) and PostgreSQL (many nodes) live in small named pieces here and in
those modules.
"""

from __future__ import annotations

import functools
import logging
import time
from datetime import datetime
from typing import TYPE_CHECKING

from sqlalchemy import DateTime, func, literal, select, text
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session, sessionmaker

if TYPE_CHECKING:
    from .reads import Run

log = logging.getLogger("quickart.queue")

#: the database server's current time as naive UTC (PostgreSQL); the type makes `+ timedelta` an interval
DB_NOW = func.timezone(literal("UTC"), func.now(), type_=DateTime)

#: how long a worker's verb keeps retrying while the database server is unreachable (a restart)
OUTAGE_SECONDS = 60.0


class Connector:
    """The sessions of one database, shared by its managers."""

    def __init__(self, sessions: sessionmaker[Session]):
        self.sessions = sessions

    @property
    def shared(self) -> bool:
        """Whether this database is a server many nodes share (PostgreSQL), not a local SQLite file."""
        return self.sessions.kw["bind"].dialect.name == "postgresql"


def on_postgres(s: Session) -> bool:
    return s.get_bind().dialect.name == "postgresql"


def reader(s: Session) -> "Run":
    """The `run(sql, params)` every `db/reads.py` function takes, over session `s` (rows as mappings)."""
    return lambda sql, params: s.execute(text(sql), params).mappings().all()


def clock(s: Session) -> datetime:
    """Now, for leases, retry times, heartbeats and the order of drops: the database's clock, never the
    node's (on PostgreSQL the server's, shared by every node; on SQLite the clock SQLite itself reads)."""
    if on_postgres(s):
        return s.scalar(select(DB_NOW))
    return datetime.fromisoformat(s.scalar(text("SELECT strftime('%Y-%m-%d %H:%M:%f', 'now')")))


def rides_out_outages(verb):
    """For the verbs a running job's worker calls (on a manager with `shared`): on PostgreSQL, a lost
    connection (the server restarting, a network cut) is retried for up to OUTAGE_SECONDS, so the stage
    that is running survives it. SQLite errors (a locked file) pass through at once, as before."""
    @functools.wraps(verb)
    def retrying(self, *args, **kwargs):
        deadline = time.monotonic() + OUTAGE_SECONDS
        while True:
            try:
                return verb(self, *args, **kwargs)
            except OperationalError as exc:
                if not self.shared or time.monotonic() > deadline:
                    raise
                log.warning("action=database_retry verb=%s error=%s", verb.__name__,
                            str(exc.orig or exc).strip().splitlines()[0])
                time.sleep(0.5)
    return retrying
