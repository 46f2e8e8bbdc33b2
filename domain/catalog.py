"""Products: SKU, GTIN-14 (check digit verified), list price in fen, points per scan."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from eventsourcing.domain import Aggregate

from domain.codes import is_valid_gtin14, normalize_gtin
from domain.errors import InvalidInput
from domain.identity import product_id
from domain.principal import Principal, Role

SKU_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,39}$")
PRICE_FEN_MAX = 100_000_000  # 1,000,000 yuan per unit
POINTS_PER_SCAN_MAX = 100_000
NAME_LENGTH_MAX = 200


@dataclass(frozen=True)
class ProductSpec:
    sku: str
    gtin: str
    name: str
    price_fen: int
    points_per_scan: int
    case_gtin: str | None = None
    category: str = "general"

    def __post_init__(self) -> None:
        if not SKU_PATTERN.match(self.sku):
            raise InvalidInput.field("sku", "1 to 40 of A-Z a-z 0-9 _ . - starting alphanumeric")
        gtin = normalize_gtin(self.gtin)
        if gtin is None or not is_valid_gtin14(gtin):
            raise InvalidInput.field("gtin", "not a GTIN with a valid GS1 check digit")
        object.__setattr__(self, "gtin", gtin)
        if self.case_gtin is not None:
            case_gtin = normalize_gtin(self.case_gtin)
            if case_gtin is None or not is_valid_gtin14(case_gtin):
                raise InvalidInput.field("case_gtin", "not a GTIN with a valid GS1 check digit")
            if case_gtin == gtin:
                raise InvalidInput.field("case_gtin", "must differ from the unit GTIN")
            object.__setattr__(self, "case_gtin", case_gtin)
        if not self.name.strip() or len(self.name) > NAME_LENGTH_MAX:
            raise InvalidInput.field("name", f"1 to {NAME_LENGTH_MAX} characters")
        if not 0 <= self.price_fen <= PRICE_FEN_MAX:
            raise InvalidInput.field("price", f"0 to {PRICE_FEN_MAX} fen")
        if not 0 <= self.points_per_scan <= POINTS_PER_SCAN_MAX:
            raise InvalidInput.field("points_per_scan", f"0 to {POINTS_PER_SCAN_MAX}")
        if not SKU_PATTERN.match(self.category):
            raise InvalidInput.field("category", "1 to 40 of A-Z a-z 0-9 _ . -")

    def content(self) -> dict[str, Any]:
        return {
            "sku": self.sku,
            "gtin": self.gtin,
            "name": self.name,
            "price": self.price_fen,
            "points_per_scan": self.points_per_scan,
            "case_gtin": self.case_gtin,
            "category": self.category,
        }


class Product(Aggregate):
    TOPIC = "siyu.Product"
    IMMUTABLE = True  # one event, never changed: commands may share a cached copy

    class Created(Aggregate.Created):
        """Unused: eventsourcing defines one per aggregate; ours is named in domain words."""

        TOPIC = "siyu.Product.Created"

    class Listed(Aggregate.Created):
        TOPIC = "siyu.Product.Listed"
        sku: str
        gtin: str
        name: str
        price_fen: int
        points_per_scan: int
        case_gtin: str | None
        category: str
        by: str

    def __init__(
        self,
        sku: str,
        gtin: str,
        name: str,
        price_fen: int,
        points_per_scan: int,
        case_gtin: str | None,
        category: str,
        by: str,
    ) -> None:
        self.sku = sku
        self.gtin = gtin
        self.name = name
        self.price_fen = price_fen
        self.points_per_scan = points_per_scan
        self.case_gtin = case_gtin
        self.category = category

    @classmethod
    def list(cls, spec: ProductSpec, by: Principal, at: datetime) -> Product:
        by.require(Role.HQ)
        return cls._create(
            cls.Listed,
            id=product_id(spec.sku),
            timestamp=at,
            sku=spec.sku,
            gtin=spec.gtin,
            name=spec.name,
            price_fen=spec.price_fen,
            points_per_scan=spec.points_per_scan,
            case_gtin=spec.case_gtin,
            category=spec.category,
            by=by.scope_key,
        )
