"""The event store's recorders: eventsourcing's, plus rows written in the events'
transaction.

A command that meets a new member makes the member's key (and blind-index rows) while
its events are encrypted. Those rows are written in the same transaction as the
events (``insert_events(..., side_writes=[(sql, params), ...])``), not committed on
their own first: a new member's scan costs one commit, not three, and a key never
outlives the events it was made for when their insert fails. A key row is a plain
INSERT: if another process made this subject's key meanwhile, the transaction fails
like a version conflict and the command is decided again (with that key).

Selected through eventsourcing's ``APPLICATION_RECORDER_TOPIC`` (projections.database).
SQL is written with ``?`` placeholders (SQLite's); PostgreSQL gets ``%s``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from eventsourcing.persistence import StoredEvent
from eventsourcing.postgres import PostgresApplicationRecorder, PostgresDatastore
from eventsourcing.sqlite import SQLiteApplicationRecorder, SQLiteCursor
from psycopg import Cursor
from psycopg.rows import DictRow
from psycopg.sql import SQL, Identifier

SideWrite = tuple[str, tuple[Any, ...]]  # (SQL with ? placeholders, parameters)


def _by_statement(writes: Sequence[SideWrite]) -> dict[str, list[tuple[Any, ...]]]:
    grouped: dict[str, list[tuple[Any, ...]]] = {}
    for sql, params in writes:
        grouped.setdefault(sql, []).append(params)
    return grouped


class PostgresLedgerRecorder(PostgresApplicationRecorder):
    def __init__(self, datastore: PostgresDatastore, **kwargs: Any) -> None:
        super().__init__(datastore, **kwargs)
        # The events as four arrays of plain types, sent in binary: eventsourcing sends
        # one array of a composite type, which psycopg writes as text in Python (every
        # field escaped by a regular expression): 14% of the bench's loader's
        # interpreter samples. Same rows, same order, same returned positions.
        self._insert_by_columns = SQL(
            "INSERT INTO {schema}.{table} (originator_id, originator_version, topic, state) "
            "SELECT * FROM unnest(%b::uuid[], %b::bigint[], %b::text[], %b::bytea[]) "
            "RETURNING notification_id"
        ).format(
            schema=Identifier(self.datastore.schema),
            table=Identifier(self.events_table_name),
        )

    def _insert_stored_events(
        self, curs: Cursor[DictRow], stored_events: Sequence[StoredEvent], **kwargs: Any
    ) -> None:
        self._lock_table(curs)
        self._notify_channel(curs)
        curs.execute(
            self._insert_by_columns,
            (
                [e.originator_id for e in stored_events],
                [e.originator_version for e in stored_events],
                [e.topic for e in stored_events],
                [e.state for e in stored_events],
            ),
        )

    def _insert_events(
        self,
        curs: Cursor[DictRow],
        stored_events: Sequence[StoredEvent],
        *,
        side_writes: Sequence[SideWrite] = (),
        **kwargs: Any,
    ) -> None:
        # In the insert's pipeline and transaction, before the events' table lock.
        for sql, rows in _by_statement(side_writes).items():
            curs.executemany(sql.replace("?", "%s"), rows)
        super()._insert_events(curs, stored_events, **kwargs)


class SQLiteLedgerRecorder(SQLiteApplicationRecorder):
    def _insert_events(
        self,
        c: SQLiteCursor,
        stored_events: Sequence[StoredEvent],
        *,
        side_writes: Sequence[SideWrite] = (),
        **kwargs: Any,
    ) -> Sequence[int] | None:
        for sql, rows in _by_statement(side_writes).items():
            c.executemany(sql, rows)
        return super()._insert_events(c, stored_events, **kwargs)
