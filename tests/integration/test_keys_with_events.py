"""A new member's key and blind-index rows are written in the transaction of the events
they sealed (one commit per command, not three), on both stores: present when the
events are, absent when the events' insert fails, and a command that raced another
process for the same new member is decided again with the key that was stored."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any
from uuid import UUID, uuid4

import psycopg
import pytest
from eventsourcing.persistence import IntegrityError

from domain.handlers.members import member_uuid
from domain.ledger import RequestKey, UnitOfWork
from domain.members import Member
from projections.keyring import BLIND_INDEX_TABLE, KEYS_TABLE
from projections.store import Store, events_with_keys_statement

PHONE = "13812345678"


def _rows(store: Store, table: str, subject: str) -> int:
    p = "?" if store.database.is_sqlite else "%s"
    datastore: Any = store.ledger.recorder.datastore  # type: ignore[attr-defined]
    with datastore.transaction(commit=True) as cur:
        cur.execute(f"SELECT count(*) AS n FROM {table} WHERE subject = {p}", (subject,))
        row = cur.fetchone()
    return int(row[0] if store.database.is_sqlite else row["n"])


def _join(store: Store, external_id: str, request: str) -> Any:
    """A command that makes a member with a phone (a new subject: a new key)."""
    key = RequestKey("test", "join", request, {"member": external_id})

    def decide(uow: UnitOfWork) -> dict[str, Any]:
        uid = member_uuid(uow, external_id)
        member = uow.find(Member, uid)
        if member is None:
            uow.add(Member.join(uid, "test", None, PHONE, "test", uow.now))
        return {"member_id": str(uid)}

    return store.ledger.execute(key, decide)


def _phone_as_stored(database_url: str, member: UUID) -> str | None:
    fresh = Store.open(database_url)  # another process: no cached key
    try:
        found = fresh.ledger.repository.get(member)
        return str(found.phone) if found.phone is not None else None
    finally:
        fresh.close()


def test_a_new_members_key_is_stored_with_its_events(store: Store, database_url: str) -> None:
    done = _join(store, "ext-1", "r-1")
    subject = done.answer["member_id"]
    assert _rows(store, KEYS_TABLE, subject) == 1
    assert _rows(store, BLIND_INDEX_TABLE, subject) == 1
    assert store.keyring.lookup("phone", PHONE) == [subject]
    assert _phone_as_stored(database_url, UUID(subject)) == PHONE
    assert _join(store, "ext-1", "r-1").repeated  # the repeat writes nothing more
    assert _rows(store, KEYS_TABLE, subject) == 1


def test_no_key_outlives_a_failed_insert(store: Store) -> None:
    ledger = store.ledger
    uid = uuid4()
    first = Member.join(uid, "test", None, PHONE, "test", ledger.clock())
    ledger.save(first)  # committed outside a sealing: its key is stored at once
    assert _rows(store, KEYS_TABLE, str(uid)) == 1

    other = uuid4()
    clash = Member.join(other, "test", None, "13999999999", "test", ledger.clock())
    event = clash.collect_events()[0]
    with store.keyring.sealing() as sealing:
        stored = ledger.mapper.to_stored_event(event)
    assert [sql.split()[2] for sql, _ in sealing.writes] == [KEYS_TABLE, BLIND_INDEX_TABLE]
    assert _rows(store, KEYS_TABLE, str(other)) == 0, "nothing written before the events"

    again = Member.join(uid, "test", None, PHONE, "test", ledger.clock()).collect_events()[0]
    conflicting = ledger.mapper.to_stored_event(again)  # version 1 of `first`, again
    with pytest.raises(IntegrityError):
        ledger.insert([stored, conflicting], sealing.writes)
    assert _rows(store, KEYS_TABLE, str(other)) == 0
    assert _rows(store, BLIND_INDEX_TABLE, str(other)) == 0

    ledger.insert([stored], sealing.writes)
    sealing.committed()
    assert _rows(store, KEYS_TABLE, str(other)) == 1
    assert _rows(store, BLIND_INDEX_TABLE, str(other)) == 1


def test_a_command_racing_another_process_is_decided_again(store: Store, database_url: str) -> None:
    other = Store.open(database_url)  # a second API process on the same database
    try:
        put = store.ledger.insert
        raced: list[Any] = []

        def other_process_first(events: Sequence[Any], writes: Sequence[Any]) -> Any:
            if not raced:  # after this command sealed with a key of its own
                assert any("siyu_member_keys" in sql for sql, _ in writes)
                raced.append(_join(other, "ext-race", "r-other"))
            return put(events, writes)

        store.ledger.committer._put = other_process_first
        mine = _join(store, "ext-race", "r-mine")
    finally:
        other.close()
    subject = mine.answer["member_id"]
    assert raced and raced[0].answer["member_id"] == subject
    assert _rows(store, KEYS_TABLE, subject) == 1, "one key: the other process's"
    assert _phone_as_stored(database_url, UUID(subject)) == PHONE


def _key_looks(store: Store, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The subjects whose key the store's keyring looks up by a statement of its own,
    from now on (the real look-up still runs)."""
    looked: list[str] = []
    look = store.keyring._stored_key

    def counted(subject: str) -> bytes | None:
        looked.append(subject)
        return look(subject)

    monkeypatch.setattr(store.keyring, "_stored_key", counted)
    return looked


def test_a_new_member_costs_no_look_for_a_key(
    store: Store, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The ledger tells the sealing which subjects its events create: on a command's
    first attempt their keys are made without a statement looking for one."""
    looked = _key_looks(store, monkeypatch)
    subject = _join(store, "ext-new", "r-new").answer["member_id"]
    assert looked == []
    assert _rows(store, KEYS_TABLE, subject) == 1
    assert _phone_as_stored(database_url, UUID(subject)) == PHONE


def test_a_key_stored_before_its_member_is_found_on_the_retry(
    store: Store, database_url: str
) -> None:
    """A key committed outside a sealing by a save that then failed: the first attempt's
    new key clashes with it, the retry looks, finds it and seals with it."""
    subject = str(member_uuid(UnitOfWork(store.ledger), "ext-orphan"))
    other = Store.open(database_url)  # another process, whose key this one has not seen
    try:
        assert other.keyring._key(subject, create=True) is not None  # outside a sealing
    finally:
        other.close()
    assert _rows(store, KEYS_TABLE, subject) == 1

    done = _join(store, "ext-orphan", "r-orphan")
    assert done.answer["member_id"] == subject
    assert _rows(store, KEYS_TABLE, subject) == 1, "the stored key, not a second one"
    assert _phone_as_stored(database_url, UUID(subject)) == PHONE


def test_a_member_loads_with_its_key_in_one_statement_on_postgresql(
    store: Store, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A command's read of a member another process made: on PostgreSQL the key comes
    with the events (no statement of its own); SQLite looks it up."""
    subject = _join(store, "ext-known", "r-known").answer["member_id"]
    other = Store.open(database_url)  # no key of this member in its cache
    try:
        looked = _key_looks(other, monkeypatch)
        member = other.ledger.load_many([UUID(subject)])[UUID(subject)]
        assert isinstance(member, Member) and member.phone == PHONE
        assert looked == ([subject] if other.database.is_sqlite else [])
    finally:
        other.close()


@pytest.mark.postgres
def test_a_commands_read_probes_the_key_table_by_its_index(pg_url: str) -> None:
    """With a key table of many members and no statistics (this server runs without
    autovacuum), the read's generic plan still looks keys up by index, never by
    reading the whole table (a hash join did, for each command); and the events too."""
    store = Store.open(pg_url)
    try:
        table: str = store.ledger.recorder.events_table_name  # type: ignore[attr-defined]
        conninfo = store.database.psycopg_conninfo()
    finally:
        store.close()
    with psycopg.connect(conninfo, autocommit=True) as conn:
        conn.execute(
            f"INSERT INTO {KEYS_TABLE} (subject, key) SELECT gen_random_uuid()::text, "
            "sha256(i::text::bytea) FROM generate_series(1, 20000) AS i"
        )
        conn.execute(  # events of as many aggregates, three each (not through the ledger)
            f"INSERT INTO {table} (originator_id, originator_version, topic, state) "
            "SELECT u, v, 'siyu.Test.A', '{}'::bytea FROM (SELECT gen_random_uuid() AS u "
            "FROM generate_series(1, 20000)) AS a, generate_series(1, 3) AS v"
        )
        conn.execute("SET plan_cache_mode = force_generic_plan")
        statement = events_with_keys_statement(table).replace("%s", "$1").replace("%%", "%")
        conn.execute(f"PREPARE lookup(uuid[]) AS {statement}")
        ids = ",".join(str(uuid4()) for _ in range(6))
        plan = "\n".join(str(r[0]) for r in conn.execute(f"EXPLAIN EXECUTE lookup('{{{ids}}}')"))
    assert f"Index Scan using {KEYS_TABLE}_pkey" in plan, plan
    assert f"Seq Scan on {KEYS_TABLE}" not in plan, plan
    # the events by id, the newest state carried forward by its own index: as a plain
    # join the read was planned as a hash join over the whole events table
    assert f"Index Only Scan Backward using {table}_carried_forward" in plan, plan
    assert f"Seq Scan on {table}" not in plan and "Hash Join" not in plan, plan
