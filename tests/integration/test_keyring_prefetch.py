"""Members' keys fetched for a whole batch of events at once (the projection engine's
decoding), on the real stores: the same plaintext as one key at a time, a forgotten
member's fields unreadable, and no further query for the keys prefetched."""

from __future__ import annotations

from typing import Any

import pytest

from domain.members import Member
from projections import keyring
from projections.keyring import KEY_CACHE_TTL_S, MemberKeyring
from projections.store import Store


def test_prefetched_keys_decrypt_like_fetched_ones(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    datastore: Any = store.ledger.recorder.datastore  # type: ignore[attr-defined]
    writer = MemberKeyring(datastore, store.database.is_sqlite)
    sealed = {}
    for subject, phone in (("m-a", "13800000001"), ("m-b", "13900000002")):
        state: dict[str, Any] = {"member_id": subject, "phone": phone}
        writer.encrypt_fields(Member.Joined, state)
        assert state["phone"] != phone
        sealed[subject] = state
    gone: dict[str, Any] = {"member_id": "m-gone", "phone": "13700000003"}
    writer.encrypt_fields(Member.Joined, gone)
    writer.forget("m-gone")

    reader = MemberKeyring(datastore, store.database.is_sqlite)
    reader.prefetch(["m-a", "m-b", "m-gone", "m-a"])

    def no_query(*_args: Any, **_kwargs: Any) -> Any:
        raise AssertionError("a prefetched key was fetched again")

    monkeypatch.setattr(reader, "_sql", no_query)
    for subject, phone in (("m-a", "13800000001"), ("m-b", "13900000002")):
        state = dict(sealed[subject])
        reader.decrypt_fields(Member.Joined, state)
        assert state["phone"] == phone
    state = dict(gone)
    reader.decrypt_fields(Member.Joined, state)
    assert state["phone"] is None, "a forgotten member's key is gone"


def _sealed_members(store: Store, count: int) -> dict[str, dict[str, Any]]:
    datastore: Any = store.ledger.recorder.datastore  # type: ignore[attr-defined]
    writer = MemberKeyring(datastore, store.database.is_sqlite)
    sealed = {}
    for i in range(count):
        state: dict[str, Any] = {"member_id": f"m-{i}", "phone": f"138{i:08d}"}
        writer.encrypt_fields(Member.Joined, state)
        sealed[f"m-{i}"] = state
    return sealed


def test_the_key_cache_keeps_only_keys_still_fresh(store: Store) -> None:
    """A long-lived process (a server, a verification of every event) decrypts for more
    members than it can keep: each cached key goes once stale, not at exit."""
    sealed = _sealed_members(store, 30)
    subjects = list(sealed)
    now = [1000.0]
    datastore: Any = store.ledger.recorder.datastore  # type: ignore[attr-defined]
    reader = MemberKeyring(datastore, store.database.is_sqlite, clock=lambda: now[0])
    reader.prefetch(subjects[:10])
    now[0] += KEY_CACHE_TTL_S / 2
    reader.prefetch(subjects[10:20])
    assert reader.cached_subjects() == subjects[:20]
    now[0] += KEY_CACHE_TTL_S / 2  # the first ten are stale now
    # one fetched again moves to the end, with its new time; the stale ones before go
    reader.prefetch(subjects[:1])
    assert reader.cached_subjects() == [*subjects[10:20], subjects[0]]
    reader.prefetch(subjects[20:])
    assert reader.cached_subjects() == [*subjects[10:20], subjects[0], *subjects[20:]]
    now[0] += KEY_CACHE_TTL_S / 2  # the second ten are stale now
    reader.prefetch(subjects[1:2])
    assert reader.cached_subjects() == [subjects[0], *subjects[20:], subjects[1]]
    for subject in (subjects[5], subjects[25]):  # dropped or kept, each decrypts the same
        state = dict(sealed[subject])
        reader.decrypt_fields(Member.Joined, state)
        assert state["phone"] == f"138{int(subject[2:]):08d}"


def test_the_key_cache_is_capped_whatever_the_rate(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    sealed = _sealed_members(store, 12)
    subjects = list(sealed)
    monkeypatch.setattr(keyring, "KEYS_CACHED_MAX", 5)
    datastore: Any = store.ledger.recorder.datastore  # type: ignore[attr-defined]
    reader = MemberKeyring(datastore, store.database.is_sqlite)
    reader.prefetch(subjects)
    assert reader.cached_subjects() == subjects[-5:]
    state = dict(sealed[subjects[0]])
    reader.decrypt_fields(Member.Joined, state)  # dropped from the cache: fetched again
    assert state["phone"] == "13800000000"
    assert reader.cached_subjects() == [*subjects[-4:], subjects[0]]
