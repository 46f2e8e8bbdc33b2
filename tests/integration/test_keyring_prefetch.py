"""Members' keys fetched for a whole batch of events at once (the projection engine's
decoding), on the real stores: the same plaintext as one key at a time, a forgotten
member's fields unreadable, and no further query for the keys prefetched."""

from __future__ import annotations

from typing import Any

import pytest

from domain.members import Member
from projections.keyring import MemberKeyring
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
