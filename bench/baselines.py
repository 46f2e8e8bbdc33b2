"""Same-run baselines: the physical limit (COPY) and a bare eventsourcing save."""

from __future__ import annotations

import random
import time
import uuid
from typing import Any

import psycopg
from eventsourcing.application import Application
from eventsourcing.domain import Aggregate, event

from bench.pg import conninfo

COPY_ROWS = 200_000
TOPIC = "bench.Baseline.SomethingHappened-v000001"  # 40 characters
ES_EVENTS_PER_CALL = 100


def copy_rows_per_s(dbname: str, rows: int = COPY_ROWS, seed: int = 1) -> float:
    """COPY (uuid, version, 40-char topic, 200-byte payload) into a table with a primary
    key on (uuid, version) and a unique index on a bigserial position."""
    assert len(TOPIC) == 40
    rnd = random.Random(seed)
    payload = bytes(rnd.getrandbits(8) for _ in range(200))
    ids = [uuid.UUID(int=rnd.getrandbits(128)) for _ in range(rows // 10)]
    with psycopg.connect(conninfo(dbname), autocommit=True) as conn:
        conn.execute("DROP TABLE IF EXISTS bench_copy")
        conn.execute(
            "CREATE TABLE bench_copy (originator_id uuid NOT NULL, originator_version integer "
            "NOT NULL, topic text NOT NULL, state bytea NOT NULL, position bigserial, "
            "PRIMARY KEY (originator_id, originator_version))"
        )
        conn.execute("CREATE UNIQUE INDEX bench_copy_position ON bench_copy (position)")
        started = time.perf_counter()
        with (
            conn.transaction(),
            conn.cursor() as cur,
            cur.copy(
                "COPY bench_copy (originator_id, originator_version, topic, state) FROM STDIN"
            ) as copy,
        ):
            for i in range(rows):
                copy.write_row((ids[i % len(ids)], i // len(ids), TOPIC, payload))
        seconds = time.perf_counter() - started
        conn.execute("DROP TABLE bench_copy")
    return rows / seconds


class Thing(Aggregate):
    @event("Created")
    def __init__(self, name: str) -> None:
        self.name = name
        self.count = 0

    @event("Happened")
    def happen(self, n: int) -> None:
        self.count += n


def es_events_per_s(env: dict[str, str], calls: int) -> float:
    """``calls`` saves of 100 small events each (10 new aggregates of 10 events)."""
    app: Application[Any] = Application(env=env)
    try:
        started = time.perf_counter()
        events = 0
        for _ in range(calls):
            things = []
            for _ in range(10):
                thing = Thing("x")
                for n in range(9):
                    thing.happen(n)
                things.append(thing)
            events += sum(len(t.pending_events) for t in things)
            app.save(*things)
        return events / (time.perf_counter() - started)
    finally:
        app.close()


def pg_env(dbname: str) -> dict[str, str]:
    return {
        "PERSISTENCE_MODULE": "eventsourcing.postgres",
        "POSTGRES_DBNAME": dbname,
        "POSTGRES_HOST": "127.0.0.1",
        "POSTGRES_PORT": "5432",
        "POSTGRES_USER": "postgres",
        "POSTGRES_PASSWORD": "",
        "CREATE_TABLE": "y",
    }


def sqlite_env(path: str) -> dict[str, str]:
    return {"PERSISTENCE_MODULE": "eventsourcing.sqlite", "SQLITE_DBNAME": path}
