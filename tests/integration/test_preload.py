"""A command's reads fetched in one query (``UnitOfWork.preload``), on the real stores:
the same aggregates as one ``Repository.get`` each, absent ones known to be absent, and
no further query for what was preloaded."""

from __future__ import annotations

from typing import Any
from uuid import uuid4

import pytest

from domain.channel import Partner, PartnerKind, PartnerSpec
from domain.handlers import channel
from domain.identity import partner_id
from domain.ledger import UnitOfWork
from domain.principal import hq_admin
from projections.store import Store


def _state(aggregate: Any) -> dict[str, Any]:
    return {k: v for k, v in vars(aggregate).items() if k != "_pending_events"}


def test_preloaded_aggregates_are_those_the_repository_reads(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    ledger, hq = store.ledger, hq_admin()
    codes = [f"D{i}" for i in range(5)]
    for code in codes:
        channel.register_partner(
            ledger, hq, PartnerSpec(code, PartnerKind.DEALER, "HQ", code, ("31",))
        )
    channel.update_territory(ledger, hq, "D0", "t1", ("31", "3201"))  # a version 2
    ids = [partner_id(c) for c in codes]
    missing = uuid4()
    expected = {i: _state(ledger.repository.get(i)) for i in ids}

    uow = UnitOfWork(ledger)
    uow.preload([*ids, missing, ids[0]])

    def no_more_queries(*_args: Any, **_kwargs: Any) -> Any:
        raise AssertionError("a preloaded aggregate was read again")

    monkeypatch.setattr(ledger.repository, "get", no_more_queries)
    for i in ids:
        found = uow.find(Partner, i)
        assert found is not None and _state(found) == expected[i]
    assert uow.get(Partner, ids[0], "partner").region_codes == ("31", "3201")
    assert uow.find(Partner, missing) is None, "known absent, without a query"


def test_an_aggregate_added_after_it_was_found_absent_is_found(store: Store) -> None:
    uow = UnitOfWork(store.ledger)
    code = "NEW-DEALER"
    uow.preload([partner_id(code)])
    assert uow.find(Partner, partner_id(code)) is None
    hq = uow.partner("HQ")
    assert hq.code == "HQ"
    created = Partner.register(
        PartnerSpec(code, PartnerKind.DEALER, "HQ", code, ("31",)), hq, hq_admin(), uow.now
    )
    uow.add(created)
    assert uow.find(Partner, partner_id(code)) is created


def test_many_events_positions_in_one_lookup_are_each_ones_position(store: Store) -> None:
    """``Ledger.positions_of`` (the alerts' evidence, a batch at a time): the position of
    every stored event asked for, as ``position_of`` answers it one by one, and nothing
    for an event that is not stored (an unknown aggregate, a version not reached)."""
    ledger, hq = store.ledger, hq_admin()
    for code in ("D0", "D1"):
        channel.register_partner(
            ledger, hq, PartnerSpec(code, PartnerKind.DEALER, "HQ", code, ("31",))
        )
    channel.update_territory(ledger, hq, "D1", "t1", ("31", "3201"))
    stored = [(partner_id("D0"), 1), (partner_id("D1"), 1), (partner_id("D1"), 2)]
    asked = [*stored, (partner_id("D0"), 2), (uuid4(), 1)]
    found = ledger.positions_of(asked)
    assert found == {event: ledger.position_of(*event) for event in stored}
    assert len(set(found.values())) == 3 and ledger.positions_of([]) == {}
