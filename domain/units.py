"""Units and cases moving through the channel (the Unit and Case aggregates).

A unit inside a case follows the case: shipping a case is one event on the case,
and the unit's ``container`` (recorded by its Packed event, in the same
transaction as the case's) is the containment index that tells, at any scan,
whose hands the unit is in. Containment is time-scoped: Packed .. Unpacked, or
until the unit is sold out of the case.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from eventsourcing.domain import Aggregate

from domain.identity import case_id, unit_id


class UnitState(StrEnum):
    ISSUED = "issued"  # a genuine code seen before it was commissioned
    IN_STOCK = "in_stock"
    IN_TRANSIT = "in_transit"
    SOLD = "sold"


def event_ref(event: Any) -> str:
    """How evidence names an event before it has a position: ``<aggregate id>:<version>``."""
    return f"{event.originator_id}:{event.originator_version}"


class Movable(Aggregate):
    """What units and cases share: state, owner, destination, the dealer they went to."""

    state: UnitState
    owner: str | None
    destination: str | None
    dealer: str | None
    dealer_ref: str | None

    def _arrive(self, owner: str | None) -> None:
        self.state = UnitState.IN_STOCK
        self.owner = owner
        self.destination = None


class Unit(Movable):
    TOPIC = "siyu.Unit"

    class Created(Aggregate.Created):
        """Unused: eventsourcing defines one per aggregate; ours is named in domain words."""

        TOPIC = "siyu.Unit.Created"

    class Commissioned(Aggregate.Created):
        TOPIC = "siyu.Unit.Commissioned"
        serial: str
        batch_id: str
        sku: str
        gtin: str
        owner: str | None
        by: str

    class Surfaced(Aggregate.Created):
        """A genuine code scanned before anyone commissioned its unit (evidence of a leak)."""

        TOPIC = "siyu.Unit.Surfaced"
        serial: str
        batch_id: str
        sku: str
        gtin: str
        owner: str | None
        by: str

    class Packed(Aggregate.Event):
        TOPIC = "siyu.Unit.Packed"
        case: str
        by: str

        def apply(self, unit: Any) -> None:
            unit.container = self.case

    class Unpacked(Aggregate.Event):
        """Leaves the case, taking over the case's whereabouts at that moment."""

        TOPIC = "siyu.Unit.Unpacked"
        case: str
        state: str
        owner: str | None
        destination: str | None
        dealer: str | None
        dealer_ref: str | None
        by: str

        def apply(self, unit: Any) -> None:
            unit.container = None
            unit.state = UnitState(self.state)
            unit.owner, unit.destination = self.owner, self.destination
            unit.dealer, unit.dealer_ref = self.dealer, self.dealer_ref

    class Shipped(Aggregate.Event):
        TOPIC = "siyu.Unit.Shipped"
        source: str
        to: str
        to_kind: str
        by: str

        def apply(self, unit: Any) -> None:
            unit.state = UnitState.IN_TRANSIT
            unit.destination = self.to
            if self.to_kind == "dealer":
                unit.dealer, unit.dealer_ref = self.to, event_ref(self)

    class Received(Aggregate.Event):
        TOPIC = "siyu.Unit.Received"
        by: str

        def apply(self, unit: Any) -> None:
            unit._arrive(unit.destination)

    class Sold(Aggregate.Event):
        """Sold over the counter by ``store``; ``left_case`` when it was sold out of a case."""

        TOPIC = "siyu.Unit.Sold"
        store: str
        left_case: str | None
        dealer: str | None
        dealer_ref: str | None
        by: str

        def apply(self, unit: Any) -> None:
            unit.state = UnitState.SOLD
            unit.owner = self.store
            unit.sold_by = self.store
            unit.container = None
            unit.dealer, unit.dealer_ref = self.dealer, self.dealer_ref

    class Scanned(Aggregate.Event):
        """A consumer or outer code scan. Exact coordinates are personal: encrypted at rest."""

        TOPIC = "siyu.Unit.Scanned"
        personal_fields = ("lat", "lng")
        subject_field = "member_id"
        scan_id: str
        code_kind: str
        member_id: str | None
        outcome: str
        region_code: str | None
        lat: float | None
        lng: float | None
        by: str

        def apply(self, unit: Any) -> None:
            unit.scan_count += 1
            if self.code_kind == "consumer":
                if unit.first_member is None:
                    unit.first_member = self.member_id
                    unit.first_scan_ref = event_ref(self)
                unit.consumer_scans += 1
            if self.lat is not None and self.lng is not None:
                unit.last_fix = (self.timestamp, self.lat, self.lng)

    def __init__(
        self, serial: str, batch_id: str, sku: str, gtin: str, owner: str | None, by: str
    ) -> None:
        self.serial = serial
        self.batch_id = batch_id
        self.sku = sku
        self.gtin = gtin
        self.state = UnitState.IN_STOCK if owner is not None else UnitState.ISSUED
        self.owner = owner
        self.destination: str | None = None
        self.dealer: str | None = None
        self.dealer_ref: str | None = None
        self.container: str | None = None
        self.sold_by: str | None = None
        self.first_member: str | None = None
        self.first_scan_ref: str | None = None
        self.scan_count = 0
        self.consumer_scans = 0
        self.last_fix: tuple[datetime, float, float] | None = None

    @classmethod
    def commission(
        cls, serial: str, batch_id: str, sku: str, gtin: str, owner: str, by: str, at: datetime
    ) -> Unit:
        return cls._create(
            cls.Commissioned,
            id=unit_id(serial),
            timestamp=at,
            serial=serial,
            batch_id=batch_id,
            sku=sku,
            gtin=gtin,
            owner=owner,
            by=by,
        )

    @classmethod
    def surface(
        cls, serial: str, batch_id: str, sku: str, gtin: str, by: str, at: datetime
    ) -> Unit:
        return cls._create(
            cls.Surfaced,
            id=unit_id(serial),
            timestamp=at,
            serial=serial,
            batch_id=batch_id,
            sku=sku,
            gtin=gtin,
            owner=None,
            by=by,
        )

    @property
    def commissioned(self) -> bool:
        return self.state is not UnitState.ISSUED


class Case(Movable):
    TOPIC = "siyu.Case"

    class Created(Aggregate.Created):
        """Unused: eventsourcing defines one per aggregate; ours is named in domain words."""

        TOPIC = "siyu.Case.Created"

    class Commissioned(Aggregate.Created):
        TOPIC = "siyu.Case.Commissioned"
        serial: str
        batch_id: str
        sku: str
        gtin: str
        owner: str
        by: str

    class Packed(Aggregate.Event):
        TOPIC = "siyu.Case.Packed"
        units: tuple[str, ...]
        by: str

        def apply(self, case: Any) -> None:
            case.units = case.units | set(self.units)

    class Unpacked(Aggregate.Event):
        TOPIC = "siyu.Case.Unpacked"
        units: tuple[str, ...]
        by: str

        def apply(self, case: Any) -> None:
            case.units = case.units - set(self.units)

    class UnitSold(Aggregate.Event):
        TOPIC = "siyu.Case.UnitSold"
        unit: str
        store: str
        by: str

        def apply(self, case: Any) -> None:
            case.units = case.units - {self.unit}

    class Shipped(Aggregate.Event):
        TOPIC = "siyu.Case.Shipped"
        source: str
        to: str
        to_kind: str
        units: tuple[str, ...]
        by: str

        def apply(self, case: Any) -> None:
            case.state = UnitState.IN_TRANSIT
            case.destination = self.to
            if self.to_kind == "dealer":
                case.dealer, case.dealer_ref = self.to, event_ref(self)

    class Received(Aggregate.Event):
        TOPIC = "siyu.Case.Received"
        units: tuple[str, ...]
        by: str

        def apply(self, case: Any) -> None:
            case._arrive(case.destination)

    def __init__(
        self, serial: str, batch_id: str, sku: str, gtin: str, owner: str, by: str
    ) -> None:
        self.serial = serial
        self.batch_id = batch_id
        self.sku = sku
        self.gtin = gtin
        self.state = UnitState.IN_STOCK
        self.owner: str | None = owner
        self.destination: str | None = None
        self.dealer: str | None = None
        self.dealer_ref: str | None = None
        self.units: set[str] = set()

    @classmethod
    def commission(
        cls, serial: str, batch_id: str, sku: str, gtin: str, owner: str, by: str, at: datetime
    ) -> Case:
        return cls._create(
            cls.Commissioned,
            id=case_id(serial),
            timestamp=at,
            serial=serial,
            batch_id=batch_id,
            sku=sku,
            gtin=gtin,
            owner=owner,
            by=by,
        )
