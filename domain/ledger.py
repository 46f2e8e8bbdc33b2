"""The Application: one event store, one notification log, and the command runner.

Every state-changing command goes through ``Ledger.execute``:

1. find the record of the client request (scope, kind, client id);
2. a repeat by the same caller with the same content returns the recorded answer and
   position at once;
3. ``authorize`` (permission, 403) runs against the current write-side state;
4. a record with other content is 409 ``idempotency_mismatch``;
5. ``decide`` loads aggregates through the unit of work, records events, returns the answer;
6. the changed aggregates and the request record are saved in one transaction.

A version conflict (another process or thread saved first) is retried from step 1
with fresh aggregates, at most ``ATTEMPTS_MAX`` times; clients never see it.

A caller authenticated from a cache may have its credentials checked by the command's
first read (``Ledger.checking``): the aggregates the authentication was made from are
read with the request record, and ``StaleCredentials`` stops the command before step 1
if any of them has changed since (nothing written; authenticate again and run again).
"""

from __future__ import annotations

import contextlib
import random
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import cached_property
from typing import Any, TypeVar, cast
from uuid import UUID

import msgspec
from eventsourcing.application import AggregateNotFoundError, Application
from eventsourcing.domain import Aggregate, DomainEventProtocol
from eventsourcing.persistence import IntegrityError, Mapper, RecordConflictError, StoredEvent

from domain.carry_forward import carry_forward_where_due
from domain.channel import Partner
from domain.clock import Clock, system_clock
from domain.codebook import Codebook
from domain.encoding import EventMapper, FieldCipher
from domain.errors import Conflict, IdempotencyMismatch, NotFound
from domain.group_commit import GroupCommitter
from domain.identity import partner_id, request_id
from domain.principal import HQ_CODE
from domain.requests import (
    PRINT_SCHEME,
    ClientRequest,
    ContentPath,
    legacy_print,
    request_prints,
)
from domain.topics import load_stored_types

ATTEMPTS_MAX = 16
IMMUTABLES_CACHED_MAX = 100_000
# about 750 bytes a hint of four ids: 7.5 MB a process at most; at 1,000 orders/s ten
# seconds of orders, more than the usual wait between an order and its payment
READ_HINTS_MAX = 10_000
BACK_OFF_S_BASE = 0.002
BACK_OFF_S_MAX = 0.1  # with 16 attempts, at most about 1.2 s of waiting in all


def _keep_bounded(cache: dict[UUID, Any], key: UUID, value: Any, most: int) -> None:
    """``cache[key] = value``, the oldest half of ``cache`` dropped first when it is full
    (dicts keep insertion order; shared by threads: each step holds the interpreter)."""
    if len(cache) >= most:
        for old in list(cache)[: most // 2]:
            cache.pop(old, None)
    cache[key] = value


def _back_off(attempt: int) -> None:
    """Jittered exponential back-off after a version conflict, so that writers of one hot
    aggregate stop colliding in lockstep."""
    time.sleep(random.uniform(0, min(BACK_OFF_S_MAX, BACK_OFF_S_BASE * 2**attempt)))


GLOBAL_SCOPE = "global"

A = TypeVar("A", bound=Aggregate)
PositionLookup = Callable[[UUID, int], "int | None"]
PositionsLookup = Callable[[Sequence[tuple[UUID, int]]], "dict[tuple[UUID, int], int]"]
EventsLookup = Callable[[Sequence[UUID]], "dict[UUID, list[StoredEvent]]"]
VersionsLookup = Callable[[Sequence[UUID]], "dict[UUID, int]"]
PRELOAD_IDS_MAX = 500  # ids per query

_answer_encoder = msgspec.json.Encoder()
_answer_decoder = msgspec.json.Decoder()


def in_utc(at: datetime) -> str:
    """An instant's one spelling in a request's fingerprint (any offset, one instant)."""
    return at.astimezone(UTC).isoformat()


@dataclass(frozen=True)
class RequestKey:
    """Identifies one client request: ``scope`` is the caller's or ``global`` (natural keys).

    ``personal``: where the content holds personal data (a phone, exact coordinates, a
    name); ``subject``: the member whose key seals their digest (domain.requests). The
    record's fingerprint covers the rest only.

    ``content`` is normalised where one value has several spellings (a code bare or as
    its URL: the bare serial; an instant in any offset: UTC, ``in_utc``), so that a
    repeat in the other spelling is the same request; ``sent``: the content as sent
    (kept only where normalising changed it). Records written before a value was
    normalised hold a print of the content as sent: a repeat spelt as that request was is
    still recognised by it."""

    scope: str
    kind: str
    client_id: str
    content: Any
    personal: tuple[ContentPath, ...] = ()
    subject: str | None = None
    sent: Any = None

    def __post_init__(self) -> None:
        assert self.subject is not None or not self.personal, "personal data has a subject"
        if self.sent is not None and self.sent == self.content:
            object.__setattr__(self, "sent", None)  # normalising changed nothing

    @cached_property
    def _prints(self) -> tuple[str, str | None]:
        return request_prints(self.kind, self.content, self.personal)

    @cached_property
    def _sent_print(self) -> str | None:
        """The public print of the content as sent (None: normalising changed nothing)."""
        if self.sent is None:
            return None
        return request_prints(self.kind, self.sent, self.personal)[0]

    @property
    def fingerprint(self) -> str:
        """The fingerprint of the content's public part (``2:...``)."""
        return self._prints[0]

    @property
    def personal_print(self) -> str | None:
        """The digest of the personal values (None: the content holds none)."""
        return self._prints[1]

    def matches(self, record: ClientRequest) -> bool:
        """Whether ``record`` was made for this very content. A legacy record (its hash
        of the whole content, no scheme) is compared by that hash; a newer one by its
        public part and, while it can still be read, its personal part: once the member
        is forgotten it reads as None, and the public part alone decides. Either print
        may be of the content as normalised or, for a record written before, as sent."""
        stored = record.fingerprint
        if not stored.startswith(PRINT_SCHEME):
            spellings = [self.content] if self.sent is None else [self.content, self.sent]
            return any(stored == legacy_print(self.kind, c) for c in spellings)
        if stored not in (self.fingerprint, self._sent_print):
            return False
        sealed = record.personal_print
        return sealed is None or sealed == self.personal_print

    def record(self, answer: dict[str, Any], at: datetime) -> ClientRequest:
        """The record of this request with its answer."""
        return ClientRequest.record(
            self.scope,
            self.kind,
            self.client_id,
            self.fingerprint,
            _answer_encoder.encode(answer).decode(),
            at,
            personal_print=self.personal_print,
            member_id=self.subject,
        )

    @property
    def record_id(self) -> UUID:
        return request_id(self.scope, self.kind, self.client_id)


@dataclass(frozen=True)
class Outcome:
    answer: dict[str, Any]
    position: int
    repeated: bool


@dataclass(frozen=True)
class BatchOutcome:
    """Per item: its answer and whether it was a repeat; the position of the last event."""

    answers: list[dict[str, Any]]
    repeated: list[bool]
    position: int


@dataclass(frozen=True)
class Credentials:
    """The aggregates (a token, its partner) a cached authentication was made from, at
    the versions it was made at."""

    versions: tuple[tuple[UUID, int], ...]

    @property
    def ids(self) -> list[UUID]:
        return [aggregate_id for aggregate_id, _version in self.versions]


class StaleCredentials(Exception):
    """A cached authentication is out of date: the command stopped before it decided or
    wrote anything; authenticate again and run it again."""


@dataclass
class CredentialCheck:
    """``Ledger.checking``'s pending check: ``done`` once a command's first read made it."""

    credentials: Credentials
    done: bool = field(default=False)

    def verify(self, uow: UnitOfWork) -> None:
        self.done = True
        for aggregate_id, version in self.credentials.versions:
            if uow.version_of(aggregate_id) != version:
                raise StaleCredentials()


class UnitOfWork:
    """The aggregates one command reads and changes; saved together or not at all."""

    def __init__(self, ledger: Ledger) -> None:
        self._ledger = ledger
        self._touched: dict[UUID, Aggregate] = {}
        self._absent: set[UUID] = set()  # preloaded and found not to exist
        self.clock = ledger.clock
        self.codebook = ledger.codebook
        self.member_id_key: bytes = ledger.member_id_key
        self.now = ledger.clock()

    def preload(self, ids: Iterable[UUID]) -> None:
        """Read these aggregates now, all in one query, so that the ``find`` calls that
        follow cost no round trip (a command's reads are otherwise one query each)."""
        wanted = [
            i
            for i in dict.fromkeys(ids)
            if i not in self._touched and i not in self._absent and i not in self._ledger.immutables
        ]
        if not wanted:
            return
        for aggregate_id, aggregate in self._ledger.load_many(wanted).items():
            if aggregate is None:
                self._absent.add(aggregate_id)
            elif getattr(type(aggregate), "IMMUTABLE", False):
                self._ledger.remember(aggregate)
            else:
                self._touched[aggregate_id] = aggregate

    def preload_following(self, ids: Iterable[UUID]) -> None:
        """``preload`` these and, in the same query, what a command read after them last
        time in this process (``hint``): a read that depends on the first (a case's
        holders after the case) then costs no round trip of its own. A hint is only
        what to read: a wrong or stale one reads more, never decides anything."""
        wanted = list(ids)
        hinted = self._ledger.hinted
        self.preload([*wanted, *(h for i in wanted for h in hinted(i))])

    def hint(self, after: UUID, following: Iterable[UUID]) -> None:
        """Remember that a command which read ``after`` went on to read ``following``."""
        self._ledger.remember_hint(after, tuple(following))

    def find(self, cls: type[A], aggregate_id: UUID) -> A | None:
        if aggregate_id in self._absent:
            return None
        if aggregate_id in self._touched:
            found = self._touched[aggregate_id]
        elif getattr(cls, "IMMUTABLE", False):
            # Created once and never changed: safe to share between commands and processes.
            cached = self._ledger.immutables.get(aggregate_id)
            if cached is None:
                cached = self._load(cls, aggregate_id)
                if cached is None:
                    return None
                self._ledger.remember(cached)
            found = cached
        else:
            loaded = self._load(cls, aggregate_id)
            if loaded is None:
                return None
            found = self._touched[aggregate_id] = loaded
        if not isinstance(found, cls):
            return None
        return found

    def _load(self, cls: type[Aggregate], aggregate_id: UUID) -> Aggregate | None:
        """A class that carries its state forward is read as the first read reads (from the
        newest restatement); any other by the simplest statement, all its events."""
        if getattr(cls, "CARRY_FORWARD_EVERY", None) is None:
            return self._ledger._get_or_none(aggregate_id)
        return self._ledger.load_many([aggregate_id])[aggregate_id]

    def version_of(self, aggregate_id: UUID) -> int | None:
        """The aggregate's current version (None: none such), as this unit read it."""
        found = self.find(Aggregate, aggregate_id)
        return None if found is None else found.version

    def get(self, cls: type[A], aggregate_id: UUID, what: str) -> A:
        found = self.find(cls, aggregate_id)
        if found is None:
            raise NotFound(f"unknown {what}", code=f"unknown_{cls.__name__.lower()}")
        return found

    def partner(self, code: str) -> Partner:
        return self.get(Partner, partner_id(code), f"partner {code}")

    def add(self, aggregate: Aggregate) -> None:
        self._absent.discard(aggregate.id)
        self._touched[aggregate.id] = aggregate

    def changed(self) -> list[Aggregate]:
        return [a for a in self._touched.values() if a.pending_events]


class Ledger(Application[UUID]):
    """Siyu Ledger's single eventsourcing Application (one total order of all events)."""

    name = "SiyuLedger"

    def __init__(
        self,
        env: Mapping[str, str],
        *,
        clock: Clock = system_clock,
        field_cipher: FieldCipher | None = None,
    ) -> None:
        load_stored_types()  # any event in the log decodes, whatever else was imported
        self.clock = clock
        self._field_cipher = field_cipher
        # Set by the store that opens the ledger: both are secrets kept with the store.
        self.codebook: Codebook = cast(Codebook, None)
        self.member_id_key: bytes = b""
        self.position_of: PositionLookup = lambda _id, _version: None
        self.positions_of: PositionsLookup = self._positions_one_by_one
        self.select_many: EventsLookup | None = None
        self.versions_of: VersionsLookup = self._versions_by_loading
        super().__init__(env=dict(env))
        self.committer = GroupCommitter(self.insert)
        self.immutables: dict[UUID, Aggregate] = {}
        self.read_hints: dict[UUID, tuple[UUID, ...]] = {}  # see UnitOfWork.hint
        self._pending = threading.local()  # this thread's CredentialCheck, if any

    def load_many(self, ids: Sequence[UUID]) -> dict[UUID, Aggregate | None]:
        """The current state of each aggregate (None: none such), in few queries."""
        if self.select_many is None:
            return {i: self._get_or_none(i) for i in ids}
        loaded: dict[UUID, Aggregate | None] = dict.fromkeys(ids)
        for start in range(0, len(ids), PRELOAD_IDS_MAX):
            found = self.select_many(ids[start : start + PRELOAD_IDS_MAX])
            for aggregate_id, stored in found.items():
                loaded[aggregate_id] = self.aggregate_from(stored)
        return loaded

    def aggregate_from(self, stored: Iterable[StoredEvent]) -> Aggregate | None:
        """The aggregate these stored events make, in version order, from its first event
        or from a state carried forward (``domain.carry_forward``)."""
        aggregate: Any = None
        for event in map(self.mapper.to_domain_event, stored):
            aggregate = cast(Any, event).mutate(aggregate)
        return cast(Aggregate | None, aggregate)

    def _positions_one_by_one(
        self, events: Sequence[tuple[UUID, int]]
    ) -> dict[tuple[UUID, int], int]:
        """Many events' positions (those stored), by ``position_of`` (the store sets a
        one-query lookup where a query is a round trip)."""
        found = {event: self.position_of(*event) for event in events}
        return {event: position for event, position in found.items() if position is not None}

    def _versions_by_loading(self, ids: Sequence[UUID]) -> dict[UUID, int]:
        """(The store sets a one-query lookup; this one works on any recorder.)"""
        return {i: a.version for i, a in self.load_many(ids).items() if a is not None}

    def _get_or_none(self, aggregate_id: UUID) -> Aggregate | None:
        try:
            found: Aggregate = self.repository.get(aggregate_id)
        except AggregateNotFoundError:
            return None
        return found

    def insert(self, stored: Sequence[StoredEvent], writes: Sequence[Any] = ()) -> Sequence[int]:
        """Stored events (and ``writes``: rows their encryption made, projections.recorders)
        in one transaction; the events' positions."""
        if writes:
            positions = self.recorder.insert_events(list(stored), side_writes=writes)
        else:
            positions = self.recorder.insert_events(list(stored))
        assert positions is not None, "an application recorder answers positions"
        return positions

    def remember(self, aggregate: Aggregate) -> None:
        """Keep an immutable aggregate (bounded: the oldest half goes when full)."""
        assert getattr(type(aggregate), "IMMUTABLE", False)
        _keep_bounded(self.immutables, aggregate.id, aggregate, IMMUTABLES_CACHED_MAX)

    def hinted(self, after: UUID) -> tuple[UUID, ...]:
        """What a command that read (or was keyed by) ``after`` read next, last time in
        this process (``UnitOfWork.hint``): a handler adds it to a first read by a key
        that is not an aggregate it reads (e.g. a neighbourhood)."""
        return self.read_hints.get(after, ())

    def remember_hint(self, after: UUID, following: tuple[UUID, ...]) -> None:
        """(bounded as ``immutables``)"""
        if self.read_hints.get(after) != following:
            _keep_bounded(self.read_hints, after, following, READ_HINTS_MAX)

    def construct_mapper(self) -> Mapper[UUID]:
        return EventMapper(cipher=self._field_cipher)

    # -- the command runner ---------------------------------------------------

    @contextlib.contextmanager
    def checking(self, credentials: Credentials) -> Iterator[CredentialCheck]:
        """The next command in this thread checks ``credentials`` with its first read (no
        statement of its own) and raises ``StaleCredentials`` before deciding if they are
        out of date. ``done`` tells whether a command made the check; a caller whose code
        ran no command must check them itself."""
        check = CredentialCheck(credentials)
        self._pending.check = check
        try:
            yield check
        finally:
            self._pending.check = None

    def _first_reads(self, uow: UnitOfWork, ids: list[UUID]) -> None:
        """A command's first read, with what the hints say follows (``UnitOfWork.hint``)
        and this thread's pending credential check, if any."""
        check: CredentialCheck | None = getattr(self._pending, "check", None)
        if check is None or check.done:
            uow.preload_following(ids)
            return
        uow.preload_following([*ids, *check.credentials.ids])
        check.verify(uow)

    def execute(
        self,
        key: RequestKey,
        decide: Callable[[UnitOfWork], dict[str, Any]],
        authorize: Callable[[UnitOfWork], None] = lambda _uow: None,
        preload: Sequence[UUID] = (),
    ) -> Outcome:
        """``preload``: aggregates ``decide`` will read, fetched with the request record in
        one query."""
        for _attempt in range(ATTEMPTS_MAX):
            uow = UnitOfWork(self)
            self._first_reads(uow, [key.record_id, *preload])
            record = uow.find(ClientRequest, key.record_id)
            own_repeat = record is not None and key.scope != GLOBAL_SCOPE
            if own_repeat and record is not None and key.matches(record):
                return self._repeat(record)  # the caller's own id: no need to re-authorize
            authorize(uow)
            if record is not None:
                if not key.matches(record):
                    raise IdempotencyMismatch(
                        f"{key.kind} {key.client_id!r} was used with other content"
                    )
                return self._repeat(record)
            try:
                answer = decide(uow)
            except Exception:
                # ``decide`` may read aggregates after the request record; if another copy
                # of this request was saved in between, it saw that copy's effect (and
                # refused, or tripped a guard against applying it twice): a repeat.
                if key.record_id in self.repository:
                    continue
                raise
            try:
                position = self._save_many(uow, [(key, answer)], first_attempt=_attempt == 0)
            except (IntegrityError, RecordConflictError):
                _back_off(_attempt)
                continue  # someone saved first: reload everything and decide again
            return Outcome(answer=answer, position=position, repeated=False)
        raise Conflict("too much contention; try again", code="contention")

    def execute_batch(
        self,
        keys: list[RequestKey],
        decide: Callable[[UnitOfWork, list[int]], list[dict[str, Any]]],
        preload: Sequence[UUID] = (),
    ) -> BatchOutcome:
        """Many client requests in one atomic step (e.g. logistics events, each with its id).

        Items already recorded are repeats; ``decide`` gets the indices of the fresh ones
        and returns their answers, or raises (then nothing at all is written).
        """
        assert len({k.record_id for k in keys}) == len(keys), "client ids are unique in a batch"
        for _attempt in range(ATTEMPTS_MAX):
            uow = UnitOfWork(self)
            self._first_reads(uow, [*(k.record_id for k in keys), *preload])
            records = [uow.find(ClientRequest, k.record_id) for k in keys]
            for k, r in zip(keys, records, strict=True):
                if r is not None and not k.matches(r):
                    raise IdempotencyMismatch(
                        f"{k.kind} {k.client_id!r} was used with other content"
                    )
            fresh = [i for i, r in enumerate(records) if r is None]
            answers: list[dict[str, Any]] = [
                {} if r is None else _answer_decoder.decode(r.answer) for r in records
            ]
            if not fresh:
                positions = [self._repeat(r).position for r in records if r is not None]
                return BatchOutcome(answers, [True] * len(keys), max(positions))
            try:
                new_answers = decide(uow, fresh)
            except Exception:
                if any(keys[i].record_id in self.repository for i in fresh):
                    continue  # some of these were saved meanwhile (see ``execute``)
                raise
            assert len(new_answers) == len(fresh)
            for i, answer in zip(fresh, new_answers, strict=True):
                answers[i] = answer
            try:
                items = [(keys[i], answers[i]) for i in fresh]
                position = self._save_many(uow, items, first_attempt=_attempt == 0)
            except (IntegrityError, RecordConflictError):
                _back_off(_attempt)
                continue
            fresh_set = set(fresh)
            return BatchOutcome(answers, [i not in fresh_set for i in range(len(keys))], position)
        raise Conflict("too much contention; try again", code="contention")

    def _save_many(
        self,
        uow: UnitOfWork,
        items: list[tuple[RequestKey, dict[str, Any]]],
        first_attempt: bool = False,
    ) -> int:
        """The changed aggregates and the request records, in one transaction (possibly
        shared with concurrent commands: group commit); the position of the last event.
        ``first_attempt``: see ``commit_events``."""
        at = uow.clock()
        records = [k.record(answer, at) for k, answer in items]
        changed = uow.changed()
        carry_forward_where_due(changed, uow.now)
        events = [e for aggregate in [*changed, *records] for e in aggregate.collect_events()]
        positions = self.commit_events(events, new_subjects_unkeyed=first_attempt)
        assert positions[-1] == max(positions), "the request records are the last events saved"
        return positions[-1]

    def commit_events(
        self, events: Sequence[DomainEventProtocol[UUID]], new_subjects_unkeyed: bool = False
    ) -> list[int]:
        """Encode ``events`` here, in the caller's thread (not by the group's leader), and
        save them in one transaction, possibly shared with concurrent commands (group
        commit); their positions. A new member's key (and its blind-index rows) made
        while encrypting is written in the events' transaction, not committed before it.

        ``new_subjects_unkeyed``: the aggregates these events create have no key yet, so
        none is looked for (a statement fewer for a new member). A command's first
        attempt says so; should a key exist after all, the insert fails like a version
        conflict and the retry, which does not say so, finds it."""
        cipher = cast(EventMapper, self.mapper).field_cipher
        if cipher is None:
            return self.committer.commit([self.mapper.to_stored_event(e) for e in events])
        created = (
            [str(e.originator_id) for e in events if e.originator_version == 1]
            if new_subjects_unkeyed
            else []
        )
        with cipher.sealing(created) as sealing:
            stored = [self.mapper.to_stored_event(e) for e in events]
        positions = self.committer.commit(stored, sealing.writes)
        sealing.committed()
        return positions

    def _repeat(self, record: ClientRequest) -> Outcome:
        position = self.position_of(record.id, record.version)
        assert position is not None, "a recorded request has a position"
        return Outcome(
            answer=_answer_decoder.decode(record.answer), position=position, repeated=True
        )

    # -- start-up ------------------------------------------------------------

    def ensure_hq(self) -> None:
        """The root partner exists from the start; two processes may race to create it."""
        if partner_id(HQ_CODE) in self.repository:
            return
        with contextlib.suppress(IntegrityError, RecordConflictError):
            self.save(Partner.hq(self.clock()))
