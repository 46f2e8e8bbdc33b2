"""Read model: channel inventory per partner per SKU, in units.

Commissioning adds to the owner's (HQ's) ``on_hand``; shipping moves units out of
the source's ``on_hand`` into ``shipped`` (in transit counts for nobody); receiving
adds to the receiver's ``on_hand`` and ``received``; selling moves units from the
store's ``on_hand`` to ``sold``. A case counts the units inside it at that moment
(``units`` on Case.Shipped/Received), each under its own SKU; packing and unpacking
change nothing. ``inventory_items`` remembers each unsold item's SKU and where it
is headed (a unit's row goes when it is sold).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from typing import Any

from domain.identity import id_text, unit_id
from domain.units import Case, Unit
from projections.views import Tx, rows_in

IDS_PER_QUERY_MAX = 500


class InventoryView:
    name: str = "inventory"
    version: int = 1
    tables: dict[str, str] = {
        "inventory": (
            "CREATE TABLE IF NOT EXISTS inventory ("
            "partner TEXT NOT NULL, sku TEXT NOT NULL, on_hand BIGINT NOT NULL, "
            "received BIGINT NOT NULL, shipped BIGINT NOT NULL, sold BIGINT NOT NULL, "
            "position BIGINT NOT NULL, PRIMARY KEY (partner, sku))"
        ),
        "inventory_items": (
            "CREATE TABLE IF NOT EXISTS inventory_items ("
            "id TEXT PRIMARY KEY, kind TEXT NOT NULL, sku TEXT NOT NULL, destination TEXT)"
        ),
    }
    indexes: tuple[str, ...] = ()
    topics: frozenset[str] = frozenset(
        {
            Unit.Commissioned.TOPIC,
            Unit.Shipped.TOPIC,
            Unit.Received.TOPIC,
            Unit.Sold.TOPIC,
            Case.Commissioned.TOPIC,
            Case.Shipped.TOPIC,
            Case.Received.TOPIC,
        }
    )

    def prepare(self, tx: Tx, events: list[tuple[Any, int]]) -> None:
        """The items the batch moves (and the units of its cases), in one query."""
        ids: list[str] = []
        for event, _ in events:
            if not isinstance(event, (Unit.Commissioned, Case.Commissioned)):
                ids.append(id_text(event.originator_id))
                if isinstance(event, (Case.Shipped, Case.Received)):
                    ids += _unit_ids(event.units)
        _load(tx, list(dict.fromkeys(ids)))

    def finish(self, tx: Tx) -> None:
        _write(tx)

    def apply(self, tx: Tx, event: Any, position: int) -> None:
        if isinstance(event, (Unit.Commissioned, Case.Commissioned)):
            _commissioned(tx, event, position)
            return
        item = id_text(event.originator_id)
        if isinstance(event, Unit.Shipped):
            _shipped(tx, item, _skus(tx, [item]), event, position)
        elif isinstance(event, Case.Shipped):
            _shipped(tx, item, _skus(tx, _unit_ids(event.units)), event, position)
        elif isinstance(event, Unit.Received):
            _received(tx, item, _skus(tx, [item]), position)
        elif isinstance(event, Case.Received):
            _received(tx, item, _skus(tx, _unit_ids(event.units)), position)
        elif isinstance(event, Unit.Sold):
            _sold(tx, item, event.store, position)


def _unit_ids(serials: Sequence[str]) -> list[str]:
    return [id_text(unit_id(serial)) for serial in serials]  # (unit_id keeps its ids)


_ITEMS = "inventory.items"  # tx.memo: id -> (sku, destination), or None when absent


def _items(tx: Tx) -> dict[str, tuple[str, str | None] | None]:
    items: dict[str, tuple[str, str | None] | None] = tx.memo.setdefault(_ITEMS, {})
    return items


# A batch folds its changes in ``tx.memo`` and ``finish`` writes them, a statement per
# kind of change: the items' rows as they end the batch, and each partner's counts.
_STORED = "inventory.stored"  # ids whose row existed when the batch began
_NEW = "inventory.new"  # id -> kind, of the items commissioned in the batch
_CHANGED = "inventory.changed"  # ids whose row the batch changed (insertion order)
_COUNTS = "inventory.counts"  # (partner, sku) -> [on_hand, received, shipped, sold, position]


def _changed(tx: Tx, item: str, row: tuple[str, str | None] | None) -> None:
    _items(tx)[item] = row
    tx.memo.setdefault(_CHANGED, {})[item] = None


def _load(tx: Tx, ids: Sequence[str]) -> dict[str, tuple[str, str | None] | None]:
    """The rows of ``ids`` (sku, destination; None when absent), read once per batch."""
    known = _items(tx)
    stored: set[str] = tx.memo.setdefault(_STORED, set())
    missing = [i for i in ids if i not in known]
    known.update(dict.fromkeys(missing))
    select = "SELECT id, sku, destination FROM inventory_items WHERE id"
    for item, sku, destination in rows_in(tx, select, missing, per_query=IDS_PER_QUERY_MAX):
        known[str(item)] = (sku, destination)
        stored.add(str(item))
    return known


def _write(tx: Tx) -> None:
    items, stored = _items(tx), tx.memo.get(_STORED, set())
    kinds: dict[str, str] = tx.memo.get(_NEW, {})
    inserted, updated, deleted = [], [], []
    for item in tx.memo.pop(_CHANGED, {}):
        row = items[item]
        if item in stored:
            if row is None:
                deleted.append((item,))
            else:
                updated.append((row[1], item))
        elif row is not None:
            inserted.append((item, kinds[item], row[0], row[1]))
    tx.executemany("DELETE FROM inventory_items WHERE id = ?", deleted)
    tx.executemany("UPDATE inventory_items SET destination = ? WHERE id = ?", updated)
    tx.executemany(
        "INSERT INTO inventory_items (id, kind, sku, destination) VALUES (?, ?, ?, ?)", inserted
    )
    counts: dict[tuple[str, str], list[int]] = tx.memo.pop(_COUNTS, {})
    tx.executemany(
        "INSERT INTO inventory (partner, sku, on_hand, received, shipped, sold, position) "
        "VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (partner, sku) DO UPDATE SET "
        "on_hand = inventory.on_hand + excluded.on_hand, "
        "received = inventory.received + excluded.received, "
        "shipped = inventory.shipped + excluded.shipped, "
        "sold = inventory.sold + excluded.sold, position = excluded.position",
        [(partner, sku, *figures) for (partner, sku), figures in counts.items()],
    )


def _skus(tx: Tx, ids: Sequence[str]) -> Counter[str]:
    """How many of the items ``ids`` there are of each SKU."""
    rows = _load(tx, ids)
    return Counter(row[0] for row in (rows[i] for i in dict.fromkeys(ids)) if row is not None)


def _commissioned(tx: Tx, event: Any, position: int) -> None:
    kind = "case" if isinstance(event, Case.Commissioned) else "unit"
    tx.memo.setdefault(_NEW, {})[id_text(event.originator_id)] = kind
    _changed(tx, id_text(event.originator_id), (event.sku, None))
    if kind == "unit":
        _count(tx, event.owner, Counter({event.sku: 1}), position, on_hand=1)


def _shipped(tx: Tx, item: str, units: Counter[str], event: Any, position: int) -> None:
    row = _items(tx).get(item)
    if row is not None:
        _changed(tx, item, (row[0], event.to))
    _count(tx, event.source, units, position, on_hand=-1, shipped=1)


def _received(tx: Tx, item: str, units: Counter[str], position: int) -> None:
    row = _load(tx, [item])[item]
    if row is None or row[1] is None:
        return
    _changed(tx, item, (row[0], None))
    _count(tx, row[1], units, position, on_hand=1, received=1)


def _sold(tx: Tx, item: str, store: str, position: int) -> None:
    units = _skus(tx, [item])
    _changed(tx, item, None)
    _count(tx, store, units, position, on_hand=-1, sold=1)


def _count(
    tx: Tx,
    partner: str,
    units: Counter[str],
    position: int,
    *,
    on_hand: int = 0,
    received: int = 0,
    shipped: int = 0,
    sold: int = 0,
) -> None:
    """Add ``units`` (per SKU) times each sign to the partner's figures (for ``_write``)."""
    counts: dict[tuple[str, str], list[int]] = tx.memo.setdefault(_COUNTS, {})
    for sku, n in sorted(units.items()):
        figures = counts.setdefault((partner, sku), [0, 0, 0, 0, position])
        figures[0] += n * on_hand
        figures[1] += n * received
        figures[2] += n * shipped
        figures[3] += n * sold
        figures[4] = position


# -- queries ---------------------------------------------------------------------


def get_inventory(tx: Tx, partner: str) -> dict[str, Any]:
    """``{partner, items: [{sku, on_hand, received, shipped, sold}]}``, by SKU."""
    rows = tx.fetchall(
        "SELECT sku, on_hand, received, shipped, sold FROM inventory "
        "WHERE partner = ? ORDER BY sku",
        (partner,),
    )
    items = [
        {
            "sku": sku,
            "on_hand": int(on_hand),
            "received": int(received),
            "shipped": int(shipped),
            "sold": int(sold),
        }
        for sku, on_hand, received, shipped, sold in rows
    ]
    return {"partner": partner, "items": items}
