"""Fuzzing the write endpoints through the real app in process, on SQLite.

Arbitrary JSON and near-valid partner and token bodies, sent by various callers: the
answer is never a 5xx, every 4xx is problem+json, and a refused request moves nothing
(the store head stays where it was). Accepted ones answer their position.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from tests.conftest import BOOTSTRAP
from tests.e2e.client import Api, dealer, running_api, store_body

FUZZ = settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
SNAKE = re.compile(r"^[a-z][a-z0-9_]*$")
CALLERS = ("hq", "dealer", "store", "auditor", "none", "bogus")


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Api, dict[str, str | None]]]:
    path: Path = tmp_path_factory.mktemp("fuzz")
    with running_api(f"sqlite:///{path}/siyu.db") as api:
        assert api.post("/v1/partners", dealer("D1")).status_code == 201
        assert api.post("/v1/partners", store_body("S1", "D1")).status_code == 201
        assert api.partner("C1", "clerk", "S1").status_code == 201
        tokens: dict[str, str | None] = {
            "hq": BOOTSTRAP,
            "dealer": api.token("D1", "dealer"),
            "store": api.token("S1", "store"),
            "auditor": api.token("HQ", "auditor"),
            "none": None,
            "bogus": "siyu_" + "x" * 43,
        }
        yield api, tokens


# -- strategies ---------------------------------------------------------------------------

scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=60)
)
json_values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=12), inner, max_size=5)
    ),
    max_leaves=20,
)


def mostly(usual: st.SearchStrategy[Any], odd: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """A plausible value four times in five, else an odd one."""
    return st.sampled_from(range(5)).flatmap(lambda n: odd if n == 4 else usual)


valid_codes = st.from_regex(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,12}", fullmatch=True)
codes = mostly(
    valid_codes,
    st.sampled_from(["HQ", "D1", "S1", "C1", "NOPE", "a" * 40, "a" * 41, "bad/code", "-x", ""])
    | st.text(max_size=45),
)
region_codes = mostly(
    st.sampled_from(["31", "3101", "310101", "3205", "320505", "44", "4403"]),
    st.sampled_from(["00", "99", "000000", "3", "abcd", "3101011", " 31"])
    | st.from_regex(r"\d{1,7}", fullmatch=True),
)
county_codes = mostly(st.sampled_from(["310101", "320505", "440305"]), region_codes)
latitudes = mostly(st.floats(min_value=-90, max_value=90), st.floats() | json_values)
longitudes = mostly(st.floats(min_value=-180, max_value=180), st.floats() | json_values)
names = mostly(
    st.text(min_size=1, max_size=40).filter(str.strip),
    st.text(max_size=210) | st.sampled_from(["", " ", "\t", "x" * 200, "x" * 201]),
)
kinds = mostly(
    st.sampled_from(["dealer", "store", "clerk", "distributor"]),
    st.sampled_from(["brand", "Dealer", "", "emperor"]) | json_values,
)
PARTNER_KEYS = ["code", "kind", "parent", "name", "region_codes", "location", "region_code"]
TOKEN_KEYS = ["partner", "role", "label"]


def near(base: st.SearchStrategy[dict[str, Any]], keys: list[str]) -> st.SearchStrategy[Any]:
    """A plausible body, or one with a key dropped, replaced by any JSON, or an extra key."""

    def mutate(body: dict[str, Any], change: tuple[str, str, Any]) -> dict[str, Any]:
        how, key, value = change
        out = dict(body)
        if how == "drop":
            out.pop(key, None)
        elif how == "replace":
            out[key] = value
        elif how == "extra":
            out["extra_" + key] = value
        return out

    change = mostly(
        st.just(("keep", "", None)),
        st.tuples(
            st.sampled_from(["drop", "replace", "extra"]), st.sampled_from(keys), json_values
        ),
    )
    return st.builds(mutate, base, change)


def partner_shape(kind: str, parents: list[str]) -> st.SearchStrategy[dict[str, Any]]:
    fields: dict[str, st.SearchStrategy[Any]] = {
        "code": codes,
        "kind": mostly(st.just(kind), kinds),
        "parent": mostly(st.just(parents[0]), st.sampled_from(parents) | codes),
        "name": names,
    }
    if kind == "dealer":
        fields["region_codes"] = mostly(
            st.lists(region_codes, min_size=1, max_size=3),
            st.lists(region_codes, max_size=201, unique=False),
        )
    if kind == "store":
        fields["location"] = mostly(
            st.fixed_dictionaries({"lat": latitudes, "lng": longitudes}), st.none() | json_values
        )
        fields["region_code"] = county_codes
    return st.fixed_dictionaries(fields)


partner_bodies = near(
    st.one_of(
        partner_shape("dealer", ["HQ", "D1", "S1", "NOPE"]),
        partner_shape("store", ["D1", "HQ", "S1", "C1"]),
        partner_shape("clerk", ["S1", "D1", "C1", "HQ"]),
        partner_shape("distributor", ["S1", "HQ", "NOPE"]),
    ),
    PARTNER_KEYS,
)
token_bodies = near(
    st.one_of(
        st.fixed_dictionaries(
            {
                "partner": mostly(st.just("HQ"), codes),
                "role": mostly(
                    st.sampled_from(["hq", "auditor", "factory", "gateway"]),
                    st.sampled_from(["dealer", "admin", "HQ", ""]),
                ),
            },
            optional={"label": mostly(st.text(max_size=50), st.text(min_size=190, max_size=210))},
        ),
        st.fixed_dictionaries(
            {
                "partner": mostly(st.sampled_from(["D1", "S1", "C1"]), codes),
                "role": st.sampled_from(["dealer", "store", "clerk", "distributor", "hq"]),
            },
        ),
    ),
    TOKEN_KEYS,
)
callers = mostly(st.just("hq"), st.sampled_from(CALLERS))


def encode(value: Any) -> bytes:
    # allow_nan: NaN and Infinity are not JSON; the server must refuse them, not crash.
    return json.dumps(value, allow_nan=True).encode()


# -- the property -------------------------------------------------------------------------


def check(
    fixture: tuple[Api, dict[str, str | None]], path: str, content: bytes, caller: str
) -> None:
    api, tokens = fixture
    token = tokens[caller]
    headers = {"content-type": "application/json"}
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    head = api.head()
    response = api.http.post(path, content=content, headers=headers)
    status = response.status_code
    event(f"{status} {response.json().get('code', '') if status >= 400 else 'written'}")
    assert status < 500, f"{status} for {content[:300]!r} by {caller}: {response.text[:500]}"
    if status >= 400:
        assert response.headers["content-type"].startswith("application/problem+json"), (
            status,
            response.headers["content-type"],
            response.text[:300],
        )
        problem = response.json()
        assert problem["status"] == status, problem
        assert {"type", "title", "detail", "code"} <= problem.keys(), problem
        assert SNAKE.match(problem["code"]), problem
        if problem["code"] == "validation_failed":
            assert problem.get("errors"), problem
        assert api.head() == head, f"a refused request ({status} {problem['code']}) wrote events"
        return
    assert status == 201, (status, response.text[:300])
    position = response.json()["position"]
    after = api.head()
    # A new write ends at the head; a repeat of an earlier one answers its old position.
    assert (after == position > head) or (after == head >= position), (head, position, after)


@FUZZ
@given(body=json_values, path=st.sampled_from(["/v1/partners", "/v1/tokens"]), caller=callers)
def test_arbitrary_json(
    api: tuple[Api, dict[str, str | None]], body: Any, path: str, caller: str
) -> None:
    check(api, path, encode(body), caller)


@FUZZ
@given(body=partner_bodies, caller=callers)
def test_near_valid_partner_bodies(
    api: tuple[Api, dict[str, str | None]], body: Any, caller: str
) -> None:
    check(api, "/v1/partners", encode(body), caller)


@FUZZ
@given(body=token_bodies, caller=callers)
def test_near_valid_token_bodies(
    api: tuple[Api, dict[str, str | None]], body: Any, caller: str
) -> None:
    check(api, "/v1/tokens", encode(body), caller)


@FUZZ
@given(
    content=st.binary(max_size=200) | st.text(max_size=200).map(str.encode),
    path=st.sampled_from(["/v1/partners", "/v1/tokens"]),
)
def test_bytes_that_are_not_json(
    api: tuple[Api, dict[str, str | None]], content: bytes, path: str
) -> None:
    check(api, path, content, "hq")
