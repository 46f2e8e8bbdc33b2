"""Read model: the partner directory (scoped by materialised path)."""

from __future__ import annotations

from typing import Any

import msgspec

from domain.channel import Partner
from domain.identity import id_text
from projections.views import Tx

_json = msgspec.json.Encoder()
_unjson = msgspec.json.Decoder(list[str])


PATHS_MEMO = "partner_paths"  # tx.memo key; the partners view drops it when it writes


def partner_path(tx: Tx, code: str) -> str:
    """The materialised path of partner ``code`` (the partners view is applied first)."""
    paths: dict[str, str] = tx.memo.setdefault(PATHS_MEMO, {})
    path = paths.get(code)
    if path is None:
        # A path never changes once registered: kept across batches (each read is a
        # round trip that waits for every write queued before it). A partner not
        # (yet) registered is looked up again in the next batch.
        known: dict[str, str] = tx.lasting.setdefault(PATHS_MEMO, {})
        path = known.get(code)
        if path is None:
            row = tx.fetchone("SELECT path FROM partners WHERE code = ?", (code,))
            if row is not None:
                path = known[code] = str(row[0])
        path = paths[code] = code if path is None else path
    return path


class PartnerDirectory:
    name: str = "partners"
    version: int = 1
    tables: dict[str, str] = {
        "partners": (
            "CREATE TABLE IF NOT EXISTS partners ("
            "code TEXT PRIMARY KEY, id TEXT NOT NULL UNIQUE, kind TEXT NOT NULL, parent TEXT, "
            "path TEXT NOT NULL, "
            "name TEXT NOT NULL, region_codes TEXT NOT NULL, lat DOUBLE PRECISION, "
            "lng DOUBLE PRECISION, region_code TEXT, status TEXT NOT NULL, "
            "registered_at TEXT NOT NULL, position BIGINT NOT NULL)"
        ),
    }
    indexes: tuple[str, ...] = (
        "CREATE INDEX IF NOT EXISTS partners_parent ON partners (parent, code)",
        "CREATE INDEX IF NOT EXISTS partners_path ON partners (path)",
        # the store finder's box (projections/store_finder.py)
        "CREATE INDEX IF NOT EXISTS partners_stores_lat ON partners (kind, status, lat)",
    )
    topics: frozenset[str] = frozenset(
        {
            Partner.Registered.TOPIC,
            Partner.TerritoryUpdated.TOPIC,
            Partner.Relocated.TOPIC,
            Partner.Suspended.TOPIC,
            Partner.Reactivated.TOPIC,
        }
    )

    def apply(self, tx: Tx, event: Any, position: int) -> None:
        if isinstance(event, Partner.Registered):
            tx.memo.pop(PATHS_MEMO, None)  # a path read before this batch registered it
            tx.execute(
                "INSERT INTO partners (code, id, kind, parent, path, name, region_codes, lat, lng, "
                "region_code, status, registered_at, position) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 'active', ?, ?)",
                (
                    event.code,
                    id_text(event.originator_id),
                    event.kind,
                    event.parent,
                    event.path,
                    event.name,
                    _json.encode(list(event.region_codes)).decode(),
                    event.lat,
                    event.lng,
                    event.region_code,
                    event.timestamp.isoformat(),
                    position,
                ),
            )
            return
        code = id_text(event.originator_id)
        if isinstance(event, Partner.TerritoryUpdated):
            tx.execute(
                "UPDATE partners SET region_codes = ?, position = ? WHERE id = ?",
                (_json.encode(list(event.region_codes)).decode(), position, code),
            )
        elif isinstance(event, Partner.Relocated):
            tx.execute(
                "UPDATE partners SET lat = ?, lng = ?, region_code = ?, position = ? WHERE id = ?",
                (event.lat, event.lng, event.region_code, position, code),
            )
        elif isinstance(event, Partner.Suspended):
            tx.execute(
                "UPDATE partners SET status = 'suspended', position = ? WHERE id = ?",
                (position, code),
            )
        elif isinstance(event, Partner.Reactivated):
            tx.execute(
                "UPDATE partners SET status = 'active', position = ? WHERE id = ?",
                (position, code),
            )


COLUMNS = (
    "code",
    "kind",
    "parent",
    "path",
    "name",
    "region_codes",
    "lat",
    "lng",
    "region_code",
    "status",
    "registered_at",
    "position",
)


def row_to_partner(row: tuple[Any, ...]) -> dict[str, Any]:
    record = dict(zip(COLUMNS, row, strict=True))
    lat, lng = record.pop("lat"), record.pop("lng")
    record["location"] = None if lat is None else {"lat": lat, "lng": lng}
    record["region_codes"] = _unjson.decode(record["region_codes"])
    return record


def scope_clause(scope_path: str | None) -> tuple[str, list[Any]]:
    """SQL that keeps rows whose path lies in the subtree ``scope_path`` (None: all)."""
    if scope_path is None:
        return "1 = 1", []
    prefix = scope_path + "/"
    return "(path = ? OR substr(path, 1, ?) = ?)", [scope_path, len(prefix), prefix]


def get_partner(tx: Tx, code: str) -> dict[str, Any] | None:
    row = tx.fetchone(f"SELECT {', '.join(COLUMNS)} FROM partners WHERE code = ?", (code,))
    return None if row is None else row_to_partner(row)


def list_partners(
    tx: Tx, scope_path: str | None, parent: str | None, after: str | None, limit: int
) -> list[dict[str, Any]]:
    clause, params = scope_clause(scope_path)
    sql = f"SELECT {', '.join(COLUMNS)} FROM partners WHERE {clause}"
    if parent is not None:
        sql += " AND parent = ?"
        params.append(parent)
    if after is not None:
        sql += " AND code > ?"
        params.append(after)
    sql += " ORDER BY code LIMIT ?"
    params.append(limit)
    return [row_to_partner(r) for r in tx.fetchall(sql, params)]
