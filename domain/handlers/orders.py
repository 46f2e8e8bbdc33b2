"""Commands on orders: place (with attribution), pay, fulfil, cancel, refund, receipts;
and HQ's split policies.

Attribution (API.md): the member's bound store; else the store of the distributor
(the member's permanent referrer, else the order's ``referrer``, which then sticks);
else the nearest active store to ``location``. The member is then bound for good.
The nearest store is found through a port (``StoreFinder``: candidates nearest first,
from the partner directory caught up to the store's head, taken one at a time); every
candidate is checked against the write side (a store, active) before it is chosen.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, ClassVar
from uuid import UUID

from domain.catalog import Product
from domain.channel import Partner, PartnerKind
from domain.distributor_levels import LEVEL_POLICY_ID, commission_rate_bp, standing_id
from domain.errors import BusinessRuleBroken, InvalidInput, NotFound
from domain.handlers.order_rewards import reverse_refund, reward_payment
from domain.identity import keyed_id, neighbourhood, partner_id, product_id
from domain.ledger import GLOBAL_SCOPE, Ledger, Outcome, RequestKey, UnitOfWork, in_utc
from domain.members import Member, validate_external_id
from domain.orders import (
    LINES_MAX,
    QUANTITY_MAX,
    UNIT_PRICE_FEN_MAX,
    Attribution,
    LineData,
    Order,
    Parties,
    order_key,
    validate_order_id,
)
from domain.point_rules import POINT_RULES_ID
from domain.policies import PolicySchedule, schedule_id
from domain.principal import HQ_CODE, Principal, Role
from domain.requests import ContentPath
from domain.splits import Fulfilment, SplitPolicy, default_policy, with_distributor_rate
from domain.tasks import TASK_BOARD_ID
from domain.tiers import TIER_POLICY_ID
from domain.withdrawals import payout_account

STORE_CANDIDATES_MAX = 20
RECEIPT_STATUSES = ("succeeded", "failed")

# (lat, lng) -> store codes, nearest first (ties by code), at most STORE_CANDIDATES_MAX.
# Taken lazily: the next candidate is asked for only when the write side refuses one (the
# directory behind it), so the usual order reads just the nearest store.
StoreFinder = Callable[[float, float], Iterable[str]]


@dataclass(frozen=True)
class LineRequest:
    sku: str
    qty: int
    unit_price: int


@dataclass(frozen=True)
class OrderRequest:
    order_id: str
    member: str
    lines: tuple[LineRequest, ...]
    fulfilment: Fulfilment
    lat: float | None = None
    lng: float | None = None
    referrer: str | None = None

    def __post_init__(self) -> None:
        validate_order_id(self.order_id)
        validate_external_id(self.member, "member")
        if not 1 <= len(self.lines) <= LINES_MAX:
            raise InvalidInput.field("lines", f"1 to {LINES_MAX} lines")
        for i, line in enumerate(self.lines):
            if not 1 <= line.qty <= QUANTITY_MAX:
                raise InvalidInput.field(f"lines[{i}].qty", f"1 to {QUANTITY_MAX}")
            if not 0 <= line.unit_price <= UNIT_PRICE_FEN_MAX:
                raise InvalidInput.field(f"lines[{i}].unit_price", f"0 to {UNIT_PRICE_FEN_MAX} fen")
        if (self.lat is None) != (self.lng is None):
            raise InvalidInput.field("location", "both lat and lng")

    # the exact location: sealed with the member's key in the record
    PERSONAL: ClassVar[tuple[ContentPath, ...]] = (("location", 0), ("location", 1))

    def content(self) -> dict[str, Any]:
        return {
            "member": self.member,
            "lines": [[line.sku, line.qty, line.unit_price] for line in self.lines],
            "fulfilment": self.fulfilment.value,
            "location": [self.lat, self.lng],
            "referrer": self.referrer,
        }


def order_answer(order: Order) -> dict[str, Any]:
    return {
        "order_id": order.order_id,
        "store": order.store,
        "dealer": order.dealer,
        "distributor": order.distributor,
        "total": order.total,
        "policy_id": order.policy_id,
        "policy_version": order.policy_version,
        "attribution": order.attribution,
    }


# -- split policies ---------------------------------------------------------------


def publish_policy(ledger: Ledger, by: Principal, policy: SplitPolicy) -> Outcome:
    key = _policy_key(policy)

    def authorize(_uow: UnitOfWork) -> None:
        by.require(Role.HQ)

    def decide(uow: UnitOfWork) -> dict[str, Any]:
        schedule = uow.find(PolicySchedule, schedule_id(policy.fulfilment))
        if schedule is None:
            schedule = PolicySchedule.open(policy.fulfilment, uow.now)
            uow.add(schedule)
        version = schedule.publish(policy, by, uow.now)
        return {
            "policy_id": policy.policy_id,
            "fulfilment": policy.fulfilment.value,
            "version": version,
            "effective_from": policy.effective_from.isoformat(),
        }

    return ledger.execute(key, decide, authorize)


def _policy_key(policy: SplitPolicy) -> RequestKey:
    """The publication's request key: its content with ``effective_from`` in UTC, so one
    instant written in another offset is the same request; the content as sent where that
    differs (``RequestKey.sent``: records written before compared it as sent)."""
    sent = policy.content()
    content = {**sent, "effective_from": in_utc(policy.effective_from)}
    return RequestKey(GLOBAL_SCOPE, "split-policy", policy.policy_id, content, sent=sent)


def policy_in_force(uow: UnitOfWork, fulfilment: Fulfilment) -> SplitPolicy:
    schedule = uow.find(PolicySchedule, schedule_id(fulfilment))
    return default_policy(fulfilment) if schedule is None else schedule.in_force(uow.now)


# -- placing an order ---------------------------------------------------------------


def place_order(
    ledger: Ledger, by: Principal, req: OrderRequest, find_stores: StoreFinder
) -> Outcome:
    member = keyed_id("member", ledger.member_id_key, req.member)
    key = RequestKey(GLOBAL_SCOPE, "order", req.order_id, req.content(), req.PERSONAL, str(member))
    nearby = (
        None if req.lat is None or req.lng is None else neighbourhood(req.lat, req.lng, "order")
    )

    def authorize(_uow: UnitOfWork) -> None:
        by.require(Role.GATEWAY, Role.HQ)

    def decide(uow: UnitOfWork) -> dict[str, Any]:
        if uow.find(Order, order_key(req.order_id)) is not None:
            raise BusinessRuleBroken(f"order {req.order_id} exists", code="order_exists")
        lines = _priced_lines(uow, req)
        referrer = _referrer(uow, req.referrer)
        member = _member(uow, req.member, by)
        parties = _attribute(uow, req, member, referrer, find_stores)
        # What the next order by a new member this referrer brings, or by one near here,
        # reads after its first read: read with it then, in this process (hints only say
        # what to read; the command decides on what it finds). Keyed by what recurs
        # within seconds: a member's next order is days away, and a hint per member
        # would push out the orders' hints for their payments (READ_HINTS_MAX).
        if referrer is not None:
            uow.hint(referrer.id, [partner_id(parties.store)])
        elif nearby is not None and parties.attribution is Attribution.NEAREST_STORE:
            uow.hint(nearby, [partner_id(parties.store)])
        policy = policy_in_force(uow, req.fulfilment)
        if parties.distributor is not None:
            rate = commission_rate_bp(uow, parties.distributor)
            if rate is not None:  # the distributor's level sets its own rate
                policy = with_distributor_rate(policy, rate)
        order = Order.place(
            req.order_id,
            member.member_id,
            lines,
            req.fulfilment,
            parties,
            policy,
            by,
            uow.now,
        )
        uow.add(order)
        uow.hint(order.id, _parties(order))  # its payment reads them with the order
        reason = f"order {req.order_id} ({parties.attribution.value})"
        member.bind(parties.store, reason, by.scope_key, uow.now)
        if parties.distributor is not None:
            member.refer(parties.distributor, by.scope_key, uow.now)
        return order_answer(order)

    reads = [
        order_key(req.order_id),
        member,
        schedule_id(req.fulfilment),
        LEVEL_POLICY_ID,
    ]
    if req.referrer is not None:
        reads += [partner_id(req.referrer), standing_id(req.referrer)]
    if nearby is not None:
        reads += ledger.hinted(nearby)  # the store the last order from here was placed at
    return ledger.execute(key, decide, authorize, preload=reads)


def _priced_lines(uow: UnitOfWork, req: OrderRequest) -> tuple[LineData, ...]:
    lines: list[LineData] = []
    for i, line in enumerate(req.lines):
        product = uow.find(Product, product_id(line.sku))
        if product is None:
            raise NotFound(f"lines[{i}]: unknown sku {line.sku}", code="unknown_sku")
        lines.append((line.sku, line.qty, line.unit_price, product.category))
    return tuple(lines)


def _referrer(uow: UnitOfWork, code: str | None) -> Partner | None:
    if code is None:
        return None
    partner = uow.find(Partner, partner_id(code))
    if partner is None or partner.kind not in (PartnerKind.DISTRIBUTOR, PartnerKind.CLERK):
        raise BusinessRuleBroken(f"unknown referrer {code}", code="unknown_referrer")
    return partner


def _member(uow: UnitOfWork, external_id: str, by: Principal) -> Member:
    member_uuid = keyed_id("member", uow.member_id_key, external_id)
    member = uow.find(Member, member_uuid)
    if member is None:
        member = Member.join(member_uuid, "order", None, None, by.scope_key, uow.now)
        uow.add(member)
    return member


def _attribute(
    uow: UnitOfWork,
    req: OrderRequest,
    member: Member,
    referrer: Partner | None,
    find_stores: StoreFinder,
) -> Parties:
    distributor = member.referrer or (None if referrer is None else referrer.code)
    if member.bound_store is not None:
        store, how = uow.partner(member.bound_store), Attribution.BOUND_STORE
    elif distributor is not None:
        parent = uow.partner(distributor).parent
        assert parent is not None, "a distributor or clerk belongs to a store"
        store, how = uow.partner(parent), Attribution.REFERRER
    elif req.lat is not None and req.lng is not None:
        store, how = (
            _nearest_active_store(uow, req.lat, req.lng, find_stores),
            (Attribution.NEAREST_STORE),
        )
    else:
        raise BusinessRuleBroken(
            "a member without a bound store needs a referrer or a location",
            code="no_store_for_member",
        )
    if store.kind is not PartnerKind.STORE or store.parent is None:
        raise BusinessRuleBroken(f"{store.code} is not a store", code="not_a_store")
    return Parties(store.code, store.parent, HQ_CODE, distributor, how)


def _nearest_active_store(
    uow: UnitOfWork, lat: float, lng: float, find_stores: StoreFinder
) -> Partner:
    for tried, code in enumerate(find_stores(lat, lng), start=1):
        assert tried <= STORE_CANDIDATES_MAX, "a finder offers at most STORE_CANDIDATES_MAX"
        partner = uow.find(Partner, partner_id(code))
        if partner is not None and partner.kind is PartnerKind.STORE and partner.is_active:
            return partner
    raise BusinessRuleBroken("no active store near this location", code="no_store_nearby")


# -- after placing ------------------------------------------------------------------


def _order(uow: UnitOfWork, order_id: str) -> Order:
    order = uow.find(Order, order_key(order_id))
    if order is None:
        raise NotFound(f"unknown order {order_id}", code="unknown_order")
    return order


def pay(ledger: Ledger, by: Principal, order_id: str, payment_id: str, amount: int) -> Outcome:
    key = RequestKey(by.scope_key, "payment", payment_id, {"order_id": order_id, "amount": amount})

    def authorize(uow: UnitOfWork) -> None:
        by.require(Role.GATEWAY, Role.HQ)
        _order(uow, order_id)

    def decide(uow: UnitOfWork) -> dict[str, Any]:
        order = _order(uow, order_id)
        parties = _parties(order)
        uow.preload(parties)  # no round trip where this process placed the order (its hint)
        uow.hint(order.id, parties)
        order.pay(payment_id, amount, by, uow.now)
        reward_payment(uow, order, payment_id, amount, by.scope_key)  # points, growth, tier
        return {"order_id": order_id, "status": order.status.value, "split": dict(order.split)}

    return ledger.execute(key, decide, authorize, preload=[order_key(order_id), *_POLICIES])


_POLICIES = (TIER_POLICY_ID, POINT_RULES_ID, TASK_BOARD_ID)


def _parties(order: Order) -> list[UUID]:
    """What paying ``order`` reads besides the order and the loyalty policies (``_POLICIES``):
    the member, and the partner of the distributor it is attributed to (its clerk tasks).
    Not the distributor's standing: the sale counts for it at settlement."""
    reads = [UUID(order.member_id)]
    if order.distributor is not None:
        reads.append(partner_id(order.distributor))
    return reads


def fulfil(ledger: Ledger, by: Principal, order_id: str, fulfilment_id: str) -> Outcome:
    key = RequestKey(by.scope_key, "fulfilment", fulfilment_id, {"order_id": order_id})

    def authorize(uow: UnitOfWork) -> None:
        _order(uow, order_id).authorize_fulfilment(by)

    def decide(uow: UnitOfWork) -> dict[str, Any]:
        order = _order(uow, order_id)
        order.fulfil(fulfilment_id, by, uow.now)
        due = order.due_at
        return {
            "order_id": order_id,
            "status": order.status.value,
            "return_window_closes": None if due is None else due.isoformat(),
        }

    return ledger.execute(key, decide, authorize)


def cancel(
    ledger: Ledger, by: Principal, order_id: str, cancellation_id: str, reason: str
) -> Outcome:
    content = {"order_id": order_id, "reason": reason}
    key = RequestKey(by.scope_key, "cancellation", cancellation_id, content)

    def authorize(uow: UnitOfWork) -> None:
        by.require(Role.GATEWAY, Role.HQ)
        _order(uow, order_id)

    def decide(uow: UnitOfWork) -> dict[str, Any]:
        order = _order(uow, order_id)
        order.cancel(cancellation_id, reason, by, uow.now)
        return {"order_id": order_id, "status": order.status.value}

    return ledger.execute(key, decide, authorize)


def refund(ledger: Ledger, by: Principal, order_id: str, refund_id: str, amount: int) -> Outcome:
    key = RequestKey(by.scope_key, "refund", refund_id, {"order_id": order_id, "amount": amount})

    def authorize(uow: UnitOfWork) -> None:
        by.require(Role.GATEWAY, Role.HQ)
        _order(uow, order_id)

    def decide(uow: UnitOfWork) -> dict[str, Any]:
        order = _order(uow, order_id)
        after_settlement = order.settled
        reversed_shares = order.refund(refund_id, amount, by, uow.now)
        reverse_refund(uow, order, refund_id, amount, by.scope_key)  # points and growth back
        if after_settlement:
            # The payout accounts guard withdrawals: they lose what was reversed.
            for role, reversed_fen in reversed_shares.items():
                receiver = order.receivers[role]
                if receiver != HQ_CODE and reversed_fen != 0:
                    payout_account(uow, receiver).debit_refund(
                        order_id, f"{by.scope_key}/{refund_id}", reversed_fen, uow.now
                    )
        return {
            "order_id": order_id,
            "status": order.status.value,  # partially_refunded or refunded
            "reversed": reversed_shares,
            "refunded": order.refunded,
        }

    return ledger.execute(key, decide, authorize)


@dataclass(frozen=True)
class ReceiptRequest:
    receipt_id: str
    instruction_id: str
    status: str
    amount: int
    provider_ref: str

    def __post_init__(self) -> None:
        if self.status not in RECEIPT_STATUSES:
            raise InvalidInput.field("status", "succeeded or failed")


def record_receipt(ledger: Ledger, by: Principal, order_id: str, req: ReceiptRequest) -> Outcome:
    content = {
        "order_id": order_id,
        "instruction_id": req.instruction_id,
        "status": req.status,
        "amount": req.amount,
        "provider_ref": req.provider_ref,
    }
    key = RequestKey(by.scope_key, "receipt", req.receipt_id, content)

    def authorize(uow: UnitOfWork) -> None:
        by.require(Role.GATEWAY, Role.HQ)
        _order(uow, order_id)

    def decide(uow: UnitOfWork) -> dict[str, Any]:
        order = _order(uow, order_id)
        order.record_receipt(
            req.receipt_id,
            req.instruction_id,
            req.status,
            req.amount,
            req.provider_ref,
            by,
            uow.now,
        )
        return {"order_id": order_id, "instruction_id": req.instruction_id, "status": req.status}

    return ledger.execute(key, decide, authorize)
