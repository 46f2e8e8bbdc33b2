"""Read-ahead hints (``UnitOfWork.hint``), over HTTP on both stores: a command reads in
its first query what the same kind of command read next last time (a case's holders
for a scan of its units, an order's member and distributor for its payment), so a read
that depends on the first costs no round trip of its own; a wrong hint costs a read
and changes no answer."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from domain.clock import FixedClock
from domain.identity import neighbourhood, partner_id
from tests.e2e.client import Api, count_ledger_calls, running_api
from tests.e2e.flows import build_channel, consumer, outer, to_store
from tests.e2e.test_orders import START, build_mall

SHANGHAI = {"lat": 31.2304, "lng": 121.4737}


@pytest.fixture
def api(database_url: str) -> Iterator[Api]:
    with running_api(database_url) as api:
        yield api


def test_a_scan_reads_a_cases_holders_with_the_case(api: Api) -> None:
    ch = build_channel(api)
    to_store(ch)  # units 0-2 in case 0, at S-SH
    reads = count_ledger_calls(api, "select_many")
    first = ch.scan(consumer(ch, 0), "wx-a", "s1", location=SHANGHAI)
    assert first.status_code == 200, first.text
    assert first.json()["bound_store"] == "S-SH" and first.json()["alerts"] == []
    cold, reads[0] = reads[0], 0
    second = ch.scan(consumer(ch, 1), "wx-b", "s2", location=SHANGHAI)
    assert second.status_code == 200, second.text
    assert reads[0] == cold - 1, "the case and its holders in one read"

    # a wrong hint (another store and dealer) reads them too, and decides nothing
    ledger = api.http.app.state.services.store.ledger
    for case in list(ledger.read_hints):
        ledger.read_hints[case] = (partner_id("S-BJ"), partner_id("D-BJ"))
    third = ch.scan(consumer(ch, 2), "wx-c", "s3", location=SHANGHAI)
    assert third.status_code == 200, third.text
    assert third.json()["bound_store"] == "S-SH" and third.json()["alerts"] == []
    assert third.json()["outcome"] == "first_scan" and third.json()["points_awarded"] > 0


def test_a_scan_by_location_reads_the_partners_read_near_there_last(api: Api) -> None:
    """A loose unit's scan reads its holders after its first read (they come from the
    unit); the next scan from the same neighbourhood reads those it read, with its
    first query. A wrong hint reads more and changes no answer."""
    ch = build_channel(api)
    to_store(ch)  # unit 3 loose at S-SH; 4 and 5 follow it
    four = [outer(ch, 4), outer(ch, 5)]
    for who, action, extra in (
        ("hq", "ship", {"to": "D-SH"}),
        ("D-SH", "receive", {}),
        ("D-SH", "ship", {"to": "S-SH"}),
        ("S-SH", "receive", {}),
    ):
        assert ch.move(who, action, four, **extra).status_code == 200
    reads = count_ledger_calls(api, "select_many")
    first = ch.scan(consumer(ch, 3), "wx-a", "s1", location=SHANGHAI)
    assert first.status_code == 200, first.text
    assert reads == [2], "the unit first, then its holders"
    reads[0] = 0
    second = ch.scan(consumer(ch, 4), "wx-b", "s2", location={"lat": 31.2309, "lng": 121.4731})
    assert second.status_code == 200, second.text
    assert reads == [1], "the holders read near here last, with the first read"
    for answer in (first.json(), second.json()):
        assert answer["outcome"] == "first_scan" and answer["points_awarded"] > 0
        assert answer["bound_store"] == "S-SH" and answer["alerts"] == []

    ledger = api.http.app.state.services.store.ledger
    ledger.read_hints[neighbourhood(SHANGHAI["lat"], SHANGHAI["lng"], "scan")] = (
        partner_id("S-BJ"),
        partner_id("D-BJ"),
    )
    reads[0] = 0
    third = ch.scan(consumer(ch, 5), "wx-c", "s3", location=SHANGHAI)
    assert third.status_code == 200, third.text
    assert reads == [2]
    assert third.json()["outcome"] == "first_scan" and third.json()["points_awarded"] > 0
    assert third.json()["bound_store"] == "S-SH" and third.json()["alerts"] == []


def test_a_payment_reads_the_orders_parties_with_the_order(api: Api) -> None:
    mall = build_mall(api, FixedClock(START))
    mall.paid_order("m-0", referrer="R-SH")  # the routes' caches warm
    placed = mall.order("m-1", referrer="R-SH")
    assert placed.status_code == 201, placed.text
    reads = count_ledger_calls(api, "select_many")
    paid = mall.pay(placed.json()["order_id"], 10_000)
    assert paid.status_code == 200, paid.text
    assert reads == [1], "the order, its member, distributor and policies in one read"
    assert paid.json()["split"] == {"distributor": 1000, "store": 3000, "dealer": 2000,
                                    "brand": 4000}  # fmt: skip

    ledger = api.http.app.state.services.store.ledger
    other = mall.order("m-2", referrer="R-SH")
    ledger.read_hints.clear()  # as if placed by another process
    reads[0] = 0
    assert mall.pay(other.json()["order_id"], 10_000).status_code == 200
    assert reads == [2]


def test_an_order_by_a_referrer_reads_the_referrers_store_with_its_first_read(
    api: Api,
) -> None:
    """A new member's order by a referrer who brought a member before reads the
    referrer's store (its parent) in its first query; a wrong hint changes no answer."""
    mall = build_mall(api, FixedClock(START))
    mall.paid_order("m-0", referrer="R-SH")  # the routes' caches warm; R-SH's store learnt
    reads = count_ledger_calls(api, "select_many")
    singles = count_ledger_calls(api, "_get_or_none")
    brought = mall.order("m-1", referrer="R-SH")
    assert brought.status_code == 201, brought.text
    assert (brought.json()["store"], brought.json()["attribution"]) == ("S-SH", "referrer")
    assert (reads, singles) == ([1], [0]), "the referrer's store with the first read"

    # a wrong hint (another store) reads it too, and decides nothing
    ledger = api.http.app.state.services.store.ledger
    ledger.read_hints[partner_id("R-SH")] = (partner_id("S-BJ"),)
    reads[0] = 0
    again = mall.order("m-2", referrer="R-SH")
    assert again.status_code == 201, again.text
    varies = ("order_id", "position")
    assert {k: v for k, v in again.json().items() if k not in varies} == {
        k: v for k, v in brought.json().items() if k not in varies
    }
    assert (reads, singles) == ([1], [1]), "the store read after the first read"


def test_an_order_by_location_reads_the_store_found_near_there_last(api: Api) -> None:
    """A new member's order by location reads, with its first query, the store the last
    order from the same neighbourhood was placed at; the search still decides."""
    mall = build_mall(api, FixedClock(START))
    here = {"lat": 31.2304, "lng": 121.4737}  # People's Square: S-SH
    first = mall.order("m-a", location=here)
    assert first.status_code == 201, first.text
    assert (first.json()["store"], first.json()["attribution"]) == ("S-SH", "nearest_store")
    reads = count_ledger_calls(api, "select_many")
    singles = count_ledger_calls(api, "_get_or_none")
    near = mall.order("m-b", location={"lat": 31.2309, "lng": 121.4731})  # a street away
    assert near.status_code == 201, near.text
    assert (near.json()["store"], near.json()["attribution"]) == ("S-SH", "nearest_store")
    assert (reads, singles) == ([1], [0]), "the store found here last, with the first read"

    reads[0] = 0
    pudong = mall.order("m-c", location={"lat": 31.2222, "lng": 121.5440})  # another neighbourhood
    assert pudong.status_code == 201, pudong.text
    assert pudong.json()["store"] == "S-PD"
    assert reads[0] + singles[0] == 2, "no hint there yet: the store read after the first"

    # a wrong hint reads that store too, and the search still decides
    ledger = api.http.app.state.services.store.ledger
    ledger.read_hints[neighbourhood(here["lat"], here["lng"], "order")] = (partner_id("S-BJ"),)
    reads[0] = singles[0] = 0
    wrong = mall.order("m-d", location=here)
    assert wrong.status_code == 201, wrong.text
    assert wrong.json()["store"] == "S-SH"
    assert reads[0] + singles[0] == 2
