"""Publishing's locks for many nodes on one database (see `outputs.PublishLocks`, the file locks of one
machine): on PostgreSQL a transaction-scoped advisory lock per shot serialises the version number and
the latest.json decision, the number is allocated and recorded in `versions` (unique per shot), and an
advisory lock per sequence timeline serialises its read-modify-write. On SQLite (one machine) the file
locks serve. `publish.publish_version` takes them as its `locks`.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import func, select

from . import outputs
from .db.connector import Connector, clock
from .db.models import VersionRow
from .jobs import Job

#: advisory lock classes (two-int form: class, object) for publishing on PostgreSQL ("QA" + 1, + 2)
VERSION_LOCK, SEQUENCE_LOCK = 0x51410001, 0x51410002


class DatabasePublishLocks:
    """The locks of one job's publish. `db`: the queue's database (a `db.connector.Connector`, or
    anything with its `sessions` and `shared`, such as a `queue.JobQueue`)."""

    def __init__(self, db: Connector, shot_id: int, job_id: int):
        self.db, self.shot_id, self.job_id = db, shot_id, job_id

    @classmethod
    def of_job(cls, db: Connector, job: Job) -> "DatabasePublishLocks":
        return cls(db, job.shot_id, job.id)

    @contextmanager
    def version_slot(self, output_dir: Path) -> Iterator[int]:
        if not self.db.shared:
            with outputs.version_slot(output_dir) as number:
                yield number
            return
        output_dir.mkdir(exist_ok=True)  # never re-create a shot folder that was renamed away
        with self.db.sessions.begin() as s:  # the lock is held until this transaction ends
            s.execute(select(func.pg_advisory_xact_lock(VERSION_LOCK, self.shot_id)))
            recorded = s.scalar(select(func.max(VersionRow.number)).where(VersionRow.shot_id == self.shot_id))
            # versions made before the database knew the shot (or by `quickart run` elsewhere) count too
            number = max(recorded or 0, *(outputs.versions(output_dir) or [0])) + 1
            s.add(VersionRow(shot_id=self.shot_id, number=number, job_id=self.job_id, created_at=clock(s)))
            s.flush()
            yield number

    @contextmanager
    def shot(self, output_dir: Path) -> Iterator[None]:
        """The shot's version lock without taking a number (finishing an interrupted publish)."""
        if not self.db.shared:
            with outputs.shot_lock(output_dir):
                yield
            return
        with self.db.sessions.begin() as s:
            s.execute(select(func.pg_advisory_xact_lock(VERSION_LOCK, self.shot_id)))
            yield

    @contextmanager
    def sequence(self, path: Path) -> Iterator[None]:
        if not self.db.shared:
            with outputs.PublishLocks().sequence(path):
                yield
            return
        with self.db.sessions.begin() as s:
            s.execute(select(func.pg_advisory_xact_lock(SEQUENCE_LOCK, func.hashtext(str(path)))))
            yield
