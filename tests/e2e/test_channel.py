"""The channel tree over HTTP, on SQLite and PostgreSQL: who may register what, and refusals."""

from __future__ import annotations

import base64
import logging
import re
from collections.abc import Iterator

import pytest

from tests.conftest import BOOTSTRAP
from tests.e2e.client import Api, dealer, running_api, store_body


@pytest.fixture
def api(database_url: str) -> Iterator[Api]:
    with running_api(database_url) as api:
        yield api


def assert_problem(response, status: int, code: str | None = None) -> dict:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    body = response.json()
    assert body["status"] == status
    assert {"type", "title", "detail", "code"} <= body.keys()
    if code is not None:
        assert body["code"] == code, body
    return body


def test_hq_exists_from_the_start(api: Api) -> None:
    response = api.get("/v1/partners/HQ")
    assert response.status_code == 200
    assert response.json()["kind"] == "brand"
    assert response.json()["path"] == "HQ"


def test_full_tree_registers_with_paths_and_positions(api: Api) -> None:
    d = api.post("/v1/partners", dealer("D1"))
    assert d.status_code == 201, d.text
    assert d.json() == {
        "code": "D1",
        "kind": "dealer",
        "parent": "HQ",
        "path": "HQ/D1",
        "position": d.json()["position"],
    }
    dealer_token = api.token("D1", "dealer")
    s = api.post("/v1/partners", store_body("S1", "D1"), token=dealer_token)
    assert s.status_code == 201, s.text
    assert s.json()["path"] == "HQ/D1/S1"
    store_token = api.token("S1", "store")
    c = api.partner("C1", "clerk", "S1", token=store_token)
    r = api.partner("R1", "distributor", "S1", token=store_token)
    assert c.status_code == 201 and r.status_code == 201
    assert c.json()["path"] == "HQ/D1/S1/C1"
    assert r.json()["position"] > c.json()["position"] > s.json()["position"] > d.json()["position"]
    got = api.get("/v1/partners/S1", token=dealer_token).json()
    assert got["location"] == {"lat": 31.23, "lng": 121.47}
    assert got["region_code"] == "310101"
    assert got["status"] == "active"


def test_repeat_is_idempotent_and_other_content_is_409(api: Api) -> None:
    first = api.post("/v1/partners", dealer("D1"))
    head = api.head()
    again = api.post("/v1/partners", dealer("D1"))
    assert again.status_code == 201
    assert again.json() == first.json()
    assert api.head() == head, "a repeat writes nothing"
    other = api.post("/v1/partners", dealer("D1", ["11"]))
    assert_problem(other, 409, "idempotency_mismatch")
    assert api.head() == head


@pytest.mark.parametrize(
    ("who", "body", "status"),
    [
        ("store", dealer("DX"), 403),  # a store creating a dealer
        ("dealer", store_body("SX", "D2"), 403),  # a dealer creating under another dealer
        ("dealer", {"code": "CX", "kind": "clerk", "parent": "D1", "name": "c"}, 403),
        (
            "hq",
            {"code": "CX", "kind": "clerk", "parent": "D1", "name": "c"},
            422,
        ),  # clerk under dealer
        ("hq", store_body("SX", "HQ"), 422),  # a store directly under HQ
        ("clerk", {"code": "CX", "kind": "clerk", "parent": "S1", "name": "c"}, 403),
        ("auditor", dealer("DX"), 403),  # read-only
        ("gateway", dealer("DX"), 403),
        ("hq", {"code": "X", "kind": "emperor", "parent": "HQ", "name": "x"}, 400),
        ("hq", dealer("DX") | {"parent": "NOPE"}, 404),
        ("hq", dealer("DX") | {"region_codes": ["3"]}, 400),
        ("hq", dealer("DX") | {"region_codes": ["abcd"]}, 400),
        ("hq", dealer("DX") | {"region_codes": []}, 422),
        ("hq", dealer("DX") | {"region_codes": ["00"]}, 422),
        ("hq", dealer("DX") | {"name": "n" * 201}, 400),
        ("hq", dealer("DX") | {"code": "c" * 41}, 400),
        ("hq", dealer("DX") | {"code": "bad/code"}, 422),
        ("hq", dealer("DX") | {"name": "   "}, 422),
        ("hq", dealer("DX") | {"extra": 1}, 400),
        ("hq", store_body("SX", "D1", lat=91.0), 400),
        ("hq", store_body("SX", "D1", lng=-181.0), 400),
        ("hq", store_body("SX", "D1", region="3101"), 422),
        ("hq", {k: v for k, v in store_body("SX", "D1").items() if k != "location"}, 422),
    ],
)
def test_refusals_write_nothing(api: Api, who: str, body: dict, status: int) -> None:
    api.post("/v1/partners", dealer("D1"))
    api.post("/v1/partners", dealer("D2"))
    api.post("/v1/partners", store_body("S1", "D1"))
    api.partner("C1", "clerk", "S1")
    tokens = {
        "hq": None,
        "store": api.token("S1", "store"),
        "dealer": api.token("D1", "dealer"),
        "clerk": api.token("C1", "clerk"),
        "auditor": api.token("HQ", "auditor"),
        "gateway": api.token("HQ", "gateway"),
    }
    head = api.head()
    token = tokens[who]
    response = api.post("/v1/partners", body, **({} if token is None else {"token": token}))
    problem = assert_problem(response, status)
    if status in (400, 422) and problem["code"] == "validation_failed":
        assert problem["errors"], "validation problems name the field"
    assert api.head() == head, "a refused request writes nothing"


def test_malformed_json_and_missing_body(api: Api) -> None:
    head = api.head()
    assert_problem(api.post_raw("/v1/partners", b"{"), 400)
    assert_problem(api.post_raw("/v1/partners", b"[]"), 400, "validation_failed")
    assert_problem(api.post_raw("/v1/partners", b""), 400)
    assert_problem(api.post_raw("/v1/partners", b'{"code": 1}'), 400, "validation_failed")
    assert api.head() == head


NESTED_POSTS = ("/v1/products", "/v1/partners", "/v1/scans", "/v1/tokens", "/v1/logistics")


def test_a_body_nested_too_deeply_is_malformed_not_a_server_error(
    api: Api, caplog: pytest.LogCaptureFixture
) -> None:
    """msgspec raises RecursionError past about a thousand levels: still bad input, on every
    POST, with or without a token, and no traceback in the log. (A body decoded strictly
    into its Struct stops at its first value of the wrong shape, before any depth: that
    is a validation problem naming it.)"""
    caplog.set_level(logging.DEBUG)
    head = api.head()
    for depth in (1_000, 100_000):
        for body in ("[" * depth + "]" * depth, '{"a":' * depth + "1" + "}" * depth):
            for path in NESTED_POSTS:
                for token in (None, "siyu_" + "x" * 43, BOOTSTRAP):
                    response = api.post_raw(path, body.encode(), token=token)
                    problem = assert_problem(response, 400)
                    assert problem["code"] in ("malformed_request", "validation_failed")
    assert api.head() == head
    logged = [r for r in caplog.records if r.exc_info or r.levelno >= logging.ERROR]
    assert not logged, [r.getMessage() for r in logged]


STORED_INT_MAX = 2**63 - 1  # SQLite INTEGER, PostgreSQL BIGINT
PATH_VALUES = {"type_name": "Partner", "key": "HQ", "code": "HQ", "partner": "HQ"}


def integer_query_parameters(api: Api) -> list[tuple[str, str]]:
    """(concrete path, name) of every integer query parameter of every GET route."""
    document = api.http.get("/schema/openapi.json").json()
    found = []
    for template, operations in document["paths"].items():
        path = re.sub(r"\{([^}]+)\}", lambda m: PATH_VALUES.get(m.group(1), "X"), template)
        for parameter in operations.get("get", {}).get("parameters", []):
            schema = parameter.get("schema", {})
            types = {schema.get("type")} | {s.get("type") for s in schema.get("oneOf", [])}
            if parameter["in"] == "query" and "integer" in types:
                found.append((path, parameter["name"]))
    return found


def test_an_integer_past_what_the_stores_keep_is_a_400_naming_the_parameter(api: Api) -> None:
    """2**63 and more used to reach SQL (OverflowError: a 500) in after, after_version..."""
    checked = integer_query_parameters(api)
    names = {name for _, name in checked}
    # (after_version is text now: a version, or the cursor an old client was given)
    assert {"after", "version", "min_position", "limit"} <= names, names
    probe = [
        ("/v1/events", "after"),
        ("/v1/audit/reads", "after"),
        ("/v1/members/m1/points", "after"),
        ("/v1/aggregates/Partner/HQ/events", "after_version"),
    ]
    for path, name in probe + checked:
        for value in (2**63, 99999999999999999999999999):
            response = api.get(path, fresh=False, **{name: value})
            problem = assert_problem(response, 400, "validation_failed")
            assert [e["field"] for e in problem["errors"]] == [name], (path, problem)
    for path, name in probe:  # the largest value the stores keep is still a value
        assert api.get(path, fresh=False, **{name: STORED_INT_MAX}).status_code < 500, path


def test_a_position_cursor_past_what_the_stores_keep_is_refused(api: Api) -> None:
    for path in ("/v1/alerts", "/v1/partners/HQ/statement"):
        for text in (str(2**63), "9" * 40, "\u00b2"):  # "²".isdigit(), yet not int("²")
            cursor = base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")
            problem = assert_problem(api.get(path, fresh=False, cursor=cursor), 422)
            assert [e["field"] for e in problem["errors"]] == ["cursor"], (path, problem)


def test_authentication(api: Api) -> None:
    assert_problem(api.get("/v1/partners", token=None), 401, "missing_token")
    assert_problem(api.get("/v1/partners", token="siyu_nope"), 401, "invalid_token")
    response = api.http.get("/v1/partners", headers={"Authorization": "Basic abc"})
    assert_problem(response, 401)
    assert api.http.get("/health").status_code == 200
    assert api.http.get("/schema/openapi.json").status_code == 200


def test_scope_hides_other_subtrees(api: Api) -> None:
    for code in ("D1", "D2"):
        api.post("/v1/partners", dealer(code))
    api.post("/v1/partners", store_body("S1", "D1"))
    api.post("/v1/partners", store_body("S2", "D2"))
    d1 = api.token("D1", "dealer")
    s1 = api.token("S1", "store")
    assert_problem(api.get("/v1/partners/S2", token=d1), 404)
    assert_problem(api.get("/v1/partners/D2", token=d1), 404)
    assert_problem(api.get("/v1/partners/D1", token=s1), 404)
    codes = [p["code"] for p in api.get("/v1/partners", token=d1).json()["items"]]
    assert codes == ["D1", "S1"]
    children = api.get("/v1/partners", token=d1, parent="D2").json()["items"]
    assert children == []
    everything = [p["code"] for p in api.get("/v1/partners").json()["items"]]
    assert everything == ["D1", "D2", "HQ", "S1", "S2"]
    auditor = api.token("HQ", "auditor")
    assert len(api.get("/v1/partners", token=auditor).json()["items"]) == 5


def test_pagination_with_cursor(api: Api) -> None:
    for i in range(7):
        api.post("/v1/partners", dealer(f"D{i}"))
    seen: list[str] = []
    cursor = None
    while True:
        params = {"limit": 3} | ({"cursor": cursor} if cursor else {})
        body = api.get("/v1/partners", **params).json()
        seen += [p["code"] for p in body["items"]]
        cursor = body["next"]
        if cursor is None:
            break
    assert seen == sorted(seen) and len(seen) == 8
    assert_problem(api.get("/v1/partners", limit=0), 400)
    assert_problem(api.get("/v1/partners", limit=1001), 400)
    assert_problem(api.get("/v1/partners", cursor="%%%"), 422)


def test_suspended_partner_can_do_nothing(api: Api) -> None:
    api.post("/v1/partners", dealer("D1"))
    dealer_token = api.token("D1", "dealer")
    assert api.get("/v1/partners/D1", token=dealer_token).status_code == 200  # (now cached)
    suspended = api.post("/v1/partners/D1/suspension", {"change_id": "c1", "reason": "audit"})
    assert suspended.status_code == 200, suspended.text
    assert suspended.json()["status"] == "suspended"
    assert_problem(
        api.post("/v1/partners", store_body("S1", "D1"), token=dealer_token),
        403,
        "partner_suspended",
    )
    assert_problem(api.post("/v1/partners", store_body("S1", "D1")), 409, "partner_suspended")
    assert_problem(api.post("/v1/tokens", {"partner": "D1", "role": "dealer"}), 409)
    again = api.post("/v1/partners/D1/suspension", {"change_id": "c1", "reason": "audit"})
    assert again.json()["position"] == suspended.json()["position"]
    assert api.get("/v1/partners/D1").json()["status"] == "suspended"
    back = api.post("/v1/partners/D1/reactivation", {"change_id": "c2"})
    assert back.status_code == 200
    assert api.post("/v1/partners", store_body("S1", "D1"), token=dealer_token).status_code == 201


def test_territory_and_location_changes(api: Api) -> None:
    api.post("/v1/partners", dealer("D1"))
    api.post("/v1/partners", store_body("S1", "D1"))
    dealer_token = api.token("D1", "dealer")
    change = {"change_id": "t1", "region_codes": ["31", "3205"]}
    assert_problem(api.post("/v1/partners/D1/territory", change, token=dealer_token), 403)
    assert api.post("/v1/partners/D1/territory", change).status_code == 200
    assert api.get("/v1/partners/D1").json()["region_codes"] == ["31", "3205"]
    move = {"change_id": "m1", "location": {"lat": 31.19, "lng": 121.43}, "region_code": "310104"}
    assert api.post("/v1/partners/S1/location", move, token=dealer_token).status_code == 200
    got = api.get("/v1/partners/S1").json()
    assert got["location"] == {"lat": 31.19, "lng": 121.43} and got["region_code"] == "310104"


def test_tokens_roles_and_revocation(api: Api) -> None:
    api.post("/v1/partners", dealer("D1"))
    assert_problem(
        api.post("/v1/tokens", {"partner": "D1", "role": "store"}), 422, "role_not_for_partner"
    )
    assert_problem(api.post("/v1/tokens", {"partner": "HQ", "role": "dealer"}), 422)
    assert_problem(api.post("/v1/tokens", {"partner": "NOPE", "role": "dealer"}), 404)
    minted = api.post("/v1/tokens", {"partner": "D1", "role": "dealer"})
    token, token_id = minted.json()["token"], minted.json()["token_id"]
    # Usable the moment it is minted: authentication reads the write side, not a view.
    first_use = api.post("/v1/partners", store_body("S1", "D1"), token=token)
    assert first_use.status_code == 201, first_use.text
    assert_problem(api.post("/v1/tokens", {"partner": "D1", "role": "dealer"}, token=token), 403)
    second = api.post("/v1/tokens", {"partner": "D1", "role": "dealer"})
    assert second.json()["token"] != token, "each call mints a new token"
    revoked = api.post(f"/v1/tokens/{token_id}/revocation", {"reason": "lost"})
    assert revoked.status_code == 200, revoked.text
    assert_problem(api.get("/v1/partners/D1", token=token), 401)


def test_min_position_beyond_the_log_is_503(database_url: str) -> None:
    with running_api(database_url, projections_inline=False) as api:
        response = api.get("/v1/partners", min_position=10_000)
        assert_problem(response, 503, "not_caught_up")
