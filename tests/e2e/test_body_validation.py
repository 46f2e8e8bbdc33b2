"""Body validation over HTTP (API.md "Errors"): a refused body is a problem whose
``errors`` name each field by its JSON path, and nothing is written."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.e2e.client import Api, running_api
from tests.e2e.flows import build_channel, consumer, outer, to_store
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


NOT_INTEGERS = ["1000", 1000.0, "1e3", True]  # a string, a float (even a whole one), a bool


def test_an_integer_field_takes_json_integers_only(api: Api) -> None:
    """Amounts, counts and points are JSON integers (API.md): ``"amount": "1000"`` and
    ``1000.0`` were accepted (Litestar converts leniently) and paid an order."""
    ch = build_channel(api)
    to_store(ch)
    gateway = ch.tokens["gateway"]
    here = {"lat": 31.23, "lng": 121.47}
    order = {**ORDER, "location": here}
    for value in NOT_INTEGERS:
        for line, field in [
            ({**LINE, "qty": value}, "qty"),
            ({**LINE, "unit_price": value}, "unit_price"),
        ]:
            refused(
                api, "/v1/orders", {**order, "lines": [LINE, line]}, f"lines[1].{field}", gateway
            )
    placed = api.post("/v1/orders", order, token=gateway)
    assert placed.status_code == 201, placed.text
    total = placed.json()["total"]
    pay = {"payment_id": "p-1", "amount": total}
    refund = {"refund_id": "r-1", "amount": total}
    for value in [str(total), float(total), *NOT_INTEGERS]:
        refused(api, "/v1/orders/O-1/payments", {**pay, "amount": value}, "amount", gateway)
    paid = api.post("/v1/orders/O-1/payments", pay, token=gateway)
    assert paid.status_code == 200, paid.text
    for value in [str(total), float(total), *NOT_INTEGERS]:
        refused(api, "/v1/orders/O-1/refunds", {**refund, "amount": value}, "amount", gateway)
    assert api.post("/v1/orders/O-1/refunds", refund, token=gateway).status_code == 200

    scanned = ch.scan(consumer(ch, 0), "m-2", "s-1")
    assert scanned.status_code == 200 and scanned.json()["points_awarded"] > 0, scanned.text
    redemption = {"redemption_id": "rd-1", "points": 1, "reward": "a cup"}
    for value in ["1", 1.0, True]:
        body = {**redemption, "points": value}
        refused(api, "/v1/members/m-2/redemptions", body, "points", gateway)
    assert api.post("/v1/members/m-2/redemptions", redemption, token=gateway).status_code == 201

    batch = {"batch_id": "B-2", "sku": "TEA-500", "count": "5", "level": "unit"}
    refused(api, "/v1/code-batches", batch, "count", ch.tokens["factory"])


def test_coordinates_are_json_numbers_an_integer_among_them(api: Api) -> None:
    ch = build_channel(api)
    to_store(ch)
    body = {**SCAN, "code": consumer(ch, 0)}
    for lat in ["31.23", "31", None, True]:
        located = {**body, "location": {"lat": lat, "lng": 121.47}}
        refused(api, "/v1/scans", located, "location.lat", ch.tokens["gateway"])
    located = {**body, "location": {"lat": 31, "lng": 121}}  # whole degrees: still numbers
    scanned = api.post("/v1/scans", located, token=ch.tokens["gateway"])
    assert scanned.status_code == 200, scanned.text
    store = {"code": "S-2", "kind": "store", "parent": "D-SH", "name": "a store"}
    where = {"location": {"lat": 31.2, "lng": "121.4"}, "region_code": "310101"}
    refused(api, "/v1/partners", {**store, **where}, "location.lng", ch.tokens["hq"])


def test_logistics_codes_are_strings(api: Api) -> None:
    ch = build_channel(api)
    event = {"event_id": "e-1", "action": "commission", "codes": [outer(ch, 0)]}
    for codes, field in [([outer(ch, 0), 7], "codes[1]"), ("x", "codes")]:
        body = {"events": [event, {**event, "event_id": "e-2", "codes": codes}]}
        refused(api, "/v1/logistics", body, f"events[1].{field}", ch.tokens["factory"])
    assert ch.move("factory", "commission", [outer(ch, 0)]).status_code == 200


def refused(api: Api, path: str, body: Any, field: str, token: str) -> None:
    head = api.head()
    problem = assert_problem(api.post(path, body, token=token), 400, "validation_failed")
    assert [e["field"] for e in problem["errors"]] == [field], (body, problem)
    assert api.head() == head, "nothing was written"
