"""Members and loyalty over HTTP, on SQLite and PostgreSQL: the member view and its scope,
redemptions, lots consumed earliest-expiry first and expired, tiers, tasks, the phone."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from domain.clock import FixedClock
from domain.points import expire_points
from tests.e2e.client import Api, running_api
from tests.e2e.flows import Channel, build_channel, consumer, outer, rows, to_store
from tests.e2e.test_channel import assert_problem
from tests.e2e.test_cli import cli_env, run_cli

START = datetime(2026, 3, 1, 2, 0, tzinfo=UTC)
PHONE = "13812345678"


@pytest.fixture
def clock() -> FixedClock:
    return FixedClock(START)


@pytest.fixture
def api(database_url: str, clock: FixedClock) -> Iterator[Api]:
    with running_api(database_url, clock=clock) as api:
        yield api


@pytest.fixture
def ch(api: Api) -> Channel:
    channel = build_channel(api)
    to_store(channel)
    return channel


def scan(
    ch: Channel, i: int, external_id: str, phone: str | None = None, referrer: str | None = None
):
    who: dict[str, str] = {"external_id": external_id}
    if phone is not None:
        who["phone"] = phone
    body: dict[str, object] = {
        "scan_id": f"s-{external_id}-{i}",
        "code": consumer(ch, i),
        "member": who,
    }
    if referrer is not None:
        body["referrer"] = referrer
    return ch.api.post("/v1/scans", body, token=ch.tokens["gateway"])


def member(ch: Channel, external_id: str, token: str | None = None):
    return ch.api.get(f"/v1/members/{external_id}", token=token or ch.tokens["hq"])


def adjust(ch: Channel, external_id: str, adjustment_id: str, points: int):
    body = {"adjustment_id": adjustment_id, "points": points, "reason": "goodwill"}
    return ch.api.post(f"/v1/members/{external_id}/adjustments", body, token=ch.tokens["hq"])


def redeem(ch: Channel, external_id: str, redemption_id: str, points: int, token: str = "gateway"):
    body = {"redemption_id": redemption_id, "points": points, "reward": "a cup"}
    return ch.api.post(f"/v1/members/{external_id}/redemptions", body, token=ch.tokens[token])


def test_member_view_scope_and_masked_phone(ch: Channel) -> None:
    first = scan(ch, 0, "m-1", phone=PHONE)
    assert first.status_code == 200, first.text
    assert first.json()["points_awarded"] == 10
    hq = member(ch, "m-1")
    assert hq.status_code == 200, hq.text
    got = hq.json()
    assert got["member_id"] == first.json()["member_id"]
    assert (got["points"], got["growth"], got["tier"]) == (10, 10, "bronze")
    assert got["bound_store"] == "S-SH" and got["referrer"] is None
    assert got["phone_masked"] == "138****5678"
    assert got["phone"] == PHONE, "the HQ role sees the phone in clear"
    assert got["lots"][0]["source"] == "scan" and got["lots"][0]["remaining"] == 10
    for who in ("gateway", "S-SH", "D-SH", "auditor"):
        seen = member(ch, "m-1", ch.tokens[who])
        assert seen.status_code == 200, (who, seen.text)
        assert "phone" not in seen.json() and PHONE not in seen.text
    for who in ("S-BJ", "D-BJ"):
        assert_problem(member(ch, "m-1", ch.tokens[who]), 404, "unknown_member")
    assert_problem(member(ch, "nobody"), 404, "unknown_member")


def test_redemptions_never_overdraw_and_are_idempotent(ch: Channel) -> None:
    assert scan(ch, 0, "m-2").status_code == 200
    first = redeem(ch, "m-2", "r-1", 4)
    assert first.status_code == 201, first.text
    assert first.json()["points_left"] == 6
    again = redeem(ch, "m-2", "r-1", 4)
    assert again.status_code == 201 and again.json() == first.json()
    assert_problem(redeem(ch, "m-2", "r-1", 5), 409, "idempotency_mismatch")
    assert_problem(redeem(ch, "m-2", "r-2", 7), 422, "insufficient_points")
    assert redeem(ch, "m-2", "r-2", 6).json()["points_left"] == 0  # the refused id is free again
    assert_problem(redeem(ch, "m-2", "r-3", 1), 422, "insufficient_points")
    assert_problem(redeem(ch, "m-2", "r-4", 1, token="S-SH"), 403)
    assert_problem(redeem(ch, "nobody", "r-5", 1), 404, "unknown_member")
    body = {"redemption_id": "r-6", "points": 0, "reward": "x"}
    assert_problem(ch.api.post("/v1/members/m-2/redemptions", body, token=ch.tokens["hq"]), 400)
    history = ch.api.get("/v1/members/m-2/points", token=ch.tokens["hq"]).json()["items"]
    assert [(e["kind"], e["points"], e["balance"]) for e in history] == [
        ("earned", 10, 10),
        ("spent", -4, 6),
        ("spent", -6, 0),
    ]
    assert all(e["reason"] and e["cause"] for e in history), "every entry says why"
    assert history[1]["lots"] == [{"lot_id": history[0]["lots"][0]["lot_id"], "points": 4}]


def test_lots_are_spent_earliest_expiry_first_and_expire(ch: Channel, clock: FixedClock) -> None:
    assert scan(ch, 0, "m-3").status_code == 200  # lot 1: 10 points, expires START + 365 d
    clock.advance(timedelta(days=10))
    assert adjust(ch, "m-3", "a-1", 20).status_code == 201  # lot 2: expires START + 375 d
    spent = redeem(ch, "m-3", "r-1", 12)
    assert spent.status_code == 201, spent.text
    lots = spent.json()["lots"]
    assert [lot["points"] for lot in lots] == [10, 2]
    assert lots[0]["lot_id"].startswith("scan:") and lots[1]["lot_id"].startswith("adjustment:")
    clock.advance(timedelta(days=355, hours=1))  # lot 2 still lives; then it is due
    assert expire_points(ch.api.store.ledger, clock.now) == 0
    assert member(ch, "m-3").json()["points"] == 18
    clock.advance(timedelta(days=10))
    assert expire_points(ch.api.store.ledger, clock.now) == 1
    assert expire_points(ch.api.store.ledger, clock.now) == 0, "a lot expires once"
    ch.api.position = ch.api.head()
    got = member(ch, "m-3").json()
    assert (got["points"], got["lots"]) == (0, [])
    history = ch.api.get("/v1/members/m-3/points", token=ch.tokens["hq"]).json()["items"]
    assert history[-1]["kind"] == "expired" and history[-1]["points"] == -18
    assert_problem(redeem(ch, "m-3", "r-2", 1), 422, "insufficient_points")


def test_a_spend_never_takes_a_lot_past_its_expiry(ch: Channel, clock: FixedClock) -> None:
    assert scan(ch, 0, "m-4").status_code == 200
    clock.advance(timedelta(days=366))  # the lot is due, and no sweep has run
    assert_problem(redeem(ch, "m-4", "r-1", 1), 422, "insufficient_points")
    assert adjust(ch, "m-4", "a-1", 3).status_code == 201
    got = member(ch, "m-4").json()
    assert (got["points"], [lot["remaining"] for lot in got["lots"]]) == (3, [3])


def big_product(ch: Channel, points: int = 600, count: int = 4) -> list[str]:
    product = {
        "sku": "BIG",
        "gtin": "06901234567908",
        "name": "Big",
        "price": 100,
        "points_per_scan": points,
    }
    assert ch.api.post("/v1/products", product).status_code == 201
    batch = {"batch_id": "B-BIG", "sku": "BIG", "count": count, "level": "unit"}
    assert ch.api.post("/v1/code-batches", batch, token=ch.tokens["factory"]).status_code == 201
    return [r["consumer_code"] for r in rows(ch.api, "B-BIG")]


def test_tier_upgrades_on_the_crossing_event_and_multiplies_from_the_next(ch: Channel) -> None:
    codes = big_product(ch)
    awarded = []
    for i, code in enumerate(codes[:3]):
        body = {"scan_id": f"big-{i}", "code": code, "member": {"external_id": "m-5"}}
        r = ch.api.post("/v1/scans", body, token=ch.tokens["gateway"])
        assert r.status_code == 200, r.text
        awarded.append(r.json()["points_awarded"])
        if i == 1:
            assert member(ch, "m-5").json()["tier"] == "silver"  # 1,200 crossed 1,000
    assert awarded == [600, 600, 720]  # 1.2x from the credit after the crossing
    got = member(ch, "m-5").json()
    assert (got["tier"], got["growth"], got["points"]) == ("silver", 1920, 1920)
    mix = ch.api.get("/v1/tiers/distribution", token=ch.tokens["hq"]).json()
    assert mix["tiers"] == {"silver": 1}


def test_published_policy_rules_and_a_scan_task(ch: Channel) -> None:
    policy = {
        "policy_id": "tiers-2026",
        "tiers": [
            {"name": "member", "threshold": 0, "multiplier_bp": 10000},
            {"name": "vip", "threshold": 15, "multiplier_bp": 30000, "discount_bp": 500},
        ],
    }
    assert_problem(ch.api.post("/v1/tier-policies", policy, token=ch.tokens["D-SH"]), 403)
    published = ch.api.post("/v1/tier-policies", policy, token=ch.tokens["hq"])
    assert published.status_code == 201, published.text
    assert published.json()["version"] == 1
    rules = {"rules_id": "r-2026", "sku_points": {"TEA-500": 7}, "daily_cap": 100}
    assert ch.api.post("/v1/point-rules", rules, token=ch.tokens["hq"]).status_code == 201
    task = {
        "task_id": "scan-2",
        "kind": "scan_distinct",
        "target": 1,
        "reward_points": 50,
        "starts_at": "2026-01-01T00:00:00+08:00",
        "ends_at": "2027-01-01T00:00:00+08:00",
    }
    published_task = ch.api.post("/v1/member-tasks", task, token=ch.tokens["hq"])
    assert published_task.status_code == 201, published_task.text
    # the same period written in UTC is the same task: a repeat; another instant is not
    in_utc = task | {"starts_at": "2025-12-31T16:00:00+00:00", "ends_at": "2026-12-31T16:00:00Z"}
    again = ch.api.post("/v1/member-tasks", in_utc, token=ch.tokens["hq"])
    assert again.status_code == 201, again.text
    assert again.json() == published_task.json()
    moved = task | {"ends_at": "2027-01-01T00:00:01+08:00"}
    assert_problem(
        ch.api.post("/v1/member-tasks", moved, token=ch.tokens["hq"]), 409, "idempotency_mismatch"
    )
    first = scan(ch, 0, "m-6")
    assert first.json()["points_awarded"] == 7  # the SKU rule, not the product's 10
    got = member(ch, "m-6").json()
    assert (got["points"], got["tier"]) == (57, "vip")  # the task's reward crossed 15
    tasks = ch.api.get("/v1/members/m-6/tasks", token=ch.tokens["hq"]).json()["items"]
    assert tasks == [{"task_id": "scan-2", "progress": 1, "target": 1, "completed": True}]
    assert scan(ch, 1, "m-6").json()["points_awarded"] == 21  # 7 x 3.0


def test_the_phone_is_in_clear_nowhere(ch: Channel, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    first = scan(ch, 0, "m-7", phone=PHONE)
    assert first.status_code == 200 and PHONE not in first.text
    body = {"change_id": "c-1", "name": "王小明", "phone": "13900001111"}
    updated = ch.api.post("/v1/members/m-7/contact", body, token=ch.tokens["gateway"])
    assert updated.status_code == 200 and PHONE not in updated.text
    assert redeem(ch, "m-7", "r-1", 1).status_code == 201
    for who in ("gateway", "S-SH", "D-SH", "auditor"):
        for path in ("/v1/members/m-7", "/v1/members/m-7/points"):
            r = ch.api.get(path, token=ch.tokens[who])
            assert r.status_code == 200 and PHONE not in r.text and "13900001111" not in r.text
    feed = ch.api.get("/v1/events", token=ch.tokens["auditor"], limit=1000)
    if feed.status_code == 200:
        assert PHONE not in feed.text and "王小明" not in feed.text
    store = ch.api.store
    assert store is not None
    store.engine.catch_up()
    for n in store.ledger.recorder.select_notifications(0, 10_000):
        assert PHONE.encode() not in n.state and b"13900001111" not in n.state
    with store.views.read() as tx:
        for p in store.engine.projections:
            for table in p.tables:
                for row in tx.fetchall(f"SELECT * FROM {table}"):
                    text = repr(row)
                    assert PHONE not in text and "13900001111" not in text, (table, row)
    assert member(ch, "m-7").json()["phone_masked"] == "139****1111"
    for record in caplog.records:
        assert PHONE not in record.getMessage() and "13900001111" not in record.getMessage()


def test_orders_earn_points_and_growth_and_refunds_take_them_back(
    ch: Channel, clock: FixedClock
) -> None:
    reg = ch.api.partner("R-1", "distributor", "S-SH")
    assert reg.status_code == 201, reg.text
    task = {
        "task_id": "first-order",
        "kind": "first_order",
        "target": 1,
        "reward_points": 40,
        "starts_at": "2026-01-01T00:00:00+08:00",
        "ends_at": "2027-01-01T00:00:00+08:00",
    }
    assert ch.api.post("/v1/member-tasks", task, token=ch.tokens["hq"]).status_code == 201
    assert scan(ch, 0, "m-8", referrer="R-1").status_code == 200
    order = {
        "order_id": "O-1",
        "member": "m-8",
        "fulfilment": "pickup",
        "lines": [{"sku": "TEA-500", "qty": 1, "unit_price": 150_000}],
    }
    placed = ch.api.post("/v1/orders", order, token=ch.tokens["gateway"])
    assert placed.status_code == 201, placed.text
    assert placed.json()["distributor"] == "R-1"
    pay = {"payment_id": "P-1", "amount": 150_000}
    assert (
        ch.api.post("/v1/orders/O-1/payments", pay, token=ch.tokens["gateway"]).status_code == 200
    )
    got = member(ch, "m-8").json()
    # 10 (scan) + 1,500 (a point per yuan) + 40 (first order task); growth adds 1,500 yuan.
    assert (got["points"], got["growth"], got["tier"]) == (1550, 3050, "silver")
    refund = {"refund_id": "F-1", "amount": 75_000}
    assert (
        ch.api.post("/v1/orders/O-1/refunds", refund, token=ch.tokens["gateway"]).status_code == 200
    )
    got = member(ch, "m-8").json()
    assert (got["points"], got["growth"]) == (800, 1550)  # half of 1,500 points, of 3,000 growth
    assert got["tier"] == "silver", "no downgrade before the yearly evaluation"
    history = ch.api.get("/v1/members/m-8/points", token=ch.tokens["hq"]).json()["items"]
    assert history[-1]["kind"] == "reversed" and history[-1]["reason"] == "refund"
    assert history[-1]["lots"] == [{"lot_id": "order:O-1:P-1", "points": 750}]
    # The distributor's growth counts the sale when its return window closes, net.
    standing = ch.api.get("/v1/distributors/R-1/standing", token=ch.tokens["S-SH"]).json()
    assert (standing["sales"], standing["level"]) == (0, None)
    clock.advance(timedelta(days=8))
    assert ch.api.post("/v1/settlements", {}, token=ch.tokens["hq"]).status_code == 200
    standing = ch.api.get(
        "/v1/distributors/R-1/standing", token=ch.tokens["S-SH"], min_position=ch.api.head()
    ).json()
    assert (standing["sales"], standing["level"]) == (75_000, "starter")


def test_clerk_task_progress_and_the_4r_dashboard(ch: Channel) -> None:
    assert ch.api.partner("C-1", "clerk", "S-SH").status_code == 201
    clerk = ch.api.token("C-1", "clerk")
    task = {
        "task_id": "sell-tea",
        "kind": "sell_units",
        "sku": "TEA-500",
        "target": 2,
        "reward": 5000,
        "starts_at": "2026-01-01T00:00:00+08:00",
        "ends_at": "2027-01-01T00:00:00+08:00",
    }
    assert ch.api.post("/v1/clerk-tasks", task, token=ch.tokens["hq"]).status_code == 201
    assert ch.move("S-SH", "sell", [outer(ch, 0), outer(ch, 1)]).status_code == 200
    assert scan(ch, 0, "m-9", referrer="C-1").status_code == 200
    for token in (clerk, ch.tokens["S-SH"], ch.tokens["D-SH"]):
        items = ch.api.get("/v1/clerk-tasks/progress", token=token).json()["items"]
        assert [(i["clerk"], i["units"], i["completed"]) for i in items] == [("C-1", 1, False)]
    assert ch.api.get("/v1/clerk-tasks/progress", token=ch.tokens["S-BJ"]).json()["items"] == []
    assert scan(ch, 1, "m-10", referrer="C-1").status_code == 200
    items = ch.api.get("/v1/clerk-tasks/progress", token=clerk).json()["items"]
    assert (items[0]["units"], items[0]["completed"], items[0]["reward"]) == (2, True, 5000)
    seen = member(ch, "m-9", clerk)
    assert seen.status_code == 200 and "phone" not in seen.json()

    day = START.date().isoformat()
    board = ch.api.get("/v1/dashboard/4r", token=ch.tokens["D-SH"], **{"from": day, "to": day})
    assert board.status_code == 200, board.text
    figures = board.json()
    assert figures["recognize"] == {"sold_units": 2, "recognized_units": 2, "share_bp": 10000}
    assert figures["reach"]["by_store"] == {"S-SH": 2}
    assert figures["reach"]["by_referrer"] == {"C-1": 2}
    assert figures["relationship"]["active_members"] == 2
    assert figures["relationship"]["tier_mix"] == {"bronze": 2}
    other = ch.api.get("/v1/dashboard/4r", token=ch.tokens["D-BJ"], partner="D-SH")
    assert_problem(other, 404)
    assert_problem(ch.api.get("/v1/dashboard/4r", token=ch.tokens["S-SH"]), 404)
    hq = ch.api.get("/v1/dashboard/4r", token=ch.tokens["hq"], **{"from": day, "to": day})
    assert hq.json()["reach"]["online"] == 0


def test_profile_rebinding_tags_and_a_group_leader_inviting(ch: Channel) -> None:
    assert scan(ch, 0, "m-11").status_code == 200
    body = {"change_id": "b-1", "store": "S-BJ", "reason": "moved to Beijing"}
    assert_problem(ch.api.post("/v1/members/m-11/binding", body, token=ch.tokens["S-SH"]), 403)
    moved = ch.api.post("/v1/members/m-11/binding", body, token=ch.tokens["hq"])
    assert moved.status_code == 200, moved.text
    tags = {"change_id": "t-1", "tags": ["tea-lover", "vip-prospect"]}
    assert ch.api.post("/v1/members/m-11/tags", tags, token=ch.tokens["hq"]).status_code == 200
    got = member(ch, "m-11").json()
    assert (got["bound_store"], got["first_store"]) == ("S-BJ", "S-SH")
    assert got["tags"] == ["tea-lover", "vip-prospect"] and got["channel"] == "scan"
    assert member(ch, "m-11", ch.tokens["S-BJ"]).status_code == 200
    assert_problem(member(ch, "m-11", ch.tokens["S-SH"]), 404)

    assert ch.api.partner("R-9", "distributor", "S-SH").status_code == 201
    link = ch.api.post("/v1/members/m-11/distributor", {"partner": "R-9"}, token=ch.tokens["S-SH"])
    assert link.status_code == 201, link.text
    again = ch.api.post("/v1/members/m-11/distributor", {"partner": "R-9"}, token=ch.tokens["hq"])
    assert again.json()["position"] == link.json()["position"]
    invite = {
        "task_id": "invite-1",
        "kind": "invite",
        "target": 1,
        "reward_points": 25,
        "starts_at": "2026-01-01T00:00:00+08:00",
        "ends_at": "2027-01-01T00:00:00+08:00",
    }
    assert ch.api.post("/v1/member-tasks", invite, token=ch.tokens["hq"]).status_code == 201
    assert scan(ch, 1, "m-12", referrer="R-9").status_code == 200
    assert member(ch, "m-11").json()["points"] == 10 + 25  # the invitee scanned
    standing = ch.api.get("/v1/distributors/R-9/standing", token=ch.tokens["hq"]).json()
    assert standing["member_id"] == got["member_id"]
    policy = ch.api.get("/v1/tier-policies/current", token=ch.tokens["hq"]).json()
    assert [t["threshold"] for t in policy["tiers"]] == [0, 1000, 5000, 20000]


def test_siyu_settle_expires_due_lots(ch: Channel, database_url: str, tmp_path: Path) -> None:
    assert scan(ch, 0, "m-13").status_code == 200
    assert scan(ch, 1, "m-14").status_code == 200
    later = (START + timedelta(days=366)).isoformat()
    settled = run_cli(["settle", "--now", later, "--allow-future"], cli_env(database_url), tmp_path)
    assert settled.returncode == 0, settled.stdout + settled.stderr
    assert "expired 2 points lots" in settled.stdout, settled.stdout
    again = run_cli(
        ["expire-points", "--now", later, "--allow-future"], cli_env(database_url), tmp_path
    )
    assert again.returncode == 0 and "expired 0 lots" in again.stdout, again.stdout
    ch.api.position = ch.api.head()
    assert member(ch, "m-13").json()["points"] == 0


def test_member_and_trace_as_of_a_past_time(ch: Channel, clock: FixedClock) -> None:
    """Time travel on reads: T maps to the last position committed by T (time index)."""
    from datetime import timedelta

    clock.advance(timedelta(hours=1))
    assert scan(ch, 0, "wx-then").status_code == 200  # first scan: 10 points
    between = clock.now + timedelta(minutes=30)
    clock.advance(timedelta(hours=1))
    assert scan(ch, 1, "wx-then").status_code == 200  # another unit: 20 points in all
    assert ch.move("S-SH", "sell", [outer(ch, 2)]).status_code == 200
    now = member(ch, "wx-then").json()
    assert now["points"] == 20
    then = ch.api.get("/v1/members/wx-then", token=ch.tokens["hq"], as_of=between.isoformat())
    assert then.status_code == 200, then.text
    assert then.json()["points"] == 10 and then.json()["tier"] == now["tier"] == "bronze"
    assert then.json()["as_of_position"] < ch.api.position
    before = ch.api.get(
        "/v1/members/wx-then", token=ch.tokens["hq"], as_of=(START - timedelta(days=1)).isoformat()
    )
    assert before.status_code == 404
    assert ch.api.get("/v1/members/wx-then", as_of="yesterday").status_code == 422
    # The trace of unit 2 as of `between`: in stock at the store, not yet sold.
    trace_now = ch.api.get(f"/v1/codes/{outer(ch, 2)}/trace", token=ch.tokens["hq"]).json()
    assert trace_now["state"] == "sold"
    past = ch.api.get(
        f"/v1/codes/{outer(ch, 2)}/trace", token=ch.tokens["hq"], as_of=between.isoformat()
    ).json()
    assert past["state"] == "in_stock" and past["owner"] == "S-SH"
    assert past["container"] == ch.cases[0]
    assert [h["action"] for h in past["history"]][-1] == "receive"
    assert len(past["history"]) < len(trace_now["history"])


def test_a_member_id_no_path_can_name_is_refused_where_a_member_is_made(ch: Channel) -> None:
    """A member made as ``a/b`` or ``..`` could never be read or spend their points
    (``/v1/members/{external_id}``): the scan or order that would make them is refused."""
    head = ch.api.head()
    for bad in ["a/b", "..", ".", " m-1", "m-1 ", "m\x00-1", "m\n1"]:
        body = {"scan_id": "s-bad", "code": consumer(ch, 0), "member": {"external_id": bad}}
        refused = ch.api.post("/v1/scans", body)
        assert refused.status_code == 422, (bad, refused.text)
        assert refused.json()["errors"][0]["field"] == "member.external_id", refused.text
        order = {
            "order_id": "O-BAD",
            "member": bad,
            "lines": [{"sku": "TEA-500", "qty": 1, "unit_price": 100}],
            "fulfilment": "pickup",
            "location": {"lat": 31.2304, "lng": 121.4737},
        }
        refused = ch.api.post("/v1/orders", order)
        assert refused.status_code == 422, (bad, refused.text)
        assert refused.json()["errors"][0]["field"] == "member", refused.text
    assert ch.api.head() == head, "nothing was written"
    fine = "m 1.x"  # a space inside, a dot: nameable
    body = {"scan_id": "s-fine", "code": consumer(ch, 0), "member": {"external_id": fine}}
    assert ch.api.post("/v1/scans", body).status_code == 200
    quoted = fine.replace(" ", "%20")
    read = ch.api.get(f"/v1/members/{quoted}")
    assert read.status_code == 200, read.text
