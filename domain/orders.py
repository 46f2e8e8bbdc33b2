"""Orders in the brand's online mall: placed, paid, fulfilled, refunded, settled.

One aggregate per order (the order number is a global natural key). The order
serialises its own payments and refunds: two refunds racing for one order collide on
its version, the loser is retried with the fresh state and can never refund more than
was paid net of earlier refunds.

The order records, when placed, who it is attributed to (store, dealer, distributor),
the split policy id and version it used, its split, and its return window. Money
events carry their postings (domain/money.py), balanced when made.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, time, timedelta
from enum import StrEnum
from typing import Any
from uuid import UUID, uuid5

from eventsourcing.domain import Aggregate

from domain.clock import SHANGHAI
from domain.errors import BusinessRuleBroken, Conflict, InvalidInput, NotAllowed
from domain.identity import namespace
from domain.money import (
    AMOUNT_FEN_MAX,
    CURRENCY,
    Postings,
    payment_postings,
    refund_postings,
    settlement_postings,
)
from domain.principal import Principal, Role
from domain.splits import Fulfilment, PricedLine, SplitPolicy, reversal, split_lines

NS_ORDER = namespace("order")
ORDER_ID_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}$")
LINES_MAX = 100
QUANTITY_MAX = 10_000
UNIT_PRICE_FEN_MAX = 100_000_000
REFUNDS_MAX = 100
RECEIPTS_MAX = 1_000

Instruction = tuple[str, str, int]  # (instruction id, receiver partner, amount in fen)
LineData = tuple[str, int, int, str]  # (sku, quantity, unit price in fen, category)


def return_window_closes(fulfilled_at: datetime, days: int) -> datetime:
    """When a return window of ``days`` Asia/Shanghai calendar days closes for goods
    received at ``fulfilled_at``: at 00:00 Shanghai time after the last of those days.

    As the consumer-protection rule counts it (网络购买商品七日无理由退货暂行办法, art. 7:
    the period starts the day after receipt, in natural days): goods received on local
    date D may be returned through the end of D + ``days``, so the window closes at
    D + ``days`` + 1, 00:00. A window of 0 days (perishables: no return window) closes
    at receipt. The result is stored in the event that starts the window and never
    recomputed, so events stored under an earlier rule keep the time they recorded.
    """
    assert fulfilled_at.tzinfo is not None, "times are timezone-aware"
    assert days >= 0
    if days == 0:
        return fulfilled_at
    received_on = fulfilled_at.astimezone(SHANGHAI).date()
    return datetime.combine(received_on + timedelta(days=days + 1), time(), tzinfo=SHANGHAI)


def order_key(order_id: str) -> UUID:
    return uuid5(NS_ORDER, order_id)


def validate_order_id(order_id: str) -> None:
    if not ORDER_ID_PATTERN.match(order_id):
        raise InvalidInput.field("order_id", "1 to 64 of A-Z a-z 0-9 _ . : - starting alphanumeric")


class OrderStatus(StrEnum):
    """The state the order's latest change left it in: each command answers it and the
    orders view shows it (``projections/orders_view.py`` applies the same transitions).
    A refund leaves ``partially_refunded`` or ``refunded`` (nothing left of the payment),
    whatever came before it; a later fulfilment or settlement leaves its own state. The
    amounts (``paid``, ``refunded``) and times tell the rest."""

    PLACED = "placed"
    CANCELLED = "cancelled"
    PAID = "paid"
    FULFILLED = "fulfilled"
    SETTLED = "settled"
    PARTIALLY_REFUNDED = "partially_refunded"
    REFUNDED = "refunded"


class Attribution(StrEnum):
    BOUND_STORE = "bound_store"
    REFERRER = "referrer"
    NEAREST_STORE = "nearest_store"


@dataclass(frozen=True)
class Parties:
    """Who an order is attributed to; ``receivers`` maps each split role to its partner."""

    store: str
    dealer: str
    brand: str
    distributor: str | None
    attribution: Attribution

    def receivers(self) -> dict[str, str]:
        found = {"store": self.store, "dealer": self.dealer, "brand": self.brand}
        if self.distributor is not None:
            found["distributor"] = self.distributor
        return found


@dataclass(frozen=True)
class Settlement:
    """What settling one order did: income that became available, per partner, and the
    sale to credit to its distributor's standing (0: none)."""

    order_id: str
    credits: dict[str, int]
    standing_credit: int = 0


class Order(Aggregate):
    TOPIC = "siyu.Order"

    class Created(Aggregate.Created):
        """Unused: eventsourcing defines one per aggregate; ours is named in domain words."""

        TOPIC = "siyu.Order.Created"

    class Placed(Aggregate.Created):
        TOPIC = "siyu.Order.Placed"
        order_id: str
        member_id: str
        lines: tuple[LineData, ...]
        total: int
        currency: str
        fulfilment: str
        store: str
        dealer: str
        distributor: str | None
        attribution: str
        policy_id: str
        policy_version: int
        remainder_to: str
        return_window_days: int
        split: dict[str, int]
        receivers: dict[str, str]
        by: str

    class Cancelled(Aggregate.Event):
        TOPIC = "siyu.Order.Cancelled"
        order_id: str
        cancellation_id: str
        reason: str
        by: str

        def apply(self, order: Any) -> None:
            order.status = OrderStatus.CANCELLED

    class Paid(Aggregate.Event):
        TOPIC = "siyu.Order.Paid"
        class_version = 2
        order_id: str
        payment_id: str
        amount: int
        postings: Postings
        fulfilled: bool
        due_at: datetime | None
        by: str
        # New in version 2: did this payment credit the sale to the standing of the
        # order's distributor (if it has one)? Version 1 payments did; since version 2
        # none does, the sale is credited when its return window closes (``Settled``).
        standing_credited: bool

        @staticmethod
        def upcast_v1_v2(state: dict[str, Any]) -> None:
            state["standing_credited"] = True

        def apply(self, order: Any) -> None:
            order.paid = self.amount
            order.paid_at = self.timestamp
            if self.standing_credited and order.distributor is not None:
                order.standing_credited = True
            order.status = OrderStatus.FULFILLED if self.fulfilled else OrderStatus.PAID
            if self.fulfilled:
                order.fulfilled_at = self.timestamp
                order.due_at = self.due_at

    class Fulfilled(Aggregate.Event):
        """Received by the consumer: the return window starts."""

        TOPIC = "siyu.Order.Fulfilled"
        order_id: str
        fulfilment_id: str
        due_at: datetime
        by: str

        def apply(self, order: Any) -> None:
            order.status = OrderStatus.FULFILLED
            order.fulfilled_at = self.timestamp
            order.due_at = self.due_at

    class Refunded(Aggregate.Event):
        TOPIC = "siyu.Order.Refunded"
        order_id: str
        refund_id: str
        amount: int
        refunded_total: int
        reversed: dict[str, int]
        after_settlement: bool
        postings: Postings
        instructions: tuple[Instruction, ...]
        by: str

        def apply(self, order: Any) -> None:
            order.refunded = self.refunded_total
            for role, amount in self.reversed.items():
                order.reversed[role] = order.reversed.get(role, 0) + amount
            order.refund_count += 1
            for instruction in self.instructions:
                order.instructions[instruction[0]] = instruction
            order.status = self.status_after(order.paid)

        def status_after(self, paid: int) -> OrderStatus:
            """The order's state once this refund is made (also the orders view's)."""
            fully = self.refunded_total == paid
            return OrderStatus.REFUNDED if fully else OrderStatus.PARTIALLY_REFUNDED

    class Settled(Aggregate.Event):
        """The return window closed: pending shares became available; split instructions;
        the sale, net of refunds, is credited to the distributor's standing."""

        TOPIC = "siyu.Order.Settled"
        class_version = 2
        order_id: str
        run_id: str
        net: dict[str, int]
        postings: Postings
        instructions: tuple[Instruction, ...]
        by: str
        # New in version 2: the fen credited to the standing of the order's distributor
        # here: paid net of refunds, unless its payment credited the sale (version 1
        # payments) or it has no distributor: 0. Version 1 settlements credited nothing.
        standing_credit: int

        @staticmethod
        def upcast_v1_v2(state: dict[str, Any]) -> None:
            state["standing_credit"] = 0

        def apply(self, order: Any) -> None:
            order.settled = True
            if self.standing_credit:
                order.standing_credited = True
            order.status = OrderStatus.SETTLED
            for instruction in self.instructions:
                order.instructions[instruction[0]] = instruction

    class ReceiptRecorded(Aggregate.Event):
        """The payment provider's receipt for one split (or split refund) instruction."""

        TOPIC = "siyu.Order.ReceiptRecorded"
        order_id: str
        receipt_id: str
        instruction_id: str
        status: str
        amount: int
        provider_ref: str
        by: str

        def apply(self, order: Any) -> None:
            order.receipts[self.instruction_id] = self.status

    def __init__(
        self,
        order_id: str,
        member_id: str,
        lines: tuple[LineData, ...],
        total: int,
        currency: str,
        fulfilment: str,
        store: str,
        dealer: str,
        distributor: str | None,
        attribution: str,
        policy_id: str,
        policy_version: int,
        remainder_to: str,
        return_window_days: int,
        split: dict[str, int],
        receivers: dict[str, str],
        by: str,
    ) -> None:
        self.order_id = order_id
        self.member_id = member_id
        self.lines = lines
        self.total = total
        self.currency = currency
        self.fulfilment = Fulfilment(fulfilment)
        self.store = store
        self.dealer = dealer
        self.distributor = distributor
        self.attribution = attribution
        self.policy_id = policy_id
        self.policy_version = policy_version
        self.remainder_to = remainder_to
        self.return_window_days = return_window_days
        self.split = dict(split)
        self.receivers = dict(receivers)
        self.status = OrderStatus.PLACED
        self.paid = 0
        self.paid_at: datetime | None = None
        self.refunded = 0
        self.refund_count = 0
        self.reversed: dict[str, int] = dict.fromkeys(split, 0)
        self.fulfilled_at: datetime | None = None
        self.due_at: datetime | None = None
        self.settled = False
        # Has the distributor's standing been credited this order's sale (at settlement;
        # at payment before version 2 of ``Paid``)? Refunds then take growth back.
        self.standing_credited = False
        self.instructions: dict[str, Instruction] = {}
        self.receipts: dict[str, str] = {}

    # -- placing --------------------------------------------------------------------

    @classmethod
    def place(
        cls,
        order_id: str,
        member_id: str,
        lines: tuple[LineData, ...],
        fulfilment: Fulfilment,
        parties: Parties,
        policy: SplitPolicy,
        by: Principal,
        at: datetime,
    ) -> Order:
        by.require(Role.GATEWAY, Role.HQ)
        validate_order_id(order_id)
        total = sum(qty * price for _sku, qty, price, _category in lines)
        if not 1 <= total <= AMOUNT_FEN_MAX:
            raise InvalidInput.field("lines", f"the order total must be 1 to {AMOUNT_FEN_MAX} fen")
        has_distributor = parties.distributor is not None
        priced = [
            PricedLine(qty * price, policy.rates_for(sku, category).pick(has_distributor))
            for sku, qty, price, category in lines
        ]
        split = split_lines(priced, policy.remainder_to)
        receivers = parties.receivers()
        assert set(split) <= set(receivers), "every role with a share has a receiver"
        return cls._create(
            cls.Placed,
            id=order_key(order_id),
            timestamp=at,
            order_id=order_id,
            member_id=member_id,
            lines=lines,
            total=total,
            currency=CURRENCY,
            fulfilment=fulfilment.value,
            store=parties.store,
            dealer=parties.dealer,
            distributor=parties.distributor,
            attribution=parties.attribution.value,
            policy_id=policy.policy_id,
            policy_version=policy.version,
            remainder_to=policy.remainder_to,
            return_window_days=policy.window_days([c for *_rest, c in lines]),
            split=split,
            receivers={role: receivers[role] for role in split},
            by=by.scope_key,
        )

    # -- rules ----------------------------------------------------------------------

    @property
    def net_of_refunds(self) -> int:
        return self.paid - self.refunded

    def authorize_fulfilment(self, by: Principal) -> None:
        if by.role in (Role.GATEWAY, Role.HQ):
            return
        if by.role is Role.STORE and by.partner == self.store:
            return
        raise NotAllowed(f"{by.role.value} {by.partner} may not fulfil order {self.order_id}")

    def _require_paid(self) -> None:
        if self.status is OrderStatus.CANCELLED:
            raise Conflict(f"order {self.order_id} was cancelled", code="order_cancelled")
        if self.paid == 0:
            raise Conflict(f"order {self.order_id} is not paid", code="order_not_paid")

    # -- changes --------------------------------------------------------------------

    def cancel(self, cancellation_id: str, reason: str, by: Principal, at: datetime) -> None:
        by.require(Role.GATEWAY, Role.HQ)
        if self.status is OrderStatus.CANCELLED:
            raise Conflict(f"order {self.order_id} is cancelled", code="order_cancelled")
        if self.paid:
            raise Conflict("a paid order is refunded, not cancelled", code="order_paid")
        self.trigger_event(
            self.Cancelled,
            timestamp=at,
            order_id=self.order_id,
            cancellation_id=cancellation_id,
            reason=reason,
            by=by.scope_key,
        )

    def pay(self, payment_id: str, amount: int, by: Principal, at: datetime) -> None:
        by.require(Role.GATEWAY, Role.HQ)
        if self.status is OrderStatus.CANCELLED:
            raise Conflict(f"order {self.order_id} was cancelled", code="order_cancelled")
        if self.paid:
            raise Conflict(f"order {self.order_id} is paid already", code="already_paid")
        if amount != self.total:
            raise BusinessRuleBroken(
                f"the payment must equal the order total {self.total} fen, not {amount}",
                code="amount_mismatch",
            )
        pickup = self.fulfilment is Fulfilment.PICKUP  # fulfilled at payment
        self.trigger_event(
            self.Paid,
            timestamp=at,
            order_id=self.order_id,
            payment_id=payment_id,
            amount=amount,
            standing_credited=False,  # the settlement credits the sale
            postings=payment_postings(self.store, amount, self.split, self.receivers),
            fulfilled=pickup,
            due_at=self._due(at) if pickup else None,
            by=by.scope_key,
        )

    def fulfil(self, fulfilment_id: str, by: Principal, at: datetime) -> None:
        self.authorize_fulfilment(by)
        self._require_paid()
        if self.fulfilled_at is not None:
            raise Conflict(f"order {self.order_id} is fulfilled already", code="already_fulfilled")
        if self.status is OrderStatus.REFUNDED:
            raise Conflict(f"order {self.order_id} was refunded", code="order_refunded")
        self.trigger_event(
            self.Fulfilled,
            timestamp=at,
            order_id=self.order_id,
            fulfilment_id=fulfilment_id,
            due_at=self._due(at),
            by=by.scope_key,
        )

    def _due(self, fulfilled_at: datetime) -> datetime:
        return return_window_closes(fulfilled_at, self.return_window_days)

    def refund(self, refund_id: str, amount: int, by: Principal, at: datetime) -> dict[str, int]:
        """Reverse each share in proportion (cumulatively exact); returns the reversals."""
        by.require(Role.GATEWAY, Role.HQ)
        self._require_paid()
        if not 1 <= amount <= self.net_of_refunds:
            raise BusinessRuleBroken(
                f"a refund of {amount} fen exceeds what is left of the payment "
                f"({self.net_of_refunds} fen of {self.paid})",
                code="refund_exceeds_paid",
            )
        if self.refund_count >= REFUNDS_MAX - 1 and amount != self.net_of_refunds:
            raise BusinessRuleBroken(
                f"at most {REFUNDS_MAX} refunds per order; refund the rest at once",
                code="too_many_refunds",
            )
        reversed_shares = reversal(self.split, self.paid, self.refunded, amount, self.remainder_to)
        postings = refund_postings(
            self.store, amount, reversed_shares, self.receivers, settled=self.settled
        )
        instructions: tuple[Instruction, ...] = ()
        if self.settled:
            # Money already split out of the store's account comes back: 分账回退.
            number = self.refund_count + 1
            instructions = tuple(
                (f"{self.order_id}/refund-{number}/{role}", self.receivers[role], amount_)
                for role, amount_ in reversed_shares.items()
                if amount_ != 0 and self.receivers[role] != self.store
            )
        self.trigger_event(
            self.Refunded,
            timestamp=at,
            order_id=self.order_id,
            refund_id=refund_id,
            amount=amount,
            refunded_total=self.refunded + amount,
            reversed=reversed_shares,
            after_settlement=self.settled,
            postings=postings,
            instructions=instructions,
            by=by.scope_key,
        )
        return reversed_shares

    def settle(self, run_id: str, by: Principal, at: datetime) -> Settlement | None:
        """Close the return window if it has closed by ``at``: None if nothing to do."""
        by.require(Role.HQ)
        if self.settled or self.due_at is None or at < self.due_at or self.paid == 0:
            return None
        if self.net_of_refunds == 0:
            return None  # everything was refunded: nothing left to split
        net = {role: self.split[role] - self.reversed.get(role, 0) for role in self.split}
        assert all(amount >= 0 for amount in net.values())
        instructions = tuple(
            (f"{self.order_id}/split/{role}", self.receivers[role], amount)
            for role, amount in net.items()
            if amount > 0 and self.receivers[role] != self.store
        )
        # The sale counts for the distributor's level once it can no longer be returned
        # in the window, for what is left of it: an order refunded in full before this
        # is never settled, and so never counts.
        standing_credit = (
            0 if self.distributor is None or self.standing_credited else self.net_of_refunds
        )
        self.trigger_event(
            self.Settled,
            timestamp=at,
            order_id=self.order_id,
            run_id=run_id,
            net=net,
            postings=settlement_postings(net, self.receivers),
            instructions=instructions,
            by=by.scope_key,
            standing_credit=standing_credit,
        )
        credits: dict[str, int] = {}
        for role, amount in net.items():
            if amount:
                credits[self.receivers[role]] = credits.get(self.receivers[role], 0) + amount
        return Settlement(self.order_id, credits, standing_credit)

    def record_receipt(
        self,
        receipt_id: str,
        instruction_id: str,
        status: str,
        amount: int,
        provider_ref: str,
        by: Principal,
        at: datetime,
    ) -> None:
        by.require(Role.GATEWAY, Role.HQ)
        instruction = self.instructions.get(instruction_id)
        if instruction is None:
            raise BusinessRuleBroken(
                f"order {self.order_id} has no instruction {instruction_id}",
                code="unknown_instruction",
            )
        if self.receipts.get(instruction_id) == "succeeded":
            raise Conflict(f"{instruction_id} has its receipt", code="receipt_exists")
        if status == "succeeded" and amount != abs(instruction[2]):
            raise BusinessRuleBroken(
                f"the receipt's amount {amount} differs from the instruction's {instruction[2]}",
                code="amount_mismatch",
            )
        assert len(self.receipts) < RECEIPTS_MAX
        self.trigger_event(
            self.ReceiptRecorded,
            timestamp=at,
            order_id=self.order_id,
            receipt_id=receipt_id,
            instruction_id=instruction_id,
            status=status,
            amount=amount,
            provider_ref=provider_ref,
            by=by.scope_key,
        )

    def view(self) -> dict[str, Any]:
        return {
            "order_id": self.order_id,
            "status": self.status.value,
            "total": self.total,
            "paid": self.paid,
            "refunded": self.refunded,
            "store": self.store,
            "dealer": self.dealer,
            "distributor": self.distributor,
            "split": dict(self.split),
        }
