"""Every list pages by ``cursor`` (API.md "General rules"): ``limit`` (default 100, at
most 1000) bounds a page, ``next`` is a cursor to pass back as ``cursor``, null after the
last page; a bad cursor or limit is a problem naming it. Lists that paged by ``after``
before still read it, for old clients (also with the ``next`` they are now given)."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest

from domain.clock import FixedClock
from tests.e2e.client import Api, running_api
from tests.e2e.flows import SKU, Channel, build_channel, consumer, outer, to_store
from tests.e2e.test_channel import assert_problem
from tests.e2e.test_orders import START, build_mall

PERIOD = {"starts_at": "2024-01-01T00:00:00+08:00", "ends_at": "2030-01-01T00:00:00+08:00"}
TASKS = ("t-a", "t-b", "t-c")
CLERKS = ("C-1", "C-2")


@pytest.fixture
def ch(database_url: str) -> Iterator[Channel]:
    with running_api(database_url, clock=FixedClock(START)) as api:
        channel = build_channel(api)
        to_store(channel)
        yield channel


def walk(
    api: Api, path: str, token: str, limit: int, listed: str = "items", **params: Any
) -> list[Any]:
    """Every item of a list, page by page via ``cursor``; each page holds at most
    ``limit``, and the walk ends (a list that ignored the cursor would loop)."""
    items: list[Any] = []
    cursor = None
    for _ in range(50):
        query = {**params, "limit": limit} | ({} if cursor is None else {"cursor": cursor})
        response = api.get(path, token=token, **query)
        assert response.status_code == 200, response.text
        page = response.json()
        assert len(page[listed]) <= limit, (path, page)
        items += page[listed]
        cursor = page["next"]
        if cursor is None:
            return items
        assert isinstance(cursor, str), (path, page)
    raise AssertionError(f"{path}: no last page after 50 pages of {limit}")


def walk_after(
    api: Api, path: str, token: str, limit: int, name: str = "after", **params: Any
) -> list[Any]:
    """An old client's walk: each ``next`` passed back as ``after``."""
    items: list[Any] = []
    after = None
    for _ in range(50):
        query = {**params, "limit": limit} | ({} if after is None else {name: after})
        response = api.get(path, token=token, **query)
        assert response.status_code == 200, response.text
        items += response.json()["items"]
        after = response.json()["next"]
        if after is None:
            return items
    raise AssertionError(f"{path}: no last page after 50 pages of {limit}")


def whole(api: Api, path: str, token: str, listed: str = "items", **params: Any) -> list[Any]:
    page = api.get(path, token=token, limit=1000, **params).json()
    assert page["next"] is None
    return list(page[listed])


def test_a_members_points_history(ch: Channel) -> None:
    hq = ch.tokens["hq"]
    assert ch.scan(consumer(ch, 0), "m-1", "s-1").status_code == 200
    for i in range(4):
        body = {"adjustment_id": f"a-{i}", "points": 5 + i, "reason": "goodwill"}
        assert ch.api.post("/v1/members/m-1/adjustments", body, token=hq).status_code == 201
    path = "/v1/members/m-1/points"
    everything = whole(ch.api, path, hq)
    assert len(everything) == 5
    for limit in (1, 2, 5):
        assert walk(ch.api, path, hq, limit) == everything, limit
    assert walk_after(ch.api, path, hq, 2) == everything, "old clients: next as after"
    second = everything[1]["position"]
    by_position = ch.api.get(path, token=hq, after=second).json()["items"]
    assert by_position == everything[2:], "old clients: after as a position"


def test_the_audit_log_of_reads(ch: Channel) -> None:
    for external_id in ("m-1", "m-2"):
        scanned = ch.scan(consumer(ch, int(external_id[-1])), external_id, external_id)
        assert scanned.status_code == 200, scanned.text
    for _ in range(3):
        for external_id in ("m-1", "m-2"):
            assert ch.api.get(f"/v1/members/{external_id}", token=ch.tokens["hq"]).is_success
    auditor, path = ch.tokens["auditor"], "/v1/audit/reads"
    everything = whole(ch.api, path, auditor, role="hq")
    assert len(everything) >= 6
    for limit in (1, 4):
        assert walk(ch.api, path, auditor, limit, role="hq") == everything, limit
    assert walk_after(ch.api, path, auditor, 4, role="hq") == everything


def test_an_aggregates_stream(ch: Channel) -> None:
    auditor, path = ch.tokens["auditor"], f"/v1/aggregates/Unit/{outer(ch, 3)}/events"
    everything = whole(ch.api, path, auditor)
    assert len(everything) >= 5
    assert walk(ch.api, path, auditor, 2) == everything
    assert walk_after(ch.api, path, auditor, 2, "after_version") == everything
    assert ch.api.get(path, token=auditor, after_version=2).json()["items"] == everything[2:]


def test_tasks_and_clerk_progress(ch: Channel) -> None:
    hq = ch.tokens["hq"]
    for clerk in CLERKS:
        assert ch.api.partner(clerk, "clerk", "S-SH").status_code == 201
    for task_id in TASKS:
        task = {"task_id": task_id, "kind": "sell_units", "sku": SKU, "target": 9, **PERIOD}
        assert ch.api.post("/v1/clerk-tasks", task, token=hq).status_code == 201
    for i, clerk in enumerate(CLERKS):
        line = {"sku": SKU, "qty": 1, "unit_price": 5000}
        order = {"order_id": f"O-{i}", "member": f"m-{i}", "lines": [line]}
        order |= {"fulfilment": "hq_dropship", "referrer": clerk}
        placed = ch.api.post("/v1/orders", order, token=ch.tokens["gateway"])
        assert placed.status_code == 201, placed.text
        payment = {"payment_id": f"p-{i}", "amount": placed.json()["total"]}
        paid = ch.api.post(f"/v1/orders/O-{i}/payments", payment, token=ch.tokens["gateway"])
        assert paid.status_code == 200, paid.text
    tasks = whole(ch.api, "/v1/tasks", hq)
    assert [t["task_id"] for t in tasks] == list(TASKS)
    assert walk(ch.api, "/v1/tasks", hq, 2) == tasks
    path = "/v1/clerk-tasks/progress"
    progress = whole(ch.api, path, hq)
    assert [(p["task_id"], p["clerk"]) for p in progress] == [(t, c) for t in TASKS for c in CLERKS]
    for limit in (1, 4):
        assert walk(ch.api, path, hq, limit) == progress, limit
    assert walk(ch.api, path, hq, 1, task_id="t-b") == progress[2:4]


def test_a_partners_withdrawals(database_url: str) -> None:
    clock = FixedClock(START)
    with running_api(database_url, clock=clock) as api:
        mall = build_mall(api, clock)
        order = mall.paid_order("m-w", referrer="R-SH")
        assert mall.fulfil(order["order_id"], token=mall.tokens["S-SH"]).status_code == 200
        clock.advance(timedelta(days=8))
        mall.settle()
        own, path = mall.tokens["R-SH"], "/v1/partners/R-SH/withdrawals"
        for i in range(5):
            body = {"withdrawal_id": f"w-{i}", "amount": 10}
            assert api.post(path, body, token=own).status_code == 201
        everything = api.get(path, token=own).json()
        assert everything["next"] is None and len(everything["withdrawals"]) == 5
        for limit in (1, 2, 5):
            listed = walk(api, path, own, limit, "withdrawals")
            assert listed == everything["withdrawals"], limit
        page = api.get(path, token=own, limit=2).json()
        assert page["available"] == everything["available"] and page["partner"] == "R-SH"
        assert_bad_paging(api, path, own)


PAGED = (
    "/v1/partners",
    "/v1/alerts",
    "/v1/partners/HQ/statement",
    "/v1/members/m-1/points",
    "/v1/audit/reads",
    "/v1/aggregates/Partner/HQ/events",
    "/v1/tasks",
    "/v1/clerk-tasks/progress",
    "/v1/partners/HQ/withdrawals",
)


def assert_bad_paging(api: Api, path: str, token: str) -> None:
    for limit in (0, 1001, "x"):
        problem = assert_problem(api.get(path, token=token, limit=limit), 400, "validation_failed")
        assert [e["field"] for e in problem["errors"]] == ["limit"], (path, problem)
    nul = base64.urlsafe_b64encode(b"D\x00").decode()  # PostgreSQL text refuses a NUL
    for cursor in ("%%%", "not a cursor!", "x" * 201, nul):
        response = api.get(path, token=token, cursor=cursor)
        assert response.status_code in (400, 422), (path, response.text)
        problem = assert_problem(response, response.status_code, "validation_failed")
        assert [e["field"] for e in problem["errors"]] == ["cursor"], (path, problem)


def test_a_bad_cursor_or_limit_is_a_problem_naming_it(ch: Channel) -> None:
    assert ch.scan(consumer(ch, 0), "m-1", "s-1").status_code == 200
    hq = ch.tokens["hq"]
    for path in PAGED:
        assert_bad_paging(ch.api, path, hq)
    for path, name in [
        ("/v1/members/m-1/points", "after"),
        ("/v1/audit/reads", "after"),
        ("/v1/aggregates/Partner/HQ/events", "after_version"),
    ]:
        for value in ("-1", "x", str(2**63), "YWJj"):  # "YWJj": the cursor of "abc"
            response = ch.api.get(path, token=hq, **{name: value})
            problem = assert_problem(response, 400, "validation_failed")
            assert [e["field"] for e in problem["errors"]] == [name], (path, value, problem)
        not_a_position = "YWJj"  # the cursor of "abc"
        problem = assert_problem(ch.api.get(path, token=hq, cursor=not_a_position), 422)
        assert [e["field"] for e in problem["errors"]] == ["cursor"], (path, problem)
