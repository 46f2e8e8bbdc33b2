"""The engine fetches the next page of the log while it applies one. A page fetched
ahead is used only if the next batch starts where it begins, and it may be older than
events appended since (a prefix of what a fresh fetch would give): every event is still
applied once, in order, on both stores."""

from __future__ import annotations

import threading

from domain.channel import PartnerKind, PartnerSpec
from domain.handlers import channel
from domain.principal import hq_admin
from projections.store import Store


def _register(store: Store, codes: list[str]) -> None:
    for code in codes:
        spec = PartnerSpec(code, PartnerKind.DEALER, "HQ", f"dealer {code}", ("31",))
        channel.register_partner(store.ledger, hq_admin(), spec)


def _partners(store: Store) -> list[str]:
    with store.views.read() as tx:
        return [str(r[0]) for r in tx.fetchall("SELECT code FROM partners ORDER BY code")]


def _fetchers() -> set[threading.Thread]:
    return {t for t in threading.enumerate() if t.name.startswith("projection-fetch")}


def test_pages_fetched_ahead_apply_every_event_once(store: Store) -> None:
    before = _fetchers()
    engine = store.engine
    engine.batch_size = 3
    engine.catch_up()
    first = [f"D{i:02d}" for i in range(10)]
    _register(store, first)
    assert engine.run_batch() == 3  # a full page: the next one is fetched meanwhile
    later = [f"E{i:02d}" for i in range(7)]
    _register(store, later)  # appended after (or while) that page was fetched
    engine.catch_up()
    assert engine.pages_fetched_ahead >= 1
    assert engine.position() == store.head
    assert _partners(store) == sorted(["HQ", *first, *later])

    live = engine.checksums()
    engine.batch_size = 1000
    engine.reset()
    engine.catch_up()  # one page, from zero: the same views
    assert engine.checksums() == live
    engine.stop()  # the fetching thread ends with the engine (side builds stop theirs)
    assert _fetchers() <= before
