"""Read model: anomaly alerts (diversion, repeat scan...), each with its evidence positions.

An alert names its evidence as ``"<aggregate id>:<version>"`` (an event learns its
position only when saved); this view resolves each to its store position through the
``position_of`` lookup it is given. Alerts name units by their outer code only. HQ
sees every alert, a dealer those whose ``dealer`` is itself.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any
from uuid import UUID

import msgspec

from domain.alerts import Alert
from domain.identity import id_text
from projections.views import Tx

PositionOf = Callable[[UUID, int], int | None]

_json = msgspec.json.Encoder()
_unjson = msgspec.json.Decoder(list[int])

COLUMNS = ("kind", "code", "sku", "dealer", "region_code", "at", "evidence", "detail", "position")


def _no_positions(_id: UUID, _version: int) -> int | None:
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

    def __init__(self, position_of: PositionOf | None = None) -> None:
        self.position_of: PositionOf = position_of or _no_positions

    def apply(self, tx: Tx, event: Any, position: int) -> None:
        if not isinstance(event, Alert.Raised):
            return
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
                _json.encode(self.evidence_positions(event.evidence)).decode(),
                event.detail,
            ),
        )

    def evidence_positions(self, refs: tuple[str, ...]) -> list[int]:
        """Store positions of the evidence events, in the alert's order (unknown ones left out)."""
        positions = []
        for ref in refs:
            aggregate_id, _, version = ref.rpartition(":")
            try:
                found = self.position_of(UUID(aggregate_id), int(version))
            except ValueError:  # not a reference: nothing to point at
                continue
            if found is not None:
                positions.append(int(found))
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
