"""A distributor's level counts its sales once their return windows have closed, over HTTP
on SQLite and PostgreSQL, and through ``siyu settle`` as a process.

A sale attributed to a distributor is credited to its standing when its order is settled
(the window closed), for the amount paid net of the refunds made by then: an order paid
and refunded in full before that never promotes (docs/decisions/0005, "Distributor
levels"). With levels that carry a commission rate, a promotion is money: the next
order's split shows it.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import msgspec
import pytest

from domain.clock import FixedClock
from domain.distributor_levels import credit_sale
from domain.handlers import orders as order_handlers
from domain.orders import Order
from tests.e2e.client import running_api
from tests.e2e.test_cli import cli_env, run_cli
from tests.e2e.test_orders import START, Mall, build_mall

# A window of 7 days by default (the hq_dropship and pickup policies): settled after 8.
WINDOW_CLOSED = timedelta(days=8)
STARTER_BP, SENIOR_BP = 1000, 2000
SENIOR_FEN = 1_000_000  # 10,000 yuan sold
LEVELS = {
    "policy_id": "levels-with-rates",
    "levels": [
        {"name": "starter", "threshold": 0, "commission_rate_bp": STARTER_BP},
        {"name": "senior", "threshold": SENIOR_FEN, "commission_rate_bp": SENIOR_BP},
    ],
}


@pytest.fixture
def mall(database_url: str) -> Iterator[Mall]:
    clock = FixedClock(START)
    with running_api(database_url, clock=clock) as api:
        m = build_mall(api, clock)
        published = api.post("/v1/distributor-levels", LEVELS, token=m.tokens["hq"])
        assert published.status_code == 201, published.text
        yield m


def standing(mall: Mall, code: str = "R-SH") -> dict[str, Any]:
    got = mall.api.get(
        f"/v1/distributors/{code}/standing", token=mall.tokens["S-SH"], min_position=mall.api.head()
    )
    assert got.status_code == 200, got.text
    return dict(got.json())


def sales_and_level(mall: Mall) -> tuple[int, str | None]:
    found = standing(mall)
    return found["sales"], found["level"]


def rate_of_next_order(mall: Mall) -> int:
    """The distributor's share of a 100.00 order placed now (its level's rate, in bp)."""
    placed = mall.order("m-next", referrer="R-SH")
    assert placed.status_code == 201, placed.text
    paid = mall.pay(placed.json()["order_id"], 10_000)
    assert paid.status_code == 200, paid.text
    return int(paid.json()["split"]["distributor"])


def settle(mall: Mall, *order_ids: str) -> None:
    """A settlement run now; each of ``order_ids`` is settled after it (by this run, or by
    the server's periodic one before it: the same outcome)."""
    mall.settle()
    for order_id in order_ids:
        view = mall.api.get(f"/v1/orders/{order_id}", token=mall.tokens["hq"])
        assert view.json()["status"] == "settled", view.text


def test_an_order_refunded_in_full_before_its_window_closes_never_promotes(mall: Mall) -> None:
    bought = mall.paid_order("m-buy", amount=1_200_000, referrer="R-SH", fulfilment="pickup")
    assert bought["split"]["distributor"] == 120_000  # the starter's 1000 bp
    assert sales_and_level(mall) == (0, None), "a payment credits no standing"
    refunded = mall.refund(bought["order_id"], 1_200_000)
    assert refunded.status_code == 200, refunded.text
    assert sales_and_level(mall) == (0, None)

    mall.clock.advance(WINDOW_CLOSED)
    assert mall.settle()["settled"] == [], "nothing left to settle"
    assert sales_and_level(mall) == (0, None), "no growth, no promotion"
    assert rate_of_next_order(mall) == STARTER_BP  # it did not buy its way up


def test_a_settled_sale_counts_and_promotes_and_a_later_refund_takes_growth_back(
    mall: Mall,
) -> None:
    first = mall.paid_order("m-a", amount=600_000, referrer="R-SH", fulfilment="pickup")
    second = mall.paid_order("m-b", amount=400_000, referrer="R-SH")  # delivered below
    assert mall.fulfil(second["order_id"]).status_code == 200
    assert sales_and_level(mall) == (0, None)
    assert rate_of_next_order(mall) == STARTER_BP

    mall.clock.advance(WINDOW_CLOSED)
    settle(mall, first["order_id"], second["order_id"])
    # 600,000 + 400,000 reach senior (the order placed since is not delivered: no window)
    assert sales_and_level(mall) == (SENIOR_FEN, "senior")
    assert rate_of_next_order(mall) == SENIOR_BP

    # A refund after settlement takes its growth back; the level stays (no demotion).
    late = mall.refund(first["order_id"], 100_000)
    assert late.status_code == 200, late.text
    assert sales_and_level(mall) == (SENIOR_FEN - 100_000, "senior")
    rest = mall.refund(first["order_id"], 500_000)
    assert rest.status_code == 200, rest.text
    assert sales_and_level(mall) == (400_000, "senior")
    assert rate_of_next_order(mall) == SENIOR_BP


def test_a_partial_refund_before_settlement_counts_the_net(mall: Mall) -> None:
    order = mall.paid_order("m-part", amount=1_200_000, referrer="R-SH", fulfilment="pickup")
    for amount in (200_000, 100_000):
        refunded = mall.refund(order["order_id"], amount)
        assert refunded.status_code == 200, refunded.text
    assert sales_and_level(mall) == (0, None)

    mall.clock.advance(WINDOW_CLOSED)
    settle(mall, order["order_id"])
    # 900,000 net of refunds: below senior, though the payment alone was above it
    assert sales_and_level(mall) == (900_000, "starter")
    assert rate_of_next_order(mall) == STARTER_BP


def test_siyu_settle_credits_a_sale_once(mall: Mall, database_url: str, tmp_path: Path) -> None:
    order = mall.paid_order("m-cli", amount=1_200_000, referrer="R-SH", fulfilment="pickup")
    assert sales_and_level(mall) == (0, None)
    env = cli_env(database_url)
    early = run_cli(["settle", "--now", (START + timedelta(days=6)).isoformat()], env, tmp_path)
    assert early.returncode == 0, early.stderr
    assert "settled 0 orders" in early.stdout, early.stdout
    assert sales_and_level(mall) == (0, None)

    due = START + WINDOW_CLOSED
    settled = run_cli(["settle", "--now", due.isoformat()], env, tmp_path)
    assert settled.returncode == 0, settled.stderr
    assert "settled 1 orders" in settled.stdout, settled.stdout
    assert sales_and_level(mall) == (1_200_000, "senior")
    head = mall.api.head()

    # Again, at the same instant (a repeated run) and later (the order is settled):
    # nothing is written, the standing is credited once.
    for now in (due, due + timedelta(minutes=1)):
        again = run_cli(["settle", "--now", now.isoformat()], env, tmp_path)
        assert again.returncode == 0, again.stderr
        assert "settled 0 orders" in again.stdout, again.stdout
    mall.clock.advance(WINDOW_CLOSED + timedelta(minutes=2))
    assert mall.settle()["settled"] == []
    assert mall.api.head() == head
    assert sales_and_level(mall) == (1_200_000, "senior")
    view = mall.api.get(f"/v1/orders/{order['order_id']}", token=mall.tokens["hq"]).json()
    assert view["status"] == "settled"


# -- events stored before sales counted at settlement ------------------------------------


def pay_as_before(mall: Mall, monkeypatch: pytest.MonkeyPatch, order_id: str, amount: int) -> None:
    """Pay ``order_id`` as the code before this change did: the payment credits the
    distributor's standing, and its ``Order.Paid`` is stored in version 1 (no
    ``standing_credited``, no ``class_version``)."""
    store = mall.api.store
    assert store is not None
    mapper: Any = store.ledger.mapper
    with monkeypatch.context() as patch:
        encode = mapper.to_stored_event

        def as_version_1(event: Any) -> Any:
            stored = encode(event)
            if not isinstance(event, Order.Paid):
                return stored
            state = msgspec.json.decode(stored.state)
            state.pop("class_version", None)
            state.pop("standing_credited", None)
            return type(stored)(
                originator_id=stored.originator_id,
                originator_version=stored.originator_version,
                topic=stored.topic,
                state=msgspec.json.encode(state),
            )

        reward = order_handlers.reward_payment

        def reward_as_before(uow: Any, order: Any, payment_id: str, fen: int, by: str) -> int:
            credit_sale(uow, order.distributor, fen, f"order {order.order_id}", by)
            return reward(uow, order, payment_id, fen, by)

        patch.setattr(mapper, "to_stored_event", as_version_1)
        patch.setattr(order_handlers, "reward_payment", reward_as_before)
        paid = mall.pay(order_id, amount)
        assert paid.status_code == 200, paid.text


def test_a_sale_credited_at_payment_before_is_not_credited_again_at_settlement(
    mall: Mall, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Orders paid before sales counted at settlement had their sale credited at payment
    (a version 1 ``Order.Paid``): a refund still takes it back, a settlement adds nothing."""
    old = [mall.order(f"m-old-{i}", amount=600_000, referrer="R-SH", fulfilment="pickup")
           for i in range(3)]  # fmt: skip
    for placed in old:
        assert placed.status_code == 201, placed.text
        pay_as_before(mall, monkeypatch, placed.json()["order_id"], 600_000)
    kept, partly, returned = (placed.json()["order_id"] for placed in old)
    assert sales_and_level(mall) == (1_800_000, "senior"), "credited at payment"
    assert mall.refund(partly, 200_000).status_code == 200
    assert mall.refund(returned, 600_000).status_code == 200
    assert sales_and_level(mall) == (1_000_000, "senior")
    new = mall.paid_order("m-new", amount=300_000, referrer="R-SH", fulfilment="pickup")
    assert sales_and_level(mall) == (1_000_000, "senior")

    mall.clock.advance(WINDOW_CLOSED)
    settle(mall, kept, partly, new["order_id"])
    # the new order's sale only: the old ones counted when paid
    assert sales_and_level(mall) == (1_300_000, "senior")
    assert mall.refund(kept, 100_000).status_code == 200  # after settlement: taken back
    assert sales_and_level(mall) == (1_200_000, "senior")
