"""Body validation over HTTP (API.md "Errors"): a refused body is a problem whose
``errors`` name each field by its JSON path, and nothing is written."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.e2e.client import Api, running_api
from tests.e2e.test_channel import assert_problem

SCAN = {"scan_id": "s-1", "code": "C" * 20, "member": {"external_id": "m-1"}}
LINE = {"sku": "TEA-500", "qty": 1, "unit_price": 100}
ORDER = {"order_id": "O-1", "member": "m-1", "lines": [LINE], "fulfilment": "pickup"}


@pytest.fixture
def api(database_url: str) -> Iterator[Api]:
    with running_api(database_url) as api:
        yield api


def without(body: dict[str, Any], name: str) -> dict[str, Any]:
    return {k: v for k, v in body.items() if k != name}


def refused_fields(api: Api, path: str, body: Any) -> list[str]:
    problem = assert_problem(api.post(path, body), 400, "validation_failed")
    return [e["field"] for e in problem["errors"]]


MISSING = [
    ("/v1/scans", without(SCAN, "scan_id"), "scan_id"),
    ("/v1/scans", without(SCAN, "member"), "member"),
    ("/v1/scans", {**SCAN, "member": {"phone": "13812345678"}}, "member.external_id"),
    ("/v1/scans", {**SCAN, "location": {"lat": 31.2}}, "location.lng"),
    ("/v1/orders", without(ORDER, "lines"), "lines"),
    ("/v1/orders", {**ORDER, "lines": [LINE, without(LINE, "qty")]}, "lines[1].qty"),
    ("/v1/orders/O-1/payments", {"payment_id": "p-1"}, "amount"),
    ("/v1/orders/O-1/refunds", {"amount": 100}, "refund_id"),
    ("/v1/logistics", {"events": [{"event_id": "e-1", "codes": ["x"]}]}, "events[0].action"),
    ("/v1/members/m-1/redemptions", {"redemption_id": "r-1", "reward": "a cup"}, "points"),
    ("/v1/partners", {"code": "D-1", "kind": "dealer", "parent": "HQ"}, "name"),
]


@pytest.mark.parametrize(("path", "body", "field"), MISSING)
def test_a_missing_field_is_named_by_its_path(
    api: Api, path: str, body: dict[str, Any], field: str
) -> None:
    head = api.head()
    assert refused_fields(api, path, body) == [field]
    assert api.head() == head


def test_an_unknown_field_is_named_by_its_path(api: Api) -> None:
    head = api.head()
    assert refused_fields(api, "/v1/scans", {**SCAN, "colour": "red"}) == ["colour"]
    member = {**SCAN["member"], "nickname": "x"}
    assert refused_fields(api, "/v1/scans", {**SCAN, "member": member}) == ["member.nickname"]
    assert refused_fields(api, "/v1/orders", {**ORDER, "lines": [{**LINE, "x": 1}]}) == [
        "lines[0].x"
    ]
    assert api.head() == head


def test_a_body_wrong_as_a_whole_is_the_body(api: Api) -> None:
    assert refused_fields(api, "/v1/scans", [SCAN]) == ["body"]
    assert refused_fields(api, "/v1/orders", "an order") == ["body"]
