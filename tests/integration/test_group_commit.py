"""Group commit on the real stores: concurrent commands share transactions, and a
conflicting command in a group neither fails the others nor loses its own write."""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from typing import Any

from domain.channel import PartnerKind, PartnerSpec
from domain.group_commit import GroupCommitter
from domain.handlers import channel
from domain.identity import partner_id
from domain.principal import hq_admin
from projections.store import Store

THREADS = 24


def slow_put(store: Store, delay_s: float) -> None:
    """The real save, slowed: while a leader saves, the other threads must queue up."""
    put = store.ledger.insert

    def slowed(events: Sequence[Any], writes: Sequence[Any]) -> Any:
        time.sleep(delay_s)
        return put(events, writes)

    store.ledger.committer = GroupCommitter(slowed)


def run_all(jobs: list[Any]) -> list[Any]:
    results: list[Any] = [None] * len(jobs)
    start = threading.Barrier(len(jobs))

    def run(i: int) -> None:
        start.wait()
        try:
            results[i] = jobs[i]()
        except Exception as e:  # collected and asserted on below
            results[i] = e

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(jobs))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    return results


def dealer(code: str) -> PartnerSpec:
    return PartnerSpec(code, PartnerKind.DEALER, "HQ", f"dealer {code}", ("31",))


def test_concurrent_commands_share_transactions(store: Store) -> None:
    slow_put(store, 0.05)
    ledger, hq = store.ledger, hq_admin()
    jobs = [
        lambda i=i: channel.register_partner(ledger, hq, dealer(f"D{i}")) for i in range(THREADS)
    ]
    outcomes = run_all(jobs)
    assert not [o for o in outcomes if isinstance(o, Exception)]
    positions = [o.position for o in outcomes]
    assert len(set(positions)) == THREADS, "every command has its own last position"
    assert ledger.committer.jobs == THREADS
    assert ledger.committer.commits < THREADS, "concurrent commands were grouped"
    for o in outcomes:  # each answer's position is its own request record's position
        again = channel.register_partner(ledger, hq, dealer(o.answer["code"]))
        assert again.repeated and again.position == o.position


def test_a_conflict_in_a_group_fails_nobody(store: Store) -> None:
    """Half the commands change one partner (they conflict with each other), half register
    new ones (they never conflict): grouped together, every command still succeeds."""
    ledger, hq = store.ledger, hq_admin()
    channel.register_partner(ledger, hq, dealer("D-ONE"))
    slow_put(store, 0.02)
    territories = [("31",), ("31", "3201")]
    changes = 6
    jobs: list[Any] = [
        lambda i=i: channel.update_territory(ledger, hq, "D-ONE", f"t{i}", territories[i % 2])
        for i in range(changes)
    ]
    jobs += [lambda i=i: channel.register_partner(ledger, hq, dealer(f"N{i}")) for i in range(6)]
    outcomes = run_all(jobs)
    errors = [o for o in outcomes if isinstance(o, Exception)]
    assert not errors, errors
    partner = ledger.repository.get(partner_id("D-ONE"))
    assert partner.version == 1 + changes, "every territory change was saved exactly once"
    assert ledger.committer.jobs == 2 * changes
