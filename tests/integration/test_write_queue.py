"""The read models' write queue (``projections.views``) against the same statements run one
by one: whatever it merges, reorders or sends as one multi-row or set-based statement,
the tables end the same, and a read in the transaction sees every write before it.

Random programs of the statement forms the read models use (plain and upsert INSERTs,
``UPDATE ... WHERE k = ?`` / ``IN (...)`` / composite keys, increments, NULLs, DELETEs,
a constant-key upsert, reads in between) on both stores."""

from __future__ import annotations

import random
import sqlite3
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest

from projections.database import parse_database_url
from projections.views import ViewStore

TABLES = (
    "CREATE TABLE a (k TEXT PRIMARY KEY, n BIGINT NOT NULL, s TEXT, x BIGINT)",
    "CREATE TABLE b (p TEXT NOT NULL, q BIGINT NOT NULL, v BIGINT NOT NULL, PRIMARY KEY (p, q))",
    "CREATE TABLE c (id BIGINT PRIMARY KEY, total BIGINT NOT NULL)",
)
KEYS = [f"k{i}" for i in range(12)]


def _statement(rnd: random.Random) -> tuple[str, list[tuple[Any, ...]]]:
    """One statement and its rows (one, or many as ``executemany``)."""
    k = lambda: rnd.choice(KEYS)  # noqa: E731
    many = rnd.randint(1, 4)
    form = rnd.randrange(13)
    if form == 0:
        return (
            "INSERT INTO a (k, n, s, x) VALUES (?, ?, ?, NULL) ON CONFLICT (k) DO NOTHING",
            [(k(), rnd.randint(0, 9), rnd.choice(["s", None])) for _ in range(many)],
        )
    if form == 1:
        return (
            "INSERT INTO a (k, n, s, x) VALUES (?, ?, ?, ?) ON CONFLICT (k) DO UPDATE SET "
            "n = a.n + excluded.n, s = excluded.s",
            [(k(), rnd.randint(1, 5), rnd.choice(["u", None]), 1) for _ in range(many)],
        )
    if form == 2:
        return ("UPDATE a SET n = ?, s = ? WHERE k = ?", [
            (rnd.randint(0, 99), rnd.choice(["w", None]), k()) for _ in range(many)
        ])  # fmt: skip
    if form == 3:
        return ("UPDATE a SET n = n + 1, x = ? WHERE k = ?", [
            (rnd.choice([None, 7]), k()) for _ in range(many * 5)
        ])  # fmt: skip
    if form == 4:
        keys = rnd.sample(KEYS, rnd.randint(1, 3))
        return (
            f"UPDATE a SET s = ?, x = NULL WHERE k IN ({', '.join('?' * len(keys))})",
            [(rnd.choice(["i", None]), *keys)],
        )
    if form == 5:
        return ("DELETE FROM a WHERE k = ?", [(k(),) for _ in range(rnd.randint(1, 2))])
    if form == 6:
        return (
            "INSERT INTO b (p, q, v) VALUES (?, ?, ?) ON CONFLICT (p, q) DO UPDATE SET "
            "v = b.v + excluded.v",
            [(k(), rnd.randint(0, 2), rnd.randint(1, 3)) for _ in range(many * 4)],
        )
    if form == 7:
        return ("UPDATE b SET v = v * 2 WHERE p = ? AND q = ?", [
            (k(), rnd.randint(0, 2)) for _ in range(many * 4)
        ])  # fmt: skip
    if form == 8:
        return ("UPDATE b SET v = v + 100 WHERE p = ?", [(k(),) for _ in range(many)])
    if form == 9:
        return (
            "INSERT INTO c (id, total) VALUES (1, ?) ON CONFLICT (id) DO UPDATE SET "
            "total = c.total + excluded.total",
            [(rnd.randint(1, 9),) for _ in range(many)],
        )
    if form == 10:
        return (
            "UPDATE a SET x = COALESCE(x, ?) WHERE k = ?",
            [(rnd.randint(0, 3), k()) for _ in range(many * 3)],
        )
    if form == 11:
        return ("INSERT INTO c (id, total) VALUES (?, ?) ON CONFLICT (id) DO NOTHING", [
            (rnd.randint(2, 30), rnd.randint(0, 9)) for _ in range(many * 3)
        ])  # fmt: skip
    return ("UPDATE c SET total = ? WHERE id = ?", [
        (rnd.randint(0, 50), rnd.randint(1, 30)) for _ in range(many * 10)
    ])  # fmt: skip


READS = (
    "SELECT k, n, s, x FROM a ORDER BY k",
    "SELECT p, q, v FROM b ORDER BY p, q",
    "SELECT id, total FROM c ORDER BY id",
)


def _program(seed: int) -> list[tuple[str, Any]]:
    rnd = random.Random(seed)
    program: list[tuple[str, Any]] = []
    for _ in range(rnd.randint(20, 160)):
        if rnd.random() < 0.06:
            program.append(("read", rnd.choice(READS)))
        else:
            program.append(("write", _statement(rnd)))
    return program


def _oracle(program: list[tuple[str, Any]]) -> tuple[list[Any], list[Any]]:
    """Each statement on its own, in order, on a plain SQLite connection."""
    conn = sqlite3.connect(":memory:")
    for ddl in TABLES:
        conn.execute(ddl)
    reads = []
    for kind, step in program:
        if kind == "read":
            reads.append([tuple(r) for r in conn.execute(step).fetchall()])
        else:
            sql, rows = step
            for row in rows:
                conn.execute(sql, row)
    final = [[tuple(r) for r in conn.execute(sql).fetchall()] for sql in READS]
    return reads, final


@pytest.fixture
def views(database_url: str) -> Iterator[ViewStore]:
    store = ViewStore(parse_database_url(database_url))
    try:
        yield store
    finally:
        store.close()


def _run(views: ViewStore, program: list[tuple[str, Any]]) -> tuple[list[Any], list[Any]]:
    with views.write() as tx:
        for table in ("a", "b", "c"):
            tx.execute(f"DROP TABLE IF EXISTS {table}")
        for ddl in TABLES:
            tx.execute(ddl)
    reads = []
    with views.write() as tx:
        for kind, step in program:
            if kind == "read":
                reads.append(tx.fetchall(step))
            else:
                sql, rows = step
                if len(rows) == 1:
                    tx.execute(sql, rows[0])
                else:
                    tx.executemany(sql, rows)
    with views.read() as tx:
        final = [tx.fetchall(sql) for sql in READS]
    return reads, final


def test_queued_writes_end_as_the_statements_one_by_one(views: ViewStore) -> None:
    for seed in range(60):
        program = _program(seed)
        assert _run(views, program) == _oracle(program), f"seed {seed}"


def test_many_rows_of_one_update_become_set_based_and_keep_their_meaning(
    views: ViewStore,
) -> None:
    """(Enough rows for PostgreSQL's ``UPDATE ... FROM (VALUES ...)`` chunks, repeated
    keys inside them, and NULLs in a whole column of a chunk.)"""
    rnd = random.Random(7)
    filled = [(key, 0) for key in KEYS]
    added = [(rnd.randint(1, 3), None, rnd.choice(KEYS)) for _ in range(500)]
    program: list[tuple[str, Any]] = [
        ("write", ("INSERT INTO a (k, n, s, x) VALUES (?, ?, NULL, NULL)", filled)),
        ("write", ("UPDATE a SET n = n + ?, x = ? WHERE k = ?", added)),
        ("write", ("UPDATE a SET s = ? WHERE k = ?", [(None, key) for key in KEYS])),
    ]
    assert _run(views, program) == _oracle(program)


def test_a_failing_write_fails_its_transaction_whole(views: ViewStore) -> None:
    """A queued write that breaks a constraint raises by the end of the transaction at the
    latest, and nothing of that transaction is kept."""
    _run(views, [])
    broken = (sqlite3.IntegrityError, psycopg.errors.UniqueViolation)
    with pytest.raises(broken), views.write() as tx:
        tx.execute("INSERT INTO c (id, total) VALUES (?, ?)", (1, 1))
        tx.execute("INSERT INTO a (k, n, s, x) VALUES (?, ?, NULL, NULL)", ("k1", 1))
        tx.execute("INSERT INTO a (k, n, s, x) VALUES (?, ?, NULL, NULL)", ("k1", 2))
    with views.read() as tx:
        assert tx.fetchall("SELECT COUNT(*) FROM a") == [(0,)]
        assert tx.fetchall("SELECT COUNT(*) FROM c") == [(0,)]


def test_a_key_queued_twice_for_do_nothing_is_sent_once(
    views: ViewStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An ``ON CONFLICT (key) DO NOTHING`` row whose key an earlier queued row of the same
    statement has is not sent (it could only be skipped); the first row stands."""
    _run(views, [])
    sent: list[int] = []
    with views.write() as tx:
        original = tx._send  # type: ignore[attr-defined]

        def counting(sql: str, rows: Any) -> None:
            if sql.startswith("INSERT INTO b"):
                sent.append(len(rows))
            original(sql, rows)

        monkeypatch.setattr(tx, "_send", counting)
        insert = "INSERT INTO b (p, q, v) VALUES (?, ?, ?) ON CONFLICT (p, q) DO NOTHING"
        tx.executemany(insert, [("x", 1, 10), ("x", 2, 20), ("x", 1, 30)])
        tx.execute(insert, ("x", 2, 40))
        tx.execute(insert, ("y", 1, 50))
    assert sent == [3]
    with views.read() as tx:
        assert tx.fetchall("SELECT p, q, v FROM b ORDER BY p, q") == [
            ("x", 1, 10),
            ("x", 2, 20),
            ("y", 1, 50),
        ]
