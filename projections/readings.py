"""Readings: a read written once, run on a worker thread or on the event loop.

A reading is a generator: it yields each statement it needs (a ``Fetch``), is sent the
rows, and returns its answer. It does no I/O itself (sans-I/O, as psycopg's own
protocol code), so one text of SQL and one interpretation of the rows serve both
drivers:

- ``run_reading(tx, reading)``: on any transaction or query of a ``ViewStore`` (a
  worker thread, a command, a test);
- ``AsyncReads.run(reading)``: on the event loop. On PostgreSQL over an async pool of
  its own, so a hot read needs no worker thread: the hop to the thread and back, and
  the two threads taking turns at the interpreter lock, cost more than the read
  (about 14 context switches per request, measured; docs/performance.md, round 6).
  On SQLite (no async driver) the same reading runs in a worker thread.

Readings compose with ``yield from``::

    def partner_and_positions(code, as_of) -> Reading[...]:
        row = yield from one("SELECT ... FROM partners WHERE code = ?", (code,))
        ...

    def read_balance(code) -> Reading[...]:
        found, upto = yield from partner_and_positions(code, None)
        ...
        return (yield from balance_answer(...))
"""

from __future__ import annotations

from collections.abc import Generator, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

import anyio.to_thread
import psycopg

from projections.views import PostgresTx, Tx, ViewStore

T = TypeVar("T")
Row = tuple[Any, ...]
# What a reading is sent back: the row (or None) of a ``Fetch``, or all its rows.
Rows = Row | list[Row] | None
ASYNC_POOL_SIZE_MAX = 4  # per API process: reads on the loop are short; two cores


@dataclass(frozen=True, slots=True)
class Fetch:
    """One statement of a reading (``?`` placeholders): its first row, or ``every`` row."""

    sql: str
    params: Sequence[Any] = ()
    every: bool = False


Reading = Generator[Fetch, Any, T]


def one(sql: str, params: Sequence[Any] = ()) -> Reading[Row | None]:
    """A statement's first row (None if none): ``row = yield from one(sql, params)``."""
    row = yield Fetch(sql, params)
    assert row is None or isinstance(row, tuple)
    return row


def every(sql: str, params: Sequence[Any] = ()) -> Reading[list[Row]]:
    """All of a statement's rows."""
    rows = yield Fetch(sql, params, every=True)
    assert isinstance(rows, list)
    return rows


@dataclass(frozen=True, slots=True)
class _Done(Generic[T]):
    answer: T


def _step(reading: Reading[T], rows: Rows) -> Fetch | _Done[T]:
    """Send a reading the rows it asked for: its next statement, or its answer."""
    try:
        return reading.send(rows)
    except StopIteration as done:
        return _Done(done.value)


def run_reading(tx: Tx, reading: Reading[T]) -> T:
    """Run a reading on a transaction (or ``ViewStore.query()``) of this thread."""
    step = _step(reading, None)
    while isinstance(step, Fetch):
        if step.every:
            step = _step(reading, tx.fetchall(step.sql, step.params))
        else:
            step = _step(reading, tx.fetchone(step.sql, step.params))
    return step.answer


class AsyncReads:
    """Readings of one ``ViewStore`` from the event loop. ``open`` on the loop that will
    run them (an app's start-up), ``close`` on the way out. Not opened (or SQLite): each
    reading runs in a worker thread, as a sync route would. On PostgreSQL the views'
    schema is the search path; a reading may name another table of the same database
    with its schema (``projections.store.read_versions``: the events table)."""

    def __init__(self, views: ViewStore) -> None:
        self._views = views
        self._pool: Any = None

    @property
    def on_loop(self) -> bool:
        """Whether readings run on the event loop (PostgreSQL, opened)."""
        return self._pool is not None

    async def open(self) -> None:
        if self._views.database.is_sqlite or self._pool is not None:
            return
        from psycopg_pool import AsyncConnectionPool

        schema = self._views.schema

        async def configure(conn: psycopg.AsyncConnection[Any]) -> None:
            # the views' schema first; autocommit: each statement is its own read, as in
            # ``ViewStore.query`` (readings are consistent by the positions they name)
            await conn.execute(f'SET search_path TO "{schema}"')
            await conn.commit()
            await conn.set_autocommit(True)

        pool = AsyncConnectionPool(
            self._views.database.psycopg_conninfo(),
            # all opened at start: a first burst of reads would otherwise wait for
            # connections opened one at a time (measured: p99 24 ms in the first 2,000)
            min_size=ASYNC_POOL_SIZE_MAX,
            max_size=ASYNC_POOL_SIZE_MAX,
            configure=configure,
            open=False,
        )
        await pool.open()
        self._pool = pool

    async def close(self) -> None:
        pool, self._pool = self._pool, None
        if pool is not None:
            await pool.close()

    async def run(self, reading: Reading[T]) -> T:
        if self._pool is None:
            return await anyio.to_thread.run_sync(self._run_in_thread, reading)
        async with self._pool.connection() as conn:
            step = _step(reading, None)
            while isinstance(step, Fetch):
                cursor = psycopg.AsyncRawCursor(conn)
                await cursor.execute(PostgresTx.numbered(step.sql), step.params)
                if step.every:
                    step = _step(reading, [tuple(row) for row in await cursor.fetchall()])
                else:
                    row = await cursor.fetchone()
                    step = _step(reading, None if row is None else tuple(row))
            return step.answer

    def _run_in_thread(self, reading: Reading[T]) -> T:
        with self._views.query() as tx:
            return run_reading(tx, reading)
