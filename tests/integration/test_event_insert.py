"""The ledger's recorder inserts events as it reads them back, on both stores: bytes and
text exactly as given (quotes, backslashes, braces, non-ASCII, NUL), in the order given,
and the positions it returns are the rows' (PostgreSQL sends four arrays in binary,
not eventsourcing's composite array, in one statement of its insert function)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any
from uuid import UUID, uuid4

import psycopg
import pytest
from eventsourcing.persistence import IntegrityError, PersistenceError, StoredEvent
from eventsourcing.postgres import PostgresApplicationRecorder

from projections.keyring import BLIND_INDEX_TABLE, INSERT_INDEX, INSERT_KEY, KEYS_TABLE
from projections.recorders import INSERT_FUNCTION
from projections.store import Store

AWKWARD = [
    b'{"a":"quote \\" backslash \\\\ braces {},() comma"}',
    '{"name":"上海经销商 Dealer \\u0000"}'.encode(),
    b"\x00\x01\xff not JSON at all",
    b"",
]


def test_events_come_back_as_inserted_with_their_positions(store: Store) -> None:
    recorder = store.ledger.recorder
    ids = [uuid4(), uuid4()]
    events = [
        StoredEvent(ids[i % 2], i // 2 + 1, f"siyu.Test.Event{i},\"{{}}'", state)
        for i, state in enumerate(AWKWARD * 3)
    ]
    positions = recorder.insert_events(events)
    assert positions is not None and len(positions) == len(events)
    assert positions == sorted(positions), "in the order given"
    back = recorder.select_notifications(positions[0], len(events))
    assert [n.id for n in back] == positions
    for n, e in zip(back, events, strict=True):
        assert (n.originator_id, n.originator_version, n.topic) == (
            e.originator_id,
            e.originator_version,
            e.topic,
        )
        assert bytes(n.state) == e.state


def test_a_version_taken_fails_the_whole_insert(store: Store) -> None:
    recorder = store.ledger.recorder
    aggregate = uuid4()
    head = recorder.max_notification_id() or 0
    recorder.insert_events([StoredEvent(aggregate, 1, "siyu.Test.A", b"{}")])
    with pytest.raises(IntegrityError):
        recorder.insert_events(
            [
                StoredEvent(uuid4(), 1, "siyu.Test.B", b"{}"),
                StoredEvent(aggregate, 1, "siyu.Test.A", b"{}"),
            ]
        )
    assert (recorder.max_notification_id() or 0) == head + 1, "nothing of it written"


def _sql(store: Store, statement: str, fetch: bool = True) -> list[Any]:
    datastore: Any = store.ledger.recorder.datastore  # type: ignore[attr-defined]
    with datastore.transaction(commit=True) as cur:
        cur.execute(statement)
        return list(cur.fetchall()) if fetch else []


@pytest.mark.postgres
def test_postgresql_saves_in_one_statement_of_the_insert_function(pg_url: str) -> None:
    """The function is the save (a save without it fails), and it writes what the
    transaction way wrote: the keyring's rows, the events, their positions."""
    store = Store.open(pg_url)
    try:
        _saves_through_the_function(store)
    finally:
        store.close()


def _saves_through_the_function(store: Store) -> None:
    recorder = store.ledger.recorder
    subject = str(uuid4())
    writes = [
        (INSERT_KEY, (subject, b"k" * 32)),
        (INSERT_INDEX, ("phone", "blind-1", subject)),
        (INSERT_INDEX, ("phone", "blind-1", subject)),  # a repeat is no conflict
    ]
    events = [StoredEvent(uuid4(), 1, "siyu.Test.A", b"{}"), StoredEvent(uuid4(), 1, "T.B", b"")]
    positions = recorder.insert_events(events, side_writes=writes)
    assert positions is not None and len(positions) == 2 and positions[1] == positions[0] + 1
    assert _sql(store, f"SELECT key FROM {KEYS_TABLE} WHERE subject = '{subject}'") == [
        {"key": b"k" * 32}
    ]
    assert len(_sql(store, f"SELECT 1 FROM {BLIND_INDEX_TABLE} WHERE subject = '{subject}'")) == 1

    _sql(store, f"DROP FUNCTION {INSERT_FUNCTION}", fetch=False)
    with pytest.raises(PersistenceError):
        recorder.insert_events([StoredEvent(uuid4(), 1, "siyu.Test.A", b"{}")])


def test_a_taken_key_fails_the_events_and_the_index_rows_with_it(store: Store) -> None:
    recorder = store.ledger.recorder
    subject = str(uuid4())
    recorder.insert_events(
        [StoredEvent(uuid4(), 1, "siyu.Test.A", b"{}")],
        side_writes=[(INSERT_KEY, (subject, b"1" * 32))],
    )
    head = recorder.max_notification_id()
    with pytest.raises(IntegrityError):
        recorder.insert_events(
            [StoredEvent(uuid4(), 1, "siyu.Test.A", b"{}")],
            side_writes=[
                (INSERT_INDEX, ("phone", "blind-2", subject)),
                (INSERT_KEY, (subject, b"2" * 32)),
            ],
        )
    assert recorder.max_notification_id() == head
    p = "?" if store.database.is_sqlite else "%s"
    datastore: Any = recorder.datastore  # type: ignore[attr-defined]
    with datastore.transaction(commit=True) as cur:
        cur.execute(f"SELECT count(*) FROM {BLIND_INDEX_TABLE} WHERE subject = {p}", (subject,))
        row = cur.fetchone()
    assert (row[0] if store.database.is_sqlite else row["count"]) == 0


def test_other_rows_with_the_events_take_the_transaction_way(store: Store) -> None:
    recorder = store.ledger.recorder
    _sql(store, "CREATE TABLE IF NOT EXISTS test_side (n INTEGER PRIMARY KEY)", fetch=False)
    side = "INSERT INTO test_side (n) VALUES (?)"
    recorder.insert_events([StoredEvent(uuid4(), 1, "siyu.T.A", b"{}")], side_writes=[(side, (7,))])
    head = recorder.max_notification_id()
    with pytest.raises(IntegrityError):
        recorder.insert_events(
            [StoredEvent(uuid4(), 1, "siyu.T.A", b"{}")], side_writes=[(side, (8,)), (side, (7,))]
        )
    assert recorder.max_notification_id() == head
    rows = _sql(store, "SELECT n FROM test_side")
    assert [r[0] if store.database.is_sqlite else r["n"] for r in rows] == [7]


@pytest.mark.postgres
def test_a_save_outlives_a_dropped_connection(pg_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """The insert function is retried on a broken connection, as eventsourcing's own
    insert is: a backend killed under the save costs a retry, not the command."""
    store = Store.open(pg_url)
    try:
        datastore: Any = store.ledger.recorder.datastore  # type: ignore[attr-defined]
        real = datastore.get_connection
        killed: list[int] = []

        @contextmanager
        def first_one_killed(*args: Any, **kwargs: Any) -> Iterator[Any]:
            with real(*args, **kwargs) as conn:
                if not killed:  # its server process ends before the save uses it
                    killed.append(conn.info.backend_pid)
                    with psycopg.connect(store.database.psycopg_conninfo()) as admin:
                        admin.execute("SELECT pg_terminate_backend(%s, 5000)", (killed[0],))
                yield conn

        monkeypatch.setattr(datastore, "get_connection", first_one_killed)
        event = StoredEvent(uuid4(), 1, "siyu.Test.A", b"{}")
        positions = store.ledger.recorder.insert_events([event])
        assert killed and positions is not None and len(positions) == 1
        back = store.ledger.recorder.select_notifications(positions[0], 1)
        assert [n.originator_id for n in back] == [event.originator_id]
    finally:
        store.close()


def test_pages_of_the_log_are_eventsourcings_on_postgresql(pg_url: str) -> None:
    """The recorder reads pages its own way (binary rows, no dataclass ``__init__``): every
    kind of page (from a start or none, inclusive or not, to a stop, of some topics, up
    to a limit) is the one eventsourcing's ``select_notifications`` gives, field by field."""
    store = Store.open(pg_url)
    try:
        recorder = store.ledger.recorder
        assert (
            type(recorder).select_notifications
            is not PostgresApplicationRecorder.select_notifications
        )
        ids = [uuid4(), uuid4(), uuid4()]
        events = [
            StoredEvent(ids[i % 3], i // 3 + 1, f"siyu.Test.Topic{i % 4}", state + bytes([i]))
            for i, state in enumerate(AWKWARD * 6)
        ]
        positions = recorder.insert_events(events)
        assert positions is not None
        first, last = positions[0], positions[-1]
        pages: list[tuple[tuple[Any, ...], dict[str, Any]]] = [
            ((None, 1000), {}),
            ((first, 1000), {}),
            ((first, 1000), {"inclusive_of_start": False}),
            ((first + 3, 5), {}),
            ((first, 1000), {"stop": first + 7}),
            ((first, 4), {"stop": first + 7, "inclusive_of_start": False}),
            ((first, 1000), {"topics": ["siyu.Test.Topic1", "siyu.Test.Topic3"]}),
            ((None, 1000), {"stop": last, "topics": ("siyu.Test.Topic2",)}),
            ((last + 1, 10), {}),
        ]
        for args, kwargs in pages:
            ours = recorder.select_notifications(*args, **kwargs)
            theirs = PostgresApplicationRecorder.select_notifications(recorder, *args, **kwargs)
            assert ours == theirs, (args, kwargs)
            assert [vars(n) for n in ours] == [vars(n) for n in theirs]
            assert all(type(n.state) is bytes and type(n.originator_id) is UUID for n in ours)
        assert len(recorder.select_notifications(first, 1000)) == len(events)
    finally:
        store.close()
