"""The job state machine: the only module that writes a job's state.

    queued ──claim──▶ running ──finish──▶ done
      ▲                 │  ├──fail (retryable, attempts left)──▶ queued (run_after = now + backoff)
      │                 │  ├──fail (otherwise)─────────────────▶ failed
      │                 │  ├──cancel requested, then stopped───▶ cancelled
      │                 │  ├──its drop changed before it read it▶ superseded
      │                 └──lease expired (worker died)────────▶ queued (resumes at first unfinished stage;
      │                                                          cancelled if a cancel was requested)
      ├── retry ◀── failed | cancelled | superseded
    queued ──newer drop of the same shot──▶ superseded
    queued ──cancel──▶ cancelled

A claim takes a lease (owner + expiry); the worker extends it with heartbeats and
checkpoints. A job whose lease expired is requeued by `requeue_stale`, so a kill -9
or a power cut loses at most the stage that was running.

One queue, two databases (SQLite: one machine; PostgreSQL: many render nodes); the
differences live in small named pieces. `_claim_one`: on PostgreSQL one UPDATE of the
row picked by `SELECT ... FOR UPDATE SKIP LOCKED` (claimers never wait on each other's
rows); on SQLite a conditional UPDATE on (id, state). `db.connector.clock`: lease times come
from the database server's clock on PostgreSQL, so a node with a skewed clock neither steals
live leases nor hands out leases that look expired to the others. `_wake_daemons`: NOTIFY
idle daemons. A drop's identity is unique (`drop_key`), so every node watching the same root
records a drop once.

The other managers over the same database (`db/connector.py`) own the rest: `nodes.py` the
render nodes (heartbeats, marking a silent node down; its jobs come back here, `requeue_lost`),
`notices.py` the problems found in watched folders, `publish_locks.py` the version numbers and
timeline updates serialised by the database instead of file locks on a network drive.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import exists, func, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, object_session, sessionmaker

from .db import reads
from .db.connector import DB_NOW, Connector, clock, on_postgres, reader, rides_out_outages
from .db.wakeup import CHANNEL
from .db.models import Artifact, Drop, JobNodeFailure, JobRow, Node, Shot, StageRun
from .errors import InvalidTransition, JobNotFound, QuickArtError
from .jobs import FINISHED, DropInfo, Job, JobState
from .naming import ShotId

__all__ = ["FINISHED", "Job", "JobQueue", "JobState", "LeaseLost", "RetryPolicy", "open_queue"]

TRANSITIONS: dict[JobState, set[JobState]] = {
    JobState.QUEUED: {JobState.RUNNING, JobState.CANCELLED, JobState.SUPERSEDED},
    JobState.RUNNING: {JobState.DONE, JobState.FAILED, JobState.QUEUED, JobState.CANCELLED, JobState.SUPERSEDED},
    JobState.DONE: {JobState.QUEUED},  # a manual retry: run it again (a new version)
    JobState.FAILED: {JobState.QUEUED},
    JobState.CANCELLED: {JobState.QUEUED},
    JobState.SUPERSEDED: {JobState.QUEUED},
}


def open_queue(cfg, migrate: bool = True) -> "JobQueue":
    """The queue of the configured database (migrations applied unless migrate=False)."""
    from .db.session import connect

    sessions = connect(cfg.database.url, cfg.database.busy_timeout_ms, migrate=migrate)
    r = cfg.retry
    return JobQueue(sessions, RetryPolicy(r.max_attempts, r.backoff_seconds, r.backoff_factor,
                                          r.max_backoff_seconds), cfg.queue.lease_seconds, r.block_node_after)


def _job(row: JobRow) -> Job:
    """The snapshot of an ORM row, built the same way as the readers build it from SQL."""
    record = {c.key: getattr(row, c.key) for c in JobRow.__mapper__.column_attrs}
    shot = row.shot
    return Job.from_record(record | {"shot_show": shot.show, "shot_seq": shot.seq, "shot_name": shot.name,
                                     "shot_path": shot.path})


def _claim_one(s: Session, values: dict, now, eligible: list) -> int | None:
    """Lease the most urgent runnable job that meets `eligible` (writing `values` into it); its id, or None.

    PostgreSQL: one statement; SKIP LOCKED passes over rows another claimer is taking, so claimers
    never queue behind each other. SQLite has no row locks (one writer at a time): pick a few
    candidates, take the first one still queued by a conditional UPDATE."""
    runnable = (select(JobRow.id).where(JobRow.state == JobState.QUEUED.value, JobRow.run_after <= now, *eligible)
                .order_by(JobRow.priority.desc(), JobRow.id))
    if on_postgres(s):
        pick = runnable.limit(1).with_for_update(skip_locked=True).scalar_subquery()
        return s.scalar(update(JobRow).where(JobRow.id == pick).values(**values).returning(JobRow.id))
    for job_id in s.scalars(runnable.limit(8)).all():
        taken = s.execute(update(JobRow).where(JobRow.id == job_id, JobRow.state == JobState.QUEUED.value)
                          .values(**values)).rowcount
        if taken == 1:
            return job_id
    return None


def drop_key(signature: str, follows: int | None, forced: bool = False) -> str:
    """A drop's identity within its shot (unique in the database).

    A drop a watcher sees is its signature plus the drop it follows: every node that sees the same
    change of a shot's files computes the same key, so however many nodes watch the root, one drop
    and one job are recorded (files changed back to an earlier state follow another drop: a new key).
    A forced submit (`quickart run`/`submit`) repeats identical files on purpose: each is its own drop."""
    if forced:
        return f"forced:{uuid.uuid4().hex}"
    return f"after:{follows or 0}:{signature}"


def _wake_daemons(s: Session) -> None:
    """A job became runnable: on PostgreSQL, wake idle daemons (delivered when this transaction commits;
    see db/wakeup.py). SQLite daemons poll."""
    if on_postgres(s):
        s.execute(select(func.pg_notify(CHANNEL, "")))


class LeaseLost(QuickArtError):
    """This worker no longer holds the job's lease (it expired and the job was requeued, or it was cancelled)."""

    retryable = True


@dataclass(frozen=True)
class RetryPolicy:
    max_attempts: int = 3
    backoff_seconds: float = 30.0
    backoff_factor: float = 2.0
    max_backoff_seconds: float = 600.0

    def delay(self, attempts: int) -> float:
        """Seconds to wait before attempt number `attempts + 1`."""
        return min(self.backoff_seconds * self.backoff_factor ** max(attempts - 1, 0), self.max_backoff_seconds)


class JobQueue:
    """Every state change of a job, one verb each, each in its own transaction."""

    def __init__(self, sessions: sessionmaker[Session], retry: RetryPolicy = RetryPolicy(),
                 lease_seconds: float = 60.0, block_node_after: int = 0):
        self.db = Connector(sessions)
        self.sessions = sessions
        self.retry_policy = retry
        self.lease = timedelta(seconds=lease_seconds)
        self.block_node_after = block_node_after  # 0: a job may fail on a node any number of times

    @property
    def shared(self) -> bool:
        """Whether this queue's database is a server many nodes share (PostgreSQL), not a local SQLite file."""
        return self.db.shared

    # -- helpers ---------------------------------------------------------------------
    def _row(self, s: Session, job_id: int) -> JobRow:
        row = s.get(JobRow, job_id) if 1 <= job_id <= reads.MAX_ID else None  # bigger: the driver overflows
        if row is None:
            raise JobNotFound(f"no job {job_id}")
        return row

    @staticmethod
    def _move(row: JobRow, to: JobState) -> None:
        here = JobState(row.state)
        if to not in TRANSITIONS[here]:
            raise InvalidTransition(f"job {row.id} is {here.value}; it cannot become {to.value}")
        row.state = to.value

    def _owned(self, s: Session, job_id: int, owner: str) -> JobRow:
        row = self._row(s, job_id)
        if row.state != JobState.RUNNING.value or row.lease_owner != owner:
            raise LeaseLost(f"job {job_id}: lease held by {row.lease_owner or 'nobody'} ({row.state}), not {owner}")
        return row

    # -- shots and drops ---------------------------------------------------------------
    def upsert_shot(self, shot: ShotId, path: str) -> int:
        """The shot's row, found by its name (the unique key); `path` is its folder relative to the
        studio root (kept up to date: a renamed naming convention, an older row's absolute path)."""
        named = (Shot.show == shot.show) & (Shot.seq == shot.seq) & (Shot.name == shot.shot)
        try:
            with self.sessions.begin() as s:
                row = s.scalar(select(Shot).where(named))
                if row is None:
                    row = Shot(show=shot.show, seq=shot.seq, name=shot.shot, path=path)
                    s.add(row)
                elif row.path != path:
                    row.path = path
                s.flush()
                return row.id
        except IntegrityError:  # another node added the shot at the same moment: it is there now
            with self.sessions() as s:
                found = s.scalar(select(Shot.id).where(named))
            if found is None:
                raise
            return found

    @rides_out_outages
    def drop(self, drop_id: int) -> DropInfo | None:
        with self.sessions() as s:
            return reads.get_drop(reader(s), drop_id)

    def record_drop(self, shot_id: int, signature: str, files: list[str], source: str,
                    key: str | None = None) -> None:
        """Remember a drop that needs no job (its version is already published), so rescans skip it."""
        try:
            with self.sessions.begin() as s:
                s.add(Drop(shot_id=shot_id, key=key or drop_key(signature, None, forced=True),
                           signature=signature, files=files, source=source, detected_at=clock(s)))
        except IntegrityError:
            if not self._drop_exists(shot_id, key):
                raise  # not another node recording the same drop

    def _drop_exists(self, shot_id: int, key: str | None) -> bool:
        with self.sessions() as s:
            return key is not None and s.scalar(select(Drop.id).where(Drop.shot_id == shot_id,
                                                                       Drop.key == key)) is not None

    def last_drop(self, shot_id: int) -> tuple[int, str] | None:
        """(id, signature) of the shot's newest drop."""
        with self.sessions() as s:
            row = s.execute(select(Drop.id, Drop.signature).where(Drop.shot_id == shot_id)
                            .order_by(Drop.id.desc()).limit(1)).first()
            return None if row is None else (row.id, row.signature)

    # -- the verbs ----------------------------------------------------------------------
    def enqueue(self, shot: ShotId, shot_path: str, pipeline: str, *, signature: str = "",
                files: list[str] | None = None, source: str = "watch", priority: int = 0,
                key: str | None = None, requires_gpu: bool = False, node_group: str | None = None) -> Job | None:
        """Record a drop and queue a job for it; the shot's older queued jobs are superseded.
        `key` is the drop's identity (`drop_key`; None: a forced drop, always new): None is returned
        when that drop is already recorded (another node saw it first), and nothing changes."""
        shot_id = self.upsert_shot(shot, shot_path)
        key = key or drop_key(signature, None, forced=True)
        try:
            return self._enqueue(shot_id, pipeline, key, signature, files or [], source, priority, requires_gpu,
                                 node_group)
        except IntegrityError:
            if self._drop_exists(shot_id, key):
                return None
            raise

    def _enqueue(self, shot_id: int, pipeline: str, key: str, signature: str, files: list[str], source: str,
                 priority: int, requires_gpu: bool, node_group: str | None) -> Job:
        with self.sessions.begin() as s:
            # detected_at orders drops for latest.json (publish._is_newer): the database's clock, not this node's
            drop = Drop(shot_id=shot_id, key=key, signature=signature, files=files, source=source,
                        detected_at=clock(s))
            s.add(drop)
            s.flush()
            row = JobRow(shot_id=shot_id, drop_id=drop.id, state=JobState.QUEUED.value, priority=priority,
                         pipeline=pipeline, max_attempts=self.retry_policy.max_attempts, run_after=clock(s),
                         warnings=[], requires_gpu=requires_gpu, node_group=node_group)
            s.add(row)
            s.flush()
            s.execute(update(JobRow)
                      .where(JobRow.shot_id == shot_id, JobRow.state == JobState.QUEUED.value, JobRow.id != row.id)
                      .values(state=JobState.SUPERSEDED.value, superseded_by=row.id, finished_at=clock(s)))
            _wake_daemons(s)
            s.flush()
            s.refresh(row)
            return _job(row)

    def claim_next(self, owner: str, node: str, slot: str, now: datetime | None = None, *, gpu: bool = False,
                   groups: Sequence[str] = ()) -> Job | None:
        """Lease the most urgent runnable job this slot may run to `owner`, or None when there is none.

        A job that requires a GPU goes only to a GPU slot (`gpu`), one that requires a node group only
        to a node of that group (`groups`), and never to a node it already failed on
        `block_node_after` times. `now` (tests) replaces the clock; otherwise PostgreSQL's own clock
        is read inside the claim statement."""
        with self.sessions.begin() as s:
            if now is None:
                now = DB_NOW if on_postgres(s) else clock(s)
            eligible = [or_(JobRow.node_group.is_(None), JobRow.node_group.in_(list(groups)))]
            if not gpu:
                eligible.append(JobRow.requires_gpu.is_(False))
            if self.block_node_after:
                eligible.append(~exists().where(JobNodeFailure.job_id == JobRow.id, JobNodeFailure.node == node,
                                                JobNodeFailure.failures >= self.block_node_after))
            job_id = _claim_one(s, dict(state=JobState.RUNNING.value, lease_owner=owner,
                                        lease_expires_at=now + self.lease, node=node, slot=slot,
                                        attempts=JobRow.attempts + 1, cancel_requested=False,
                                        started_at=func.coalesce(JobRow.started_at, now)), now, eligible)
            return None if job_id is None else _job(self._row(s, job_id))

    @rides_out_outages
    def heartbeat(self, job_id: int, owner: str, *, stage: str | None = None,
                  progress: float | None = None) -> bool:
        """Extend the lease; returns True when a person asked to cancel the job."""
        with self.sessions.begin() as s:
            row = self._owned(s, job_id, owner)
            row.lease_expires_at = clock(s) + self.lease
            if stage is not None:
                row.current_stage = stage
            if progress is not None:
                row.progress = float(progress)
            return bool(row.cancel_requested)

    @rides_out_outages
    def checkpoint(self, job_id: int, owner: str, *, index: int, name: str, seconds: float,
                   checkpoint: str | None, report: dict, progress: float) -> None:
        """A stage finished and its outputs are on disk: a resumed job skips it."""
        with self.sessions.begin() as s:
            row = self._owned(s, job_id, owner)
            s.add(StageRun(job_id=job_id, generation=row.generation, index=index, name=name, state="done",
                           seconds=seconds, checkpoint=checkpoint, report=report))
            row.progress = progress
            row.lease_expires_at = clock(s) + self.lease
            warnings = list(row.warnings or []) + [f"{name}: {w}" for w in report.get("warnings", [])]
            row.warnings = warnings

    @rides_out_outages
    def done_stages(self, job_id: int) -> dict[int, StageRun]:
        """The checkpointed stages of the job's current generation, by pipeline index."""
        with self.sessions() as s:
            row = self._row(s, job_id)
            runs = s.scalars(select(StageRun).where(StageRun.job_id == job_id, StageRun.state == "done",
                                                    StageRun.generation == row.generation)).all()
            return {r.index: r for r in runs}

    @rides_out_outages
    def finish(self, job_id: int, owner: str, *, version: int, output_path: str,
               artifacts: dict[str, str], warnings: list[str] = ()) -> Job:
        with self.sessions.begin() as s:
            row = self._owned(s, job_id, owner)
            self._move(row, JobState.DONE)
            row.warnings = list(row.warnings or []) + list(warnings)
            row.version, row.output_path = version, output_path
            row.progress, row.finished_at, row.error = 1.0, clock(s), None
            row.lease_owner = row.lease_expires_at = None
            s.add_all(Artifact(job_id=job_id, kind=k, path=p) for k, p in artifacts.items())
            s.flush()
            return _job(row)

    @rides_out_outages
    def fail(self, job_id: int, owner: str | None, error: str, *, retryable: bool,
             stage: str | None = None, artifacts: dict[str, str] | None = None) -> Job:
        """Record an error; requeue with backoff when it may pass and attempts are left."""
        with self.sessions.begin() as s:
            row = self._row(s, job_id) if owner is None else self._owned(s, job_id, owner)
            if stage is not None:
                s.add(StageRun(job_id=job_id, generation=row.generation, index=-1, name=stage, state="failed",
                               error=error, report={}))
            row.error = error
            row.lease_owner = row.lease_expires_at = None
            if row.node:
                self._count_node_failure(s, row)
            if retryable and row.attempts < row.max_attempts:
                self._move(row, JobState.QUEUED)
                row.run_after = clock(s) + timedelta(seconds=self.retry_policy.delay(row.attempts))
            else:
                self._move(row, JobState.FAILED)
                row.finished_at = clock(s)
            s.add_all(Artifact(job_id=job_id, kind=k, path=p) for k, p in (artifacts or {}).items())
            s.flush()
            return _job(row)

    def _count_node_failure(self, s: Session, row: JobRow) -> None:
        """One more failure of the job on its node; at `block_node_after` that node stops claiming it
        (Flamenco's rule), and the job says so."""
        record = s.get(JobNodeFailure, (row.id, row.node))
        if record is None:
            record = JobNodeFailure(job_id=row.id, node=row.node, failures=0)
            s.add(record)
        record.failures += 1
        if self.block_node_after and record.failures == self.block_node_after:
            row.warnings = list(row.warnings or []) + [
                f"node {row.node} no longer takes this job: it failed there {record.failures} times"]

    def cancel(self, job_id: int) -> Job:
        """Queued jobs are cancelled at once; a running one is asked to stop at its next heartbeat,
        unless its worker is gone (lease expired, or its node marked down or stopped): then nobody would
        see the request, so it stops now. A worker that died within its lease (its node silent, not yet
        marked down) is not known to be gone: the request stands, and the job is cancelled, not
        requeued, when the lease runs out (`requeue_lost`); `cli.cmd_cancel` says which."""
        with self.sessions.begin() as s:
            now = clock(s)
            row = self._row(s, job_id)
            node_state = s.scalar(select(Node.state).where(Node.name == row.node)) if row.node else None
            lease_over = row.lease_expires_at is None or row.lease_expires_at < now
            orphaned = row.state == JobState.RUNNING.value and (lease_over or node_state in ("down", "stopped"))
            if row.state == JobState.QUEUED.value or orphaned:
                self._move(row, JobState.CANCELLED)
                row.finished_at = now
                row.lease_owner = row.lease_expires_at = None
                if orphaned:
                    row.error = ("cancelled by request (its worker had stopped responding)" if lease_over else
                                 f"cancelled by request (its node {row.node} is {node_state})")
            elif row.state == JobState.RUNNING.value:
                row.cancel_requested = True
            else:
                raise InvalidTransition(f"job {job_id} is {row.state}; only queued or running jobs can be cancelled")
            s.flush()
            return _job(row)

    def set_priority(self, job_id: int, priority: int) -> Job:
        """Change a queued job's priority (higher is claimed first); its state does not change."""
        with self.sessions.begin() as s:
            row = self._row(s, job_id)
            if row.state != JobState.QUEUED.value:
                raise InvalidTransition(f"job {job_id} is {row.state}; only a queued job's priority can change")
            row.priority = int(priority)
            s.flush()
            return _job(row)

    @rides_out_outages
    def warn(self, job_id: int, owner: str, warnings: list[str]) -> None:
        """Add sentences to the job's warnings (files of the drop that were left alone, say)."""
        with self.sessions.begin() as s:
            row = self._owned(s, job_id, owner)
            row.warnings = list(row.warnings or []) + list(warnings)

    @rides_out_outages
    def superseded_while_running(self, job_id: int, owner: str, reason: str) -> Job:
        """The job's drop changed before the job read it: the newer drop's job makes the version."""
        with self.sessions.begin() as s:
            row = self._owned(s, job_id, owner)
            self._move(row, JobState.SUPERSEDED)
            row.finished_at, row.error = clock(s), reason
            row.lease_owner = row.lease_expires_at = None
            s.flush()
            return _job(row)

    @rides_out_outages
    def stopped(self, job_id: int, owner: str) -> Job:
        """The worker stopped a job whose cancellation was requested."""
        with self.sessions.begin() as s:
            row = self._owned(s, job_id, owner)
            self._move(row, JobState.CANCELLED)
            row.finished_at, row.error = clock(s), "cancelled by request"
            row.lease_owner = row.lease_expires_at = None
            s.flush()
            return _job(row)

    @rides_out_outages
    def release(self, job_id: int, owner: str) -> Job:
        """Hand a running job back to the queue at once (graceful shutdown after a checkpoint);
        the interrupted attempt does not count."""
        with self.sessions.begin() as s:
            row = self._owned(s, job_id, owner)
            self._move(row, JobState.QUEUED)
            row.attempts = max(row.attempts - 1, 0)
            row.lease_owner = row.lease_expires_at = None
            row.run_after, row.error = clock(s), None
            _wake_daemons(s)
            s.flush()
            return _job(row)

    def claim(self, job_id: int, owner: str, node: str, slot: str) -> Job:
        """Lease one given job (for `quickart run`, which runs a shot in the foreground)."""
        with self.sessions.begin() as s:
            now = clock(s)
            taken = s.execute(
                update(JobRow).where(JobRow.id == job_id, JobRow.state == JobState.QUEUED.value)
                .values(state=JobState.RUNNING.value, lease_owner=owner, lease_expires_at=now + self.lease,
                        node=node, slot=slot, attempts=JobRow.attempts + 1, started_at=now)
            ).rowcount
            if taken != 1:
                raise InvalidTransition(f"job {job_id} is no longer queued")
            return _job(self._row(s, job_id))

    def retry(self, job_id: int, from_step: int = 0) -> Job:
        """Run a finished job again, as a new generation: from its first step, or from step index
        `from_step`, carrying over the steps before it from its last run (their records here; the
        caller checks that their outputs and the job's input snapshot are still kept on disk)."""
        with self.sessions.begin() as s:
            row = self._row(s, job_id)
            self._move(row, JobState.QUEUED)
            carried = self._carried_steps(s, row, from_step)
            # the snapshot the carried steps were made from: the generation that took it
            inputs_generation = (row.generation if row.inputs_generation is None else row.inputs_generation) \
                if carried else None
            row.attempts, row.generation, row.inputs_generation = 0, row.generation + 1, inputs_generation
            row.error, row.run_after, row.finished_at = None, clock(s), None
            row.cancel_requested, row.progress, row.current_stage = False, 0.0, None
            row.warnings = [f"{r.name}: {w}" for r in carried for w in (r.report or {}).get("warnings", [])]
            s.add_all(StageRun(job_id=job_id, generation=row.generation, index=r.index, name=r.name, state="done",
                               seconds=r.seconds, checkpoint=r.checkpoint, report=r.report) for r in carried)
            _wake_daemons(s)
            s.flush()
            return _job(row)

    @staticmethod
    def _carried_steps(s: Session, row: JobRow, from_step: int) -> list[StageRun]:
        """The records of steps 0..from_step-1 of the job's last run, all of which must have finished."""
        if from_step <= 0:
            return []
        runs = {r.index: r for r in s.scalars(select(StageRun).where(
            StageRun.job_id == row.id, StageRun.generation == row.generation, StageRun.state == "done"))}
        for index in range(from_step):
            if index not in runs:
                raise InvalidTransition(f"job {row.id} cannot start again at step {from_step + 1}: step {index + 1} "
                                        "did not finish in its last run; retry from that step or from the start")
        return [runs[i] for i in range(from_step)]

    def requeue_stale(self, now: datetime | None = None, node: str | None = None,
                      me: str | None = None) -> list[int]:
        """Requeue running jobs whose lease expired (or, with `node`, every running job of that node:
        at daemon start, the jobs its previous life left behind). They resume at their first
        unfinished stage; a job that keeps killing its worker fails after max_attempts.
        With `me` (a daemon's tick), the expired jobs of other nodes that are still heartbeating are left
        to those nodes: a node that died is `requeue_down_nodes`' (which names it as the reason)."""
        with self.sessions.begin() as s:
            db_now = clock(s)
            q = select(JobRow).where(JobRow.state == JobState.RUNNING.value)
            if node:
                return [self.requeue_lost(row, db_now, f"daemon on {node} restarted while this job ran")
                        for row in s.scalars(q.where(JobRow.node == node)).all()]
            live = {name: bool(beating) for name, beating in  # SQLite answers 0/1, NULL heartbeat None
                    s.execute(select(Node.name, Node.looking_after_its_jobs(db_now, self.lease))).all()}
            expired = s.scalars(q.where(JobRow.lease_expires_at < (now or db_now))).all()
            return [self.requeue_lost(row, db_now, f"node {row.node} down" if live.get(row.node) is False
                                       else f"worker {row.lease_owner} stopped responding (lease expired)")
                    for row in expired if me is None or row.node == me or not live.get(row.node)]

    def requeue_lost(self, row: JobRow, now: datetime, lost: str) -> int:
        """A running job whose worker is gone: back to the queue (cancelled if a person asked, failed when
        out of attempts), with the reason in its error."""
        row.lease_owner = row.lease_expires_at = None
        if row.cancel_requested:  # a person asked to stop it: never run it again
            self._move(row, JobState.CANCELLED)
            row.error, row.finished_at = f"{lost}; cancelled by request", now
        elif row.attempts >= row.max_attempts:
            self._move(row, JobState.FAILED)
            row.error, row.finished_at = f"{lost}; gave up after {row.attempts} attempts", now
        else:
            self._move(row, JobState.QUEUED)
            row.error, row.run_after = f"{lost}; requeued", now
            _wake_daemons(object_session(row))
        return row.id

    # -- reading (the SQL lives in db/reads.py, shared with the status commands) -----------------
    @rides_out_outages
    def get(self, job_id: int) -> Job:
        with self.sessions() as s:
            return reads.get_job(reader(s), job_id)

    def list(self, states: list[JobState] | None = None, shot: str | None = None, limit: int = 200) -> list[Job]:
        with self.sessions() as s:
            return reads.list_jobs(reader(s), states, shot, limit)

    def stage_runs(self, job_id: int) -> list[dict]:
        with self.sessions() as s:
            return reads.stage_runs(reader(s), job_id)

    def artifacts(self, job_id: int) -> dict[str, str]:
        with self.sessions() as s:
            return reads.artifacts(reader(s), job_id)

    def counts(self) -> dict[str, int]:
        with self.sessions() as s:
            return reads.count_states(reader(s))
