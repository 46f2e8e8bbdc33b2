"""The project's event mapper (domain/encoding.py): msgspec JSON, stable topics, upcasting."""

from __future__ import annotations

import importlib
import pkgutil
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace
from typing import Any
from uuid import UUID, uuid4

import msgspec
import pytest
from eventsourcing.domain import Aggregate, BaseAggregate, CanMutateAggregate
from eventsourcing.persistence import MapperDeserialisationError, StoredEvent
from eventsourcing.utils import get_topic, resolve_topic

import domain
from domain.channel import Location, Partner, PartnerKind, PartnerSpec
from domain.encoding import EventMapper
from domain.identity import id_text
from domain.principal import hq_admin

AT = datetime(2024, 1, 2, 3, 4, 5, 678000, tzinfo=UTC)


# -- round trip ------------------------------------------------------------------------


def registered_events() -> list[Any]:
    hq = Partner.hq(AT)
    dealer = Partner.register(
        PartnerSpec("D-SH", PartnerKind.DEALER, "HQ", "上海经销商 Dealer", ("31", "3205")),
        hq,
        hq_admin(),
        AT,
    )
    store = Partner.register(
        PartnerSpec(
            "S-1",
            PartnerKind.STORE,
            "D-SH",
            "Store",
            location=Location(31.2304, 121.4737),
            region_code="310101",
        ),
        dealer,
        hq_admin(),
        AT,
    )
    return [a.collect_events()[0] for a in (hq, dealer, store)]


@pytest.mark.parametrize("index", [0, 1, 2], ids=["hq", "dealer", "store"])
def test_partner_registered_round_trip(index: int) -> None:
    event = registered_events()[index]
    mapper = EventMapper()
    stored = mapper.to_stored_event(event)
    assert stored.topic == "siyu.Partner.Registered"
    assert stored.originator_id == event.originator_id
    assert stored.originator_version == 1
    state = msgspec.json.decode(stored.state)
    assert "originator_id" not in state and "originator_version" not in state, "kept in columns"
    assert "class_version" not in state, "version 1 is not written"
    assert state["code"] == event.code and state["originator_topic"] == "siyu.Partner"

    back = mapper.to_domain_event(stored)
    assert type(back) is Partner.Registered
    assert back == event
    assert back.__dict__ == event.__dict__
    assert back.timestamp == AT and back.timestamp.tzinfo is not None
    assert isinstance(back.region_codes, tuple)
    assert mapper.to_stored_event(back).state == stored.state, "encoding is stable"
    partner = back.mutate(None)
    assert isinstance(partner, Partner)
    assert (partner.code, partner.path, partner.region_codes) == (
        event.code,
        event.path,
        tuple(event.region_codes),
    )


def test_a_damaged_state_is_a_mapper_error_not_a_crash() -> None:
    mapper = EventMapper()
    stored = mapper.to_stored_event(registered_events()[1])
    for state in (b'{"code": 5}', b"not json", stored.state.replace(b'"code":"D-SH"', b'"code":7')):
        damaged = StoredEvent(stored.originator_id, 1, stored.topic, state)
        with pytest.raises(MapperDeserialisationError):
            mapper.to_domain_event(damaged)


# -- stable topics ---------------------------------------------------------------------


def domain_classes() -> list[type]:
    for info in pkgutil.walk_packages(domain.__path__, "domain."):
        importlib.import_module(info.name)
    found: list[type] = []
    pending: list[type] = list(BaseAggregate.__subclasses__())
    while pending:
        cls = pending.pop()
        pending += cls.__subclasses__()
        if cls.__module__.split(".")[0] == "domain" and cls not in found:
            found.append(cls)
    return found


def aggregates() -> list[type]:
    """Aggregates that are stored: an abstract base (subclassed, no topic) is left out."""
    classes = [c for c in domain_classes() if issubclass(c, BaseAggregate)]
    found = [
        c
        for c in classes
        if explicit_topic(c) is not None
        or not any(o is not c and issubclass(o, c) for o in classes)
    ]
    assert found, "the domain defines aggregates"
    return found


def explicit_topic(cls: type) -> str | None:
    """The TOPIC written in the class body. eventsourcing re-creates each nested event class
    as a subclass of the aggregate's ``Event`` and of the class as written (same name), so
    the written one may be a base; a TOPIC inherited from another event does not count."""
    for klass in cls.__mro__:
        if klass.__qualname__ != cls.__qualname__ or klass.__module__ != cls.__module__:
            break
        if "TOPIC" in klass.__dict__:
            return str(klass.__dict__["TOPIC"])
    return None


def event_classes(aggregate: type) -> list[type]:
    """Every event class of an aggregate; ``Event`` is only the base of the others."""
    return [
        value
        for name, value in vars(aggregate).items()
        if isinstance(value, type) and issubclass(value, CanMutateAggregate) and name != "Event"
    ]


def test_every_aggregate_and_event_has_an_explicit_stable_topic() -> None:
    seen: dict[str, type] = {}
    problems: list[str] = []
    names = {a.__qualname__ for a in aggregates()}
    assert {"Partner", "Token", "ClientRequest"} <= names, names
    for aggregate in aggregates():
        for cls in [aggregate, *event_classes(aggregate)]:
            topic = explicit_topic(cls)
            where = f"{cls.__module__}.{cls.__qualname__}"
            if not isinstance(topic, str) or not topic.startswith("siyu."):
                problems.append(f"{where}: no explicit TOPIC starting with 'siyu.' ({topic!r})")
                continue
            if ":" in topic or topic.startswith(f"{cls.__module__}"):
                problems.append(f"{where}: topic {topic!r} names a module; it must not move")
            if topic in seen:
                problems.append(f"{where}: topic {topic!r} also names {seen[topic]}")
            seen[topic] = cls
            if get_topic(cls) != topic or resolve_topic(topic) is not cls:
                problems.append(f"{where}: topic {topic!r} is not the registered one")
    assert not problems, "\n".join(problems)
    assert len([t for t in seen if t.count(".") >= 2]) >= 6, "events were found"


def test_a_ledger_resolves_every_topic_whatever_its_process_imported() -> None:
    """A process that only reads the log (``siyu relay``, a projection worker) must decode
    every event: the ledger loads every module that defines a stored type."""
    from domain.topics import STORED_TYPE_MODULES

    defining = {c.__module__ for c in domain_classes() if explicit_topic(c) is not None}
    assert defining <= set(STORED_TYPE_MODULES), "domain/topics.py lists every such module"
    topics = sorted(
        topic
        for aggregate in aggregates()
        for cls in [aggregate, *event_classes(aggregate)]
        if (topic := explicit_topic(cls)) is not None
    )
    probe = (
        "import sys; from domain.ledger import Ledger; "
        "from eventsourcing.utils import resolve_topic; Ledger({}); "
        "[resolve_topic(t) for t in sys.argv[1:]]; print('resolved', len(sys.argv) - 1)"
    )
    repo = Path(__file__).resolve().parents[2]
    done = subprocess.run(
        [sys.executable, "-c", probe, *topics],
        cwd=repo,
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == f"resolved {len(topics)}"


# -- class_version upcasting ----------------------------------------------------------


class Widget(Aggregate):
    """A test aggregate whose event gained a field in version 2."""

    TOPIC = "siyu.test.Widget"

    class Created(Aggregate.Created):
        TOPIC = "siyu.test.Widget.Created"

    class Made(Aggregate.Created):
        TOPIC = "siyu.test.Widget.Made"
        class_version = 2
        name: str
        colour: str  # new in version 2

        @staticmethod
        def upcast_v1_v2(state: dict[str, Any]) -> None:
            state["colour"] = "unpainted"

    def __init__(self, name: str, colour: str) -> None:
        self.name = name
        self.colour = colour

    @classmethod
    def make(cls, name: str, colour: str) -> Widget:
        return cls._create(cls.Made, id=uuid4(), timestamp=AT, name=name, colour=colour)


# What the mapper wrote for Widget.Made before ``colour`` existed (version 1: no
# class_version key). test_the_v1_bytes_are_the_mappers_format checks this shape.
V1_STATE = (
    b'{"timestamp":"2024-01-02T03:04:05.678000Z","originator_topic":"siyu.test.Widget","name":"w1"}'
)


def test_the_v1_bytes_are_the_mappers_format() -> None:
    made = Widget.make("w1", "red").collect_events()[0]
    state = msgspec.json.decode(EventMapper().to_stored_event(made).state)
    assert state.pop("class_version") == 2
    assert state.pop("colour") == "red"
    assert msgspec.json.encode(state) == V1_STATE


def test_a_version_1_state_loads_upcast_to_version_2() -> None:
    mapper = EventMapper()
    widget_id = uuid4()
    old = StoredEvent(widget_id, 1, "siyu.test.Widget.Made", V1_STATE)

    event = mapper.to_domain_event(old)
    assert type(event) is Widget.Made
    assert event.originator_id == widget_id and event.originator_version == 1
    assert (event.name, event.colour) == ("w1", "unpainted")
    assert event.timestamp == AT
    widget = event.mutate(None)
    assert isinstance(widget, Widget)
    assert (widget.id, widget.name, widget.colour) == (widget_id, "w1", "unpainted")

    # Written again, it is a version 2 state; read again, it is not upcast twice.
    again = mapper.to_stored_event(event)
    assert msgspec.json.decode(again.state)["class_version"] == 2
    assert mapper.to_domain_event(again) == event


def test_a_version_2_state_is_not_upcast() -> None:
    mapper = EventMapper()
    made = Widget.make("w2", "red").collect_events()[0]
    stored = mapper.to_stored_event(made)
    assert msgspec.json.decode(stored.state)["class_version"] == 2
    back = mapper.to_domain_event(stored)
    assert back.colour == "red"
    assert back == made


def test_a_version_1_clerk_task_progress_loads_as_a_counted_scan() -> None:
    """``ClerkTaskProgress.Progressed`` gained source, member and order in version 2."""
    from domain.tasks import SOURCE_SCAN, ClerkTaskProgress

    v1 = b'{"timestamp":"2024-01-02T03:04:05.678000Z","units":1,"cause":"u:3","by":"gateway:HQ"}'
    stored = StoredEvent(uuid4(), 2, ClerkTaskProgress.Progressed.TOPIC, v1)
    event = EventMapper().to_domain_event(stored)
    assert type(event) is ClerkTaskProgress.Progressed
    assert (event.units, event.cause, event.source) == (1, "u:3", SOURCE_SCAN)
    assert event.member_id is None and event.order_id is None
    progress = SimpleNamespace(units=0, credit={}, orders={})
    event.apply(progress)
    assert (progress.units, progress.credit, progress.orders) == (1, {}, {})


def test_a_stray_class_version_in_a_version_1_state_is_ignored() -> None:
    """A version 1 class decodes its state in one pass; a ``class_version`` key found there
    (never written for version 1) changes nothing, as in the upcasting path."""
    mapper = EventMapper()
    event = registered_events()[1]
    stored = mapper.to_stored_event(event)
    for version in (b"1", b"2"):
        state = stored.state[:-1] + b',"class_version":' + version + b"}"
        back = mapper.to_domain_event(StoredEvent(stored.originator_id, 1, stored.topic, state))
        assert back.__dict__ == event.__dict__


@pytest.mark.parametrize(
    "value",
    [uuid4(), UUID(int=0), UUID(int=(1 << 128) - 1), UUID("6F1D3C52-5B1E-4F57-9A63-2A4F0B3C9D10")],
)
def test_id_text_is_str(value: UUID) -> None:
    assert id_text(value) == str(value)
