"""SQLAlchemy 2 models: shots, drops, jobs, stage runs, artifacts, nodes and notices.

Times are naive UTC (``utcnow()``), which SQLite and PostgreSQL store alike. The job
state column is written by ``quickart_daemon.queue`` alone.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import (JSON, Boolean, DateTime, Float, ForeignKey, Index, Integer, String, Text, UniqueConstraint,
                        and_, false, not_)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

from ..jobs import utcnow  # noqa: F401  (one clock for rows and readers; re-exported for the queue)


class Base(DeclarativeBase):
    pass


class Shot(Base):
    __tablename__ = "shots"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    show: Mapped[str] = mapped_column(String(64))
    seq: Mapped[str] = mapped_column(String(64))
    name: Mapped[str] = mapped_column(String(64))
    path: Mapped[str] = mapped_column(String(1024), unique=True)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    __table_args__ = (UniqueConstraint("show", "seq", "name", name="uq_shots_show_seq_name"),)


class Drop(Base):
    """One complete state of a shot's inputs, as seen by the watcher or a manual submit.

    `key` is the drop's identity, unique per shot, so every node watching the same root records a
    drop once (see `queue.drop_key`)."""

    __tablename__ = "drops"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    shot_id: Mapped[int] = mapped_column(ForeignKey("shots.id", ondelete="CASCADE"), index=True)
    key: Mapped[str | None] = mapped_column(String(128), nullable=True)
    signature: Mapped[str] = mapped_column(String(64))
    files: Mapped[list] = mapped_column(JSON, default=list)
    source: Mapped[str] = mapped_column(String(16), default="watch")  # watch | submit | run
    detected_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    __table_args__ = (Index("uq_drops_shot_key", "shot_id", "key", unique=True),)


class JobRow(Base):
    __tablename__ = "jobs"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    shot_id: Mapped[int] = mapped_column(ForeignKey("shots.id", ondelete="CASCADE"))
    drop_id: Mapped[int | None] = mapped_column(ForeignKey("drops.id", ondelete="SET NULL"), nullable=True)
    state: Mapped[str] = mapped_column(String(16), default="queued")
    priority: Mapped[int] = mapped_column(Integer, default=0)
    pipeline: Mapped[str] = mapped_column(String(128))
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    max_attempts: Mapped[int] = mapped_column(Integer, default=3)
    generation: Mapped[int] = mapped_column(Integer, default=0)  # bumped by a manual retry
    # a retry from a chosen stage reads the input snapshot of this earlier generation (None: its own)
    inputs_generation: Mapped[int | None] = mapped_column(Integer, nullable=True)
    run_after: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    lease_owner: Mapped[str | None] = mapped_column(String(255), nullable=True)
    lease_expires_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)
    node: Mapped[str | None] = mapped_column(String(255), nullable=True)
    slot: Mapped[str | None] = mapped_column(String(64), nullable=True)
    current_stage: Mapped[str | None] = mapped_column(String(64), nullable=True)
    progress: Mapped[float] = mapped_column(Float, default=0.0)
    cancel_requested: Mapped[bool] = mapped_column(Boolean, default=False)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    warnings: Mapped[list] = mapped_column(JSON, default=list)
    version: Mapped[int | None] = mapped_column(Integer, nullable=True)
    output_path: Mapped[str | None] = mapped_column(String(1024), nullable=True)
    superseded_by: Mapped[int | None] = mapped_column(Integer, nullable=True)
    requires_gpu: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())  # CPU slots never claim it
    node_group: Mapped[str | None] = mapped_column(String(64), nullable=True)  # only nodes in this group claim it
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)
    finished_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)

    shot: Mapped[Shot] = relationship(lazy="joined")
    stage_runs: Mapped[list["StageRun"]] = relationship(back_populates="job", order_by="StageRun.id",
                                                        cascade="all, delete-orphan")
    __table_args__ = (
        # matches claim_next's ORDER BY priority DESC, id: SQLite walks the index instead of sorting the queue
        Index("ix_jobs_claim", "state", priority.desc(), "id"),
        Index("ix_jobs_shot_state", "shot_id", "state"),
    )


class StageRun(Base):
    """One stage of one job: the checkpoint after which a resumed job skips it."""

    __tablename__ = "stage_runs"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    job_id: Mapped[int] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"), index=True)
    generation: Mapped[int] = mapped_column(Integer, default=0)
    index: Mapped[int] = mapped_column(Integer)
    name: Mapped[str] = mapped_column(String(64))
    state: Mapped[str] = mapped_column(String(16))  # done | failed
    seconds: Mapped[float] = mapped_column(Float, default=0.0)
    checkpoint: Mapped[str | None] = mapped_column(String(1024), nullable=True)
    report: Mapped[dict] = mapped_column(JSON, default=dict)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    finished_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    job: Mapped[JobRow] = relationship(back_populates="stage_runs")


class JobNodeFailure(Base):
    """How often a job failed on a node: past `retry.block_node_after` that node no longer claims it."""

    __tablename__ = "job_node_failures"
    job_id: Mapped[int] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"), primary_key=True)
    node: Mapped[str] = mapped_column(String(255), primary_key=True)
    failures: Mapped[int] = mapped_column(Integer)


class Artifact(Base):
    __tablename__ = "artifacts"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    job_id: Mapped[int] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"), index=True)
    kind: Mapped[str] = mapped_column(String(32))  # version | otio | contact | manifest | sequence_otio
    path: Mapped[str] = mapped_column(String(1024))
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)


class VersionRow(Base):
    """A version number given to a job of a shot: the database allocates them (unique per shot), so two
    nodes publishing the same shot never take one number, whatever the shared drive's locks do."""

    __tablename__ = "versions"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    shot_id: Mapped[int] = mapped_column(ForeignKey("shots.id", ondelete="CASCADE"))
    number: Mapped[int] = mapped_column(Integer)
    job_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    __table_args__ = (Index("uq_versions_shot_number", "shot_id", "number", unique=True),)


class Node(Base):
    """A daemon (one per render node): what `quickart status` and `quickart nodes` read.

    state: up (heartbeating) | down (silent past lease_seconds: another node marked it so and put
    its running jobs back in the queue) | stopped (shut down cleanly)."""

    __tablename__ = "nodes"
    name: Mapped[str] = mapped_column(String(255), primary_key=True)
    pid: Mapped[int] = mapped_column(Integer)
    started_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    heartbeat_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    slots: Mapped[list] = mapped_column(JSON, default=list)
    watch_mode: Mapped[str | None] = mapped_column(String(16), nullable=True)
    stopped_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)
    gpus: Mapped[int | None] = mapped_column(Integer, nullable=True, default=0)
    version: Mapped[str | None] = mapped_column(String(32), nullable=True)
    state: Mapped[str | None] = mapped_column(String(16), nullable=True, default="up")
    groups: Mapped[list | None] = mapped_column(JSON, nullable=True, default=list)  # its node_groups (config)

    @classmethod
    def looking_after_its_jobs(cls, now: datetime, lease: timedelta):
        """The queue's one rule (SQL) for a node whose running jobs are its own: up, with a heartbeat
        within the lease of `now` (the database's clock). A node failing it for a job whose lease ran out
        is dead: `nodes.requeue_down_nodes` marks it down, `JobQueue.requeue_stale` takes the job back."""
        return and_(cls.state == "up", cls.heartbeat_at >= now - lease)

    @classmethod
    def silent(cls, now: datetime, lease: timedelta):
        """Up, but not looking after its jobs any more (`looking_after_its_jobs` failed)."""
        return and_(cls.state == "up", not_(cls.looking_after_its_jobs(now, lease)))


class Notice(Base):
    """Something in a watched folder that was left alone (a name that does not parse, an unsafe zip).
    One row per distinct (path, message), however many nodes see it: `key` is its hash, and
    `created_at` the last time a node reported it."""

    __tablename__ = "notices"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    key: Mapped[str | None] = mapped_column(String(64), nullable=True)
    path: Mapped[str] = mapped_column(String(1024))
    message: Mapped[str] = mapped_column(Text)
    node: Mapped[str | None] = mapped_column(String(255), nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow, index=True)
    __table_args__ = (Index("uq_notices_key", "key", unique=True),)


class Delivery(Base):
    """The tracker outbox (quickart_daemon/outbox.py): one event of a shot's version for one tracker, put
    here when the version is published and delivered by the daemon's delivery loop until the tracker takes
    it. (shot, version, event, tracker) is unique, so an event is delivered once however often it is put.

    state: pending (not yet delivered; `next_attempt_at` says when it is tried next, `last_error` why the
    last try failed) | done | failed (the tracker refused it for good: a project it does not have, say)."""

    __tablename__ = "deliveries"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    shot_id: Mapped[int] = mapped_column(ForeignKey("shots.id", ondelete="CASCADE"))
    version: Mapped[int] = mapped_column(Integer)  # the version number; 0 for a job's failure
    event: Mapped[str] = mapped_column(String(64))  # published | failed:job<N>
    tracker: Mapped[str] = mapped_column(String(64))  # tracker.kind
    job_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    state: Mapped[str] = mapped_column(String(16), default="pending")
    payload: Mapped[dict] = mapped_column(JSON, default=dict)  # the event given to the tracker
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    last_error: Mapped[str | None] = mapped_column(Text, nullable=True)
    refs: Mapped[dict | None] = mapped_column(JSON, nullable=True)  # the tracker's ids of what it made
    claimed_by: Mapped[str | None] = mapped_column(String(255), nullable=True)
    claim_expires_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    delivered_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)
    __table_args__ = (
        Index("uq_deliveries_version_event_tracker", "shot_id", "version", "event", "tracker", unique=True),
        Index("ix_deliveries_due", "state", "next_attempt_at"),
    )


class Review(Base):
    """A note on a shot's version from the review page (quickart_daemon/reviews.py), with its verdict:
    approved | needs_work | note (a note alone: no verdict). A version's current approval is its latest
    review with a verdict. `created_at` is the database's clock; `author` the writer as the page knows it."""

    __tablename__ = "reviews"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    shot_id: Mapped[int] = mapped_column(ForeignKey("shots.id", ondelete="CASCADE"))
    version: Mapped[int] = mapped_column(Integer)  # the version number (1 for v001)
    state: Mapped[str] = mapped_column(String(16))  # approved | needs_work | note
    text: Mapped[str] = mapped_column(Text)  # at most reviews.MAX_TEXT characters (checked before)
    author: Mapped[str] = mapped_column(String(128))
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    __table_args__ = (Index("ix_reviews_shot_version", "shot_id", "version", "id"),)


class TrackerStatusRow(Base):
    """A version's status as the production tracker has it, read back by the daemon (tracker_status.py):
    the task status's short and long names and colour, whether it counts as approved, when the tracker
    set it and a link to the task. One row per (shot, version, tracker), rewritten when the tracker's
    answer changes; `read_at` (the database's clock) is when QuickArt last wrote it."""

    __tablename__ = "tracker_statuses"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    shot_id: Mapped[int] = mapped_column(ForeignKey("shots.id", ondelete="CASCADE"))
    version: Mapped[int] = mapped_column(Integer)  # the version number (1 for v001)
    tracker: Mapped[str] = mapped_column(String(64))  # tracker.kind
    status: Mapped[str] = mapped_column(String(64))  # the tracker's short name ("wfa", "done")
    name: Mapped[str] = mapped_column(String(128))  # its long name ("Waiting For Approval")
    color: Mapped[str] = mapped_column(String(16))  # "#rrggbb"
    approved: Mapped[bool] = mapped_column(Boolean)
    at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)  # when the tracker set it (UTC)
    url: Mapped[str | None] = mapped_column(Text, nullable=True)  # the task on the tracker's site
    read_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    __table_args__ = (Index("uq_tracker_statuses_version", "shot_id", "version", "tracker", unique=True),)
