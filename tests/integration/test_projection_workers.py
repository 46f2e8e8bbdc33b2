"""Projection workers: the read models split over several engines (``siyu project
--workers N``) build exactly what one engine builds, on both stores, whatever order the
workers run in; a read model that follows another (partner paths) waits for it, and
every read model that reads another's tables says so (a model built before the partner
directory equals the one-engine build only if it does not read partner paths)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from api.demo import load_demo
from projections.compare import remove_side, unique_side_target
from projections.engine import Engine, Projection
from projections.store import Store, default_projections
from projections.views import ViewStore
from projections.workers import followed, worker_groups, worker_share


@pytest.fixture
def demo(store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Store:
    monkeypatch.chdir(tmp_path)  # its tokens file goes under ./var, not into the checkout
    load_demo(store)  # events; the live views are not used here
    return store


Made = list[tuple[Engine, str]]


@pytest.fixture
def sides(demo: Store) -> Iterator[Made]:
    """Engines made by ``side(...)``; their side builds are dropped afterwards."""
    made: Made = []
    yield made
    last = {target: engine for engine, target in made}  # one engine drops each build
    for engine, _target in made:  # (the others first close their connections to it)
        if engine not in last.values():
            engine.stop()
            engine.views.close()
    for engine in last.values():
        remove_side(engine)


def _projections(store: Store) -> list[Projection]:
    return default_projections(store.ledger.positions_of)


def side(
    store: Store,
    made: Made,
    target: str,
    projections: list[Projection],
    others: list[Projection] | None = None,
) -> Engine:
    views = ViewStore(store.database, target=target)
    engine = Engine(
        store.ledger.recorder, store.ledger.mapper, views, projections, others=others or []
    )
    engine.ensure_schema()
    made.append((engine, target))
    return engine


def one_engine_build(store: Store, made: Made) -> dict[str, str]:
    engine = side(store, made, unique_side_target(store, "one"), _projections(store))
    engine.catch_up()
    return engine.checksums()


@pytest.mark.parametrize("workers", [2, 3])
def test_workers_in_turn_build_what_one_engine_builds(
    demo: Store, sides: Made, workers: int
) -> None:
    expected = one_engine_build(demo, sides)
    target = unique_side_target(demo, f"w{workers}")
    shares = [
        side(demo, sides, target, *worker_share(_projections(demo), k, workers))
        for k in range(workers)
    ]
    for engine in shares:
        engine.batch_size = 7  # many batches: the workers interleave
    # The other workers first, as far as each goes alone: whoever follows the partner
    # directory (the first worker's) stops before the first partner it has not seen.
    head = demo.head
    for engine in shares[1:]:
        while engine.run_batch(until=head):
            pass
    assert any(engine.waiting_for == "partners" for engine in shares[1:])
    while any(engine.position() < head for engine in shares):
        progressed = sum(engine.run_batch(until=head) for engine in reversed(shares))
        assert progressed or any(engine.waiting_for for engine in shares)
    whole = side(demo, sides, target, _projections(demo))
    assert whole.checksums() == expected


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_workers_at_once_build_what_one_engine_builds(demo: Store, sides: Made) -> None:
    expected = one_engine_build(demo, sides)
    target = unique_side_target(demo, "at_once")
    shares = [side(demo, sides, target, *worker_share(_projections(demo), k, 2)) for k in (0, 1)]
    errors: list[BaseException] = []

    def run(engine: Engine) -> None:
        try:
            engine.batch_size = 13
            engine.catch_up()
        except BaseException as e:  # reported below, not lost in the thread
            errors.append(e)

    threads = [threading.Thread(target=run, args=(engine,)) for engine in shares]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not errors, errors
    assert all(engine.position() == demo.head for engine in shares)
    assert side(demo, sides, target, _projections(demo)).checksums() == expected


def test_every_read_model_that_reads_partner_paths_follows_the_directory(
    demo: Store, sides: Made
) -> None:
    """Each read model is built alone while the partner directory is still empty. One
    that follows it applies nothing until the directory has caught up, then equals the
    one-engine build; one that does not follow it must equal that build anyway."""
    expected = one_engine_build(demo, sides)
    everything = _projections(demo)
    directory = next(p for p in everything if p.name == "partners")
    followers = {p.name for p in everything if "partners" in getattr(p, "follows", ())}
    assert {"trace", "members", "dashboard_4r", "sell_through"} <= followers
    for model in everything:
        if model.name == "partners":
            continue
        target = unique_side_target(demo, model.name)
        partners = side(demo, sides, target, [directory])  # its table, empty, at 0
        alone = side(demo, sides, target, [model], others=[directory])
        head = demo.head
        while alone.run_batch(until=head):
            pass
        if model.name in followers:
            assert alone.position() == 0, model.name
            assert alone.waiting_for == "partners"
            partners.catch_up()
        alone.catch_up()
        assert alone.position() == head
        assert alone.checksums()[model.name] == expected[model.name], model.name


def test_groups_hold_every_read_model_once_the_followed_first() -> None:
    everything = default_projections()
    names = [p.name for p in everything]
    for workers in range(1, 9):
        groups = worker_groups(everything, workers)
        assert 1 <= len(groups) <= workers
        flat = [p.name for g in groups for p in g]
        assert sorted(flat) == sorted(names)
        assert followed(everything) <= {p.name for p in groups[0]}
        for g in groups:  # each keeps the order of the whole list
            order = [names.index(p.name) for p in g]
            assert order == sorted(order)
    assert len(worker_groups(everything[:2], 8)) == 2
    mine, others = worker_share(everything, 1, 2)
    assert {p.name for p in mine}.isdisjoint(p.name for p in others)
    assert len(mine) + len(others) == len(everything)
