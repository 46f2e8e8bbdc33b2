"""Building blocks for tests that move goods through the channel over HTTP."""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass, field

from tests.e2e.client import Api, dealer, store_body

SKU = "TEA-500"
GTIN = "06901234567892"
CASE_GTIN = "16901234567899"


@dataclass
class Channel:
    """HQ -> D-SH (Shanghai) and D-BJ (Beijing) -> stores, with tokens for each."""

    api: Api
    tokens: dict[str, str] = field(default_factory=dict)
    units: list[dict[str, str]] = field(default_factory=list)
    cases: list[str] = field(default_factory=list)
    seq: int = 0

    def event_id(self) -> str:
        self.seq += 1
        return f"ev-{self.seq}"

    def move(self, who: str, action: str, codes: list[str], **extra: str):
        event = {"event_id": self.event_id(), "action": action, "codes": codes, **extra}
        return self.api.post("/v1/logistics", {"events": [event]}, token=self.tokens[who])

    def scan(self, code: str, member: str, scan_id: str, **extra):
        body = {"scan_id": scan_id, "code": code, "member": {"external_id": member}, **extra}
        return self.api.post("/v1/scans", body, token=self.tokens["gateway"])


def build_channel(api: Api, units: int = 6, cases: int = 2) -> Channel:
    ch = Channel(api)
    assert api.post("/v1/partners", dealer("D-SH", ["31"])).status_code == 201
    assert api.post("/v1/partners", dealer("D-BJ", ["11"])).status_code == 201
    assert api.post("/v1/partners", store_body("S-SH", "D-SH")).status_code == 201
    beijing = store_body("S-BJ", "D-BJ", lat=39.9139, lng=116.4105, region="110101")
    assert api.post("/v1/partners", beijing).status_code == 201
    product = {
        "sku": SKU,
        "gtin": GTIN,
        "name": "Tea 500g",
        "price": 5000,
        "points_per_scan": 10,
        "case_gtin": CASE_GTIN,
    }
    assert api.post("/v1/products", product).status_code == 201
    for who, partner, role in [
        ("factory", "HQ", "factory"),
        ("gateway", "HQ", "gateway"),
        ("auditor", "HQ", "auditor"),
        ("D-SH", "D-SH", "dealer"),
        ("D-BJ", "D-BJ", "dealer"),
        ("S-SH", "S-SH", "store"),
        ("S-BJ", "S-BJ", "store"),
        ("hq", "HQ", "hq"),
    ]:
        ch.tokens[who] = api.token(partner, role)
    batch = {"batch_id": "B-UNITS", "sku": SKU, "count": units, "level": "unit"}
    assert api.post("/v1/code-batches", batch, token=ch.tokens["factory"]).status_code == 201
    case_batch = {"batch_id": "B-CASES", "sku": SKU, "count": cases, "level": "case"}
    assert api.post("/v1/code-batches", case_batch, token=ch.tokens["factory"]).status_code == 201
    ch.units = rows(api, "B-UNITS")
    ch.cases = [r["code"] for r in rows(api, "B-CASES")]
    return ch


def rows(api: Api, batch: str) -> list[dict[str, str]]:
    response = api.get(f"/v1/code-batches/{batch}/codes")
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "text/csv; charset=utf-8", response.headers
    return list(csv.DictReader(io.StringIO(response.text)))


def outer(ch: Channel, i: int) -> str:
    return ch.units[i]["code"]


def consumer(ch: Channel, i: int) -> str:
    return ch.units[i]["consumer_code"]


def to_store(ch: Channel, dealer_code: str = "D-SH", store: str = "S-SH") -> None:
    """Commission everything; pack units 0-2 into case 0; case 0 and unit 3 go to the store."""
    codes = [outer(ch, i) for i in range(len(ch.units))]
    assert ch.move("factory", "commission", codes + ch.cases).status_code == 200
    assert ch.move("factory", "pack", codes[:3], parent=ch.cases[0]).status_code == 200
    assert ch.move("hq", "ship", [ch.cases[0], codes[3]], to=dealer_code).status_code == 200
    assert ch.move(dealer_code, "receive", [ch.cases[0], codes[3]]).status_code == 200
    assert ch.move(dealer_code, "ship", [ch.cases[0], codes[3]], to=store).status_code == 200
    assert ch.move(store, "receive", [ch.cases[0], codes[3]]).status_code == 200


def changed(code: str) -> str:
    """The same code with one character changed."""
    last = code[-1]
    return code[:-1] + ("B" if last == "A" else "A")
