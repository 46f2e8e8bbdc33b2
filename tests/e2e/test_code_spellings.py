"""A code is the same code bare or as its URL (API.md: scan ``code`` "bare or as its
URL"; logistics ``codes`` likewise): a request repeated with its codes spelt the other
way is a repeat (the original answer, nothing written), not 409 ``idempotency_mismatch``.
Records written before codes were normalised hold a print of the content as sent: a
repeat spelt as that request was is still recognised. On SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest

from domain.handlers.members import member_uuid
from domain.handlers.scans import ScanRequest
from domain.ledger import RequestKey
from domain.requests import ClientRequest, legacy_print
from projections.store import Store
from tests.e2e.client import running_api
from tests.e2e.flows import Channel, build_channel, rows, to_store

GATEWAY_SCOPE = "gateway@HQ"  # the scope of the gateway token's requests
FACTORY_SCOPE = "factory@HQ"


@pytest.fixture
def ch(database_url: str) -> Iterator[Channel]:
    with running_api(database_url) as api:
        channel = build_channel(api)
        to_store(channel)
        yield channel


def scan(ch: Channel, scan_id: str, code: str, member: str = "m-1") -> Any:
    return ch.scan(code, member, scan_id)


def test_a_scan_repeated_with_its_code_spelt_the_other_way_is_a_repeat(ch: Channel) -> None:
    for i, (first, second) in enumerate(
        [("consumer_code", "consumer_url"), ("consumer_url", "consumer_code")]
    ):
        unit = ch.units[i]
        scanned = scan(ch, f"s-{i}", unit[first])
        assert scanned.status_code == 200, scanned.text
        assert scanned.json()["outcome"] == "first_scan"
        head = ch.api.head()
        for code in (unit[second], f" {unit[first]}\r\n"):  # a scanner's suffix is no change
            repeated = scan(ch, f"s-{i}", code)
            assert repeated.status_code == 200, (code, repeated.text)
            assert repeated.json() == scanned.json(), "the original answer, its position"
        assert ch.api.head() == head, "a repeat writes nothing"
    outer = ch.units[3]
    scanned = scan(ch, "s-outer", outer["url"])
    assert scanned.status_code == 200 and scanned.json()["outcome"] == "authentic", scanned.text
    assert scan(ch, "s-outer", outer["code"]).json() == scanned.json()
    other = scan(ch, "s-0", ch.units[4]["consumer_url"])
    assert other.status_code == 409 and other.json()["code"] == "idempotency_mismatch"


def test_logistics_repeated_with_codes_spelt_the_other_way_is_a_repeat(ch: Channel) -> None:
    """Units 4 and 5 are commissioned by to_store; packed into case 1, by URL, then bare."""
    units, case = ch.units[4:6], ch.cases[1]
    case_url = next(r["url"] for r in rows_of_cases(ch) if r["code"] == case)
    as_urls = [u["url"] for u in units]
    as_bare = [u["code"] for u in units]
    packed = ch.api.post("/v1/logistics", pack("e-pack", as_urls, case_url), ch.tokens["factory"])
    assert packed.status_code == 200, packed.text
    assert packed.json()["results"] == [{"event_id": "e-pack", "status": "applied"}]
    head = ch.api.head()
    again = ch.api.post("/v1/logistics", pack("e-pack", as_bare, case), ch.tokens["factory"])
    assert again.status_code == 200, again.text
    assert again.json()["results"] == [{"event_id": "e-pack", "status": "duplicate"}]
    assert again.json()["position"] == packed.json()["position"]
    assert ch.api.head() == head
    other = ch.api.post("/v1/logistics", pack("e-pack", as_bare[:1], case), ch.tokens["factory"])
    assert other.status_code == 409 and other.json()["code"] == "idempotency_mismatch"


def pack(event_id: str, codes: list[str], parent: str) -> dict[str, Any]:
    return {"events": [{"event_id": event_id, "action": "pack", "codes": codes, "parent": parent}]}


def rows_of_cases(ch: Channel) -> list[dict[str, str]]:
    return rows(ch.api, "B-CASES")


def commit_old_record(store: Store, key: RequestKey, answer: dict[str, Any], legacy: bool) -> int:
    """Writes the record a request made before codes were normalised (a print of its
    content as sent; ``legacy``: the whole-content hash of the records before that);
    returns its position."""
    record = key.record(answer, datetime.now(UTC))
    if legacy:
        record = ClientRequest.record(
            key.scope,
            key.kind,
            key.client_id,
            legacy_print(key.kind, key.content),
            record.answer,
            datetime.now(UTC),
        )
    stored = store.ledger.mapper.to_stored_event(record.collect_events()[0])
    store.ledger.committer.commit([stored])
    return store.head


@pytest.mark.parametrize("legacy", [False, True])
def test_a_repeat_of_a_request_recorded_before_normalising_is_recognised(
    ch: Channel, legacy: bool
) -> None:
    store = ch.api.store
    assert store is not None
    unit = ch.units[2]
    sent = ScanRequest("s-old", unit["consumer_url"], "m-old").content()
    subject = str(member_uuid(store.ledger, "m-old"))
    old_scan = RequestKey(GATEWAY_SCOPE, "scan", "s-old", sent, ScanRequest.PERSONAL, subject)
    answer = {"outcome": "first_scan", "member_id": subject, "points_awarded": 10}
    answer |= {"bound_store": "S-SH", "alerts": []}
    position = commit_old_record(store, old_scan, answer, legacy)
    repeated = scan(ch, "s-old", unit["consumer_url"], "m-old")
    assert repeated.status_code == 200, repeated.text
    assert repeated.json() == {**answer, "position": position}
    event = {"action": "commission", "codes": [ch.units[5]["url"]], "parent": None, "to": None}
    old_move = RequestKey(FACTORY_SCOPE, "logistics", "e-old", event)
    position = commit_old_record(
        store, old_move, {"event_id": "e-old", "status": "applied"}, legacy
    )
    head = ch.api.head()
    body = {"events": [{"event_id": "e-old", "action": "commission", "codes": event["codes"]}]}
    moved = ch.api.post("/v1/logistics", body, ch.tokens["factory"])
    assert moved.status_code == 200, moved.text
    assert moved.json() == {
        "results": [{"event_id": "e-old", "status": "duplicate"}],
        "position": position,
    }
    assert ch.api.head() == head
