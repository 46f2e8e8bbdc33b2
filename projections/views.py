"""Storage for read models: one SQLite file of their own, or one PostgreSQL schema.

Read models are written with SQL that both dialects accept (``?`` placeholders are
rewritten for psycopg; upserts use ``ON CONFLICT``). One writer at a time: the
projection engine. Readers use their own connections.
"""

from __future__ import annotations

import re
import sqlite3
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Protocol

from projections.database import Database

_PLACEHOLDER = re.compile(r"\?")
_IDENTIFIER = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")
SQLITE_BUSY_TIMEOUT_S = 30.0
PG_POOL_SIZE_MAX = 8


class Tx(Protocol):
    """One transaction on the read-model store.

    ``memo`` lives exactly as long as the transaction: a read model may remember there
    what it read or wrote in this batch (the engine holds the write lock for the whole
    transaction, so nothing else changes those rows meanwhile). Nothing read-model
    related may outlive the transaction unless it is a pure function of the events
    (another engine may apply the next batch)."""

    dialect: str
    memo: dict[Any, Any]

    def execute(self, sql: str, params: Sequence[Any] = ()) -> None: ...

    def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> None: ...

    def fetchone(self, sql: str, params: Sequence[Any] = ()) -> tuple[Any, ...] | None: ...

    def fetchall(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]: ...


class SqliteTx:
    dialect = "sqlite"

    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn
        self.memo: dict[Any, Any] = {}

    def execute(self, sql: str, params: Sequence[Any] = ()) -> None:
        self._conn.execute(sql, params)

    def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        self._conn.executemany(sql, rows)

    def fetchone(self, sql: str, params: Sequence[Any] = ()) -> tuple[Any, ...] | None:
        row = self._conn.execute(sql, params).fetchone()
        return None if row is None else tuple(row)

    def fetchall(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        return [tuple(r) for r in self._conn.execute(sql, params).fetchall()]


ROWS_PER_INSERT_MAX = 200
_INSERT = re.compile(r"^(INSERT INTO [a-z_0-9]+ \([^()]*\) VALUES) (\([^()]*\))(.*)$", re.S)
_multi_rows: dict[str, tuple[str, str, str] | None] = {}


def _multi_row(sql: str) -> tuple[str, str, str] | None:
    """``INSERT ... VALUES (?, ...) [ON CONFLICT ... DO NOTHING]`` split around its row of
    placeholders, or None: other statements (and upserts, which may not touch one row
    twice in a statement) are sent row by row."""
    if sql not in _multi_rows:
        found = _INSERT.match(sql)
        upsert = found is not None and "DO UPDATE" in found.group(3).upper()
        _multi_rows[sql] = None if found is None or upsert else (found[1], found[2], found[3])
    return _multi_rows[sql]


class PostgresTx:
    dialect = "postgresql"
    _cache: dict[str, str] = {}

    def __init__(self, conn: Any) -> None:
        self._conn = conn
        self._cur = conn.cursor()  # the writes' cursor: cheaper than one per statement
        self.memo: dict[Any, Any] = {}

    @classmethod
    def _sql(cls, sql: str) -> str:
        converted = cls._cache.get(sql)
        if converted is None:
            converted = cls._cache[sql] = _PLACEHOLDER.sub("%s", sql.replace("%", "%%"))
        return converted

    def execute(self, sql: str, params: Sequence[Any] = ()) -> None:
        self._cur.execute(self._sql(sql), params)

    def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        if not rows:
            return
        merged = _multi_row(sql)
        if merged is None or len(rows) == 1:
            self._cur.executemany(self._sql(sql), rows)
            return
        # An INSERT of many rows: one statement per ROWS_PER_INSERT_MAX rows.
        head, values, tail = merged
        for start in range(0, len(rows), ROWS_PER_INSERT_MAX):
            chunk = rows[start : start + ROWS_PER_INSERT_MAX]
            statement = f"{head} {', '.join([values] * len(chunk))}{tail}"
            self._cur.execute(self._sql(statement), [v for row in chunk for v in row])

    # A read gets a cursor of its own: in pipeline mode the writes' cursor may still hold
    # results of queued statements (a shared one answered a SELECT with an INSERT's status).
    def fetchone(self, sql: str, params: Sequence[Any] = ()) -> tuple[Any, ...] | None:
        row = self._conn.execute(self._sql(sql), params).fetchone()
        return None if row is None else tuple(row)

    def fetchall(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        return [tuple(r) for r in self._conn.execute(self._sql(sql), params).fetchall()]


class ViewStore:
    """Opens transactions on the read-model storage of one database (or a side build)."""

    def __init__(self, database: Database, *, target: str | None = None) -> None:
        self.database = database
        self.dialect = "sqlite" if database.is_sqlite else "postgresql"
        self._local = threading.local()
        self._write_lock = threading.Lock()
        self._pool: Any = None
        if database.is_sqlite:
            self.path = Path(target) if target else database.views_path
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.schema = ""
        else:
            self.schema = target or database.views_schema
            if not _IDENTIFIER.match(self.schema):
                raise ValueError(f"bad schema name {self.schema!r}")
            self._open_pool()

    # -- connections -----------------------------------------------------------

    def _open_pool(self) -> None:
        from psycopg_pool import ConnectionPool

        schema = self.schema
        conninfo = self.database.psycopg_conninfo()

        def configure(conn: Any) -> None:
            conn.execute(f'CREATE SCHEMA IF NOT EXISTS "{schema}"')
            conn.execute(f'SET search_path TO "{schema}"')
            conn.commit()

        self._pool = ConnectionPool(
            conninfo, min_size=1, max_size=PG_POOL_SIZE_MAX, configure=configure, open=True
        )

    def _sqlite(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = sqlite3.connect(
                self.path,
                timeout=SQLITE_BUSY_TIMEOUT_S,
                isolation_level=None,
                check_same_thread=True,
            )
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            # Forgotten personal data must not linger in free pages of the views file.
            conn.execute("PRAGMA secure_delete=ON")
            self._local.conn = conn
        return conn

    @contextmanager
    def write(self) -> Iterator[Tx]:
        """The single writer's transaction (SQLite: BEGIN IMMEDIATE takes the file lock)."""
        if self._pool is None:
            with self._write_lock:
                conn = self._sqlite()
                conn.execute("BEGIN IMMEDIATE")
                try:
                    yield SqliteTx(conn)
                except BaseException:
                    conn.execute("ROLLBACK")
                    raise
                conn.execute("COMMIT")
            return
        # Pipeline mode: writes go out without waiting for each answer (a read syncs),
        # so a batch of projection writes costs far fewer round trips.
        with self._pool.connection() as pg, pg.pipeline(), pg.transaction():
            yield PostgresTx(pg)

    @contextmanager
    def read(self) -> Iterator[Tx]:
        if self._pool is None:
            conn = self._sqlite()
            conn.execute("BEGIN")
            try:
                yield SqliteTx(conn)
            finally:
                conn.execute("COMMIT")
            return
        with self._pool.connection() as pg, pg.transaction():
            yield PostgresTx(pg)

    def purge_freed_pages(self) -> None:
        """Make scrubbed rows unrecoverable: SQLite keeps old page versions in its WAL until a
        checkpoint (secure_delete zeroes freed space in the file itself); PostgreSQL keeps
        dead tuples until VACUUM."""
        if self._pool is None:
            with self._write_lock:
                self._sqlite().execute("PRAGMA wal_checkpoint(TRUNCATE)")
            return
        with self._pool.connection() as pg:
            pg.autocommit = True
            pg.execute("VACUUM")

    def close(self) -> None:
        if self._pool is not None:
            self._pool.close()
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None

    def drop_everything(self) -> None:
        """Remove every read model of this store (a side build before it is rebuilt)."""
        if self._pool is None:
            self.close()
            for suffix in ("", "-wal", "-shm"):
                Path(str(self.path) + suffix).unlink(missing_ok=True)
            return
        with self._pool.connection() as pg:
            pg.execute(f'DROP SCHEMA IF EXISTS "{self.schema}" CASCADE')
            pg.execute(f'CREATE SCHEMA "{self.schema}"')
            pg.commit()
