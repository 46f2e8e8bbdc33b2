"""EPCIS 2.0 export: GS1's JSON Schema, CBV values, extensions, privacy.

The schema is GS1's own (/work/shared/data/gs1, or $SIYU_GS1_DATA), validated
offline with Draft 7 and real format checking. The schema lets through bare
words only from CBV, but any URI, any `prefix:name` key and personal data; the
checker below (`problems`) covers those gaps, and the negative tests show
each gap exists and is closed.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from jsonschema import Draft7Validator, FormatChecker
from jsonschema.exceptions import ValidationError
from referencing import Registry
from referencing.jsonschema import DRAFT7

from domain.codes import CodeKey, CodeKind, digital_link, issue_code, unit_codes
from projections.epcis import (
    BIZSTEP_CONSUMER_SCAN,
    EPCIS_CONTEXT,
    SIYU_NAMESPACE,
    EpcisStep,
    EpcisUnit,
    epcis_document,
)

GS1_DATA = Path(os.environ.get("SIYU_GS1_DATA", "/work/shared/data/gs1"))
SCHEMA_PATH = GS1_DATA / "EPCIS-JSON-Schema.json"
CONTEXT_PATH = GS1_DATA / "epcis-context.jsonld"

pytestmark = pytest.mark.skipif(
    not SCHEMA_PATH.exists() or not CONTEXT_PATH.exists(),
    reason=f"GS1 EPCIS schema/context not found under {GS1_DATA}",
)


def _load(path: Path) -> Any:
    return json.loads(path.read_text(encoding="utf-8")) if path.exists() else {}


SCHEMA: dict[str, Any] = _load(SCHEMA_PATH)
GS1_CONTEXT: dict[str, Any] = _load(CONTEXT_PATH).get("@context", {})
CBV = "https://ref.gs1.org/cbv/"

# --- offline format checking -------------------------------------------------
# jsonschema checks "uri" and "date-time" only with optional packages
# (rfc3987, rfc3339-validator) that the venv does not have: without them the
# schema's 9 format assertions would silently pass anything. These are the
# RFC 3986 (absolute URI) and RFC 3339 (date-time) grammars, written out.

_URI_RE = re.compile(
    r"[A-Za-z][A-Za-z0-9+.-]*:"  # scheme
    r"(?:[A-Za-z0-9._~!$&'()*+,;=:@/?#\[\]-]|%[0-9A-Fa-f]{2})*"
)
_DATE_TIME_RE = re.compile(
    r"\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(?:\.\d+)?(?:[Zz]|[+-]\d{2}:\d{2})"
)

FORMATS = FormatChecker()


def _is_uri(value: object) -> bool:
    return not isinstance(value, str) or _URI_RE.fullmatch(value) is not None


def _is_date_time(value: object) -> bool:
    if not isinstance(value, str):
        return True
    if _DATE_TIME_RE.fullmatch(value) is None:
        return False
    datetime.fromisoformat(value.upper().replace("Z", "+00:00"))  # ranges
    return True


FORMATS.checks("uri")(_is_uri)
FORMATS.checks("date-time", raises=ValueError)(_is_date_time)


def _refs(node: object) -> Iterator[str]:
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "$ref" and isinstance(value, str):
                yield value
            yield from _refs(value)
    elif isinstance(node, list):
        for item in node:
            yield from _refs(item)


def _validator() -> Draft7Validator:
    # A registry holding only the schema itself and no retrieval: a remote
    # $ref would raise instead of being fetched.
    registry: Registry[Any] = Registry().with_resource(
        SCHEMA.get("$id", "urn:gs1:epcis"), DRAFT7.create_resource(SCHEMA)
    )
    return Draft7Validator(SCHEMA, format_checker=FORMATS, registry=registry)


def schema_errors(instance: object) -> list[str]:
    validator = _validator()
    return [
        f"{'/'.join(map(str, e.absolute_path))}: {e.message}"
        for e in validator.iter_errors(json.loads(json.dumps(instance)))
    ]


# --- the CBV / extension / privacy checker -----------------------------------


def _enum(definition: str) -> frozenset[str]:
    for option in SCHEMA["definitions"][definition]["anyOf"]:
        if "enum" in option:
            return frozenset(option["enum"])
    raise AssertionError(f"no enumeration in {definition}")


def _standard_keys() -> frozenset[str]:
    """Every unprefixed key EPCIS defines: schema properties and enums."""
    keys: set[str] = {term for term in GS1_CONTEXT if not term.startswith("@")}

    def walk(node: object) -> None:
        if isinstance(node, dict):
            props = node.get("properties")
            if isinstance(props, dict):
                keys.update(props)
            names = node.get("propertyNames")
            for option in names.get("anyOf", []) if isinstance(names, dict) else []:
                keys.update(option.get("enum", []))
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for item in node:
                walk(item)

    walk(SCHEMA)
    return frozenset(keys)


_VOCABS = {
    "bizStep": ("BizStep-", "bizStep"),
    "disposition": ("Disp-", "disposition"),
    "type@source": ("SDT-", "source-dest-type"),
}
_PERSONAL_KEY_PARTS = ("member", "phone", "mobile", "consumer", "openid", "unionid")
_PERSONAL_KEYS = frozenset({"lat", "lng", "lon", "latitude", "longitude", "coordinates", "geo"})
_PHONE_RE = re.compile(r"(?<!\d)1[3-9]\d{9}(?!\d)")  # a mainland mobile number


def _declared_prefixes(document: dict[str, Any], problems: list[str]) -> dict[str, str]:
    context = document.get("@context")
    items = context if isinstance(context, list) else [context]
    if EPCIS_CONTEXT not in items:
        problems.append(f"@context lacks the GS1 EPCIS 2.0 context {EPCIS_CONTEXT}")
    declared: dict[str, str] = {}
    for item in items:
        if not isinstance(item, dict):
            continue
        for prefix, iri in item.items():
            if not isinstance(iri, str) or not re.fullmatch(r"https?://\S+[/#]", iri):
                problems.append(f"@context term {prefix!r} is not a namespace prefix")
            elif prefix in GS1_CONTEXT:
                problems.append(f"@context redefines the protected GS1 term {prefix!r}")
            elif iri.startswith(CBV) or "gs1.org" in iri:
                problems.append(f"extension prefix {prefix!r} points into GS1's namespace")
            else:
                declared[prefix] = iri
    return declared


def _vocab_ok(value: object, kind: str, allowed: frozenset[str], ns: dict[str, str]) -> bool:
    if not isinstance(value, str):
        return False
    if value in allowed:
        return True
    if value.startswith(CBV):
        return value.startswith(CBV + kind) and value[len(CBV + kind) :] in allowed
    if any(value.startswith(iri) and len(value) > len(iri) for iri in ns.values()):
        return True
    prefix, sep, local = value.partition(":")
    return bool(sep) and prefix in ns and bool(local) and not local.startswith("//")


def _key_ok(key: str, standard: frozenset[str], ns: dict[str, str]) -> bool:
    prefix, sep, local = key.partition(":")
    if not sep:
        return key in standard
    if local.startswith("//"):  # a full IRI as key
        return any(key.startswith(iri) and len(key) > len(iri) for iri in ns.values())
    return prefix in ns and re.fullmatch(r"[A-Za-z_][A-Za-z0-9_.-]*", local) is not None


def problems(document: dict[str, Any], consumer_codes: tuple[str, ...] = ()) -> list[str]:
    """What the JSON Schema does not check: CBV values, prefixes, privacy."""
    found: list[str] = []
    ns = _declared_prefixes(document, found)
    standard = _standard_keys()
    vocab = {field: (kind, _enum(name)) for field, (kind, name) in _VOCABS.items()}

    def walk(node: object, path: str, parent_key: str) -> None:
        if isinstance(node, dict):
            for key, value in node.items():
                here = f"{path}/{key}"
                if not _key_ok(key, standard, ns):
                    found.append(f"{here}: key is neither EPCIS nor under a declared prefix")
                local = key.partition(":")[2] or key
                if local.lower() in _PERSONAL_KEYS or any(
                    part in local.lower() for part in _PERSONAL_KEY_PARTS
                ):
                    found.append(f"{here}: personal data key")
                field = f"type@{parent_key}" if key == "type" and parent_key else key
                if field in ("type@sourceList", "type@destinationList"):
                    field = "type@source"
                if field in vocab:
                    kind, allowed = vocab[field]
                    if not _vocab_ok(value, kind, allowed, ns):
                        found.append(f"{here}: {value!r} is not a CBV 2.0 {kind[:-1]} value")
                walk(value, here, key)
        elif isinstance(node, list):
            for index, item in enumerate(node):
                walk(item, f"{path}/{index}", parent_key)
        elif isinstance(node, float):
            found.append(f"{path}: a float (coordinates?) in the export")
        elif isinstance(node, str) and _PHONE_RE.search(node):
            found.append(f"{path}: looks like a phone number")

    # @context holds the prefix declarations themselves (checked above).
    walk({k: v for k, v in document.items() if k != "@context"}, "", "")

    events = document.get("epcisBody", {}).get("eventList", [])
    ids = [event.get("eventID") for event in events]
    if len(ids) != len(set(ids)) or None in ids:
        found.append("eventIDs are missing or not unique")
    for index, event in enumerate(events):
        try:
            offset = datetime.fromisoformat(event["eventTime"]).utcoffset()
        except (KeyError, ValueError):
            continue  # the schema reports it
        if offset is not None:
            sign = "-" if offset < timedelta(0) else "+"
            minutes = abs(offset) // timedelta(minutes=1)
            if event.get("eventTimeZoneOffset") != f"{sign}{minutes // 60:02d}:{minutes % 60:02d}":
                found.append(f"/epcisBody/eventList/{index}: offset differs from eventTime's")
        region = next((v for k, v in event.items() if k.endswith(":regionCode")), None)
        if region is not None and not re.fullmatch(r"\d{6}", str(region)):
            found.append(f"/epcisBody/eventList/{index}: region code is not a 6-digit county")

    text = json.dumps(document, ensure_ascii=False)
    found.extend(
        f"consumer code {code[:4]}... appears in the export"
        for code in consumer_codes
        if code in text
    )
    return found


# --- a realistic history ---------------------------------------------------

BASE = "https://id.siyu-brand.example"
PARTNERS = "https://ledger.siyu-brand.example/partners"
GTIN = "06901234567892"
CASE_GTIN = "16901234567899"
SHANGHAI = ZoneInfo("Asia/Shanghai")
KEY = CodeKey(7, bytes(range(32)))
BATCH_NO = 41
MEMBER_PHONE = "13812345678"  # in the scan requests, never in the export

OUTER_A, CONSUMER_A = unit_codes(KEY, BATCH_NO, 0)
OUTER_B, CONSUMER_B = unit_codes(KEY, BATCH_NO, 1)
CASE = issue_code(KEY, BATCH_NO + 1, 0, CodeKind.CASE)
URL_A = digital_link(BASE, GTIN, OUTER_A)
URL_B = digital_link(BASE, GTIN, OUTER_B)
CASE_URL = digital_link(BASE, CASE_GTIN, CASE)
UNIT_A = EpcisUnit(code=OUTER_A, gtin=GTIN, sku="MOONCAKE-6", url=URL_A)
UNIT_B = EpcisUnit(code=OUTER_B, gtin=GTIN, sku="MOONCAKE-6", url=URL_B)
CONSUMER_CODES = (
    CONSUMER_A,
    CONSUMER_B,
    digital_link(BASE, GTIN, CONSUMER_A),
    digital_link(BASE, GTIN, CONSUMER_B),
)


def partner_uri(code: str) -> str:
    return f"{PARTNERS}/{code}"


def at(day: int, hour: int, minute: int = 0) -> datetime:
    return datetime(2024, 9, day, hour, minute, tzinfo=SHANGHAI)


def in_case(when: datetime, position: int, action: str, partner: str, **more: Any) -> EpcisStep:
    return EpcisStep(
        when, position, action, partner, container=CASE, container_url=CASE_URL, **more
    )


def history() -> list[EpcisStep]:
    """A unit's trace; the two units of the case get the same steps here."""
    return [
        EpcisStep(at(1, 8), 101, "commission", "F-SZ"),
        in_case(at(1, 9), 102, "pack", "F-SZ", units=(URL_A, URL_B)),
        in_case(at(1, 15), 110, "ship", "F-SZ", to="HQ", via_container=True),
        in_case(at(2, 10), 120, "receive", "HQ", via_container=True),
        in_case(at(3, 9), 130, "ship", "HQ", to="D-SH", via_container=True),
        in_case(at(4, 14), 140, "receive", "D-SH", via_container=True),
        in_case(at(4, 15), 141, "unpack", "D-SH", units=(URL_A, URL_B)),
        EpcisStep(at(5, 9), 150, "ship", "D-SH", to="S-SH-01"),
        EpcisStep(at(5, 16), 160, "receive", "S-SH-01"),
        EpcisStep(at(8, 19, 30), 170, "sell", "S-SH-01"),
        # A scan recorded in UTC: the offset is derived, not assumed.
        EpcisStep(
            datetime(2024, 9, 8, 12, 5, tzinfo=UTC),
            180,
            "scan",
            "S-SH-01",
            region_code="310115",
            outcome="first_scan",
        ),
        EpcisStep(at(9, 10), 190, "scan", "S-SH-01", region_code="440305", outcome="repeat_scan"),
    ]


STEPS_A = history()
CREATED = at(10, 12)
EXPECTED = [  # action -> (type, action, bizStep, disposition)
    ("commission", "ObjectEvent", "ADD", "commissioning", "active"),
    ("pack", "AggregationEvent", "ADD", "packing", "in_progress"),
    ("ship", "ObjectEvent", "OBSERVE", "shipping", "in_transit"),
    ("receive", "ObjectEvent", "OBSERVE", "receiving", "sellable_not_accessible"),
    ("ship", "ObjectEvent", "OBSERVE", "shipping", "in_transit"),
    ("receive", "ObjectEvent", "OBSERVE", "receiving", "sellable_not_accessible"),
    ("unpack", "AggregationEvent", "DELETE", "unpacking", "in_progress"),
    ("ship", "ObjectEvent", "OBSERVE", "shipping", "in_transit"),
    ("receive", "ObjectEvent", "OBSERVE", "receiving", "sellable_not_accessible"),
    ("sell", "ObjectEvent", "OBSERVE", "retail_selling", "retail_sold"),
    ("scan", "ObjectEvent", "OBSERVE", BIZSTEP_CONSUMER_SCAN, None),
    ("scan", "ObjectEvent", "OBSERVE", BIZSTEP_CONSUMER_SCAN, None),
]


def document(steps: list[EpcisStep] | None = None, unit: EpcisUnit = UNIT_A) -> dict[str, Any]:
    return epcis_document(unit, STEPS_A if steps is None else steps, partner_uri, CREATED)


def events(doc: dict[str, Any]) -> list[dict[str, Any]]:
    result: list[dict[str, Any]] = doc["epcisBody"]["eventList"]
    return result


# --- the schema itself -------------------------------------------------------


def test_schema_is_draft7_and_self_contained() -> None:
    assert SCHEMA["$schema"] == "http://json-schema.org/draft-07/schema#"
    Draft7Validator.check_schema(SCHEMA)
    refs = set(_refs(SCHEMA))
    assert refs and all(ref.startswith("#/") for ref in refs), "remote $ref in the schema"


def test_format_checking_is_real() -> None:
    # Without these checkers the schema's "uri" and "date-time" formats are
    # no-ops; make sure ours bite.
    assert FORMATS.conforms("urn:uuid:6f1c8f3e-1b4e-5b8e-9d0a-1f2e3d4c5b6a", "uri")
    assert FORMATS.conforms("siyu:position", "uri")
    assert not FORMATS.conforms("not a uri", "uri")
    assert not FORMATS.conforms("teleporting", "uri")
    assert FORMATS.conforms("2024-09-01T08:00:00+08:00", "date-time")
    assert FORMATS.conforms("2024-09-01T00:00:00.250Z", "date-time")
    assert not FORMATS.conforms("2024-09-01T08:00:00", "date-time")  # no offset
    assert not FORMATS.conforms("2024-13-01T08:00:00+08:00", "date-time")
    assert not FORMATS.conforms("2024-09-01 08:00", "date-time")


# --- positive: our documents -------------------------------------------------


@pytest.mark.parametrize("count", range(1, len(STEPS_A) + 1))
def test_every_prefix_of_the_history_validates(count: int) -> None:
    doc = document(STEPS_A[:count])
    assert schema_errors(doc) == []
    assert problems(doc, CONSUMER_CODES) == []


@pytest.mark.parametrize("unit", [UNIT_A, UNIT_B], ids=["unit-a", "unit-b"])
def test_full_history_validates_for_each_unit_of_the_case(unit: EpcisUnit) -> None:
    doc = document(history(), unit)
    assert schema_errors(doc) == []
    assert problems(doc, CONSUMER_CODES) == []
    # Each event on its own is a valid standalone EPCIS event too.
    for event in events(doc):
        standalone = {"@context": doc["@context"], **event}
        assert schema_errors(standalone) == [], event["type"]


def test_document_header() -> None:
    doc = document()
    assert doc["type"] == "EPCISDocument"
    assert doc["schemaVersion"] == "2.0"
    assert doc["creationDate"] == "2024-09-10T12:00:00+08:00"
    assert doc["@context"] == [EPCIS_CONTEXT, {"siyu": SIYU_NAMESPACE}]
    assert "siyu" not in GS1_CONTEXT  # the GS1 context is @protected
    assert BIZSTEP_CONSUMER_SCAN.startswith(SIYU_NAMESPACE)


def test_mapping_of_every_action() -> None:
    got = [
        (step.action, e["type"], e["action"], e["bizStep"], e.get("disposition"))
        for step, e in zip(STEPS_A, events(document()), strict=True)
    ]
    assert got == EXPECTED


def test_common_fields() -> None:
    evs = events(document())
    assert [e["siyu:position"] for e in evs] == [s.position for s in STEPS_A]
    for step, event in zip(STEPS_A, evs, strict=True):
        assert datetime.fromisoformat(event["eventTime"]) == step.at
        assert re.fullmatch(r"urn:uuid:[0-9a-f-]{36}", event["eventID"])
    assert evs[0]["eventTime"] == "2024-09-01T08:00:00+08:00"
    assert evs[0]["eventTimeZoneOffset"] == "+08:00"
    assert evs[10]["eventTime"] == "2024-09-08T12:05:00+00:00"
    assert evs[10]["eventTimeZoneOffset"] == "+00:00"
    assert len({e["eventID"] for e in evs}) == len(evs)


def test_aggregation_names_case_and_units() -> None:
    evs = events(document())
    for event, partner in ((evs[1], "F-SZ"), (evs[6], "D-SH")):
        assert event["parentID"] == CASE_URL
        assert event["childEPCs"] == [URL_A, URL_B]
        assert event["readPoint"] == event["bizLocation"] == {"id": partner_uri(partner)}


def test_shipping_of_the_case_names_the_case() -> None:
    evs = events(document())
    case_ship, case_receive, unit_ship = evs[4], evs[5], evs[7]
    assert case_ship["epcList"] == [CASE_URL]
    assert case_receive["epcList"] == [CASE_URL]
    assert unit_ship["epcList"] == [URL_A]
    assert case_ship["readPoint"] == {"id": partner_uri("HQ")}
    assert "bizLocation" not in case_ship  # in transit: at no business location
    assert case_ship["sourceList"] == [
        {"type": "owning_party", "source": partner_uri("HQ")},
        {"type": "location", "source": partner_uri("HQ")},
    ]
    assert case_ship["destinationList"] == [
        {"type": "owning_party", "destination": partner_uri("D-SH")},
        {"type": "location", "destination": partner_uri("D-SH")},
    ]
    assert case_receive["bizLocation"] == {"id": partner_uri("D-SH")}


CASE_UNIT = EpcisUnit(code=CASE, gtin=CASE_GTIN, sku="MOONCAKE-6", url=CASE_URL)


def case_history() -> list[EpcisStep]:
    """The case's own trace: it is the container of its pack and unpack."""
    return [
        EpcisStep(at(1, 8), 100, "commission", "F-SZ"),
        in_case(at(1, 9), 103, "pack", "F-SZ", units=(URL_A, URL_B)),
        EpcisStep(at(1, 15), 110, "ship", "F-SZ", to="HQ"),
        EpcisStep(at(2, 10), 120, "receive", "HQ"),
        in_case(at(4, 15), 142, "unpack", "HQ", units=(URL_A,)),
        in_case(at(5, 9), 151, "unpack", "HQ", units=(URL_B,)),  # (sold out of the case)
    ]


def test_the_cases_own_document_aggregates_its_units() -> None:
    doc = document(case_history(), CASE_UNIT)
    assert schema_errors(doc) == []
    assert problems(doc, CONSUMER_CODES) == []
    evs = events(doc)
    assert [(e["type"], e["action"]) for e in evs] == [
        ("ObjectEvent", "ADD"),
        ("AggregationEvent", "ADD"),
        ("ObjectEvent", "OBSERVE"),
        ("ObjectEvent", "OBSERVE"),
        ("AggregationEvent", "DELETE"),
        ("AggregationEvent", "DELETE"),
    ]
    assert all(e["parentID"] == CASE_URL for e in (evs[1], evs[4], evs[5]))
    assert [evs[1]["childEPCs"], evs[4]["childEPCs"], evs[5]["childEPCs"]] == [
        [URL_A, URL_B],
        [URL_A],
        [URL_B],
    ]
    assert evs[0]["epcList"] == evs[2]["epcList"] == evs[3]["epcList"] == [CASE_URL]


@pytest.mark.parametrize("units", [(), (CASE_URL,), (CASE_URL, URL_A)])
def test_the_cases_own_pack_must_name_units_other_than_the_case(units: tuple[str, ...]) -> None:
    steps = case_history()
    steps[1] = dataclasses.replace(steps[1], units=units)
    with pytest.raises(ValueError):
        document(steps, CASE_UNIT)


def test_shared_events_have_the_same_id_in_every_units_document() -> None:
    a = events(document())
    b = events(document(history(), UNIT_B))
    # pack, the case's ships and receives and unpack are the same EPCIS events
    for index in (1, 2, 3, 4, 5, 6):
        assert a[index] == b[index]
    # the unit's own events are not
    for index in (0, 7, 8, 9, 10, 11):
        assert a[index]["eventID"] != b[index]["eventID"]


def test_scans_carry_outcome_and_county_only() -> None:
    first, repeat = events(document())[10:]
    assert first["epcList"] == [URL_A]
    assert (first["siyu:outcome"], first["siyu:regionCode"]) == ("first_scan", "310115")
    assert (repeat["siyu:outcome"], repeat["siyu:regionCode"]) == ("repeat_scan", "440305")
    for scan in (first, repeat):
        assert "readPoint" not in scan
        assert "bizLocation" not in scan
        assert "disposition" not in scan
    text = json.dumps(document())
    for secret in (*CONSUMER_CODES, MEMBER_PHONE, "member"):
        assert secret not in text


def test_events_come_in_ledger_order() -> None:
    shuffled = list(reversed(STEPS_A))
    assert document(shuffled) == document()


def test_pure_and_deterministic() -> None:
    assert json.dumps(document()) == json.dumps(document())


# --- negative: the checks can fail -------------------------------------------


def _with_event_change(change: dict[str, Any], index: int = 7) -> dict[str, Any]:
    doc = document()
    events(doc)[index].update(change)
    return doc


@pytest.mark.parametrize(
    "biz_step",
    [
        "https://ref.gs1.org/cbv/BizStep-teleporting",  # looks like CBV, is not
        "https://ref.gs1.org/cbv/Disp-in_transit",  # a disposition, not a step
        "urn:example:teleporting",  # nobody's declared namespace
        "acme:teleporting",
    ],
)
def test_made_up_biz_step_passes_schema_but_not_checker(biz_step: str) -> None:
    doc = _with_event_change({"bizStep": biz_step})
    assert schema_errors(doc) == []  # the gap in the schema
    assert any("bizStep" in p for p in problems(doc))


def test_made_up_bare_biz_step_fails_both() -> None:
    doc = _with_event_change({"bizStep": "teleporting"})
    assert schema_errors(doc)
    assert any("bizStep" in p for p in problems(doc))


def test_made_up_disposition_and_source_type_fail_checker() -> None:
    doc = _with_event_change({"disposition": "https://ref.gs1.org/cbv/Disp-sparkling"})
    assert schema_errors(doc) == []
    assert any("disposition" in p for p in problems(doc))
    doc = _with_event_change(
        {"sourceList": [{"type": "https://ref.gs1.org/cbv/SDT-friend", "source": "urn:x:y"}]}
    )
    assert schema_errors(doc) == []
    assert any("sourceList/0/type" in p for p in problems(doc))


def test_full_cbv_uris_are_accepted() -> None:
    doc = _with_event_change(
        {
            "bizStep": "https://ref.gs1.org/cbv/BizStep-shipping",
            "disposition": "https://ref.gs1.org/cbv/Disp-in_transit",
        }
    )
    assert schema_errors(doc) == []
    assert problems(doc) == []


def test_undeclared_extension_prefix_passes_schema_but_not_checker() -> None:
    doc = _with_event_change({"acme:loyalty": "gold"})
    assert schema_errors(doc) == []
    assert any("acme:loyalty" in p for p in problems(doc))


def test_our_prefix_must_be_declared() -> None:
    doc = document()
    doc["@context"] = [EPCIS_CONTEXT]
    assert schema_errors(doc) == []
    found = problems(doc)
    assert any("siyu:position" in p for p in found)
    assert any(BIZSTEP_CONSUMER_SCAN in p for p in found)


def test_redefining_a_gs1_term_fails_checker() -> None:
    doc = document()
    doc["@context"] = [EPCIS_CONTEXT, {"siyu": SIYU_NAMESPACE, "cbv": SIYU_NAMESPACE}]
    assert any("protected" in p for p in problems(doc))


def test_unknown_plain_key_fails_schema() -> None:
    assert schema_errors(_with_event_change({"colour": "red"}))


def test_missing_event_time_fails_schema() -> None:
    doc = document()
    del events(doc)[3]["eventTime"]
    assert any("eventTime" in e for e in schema_errors(doc))


def test_bad_event_time_and_uri_fail_schema() -> None:
    assert schema_errors(_with_event_change({"eventTime": "2024-09-05 09:00"}))
    assert schema_errors(_with_event_change({"eventTime": "2024-09-05T09:00:00"}))
    assert schema_errors(_with_event_change({"epcList": ["not a uri"]}))
    assert schema_errors(_with_event_change({"eventTimeZoneOffset": "+8:00"}))


def test_offset_not_matching_event_time_fails_checker() -> None:
    doc = _with_event_change({"eventTimeZoneOffset": "+09:00"})
    assert schema_errors(doc) == []
    assert any("offset" in p for p in problems(doc))


def test_duplicate_event_id_fails_checker() -> None:
    doc = document()
    events(doc)[1]["eventID"] = events(doc)[0]["eventID"]
    assert any("eventID" in p for p in problems(doc))


@pytest.mark.parametrize(
    "change",
    [
        {"epcList": [digital_link(BASE, GTIN, CONSUMER_A)]},
        {"siyu:member": "M-000123"},
        {"siyu:note": f"call {MEMBER_PHONE}"},
        {"siyu:lat": 31.2304},
        {"siyu:where": {"siyu:accuracy": 12.5}},
    ],
    ids=["consumer-url", "member", "phone", "lat", "float"],
)
def test_personal_data_fails_checker(change: dict[str, Any]) -> None:
    doc = _with_event_change(change, index=10)
    assert problems(doc, CONSUMER_CODES)


# --- the builder refuses what it cannot write --------------------------------


def _replace(index: int, **changes: Any) -> list[EpcisStep]:
    steps = list(STEPS_A)
    steps[index] = dataclasses.replace(steps[index], **changes)
    return steps


@pytest.mark.parametrize(
    ("index", "changes"),
    [
        (0, {"at": datetime(2024, 9, 1, 8, 0)}),  # naive
        (0, {"action": "teleport"}),
        (0, {"position": -1}),
        (7, {"to": None}),  # ship without destination
        (2, {"container_url": None}),  # via the case, but which case?
        (1, {"container_url": None}),
        (1, {"units": (URL_B,)}),  # a pack that does not hold this unit
        (9, {"via_container": True, "container_url": CASE_URL}),  # sold as a case?
        (10, {"via_container": True, "container_url": CASE_URL}),
        (10, {"outcome": "lucky"}),
        (10, {"region_code": "31.2304,121.4737"}),
    ],
)
def test_builder_refuses_bad_steps(index: int, changes: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        document(_replace(index, **changes))


def test_builder_refuses_a_unit_url_that_is_not_its_outer_code() -> None:
    consumer_url = digital_link(BASE, GTIN, CONSUMER_A)
    with pytest.raises(ValueError):
        document(unit=dataclasses.replace(UNIT_A, url=consumer_url))
    with pytest.raises(ValueError):
        document(unit=dataclasses.replace(UNIT_A, gtin=CASE_GTIN))
    with pytest.raises(ValueError):
        epcis_document(UNIT_A, STEPS_A, partner_uri, datetime(2024, 9, 10, 12))


def test_validation_error_type_is_jsonschema() -> None:
    # iter_errors yields jsonschema's own errors (guards against a silently
    # swapped validator that never reports anything).
    doc = document()
    del doc["epcisBody"]
    errors = list(_validator().iter_errors(doc))
    assert errors and all(isinstance(e, ValidationError) for e in errors)
