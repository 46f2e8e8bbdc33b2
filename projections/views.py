"""Storage for read models: one SQLite file of their own, or one PostgreSQL schema.

Read models are written with SQL that both dialects accept (``?`` placeholders are
rewritten for psycopg; upserts use ``ON CONFLICT``). One writer at a time: the
projection engine. Readers use their own connections.
"""

from __future__ import annotations

import functools
import itertools
import re
import sqlite3
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import psycopg

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
    (another engine may apply the next batch): ``lasting`` keeps such facts (a partner's
    path) across transactions."""

    dialect: str
    memo: dict[Any, Any]

    @property
    def lasting(self) -> dict[Any, Any]: ...

    def execute(self, sql: str, params: Sequence[Any] = ()) -> None: ...

    def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> None: ...

    def fetchone(self, sql: str, params: Sequence[Any] = ()) -> tuple[Any, ...] | None: ...

    def fetchall(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]: ...

    def flush(self) -> None:
        """Send the queued writes now (the store does before commit)."""


ROWS_PER_INSERT_MAX = 200
# Fewer rows than this go out as single UPDATEs: planning a join with VALUES costs the
# server more than the few prepared statements it replaces (measured: 1-2 row chunks).
SET_UPDATE_ROWS_MIN = 8
STATEMENTS_CACHED_MAX = ROWS_PER_INSERT_MAX  # multi-row texts kept per INSERT
_WORDS = re.compile(r"[a-z_][a-z0-9_]*")
_TARGET = re.compile(r"^\s*(?:INSERT\s+INTO|UPDATE|DELETE\s+FROM)\s+([a-z_][a-z0-9_]*)\b", re.I)
_READS = re.compile(r"\b(SELECT|FROM)\b", re.I)
_DDL = re.compile(r"^\s*(CREATE|DROP|ALTER)\b", re.I)
_LASTING = ("lasting",)  # catalog key of Tx.lasting
_INSERT = re.compile(r"^(INSERT INTO [a-z_0-9]+ \(([^()]*)\) VALUES) (\([^()]*\))(.*)$", re.S)
_CONFLICT = re.compile(r"ON CONFLICT \(([^()]*)\) DO (UPDATE|NOTHING)", re.I)


class _Insert:
    """An ``INSERT ... VALUES (...) [ON CONFLICT (...) DO ...]`` split around its row of
    placeholders, so that many rows go out as one statement. An upsert (``DO UPDATE``) may
    not touch one row twice in a statement: ``key`` picks the parameters of its conflict
    columns, and a statement ends before a key repeats."""

    def __init__(self, found: re.Match[str]) -> None:
        self.head, self.values, self.tail = found[1], found[3], found[4]
        self._statements: dict[int, str] = {}
        columns = [c.strip() for c in found[2].split(",")]
        items = [v.strip() for v in self.values.strip()[1:-1].split(",")]
        assert len(columns) == len(items), f"columns and values differ: {found[0]}"
        self.param_of: dict[str, int] = {}  # column -> its parameter's index
        for column, item in zip(columns, items, strict=True):
            if item == "?":
                self.param_of[column] = len(self.param_of)
        conflict = _CONFLICT.search(self.tail)
        self.conflict_columns = (
            None if conflict is None else tuple(c.strip() for c in conflict[1].split(","))
        )
        self.key: tuple[int, ...] | None = None
        # An upsert whose key is partly a constant (``VALUES (1, ?)``): a row per statement.
        self.alone = False
        if conflict is not None and conflict[2].upper() == "UPDATE":
            chosen = self.conflict_columns or ()
            self.alone = not all(c in self.param_of for c in chosen)
            if not self.alone:
                self.key = tuple(self.param_of[c] for c in chosen)
        # ``DO NOTHING`` on a key of parameters: of the queued rows with one key only the
        # first can write (nothing between them in a queue touches that key), so the
        # others are not sent (a unit shipped to a partner and received by it names the
        # same trace holder twice).
        self.first_of_key: tuple[int, ...] | None = None
        if conflict is not None and conflict[2].upper() == "NOTHING":
            chosen = self.conflict_columns or ()
            if all(c in self.param_of for c in chosen):
                self.first_of_key = tuple(self.param_of[c] for c in chosen)

    def identity(self, primary_key: tuple[str, ...]) -> tuple[str, ...] | None:
        """The unique columns that name the row it writes (all of them parameters)."""
        chosen = self.conflict_columns or primary_key
        return chosen if chosen and all(c in self.param_of for c in chosen) else None

    def touched(self, columns: tuple[str, ...], row: Sequence[Any]) -> list[Any]:
        if len(columns) == 1:
            return [row[self.param_of[columns[0]]]]
        return [tuple(row[self.param_of[c]] for c in columns)]

    def firsts(self, rows: Sequence[Sequence[Any]]) -> Sequence[Sequence[Any]]:
        """``rows`` less those a ``DO NOTHING`` would skip for an earlier row's key."""
        key = self.first_of_key
        if key is None or len(rows) < 2:
            return rows
        seen: set[tuple[Any, ...]] = set()
        kept = []
        for row in rows:
            mine = tuple(row[i] for i in key)
            if mine not in seen:
                seen.add(mine)
                kept.append(row)
        return kept

    def chunks(self, rows: Sequence[Sequence[Any]]) -> Iterator[Sequence[Sequence[Any]]]:
        if self.alone:
            for row in rows:
                yield [row]
            return
        if self.key is None:
            for start in range(0, len(rows), ROWS_PER_INSERT_MAX):
                yield rows[start : start + ROWS_PER_INSERT_MAX]
            return
        key = self.key
        yield from _chunks(rows, lambda row: [tuple(row[i] for i in key)])

    def statement(self, rows: int) -> str:
        """The statement for ``rows`` rows, placeholders numbered (``$1``...)."""
        found = self._statements.get(rows)
        if found is None:
            parts = self.values.split("?")
            width = len(parts) - 1
            values = ", ".join(
                "".join(
                    part + (f"${r * width + i + 1}" if i < width else "")
                    for i, part in enumerate(parts)
                )
                for r in range(rows)
            )
            tail = _numbered(self.tail, start=rows * width + 1)
            found = f"{self.head} {values}{tail}"
            if len(self._statements) < STATEMENTS_CACHED_MAX:
                self._statements[rows] = found
        return found


_UPDATE = re.compile(r"^UPDATE ([a-z_0-9]+) SET (.*) WHERE (.*)$", re.S)
_ASSIGNMENT = re.compile(r"^\s*([a-z_0-9]+)\s*=\s*(.*?)\s*$", re.S)
_CONDITION = re.compile(r"^\s*([a-z_0-9]+)\s*(?:=\s*\?|IN\s*\(\s*\?(?:\s*,\s*\?)*\s*\))\s*$", re.S)


class _Update:
    """``UPDATE t SET c = <expr>, ... WHERE k = ? [AND ...]`` (or ``WHERE k IN (?, ...)``)
    for many rows at once: ``UPDATE t SET c = <expr with _v._pN> FROM (VALUES ...) _v
    WHERE k = _v._pN``, each parameter cast to the type of the column it is compared with or
    assigned to. A statement touches a row once, so it ends before a key repeats: the
    rows' effects are those of the single statements in order."""

    def __init__(self, found: re.Match[str]) -> None:
        self.table = found[1]
        self.columns: list[str] = []  # the column each parameter belongs to, in order
        assignments = _split_top(found[2])
        conditions = re.split(r"\s+AND\s+", found[3].strip(), flags=re.I)
        assigned: set[str] = set()
        for part in assignments:
            matched = _ASSIGNMENT.match(part)
            if matched is None:
                raise ValueError(part)
            assigned.add(matched[1])
            self.columns += [matched[1]] * matched[2].count("?")
        self.key_params: list[int] = []
        for part in conditions:
            matched = _CONDITION.match(part)
            if matched is None:
                raise ValueError(part)
            count = part.count("?")
            self.key_params += range(len(self.columns), len(self.columns) + count)
            self.columns += [matched[1]] * count
        if len(conditions) > 1 and len(self.key_params) != len(conditions):
            raise ValueError("IN together with other conditions")  # keys would be pairs of sets
        self.composite = len(conditions) > 1
        self.key_columns = tuple(dict.fromkeys(self.columns[i] for i in self.key_params))
        self.moves_keys = bool(assigned & set(self.key_columns))  # (then nothing may pass it)
        # The parameters become columns _p1, _p2, ... of the VALUES list _v (no table's
        # column starts with "_", so the target's columns keep their plain names).
        counter = itertools.count(1)
        self.body = _PLACEHOLDER.sub(lambda _: f"_v._p{next(counter)}", f"SET {found[2]}")
        counter = itertools.count(1 + found[2].count("?"))
        self.where = _PLACEHOLDER.sub(lambda _: f"_v._p{next(counter)}", found[3])
        self._statements: dict[tuple[int, tuple[str, ...]], str] = {}  # (rows, types) -> text

    def touched(self, row: Sequence[Any]) -> list[Any]:
        """The keys of the rows it changes (values of ``key_columns``)."""
        if self.composite:
            return [tuple(row[i] for i in self.key_params)]
        return [row[i] for i in self.key_params]

    def chunks(self, rows: Sequence[Sequence[Any]]) -> Iterator[Sequence[Sequence[Any]]]:
        return _chunks(rows, self.touched)

    def statement(self, rows: int, types: dict[str, str]) -> str:
        """``$n`` numbered: the first row's parameters are cast (the VALUES' column types
        follow them), the others are not."""
        key = (rows, tuple(types[c] for c in self.columns))
        found = self._statements.get(key)
        if found is None:
            found = self._statements[key] = self._statement(rows, types)
        return found

    def _statement(self, rows: int, types: dict[str, str]) -> str:
        width = len(self.columns)
        first = ", ".join(f"${i + 1}::{types[c]}" for i, c in enumerate(self.columns))
        others = (
            "(" + ", ".join(f"${r * width + i + 1}" for i in range(width)) + ")"
            for r in range(1, rows)
        )
        names = ", ".join(f"_p{i + 1}" for i in range(width))
        values = ", ".join([f"({first})", *others])
        return (
            f"UPDATE {self.table} {self.body} FROM (VALUES {values}) AS _v({names}) "
            f"WHERE {self.where}"
        )


def _chunks(
    rows: Sequence[Sequence[Any]], touched: Callable[[Sequence[Any]], list[Any]]
) -> Iterator[Sequence[Sequence[Any]]]:
    """Rows in order, in chunks of at most ROWS_PER_INSERT_MAX in which no key repeats
    (one statement may change a row once)."""
    chunk: list[Sequence[Any]] = []
    keys: set[Any] = set()
    for row in rows:
        mine = touched(row)
        if len(chunk) == ROWS_PER_INSERT_MAX or not keys.isdisjoint(mine):
            yield chunk
            chunk, keys = [], set()
        chunk.append(row)
        keys.update(mine)
    if chunk:
        yield chunk


def rows_in(
    tx: Tx, select: str, keys: Sequence[Any], *, tail: str = "", per_query: int = 500
) -> Iterator[tuple[Any, ...]]:
    """``select`` + `` IN (?, ...)`` + ``tail`` over ``keys``, ``per_query`` keys a query:
    the rows of many keys in few round trips (a read model's ``prepare``)."""
    for start in range(0, len(keys), per_query):
        part = list(keys[start : start + per_query])
        yield from tx.fetchall(f"{select} IN ({', '.join('?' * len(part))}){tail}", part)


def _split_top(text: str) -> list[str]:
    """Split at the commas outside parentheses."""
    parts, depth, start = [], 0, 0
    for i, ch in enumerate(text):
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        elif ch == "," and depth == 0:
            parts.append(text[start:i])
            start = i + 1
    parts.append(text[start:])
    return parts


@dataclass(frozen=True)
class _Shape:
    table: str | None  # the table a plain write changes; None: run it at once, in order
    insert: _Insert | None
    update: _Update | None


_shapes: dict[str, _Shape] = {}
_read_words: dict[str, frozenset[str]] = {}


def _shape(sql: str) -> _Shape:
    shape = _shapes.get(sql)
    if shape is None:
        target = _TARGET.match(sql)
        # A write that reads (a subquery, UPDATE ... FROM) or is not a row write (DDL)
        # runs at once, after everything queued before it.
        plain = target is not None and not _READS.search(sql[target.end() :])
        found = _INSERT.match(sql) if plain else None
        update = None
        changed = _UPDATE.match(sql) if plain else None
        if changed is not None:
            try:
                update = _Update(changed)
            except ValueError:  # a form it does not know: sent row by row
                update = None
        shape = _shapes[sql] = _Shape(
            target[1].lower() if plain and target else None,
            _Insert(found) if found is not None else None,
            update,
        )
    return shape


def _words(sql: str) -> frozenset[str]:
    words = _read_words.get(sql)
    if words is None:
        words = _read_words[sql] = frozenset(_WORDS.findall(sql.lower()))
    return words


_Touch = Callable[[Sequence[Any]], list[Any]]
SEGMENTS_PASSED_MAX = 64  # how far back a statement looks for rows of its own kind


@dataclass
class _Segment:
    """Consecutive rows of one statement in a table's queue. ``columns``: the unique key
    that names the rows it writes (None: unknown, nothing may pass it); the keys it
    touches are worked out only when a statement wants to pass it."""

    sql: str
    rows: list[Sequence[Any]]
    columns: tuple[str, ...] | None
    touch: _Touch | None
    keys: set[Any] = field(default_factory=set)
    keyed: int = 0  # rows[:keyed] are in keys

    def touched(self) -> set[Any]:
        if self.touch is not None and self.keyed < len(self.rows):
            for row in self.rows[self.keyed :]:
                self.keys.update(self.touch(row))
            self.keyed = len(self.rows)
        return self.keys


class _QueuedTx:
    """Writes wait in a queue per table and go out together: rows of one statement become
    one multi-row INSERT or set-based UPDATE. A read first sends what is queued for the
    tables it names, so a transaction reads its own writes; the store flushes before
    commit. Different tables are independent (read models have no foreign keys or
    triggers). In one table a statement joins the latest queued rows of the same
    statement when every statement queued after those touches other rows by the same
    unique key (two writes to different rows commute); otherwise it waits its turn."""

    def __init__(self, catalog: dict[Any, Any] | None = None) -> None:
        self.memo: dict[Any, Any] = {}
        self._queued: dict[str, list[_Segment]] = {}
        # the store's (shared by its transactions): primary keys and column types per table
        self._catalog = {} if catalog is None else catalog

    @property
    def lasting(self) -> dict[Any, Any]:
        """Facts read from the views that never change once written (a partner's path),
        kept by the store across transactions; forgotten with the catalog whenever a
        statement changes the schema (a read model dropped and rebuilt)."""
        found: dict[Any, Any] = self._catalog.setdefault(_LASTING, {})
        return found

    def execute(self, sql: str, params: Sequence[Any] = ()) -> None:
        self._write(sql, (params,))

    def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        if rows:
            self._write(sql, rows)

    def _write(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        shape = _shape(sql)
        table = shape.table
        if table is None:
            self.flush()
            if _DDL.match(sql):
                self._catalog.clear()
            self._send(sql, rows)
            return
        queue = self._queued.setdefault(table, [])
        if queue and queue[-1].sql == sql:
            queue[-1].rows.extend(rows)
            return
        columns, touch = self._identity(shape, table)
        if touch is not None and len(queue) > 1:
            mine = {key for row in rows for key in touch(row)}
            for segment in queue[: -SEGMENTS_PASSED_MAX - 2 : -1]:
                if segment.sql == sql:
                    segment.rows.extend(rows)  # (its keys are worked out when needed)
                    return
                if segment.columns != columns or not segment.touched().isdisjoint(mine):
                    break
        queue.append(_Segment(sql, list(rows), columns, touch))

    def _identity(self, shape: _Shape, table: str) -> tuple[tuple[str, ...] | None, _Touch | None]:
        """The unique key a statement's rows are named by, and how to read it from a row."""
        if shape.update is not None and not shape.update.moves_keys:
            return shape.update.key_columns, shape.update.touched
        insert = shape.insert
        if insert is not None:
            columns = insert.identity(self._primary_key(table))
            if columns is not None:
                return columns, functools.partial(insert.touched, columns)
        return None, None

    def _primary_key(self, table: str) -> tuple[str, ...]:
        key = ("primary key", table)
        if key not in self._catalog:
            self._catalog[key] = self._read_primary_key(table)
        return self._catalog[key]  # type: ignore[no-any-return]

    def _read_primary_key(self, table: str) -> tuple[str, ...]:
        raise NotImplementedError

    def _before_read(self, sql: str) -> None:
        if self._queued:
            for table in _words(sql) & self._queued.keys():
                self._flush_table(table)

    def flush(self) -> None:
        for table in list(self._queued):
            self._flush_table(table)

    def _flush_table(self, table: str) -> None:
        for segment in self._queued.pop(table):
            insert = _shape(segment.sql).insert
            rows = segment.rows if insert is None else insert.firsts(segment.rows)
            self._send(segment.sql, rows)

    def _send(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        raise NotImplementedError


class SqliteTx(_QueuedTx):
    dialect = "sqlite"

    def __init__(self, conn: sqlite3.Connection, catalog: dict[Any, Any] | None = None) -> None:
        super().__init__(catalog)
        self._conn = conn

    def _read_primary_key(self, table: str) -> tuple[str, ...]:
        rows = self._conn.execute(f"PRAGMA table_info({table})").fetchall()
        return tuple(r[1] for r in sorted(rows, key=lambda r: r[5]) if r[5] > 0)

    def _send(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        if len(rows) == 1:
            self._conn.execute(sql, rows[0])
        else:
            self._conn.executemany(sql, rows)

    def fetchone(self, sql: str, params: Sequence[Any] = ()) -> tuple[Any, ...] | None:
        self._before_read(sql)
        row = self._conn.execute(sql, params).fetchone()
        return None if row is None else tuple(row)

    def fetchall(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        self._before_read(sql)
        return [tuple(r) for r in self._conn.execute(sql, params).fetchall()]


class PostgresTx(_QueuedTx):
    """Statements go out with numbered parameters (``$1``) on raw cursors: psycopg does
    not parse them (a multi-row INSERT's text is new each time, and parsing it in Python
    cost more than sending it)."""

    dialect = "postgresql"
    _cache: dict[str, str] = {}

    def __init__(self, conn: Any, catalog: dict[Any, Any] | None = None) -> None:
        super().__init__(catalog)
        self._conn = conn
        self._cur = psycopg.RawCursor(conn)  # the writes' cursor: cheaper than one per statement

    @classmethod
    def numbered(cls, sql: str) -> str:
        """The statement with PostgreSQL's placeholders (cached: the same texts recur)."""
        converted = cls._cache.get(sql)
        if converted is None:
            converted = cls._cache[sql] = _numbered(sql)
        return converted

    def _send(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        shape = _shape(sql)
        if len(rows) == 1:
            self._cur.execute(self.numbered(sql), rows[0])
        elif shape.insert is not None:
            for chunk in shape.insert.chunks(rows):
                statement = (
                    self.numbered(sql) if len(chunk) == 1 else shape.insert.statement(len(chunk))
                )
                self._cur.execute(statement, list(itertools.chain.from_iterable(chunk)))
        elif shape.update is not None:
            types = self._types(shape.update.table)
            for chunk in shape.update.chunks(rows):
                if len(chunk) < SET_UPDATE_ROWS_MIN:  # the plain statement, prepared, is cheaper
                    self._cur.executemany(self.numbered(sql), chunk)
                    continue
                statement = shape.update.statement(len(chunk), types)
                self._cur.execute(statement, list(itertools.chain.from_iterable(chunk)))
        else:
            self._cur.executemany(self.numbered(sql), rows)

    def _types(self, table: str) -> dict[str, str]:
        """The table's column types (as ``format_type`` spells them)."""
        key = ("column types", table)
        types = self._catalog.get(key)
        if types is None:
            rows = psycopg.RawCursor(self._conn).execute(
                "SELECT a.attname, format_type(a.atttypid, a.atttypmod) FROM pg_attribute a "
                "WHERE a.attrelid = $1::regclass AND a.attnum > 0 AND NOT a.attisdropped",
                [table],
            )
            types = self._catalog[key] = dict(rows.fetchall())
        return types

    def _read_primary_key(self, table: str) -> tuple[str, ...]:
        rows = psycopg.RawCursor(self._conn).execute(
            "SELECT a.attname FROM pg_index i JOIN pg_attribute a ON a.attrelid = i.indrelid "
            "AND a.attnum = ANY(i.indkey) WHERE i.indrelid = $1::regclass AND i.indisprimary "
            "ORDER BY array_position(i.indkey::int2[], a.attnum)",
            [table],
        )
        return tuple(r[0] for r in rows.fetchall())

    # A read gets a cursor of its own: in pipeline mode the writes' cursor may still hold
    # results of queued statements (a shared one answered a SELECT with an INSERT's status).
    def fetchone(self, sql: str, params: Sequence[Any] = ()) -> tuple[Any, ...] | None:
        self._before_read(sql)
        row = psycopg.RawCursor(self._conn).execute(self.numbered(sql), params).fetchone()
        return None if row is None else tuple(row)

    def fetchall(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        self._before_read(sql)
        return [tuple(r) for r in psycopg.RawCursor(self._conn).execute(self.numbered(sql), params)]


def _numbered(sql: str, start: int = 1) -> str:
    """``?`` placeholders as PostgreSQL's ``$1, $2, ...`` (``%`` needs no escaping then)."""
    counter = itertools.count(start)
    return _PLACEHOLDER.sub(lambda _: f"${next(counter)}", sql)


class ViewStore:
    """Opens transactions on the read-model storage of one database (or a side build)."""

    def __init__(self, database: Database, *, target: str | None = None) -> None:
        self.database = database
        self.dialect = "sqlite" if database.is_sqlite else "postgresql"
        self._local = threading.local()
        self._write_lock = threading.Lock()
        # Primary keys and column types of the read models' tables, as the write queue
        # needs them; forgotten when a statement changes the schema.
        self._catalog: dict[Any, Any] = {}
        self._pool: Any = None
        if database.is_sqlite:
            self.path = Path(target) if target else database.views_path
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.schema = ""
            if target:  # a side build: registered, so that a forget finds it
                from projections.forgetting import register_side_file

                register_side_file(database, self.path)
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
            # Transactions are explicit (``read``, ``write``); ``query`` needs none.
            conn.autocommit = True

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
                    lite = SqliteTx(conn, self._catalog)
                    yield lite
                    lite.flush()
                except BaseException:
                    conn.execute("ROLLBACK")
                    raise
                conn.execute("COMMIT")
            return
        # Pipeline mode: writes go out without waiting for each answer (a read syncs),
        # so a batch of projection writes costs far fewer round trips.
        with self._pool.connection() as pg, pg.pipeline(), pg.transaction():
            tx = PostgresTx(pg, self._catalog)
            yield tx
            tx.flush()

    @contextmanager
    def read(self) -> Iterator[Tx]:
        if self._pool is None:
            conn = self._sqlite()
            conn.execute("BEGIN")
            try:
                lite = SqliteTx(conn, self._catalog)
                yield lite
                lite.flush()
            finally:
                conn.execute("COMMIT")
            return
        with self._pool.connection() as pg, pg.transaction():
            tx = PostgresTx(pg, self._catalog)
            yield tx
            tx.flush()

    @contextmanager
    def query(self) -> Iterator[Tx]:
        """For reads of one statement each, consistent by the positions they name (not by
        a snapshot): no transaction, so no BEGIN and COMMIT round trips (PostgreSQL: the
        pool's connections are in autocommit; SQLite: each statement is its own read)."""
        tx: _QueuedTx
        if self._pool is None:
            tx = SqliteTx(self._sqlite(), self._catalog)
            yield tx
        else:
            with self._pool.connection() as pg:
                tx = PostgresTx(pg, self._catalog)
                yield tx
        assert not tx._queued, "query() is for reads; writes go through write()"

    def purge_freed_pages(self) -> None:
        """Make scrubbed rows unrecoverable: SQLite keeps old page versions in its WAL until a
        checkpoint (secure_delete zeroes freed space in the file itself); PostgreSQL keeps
        dead tuples until VACUUM."""
        if self._pool is None:
            with self._write_lock:
                self._sqlite().execute("PRAGMA wal_checkpoint(TRUNCATE)")
            return
        with self._pool.connection() as pg:
            pg.execute("VACUUM")  # (autocommit: VACUUM cannot run in a transaction)

    def close(self) -> None:
        if self._pool is not None:
            self._pool.close()
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None

    def drop_everything(self) -> None:
        """Remove every read model of this store (a side build before it is rebuilt)."""
        self._catalog.clear()
        if self._pool is None:
            self.close()
            for suffix in ("", "-wal", "-shm"):
                Path(str(self.path) + suffix).unlink(missing_ok=True)
            return
        with self._pool.connection() as pg, pg.transaction():
            pg.execute(f'DROP SCHEMA IF EXISTS "{self.schema}" CASCADE')
            pg.execute(f'CREATE SCHEMA "{self.schema}"')
