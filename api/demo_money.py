"""Demo money: orders of every fulfilment mode, refunds, a settlement with its split
instructions and receipts, a refund after settlement, a cancelled order and a withdrawal.

Loaded through the same commands as the API, with fixed client ids and natural keys,
so loading twice changes nothing. It needs no read model: the nearest store comes from
the demo's own store list, and the orders to settle are named.
"""

from __future__ import annotations

import contextlib
from datetime import datetime
from typing import Any

from api.demo_data import DEALERS
from domain.alerts import distance_km
from domain.catalog import ProductSpec
from domain.codes import gtin_check_digit
from domain.errors import Conflict
from domain.handlers import catalog, orders, settlement
from domain.handlers.orders import LineRequest, OrderRequest, ReceiptRequest
from domain.ledger import UnitOfWork
from domain.orders import Order, order_key
from domain.principal import Principal, Role, hq_admin
from domain.splits import Fulfilment, RateSet, SplitPolicy
from projections.store import Store

DEMO_POLICY_FROM = "2024-01-01T00:00:00+08:00"


def _gtin(body13: str) -> str:
    return body13 + str(gtin_check_digit(body13))


PRODUCTS = [
    ProductSpec(
        "MOONCAKE-6", _gtin("0690123400091"), "广式月饼 6 个 Mooncakes", 12800, 10, None, "bakery"
    ),
    ProductSpec("GIFT-TEA", _gtin("0690123400092"), "茶礼盒 Tea gift box", 36800, 30, None, "tea"),
]


def _stores() -> list[tuple[str, float, float]]:
    return [
        (f"S-{dealer.removeprefix('D-')}-{suffix}", lat, lng)
        for dealer, _name, _territory, stores in DEALERS
        for suffix, _store_name, lat, lng, _county in stores
    ]


def _nearest(lat: float, lng: float) -> list[str]:
    ranked = sorted((distance_km(lat, lng, s_lat, s_lng), code) for code, s_lat, s_lng in _stores())
    return [code for _distance, code in ranked[:20]]


def _order(
    hq: Principal, order_id: str, member: str, sku: str, qty: int, price: int, mode: str,
    **where: Any,
) -> OrderRequest:  # fmt: skip
    return OrderRequest(order_id, member, (LineRequest(sku, qty, price),), Fulfilment(mode),
                        **where)  # fmt: skip


def load_money_demo(store: Store) -> dict[str, Any]:
    ledger, hq = store.ledger, hq_admin()
    gateway = Principal(Role.GATEWAY, "HQ", "HQ")
    for spec in PRODUCTS:
        with contextlib.suppress(Conflict):  # listed before by other means: keep it
            catalog.list_product(ledger, hq, spec)
    policy = SplitPolicy(
        policy_id="DEMO-PICKUP-2024",
        fulfilment=Fulfilment.PICKUP,
        rates=RateSet({"distributor": 1000, "store": 9000}, {"store": 10000}),
        remainder_to="store",
        return_window_days=7,
        window_days_by_category={"bakery": 0},  # perishables: no return window
        effective_from=datetime.fromisoformat(DEMO_POLICY_FROM),
    )
    orders.publish_policy(ledger, hq, policy)
    plan = [
        _order(hq, "DEMO-O-1", "demo-member-1", "MOONCAKE-6", 2, 12800, "pickup",
               referrer="R-SH-01"),
        _order(hq, "DEMO-O-2", "demo-member-2", "GIFT-TEA", 1, 36800, "delivery",
               lat=31.1960, lng=121.4370),
        _order(hq, "DEMO-O-3", "demo-member-1", "GIFT-TEA", 3, 33000, "hq_dropship"),
        _order(hq, "DEMO-O-4", "demo-member-3", "GIFT-TEA", 1, 36800, "hq_dropship",
               lat=39.9140, lng=116.4100),
        _order(hq, "DEMO-O-5", "demo-member-4", "MOONCAKE-6", 1, 12800, "pickup",
               lat=31.2400, lng=121.5000),
        _order(hq, "DEMO-O-6", "demo-member-2", "MOONCAKE-6", 1, 12800, "delivery"),
    ]  # fmt: skip
    for request in plan:
        placed = orders.place_order(ledger, gateway, request, _nearest)
        if request.order_id == "DEMO-O-6":
            orders.cancel(ledger, gateway, "DEMO-O-6", "demo-cancel-6", "changed their mind")
            continue
        total = placed.answer["total"]
        orders.pay(ledger, gateway, request.order_id, f"demo-pay-{request.order_id}", total)
    orders.fulfil(ledger, gateway, "DEMO-O-2", "demo-fulfil-2")
    orders.refund(ledger, gateway, "DEMO-O-3", "demo-refund-3", 33000)
    orders.refund(ledger, gateway, "DEMO-O-4", "demo-refund-4", 36800)
    # The mooncakes' window (0 days) has closed: settle them, with split instructions.
    to_settle = ["DEMO-O-1", "DEMO-O-5"]
    uow = UnitOfWork(ledger)
    if not all(uow.get(Order, order_key(o), o).settled for o in to_settle):  # a second load
        settlement.settle_orders(ledger, hq, to_settle)
    receipt = ReceiptRequest(
        "demo-receipt-1", "DEMO-O-1/split/distributor", "succeeded", 2560, "WXPAY-DEMO-0001"
    )
    orders.record_receipt(ledger, gateway, "DEMO-O-1", receipt)
    orders.refund(ledger, gateway, "DEMO-O-1", "demo-refund-1", 12800)  # after settlement
    store_principal = Principal(Role.STORE, "S-SH-01", "HQ/D-SH/S-SH-01")
    settlement.request_withdrawal(ledger, store_principal, "S-SH-01", "demo-withdrawal-1", 10000)
    settlement.decide_withdrawal(ledger, hq, "S-SH-01", "demo-withdrawal-1", True, "approved")
    settlement.pay_withdrawal(ledger, hq, "S-SH-01", "demo-withdrawal-1", "BANK-DEMO-0001")
    return {"orders": len(plan), "settled": to_settle}
