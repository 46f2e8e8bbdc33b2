"""Where a request's token is checked, over HTTP on both stores: a handler that runs in a
worker thread (every command, most reads) checks it there, on the store's synchronous
driver; one on the event loop checks it on the loop. Either way a missing, unknown or
revoked token is 401 at once, and the body is validated first (API.md's order)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from litestar.routes import HTTPRoute

from domain.clock import FixedClock
from tests.e2e.client import Api, count_ledger_calls, dealer, running_api, store_body
from tests.e2e.test_channel import assert_problem
from tests.e2e.test_orders import START, build_mall

SCAN = {"scan_id": "s-1", "code": "https://q.example/u/NOSUCH", "member": {"external_id": "m-1"}}


@pytest.fixture
def api(database_url: str) -> Iterator[Api]:
    with running_api(database_url) as api:
        yield api


def test_handlers_in_threads_check_the_token_there(api: Api) -> None:
    """No handler that goes to a worker thread waits on the event loop for its token
    check first (the ``principal`` dependency); each takes the ``caller`` and checks in
    its thread. Handlers on the loop take the principal."""
    app = api.http.app
    in_thread, on_loop = [], []
    for route in app.routes:
        if not isinstance(route, HTTPRoute):
            continue
        for handler in route.route_handlers:
            names = set(handler.parsed_fn_signature.parameters)
            if not names & {"principal", "caller"}:
                continue
            threaded = bool(handler.sync_to_thread)  # (a sync function run in a thread)
            (in_thread if threaded else on_loop).append((route.path, names))
    assert len(in_thread) > 50 and on_loop, (len(in_thread), on_loop)
    assert [path for path, names in in_thread if "caller" not in names] == []
    assert [path for path, names in on_loop if "principal" not in names] == []


def test_a_command_without_a_valid_token_is_401(api: Api) -> None:
    assert_problem(api.post("/v1/scans", SCAN, token=None), 401, "missing_token")
    assert_problem(api.post("/v1/scans", SCAN, token="no-such-token-0123456789"), 401)
    assert_problem(api.post("/v1/partners", dealer("D1"), token="no-such"), 401)
    assert api.get("/v1/partners/D1").status_code == 404, "a refused command records nothing"


def test_the_body_is_validated_before_the_token(api: Api) -> None:
    assert_problem(api.post("/v1/scans", {"scan_id": 5}, token=None), 400)
    assert_problem(api.post_raw("/v1/scans", b"{not json", token=None), 400)


def test_a_revoked_token_is_refused_by_the_next_command(api: Api) -> None:
    assert api.post("/v1/partners", dealer("D1")).status_code == 201
    minted = api.post("/v1/tokens", {"partner": "D1", "role": "dealer"}).json()
    body = store_body("S1", "D1")
    assert api.post("/v1/partners", body, token=minted["token"]).status_code == 201
    revoked = api.post(f"/v1/tokens/{minted['token_id']}/revocation", {"reason": "lost"})
    assert revoked.status_code == 200, revoked.text
    again = store_body("S2", "D1")
    assert_problem(api.post("/v1/partners", again, token=minted["token"]), 401)
    assert api.get("/v1/partners/S2").status_code == 404


# -- the hot commands: the token checked by the command's first read --------------------


def test_a_cached_token_is_checked_by_the_commands_first_read(api: Api) -> None:
    """Scans, orders, payments and logistics by a known token make no statement for its check
    (the token and its partner are read with the request record), and still: a revoked
    token is 401 and writes nothing, a refusal made before any read (a role not allowed)
    is 401 too once the token is revoked, and a suspended partner is 403 at once."""
    mall = build_mall(api, FixedClock(START))
    gateway = api.post("/v1/tokens", {"partner": "HQ", "role": "gateway"}).json()
    mall.tokens["gateway"] = gateway["token"]
    first = mall.order("m-1", referrer="R-SH")  # known from here on (and to each route's
    assert first.status_code == 201, first.text  # access log, which resolves it once)
    assert mall.pay(first.json()["order_id"], 10_000).status_code == 200
    store = api.post("/v1/tokens", {"partner": "S-SH", "role": "store"}).json()
    as_store = {"order_id": "O-store", "member": "m-2", "fulfilment": "pickup",
                "lines": [{"sku": "TEA", "qty": 1, "unit_price": 100}]}  # fmt: skip
    assert_problem(api.post("/v1/orders", as_store, token=store["token"]), 403)
    move = {"events": [{"event_id": "e-1", "action": "receive", "codes": ["NOSUCH"]}]}
    refused = api.post("/v1/logistics", move, token=mall.tokens["D-SH"])
    assert_problem(refused, 422, "batch_refused")
    assert_problem(api.post("/v1/scans", SCAN, token=gateway["token"]), 404, "unknown_code")

    checks = count_ledger_calls(api, "versions_of")  # a token check of its own
    second = mall.order("m-1", referrer="R-SH")
    assert second.status_code == 201, second.text
    assert mall.pay(second.json()["order_id"], 10_000).status_code == 200
    assert_problem(api.post("/v1/logistics", move, token=mall.tokens["D-SH"]), 422)
    assert_problem(api.post("/v1/scans", SCAN, token=gateway["token"]), 404, "unknown_code")
    assert checks == [0], "no statement of their own for the token checks"

    for token in (gateway, store):
        revoked = api.post(f"/v1/tokens/{token['token_id']}/revocation", {"reason": "lost"})
        assert revoked.status_code == 200, revoked.text
    head = api.head()
    third = mall.order("m-1", referrer="R-SH")
    assert_problem(third, 401, "invalid_token")
    assert_problem(mall.pay(first.json()["order_id"], 10_000), 401, "invalid_token")
    assert_problem(api.post("/v1/orders", as_store, token=store["token"]), 401, "invalid_token")
    assert_problem(api.post("/v1/scans", SCAN, token=gateway["token"]), 401, "invalid_token")
    assert api.head() == head, "refused with a revoked token: nothing written"

    suspension = {"change_id": "c-1", "reason": "audit"}
    assert api.post("/v1/partners/D-SH/suspension", suspension).status_code == 200
    head = api.head()
    assert_problem(
        api.post("/v1/logistics", move, token=mall.tokens["D-SH"]), 403, "partner_suspended"
    )
    assert api.head() == head
