"""Split and refund arithmetic, and the postings they make: property tests (hypothesis).

After every operation every invariant is checked again (Blnk's invariant fuzz style):
shares sum exactly, each non-remainder share is rounded down, reversals follow the
cumulative formula of API.md, no share is ever reversed beyond what was booked, and
every event's postings sum to zero, so the trial balance is always zero.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from domain.errors import InvalidInput
from domain.money import (
    Unbalanced,
    assert_balanced,
    payment_postings,
    refund_postings,
    settlement_postings,
)
from domain.splits import (
    BP_TOTAL,
    Fulfilment,
    PricedLine,
    RateSet,
    SplitPolicy,
    default_policy,
    reversal,
    reversed_in_all,
    split_amount,
    split_lines,
)

ROLES = ("distributor", "store", "dealer", "brand")
RECEIVERS = {"distributor": "R-1", "store": "S-1", "dealer": "D-1", "brand": "HQ"}


@st.composite
def rates(draw: st.DrawFn, with_distributor: bool = True) -> dict[str, int]:
    roles = list(ROLES if with_distributor else ROLES[1:])
    cuts = sorted(
        draw(st.lists(st.integers(0, BP_TOTAL), min_size=len(roles) - 1, max_size=len(roles) - 1))
    )
    bounds = [0, *cuts, BP_TOTAL]
    return {role: bounds[i + 1] - bounds[i] for i, role in enumerate(roles)}


remainders = st.sampled_from(["store", "dealer", "brand"])
amounts = st.integers(1, 10_000_000_000)


def test_the_seed_example() -> None:
    dropship = default_policy(Fulfilment.HQ_DROPSHIP)
    with_d = split_amount(10_000, dropship.rates.with_distributor, dropship.remainder_to)
    assert with_d == {"distributor": 1000, "store": 3000, "dealer": 2000, "brand": 4000}
    without = split_amount(10_000, dropship.rates.without_distributor, dropship.remainder_to)
    assert without == {"store": 4000, "dealer": 2000, "brand": 4000}
    odd = split_amount(333, dropship.rates.with_distributor, "brand")
    assert odd == {"distributor": 33, "store": 99, "dealer": 66, "brand": 135}
    pickup = default_policy(Fulfilment.PICKUP)
    assert split_amount(999, pickup.rates.with_distributor, "store") == {
        "distributor": 99,
        "store": 900,
    }


@settings(max_examples=300, deadline=None)
@given(amount=amounts, rate=rates(), remainder=remainders)
def test_shares_sum_exactly_and_others_round_down(
    amount: int, rate: dict[str, int], remainder: str
) -> None:
    shares = split_amount(amount, rate, remainder)
    assert sum(shares.values()) == amount
    for role, share in shares.items():
        exact_numerator = amount * rate.get(role, 0)
        if role == remainder:
            assert share * BP_TOTAL >= exact_numerator  # the remainder takes the rounding
        else:
            assert share == exact_numerator // BP_TOTAL  # rounded down


@settings(max_examples=200, deadline=None)
@given(
    lines=st.lists(st.tuples(st.integers(0, 1_000_000), rates()), min_size=1, max_size=6),
    remainder=remainders,
)
def test_lines_with_different_rates_still_sum_exactly(
    lines: list[tuple[int, dict[str, int]]], remainder: str
) -> None:
    priced = [PricedLine(amount, rate) for amount, rate in lines]
    shares = split_lines(priced, remainder)
    assert sum(shares.values()) == sum(a for a, _ in lines)
    assert all(share >= 0 for share in shares.values())


@settings(max_examples=400, deadline=None)
@given(
    amount=st.integers(1, 5_000_000),
    rate=rates(),
    remainder=remainders,
    cuts=st.lists(st.floats(0.0, 1.0), min_size=1, max_size=8),
    settle_after=st.integers(0, 8),
)
def test_refund_sequences_reverse_exactly_and_the_books_balance(
    amount: int,
    rate: dict[str, int],
    remainder: str,
    cuts: list[float],
    settle_after: int,
) -> None:
    """Pay, refund in random pieces (settling somewhere in between), until fully refunded."""
    shares = split_amount(amount, rate, remainder)
    receivers = {role: RECEIVERS[role] for role in shares}
    balances: dict[str, int] = defaultdict(int)

    def book(postings: tuple[tuple[str, str, int], ...]) -> None:
        assert_balanced(postings)
        for account, _asset, value in postings:
            balances[account] += value
        assert sum(balances.values()) == 0  # the trial balance, after every event

    book(payment_postings("S-1", amount, shares, receivers))
    refunded = 0
    reversed_total = dict.fromkeys(shares, 0)
    settled = False
    pieces = [max(1, int(c * amount)) for c in cuts] + [amount]  # the last refunds the rest
    for step, piece in enumerate(pieces):
        if step == settle_after and not settled:
            net = {r: shares[r] - reversed_total[r] for r in shares}
            book(settlement_postings(net, receivers))
            settled = True
        refund = min(piece, amount - refunded)
        if refund == 0:
            break
        delta = reversal(shares, amount, refunded, refund, remainder)
        assert sum(delta.values()) == refund
        book(refund_postings("S-1", refund, delta, receivers, settled))
        refunded += refund
        for role in shares:
            reversed_total[role] += delta[role]
            assert 0 <= reversed_total[role] <= shares[role]  # never beyond what was booked
        expected = reversed_in_all(shares, amount, refunded, remainder)
        assert reversed_total == expected
        others = [r for r in shares if r != remainder]
        floors = {r: shares[r] * refunded // amount for r in others}
        if refunded - sum(floors.values()) <= shares[remainder]:
            # API.md's formula exactly (the usual case): floor(share * R / P) in all
            assert all(reversed_total[r] == floors[r] for r in others)
        else:
            # the rest would exceed the remainder's share: at most one fen more each
            assert all(floors[r] <= reversed_total[r] <= floors[r] + 1 for r in others)
    assert refunded == amount
    assert reversed_total == shares  # a full refund returns every share exactly
    assert balances["world:payments"] == 0
    for role, receiver in receivers.items():
        income = balances[f"partner:{receiver}:pending"] + balances[f"partner:{receiver}:available"]
        assert income == 0, role
    assert balances["store:S-1:collected"] == 0


def test_tiny_amounts_never_reverse_the_remainder_beyond_its_share() -> None:
    """3 fen split 1/1/1 with the remainder's share rounded to 1: the formula alone would
    reverse 2 fen of the remainder's 1 after refunding 2."""
    shares = {"distributor": 1, "dealer": 1, "store": 1}
    after_two = reversed_in_all(shares, 3, 2, "store")
    assert after_two["store"] <= 1 and sum(after_two.values()) == 2
    assert reversed_in_all(shares, 3, 3, "store") == shares


def test_postings_that_do_not_balance_are_refused() -> None:
    with pytest.raises(Unbalanced):
        assert_balanced([("world:payments", "CNY", -100), ("store:S:collected", "CNY", 99)])
    with pytest.raises(Unbalanced):
        assert_balanced([("world:payments", "CNY", 1.5)])  # type: ignore[list-item]


def _policy(**changes: object) -> SplitPolicy:
    base: dict[str, object] = {
        "policy_id": "P-1",
        "fulfilment": Fulfilment.HQ_DROPSHIP,
        "rates": RateSet(
            {"distributor": 1000, "store": 3000, "dealer": 2000, "brand": 4000},
            {"store": 4000, "dealer": 2000, "brand": 4000},
        ),
        "remainder_to": "brand",
        "return_window_days": 7,
        "effective_from": datetime(2024, 1, 1, tzinfo=UTC),
    }
    base.update(changes)
    return SplitPolicy(**base)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        (
            {"rates": RateSet({"store": 9999, "brand": 1}, {"store": 9000})},
            "rates_bp_without_distributor",
        ),
        (
            {"rates": RateSet({"store": 5000, "brand": 4000}, {"store": 9000, "brand": 1000})},
            "rates_bp",
        ),
        ({"rates": RateSet({"owner": 10000}, {"brand": 10000})}, "rates_bp"),
        ({"rates": RateSet({"store": -1, "brand": 10001}, {"brand": 10000})}, "rates_bp"),
        (
            {
                "rates": RateSet(
                    {"distributor": 1, "brand": 9999}, {"distributor": 1, "brand": 9999}
                )
            },
            "rates_bp_without_distributor",
        ),
        ({"remainder_to": "distributor"}, "remainder_to"),
        ({"return_window_days": -1}, "return_window_days"),
        ({"policy_id": "bad id"}, "policy_id"),
    ],
)
def test_invalid_policies_are_refused_naming_the_field(
    changes: dict[str, object], field: str
) -> None:
    with pytest.raises(InvalidInput) as refused:
        _policy(**changes)
    assert refused.value.errors[0].field == field


def test_a_valid_policy_with_overrides() -> None:
    from domain.splits import Override

    policy = _policy(
        window_days_by_category={"bakery": 0},
        overrides=(
            Override(
                None, "bakery", RateSet({"store": 10000, "brand": 0}, {"store": 10000, "brand": 0})
            ),
        ),
    )
    assert policy.window_days(["bakery"]) == 0
    assert policy.window_days(["bakery", "general"]) == 7
    assert policy.rates_for("CAKE", "bakery").with_distributor["store"] == 10000


def test_a_distributor_level_sets_only_its_own_rate() -> None:
    from domain.splits import Fulfilment, default_policy, split_amount, with_distributor_rate

    base = default_policy(Fulfilment.HQ_DROPSHIP)
    richer = with_distributor_rate(base, 1500)
    assert richer.rates.with_distributor == {
        "distributor": 1500,
        "store": 3000,
        "dealer": 2000,
        "brand": 3500,
    }
    assert richer.rates.without_distributor == base.rates.without_distributor
    assert split_amount(10_000, richer.rates.with_distributor, richer.remainder_to) == {
        "distributor": 1500,
        "store": 3000,
        "dealer": 2000,
        "brand": 3500,
    }
    capped = with_distributor_rate(base, 9000)  # more than distributor + remainder hold
    assert capped.rates.with_distributor["distributor"] == 5000
    assert capped.rates.with_distributor["brand"] == 0
    store_stock = with_distributor_rate(default_policy(Fulfilment.PICKUP), 500)
    assert store_stock.rates.with_distributor == {"distributor": 500, "store": 9500}
