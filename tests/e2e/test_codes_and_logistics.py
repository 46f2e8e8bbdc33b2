"""Products, code batches, logistics permissions and consumer scans over HTTP (SQLite and PG)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from domain.codes import is_gs1_serial
from tests.e2e.client import Api, running_api
from tests.e2e.flows import (
    CASE_GTIN,
    GTIN,
    SKU,
    Channel,
    build_channel,
    changed,
    consumer,
    outer,
    rows,
    to_store,
)
from tests.e2e.test_channel import assert_problem


@pytest.fixture
def api(database_url: str) -> Iterator[Api]:
    with running_api(database_url) as api:
        yield api


@pytest.fixture
def ch(api: Api) -> Channel:
    return build_channel(api)


def test_products_check_gtin_and_role(api: Api) -> None:
    body = {"sku": "X-1", "gtin": "06901234567893", "name": "x", "price": 1, "points_per_scan": 1}
    assert_problem(api.post("/v1/products", body), 422)  # wrong check digit
    good = body | {"gtin": "6901234567892"}  # GTIN-13, normalised to 14 digits
    api.post(
        "/v1/partners",
        {"code": "D1", "kind": "dealer", "parent": "HQ", "name": "d", "region_codes": ["31"]},
    )
    assert_problem(api.post("/v1/products", good, token=api.token("D1", "dealer")), 403)
    first = api.post("/v1/products", good)
    assert first.status_code == 201, first.text
    assert first.json()["gtin"] == "06901234567892"
    again = api.post("/v1/products", good)
    assert again.json()["position"] == first.json()["position"]
    assert_problem(api.post("/v1/products", good | {"price": 2}), 409, "idempotency_mismatch")
    assert_problem(api.post("/v1/products", good | {"price": -1, "sku": "X-2"}), 400)
    assert api.get("/v1/products/X-1").json()["price"] == 1


def test_batch_codes_csv_is_genuine_and_canonical(ch: Channel) -> None:
    assert len(ch.units) == 6 and len(ch.cases) == 2
    for row in ch.units:
        for serial in (row["code"], row["consumer_code"]):
            assert is_gs1_serial(serial) and len(serial) <= 20
        assert row["url"].endswith(f"/01/{GTIN}/21/{row['code']}")
        assert row["consumer_url"].endswith(f"/01/{GTIN}/21/{row['consumer_code']}")
    assert len({r["code"] for r in ch.units} | {r["consumer_code"] for r in ch.units}) == 12
    case_rows = rows(ch.api, "B-CASES")
    assert all(r["consumer_code"] == "" and f"/01/{CASE_GTIN}/21/" in r["url"] for r in case_rows)
    again = ch.api.post(
        "/v1/code-batches",
        {"batch_id": "B-UNITS", "sku": SKU, "count": 6, "level": "unit"},
        token=ch.tokens["factory"],
    )
    assert again.status_code == 201 and rows(ch.api, "B-UNITS") == ch.units


def test_who_may_issue_codes(ch: Channel) -> None:
    body = {"batch_id": "B-X", "sku": SKU, "count": 3, "level": "unit"}
    assert_problem(ch.api.post("/v1/code-batches", body, token=ch.tokens["S-SH"]), 403)
    assert_problem(ch.api.post("/v1/code-batches", body, token=ch.tokens["D-SH"]), 403)
    assert_problem(ch.api.post("/v1/code-batches", body | {"sku": "NOPE"}), 404, "unknown_sku")
    assert_problem(ch.api.post("/v1/code-batches", body | {"count": 0}), 400)
    assert_problem(ch.api.get("/v1/code-batches/B-UNITS/codes", token=ch.tokens["D-SH"]), 403)
    assert_problem(ch.api.get("/v1/code-batches/NOPE/codes"), 404)


def test_full_path_factory_to_consumer(ch: Channel) -> None:
    to_store(ch)
    sold = ch.move("S-SH", "sell", [outer(ch, 0)])
    assert sold.status_code == 200, sold.text
    first = ch.scan(consumer(ch, 0), "wx-alice", "s1", location={"lat": 31.2304, "lng": 121.4737})
    assert first.status_code == 200, first.text
    body = first.json()
    assert body["outcome"] == "first_scan" and body["points_awarded"] == 10
    assert body["bound_store"] == "S-SH" and body["alerts"] == []
    mine = ch.scan(consumer(ch, 0), "wx-alice", "s2")
    assert mine.json()["outcome"] == "own_repeat" and mine.json()["points_awarded"] == 0
    other = ch.scan(consumer(ch, 0), "wx-bob", "s3")
    assert other.json()["outcome"] == "repeat_scan" and "repeat_scan" in other.json()["alerts"]
    authentic = ch.scan(outer(ch, 1), "wx-carol", "s4").json()
    assert authentic["outcome"] == "authentic" and authentic["member_id"] is None
    assert authentic["points_awarded"] == 0
    repeat = ch.scan(consumer(ch, 0), "wx-alice", "s1", location={"lat": 31.2304, "lng": 121.4737})
    assert repeat.json() == first.json(), "a repeated scan_id answers the same"


def test_diversion_and_unshipped_alerts(ch: Channel) -> None:
    to_store(ch)
    beijing = {"lat": 39.9139, "lng": 116.4105}
    diverted = ch.scan(consumer(ch, 1), "wx-dan", "d1", location=beijing).json()
    assert "diversion" in diverted["alerts"]
    at_home = ch.scan(consumer(ch, 2), "wx-eve", "d2", location={"lat": 31.19, "lng": 121.43})
    assert at_home.json()["alerts"] == []
    never_shipped = ch.scan(consumer(ch, 5), "wx-fay", "d3").json()
    assert never_shipped["alerts"] == ["unshipped"]
    by_region = ch.scan(consumer(ch, 3), "wx-gus", "d4", region_code="110105").json()
    assert "diversion" in by_region["alerts"]


def test_logistics_permissions(ch: Channel) -> None:
    codes = [outer(ch, i) for i in range(6)]
    assert ch.move("factory", "commission", codes + ch.cases).status_code == 200
    head = ch.api.head()
    assert_problem(ch.move("D-SH", "ship", [codes[0]], to="S-SH"), 403)  # HQ's stock
    assert_problem(ch.move("S-SH", "commission", [codes[0]]), 403)
    assert_problem(ch.move("gateway", "ship", [codes[0]], to="D-SH"), 403)
    assert_problem(ch.move("hq", "ship", [codes[0]], to="S-SH"), 403)  # not a direct child
    assert ch.move("hq", "ship", [codes[0]], to="D-SH").status_code == 200
    assert_problem(ch.move("D-BJ", "receive", [codes[0]]), 403)  # meant for D-SH
    assert_problem(ch.move("S-SH", "sell", [codes[1]]), 403)
    assert_problem(ch.move("hq", "receive", [codes[1]]), 422, "batch_refused")  # not in transit
    assert ch.api.head() == head + 2  # only the one shipment (its event and its record)


def test_logistics_batch_is_atomic_and_idempotent(ch: Channel) -> None:
    codes = [outer(ch, i) for i in range(6)]
    head = ch.api.head()
    events = [
        {"event_id": "a1", "action": "commission", "codes": codes[:2]},
        {"event_id": "a2", "action": "commission", "codes": [changed(codes[2])]},
        {"event_id": "a3", "action": "ship", "codes": codes[:2], "to": "D-SH"},
    ]
    refused = ch.api.post("/v1/logistics", {"events": events}, token=ch.tokens["hq"])
    problem = assert_problem(refused, 422, "batch_refused")
    assert [r["event_id"] for r in problem["refused"]] == ["a2"]
    assert problem["refused"][0]["code"] == "unknown_code"
    assert ch.api.head() == head, "an atomic batch writes nothing when one event is refused"
    events[1]["codes"] = [codes[2]]
    done = ch.api.post("/v1/logistics", {"events": events}, token=ch.tokens["hq"])
    assert done.status_code == 200, done.text
    assert [r["status"] for r in done.json()["results"]] == ["applied"] * 3
    again = ch.api.post("/v1/logistics", {"events": events}, token=ch.tokens["hq"])
    assert [r["status"] for r in again.json()["results"]] == ["duplicate"] * 3
    assert again.json()["position"] == done.json()["position"]
    events[0]["codes"] = codes[3:4]
    assert_problem(
        ch.api.post("/v1/logistics", {"events": events}, token=ch.tokens["hq"]),
        409,
        "idempotency_mismatch",
    )


def test_case_moves_its_units_and_sale_leaves_the_case(ch: Channel) -> None:
    to_store(ch)
    sold = ch.move("S-SH", "sell", [outer(ch, 1)])  # unit 1 is inside case 0
    assert sold.status_code == 200, sold.text
    assert_problem(ch.move("S-SH", "sell", [outer(ch, 1)]), 422)  # sold already
    assert_problem(ch.move("S-SH", "ship", [outer(ch, 2)], to="S-SH"), 422)  # packed
    unpack = ch.move("S-SH", "unpack", [outer(ch, 2)], parent=ch.cases[0])
    assert unpack.status_code == 200, unpack.text
    assert ch.move("S-SH", "sell", [outer(ch, 2)]).status_code == 200


def test_a_case_holds_units_of_its_own_product_only(ch: Channel) -> None:
    """A case carries its product's case GTIN: packing another product's units into it
    would make the label and the contents disagree."""
    other = {
        "sku": "OTHER-1",
        "gtin": "06901234567809",
        "name": "o",
        "price": 1,
        "points_per_scan": 1,
    }
    assert ch.api.post("/v1/products", other).status_code == 201
    batch = {"batch_id": "B-OTHER", "sku": "OTHER-1", "count": 2, "level": "unit"}
    assert ch.api.post("/v1/code-batches", batch).status_code == 201
    strangers = [r["code"] for r in rows(ch.api, "B-OTHER")]
    ours = [outer(ch, 0), outer(ch, 1)]
    case = ch.cases[0]
    assert ch.move("factory", "commission", strangers + ours + [case]).status_code == 200
    head = ch.api.head()
    mixed = assert_problem(
        ch.move("factory", "pack", [ours[0], strangers[0]], parent=case), 422, "batch_refused"
    )
    assert mixed["refused"][0]["code"] == "other_sku", mixed
    assert ch.api.head() == head, "nothing packed"
    assert ch.move("factory", "pack", ours, parent=case).status_code == 200


def test_a_packed_unit_is_refused_for_permission_before_state(ch: Channel) -> None:
    """Shipping or receiving a packed unit: one who neither holds it (its case) nor is its
    case's destination gets 403, never the 422 ``packed`` that names the case; a holder
    still learns it is packed, and in which case."""
    codes = [outer(ch, i) for i in range(len(ch.units))]
    case0, case1 = ch.cases
    assert ch.move("factory", "commission", codes + ch.cases).status_code == 200
    assert ch.move("factory", "pack", codes[:3], parent=case0).status_code == 200
    assert ch.move("factory", "pack", codes[4:6], parent=case1).status_code == 200  # stays at HQ

    def forbidden(response, case: str) -> None:
        problem = assert_problem(response, 403, "batch_refused")
        assert [r["code"] for r in problem["refused"]] == ["forbidden"], problem
        assert case not in response.text

    forbidden(ch.move("D-SH", "ship", [codes[4]], to="S-SH"), case1)  # HQ's, never D-SH's
    forbidden(ch.move("D-SH", "receive", [codes[4]]), case1)
    # (an unpacked unit too: not on its way to D-BJ, whatever state it is in)
    assert_problem(ch.move("D-BJ", "receive", [codes[3]]), 403)
    assert ch.move("hq", "ship", [case0], to="D-SH").status_code == 200
    forbidden(ch.move("D-BJ", "receive", [codes[0]]), case0)  # not the destination
    forbidden(ch.move("S-SH", "receive", [codes[0]]), case0)
    on_its_way = assert_problem(ch.move("D-SH", "receive", [codes[0]]), 422, "batch_refused")
    assert on_its_way["refused"][0]["code"] == "packed"
    assert ch.move("D-SH", "receive", [case0]).status_code == 200
    forbidden(ch.move("S-SH", "ship", [codes[0]], to="S-SH"), case0)  # its dealer's
    forbidden(ch.move("D-BJ", "ship", [codes[0]], to="S-BJ"), case0)
    # The holder: 422 packed, naming its own case.
    own = assert_problem(ch.move("D-SH", "ship", [codes[0]], to="S-SH"), 422, "batch_refused")
    assert own["refused"][0]["code"] == "packed" and case0 in own["refused"][0]["detail"]
    at_hq = assert_problem(ch.move("hq", "ship", [codes[4]], to="D-SH"), 422, "batch_refused")
    assert at_hq["refused"][0]["code"] == "packed" and case1 in at_hq["refused"][0]["detail"]
    # A batch with a permission refusal answers 403, whatever else it refuses.
    events = [
        {"event_id": "m1", "action": "ship", "codes": [codes[0]], "to": "S-SH"},
        {"event_id": "m2", "action": "ship", "codes": [codes[4]], "to": "S-SH"},
    ]
    mixed = ch.api.post("/v1/logistics", {"events": events}, token=ch.tokens["D-SH"])
    problem = assert_problem(mixed, 403, "batch_refused")
    assert [r["code"] for r in problem["refused"]] == ["packed", "forbidden"]
    assert case1 not in mixed.text


def test_forged_and_mistyped_codes_are_refused(ch: Channel) -> None:
    head = ch.api.head()
    forged = (
        changed(consumer(ch, 0)),
        changed(outer(ch, 0)),
        consumer(ch, 0).lower(),
        " " + consumer(ch, 0) + "x",
        "A" * 20,
        "not-a-code",
    )
    for i, text in enumerate(forged):
        assert_problem(ch.scan(text, "wx-mallory", f"f-{i}"), 404, "unknown_code")
    url = ch.units[0]["consumer_url"].replace(GTIN, "06901234567885")
    assert_problem(ch.scan(url, "wx-mallory", "f-url"), 404, "unknown_code")
    assert ch.api.head() == head
    assert_problem(ch.scan(consumer(ch, 0), "wx", "x", location={"lat": 99, "lng": 1}), 400)
    assert_problem(ch.scan(consumer(ch, 0), "wx", "x", region_code="999999"), 422)


def test_who_may_scan(ch: Channel) -> None:
    body = {"scan_id": "w1", "code": consumer(ch, 0), "member": {"external_id": "wx"}}
    assert_problem(ch.api.post("/v1/scans", body, token=ch.tokens["S-SH"]), 403)
    assert_problem(ch.api.post("/v1/scans", body, token=ch.tokens["auditor"]), 403)
    assert ch.api.post("/v1/scans", body, token=ch.tokens["hq"]).status_code == 200


def test_personal_data_is_not_stored_in_clear(ch: Channel) -> None:
    to_store(ch)
    body = {
        "scan_id": "p1",
        "code": consumer(ch, 0),
        "member": {"external_id": "wx-pat", "phone": "13812345678"},
        "location": {"lat": 31.230412, "lng": 121.473701},
    }
    assert ch.api.post("/v1/scans", body, token=ch.tokens["gateway"]).status_code == 200
    store = ch.api.store
    assert store is not None
    blob = b"".join(n.state for n in store.ledger.recorder.select_notifications(1, 10_000))
    assert b"13812345678" not in blob
    assert b"31.230412" not in blob and b"121.473701" not in blob
    assert b"enc1:" in blob


def test_qr_images(ch: Channel) -> None:
    svg = ch.api.get(f"/v1/codes/{outer(ch, 0)}/qr.svg")
    assert svg.status_code == 200 and svg.headers["content-type"].startswith("image/svg+xml")
    assert b"<svg" in svg.content
    png = ch.api.get(f"/v1/codes/{outer(ch, 0)}/qr.png")
    assert png.content.startswith(b"\x89PNG")
    assert_problem(ch.api.get(f"/v1/codes/{changed(outer(ch, 0))}/qr.svg"), 404)
    assert_problem(ch.api.get(f"/v1/codes/{outer(ch, 0)}/qr.svg", token=ch.tokens["S-SH"]), 403)
    sheet = ch.api.get("/v1/code-batches/B-UNITS/sheet", count=4)
    assert sheet.status_code == 200 and sheet.text.count("<svg") == 4


def test_trace_inventory_alerts_and_scope(ch: Channel) -> None:
    to_store(ch)
    assert ch.move("S-SH", "sell", [outer(ch, 0)]).status_code == 200
    ch.scan(consumer(ch, 0), "wx-amy", "t1", location={"lat": 31.2304, "lng": 121.4737})
    ch.scan(consumer(ch, 1), "wx-ben", "t2", location={"lat": 39.9139, "lng": 116.4105})
    api, hq = ch.api, ch.tokens["hq"]
    trace = api.get(f"/v1/codes/{outer(ch, 0)}/trace", token=ch.tokens["S-SH"])
    assert trace.status_code == 200, trace.text
    body = trace.json()
    actions = [h["action"] for h in body["history"]]
    assert actions == ["commission", "pack", "ship", "receive", "ship", "receive", "sell", "scan"]
    assert body["history"][2]["via"] == ch.cases[0] and body["history"][2]["to"] == "D-SH"
    assert body["state"] == "sold" and body["owner"] == "S-SH" and body["scan_count"] == 1
    assert body["container"] is None
    positions = [h["position"] for h in body["history"]]
    assert positions == sorted(positions)
    assert "member_id" not in str(body["history"]) and consumer(ch, 0) not in trace.text
    # Nobody sees another subtree's trace, inventory or alerts.
    assert_problem(api.get(f"/v1/codes/{outer(ch, 0)}/trace", token=ch.tokens["D-BJ"]), 404)
    assert_problem(api.get(f"/v1/codes/{outer(ch, 0)}/trace", token=ch.tokens["S-BJ"]), 404)
    assert_problem(api.get(f"/v1/codes/{consumer(ch, 0)}/trace", token=ch.tokens["S-SH"]), 404)
    assert api.get(f"/v1/codes/{consumer(ch, 0)}/trace", token=hq).json()["code"] == outer(ch, 0)
    assert api.get(f"/v1/codes/{outer(ch, 5)}/trace", token=ch.tokens["D-SH"]).status_code == 404
    stock = api.get("/v1/inventory/S-SH", token=ch.tokens["D-SH"]).json()
    assert stock["items"] == [{"sku": SKU, "on_hand": 3, "received": 4, "shipped": 0, "sold": 1}]
    hq_stock = api.get("/v1/inventory/HQ", token=hq).json()["items"][0]
    assert hq_stock["on_hand"] == 2 and hq_stock["shipped"] == 4
    assert_problem(api.get("/v1/inventory/S-SH", token=ch.tokens["D-BJ"]), 404)
    assert_problem(api.get("/v1/inventory/HQ", token=ch.tokens["D-SH"]), 404)
    alerts = api.get("/v1/alerts", token=ch.tokens["D-SH"]).json()["items"]
    assert [a["kind"] for a in alerts] == ["diversion"]
    assert alerts[0]["code"] == outer(ch, 1) and alerts[0]["dealer"] == "D-SH"
    steps = api.get(f"/v1/codes/{outer(ch, 1)}/trace", token=hq).json()["history"]
    shipped = [h["position"] for h in steps if h["action"] == "ship" and h["to"] == "D-SH"]
    scanned = [h["position"] for h in steps if h["action"] == "scan"]
    assert alerts[0]["evidence"] == [*shipped, *scanned], (steps, alerts[0])
    assert api.get("/v1/alerts", token=ch.tokens["D-BJ"]).json()["items"] == []
    assert_problem(api.get("/v1/alerts", token=ch.tokens["S-SH"]), 403)
    assert len(api.get("/v1/alerts", token=hq, kind="diversion").json()["items"]) == 1
    assert_problem(api.get("/v1/alerts", token=hq, kind="nonsense"), 422)
    sold = api.get("/v1/sell-through/D-SH", token=ch.tokens["D-SH"]).json()
    assert sold["items"] == [{"sku": SKU, "units": 1}] and sold["total"] == 1
    assert_problem(api.get("/v1/sell-through/D-SH", token=ch.tokens["D-BJ"]), 404)


def test_epcis_export_validates(ch: Channel) -> None:
    import json
    from pathlib import Path

    import jsonschema

    to_store(ch)
    ch.move("S-SH", "sell", [outer(ch, 0)])
    ch.scan(consumer(ch, 0), "wx-amy", "e1", location={"lat": 31.2304, "lng": 121.4737})
    response = ch.api.get(f"/v1/codes/{outer(ch, 0)}/epcis")
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("application/ld+json")
    document = response.json()
    schema_path = Path(__file__).resolve().parents[3] / "shared/data/gs1/EPCIS-JSON-Schema.json"
    schema = json.loads(schema_path.read_text())
    jsonschema.Draft7Validator(schema).validate(document)
    events = document["epcisBody"]["eventList"]
    steps = [e.get("bizStep") for e in events]
    assert steps[:3] == ["commissioning", "packing", "shipping"]
    assert "retail_selling" in steps
    assert consumer(ch, 0) not in response.text


def test_epcis_of_a_case_aggregates_its_units(ch: Channel) -> None:
    """A case's own document: the pack is an AggregationEvent ADD with the case as parent
    and its units as children, its shipments and receipts name the case, and an unpack
    (or a unit sold out of it) is an AggregationEvent DELETE of those units."""
    import json
    from pathlib import Path

    import jsonschema

    to_store(ch)  # units 0-2 packed in case 0, which goes HQ -> D-SH -> S-SH
    assert ch.move("S-SH", "unpack", [outer(ch, 2)], parent=ch.cases[0]).status_code == 200
    assert ch.move("S-SH", "sell", [outer(ch, 1)]).status_code == 200  # leaves the case
    case = ch.cases[0]
    case_url = next(r["url"] for r in rows(ch.api, "B-CASES") if r["code"] == case)
    unit_urls = [ch.units[i]["url"] for i in range(3)]
    response = ch.api.get(f"/v1/codes/{case}/epcis", token=ch.tokens["hq"])
    assert response.status_code == 200, response.text
    document = response.json()
    schema_path = Path(__file__).resolve().parents[3] / "shared/data/gs1/EPCIS-JSON-Schema.json"
    jsonschema.Draft7Validator(json.loads(schema_path.read_text())).validate(document)
    events = document["epcisBody"]["eventList"]
    got = [(e["type"], e["action"], e["bizStep"]) for e in events]
    assert got == [
        ("ObjectEvent", "ADD", "commissioning"),
        ("AggregationEvent", "ADD", "packing"),
        ("ObjectEvent", "OBSERVE", "shipping"),
        ("ObjectEvent", "OBSERVE", "receiving"),
        ("ObjectEvent", "OBSERVE", "shipping"),
        ("ObjectEvent", "OBSERVE", "receiving"),
        ("AggregationEvent", "DELETE", "unpacking"),
        ("AggregationEvent", "DELETE", "unpacking"),
    ]
    pack, unpack, sold_out = events[1], events[6], events[7]
    assert pack["parentID"] == case_url and pack["childEPCs"] == unit_urls
    assert unpack["parentID"] == case_url and unpack["childEPCs"] == [unit_urls[2]]
    assert sold_out["parentID"] == case_url and sold_out["childEPCs"] == [unit_urls[1]]
    assert pack["readPoint"] == pack["bizLocation"]
    assert pack["bizLocation"]["id"].endswith("/partners/HQ")  # packed where the case was
    for event in (events[0], *events[2:6]):
        assert event["epcList"] == [case_url]
    assert len({e["eventID"] for e in events}) == len(events)
    # The unit's own document names the same case as the parent of its pack.
    unit_doc = ch.api.get(f"/v1/codes/{outer(ch, 0)}/epcis", token=ch.tokens["hq"]).json()
    unit_pack = unit_doc["epcisBody"]["eventList"][1]
    assert unit_pack["parentID"] == case_url and unit_pack["childEPCs"] == [unit_urls[0]]
    # The dealer it passed through reads the case's document too.
    dealer = ch.api.get(f"/v1/codes/{case}/epcis", token=ch.tokens["D-SH"])
    assert dealer.status_code == 200, dealer.text
    assert dealer.json()["epcisBody"]["eventList"][1]["childEPCs"] == unit_urls


def test_a_request_parses_each_code_it_names_once(
    ch: Channel, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A parse is two HMACs: a logistics request's reads and movements share one parse of
    each code, and a scan parses its code once (a conflicting command is decided again
    without parsing again)."""
    import domain.codebook

    parsed: list[str] = []
    parse_scanned = domain.codebook.parse_scanned

    def counting(text: str, *args: object, **kwargs: object) -> object:
        parsed.append(text)
        return parse_scanned(text, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(domain.codebook, "parse_scanned", counting)
    codes = [outer(ch, i) for i in range(len(ch.units))]
    steps = [
        ("factory", "commission", codes + ch.cases, {}),
        ("factory", "pack", codes[:3], {"parent": ch.cases[0]}),
        ("hq", "ship", [ch.cases[0], codes[3]], {"to": "D-SH"}),
        ("D-SH", "receive", [ch.cases[0], codes[3]], {}),
        ("D-SH", "ship", [ch.cases[0], codes[3]], {"to": "S-SH"}),
        ("S-SH", "receive", [ch.cases[0], codes[3]], {}),
    ]
    for who, action, named, extra in steps:
        parsed.clear()
        assert ch.move(who, action, named, **extra).status_code == 200
        expected = [*named, *extra.values()] if action == "pack" else named
        assert sorted(parsed) == sorted(expected), action
    parsed.clear()
    assert ch.scan(consumer(ch, 3), "wx-alice", "s-once").status_code == 200
    assert parsed == [consumer(ch, 3)]
