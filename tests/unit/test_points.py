"""Points as lots, tiers, payments and refunds, draws: the rules on the aggregate itself.

A property test runs random sequences of credits, spends, reversals and the passing of
time against a plain model, re-checking every invariant after every operation (as
Blnk's invariant fuzz test does): the balance is the lots minus the debt; a spend never
overdraws and takes the earliest expiry first; only a reversal leaves a debt; a credit
pays a debt back first; expired lots are never spent.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from domain.draws import (
    CampaignSpec,
    DrawRecord,
    Prize,
    commitment,
    outcome,
    roll,
    server_seed,
    verify,
)
from domain.errors import InvalidInput
from domain.members import Member
from domain.point_rules import DEFAULT_RULES, PointRuleSet, points_for_payment, reverse_for_refund
from domain.points import InsufficientPoints, earn, expire_due, reverse, spend
from domain.tiers import DEFAULT_TIERS, evaluate, upgrade_if_crossed

T0 = datetime(2026, 1, 1, tzinfo=UTC)
BY = "test"


def new_member() -> Member:
    return Member.join(uuid.uuid4(), "scan", None, None, BY, T0)


# -- the property test ---------------------------------------------------------------------

operations = st.lists(
    st.one_of(
        st.tuples(st.just("earn"), st.integers(1, 500), st.integers(1, 400)),
        st.tuples(st.just("spend"), st.integers(1, 600), st.just(0)),
        st.tuples(st.just("reverse"), st.integers(1, 600), st.just(0)),
        st.tuples(st.just("wait"), st.integers(1, 200), st.just(0)),
    ),
    max_size=40,
)


@settings(max_examples=150, deadline=None)
@given(operations)
def test_invariants_hold_after_every_operation(ops: list[tuple[str, int, int]]) -> None:
    member = new_member()
    history = list(member.collect_events())
    now = T0
    lots: dict[str, list[Any]] = {}  # lot id -> [remaining, expires_at, seq]
    debt = 0
    for step, (op, n, days) in enumerate(ops):
        live = sorted(
            (k for k, v in lots.items() if v[1] > now and v[0] > 0),
            key=lambda k: (lots[k][1], lots[k][2]),
        )
        available = sum(lots[k][0] for k in live)
        if op == "spend" and (debt > 0 or available < n):
            with pytest.raises(InsufficientPoints):
                spend(member, f"s-{step}", n, "redemption", "test", BY, now)
            member = _replay(history)  # a refused spend records nothing
            continue
        lots = {k: v for k, v in lots.items() if v[1] > now}  # what is due expires first
        if op == "earn":
            lot_id = f"lot-{step}"
            earn(member, lot_id, n, "adjustment", "test", BY, now, lifetime=timedelta(days=days))
            paid = min(debt, n)
            lots[lot_id] = [n - paid, now + timedelta(days=days), step]
            debt -= paid
        elif op == "spend":
            taken = spend(member, f"s-{step}", n, "redemption", "test", BY, now)
            assert list(taken) == _take(lots, live, n)[0], "earliest expiry first, each lot named"
        elif op == "reverse":
            added = reverse(member, f"r-{step}", n, "refund", "test", BY, now)
            left = _take(lots, live, n)[1]
            assert added == left == max(0, n - available)
            debt += left
        else:
            now += timedelta(days=n)
            expire_due(member, BY, now)
            lots = {k: v for k, v in lots.items() if v[1] > now}
        history += member.collect_events()
        lots = {k: v for k, v in lots.items() if v[0] > 0}
        wallet = member.loyalty.wallet
        assert wallet.debt == debt
        assert member.points == wallet.balance == sum(v[0] for v in lots.values()) - debt
        assert {k: lot.remaining for k, lot in wallet.lots.items()} == {
            k: v[0] for k, v in lots.items()
        }
        assert member.points >= 0 or debt > 0, "only a reversal leaves a negative balance"
        assert debt == 0 or not wallet.lots, "a debt exists only when no lot is left"
        replayed = _replay(history)  # the events alone rebuild the same wallet
        assert (replayed.points, replayed.loyalty.wallet.debt) == (member.points, debt)


def _take(lots: dict[str, list[Any]], live: list[str], n: int) -> tuple[list[Any], int]:
    taken, left = [], n
    for k in live:
        give = min(lots[k][0], left)
        if give:
            taken.append((k, give))
            lots[k][0] -= give
            left -= give
    return taken, left


def _replay(history: list[Any]) -> Member:
    member: Any = None
    for e in history:
        member = e.mutate(member)
    assert isinstance(member, Member)
    return member


# -- tiers ---------------------------------------------------------------------------------


def test_upgrade_at_the_crossing_and_downgrade_only_at_a_yearly_evaluation() -> None:
    member = new_member()
    earn(member, "a", 999, "adjustment", "t", BY, T0)
    assert not upgrade_if_crossed(member, DEFAULT_TIERS, "t", BY, T0)
    earn(member, "b", 1, "adjustment", "t", BY, T0)
    assert upgrade_if_crossed(member, DEFAULT_TIERS, "t", BY, T0)
    assert member.loyalty.tier == "silver"
    assert not evaluate(member, DEFAULT_TIERS, BY, T0 + timedelta(days=200)), "held < a year"
    later = T0 + timedelta(days=366)
    assert evaluate(member, DEFAULT_TIERS, BY, later), "no growth in the last 365 days"
    assert member.loyalty.tier == "bronze"
    assert member.growth == 1000, "growth is never reduced by the downgrade"


def test_evaluation_keeps_a_tier_still_earned() -> None:
    member = new_member()
    earn(member, "a", 1200, "adjustment", "t", BY, T0)
    upgrade_if_crossed(member, DEFAULT_TIERS, "t", BY, T0)
    earn(member, "b", 1000, "adjustment", "t", BY, T0 + timedelta(days=300))
    assert not evaluate(member, DEFAULT_TIERS, BY, T0 + timedelta(days=366))
    assert member.loyalty.tier == "silver"


# -- payments and refunds ---------------------------------------------------------------------


def test_payment_points_and_growth_and_the_multiplier() -> None:
    member = new_member()
    rules = PointRuleSet(points_per_yuan=2)
    points = points_for_payment(member, DEFAULT_TIERS, rules, 60_050, "o-1", "p-1", BY, T0)
    assert points == 1200 and member.points == 1200  # 600 whole yuan x 2
    assert member.growth == 1200 + 600, "every point earned and every yuan paid"
    assert member.loyalty.tier == "silver"
    again = points_for_payment(member, DEFAULT_TIERS, rules, 10_000, "o-2", "p-2", BY, T0)
    assert again == 240, "1.2x from the next credit"


@settings(max_examples=60, deadline=None)
@given(
    st.integers(100, 1_000_000),
    st.lists(st.integers(1, 400_000), min_size=1, max_size=6),
    st.booleans(),
)
def test_refunds_reverse_in_proportion_and_a_full_refund_exactly(
    paid: int, parts: list[int], spend_first: bool
) -> None:
    member = new_member()
    earned = points_for_payment(member, DEFAULT_TIERS, DEFAULT_RULES, paid, "o", "p", BY, T0)
    growth_before = member.growth
    if spend_first and earned:
        spend(member, "s", earned, "redemption", "t", BY, T0)
    refunded, points_back, growth_back = 0, 0, 0
    for i, asked in enumerate(parts):
        part = min(asked, paid - refunded)
        if part == 0:
            break
        refunded += part
        p, g = reverse_for_refund(member, "o", f"r{i}", refunded, paid, BY, T0)
        points_back += p
        growth_back += g
        assert points_back == earned * refunded // paid
    p, g = reverse_for_refund(member, "o", "final", paid, paid, BY, T0)
    points_back += p
    growth_back += g
    assert points_back == earned and member.growth == 0 and growth_back == growth_before
    if spend_first:
        assert member.points == -earned and member.loyalty.wallet.debt == earned
        with pytest.raises(InsufficientPoints) as refused:  # says the balance shown
            spend(member, "owed", 1, "redemption", "t", BY, T0)
        assert f"has {-earned} points" in refused.value.detail
        assert f"took back {earned} points already spent" in refused.value.detail
        earn(member, "later", earned + 5, "adjustment", "t", BY, T0)
        assert member.points == 5 and member.loyalty.wallet.debt == 0, "a debt is recovered"
    else:
        assert member.points == 0


def test_daily_cap() -> None:
    member = new_member()
    rules = PointRuleSet(points_per_yuan=1, daily_cap=150)
    assert points_for_payment(member, DEFAULT_TIERS, rules, 10_000, "o1", "p", BY, T0) == 100
    assert points_for_payment(member, DEFAULT_TIERS, rules, 10_000, "o2", "p", BY, T0) == 50
    assert points_for_payment(member, DEFAULT_TIERS, rules, 10_000, "o3", "p", BY, T0) == 0
    next_day = T0 + timedelta(days=1)
    assert points_for_payment(member, DEFAULT_TIERS, rules, 10_000, "o4", "p", BY, next_day) == 100


# -- draws ---------------------------------------------------------------------------------


PRIZES = (Prize("a", "A", 100, 100_000, 5), Prize("b", "B", 100, 400_000, 5))


def test_outcomes_are_a_function_of_the_seeds_and_the_counter() -> None:
    seed = server_seed(b"k" * 32, "c")
    assert server_seed(b"k" * 32, "c") == seed and server_seed(b"k" * 32, "d") != seed
    assert len(commitment(seed)) == 64
    rolls = [roll(seed, "c", "m", "cs", n) for n in range(2000)]
    assert rolls == [roll(seed, "c", "m", "cs", n) for n in range(2000)]
    assert roll(seed, "c", "m", "other", 0) != rolls[0] or roll(seed, "c", "m", "x", 1) != rolls[1]
    won = counts_of([outcome(PRIZES, r) for r in rolls])
    assert 120 < won["a"] < 280 and 700 < won["b"] < 900, won  # 10% and 40% of 2,000


def counts_of(items: list[str | None]) -> dict[str | None, int]:
    counts: dict[str | None, int] = {}
    for i in items:
        counts[i] = counts.get(i, 0) + 1
    return counts


def test_verification_recomputes_and_a_changed_seed_fails() -> None:
    seed = server_seed(b"k" * 32, "c")
    records = []
    for n in range(50):
        r = roll(seed, "c", "m", "cs", n)
        records.append(DrawRecord(n, "m", f"d{n}", n, "cs", r, outcome(PRIZES, r), False))
    good = verify("c", PRIZES, commitment(seed), seed, records)
    assert good.ok and good.checked == 50
    other = server_seed(b"j" * 32, "c")
    bad = verify("c", PRIZES, commitment(seed), other, records)
    assert not bad.ok and not bad.seed_matches
    tampered = [*records[:-1], DrawRecord(49, "m", "d49", 49, "cs", 1, "a", True)]
    assert not verify("c", PRIZES, commitment(seed), seed, tampered).ok


def test_the_legal_cap_on_a_prize() -> None:
    with pytest.raises(InvalidInput):
        CampaignSpec("c", "c", 1, (Prize("top", "car", 5_000_001, 1, 1),))
    CampaignSpec("c", "c", 1, (Prize("top", "car", 5_000_000, 1, 1),))
