"""Provably fair lucky draws over HTTP (SQLite and PostgreSQL): the commitment, draws paid
with points, stock never oversold, the reveal, verification (and a changed seed fails)."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path

import pytest

from domain.carry_forward import state_of
from domain.draws import PrizeStock, prize_stock_id
from domain.handlers.draws import verify_campaign
from tests.e2e.client import Api, running_api
from tests.e2e.flows import Channel, build_channel, consumer
from tests.e2e.test_channel import assert_problem
from tests.e2e.test_cli import cli_env, run_cli

CAMPAIGN = {
    "campaign_id": "spring",
    "name": "Spring wheel",
    "cost_points": 5,
    "prizes": [
        {
            "prize_id": "car",
            "name": "A small car",
            "value": 5_000_000,
            "probability_ppm": 10,
            "stock": 1,
        },
        {"prize_id": "mug", "name": "A mug", "value": 3000, "probability_ppm": 600_000, "stock": 2},
        {
            "prize_id": "bonus",
            "name": "20 points",
            "value": 0,
            "probability_ppm": 200_000,
            "stock": 100,
            "points": 20,
        },
    ],
}


@pytest.fixture
def api(database_url: str) -> Iterator[Api]:
    with running_api(database_url) as api:
        yield api


@pytest.fixture
def ch(api: Api) -> Channel:
    channel = build_channel(api)
    body = {"scan_id": "join", "code": consumer(channel, 0), "member": {"external_id": "m-1"}}
    assert api.post("/v1/scans", body, token=channel.tokens["gateway"]).status_code == 200
    grant = {"adjustment_id": "a-1", "points": 200, "reason": "draw credit"}
    assert api.post("/v1/members/m-1/adjustments", grant).status_code == 201
    return channel


def draw(ch: Channel, draw_id: str, seed: str = "lucky", campaign: str = "spring"):
    body = {"draw_id": draw_id, "campaign_id": campaign, "client_seed": seed}
    return ch.api.post("/v1/members/m-1/draws", body, token=ch.tokens["gateway"])


def test_campaign_rules(ch: Channel) -> None:
    over = {
        **CAMPAIGN,
        "campaign_id": "x",
        "prizes": [
            {"prize_id": "p", "name": "p", "value": 5_000_001, "probability_ppm": 1, "stock": 1}
        ],
    }
    assert_problem(ch.api.post("/v1/lucky-draws", over), 422, "prize_over_legal_cap")
    too_likely = {
        **CAMPAIGN,
        "campaign_id": "y",
        "prizes": [
            {"prize_id": "p", "name": "p", "value": 1, "probability_ppm": 700_000, "stock": 1},
            {"prize_id": "q", "name": "q", "value": 1, "probability_ppm": 400_000, "stock": 1},
        ],
    }
    assert_problem(ch.api.post("/v1/lucky-draws", too_likely), 422)
    assert_problem(ch.api.post("/v1/lucky-draws", CAMPAIGN, token=ch.tokens["D-SH"]), 403)
    assert_problem(draw(ch, "d-0", campaign="nope"), 404, "unknown_campaign")


def test_draws_verify_after_the_reveal(ch: Channel, tmp_path: Path, database_url: str) -> None:
    opened = ch.api.post("/v1/lucky-draws", CAMPAIGN)
    assert opened.status_code == 201, opened.text
    seed_hash = opened.json()["seed_hash"]
    assert ch.api.get("/v1/lucky-draws/spring").json()["seed"] is None, "secret until the close"
    answers = []
    for i in range(30):
        r = draw(ch, f"d-{i}", seed=f"seed-{i % 3}")
        if r.status_code == 422:
            assert r.json()["code"] == "insufficient_points"
            break
        assert r.status_code == 201, r.text
        answers.append(r.json())
    assert [a["counter"] for a in answers] == list(range(len(answers)))
    again = draw(ch, "d-0", seed="seed-0")
    assert again.json() == answers[0], "a draw id answers once"
    assert_problem(draw(ch, "d-0", seed="other"), 409, "idempotency_mismatch")
    awarded: dict[str, int] = {}
    for a in answers:
        if a["awarded"]:
            awarded[a["prize_id"]] = awarded.get(a["prize_id"], 0) + 1
    assert awarded.get("mug", 0) <= 2 and awarded.get("car", 0) <= 1
    campaign = ch.api.get("/v1/lucky-draws/spring").json()
    assert {p["prize_id"]: p["remaining"] for p in campaign["prizes"]}["mug"] == 2 - awarded.get(
        "mug", 0
    )
    assert_problem(ch.api.get("/v1/lucky-draws/spring/verification"), 409, "campaign_open")

    closed = ch.api.post("/v1/lucky-draws/spring/close", {})
    assert closed.status_code == 200, closed.text
    seed = closed.json()["seed"]
    assert hashlib.sha256(bytes.fromhex(seed)).hexdigest() == seed_hash
    assert ch.api.post("/v1/lucky-draws/spring/close", {}).json() == closed.json()
    assert_problem(draw(ch, "d-late"), 409, "campaign_closed")
    verified = ch.api.get("/v1/lucky-draws/spring/verification", token=ch.tokens["auditor"])
    assert verified.status_code == 200, verified.text
    report = verified.json()
    assert report["ok"] and report["checked"] == len(answers), report
    assert report["awarded"] == dict(sorted(awarded.items()))

    store = ch.api.store
    assert store is not None
    forged = "00" * 32
    bad = verify_campaign(store.ledger, "spring", seed=forged)
    assert not bad.ok and not bad.seed_matches and bad.failures, "a changed seed fails"

    env = cli_env(database_url)
    ok = run_cli(["verify-draws", "spring"], env, tmp_path)
    assert ok.returncode == 0 and ok.stdout.strip().splitlines()[-1] == "ok", ok.stdout + ok.stderr
    failed = run_cli(["verify-draws", "spring", "--seed", forged], env, tmp_path)
    assert failed.returncode == 1 and failed.stdout.strip().splitlines()[-1] == "failed"


def test_a_prize_stock_carried_forward_is_never_oversold(ch: Channel) -> None:
    """A prize's stock takes an event per award: read from its state carried forward,
    the last unit is awarded once and no draw after it wins; the campaign's count and the
    verification after the reveal agree with the whole history."""
    stock = PrizeStock.CARRY_FORWARD_EVERY + 3
    sure = {
        "campaign_id": "sure",
        "name": "Every draw wins while stock lasts",
        "cost_points": 5,
        "prizes": [
            {"prize_id": "pen", "name": "A pen", "value": 100, "probability_ppm": 1_000_000,
             "stock": stock},
        ],
    }  # fmt: skip
    assert ch.api.post("/v1/lucky-draws", sure).status_code == 201
    answers = []
    for i in range(stock + 2):
        r = draw(ch, f"s-{i}", seed=f"s-{i}", campaign="sure")
        assert r.status_code == 201, r.text
        answers.append(r.json())
    assert [a["awarded"] for a in answers] == [True] * stock + [False, False]
    prizes = ch.api.get("/v1/lucky-draws/sure").json()["prizes"]
    assert [(p["prize_id"], p["remaining"]) for p in prizes] == [("pen", 0)]

    store = ch.api.store
    assert store is not None
    stock_id = prize_stock_id("sure", "pen")
    stream = list(store.ledger.recorder.select_events(stock_id))
    assert [e.topic for e in stream].count(PrizeStock.CarriedForward.TOPIC) == 1
    select_many = store.ledger.select_many
    assert select_many is not None
    assert select_many([stock_id])[stock_id][0].topic == PrizeStock.CarriedForward.TOPIC
    loaded = store.ledger.load_many([stock_id])[stock_id]
    assert isinstance(loaded, PrizeStock) and loaded.remaining == 0
    assert state_of(loaded) == state_of(store.ledger.repository.get(stock_id))

    assert ch.api.post("/v1/lucky-draws/sure/close", {}).status_code == 200
    verified = ch.api.get("/v1/lucky-draws/sure/verification", token=ch.tokens["auditor"])
    assert verified.status_code == 200, verified.text
    assert verified.json()["ok"] and verified.json()["awarded"] == {"pen": stock}
