"""Orders, splits and the double-entry ledger over HTTP, on SQLite and PostgreSQL.

Time is a FixedClock the tests move: return windows close when the test says so.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from domain.carry_forward import state_of
from domain.clock import FixedClock
from domain.withdrawals import PayoutAccount, payout_account_id
from tests.e2e.client import Api, dealer, running_api, store_body
from tests.e2e.test_channel import assert_problem
from tests.e2e.test_cli import cli_env, run_cli

START = datetime.fromisoformat("2024-06-01T10:00:00+08:00")
SEED = {"distributor": 1000, "store": 3000, "dealer": 2000, "brand": 4000}


@dataclass
class Mall:
    api: Api
    clock: FixedClock
    tokens: dict[str, str] = field(default_factory=dict)
    seq: int = 0

    def next_id(self, prefix: str) -> str:
        self.seq += 1
        return f"{prefix}-{self.seq}"

    def order(
        self,
        member: str,
        amount: int = 10_000,
        fulfilment: str = "hq_dropship",
        sku: str = "TEA",
        **extra: Any,
    ) -> Any:
        body = {
            "order_id": self.next_id("O"),
            "member": member,
            "lines": [{"sku": sku, "qty": 1, "unit_price": amount}],
            "fulfilment": fulfilment,
            **extra,
        }
        return self.api.post("/v1/orders", body, token=self.tokens["gateway"])

    def paid_order(self, member: str, amount: int = 10_000, **extra: Any) -> dict[str, Any]:
        placed = self.order(member, amount, **extra)
        assert placed.status_code == 201, placed.text
        order_id = placed.json()["order_id"]
        paid = self.pay(order_id, amount)
        assert paid.status_code == 200, paid.text
        return {**placed.json(), "split": paid.json()["split"]}

    def pay(self, order_id: str, amount: int) -> Any:
        body = {"payment_id": self.next_id("pay"), "amount": amount}
        return self.api.post(f"/v1/orders/{order_id}/payments", body, token=self.tokens["gateway"])

    def refund(self, order_id: str, amount: int, refund_id: str | None = None) -> Any:
        body = {"refund_id": refund_id or self.next_id("ref"), "amount": amount}
        return self.api.post(f"/v1/orders/{order_id}/refunds", body, token=self.tokens["gateway"])

    def fulfil(self, order_id: str, token: str | None = None) -> Any:
        body = {"fulfilment_id": self.next_id("ful")}
        return self.api.post(
            f"/v1/orders/{order_id}/fulfilment", body, token=token or self.tokens["gateway"]
        )

    def balance(self, partner: str, token: str | None = None, **params: Any) -> dict[str, Any]:
        response = self.api.get(
            f"/v1/balances/{partner}", token=token or self.tokens["hq"], **params
        )
        assert response.status_code == 200, response.text
        return dict(response.json())

    def settle(self) -> dict[str, Any]:
        response = self.api.post("/v1/settlements", {}, token=self.tokens["hq"])
        assert response.status_code == 200, response.text
        return dict(response.json())


@pytest.fixture
def mall(database_url: str) -> Iterator[Mall]:
    clock = FixedClock(START)
    with running_api(database_url, clock=clock) as api:
        yield build_mall(api, clock)


def build_mall(api: Api, clock: FixedClock) -> Mall:
    """HQ -> D-SH -> S-SH (People's Square), S-PD (Pudong) -> distributor R-SH, clerk C-SH;
    HQ -> D-BJ -> S-BJ. Products TEA (general) and CAKE (bakery)."""
    m = Mall(api, clock)
    for body in (
        dealer("D-SH", ["31"]),
        dealer("D-BJ", ["11"]),
        store_body("S-SH", "D-SH", lat=31.2304, lng=121.4737),
        store_body("S-PD", "D-SH", lat=31.2222, lng=121.5440, region="310115"),
        store_body("S-BJ", "D-BJ", lat=39.9139, lng=116.4105, region="110101"),
        {"code": "R-SH", "kind": "distributor", "parent": "S-SH", "name": "distributor"},
        {"code": "C-SH", "kind": "clerk", "parent": "S-SH", "name": "clerk"},
    ):
        assert api.post("/v1/partners", body).status_code == 201, body
    for sku, gtin, category in (
        ("TEA", "06901234567892", "general"),
        ("CAKE", "06901234567809", "bakery"),
    ):
        product = {
            "sku": sku,
            "gtin": gtin,
            "name": sku,
            "price": 10_000,
            "points_per_scan": 1,
            "category": category,
        }
        response = api.post("/v1/products", product)
        assert response.status_code == 201, response.text
    for who, partner, role in (
        ("hq", "HQ", "hq"),
        ("gateway", "HQ", "gateway"),
        ("auditor", "HQ", "auditor"),
        ("D-SH", "D-SH", "dealer"),
        ("D-BJ", "D-BJ", "dealer"),
        ("S-SH", "S-SH", "store"),
        ("S-PD", "S-PD", "store"),
        ("S-BJ", "S-BJ", "store"),
        ("R-SH", "R-SH", "distributor"),
    ):
        m.tokens[who] = api.token(partner, role)
    return m


# -- splits -----------------------------------------------------------------------------


def test_the_seed_example_and_odd_amounts(mall: Mall) -> None:
    with_distributor = mall.paid_order("m-seed-1", referrer="R-SH")
    assert with_distributor["split"] == SEED
    assert with_distributor["distributor"] == "R-SH"
    assert with_distributor["store"] == "S-SH" and with_distributor["dealer"] == "D-SH"
    without = mall.paid_order("m-seed-2", location={"lat": 31.2304, "lng": 121.4737})
    assert without["split"] == {"store": 4000, "dealer": 2000, "brand": 4000}
    assert without["distributor"] is None
    odd = mall.paid_order("m-seed-1", amount=333)  # the referrer stuck
    assert odd["split"] == {"distributor": 33, "store": 99, "dealer": 66, "brand": 135}
    pickup = mall.paid_order("m-seed-2", amount=999, fulfilment="pickup")
    assert pickup["split"] == {"store": 999}
    view = mall.api.get(f"/v1/orders/{with_distributor['order_id']}", token=mall.tokens["hq"])
    assert view.status_code == 200, view.text
    body = view.json()
    assert body["status"] == "paid" and body["paid"] == 10_000 and body["split"] == SEED
    assert body["policy"] == {"policy_id": "default-hq_dropship", "version": 0}
    # 100% went to the store's account and was split from there, in the same transaction
    assert mall.balance("S-SH")["pending"] == 3000 + 4000 + 99 + 999
    assert mall.balance("HQ")["pending"] == 4000 + 4000 + 135


def test_hq_publishes_versioned_policies_and_orders_record_theirs(mall: Mall) -> None:
    policy = {
        "policy_id": "DS-2024-07",
        "fulfilment": "hq_dropship",
        "rates_bp": {"distributor": 500, "store": 3500, "dealer": 2000, "brand": 4000},
        "rates_bp_without_distributor": {"store": 4000, "dealer": 2000, "brand": 4000},
        "remainder_to": "brand",
        "return_window_days": 7,
        "return_window_days_by_category": {"bakery": 0},
        "overrides": [
            {
                "category": "bakery",
                "rates_bp": {"distributor": 0, "store": 6000, "dealer": 0, "brand": 4000},
                "rates_bp_without_distributor": {"store": 6000, "brand": 4000},
            }
        ],
        "effective_from": (START + timedelta(hours=1)).isoformat(),
    }
    hq = mall.tokens["hq"]
    assert_problem(mall.api.post("/v1/split-policies", policy, token=mall.tokens["D-SH"]), 403)
    bad = policy | {"rates_bp": {"store": 5000, "brand": 4000}}
    assert assert_problem(mall.api.post("/v1/split-policies", bad, token=hq), 422)["errors"]
    unknown = policy | {"rates_bp": {"owner": 10000}}
    assert_problem(mall.api.post("/v1/split-policies", unknown, token=hq), 422)
    published = mall.api.post("/v1/split-policies", policy, token=hq)
    assert published.status_code == 201, published.text
    assert published.json()["version"] == 1
    again = mall.api.post("/v1/split-policies", policy, token=hq)
    assert again.json()["position"] == published.json()["position"]
    # the same instant written in another offset is the same policy: a repeat
    in_utc = (START + timedelta(hours=1)).astimezone(UTC).isoformat()
    assert in_utc != policy["effective_from"]
    same = mall.api.post("/v1/split-policies", policy | {"effective_from": in_utc}, token=hq)
    assert same.status_code == 201, same.text
    assert same.json() == published.json()
    later = (START + timedelta(hours=1, seconds=1)).isoformat()
    assert_problem(
        mall.api.post("/v1/split-policies", policy | {"effective_from": later}, token=hq),
        409,
        "idempotency_mismatch",
    )
    other = policy | {"return_window_days": 3}
    assert_problem(
        mall.api.post("/v1/split-policies", other, token=hq), 409, "idempotency_mismatch"
    )

    before = mall.paid_order("m-pol", referrer="R-SH")  # not in force yet: the defaults
    assert before["split"] == SEED and before["policy_version"] == 0
    mall.clock.advance(timedelta(hours=2))
    after = mall.paid_order("m-pol")
    assert after["policy_id"] == "DS-2024-07" and after["policy_version"] == 1
    assert after["split"] == {"distributor": 500, "store": 3500, "dealer": 2000, "brand": 4000}
    cake = mall.paid_order("m-pol", sku="CAKE")
    assert cake["split"] == {"distributor": 0, "store": 6000, "dealer": 0, "brand": 4000}
    listed = mall.api.get("/v1/split-policies", token=mall.tokens["S-SH"]).json()["items"]
    dropship = next(i for i in listed if i["fulfilment"] == "hq_dropship")
    assert dropship["in_force"]["policy_id"] == "DS-2024-07"


# -- attribution --------------------------------------------------------------------------


def test_attribution_by_binding_referrer_and_nearest_store_is_permanent(mall: Mall) -> None:
    near_pudong = {"lat": 31.2230, "lng": 121.5450}
    near_square = {"lat": 31.2300, "lng": 121.4740}
    first = mall.paid_order("m-near", location=near_pudong)
    assert (first["store"], first["attribution"]) == ("S-PD", "nearest_store")
    again = mall.paid_order("m-near", location=near_square)  # bound for good
    assert (again["store"], again["attribution"]) == ("S-PD", "bound_store")
    late_referrer = mall.paid_order("m-near", referrer="R-SH")  # the order's referrer sticks
    assert (late_referrer["store"], late_referrer["distributor"]) == ("S-PD", "R-SH")
    assert mall.paid_order("m-near")["distributor"] == "R-SH"

    referred = mall.paid_order("m-ref", referrer="C-SH", location=near_pudong)
    assert (referred["store"], referred["attribution"]) == ("S-SH", "referrer")
    assert referred["distributor"] == "C-SH"
    member = mall.api.get("/v1/members/m-ref", token=mall.tokens["hq"])
    if member.status_code == 200:  # the members read (another issue) agrees
        assert member.json()["bound_store"] == "S-SH"

    # A store registered just before the order is found; a suspended one is skipped.
    spot = {"lat": 30.5, "lng": 120.5}
    new = store_body("S-NEW", "D-SH", lat=spot["lat"], lng=spot["lng"], region="330108")
    assert mall.api.post("/v1/partners", new).status_code == 201
    assert mall.paid_order("m-new-1", location=spot)["store"] == "S-NEW"
    suspension = {"change_id": "susp-1", "reason": "closed for works"}
    assert mall.api.post("/v1/partners/S-NEW/suspension", suspension).status_code == 200
    assert mall.paid_order("m-new-2", location=spot)["store"] in ("S-SH", "S-PD")

    head = mall.api.head()
    assert_problem(mall.order("m-nowhere"), 422, "no_store_for_member")
    assert_problem(mall.order("m-x", referrer="S-SH"), 422, "unknown_referrer")
    assert mall.api.head() == head, "a refused order wrote nothing (not even the member)"


# -- refusals -------------------------------------------------------------------------------


def test_bad_input_is_a_clear_4xx_and_writes_nothing(mall: Mall) -> None:
    placed = mall.order("m-bad", referrer="R-SH")
    assert placed.status_code == 201
    order_id = placed.json()["order_id"]
    head = mall.api.head()
    assert_problem(mall.pay(order_id, 9_999), 422, "amount_mismatch")
    assert_problem(mall.pay(order_id, -5), 400)
    assert_problem(mall.pay("O-nope", 10_000), 404, "unknown_order")
    assert_problem(mall.order("m-bad", sku="NOPE"), 404, "unknown_sku")
    assert_problem(mall.order("m-bad", amount=-1), 400)
    assert_problem(mall.refund(order_id, 100), 409, "order_not_paid")
    body = {"order_id": "O-bad", "member": "m", "lines": [], "fulfilment": "pickup"}
    assert_problem(mall.api.post("/v1/orders", body, token=mall.tokens["gateway"]), 400)
    assert_problem(
        mall.api.post("/v1/orders", body | {"extra": 1}, token=mall.tokens["gateway"]), 400
    )
    one_line = {**body, "lines": [{"sku": "TEA", "qty": 1, "unit_price": 1}]}
    assert_problem(mall.api.post("/v1/orders", one_line, token=mall.tokens["S-SH"]), 403)
    assert mall.api.head() == head, "refusals wrote nothing"

    payment = {"payment_id": "pay-x", "amount": 10_000}
    first = mall.api.post(f"/v1/orders/{order_id}/payments", payment, token=mall.tokens["gateway"])
    assert first.status_code == 200, first.text
    repeat = mall.api.post(f"/v1/orders/{order_id}/payments", payment, token=mall.tokens["gateway"])
    assert repeat.json() == first.json(), "a repeat answers the original, same position"
    assert_problem(mall.pay(order_id, 10_000), 409, "already_paid")
    head = mall.api.head()
    assert_problem(mall.refund(order_id, 10_001), 422, "refund_exceeds_paid")
    assert mall.refund(order_id, 4_000).status_code == 200
    head = mall.api.head()
    assert_problem(mall.refund(order_id, 6_001), 422, "refund_exceeds_paid")
    assert_problem(mall.refund(order_id, 0), 400)
    assert mall.api.head() == head
    again = {
        "order_id": order_id,
        "member": "someone else",
        "fulfilment": "pickup",
        "lines": [{"sku": "TEA", "qty": 1, "unit_price": 10_000}],
    }
    assert_problem(
        mall.api.post("/v1/orders", again, token=mall.tokens["gateway"]),
        409,
        "idempotency_mismatch",
    )
    assert_problem(mall.api.get(f"/v1/orders/{order_id}", token=mall.tokens["S-BJ"]), 404)


# -- refunds, settlement, instructions, receipts, withdrawals ----------------------------------


def test_refunds_settlement_instructions_receipts_and_withdrawals(mall: Mall) -> None:  # noqa: PLR0915
    order = mall.paid_order("m-life", referrer="R-SH", fulfilment="delivery")
    order_id = order["order_id"]
    assert order["split"] == {"distributor": 1000, "store": 9000}
    partial = mall.refund(order_id, 3_333)
    assert partial.status_code == 200, partial.text
    assert partial.json()["reversed"] == {"distributor": 333, "store": 3000}
    assert mall.balance("R-SH")["pending"] == 667

    # not fulfilled: the window has not even started
    mall.clock.advance(timedelta(days=30))
    assert mall.settle()["settled"] == []
    assert mall.fulfil(order_id, token=mall.tokens["S-BJ"]).status_code == 403
    fulfilled = mall.fulfil(order_id, token=mall.tokens["S-SH"])  # 2024-07-01 10:00 Shanghai
    assert fulfilled.status_code == 200, fulfilled.text
    # 7 Shanghai calendar days from the day after receipt: closes 2024-07-09 00:00
    closes = datetime.fromisoformat("2024-07-09T00:00:00+08:00")
    assert fulfilled.json()["return_window_closes"] == closes.isoformat()
    mall.clock.now = closes - timedelta(microseconds=1)
    mall.settle()
    assert mall.balance("R-SH")["available"] == 0
    mall.clock.now = closes
    mall.settle()  # the server's periodic task may have settled it already: same outcome
    view = mall.api.get(f"/v1/orders/{order_id}", token=mall.tokens["hq"]).json()
    assert view["status"] == "settled"
    instructions = {i["instruction_id"]: i for i in view["instructions"]}
    assert set(instructions) == {f"{order_id}/split/distributor"}  # the store keeps its share
    assert instructions[f"{order_id}/split/distributor"]["amount"] == 667
    assert mall.balance("R-SH")["available"] == 667
    assert mall.balance("S-SH")["available"] == 6000
    assert mall.settle()["settled"] == []  # idempotent

    # receipts against instructions
    receipt = {
        "receipt_id": "rc-1",
        "instruction_id": f"{order_id}/split/distributor",
        "status": "succeeded",
        "amount": 667,
        "provider_ref": "wx-1",
    }
    assert_problem(
        mall.api.post(
            f"/v1/orders/{order_id}/receipts", receipt | {"amount": 1}, token=mall.tokens["gateway"]
        ),
        422,
    )
    recorded = mall.api.post(
        f"/v1/orders/{order_id}/receipts", receipt, token=mall.tokens["gateway"]
    )
    assert recorded.status_code == 200, recorded.text
    report = mall.api.get("/v1/reconciliation", token=mall.tokens["auditor"]).json()
    assert report["ok"], report["breaches"]
    assert all(i["order_id"] != order_id for i in report["instructions_without_receipts"])

    # withdrawals draw on what is available, exactly
    w = {"withdrawal_id": "w-1", "amount": 668}
    assert_problem(
        mall.api.post("/v1/partners/R-SH/withdrawals", w, token=mall.tokens["R-SH"]),
        422,
        "insufficient_available",
    )
    assert_problem(
        mall.api.post(
            "/v1/partners/R-SH/withdrawals", w | {"amount": 1}, token=mall.tokens["S-BJ"]
        ),
        403,
    )
    requested = mall.api.post(
        "/v1/partners/R-SH/withdrawals", w | {"amount": 600}, token=mall.tokens["R-SH"]
    )
    assert requested.status_code == 201, requested.text
    assert mall.balance("R-SH")["available"] == 67
    decision = {"decision": "approve"}
    assert_problem(
        mall.api.post(
            "/v1/partners/R-SH/withdrawals/w-1/decision", decision, token=mall.tokens["R-SH"]
        ),
        403,
    )
    approved = mall.api.post(
        "/v1/partners/R-SH/withdrawals/w-1/decision", decision, token=mall.tokens["hq"]
    )
    assert approved.status_code == 200 and approved.json()["status"] == "approved"
    paid = mall.api.post(
        "/v1/partners/R-SH/withdrawals/w-1/payment",
        {"payout_ref": "bank-1"},
        token=mall.tokens["hq"],
    )
    assert paid.status_code == 200 and paid.json()["status"] == "paid"
    second = mall.api.post(
        "/v1/partners/R-SH/withdrawals",
        {"withdrawal_id": "w-2", "amount": 67},
        token=mall.tokens["R-SH"],
    )
    assert second.status_code == 201
    rejected = mall.api.post(
        "/v1/partners/R-SH/withdrawals/w-2/decision",
        {"decision": "reject", "reason": "bank details missing"},
        token=mall.tokens["hq"],
    )
    assert rejected.json()["status"] == "rejected"
    assert mall.balance("R-SH")["available"] == 67

    # a refund after settlement (and after a payout) still reverses: a visible debt
    late = mall.refund(order_id, 6_667)
    assert late.status_code == 200, late.text
    assert late.json()["reversed"] == {"distributor": 667, "store": 6000}
    assert mall.balance("R-SH")["available"] == 67 - 667
    view = mall.api.get(f"/v1/orders/{order_id}", token=mall.tokens["hq"]).json()
    assert view["status"] == "refunded" and view["refunded"] == 10_000
    refund_instructions = [i for i in view["instructions"] if i["kind"] == "split_refund"]
    assert [(i["receiver"], i["amount"]) for i in refund_instructions] == [("R-SH", 667)]
    assert_problem(
        mall.api.post(
            "/v1/partners/R-SH/withdrawals",
            {"withdrawal_id": "w-3", "amount": 1},
            token=mall.tokens["R-SH"],
        ),
        422,
    )

    # the statement: every line linked to its position and order; opening + lines = closing
    statement = mall.api.get("/v1/partners/R-SH/statement", token=mall.tokens["R-SH"]).json()
    assert statement["opening"] == 0
    assert statement["closing"] == 67 - 667
    assert sum(line["amount"] for line in statement["lines"]) == statement["closing"]
    kinds = [line["kind"] for line in statement["lines"]]
    assert kinds[:3] == ["payment", "refund", "settlement"] and "withdrawal_requested" in kinds
    assert all(line["order_id"] == order_id for line in statement["lines"][:3])
    report = mall.api.get("/v1/reconciliation", token=mall.tokens["hq"]).json()
    assert report["ok"], report["breaches"]
    assert report["totals"]["trial_balance"] == {"CNY": 0}
    assert report["totals"]["refunds"] == report["totals"]["reversals"] == 10_000


def test_withdrawals_decide_on_a_payout_account_carried_forward(
    mall: Mall, database_url: str, tmp_path: Path
) -> None:
    """A partner's payout account takes an event per withdrawal step: read from its state
    carried forward, it refuses and allows exactly what its whole history would, its
    listing is the history's, and ``siyu verify`` replays each restatement."""
    order = mall.paid_order("m-w", referrer="R-SH")
    assert mall.fulfil(order["order_id"], token=mall.tokens["S-SH"]).status_code == 200
    mall.clock.advance(timedelta(days=8))
    mall.settle()
    assert mall.balance("R-SH")["available"] == 1000
    hq, own = mall.tokens["hq"], mall.tokens["R-SH"]
    path = "/v1/partners/R-SH/withdrawals"
    expected: dict[str, tuple[int, str]] = {}
    for i in range(PayoutAccount.CARRY_FORWARD_EVERY):
        wid, amount = f"w-{i}", 10 + i
        asked = mall.api.post(path, {"withdrawal_id": wid, "amount": amount}, token=own)
        assert asked.status_code == 201, asked.text
        if i % 2:
            body = {"decision": "reject", "reason": "details missing"}
            assert mall.api.post(f"{path}/{wid}/decision", body, token=hq).status_code == 200
            expected[wid] = (amount, "rejected")
        else:
            body = {"decision": "approve"}
            assert mall.api.post(f"{path}/{wid}/decision", body, token=hq).status_code == 200
            expected[wid] = (amount, "approved")
    left = 1000 - sum(a for a, status in expected.values() if status != "rejected")

    store = mall.api.store
    assert store is not None
    account_id = payout_account_id("R-SH")
    stream = list(store.ledger.recorder.select_events(account_id))
    carried = [e for e in stream if e.topic == PayoutAccount.CarriedForward.TOPIC]
    assert carried, [e.topic for e in stream]
    select_many = store.ledger.select_many
    assert select_many is not None
    assert select_many([account_id])[account_id][0].topic == PayoutAccount.CarriedForward.TOPIC

    listing = mall.api.get(path, token=own).json()
    assert listing["available"] == left
    statuses = {w["withdrawal_id"]: (w["amount"], w["status"]) for w in listing["withdrawals"]}
    assert statuses == expected
    # the state carried forward decides: one fen too many is refused, the rest allowed
    assert_problem(
        mall.api.post(path, {"withdrawal_id": "w-over", "amount": left + 1}, token=own),
        422,
        "insufficient_available",
    )
    assert_problem(
        mall.api.post(f"{path}/w-1/payment", {"payout_ref": "bank-1"}, token=hq),
        409,
        "withdrawal_rejected",
    )
    paid = mall.api.post(f"{path}/w-0/payment", {"payout_ref": "bank-0"}, token=hq)
    assert paid.status_code == 200 and paid.json()["status"] == "paid", paid.text
    rest = mall.api.post(path, {"withdrawal_id": "w-rest", "amount": left}, token=own)
    assert rest.status_code == 201, rest.text
    after = mall.api.get(path, token=own).json()
    assert after["available"] == 0
    assert {w["withdrawal_id"]: w["status"] for w in after["withdrawals"]}["w-0"] == "paid"
    loaded = store.ledger.load_many([account_id])[account_id]
    assert isinstance(loaded, PayoutAccount)
    assert state_of(loaded) == state_of(store.ledger.repository.get(account_id))
    verified = run_cli(["verify", "--no-views"], cli_env(database_url), tmp_path)
    assert verified.returncode == 0, verified.stdout + verified.stderr
    assert "states carried forward restate their events" in verified.stdout, verified.stdout


def test_balances_as_of_statements_by_day_and_scopes(mall: Mall) -> None:
    first = mall.paid_order("m-time", referrer="R-SH", fulfilment="pickup")  # 2024-06-01 10:00
    before = (START - timedelta(minutes=1)).isoformat()
    assert mall.balance("S-SH", as_of=before)["pending"] == 0
    mall.clock.advance(timedelta(days=1))  # 2024-06-02
    second = mall.paid_order("m-time", amount=5_000, fulfilment="pickup")
    assert first["store"] == second["store"] == "S-SH"
    at_first = mall.balance("S-SH", as_of=(START + timedelta(hours=1)).isoformat())
    assert (at_first["pending"], at_first["available"]) == (9000, 0)
    # as of a time after the window closed, the share is available (even before settling)
    # (picked up 2024-06-01: the window closes at 2024-06-09 00:00 Shanghai)
    later = "2024-06-09T00:00:00+08:00"
    assert mall.balance("S-SH", as_of=later)["available"] == 9000
    assert mall.balance("S-SH")["pending"] == 9000 + 4500

    day_one = mall.api.get(
        "/v1/partners/S-SH/statement",
        token=mall.tokens["S-SH"],
        **{"from": "2024-06-01", "to": "2024-06-01"},
    ).json()
    assert (day_one["opening"], day_one["closing"]) == (0, 9000)
    assert [line["order_id"] for line in day_one["lines"]] == [first["order_id"]]
    day_two = mall.api.get(
        "/v1/partners/S-SH/statement",
        token=mall.tokens["S-SH"],
        **{"from": "2024-06-02", "to": "2024-06-02"},
    ).json()
    assert (day_two["opening"], day_two["closing"]) == (9000, 13_500)
    assert day_two["lines"][0]["at"].startswith("2024-06-02T10:00:00+08:00")

    # scopes: own, a dealer's subtree with its roll-up, nobody else's
    own = mall.balance("R-SH", token=mall.tokens["R-SH"])
    assert own["pending"] == 1000 + 500  # the referrer stuck for the second order
    assert mall.api.get("/v1/balances/S-SH", token=mall.tokens["R-SH"]).status_code == 404
    dealer_view = mall.balance("D-SH", token=mall.tokens["D-SH"], rollup="true")
    assert dealer_view["rollup"]["pending"] == 1500 + 9000 + 4500
    assert mall.balance("S-SH", token=mall.tokens["D-SH"])["pending"] == 13_500
    for token, partner in (("D-BJ", "S-SH"), ("S-BJ", "S-SH"), ("S-PD", "S-SH"), ("D-BJ", "HQ")):
        assert_problem(mall.api.get(f"/v1/balances/{partner}", token=mall.tokens[token]), 404)
        assert_problem(
            mall.api.get(f"/v1/partners/{partner}/statement", token=mall.tokens[token]), 404
        )
    assert (
        mall.api.get(f"/v1/orders/{first['order_id']}", token=mall.tokens["D-SH"]).status_code
        == 200
    )
    assert (
        mall.api.get(f"/v1/orders/{first['order_id']}", token=mall.tokens["R-SH"]).status_code
        == 200
    )
    assert_problem(mall.api.get(f"/v1/orders/{first['order_id']}", token=mall.tokens["D-BJ"]), 404)
    assert_problem(mall.api.get("/v1/reconciliation", token=mall.tokens["D-SH"]), 403)
    assert_problem(
        mall.api.get("/v1/balances/S-SH", token=mall.tokens["hq"], as_of="yesterday"), 422
    )


def _at(text: str) -> datetime:
    return datetime.fromisoformat(text)


def _status(mall: Mall, order_id: str) -> str:
    view = mall.api.get(f"/v1/orders/{order_id}", token=mall.tokens["hq"])
    assert view.status_code == 200, view.text
    return str(view.json()["status"])


def test_the_return_window_counts_asia_shanghai_calendar_days(mall: Mall) -> None:  # noqa: PLR0915
    """A 7-day window counts from the day after receipt, in Shanghai calendar days
    (网络购买商品七日无理由退货暂行办法): received on local date D, it closes at 00:00
    Shanghai on D + 8. Goods received at 23:30 and at 00:30 the next day close a day
    apart (delivered, or picked up: received at payment); the share is pending until
    that midnight and available from it, and settlement closes the window then, not a
    moment before."""
    beijing = {"lat": 39.9, "lng": 116.4}  # S-BJ's pickups
    mall.clock.now = _at("2024-06-01T23:30:00+08:00")  # 15:30 UTC: June 1 in Shanghai
    late = mall.paid_order("m-late", referrer="R-SH", fulfilment="delivery")  # S-SH, R-SH
    fulfilled_late = mall.fulfil(late["order_id"])
    assert fulfilled_late.status_code == 200, fulfilled_late.text
    assert fulfilled_late.json()["return_window_closes"] == "2024-06-09T00:00:00+08:00"
    mall.clock.now = _at("2024-06-01T23:45:00+08:00")
    late_pickup = mall.paid_order("m-pickup", fulfilment="pickup", location=beijing)
    assert late_pickup["store"] == "S-BJ"
    mall.clock.now = _at("2024-06-02T00:30:00+08:00")  # 16:30 UTC: June 2 in Shanghai
    early = mall.paid_order("m-early", fulfilment="delivery", location=PUDONG)  # S-PD alone
    fulfilled_early = mall.fulfil(early["order_id"])
    assert fulfilled_early.status_code == 200, fulfilled_early.text
    assert fulfilled_early.json()["return_window_closes"] == "2024-06-10T00:00:00+08:00"
    mall.clock.now = _at("2024-06-02T00:45:00+08:00")
    early_pickup = mall.paid_order("m-pickup", amount=5_000, fulfilment="pickup")
    assert early_pickup["store"] == "S-BJ"
    closes = {
        late["order_id"]: _at("2024-06-09T00:00:00+08:00"),
        late_pickup["order_id"]: _at("2024-06-09T00:00:00+08:00"),
        early["order_id"]: _at("2024-06-10T00:00:00+08:00"),
        early_pickup["order_id"]: _at("2024-06-10T00:00:00+08:00"),
    }
    for order_id, at in closes.items():
        view = mall.api.get(f"/v1/orders/{order_id}", token=mall.tokens["hq"]).json()
        assert _at(view["return_window_closes"]) == at, view

    def balances(as_of: str) -> dict[str, tuple[int, int]]:
        found = {}
        for partner in ("S-SH", "R-SH", "S-BJ", "S-PD"):
            b = mall.balance(partner, as_of=as_of)
            found[partner] = (b["pending"], b["available"])
        return found

    assert balances("2024-06-08T23:59:59.999999+08:00") == {
        "S-SH": (9000, 0),
        "R-SH": (1000, 0),
        "S-BJ": (15_000, 0),
        "S-PD": (10_000, 0),
    }
    assert balances("2024-06-08T16:00:00+00:00") == {  # 00:00 on June 9 in Shanghai
        "S-SH": (0, 9000),
        "R-SH": (0, 1000),
        "S-BJ": (5_000, 10_000),
        "S-PD": (10_000, 0),
    }
    assert balances("2024-06-09T23:59:59.999999+08:00")["S-PD"] == (10_000, 0)
    assert balances("2024-06-10T00:00:00+08:00")["S-BJ"] == (0, 15_000)
    assert balances("2024-06-10T00:00:00+08:00")["S-PD"] == (0, 10_000)

    # settlement closes each window at its midnight (the server's own run may also settle)
    mall.clock.now = _at("2024-06-08T23:59:59.999999+08:00")
    mall.settle()
    assert {_status(mall, order_id) for order_id in closes} == {"fulfilled"}
    mall.clock.now = _at("2024-06-09T00:00:00+08:00")
    mall.settle()
    assert [_status(mall, order_id) for order_id in closes] == [
        "settled",
        "settled",
        "fulfilled",
        "fulfilled",
    ]
    mall.clock.now = _at("2024-06-09T23:59:59.999999+08:00")
    mall.settle()
    assert {_status(mall, early["order_id"]), _status(mall, early_pickup["order_id"])} == {
        "fulfilled"
    }
    mall.clock.now = _at("2024-06-10T00:00:00+08:00")
    mall.settle()
    assert {_status(mall, order_id) for order_id in closes} == {"settled"}
    assert mall.balance("S-PD")["available"] == 10_000

    # a window of 0 days (perishables) closes at receipt, whatever the hour
    no_returns = {
        "policy_id": "DS-NO-RETURNS",
        "fulfilment": "hq_dropship",
        "rates_bp": SEED,
        "rates_bp_without_distributor": {"store": 4000, "dealer": 2000, "brand": 4000},
        "remainder_to": "brand",
        "return_window_days": 0,
        "effective_from": "2024-06-10T00:00:00+08:00",
    }
    published = mall.api.post("/v1/split-policies", no_returns, token=mall.tokens["hq"])
    assert published.status_code == 201, published.text
    mall.clock.now = _at("2024-06-10T23:30:00+08:00")
    perishable = mall.paid_order("m-late")  # S-SH, with R-SH
    received = mall.fulfil(perishable["order_id"])
    assert received.json()["return_window_closes"] == "2024-06-10T23:30:00+08:00"
    now = mall.balance("R-SH")
    assert (now["pending"], now["available"]) == (0, 1000 + 1000)


def test_a_window_started_after_the_last_money_event_counts_as_of_any_later_time(
    mall: Mall,
) -> None:
    """As of T maps T to a position through the ledger's time index; a fulfilment
    moves no money but starts a window, so it is in that index too: without it, an
    order received after the last payment, refund or settlement before T stayed
    pending as of T for good, while the balance of now showed it available."""
    order = mall.paid_order("m-quiet", fulfilment="delivery", location=PUDONG)  # S-PD
    mall.clock.advance(timedelta(hours=2))  # 2024-06-01 12:00: received, nothing after
    assert mall.fulfil(order["order_id"]).status_code == 200
    received = mall.clock().isoformat()
    before = mall.balance("S-PD", as_of="2024-06-08T23:59:59.999999+08:00")
    assert (before["pending"], before["available"]) == (10_000, 0)
    closed = mall.balance("S-PD", as_of="2024-06-09T00:00:00+08:00")
    assert (closed["pending"], closed["available"]) == (0, 10_000)
    earlier = mall.balance("S-PD", as_of=received)
    assert (earlier["pending"], earlier["available"]) == (10_000, 0)
    mall.clock.now = datetime.fromisoformat("2024-06-09T00:00:00+08:00")
    now = mall.balance("S-PD")
    assert (now["pending"], now["available"]) == (0, 10_000)


def _answered_and_shown(mall: Mall, order_id: str, response: Any) -> str:
    """The status a write answered, checked against the order's view read at exactly
    the write's position (``min_position``): they agree."""
    assert response.status_code == 200, response.text
    answer = response.json()
    view = mall.api.get(
        f"/v1/orders/{order_id}",
        token=mall.tokens["hq"],
        fresh=False,
        min_position=answer["position"],
    )
    assert view.status_code == 200, view.text
    assert view.json()["status"] == answer["status"], (answer, view.json())
    return str(answer["status"])


def test_an_orders_view_shows_the_status_each_write_answered(mall: Mall) -> None:
    """Every status a write answers (paid, fulfilled, partially_refunded, refunded) is
    what the order's view shows at that write's position; settlement shows settled,
    also for an order partially refunded before its window closed."""
    delivered = mall.order("m-status", referrer="R-SH", fulfilment="delivery").json()
    order_id = delivered["order_id"]
    assert _answered_and_shown(mall, order_id, mall.pay(order_id, 10_000)) == "paid"
    partial = mall.refund(order_id, 1_000, refund_id="ref-part")
    assert _answered_and_shown(mall, order_id, partial) == "partially_refunded"
    again = mall.refund(order_id, 1_000, refund_id="ref-part")  # a repeat: the same answer
    assert again.json() == partial.json()
    assert _answered_and_shown(mall, order_id, mall.fulfil(order_id)) == "fulfilled"
    picked_up = mall.order("m-status-2", fulfilment="pickup", location=PUDONG).json()
    pickup_id = picked_up["order_id"]
    assert _answered_and_shown(mall, pickup_id, mall.pay(pickup_id, 10_000)) == "fulfilled"
    refunded = mall.refund(pickup_id, 2_500)
    assert _answered_and_shown(mall, pickup_id, refunded) == "partially_refunded"

    # both windows close on June 9 (Shanghai); the partially refunded order settles too
    mall.clock.now = datetime.fromisoformat("2024-06-09T00:00:00+08:00")
    mall.settle()  # (or the server's own run)
    for settled_id in (order_id, pickup_id):
        view = mall.api.get(f"/v1/orders/{settled_id}", token=mall.tokens["hq"]).json()
        assert view["status"] == "settled", view
    assert mall.balance("S-PD")["available"] == 10_000 - 2_500

    after = mall.refund(order_id, 4_000)  # after settlement: still partial
    assert _answered_and_shown(mall, order_id, after) == "partially_refunded"
    rest = mall.refund(order_id, 5_000)
    assert _answered_and_shown(mall, order_id, rest) == "refunded"
    view = mall.api.get(f"/v1/orders/{order_id}", token=mall.tokens["hq"]).json()
    assert (view["paid"], view["refunded"]) == (10_000, 10_000)
    assert_problem(mall.fulfil(pickup_id), 409, "already_fulfilled")


def test_a_statements_period_at_its_boundary_instants(mall: Mall) -> None:
    """The rule a reconciliation team checks. With times, a statement covers (from, to]:
    opening = the balance as of ``from``, closing = the balance as of ``to`` (pending +
    available), opening + lines = closing; a payment at exactly ``from`` is in the
    opening, one at exactly ``to`` a line. A bare date is a whole Asia/Shanghai day, from
    its midnight (included) to the next (excluded): bare ``from=D`` is the instant just
    before D starts, bare ``to=D`` the last instant of D, and the answer says which."""
    paid: dict[str, str] = {}
    for at, amount in (
        ("2024-06-02T00:00:00+08:00", 1_000),  # exactly midnight: June 2
        ("2024-06-02T12:00:00+08:00", 2_000),
        ("2024-06-03T00:00:00+08:00", 4_000),  # exactly the next midnight: June 3
    ):
        mall.clock.now = datetime.fromisoformat(at)
        order = mall.paid_order("m-period", amount=amount, fulfilment="pickup", location=PUDONG)
        assert order["store"] == "S-PD"
        paid[order["order_id"]] = at
    first, second, third = paid
    mall.clock.now = datetime.fromisoformat("2024-06-04T12:00:00+08:00")

    def statement(start: str, end: str) -> dict[str, Any]:
        response = mall.api.get(
            "/v1/partners/S-PD/statement", token=mall.tokens["S-PD"], **{"from": start, "to": end}
        )
        assert response.status_code == 200, response.text
        body = dict(response.json())
        assert body["opening"] + sum(line["amount"] for line in body["lines"]) == body["closing"]
        return body

    def total(as_of: str) -> int:
        balance = mall.balance("S-PD", as_of=as_of)
        return int(balance["pending"] + balance["available"])

    # times: (from, to], each end equal to the balance as of it
    start, end = "2024-06-02T00:00:00+08:00", "2024-06-03T00:00:00+08:00"
    timed = statement(start, end)
    assert [line["order_id"] for line in timed["lines"]] == [second, third]
    assert (timed["opening"], timed["closing"]) == (1_000, 7_000)
    assert (timed["opening"], timed["closing"]) == (total(start), total(end))
    assert (timed["from"], timed["to"]) == (start, end)

    # bare dates: the whole Shanghai day, midnight in, the next midnight out
    june_2 = statement("2024-06-02", "2024-06-02")
    assert [line["order_id"] for line in june_2["lines"]] == [first, second]
    assert (june_2["opening"], june_2["closing"]) == (0, 3_000)
    assert june_2["from"] == "2024-06-01T23:59:59.999999+08:00"
    assert june_2["to"] == "2024-06-02T23:59:59.999999+08:00"
    assert (june_2["opening"], june_2["closing"]) == (total(june_2["from"]), total(june_2["to"]))
    june_3 = statement("2024-06-03", "2024-06-03")
    assert [line["order_id"] for line in june_3["lines"]] == [third]
    assert (june_3["opening"], june_3["closing"]) == (3_000, 7_000)
    assert june_3["lines"][0]["at"] == "2024-06-03T00:00:00+08:00"
    both = statement("2024-06-02", "2024-06-03")
    assert [line["order_id"] for line in both["lines"]] == [first, second, third]
    # a bare date and a time mix: a day's end is the next day's start
    assert statement("2024-06-02", "2024-06-02T23:59:59.999999+08:00")["lines"] == june_2["lines"]


def test_cancellation_and_a_tampered_view_shows_in_reconciliation(mall: Mall) -> None:
    placed = mall.order("m-cancel", referrer="R-SH").json()
    cancel = {"cancellation_id": "c-1", "reason": "changed their mind"}
    path = f"/v1/orders/{placed['order_id']}/cancellation"
    assert mall.api.post(path, cancel, token=mall.tokens["gateway"]).status_code == 200
    assert_problem(mall.pay(placed["order_id"], 10_000), 409, "order_cancelled")
    paid = mall.paid_order("m-cancel")
    assert_problem(
        mall.api.post(
            f"/v1/orders/{paid['order_id']}/cancellation",
            cancel | {"cancellation_id": "c-2"},
            token=mall.tokens["gateway"],
        ),
        409,
        "order_paid",
    )
    report = mall.api.get("/v1/reconciliation", token=mall.tokens["auditor"]).json()
    assert report["ok"], report

    store = mall.api.store
    assert store is not None
    with store.views.write() as tx:  # someone edits a row of the ledger behind its back
        tx.execute(
            "UPDATE ledger_postings SET amount = amount + 1 WHERE account = ?",
            ("partner:R-SH:pending",),
        )
    report = mall.api.get("/v1/reconciliation", token=mall.tokens["auditor"]).json()
    assert not report["ok"]
    checks = {b["check"] for b in report["breaches"]}
    assert {"event_balanced", "trial_balance", "payment_split"} <= checks
    assert all(b["evidence"] for b in report["breaches"])


def test_settle_and_reconcile_commands(mall: Mall, database_url: str, tmp_path: Path) -> None:
    order = mall.paid_order("m-cli", referrer="R-SH", fulfilment="delivery")
    assert mall.fulfil(order["order_id"]).status_code == 200
    env = cli_env(database_url)
    # fulfilled 2024-06-01 10:00 Shanghai: the window closes at 2024-06-09 00:00 there
    early = run_cli(["settle", "--now", "2024-06-08T23:59:59.999999+08:00"], env, tmp_path)
    assert early.returncode == 0, early.stderr
    assert "settled 0 orders" in early.stdout, early.stdout
    due = "2024-06-08T16:00:00+00:00"  # the same instant in UTC
    settled = run_cli(["settle", "--now", due], env, tmp_path)
    assert settled.returncode == 0, settled.stderr
    assert "settled 1 orders" in settled.stdout, settled.stdout
    again = run_cli(["settle", "--now", due], env, tmp_path)
    assert "settled 0 orders" in again.stdout, again.stdout
    assert run_cli(["settle", "--now", "soon"], env, tmp_path).returncode == 2
    # Ahead of the clock: it would close windows early and date the log ahead, so that
    # every later event would read as of that time (as-of balances, statements).
    head = mall.api.head()
    ahead = (datetime.now(UTC) + timedelta(days=7)).isoformat()
    for command in ("settle", "expire-points"):
        refused = run_cli([command, "--now", ahead], env, tmp_path)
        assert refused.returncode == 2, refused.stdout + refused.stderr
        assert "later than the clock" in refused.stderr and "Traceback" not in refused.stderr
    assert mall.api.head() == head
    view = mall.api.get(
        f"/v1/orders/{order['order_id']}", token=mall.tokens["hq"], min_position=mall.api.head()
    )
    assert view.json()["status"] == "settled"
    reconciled = run_cli(["reconcile"], env, tmp_path)
    assert reconciled.returncode == 0, reconciled.stdout + reconciled.stderr
    assert reconciled.stdout.strip().splitlines()[-1] == "ok"
    assert "1 instructions without receipts" in reconciled.stdout


def test_what_if_resplits_a_period_without_writing(
    mall: Mall, database_url: str, tmp_path: Path
) -> None:
    mall.paid_order("m-wi-1", referrer="R-SH")  # 100.00 drop-ship with a distributor
    at_the_square = {"lat": 31.2304, "lng": 121.4737}
    # 200.00 without a distributor, attributed to the nearest store (S-SH)
    refunded = mall.paid_order("m-wi-2", amount=20_000, location=at_the_square)
    assert mall.refund(refunded["order_id"], 5_000).status_code == 200
    mall.paid_order("m-wi-3", fulfilment="pickup", location=at_the_square)  # another mode
    policy = {
        "policy_id": "what-if-1",
        "fulfilment": "hq_dropship",
        "rates_bp": {"distributor": 500, "store": 3500, "dealer": 2000, "brand": 4000},
        "rates_bp_without_distributor": {"store": 5000, "dealer": 1000, "brand": 4000},
        "remainder_to": "brand",
        "return_window_days": 7,
        "effective_from": START.isoformat(),
    }
    path = tmp_path / "policy.json"
    path.write_text(json.dumps(policy))
    head = mall.api.head()
    env = cli_env(database_url)
    window = [
        "--from",
        (START - timedelta(days=1)).isoformat(),
        "--to",
        (START + timedelta(days=1)).isoformat(),
    ]
    done = run_cli(["what-if", "--policy", str(path), *window], env, tmp_path)
    assert done.returncode == 0, done.stderr
    rows = {
        line.split()[0]: [int(x) for x in line.split()[1:]]
        for line in done.stdout.splitlines()
        if line[:1].isalpha() and line.split()[-1].lstrip("+-").isdigit()
    }
    assert done.stdout.startswith("2 paid hq_dropship orders")
    # booked: order 1 distributor 1000, store 3000, dealer 2000, brand 4000 (fen x 100:
    # 10_000 fen); order 2 (15_000 net of a 5_000 refund) store 6000, dealer 3000, brand 6000.
    assert rows["R-SH"] == [1000, 500, -500]
    assert rows["S-SH"] == [3000 + 6000, 3500 + 7500, 2000]
    assert rows["D-SH"] == [2000 + 3000, 2000 + 1500, -1500]
    assert sum(r[2] for r in rows.values()) == 0, "money is conserved"
    assert "no events were written" in done.stdout
    assert mall.api.head() == head
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(policy | {"rates_bp": {"store": 9999}}))
    assert run_cli(["what-if", "--policy", str(bad), *window], env, tmp_path).returncode == 2


def test_a_distributor_promoted_under_the_default_levels_keeps_the_policys_rate(
    mall: Mall,
) -> None:
    """The default levels promote (senior past 10,000 yuan sold, counted when the sale's
    return window closes) but carry no rate: the split policy's distributor rate holds
    until HQ publishes levels with rates."""
    big = mall.paid_order("m-big", amount=1_200_000, referrer="R-SH", fulfilment="pickup")
    assert big["split"]["distributor"] == 120_000  # 1000 bp of the pickup default
    mall.clock.advance(timedelta(days=8))
    mall.settle()
    standing = mall.api.get(
        "/v1/distributors/R-SH/standing", token=mall.tokens["hq"], min_position=mall.api.head()
    )
    assert standing.json()["level"] == "senior", standing.text
    after = mall.paid_order("m-after", referrer="R-SH")
    assert after["split"] == {"distributor": 1000, "store": 3000, "dealer": 2000, "brand": 4000}


def test_a_distributor_level_commission_override_applies(mall: Mall) -> None:
    levels = {
        "policy_id": "levels-1",
        "levels": [
            {"name": "starter", "threshold": 0, "commission_rate_bp": 1500},
            {"name": "star", "threshold": 1_000_000, "commission_rate_bp": 2000},
        ],
    }
    published = mall.api.post("/v1/distributor-levels", levels, token=mall.tokens["hq"])
    assert published.status_code == 201, published.text
    order = mall.paid_order("m-level", referrer="R-SH")
    assert order["split"] == {"distributor": 1500, "store": 3000, "dealer": 2000, "brand": 3500}
    view = mall.api.get(f"/v1/orders/{order['order_id']}", token=mall.tokens["hq"]).json()
    assert view["split"]["distributor"] == 1500
    plain = mall.paid_order("m-level-2", location={"lat": 31.2304, "lng": 121.4737})
    assert plain["split"] == {"store": 4000, "dealer": 2000, "brand": 4000}


# -- balances from running totals ----------------------------------------------------------


def _scanned(mall: Mall, partner: str, as_of: datetime | None) -> tuple[int, int]:
    """The balance summed posting by posting (every pending share whose window, known by
    then, had closed by ``as_of`` is available): independent of the running totals."""
    store = mall.api.store
    assert store is not None
    with store.views.read() as tx:
        applied = store.engine.position("ledger", tx)
        upto = applied
        if as_of is not None:
            row = tx.fetchone(
                "SELECT MAX(position) FROM ledger_entries WHERE running_max_us <= ?",
                (int(as_of.timestamp() * 1_000_000),),
            )
            upto = min(applied, 0 if row is None or row[0] is None else int(row[0]))
        horizon = int((as_of or mall.clock()).timestamp() * 1_000_000)
        rows = tx.fetchall(
            "SELECT p.bucket, p.amount, w.due_us FROM ledger_postings p "
            "LEFT JOIN ledger_windows w ON w.order_id = p.order_id AND w.position <= ? "
            "WHERE p.partner = ? AND p.position <= ?",
            (upto, partner, upto),
        )
    pending = available = 0
    for bucket, amount, due_us in rows:
        if bucket == "available" or (
            bucket == "pending" and due_us is not None and int(due_us) <= horizon
        ):
            available += int(amount)
        elif bucket == "pending":
            pending += int(amount)
    return pending, available


PUDONG = {"lat": 31.2222, "lng": 121.5440}


def test_balances_at_any_time_equal_the_postings_summed_one_by_one(mall: Mall) -> None:
    """Payments, partial refunds, fulfilments, windows closing, settlement, refunds after
    settlement: at every step and as of every earlier step, each partner's balance (and a
    dealer's roll-up) equals the sum of its postings."""
    times: list[datetime] = []
    orders = [
        mall.paid_order("m-a", referrer="R-SH", fulfilment="delivery")["order_id"],
        mall.paid_order("m-b", amount=7_777, fulfilment="pickup", location=PUDONG)["order_id"],
        mall.paid_order("m-c", amount=3_001, location={"lat": 39.9, "lng": 116.4})["order_id"],
    ]
    steps = [
        lambda: mall.refund(orders[0], 1_234),
        lambda: mall.fulfil(orders[0], token=mall.tokens["S-SH"]),
        lambda: mall.clock.advance(timedelta(days=3)),
        lambda: mall.paid_order("m-a", amount=5_555, fulfilment="pickup"),
        lambda: mall.clock.advance(timedelta(days=5)),
        mall.settle,
        lambda: mall.refund(orders[1], 2_000),
        lambda: mall.clock.advance(timedelta(days=8)),
        mall.settle,
        lambda: mall.refund(orders[0], 100),
    ]
    partners = ["HQ", "D-SH", "D-BJ", "S-SH", "S-PD", "S-BJ", "R-SH", "C-SH"]
    for step in steps:
        times.append(mall.clock())
        step()
        mall.clock.advance(timedelta(seconds=1))
        for partner in partners:
            for as_of in (None, *times):
                params = {} if as_of is None else {"as_of": as_of.isoformat()}
                answer = mall.balance(partner, **params)
                scanned = _scanned(mall, partner, as_of)
                assert (answer["pending"], answer["available"]) == scanned, (partner, as_of)
        rollup = mall.balance("D-SH", rollup="true")["rollup"]
        parts = [_scanned(mall, p, None) for p in ("D-SH", "S-SH", "S-PD", "R-SH", "C-SH")]
        pending, available = (sum(p[0] for p in parts), sum(p[1] for p in parts))
        assert (rollup["pending"], rollup["available"]) == (pending, available)
        assert rollup["partners"] == 5


def test_a_tampered_running_total_shows_in_reconciliation(mall: Mall) -> None:
    mall.paid_order("m-t", referrer="R-SH")
    before = mall.balance("R-SH")
    assert mall.api.get("/v1/reconciliation", token=mall.tokens["auditor"]).json()["ok"]
    store = mall.api.store
    assert store is not None
    with store.views.write() as tx:  # a balance edited behind the ledger's back
        tx.execute("UPDATE ledger_totals SET pending = pending + 50 WHERE partner = ?", ("R-SH",))
    assert mall.balance("R-SH")["pending"] == before["pending"] + 50
    report = mall.api.get("/v1/reconciliation", token=mall.tokens["auditor"]).json()
    assert not report["ok"]
    breaches = [b for b in report["breaches"] if b["check"] == "running_totals"]
    assert [b["partner"] for b in breaches] == ["R-SH"] and breaches[0]["evidence"]
