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

On PostgreSQL a save is one statement: ``siyu_insert_events(...)``, a function that
writes the new keys and blind-index rows, takes the events table's lock, notifies and
inserts the events, in the statement's own transaction. eventsourcing's way is a
pipelined transaction (BEGIN, the side writes, SET LOCAL lock_timeout, LOCK, NOTIFY,
INSERT, a sync, COMMIT): two round trips, the table lock held across the second, and
each statement's Python work in psycopg. Side writes other than the keyring's take
that way still.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from eventsourcing.persistence import (
    InterfaceError,
    Notification,
    OperationalError,
    ProgrammingError,
    StoredEvent,
)
from eventsourcing.postgres import PostgresApplicationRecorder, PostgresDatastore
from eventsourcing.sqlite import SQLiteApplicationRecorder, SQLiteCursor
from eventsourcing.utils import retry
from psycopg import Cursor
from psycopg.rows import DictRow
from psycopg.sql import SQL, Composed, Identifier, Literal

from domain.carry_forward import SUFFIX
from projections.database import SESSION_OPTIONS, reading_rows
from projections.keyring import BLIND_INDEX_TABLE, INSERT_INDEX, INSERT_KEY, KEYS_TABLE

SideWrite = tuple[str, tuple[Any, ...]]  # (SQL with ? placeholders, parameters)

INSERT_FUNCTION = "siyu_insert_events"
# The event store's statements are lookups by key (aggregates' events by id, positions by
# id and version, notifications after a position) and the insert function: the plan is
# the same whatever the values, so their prepared statements keep one generic plan. By
# default PostgreSQL plans each execution afresh while a custom plan looks cheaper, and a
# read of a few ids by ``= ANY`` always does: about 50 us of the server's CPU at every
# bind. Four alternated pairs of scan runs: PostgreSQL's CPU per scan 0.89 -> 0.77 ms,
# scans 630 -> 665/s (docs/performance.md, round 13). The views' statements keep the
# default: their reads range over partners and times.
# And no parallel workers: without statistics the same reads, estimated at a tenth of
# the table, were planned as parallel scans from about a million events on, two worker
# processes started for every read of a few rows (5 ms, against 0.1), and scans fell
# from 650 to 210/s on a million-event store.
EVENT_STORE_SESSION_OPTIONS = (
    f"{SESSION_OPTIONS} -c plan_cache_mode=force_generic_plan -c max_parallel_workers_per_gather=0"
)
# Carried-forward events (domain.carry_forward) in an index of their own: a command's read
# finds an aggregate's newest one in one probe, and reading an aggregate that has none
# costs a probe of an index holding nothing for it. The reads state the predicate
# exactly as the index does: a partial index serves a query whose condition matches it.
CARRIED_FORWARD = f"topic LIKE '%{SUFFIX}'"


def carried_forward_index(name: str, table: str) -> str:
    return (
        f"CREATE INDEX IF NOT EXISTS {name} ON {table} (originator_id, originator_version) "
        f"WHERE {CARRIED_FORWARD}"
    )


# The events table's lock, then its notification, then the insert: as eventsourcing's
# PostgresApplicationRecorder does in its transaction (insert order = commit order, so
# a reader of the log never passes a gap that fills later). The keyring's rows first,
# as ``_insert_events`` writes them before the lock.
CREATE_INSERT_FUNCTION = """
CREATE OR REPLACE FUNCTION {schema}.{function}(
    ids uuid[], versions bigint[], topics text[], states bytea[],
    key_subjects text[], key_values bytea[],
    index_fields text[], index_blinds text[], index_subjects text[]
) RETURNS SETOF bigint LANGUAGE plpgsql AS $body$
BEGIN
    IF cardinality(key_subjects) > 0 THEN
        INSERT INTO {keys} (subject, key) SELECT * FROM unnest(key_subjects, key_values);
    END IF;
    IF cardinality(index_fields) > 0 THEN
        INSERT INTO {index} (field, blind, subject)
        SELECT * FROM unnest(index_fields, index_blinds, index_subjects)
        ON CONFLICT DO NOTHING;
    END IF;
    PERFORM set_config('lock_timeout', {lock_timeout}, true);
    LOCK TABLE {schema}.{table} IN EXCLUSIVE MODE;
    PERFORM pg_notify({channel}, '');
    RETURN QUERY
    INSERT INTO {schema}.{table} (originator_id, originator_version, topic, state)
    SELECT * FROM unnest(ids, versions, topics, states)
    RETURNING notification_id;
END;
$body$
"""


# A notification's fields in the order they are selected.
NOTIFICATION_FIELDS = ("originator_id", "originator_version", "topic", "state", "notification_id")
_new = object.__new__


def _notification(row: tuple[Any, ...]) -> Notification:
    """A ``Notification`` equal to ``Notification(**fields)``: a frozen dataclass keeps its
    fields in the instance's ``__dict__``, which is filled in at once (no ``__post_init__``)."""
    notification: Notification = _new(Notification)
    fields = notification.__dict__
    fields["originator_id"], fields["originator_version"], fields["topic"] = row[:3]
    fields["state"], fields["id"] = bytes(row[3]), row[4]
    return notification


def _by_statement(writes: Sequence[SideWrite]) -> dict[str, list[tuple[Any, ...]]]:
    grouped: dict[str, list[tuple[Any, ...]]] = {}
    for sql, params in writes:
        grouped.setdefault(sql, []).append(params)
    return grouped


class PostgresLedgerRecorder(PostgresApplicationRecorder):
    def __init__(self, datastore: PostgresDatastore, **kwargs: Any) -> None:
        # eventsourcing's pool opens its connections at their first use, which the
        # recorder's set-up makes: each gets its session options before it.
        pool_kwargs = datastore.pool.kwargs
        assert isinstance(pool_kwargs, dict), "eventsourcing passes its pool a dict"
        pool_kwargs["options"] = EVENT_STORE_SESSION_OPTIONS
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
        self.sql_create_statements.append(
            SQL(CREATE_INSERT_FUNCTION).format(
                schema=Identifier(self.datastore.schema),
                function=Identifier(INSERT_FUNCTION),
                table=Identifier(self.events_table_name),
                keys=Identifier(KEYS_TABLE),
                index=Identifier(BLIND_INDEX_TABLE),
                lock_timeout=Literal(f"{self.datastore.lock_timeout}s"),
                channel=Literal(self.channel_name),
            )
        )
        self.sql_create_statements.append(
            SQL(carried_forward_index("{name}", "{schema}.{table}")).format(
                name=Identifier(f"{self.events_table_name}_carried_forward"),
                schema=Identifier(self.datastore.schema),
                table=Identifier(self.events_table_name),
            )
        )
        self._select_statements: dict[tuple[bool, bool, bool, bool], Composed] = {}
        self._insert_by_function = SQL(
            "SELECT * FROM {schema}.{function}(%b::uuid[], %b::bigint[], %b::text[], "
            "%b::bytea[], %b::text[], %b::bytea[], %b::text[], %b::text[], %b::text[]) "
            "AS notification_id"
        ).format(schema=Identifier(self.datastore.schema), function=Identifier(INSERT_FUNCTION))

    @retry((InterfaceError, OperationalError), max_attempts=10, wait=0.2)  # as eventsourcing's
    def select_notifications(
        self,
        start: int | None,
        limit: int,
        stop: int | None = None,
        topics: Sequence[str] = (),
        *,
        inclusive_of_start: bool = True,
    ) -> Sequence[Notification]:
        """eventsourcing's page of the log, the same rows in the same order, with less
        Python per row (every projection and replay reads every event this way): rows
        sent in binary (as text, every state's bytes come hex-encoded and are decoded
        in the client), as tuples (not dicts), the statement composed once per shape,
        and each ``Notification`` filled in directly rather than through its frozen
        dataclass ``__init__`` (one ``object.__setattr__`` per field). 200,000 events
        in pages of 4,000: 1.07 -> 0.61 s (reading the log was about 11% of two
        projection workers' interpreter samples)."""
        shape = (start is not None, inclusive_of_start, stop is not None, bool(topics))
        statement = self._select_statements.get(shape)
        if statement is None:
            statement = self._select_statements[shape] = self._select_statement(*shape)
        params: list[Any] = []
        if start is not None:
            params.append(start)
        if stop is not None:
            params.append(stop)
        if topics:
            params.append(list(topics))
        params.append(limit)
        with reading_rows(self.datastore) as curs:
            curs.execute(statement, params, prepare=True)
            return [_notification(row) for row in curs.fetchall()]

    def _select_statement(
        self, start: bool, inclusive_of_start: bool, stop: bool, topics: bool
    ) -> Composed:
        conditions = []
        if start:
            conditions.append(
                "notification_id >= %s" if inclusive_of_start else "notification_id > %s"
            )
        if stop:
            conditions.append("notification_id <= %s")
        if topics:
            conditions.append("topic = ANY(%s)")
        where = f" WHERE {' AND '.join(conditions)}" if conditions else ""
        return SQL(
            f"SELECT {', '.join(NOTIFICATION_FIELDS)} FROM {{schema}}.{{table}}{where} "
            "ORDER BY notification_id LIMIT %s"
        ).format(
            schema=Identifier(self.datastore.schema),
            table=Identifier(self.events_table_name),
        )

    def insert_events(
        self,
        stored_events: Sequence[StoredEvent],
        *,
        side_writes: Sequence[SideWrite] = (),
        **kwargs: Any,
    ) -> Sequence[int] | None:
        writes = _by_statement(side_writes)
        if not stored_events or not set(writes) <= {INSERT_KEY, INSERT_INDEX}:
            ids: Sequence[int] | None
            ids = super().insert_events(stored_events, side_writes=side_writes, **kwargs)
            return ids
        positions: Sequence[int] = self._insert_in_one_statement(stored_events, writes)
        return positions

    @retry((InterfaceError, OperationalError), max_attempts=10, wait=0.2)  # as eventsourcing's
    def _insert_in_one_statement(
        self, stored_events: Sequence[StoredEvent], writes: dict[str, list[tuple[Any, ...]]]
    ) -> Sequence[int]:
        keys = writes.get(INSERT_KEY, [])
        index = writes.get(INSERT_INDEX, [])
        params = (
            [e.originator_id for e in stored_events],
            [e.originator_version for e in stored_events],
            [e.topic for e in stored_events],
            [e.state for e in stored_events],
            [k[0] for k in keys],
            [k[1] for k in keys],
            [i[0] for i in index],
            [i[1] for i in index],
            [i[2] for i in index],
        )
        with self.datastore.get_connection() as conn, conn.cursor() as curs:
            assert conn.autocommit, "the function's statement is its own transaction"
            curs.execute(self._insert_by_function, params, prepare=True)
            positions = [row["notification_id"] for row in curs.fetchall()]
        if len(positions) != len(stored_events):
            raise ProgrammingError(
                f"{len(stored_events)} events inserted, {len(positions)} positions returned"
            )
        return positions

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
    def construct_create_table_statements(self) -> list[str]:
        statements = super().construct_create_table_statements()
        name = f"{self.events_table_name}_carried_forward"
        statements.append(carried_forward_index(name, self.events_table_name))
        return statements

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
