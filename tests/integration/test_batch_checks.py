"""A read model's invariant checks run once every read model has written the batch
(``check``), and a broken one still fails the whole batch: on the real stores, no
read model keeps a row of it and no position moves."""

from __future__ import annotations

from datetime import UTC, datetime
from uuid import uuid4

import pytest

from domain.members import Member
from projections.store import Store

T0 = datetime(2026, 3, 1, 8, 0, tzinfo=UTC)


def _count(store: Store, sql: str, *params: object) -> int:
    with store.views.read() as tx:
        row = tx.fetchone(sql, params)
    assert row is not None
    return int(row[0])


def test_a_broken_points_invariant_fails_the_whole_batch(store: Store) -> None:
    member = Member.join(uuid4(), "scan", None, None, by="test", at=T0)
    member.earn("lot-1", 10, "scan", "a scan", by="test", at=T0)
    store.ledger.save(member)
    store.engine.catch_up()
    member_id = str(member.id)
    assert _count(store, "SELECT points FROM members WHERE member_id = ?", member_id) == 10

    # The view's lots no longer add up to the member's points (tampered with).
    with store.views.write() as tx:
        tx.execute(
            "UPDATE member_lots SET remaining = remaining + 5 WHERE member_id = ?", (member_id,)
        )
    before = store.engine.position()
    newcomer = Member.join(uuid4(), "scan", None, None, by="test", at=T0)
    member.earn("lot-2", 3, "scan", "another scan", by="test", at=T0)
    store.ledger.save(newcomer, member)

    with pytest.raises(AssertionError, match="do not add up"):
        store.engine.catch_up()
    assert store.engine.position() == before, "no read model's position moved"
    assert _count(store, "SELECT COUNT(*) FROM members WHERE member_id = ?", str(newcomer.id)) == 0
    assert _count(store, "SELECT points FROM members WHERE member_id = ?", member_id) == 10
    entries = "SELECT COUNT(*) FROM points_entries WHERE member_id = ?"
    assert _count(store, entries, member_id) == 1, "points history kept none of the batch"
    assert _count(store, "SELECT COUNT(*) FROM time_index WHERE position > ?", before) == 0

    # Mended, the same batch applies.
    with store.views.write() as tx:
        tx.execute(
            "UPDATE member_lots SET remaining = remaining - 5 WHERE member_id = ?", (member_id,)
        )
    store.engine.catch_up()
    assert _count(store, "SELECT points FROM members WHERE member_id = ?", member_id) == 13
    assert _count(store, entries, member_id) == 2
    assert store.engine.position() == store.head


def test_each_member_row_carries_its_last_events_position(store: Store) -> None:
    """A member whose points moved gets its sums and its position in one update; one whose
    points did not move, its position alone: both end at their own last event."""
    earner = Member.join(uuid4(), "scan", None, None, by="test", at=T0)
    earner.earn("lot-1", 4, "scan", "a scan", by="test", at=T0)
    binder = Member.join(uuid4(), "scan", None, None, by="test", at=T0)
    binder.bind("S-1", "first scan", by="test", at=T0)
    store.ledger.save(earner, binder)
    earner.earn("lot-2", 6, "scan", "another scan", by="test", at=T0)
    store.ledger.save(earner)
    store.engine.catch_up()

    def last_position(member: Member) -> int:
        position = store.ledger.position_of(member.id, member.version)
        assert position is not None
        return position

    row = "SELECT points, position FROM members WHERE member_id = ?"
    with store.views.read() as tx:
        assert tx.fetchone(row, (str(earner.id),)) == (10, last_position(earner))
        assert tx.fetchone(row, (str(binder.id),)) == (0, last_position(binder))
    assert last_position(earner) == store.head
