"""A thin client over the real app (in process) or a real server (over TCP)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx
from litestar.testing import TestClient

from api.app import create_app
from api.settings import Settings
from domain.clock import Clock, system_clock
from projections.store import Store
from tests.conftest import BOOTSTRAP


class Api:
    """Calls the API with a bearer token; keeps the largest position it has seen."""

    def __init__(self, http: Any, store: Store | None = None) -> None:
        self.http = http
        self.store = store
        self.position = 0

    def _headers(self, token: str | None) -> dict[str, str]:
        return {} if token is None else {"Authorization": f"Bearer {token}"}

    def post(self, path: str, body: Any, token: str | None = BOOTSTRAP) -> httpx.Response:
        response = self.http.post(path, json=body, headers=self._headers(token))
        if response.status_code < 300:
            self.position = max(self.position, response.json().get("position", 0))
        return response

    def post_raw(self, path: str, content: bytes, token: str | None = BOOTSTRAP) -> httpx.Response:
        headers = {**self._headers(token), "content-type": "application/json"}
        return self.http.post(path, content=content, headers=headers)

    def get(
        self, path: str, token: str | None = BOOTSTRAP, fresh: bool = True, **params: Any
    ) -> httpx.Response:
        if fresh and self.position:
            params.setdefault("min_position", self.position)
        return self.http.get(path, params=params, headers=self._headers(token))

    # -- helpers used by many tests ---------------------------------------------

    def partner(
        self, code: str, kind: str, parent: str, token: str = BOOTSTRAP, **extra: Any
    ) -> httpx.Response:
        body = {"code": code, "kind": kind, "parent": parent, "name": f"{kind} {code}", **extra}
        return self.post("/v1/partners", body, token=token)

    def token(self, partner: str, role: str) -> str:
        response = self.post("/v1/tokens", {"partner": partner, "role": role})
        assert response.status_code == 201, response.text
        return str(response.json()["token"])

    def head(self) -> int:
        assert self.store is not None
        return self.store.head


def count_ledger_calls(api: Api, name: str) -> list[int]:
    """Counts the calls of the in-process app's ledger lookup ``name`` (``versions_of``:
    a token check by a statement of its own; ``select_many``: a read of aggregates); the
    real lookup still runs."""
    ledger = api.http.app.state.services.store.ledger
    lookup, calls = getattr(ledger, name), [0]

    def counted(*args: Any) -> Any:
        calls[0] += 1
        return lookup(*args)

    setattr(ledger, name, counted)
    return calls


def dealer(code: str, territory: list[str] | None = None) -> dict[str, Any]:
    return {
        "code": code,
        "kind": "dealer",
        "parent": "HQ",
        "name": f"dealer {code}",
        "region_codes": territory or ["31"],
    }


def store_body(
    code: str, parent: str, lat: float = 31.23, lng: float = 121.47, region: str = "310101"
) -> dict[str, Any]:
    return {
        "code": code,
        "kind": "store",
        "parent": parent,
        "name": f"store {code}",
        "location": {"lat": lat, "lng": lng},
        "region_code": region,
    }


@contextmanager
def running_api(database_url: str, clock: Clock = system_clock, **settings: Any) -> Iterator[Api]:
    config = Settings(database_url=database_url, bootstrap_token=BOOTSTRAP, **settings)
    store = config.open_store(clock=clock)
    app = create_app(config, store=store)
    try:
        with TestClient(app) as http:
            yield Api(http, store)
    finally:
        store.close()
