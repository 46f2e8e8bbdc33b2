"""Settlement runs (return windows that closed) and withdrawals.

A settlement run takes due orders in pages (found through a port: the orders read
model), settles each order whose window has closed by ``now`` per its own write-side
state, credits each order's sale, net of refunds, to the standing of its distributor
(growth, maybe a promotion), and credits each receiving partner's payout account once
per page: one store transaction per page, so the brand or a popular store is written
once per page, not once per order. Idempotent: a settled order is never settled again
(the order's own state), and a repeated run with the same orders at the same instant is
a repeat.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from domain.distributor_levels import LEVEL_POLICY_ID, standing_id
from domain.errors import BusinessRuleBroken, NotAllowed
from domain.handlers.order_rewards import reward_settlement
from domain.ledger import GLOBAL_SCOPE, Ledger, Outcome, RequestKey, UnitOfWork
from domain.orders import Order, order_key
from domain.principal import HQ_CODE, Principal, Role
from domain.withdrawals import PayoutAccount, payout_account

SETTLE_PAGE_SIZE = 50
SETTLE_PAGES_MAX = 1_000

# (now, after (due_at text, order id) or None, limit) -> [(due_at text, order id)], due first.
DueOrders = Callable[[datetime, tuple[str, str] | None, int], Sequence[tuple[str, str]]]


def run_id_of(at: datetime, order_ids: Sequence[str]) -> str:
    digest = hashlib.sha256("\x1f".join([at.isoformat(), *order_ids]).encode()).hexdigest()
    return digest[:32]


def settle_orders(ledger: Ledger, by: Principal, order_ids: Sequence[str]) -> Outcome:
    """Settle those of ``order_ids`` whose return window has closed (one transaction)."""
    by.require(Role.HQ)
    assert 0 < len(order_ids) <= SETTLE_PAGE_SIZE
    ids = sorted(set(order_ids))
    run_id = run_id_of(ledger.clock(), ids)
    key = RequestKey(GLOBAL_SCOPE, "settlement-run", run_id, {"orders": ids})

    def decide(uow: UnitOfWork) -> dict[str, Any]:
        settled: list[str] = []
        credits: dict[str, int] = {}
        credited_orders: dict[str, list[str]] = {}
        sales: list[tuple[Order, int]] = []  # to credit to distributors' standings
        for order_id in ids:
            order = uow.find(Order, order_key(order_id))
            if order is None:
                continue
            done = order.settle(run_id, by, uow.now)
            if done is None:
                continue
            settled.append(order_id)
            if done.standing_credit:
                sales.append((order, done.standing_credit))
            for partner, amount in done.credits.items():
                credits[partner] = credits.get(partner, 0) + amount
                credited_orders.setdefault(partner, []).append(order_id)
        if sales:  # the page's standings and the levels in one read
            partners = {o.distributor for o, _ in sales if o.distributor is not None}
            uow.preload([LEVEL_POLICY_ID, *(standing_id(p) for p in sorted(partners))])
        for order, standing_credit in sales:
            reward_settlement(uow, order, standing_credit, by.scope_key)
        for partner, amount in sorted(credits.items()):
            if partner != HQ_CODE and amount > 0:
                payout_account(uow, partner).credit_settlement(
                    run_id, tuple(credited_orders[partner]), amount, uow.now
                )
        return {"run_id": run_id, "settled": settled}

    return ledger.execute(key, decide)


@dataclass
class SettlementReport:
    settled: list[str] = field(default_factory=list)
    examined: int = 0
    position: int = 0


def settle_due(ledger: Ledger, by: Principal, due_orders: DueOrders) -> SettlementReport:
    """Every order due by now, page by page (bounded)."""
    report = SettlementReport()
    now = ledger.clock()
    after: tuple[str, str] | None = None
    for _page in range(SETTLE_PAGES_MAX):
        page = list(due_orders(now, after, SETTLE_PAGE_SIZE))
        if not page:
            break
        after = page[-1]
        report.examined += len(page)
        outcome = settle_orders(ledger, by, [order_id for _due, order_id in page])
        report.settled += outcome.answer["settled"]
        report.position = max(report.position, outcome.position)
    return report


# -- withdrawals ----------------------------------------------------------------------


def _account(uow: UnitOfWork, partner: str) -> PayoutAccount:
    """A partner's payout account; an existing partner without one has nothing available."""
    uow.partner(partner)  # 404 for an unknown partner
    return payout_account(uow, partner)


def _withdrawal_answer(account: PayoutAccount, withdrawal_id: str) -> dict[str, Any]:
    amount, status = account.withdrawals[withdrawal_id]
    return {
        "partner": account.partner,
        "withdrawal_id": withdrawal_id,
        "amount": amount,
        "status": status.value,
    }


def _refuse_brand(partner: str) -> None:
    if partner == HQ_CODE:
        raise BusinessRuleBroken("the brand keeps its share; it does not withdraw", code="brand")


def request_withdrawal(
    ledger: Ledger, by: Principal, partner: str, withdrawal_id: str, amount: int
) -> Outcome:
    by.require_writer()
    key = RequestKey(by.scope_key, "withdrawal", f"{partner}/{withdrawal_id}", {"amount": amount})

    def authorize(uow: UnitOfWork) -> None:
        uow.partner(partner)
        if by.role is not Role.HQ and by.partner != partner:
            raise NotAllowed(f"{by.role.value} {by.partner} may not withdraw for {partner}")

    def decide(uow: UnitOfWork) -> dict[str, Any]:
        _refuse_brand(partner)
        account = _account(uow, partner)
        account.request(withdrawal_id, amount, by, uow.now)
        return {**_withdrawal_answer(account, withdrawal_id), "available": account.available}

    return ledger.execute(key, decide, authorize)


def decide_withdrawal(
    ledger: Ledger,
    by: Principal,
    partner: str,
    withdrawal_id: str,
    approve: bool,
    reason: str,
) -> Outcome:
    content = {"approve": approve, "reason": reason}
    key = RequestKey(by.scope_key, "withdrawal.decision", f"{partner}/{withdrawal_id}", content)

    def authorize(_uow: UnitOfWork) -> None:
        by.require(Role.HQ)

    def decide(uow: UnitOfWork) -> dict[str, Any]:
        _refuse_brand(partner)
        account = _account(uow, partner)
        if approve:
            account.approve(withdrawal_id, by, uow.now)
        else:
            account.reject(withdrawal_id, reason, by, uow.now)
        return _withdrawal_answer(account, withdrawal_id)

    return ledger.execute(key, decide, authorize)


def pay_withdrawal(
    ledger: Ledger, by: Principal, partner: str, withdrawal_id: str, payout_ref: str
) -> Outcome:
    content = {"payout_ref": payout_ref}
    key = RequestKey(by.scope_key, "withdrawal.payout", f"{partner}/{withdrawal_id}", content)

    def authorize(_uow: UnitOfWork) -> None:
        by.require(Role.HQ, Role.GATEWAY)

    def decide(uow: UnitOfWork) -> dict[str, Any]:
        _refuse_brand(partner)
        account = _account(uow, partner)
        account.mark_paid(withdrawal_id, payout_ref, by, uow.now)
        return _withdrawal_answer(account, withdrawal_id)

    return ledger.execute(key, decide, authorize)
