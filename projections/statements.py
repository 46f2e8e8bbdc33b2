"""A partner's statement for a period: opening, every line, closing.

Amounts are the partner's pending plus available (API.md); a line is one money event
that changed them, linked to its event position and order; a line not about an order
(a clerk task's reward) says why (``reason``) and names its causing event (``ref``).
The period ``[from, to)`` maps to positions through the ledger's time index, so
opening + lines = closing exactly, and the same period always gives the same
statement. Days are Asia/Shanghai calendar days: a bare date ``2024-06-01`` is that
day's midnight in Shanghai.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from domain.clock import SHANGHAI
from domain.errors import InvalidInput
from projections.ledger_postings import from_micros
from projections.views import Tx

LINES_MAX = 1000


def _total(tx: Tx, partner: str, upto: int) -> int:
    if upto <= 0:
        return 0
    row = tx.fetchone(
        "SELECT SUM(amount) FROM ledger_postings WHERE partner = ? AND position <= ? "
        "AND bucket IN ('pending', 'available')",
        (partner, upto),
    )
    return 0 if row is None or row[0] is None else int(row[0])


def statement(
    tx: Tx, partner: str, start: int, end: int, after: int | None, limit: int
) -> dict[str, Any]:
    """Lines at positions in ``(start, end]`` (a page of them after ``after``)."""
    assert 0 < limit <= LINES_MAX and start <= end
    rows = tx.fetchall(
        "SELECT p.position, e.at_us, p.order_id, p.kind, e.reason, e.ref, "
        "SUM(CASE WHEN p.bucket = 'pending' THEN p.amount ELSE 0 END), "
        "SUM(CASE WHEN p.bucket = 'available' THEN p.amount ELSE 0 END) "
        "FROM ledger_postings p JOIN ledger_entries e ON e.position = p.position "
        "WHERE p.partner = ? AND p.position > ? AND p.position <= ? "
        "AND p.bucket IN ('pending', 'available') "
        "GROUP BY p.position, e.at_us, p.order_id, p.kind, e.reason, e.ref "
        "ORDER BY p.position LIMIT ?",
        (partner, max(start, after or 0), end, limit),
    )
    lines = [
        {
            "at": from_micros(int(at_us)).astimezone(SHANGHAI).isoformat(),
            "position": int(position),
            "order_id": order_id,
            "kind": kind,
            "amount": int(pending) + int(available),
            "pending": int(pending),
            "available": int(available),
            "reason": reason,
            "ref": ref,
        }
        for position, at_us, order_id, kind, reason, ref, pending, available in rows
    ]
    opening, closing = _total(tx, partner, start), _total(tx, partner, end)
    return {
        "partner": partner,
        "currency": "CNY",
        "opening": opening,
        "closing": closing,
        "from_position": start,
        "to_position": end,
        "lines": lines,
        "next": str(lines[-1]["position"]) if len(lines) == limit else None,
    }


def parse_period_bound(text: str | None, field: str) -> datetime | None:
    """An RFC 3339 time, or a date: that Asia/Shanghai day's start (``from``) or end (``to``)."""
    if text is None:
        return None
    try:
        if len(text) == 10:
            day = datetime.fromisoformat(text).replace(tzinfo=SHANGHAI)
            return day + timedelta(days=1) if field == "to" else day
        at = datetime.fromisoformat(text)
    except ValueError:
        raise InvalidInput.field(field, "an RFC 3339 time or a YYYY-MM-DD date") from None
    if at.tzinfo is None:
        raise InvalidInput.field(field, "a time with its offset (RFC 3339)")
    return at
