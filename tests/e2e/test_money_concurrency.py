"""Money under concurrency: two real ``siyu serve`` processes on one PostgreSQL database,
dozens of concurrent orders, payments and refunds (including refunds of one order racing
each other for more than was paid), with ``siyu settle`` running alongside.

The expected balances are computed here, independently, from the answers the servers
gave: each share from the rates (floor; the remainder role the rest), each refund's
reversals from API.md's cumulative formula. Then: balances exact, no 5xx, no 409 from
version conflicts, no over-refund, reconciliation clean.
"""

from __future__ import annotations

import random
import subprocess
import threading
import time
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.e2e.client import dealer, store_body
from tests.e2e.test_cli import CLEAN_EXIT, bearer, cli_env, run_cli, serving

pytestmark = pytest.mark.postgres

THREADS = 8
ORDERS = 48
RACED_ORDERS = 10  # each gets three concurrent refunds of 40%: together 120% of the payment
SETTLE_RUNS_MAX = 6
REQUEST_TIMEOUT_S = 30.0
WORKLOAD_TIMEOUT_S = 120.0

RATES = {
    # fulfilment -> (with distributor, without, remainder role)
    "hq_dropship": (
        {"distributor": 1000, "store": 3000, "dealer": 2000, "brand": 4000},
        {"store": 4000, "dealer": 2000, "brand": 4000},
        "brand",
    ),
    "delivery": ({"distributor": 1000, "store": 9000}, {"store": 10000}, "store"),
    # published by the test: a 0-day window, so settlement really runs during the load
    "pickup": ({"distributor": 1500, "store": 8500}, {"store": 10000}, "store"),
}
STORES = {  # code: (dealer, lat, lng)
    "S1": ("D1", 31.2304, 121.4737),
    "S2": ("D1", 31.2222, 121.5440),
    "S3": ("D2", 30.2741, 120.1551),
    "S4": ("D2", 30.2500, 120.2000),
}
DISTRIBUTORS = {"R1": "S1", "R3": "S3"}


def expected_split(amount: int, fulfilment: str, has_distributor: bool) -> dict[str, int]:
    with_d, without_d, remainder = RATES[fulfilment]
    rates = with_d if has_distributor else without_d
    shares = {r: amount * bp // 10_000 for r, bp in rates.items() if r != remainder}
    shares[remainder] = amount - sum(shares.values())
    return shares


@dataclass
class Placed:
    order_id: str
    fulfilment: str
    amount: int
    answer: dict[str, Any] = field(default_factory=dict)
    split: dict[str, int] = field(default_factory=dict)
    refunds: list[dict[str, Any]] = field(default_factory=list)  # successful answers


@dataclass
class Log:
    lock: threading.Lock = field(default_factory=threading.Lock)
    statuses: list[tuple[str, int, str]] = field(default_factory=list)
    position: int = 0

    def record(self, what: str, response: httpx.Response) -> None:
        with self.lock:
            self.statuses.append((what, response.status_code, response.text[:300]))
            if response.status_code < 300:
                self.position = max(self.position, int(response.json().get("position", 0)))


def setup_channel(base: str) -> dict[str, str]:
    with httpx.Client(base_url=base, headers=bearer(), timeout=REQUEST_TIMEOUT_S) as http:
        for code in ("D1", "D2"):
            assert http.post("/v1/partners", json=dealer(code, ["31"])).status_code == 201
        for code, (parent, lat, lng) in STORES.items():
            body = store_body(code, parent, lat=lat, lng=lng)
            assert http.post("/v1/partners", json=body).status_code == 201
        for code, parent in DISTRIBUTORS.items():
            body = {"code": code, "kind": "distributor", "parent": parent, "name": code}
            assert http.post("/v1/partners", json=body).status_code == 201
        product = {
            "sku": "SKU-A",
            "gtin": "06901234567892",
            "name": "A",
            "price": 10_000,
            "points_per_scan": 1,
        }
        assert http.post("/v1/products", json=product).status_code == 201
        with_d, without_d, remainder = RATES["pickup"]
        policy = {
            "policy_id": "PICKUP-0",
            "fulfilment": "pickup",
            "rates_bp": with_d,
            "rates_bp_without_distributor": without_d,
            "remainder_to": remainder,
            "return_window_days": 0,
            "effective_from": (datetime.now(UTC) - timedelta(hours=1)).isoformat(),
        }
        assert http.post("/v1/split-policies", json=policy).status_code == 201
        token = http.post("/v1/tokens", json={"partner": "HQ", "role": "gateway"})
        assert token.status_code == 201
        return {"gateway": token.json()["token"]}


def plan(rng: random.Random) -> list[Placed]:
    fulfilments = ["pickup", "hq_dropship", "delivery"]
    return [
        Placed(f"CO-{i:03d}", fulfilments[i % 3], rng.randint(1, 500) * 100 + rng.randint(0, 99))
        for i in range(ORDERS)
    ]


def order_body(p: Placed, i: int, rng: random.Random) -> dict[str, Any]:
    member = f"cm-{i % 16}"  # members place several orders, some at the same moment
    body: dict[str, Any] = {
        "order_id": p.order_id,
        "member": member,
        "lines": [{"sku": "SKU-A", "qty": 1, "unit_price": p.amount}],
        "fulfilment": p.fulfilment,
    }
    code = rng.choice(list(STORES))
    body["location"] = {"lat": STORES[code][1] + 0.001, "lng": STORES[code][2] + 0.001}
    if i % 16 < 6:
        body["referrer"] = "R1" if i % 2 else "R3"
    return body


def test_concurrent_orders_payments_refunds_and_settlement_on_two_servers(  # noqa: PLR0915
    pg_url: str, tmp_path: Path
) -> None:
    started = time.monotonic()
    rng = random.Random(4)
    with (
        serving(pg_url, tmp_path, name="a") as (server_a, base_a),
        serving(pg_url, tmp_path, name="b") as (server_b, base_b),
    ):
        tokens = setup_channel(base_a)
        gateway = {"Authorization": f"Bearer {tokens['gateway']}"}
        bases = [base_a, base_b]
        orders = plan(rng)
        bodies = [order_body(p, i, rng) for i, p in enumerate(orders)]
        log = Log()
        done = threading.Event()
        settle_runs: list[subprocess.CompletedProcess[str]] = []

        def settle_alongside() -> None:
            while not done.is_set() and len(settle_runs) < SETTLE_RUNS_MAX:
                settle_runs.append(run_cli(["settle"], cli_env(pg_url), tmp_path, timeout=60))

        def place_and_pay(index: int) -> None:
            p = orders[index]
            with httpx.Client(
                base_url=bases[index % 2], headers=gateway, timeout=REQUEST_TIMEOUT_S
            ) as http:
                placed = http.post("/v1/orders", json=bodies[index])
                log.record("order", placed)
                if placed.status_code != 201:
                    return
                p.answer = placed.json()
                paid = http.post(
                    f"/v1/orders/{p.order_id}/payments",
                    json={"payment_id": f"pay-{p.order_id}", "amount": p.amount},
                )
                log.record("payment", paid)
                if paid.status_code == 200:
                    p.split = paid.json()["split"]

        def refund(index: int, n: int, amount: int) -> None:
            p = orders[index]
            with httpx.Client(
                base_url=bases[(index + n) % 2], headers=gateway, timeout=REQUEST_TIMEOUT_S
            ) as http:
                r = http.post(
                    f"/v1/orders/{p.order_id}/refunds",
                    json={"refund_id": f"ref-{p.order_id}-{n}", "amount": amount},
                )
                log.record("refund", r)
                if r.status_code == 200:
                    with log.lock:
                        p.refunds.append(r.json())

        settler = threading.Thread(target=settle_alongside, name="settle")
        settler.start()
        try:
            with ThreadPoolExecutor(THREADS) as pool:
                for f in [pool.submit(place_and_pay, i) for i in range(ORDERS)]:
                    f.result(timeout=WORKLOAD_TIMEOUT_S)
                jobs = []
                for i in range(ORDERS):
                    amount = orders[i].amount
                    if i < RACED_ORDERS:  # three racing refunds, 120% in all
                        jobs += [(i, n, amount * 40 // 100) for n in range(3)]
                    elif i % 3 == 0:
                        jobs.append((i, 0, amount // 3))
                    elif i % 5 == 0:
                        jobs.append((i, 0, amount))
                rng.shuffle(jobs)
                for f in [pool.submit(refund, *job) for job in jobs]:
                    f.result(timeout=WORKLOAD_TIMEOUT_S)
        finally:
            done.set()
            settler.join(timeout=90)
        final_settle = run_cli(["settle"], cli_env(pg_url), tmp_path, timeout=60)
        assert final_settle.returncode == 0, final_settle.stdout + final_settle.stderr

        # -- answers: no 5xx, no 409, the only refusals are the refunds beyond what was paid
        assert not [s for s in log.statuses if s[1] >= 500], log.statuses
        assert not [s for s in log.statuses if s[1] == 409], "version conflicts leaked"
        for what, status, text in log.statuses:
            if status >= 300:
                assert what == "refund" and status == 422, (what, status, text)
                assert "refund_exceeds_paid" in text, text
        assert all(p.split for p in orders), "every order was placed and paid"
        for run in settle_runs:
            assert run.returncode == 0, run.stdout + run.stderr
            assert "Traceback" not in run.stderr, run.stderr
        assert settle_runs, "siyu settle ran alongside"

        # -- the split of each order and the reversals, recomputed independently
        expected_pending: dict[str, int] = defaultdict(int)
        expected_available: dict[str, int] = defaultdict(int)
        for p in orders:
            receivers = {
                "store": p.answer["store"],
                "dealer": p.answer["dealer"],
                "brand": "HQ",
                "distributor": p.answer["distributor"],
            }
            has_distributor = p.answer["distributor"] is not None
            assert p.split == expected_split(p.amount, p.fulfilment, has_distributor), p
            assert p.answer["store"] in STORES
            refunded = sum(sum(r["reversed"].values()) for r in p.refunds)
            assert refunded <= p.amount, f"over-refund of {p.order_id}"
            remainder = RATES[p.fulfilment][2]
            so_far = dict.fromkeys(p.split, 0)
            for r in sorted(p.refunds, key=lambda r: r["refunded"]):
                for role, value in r["reversed"].items():
                    so_far[role] += value
                total = r["refunded"]
                for role, share in p.split.items():
                    if role != remainder:
                        assert so_far[role] == share * total // p.amount, (p.order_id, role)
                    assert 0 <= so_far[role] <= share
                assert sum(so_far.values()) == total
            if p.order_id < f"CO-{RACED_ORDERS:03d}":
                assert len(p.refunds) == 2, (p.order_id, p.refunds)  # the third was refused
            bucket = expected_available if p.fulfilment == "pickup" else expected_pending
            for role, share in p.split.items():
                bucket[receivers[role]] += share - so_far[role]

        # -- the balances, from both servers, once their views have applied everything
        partners = ["HQ", "D1", "D2", *STORES, *DISTRIBUTORS]
        fresh = {"min_position": log.position}
        with httpx.Client(headers=bearer(), timeout=REQUEST_TIMEOUT_S) as http:
            for base in bases:
                for code in partners:
                    got = http.get(f"{base}/v1/balances/{code}", params=fresh)
                    assert got.status_code == 200, got.text
                    body = got.json()
                    assert (body["pending"], body["available"]) == (
                        expected_pending[code],
                        expected_available[code],
                    ), (base, code, body)
            for code in partners[1:]:  # the payout accounts agree with the postings
                write_side = http.get(f"{base_a}/v1/partners/{code}/withdrawals").json()
                assert write_side["available"] == expected_available[code], (code, write_side)
            for p in orders:
                view = http.get(f"{base_b}/v1/orders/{p.order_id}", params=fresh).json()
                assert view["refunded"] == sum(sum(r["reversed"].values()) for r in p.refunds)
                assert view["refunded"] <= view["paid"] == p.amount
                if p.fulfilment == "pickup" and view["refunded"] < view["paid"]:
                    assert view["settled_position"] is not None, view
                    # the status is the latest change's: a partial refund after settling
                    late = [r for r in view["refunds"] if r["position"] > view["settled_position"]]
                    assert view["status"] == ("partially_refunded" if late else "settled"), view
            report = http.get(f"{base_a}/v1/reconciliation", params=fresh).json()
            assert report["ok"], report["breaches"]
            assert report["totals"]["trial_balance"] == {"CNY": 0}
            assert report["totals"]["payments"] == sum(p.amount for p in orders)

        assert server_a.stop() in CLEAN_EXIT, server_a.logs()
        assert server_b.stop() in CLEAN_EXIT, server_b.logs()
        for server in (server_a, server_b):
            assert "Traceback" not in server.stderr, server.stderr[-3000:]

    reconciled = run_cli(["reconcile"], cli_env(pg_url), tmp_path, timeout=60)
    assert reconciled.returncode == 0, reconciled.stdout + reconciled.stderr
    assert reconciled.stdout.strip().splitlines()[-1] == "ok"
    assert time.monotonic() - started < 110, "the concurrency test stays modest"
