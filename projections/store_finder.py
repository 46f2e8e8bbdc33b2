"""The nearest active stores to a point, from the partner directory (haversine).

Deterministic: ordered by distance, then store code. The caller waits for the
directory to apply the store's head position first, so a store registered just
before an order is a candidate; the write side re-checks each candidate (a store,
active) before choosing it.

On PostgreSQL the search's first statement also asks whether the directory has applied
every partner event there is (``Current``): the directory's position and the events
after it are in the same database, so an order by location reads the nearest store in
one statement where it took three (the directory's position, the partner events after
it, the box). ``DirectoryBehind`` names the event to wait for.

The search reads the stores inside a box around a circle (an index on latitude
narrows it) and widens the circle until it holds ``limit`` stores: every store
nearer than the last one taken is inside the circle, so the answer is the one a
scan of every store gives. A brand of 5,000 stores cost 7.3 ms of the client's
CPU per order when every active store was read and ranked (20,000: 38 ms). Each
search starts at the radius that held the previous one's last store (a finder's
``Search``): a small directory is read whole in one statement, a dense one in a
small box, and a search where stores are sparser widens a few times.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from domain.alerts import EARTH_RADIUS_KM, distance_km
from projections.views import Tx

FIRST_RADIUS_KM = 25.0
GROWTH = 4.0
_MARGIN_DEG = 1e-6  # the box a hair larger than the circle: no rounding leaves a store out

_STORES = (
    "SELECT code, lat, lng FROM partners WHERE kind = 'store' AND status = 'active' "
    "AND lat IS NOT NULL AND lng IS NOT NULL"
)
_IN_BOX = f"{_STORES} AND lat BETWEEN ? AND ? AND lng BETWEEN ? AND ?"


@dataclass(frozen=True)
class Current:
    """What the first statement of a search checks: that the directory (the projection
    ``projection``, whose position table is in the views' schema) has applied every event
    of ``topics`` in ``events`` (a schema-qualified table of the same database)."""

    events: str
    topics: tuple[str, ...]
    projection: str = "partners"

    def guarded(self, sql: str) -> str:
        """``sql`` (stores' rows: code, lat, lng) after a row naming the newest event the
        directory has not applied, if there is one (its code NULL)."""
        return (
            "WITH behind AS (SELECT max(e.notification_id) AS head "
            f"FROM {self.events} e WHERE e.topic = ANY(?) AND e.notification_id > COALESCE("
            "(SELECT position FROM projection_positions WHERE name = ?), 0)) "
            "SELECT NULL, NULL, NULL, head FROM behind WHERE head IS NOT NULL "
            f"UNION ALL SELECT s.*, NULL FROM ({sql}) AS s"
        )


class DirectoryBehind(Exception):
    """The directory has not applied partner events there are: wait for ``position``."""

    def __init__(self, position: int) -> None:
        super().__init__(f"the partner directory has not applied position {position}")
        self.position = position


@dataclass
class Search:
    """Where the last search found enough stores (one per finder; a race between two
    threads only costs a statement)."""

    radius_km: float = FIRST_RADIUS_KM


def bounding_box(
    lat: float, lng: float, radius_km: float
) -> tuple[float, float, float, float] | None:
    """(lat_min, lat_max, lng_min, lng_max) holding every point within ``radius_km`` of
    (lat, lng); None where no such box is plain (the circle reaches a pole or crosses
    the 180th meridian): then every store is read."""
    angle = radius_km / EARTH_RADIUS_KM
    if angle >= math.pi / 2:
        return None
    d_lat = math.degrees(angle)
    lat_min, lat_max = lat - d_lat - _MARGIN_DEG, lat + d_lat + _MARGIN_DEG
    if lat_min <= -90.0 or lat_max >= 90.0:
        return None
    d_lng = math.degrees(math.asin(min(1.0, math.sin(angle) / math.cos(math.radians(lat)))))
    lng_min, lng_max = lng - d_lng - _MARGIN_DEG, lng + d_lng + _MARGIN_DEG
    if lng_min < -180.0 or lng_max > 180.0:
        return None
    return lat_min, lat_max, lng_min, lng_max


def nearest_stores(
    tx: Tx,
    lat: float,
    lng: float,
    limit: int,
    search: Search | None = None,
    current: Current | None = None,
) -> list[str]:
    """Raises ``DirectoryBehind`` if ``current`` is given and the directory is not."""
    if limit <= 0:
        return []
    search = search or Search()
    radius = max(search.radius_km, FIRST_RADIUS_KM)
    first = current
    while True:
        box = bounding_box(lat, lng, radius)
        if box is None:
            taken = _ranked(_stores(tx, _STORES, (), first), lat, lng)[:limit]
            # fewer stores than asked for: the next search reads them all at once
            search.radius_km = _rung(taken[-1][0]) if len(taken) == limit else math.inf
            return [code for _d, code in taken]
        ranked = _ranked(_stores(tx, _IN_BOX, box, first), lat, lng)
        first = None  # checked: the statements after it see a directory as current
        taken = [(d, code) for d, code in ranked if d <= radius][:limit]
        if len(taken) == limit:
            search.radius_km = _rung(taken[-1][0])
            return [code for _d, code in taken]
        radius *= GROWTH


def _stores(
    tx: Tx, sql: str, params: tuple[float, ...], current: Current | None
) -> list[tuple[Any, ...]]:
    if current is None:
        return tx.fetchall(sql, params)
    rows = tx.fetchall(current.guarded(sql), (list(current.topics), current.projection, *params))
    behind = [int(row[3]) for row in rows if row[0] is None]
    if behind:
        raise DirectoryBehind(behind[0])
    return [row[:3] for row in rows]


def _rung(distance_km: float) -> float:
    """The smallest radius of the search's ladder that holds ``distance_km``."""
    if distance_km <= FIRST_RADIUS_KM:
        return FIRST_RADIUS_KM
    return FIRST_RADIUS_KM * GROWTH ** math.ceil(math.log(distance_km / FIRST_RADIUS_KM, GROWTH))


def _ranked(rows: Iterable[Any], lat: float, lng: float) -> list[tuple[float, str]]:
    return sorted(
        (distance_km(lat, lng, float(s_lat), float(s_lng)), str(code))
        for code, s_lat, s_lng in rows
    )
