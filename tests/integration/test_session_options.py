"""Every PostgreSQL session the store opens runs without JIT (``SESSION_OPTIONS``), and
the event store's keep one generic plan per prepared statement and start no parallel
workers.

JIT starts where the planner's cost estimate passes a threshold. Without statistics
(autovacuum off, as on this machine, or a database just restored or loaded) a command's
read of a few aggregates by id is estimated at a tenth of the events table, so past
about 110,000 events every such read was compiled before it ran: 6 to 29 ms for 0.1 ms
of work, scans down from 600 to 140/s (docs/performance.md, round 13). The check is on
the sessions themselves: the event store's pool (every connection, the first ones
included), the views' pool, and the reads' pool on the event loop.

The event store's statements are lookups by key: planned afresh at each execution (the
default, while a custom plan looks cheaper, which a read by ``= ANY`` of a few ids always
does) they cost the server about 50 us each for the same plan; and from about a million
events on, the same estimate made them parallel scans, two worker processes started for
a read of a few rows (5 ms against 0.1)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from projections.readings import AsyncReads, one
from projections.store import Store
from tests.integration.conftest import every_idle_connection

SETTINGS = (
    "SELECT current_setting('jit') AS jit, current_setting('plan_cache_mode') AS plans, "
    "current_setting('max_parallel_workers_per_gather') AS parallel"
)


def _settings(conn: Any) -> tuple[str, ...]:
    row = conn.execute(SETTINGS).fetchone()
    return tuple(row.values()) if isinstance(row, dict) else tuple(row)


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)  # SQLite: no JIT
def test_no_session_compiles_and_the_event_stores_keep_generic_plans(store: Store) -> None:
    pool: Any = store.ledger.recorder.datastore.pool  # type: ignore[attr-defined]
    taken = every_idle_connection(pool)
    taken.append(pool.getconn(timeout=5))  # and one opened now, beyond the idle ones
    try:
        assert len(taken) >= 2
        assert {_settings(conn) for conn in taken} == {("off", "force_generic_plan", "0")}
    finally:
        for conn in taken:
            pool.putconn(conn)

    with store.views.query() as tx:
        assert tx.fetchall(SETTINGS)[0][:2] == ("off", "auto")  # parallel: the server's

    async def on_the_loop() -> Any:
        reads = AsyncReads(store.views)
        await reads.open()
        try:
            assert reads.on_loop
            return await reads.run(one(SETTINGS))
        finally:
            await reads.close()

    assert tuple(asyncio.run(on_the_loop()))[:2] == ("off", "auto")
