"""A monotonic index from time to position: "as of T" -> the last position committed by T.

Event timestamps are taken before commit, so they do not follow positions: a slow
writer may commit position 8 stamped 10:00:05 after position 7 stamped 10:00:06.
For each position we keep the running maximum of the timestamps of every event up
to it, ``M(p) = max(t(1) .. t(p))``; ``M`` never decreases with ``p``.

``position_at(T)`` is the last position with ``M(p) <= T``. Why this rule:

- Every event ``q <= p`` was committed no earlier than its own stamp, and commits
  follow positions, so ``p`` was committed no earlier than ``M(p)``. An event after
  a position whose stamp is later than T was therefore certainly committed after T:
  the rule excludes it even when its own stamp is earlier than T (like position 8
  above, for T = 10:00:05.5).
- Because ``M`` is monotonic, the answer is a prefix of the log: reading "up to
  position P" never shows an event without the events committed before it, so a
  state as of T is a state the ledger really passed through.

The commit time itself is not stored; an event stamped by T but committed just after
T is included (the closest the log can tell). Times are kept as integer microseconds
since the epoch (UTC), which sort the same on SQLite and PostgreSQL.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from eventsourcing.persistence import ApplicationRecorder

from projections.chain import stored_time
from projections.readings import Reading, one, run_reading
from projections.views import Tx

PAGE_SIZE_MAX = 1000
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def to_micros(at: datetime) -> int:
    assert at.tzinfo is not None, "times are timezone-aware"
    delta = at - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def stored_micros(state: bytes) -> int | None:
    """The stored event's own timestamp in microseconds; None if unreadable."""
    text = stored_time(state)
    if not text:
        return None
    try:
        at = datetime.fromisoformat(text)
    except ValueError:
        return None
    if at.tzinfo is None:
        at = at.replace(tzinfo=UTC)
    return to_micros(at)


class TimeIndex:
    """Projection: (position, own time, running maximum time) for every event."""

    name: str = "time_index"
    version: int = 1
    reads_stored: bool = True
    tables: dict[str, str] = {
        "time_index": (
            "CREATE TABLE IF NOT EXISTS time_index ("
            "position BIGINT PRIMARY KEY, at_us BIGINT, running_max_us BIGINT NOT NULL)"
        ),
    }
    indexes: tuple[str, ...] = (
        "CREATE INDEX IF NOT EXISTS time_index_running_max "
        "ON time_index (running_max_us, position)",
    )
    topics: frozenset[str] = frozenset()

    def __init__(self) -> None:
        self._tx: Tx | None = None
        self._running_max = 0

    def prepare(self, tx: Tx, events: list[tuple[Any, int]]) -> None:
        """The running maximum so far, read before the batch writes anything."""
        row = tx.fetchone("SELECT running_max_us FROM time_index ORDER BY position DESC LIMIT 1")
        self._running_max = 0 if row is None else int(row[0])
        self._tx = tx

    def apply(self, tx: Tx, event: Any, position: int) -> None:
        if tx is not self._tx:
            self.prepare(tx, [])
        at = stored_micros(bytes(event.state))
        if at is not None:
            self._running_max = max(self._running_max, at)
        tx.execute(
            "INSERT INTO time_index (position, at_us, running_max_us) VALUES (?, ?, ?)",
            (position, at, self._running_max),
        )


def position_at(tx: Tx, at: datetime) -> int:
    return run_reading(tx, read_position_at(at))


def read_position_at(at: datetime) -> Reading[int]:
    """The last position committed by ``at`` (0: nothing yet), from the time index view."""
    row = yield from one(
        "SELECT position FROM time_index WHERE running_max_us <= ? "
        "ORDER BY running_max_us DESC, position DESC LIMIT 1",
        (to_micros(at),),
    )
    return 0 if row is None else int(row[0])


def position_at_in_log(recorder: ApplicationRecorder, at: datetime) -> int:
    """The same answer computed from the event log itself (no view needed: replay)."""
    limit = to_micros(at)
    running_max = 0
    found = 0
    start = 0
    while True:
        page = recorder.select_notifications(start, PAGE_SIZE_MAX, inclusive_of_start=False)
        for n in page:
            stamp = stored_micros(bytes(n.state))
            if stamp is not None:
                running_max = max(running_max, stamp)
            if running_max > limit:
                return found
            found = n.id
        if len(page) < PAGE_SIZE_MAX:
            return found
        start = page[-1].id
