"""Balances per partner, as of any time, from the postings (never by replaying the store).

``pending`` and ``available`` follow API.md: a share is pending until its order's
return window closes, then available; as of T it is available if the window had
closed by T, whether or not a settlement run has moved it yet (settlement makes it
explicit: pending -> available postings and the split instructions). Amounts may be
negative: a refund after settlement leaves a visible debt.

A dealer's (or any partner's) roll-up sums every partner of its subtree.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from domain.money import CURRENCY
from projections.ledger_postings import position_at, to_micros
from projections.partners import scope_clause
from projections.views import Tx


@dataclass(frozen=True)
class Balance:
    pending: int
    available: int
    partners: int = 1

    def answer(self) -> dict[str, Any]:
        return {"pending": self.pending, "available": self.available}


def upto_position(tx: Tx, as_of: datetime | None, applied: int) -> int:
    """Read up to this position: the one committed by ``as_of``, or all applied."""
    return applied if as_of is None else min(applied, position_at(tx, as_of))


def _sum(rows: list[tuple[Any, ...]], horizon_us: int) -> tuple[int, int]:
    pending = available = 0
    for bucket, due_us, total in rows:
        amount = int(total)
        if bucket == "available":
            available += amount
        elif bucket == "pending":
            if due_us is not None and int(due_us) <= horizon_us:
                available += amount
            else:
                pending += amount
    return pending, available


_SELECT = (
    "SELECT p.bucket, w.due_us, SUM(p.amount) FROM ledger_postings p "
    "LEFT JOIN ledger_windows w ON w.order_id = p.order_id AND w.position <= ? "
)


def partner_balance(tx: Tx, partner: str, upto: int, horizon: datetime) -> Balance:
    rows = tx.fetchall(
        _SELECT + "WHERE p.partner = ? AND p.position <= ? "
        "AND p.bucket IN ('pending', 'available') GROUP BY p.bucket, w.due_us",
        (upto, partner, upto),
    )
    pending, available = _sum(rows, to_micros(horizon))
    return Balance(pending, available)


def subtree_balance(tx: Tx, path: str, upto: int, horizon: datetime) -> Balance:
    clause, params = scope_clause(path)
    rows = tx.fetchall(
        _SELECT + "JOIN partners ON partners.code = p.partner "
        f"WHERE {clause} AND p.position <= ? AND p.bucket IN ('pending', 'available') "
        "GROUP BY p.bucket, w.due_us",
        (upto, *params, upto),
    )
    pending, available = _sum(rows, to_micros(horizon))
    counted = tx.fetchone(f"SELECT COUNT(*) FROM partners WHERE {clause}", params)
    return Balance(pending, available, 0 if counted is None else int(counted[0]))


def balance_answer(
    tx: Tx,
    partner: dict[str, Any],
    as_of: datetime | None,
    now: datetime,
    applied: int,
    rollup: bool,
) -> dict[str, Any]:
    upto = upto_position(tx, as_of, applied)
    horizon = now if as_of is None else as_of
    own = partner_balance(tx, partner["code"], upto, horizon)
    answer: dict[str, Any] = {
        "partner": partner["code"],
        "currency": CURRENCY,
        **own.answer(),
        "position": upto,
        "as_of": horizon.isoformat(),
    }
    if rollup:
        total = subtree_balance(tx, partner["path"], upto, horizon)
        answer["rollup"] = {**total.answer(), "partners": total.partners}
    return answer
