"""What the studio decided about each version, read back from the production tracker (issue 24: statuses
and approvals shown next to each version).

    daemon's delivery loop, every tracker.read_seconds ──read_back──▶ tracker.statuses(delivered versions)
        ──▶ tracker_statuses rows (one per shot, version and tracker; rewritten when the answer changes)
    web page, `quickart status` ──latest / latest_by_shot──▶
        {"status", "name", "color", "approved", "at", "url", "version"}

Only versions the tracker took (a `published` delivery that is done, with the tracker's ids in its `refs`)
are asked about. The read runs in the daemon's delivery thread, never in a job: a tracker that is down
or refuses the login costs a log line and the last statuses read stay shown until the next read works.

Reads take `run(sql, params)` like db/reads.py (the web page's and the status command's reader, plain SQL:
no SQLAlchemy import for `quickart status`); the read-back takes a session factory (the daemon's queue's).
"""

from __future__ import annotations

import logging
from datetime import datetime

from .jobs import parse_when
from .naming import ShotId
from .trackers import StatusRequest, TrackerStatus, reads_back

log = logging.getLogger("quickart.tracker.status")

def read_back(sessions, tracker) -> int:
    """One read: ask the tracker for the status of every version delivered to it and store what changed.
    Returns how many rows were written. Raises what the tracker raises (the caller logs it)."""
    from sqlalchemy import select  # here, not above: the readers below serve `quickart status` without it
    from sqlalchemy.exc import IntegrityError

    from .db.models import Delivery, Shot
    if not reads_back(tracker):
        return 0
    with sessions() as s:
        delivered = s.execute(
            select(Delivery.shot_id, Delivery.version, Delivery.payload, Delivery.refs, Shot.show, Shot.seq, Shot.name)
            .join(Shot, Shot.id == Delivery.shot_id)
            .where(Delivery.tracker == tracker.name, Delivery.event == "published", Delivery.state == "done",
                   Delivery.refs.is_not(None))
            .order_by(Delivery.shot_id, Delivery.version)).all()
    if not delivered:
        return 0
    requests = [StatusRequest(show=r.show, seq=r.seq, shot=r.name, version=r.version,
                              pipeline=(r.payload or {}).get("pipeline") or "", refs=dict(r.refs or {}))
                for r in delivered]
    found = tracker.statuses(requests)
    if len(found) != len(requests):
        raise ValueError(f"tracker {tracker.name}: {len(found)} statuses for {len(requests)} versions")
    try:
        return _store(sessions, tracker.name, [(r.shot_id, r.version) for r in delivered], found)
    except IntegrityError:  # another daemon wrote the same new row first: the next read updates it
        return 0


def _store(sessions, tracker: str, versions: list[tuple[int, int]], found: list[TrackerStatus | None]) -> int:
    from sqlalchemy import select

    from .db.connector import clock
    from .db.models import TrackerStatusRow
    written = 0
    with sessions.begin() as s:
        now = clock(s)
        have = {(row.shot_id, row.version): row
                for row in s.scalars(select(TrackerStatusRow).where(TrackerStatusRow.tracker == tracker))}
        for (shot_id, version), answer in zip(versions, found):
            if answer is None:  # nothing to tell (a task deleted on the tracker): the last status read stays
                continue
            values = {"status": answer.status[:64], "name": answer.name[:128], "color": answer.color[:16],
                      "approved": bool(answer.approved), "at": answer.at, "url": answer.url}
            row = have.get((shot_id, version))
            if row is None:
                s.add(TrackerStatusRow(shot_id=shot_id, version=version, tracker=tracker, read_at=now, **values))
            elif any(getattr(row, k) != v for k, v in values.items()):
                for k, v in values.items():
                    setattr(row, k, v)
                row.read_at = now
            else:
                continue
            written += 1
    if written:
        log.info("action=tracker_statuses_read tracker=%s changed=%d", tracker, written)
    return written


# -- what the web page and `quickart status` show ---------------------------------------------------

_SELECT = ("SELECT s.show, s.seq, s.name AS shot, t.version, t.status, t.name, t.color, t.approved, t.at, t.url "
           "FROM tracker_statuses t JOIN shots s ON s.id = t.shot_id")


def latest(run, shot: ShotId, version: int) -> dict | None:
    """The version's status on the tracker as last read, or None (not delivered, or not read yet):
    {"status", "name", "color", "approved", "at", "url", "version"}."""
    rows = run(_SELECT + " WHERE s.show = :show AND s.seq = :seq AND s.name = :name AND t.version = :version "
               "ORDER BY t.read_at DESC, t.id DESC", {"show": shot.show, "seq": shot.seq, "name": shot.shot,
                                                      "version": version})
    return _view(rows[0]) if rows else None


def of_shot(run, shot: ShotId) -> dict[int, dict]:
    """{version: its status on the tracker as last read} for every version of the shot the tracker has
    answered about, in one query (the shot page's version list)."""
    rows = run(_SELECT + " WHERE s.show = :show AND s.seq = :seq AND s.name = :name ORDER BY t.read_at, t.id",
               {"show": shot.show, "seq": shot.seq, "name": shot.shot})
    return {int(r["version"]): _view(r) for r in rows}  # read last wins (a second tracker)


def latest_by_shot(run) -> dict[str, dict]:
    """Each shot's newest version's status on the tracker, by "show/seq/shot" (str(ShotId), the shot's
    name as the job records carry it); shots without one are absent."""
    rows = run(_SELECT + " WHERE t.version = (SELECT MAX(n.version) FROM tracker_statuses n "
               "WHERE n.shot_id = t.shot_id) ORDER BY t.read_at, t.id", {})
    return {f"{r['show']}/{r['seq']}/{r['shot']}": _view(r) for r in rows}  # read last wins (a second tracker)


def _view(row) -> dict:
    at = parse_when(row["at"])
    return {"status": row["status"], "name": row["name"], "color": row["color"], "approved": bool(row["approved"]),
            "at": _iso(at), "url": row["url"], "version": int(row["version"])}


def _iso(at: datetime | None) -> str | None:
    return at.isoformat(timespec="seconds") + "Z" if at is not None else None
