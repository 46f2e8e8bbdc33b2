"""A partner's payout account: guards its withdrawals with an exact available balance.

Balances are projections of postings, but a withdrawal must be checked exactly at the
moment it is requested, so each partner (never the brand: HQ keeps its share, it does
not withdraw from itself) has this small aggregate of its own. Its ``available`` is the
settled income (credited by settlement runs, a batch process, not per request) plus
clerk task rewards (credited with the task's completion) minus reversals of refunds
after settlement, minus withdrawals requested and not rejected: the same amount the
postings put in ``partner:<code>:available``.

A withdrawal: requested by the partner (or HQ for it), approved or rejected by HQ,
then paid. Each step is an event with balanced postings.
"""

from __future__ import annotations

import re
from datetime import datetime
from enum import StrEnum
from typing import Any
from uuid import UUID, uuid5

from eventsourcing.domain import Aggregate

from domain import carry_forward
from domain.errors import BusinessRuleBroken, Conflict, InvalidInput, NotAllowed, NotFound
from domain.identity import namespace
from domain.ledger import UnitOfWork
from domain.money import (
    AMOUNT_FEN_MAX,
    WORLD_PAYOUTS,
    Postings,
    available,
    balanced,
    transfer,
    withdrawal_approved,
    withdrawal_requested,
)
from domain.principal import HQ_CODE, Principal, Role

NS_PAYOUT = namespace("payout-account")
WITHDRAWAL_ID_PATTERN = re.compile(r"^[\x21-\x7e]{1,100}$")
WITHDRAWALS_MAX = 100_000
REASON_LENGTH_MAX = 200


def payout_account_id(partner: str) -> UUID:
    return uuid5(NS_PAYOUT, partner)


class WithdrawalStatus(StrEnum):
    REQUESTED = "requested"
    APPROVED = "approved"
    REJECTED = "rejected"
    PAID = "paid"


class PayoutAccount(Aggregate):
    TOPIC = "siyu.PayoutAccount"

    class Created(Aggregate.Created):
        """Unused: eventsourcing defines one per aggregate; ours is named in domain words."""

        TOPIC = "siyu.PayoutAccount.Created"

    class Opened(Aggregate.Created):
        TOPIC = "siyu.PayoutAccount.Opened"
        partner: str

    class SettlementCredited(Aggregate.Event):
        """Income that became available in one settlement run (no postings: the orders'
        Settled events carry them)."""

        TOPIC = "siyu.PayoutAccount.SettlementCredited"
        run_id: str
        orders: tuple[str, ...]
        amount: int

        def apply(self, account: Any) -> None:
            account.available += self.amount

    class RefundDebited(Aggregate.Event):
        """A refund after settlement reversed available income (the order's event posts)."""

        TOPIC = "siyu.PayoutAccount.RefundDebited"
        order_id: str
        refund_id: str
        amount: int

        def apply(self, account: Any) -> None:
            account.available -= self.amount

    class TaskRewardCredited(Aggregate.Event):
        """A clerk task's reward became available (the task's RewardPaid event posts)."""

        TOPIC = "siyu.PayoutAccount.TaskRewardCredited"
        task_id: str
        completion: str
        amount: int

        def apply(self, account: Any) -> None:
            account.available += self.amount

    class WithdrawalRequested(Aggregate.Event):
        TOPIC = "siyu.PayoutAccount.WithdrawalRequested"
        withdrawal_id: str
        amount: int
        postings: Postings
        by: str

        def apply(self, account: Any) -> None:
            account.available -= self.amount
            account.withdrawals[self.withdrawal_id] = [self.amount, WithdrawalStatus.REQUESTED]

    class WithdrawalApproved(Aggregate.Event):
        TOPIC = "siyu.PayoutAccount.WithdrawalApproved"
        withdrawal_id: str
        amount: int
        postings: Postings
        by: str

        def apply(self, account: Any) -> None:
            account.withdrawals[self.withdrawal_id][1] = WithdrawalStatus.APPROVED

    class WithdrawalRejected(Aggregate.Event):
        TOPIC = "siyu.PayoutAccount.WithdrawalRejected"
        withdrawal_id: str
        amount: int
        reason: str
        postings: Postings
        by: str

        def apply(self, account: Any) -> None:
            account.available += self.amount
            account.withdrawals[self.withdrawal_id][1] = WithdrawalStatus.REJECTED

    class WithdrawalPaid(Aggregate.Event):
        TOPIC = "siyu.PayoutAccount.WithdrawalPaid"
        withdrawal_id: str
        amount: int
        payout_ref: str
        postings: Postings
        by: str

        def apply(self, account: Any) -> None:
            account.withdrawals[self.withdrawal_id][1] = WithdrawalStatus.PAID

    # an event per settlement run that credits the partner, per refund after one and per
    # withdrawal step, for as long as it sells: read from its state carried forward
    CARRY_FORWARD_EVERY = 20

    class CarriedForward(carry_forward.CarriedForward):
        TOPIC = "siyu.PayoutAccount.CarriedForward"
        partner: str
        available: int
        withdrawals: dict[str, list[int | WithdrawalStatus]]  # id -> [amount, status]

    def __init__(self, partner: str) -> None:
        self.partner = partner
        self.available = 0
        self.withdrawals: dict[str, list[Any]] = {}

    @classmethod
    def open(cls, partner: str, at: datetime) -> PayoutAccount:
        assert partner != HQ_CODE, "the brand keeps its share; it has no payout account"
        return cls._create(cls.Opened, id=payout_account_id(partner), timestamp=at, partner=partner)

    # -- income ---------------------------------------------------------------------

    def credit_settlement(
        self, run_id: str, orders: tuple[str, ...], amount: int, at: datetime
    ) -> None:
        assert amount > 0
        self.trigger_event(
            self.SettlementCredited, timestamp=at, run_id=run_id, orders=orders, amount=amount
        )

    def credit_task_reward(self, task_id: str, completion: str, amount: int, at: datetime) -> None:
        assert amount > 0
        self.trigger_event(
            self.TaskRewardCredited,
            timestamp=at,
            task_id=task_id,
            completion=completion,
            amount=amount,
        )

    def debit_refund(self, order_id: str, refund_id: str, amount: int, at: datetime) -> None:
        """May leave ``available`` negative: a visible debt, recovered from later income."""
        if amount == 0:
            return
        self.trigger_event(
            self.RefundDebited, timestamp=at, order_id=order_id, refund_id=refund_id, amount=amount
        )

    # -- withdrawals ------------------------------------------------------------------

    def authorize_request(self, by: Principal) -> None:
        if by.role is Role.HQ:
            return
        own_roles = (Role.DEALER, Role.STORE, Role.CLERK, Role.DISTRIBUTOR)
        if by.role not in own_roles or by.partner != self.partner:
            raise NotAllowed(f"{by.role.value} {by.partner} may not withdraw for {self.partner}")

    def request(self, withdrawal_id: str, amount: int, by: Principal, at: datetime) -> None:
        self.authorize_request(by)
        if not WITHDRAWAL_ID_PATTERN.match(withdrawal_id):
            raise InvalidInput.field("withdrawal_id", "1 to 100 printable ASCII characters")
        if not 1 <= amount <= AMOUNT_FEN_MAX:
            raise InvalidInput.field("amount", f"1 to {AMOUNT_FEN_MAX} fen")
        if withdrawal_id in self.withdrawals:
            raise Conflict(f"withdrawal {withdrawal_id} exists", code="withdrawal_exists")
        if amount > self.available:
            raise BusinessRuleBroken(
                f"{self.partner} has {max(self.available, 0)} fen available, not {amount}",
                code="insufficient_available",
            )
        assert len(self.withdrawals) < WITHDRAWALS_MAX
        postings = balanced(
            transfer(available(self.partner), withdrawal_requested(self.partner), amount)
        )
        self.trigger_event(
            self.WithdrawalRequested,
            timestamp=at,
            withdrawal_id=withdrawal_id,
            amount=amount,
            postings=postings,
            by=by.scope_key,
        )

    def _withdrawal(self, withdrawal_id: str, expected: WithdrawalStatus) -> int:
        found = self.withdrawals.get(withdrawal_id)
        if found is None:
            raise NotFound(f"unknown withdrawal {withdrawal_id}", code="unknown_withdrawal")
        amount, status = found
        if status is not expected:
            raise Conflict(
                f"withdrawal {withdrawal_id} is {status.value}, not {expected.value}",
                code=f"withdrawal_{status.value}",
            )
        return int(amount)

    def approve(self, withdrawal_id: str, by: Principal, at: datetime) -> None:
        by.require(Role.HQ)
        amount = self._withdrawal(withdrawal_id, WithdrawalStatus.REQUESTED)
        postings = balanced(
            transfer(withdrawal_requested(self.partner), withdrawal_approved(self.partner), amount)
        )
        self.trigger_event(
            self.WithdrawalApproved,
            timestamp=at,
            withdrawal_id=withdrawal_id,
            amount=amount,
            postings=postings,
            by=by.scope_key,
        )

    def reject(self, withdrawal_id: str, reason: str, by: Principal, at: datetime) -> None:
        by.require(Role.HQ)
        if not reason.strip() or len(reason) > REASON_LENGTH_MAX:
            raise InvalidInput.field("reason", f"1 to {REASON_LENGTH_MAX} characters")
        amount = self._withdrawal(withdrawal_id, WithdrawalStatus.REQUESTED)
        postings = balanced(
            transfer(withdrawal_requested(self.partner), available(self.partner), amount)
        )
        self.trigger_event(
            self.WithdrawalRejected,
            timestamp=at,
            withdrawal_id=withdrawal_id,
            amount=amount,
            reason=reason,
            postings=postings,
            by=by.scope_key,
        )

    def mark_paid(self, withdrawal_id: str, payout_ref: str, by: Principal, at: datetime) -> None:
        by.require(Role.HQ, Role.GATEWAY)
        amount = self._withdrawal(withdrawal_id, WithdrawalStatus.APPROVED)
        postings = balanced(transfer(withdrawal_approved(self.partner), WORLD_PAYOUTS, amount))
        self.trigger_event(
            self.WithdrawalPaid,
            timestamp=at,
            withdrawal_id=withdrawal_id,
            amount=amount,
            payout_ref=payout_ref,
            postings=postings,
            by=by.scope_key,
        )

    def view(self) -> dict[str, Any]:
        return {
            "partner": self.partner,
            "available": self.available,
            "withdrawals": [
                {"withdrawal_id": w, "amount": a, "status": s.value}
                for w, (a, s) in sorted(self.withdrawals.items())
            ],
        }


def payout_account(uow: UnitOfWork, partner: str) -> PayoutAccount:
    """The partner's payout account, opened on first use (in the same transaction)."""
    account = uow.find(PayoutAccount, payout_account_id(partner))
    if account is None:
        account = PayoutAccount.open(partner, uow.now)
        uow.add(account)
    return account
