"""The read models' transactions on the real stores: in a PostgreSQL write transaction
(pipeline mode) a read answers its own statement, whatever writes were queued before it;
``tx.memo`` lives exactly as long as its transaction."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from projections.database import parse_database_url
from projections.views import ViewStore


@pytest.fixture
def views(database_url: str) -> Iterator[ViewStore]:
    store = ViewStore(parse_database_url(database_url))
    try:
        with store.write() as tx:
            tx.execute("CREATE TABLE t (k TEXT PRIMARY KEY, n BIGINT NOT NULL)")
        yield store
    finally:
        store.close()


def test_a_read_after_queued_writes_answers_itself(views: ViewStore) -> None:
    with views.write() as tx:
        tx.execute("INSERT INTO t (k, n) VALUES (?, ?)", ("a", 1))
        tx.execute("INSERT INTO t (k, n) VALUES (?, ?) ON CONFLICT (k) DO NOTHING", ("a", 2))
        tx.executemany("INSERT INTO t (k, n) VALUES (?, ?)", [("b", 3), ("c", 4)])
        tx.execute("UPDATE t SET n = n + 10 WHERE k = ?", ("zz",))  # no row
        assert tx.fetchone("SELECT n FROM t WHERE k = ?", ("a",)) == (1,)
        tx.execute("INSERT INTO t (k, n) VALUES (?, ?) ON CONFLICT (k) DO NOTHING", ("b", 9))
        assert tx.fetchall("SELECT k, n FROM t ORDER BY k") == [("a", 1), ("b", 3), ("c", 4)]
        tx.execute("DELETE FROM t WHERE k = ?", ("c",))
        assert tx.fetchone("SELECT COUNT(*) FROM t") == (2,)
    with views.read() as tx:
        assert tx.fetchall("SELECT k, n FROM t ORDER BY k") == [("a", 1), ("b", 3)]


def test_reads_between_many_queued_writes(views: ViewStore) -> None:
    """(Enough statements that the pipeline sends and receives while it queues.)"""
    with views.write() as tx:
        for i in range(3000):
            tx.execute("INSERT INTO t (k, n) VALUES (?, ?) ON CONFLICT (k) DO NOTHING", (str(i), i))
            tx.execute("INSERT INTO t (k, n) VALUES (?, ?) ON CONFLICT (k) DO NOTHING", (str(i), 0))
            if i % 97 == 0:
                assert tx.fetchone("SELECT n FROM t WHERE k = ?", (str(i),)) == (i,)
                assert tx.fetchall("SELECT COUNT(*) FROM t") == [(i + 1,)]


def test_many_rows_at_once_keep_each_rows_meaning(views: ViewStore) -> None:
    """(PostgreSQL sends an INSERT of many rows as few statements: duplicates still do
    nothing, and an upsert still applies row after row.)"""
    rows = [(f"k{i}", i) for i in range(450)]
    with views.write() as tx:
        tx.executemany("INSERT INTO t (k, n) VALUES (?, ?)", rows)
        tx.executemany(
            "INSERT INTO t (k, n) VALUES (?, ?) ON CONFLICT (k) DO NOTHING",
            [("k0", -1), ("new", 1), ("new", 2)],
        )
        tx.executemany(
            "INSERT INTO t (k, n) VALUES (?, ?) ON CONFLICT (k) DO UPDATE SET n = t.n + excluded.n",
            [("k1", 10), ("k1", 100)],
        )
    with views.read() as tx:
        assert tx.fetchone("SELECT COUNT(*), SUM(n) FROM t") == (451, sum(range(450)) + 1 + 110)
        assert tx.fetchall("SELECT k, n FROM t WHERE k IN ('k0', 'k1', 'new') ORDER BY k") == [
            ("k0", 0),
            ("k1", 111),
            ("new", 1),
        ]


def test_the_memo_lives_as_long_as_its_transaction(views: ViewStore) -> None:
    with views.write() as tx:
        tx.memo["seen"] = 1
        assert tx.memo == {"seen": 1}
    with views.write() as tx:
        assert tx.memo == {}
