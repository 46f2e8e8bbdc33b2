"""Split policies (分账) and the share arithmetic: pure functions over integer fen.

A policy gives each role a rate in basis points (bp, 1/10,000), in two variants: with a
distributor and without one. Every role's share but the remainder role's is rounded
down; the remainder role gets the rest, so shares sum exactly to the amount.

Refunds reverse cumulatively (API.md): after refunds totalling R of a paid amount P, a
non-remainder role has been reversed ``floor(share * R / P)`` in all, the remainder role
the rest, so a full refund returns every share exactly. In rare cases (tiny amounts,
a small remainder share) that rest would exceed the remainder's own share; then the
excess is taken, one fen each, from the non-remainder roles with the largest fractional
parts (never beyond their own shares). See docs/decisions/0004-orders-splits-ledger.md.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from enum import StrEnum
from typing import Any

from domain.errors import InvalidInput

BP_TOTAL = 10_000
RETURN_WINDOW_DAYS_MAX = 365
DEFAULT_RETURN_WINDOW_DAYS = 7
OVERRIDES_MAX = 200
CATEGORIES_MAX = 200
POLICY_ID_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}$")
KEY_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,39}$")


class Role(StrEnum):
    DISTRIBUTOR = "distributor"
    STORE = "store"
    DEALER = "dealer"
    BRAND = "brand"


ROLE_ORDER: tuple[str, ...] = tuple(r.value for r in Role)


class Fulfilment(StrEnum):
    PICKUP = "pickup"
    DELIVERY = "delivery"
    HQ_DROPSHIP = "hq_dropship"


Rates = Mapping[str, int]


@dataclass(frozen=True)
class RateSet:
    """The two variants of one set of rates."""

    with_distributor: Rates
    without_distributor: Rates

    def pick(self, has_distributor: bool) -> Rates:
        return self.with_distributor if has_distributor else self.without_distributor


@dataclass(frozen=True)
class Override:
    """Other rates for one SKU or one product category (a SKU override wins)."""

    sku: str | None
    category: str | None
    rates: RateSet


@dataclass(frozen=True)
class SplitPolicy:
    policy_id: str
    fulfilment: Fulfilment
    rates: RateSet
    remainder_to: str
    return_window_days: int
    effective_from: datetime
    window_days_by_category: Mapping[str, int] = field(default_factory=dict)
    overrides: tuple[Override, ...] = ()
    version: int = 0

    def __post_init__(self) -> None:
        validate_policy(self)

    def rates_for(self, sku: str, category: str) -> RateSet:
        for o in self.overrides:
            if o.sku == sku:
                return o.rates
        for o in self.overrides:
            if o.category is not None and o.category == category:
                return o.rates
        return self.rates

    def window_days(self, categories: Sequence[str]) -> int:
        """An order settles when the longest window of its lines' categories has closed."""
        days = [self.window_days_by_category.get(c, self.return_window_days) for c in categories]
        return max(days, default=self.return_window_days)

    def content(self) -> dict[str, Any]:
        """What the policy says, as plain data (the event's payload, the request fingerprint)."""
        return {
            "policy_id": self.policy_id,
            "fulfilment": self.fulfilment.value,
            "rates_bp": dict(self.rates.with_distributor),
            "rates_bp_without_distributor": dict(self.rates.without_distributor),
            "remainder_to": self.remainder_to,
            "return_window_days": self.return_window_days,
            "return_window_days_by_category": dict(self.window_days_by_category),
            "overrides": [
                {
                    "sku": o.sku,
                    "category": o.category,
                    "rates_bp": dict(o.rates.with_distributor),
                    "rates_bp_without_distributor": dict(o.rates.without_distributor),
                }
                for o in self.overrides
            ],
            "effective_from": self.effective_from.isoformat(),
        }


# -- validation --------------------------------------------------------------------


def validate_rates(rates: Rates, field_name: str, *, distributor: bool) -> None:
    for role, bp in rates.items():
        if role not in ROLE_ORDER:
            raise InvalidInput.field(field_name, f"unknown role {role!r}")
        if not isinstance(bp, int) or isinstance(bp, bool) or not 0 <= bp <= BP_TOTAL:
            raise InvalidInput.field(field_name, f"{role}: an integer from 0 to {BP_TOTAL} bp")
    if not distributor and rates.get(Role.DISTRIBUTOR.value, 0) != 0:
        raise InvalidInput.field(field_name, "the variant without a distributor pays none")
    if sum(rates.values()) != BP_TOTAL:
        raise InvalidInput.field(field_name, f"rates must sum to exactly {BP_TOTAL} bp")


def validate_rate_set(rates: RateSet, prefix: str, remainder_to: str) -> None:
    validate_rates(rates.with_distributor, f"{prefix}rates_bp", distributor=True)
    validate_rates(
        rates.without_distributor, f"{prefix}rates_bp_without_distributor", distributor=False
    )
    for variant, name in (
        (rates.with_distributor, "rates_bp"),
        (rates.without_distributor, "rates_bp_without_distributor"),
    ):
        if remainder_to not in variant:
            message = f"must name the remainder role {remainder_to}"
            raise InvalidInput.field(f"{prefix}{name}", message)


def validate_policy(policy: SplitPolicy) -> None:
    if not POLICY_ID_PATTERN.match(policy.policy_id):
        raise InvalidInput.field("policy_id", "1 to 64 of A-Z a-z 0-9 _ . : - (alphanumeric first)")
    if policy.remainder_to not in ROLE_ORDER or policy.remainder_to == Role.DISTRIBUTOR:
        raise InvalidInput.field("remainder_to", "store, dealer or brand (a role always present)")
    if policy.effective_from.tzinfo is None:
        raise InvalidInput.field("effective_from", "a time with its offset")
    validate_rate_set(policy.rates, "", policy.remainder_to)
    _validate_days(policy.return_window_days, "return_window_days")
    if len(policy.window_days_by_category) > CATEGORIES_MAX:
        raise InvalidInput.field("return_window_days_by_category", f"at most {CATEGORIES_MAX}")
    for category, days in policy.window_days_by_category.items():
        if not KEY_PATTERN.match(category):
            raise InvalidInput.field("return_window_days_by_category", f"bad category {category!r}")
        _validate_days(days, f"return_window_days_by_category.{category}")
    if len(policy.overrides) > OVERRIDES_MAX:
        raise InvalidInput.field("overrides", f"at most {OVERRIDES_MAX}")
    seen: set[tuple[str | None, str | None]] = set()
    for i, o in enumerate(policy.overrides):
        where = f"overrides[{i}]."
        if (o.sku is None) == (o.category is None):
            raise InvalidInput.field(f"overrides[{i}]", "exactly one of sku or category")
        key = o.sku or o.category or ""
        if not KEY_PATTERN.match(key):
            raise InvalidInput.field(f"overrides[{i}]", f"bad sku or category {key!r}")
        if (o.sku, o.category) in seen:
            raise InvalidInput.field(f"overrides[{i}]", "a second override of the same key")
        seen.add((o.sku, o.category))
        validate_rate_set(o.rates, where, policy.remainder_to)


def _validate_days(days: int, name: str) -> None:
    if not isinstance(days, int) or not 0 <= days <= RETURN_WINDOW_DAYS_MAX:
        raise InvalidInput.field(name, f"whole days from 0 to {RETURN_WINDOW_DAYS_MAX}")


# -- the defaults of API.md ----------------------------------------------------------

EPOCH = datetime.fromisoformat("1970-01-01T00:00:00+00:00")


def default_policy(fulfilment: Fulfilment) -> SplitPolicy:
    """API.md's defaults, in force until HQ publishes a policy for the fulfilment mode."""
    if fulfilment is Fulfilment.HQ_DROPSHIP:
        rates = RateSet(
            {"distributor": 1000, "store": 3000, "dealer": 2000, "brand": 4000},
            {"store": 4000, "dealer": 2000, "brand": 4000},
        )
        remainder = Role.BRAND.value
    else:
        rates = RateSet({"distributor": 1000, "store": 9000}, {"store": 10000})
        remainder = Role.STORE.value
    return SplitPolicy(
        policy_id=f"default-{fulfilment.value}",
        fulfilment=fulfilment,
        rates=rates,
        remainder_to=remainder,
        return_window_days=DEFAULT_RETURN_WINDOW_DAYS,
        effective_from=EPOCH,
    )


# -- share arithmetic (pure) -------------------------------------------------------


@dataclass(frozen=True)
class PricedLine:
    amount_fen: int
    rates: Rates


def split_lines(lines: Sequence[PricedLine], remainder_to: str) -> dict[str, int]:
    """Shares of an order whose lines may carry different rates.

    A non-remainder role gets ``floor(sum(line amount * bp) / 10,000)``: rounded down
    once over the whole order; the remainder role gets the rest.
    """
    total = sum(line.amount_fen for line in lines)
    assert all(line.amount_fen >= 0 for line in lines)
    roles = sorted({r for line in lines for r in line.rates} | {remainder_to}, key=ROLE_ORDER.index)
    shares: dict[str, int] = {}
    for role in roles:
        if role == remainder_to:
            continue
        weighted = sum(line.amount_fen * line.rates.get(role, 0) for line in lines)
        shares[role] = weighted // BP_TOTAL
    shares[remainder_to] = total - sum(shares.values())
    assert shares[remainder_to] >= 0, "the remainder is never negative"
    assert sum(shares.values()) == total, "shares sum exactly to the amount"
    return {role: shares[role] for role in roles}


def split_amount(amount_fen: int, rates: Rates, remainder_to: str) -> dict[str, int]:
    return split_lines([PricedLine(amount_fen, rates)], remainder_to)


def reversed_in_all(
    shares: Mapping[str, int], paid_fen: int, refunded_fen: int, remainder_to: str
) -> dict[str, int]:
    """How much of each share has been reversed in all after refunds totalling ``refunded``."""
    assert sum(shares.values()) == paid_fen and 0 <= refunded_fen <= paid_fen
    if paid_fen == 0:
        return dict.fromkeys(shares, 0)
    others = [r for r in shares if r != remainder_to]
    exact = {r: shares[r] * refunded_fen for r in others}  # numerators over paid_fen
    result = {r: exact[r] // paid_fen for r in others}
    rest = refunded_fen - sum(result.values())
    excess = rest - shares[remainder_to]
    if excess > 0:
        # The rest would reverse more than the remainder role was booked: the excess comes
        # from the roles closest to their next fen (largest fractional part, then role order).
        by_fraction = sorted(others, key=lambda r: (-(exact[r] % paid_fen), ROLE_ORDER.index(r)))
        for role in by_fraction[:excess]:
            assert exact[role] % paid_fen > 0 and result[role] < shares[role]
            result[role] += 1
        rest = refunded_fen - sum(result.values())
    result[remainder_to] = rest
    assert all(0 <= result[r] <= shares[r] for r in shares), "never beyond what was booked"
    assert sum(result.values()) == refunded_fen
    return {r: result[r] for r in shares}


def reversal(
    shares: Mapping[str, int],
    paid_fen: int,
    refunded_before_fen: int,
    refund_fen: int,
    remainder_to: str,
) -> dict[str, int]:
    """What one refund reverses of each share: the change of ``reversed_in_all``."""
    before = reversed_in_all(shares, paid_fen, refunded_before_fen, remainder_to)
    after = reversed_in_all(shares, paid_fen, refunded_before_fen + refund_fen, remainder_to)
    delta = {r: after[r] - before[r] for r in shares}
    assert sum(delta.values()) == refund_fen
    return delta


def with_distributor_rate(policy: SplitPolicy, rate_bp: int) -> SplitPolicy:
    """The policy with the distributor's rate set by its level (a privilege of the level).

    Only the distributor's own share changes; the remainder role absorbs the difference,
    so nobody above the distributor earns from its sales (one level of commission only).
    The rate is capped so that the remainder never goes below zero.
    """
    assert 0 <= rate_bp <= BP_TOTAL

    def adjusted(rates: Rates) -> Rates:
        if Role.DISTRIBUTOR.value not in rates:
            return rates
        new = dict(rates)
        pool = new[Role.DISTRIBUTOR.value] + new.get(policy.remainder_to, 0)
        given = min(rate_bp, pool)
        new[policy.remainder_to] = pool - given
        new[Role.DISTRIBUTOR.value] = given
        assert sum(new.values()) == BP_TOTAL
        return new

    def rate_set(rates: RateSet) -> RateSet:
        return RateSet(adjusted(rates.with_distributor), rates.without_distributor)

    return replace(
        policy,
        policy_id=f"{policy.policy_id}:distributor-{rate_bp}bp"[:64],
        rates=rate_set(policy.rates),
        overrides=tuple(replace(o, rates=rate_set(o.rates)) for o in policy.overrides),
    )
