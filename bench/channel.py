"""The pinned channel (7 dealers, 63 stores, a distributor per store) and its setup over
HTTP: partners, a product, tokens, code batches and their CSV."""

from __future__ import annotations

import csv
import io
import random
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import httpx

from api.demo_data import DEALERS
from bench.server import BOOTSTRAP

SEED = 20240601
SKU = "BENCH-TEA"
GTIN = "06901234567892"
CASE_GTIN = "16901234567899"
STORES_PER_DEALER = 9  # 7 dealers x 9 = 63 stores (>= 50)


@dataclass(frozen=True)
class Site:
    code: str
    dealer: str
    lat: float
    lng: float
    region: str


@dataclass
class Channel:
    base: str
    tokens: dict[str, str] = field(default_factory=dict)
    dealers: dict[str, list[str]] = field(default_factory=dict)  # dealer -> territory
    stores: list[Site] = field(default_factory=list)
    distributors: dict[str, str] = field(default_factory=dict)  # store -> distributor

    def client(self) -> httpx.Client:
        return httpx.Client(base_url=self.base, timeout=600)


def sites() -> list[Site]:
    """The demo's real stores, and more near them (seeded jitter) up to 9 per dealer."""
    rnd = random.Random(SEED)
    out: list[Site] = []
    for dealer, _name, _territory, places in DEALERS:
        for n in range(STORES_PER_DEALER):
            _suffix, _label, lat, lng, county = places[n % len(places)]
            if n >= len(places):
                lat += rnd.uniform(-0.004, 0.004)
                lng += rnd.uniform(-0.004, 0.004)
            out.append(Site(f"S-{dealer[2:]}-{n + 1:02d}", dealer, lat, lng, county))
    return out


def _ok(response: httpx.Response, what: str) -> dict[str, Any]:
    if response.status_code >= 300:
        raise RuntimeError(f"{what}: {response.status_code} {response.text[:300]}")
    body: dict[str, Any] = response.json()
    return body


def _post(http: httpx.Client, path: str, body: Any, token: str = BOOTSTRAP) -> dict[str, Any]:
    response = http.post(path, json=body, headers={"Authorization": f"Bearer {token}"})
    return _ok(response, f"POST {path}")


def _parallel(jobs: Iterable[Any], workers: int = 8) -> list[Any]:
    with ThreadPoolExecutor(workers) as pool:
        return list(pool.map(lambda job: job(), jobs))


def build_channel(base: str) -> Channel:
    ch = Channel(base)
    with ch.client() as http:
        for dealer, name, territory, _places in DEALERS:
            body = {"code": dealer, "kind": "dealer", "parent": "HQ", "name": name,
                    "region_codes": territory}  # fmt: skip
            _post(http, "/v1/partners", body)
            ch.dealers[dealer] = territory
        ch.stores = sites()
        _parallel(
            (lambda s=s: _post(http, "/v1/partners", {
                "code": s.code, "kind": "store", "parent": s.dealer, "name": f"store {s.code}",
                "location": {"lat": s.lat, "lng": s.lng}, "region_code": s.region,
            }))
            for s in ch.stores
        )  # fmt: skip
        for s in ch.stores:
            ch.distributors[s.code] = f"R-{s.code[2:]}"
        _parallel(
            (lambda s=s: _post(http, "/v1/partners", {
                "code": ch.distributors[s.code], "kind": "distributor", "parent": s.code,
                "name": f"distributor of {s.code}",
            }))
            for s in ch.stores
        )  # fmt: skip
        product = {"sku": SKU, "gtin": GTIN, "name": "Tea 500g", "price": 5000,
                   "points_per_scan": 10, "case_gtin": CASE_GTIN}  # fmt: skip
        _post(http, "/v1/products", product)
        who = [("factory", "HQ", "factory"), ("gateway", "HQ", "gateway"), ("hq", "HQ", "hq")]
        who += [(d, d, "dealer") for d in ch.dealers]
        who += [(s.code, s.code, "store") for s in ch.stores]
        minted = _parallel(
            (lambda p=p, r=r: _post(http, "/v1/tokens", {"partner": p, "role": r})["token"])
            for _label, p, r in who
        )
        ch.tokens = {label: token for (label, _p, _r), token in zip(who, minted, strict=True)}
    return ch


def issue_batch(ch: Channel, batch_id: str, count: int, level: str) -> list[dict[str, str]]:
    """A code batch and its CSV rows (code, url, consumer_code, consumer_url)."""
    with ch.client() as http:
        body = {"batch_id": batch_id, "sku": SKU, "count": count, "level": level}
        _post(http, "/v1/code-batches", body, ch.tokens["factory"])
        response = http.get(
            f"/v1/code-batches/{batch_id}/codes",
            headers={"Authorization": f"Bearer {ch.tokens['factory']}"},
        )
        _ok_csv(response)
        return list(csv.DictReader(io.StringIO(response.text)))


def _ok_csv(response: httpx.Response) -> None:
    if response.status_code != 200:
        raise RuntimeError(f"CSV: {response.status_code} {response.text[:300]}")
