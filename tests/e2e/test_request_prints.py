"""Request fingerprints hold no digest of personal data (docs/decisions/crypto-shredding.md).

A request's record (``siyu.ClientRequest.Recorded``) answers a repeat of the same client
id; it used to carry an unkeyed SHA-256 of the whole content, a phone and exact
coordinates included, which anyone with the audit feed reversed by trying every phone
number. Now its ``fingerprint`` covers the public part only, and the personal part's
digest is sealed with the member's key: masked in the feed, shredded by ``forget``. On
SQLite and PostgreSQL, over HTTP.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import msgspec

from domain.handlers.scans import ScanRequest
from domain.requests import PRINT_SCHEME, ClientRequest, fingerprint, legacy_print
from projections.event_feed import PERSONAL
from projections.keyring import PREFIX as CIPHERTEXT
from projections.store import Store
from tests.e2e.client import Api, running_api
from tests.e2e.flows import consumer
from tests.e2e.personal_flow import ALICE, ALICE_PHONE, LAT, LNG, PersonalData, with_personal_data
from tests.e2e.test_forget import every_stored_row, forget

GATEWAY_SCOPE = "gateway@HQ"  # the scope of the gateway token's requests (HQ's gateway)
CONTACT_PHONE = "13912345678"  # the probe's phone
NAME = "王小明"
RECORDED = ClientRequest.Recorded.TOPIC


def contact(api: Api, data: PersonalData, change_id: str, phone: str, name: str = NAME) -> Any:
    body = {"change_id": change_id, "name": name, "phone": phone}
    return api.post(f"/v1/members/{ALICE}/contact", body, token=data.channel.tokens["gateway"])


def contact_content(phone: str, name: str = NAME) -> dict[str, Any]:
    return {"member": ALICE, "n": name, "p": phone}  # as domain.handlers.members builds it


def alice_scan_content(data: PersonalData) -> dict[str, Any]:
    """The content of Alice's first scan (personal_flow.scan_as), as the scan handler
    builds it."""
    return ScanRequest(
        "s-alice-1", consumer(data.channel, 0), ALICE, ALICE_PHONE, lat=LAT, lng=LNG
    ).content()


def records(store: Store) -> Iterator[tuple[dict[str, Any], bytes]]:
    """Every request record: its decoded (not decrypted) state, and its stored bytes."""
    for n in store.ledger.recorder.select_notifications(0, 100_000):
        if n.topic == RECORDED:
            _cls, state = store.ledger.mapper.decode_state(n)  # type: ignore[attr-defined]
            yield state, n.state


def record_of(store: Store, kind: str, client_id: str) -> tuple[dict[str, Any], bytes]:
    found = [r for r in records(store) if (r[0]["kind"], r[0]["client_id"]) == (kind, client_id)]
    assert len(found) == 1, (kind, client_id, found)
    return found[0]


def feed_record(api: Api, hq: str, kind: str, client_id: str) -> dict[str, Any]:
    feed = api.get(
        "/v1/events", token=hq, fresh=False, after=0, limit=1000, min_position=api.head()
    )
    assert feed.status_code == 200, feed.text
    found = [
        item["data"]
        for item in feed.json()["items"]
        if item["type"] == RECORDED
        and (item["data"]["kind"], item["data"]["client_id"]) == (kind, client_id)
    ]
    assert len(found) == 1, found
    return dict(found[0])


def test_a_request_record_holds_no_digest_of_the_phone_or_the_location(
    database_url: str,
) -> None:
    with running_api(database_url) as api:
        store = api.store
        assert store is not None
        data = with_personal_data(api)  # Alice's first scan: a phone, exact coordinates
        hq = data.channel.tokens["hq"]
        changed = contact(api, data, "c-1", CONTACT_PHONE)
        assert changed.status_code == 200, changed.text

        scan = alice_scan_content(data)
        personal_digests = {
            # what a record would hold in clear under the legacy scheme...
            legacy_print("scan", scan),
            legacy_print("member-contact", contact_content(CONTACT_PHONE)),
            # ...and the personal part's own digest, which may exist only sealed
            fingerprint({"kind": "scan", "personal": [ALICE_PHONE, LAT, LNG]}),
            fingerprint({"kind": "member-contact", "personal": [NAME, CONTACT_PHONE]}),
        }
        stored = every_stored_row(store)
        feed = api.get(
            "/v1/events", token=hq, fresh=False, after=0, limit=1000, min_position=api.head()
        )
        assert feed.status_code == 200, feed.text
        for digest in personal_digests:
            assert digest not in stored
            assert digest not in feed.text

        # The probe: 10^4 candidates 139????5678 against the contact record's fingerprint,
        # by the content the record is known to be made of, find nothing.
        _state, raw = record_of(store, "member-contact", "c-1")
        text = raw.decode()
        tried = (
            legacy_print("member-contact", contact_content(f"139{i:04d}5678")) for i in range(10**4)
        )
        found = [digest for digest in tried if digest in text]
        assert found == []

        for kind, client_id in (("member-contact", "c-1"), ("scan", "s-alice-1")):
            state, raw = record_of(store, kind, client_id)
            assert state["fingerprint"].startswith(PRINT_SCHEME)
            assert state["member_id"] == data.members[ALICE]
            assert str(state["personal_print"]).startswith(CIPHERTEXT), "sealed in the log"
            shown = feed_record(api, hq, kind, client_id)
            assert shown["personal_print"] == PERSONAL, shown
            assert shown["fingerprint"] == state["fingerprint"]
            assert ALICE_PHONE.encode() not in raw and CONTACT_PHONE.encode() not in raw

        # A request without personal data (a partner's registration) has no sealed part.
        partner, _raw = record_of(store, "partner", "S-SH")
        assert partner["personal_print"] is None and partner["member_id"] is None


def test_a_repeat_is_compared_in_full_until_the_member_is_forgotten(database_url: str) -> None:
    with running_api(database_url) as api:
        store = api.store
        assert store is not None
        data = with_personal_data(api)
        hq = data.channel.tokens["hq"]
        changed = contact(api, data, "c-1", CONTACT_PHONE)
        assert changed.status_code == 200, changed.text

        # Repeats while Alice is known: the same content is answered as recorded, other
        # content (another phone, another location, another name) is refused.
        again = contact(api, data, "c-1", CONTACT_PHONE)
        assert again.status_code == 200 and again.json() == changed.json()
        other = contact(api, data, "c-1", "13912340000")
        assert other.status_code == 409 and other.json()["code"] == "idempotency_mismatch"
        renamed = contact(api, data, "c-1", CONTACT_PHONE, name="李雷")
        assert renamed.status_code == 409 and renamed.json()["code"] == "idempotency_mismatch"
        body = {
            "scan_id": "s-alice-1",
            "code": consumer(data.channel, 0),
            "member": {"external_id": ALICE, "phone": ALICE_PHONE},
            "location": {"lat": LAT, "lng": LNG},
        }
        gateway = data.channel.tokens["gateway"]
        first_scan = api.post("/v1/scans", body, token=gateway)
        assert first_scan.status_code == 200, first_scan.text
        moved = {**body, "location": {"lat": LAT, "lng": LNG + 0.001}}
        refused = api.post("/v1/scans", moved, token=gateway)
        assert refused.status_code == 409 and refused.json()["code"] == "idempotency_mismatch"
        unlocated = {k: v for k, v in body.items() if k != "location"}
        refused = api.post("/v1/scans", unlocated, token=gateway)
        assert refused.status_code == 409 and refused.json()["code"] == "idempotency_mismatch"

        # Forgotten: the sealed part can no longer be read; a repeat of the same request
        # is still answered (the public part decides), never a server error.
        assert forget(api, data, ALICE, "f-1", hq).status_code == 200
        store.keyring.cache_ttl_s = 0  # (this process had her key cached)
        after = contact(api, data, "c-1", CONTACT_PHONE)
        assert after.status_code == 200, after.text
        assert after.json() == changed.json()
        rescan = api.post("/v1/scans", body, token=gateway)
        assert rescan.status_code == 200, rescan.text
        assert rescan.json() == first_scan.json()
        assert api.post("/v1/scans", unlocated, token=gateway).status_code == 409, "public part"


def test_a_repeat_of_a_request_recorded_under_the_legacy_scheme_is_recognised(
    database_url: str,
) -> None:
    """Records written before the scheme carry the hash of the whole content (they cannot
    be rewritten: the log is hash-chained): a repeat is still compared with it."""
    with running_api(database_url) as api:
        store = api.store
        assert store is not None
        data = with_personal_data(api)
        answer = {"member_id": data.members[ALICE]}
        legacy = ClientRequest.record(
            GATEWAY_SCOPE,
            "member-contact",
            "c-old",
            legacy_print("member-contact", contact_content(CONTACT_PHONE)),
            msgspec.json.encode(answer).decode(),
            datetime.now(UTC),
        )
        events = legacy.collect_events()
        stored = store.ledger.mapper.to_stored_event(events[0])
        # as written before the change: no new fields in its state
        state = msgspec.json.decode(stored.state)
        state.pop("personal_print"), state.pop("member_id")
        stored = type(stored)(
            stored.originator_id,
            stored.originator_version,
            stored.topic,
            msgspec.json.encode(state),
        )
        store.ledger.committer.commit([stored])
        repeated = contact(api, data, "c-old", CONTACT_PHONE)
        assert repeated.status_code == 200, repeated.text
        assert repeated.json()["member_id"] == data.members[ALICE]
        other = contact(api, data, "c-old", "13912340000")
        assert other.status_code == 409 and other.json()["code"] == "idempotency_mismatch"
        record = store.ledger.repository.get(legacy.id)
        assert isinstance(record, ClientRequest)
        assert record.personal_print is None and record.member_id is None
