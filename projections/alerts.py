"""Read model: anomaly alerts (diversion, repeat scan...), each with its evidence positions.

An alert names its evidence as ``"<aggregate id>:<version>"`` (an event learns its
position only when saved); this view resolves each to its store position through the
``positions_of`` lookup it is given: every reference of a batch's alerts in one call (one
statement on PostgreSQL; a statement per reference cost a replay one per alert or two).
Alerts name units by their outer code only. HQ sees every alert, a dealer those whose
``dealer`` is itself.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any
from uuid import UUID

import msgspec

from domain.alerts import Alert
from domain.identity import id_text
from projections.views import Tx

Ref = tuple[UUID, int]  # an event: its aggregate's id and version
# the positions of those of the events that are stored
PositionsOf = Callable[[Sequence[Ref]], Mapping[Ref, int]]
_FOUND = "alerts.evidence"  # tx.memo: the batch's evidence positions

_json = msgspec.json.Encoder()
_unjson = msgspec.json.Decoder(list[int])

COLUMNS = ("kind", "code", "sku", "dealer", "region_code", "at", "evidence", "detail", "position")


def _no_positions(_refs: Sequence[Ref]) -> Mapping[Ref, int]:
    return {}


def _ref(text: str) -> Ref | None:
    aggregate_id, _, version = text.rpartition(":")
    try:
        return UUID(aggregate_id), int(version)
    except ValueError:  # not a reference: nothing to point at
        return None


class AlertsView:
    name: str = "alerts"
    version: int = 1
    tables: dict[str, str] = {
        "alerts": (
            "CREATE TABLE IF NOT EXISTS alerts ("
            "id TEXT PRIMARY KEY, position BIGINT NOT NULL UNIQUE, kind TEXT NOT NULL, "
            "code TEXT NOT NULL, sku TEXT NOT NULL, dealer TEXT, region_code TEXT, "
            "at TEXT NOT NULL, evidence TEXT NOT NULL, detail TEXT NOT NULL)"
        ),
    }
    indexes: tuple[str, ...] = (
        "CREATE INDEX IF NOT EXISTS alerts_dealer ON alerts (dealer, position)",
        "CREATE INDEX IF NOT EXISTS alerts_kind ON alerts (kind, position)",
    )
    topics: frozenset[str] = frozenset({Alert.Raised.TOPIC})

    def __init__(self, positions_of: PositionsOf | None = None) -> None:
        self.positions_of: PositionsOf = positions_of or _no_positions

    def prepare(self, tx: Tx, events: list[tuple[Any, int]]) -> None:
        refs = {
            ref
            for event, _position in events
            if isinstance(event, Alert.Raised)
            for ref in map(_ref, event.evidence)
            if ref is not None
        }
        tx.memo[_FOUND] = self.positions_of(sorted(refs)) if refs else {}

    def apply(self, tx: Tx, event: Any, position: int) -> None:
        if not isinstance(event, Alert.Raised):
            return
        found: Mapping[Ref, int] = tx.memo.get(_FOUND, {})
        tx.execute(
            "INSERT INTO alerts (id, position, kind, code, sku, dealer, region_code, at, "
            "evidence, detail) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
            "ON CONFLICT (id) DO NOTHING",
            (
                id_text(event.originator_id),
                position,
                event.kind,
                event.code,
                event.sku,
                event.dealer,
                event.region_code,
                event.timestamp.isoformat(),
                _json.encode(evidence_positions(event.evidence, found)).decode(),
                event.detail,
            ),
        )


def evidence_positions(refs: tuple[str, ...], found: Mapping[Ref, int]) -> list[int]:
    """Store positions of the evidence events, in the alert's order (unknown ones left out)."""
    positions = []
    for text in refs:
        ref = _ref(text)
        if ref is not None and ref in found:
            positions.append(found[ref])
    return positions


# -- queries ---------------------------------------------------------------------


def list_alerts(
    tx: Tx, dealer: str | None, kind: str | None, after_position: int | None, limit: int
) -> list[dict[str, Any]]:
    """Alerts oldest first by position (``after_position`` is the cursor); ``dealer`` None: all."""
    sql = f"SELECT {', '.join(COLUMNS)} FROM alerts WHERE 1 = 1"
    params: list[Any] = []
    for column, value in (("dealer", dealer), ("kind", kind)):
        if value is not None:
            sql += f" AND {column} = ?"
            params.append(value)
    if after_position is not None:
        sql += " AND position > ?"
        params.append(after_position)
    sql += " ORDER BY position LIMIT ?"
    params.append(limit)
    return [_row_to_alert(row) for row in tx.fetchall(sql, params)]


def _row_to_alert(row: tuple[Any, ...]) -> dict[str, Any]:
    record = dict(zip(COLUMNS, row, strict=True))
    record["evidence"] = _unjson.decode(record["evidence"])
    record["position"] = int(record["position"])
    return record
