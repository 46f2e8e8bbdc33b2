"""The chain's link formula, checkpoint signatures, and the monotonic time index."""

from __future__ import annotations

import hashlib
import sqlite3
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID, uuid4

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from projections.chain import (
    GENESIS,
    HashChain,
    Notary,
    chain_head,
    hash_of,
    latest_checkpoint,
    link_hash,
    signature_valid,
)
from projections.time_index import TimeIndex, position_at, position_at_in_log
from projections.verify import postings_of
from projections.views import SqliteTx

T0 = datetime(2025, 3, 1, 2, 0, tzinfo=UTC)


@dataclass(frozen=True)
class Stored:
    originator_id: UUID
    originator_version: int
    topic: str
    state: bytes
    id: int = 0


def stored(at: datetime, position: int = 0, body: str = "x") -> Stored:
    state = f'{{"timestamp":"{at.isoformat()}","body":"{body}"}}'.encode()
    return Stored(uuid4(), 1, "siyu.Test.Happened", state, position)


def memory_tx(*projections: object) -> SqliteTx:
    conn = sqlite3.connect(":memory:", isolation_level=None)
    tx = SqliteTx(conn)
    for p in projections:
        for ddl in [*p.tables.values(), *p.indexes]:  # type: ignore[attr-defined]
            tx.execute(ddl)
    return tx


def test_every_field_changes_the_link() -> None:
    aggregate = uuid4()
    base = (GENESIS, 7, aggregate, 2, "siyu.A.B", "2025-01-01T00:00:00Z", b'{"a":1}')
    reference = link_hash(*base)
    assert len(reference) == 32 and reference == link_hash(*base)
    for i, other in enumerate(
        [bytes([1]) * 32, 8, uuid4(), 3, "siyu.A.C", "2025-01-01T00:00:01Z", b'{"a":2}']
    ):
        changed: list[Any] = list(base)
        changed[i] = other
        assert link_hash(*changed) != reference, f"field {i} is covered"
    # length prefixes: moving bytes between topic and time is not the same link
    assert link_hash(GENESIS, 1, aggregate, 1, "ab", "c", b"") != link_hash(
        GENESIS, 1, aggregate, 1, "a", "bc", b""
    )


def test_links_are_the_documented_formula_and_never_change() -> None:
    """Stored chains are verified against links computed now: the bytes hashed are the
    module docstring's (and docs/decisions/audit.md's), pinned by two known links."""
    aggregate = UUID("12345678-1234-5678-1234-567812345678")
    topic, at, state = "siyu.Unit.Shipped", "2026-11-30T10:00:00+00:00", b'{"a":1}'

    def field(data: bytes) -> bytes:
        return len(data).to_bytes(4, "big") + data

    fed = (
        GENESIS + (42).to_bytes(8, "big") + aggregate.bytes + (3).to_bytes(8, "big")
        + field(topic.encode()) + field(at.encode()) + field(state)
    )  # fmt: skip
    link = link_hash(GENESIS, 42, aggregate, 3, topic, at, state)
    assert link == hashlib.sha256(fed).digest()
    assert link.hex() == "992fa86a2238ed8d012ea724c5f4535de0bfebb576cf8b0520b09657acd31db0"
    # an id that is not a UUID is hashed as its text
    other = link_hash(bytes(range(32)), 7, "not-a-uuid", 1, "siyu.X", "", b"")
    assert other.hex() == "ec42545a727c175abfba1b4c5ea3655d5ffa290675677b760457428eb84e8e92"


def test_the_chain_persists_every_link_and_signs_every_n() -> None:
    notary = Notary(Ed25519PrivateKey.generate(), every=2, clock=lambda: T0)
    chain = HashChain(notary)
    tx = memory_tx(chain)
    events = {p: stored(T0, p) for p in (1, 2, 4, 5, 6)}  # 3 is a natural gap
    prev = GENESIS
    for position, event in events.items():
        chain.apply(tx, event, position)
        prev = hash_of(prev, position, event)
    head = chain_head(tx)
    assert (head.position, head.seq, head.hash) == (6, 5, prev)
    assert [r[0] for r in tx.fetchall("SELECT position FROM audit_chain")] == [1, 2, 4, 5, 6]
    checkpoints = tx.fetchall("SELECT position, seq FROM audit_checkpoints ORDER BY position")
    assert checkpoints == [(2, 2), (5, 4)]
    latest = latest_checkpoint(tx)
    assert latest is not None and signature_valid(notary.public_key, latest)
    forged = type(latest)(**{**latest.__dict__, "hash": "00" * 32})
    assert not signature_valid(notary.public_key, forged)


def test_time_index_is_monotonic_with_out_of_order_stamps() -> None:
    index = TimeIndex()
    tx = memory_tx(index)
    seconds = {1: 10, 2: 12, 3: 11, 4: 15, 5: 13}  # stamps taken before commit
    for position, s in seconds.items():
        index.apply(tx, stored(T0 + timedelta(seconds=s)), position)

    def at(s: float) -> int:
        return position_at(tx, T0 + timedelta(seconds=s))

    assert at(9) == 0
    assert at(10) == 1
    # position 3 is stamped 11 but follows position 2 stamped 12: committed after 12
    assert at(11) == 1
    assert at(11.5) == 1
    assert at(12) == 3
    assert at(14.9) == 3
    assert at(15) == 5
    assert at(1000) == 5
    assert [at(s) for s in range(20)] == sorted(at(s) for s in range(20))


def test_time_index_from_the_log_gives_the_same_answer() -> None:
    seconds = [10, 12, 11, 15, 13]
    log = [stored(T0 + timedelta(seconds=s), i + 1) for i, s in enumerate(seconds)]

    class Recorder:
        def select_notifications(
            self, start: int, limit: int, inclusive_of_start: bool = True
        ) -> list[Stored]:
            return [n for n in log if n.id > start][:limit]

    index = TimeIndex()
    tx = memory_tx(index)
    for n in log:
        index.apply(tx, n, n.id)
    for s in [9, 10, 11, 12, 13, 14, 15, 16]:
        t = T0 + timedelta(seconds=s)
        assert position_at_in_log(Recorder(), t) == position_at(tx, t), s  # type: ignore[arg-type]


def test_a_new_transaction_reads_the_head_again() -> None:
    chain = HashChain()
    tx = memory_tx(chain)
    chain.apply(tx, stored(T0), 1)
    other = SqliteTx(tx._conn)  # another batch: the cached head must not be trusted
    tx._conn.execute("DELETE FROM audit_chain")
    chain.apply(other, stored(T0), 2)
    assert chain_head(other).seq == 1


@pytest.mark.parametrize(
    ("state", "expected"),
    [
        ({}, None),
        ({"postings": [["a", "CNY", 5], ["b", "CNY", -5]]}, [("a", "CNY", 5), ("b", "CNY", -5)]),
        ({"postings": [{"account": "a", "asset": "PTS", "amount": 1}]}, [("a", "PTS", 1)]),
    ],
)
def test_postings_are_read_in_either_shape(state: dict[str, Any], expected: object) -> None:
    assert postings_of(state) == expected
