"""The access log keeps query strings, outside the event log: a personal parameter's
value (a phone number, a name) must never be written there, however the client
spelled the parameter's name; everything else is kept as sent."""

from __future__ import annotations

from urllib.parse import parse_qsl

import pytest

from api.audit import redacted_query

PHONE = "13800138000"


@pytest.mark.parametrize(
    "query",
    [
        f"phone={PHONE}",
        f"PHONE={PHONE}",
        f"limit=5&Phone={PHONE}&after=x",
        f"ph%6Fne={PHONE}",  # the name percent-encoded
        f"%70hone={PHONE}&name=Li+Lei",
        "name=Li%20Lei",
        f"a=1&phone={PHONE}&phone={PHONE}",
    ],
)
def test_personal_values_are_redacted_however_spelled(query: str) -> None:
    logged = redacted_query(query)
    assert PHONE not in logged and "Li" not in logged, logged
    for key, value in parse_qsl(logged, keep_blank_values=True):
        if key.lower() in ("phone", "name"):
            assert value == "[personal]"


@pytest.mark.parametrize(
    "query",
    ["", "as_of=2026-11-30T08%3A00%3A00%2B00%3A00", "limit=5&after=abc", "q=phone", "x="],
)
def test_other_queries_are_kept_as_sent(query: str) -> None:
    assert redacted_query(query) == query
