"""Time travel: one aggregate as it was at a version, or as of a time, and its stream.

The state is rebuilt by replaying the aggregate's own events up to the version (or to
the last position committed by T, from the time index). Events are decoded through a
mapper whose cipher *redacts* instead of decrypting: personal fields reach the
aggregate as null, so no personal value is ever in the rebuilt object; attributes
named like a redacted field are then shown as ``"[personal]"``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import Any
from uuid import UUID

import msgspec
from eventsourcing.utils import resolve_topic

from domain.encoding import EventMapper
from domain.errors import NotFound
from domain.identity import batch_id, case_id, keyed_id, partner_id, product_id, unit_id
from projections.chain import chain_hashes
from projections.database import reading
from projections.event_feed import PERSONAL, feed_item
from projections.store import Store
from projections.time_index import position_at
from projections.views import Tx

EVENTS_PER_PAGE_MAX = 1000
TYPE_NAME_LENGTH_MAX = 40


class RedactingCipher:
    """A FieldCipher for reading only: every personal value becomes null."""

    def __init__(self) -> None:
        self.redacted: set[str] = set()

    def encrypt_fields(self, event_cls: type, state: dict[str, Any]) -> None:
        raise AssertionError("time travel never writes")

    def prefetch(self, subjects: Iterable[str]) -> None:
        """(No keys: nothing is decrypted.)"""

    @contextmanager
    def sealing(self, created: Iterable[str] = ()) -> Iterator[Any]:
        raise AssertionError("time travel never writes")
        yield None

    def decrypt_fields(self, event_cls: type, state: dict[str, Any]) -> None:
        for name in getattr(event_cls, "personal_fields", ()):
            if state.get(name) is not None:
                state[name] = None
                self.redacted.add(name)


def _natural_keys(store: Store) -> dict[str, Callable[[str], UUID]]:
    return {
        "Partner": partner_id,
        "Product": product_id,
        "CodeBatch": batch_id,
        "Unit": unit_id,
        "Case": case_id,
        "Member": lambda external: keyed_id("member", store.ledger.member_id_key, external),
    }


def resolve_id(store: Store, type_name: str, key: str) -> UUID:
    """The aggregate id: a UUID as given, else the natural key of types that have one."""
    try:
        return UUID(key)
    except ValueError:
        pass
    derive = _natural_keys(store).get(type_name)
    if derive is None:
        raise NotFound(f"unknown {type_name} {key}", code="unknown_aggregate")
    return derive(key)


def event_positions(store: Store, aggregate_id: UUID) -> dict[int, int]:
    """version -> position of every stored event of one aggregate."""
    recorder: Any = store.ledger.recorder
    table = recorder.events_table_name
    with reading(recorder.datastore) as cur:
        if store.database.is_sqlite:
            cur.execute(
                f"SELECT originator_version, rowid FROM {table} WHERE originator_id = ?",
                (aggregate_id.hex,),
            )
            return {int(r[0]): int(r[1]) for r in cur.fetchall()}
        cur.execute(
            f"SELECT originator_version, notification_id FROM {table} WHERE originator_id = %s",
            (aggregate_id,),
        )
        return {int(r["originator_version"]): int(r["notification_id"]) for r in cur.fetchall()}


def _aggregate_name(topic: str) -> str:
    """``Member`` for the topic of ``Member.Joined`` (events are nested in their aggregate)."""
    try:
        return str(resolve_topic(topic).__qualname__.split(".")[0])
    except Exception:
        return ""


def _unknown(type_name: str, key: str) -> NotFound:
    return NotFound(f"unknown {type_name} {key}", code="unknown_aggregate")


def _render(aggregate: Any, redacted: set[str]) -> dict[str, Any]:
    attributes = {k: v for k, v in vars(aggregate).items() if not k.startswith("_")}
    state: dict[str, Any] = msgspec.to_builtins(attributes, enc_hook=str, str_keys=True)
    for name in redacted & state.keys():
        state[name] = PERSONAL
    return state


def aggregate_at(
    store: Store,
    views_tx: Tx,
    type_name: str,
    key: str,
    version: int | None = None,
    as_of: datetime | None = None,
) -> dict[str, Any]:
    """The aggregate at ``version``, or as of ``as_of``, or now."""
    aggregate_id = resolve_id(store, type_name, key)
    positions = event_positions(store, aggregate_id)
    if not positions:
        raise _unknown(type_name, key)
    as_of_position = None
    if as_of is not None:
        as_of_position = position_at(views_tx, as_of)
        versions = [v for v, p in positions.items() if p <= as_of_position]
        if not versions:
            raise NotFound(f"{type_name} {key} did not exist yet", code="not_yet")
        version = max(versions) if version is None else min(version, max(versions))
    if version is None:
        version = max(positions)
    if version not in positions:
        raise NotFound(f"{type_name} {key} has no version {version}", code="unknown_version")
    cipher = RedactingCipher()
    mapper = EventMapper(cipher=cipher)
    aggregate: Any = None
    for stored in store.ledger.recorder.select_events(aggregate_id, lte=version):
        aggregate = mapper.to_domain_event(stored).mutate(aggregate)
    if aggregate is None or type(aggregate).__name__ != type_name:
        raise _unknown(type_name, key)
    return {
        "type": type_name,
        "id": str(aggregate_id),
        "version": version,
        "position": positions[version],
        "as_of": None if as_of is None else as_of.isoformat(),
        "as_of_position": as_of_position,
        "at": aggregate.modified_on.isoformat(),
        "state": _render(aggregate, cipher.redacted),
    }


def aggregate_events(
    store: Store,
    views_tx: Tx,
    chained: int,
    type_name: str,
    key: str,
    after_version: int,
    limit: int,
) -> dict[str, Any]:
    """The aggregate's own stream, as the feed shows events: up to the chain's head
    (``chained``, read in ``views_tx``), so that every event served carries its hash, as
    ``feed_page`` does; ``next`` whenever the stream holds more past the page (a full
    page, or one the chain's head cut short), null when the page is empty or ends it."""
    assert 1 <= limit <= EVENTS_PER_PAGE_MAX
    aggregate_id = resolve_id(store, type_name, key)
    positions = event_positions(store, aggregate_id)
    if not positions:
        raise _unknown(type_name, key)
    stored = store.ledger.recorder.select_events(aggregate_id, gt=after_version, limit=limit)
    first = store.ledger.recorder.select_events(aggregate_id, limit=1)
    if not first or _aggregate_name(first[0].topic) != type_name:
        raise _unknown(type_name, key)
    served = [s for s in stored if positions[s.originator_version] <= chained]
    hashes = chain_hashes(views_tx, [positions[s.originator_version] for s in served])
    items = []
    for s in served:
        position = positions[s.originator_version]
        items.append(feed_item(store.ledger.mapper, position, s, hashes.get(position)))
    more = len(stored) == limit or len(served) < len(stored)
    return {"items": items, "next": served[-1].originator_version if served and more else None}
