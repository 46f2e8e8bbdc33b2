"""Two builds of the read models, compared row for row (``siyu diff``, ``siyu verify``).

A side build is the same projections fed from zero into another SQLite file or
PostgreSQL schema, through the live ledger's recorder and mapper (never through
``Store.open``: opening a store may write, e.g. the HQ partner, and a verification
writes nothing to the log).
"""

from __future__ import annotations

import secrets as random_secrets
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import msgspec

from projections.engine import Engine, Progress, Projection, _plain
from projections.forgetting import LIVE_COPY_PREFIX
from projections.store import Store, default_projections
from projections.views import Tx, ViewStore

ROWS_SHOWN_MAX = 20
_encoder = msgspec.json.Encoder()
_decoder = msgspec.json.Decoder(list[Any])


@dataclass
class TableDifference:
    table: str
    columns: list[str]
    only_live: list[list[Any]] = field(default_factory=list)
    only_side: list[list[Any]] = field(default_factory=list)

    @property
    def first_position(self) -> int | None:
        """The smallest ``position`` among the differing rows, if the table has one."""
        if "position" not in self.columns:
            return None
        i = self.columns.index("position")
        positions = [int(r[i]) for r in self.only_live + self.only_side if r[i] is not None]
        return min(positions) if positions else None

    def summary(self) -> TableSummary:
        return TableSummary(
            self.table, len(self.only_live), len(self.only_side), self.first_position
        )

    def lines(self, rows_max: int = ROWS_SHOWN_MAX) -> list[str]:
        out = [self.summary().line()]
        for sign, rows in (("-", self.only_live), ("+", self.only_side)):
            for row in rows[:rows_max]:
                out.append(f"  {sign} {dict(zip(self.columns, row, strict=True))}")
            if len(rows) > rows_max:
                out.append(f"  {sign} ... {len(rows) - rows_max} more")
        return out


def columns_of(tx: Tx, table: str) -> list[str]:
    if tx.dialect == "sqlite":
        return [str(r[1]) for r in tx.fetchall(f"PRAGMA table_info({table})")]
    rows = tx.fetchall(
        "SELECT column_name FROM information_schema.columns "
        "WHERE table_schema = current_schema() AND table_name = ? ORDER BY ordinal_position",
        (table,),
    )
    return [str(r[0]) for r in rows]


def snapshot_read(tx: Tx) -> None:
    """Make the rest of this read transaction see one snapshot (PostgreSQL; SQLite's
    deferred read transactions already do in WAL mode)."""
    if tx.dialect == "postgresql":
        tx.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")


def table_rows(tx: Tx, table: str) -> tuple[list[str], Counter[bytes]]:
    columns = columns_of(tx, table)
    rows = Counter(
        _encoder.encode([_plain(v) for v in row]) for row in tx.fetchall(f"SELECT * FROM {table}")
    )
    return columns, rows


def positions_in(tx: Tx, names: Sequence[str]) -> dict[str, int]:
    rows = tx.fetchall("SELECT name, position FROM projection_positions")
    return {str(n): int(p) for n, p in rows if n in names}


def difference(
    table: str, columns: list[str], live: Counter[bytes], side: Counter[bytes]
) -> TableDifference | None:
    only_live = live - side
    only_side = side - live
    if not only_live and not only_side:
        return None
    return TableDifference(
        table,
        columns,
        sorted(_decoder.decode(r) for r in only_live.elements()),
        sorted(_decoder.decode(r) for r in only_side.elements()),
    )


Tables = dict[str, tuple[list[str], Counter[bytes]]]


def read_build(
    views: ViewStore, projections: Iterable[Projection]
) -> tuple[dict[str, int], Tables]:
    """The positions and every row of ``projections`` in one build, from one snapshot."""
    chosen = list(projections)
    with views.read() as tx:
        snapshot_read(tx)
        positions = positions_in(tx, [p.name for p in chosen])
        tables = {t: table_rows(tx, t) for p in chosen for t in sorted(p.tables)}
    return positions, tables


@dataclass(frozen=True)
class TableSummary:
    """How two builds of one table differ, without the rows: what a verification
    reports (the rows may hold personal data; ``siyu diff`` shows them)."""

    table: str
    only_live: int
    only_side: int
    first_position: int | None

    def line(self) -> str:
        return (
            f"{self.table}: DIFFERENT ({self.only_live} rows only in live, "
            f"{self.only_side} only in side)"
        )


# -- PostgreSQL: the live tables copied into the side schema, compared there --------------


def copy_live_build(
    live: ViewStore, side_schema: str, projections: Iterable[Projection]
) -> dict[str, int]:
    """PostgreSQL: the positions and every table of ``projections`` as of one snapshot,
    copied inside the database into ``side_schema`` (``live_copy__<table>``), so a
    comparison holds no row in Python: a million-event store's live tables read into
    Python took a verifying process to about 1 GB before its rebuild began."""
    chosen = list(projections)
    with live.read() as tx:
        assert tx.dialect == "postgresql"
        snapshot_read(tx)
        positions = positions_in(tx, [p.name for p in chosen])
        for table in sorted({t for p in chosen for t in p.tables}):
            tx.execute(
                f'CREATE TABLE "{side_schema}".{LIVE_COPY_PREFIX}{table} AS SELECT * FROM {table}'
            )
    return positions


def compare_with_live_copy(side: ViewStore, tables: Iterable[str]) -> list[TableSummary]:
    """PostgreSQL: each table of the side build against its ``copy_live_build`` copy, in
    the database: rows compared by their text form (every column type has one), as
    multisets (``EXCEPT ALL``); counts and the first ``position`` come back."""
    found: list[TableSummary] = []
    with side.read() as tx:
        for table in sorted(tables):
            copy = f"{LIVE_COPY_PREFIX}{table}"
            has_position = "position" in columns_of(tx, table)
            position = "t.position" if has_position else "NULL::BIGINT"
            rows = f"SELECT t::TEXT AS r, {position} AS position FROM {{}} AS t"
            counts = []
            for first, second in ((copy, table), (table, copy)):
                row = tx.fetchone(
                    "SELECT COUNT(*), MIN(position) FROM "
                    f"({rows.format(first)} EXCEPT ALL {rows.format(second)}) AS d"
                )
                assert row is not None
                counts.append((int(row[0]), None if row[1] is None else int(row[1])))
            (only_live, live_first), (only_side, side_first) = counts
            if only_live or only_side:
                firsts = [f for f in (live_first, side_first) if f is not None]
                found.append(TableSummary(table, only_live, only_side, min(firsts, default=None)))
    return found


def diff_tables(live: Tables, side: Tables) -> list[TableDifference]:
    differences: list[TableDifference] = []
    for table, (columns, live_rows) in live.items():
        side_rows = side.get(table, (columns, Counter()))[1]
        found = difference(table, columns, live_rows, side_rows)
        if found is not None:
            differences.append(found)
    return differences


def compare_builds(
    live: ViewStore, side: ViewStore, projections: Iterable[Projection]
) -> list[TableDifference]:
    """Every table of ``projections`` in both builds, as they are now."""
    chosen = list(projections)
    return diff_tables(read_build(live, chosen)[1], read_build(side, chosen)[1])


# -- side builds --------------------------------------------------------------------------


def unique_side_target(store: Store, label: str) -> str:
    token = random_secrets.token_hex(4)
    if store.database.is_sqlite:
        path = store.database.views_path
        return str(path.with_name(f"{path.stem}.{label}-{token}.db"))
    return f"{label}_{token}"


def open_side(store: Store, target: str, projections: list[Projection]) -> Engine:
    """An engine over an empty side build at ``target`` (emptied first if it exists)."""
    views = ViewStore(store.database, target=target)
    views.drop_everything()
    engine = Engine(store.ledger.recorder, store.ledger.mapper, views, projections)
    engine.ensure_schema()
    return engine


def remove_side(engine: Engine) -> None:
    """Drop a side build entirely (its SQLite files, or its PostgreSQL schema)."""
    engine.stop()  # its page-fetching thread, if it started one
    views = engine.views
    views.drop_everything()
    views.close()
    if views.database.is_sqlite:
        return
    import psycopg

    with psycopg.connect(views.database.psycopg_conninfo(), autocommit=True) as conn:
        conn.execute(f'DROP SCHEMA IF EXISTS "{views.schema}" CASCADE')


def fresh_projections(store: Store, names: Sequence[str] | None = None) -> list[Projection]:
    """New instances of the store's read models (no notary: a side build signs nothing)."""
    live_names = [p.name for p in store.engine.projections]
    return [
        p
        for p in default_projections(store.ledger.positions_of)
        if p.name in live_names and (names is None or p.name in names)
    ]


def build_until(
    engine: Engine,
    until: int,
    should_stop: Callable[[], bool] = lambda: False,
    on_progress: Callable[[Progress], None] | None = None,
) -> int:
    """Feed the side build up to ``until``; returns the position it reached."""
    import time

    started = time.monotonic()
    applied = 0
    while not should_stop():
        n = engine.run_batch(until=until)
        applied += n
        if on_progress is not None:
            on_progress(Progress(engine.position(), until, applied, time.monotonic() - started))
        if n == 0:
            break
    return engine.position()
