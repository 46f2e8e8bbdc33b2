"""Every aggregate class that restates its state (domain.carry_forward) restates all of it,
and its restatement survives the event mapper: decoded and read first, it makes the same
aggregate, typed as before (dataclasses, enums, datetimes)."""

from __future__ import annotations

import copy
import importlib
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import uuid4

import pytest
from eventsourcing.domain import Aggregate

from domain.carry_forward import carry_forward_where_due, state_of
from domain.distributor_levels import DistributorStanding
from domain.draws import PrizeStock
from domain.encoding import EventMapper
from domain.members import Member
from domain.principal import Principal, Role
from domain.topics import STORED_TYPE_MODULES
from domain.withdrawals import PayoutAccount, WithdrawalStatus

NOW = datetime(2026, 11, 23, 8, 0, tzinfo=UTC)


def _standing() -> Aggregate:
    standing = DistributorStanding._create(
        DistributorStanding.Opened, id=uuid4(), timestamp=NOW, partner="R-1", level="starter"
    )
    standing.trigger_event(
        DistributorStanding.SaleCredited, timestamp=NOW, amount_fen=5_000, cause="o-1", by="t"
    )
    return standing


def _member() -> Aggregate:
    member = Member.join(uuid4(), "wechat", "310101", "13812345678", "t", NOW)
    for i in range(3):
        member.trigger_event(
            Member.PointsEarned,
            timestamp=NOW + timedelta(days=i),
            lot_id=f"lot-{i}",
            points=10,
            source="scan",
            cause=f"s-{i}",
            expires_at=NOW + timedelta(days=365),
            by="t",
        )
    return member


def _prize_stock() -> Aggregate:
    stock = PrizeStock._create(
        PrizeStock.Stocked, id=uuid4(), timestamp=NOW, campaign_id="c", prize_id="p", stock=5,
        by="t",
    )  # fmt: skip
    stock.award("d-1", "m-1", "t", NOW)
    return stock


def _payout_account() -> Aggregate:
    account = PayoutAccount.open("S-1", NOW)
    account.trigger_event(
        PayoutAccount.SettlementCredited, timestamp=NOW, run_id="r-1", orders=("o-1",), amount=900
    )
    account.request("w-1", 400, Principal(Role.STORE, "S-1", "HQ/D-1/S-1"), NOW)
    return account


MADE: dict[type, Callable[[], Aggregate]] = {
    DistributorStanding: _standing,
    Member: _member,
    PrizeStock: _prize_stock,
    PayoutAccount: _payout_account,
}


def _restating_classes() -> set[type]:
    found: set[type] = set()
    for name in STORED_TYPE_MODULES:
        module = importlib.import_module(name)
        for value in vars(module).values():
            if isinstance(value, type) and hasattr(value, "CARRY_FORWARD_EVERY"):
                found.add(value)
    return found


def test_every_class_that_restates_is_checked_here() -> None:
    assert _restating_classes() == set(MADE)


@pytest.mark.parametrize("cls", list(MADE), ids=lambda c: c.__name__)
def test_a_restatement_names_every_attribute_and_survives_the_mapper(cls: type) -> None:
    aggregate: Any = MADE[cls]()
    state = state_of(aggregate)
    assert set(state) == set(cls.CarriedForward.state_fields())  # type: ignore[attr-defined]
    aggregate.collect_events()
    aggregate.trigger_event(
        cls.CarriedForward,  # type: ignore[attr-defined]
        timestamp=NOW,
        created_on=aggregate.created_on,
        **copy.deepcopy(state),
    )
    [event] = aggregate.collect_events()
    mapper = EventMapper()
    made = mapper.to_domain_event(mapper.to_stored_event(event)).mutate(None)
    assert type(made) is cls and made.id == aggregate.id and made.version == aggregate.version
    assert state_of(made) == state_of(aggregate) and made.created_on == aggregate.created_on
    if cls is PayoutAccount:
        assert made.withdrawals == {"w-1": [400, WithdrawalStatus.REQUESTED]}
        assert isinstance(made.withdrawals["w-1"][1], WithdrawalStatus)


def test_a_restatement_is_due_once_per_multiple() -> None:
    """Whatever the command's size: after a command that crosses a multiple, and again
    only after the next (events not yet saved may already hold one)."""
    standing: Any = _standing()
    every = DistributorStanding.CARRY_FORWARD_EVERY
    for _ in range(3 * every):
        standing.trigger_event(
            DistributorStanding.SaleCredited, timestamp=NOW, amount_fen=1, cause="o", by="t"
        )
        carry_forward_where_due([standing], NOW)
    carried = [
        e.originator_version
        for e in standing.collect_events()
        if isinstance(e, DistributorStanding.CarriedForward)
    ]
    assert carried == [every + 1, 2 * every + 1, 3 * every + 1]
    for _ in range(every + 5):  # one command of more than ``every`` events: one, at its end
        standing.trigger_event(
            DistributorStanding.SaleCredited, timestamp=NOW, amount_fen=1, cause="o", by="t"
        )
    carry_forward_where_due([standing], NOW)
    carry_forward_where_due([standing], NOW)  # (already carried: not again)
    command = standing.collect_events()
    assert [isinstance(e, DistributorStanding.CarriedForward) for e in command] == [
        *[False] * (every + 5),
        True,
    ]
