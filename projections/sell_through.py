"""Read model: units sold per store per SKU per Asia/Shanghai calendar day.

Each row keeps the store's materialised path, so a dealer's (or HQ's) figure is the
sum over the stores of its subtree. ``sell_through_units`` remembers the SKU of each
commissioned unit until it is sold (Unit.Sold does not carry it).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date
from typing import Any

from domain.clock import SHANGHAI
from domain.identity import id_text
from domain.principal import path_within
from domain.units import Unit
from projections.partners import partner_path as path_of
from projections.partners import scope_clause
from projections.views import Tx, rows_in


class SellThroughView:
    name: str = "sell_through"
    follows: tuple[str, ...] = ("partners",)  # reads partner paths
    version: int = 1
    tables: dict[str, str] = {
        "sell_through": (
            "CREATE TABLE IF NOT EXISTS sell_through ("
            "store TEXT NOT NULL, sku TEXT NOT NULL, day TEXT NOT NULL, path TEXT NOT NULL, "
            "units BIGINT NOT NULL, position BIGINT NOT NULL, PRIMARY KEY (store, sku, day))"
        ),
        "sell_through_units": (
            "CREATE TABLE IF NOT EXISTS sell_through_units (id TEXT PRIMARY KEY, sku TEXT NOT NULL)"
        ),
    }
    indexes: tuple[str, ...] = (
        "CREATE INDEX IF NOT EXISTS sell_through_path ON sell_through (path, day)",
    )
    topics: frozenset[str] = frozenset({Unit.Commissioned.TOPIC, Unit.Sold.TOPIC})

    # A batch folds into ``tx.memo`` (the units' SKUs as the batch leaves them, the sales
    # per store, SKU and day) and ``finish`` writes that, a statement per kind of change.

    def prepare(self, tx: Tx, events: list[tuple[Any, int]]) -> None:
        _skus(tx, [id_text(e.originator_id) for e, _ in events if isinstance(e, Unit.Sold)])

    def apply(self, tx: Tx, event: Any, position: int) -> None:
        unit = id_text(event.originator_id)
        if isinstance(event, Unit.Commissioned):
            _skus(tx, ())[unit] = event.sku
            tx.memo.setdefault(_CHANGED, {})[unit] = None
        elif isinstance(event, Unit.Sold):
            _sold(tx, unit, event, position)

    def finish(self, tx: Tx) -> None:
        skus, stored = _skus(tx, ()), tx.memo.get(_STORED, set())
        changed = tx.memo.pop(_CHANGED, {})
        tx.executemany(
            "DELETE FROM sell_through_units WHERE id = ?",
            [(u,) for u in changed if u in stored and skus[u] is None],
        )
        tx.executemany(
            "INSERT INTO sell_through_units (id, sku) VALUES (?, ?)",
            [(u, skus[u]) for u in changed if u not in stored and skus[u] is not None],
        )
        sales: dict[tuple[str, str, str], list[Any]] = tx.memo.pop(_SALES, {})
        tx.executemany(
            "INSERT INTO sell_through (store, sku, day, path, units, position) "
            "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (store, sku, day) DO UPDATE SET "
            "units = sell_through.units + excluded.units, position = excluded.position",
            [(store, sku, day, *rest) for (store, sku, day), rest in sales.items()],
        )


_SKUS = "sell_through.skus"  # unit id -> SKU while unsold (None: sold or unknown)
_STORED = "sell_through.stored"  # ids whose row existed when the batch began
_CHANGED = "sell_through.changed"  # ids the batch commissioned or sold
_SALES = "sell_through.sales"  # (store, sku, day) -> [path, units, position]


def _skus(tx: Tx, units: Sequence[str]) -> dict[str, str | None]:
    """The SKUs of the unsold ``units`` (None: sold or unknown), read once per batch."""
    skus: dict[str, str | None] = tx.memo.setdefault(_SKUS, {})
    stored: set[str] = tx.memo.setdefault(_STORED, set())
    missing = list(dict.fromkeys(u for u in units if u not in skus))
    skus.update(dict.fromkeys(missing))
    for unit, sku in rows_in(tx, "SELECT id, sku FROM sell_through_units WHERE id", missing):
        skus[str(unit)] = str(sku)
        stored.add(str(unit))
    return skus


def shanghai_day(event: Any) -> str:
    return str(event.timestamp.astimezone(SHANGHAI).date().isoformat())


def _sold(tx: Tx, unit: str, event: Any, position: int) -> None:
    sku = _skus(tx, (unit,))[unit]
    if sku is None:
        return
    _skus(tx, ())[unit] = None
    tx.memo.setdefault(_CHANGED, {})[unit] = None
    sales: dict[tuple[str, str, str], list[Any]] = tx.memo.setdefault(_SALES, {})
    sale = sales.setdefault(
        (event.store, sku, shanghai_day(event)), [path_of(tx, event.store), 0, position]
    )
    sale[1] += 1
    sale[2] = position


# -- queries ---------------------------------------------------------------------


def sell_through(
    tx: Tx,
    scope_path: str | None,
    partner_path: str,
    day_from: date | str,
    day_to: date | str,
) -> dict[str, Any] | None:
    """Units sold in the subtree of ``partner_path`` from ``day_from`` to ``day_to``
    (Shanghai days, both included): ``{partner, from, to, items: [{sku, units}], total}``.
    None when ``partner_path`` lies outside ``scope_path`` (None: everything)."""
    if scope_path is not None and not path_within(partner_path, scope_path):
        return None
    first, last = _day(day_from), _day(day_to)
    clause, params = scope_clause(partner_path)
    rows = tx.fetchall(
        f"SELECT sku, SUM(units) FROM sell_through WHERE {clause} AND day >= ? AND day <= ? "
        "GROUP BY sku ORDER BY sku",
        [*params, first, last],
    )
    items = [{"sku": sku, "units": int(units)} for sku, units in rows]
    return {
        "partner": partner_path.rsplit("/", 1)[-1],
        "from": first,
        "to": last,
        "items": items,
        "total": sum(item["units"] for item in items),
    }


def _day(value: date | str) -> str:
    return value.isoformat() if isinstance(value, date) else date.fromisoformat(value).isoformat()
