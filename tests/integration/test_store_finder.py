"""The nearest stores found by a widening box are those a ranking of every store gives."""

from __future__ import annotations

import random

from domain.alerts import distance_km
from projections.store import Store
from projections.store_finder import FIRST_RADIUS_KM, Search, bounding_box, nearest_stores


def _directory(store: Store, stores: list[tuple[str, float | None, float | None, str]]) -> None:
    with store.views.write() as tx:
        tx.execute("DELETE FROM partners")
        tx.executemany(
            "INSERT INTO partners (code, id, kind, parent, path, name, region_codes, lat, lng, "
            "region_code, status, registered_at, position) "
            "VALUES (?, ?, 'store', 'D1', ?, ?, '[]', ?, ?, NULL, ?, '2026-01-01', 1)",
            [(c, f"id-{c}", f"HQ/D1/{c}", c, lat, lng, st) for c, lat, lng, st in stores],
        )


def _every_store(
    stores: list[tuple[str, float | None, float | None, str]], lat: float, lng: float, k: int
) -> list[str]:
    ranked = sorted(
        (distance_km(lat, lng, s_lat, s_lng), code)
        for code, s_lat, s_lng, status in stores
        if status == "active" and s_lat is not None and s_lng is not None
    )
    return [code for _d, code in ranked[:k]]


def test_the_box_finds_what_a_ranking_of_every_store_finds(store: Store) -> None:
    rnd = random.Random(7)
    cities = [(31.23, 121.47), (39.91, 116.41), (23.13, 113.26), (-33.9, 151.2), (64.1, -21.9)]
    for n in (0, 3, 25, 400):
        stores: list[tuple[str, float | None, float | None, str]] = []
        for i in range(n):
            if i % 3 == 0:  # clustered round a city
                c_lat, c_lng = rnd.choice(cities)
                lat, lng = c_lat + rnd.gauss(0, 0.2), c_lng + rnd.gauss(0, 0.2)
            else:  # anywhere, antimeridian and high latitudes included
                lat, lng = rnd.uniform(-85, 85), rnd.uniform(-180, 180)
            status = "suspended" if i % 11 == 5 else "active"
            stores.append((f"S{i:04d}", round(lat, 6), round(lng, 6), status))
        stores += [("T-A", 31.0, 121.0, "active"), ("T-B", 31.0, 121.0, "active")]  # a tie
        stores.append(("NOWHERE", None, None, "active"))
        _directory(store, stores)
        search = Search()  # one per finder: carried from order to order
        points = [rnd.choice(cities) for _ in range(15)]
        points += [(31.0, 121.0), (0.0, 179.99), (0.0, -179.99), (89.5, 10.0), (-89.5, 10.0)]
        points += [(rnd.uniform(-90, 90), rnd.uniform(-180, 180)) for _ in range(15)]
        for lat, lng in points:
            for k in (1, 2, 20):
                with store.views.query() as tx:
                    found = nearest_stores(tx, lat, lng, k, search)
                assert found == _every_store(stores, lat, lng, k), (n, lat, lng, k)


def test_a_store_in_the_box_but_outside_the_circle_waits_its_turn(store: Store) -> None:
    """The first box (25 km) holds A in its corner (31 km away) but not B (28 km away,
    beyond the box's side): B is nearer, so the circle widens before anything is taken."""
    _directory(store, [("A", 0.2, 0.2, "active"), ("B", 0.0, 0.25, "active")])
    with store.views.query() as tx:
        assert nearest_stores(tx, 0.0, 0.0, 1, Search()) == ["B"]
        assert nearest_stores(tx, 0.0, 0.0, 2, Search()) == ["B", "A"]


def test_the_box_holds_the_circle() -> None:
    rnd = random.Random(3)
    for _ in range(2_000):
        lat, lng = rnd.uniform(-80, 80), rnd.uniform(-170, 170)
        radius = FIRST_RADIUS_KM * 4 ** rnd.randrange(0, 4)
        box = bounding_box(lat, lng, radius)
        if box is None:
            continue
        lat_min, lat_max, lng_min, lng_max = box
        # points on the circle's edge, every bearing
        for step in range(72):
            bearing = step * 5.0
            p_lat, p_lng = _destination(lat, lng, bearing, radius * 0.999_999)
            assert lat_min <= p_lat <= lat_max and lng_min <= p_lng <= lng_max, (lat, lng, radius)


def test_a_dense_directory_is_read_in_a_small_box(store: Store) -> None:
    rnd = random.Random(11)
    stores: list[tuple[str, float | None, float | None, str]] = [
        (f"S{i:04d}", 31.2 + rnd.uniform(-0.5, 0.5), 121.4 + rnd.uniform(-0.5, 0.5), "active")
        for i in range(2_000)
    ]
    _directory(store, stores)
    search = Search(radius_km=6_400)  # as after an order far from every store
    for _ in range(3):
        with store.views.query() as tx:
            assert nearest_stores(tx, 31.2, 121.4, 20, search) == _every_store(
                stores, 31.2, 121.4, 20
            )
    assert search.radius_km <= 100, "the search narrows again where stores are dense"


def _destination(lat: float, lng: float, bearing_deg: float, km: float) -> tuple[float, float]:
    import math

    d = km / 6371.0
    p1, l1, b = math.radians(lat), math.radians(lng), math.radians(bearing_deg)
    p2 = math.asin(math.sin(p1) * math.cos(d) + math.cos(p1) * math.sin(d) * math.cos(b))
    l2 = l1 + math.atan2(
        math.sin(b) * math.sin(d) * math.cos(p1), math.cos(d) - math.sin(p1) * math.sin(p2)
    )
    return math.degrees(p2), math.degrees(l2)
