"""Readings (projections/readings.py): one text of a read, run on a thread or on the loop.

The hot reads (balances, traces) run on the event loop over PostgreSQL's async pool:
the same answer as the thread driver, no worker thread, refusals raised from the
reading, and no pooled connection lost to a reading that failed. On SQLite the same
readings run in a worker thread."""

from __future__ import annotations

import asyncio
import threading
from datetime import UTC, datetime
from typing import Any
from uuid import uuid4

import anyio.to_thread
import pytest

from api.services import Services
from domain.identity import partner_id
from projections.balances import balance_answer, partner_and_positions
from projections.readings import ASYNC_POOL_SIZE_MAX, AsyncReads, Reading, one, run_reading
from projections.store import Store, read_versions
from projections.time_index import read_position_at
from tests.conftest import BOOTSTRAP
from tests.e2e.client import dealer, running_api


class Refused(Exception):
    pass


NOW = datetime(2030, 1, 1, tzinfo=UTC)


def _balance_of(code: str, threads: list[int]) -> Reading[dict[str, Any]]:
    """Three statements (partner and positions, balance, time index); notes its thread."""
    threads.append(threading.get_ident())
    found, upto = yield from partner_and_positions(code, None)
    assert found is not None, code
    answer = yield from balance_answer(found, None, NOW, upto, rollup=True)
    threads.append(threading.get_ident())
    answer["committed_by_now"] = yield from read_position_at(NOW)
    return answer


def _refused_after_one_statement() -> Reading[None]:
    yield from one("SELECT 1")
    raise Refused("the reading refuses after its first statement")


def _channel(database_url: str) -> str:
    """A store with a dealer and its views caught up; returns the URL (the app is gone)."""
    with running_api(database_url) as api:
        assert api.post("/v1/partners", dealer("D-R")).status_code == 201
        assert api.get("/v1/balances/D-R").status_code == 200  # min_position: caught up
    return database_url


async def _on_the_loop(store: Store, reading: Reading[Any]) -> tuple[Any, int, bool]:
    reads = AsyncReads(store.views)
    await reads.open()
    try:
        return await reads.run(reading), threading.get_ident(), reads.on_loop
    finally:
        await reads.close()


def test_a_reading_answers_the_same_on_a_thread_and_on_the_loop(database_url: str) -> None:
    store = Store.open(_channel(database_url))
    try:
        with store.views.query() as tx:
            on_thread = run_reading(tx, _balance_of("D-R", []))
        threads: list[int] = []
        on_loop, loop_thread, opened = asyncio.run(_on_the_loop(store, _balance_of("D-R", threads)))
    finally:
        store.close()
    assert on_thread == on_loop
    assert on_loop["partner"] == "D-R" and on_loop["rollup"]["partners"] == 1
    assert on_loop["committed_by_now"] >= on_loop["position"] > 0
    if database_url.startswith("postgresql"):
        assert opened and set(threads) == {loop_thread}, "PostgreSQL: read on the loop"
    else:
        assert not opened and loop_thread not in threads, "SQLite: read in a worker thread"


def test_a_refused_reading_raises_and_gives_its_connection_back(database_url: str) -> None:
    store = Store.open(database_url)

    async def scenario() -> int:
        reads = AsyncReads(store.views)
        await reads.open()
        try:
            for _ in range(2 * ASYNC_POOL_SIZE_MAX + 1):
                with pytest.raises(Refused):
                    await reads.run(_refused_after_one_statement())
            # every connection came back: the next reading does not wait for one
            row = await asyncio.wait_for(reads.run(one("SELECT 41 + 1")), timeout=10)
            assert row is not None
            return int(row[0])
        finally:
            await reads.close()

    try:
        assert asyncio.run(scenario()) == 42
    finally:
        store.close()


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_the_app_opens_its_loop_reads_and_closes_them(database_url: str) -> None:
    seen: list[Services] = []
    with running_api(database_url) as api:
        services: Services = api.http.app.state.services
        seen.append(services)
        assert services.reads.on_loop, "the app's start-up opened the async pool"
        assert api.post("/v1/partners", dealer("D-L")).status_code == 201
        answer = api.get("/v1/balances/D-L", token=BOOTSTRAP)
        assert answer.status_code == 200, answer.text
        assert api.get("/v1/balances/NOPE", fresh=False).status_code == 404
    assert not seen[0].reads.on_loop, "shut down with the app"


def test_versions_read_on_the_loop_are_the_ledgers(database_url: str) -> None:
    store = Store.open(_channel(database_url))
    try:
        ids = [partner_id("D-R"), partner_id("HQ"), uuid4()]
        expected = store.ledger.versions_of(ids)
        assert expected.keys() == {partner_id("D-R"), partner_id("HQ")}
        if database_url.startswith("postgresql"):
            on_loop, _thread, _opened = asyncio.run(
                _on_the_loop(store, read_versions(store.ledger, ids))
            )
            assert on_loop == expected
    finally:
        store.close()


def test_a_known_tokens_balance_read_takes_no_worker_thread_on_postgresql(
    database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    hops: list[object] = []
    run_sync = anyio.to_thread.run_sync

    async def counted(function: Any, *args: Any, **kwargs: Any) -> Any:
        hops.append(function)
        return await run_sync(function, *args, **kwargs)

    with running_api(database_url) as api:
        assert api.post("/v1/partners", dealer("D-T")).status_code == 201
        token = api.token("D-T", "dealer")
        assert api.get("/v1/balances/D-T", token=token).status_code == 200  # token cached
        monkeypatch.setattr(anyio.to_thread, "run_sync", counted)
        for _ in range(3):
            answer = api.get("/v1/balances/D-T", token=token, fresh=False)
            assert answer.status_code == 200, answer.text
            assert answer.json()["partner"] == "D-T"
        assert api.get("/v1/balances/HQ", token=token, fresh=False).status_code == 404
    if database_url.startswith("postgresql"):
        assert hops == [], "token check and balance on the event loop"
    else:
        assert hops, "SQLite: both in worker threads"
