"""Request bodies: msgspec Structs with limits; unknown fields are refused."""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec
from msgspec import Meta

ClientId = Annotated[str, Meta(min_length=1, max_length=100, pattern=r"^[\x21-\x7e]+$")]
Code = Annotated[str, Meta(min_length=1, max_length=40)]
Name = Annotated[str, Meta(min_length=1, max_length=200)]
RegionCode = Annotated[str, Meta(pattern=r"^\d{2}(\d{2}){0,2}$")]
Latitude = Annotated[float, Meta(ge=-90.0, le=90.0)]
Longitude = Annotated[float, Meta(ge=-180.0, le=180.0)]


class Body(msgspec.Struct, forbid_unknown_fields=True):
    pass


class LocationIn(Body):
    lat: Latitude
    lng: Longitude


class PartnerIn(Body):
    code: Code
    kind: Literal["dealer", "store", "clerk", "distributor"]
    parent: Code
    name: Name
    region_codes: Annotated[list[RegionCode], Meta(max_length=200)] = []
    location: LocationIn | None = None
    region_code: RegionCode | None = None


class TokenIn(Body):
    partner: Code
    role: Literal["hq", "auditor", "factory", "gateway", "dealer", "store", "clerk", "distributor"]
    label: Annotated[str, Meta(max_length=200)] = ""


class RevocationIn(Body):
    reason: Annotated[str, Meta(min_length=1, max_length=200)]


class SuspensionIn(Body):
    change_id: ClientId
    reason: Annotated[str, Meta(min_length=1, max_length=200)]


class ReactivationIn(Body):
    change_id: ClientId


class TerritoryIn(Body):
    change_id: ClientId
    region_codes: Annotated[list[RegionCode], Meta(min_length=1, max_length=200)]


class RelocationIn(Body):
    change_id: ClientId
    location: LocationIn
    region_code: RegionCode
