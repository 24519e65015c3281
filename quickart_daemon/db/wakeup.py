"""Waking idle daemons when work arrives: LISTEN/NOTIFY on PostgreSQL, the poll interval elsewhere.

The queue NOTIFYs `CHANNEL` in the transaction that makes a job runnable (delivered at commit);
each daemon's loop waits on `Wakeup.wait`, which returns at the first notification or after
`timeout` (the polling fallback, and the only path on SQLite). A lost connection (the server
restarting) is logged once and retried at the next wait; meanwhile the daemon polls.
"""

from __future__ import annotations

import logging
import threading
import time

log = logging.getLogger("quickart.wakeup")

#: the channel the queue notifies when a job becomes runnable
CHANNEL = "quickart_jobs"


def is_postgres(url: str) -> bool:
    return url.startswith("postgresql")


class Wakeup:
    """Sleep until a job may be runnable (PostgreSQL notification) or `timeout` passes."""

    def __init__(self, url: str):
        self.url = url
        self._conn = None
        self._broken = False  # the outage is logged once, not at every wait

    def _listen(self):
        if self._conn is None:
            import psycopg
            from sqlalchemy.engine import make_url

            conninfo = make_url(self.url).set(drivername="postgresql").render_as_string(hide_password=False)
            self._conn = psycopg.connect(conninfo, autocommit=True, connect_timeout=5)
            self._conn.execute(f"LISTEN {CHANNEL}")
            if self._broken:
                log.info("action=listen_restored channel=%s", CHANNEL)
            self._broken = False
        return self._conn

    def wait(self, timeout: float, stop: threading.Event) -> bool:
        """True when woken by a notification; False after `timeout` or when `stop` is set."""
        if not is_postgres(self.url) or stop.is_set():
            stop.wait(timeout)
            return False
        import psycopg
        deadline = time.monotonic() + timeout
        try:
            # in slices of at most a second, so a stop request (SIGTERM) is seen promptly
            while (left := deadline - time.monotonic()) > 0 and not stop.is_set():
                if any(True for _ in self._listen().notifies(timeout=min(left, 1.0), stop_after=1)):
                    for _ in self._conn.notifies(timeout=0):  # several jobs at once: one wake-up claims them all
                        pass
                    return True
            return False
        except psycopg.Error as exc:
            if not self._broken:
                log.warning("action=listen_lost channel=%s error=%s (polling until it is back)", CHANNEL,
                            str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__)
            self._broken = True
            self.close()
            stop.wait(timeout)
            return False

    def close(self) -> None:
        if self._conn is not None:
            try:
                self._conn.close()
            except Exception:  # noqa: BLE001  (closing a broken connection: nothing left to do)
                pass
            self._conn = None
