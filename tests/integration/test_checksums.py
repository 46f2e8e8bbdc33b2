"""View checksums (what `siyu replay` compares), on both stores: two builds holding the
same rows are equal whatever order the rows were written in; a changed value, a missing
row or an extra row shows. PostgreSQL hashes in the database, SQLite in Python."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from projections.compare import remove_side, unique_side_target
from projections.engine import Engine
from projections.store import Store
from projections.views import ViewStore


class Things:
    name = "things"
    version = 1
    tables = {
        "things": "CREATE TABLE IF NOT EXISTS things "
        "(id TEXT PRIMARY KEY, amount BIGINT, note TEXT, at DOUBLE PRECISION)"
    }
    indexes: tuple[str, ...] = ()
    topics: frozenset[str] = frozenset({"none"})

    def apply(self, tx: Any, event: Any, position: int) -> None:
        raise AssertionError("not fed events here")


ROWS = [("a", 1, "x", 1.5), ("b", -2, None, None), ("c", 3, "é\n'", 0.1)]


@pytest.fixture
def builds(store: Store) -> Iterator[tuple[Engine, Engine]]:
    engines = []
    for label in ("one", "two"):
        views = ViewStore(store.database, target=unique_side_target(store, label))
        views.drop_everything()
        engine = Engine(store.ledger.recorder, store.ledger.mapper, views, [Things()])
        engine.ensure_schema()
        engines.append(engine)
    try:
        yield engines[0], engines[1]
    finally:
        for engine in engines:
            remove_side(engine)


def _write(engine: Engine, rows: list[tuple[Any, ...]]) -> None:
    with engine.views.write() as tx:
        tx.execute("DELETE FROM things")
        tx.executemany("INSERT INTO things (id, amount, note, at) VALUES (?, ?, ?, ?)", rows)


def test_equal_rows_in_any_order_are_equal(builds: tuple[Engine, Engine]) -> None:
    one, two = builds
    _write(one, ROWS)
    _write(two, list(reversed(ROWS)))
    assert one.checksums() == two.checksums()
    _write(two, [])
    _write(one, [])
    assert one.checksums() == two.checksums()


@pytest.mark.parametrize(
    "changed",
    [
        [("a", 1, "x", 1.5), ("b", -2, None, None), ("c", 4, "é\n'", 0.1)],  # a value
        [("a", 1, "x", 1.5), ("b", -2, "", None), ("c", 3, "é\n'", 0.1)],  # NULL vs ''
        [("a", 1, "x", 1.5), ("c", 3, "é\n'", 0.1)],  # a row missing
        [*ROWS, ("d", 0, None, None)],  # a row extra
        [("a", 1, "x", 1.5), ("b", -2, None, None), ("d", 3, "é\n'", 0.1)],  # a key
    ],
)
def test_any_difference_shows(builds: tuple[Engine, Engine], changed: list[Any]) -> None:
    one, two = builds
    _write(one, ROWS)
    _write(two, changed)
    assert one.checksums() != two.checksums()
