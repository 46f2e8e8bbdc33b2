"""Request fingerprints (domain/requests.py): the public part, the sealed personal part,
and records written under the legacy scheme."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from domain.ledger import RequestKey
from domain.requests import (
    PERSONAL_MARK,
    PRINT_SCHEME,
    ClientRequest,
    legacy_print,
    request_prints,
    split_personal,
)

AT = datetime(2026, 3, 1, tzinfo=UTC)
SCAN_PERSONAL = (("phone",), ("location", 0), ("location", 1))
SUBJECT = "6f1d3c52-5b1e-4f57-9a63-2a4f0b3c9d10"


def scan_content(phone: str | None, lat: float | None, lng: float | None) -> dict[str, Any]:
    return {"code": "C1", "member": "wx-1", "phone": phone, "location": [lat, lng, "wgs84"]}


def key(content: dict[str, Any]) -> RequestKey:
    return RequestKey("gateway@HQ", "scan", "s-1", content, SCAN_PERSONAL, SUBJECT)


def recorded(print_: str, personal_print: str | None) -> ClientRequest:
    return ClientRequest.record(
        "gateway@HQ", "scan", "s-1", print_, "{}", AT, personal_print, SUBJECT
    )


def test_the_public_part_marks_the_personal_values_present() -> None:
    content = scan_content("13912345678", 31.2, 121.4)
    public, values = split_personal(content, SCAN_PERSONAL)
    assert public["phone"] == PERSONAL_MARK
    assert public["location"] == [PERSONAL_MARK, PERSONAL_MARK, "wgs84"]
    assert values == ["13912345678", 31.2, 121.4]
    assert content["phone"] == "13912345678", "the content itself is left as it was"
    absent, nothing = split_personal(scan_content(None, None, None), SCAN_PERSONAL)
    assert absent["phone"] is None and nothing == [None, None, None]


def test_the_fingerprint_does_not_depend_on_the_personal_values() -> None:
    one = request_prints("scan", scan_content("13912345678", 31.2, 121.4), SCAN_PERSONAL)
    two = request_prints("scan", scan_content("13900000000", 30.0, 120.0), SCAN_PERSONAL)
    assert one[0] == two[0] and one[0].startswith(PRINT_SCHEME)
    assert one[1] is not None and two[1] is not None and one[1] != two[1]
    without = request_prints("scan", scan_content(None, 31.2, 121.4), SCAN_PERSONAL)
    assert without[0] != one[0], "which personal values are present still counts"
    bare = request_prints("scan", scan_content(None, None, None), SCAN_PERSONAL)
    assert bare[1] is None, "nothing personal: nothing to seal"
    assert request_prints("logistics", {"a": 1}, ())[1] is None


def test_a_repeat_matches_by_both_parts_or_by_the_public_part_once_forgotten() -> None:
    mine = key(scan_content("13912345678", 31.2, 121.4))
    other_phone = key(scan_content("13900000000", 31.2, 121.4))
    record = recorded(mine.fingerprint, mine.personal_print)
    assert mine.matches(record)
    assert not other_phone.matches(record)
    forgotten = recorded(mine.fingerprint, None)  # the sealed part reads as None
    assert mine.matches(forgotten) and other_phone.matches(forgotten)
    assert not key(scan_content(None, 31.2, 121.4)).matches(forgotten)


def test_a_record_under_the_legacy_scheme_is_compared_by_the_whole_content() -> None:
    mine = key(scan_content("13912345678", 31.2, 121.4))
    legacy = recorded(legacy_print("scan", mine.content), None)
    assert mine.matches(legacy)
    assert not key(scan_content("13900000000", 31.2, 121.4)).matches(legacy)


def test_a_key_normalised_also_matches_a_record_of_the_content_as_sent() -> None:
    """A code's URL is normalised to the bare code before the print; a record written
    before that holds a print of the content as sent (either scheme)."""
    url = {**scan_content(None, None, None), "code": "https://brand.example/01/0/21/C1"}
    bare = {**url, "code": "C1"}
    normalised = RequestKey("gateway@HQ", "scan", "s-1", bare, SCAN_PERSONAL, SUBJECT, sent=url)
    as_sent_before = key(url)
    for old in (
        recorded(as_sent_before.fingerprint, as_sent_before.personal_print),
        recorded(legacy_print("scan", url), None),
        recorded(legacy_print("scan", bare), None),
    ):
        assert normalised.matches(old)
    assert key(bare).matches(recorded(normalised.fingerprint, None)), "the other spelling"
    assert normalised.fingerprint == key(bare).fingerprint
    other_url = {**url, "code": "https://brand.example/01/0/21/C2"}
    other = RequestKey(
        "gateway@HQ", "scan", "s-1", {**bare, "code": "C2"}, SCAN_PERSONAL, SUBJECT, sent=other_url
    )
    assert not other.matches(recorded(as_sent_before.fingerprint, None))
    assert not other.matches(recorded(legacy_print("scan", url), None))
