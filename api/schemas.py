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


Sku = Annotated[str, Meta(min_length=1, max_length=40)]
Gtin = Annotated[str, Meta(pattern=r"^\d{8}$|^\d{12,14}$")]
CodeText = Annotated[str, Meta(min_length=1, max_length=300)]


class ProductIn(Body):
    sku: Sku
    gtin: Gtin
    name: Name
    price: Annotated[int, Meta(ge=0, le=100_000_000)]
    points_per_scan: Annotated[int, Meta(ge=0, le=100_000)]
    case_gtin: Gtin | None = None
    category: Annotated[str, Meta(min_length=1, max_length=40)] = "general"


class CodeBatchIn(Body):
    batch_id: Annotated[str, Meta(min_length=1, max_length=64)]
    sku: Sku
    count: Annotated[int, Meta(ge=1, le=10_000_000)]
    level: Literal["unit", "case"]


class LogisticsEventIn(Body):
    event_id: ClientId
    action: Literal["commission", "pack", "unpack", "ship", "receive", "sell"]
    codes: Annotated[list[CodeText], Meta(min_length=1, max_length=1000)]
    parent: CodeText | None = None
    to: Code | None = None


class LogisticsIn(Body):
    events: Annotated[list[LogisticsEventIn], Meta(min_length=1, max_length=1000)]


class ScanMemberIn(Body):
    external_id: Annotated[str, Meta(min_length=1, max_length=100)]
    phone: Annotated[str, Meta(pattern=r"^\d{5,15}$")] | None = None


class ScanLocationIn(Body):
    lat: Latitude
    lng: Longitude
    datum: Literal["wgs84", "gcj02"] = "wgs84"


class ScanIn(Body):
    scan_id: ClientId
    code: CodeText
    member: ScanMemberIn
    referrer: Code | None = None
    location: ScanLocationIn | None = None
    region_code: Annotated[str, Meta(pattern=r"^\d{6}$")] | None = None
