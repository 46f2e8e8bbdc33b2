"""Audit and investigation on SQLite and PostgreSQL: the chain and ``siyu verify`` against
real tampering (SQL on the events table and on a view), the feed, time travel, digests,
replay as of a time and diff, the access log, and the auditor's read-only role."""

from __future__ import annotations

import base64
import json
import re
import sqlite3
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from projections.database import parse_database_url
from projections.store import Store
from tests.e2e.client import Api, dealer, running_api
from tests.e2e.flows import Channel, build_channel, consumer, outer
from tests.e2e.test_cli import CLEAN_EXIT, bearer, cli_env, run_cli, serving

PHONE = "13912345678"
SCAN_LAT, SCAN_LNG = 31.2222, 121.4581  # a consumer's exact location: personal
CHECKPOINT_EVERY = 10


@contextmanager
def audited_api(database_url: str) -> Iterator[Api]:
    with running_api(database_url, audit_checkpoint_every=CHECKPOINT_EVERY) as api:
        yield api


def populate(api: Api) -> tuple[Channel, datetime]:
    """A realistic log: channel, codes, logistics, scans with a phone and a location."""
    ch = build_channel(api, units=4, cases=1)
    codes = [outer(ch, i) for i in range(len(ch.units))]
    assert ch.move("factory", "commission", codes + ch.cases).status_code == 200
    time.sleep(0.01)
    before_shipping = datetime.now(tz=UTC)
    time.sleep(0.01)
    unit, case = codes[3], ch.cases[0]
    assert ch.move("factory", "pack", codes[:3], parent=case).status_code == 200
    for who, action, extra in [
        ("hq", "ship", {"to": "D-SH"}),
        ("D-SH", "receive", {}),
        ("D-SH", "ship", {"to": "S-SH"}),
        ("S-SH", "receive", {}),
    ]:
        assert ch.move(who, action, [case, unit], **extra).status_code == 200
    body = {
        "scan_id": "scan-1",
        "code": consumer(ch, 3),
        "member": {"external_id": "m-1", "phone": PHONE},
        "location": {"lat": SCAN_LAT, "lng": SCAN_LNG},
    }
    response = api.post("/v1/scans", body, token=ch.tokens["gateway"])
    assert response.status_code == 200, response.text
    assert response.json()["outcome"] == "first_scan"
    settle(api)
    return ch, before_shipping


def settle(api: Api) -> None:
    assert api.store is not None
    api.store.engine.catch_up()


def verify_now(api: Api, token: str) -> dict[str, Any]:
    response = api.post("/v1/audit/verifications", {})
    assert response.status_code == 200, response.text
    got = api.get("/v1/audit/verify", token=token, fresh=False)
    assert got.status_code == 200, got.text
    return dict(got.json())


def cli_verify(database_url: str, cwd: Path) -> tuple[int, str]:
    done = run_cli(["verify"], cli_env(database_url), cwd)
    lines = done.stdout.strip().splitlines()
    assert lines, done.stderr
    return done.returncode, lines[-1]


# -- tampering: SQL straight on the events table and on a view ----------------------------


class Tamperer:
    def __init__(self, store: Store) -> None:
        self.database = parse_database_url(store.database.url)
        self.table = store.ledger.recorder.events_table_name  # type: ignore[attr-defined]
        self.sqlite = self.database.is_sqlite
        self.key = "rowid" if self.sqlite else "notification_id"

    @contextmanager
    def events(self) -> Iterator[Callable[..., list[tuple[Any, ...]]]]:
        if self.sqlite:
            assert self.database.sqlite_path is not None
            conn = sqlite3.connect(self.database.sqlite_path, timeout=30)
            try:
                yield lambda sql, *p: conn.execute(sql, p).fetchall()
                conn.commit()
            finally:
                conn.close()
            return
        import psycopg

        with psycopg.connect(self.database.psycopg_conninfo(), autocommit=False) as pg:
            yield lambda sql, *p: _pg_rows(pg.execute(sql.replace("?", "%s"), p))
            pg.commit()

    @contextmanager
    def views(self) -> Iterator[Callable[..., list[tuple[Any, ...]]]]:
        if self.sqlite:
            conn = sqlite3.connect(self.database.views_path, timeout=30)
            try:
                yield lambda sql, *p: conn.execute(sql, p).fetchall()
                conn.commit()
            finally:
                conn.close()
            return
        import psycopg

        with psycopg.connect(self.database.psycopg_conninfo(), autocommit=False) as pg:
            pg.execute(f'SET search_path TO "{self.database.views_schema}"')
            yield lambda sql, *p: _pg_rows(pg.execute(sql.replace("?", "%s"), p))
            pg.commit()

    def row(self, position: int) -> tuple[Any, ...]:
        with self.events() as sql:
            rows = sql(
                f"SELECT originator_id, originator_version, topic, state FROM {self.table} "
                f"WHERE {self.key} = ?",
                position,
            )
        assert rows, position
        return rows[0]

    def edit(self, position: int, old: bytes, new: bytes) -> Callable[[], None]:
        state = bytes(self.row(position)[3])
        assert old in state, state
        with self.events() as sql:
            sql(
                f"UPDATE {self.table} SET state = ? WHERE {self.key} = ?",
                state.replace(old, new),
                position,
            )

        def restore() -> None:
            with self.events() as sql:
                sql(f"UPDATE {self.table} SET state = ? WHERE {self.key} = ?", state, position)

        return restore

    def delete(self, position: int) -> Callable[[], None]:
        row = self.row(position)
        with self.events() as sql:
            sql(f"DELETE FROM {self.table} WHERE {self.key} = ?", position)

        def restore() -> None:
            with self.events() as sql:
                sql(
                    f"INSERT INTO {self.table} ({self.key}, originator_id, originator_version, "
                    "topic, state) VALUES (?, ?, ?, ?, ?)",
                    position,
                    *row,
                )

        return restore

    def swap(self, a: int, b: int) -> Callable[[], None]:
        def exchange() -> None:
            with self.events() as sql:
                sql(f"UPDATE {self.table} SET {self.key} = ? WHERE {self.key} = ?", -a, a)
                sql(f"UPDATE {self.table} SET {self.key} = ? WHERE {self.key} = ?", a, b)
                sql(f"UPDATE {self.table} SET {self.key} = ? WHERE {self.key} = ?", b, -a)

        exchange()
        return exchange

    def edit_view(self, code: str) -> tuple[int, Callable[[], None]]:
        with self.views() as sql:
            name, position = sql("SELECT name, position FROM partners WHERE code = ?", code)[0]
            sql("UPDATE partners SET name = ? WHERE code = ?", "forged name", code)

        def restore() -> None:
            with self.views() as sql:
                sql("UPDATE partners SET name = ? WHERE code = ?", name, code)

        return int(position), restore


def _pg_rows(cursor: Any) -> list[tuple[Any, ...]]:
    return list(cursor.fetchall()) if cursor.description else []


def position_of_topic(api: Api, topic: str, containing: str = "") -> int:
    after = 0
    while True:
        page = api.get(
            "/v1/events", fresh=False, after=after, limit=1000, min_position=api.head()
        ).json()
        for item in page["items"]:
            if item["type"] == topic and containing in json.dumps(item["data"]):
                return int(item["position"])
        if page["next"] is None:
            raise AssertionError(f"no {topic} event")
        after = page["next"]


# -- the tests ------------------------------------------------------------------------------


def test_tampering_is_detected_and_named_by_cli_and_endpoint(
    database_url: str, tmp_path: Path
) -> None:
    with audited_api(database_url) as api:
        ch, _ = populate(api)
        auditor = ch.tokens["auditor"]
        assert api.store is not None
        head = api.store.head
        honest = verify_now(api, auditor)
        assert honest["ok"] is True, honest
        assert honest["checked"] == head and honest["first_bad_position"] is None
        # every read model was rebuilt from zero and equals the live one, row for row
        assert any("rebuilt from zero" in note for note in honest["notes"]), honest
        assert cli_verify(database_url, tmp_path) == (0, "ok")

        tamper = Tamperer(api.store)
        registered = position_of_topic(api, "siyu.Partner.Registered", "D-BJ")
        middle = head // 2
        cases: list[tuple[str, Callable[[], tuple[int, Callable[[], None]]]]] = [
            ("edit", lambda: (registered, tamper.edit(registered, b"dealer D-BJ", b"dealer D-XX"))),
            ("delete", lambda: (middle, tamper.delete(middle))),
            ("swap", lambda: (middle, tamper.swap(middle, middle + 3))),
            ("view", lambda: tamper.edit_view("D-SH")),
        ]
        for label, make in cases:
            expected, restore = make()
            status = verify_now(api, auditor)
            assert status["ok"] is False, (label, status)
            assert status["first_bad_position"] == expected, (label, status)
            code, last = cli_verify(database_url, tmp_path)
            assert (code, last) == (1, f"first_bad_position={expected}"), label
            restore()
        assert verify_now(api, auditor)["ok"] is True
        # Edit again and keep it: a server started on this store still starts and reports it.
        tamper.edit(registered, b"dealer D-BJ", b"dealer D-XX")

    with audited_api(database_url) as api:
        deadline = time.monotonic() + 30
        status = {}
        while time.monotonic() < deadline:
            status = api.get("/v1/audit/verify", fresh=False).json()
            if status["at"] is not None and not status["running"]:
                break
            time.sleep(0.1)
        assert status["ok"] is False and status["first_bad_position"] == registered, status
        assert api.get("/health").status_code == 200


def test_a_deleted_event_is_named_not_the_row_it_had_updated(
    database_url: str, tmp_path: Path
) -> None:
    """The demo's order receipt deleted: its ``order_instructions`` row is rebuilt at the
    position of the update before it, smaller than the receipt's, and the CLI and the
    server both name the deleted position, where the log was tampered with."""
    env = cli_env(database_url)
    loaded = run_cli(["demo"], env, tmp_path)
    assert loaded.returncode == 0, loaded.stdout + loaded.stderr
    store = Store.open(database_url)
    try:
        tamper = Tamperer(store)
        with tamper.events() as sql:
            found = sql(
                f"SELECT {tamper.key} FROM {tamper.table} WHERE topic = ?",
                "siyu.Order.ReceiptRecorded",
            )
        assert found, "the demo records an order's receipt"
        receipt = int(found[0][0])
        assert receipt < store.head, "an event in the middle of the log"
        tamper.delete(receipt)
    finally:
        store.close()

    done = run_cli(["verify"], env, tmp_path)
    lines = done.stdout.strip().splitlines()
    assert (done.returncode, lines[-1]) == (1, f"first_bad_position={receipt}"), done.stdout
    assert f"chain at position {receipt}: a chained event is missing" in done.stdout
    # the consequence in the read models shows at a smaller position, and is still listed
    shown = [int(p) for p in re.findall(r"^view at position (\d+): order_instructions",
                                        done.stdout, re.M)]  # fmt: skip
    assert shown and min(shown) < receipt, done.stdout

    with serving(database_url, tmp_path) as (_server, base):
        deadline = time.monotonic() + 60
        status: dict[str, Any] = {}
        while time.monotonic() < deadline:
            status = httpx.get(f"{base}/v1/audit/verify", headers=bearer(), timeout=30).json()
            if status["at"] is not None and not status["running"]:
                break
            time.sleep(0.2)
        assert status["ok"] is False and status["first_bad_position"] == receipt, status


def test_feed_time_travel_digest_and_access_log(database_url: str, tmp_path: Path) -> None:
    with audited_api(database_url) as api:
        ch, before_shipping = populate(api)
        auditor = ch.tokens["auditor"]
        items = check_feed(api, ch)
        then = check_time_travel(api, ch, before_shipping)
        check_digest(api, ch, items)
        check_access_log(api, ch)
        assert api.get("/v1/events", token=ch.tokens["D-SH"]).status_code == 403
        assert api.get("/v1/events", token=auditor, limit=0).status_code == 400
        settle(api)

    # replay as of a time into a side store, and diff it against the live views
    env = cli_env(database_url)
    full = run_cli(["replay"], env, tmp_path)
    assert full.returncode == 0, full.stdout + full.stderr
    same = run_cli(["diff"], env, tmp_path)
    assert same.returncode == 0, same.stdout + same.stderr
    assert same.stdout.strip().splitlines()[-1] == "equal"
    earlier = run_cli(["replay", "--until", before_shipping.isoformat()], env, tmp_path)
    assert earlier.returncode == 0, earlier.stdout + earlier.stderr
    assert f"up to position {then['as_of_position']}" in earlier.stdout
    different = run_cli(["diff", "--projection", "trace"], env, tmp_path)
    assert different.returncode == 1, different.stdout + different.stderr
    assert "trace_codes: DIFFERENT" in different.stdout


def check_feed(api: Api, ch: Channel) -> list[dict[str, Any]]:
    """The feed pages by position and never shows personal data in clear."""
    assert api.store is not None
    head = api.store.head
    items: list[dict[str, Any]] = []
    after = 0
    while True:  # the feed serves what the chain has hashed: wait for it to reach the head
        response = api.get(
            "/v1/events",
            token=ch.tokens["auditor"],
            fresh=False,
            after=after,
            limit=7,
            min_position=head,
        )
        assert response.status_code == 200, response.text
        page = response.json()
        assert len(page["items"]) <= 7
        items += page["items"]
        if page["next"] is None:
            break
        after = page["next"]
    assert [i["position"] for i in items] == sorted({i["position"] for i in items})
    assert items[-1]["position"] == head and len(items) == head
    assert all(re.fullmatch(r"[0-9a-f]{64}", i["hash"]) for i in items)
    assert {"position", "aggregate_id", "version", "type", "at", "data", "hash"} <= set(items[0])
    text = json.dumps(items)
    for secret in (PHONE, PHONE[-4:] + '"', str(SCAN_LAT), str(SCAN_LNG), "enc1:"):
        assert secret not in text, secret
    joined = next(i for i in items if i["type"] == "siyu.Member.Joined")
    assert joined["data"]["phone"] == "[personal]"
    scanned = next(i for i in items if i["type"] == "siyu.Unit.Scanned")
    assert scanned["data"]["lat"] == "[personal]" and scanned["data"]["lng"] == "[personal]"
    return items


def check_time_travel(api: Api, ch: Channel, before_shipping: datetime) -> dict[str, Any]:
    """A unit then and now, by version and by time; a member, masked; a stream."""
    auditor = ch.tokens["auditor"]
    code = outer(ch, 3)
    now = api.get(f"/v1/aggregates/Unit/{code}", token=auditor)
    assert now.status_code == 200, now.text
    assert now.json()["state"]["owner"] == "S-SH"
    assert now.json()["state"]["last_fix"] is None  # built from redacted coordinates
    first = api.get(f"/v1/aggregates/Unit/{code}", token=auditor, version=1).json()
    assert first["version"] == 1 and first["state"]["owner"] == "HQ"
    then: dict[str, Any] = api.get(
        f"/v1/aggregates/Unit/{code}", token=auditor, as_of=before_shipping.isoformat()
    ).json()
    assert then["state"]["owner"] == "HQ" and then["state"]["state"] == "in_stock", then
    assert then["as_of_position"] < now.json()["position"]
    member = api.get("/v1/aggregates/Member/m-1", token=auditor).json()
    assert member["state"]["phone"] == "[personal]" and PHONE not in json.dumps(member)
    stream = api.get(f"/v1/aggregates/Unit/{code}/events", token=auditor).json()
    assert [e["version"] for e in stream["items"]] == list(range(1, len(stream["items"]) + 1))
    assert stream["items"][-1]["position"] == now.json()["position"]
    assert api.get(f"/v1/aggregates/Case/{code}", token=auditor).status_code == 404
    assert api.get("/v1/aggregates/Unit/nope", token=auditor).status_code == 404
    assert api.get(f"/v1/aggregates/Unit/{code}", token=ch.tokens["S-SH"]).status_code == 403
    bad_time = api.get(f"/v1/aggregates/Unit/{code}", token=auditor, as_of="yesterday")
    assert bad_time.status_code in (400, 422), bad_time.text
    return then


def check_digest(api: Api, ch: Channel, items: list[dict[str, Any]]) -> None:
    """An auditor checks the latest digest's signature outside the system."""
    auditor = ch.tokens["auditor"]
    key = api.get("/v1/audit/public-key", token=auditor).json()
    public = Ed25519PublicKey.from_public_bytes(base64.b64decode(key["public_key"]))
    digest = api.get("/v1/audit/digest", token=auditor, head="true").json()
    assert digest["position"] == items[-1]["position"] and digest["key_id"] == key["key_id"]
    message = "\n".join(
        [
            "siyu-ledger/chain-checkpoint/v1",
            str(digest["position"]),
            str(digest["seq"]),
            digest["hash"],
            digest["signed_at"],
        ]
    )
    public.verify(base64.b64decode(digest["signature"]), message.encode())
    assert digest["hash"] == items[-1]["hash"]
    assert api.get("/v1/audit/digest", token=ch.tokens["D-SH"]).status_code == 403


def check_access_log(api: Api, ch: Channel) -> None:
    """Reads of partner and member data by an auditor are logged, and queryable."""
    auditor = ch.tokens["auditor"]
    assert api.get("/v1/partners/D-SH", token=auditor).status_code == 200
    reads = api.get("/v1/audit/reads", token=auditor, role="auditor", limit=1000).json()
    paths = [(r["path"], r["partner"], r["status"]) for r in reads["items"]]
    assert ("/v1/partners/D-SH", "HQ", 200) in paths
    assert ("/v1/aggregates/Member/m-1", "HQ", 200) in paths
    assert any(p == "/v1/events" for p, _, _ in paths)
    assert all(r["at"] and r["role"] == "auditor" and r["token_id"] for r in reads["items"])
    assert api.get("/v1/audit/reads", token=ch.tokens["D-SH"]).status_code == 403
    before = len(reads["items"])
    assert api.get("/v1/partners/D-SH", token=ch.tokens["D-SH"]).status_code == 200
    again = api.get("/v1/audit/reads", token=auditor, role="auditor", limit=1000).json()
    assert len(again["items"]) == before  # a dealer's read is not an HQ or auditor read


def test_the_auditor_is_read_only_everywhere(database_url: str) -> None:
    with audited_api(database_url) as api:
        auditor = api.token("HQ", "auditor")
        head = api.head()
        routes = [
            (path, method)
            for route in api.http.app.routes
            for method in getattr(route, "methods", ())
            if method in {"POST", "PUT", "PATCH", "DELETE"}
            for path in [route.path]
        ]
        assert len(routes) >= 5
        for path, method in routes:
            concrete = re.sub(r"\{[^}:]+:uuid\}", str(uuid.uuid4()), path)
            concrete = re.sub(r"\{[^}:]+:int\}", "1", concrete)
            concrete = re.sub(r"\{[^}]+\}", "X", concrete)
            response = api.http.request(
                method, concrete, json={}, headers={"Authorization": f"Bearer {auditor}"}
            )
            # An empty body fails most routes' validation, which comes first (API.md);
            # what passes it is refused as read-only.
            assert response.status_code in (400, 403), (method, path, response.text)
            if response.status_code == 403:
                assert response.json()["code"] == "read_only", (method, path, response.text)
        assert api.head() == head, "an auditor writes nothing"
        assert api.get("/v1/partners/HQ", token=auditor).status_code == 200


VALID_WRITES = [
    (
        "/v1/products",
        {"sku": "RO-1", "gtin": "06901234567892", "name": "x", "price": 1, "points_per_scan": 1},
    ),
    (
        "/v1/partners",
        {"code": "RO-D", "kind": "dealer", "parent": "HQ", "name": "x", "region_codes": ["31"]},
    ),
    ("/v1/code-batches", {"batch_id": "RO-B", "sku": "RO-1", "count": 1, "level": "unit"}),
    (
        "/v1/orders",
        {
            "order_id": "RO-O",
            "member": "ro-m",
            "fulfilment": "pickup",
            "lines": [{"sku": "RO-1", "qty": 1, "unit_price": 100}],
            "location": {"lat": 31.2, "lng": 121.5},
        },
    ),
    ("/v1/tokens", {"partner": "HQ", "role": "hq"}),
]


def test_the_body_is_validated_before_permission_for_every_role(database_url: str) -> None:
    """API.md: the body first (400/422), then permission (403), the auditor included."""
    with audited_api(database_url) as api:
        auditor = api.token("HQ", "auditor")
        factory = api.token("HQ", "factory")
        gateway = api.token("HQ", "gateway")
        head = api.head()
        for path, body in VALID_WRITES:
            refused = api.post(path, body, token=auditor)
            assert refused.status_code == 403, (path, refused.text)
            assert refused.json()["code"] == "read_only", (path, refused.text)
            malformed = api.post_raw(path, b'{"bad', token=auditor)
            assert malformed.status_code == 400, (path, malformed.text)
            assert malformed.json()["code"] == "malformed_request", (path, malformed.text)
        bad_gtin = {**VALID_WRITES[0][1], "gtin": "06901234567890"}  # wrong check digit
        bad_policy = {
            "policy_id": "RO-P",
            "fulfilment": "pickup",
            "rates_bp": {"store": 9000, "distributor": 500},  # 9,500, not 10,000
            "rates_bp_without_distributor": {"store": 10000},
            "remainder_to": "store",
            "return_window_days": 7,
            "effective_from": "2026-01-01T00:00:00+08:00",
        }
        bad_batch = {"batch_id": "has space", "sku": "RO-1", "count": 1, "level": "unit"}
        bad_forget = {"request_id": "RO-F", "reason": "called on 13812345678"}
        # The body's own rules (a check digit, a policy's sum, a reason without digits) come
        # before a role's permission; the auditor, whom no write is open to, is refused once
        # the body is well-formed, before them (see api/deps.py, Caller).
        for token in (factory,):
            for path, body in [
                ("/v1/products", bad_gtin),
                ("/v1/split-policies", bad_policy),
                ("/v1/members/00000000-0000-0000-0000-000000000000/forget", bad_forget),
            ]:
                answer = api.post(path, body, token=token)
                assert answer.status_code == 422, (path, answer.text)
                assert answer.json()["code"] == "validation_failed", (path, answer.text)
        answer = api.post("/v1/code-batches", bad_batch, token=gateway)
        assert answer.status_code == 422, answer.text
        assert api.post("/v1/products", bad_gtin, token=auditor).json()["code"] == "read_only"
        assert api.head() == head, "nothing was written"


def test_concurrent_logged_reads_are_each_logged_once_also_across_a_stop(
    database_url: str, tmp_path: Path
) -> None:
    """Access-log rows are written behind the answers, in batches: none is lost or doubled
    under concurrency, and those still queued at SIGTERM are written before the exit."""
    reads = 40
    path = "/v1/partners/HQ"

    def logged(base: str) -> int:
        answer = httpx.get(
            f"{base}/v1/audit/reads", params={"limit": 1000}, headers=bearer(), timeout=30
        )
        assert answer.status_code == 200, answer.text
        return sum(1 for r in answer.json()["items"] if r["path"] == path)

    def read(base: str) -> int:
        return httpx.get(f"{base}{path}", headers=bearer(), timeout=30).status_code

    with serving(database_url, tmp_path) as (_server, base):
        with ThreadPoolExecutor(8) as pool:
            assert set(pool.map(read, [base] * reads)) == {200}
        assert logged(base) == reads
    with serving(database_url, tmp_path) as (server, base):
        with ThreadPoolExecutor(8) as pool:
            assert set(pool.map(read, [base] * reads)) == {200}
        assert server.stop() in CLEAN_EXIT  # at once: rows may still be queued
    with serving(database_url, tmp_path) as (_server, base):
        assert logged(base) == 2 * reads


def test_a_server_told_not_to_verify_at_start_waits_one_interval(database_url: str) -> None:
    """``SIYU_AUDIT_VERIFY_AT_START=0``: no run at start (``ok`` stays null), HQ can still
    ask for one, and the periodic run comes one interval after the start."""
    with running_api(database_url, audit_verify_at_start=False) as api:
        populate(api)
        time.sleep(1.5)  # a run at start would have begun (and finished) by now
        status = api.get("/v1/audit/verify", fresh=False).json()
        assert (status["ok"], status["at"], status["running"]) == (None, None, False), status
        assert verify_now(api, api.token("HQ", "auditor"))["ok"] is True
    with running_api(database_url, audit_verify_at_start=False, audit_verify_interval_s=1.0) as api:
        deadline = time.monotonic() + 30
        status = api.get("/v1/audit/verify", fresh=False).json()
        assert status["at"] is None, status
        while time.monotonic() < deadline and (status["at"] is None or status["running"]):
            time.sleep(0.1)
            status = api.get("/v1/audit/verify", fresh=False).json()
        assert status["ok"] is True and status["checked"] == api.head(), status


HASH = re.compile(r"[0-9a-f]{64}")


def feed(api: Api, token: str, **params: Any) -> httpx.Response:
    return api.get("/v1/events", token=token, fresh=False, **params)


def test_the_feed_serves_each_event_once_with_its_hash_and_waits_for_the_chain(
    database_url: str,
) -> None:
    """The feed reads the log but takes each hash from the chain read model, which trails
    it: the page ends at the chain's head (never a null hash), and ``min_position`` waits
    for the chain (at most 5 s, then 503). The engine is not started here, so the chain
    moves only when the test says so."""
    with running_api(database_url, projections_inline=False) as api:
        assert api.store is not None
        engine = api.store.engine
        engine.catch_up()
        auditor = api.token("HQ", "auditor")
        written = [api.post("/v1/partners", dealer(f"D{i}")) for i in range(6)]
        assert {r.status_code for r in written} == {201}
        positions = [r.json()["position"] for r in written]
        p = positions[0]

        # not chained yet: nothing served after p - 1, and a wait for p times out
        page = feed(api, auditor, after=p - 1, limit=10).json()
        assert page == {"items": [], "next": None}
        started = time.monotonic()
        late = feed(api, auditor, after=p - 1, limit=10, min_position=p)
        assert late.status_code == 503, late.text
        assert late.headers["content-type"].startswith("application/problem+json")
        assert late.json()["code"] == "not_caught_up"
        assert time.monotonic() - started >= 4.5

        # the chain catches up to p while a read for p waits: it answers then
        with ThreadPoolExecutor(1) as pool:
            chaining = pool.submit(lambda: (time.sleep(0.5), engine.catch_up(until=p)))
            waited = feed(api, auditor, after=p - 1, limit=10, min_position=p)
            chaining.result()
        assert waited.status_code == 200, waited.text
        items = waited.json()["items"]
        assert [i["position"] for i in items] == [p], "the page ends at the chain's head"
        assert HASH.fullmatch(items[0]["hash"])
        assert waited.json()["next"] == p, "the log holds more: go on from p"

        # a client polling from p sees every later event once, with its hash
        seen = [p]
        after = p
        engine.catch_up(until=positions[3])
        for _ in range(10):
            page = feed(api, auditor, after=after, limit=2).json()
            assert all(HASH.fullmatch(i["hash"] or "") for i in page["items"]), page
            seen += [i["position"] for i in page["items"]]
            after = seen[-1]
            if page["next"] is None:
                if after == positions[3]:
                    engine.catch_up()  # the rest is chained now
                elif after == api.head():
                    break
        assert seen == list(range(p, api.head() + 1))
        assert feed(api, auditor, after=0, limit=1000, min_position=api.head()).status_code == 200


def test_an_aggregates_stream_ends_at_the_chains_head(database_url: str) -> None:
    """As the feed: an event the chain has not hashed yet is not served (never with a null
    hash); ``next`` says the stream holds more. The engine is not started here."""
    with running_api(database_url, projections_inline=False) as api:
        assert api.store is not None
        engine = api.store.engine
        engine.catch_up()
        auditor = api.token("HQ", "auditor")
        engine.catch_up()
        assert api.post("/v1/partners", dealer("D0")).status_code == 201
        changes = [("suspension", {"change_id": "s1", "reason": "audit"})]
        changes.append(("reactivation", {"change_id": "r1"}))
        positions = []
        for path, body in changes:
            response = api.post(f"/v1/partners/D0/{path}", body)
            assert response.status_code == 200, response.text
            positions.append(response.json()["position"])

        def stream(**params: Any) -> dict[str, Any]:
            answer = api.get(
                "/v1/aggregates/Partner/D0/events", token=auditor, fresh=False, **params
            )
            assert answer.status_code == 200, answer.text
            return dict(answer.json())

        assert stream() == {"items": [], "next": None}  # nothing of it hashed yet
        engine.catch_up(until=positions[0])  # the registration and the suspension
        page = stream()
        assert [i["type"] for i in page["items"]] == [
            "siyu.Partner.Registered",
            "siyu.Partner.Suspended",
        ]
        assert all(HASH.fullmatch(i["hash"] or "") for i in page["items"]), page
        assert page["next"] is not None, "the stream holds more: go on"
        assert stream(cursor=page["next"]) == {"items": [], "next": None}
        engine.catch_up()
        rest = stream(cursor=page["next"])
        assert [i["type"] for i in rest["items"]] == ["siyu.Partner.Reactivated"]
        assert HASH.fullmatch(rest["items"][0]["hash"] or "") and rest["next"] is None


def test_a_feed_read_for_a_fresh_write_has_it_hashed(database_url: str) -> None:
    """The acceptance probe: a write, then the aggregate's stream and the feed from its
    position with min_position: every event hashed."""
    with running_api(database_url) as api:
        auditor = api.token("HQ", "auditor")
        for i in range(20):
            response = api.post("/v1/partners", dealer(f"D{i}"))
            assert response.status_code == 201, response.text
            p = response.json()["position"]
            stream = api.get(
                f"/v1/aggregates/Partner/D{i}/events", token=auditor, fresh=False, min_position=p
            )
            assert stream.status_code == 200, stream.text
            registered = stream.json()["items"]  # (p is its request's record, after it)
            assert len(registered) == 1 and registered[0]["position"] < p, registered
            assert HASH.fullmatch(registered[0]["hash"] or ""), registered
            page = feed(api, auditor, after=p - 1, limit=10, min_position=p)
            assert page.status_code == 200, page.text
            items = page.json()["items"]
            assert items and items[0]["position"] == p, items
            assert all(HASH.fullmatch(i["hash"] or "") for i in items), items
