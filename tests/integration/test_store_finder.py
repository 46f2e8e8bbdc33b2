"""The nearest stores found by a widening box are those a ranking of every store gives."""

from __future__ import annotations

import random
from typing import Any

import pytest

from domain.alerts import distance_km
from projections.store import Store
from projections.store_finder import FIRST_RADIUS_KM, Search, bounding_box, nearest_stores
from projections.views import PostgresTx, SqliteTx


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


def _register(store: Store, code: str, lat: float, lng: float) -> None:
    from domain.channel import Location, PartnerKind, PartnerSpec
    from domain.handlers import channel
    from domain.principal import hq_admin

    spec = PartnerSpec(code, PartnerKind.STORE, "D1", code, location=Location(lat, lng),
                       region_code="310101")  # fmt: skip
    channel.register_partner(store.ledger, hq_admin(), spec)


def _dealer(store: Store) -> None:
    from domain.channel import PartnerKind, PartnerSpec
    from domain.handlers import channel
    from domain.principal import hq_admin

    spec = PartnerSpec("D1", PartnerKind.DEALER, "HQ", "dealer", ("31",))
    channel.register_partner(store.ledger, hq_admin(), spec)


def test_the_finder_waits_for_a_store_registered_just_before(store: Store) -> None:
    """An order placed by location right after a store's registration finds that store:
    the finder waits for the partner directory to apply it (and, applied, asks no more)."""
    import threading
    import time

    from api.money import store_finder

    _dealer(store)
    _register(store, "S1", 31.0, 121.0)  # far
    store.engine.catch_up()
    find = store_finder(store)
    assert next(iter(find(31.5, 121.5))) == "S1"
    _register(store, "S2", 31.5, 121.5)
    found: list[str] = []
    finder = threading.Thread(target=lambda: found.extend(find(31.5, 121.5)))
    finder.start()
    time.sleep(0.3)  # the finder is waiting: the directory has not applied S2
    assert not found
    store.engine.catch_up()
    finder.join(timeout=10)
    assert found[:2] == ["S2", "S1"]


def test_a_current_directory_answers_the_nearest_store_in_one_statement(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    """PostgreSQL: the directory's position, the partner events after it and the nearest
    store in one statement (on SQLite the directory and the events are two files: the
    position and the events after it are two statements before the box)."""
    from api.money import store_finder

    _dealer(store)
    _register(store, "S1", 31.0, 121.0)
    _register(store, "S2", 31.2, 121.2)
    store.engine.catch_up()
    find = store_finder(store)
    assert next(iter(find(31.0, 121.0))) == "S1"  # the search's radius settles

    sent: list[str] = []
    tx_type: Any = SqliteTx if store.database.is_sqlite else PostgresTx
    real_fetchall = tx_type.fetchall

    def counted(tx: Any, sql: str, params: Any = ()) -> Any:
        sent.append(sql)
        return real_fetchall(tx, sql, params)

    asked: list[str] = []
    monkeypatch.setattr(tx_type, "fetchall", counted)
    for name in ("position", "relevant_head", "positions"):
        real = getattr(store.engine, name)
        monkeypatch.setattr(store.engine, name, _noting(asked, name, real))
    assert next(iter(find(31.19, 121.19))) == "S2"
    if store.database.is_sqlite:
        assert len(sent) == 2 and "relevant_head" in asked, "SQLite: position, events, box"
    else:
        assert len(sent) == 1 and not asked, f"one statement, nothing else: {sent}, {asked}"


def _noting(asked: list[str], name: str, real: Any) -> Any:
    def noted(*args: Any, **kwargs: Any) -> Any:
        asked.append(name)
        return real(*args, **kwargs)

    return noted
