"""Anomaly alerts: each an event with its evidence (references to the events that prove it).

Evidence items are ``"<aggregate id>:<version>"``; the alerts read model turns
them into store positions, since an event learns its position only when saved.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from eventsourcing.domain import Aggregate

from domain.identity import alert_id

EARTH_RADIUS_KM = 6371.0


class AlertKind(StrEnum):
    DIVERSION = "diversion"  # 窜货: scanned outside the territory of the dealer it was shipped to
    REPEAT_SCAN = "repeat_scan"  # a consumer code scanned by a second member
    UNSHIPPED = "unshipped"  # a scan of a unit never shipped out of HQ
    IMPOSSIBLE_TRAVEL = "impossible_travel"  # the same code far apart within a short time


@dataclass(frozen=True)
class TravelRule:
    """Two located scans of one code imply a speed; above this, no honest path explains it."""

    speed_kmh_max: float = 900.0
    distance_km_min: float = 50.0

    def broken_by(
        self, before: tuple[datetime, float, float], after: tuple[datetime, float, float]
    ) -> bool:
        distance = distance_km(before[1], before[2], after[1], after[2])
        if distance < self.distance_km_min:
            return False
        hours = abs((after[0] - before[0]).total_seconds()) / 3600.0
        return hours == 0.0 or distance / hours > self.speed_kmh_max


def distance_km(lat1: float, lng1: float, lat2: float, lng2: float) -> float:
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp, dl = p2 - p1, math.radians(lng2 - lng1)
    a = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * EARTH_RADIUS_KM * math.asin(math.sqrt(a))


class Alert(Aggregate):
    TOPIC = "siyu.Alert"

    class Created(Aggregate.Created):
        """Unused: eventsourcing defines one per aggregate; ours is named in domain words."""

        TOPIC = "siyu.Alert.Created"

    class Raised(Aggregate.Created):
        TOPIC = "siyu.Alert.Raised"
        kind: str
        code: str
        sku: str
        dealer: str | None
        region_code: str | None
        evidence: tuple[str, ...]
        detail: str

    def __init__(
        self,
        kind: str,
        code: str,
        sku: str,
        dealer: str | None,
        region_code: str | None,
        evidence: tuple[str, ...],
        detail: str,
    ) -> None:
        self.kind = AlertKind(kind)
        self.code = code
        self.dealer = dealer

    @classmethod
    def raise_(
        cls,
        cause: str,
        kind: AlertKind,
        code: str,
        sku: str,
        dealer: str | None,
        region_code: str | None,
        evidence: tuple[str, ...],
        detail: str,
        at: datetime,
    ) -> Alert:
        assert evidence, "an alert names the events that prove it"
        return cls._create(
            cls.Raised,
            id=alert_id(cause, kind.value),
            timestamp=at,
            kind=kind.value,
            code=code,
            sku=sku,
            dealer=dealer,
            region_code=region_code,
            evidence=evidence,
            detail=detail,
        )
