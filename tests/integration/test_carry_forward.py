"""State carried forward (domain.carry_forward) on the real stores: a long-lived
aggregate is read from its newest carried-forward event on, in the same state a full
replay makes; a restatement that does not restate is refused when replayed."""

from __future__ import annotations

from typing import Any
from uuid import UUID

import pytest
from eventsourcing.persistence import StoredEvent

from domain.carry_forward import CarriedForwardMismatch, state_of
from domain.distributor_levels import DistributorStanding, credit_sale, standing_id
from domain.ledger import RequestKey, UnitOfWork
from projections import verify
from projections.store import Store
from projections.verify import Verifier

EVERY = DistributorStanding.CARRY_FORWARD_EVERY
PARTNER = "DIST-1"


def _sell(store: Store, sales: int, amount_fen: int = 1_000, tag: str = "sale") -> None:
    """``sales`` sales attributed to the distributor, each its own command."""
    for i in range(sales):
        key = RequestKey("test", "sale", f"{tag}-{i}", {"amount": amount_fen})

        def decide(uow: UnitOfWork, i: int = i) -> dict[str, Any]:
            credit_sale(uow, PARTNER, amount_fen, f"{tag}-order-{i}", "test")
            return {}

        store.ledger.execute(key, decide)


def _stream(store: Store, aggregate_id: UUID) -> list[StoredEvent]:
    return list(store.ledger.recorder.select_events(aggregate_id))


def _read(store: Store, aggregate_id: UUID) -> list[StoredEvent]:
    """What a command's first read fetches of the aggregate."""
    select_many = store.ledger.select_many
    assert select_many is not None, "the store reads many aggregates in one query"
    return select_many([aggregate_id, aggregate_id]).get(aggregate_id, [])


def test_a_long_lived_aggregate_is_read_from_its_state_carried_forward(store: Store) -> None:
    sales = 3 * EVERY + 5
    _sell(store, sales)
    sid = standing_id(PARTNER)
    stream = _stream(store, sid)
    carried = [e.originator_version for e in stream if e.topic.endswith(".CarriedForward")]
    # Opened, the sales, a promotion at 10,000 yuan (not reached), the restatements
    assert len(stream) == 1 + sales + len(carried)
    assert len(carried) == 3, carried
    assert all(b - a <= EVERY + 1 for a, b in zip([1, *carried], carried, strict=False))

    read = _read(store, sid)
    assert [e.originator_version for e in read] == list(range(carried[-1], len(stream) + 1))
    assert read[0].topic == DistributorStanding.CarriedForward.TOPIC

    loaded = store.ledger.load_many([sid])[sid]
    replayed = store.ledger.repository.get(sid)  # every event, the restatements checked
    assert isinstance(loaded, DistributorStanding)
    assert state_of(loaded) == state_of(replayed)
    assert loaded.sales_fen == sales * 1_000 and loaded.version == len(stream)
    assert loaded.created_on == replayed.created_on

    # a command decides on it as on the whole history: the next sales promote it once
    # the total crosses the senior threshold (1,000,000 fen)
    _sell(store, 1_000_000 // 1_000 - sales, tag="more")
    after = store.ledger.load_many([sid])[sid]
    assert isinstance(after, DistributorStanding)
    assert after.level == "senior" and after.sales_fen == 1_000_000
    assert len(_read(store, sid)) <= EVERY + 2
    assert state_of(store.ledger.repository.get(sid)) == state_of(after)


def test_a_restatement_that_does_not_restate_is_refused_on_replay(store: Store) -> None:
    _sell(store, 3)
    sid = standing_id(PARTNER)
    aggregate = store.ledger.repository.get(sid)
    aggregate.trigger_event(
        DistributorStanding.CarriedForward,
        timestamp=store.ledger.clock(),
        created_on=aggregate.created_on,
        **state_of(aggregate),
    )
    event = aggregate.collect_events()[0]
    wrong = DistributorStanding.CarriedForward(
        originator_id=event.originator_id,
        originator_version=event.originator_version,
        timestamp=event.timestamp,
        created_on=aggregate.created_on,
        partner=PARTNER,
        level="star",  # never reached
        sales_fen=aggregate.sales_fen,
        member_id=None,
    )
    [position] = store.ledger.commit_events([wrong])
    with pytest.raises(CarriedForwardMismatch, match="level"):
        store.ledger.repository.get(sid)
    # commands read from it (it is in the log, chained like any event): the audit's
    # verification names it
    loaded = store.ledger.load_many([sid])[sid]
    assert isinstance(loaded, DistributorStanding) and loaded.level == "star"
    report = Verifier(store, None).run(views=False)
    assert not report.ok and report.first_bad_position == position
    assert [(f.check, f.position) for f in report.findings] == [("carried_forward", position)]
    assert "level" in report.findings[0].detail


@pytest.mark.parametrize("page", [64, 3])
def test_the_verification_replays_every_state_carried_forward(
    store: Store, monkeypatch: pytest.MonkeyPatch, page: int
) -> None:
    """Each from the one before, found by reading back (a page of 3 reads back in many
    pages): a right history passes, a wrong middle restatement is named."""
    monkeypatch.setattr(verify._CarriedForward, "PAGE", page)
    _sell(store, 3 * EVERY + 1)
    report = Verifier(store, None).run(views=False)
    assert report.ok, report.findings
    assert "3 states carried forward restate their events" in report.notes

    replayed: list[tuple[int, int]] = []
    aggregate_from = store.ledger.aggregate_from

    def spying(stored: Any) -> Any:
        events = list(stored)
        replayed.append((events[0].originator_version, events[-1].originator_version))
        return aggregate_from(events)

    monkeypatch.setattr(store.ledger, "aggregate_from", spying)
    assert Verifier(store, None).run(views=False).ok
    carried = [
        e.originator_version
        for e in _stream(store, standing_id(PARTNER))
        if e.topic == DistributorStanding.CarriedForward.TOPIC
    ]
    assert replayed == list(zip([1, *carried[:-1]], carried, strict=True))
