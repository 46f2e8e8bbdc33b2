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
from projections.engine import POSITIONS_TABLE
from projections.ledger_postings import POSITION_AT, to_micros
from projections.partners import COLUMNS, row_to_partner, scope_clause
from projections.readings import Reading, one

LEDGER_VIEW = "ledger"  # the read model balances come from (its position bounds them)


@dataclass(frozen=True)
class Balance:
    pending: int
    available: int
    partners: int = 1

    def answer(self) -> dict[str, Any]:
        return {"pending": self.pending, "available": self.available}


# A balance as of (horizon T, position P): the partner's running totals at P (pending and
# available postings so far), then the pending shares whose order's window was known by P
# and had closed by T count as available. Only those shares are summed per posting; the
# rest is one index lookup, however long the partner's history.

# The windows known by P, closed by T and not settled by P (after settlement an order's
# pending shares net to zero), read first, by their own indexes: settlement keeps that
# set small, however long the history. Then, per such order, its pending postings of
# the partner(s) (a correlated subquery: the plan starts from the windows, not from
# every posting a busy partner ever had, whatever the statistics say).
_DUE_WINDOWS = (
    "WITH due AS MATERIALIZED ("
    "SELECT order_id FROM ledger_windows "
    "WHERE settled_position IS NULL AND due_us <= ? AND position <= ? "
    "UNION ALL SELECT order_id FROM ledger_windows "
    "WHERE settled_position > ? AND due_us <= ? AND position <= ?) "
)
_DUE_SUM = (
    "COALESCE(SUM((SELECT SUM(p.amount) FROM ledger_postings p "
    "WHERE p.order_id = due.order_id AND p.bucket = 'pending' AND p.position <= ? AND {})), 0)"
)
_DUE = _DUE_WINDOWS + "SELECT " + _DUE_SUM + " FROM due"
# The same with the partner's running totals at P, in one statement.
_TOTAL = (
    "(SELECT {0} FROM ledger_totals WHERE partner = ? AND position <= ? "
    "ORDER BY position DESC LIMIT 1)"
)
_BALANCE = (
    _DUE_WINDOWS
    + f"SELECT {_TOTAL.format('pending')}, {_TOTAL.format('available')}, "
    + _DUE_SUM.format("p.partner = ?")
    + " FROM due"
)


def _due_params(horizon: datetime, upto: int) -> tuple[int, ...]:
    due_us = to_micros(horizon)
    return (due_us, upto, upto, due_us, upto, upto)


def partner_balance(partner: str, upto: int, horizon: datetime) -> Reading[Balance]:
    """One statement: the partner's running totals at ``upto`` and its shares due by then."""
    due_us = to_micros(horizon)
    row = yield from one(
        _BALANCE,
        (
            *(due_us, upto, upto, due_us, upto),  # the windows due
            *(partner, upto, partner, upto),  # the running totals
            *(upto, partner),  # the partner's pending shares of those windows
        ),
    )
    pending, available, closed = (0, 0, 0) if row is None else (int(v or 0) for v in row)
    return Balance(pending - closed, available + closed)


def subtree_balance(path: str, upto: int, horizon: datetime) -> Reading[Balance]:
    clause, params = scope_clause(path)
    row = yield from one(
        "SELECT COUNT(*), COALESCE(SUM(pending), 0), COALESCE(SUM(available), 0) FROM ("
        "SELECT (SELECT t.pending FROM ledger_totals t WHERE t.partner = partners.code "
        "AND t.position <= ? ORDER BY t.position DESC LIMIT 1) AS pending, "
        "(SELECT t.available FROM ledger_totals t WHERE t.partner = partners.code "
        "AND t.position <= ? ORDER BY t.position DESC LIMIT 1) AS available "
        f"FROM partners WHERE {clause}) AS subtree",
        (upto, upto, *params),
    )
    counted, pending, available = (0, 0, 0) if row is None else (int(v) for v in row)
    due = yield from one(
        _DUE.format(f"p.partner IN (SELECT code FROM partners WHERE {clause})"),
        (*_due_params(horizon, upto), *params),
    )
    closed = 0 if due is None else int(due[0])
    return Balance(pending - closed, available + closed, counted)


def balance_answer(
    partner: dict[str, Any],
    as_of: datetime | None,
    now: datetime,
    upto: int,
    rollup: bool,
) -> Reading[dict[str, Any]]:
    """The answer of ``GET /v1/balances/{partner}`` up to position ``upto`` (see
    ``partner_and_positions``)."""
    horizon = now if as_of is None else as_of
    own = yield from partner_balance(partner["code"], upto, horizon)
    answer: dict[str, Any] = {
        "partner": partner["code"],
        "currency": CURRENCY,
        **own.answer(),
        "position": upto,
        "as_of": horizon.isoformat(),
    }
    if rollup:
        total = yield from subtree_balance(partner["path"], upto, horizon)
        answer["rollup"] = {**total.answer(), "partners": total.partners}
    return answer


def partner_and_positions(
    code: str, as_of: datetime | None
) -> Reading[tuple[dict[str, Any] | None, int]]:
    """The partner (None if unknown) and the position a balance reads up to (the ledger
    view's, or the one committed by ``as_of`` if earlier), in one statement."""
    as_of_position = "NULL" if as_of is None else f"({POSITION_AT})"
    params: list[Any] = [] if as_of is None else [to_micros(as_of)]
    row = yield from one(
        f"SELECT {', '.join(COLUMNS)}, "
        f"(SELECT position FROM {POSITIONS_TABLE} WHERE name = ?), {as_of_position} "
        "FROM partners WHERE code = ?",
        (LEDGER_VIEW, *params, code),
    )
    if row is None:
        return None, 0
    applied = int(row[-2] or 0)
    upto = applied if as_of is None else min(applied, int(row[-1] or 0))
    return row_to_partner(row[:-2]), upto
