"""What wakes an idle projection engine: PostgreSQL's notification of new events.

Every save notifies the events table's channel in its transaction (eventsourcing's
NOTIFY, or ``siyu_insert_events``), so an engine that has applied everything can
block on LISTEN instead of asking for the head every ``POLL_INTERVAL_S``: an idle API
process spent about 7% of a core on that polling (two statements 50 times a second),
and a write made at idle is applied at once rather than up to one interval later.

The wait is bounded (``timeout_s``): events written by something that does not
notify are still found, later. A broken listening connection is reopened at the next
wait; meanwhile the engine waits the fallback interval as it would without LISTEN.
"""

from __future__ import annotations

import logging
import threading
import time

import psycopg
from psycopg.sql import SQL, Identifier

log = logging.getLogger("siyu.projections")


class Notifications:
    """LISTEN on one channel, on a connection of its own (autocommit)."""

    def __init__(self, conninfo: str, channel: str) -> None:
        self._conninfo = conninfo
        self._channel = channel
        self._conn: psycopg.Connection[tuple[object, ...]] | None = None
        self._lock = threading.Lock()  # the listener's thread and close()
        self.received = 0  # notifications seen (for tests)

    def listen(self) -> None:
        """Start listening now (before the caller's first look at the head, so that no
        event inserted after that look goes unnoticed)."""
        with self._lock:
            if self._conn is None:
                conn = psycopg.connect(self._conninfo, autocommit=True)
                conn.execute(SQL("LISTEN {}").format(Identifier(self._channel)))
                self._conn = conn

    def wait(self, timeout_s: float, fallback_s: float) -> None:
        """Return on a notification (any received meanwhile count), or after
        ``timeout_s``; ``fallback_s`` when the connection cannot be had."""
        try:
            self.listen()
            conn = self._conn
            if conn is None:  # closed by another thread meanwhile
                time.sleep(fallback_s)
                return
            for _ in conn.notifies(timeout=timeout_s, stop_after=1):
                self.received += 1
            for _ in conn.notifies(timeout=0):  # those of the same burst: one wake for all
                self.received += 1
        except Exception as e:  # a wait never stops the follower: it polls meanwhile
            log.warning("listening for new events failed (%s); polling meanwhile", e)
            self.close()
            time.sleep(fallback_s)

    def notify(self) -> None:
        """Wake the listener (e.g. to stop it) through a connection of its own."""
        try:
            with psycopg.connect(self._conninfo, autocommit=True) as conn:
                conn.execute("SELECT pg_notify(%s, '')", (self._channel,))
        except psycopg.Error as e:
            log.warning("could not wake the projection engine: %s", e)

    def close(self) -> None:
        with self._lock:
            conn, self._conn = self._conn, None
        if conn is not None:
            conn.close()
