"""Notices: problems found in the watched folders (a file that is not a QuickArt input, a misnamed shot
folder), recorded once however many nodes watching the same root report them; `quickart status` and
the daemon's log show them."""

from __future__ import annotations

import hashlib

from sqlalchemy import update
from sqlalchemy.exc import IntegrityError

from .db import reads
from .db.connector import Connector, clock, reader
from .db.models import Notice
from .jobs import NoticeInfo


class NoticeBoard:
    def __init__(self, db: Connector):
        self.db = db

    def record(self, path: str, message: str, node: str | None = None) -> None:
        """Record a problem once, however many nodes report it: a repeat only updates when and by whom
        it was last reported."""
        key = hashlib.sha256(f"{path}\0{message}".encode()).hexdigest()
        try:
            with self.db.sessions.begin() as s:
                s.add(Notice(key=key, path=path, message=message, node=node, created_at=clock(s)))
        except IntegrityError:
            with self.db.sessions.begin() as s:
                s.execute(update(Notice).where(Notice.key == key).values(node=node, created_at=clock(s)))

    def latest(self, limit: int = 10) -> list[NoticeInfo]:
        with self.db.sessions() as s:
            return reads.notices(reader(s), limit)
