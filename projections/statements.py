"""A partner's statement for a period: opening, every line, closing.

Amounts are the partner's pending plus available (API.md); a line is one money event
that changed them, linked to its event position and order; a line not about an order
(a clerk task's reward) says why (``reason``) and names its causing event (``ref``).

The period, for RFC 3339 times, is ``(from, to]``: each end maps to the last position
committed by it through the ledger's time index (``position_at``, as a balance as of
that time does), the lines are the events at positions after ``from``'s up to
``to``'s, the opening is the balance as of ``from`` and the closing the balance as of
``to`` (``GET /v1/balances/{partner}?as_of=``, pending + available). So opening +
lines = closing exactly, consecutive periods chain (one's closing is the next one's
opening), and the same period always gives the same statement. A bare date is a whole
Asia/Shanghai calendar day, its midnight included and the next excluded: ``from=D`` is
the last instant before D (23:59:59.999999 on D - 1, Shanghai time), ``to=D`` the last
instant of D; event times are whole microseconds, so "up to that instant" is "before
the midnight". The answer gives both ends as the times they resolved to.
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
    """Lines at positions in ``(start, end]`` (a page of them after ``after``); the
    opening is the total at ``start``, the closing at ``end``."""
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


# Event times are whole microseconds (``to_micros``): up to and including the instant one
# microsecond before a midnight is exactly "before that midnight".
JUST_BEFORE = timedelta(microseconds=1)


def parse_period_bound(text: str | None, field: str) -> datetime | None:
    """An RFC 3339 time, or a date ``D``. A period (``from``, ``to``: ``(from, to]``) then
    covers whole Asia/Shanghai days: ``from=D`` is the last instant before D starts,
    ``to=D`` the last instant of D. Any other bound (``as_of``, ``now``) takes D's
    midnight in Shanghai."""
    if text is None:
        return None
    try:
        if len(text) == 10:
            day = datetime.fromisoformat(text).replace(tzinfo=SHANGHAI)
            if field == "from":
                return day - JUST_BEFORE
            if field == "to":
                return day + timedelta(days=1) - JUST_BEFORE
            return day
        at = datetime.fromisoformat(text)
    except ValueError:
        raise InvalidInput.field(field, "an RFC 3339 time or a YYYY-MM-DD date") from None
    if at.tzinfo is None:
        raise InvalidInput.field(field, "a time with its offset (RFC 3339)")
    return at
