"""EPCIS 2.0 export of one unit's trace: a pure builder, no I/O.

`epcis_document(unit, steps, partner_uri, created_at)` turns the history of one
unit (as the trace read model produces it) into a JSON-LD `EPCISDocument`.
The mapping, the extension fields and the validation are described in
docs/epcis.md; in short:

| action   | event                    | bizStep        | disposition             |
| -------- | ------------------------ | -------------- | ----------------------- |
| commission | ObjectEvent ADD        | commissioning  | active                  |
| pack     | AggregationEvent ADD     | packing        | in_progress             |
| unpack   | AggregationEvent DELETE  | unpacking      | in_progress             |
| ship     | ObjectEvent OBSERVE      | shipping       | in_transit              |
| receive  | ObjectEvent OBSERVE      | receiving      | sellable_not_accessible |
| sell     | ObjectEvent OBSERVE      | retail_selling | retail_sold             |
| scan     | ObjectEvent OBSERVE      | (ours) siyu consumer_scan URI | (none)   |

The document may be a case's own (the "unit" is then the case): its pack and
unpack steps have the case itself as `container_url` and list the units in
`units`; the caller passes a unit sold out of the case as an unpack of that
one unit.

Units are named by their outer code's Digital Link only. Nothing about the
consumer (consumer code, member, phone, coordinates) is an input here, so
nothing of it can reach the output; a scan carries only its outcome and the
6-digit county code.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Final
from urllib.parse import unquote

from domain.codes import digital_link

EPCIS_CONTEXT: Final = "https://ref.gs1.org/standards/epcis/2.0.0/epcis-context.jsonld"
SIYU_PREFIX: Final = "siyu"
SIYU_NAMESPACE: Final = "https://siyu.example/epcis/"
SCHEMA_VERSION: Final = "2.0"

# Our own business step for a consumer scan: CBV has no value for "a member
# of the public scanned the code" (`inspecting` is a business party reviewing
# objects for defects), and CBV allows user-defined bizStep URIs.
BIZSTEP_CONSUMER_SCAN: Final = f"{SIYU_NAMESPACE}consumer_scan"

ACTIONS: Final = frozenset({"commission", "pack", "unpack", "ship", "receive", "sell", "scan"})
SCAN_OUTCOMES: Final = frozenset({"first_scan", "own_repeat", "repeat_scan", "authentic"})
_REGION_RE: Final = re.compile(r"[0-9]{6}")

# Deterministic event ids: urn:uuid (RFC 4122 version 5) of the ledger
# position, the action and the EPCIS subject, so the same ledger event gets
# the same eventID in every unit's document (e.g. the shipping of a case).
_EVENT_ID_NAMESPACE: Final = uuid.uuid5(uuid.NAMESPACE_URL, SIYU_NAMESPACE + "event")

JSONObject = dict[str, Any]


@dataclass(frozen=True)
class EpcisUnit:
    """The unit the document is about: outer code, product GTIN-14, Digital Link."""

    code: str
    gtin: str
    sku: str
    url: str


@dataclass(frozen=True)
class EpcisStep:
    """One history item of the unit's trace (see the module docstring)."""

    at: datetime  # timezone-aware
    position: int
    action: str
    partner: str
    to: str | None = None
    container: str | None = None
    container_url: str | None = None
    via_container: bool = False
    region_code: str | None = None
    outcome: str | None = None
    units: tuple[str, ...] = ()


def ext(name: str) -> str:
    """The compact JSON-LD key of one of our extension fields."""
    return f"{SIYU_PREFIX}:{name}"


def rfc3339(moment: datetime) -> str:
    """RFC 3339 text with the datetime's own offset (never naive)."""
    _offset(moment)
    return moment.isoformat()


def timezone_offset(moment: datetime) -> str:
    """The EPCIS eventTimeZoneOffset, e.g. "+08:00", derived from `moment`."""
    offset = _offset(moment)
    sign = "-" if offset < timedelta(0) else "+"
    minutes = abs(offset) // timedelta(minutes=1)
    return f"{sign}{minutes // 60:02d}:{minutes % 60:02d}"


def _offset(moment: datetime) -> timedelta:
    offset = moment.utcoffset()
    if offset is None:
        raise ValueError("EPCIS times must be timezone-aware")
    if offset % timedelta(minutes=1):
        raise ValueError("a UTC offset with seconds cannot be written in RFC 3339")
    if abs(offset) > timedelta(hours=14):
        raise ValueError("EPCIS allows UTC offsets from -14:00 to +14:00")
    return offset


def _check_unit(unit: EpcisUnit) -> None:
    # The document names the unit by its outer code's Digital Link: the URL
    # must be exactly digital_link(base, gtin, code) for some base, so a
    # consumer-code URL (another serial) can never pass as the unit's URL.
    segments = unit.url.rsplit("/", 4)
    if len(segments) != 5 or segments[1] != "01" or segments[3] != "21":
        raise ValueError(f"not a /01/{{gtin}}/21/{{serial}} Digital Link: {unit.url!r}")
    if unquote(segments[4]) != unit.code:
        raise ValueError("the unit URL does not carry the unit's outer code")
    if digital_link(segments[0], unit.gtin, unit.code) != unit.url:
        raise ValueError("the unit URL is not the Digital Link of its GTIN and code")


def _event_id(step: EpcisStep, subject: str) -> str:
    name = f"{step.position}|{step.action}|{subject}|{step.to or ''}"
    return f"urn:uuid:{uuid.uuid5(_EVENT_ID_NAMESPACE, name)}"


def _require(value: str | None, what: str, step: EpcisStep) -> str:
    if not value:
        raise ValueError(f"{step.action} at position {step.position} needs {what}")
    return value


def _unique(values: Sequence[str]) -> list[str]:
    return list(dict.fromkeys(values))


def _event(
    step: EpcisStep,
    unit: EpcisUnit,
    partner_uri: Callable[[str], str],
) -> JSONObject:
    action = step.action
    if action not in ACTIONS:
        raise ValueError(f"unknown trace action: {action!r}")
    if step.position < 0:
        raise ValueError("a ledger position is never negative")
    here = {"id": partner_uri(step.partner)}
    body: JSONObject
    if action in ("pack", "unpack"):
        parent = _require(step.container_url, "container_url", step)
        if parent == unit.url:
            # The document is the case's own: it names the units it took in or let go.
            children = _unique(step.units)
            if not children or parent in children:
                raise ValueError(f"{action} at position {step.position} names no unit")
        else:
            children = _unique(step.units or (unit.url,))
            if unit.url not in children:
                raise ValueError(f"{action} at position {step.position} does not list the unit")
        subject = parent
        body = {
            "type": "AggregationEvent",
            "parentID": parent,
            "childEPCs": children,
            "action": "ADD" if action == "pack" else "DELETE",
            "bizStep": "packing" if action == "pack" else "unpacking",
            "disposition": "in_progress",
            "readPoint": here,
            "bizLocation": here,
        }
    else:
        # An ObjectEvent names what was physically handled: the case when the
        # step is inherited from the case the unit travelled in.
        if step.via_container:
            if action not in ("ship", "receive"):
                raise ValueError(f"a {action} is never inherited from a case")
            subject = _require(step.container_url, "container_url", step)
        else:
            subject = unit.url
        body = {"type": "ObjectEvent", "epcList": [subject]}
        if action == "commission":
            body |= {
                "action": "ADD",
                "bizStep": "commissioning",
                "disposition": "active",
                "readPoint": here,
                "bizLocation": here,
            }
        elif action == "ship":
            to = partner_uri(_require(step.to, "a destination (to)", step))
            source = partner_uri(step.partner)
            # No bizLocation: goods in transit are at no business location
            # until received (the receiving event sets it).
            body |= {
                "action": "OBSERVE",
                "bizStep": "shipping",
                "disposition": "in_transit",
                "readPoint": here,
                "sourceList": [
                    {"type": "owning_party", "source": source},
                    {"type": "location", "source": source},
                ],
                "destinationList": [
                    {"type": "owning_party", "destination": to},
                    {"type": "location", "destination": to},
                ],
            }
        elif action == "receive":
            body |= {
                "action": "OBSERVE",
                "bizStep": "receiving",
                "disposition": "sellable_not_accessible",
                "readPoint": here,
                "bizLocation": here,
            }
        elif action == "sell":
            body |= {
                "action": "OBSERVE",
                "bizStep": "retail_selling",
                "disposition": "retail_sold",
                "readPoint": here,
                "bizLocation": here,
            }
        else:  # scan: no readPoint, no bizLocation, no consumer
            body |= {"action": "OBSERVE", "bizStep": BIZSTEP_CONSUMER_SCAN}
    event: JSONObject = {
        "type": body.pop("type"),
        "eventTime": rfc3339(step.at),
        "eventTimeZoneOffset": timezone_offset(step.at),
        "eventID": _event_id(step, subject),
        **body,
        ext("position"): step.position,
    }
    if action == "scan":
        if step.outcome not in SCAN_OUTCOMES:
            raise ValueError(f"unknown scan outcome: {step.outcome!r}")
        event[ext("outcome")] = step.outcome
        if step.region_code is not None:
            if _REGION_RE.fullmatch(step.region_code) is None:
                raise ValueError("a region code is 6 digits (a county, never coordinates)")
            event[ext("regionCode")] = step.region_code
    return event


def epcis_document(
    unit: EpcisUnit,
    steps: Sequence[EpcisStep],
    partner_uri: Callable[[str], str],
    created_at: datetime,
) -> JSONObject:
    """The EPCIS 2.0 JSON-LD `EPCISDocument` of one unit's trace.

    Events come in ledger order (by position; the input order breaks ties).
    Raises ValueError on an input that cannot be written as valid EPCIS.
    """
    _check_unit(unit)
    ordered = sorted(steps, key=lambda s: s.position)
    return {
        "@context": [EPCIS_CONTEXT, {SIYU_PREFIX: SIYU_NAMESPACE}],
        "type": "EPCISDocument",
        "schemaVersion": SCHEMA_VERSION,
        "creationDate": rfc3339(created_at),
        "epcisBody": {"eventList": [_event(s, unit, partner_uri) for s in ordered]},
    }
