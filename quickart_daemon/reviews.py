"""Reviews of a version (issue 24, the web page as a review tool): notes, each with a verdict or none.

    approved    the version is approved (the tracker's task goes to `tracker.approved_status`, "done")
    needs_work  it needs work          (the task goes to `tracker.retake_status`, "retake")
    note        a note alone           (the task keeps its status)

A version's current approval is its latest review with a verdict (approved or needs_work); a later note
does not change it. Reviews live in the `reviews` table, stamped by the database's clock, and are never
edited. When a tracker is configured, each review is also put in the tracker outbox (outbox.py) as the
event `review:<id>` of its version, in the same transaction, so it reaches the tracker once, whatever
the tracker's health (the Kitsu module posts it as a comment on the shot's task, with the status).

Reads take `run(sql, params)` like db/reads.py (the web page's reader); the write takes a session
factory (the web page's queue's).
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select

from .db.connector import clock
from .db.models import Delivery, JobRow, Review, VersionRow
from .errors import QuickArtError
from .jobs import parse_when
from .naming import ShotId

#: the verdicts a review may carry, and how the page says them
STATES = {"approved": "approved", "needs_work": "needs work", "note": "note"}
VERDICTS = ("approved", "needs_work")
#: the longest note (characters) and author name taken
MAX_TEXT = 4000
MAX_AUTHOR = 64


class ReviewRefused(QuickArtError):
    """A review the page cannot take (a state it does not know, a note too long)."""


def check(state, text, author) -> tuple[str, str, str]:
    """(state, text, author) as stored, or ReviewRefused in one sentence."""
    if not isinstance(state, str) or state not in STATES:
        raise ReviewRefused(f"state: one of {', '.join(STATES)}")
    if text is None:
        text = ""
    if not isinstance(text, str):
        raise ReviewRefused("text: the note, as text")
    text = text.strip()
    if len(text) > MAX_TEXT:
        raise ReviewRefused(f"the note is {len(text):,} characters long; at most {MAX_TEXT:,} are kept")
    if state == "note" and not text:
        raise ReviewRefused("a note needs its text")
    if not isinstance(author, str) or not author.strip():
        raise ReviewRefused("author: a name")
    author = " ".join(author.split())
    if len(author) > MAX_AUTHOR or not author.isprintable():
        raise ReviewRefused(f"author: a name of at most {MAX_AUTHOR} printable characters")
    return state, text, author


def add(cfg, sessions, shot_id: int, shot: ShotId, version: int, state: str, text: str, author: str) -> dict:
    """Store one review of `shot`'s `version` (and, with a tracker, put it in the outbox); the review as
    `list_reviews` gives it."""
    from .outbox import review_payload
    state, text, author = check(state, text, author)
    with sessions.begin() as s:
        now = clock(s)
        row = Review(shot_id=shot_id, version=version, state=state, text=text, author=author, created_at=now)
        s.add(row)
        s.flush()
        review = _view(row.id, state, text, author, now)
        if cfg.tracker is not None:
            job_id = s.scalar(select(VersionRow.job_id).where(VersionRow.shot_id == shot_id,
                                                              VersionRow.number == version))
            pipeline = s.scalar(select(JobRow.pipeline).where(JobRow.id == job_id)) if job_id else None
            payload = review_payload(cfg, shot, version, review, job_id, pipeline)
            s.add(Delivery(shot_id=shot_id, version=version, event=f"review:{row.id}", tracker=cfg.tracker.kind,
                           job_id=None, state="pending", payload=payload, attempts=0, next_attempt_at=now,
                           created_at=now))
    return review


def list_reviews(run, shot: ShotId, version: int) -> list[dict]:
    """The version's reviews, oldest first."""
    rows = run("SELECT r.id, r.state, r.text, r.author, r.created_at FROM reviews r JOIN shots s ON s.id = r.shot_id "
               "WHERE s.show = :show AND s.seq = :seq AND s.name = :name AND r.version = :version ORDER BY r.id",
               {"show": shot.show, "seq": shot.seq, "name": shot.shot, "version": version})
    return [_view(r["id"], r["state"], r["text"], r["author"], parse_when(r["created_at"])) for r in rows]


def shot_summaries(run, shot: ShotId) -> dict[int, dict]:
    """{version: `summary` of its reviews} for every reviewed version of the shot, in one query (the
    shot page's version list shows each version's badge)."""
    rows = run("SELECT r.id, r.version, r.state, r.text, r.author, r.created_at FROM reviews r "
               "JOIN shots s ON s.id = r.shot_id WHERE s.show = :show AND s.seq = :seq AND s.name = :name "
               "ORDER BY r.version, r.id", {"show": shot.show, "seq": shot.seq, "name": shot.shot})
    by_version: dict[int, list[dict]] = {}
    for r in rows:
        by_version.setdefault(int(r["version"]), []).append(
            _view(r["id"], r["state"], r["text"], r["author"], parse_when(r["created_at"])))
    return {version: summary(found) for version, found in by_version.items()}


def current(reviews: list[dict]) -> dict | None:
    """The version's current approval: its latest review with a verdict (None: not reviewed yet)."""
    return next((r for r in reversed(reviews) if r["state"] in VERDICTS), None)


def summary(reviews: list[dict]) -> dict:
    """What the version's description carries: its approval and how many notes it has."""
    approval = current(reviews)
    return {"approval": None if approval is None else {k: approval[k] for k in ("state", "label", "author", "at")},
            "notes": sum(1 for r in reviews if r["text"])}


def _view(review_id: int, state: str, text: str, author: str, at: datetime | None) -> dict:
    return {"id": review_id, "state": state, "label": STATES.get(state, state), "text": text, "author": author,
            "at": at.isoformat(timespec="seconds") + "Z" if at else None}
