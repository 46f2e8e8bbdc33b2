"""Loyalty under concurrency: two real ``siyu serve`` processes on one fresh PostgreSQL.

- Concurrent 1-point redemptions against a balance of N: exactly N succeed, the rest are
  422 ``insufficient_points``, and the balance ends at 0 (the Member aggregate's
  optimistic concurrency and the server's retries).
- 1,000 concurrent draws on a campaign with 10 units of a likely prize award exactly 10
  (one aggregate per prize stock serialises awards); after the reveal every outcome
  verifies.
"""

from __future__ import annotations

import csv
import io
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.e2e.test_cli import CLEAN_EXIT, bearer, serving

pytestmark = pytest.mark.postgres

THREADS = 8
BALANCE = 40
REDEMPTIONS = 60
DRAW_MEMBERS = 40
DRAWS_PER_MEMBER = 25  # 1,000 draws in all
PRIZE_STOCK = 10
REQUEST_TIMEOUT_S = 60.0
RUN_TIMEOUT_S = 300.0


def setup_members(http: httpx.Client, count: int) -> list[str]:
    """``count`` + 1 members, each joined by a first scan: ``r`` and ``m-0``..."""
    product = {
        "sku": "LD-1",
        "gtin": "06901234567908",
        "name": "x",
        "price": 100,
        "points_per_scan": 1,
    }
    assert http.post("/v1/products", json=product).status_code == 201
    batch = {"batch_id": "B-LD", "sku": "LD-1", "count": count + 1, "level": "unit"}
    assert http.post("/v1/code-batches", json=batch).status_code == 201
    listing = http.get("/v1/code-batches/B-LD/codes")
    assert listing.status_code == 200, listing.text
    codes = [r["consumer_code"] for r in csv.DictReader(io.StringIO(listing.text))]
    names = ["r"] + [f"m-{i}" for i in range(count)]
    for name, code in zip(names, codes, strict=True):
        body = {"scan_id": f"join-{name}", "code": code, "member": {"external_id": name}}
        assert http.post("/v1/scans", json=body).status_code == 200
    return names


def grant(http: httpx.Client, name: str, points: int) -> None:
    """Top the member up to ``points`` (it holds the 1 point of its scan)."""
    body = {"adjustment_id": f"grant-{name}", "points": points - 1, "reason": "test credit"}
    r = http.post(f"/v1/members/{name}/adjustments", json=body)
    assert r.status_code == 201, r.text


def run_parallel(work: list[Any], bases: list[str]) -> list[tuple[int, dict[str, Any]]]:
    """Each worker takes its share of ``work`` (callables of a client), alternating servers."""
    results: list[tuple[int, dict[str, Any]]] = []
    lock = threading.Lock()
    start = threading.Barrier(THREADS)

    def worker(index: int) -> None:
        clients = [
            httpx.Client(base_url=b, headers=bearer(), timeout=REQUEST_TIMEOUT_S) for b in bases
        ]
        try:
            start.wait(timeout=30)
            for n, job in enumerate(work[index::THREADS]):
                r = job(clients[(index + n) % 2])
                with lock:
                    results.append((r.status_code, r.json() if r.content else {}))
        finally:
            for c in clients:
                c.close()

    with ThreadPoolExecutor(THREADS) as pool:
        for f in [pool.submit(worker, i) for i in range(THREADS)]:
            f.result(timeout=RUN_TIMEOUT_S)
    return results


def redemption(i: int) -> Any:
    body = {"redemption_id": f"red-{i}", "points": 1, "reward": "sticker"}
    return lambda c: c.post("/v1/members/r/redemptions", json=body)


def a_draw(member: str, i: int) -> Any:
    body = {"draw_id": f"{member}-{i}", "campaign_id": "rush", "client_seed": f"cs-{member}"}
    return lambda c: c.post(f"/v1/members/{member}/draws", json=body)


def test_redemptions_and_draws_through_two_servers(pg_url: str, tmp_path: Path) -> None:
    with (
        serving(pg_url, tmp_path, name="a") as (server_a, base_a),
        serving(pg_url, tmp_path, name="b") as (server_b, base_b),
    ):
        bases = [base_a, base_b]
        http = httpx.Client(base_url=base_a, headers=bearer(), timeout=REQUEST_TIMEOUT_S)
        names = setup_members(http, DRAW_MEMBERS)
        for name in names:
            grant(http, name, BALANCE if name == "r" else DRAWS_PER_MEMBER)

        # -- N concurrent 1-point redemptions against a balance of N (and more) -------------
        results = run_parallel([redemption(i) for i in range(REDEMPTIONS)], bases)
        statuses = Counter(status for status, _ in results)
        assert statuses == {201: BALANCE, 422: REDEMPTIONS - BALANCE}, statuses
        assert all(b["code"] == "insufficient_points" for s, b in results if s == 422)
        newest = max(b["position"] for s, b in results if s == 201)
        for base in bases:
            got = httpx.get(
                f"{base}/v1/members/r",
                params={"min_position": newest},
                headers=bearer(),
                timeout=10,
            ).json()
            assert got["points"] == 0 and got["lots"] == [], got

        # -- 1,000 concurrent draws on 10 units of a prize drawn half the time ---------------
        campaign = {
            "campaign_id": "rush",
            "name": "Rush",
            "cost_points": 1,
            "prizes": [
                {
                    "prize_id": "p",
                    "name": "prize",
                    "value": 10_000,
                    "probability_ppm": 500_000,
                    "stock": PRIZE_STOCK,
                }
            ],
        }
        assert http.post("/v1/lucky-draws", json=campaign).status_code == 201
        # Each worker draws for its own members, one after another: members are disjoint
        # between workers, so the contention is on the prize stock only.
        members = [n for n in names if n != "r"]
        work = [a_draw(m, i) for i in range(DRAWS_PER_MEMBER) for m in members]
        started = time.monotonic()
        drawn = run_parallel(work, bases)
        seconds = time.monotonic() - started
        print(
            f"\n{len(drawn)} draws through 2 servers in {seconds:.1f}s "
            f"({len(drawn) / seconds:.0f}/s)"
        )
        assert Counter(s for s, _ in drawn) == {201: len(work)}, Counter(s for s, _ in drawn)
        won = [b for _, b in drawn if b["prize_id"] == "p"]
        awarded = [b for b in won if b["awarded"]]
        assert len(awarded) == PRIZE_STOCK < len(won), (len(awarded), len(won))
        state = http.get("/v1/lucky-draws/rush").json()
        assert state["prizes"][0]["remaining"] == 0

        closed = http.post("/v1/lucky-draws/rush/close", json={})
        assert closed.status_code == 200, closed.text
        report = httpx.get(
            f"{base_b}/v1/lucky-draws/rush/verification",
            headers=bearer(),
            timeout=REQUEST_TIMEOUT_S,
        ).json()
        assert report["ok"] and report["checked"] == len(work), report
        assert report["awarded"] == {"p": PRIZE_STOCK}
        http.close()

        assert server_a.stop() in CLEAN_EXIT, server_a.logs()
        assert server_b.stop() in CLEAN_EXIT, server_b.logs()
        for server in (server_a, server_b):
            assert "Traceback" not in server.stderr, server.stderr[-3000:]


REPEAT_ROUNDS = 12
REPEATS_AT_ONCE = 16


def test_one_request_sent_many_times_at_once_answers_alike_through_two_servers(
    pg_url: str, tmp_path: Path
) -> None:
    """The same client id sent 16 times at once, half to each server: every copy gets the
    one answer (same position), and the effect happens once. A copy whose command read the
    member after another copy had saved used to trip the wallet's guard against crediting a
    lot twice: a 500 instead of the recorded answer."""
    with (
        serving(pg_url, tmp_path, name="a") as (server_a, base_a),
        serving(pg_url, tmp_path, name="b") as (server_b, base_b),
    ):
        http = httpx.Client(base_url=base_a, headers=bearer(), timeout=REQUEST_TIMEOUT_S)
        setup_members(http, 0)
        grant(http, "r", BALANCE)
        clients = [
            httpx.Client(base_url=b, headers=bearer(), timeout=REQUEST_TIMEOUT_S)
            for b in (base_a, base_b)
        ]
        rounds: list[list[tuple[int, dict[str, Any]]]] = []
        with ThreadPoolExecutor(REPEATS_AT_ONCE) as pool:
            for n in range(REPEAT_ROUNDS):
                start = threading.Barrier(REPEATS_AT_ONCE)
                if n % 2:
                    path, body = (
                        "/v1/members/r/redemptions",
                        {
                            "redemption_id": f"once-{n}",
                            "points": 1,
                            "reward": "sticker",
                        },
                    )
                else:
                    path, body = (
                        "/v1/members/r/adjustments",
                        {
                            "adjustment_id": f"once-{n}",
                            "points": 2,
                            "reason": "sent many times",
                        },
                    )

                def send(
                    i: int,
                    path: str = path,
                    body: dict[str, Any] = body,
                    start: threading.Barrier = start,
                ) -> Any:
                    start.wait(timeout=30)
                    r = clients[i % 2].post(path, json=body)
                    return r.status_code, r.json()

                rounds.append(list(pool.map(send, range(REPEATS_AT_ONCE))))
        for c in clients:
            c.close()

        for n, answers in enumerate(rounds):
            assert {status for status, _ in answers} == {201}, (n, answers)
            assert all(body == answers[0][1] for _, body in answers), (n, answers)
        newest = max(answers[0][1]["position"] for answers in rounds)
        got = http.get("/v1/members/r", params={"min_position": newest}).json()
        credited, spent = 2 * (REPEAT_ROUNDS // 2), REPEAT_ROUNDS // 2
        assert got["points"] == BALANCE + credited - spent, got
        http.close()

        assert server_a.stop() in CLEAN_EXIT, server_a.logs()
        assert server_b.stop() in CLEAN_EXIT, server_b.logs()
        for server in (server_a, server_b):
            assert "Traceback" not in server.stderr, server.stderr[-3000:]
