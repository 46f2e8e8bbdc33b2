"""Read model: every points entry of every member, with its reason, in log order.

One row per change of a member's points: ``earned`` (a lot: its source and cause),
``spent`` (reason, cause and the lots it took), ``expired`` (the lot), ``reversed``
(a refund: the lots and any debt) and ``debt_recovered`` (a credit paying a debt back:
the balance does not move). ``balance`` is the member's balance after the entry.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import msgspec

from domain import loyalty
from domain.identity import id_text
from domain.members import Member
from projections.views import Tx, rows_in

_json = msgspec.json.Encoder()
_unjson = msgspec.json.Decoder(list[dict[str, Any]])

COLUMNS = ("position", "seq", "at", "kind", "points", "balance", "reason", "cause", "lots")


class PointsHistoryView:
    name: str = "points_history"
    version: int = 1
    tables: dict[str, str] = {
        "points_entries": (
            "CREATE TABLE IF NOT EXISTS points_entries ("
            "member_id TEXT NOT NULL, position BIGINT NOT NULL, seq INTEGER NOT NULL, "
            "at TEXT NOT NULL, kind TEXT NOT NULL, points BIGINT NOT NULL, "
            "balance BIGINT NOT NULL, reason TEXT NOT NULL, cause TEXT NOT NULL, "
            "lots TEXT NOT NULL, PRIMARY KEY (member_id, position, seq))"
        ),
        "points_balances": (
            "CREATE TABLE IF NOT EXISTS points_balances ("
            "member_id TEXT PRIMARY KEY, balance BIGINT NOT NULL)"
        ),
    }
    indexes: tuple[str, ...] = ()
    topics: frozenset[str] = frozenset(
        {
            Member.PointsEarned.TOPIC,
            loyalty.PointsSpent.TOPIC,
            loyalty.PointsExpired.TOPIC,
            loyalty.PointsReversed.TOPIC,
            loyalty.DebtRecovered.TOPIC,
        }
    )

    def prepare(self, tx: Tx, events: list[tuple[Any, int]]) -> None:
        _balances(tx, {id_text(e.originator_id) for e, _ in events})

    def finish(self, tx: Tx) -> None:
        """The batch's members' balances, written once each."""
        balances: dict[str, int] = tx.memo.pop(BALANCES, {})
        tx.executemany(
            "INSERT INTO points_balances (member_id, balance) VALUES (?, ?) "
            "ON CONFLICT (member_id) DO UPDATE SET balance = excluded.balance",
            sorted(balances.items()),
        )

    def apply(self, tx: Tx, event: Any, position: int) -> None:
        member = id_text(event.originator_id)
        if isinstance(event, Member.PointsEarned):
            lots = [{"lot_id": event.lot_id, "points": event.points}]
            entry = ("earned", event.points, event.source, event.cause, lots)
        elif isinstance(event, loyalty.PointsSpent):
            entry = ("spent", -event.points, event.reason, event.cause, _lots(event.lots))
        elif isinstance(event, loyalty.PointsExpired):
            lots = [{"lot_id": event.lot_id, "points": event.points}]
            entry = ("expired", -event.points, "expiry", f"lot {event.lot_id}", lots)
        elif isinstance(event, loyalty.PointsReversed):
            lots = _lots(event.lots) + ([{"debt": event.debt}] if event.debt else [])
            entry = ("reversed", -event.points, event.reason, event.cause, lots)
        elif isinstance(event, loyalty.DebtRecovered):
            entry = ("debt_recovered", 0, "debt", "a credit paid back a debt", _lots(event.lots))
        else:
            return
        kind, points, reason, cause, lots = entry
        balances = _balances(tx, (member,))
        balance = balances[member] = balances[member] + points
        # entries at one position are all written while applying that event: in this tx
        seqs: dict[tuple[str, int], int] = tx.memo.setdefault("points_history.seq", {})
        seq = seqs[member, position] = seqs.get((member, position), -1) + 1
        tx.execute(
            "INSERT INTO points_entries (member_id, position, seq, at, kind, points, balance, "
            "reason, cause, lots) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                member,
                position,
                seq,
                event.timestamp.isoformat(),
                kind,
                points,
                balance,
                reason,
                cause,
                _json.encode(lots).decode(),
            ),
        )


BALANCES = "points_history.balance"


def _balances(tx: Tx, members: Iterable[str]) -> dict[str, int]:
    """Each member's balance as of the batch's last applied event (memo of the batch)."""
    balances: dict[str, int] = tx.memo.setdefault(BALANCES, {})
    missing = sorted({m for m in members if m not in balances})
    rows = rows_in(tx, "SELECT member_id, balance FROM points_balances WHERE member_id", missing)
    found = {str(m): int(b) for m, b in rows}
    balances.update({m: found.get(m, 0) for m in missing})
    return balances


def _lots(taken: Any) -> list[dict[str, Any]]:
    return [{"lot_id": lot_id, "points": n} for lot_id, n in taken]


def points_history(tx: Tx, member_id: str, after: int | None, limit: int) -> list[dict[str, Any]]:
    rows = tx.fetchall(
        f"SELECT {', '.join(COLUMNS)} FROM points_entries WHERE member_id = ? AND position > ? "
        "ORDER BY position, seq LIMIT ?",
        (member_id, after or 0, limit),
    )
    items = []
    for r in rows:
        record = dict(zip(COLUMNS, r, strict=True))
        record["lots"] = _unjson.decode(record["lots"])
        del record["seq"]
        items.append(record)
    return items
