"""Every read of the queue, as plain SQL: one definition serves the daemon and the status commands.

Each function takes `run(sql, params) -> rows as mappings`. The managers (`JobQueue`, `NodeRegistry`,
`NoticeBoard`) pass one that executes through their SQLAlchemy session (`connector.reader`);
`quickart status`, `jobs` and `job` on SQLite pass one over the standard library's sqlite3
(`open_reader`), so a fresh process answers without importing SQLAlchemy (about 0.25 s of a 0.5 s
start). The SQL is portable (named parameters, no dialect functions) and the column names are those
of `db/models.py`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import datetime, timezone
from functools import lru_cache
from typing import Any

from ..errors import JobNotFound, QuickArtError
from ..jobs import DropInfo, Job, JobState, NodeInfo, NoticeInfo, parse_json, parse_when
from ..naming import ShotId

Run = Callable[[str, dict[str, Any]], Sequence[Mapping[str, Any]]]

JOB_SELECT = """
SELECT j.*, s.show AS shot_show, s.seq AS shot_seq, s.name AS shot_name, s.path AS shot_path
FROM jobs j JOIN shots s ON s.id = j.shot_id
"""


#: the largest id (and LIMIT) the databases store: a 64-bit signed integer. A bigger number typed
#: by a person is "no job N", not an overflow inside the driver
MAX_ID = 2**63 - 1


def get_job(run: Run, job_id: int) -> Job:
    if not 1 <= job_id <= MAX_ID:
        raise JobNotFound(f"no job {job_id}")
    rows = run(JOB_SELECT + " WHERE j.id = :id", {"id": job_id})
    if not rows:
        raise JobNotFound(f"no job {job_id}")
    return Job.from_record(rows[0])


def list_jobs(run: Run, states: list[JobState] | None = None, shot: str | None = None,
              limit: int = 200) -> list[Job]:
    """Newest first; `shot` matches a shot name, its folder, or show/seq/shot."""
    where, params = [], {"limit": limit}
    if states:
        names = [f"state{i}" for i in range(len(states))]
        where.append(f"j.state IN ({', '.join(':' + n for n in names)})")
        params.update({n: st.value for n, st in zip(names, states)})
    if shot:
        where.append("(s.name = :shot OR s.path = :shot OR s.show || '/' || s.seq || '/' || s.name = :shot)")
        params["shot"] = shot
    sql = JOB_SELECT + (" WHERE " + " AND ".join(where) if where else "") + " ORDER BY j.id DESC LIMIT :limit"
    return [Job.from_record(r) for r in run(sql, params)]


def get_drop(run: Run, drop_id: int) -> DropInfo | None:
    rows = run("SELECT id, signature, detected_at FROM drops WHERE id = :id", {"id": drop_id})
    return DropInfo.from_record(rows[0]) if rows else None


def count_states(run: Run) -> dict[str, int]:
    return {r["state"]: r["n"] for r in run("SELECT state, COUNT(*) AS n FROM jobs GROUP BY state", {})}


def stage_runs(run: Run, job_id: int) -> list[dict]:
    rows = run("SELECT * FROM stage_runs WHERE job_id = :id ORDER BY id", {"id": job_id})
    return [{"generation": r["generation"], "index": r["index"], "stage": r["name"], "state": r["state"],
             "seconds": round(r["seconds"], 3), "error": r["error"], "report": parse_json(r["report"]),
             "finished_at": parse_when(r["finished_at"]).isoformat(timespec="seconds") + "Z"} for r in rows]


def artifacts(run: Run, job_id: int) -> dict[str, str]:
    return {r["kind"]: r["path"] for r in run("SELECT kind, path FROM artifacts WHERE job_id = :id ORDER BY id",
                                              {"id": job_id})}


def nodes(run: Run) -> list[NodeInfo]:
    """Every node with the number of its running jobs (its slots in use)."""
    sql = ("SELECT n.*, (SELECT COUNT(*) FROM jobs j WHERE j.node = n.name AND j.state = 'running') AS running "
           "FROM nodes n ORDER BY n.name")
    return [NodeInfo.from_record(r) for r in run(sql, {})]


def database_now(run: Run) -> datetime:
    """The database server's current time as naive UTC: the clock that wrote every heartbeat and lease
    (`db.connector.clock`), so a reader's own clock never decides whether a node is alive. CURRENT_TIMESTAMP
    is portable: SQLite gives UTC text (whole seconds), PostgreSQL a time with its zone."""
    now = parse_when(run("SELECT CURRENT_TIMESTAMP AS now", {})[0]["now"])
    return now.astimezone(timezone.utc).replace(tzinfo=None) if now.tzinfo is not None else now


def notices(run: Run, limit: int = 10) -> list[NoticeInfo]:
    return [NoticeInfo.from_record(r) for r in run("SELECT * FROM notices ORDER BY created_at DESC, id DESC LIMIT :limit",
                                                   {"limit": limit})]


@contextmanager
def open_reader(url: str, busy_timeout_ms: int) -> Iterator[Run]:
    """A `Run` for the status commands: the standard library's sqlite3 on a SQLite file (which must
    exist: a reader never creates a database), SQLAlchemy for any other database."""
    if url.startswith("sqlite:///") and ":memory:" not in url:
        import sqlite3

        path = url[len("sqlite:///"):]
        try:
            con = sqlite3.connect(f"file:{path}?mode=rw", uri=True, timeout=busy_timeout_ms / 1000)
        except sqlite3.OperationalError:
            raise QuickArtError(f"database {url}: no such database file; start the daemon "
                                "or run `quickart db upgrade`") from None
        con.row_factory = sqlite3.Row
        try:
            yield lambda sql, params: con.execute(sql, params).fetchall()
        finally:
            con.close()
        return
    from sqlalchemy import text

    with _engine(url, busy_timeout_ms).connect() as conn:
        yield lambda sql, params: conn.execute(text(sql), params).mappings().all()


@lru_cache(maxsize=4)
def _engine(url: str, busy_timeout_ms: int):
    """One engine (and its connection pool) per database for the life of the process: the web page
    reads on every request and event, and a new engine would open a new connection each time."""
    from .session import make_engine
    return make_engine(url, busy_timeout_ms)


def live_jobs(run: Run, finished_since, after_id: int) -> list[Job]:
    """Jobs that may have changed lately, for the web page's live farm view: every queued or running
    job, those finished since `finished_since`, and those newer than `after_id` (no column records
    every change, so the page's feed compares these snapshots)."""
    return [Job.from_record(r) for r in run(
        JOB_SELECT + " WHERE j.state IN ('queued', 'running') OR j.finished_at >= :since OR j.id > :after"
                     " ORDER BY j.id", {"since": finished_since, "after": after_id})]


#: every shot with what the shot browser shows of it, in one statement (the page lists 1,000 shots and
#: more: a query per shot would be 1,000 round trips). The newest job gives the job state; the newest
#: version number any job published is "the latest version" (latest.json may point at an older one when an
#: older drop was published last, which is rare, and reading every shot's latest.json on the share would
#: cost more than the whole list); that version's current approval is its latest review with a verdict
#: (reviews.current) and its tracker delivery the newest "published" row of the outbox.
SHOTS_SQL = """
WITH latest AS (SELECT shot_id, MAX(id) AS last_job, MAX(version) AS version FROM jobs GROUP BY shot_id),
verdict AS (SELECT shot_id, version, MAX(id) AS review_id FROM reviews
            WHERE state IN ('approved', 'needs_work') GROUP BY shot_id, version),
delivered AS (SELECT shot_id, version, MAX(id) AS delivery_id FROM deliveries
              WHERE event = 'published' GROUP BY shot_id, version)
SELECT s.id, s.show, s.seq, s.name, l.last_job, l.version,
       j.state AS job_state, j.current_stage, j.progress, j.error, j.finished_at,
       r.state AS approval, r.author AS approval_author, r.created_at AS approval_at,
       d.state AS delivery_state, d.tracker AS delivery_tracker, d.attempts AS delivery_attempts,
       d.last_error AS delivery_error
FROM shots s
LEFT JOIN latest l ON l.shot_id = s.id
LEFT JOIN jobs j ON j.id = l.last_job
LEFT JOIN verdict v ON v.shot_id = s.id AND v.version = l.version
LEFT JOIN reviews r ON r.id = v.review_id
LEFT JOIN delivered dv ON dv.shot_id = s.id AND dv.version = l.version
LEFT JOIN deliveries d ON d.id = dv.delivery_id
{where}ORDER BY s.show, s.seq, s.name
"""


def list_shots(run: Run, shot: ShotId | None = None) -> list[dict]:
    """Every shot (or only `shot`: the shot browser adding one it learns of from the live feed), by show,
    sequence and name, with its newest job's id and state, its newest version, that version's approval and
    its tracker delivery (None where there is none): see SHOTS_SQL."""
    where, params = "", {}
    if shot is not None:
        where = "WHERE s.show = :show AND s.seq = :seq AND s.name = :name\n"
        params = {"show": shot.show, "seq": shot.seq, "name": shot.shot}
    return [dict(r) | {"finished_at": parse_when(r["finished_at"]), "approval_at": parse_when(r["approval_at"])}
            for r in run(SHOTS_SQL.format(where=where), params)]
