"""On PostgreSQL an idle projection engine waits for the notification of new events
instead of asking for the head 50 times a second: it looks rarely while nothing
happens, applies a write at once, and stops at once."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest

from domain.handlers.members import member_uuid
from domain.ledger import RequestKey, UnitOfWork
from domain.members import Member
from projections.store import Store

pytestmark = pytest.mark.postgres
QUIET_S = 1.5
IDLE_CHECK_S = 60.0  # longer than any wait below: only a notification wakes the engine


@pytest.fixture
def store(pg_url: str) -> Iterator[Store]:
    opened = Store.open(pg_url)
    opened.engine.idle_check_s = IDLE_CHECK_S
    try:
        yield opened
    finally:
        opened.close()


def _join(store: Store, external_id: str) -> int:
    key = RequestKey("test", "join", external_id, {"member": external_id})

    def decide(uow: UnitOfWork) -> dict[str, Any]:
        uid = member_uuid(uow, external_id)
        uow.add(Member.join(uid, "test", None, None, "test", uow.now))
        return {"member_id": str(uid)}

    return store.ledger.execute(key, decide).position


def test_an_idle_engine_waits_for_new_events_and_applies_them_at_once(store: Store) -> None:
    engine, wakeups = store.engine, store.engine.wakeups
    assert wakeups is not None, "PostgreSQL engines listen"
    engine.start()
    try:
        assert engine.wait_for(store.head, timeout_s=5)
        time.sleep(0.3)  # the follower's look that found nothing new, then its wait
        before = engine.idle_checks
        time.sleep(QUIET_S)
        # polling every 20 ms would have looked about 75 times
        assert engine.idle_checks - before <= 1

        position = _join(store, "woken-1")
        started = time.monotonic()
        assert engine.wait_for(position, timeout_s=5), "applied without waiting 60 s"
        assert time.monotonic() - started < 5
        assert wakeups.received >= 1
    finally:
        started = time.monotonic()
        engine.stop()
        stopped_in = time.monotonic() - started
    assert stopped_in < 5, "stop wakes the waiting follower"


def test_without_its_listening_connection_the_engine_still_follows(store: Store) -> None:
    """A broken LISTEN connection: the follower reopens it at its next wait."""
    engine, wakeups = store.engine, store.engine.wakeups
    assert wakeups is not None
    engine.idle_check_s = 0.2
    engine.start()
    try:
        wakeups.close()  # as if the server had dropped it
        position = _join(store, "woken-2")
        assert engine.wait_for(position, timeout_s=5)
        assert engine.last_error is None
    finally:
        engine.stop()
