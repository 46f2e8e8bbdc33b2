"""Read models (trace, inventory, alerts, sell-through) fed by the real engine.

Events come from the real aggregates (the same fields domain.logistics and the scan
handler give them), go through the project's mapper into an in-memory notification
log (a fake of our own recorder port) and through a real ``Engine`` into a real
view store: SQLite always, PostgreSQL when the server is there.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from datetime import UTC, date, datetime, timedelta
from typing import Any
from uuid import UUID

import msgspec
import pytest
from eventsourcing.domain import Aggregate
from eventsourcing.persistence import Notification

from domain.alerts import Alert, AlertKind
from domain.channel import Location, Partner, PartnerKind, PartnerSpec
from domain.encoding import EventMapper
from domain.principal import hq_admin
from domain.units import Case, Unit
from projections.alerts import AlertsView, list_alerts
from projections.database import parse_database_url
from projections.engine import Engine
from projections.inventory import get_inventory
from projections.sell_through import sell_through
from projections.store import default_projections
from projections.trace import get_trace
from projections.views import ViewStore

T0 = datetime(2025, 3, 1, 8, 0, tzinfo=UTC)  # 16:00 in Shanghai
GTIN = "06901234567892"
HQ_FACTORY = "factory@HQ"


class NotificationLog:
    """An in-memory notification log: what the engine reads from the recorder."""

    def __init__(self) -> None:
        self.mapper = EventMapper()
        self.notifications: list[Notification] = []
        self.positions: dict[tuple[UUID, int], int] = {}

    def save(self, *aggregates: Aggregate) -> None:
        for aggregate in aggregates:
            for event in aggregate.collect_events():
                stored = self.mapper.to_stored_event(event)
                position = len(self.notifications) + 1
                self.notifications.append(
                    Notification(
                        originator_id=stored.originator_id,
                        originator_version=stored.originator_version,
                        topic=stored.topic,
                        state=stored.state,
                        id=position,
                    )
                )
                self.positions[(event.originator_id, event.originator_version)] = position

    def select_notifications(
        self,
        start: int | None,
        limit: int,
        stop: int | None = None,
        topics: Any = (),
        *,
        inclusive_of_start: bool = True,
    ) -> list[Notification]:
        first = (start or 0) + (0 if inclusive_of_start else 1)
        return [n for n in self.notifications if n.id >= first][:limit]

    def max_notification_id(self) -> int | None:
        return len(self.notifications) or None

    def positions_of(self, events: list[tuple[UUID, int]]) -> dict[tuple[UUID, int], int]:
        return {e: self.positions[e] for e in events if e in self.positions}

    def position(self, aggregate: Aggregate) -> int:
        """The position of the aggregate's latest event."""
        return self.positions[(aggregate.id, aggregate.version)]


class Flow:
    """The channel and its goods, moved the way domain.logistics moves them."""

    def __init__(self, views: ViewStore) -> None:
        self.log = NotificationLog()
        self.now = T0
        self.engine = Engine(
            self.log,  # type: ignore[arg-type]
            self.log.mapper,
            views,
            default_projections(self.log.positions_of),
            batch_size=4,
        )
        self.engine.ensure_schema()
        self.views = views
        self.partners: dict[str, Partner] = {}
        self.units: dict[str, Unit] = {}
        self.cases: dict[str, Case] = {}

    def tick(self) -> datetime:
        self.now += timedelta(minutes=1)
        return self.now

    def catch_up(self) -> None:
        self.engine.catch_up()

    # -- channel -----------------------------------------------------------------

    def register(self, code: str, kind: PartnerKind, parent: str, **more: Any) -> None:
        spec = PartnerSpec(code=code, kind=kind, parent=parent, name=code, **more)
        partner = Partner.register(spec, self.partners[parent], hq_admin(), self.tick())
        self.partners[code] = partner
        self.log.save(partner)

    def open_channel(self) -> None:
        self.partners["HQ"] = Partner.hq(self.now)
        self.log.save(self.partners["HQ"])
        self.register("D1", PartnerKind.DEALER, "HQ", region_codes=("31",))
        self.register("D2", PartnerKind.DEALER, "HQ", region_codes=("44",))
        self.register(
            "S1", PartnerKind.STORE, "D1", location=Location(31.23, 121.47), region_code="310101"
        )
        self.register(
            "S2", PartnerKind.STORE, "D2", location=Location(23.13, 113.26), region_code="440103"
        )

    # -- goods -------------------------------------------------------------------

    def commission(self, serial: str, sku: str) -> None:
        unit = Unit.commission(serial, "B-1", sku, GTIN, "HQ", HQ_FACTORY, self.tick())
        self.units[serial] = unit
        self.log.save(unit)

    def commission_case(self, serial: str, sku: str) -> None:
        case = Case.commission(serial, "B-C", sku, GTIN, "HQ", HQ_FACTORY, self.tick())
        self.cases[serial] = case
        self.log.save(case)

    def pack(self, case_code: str, *serials: str) -> None:
        case, units, at = self.cases[case_code], [self.units[s] for s in serials], self.tick()
        case.trigger_event(Case.Packed, timestamp=at, units=serials, by=HQ_FACTORY)
        for unit in units:
            unit.trigger_event(Unit.Packed, timestamp=at, case=case.serial, by=HQ_FACTORY)
        self.log.save(case, *units)

    def unpack(self, case_code: str, *serials: str) -> None:
        case, units, at = self.cases[case_code], [self.units[s] for s in serials], self.tick()
        by = f"dealer@{case.owner}"
        case.trigger_event(Case.Unpacked, timestamp=at, units=serials, by=by)
        for unit in units:
            unit.trigger_event(
                Unit.Unpacked,
                timestamp=at,
                case=case.serial,
                state=case.state.value,
                owner=case.owner,
                destination=case.destination,
                dealer=case.dealer,
                dealer_ref=case.dealer_ref,
                by=by,
            )
        self.log.save(case, *units)

    def item(self, code: str) -> Unit | Case:
        return self.units[code] if code in self.units else self.cases[code]

    def ship(self, code: str, to: str) -> None:
        item, destination = self.item(code), self.partners[to]
        fields = {
            "source": item.owner,
            "to": to,
            "to_kind": destination.kind.value,
            "by": f"hq@{item.owner}",
            "timestamp": self.tick(),
        }
        if isinstance(item, Case):
            item.trigger_event(Case.Shipped, units=tuple(sorted(item.units)), **fields)
        else:
            item.trigger_event(Unit.Shipped, **fields)
        self.log.save(item)

    def receive(self, code: str) -> None:
        item, at = self.item(code), self.tick()
        by = f"x@{item.destination}"
        if isinstance(item, Case):
            item.trigger_event(Case.Received, timestamp=at, units=tuple(sorted(item.units)), by=by)
        else:
            item.trigger_event(Unit.Received, timestamp=at, by=by)
        self.log.save(item)

    def sell(self, serial: str, store: str, at: datetime) -> None:
        unit, by = self.units[serial], f"store@{store}"
        case = self.cases[unit.container] if unit.container else None
        holder: Unit | Case = case if case is not None else unit
        if case is not None:
            case.trigger_event(Case.UnitSold, timestamp=at, unit=serial, store=store, by=by)
        unit.trigger_event(
            Unit.Sold,
            timestamp=at,
            store=store,
            left_case=None if case is None else case.serial,
            dealer=holder.dealer,
            dealer_ref=holder.dealer_ref,
            by=by,
        )
        self.log.save(*([case] if case is not None else []), unit)

    def scan(self, serial: str, member: str | None, region: str, outcome: str) -> str:
        unit = self.units[serial]
        unit.trigger_event(
            Unit.Scanned,
            timestamp=self.tick(),
            scan_id=f"scan-{unit.version}",
            code_kind="consumer" if member else "outer",
            member_id=member,
            outcome=outcome,
            region_code=region,
            lat=31.2304 if member else None,
            lng=121.4737 if member else None,
            by="gateway@HQ",
        )
        self.log.save(unit)
        return f"{unit.id}:{unit.version}"

    def alert(self, kind: AlertKind, serial: str, evidence: tuple[str, ...]) -> Alert:
        unit = self.units[serial]
        holder = self.cases[unit.container] if unit.container else unit
        alert = Alert.raise_(
            f"gateway@HQ/{serial}/{kind}",
            kind,
            serial,
            unit.sku,
            holder.dealer,
            "440103",
            evidence,
            f"{kind} of {serial}",
            self.tick(),
        )
        self.log.save(alert)
        return alert

    # -- the story ---------------------------------------------------------------

    def made_and_packed(self) -> None:
        """Four units (three of TEA-1, one of TEA-2) and a case holding u1 and u2, at HQ."""
        self.open_channel()
        for serial in ("u1", "u2", "u3"):
            self.commission(serial, "TEA-1")
        self.commission("u4", "TEA-2")
        self.commission_case("c1", "TEA-1")
        self.pack("c1", "u1", "u2")

    def sent_to_dealer(self) -> None:
        self.ship("c1", "D1")
        self.ship("u3", "D1")

    def at_dealer(self) -> None:
        """D1 receives both, takes u1 out of the case."""
        self.receive("c1")
        self.receive("u3")
        self.unpack("c1", "u1")

    def at_store(self) -> None:
        """D1 sends the case (u2 alone now) and the loose u1 to its store S1."""
        self.ship("c1", "S1")
        self.ship("u1", "S1")
        self.receive("c1")
        self.receive("u1")

    def sold(self) -> None:
        """S1 sells u1 at 23:59 and u2 (out of the case) at 00:01, Shanghai time."""
        self.sell("u1", "S1", datetime(2025, 3, 1, 15, 59, tzinfo=UTC))
        self.now = datetime(2025, 3, 1, 16, 1, tzinfo=UTC)
        self.sell("u2", "S1", self.now)
        self.scan("u1", "member-secret-1", "310101", "first_scan")

    def whole_story(self) -> None:
        self.made_and_packed()
        self.sent_to_dealer()
        self.at_dealer()
        self.at_store()
        self.sold()
        self.catch_up()


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def views(request: pytest.FixtureRequest, tmp_path: Any) -> Iterator[ViewStore]:
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path}/siyu.db"
    else:
        url = request.getfixturevalue("pg_url")
    store = ViewStore(parse_database_url(url))
    yield store
    store.close()


@pytest.fixture
def flow(views: ViewStore) -> Flow:
    return Flow(views)


def trace(flow: Flow, code: str, scope: str | None = None) -> dict[str, Any] | None:
    with flow.views.read() as tx:
        return get_trace(tx, code, scope)


def steps(flow: Flow, code: str) -> list[tuple[str, str | None]]:
    found = trace(flow, code)
    assert found is not None
    return [(step["action"], step["partner"]) for step in found["history"]]


def inventory(flow: Flow, partner: str) -> dict[str, dict[str, int]]:
    with flow.views.read() as tx:
        items = get_inventory(tx, partner)["items"]
    return {item.pop("sku"): item for item in items}


# -- trace ---------------------------------------------------------------------------


def test_unit_history_inherits_its_case_steps_only_while_inside(flow: Flow) -> None:
    flow.whole_story()
    assert steps(flow, "u1") == [
        ("commission", "HQ"),
        ("pack", "HQ"),
        ("ship", "HQ"),
        ("receive", "D1"),
        ("unpack", "D1"),
        ("ship", "D1"),
        ("receive", "S1"),
        ("sell", "S1"),
        ("scan", None),
    ]
    history = trace(flow, "u1")["history"]  # type: ignore[index]
    assert history[1]["parent"] == "c1" and history[4]["parent"] == "c1"
    assert history[2]["to"] == "D1" and history[2]["via"] == "c1"
    assert history[3]["via"] == "c1"
    assert history[5]["to"] == "S1" and "via" not in history[5]
    case_steps = trace(flow, "c1")["history"]  # type: ignore[index]
    case_ship_to_store = next(s for s in case_steps if s.get("to") == "S1")
    assert case_ship_to_store["position"] not in {s["position"] for s in history}
    assert [s["position"] for s in history] == sorted(s["position"] for s in history)


def test_unit_sold_out_of_its_case(flow: Flow) -> None:
    flow.whole_story()
    assert steps(flow, "u2") == [
        ("commission", "HQ"),
        ("pack", "HQ"),
        ("ship", "HQ"),
        ("receive", "D1"),
        ("ship", "D1"),
        ("receive", "S1"),
        ("sell", "S1"),
    ]
    u2 = trace(flow, "u2")
    assert u2 is not None
    assert u2["history"][-1]["left_case"] == "c1"
    assert [s.get("via") for s in u2["history"][2:6]] == ["c1"] * 4
    assert (u2["state"], u2["owner"], u2["container"], u2["dealer"]) == ("sold", "S1", None, "D1")


def test_case_trace(flow: Flow) -> None:
    flow.whole_story()
    assert steps(flow, "c1") == [
        ("commission", "HQ"),
        ("pack", "HQ"),
        ("ship", "HQ"),
        ("receive", "D1"),
        ("unpack", "D1"),
        ("ship", "D1"),
        ("receive", "S1"),
        ("sell", "S1"),
    ]
    c1 = trace(flow, "c1")
    assert c1 is not None
    assert c1["history"][1]["units"] == ["u1", "u2"]
    assert c1["history"][4]["units"] == ["u1"]
    assert c1["history"][7]["unit"] == "u2"
    assert (c1["kind"], c1["state"], c1["owner"]) == ("case", "in_stock", "S1")


def test_current_state_follows_the_case(flow: Flow) -> None:
    flow.made_and_packed()
    flow.sent_to_dealer()
    flow.catch_up()
    u2 = trace(flow, "u2")
    assert u2 is not None
    assert (u2["state"], u2["owner"], u2["container"]) == ("in_transit", "HQ", "c1")
    flow.at_dealer()
    flow.catch_up()
    u2, u1 = trace(flow, "u2"), trace(flow, "u1")
    assert u2 is not None and u1 is not None
    assert (u2["state"], u2["owner"], u2["container"], u2["dealer"]) == (
        "in_stock",
        "D1",
        "c1",
        "D1",
    )
    assert (u1["state"], u1["owner"], u1["container"], u1["dealer"]) == (
        "in_stock",
        "D1",
        None,
        "D1",
    )


def test_scan_steps_show_no_member_and_no_coordinates(flow: Flow) -> None:
    flow.whole_story()
    u1 = trace(flow, "u1")
    assert u1 is not None
    assert u1["scan_count"] == 1
    scan = u1["history"][-1]
    assert scan == {
        "at": scan["at"],
        "position": scan["position"],
        "action": "scan",
        "partner": None,
        "outcome": "first_scan",
        "region_code": "310101",
        "code_kind": "consumer",
    }
    text = msgspec.json.encode(u1).decode()
    assert "member-secret-1" not in text and "31.2304" not in text
    assert (u1["sku"], u1["state"], u1["owner"], u1["container"]) == ("TEA-1", "sold", "S1", None)


def test_trace_is_scoped_to_the_subtrees_that_held_the_code(flow: Flow) -> None:
    flow.whole_story()
    for scope in (None, "HQ", "HQ/D1", "HQ/D1/S1"):
        assert trace(flow, "u1", scope) is not None, scope
        assert trace(flow, "u2", scope) is not None, scope  # held by S1 inside the case
    for scope in ("HQ/D2", "HQ/D2/S2", "HQ/D1/S1/X"):
        assert trace(flow, "u1", scope) is None, scope
    assert trace(flow, "u3", "HQ/D1") is not None
    assert trace(flow, "u3", "HQ/D1/S1") is None
    assert trace(flow, "u4", "HQ") is not None
    assert trace(flow, "u4", "HQ/D1") is None
    assert trace(flow, "nope", None) is None
    scoped = trace(flow, "u1", "HQ/D1/S1")
    assert scoped is not None and scoped["history"][0]["action"] == "commission"


def test_a_story_in_one_batch_traces_as_in_many(flow: Flow, tmp_path: Any) -> None:
    """The whole story applied as one batch (a catch-up) leaves the trace tables the
    small batches leave: every holder a unit had (dealer, then store) at its first
    position, though the batch writes each code-and-holder pair once."""
    flow.whole_story()
    one = Flow(ViewStore(parse_database_url(f"sqlite:///{tmp_path}/one-batch.db")))
    one.engine.batch_size = 1000
    one.whole_story()
    assert one.engine.position() == flow.engine.position() > 4, "one batch against many"
    tables = ("trace_holders", "trace_steps", "trace_codes")
    for views in (flow.views, one.views):
        with views.read() as tx:
            rows = {t: sorted(tx.fetchall(f"SELECT * FROM {t}")) for t in tables}
        if views is flow.views:
            expected = rows
        else:
            assert rows == expected
    held = [r for r in expected["trace_holders"] if r[0] == "u1"]
    assert [path for _, path, _ in held] == ["HQ", "HQ/D1", "HQ/D1/S1"]
    for scope in ("HQ/D1", "HQ/D1/S1"):
        with one.views.read() as tx:
            assert get_trace(tx, "u1", scope) is not None, scope
    one.views.close()


def test_a_receive_writes_no_holder_the_ship_did_not(tmp_path: Any) -> None:
    """The receiver is the destination the ship named: a holder since the ship, so a
    receive sends no holder rows (each would be dropped by ON CONFLICT), and who may
    trace what is as before."""
    flow = Flow(ViewStore(parse_database_url(f"sqlite:///{tmp_path}/receive.db")))
    flow.made_and_packed()
    flow.sent_to_dealer()
    flow.catch_up()
    sent: list[str] = []
    flow.views._sqlite().set_trace_callback(sent.append)
    flow.receive("c1")
    flow.receive("u3")
    flow.catch_up()
    flow.views._sqlite().set_trace_callback(None)
    assert any("INSERT INTO trace_steps" in s for s in sent), "the receives were applied"
    assert not [s for s in sent if "trace_holders" in s]
    with flow.views.read() as tx:
        held = sorted(tx.fetchall("SELECT code, path FROM trace_holders WHERE path = 'HQ/D1'"))
    assert [code for code, _path in held] == ["c1", "u1", "u2", "u3"]
    for code in ("c1", "u1", "u2", "u3"):
        seen = trace(flow, code, "HQ/D1")
        assert seen is not None and seen["owner"] == "D1", code
    flow.views.close()


# -- inventory -----------------------------------------------------------------------


def test_inventory_through_the_channel(flow: Flow) -> None:
    flow.made_and_packed()
    flow.catch_up()
    assert inventory(flow, "HQ") == {
        "TEA-1": {"on_hand": 3, "received": 0, "shipped": 0, "sold": 0},
        "TEA-2": {"on_hand": 1, "received": 0, "shipped": 0, "sold": 0},
    }
    flow.sent_to_dealer()
    flow.catch_up()
    assert inventory(flow, "HQ")["TEA-1"] == {"on_hand": 0, "received": 0, "shipped": 3, "sold": 0}
    assert inventory(flow, "D1") == {}  # in transit counts for nobody
    flow.at_dealer()
    flow.catch_up()
    assert inventory(flow, "D1")["TEA-1"]["on_hand"] == 3  # unpacking changes nothing
    flow.at_store()
    flow.sold()
    flow.catch_up()
    assert inventory(flow, "D1") == {
        "TEA-1": {"on_hand": 1, "received": 3, "shipped": 2, "sold": 0}
    }
    assert inventory(flow, "S1") == {
        "TEA-1": {"on_hand": 0, "received": 2, "shipped": 0, "sold": 2}
    }
    assert inventory(flow, "HQ")["TEA-2"]["on_hand"] == 1
    with flow.views.read() as tx:
        assert get_inventory(tx, "S2") == {"partner": "S2", "items": []}


# -- alerts --------------------------------------------------------------------------


def test_alerts_list_with_evidence_positions(flow: Flow) -> None:
    """Each alert's evidence as store positions, in the alert's order; a batch's
    references all resolved in one lookup (a statement on PostgreSQL)."""
    (alerts_view,) = [p for p in flow.engine.projections if isinstance(p, AlertsView)]
    asked: list[list[tuple[UUID, int]]] = []

    def positions_of(events: Sequence[tuple[UUID, int]]) -> Mapping[tuple[UUID, int], int]:
        asked.append(list(events))
        return flow.log.positions_of(list(events))

    alerts_view.positions_of = positions_of
    flow.engine.batch_size = 1_000  # every event below in one batch
    flow.made_and_packed()
    flow.sent_to_dealer()
    case = flow.cases["c1"]
    shipment, shipment_position = f"{case.id}:{case.version}", flow.log.position(case)
    flow.at_dealer()
    flow.at_store()
    flow.sold()
    u4_scan = flow.scan("u4", None, "440103", "authentic")
    unshipped = flow.alert(AlertKind.UNSHIPPED, "u4", (u4_scan,))
    u1_scan = flow.scan("u1", None, "440103", "authentic")
    diversion = flow.alert(AlertKind.DIVERSION, "u1", (shipment, u1_scan))
    flow.catch_up()
    assert len(asked) == 1 and len(asked[0]) == 3, asked  # the two scans and the shipment
    with flow.views.read() as tx:
        everything = list_alerts(tx, None, None, None, 100)
        for_d1 = list_alerts(tx, "D1", None, None, 100)
        for_d2 = list_alerts(tx, "D2", None, None, 100)
        unshipped_only = list_alerts(tx, None, "unshipped", None, 100)
        first = list_alerts(tx, None, None, None, 1)
        after_first = list_alerts(tx, None, None, first[0]["position"], 100)
    assert [a["kind"] for a in everything] == ["unshipped", "diversion"]
    assert [a["position"] for a in everything] == [
        flow.log.position(unshipped),
        flow.log.position(diversion),
    ]
    assert everything[0]["evidence"] == [flow.log.position(flow.units["u4"])]
    assert for_d1 == [everything[1]]
    assert for_d1[0]["evidence"] == [shipment_position, flow.log.position(flow.units["u1"])]
    assert {k: for_d1[0][k] for k in ("code", "sku", "dealer", "region_code")} == {
        "code": "u1",
        "sku": "TEA-1",
        "dealer": "D1",
        "region_code": "440103",
    }
    assert for_d2 == []
    assert unshipped_only == [everything[0]]
    assert first == everything[:1] and after_first == everything[1:]


# -- sell-through --------------------------------------------------------------------


def test_sell_through_per_shanghai_day(flow: Flow) -> None:
    flow.whole_story()

    def units(scope: str | None, path: str, first: str | date, last: str | date) -> Any:
        with flow.views.read() as tx:
            return sell_through(tx, scope, path, first, last)

    day1 = units(None, "HQ/D1/S1", "2025-03-01", "2025-03-01")
    assert day1 == {
        "partner": "S1",
        "from": "2025-03-01",
        "to": "2025-03-01",
        "items": [{"sku": "TEA-1", "units": 1}],
        "total": 1,
    }
    assert units(None, "HQ/D1/S1", date(2025, 3, 2), date(2025, 3, 2))["total"] == 1
    assert units("HQ/D1", "HQ/D1", "2025-03-01", "2025-03-02")["total"] == 2
    assert units("HQ", "HQ", "2025-03-01", "2025-03-31")["items"] == [{"sku": "TEA-1", "units": 2}]
    assert units(None, "HQ/D2", "2025-03-01", "2025-03-02") == {
        "partner": "D2",
        "from": "2025-03-01",
        "to": "2025-03-02",
        "items": [],
        "total": 0,
    }
    assert units(None, "HQ/D1/S1", "2025-02-28", "2025-02-28")["total"] == 0
    assert units("HQ/D2", "HQ/D1/S1", "2025-03-01", "2025-03-02") is None


# -- rebuilding ----------------------------------------------------------------------


def test_a_rebuild_equals_the_live_views(flow: Flow) -> None:
    flow.whole_story()
    live = flow.engine.checksums()
    flow.engine.reset(["trace", "inventory", "alerts", "sell_through"])
    assert flow.engine.position("trace") == 0
    flow.catch_up()
    assert flow.engine.checksums() == live


def test_store_finder_reads_the_other_stores_only_when_asked(tmp_path) -> None:
    """The nearest store is read alone; the candidates after it only if the caller asks
    (the write side refused the first): nearest first, no store twice; and an order whose
    nearest store the directory still lists as active, though it was suspended since,
    goes to the next one."""
    from api.money import store_finder
    from domain.catalog import ProductSpec
    from domain.handlers import catalog, channel, orders
    from domain.splits import Fulfilment
    from projections.store import Store

    store = Store.open(f"sqlite:///{tmp_path}/finder.db")
    try:
        hq = hq_admin()
        channel.register_partner(
            store.ledger, hq, PartnerSpec("D1", PartnerKind.DEALER, "HQ", "dealer", ("31",))
        )
        for code, lat in (("S1", 31.001), ("S2", 31.01), ("S3", 31.3)):
            spec = PartnerSpec(code, PartnerKind.STORE, "D1", code,
                               location=Location(lat, 121.0), region_code="310101")  # fmt: skip
            channel.register_partner(store.ledger, hq, spec)
        store.engine.catch_up()
        sent: list[str] = []
        store.views._sqlite().set_trace_callback(sent.append)
        reads = lambda: len([s for s in sent if "FROM partners WHERE kind = 'store'" in s])  # noqa: E731
        find = store_finder(store)
        candidates = iter(find(31.0, 121.0))
        assert next(candidates) == "S1"
        assert reads() == 1, "the nearest store alone: one statement"
        assert list(candidates) == ["S2", "S3"]
        assert reads() > 1, "the others in statements of their own"
        store.views._sqlite().set_trace_callback(None)

        stale = list(find(31.0, 121.0))  # the directory's answer before the suspension
        channel.suspend(store.ledger, hq, "S1", "c1", "closed")
        catalog.list_product(
            store.ledger, hq, ProductSpec("TEA", "06901234567892", "tea", 10_000, 1)
        )
        taken: list[str] = []

        def finder(_lat: float, _lng: float) -> Iterator[str]:
            for code in stale:
                taken.append(code)
                yield code

        request = orders.OrderRequest(
            "O-1", "m-1", (orders.LineRequest("TEA", 1, 10_000),), Fulfilment.HQ_DROPSHIP,
            lat=31.0, lng=121.0,
        )  # fmt: skip
        placed = orders.place_order(store.ledger, hq, request, finder)
        assert placed.answer["store"] == "S2"
        assert taken == ["S1", "S2"], "candidates taken one at a time, up to the first active"
    finally:
        store.close()


def test_relevant_head_ignores_other_traffic(tmp_path) -> None:
    """A read that needs only partner events waits for the newest partner event, not for
    the head of the log (scans and payments must not make a located order wait)."""
    from domain.channel import PartnerKind, PartnerSpec
    from domain.handlers import channel
    from domain.principal import hq_admin
    from projections.store import Store

    store = Store.open(f"sqlite:///{tmp_path}/rh.db")
    try:
        hq = hq_admin()
        spec = PartnerSpec("D1", PartnerKind.DEALER, "HQ", "dealer", ("31",))
        registered = channel.register_partner(store.ledger, hq, spec).position
        store.engine.catch_up()
        applied = store.engine.position("partners")
        # Other traffic after the catch-up: a token mint is no partner event.
        from domain.handlers.tokens import mint_token
        from domain.principal import Role

        mint_token(store.ledger, hq, "D1", Role.DEALER)
        assert store.head > applied
        assert store.engine.relevant_head("partners") == applied
        moved = channel.suspend(store.ledger, hq, "D1", "c1", "audit").position
        assert store.engine.relevant_head("partners") >= moved - 1 > registered
    finally:
        store.close()
