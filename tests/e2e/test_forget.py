"""Crypto-shredding: after ``forget`` a member's personal data is unreadable everywhere,
while the log, the other members and every read model's replay stay as they were."""

from __future__ import annotations

import asyncio
import re
import sqlite3
import threading
import time
import uuid
from pathlib import Path
from typing import Any
from uuid import UUID

import msgspec
import pytest

from domain.carry_forward import state_of
from domain.members import Member
from domain.units import Unit
from projections import verify
from projections.event_feed import PERSONAL as FEED_PERSONAL
from projections.forgetting import every_personal, scrub_forgotten_since, side_builds
from projections.keyring import BLIND_INDEX_TABLE, KEYS_TABLE, normalise_for_index
from projections.members_view import PERSONAL
from projections.store import Store
from tests.e2e.client import Api, running_api
from tests.e2e.personal_flow import (
    ALICE,
    ALICE_PHONE,
    BOB,
    BOB_PHONE,
    LAT,
    SECRETS_IN_CLEAR,
    PersonalData,
    scan_as,
    with_personal_data,
)
from tests.e2e.test_cli import cli_env, run_cli

ALICE_SECRETS = (ALICE_PHONE, "138****5678", "31.230417", "121.473701")


def member(store: Store, member_id: str) -> Member:
    found = store.ledger.repository.get(UUID(member_id))
    assert isinstance(found, Member)
    return found


def scans_of(store: Store, member_id: str) -> list[Any]:
    events = []
    position = 0
    while batch := store.ledger.recorder.select_notifications(
        position, 500, inclusive_of_start=False
    ):
        position = batch[-1].id
        for n in batch:
            if n.topic == Unit.Scanned.TOPIC:
                event = store.ledger.mapper.to_domain_event(n)
                if event.member_id == member_id:
                    events.append(event)
    return events


def raw_key(store: Store, subject: str) -> bytes | None:
    sql = f"SELECT key FROM {KEYS_TABLE} WHERE subject = " + (
        "?" if store.database.is_sqlite else "%s"
    )
    with store.ledger.recorder.datastore.transaction(commit=False) as cur:  # type: ignore[attr-defined]
        cur.execute(sql, (subject,))
        row = cur.fetchone()
    if row is None:
        return None
    return bytes(row[0] if store.database.is_sqlite else row["key"])


def sqlite_files(store: Store) -> list[Path]:
    path = store.database.sqlite_path
    assert path is not None
    return [
        Path(str(p) + suffix)
        for p in (path, store.database.views_path)
        for suffix in ("", "-wal", "-journal")
        if Path(str(p) + suffix).exists()
    ]


def every_stored_row(store: Store, leave_out: frozenset[str] = frozenset()) -> str:
    """Every row of every table, events and views (both databases on SQLite), as text."""
    chunks: list[str] = []
    if store.database.is_sqlite:
        path = store.database.sqlite_path
        assert path is not None
        sides = [Path(p) for p in side_builds(store.database, PERSONAL)]
        for file in (path, store.database.views_path, *sides):
            if not file.exists():  # (a side build removed since it was listed)
                continue
            with sqlite3.connect(file) as conn:
                tables = conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
                for (table,) in tables.fetchall():
                    if table not in leave_out:
                        rows = conn.execute(f'SELECT * FROM "{table}"').fetchall()
                        chunks += [repr(r) for r in rows]
        return "\n".join(chunks)
    import psycopg

    with psycopg.connect(store.database.psycopg_conninfo(), autocommit=True) as conn:
        tables = conn.execute(
            "SELECT table_schema, table_name FROM information_schema.tables "
            "WHERE table_schema NOT IN ('pg_catalog', 'information_schema')"
        ).fetchall()
        for schema, table in tables:
            if table in leave_out:
                continue
            try:
                rows = conn.execute(f'SELECT t::text FROM "{schema}"."{table}" t').fetchall()
            except psycopg.errors.UndefinedTable:
                # dropped since listed: a background verification's working copy, whose
                # bytes are gone with it
                continue
            chunks += [row for (row,) in rows]
    return "\n".join(chunks)


def view_rows(store: Store) -> str:
    with store.views.read() as tx:
        texts = []
        for p in store.engine.projections:
            for table in p.tables:
                texts += [repr(r) for r in tx.fetchall(f"SELECT * FROM {table}")]
    return "\n".join(texts)


def arranged(api: Api) -> tuple[Store, PersonalData]:
    """The store behind ``api`` with Alice's and Bob's personal data, every view current."""
    store = api.store
    assert store is not None
    data = with_personal_data(api)
    store.engine.catch_up()
    return store, data


def side_target(store: Store, tmp_path: Path, label: str) -> str:
    """A new side build's target: a file in ``tmp_path`` (SQLite) or a schema."""
    if store.database.is_sqlite:
        return str(tmp_path / f"{label}.views.db")
    return f"views_{label}_{uuid.uuid4().hex[:8]}"


def rebuild(side: Store, until: int) -> None:
    side.views.drop_everything()
    side.engine.ensure_schema()
    side.engine.catch_up(until=until)


def replay_equals_live(store: Store, database_url: str, tmp_path: Path) -> None:
    store.engine.catch_up()
    side = Store.open(database_url, views_target=side_target(store, tmp_path, "side"))
    try:
        rebuild(side, store.head)
        assert side.engine.checksums() == store.engine.checksums()
    finally:
        side.close()


def forget(api: Api, data: PersonalData, who: str, request_id: str, token: str) -> Any:
    body = {"request_id": request_id, "reason": "the member asked (PIPL art. 47)"}
    return api.post(f"/v1/members/{data.members[who]}/forget", body, token=token)


def lookup(api: Api, phone: str, token: str) -> Any:
    return api.get("/v1/members", token=token, phone=phone)


def assert_nothing_readable_left(api: Api, alice: str, alice_key: bytes) -> None:
    # Views and every stored row, the access log's included (it keeps HQ's phone
    # lookups with the phone redacted): no clear personal data, no key, no index
    # entry. A verification running in
    # the background may have copied the views before they applied the forget (the
    # forget clears the copies it finds, not one made after it); the copy is dropped
    # when the run ends: what is left is read after it.
    store = api.store
    assert store is not None
    watch = api.http.app.state.audit.watch
    deadline = time.monotonic() + 120
    while watch.running and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not watch.running, "the background verification did not end"
    store.engine.catch_up()
    rows = view_rows(store)
    stored = every_stored_row(store)
    for secret in ALICE_SECRETS:
        assert secret not in rows
        assert secret not in stored
    assert raw_key(store, alice) is None
    assert alice_key.hex() not in stored and repr(alice_key) not in stored
    assert alice.encode() not in _blind_index_subjects(store)
    if store.database.is_sqlite:  # the key's bytes are gone from the files themselves
        for file in sqlite_files(store):
            assert alice_key not in file.read_bytes(), file


def alice_comes_back(data: PersonalData, store: Store, database_url: str, tmp_path: Path) -> None:
    # Alice comes back: the scan works, her new coordinates are sealed with a new
    # key and readable; what the old key sealed stays unreadable.
    alice = data.members[ALICE]
    assert scan_as(data.channel, 2, ALICE, ALICE_PHONE, "s-alice-2") == alice
    assert [s.lat for s in scans_of(store, alice)] == [None, LAT]
    fresh = Store.open(database_url)
    try:
        assert [s.lat for s in scans_of(fresh, alice)] == [None, LAT]
        assert member(fresh, alice).phone is None, "the member's phone is not re-recorded"
    finally:
        fresh.close()
    replay_equals_live(store, database_url, tmp_path)


def test_forget_makes_the_phone_unreadable_everywhere(database_url: str, tmp_path: Path) -> None:
    with running_api(database_url) as api:
        store = api.store
        assert store is not None
        data = with_personal_data(api)
        hq = data.channel.tokens["hq"]
        alice, bob = data.members[ALICE], data.members[BOB]

        found = lookup(api, "+86 138-1234-5678", hq)
        assert found.status_code == 200, found.text
        assert found.json()["items"] == [{"member_id": alice, "phone_masked": "138****5678"}]
        before = api.get(f"/v1/members/{ALICE}", token=hq).json()
        assert before["phone_masked"] == "138****5678"
        for role in ("gateway", "auditor", "D-SH"):
            assert lookup(api, ALICE_PHONE, data.channel.tokens[role]).status_code == 403

        # A second process on the same database has read (and cached) Alice's key.
        other = Store.open(database_url)
        try:
            other.keyring.cache_ttl_s = 0.3
            assert member(other, alice).phone == ALICE_PHONE
            alice_key = raw_key(store, alice)
            assert alice_key is not None

            assert (
                forget(api, data, ALICE, "f-1", data.channel.tokens["auditor"]).status_code == 403
            )
            unknown = api.post(
                f"/v1/members/{uuid.uuid4()}/forget", {"request_id": "f-0", "reason": "x"}, token=hq
            )
            assert unknown.status_code == 404 and unknown.json()["code"] == "unknown_member"
            leaky = api.post(
                f"/v1/members/{alice}/forget",
                {"request_id": "f-2", "reason": f"phone {ALICE_PHONE}"},
                token=hq,
            )
            assert leaky.status_code == 422 and leaky.json()["errors"][0]["field"] == "reason"

            done = forget(api, data, ALICE, "f-1", hq)
            assert done.status_code == 200, done.text
            assert done.json()["member_id"] == alice and done.json()["forgotten"] is True
            assert forget(api, data, ALICE, "f-1", hq).json() == done.json(), "a repeat"

            # API answers: the phone finds nobody; the member reads without it.
            assert lookup(api, ALICE_PHONE, hq).json()["items"] == []
            read = api.get(f"/v1/members/{ALICE}", token=hq)
            assert read.status_code == 200, read.text
            assert read.json()["phone_masked"] is None and read.json().get("phone") is None
            assert lookup(api, BOB_PHONE, hq).json()["items"][0]["member_id"] == bob
            forgotten = member(store, alice)
            assert forgotten.phone is None and forgotten.forgotten
            assert [(s.lat, s.lng) for s in scans_of(store, alice)] == [(None, None)]
            assert [s.lat for s in scans_of(store, bob)] == [LAT]

            # The other process notices within its cache's lifetime.
            time.sleep(0.4)
            assert member(other, alice).phone is None
            assert [s.lat for s in scans_of(other, alice)] == [None]
            assert member(other, bob).phone == BOB_PHONE
        finally:
            other.close()

        assert_nothing_readable_left(api, alice, alice_key)
        # HQ's lookups are in the access log, the phone redacted
        assert "phone=%5Bpersonal%5D" in every_stored_row(store)

        # The feed, where there is one, has nothing in clear either.
        feed = api.get("/v1/events", token=hq, after=0, limit=1000)
        if feed.status_code == 200:
            for secret in ALICE_SECRETS:
                assert secret not in feed.text

        # The log is untouched: replay of every read model equals the live views.
        replay_equals_live(store, database_url, tmp_path)

        alice_comes_back(data, store, database_url, tmp_path)


def _blind_index_subjects(store: Store) -> bytes:
    with store.ledger.recorder.datastore.transaction(commit=False) as cur:  # type: ignore[attr-defined]
        cur.execute(f"SELECT subject FROM {BLIND_INDEX_TABLE}")
        rows = cur.fetchall()
    return "\n".join(str(r[0] if store.database.is_sqlite else r["subject"]) for r in rows).encode()


def test_a_forget_during_a_verification_is_not_reported_as_tampering(
    database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The verification reads the live views, then rebuilds them from zero: a forget in
    between (the rebuild no longer reads the phone, the live views still show it) gives
    a difference that a second comparison no longer finds. On PostgreSQL the live views
    are copied into the side schema, and the forget clears the copy too: the first
    comparison already finds them equal, and no copy keeps the masked phone."""
    with running_api(database_url) as api:
        store, data = arranged(api)
        answers: list[int] = []
        copied: list[tuple[Any, Any]] = []  # Alice's masked phone in the copy: before, after
        this_test = threading.get_ident()  # (not the server's own verification thread)

        def forget_after_the_live_read(read_live: Any) -> Any:
            # SQLite reads the live build into the process (read_build), PostgreSQL copies
            # it into the side schema (copy_live_build): the forget follows either
            def wrapped(views: Any, *args: Any) -> Any:
                build = read_live(views, *args)
                if views is store.views and not answers and threading.get_ident() == this_test:
                    copy = f'"{args[0]}".live_copy__members' if not store.database.is_sqlite else ""
                    before = copy and masked_phone(store, copy, data.members[ALICE])
                    answer = forget(api, data, ALICE, "f-mid", data.channel.tokens["hq"])
                    answers.append(answer.status_code)
                    copied.append((before, copy and masked_phone(store, copy, data.members[ALICE])))
                    store.engine.catch_up()  # the live views scrubbed before the second look
                return build

            return wrapped

        for name in ("read_build", "copy_live_build"):
            monkeypatch.setattr(verify, name, forget_after_the_live_read(getattr(verify, name)))
        report = verify.Verifier(store, None).run()
        assert answers == [200]
        again = "differences found: the read models compared once more" in report.notes
        if store.database.is_sqlite:
            assert again, report.notes
        else:
            assert copied == [("138****5678", None)], copied
            assert not again, report.notes
        assert report.ok, report.as_dict()


def masked_phone(store: Store, table: str, member_id: str) -> Any:
    """A member's ``phone_masked`` in ``table`` of the live views' database (PostgreSQL)."""
    import psycopg

    with psycopg.connect(store.database.psycopg_conninfo(), autocommit=True) as conn:
        row = conn.execute(
            f"SELECT phone_masked FROM {table} WHERE member_id = %s", (member_id,)
        ).fetchone()
    assert row is not None, (table, member_id)
    return row[0]


def side_phones(store: Store, target: str) -> dict[str, Any]:
    """Every member's ``phone_masked`` in the side build ``target`` (a file or a schema)."""
    if store.database.is_sqlite:
        with sqlite3.connect(target) as conn:
            rows = conn.execute("SELECT member_id, phone_masked FROM members").fetchall()
        return dict(rows)
    import psycopg

    with psycopg.connect(store.database.psycopg_conninfo(), autocommit=True) as conn:
        rows = conn.execute(f'SELECT member_id, phone_masked FROM "{target}".members').fetchall()
    return dict(rows)


def test_a_forget_clears_a_replays_side_build_kept_from_before(
    database_url: str, tmp_path: Path
) -> None:
    """``siyu replay`` keeps its side build, built while Alice's key could still be read:
    the forget clears her masked phone there too (and only hers)."""
    with running_api(database_url) as api:
        store, data = arranged(api)
        replayed = run_cli(["replay"], cli_env(database_url), tmp_path)
        assert replayed.returncode == 0, replayed.stdout + replayed.stderr
        target = re.search(r"^rebuilt into (\S+) up to", replayed.stdout, re.M)
        assert target is not None, replayed.stdout
        side = target.group(1)
        assert side in side_builds(store.database, PERSONAL)
        alice, bob = data.members[ALICE], data.members[BOB]
        assert side_phones(store, side)[alice] == "138****5678", "kept from before the forget"

        assert forget(api, data, ALICE, "f-side", data.channel.tokens["hq"]).status_code == 200
        phones = side_phones(store, side)
        assert phones[alice] is None
        assert phones[bob] == "139****4321", "the others' rows stay as built"
        assert_nothing_readable_left(api, alice, b"(no key bytes to look for here)")


def test_a_replay_clears_members_forgotten_while_it_was_built(
    database_url: str, tmp_path: Path
) -> None:
    """A replay's process may still hold a member's key (cached) when the forget lands,
    and write her masked phone after the forget cleared the side builds: the replay
    clears the members forgotten after the position it was built to."""
    with running_api(database_url) as api:
        store, data = arranged(api)
        alice, bob = data.members[ALICE], data.members[BOB]
        target = side_target(store, tmp_path, "racing")
        side = Store.open(database_url, views_target=target)
        try:
            side.keyring.cache_ttl_s = 600.0
            assert member(side, alice).phone == ALICE_PHONE  # the replay's process has the key
            built_to = store.head
            assert forget(api, data, ALICE, "f-race", data.channel.tokens["hq"]).status_code == 200
            rebuild(side, built_to)  # written after the forget's clearing
            assert side_phones(store, target)[alice] == "138****5678", "the race is real"

            personal = every_personal()
            cleared = scrub_forgotten_since(
                store.ledger.recorder, store.database, personal, target, built_to
            )
            assert cleared == [alice]
            phones = side_phones(store, target)
            assert phones[alice] is None and phones[bob] == "139****4321"
            assert (
                scrub_forgotten_since(
                    store.ledger.recorder, store.database, personal, target, store.head
                )
                == []
            ), "none forgotten after the head"
        finally:
            side.views.drop_everything()
            side.close()
            if not store.database.is_sqlite:
                import psycopg

                with psycopg.connect(store.database.psycopg_conninfo(), autocommit=True) as c:
                    c.execute(f'DROP SCHEMA IF EXISTS "{target}" CASCADE')


def test_a_stored_verification_report_names_the_table_not_the_rows(database_url: str) -> None:
    with running_api(database_url) as api:
        store, data = arranged(api)
        with store.views.write() as tx:  # tampering with a read model, outside the engine
            tx.execute(
                "UPDATE members SET region_code = ? WHERE member_id = ?",
                ("TAMPERED", data.members[BOB]),
            )
        report = verify.Verifier(store, None).run()
        assert not report.ok
        details = [f.detail for f in report.findings if f.check == "view"]
        assert details and details[0].startswith("members: DIFFERENT (1 rows only in live")
        stored = str(report.as_dict())
        for secret in ("TAMPERED", "139****4321", BOB_PHONE):
            assert secret not in stored


def test_siyu_forget_on_the_command_line(database_url: str, tmp_path: Path) -> None:
    with running_api(database_url) as api:
        data = with_personal_data(api)
    env = cli_env(database_url)
    alice = data.members[ALICE]
    done = run_cli(["forget", alice, "--reason", "asked in store"], env, tmp_path)
    assert done.returncode == 0, done.stderr
    answer = msgspec.json.decode(done.stdout.strip().splitlines()[-1])
    assert answer["member_id"] == alice and answer["forgotten"] is True and answer["position"]
    unknown = run_cli(["forget", str(uuid.uuid4())], env, tmp_path)
    assert unknown.returncode == 1 and "unknown_member" in unknown.stdout
    # The events are untouched: the chain, the ledger and every view still verify.
    verified = run_cli(["verify"], env, tmp_path)
    assert verified.returncode == 0, verified.stdout + verified.stderr
    assert verified.stdout.strip().splitlines()[-1] == "ok"
    store = Store.open(database_url)
    try:
        assert member(store, alice).phone is None
        assert member(store, data.members[BOB]).phone == BOB_PHONE
    finally:
        store.close()


@pytest.mark.nats
def test_nats_messages_stay_unreadable_after_forget(database_url: str, nats_url: str) -> None:
    from projections.relay import Relay, RelayConfig
    from tests.e2e.test_relay import delete_stream, messages, unique

    stream, prefix = unique()
    config = RelayConfig(nats_url, stream=stream, subject_prefix=prefix)
    with running_api(database_url) as api:
        store = api.store
        assert store is not None
        data = with_personal_data(api)
        try:
            asyncio.run(Relay(store, config).run(once=True))
            done = forget(api, data, ALICE, "f-nats", data.channel.tokens["hq"])
            assert done.status_code == 200, done.text
            asyncio.run(Relay(store, config).run(once=True))
            found = messages(nats_url, stream)
            assert len(found) == store.head
            for m in found:
                for secret in SECRETS_IN_CLEAR:
                    assert secret not in m.data.decode()
            gone = [m for m in found if m.subject == f"{prefix}.member.forgotten"]
            assert len(gone) == 1
            assert set(msgspec.json.decode(gone[0].data)["data"]) == {"reason", "by"}
            # Consumers never got the phone, not even as ciphertext to keep.
            joined = [msgspec.json.decode(m.data)["data"] for m in found if "joined" in m.subject]
            assert [d["phone"] for d in joined] == [FEED_PERSONAL, FEED_PERSONAL]
        finally:
            delete_stream(nats_url, stream)


def test_blind_index_normalises_phones() -> None:
    assert normalise_for_index("+86 138-1234-5678") == "13812345678"
    assert normalise_for_index("008613812345678") == "13812345678"
    assert normalise_for_index("8612345") == "8612345"


def test_no_clear_phone_in_any_byte_of_the_sqlite_files(sqlite_url: str) -> None:
    with running_api(sqlite_url) as api:
        store = api.store
        assert store is not None
        data = with_personal_data(api)
        hq = data.channel.tokens["hq"]
        assert lookup(api, ALICE_PHONE, hq).status_code == 200
        assert forget(api, data, ALICE, "f-raw", hq).status_code == 200
        store.engine.catch_up()
        stored = b"".join(f.read_bytes() for f in sqlite_files(store))
        for secret in ALICE_SECRETS:
            assert secret.encode() not in stored, secret


def test_a_members_state_carried_forward_is_shredded_with_the_rest(database_url: str) -> None:
    """A long-lived member is read from its state carried forward, whose phone is under
    the member's key like every other copy: forgetting the member shreds it too, and
    the restatement still matches the history it restates (both read no phone)."""
    with running_api(database_url) as api:
        store = api.store
        assert store is not None
        data = with_personal_data(api)
        hq = data.channel.tokens["hq"]
        alice = data.members[ALICE]
        for i in range(Member.CARRY_FORWARD_EVERY):
            grant = {"adjustment_id": f"a-{i}", "points": 5, "reason": "goodwill"}
            assert api.post(f"/v1/members/{ALICE}/adjustments", grant, token=hq).status_code == 201
        stream = store.ledger.recorder.select_events(UUID(alice))
        carried = [e for e in stream if e.topic == Member.CarriedForward.TOPIC]
        assert len(carried) == 1, [e.topic for e in stream]
        assert ALICE_PHONE.encode() not in carried[0].state, "the phone under Alice's key"
        select_many = store.ledger.select_many
        assert select_many is not None
        assert select_many([UUID(alice)])[UUID(alice)][0].topic == Member.CarriedForward.TOPIC
        loaded = store.ledger.load_many([UUID(alice)])[UUID(alice)]
        assert isinstance(loaded, Member) and loaded.phone == ALICE_PHONE
        assert state_of(loaded) == state_of(member(store, alice))
        points = api.get(f"/v1/members/{ALICE}", token=hq).json()["points"]
        # time travel replays every event, the restatement checked on the way
        now = api.get(f"/v1/aggregates/Member/{alice}", token=hq)
        assert now.status_code == 200, now.text
        assert now.json()["version"] == len(stream) and now.json()["state"]["points"] == points
        alice_key = raw_key(store, alice)
        assert alice_key is not None

        assert forget(api, data, ALICE, "f-1", hq).status_code == 200
        read = api.get(f"/v1/members/{ALICE}", token=hq).json()
        assert read["phone_masked"] is None and read["points"] == points
        loaded = store.ledger.load_many([UUID(alice)])[UUID(alice)]
        assert isinstance(loaded, Member) and loaded.phone is None and loaded.forgotten
        assert state_of(loaded) == state_of(member(store, alice))
        assert_nothing_readable_left(api, alice, alice_key)
        report = verify.Verifier(store, None).run(views=False)
        assert report.ok, report.as_dict()
        assert any("states carried forward" in note for note in report.notes)


def test_siyu_replay_clears_a_member_forgotten_while_it_built(
    database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: Any
) -> None:
    """The command's own clearing, after its comparison: Alice is forgotten once the
    build is made, and her masked phone is written there after the forget's clearing
    (as a process still holding her key would): the replay leaves it cleared."""
    from api import cli

    with running_api(database_url) as api:
        store, data = arranged(api)
        alice, bob = data.members[ALICE], data.members[BOB]
        compare = cli._compare
        written_late: list[str] = []

        def forget_then_compare(live: Any, side: Store, names: Any, target: str) -> int:
            assert forget(api, data, ALICE, "f-cli", data.channel.tokens["hq"]).status_code == 200
            with side.views.write() as tx:  # the late write of a cached key
                tx.execute(
                    "UPDATE members SET phone_masked = ? WHERE member_id = ?",
                    ("138****5678", alice),
                )
            written_late.append(side_phones(store, target)[alice])
            return compare(live, side, names, target)

        monkeypatch.setattr(cli, "_compare", forget_then_compare)
        monkeypatch.setenv("SIYU_DATABASE_URL", database_url)
        cli.main(["replay"])
        target = re.search(r"^rebuilt into (\S+) up to", capsys.readouterr().out, re.M)
        assert target is not None
        assert written_late == ["138****5678"]
        phones = side_phones(store, target.group(1))
        assert phones[alice] is None and phones[bob] == "139****4321"
