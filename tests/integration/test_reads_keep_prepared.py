"""Reads on the event store's PostgreSQL connections do not roll back.

psycopg answers a ROLLBACK by dropping every statement its connection had prepared
(DEALLOCATE ALL). The store's one-statement reads (a request's position, members' keys,
the blind index, secrets, an aggregate's event positions, the access log) once ran in
transactions that ended in ROLLBACK, so each cost the commands that next used that
connection their prepared plans. Here every pooled connection prepares a statement,
the reads run, and every connection must still hold its statement."""

from __future__ import annotations

from typing import Any
from uuid import uuid4

import pytest

from projections.access_log import AccessLog
from projections.store import Store
from projections.time_travel import event_positions
from tests.integration.conftest import every_idle_connection


def _prepared_on(conn: Any) -> int:
    row = conn.execute("SELECT count(*) AS n FROM pg_prepared_statements").fetchone()
    return int(row["n"])


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)  # SQLite prepares none
def test_store_reads_keep_each_connections_prepared_statements(store: Store) -> None:
    datastore: Any = store.ledger.recorder.datastore  # type: ignore[attr-defined]
    pool = datastore.pool
    taken = every_idle_connection(pool)
    assert taken, "the pool holds idle connections"
    for conn in taken:
        conn.execute("SELECT %s::int AS one", (1,), prepare=True).fetchone()
        assert _prepared_on(conn) >= 1
    for conn in taken:
        pool.putconn(conn)

    member = str(uuid4())
    access_log = AccessLog.of(store)
    for _ in range(3 * len(taken)):  # each read on (very likely) every connection
        assert store.ledger.position_of(uuid4(), 1) is None
        store.keyring.prefetch([member])
        assert store.keyring.lookup("phone", "13800000000") == []
        assert store.secrets.with_prefix("no-such-prefix:") == {}
        assert event_positions(store, uuid4()) == {}
        assert access_log.list(0, 10) == []

    again = every_idle_connection(pool)
    try:
        lost = [c.info.backend_pid for c in again if _prepared_on(c) == 0]
        assert not lost, f"connections whose prepared statements were dropped: {lost}"
    finally:
        for conn in again:
            pool.putconn(conn)
