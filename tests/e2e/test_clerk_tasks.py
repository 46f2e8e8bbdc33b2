"""Clerk tasks (智慧导购任务) over HTTP, on SQLite and PostgreSQL: paid orders attributed to a
clerk count, scans of units an order already counted do not count again, refunds take
units back until completion, and completion pays the reward into the clerk's balance
through the ledger (balanced, traceable, reconciled, withdrawable)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from domain.clock import FixedClock
from tests.e2e.client import running_api
from tests.e2e.flows import SKU, Channel, build_channel, consumer, to_store
from tests.e2e.test_channel import assert_problem
from tests.e2e.test_cli import cli_env, run_cli

START = datetime(2026, 3, 1, 2, 0, tzinfo=UTC)
OTHER_SKU = "CAKE-1"
PERIOD = {"starts_at": "2026-01-01T00:00:00+08:00", "ends_at": "2027-01-01T00:00:00+08:00"}


@pytest.fixture
def ch(database_url: str) -> Iterator[Channel]:
    with running_api(database_url, clock=FixedClock(START)) as api:
        channel = build_channel(api, units=8)
        to_store(channel)
        for code in ("C-1", "C-2"):  # two clerks of S-SH
            assert api.partner(code, "clerk", "S-SH").status_code == 201
            channel.tokens[code] = api.token(code, "clerk")
        cake = {
            "sku": OTHER_SKU,
            "gtin": "06901234567809",
            "name": "Cake",
            "price": 1000,
            "points_per_scan": 1,
        }
        assert api.post("/v1/products", cake).status_code == 201
        yield channel


def publish(ch: Channel, task_id: str, target: int, reward: int, **period: str) -> None:
    body = {
        "task_id": task_id,
        "kind": "sell_units",
        "sku": SKU,
        "target": target,
        "reward": reward,
        **PERIOD,
        **period,
    }
    response = ch.api.post("/v1/clerk-tasks", body, token=ch.tokens["hq"])
    assert response.status_code == 201, response.text


def place(ch: Channel, order_id: str, member: str, lines: list[tuple[str, int, int]], **extra: Any):
    body = {
        "order_id": order_id,
        "member": member,
        "lines": [{"sku": s, "qty": q, "unit_price": p} for s, q, p in lines],
        "fulfilment": "hq_dropship",
        **extra,
    }
    response = ch.api.post("/v1/orders", body, token=ch.tokens["gateway"])
    assert response.status_code == 201, response.text
    return response.json()


def pay(ch: Channel, order_id: str, payment_id: str, amount: int):
    body = {"payment_id": payment_id, "amount": amount}
    return ch.api.post(f"/v1/orders/{order_id}/payments", body, token=ch.tokens["gateway"])


def paid(ch: Channel, order_id: str, member: str, qty: int, **extra: Any) -> dict[str, Any]:
    placed = place(ch, order_id, member, [(SKU, qty, 5000)], **extra)
    response = pay(ch, order_id, f"pay-{order_id}", placed["total"])
    assert response.status_code == 200, response.text
    return dict(placed)


def refund(ch: Channel, order_id: str, refund_id: str, amount: int) -> None:
    body = {"refund_id": refund_id, "amount": amount}
    response = ch.api.post(f"/v1/orders/{order_id}/refunds", body, token=ch.tokens["gateway"])
    assert response.status_code == 200, response.text


def scan(ch: Channel, i: int, member: str, referrer: str | None = None) -> None:
    extra = {} if referrer is None else {"referrer": referrer}
    response = ch.scan(consumer(ch, i), member, f"s-{member}-{i}", **extra)
    assert response.status_code == 200, response.text
    assert response.json()["outcome"] == "first_scan"


def progress(ch: Channel, token: str = "hq") -> list[tuple[str, str, int, bool, int]]:
    response = ch.api.get("/v1/clerk-tasks/progress", token=ch.tokens[token])
    assert response.status_code == 200, response.text
    return [
        (i["task_id"], i["clerk"], i["units"], i["completed"], i["reward"])
        for i in response.json()["items"]
    ]


def balance(ch: Channel, partner: str, token: str = "hq") -> tuple[int, int]:
    response = ch.api.get(f"/v1/balances/{partner}", token=ch.tokens[token])
    assert response.status_code == 200, response.text
    return response.json()["pending"], response.json()["available"]


def events_of(ch: Channel, topic: str) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    after = 0
    while True:
        page = ch.api.get("/v1/events", token=ch.tokens["auditor"], after=after, limit=500)
        assert page.status_code == 200, page.text
        found += [e for e in page.json()["items"] if e["type"] == topic]
        if page.json()["next"] is None:
            return found
        after = page.json()["next"]


def assert_reward_traced(ch: Channel) -> None:
    """C-1's statement line for the sell-tea reward says why and names the completion
    event; the money event at its position carries the balanced postings."""
    lines = ch.api.get("/v1/partners/C-1/statement", token=ch.tokens["C-1"]).json()["lines"]
    rewards = [line for line in lines if line["kind"] == "task_reward"]
    assert len(rewards) == 1
    line = rewards[0]
    assert (line["amount"], line["available"], line["pending"]) == (5000, 5000, 0)
    assert line["order_id"] is None and line["reason"] == "clerk task sell-tea completed"
    [completed] = events_of(ch, "siyu.ClerkTaskProgress.Completed")
    assert line["ref"] == f"{completed['aggregate_id']}:{completed['version']}"
    [reward] = events_of(ch, "siyu.ClerkTaskProgress.RewardPaid")
    assert reward["position"] == line["position"]
    assert reward["aggregate_id"] == completed["aggregate_id"]
    assert sorted(map(tuple, reward["data"]["postings"])) == [
        ("partner:C-1:available", "CNY", 5000),
        ("partner:HQ:available", "CNY", -5000),
    ]


def assert_reconciled_and_withdrawable(ch: Channel, database_url: str, tmp_path: Path) -> None:
    report = ch.api.get("/v1/reconciliation", token=ch.tokens["auditor"]).json()
    assert report["ok"], report["breaches"]
    assert report["totals"]["task_rewards"] == 5000
    env = cli_env(database_url)
    reconciled = run_cli(["reconcile"], env, tmp_path)
    assert reconciled.returncode == 0, reconciled.stdout + reconciled.stderr
    assert reconciled.stdout.strip().splitlines()[-1] == "ok"
    assert "task rewards 5000" in reconciled.stdout
    verified = run_cli(["verify"], env, tmp_path)
    assert verified.returncode == 0, verified.stdout + verified.stderr
    assert verified.stdout.strip().splitlines()[-1] == "ok"

    # The payout account agrees: the clerk can withdraw exactly the reward.
    too_much = {"withdrawal_id": "w-1", "amount": 5001}
    withdraw = ch.api.post("/v1/partners/C-1/withdrawals", too_much, token=ch.tokens["C-1"])
    assert_problem(withdraw, 422, "insufficient_available")
    exact = {"withdrawal_id": "w-1", "amount": 5000}
    withdraw = ch.api.post("/v1/partners/C-1/withdrawals", exact, token=ch.tokens["C-1"])
    assert withdraw.status_code == 201, withdraw.text
    assert balance(ch, "C-1")[1] == 0


def test_a_paid_order_attributed_to_a_clerk_completes_its_task_and_pays_the_reward(
    ch: Channel, database_url: str, tmp_path: Path
) -> None:
    publish(ch, "sell-tea", 3, 5000)
    publish(ch, "sell-tea-2027", 1, 100, starts_at="2027-01-01T00:00:00+08:00",
            ends_at="2028-01-01T00:00:00+08:00")  # fmt: skip
    # Only the task SKU's lines count: 2 of TEA, not the 5 cakes.
    placed = place(ch, "O-1", "m-1", [(SKU, 2, 5000), (OTHER_SKU, 5, 1000)], referrer="C-1")
    assert (placed["store"], placed["distributor"]) == ("S-SH", "C-1")
    assert progress(ch) == [], "a placed order counts nothing before it is paid"
    first = pay(ch, "O-1", "pay-1", 15_000)
    assert first.status_code == 200, first.text
    assert progress(ch) == [("sell-tea", "C-1", 2, False, 0)]
    # Repeated payment request (same client id): the same answer, counted once.
    again = pay(ch, "O-1", "pay-1", 15_000)
    assert again.status_code == 200 and again.json() == first.json()
    assert_problem(pay(ch, "O-1", "pay-1b", 15_000), 409, "already_paid")
    assert progress(ch) == [("sell-tea", "C-1", 2, False, 0)]
    # Visible to the clerk, its store, its dealer; nobody else (a sibling clerk included).
    for who in ("C-1", "S-SH", "D-SH"):
        assert progress(ch, who) == [("sell-tea", "C-1", 2, False, 0)], who
    for who in ("C-2", "S-BJ", "D-BJ"):
        assert progress(ch, who) == [], who
    # Orders not attributed to C-1 count nothing for it.
    paid(ch, "O-2", "m-2", 4, location={"lat": 31.23, "lng": 121.47})  # no distributor
    paid(ch, "O-3", "m-3", 1, referrer="C-2")  # the other clerk's sale
    assert progress(ch) == [("sell-tea", "C-1", 2, False, 0), ("sell-tea", "C-2", 1, False, 0)]

    before_clerk, before_brand = balance(ch, "C-1"), balance(ch, "HQ")
    paid(ch, "O-4", "m-1", 1)  # m-1 is C-1's member for good: no referrer needed
    assert progress(ch, "C-1") == [("sell-tea", "C-1", 3, True, 5000)]
    after_clerk, after_brand = balance(ch, "C-1"), balance(ch, "HQ")
    # The order's own distributor share (10% of 5,000) is pending; the reward is available.
    assert after_clerk == (before_clerk[0] + 500, before_clerk[1] + 5000)
    assert after_brand[1] == before_brand[1] - 5000, "the brand pays the reward"
    assert balance(ch, "C-1", "C-1") == after_clerk
    assert_problem(ch.api.get("/v1/balances/C-1", token=ch.tokens["S-BJ"]), 404)
    assert_problem(ch.api.get("/v1/balances/C-1", token=ch.tokens["C-2"]), 404)

    assert_reward_traced(ch)

    # A refund after completion takes nothing back: completed stays completed, paid stays paid.
    refund(ch, "O-4", "ref-4", 5000)
    refund(ch, "O-1", "ref-1", 15_000)
    assert progress(ch, "C-1") == [("sell-tea", "C-1", 3, True, 5000)]
    assert balance(ch, "C-1")[1] == 5000

    assert_reconciled_and_withdrawable(ch, database_url, tmp_path)


def test_a_unit_sold_by_order_and_scanned_by_its_buyer_counts_once(ch: Channel) -> None:
    publish(ch, "sell-tea", 5, 3000)
    paid(ch, "O-1", "m-5", 2, referrer="C-1")
    assert progress(ch) == [("sell-tea", "C-1", 2, False, 0)]
    # The buyer scans a unit the order counted: it does not count again.
    scan(ch, 0, "m-5")
    assert progress(ch) == [("sell-tea", "C-1", 2, False, 0)]
    # Half the order refunded: one unit taken back; the buyer still holds order credit for one.
    refund(ch, "O-1", "ref-1", 5000)
    assert progress(ch) == [("sell-tea", "C-1", 1, False, 0)]
    scan(ch, 1, "m-5")
    assert progress(ch) == [("sell-tea", "C-1", 1, False, 0)]
    # A third unit scanned by the buyer was not in any order: it counts.
    scan(ch, 2, "m-5")
    assert progress(ch) == [("sell-tea", "C-1", 2, False, 0)]
    # Another member C-1 referred scans without any order: it counts.
    scan(ch, 3, "m-6", referrer="C-1")
    assert progress(ch) == [("sell-tea", "C-1", 3, False, 0)]
    # A fully refunded order leaves no credit: its buyer's later scan counts.
    paid(ch, "O-2", "m-7", 1, referrer="C-1")
    assert progress(ch) == [("sell-tea", "C-1", 4, False, 0)]
    refund(ch, "O-2", "ref-2", 5000)
    assert progress(ch) == [("sell-tea", "C-1", 3, False, 0)]
    scan(ch, 4, "m-7")
    assert progress(ch) == [("sell-tea", "C-1", 4, False, 0)]
    # m-6 now orders one more (an order after its scan): it counts, and completes the task.
    before = balance(ch, "C-1")
    paid(ch, "O-3", "m-6", 1)
    assert progress(ch) == [("sell-tea", "C-1", 5, True, 3000)]
    after = balance(ch, "C-1")
    assert after == (before[0] + 500, before[1] + 3000)
    # After completion nothing counts and nothing is paid again.
    scan(ch, 5, "m-8", referrer="C-1")
    paid(ch, "O-4", "m-8", 3)
    assert progress(ch) == [("sell-tea", "C-1", 5, True, 3000)]
    assert balance(ch, "C-1")[1] == after[1]
    assert len(events_of(ch, "siyu.ClerkTaskProgress.RewardPaid")) == 1
    matched = events_of(ch, "siyu.ClerkTaskProgress.ScanMatched")
    assert len(matched) == 2, "the buyer's two scans of ordered units were matched, not counted"
    report = ch.api.get("/v1/reconciliation", token=ch.tokens["hq"]).json()
    assert report["ok"], report["breaches"]
