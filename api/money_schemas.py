"""Request bodies of orders, split policies, receipts and withdrawals (msgspec, with limits)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from msgspec import Meta

from api.schemas import Body, ClientId, Code, Latitude, Longitude, Sku
from domain.splits import Fulfilment, Override, RateSet, SplitPolicy

OrderId = Annotated[
    str, Meta(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.:-]*$")
]
AmountFen = Annotated[int, Meta(ge=1, le=10_000_000_000)]
Bp = Annotated[int, Meta(ge=0, le=10_000)]
RoleName = Literal["distributor", "store", "dealer", "brand"]
# Role names are checked by the domain (422 naming the field), not here.
Rates = Annotated[dict[Annotated[str, Meta(max_length=20)], Bp], Meta(min_length=1, max_length=8)]
Days = Annotated[int, Meta(ge=0, le=365)]
Key = Annotated[str, Meta(min_length=1, max_length=40)]


class OrderLineIn(Body):
    sku: Sku
    qty: Annotated[int, Meta(ge=1, le=10_000)]
    unit_price: Annotated[int, Meta(ge=0, le=100_000_000)]


class OrderLocationIn(Body):
    lat: Latitude
    lng: Longitude


class OrderIn(Body):
    order_id: OrderId
    member: Annotated[str, Meta(min_length=1, max_length=100)]
    lines: Annotated[list[OrderLineIn], Meta(min_length=1, max_length=100)]
    fulfilment: Literal["pickup", "delivery", "hq_dropship"]
    location: OrderLocationIn | None = None
    referrer: Code | None = None


class PaymentIn(Body):
    payment_id: ClientId
    amount: AmountFen


class FulfilmentIn(Body):
    fulfilment_id: ClientId


class CancellationIn(Body):
    cancellation_id: ClientId
    reason: Annotated[str, Meta(min_length=1, max_length=200)] = "cancelled by the consumer"


class RefundIn(Body):
    refund_id: ClientId
    amount: AmountFen


class ReceiptIn(Body):
    receipt_id: ClientId
    instruction_id: Annotated[str, Meta(min_length=1, max_length=200)]
    status: Literal["succeeded", "failed"]
    amount: Annotated[int, Meta(ge=0, le=10_000_000_000)]
    provider_ref: Annotated[str, Meta(min_length=1, max_length=200)]


class OverrideIn(Body):
    rates_bp: Rates
    rates_bp_without_distributor: Rates
    sku: Key | None = None
    category: Key | None = None


class SplitPolicyIn(Body):
    policy_id: Annotated[str, Meta(min_length=1, max_length=64)]
    fulfilment: Literal["pickup", "delivery", "hq_dropship"]
    rates_bp: Rates
    rates_bp_without_distributor: Rates
    remainder_to: RoleName
    return_window_days: Days
    effective_from: Annotated[str, Meta(min_length=10, max_length=40)]
    return_window_days_by_category: Annotated[dict[Key, Days], Meta(max_length=200)] = {}
    overrides: Annotated[list[OverrideIn], Meta(max_length=200)] = []


class WithdrawalIn(Body):
    withdrawal_id: ClientId
    amount: AmountFen


class WithdrawalDecisionIn(Body):
    decision: Literal["approve", "reject"]
    reason: Annotated[str, Meta(min_length=1, max_length=200)] = "approved"


class WithdrawalPaymentIn(Body):
    payout_ref: Annotated[str, Meta(min_length=1, max_length=200)]


def policy_from(data: SplitPolicyIn, effective_from: datetime) -> SplitPolicy:
    """The domain's policy from a request body (or a what-if policy file)."""
    return SplitPolicy(
        policy_id=data.policy_id,
        fulfilment=Fulfilment(data.fulfilment),
        rates=RateSet(dict(data.rates_bp), dict(data.rates_bp_without_distributor)),
        remainder_to=data.remainder_to,
        return_window_days=data.return_window_days,
        effective_from=effective_from,
        window_days_by_category=dict(data.return_window_days_by_category),
        overrides=tuple(
            Override(
                o.sku, o.category, RateSet(dict(o.rates_bp), dict(o.rates_bp_without_distributor))
            )
            for o in data.overrides
        ),
    )
