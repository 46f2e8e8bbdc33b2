"""Two real ``siyu serve`` processes on one PostgreSQL database, written to at once.

Concurrency is the server's problem (API.md): version conflicts are retried inside, a
repeat answers the original position whichever process answers it, the same code with
other content is 409 ``idempotency_mismatch``, and nothing is written twice. Both
processes run the projection engine; a rebuild from zero equals the live views.
"""

from __future__ import annotations

import random
import re
import threading
from collections import Counter, defaultdict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from domain.channel import Partner
from domain.requests import ClientRequest
from projections.store import Store, default_projections
from tests.e2e.client import dealer, store_body
from tests.e2e.test_cli import CLEAN_EXIT, bearer, cli_env, run_cli, serving

pytestmark = pytest.mark.postgres

THREADS = 8
PER_THREAD = 25
DEALERS = [f"D{i}" for i in range(4)]


@dataclass(frozen=True)
class Job:
    code: str
    body: dict[str, Any]
    mismatch: bool = False  # the same code as an earlier request, with other content


@dataclass(frozen=True)
class Result:
    job: Job
    server: int
    status: int
    content_type: str
    body: Any


def plan(rng: random.Random) -> list[Job]:
    jobs: list[Job] = []
    for i in range(60):  # new stores, each asked for twice (repeats race each other)
        body = store_body(f"S{i:03d}", rng.choice(DEALERS), lat=30 + i / 100, lng=120 + i / 100)
        jobs += [Job(body["code"], body), Job(body["code"], body)]
    for i in range(40):  # new dealers
        jobs.append(Job(f"N{i:02d}", dealer(f"N{i:02d}", [rng.choice(["31", "3205", "110101"])])))
    for i in range(30):  # repeats of partners registered before, identical content
        code = DEALERS[i % len(DEALERS)]
        jobs.append(Job(code, dealer(code)))
    for i in range(10):  # the same codes with other content: the only refusals expected
        code = DEALERS[i % len(DEALERS)]
        jobs.append(Job(code, dealer(code) | {"name": f"another name {i}"}, mismatch=True))
    assert len(jobs) == THREADS * PER_THREAD
    rng.shuffle(jobs)
    return jobs


def send_concurrently(jobs: list[Job], bases: list[str]) -> list[Result]:
    """THREADS threads, each with PER_THREAD jobs, alternating between the servers."""
    results: list[Result] = []
    lock = threading.Lock()
    start = threading.Barrier(THREADS)

    def worker(index: int) -> None:
        clients = [httpx.Client(base_url=b, headers=bearer(), timeout=30) for b in bases]
        try:
            start.wait(timeout=30)
            for n, job in enumerate(jobs[index::THREADS]):
                which = (index + n) % 2  # repeats of one code land on both servers
                r = clients[which].post("/v1/partners", json=job.body)
                body = r.json() if r.content else None
                kind = r.headers.get("content-type", "")
                with lock:
                    results.append(Result(job, which, r.status_code, kind, body))
        finally:
            for c in clients:
                c.close()

    with ThreadPoolExecutor(THREADS) as pool:
        for f in [pool.submit(worker, i) for i in range(THREADS)]:
            f.result(timeout=180)
    assert len(results) == len(jobs)
    return results


def check_answers(results: list[Result], before: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """No 5xx; 409 exactly for the other-content requests; one answer per code."""
    server_errors = [r for r in results if r.status >= 500]
    assert not server_errors, server_errors[:5]
    for r in results:
        if r.job.mismatch:
            assert r.status == 409, r
            assert r.content_type.startswith("application/problem+json"), r
            assert r.body["code"] == "idempotency_mismatch", r
        else:
            assert r.status == 201, r
    answers: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for r in results:
        if r.status == 201:
            answers[r.job.code].append(r.body)
    for code, seen in answers.items():
        assert all(a == seen[0] for a in seen), (code, seen)  # same answer, same position
        if code in before:
            assert seen[0] == before[code], (code, seen[0], before[code])
    created = {**{c: a[0] for c, a in answers.items()}, **before}
    positions = [a["position"] for a in created.values()]
    assert len(set(positions)) == len(positions), "one position per registration"
    return created


def check_reads(created: dict[str, Any], sent: dict[str, Any], bases: list[str]) -> None:
    """Every partner is readable from both servers once their views reach the position."""
    newest = {"min_position": max(a["position"] for a in created.values())}

    def read(code: str, base: str) -> tuple[str, str, int, Any]:
        r = httpx.get(f"{base}/v1/partners/{code}", params=newest, headers=bearer(), timeout=10)
        return code, base, r.status_code, r.json()

    with ThreadPoolExecutor(THREADS) as pool:
        reads = list(pool.map(lambda cb: read(*cb), [(c, b) for c in created for b in bases]))
    for code, base, status, got in reads:
        assert status == 200, (code, base, got)
        wanted = (sent[code]["kind"], sent[code]["parent"], sent[code]["name"])
        assert (got["kind"], got["parent"], got["name"]) == wanted, (base, got)
        assert got["path"] == created[code]["path"]
    listings = [
        httpx.get(
            f"{b}/v1/partners", params={**newest, "limit": 1000}, headers=bearer(), timeout=10
        ).json()["items"]
        for b in bases
    ]
    assert listings[0] == listings[1]
    assert {p["code"] for p in listings[0]} == set(created) | {"HQ"}


def test_two_servers_share_one_store_under_concurrent_writes(pg_url: str, tmp_path: Path) -> None:
    with (
        serving(pg_url, tmp_path, name="a") as (server_a, base_a),
        serving(pg_url, tmp_path, name="b") as (server_b, base_b),
    ):
        before = {}
        for code in DEALERS:
            r = httpx.post(f"{base_a}/v1/partners", json=dealer(code), headers=bearer(), timeout=10)
            assert r.status_code == 201, r.text
            before[code] = r.json()

        jobs = plan(random.Random(20240611))
        results = send_concurrently(jobs, [base_a, base_b])
        created = check_answers(results, before)
        sent = {j.code: j.body for j in jobs if not j.mismatch} | {c: dealer(c) for c in DEALERS}
        check_reads(created, sent, [base_a, base_b])

        assert server_a.stop() in CLEAN_EXIT, server_a.logs()
        assert server_b.stop() in CLEAN_EXIT, server_b.logs()
        for server in (server_a, server_b):
            assert "Traceback" not in server.stderr, server.stderr[-3000:]

    # Nothing was written twice, and the refusals wrote nothing: one Registered event per
    # partner (and HQ), one request record per registration.
    store = Store.open(pg_url)
    try:
        topics = Counter(n.topic for n in store.ledger.recorder.select_notifications(0, 10_000))
        assert topics[Partner.Registered.TOPIC] == len(created) + 1
        assert topics[ClientRequest.Recorded.TOPIC] == len(created)
        assert store.engine.position() == store.head
    finally:
        store.close()

    # A projection rebuilt from zero equals the live one, which both servers fed at once.
    replayed = run_cli(["replay"], cli_env(pg_url), tmp_path)
    assert replayed.returncode == 0, replayed.stdout + replayed.stderr
    for p in default_projections():
        assert re.search(rf"^{p.name}\s+equal\b", replayed.stdout, re.M), replayed.stdout


def test_processes_opening_a_fresh_database_at_once(pg_url: str) -> None:
    """Several API processes or workers started together (compose up, a rolling deploy)
    on a brand-new database: each creates the schema if missing, and none may fail."""
    count = 4
    barrier = threading.Barrier(count)
    opened: list[Store] = []
    errors: list[str] = []
    lock = threading.Lock()

    def open_store() -> None:
        barrier.wait(timeout=30)
        try:
            store = Store.open(pg_url)
        except Exception as e:
            with lock:
                errors.append(f"{type(e).__name__}: {str(e).splitlines()[0]}")
            return
        with lock:
            opened.append(store)

    threads = [threading.Thread(target=open_store) for _ in range(count)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    try:
        assert not errors, f"{len(errors)} of {count} stores failed to open: {errors}"
        heads = {s.head for s in opened}
        assert heads == {1}, "HQ exists once"
    finally:
        for s in opened:
            s.close()


def test_a_server_sees_another_servers_revocation_and_suspension_at_once(
    pg_url: str, tmp_path: Path
) -> None:
    """Each server caches who a token is; the next request must still see a revocation,
    a suspension or a reactivation made through the other server, with no delay."""
    with (
        serving(pg_url, tmp_path, name="a") as (_a, base_a),
        serving(pg_url, tmp_path, name="b") as (_b, base_b),
        httpx.Client(timeout=10) as http,
    ):

        def hq_on_b(path: str, body: dict[str, Any], status: int = 200) -> dict[str, Any]:
            answer = http.post(f"{base_b}{path}", json=body, headers=bearer())
            assert answer.status_code == status, answer.text
            found: dict[str, Any] = answer.json()
            return found

        hq_on_b("/v1/partners", dealer("D1"), 201)
        tokens = [hq_on_b("/v1/tokens", {"partner": "D1", "role": "dealer"}, 201) for _ in "ab"]
        kept, lost = tokens

        def read_on_a(token: dict[str, Any]) -> httpx.Response:
            return http.get(f"{base_a}/v1/partners/D1", headers=bearer(token["token"]))

        for token in tokens:  # both now known to server A
            assert read_on_a(token).status_code == 200

        hq_on_b(f"/v1/tokens/{lost['token_id']}/revocation", {"reason": "lost"})
        assert read_on_a(lost).status_code == 401
        assert read_on_a(kept).status_code == 200

        hq_on_b("/v1/partners/D1/suspension", {"change_id": "c1", "reason": "audit"})
        refused = read_on_a(kept)
        assert refused.status_code == 403 and refused.json()["code"] == "partner_suspended"

        hq_on_b("/v1/partners/D1/reactivation", {"change_id": "c2"})
        assert read_on_a(kept).status_code == 200
        assert read_on_a(lost).status_code == 401
