"""The nearest active stores to a point, from the partner directory (haversine).

Deterministic: ordered by distance, then store code. The caller waits for the
directory to apply the store's head position first, so a store registered just
before an order is a candidate; the write side re-checks each candidate (a store,
active) before choosing it. Every active store is examined: fine for thousands of
stores; beyond that, a geohash column would narrow the scan.
"""

from __future__ import annotations

from domain.alerts import distance_km
from projections.views import Tx


def nearest_stores(tx: Tx, lat: float, lng: float, limit: int) -> list[str]:
    rows = tx.fetchall(
        "SELECT code, lat, lng FROM partners WHERE kind = 'store' AND status = 'active' "
        "AND lat IS NOT NULL AND lng IS NOT NULL"
    )
    ranked = sorted(
        (distance_km(lat, lng, float(s_lat), float(s_lng)), str(code))
        for code, s_lat, s_lng in rows
    )
    return [code for _distance, code in ranked[:limit]]
