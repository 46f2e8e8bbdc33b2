"""Read model: units sold per store per SKU per Asia/Shanghai calendar day.

Each row keeps the store's materialised path, so a dealer's (or HQ's) figure is the
sum over the stores of its subtree. ``sell_through_units`` remembers the SKU of each
commissioned unit until it is sold (Unit.Sold does not carry it).
"""

from __future__ import annotations

from datetime import date
from typing import Any

from domain.clock import SHANGHAI
from domain.principal import path_within
from domain.units import Unit
from projections.partners import partner_path as path_of
from projections.partners import scope_clause
from projections.views import Tx


class SellThroughView:
    name: str = "sell_through"
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

    def apply(self, tx: Tx, event: Any, position: int) -> None:
        unit = str(event.originator_id)
        if isinstance(event, Unit.Commissioned):
            tx.execute("INSERT INTO sell_through_units (id, sku) VALUES (?, ?)", (unit, event.sku))
        elif isinstance(event, Unit.Sold):
            _sold(tx, unit, event, position)


def shanghai_day(event: Any) -> str:
    return str(event.timestamp.astimezone(SHANGHAI).date().isoformat())


def _sold(tx: Tx, unit: str, event: Any, position: int) -> None:
    row = tx.fetchone("SELECT sku FROM sell_through_units WHERE id = ?", (unit,))
    if row is None:
        return
    tx.execute("DELETE FROM sell_through_units WHERE id = ?", (unit,))
    tx.execute(
        "INSERT INTO sell_through (store, sku, day, path, units, position) "
        "VALUES (?, ?, ?, ?, 1, ?) ON CONFLICT (store, sku, day) DO UPDATE SET "
        "units = sell_through.units + 1, position = excluded.position",
        (event.store, row[0], shanghai_day(event), path_of(tx, event.store), position),
    )


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
