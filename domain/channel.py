"""The channel tree: HQ -> dealers -> stores -> clerks and distributors (the Partner aggregate).

Every partner keeps its materialised path (``HQ/D-SH/S-001/C-01``): a principal's data
scope is its partner's subtree, so "may X see Y" is a prefix test on paths.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any
from uuid import UUID

from eventsourcing.domain import Aggregate

from domain.errors import BusinessRuleBroken, Conflict, InvalidInput, NotAllowed
from domain.identity import partner_id
from domain.principal import HQ_CODE, PATH_SEPARATOR, Principal, Role
from domain.region import is_region_code

CODE_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,39}$")
REGION_CODE_PATTERN = re.compile(r"^(\d{2}|\d{4}|\d{6})$")
NAME_LENGTH_MAX = 200
TERRITORY_SIZE_MAX = 200
PATH_DEPTH_MAX = 5


class PartnerKind(StrEnum):
    BRAND = "brand"
    DEALER = "dealer"
    STORE = "store"
    CLERK = "clerk"
    DISTRIBUTOR = "distributor"


class PartnerStatus(StrEnum):
    ACTIVE = "active"
    SUSPENDED = "suspended"


# The only shapes the tree may take: a kind and the kinds its parent may have.
PARENT_KINDS: dict[PartnerKind, PartnerKind] = {
    PartnerKind.DEALER: PartnerKind.BRAND,
    PartnerKind.STORE: PartnerKind.DEALER,
    PartnerKind.CLERK: PartnerKind.STORE,
    PartnerKind.DISTRIBUTOR: PartnerKind.STORE,
}
# Which role registers (and manages) which kinds of children under its own partner.
REGISTRAR_ROLE: dict[PartnerKind, Role] = {
    PartnerKind.STORE: Role.DEALER,
    PartnerKind.CLERK: Role.STORE,
    PartnerKind.DISTRIBUTOR: Role.STORE,
}


@dataclass(frozen=True)
class Location:
    lat: float
    lng: float

    def __post_init__(self) -> None:
        if not (-90.0 <= self.lat <= 90.0) or not (-180.0 <= self.lng <= 180.0):
            raise InvalidInput.field("location", "latitude or longitude out of range")


@dataclass(frozen=True)
class PartnerSpec:
    """What a registration asks for; validated before anything is loaded."""

    code: str
    kind: PartnerKind
    parent: str
    name: str
    region_codes: tuple[str, ...] = ()
    location: Location | None = None
    region_code: str | None = None

    def __post_init__(self) -> None:
        validate_code(self.code, "code")
        validate_code(self.parent, "parent")
        if not self.name.strip() or len(self.name) > NAME_LENGTH_MAX:
            raise InvalidInput.field("name", f"1 to {NAME_LENGTH_MAX} characters")
        if self.kind is PartnerKind.BRAND:
            raise InvalidInput.field("kind", "only HQ is a brand")
        if self.kind is PartnerKind.DEALER:
            validate_territory(self.region_codes)
        if self.kind is PartnerKind.STORE:
            if self.location is None:
                raise InvalidInput.field("location", "a store needs a location")
            validate_county_code(self.region_code, "region_code")

    def fingerprint(self) -> dict[str, Any]:
        return {
            "code": self.code,
            "kind": self.kind.value,
            "parent": self.parent,
            "name": self.name,
            "region_codes": list(self.region_codes),
            "location": None if self.location is None else [self.location.lat, self.location.lng],
            "region_code": self.region_code,
        }


def validate_code(code: str, field: str) -> None:
    if not CODE_PATTERN.match(code):
        raise InvalidInput.field(field, "1 to 40 of A-Z a-z 0-9 _ . - starting alphanumeric")


def validate_territory(region_codes: tuple[str, ...]) -> None:
    if not region_codes:
        raise InvalidInput.field("region_codes", "a dealer needs at least one region code")
    if len(region_codes) > TERRITORY_SIZE_MAX:
        raise InvalidInput.field("region_codes", f"at most {TERRITORY_SIZE_MAX} codes")
    for code in region_codes:
        if not REGION_CODE_PATTERN.match(code):
            raise InvalidInput.field("region_codes", f"{code!r} is not a 2, 4 or 6 digit code")
        if not is_region_code(_canonical_region(code)):
            raise InvalidInput.field("region_codes", f"{code!r} is not a known region code")


def validate_county_code(code: str | None, field: str) -> None:
    if code is None or not re.fullmatch(r"\d{6}", code) or not is_region_code(code):
        raise InvalidInput.field(field, "a known 6-digit region (county) code")


def _canonical_region(code: str) -> str:
    """``310000`` names the province ``31`` and ``310100`` the prefecture ``3101``."""
    if len(code) == 6 and code.endswith("0000"):
        return code[:2]
    if len(code) == 6 and code.endswith("00"):
        return code[:4]
    return code


class Partner(Aggregate):
    TOPIC = "siyu.Partner"

    class Created(Aggregate.Created):
        """Unused: eventsourcing defines one per aggregate; ours is named in domain words."""

        TOPIC = "siyu.Partner.Created"

    class Registered(Aggregate.Created):
        TOPIC = "siyu.Partner.Registered"
        code: str
        kind: str
        parent: str | None
        path: str
        name: str
        region_codes: tuple[str, ...]
        lat: float | None
        lng: float | None
        region_code: str | None
        by: str

    class TerritoryUpdated(Aggregate.Event):
        TOPIC = "siyu.Partner.TerritoryUpdated"
        region_codes: tuple[str, ...]
        by: str

        def apply(self, aggregate: Any) -> None:
            aggregate.region_codes = self.region_codes

    class Relocated(Aggregate.Event):
        TOPIC = "siyu.Partner.Relocated"
        lat: float
        lng: float
        region_code: str
        by: str

        def apply(self, aggregate: Any) -> None:
            aggregate.lat, aggregate.lng = self.lat, self.lng
            aggregate.region_code = self.region_code

    class Suspended(Aggregate.Event):
        TOPIC = "siyu.Partner.Suspended"
        reason: str
        by: str

        def apply(self, aggregate: Any) -> None:
            aggregate.status = PartnerStatus.SUSPENDED

    class Reactivated(Aggregate.Event):
        TOPIC = "siyu.Partner.Reactivated"
        by: str

        def apply(self, aggregate: Any) -> None:
            aggregate.status = PartnerStatus.ACTIVE

    def __init__(
        self,
        code: str,
        kind: str,
        parent: str | None,
        path: str,
        name: str,
        region_codes: tuple[str, ...],
        lat: float | None,
        lng: float | None,
        region_code: str | None,
        by: str,
    ) -> None:
        self.code = code
        self.kind = PartnerKind(kind)
        self.parent = parent
        self.path = path
        self.name = name
        self.region_codes = tuple(region_codes)
        self.lat = lat
        self.lng = lng
        self.region_code = region_code
        self.status = PartnerStatus.ACTIVE
        self.registered_by = by

    # -- construction -------------------------------------------------------

    @classmethod
    def hq(cls, at: datetime) -> Partner:
        return cls._create(
            cls.Registered,
            id=partner_id(HQ_CODE),
            timestamp=at,
            code=HQ_CODE,
            kind=PartnerKind.BRAND.value,
            parent=None,
            path=HQ_CODE,
            name="Brand headquarters",
            region_codes=(),
            lat=None,
            lng=None,
            region_code=None,
            by="system",
        )

    @classmethod
    def register(cls, spec: PartnerSpec, parent: Partner, by: Principal, at: datetime) -> Partner:
        parent.authorize_registration(spec, by)
        path = parent.path + PATH_SEPARATOR + spec.code
        assert path.count(PATH_SEPARATOR) < PATH_DEPTH_MAX
        return cls._create(
            cls.Registered,
            id=partner_id(spec.code),
            timestamp=at,
            code=spec.code,
            kind=spec.kind.value,
            parent=parent.code,
            path=path,
            name=spec.name,
            region_codes=spec.region_codes,
            lat=None if spec.location is None else spec.location.lat,
            lng=None if spec.location is None else spec.location.lng,
            region_code=spec.region_code,
            by=by.scope_key,
        )

    # -- rules ----------------------------------------------------------------

    @property
    def is_active(self) -> bool:
        return self.status is PartnerStatus.ACTIVE

    def authorize_registration(self, spec: PartnerSpec, by: Principal) -> None:
        """Who may register ``spec`` under this partner (the parent). Permission, then state."""
        if by.role is not Role.HQ:
            registrar = REGISTRAR_ROLE.get(spec.kind)
            if registrar is None or by.role is not registrar or by.partner != self.code:
                raise NotAllowed(
                    f"{by.role.value} {by.partner} may not register a {spec.kind.value} "
                    f"under {self.code}"
                )
        expected_parent_kind = PARENT_KINDS[spec.kind]
        if self.kind is not expected_parent_kind:
            raise BusinessRuleBroken(
                f"a {spec.kind.value} belongs under a {expected_parent_kind.value}, "
                f"not under {self.kind.value} {self.code}",
                code="invalid_parent",
            )
        if not self.is_active:
            raise Conflict(f"{self.code} is suspended", code="partner_suspended")

    def authorize_management(self, by: Principal) -> None:
        """HQ manages every partner; a dealer its stores; a store its clerks and distributors."""
        if by.role is Role.HQ:
            return
        registrar = REGISTRAR_ROLE.get(self.kind)
        if registrar is None or by.role is not registrar or by.partner != self.parent:
            raise NotAllowed(f"{by.role.value} {by.partner} may not manage {self.code}")

    def matches(self, spec: PartnerSpec) -> bool:
        """Would registering ``spec`` again describe this very partner?"""
        location = None if self.lat is None or self.lng is None else Location(self.lat, self.lng)
        return (
            self.kind is spec.kind
            and self.parent == spec.parent
            and self.name == spec.name
            and self.region_codes == spec.region_codes
            and location == spec.location
            and self.region_code == spec.region_code
        )

    # -- changes ----------------------------------------------------------------

    def update_territory(self, region_codes: tuple[str, ...], by: Principal, at: datetime) -> None:
        if by.role is not Role.HQ:
            raise NotAllowed("only HQ changes a dealer's territory")
        if self.kind is not PartnerKind.DEALER:
            raise BusinessRuleBroken("only a dealer has a territory", code="not_a_dealer")
        validate_territory(region_codes)
        self._require_active()
        self.trigger_event(
            self.TerritoryUpdated, timestamp=at, region_codes=region_codes, by=by.scope_key
        )

    def relocate(self, location: Location, region_code: str, by: Principal, at: datetime) -> None:
        self.authorize_management(by)
        if self.kind is not PartnerKind.STORE:
            raise BusinessRuleBroken("only a store has a location", code="not_a_store")
        validate_county_code(region_code, "region_code")
        self._require_active()
        self.trigger_event(
            self.Relocated,
            timestamp=at,
            lat=location.lat,
            lng=location.lng,
            region_code=region_code,
            by=by.scope_key,
        )

    def suspend(self, reason: str, by: Principal, at: datetime) -> None:
        self.authorize_management(by)
        if self.code == HQ_CODE:
            raise BusinessRuleBroken("HQ cannot be suspended", code="hq_not_suspendable")
        if not reason.strip() or len(reason) > NAME_LENGTH_MAX:
            raise InvalidInput.field("reason", f"1 to {NAME_LENGTH_MAX} characters")
        self._require_active()
        self.trigger_event(self.Suspended, timestamp=at, reason=reason, by=by.scope_key)

    def reactivate(self, by: Principal, at: datetime) -> None:
        self.authorize_management(by)
        if self.is_active:
            raise Conflict(f"{self.code} is active", code="partner_active")
        self.trigger_event(self.Reactivated, timestamp=at, by=by.scope_key)

    def _require_active(self) -> None:
        if not self.is_active:
            raise Conflict(f"{self.code} is suspended", code="partner_suspended")


def partner_key(code: str) -> UUID:
    return partner_id(code)
