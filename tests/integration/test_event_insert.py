"""The ledger's recorder inserts events as it reads them back, on both stores: bytes and
text exactly as given (quotes, backslashes, braces, non-ASCII, NUL), in the order given,
and the positions it returns are the rows' (PostgreSQL sends four arrays in binary,
not eventsourcing's composite array)."""

from __future__ import annotations

from uuid import uuid4

import pytest
from eventsourcing.persistence import IntegrityError, StoredEvent

from projections.store import Store

AWKWARD = [
    b'{"a":"quote \\" backslash \\\\ braces {},() comma"}',
    '{"name":"上海经销商 Dealer \\u0000"}'.encode(),
    b"\x00\x01\xff not JSON at all",
    b"",
]


def test_events_come_back_as_inserted_with_their_positions(store: Store) -> None:
    recorder = store.ledger.recorder
    ids = [uuid4(), uuid4()]
    events = [
        StoredEvent(ids[i % 2], i // 2 + 1, f"siyu.Test.Event{i},\"{{}}'", state)
        for i, state in enumerate(AWKWARD * 3)
    ]
    positions = recorder.insert_events(events)
    assert positions is not None and len(positions) == len(events)
    assert positions == sorted(positions), "in the order given"
    back = recorder.select_notifications(positions[0], len(events))
    assert [n.id for n in back] == positions
    for n, e in zip(back, events, strict=True):
        assert (n.originator_id, n.originator_version, n.topic) == (
            e.originator_id,
            e.originator_version,
            e.topic,
        )
        assert bytes(n.state) == e.state


def test_a_version_taken_fails_the_whole_insert(store: Store) -> None:
    recorder = store.ledger.recorder
    aggregate = uuid4()
    head = recorder.max_notification_id() or 0
    recorder.insert_events([StoredEvent(aggregate, 1, "siyu.Test.A", b"{}")])
    with pytest.raises(IntegrityError):
        recorder.insert_events(
            [
                StoredEvent(uuid4(), 1, "siyu.Test.B", b"{}"),
                StoredEvent(aggregate, 1, "siyu.Test.A", b"{}"),
            ]
        )
    assert (recorder.max_notification_id() or 0) == head + 1, "nothing of it written"
