"""Demo goods: products, code batches, a flow through the demo channel, consumer scans.

Shows at least one diversion (a Shanghai unit scanned in Beijing) and one repeat scan
(a second member scanning the same hidden code).
"""

from __future__ import annotations

from typing import Any

from api.demo_data import DEALERS
from domain.batches import CodeLevel
from domain.catalog import ProductSpec
from domain.codes import CodeKind, gtin_check_digit, issue_code, unit_codes
from domain.handlers import catalog
from domain.handlers.logistics import record_movements
from domain.handlers.scans import ScanRequest, scan
from domain.identity import batch_id, partner_id
from domain.logistics import Action, Movement
from domain.principal import HQ_CODE, Principal, Role, hq_admin
from projections.store import Store

UNITS_PER_CASE = 12


def _gtin(body13: str) -> str:
    return body13 + str(gtin_check_digit(body13))


PRODUCTS = [
    ProductSpec(
        "LIQ-500",
        _gtin("0690123400001"),
        "酱香白酒 500ml Sauce-aroma baijiu",
        49900,
        50,
        _gtin("1690123400001"),
        "liquor",
    ),
    ProductSpec(
        "TEA-250",
        _gtin("0690123400002"),
        "西湖龙井 250g Longjing tea",
        16800,
        20,
        _gtin("1690123400002"),
        "tea",
    ),
    ProductSpec(
        "DJ-001",
        _gtin("0690123400003"),
        "轻羽绒服 Light down jacket",
        59900,
        80,
        _gtin("1690123400003"),
        "apparel",
    ),
]


def _principal(ledger: Any, code: str, role: Role) -> Principal:
    partner = ledger.repository.get(partner_id(code))
    return Principal(role=role, partner=code, path=partner.path)


def load_codes_demo(store: Store) -> dict[str, Any]:
    ledger, hq = store.ledger, hq_admin()
    factory = Principal(Role.FACTORY, HQ_CODE, HQ_CODE)
    gateway = Principal(Role.GATEWAY, HQ_CODE, HQ_CODE)
    key = ledger.codebook.current_key
    for spec in PRODUCTS:
        catalog.list_product(ledger, hq, spec)
    shown: dict[str, Any] = {}
    for n, spec in enumerate(PRODUCTS):
        dealer_code, _name, _territory, stores = DEALERS[n]
        units_batch, cases_batch = f"DEMO-{spec.sku}-U", f"DEMO-{spec.sku}-C"
        catalog.issue_batch(
            ledger, factory, units_batch, spec.sku, 3 * UNITS_PER_CASE, CodeLevel.UNIT
        )
        catalog.issue_batch(ledger, factory, cases_batch, spec.sku, 3, CodeLevel.CASE)
        u_no: int = ledger.repository.get(batch_id(units_batch)).batch_no
        c_no: int = ledger.repository.get(batch_id(cases_batch)).batch_no
        units = [unit_codes(key, u_no, i) for i in range(3 * UNITS_PER_CASE)]
        cases = [issue_code(key, c_no, i, CodeKind.CASE) for i in range(3)]
        outer = [u[0] for u in units]
        store_code = f"S-{dealer_code.removeprefix('D-')}-01"
        dealer = _principal(ledger, dealer_code, Role.DEALER)
        shop = _principal(ledger, store_code, Role.STORE)
        steps: list[tuple[Principal, list[Movement]]] = [
            (
                factory,
                [Movement(f"{spec.sku}-commission", Action.COMMISSION, tuple(outer + cases))]
                + [
                    Movement(
                        f"{spec.sku}-pack-{c}",
                        Action.PACK,
                        tuple(outer[c * UNITS_PER_CASE : (c + 1) * UNITS_PER_CASE]),
                        parent=cases[c],
                    )
                    for c in range(3)
                ],
            ),
            (
                hq,
                [Movement(f"{spec.sku}-to-dealer", Action.SHIP, tuple(cases[:2]), to=dealer_code)],
            ),
            (
                dealer,
                [
                    Movement(f"{spec.sku}-dealer-receive", Action.RECEIVE, tuple(cases[:2])),
                    Movement(f"{spec.sku}-to-store", Action.SHIP, (cases[0],), to=store_code),
                ],
            ),
            (
                shop,
                [
                    Movement(f"{spec.sku}-store-receive", Action.RECEIVE, (cases[0],)),
                    Movement(f"{spec.sku}-sell", Action.SELL, tuple(outer[:6])),
                ],
            ),
        ]
        for who, movements in steps:
            record_movements(ledger, who, movements)
        lat, lng = stores[0][2], stores[0][3]
        for i in range(4):
            scan(
                ledger,
                gateway,
                ScanRequest(
                    f"{spec.sku}-scan-{i}",
                    units[i][1],
                    f"demo-member-{n}-{i}",
                    phone=f"1380000{n}{i:03d}",
                    lat=lat + 0.001 * i,
                    lng=lng,
                    referrer=None,
                ),
            )
        shown[spec.sku] = {"sold_unit": outer[0], "case": cases[0]}
        if n == 0:
            # A repeat scan: someone else scans the hidden code of unit 0 again.
            scan(
                ledger,
                gateway,
                ScanRequest("demo-repeat", units[0][1], "demo-copier", lat=lat, lng=lng),
            )
            # A diversion: a unit of the Shanghai dealer's second case scanned in Beijing.
            diverted = UNITS_PER_CASE + 1
            scan(
                ledger,
                gateway,
                ScanRequest(
                    "demo-diversion",
                    units[diverted][1],
                    "demo-traveller",
                    lat=39.9139,
                    lng=116.4105,
                ),
            )
            shown["diverted_unit"] = outer[diverted]
    return shown
