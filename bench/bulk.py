"""Bulk data: realistic events written as fast as this machine allows, in-process.

The real command handlers (logistics, scans, orders, payments) decide on aggregates
kept in memory (``BulkUnitOfWork``): nothing is read back from the store except
aggregates that existed before (partners, the product, the batches), once each. The
changed aggregates and each command's request record are saved with
``Ledger.commit_events``, as a command's are (a new member's key in the events'
transaction), in large transactions (``CHUNK_EVENTS``). Events, topics, fields,
request records and their order are the ones the API would write; only the
transactions are larger.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any
from uuid import UUID

from eventsourcing.application import AggregateNotFoundError
from eventsourcing.domain import Aggregate

from bench.channel import SKU, Channel, Site
from domain.batches import CodeBatch, CodeLevel
from domain.carry_forward import carry_forward_where_due
from domain.codes import CodeKind, iter_batch_codes, iter_unit_codes
from domain.handlers import orders
from domain.handlers.catalog import issue_batch
from domain.handlers.logistics import record_movements
from domain.handlers.orders import LineRequest, OrderRequest
from domain.handlers.scans import ScanRequest, ScanRules, scan
from domain.identity import batch_id, case_id, keyed_id, unit_id
from domain.ledger import BatchOutcome, Ledger, Outcome, RequestKey, UnitOfWork
from domain.logistics import Action, Movement
from domain.orders import order_key
from domain.principal import HQ_CODE, Principal, Role
from domain.requests import ClientRequest
from domain.splits import Fulfilment

CHUNK_EVENTS = 4000
UNITS_PER_LOT = 48  # a case of 24 and 24 loose units
SCANNED_PER_LOT = 40
ORDERS_PER_LOT = 8
SOLD_PER_LOT = 12


class BulkUnitOfWork(UnitOfWork):
    def __init__(self, bulk: BulkLedger) -> None:
        super().__init__(bulk)  # type: ignore[arg-type]
        self._bulk = bulk

    def preload(self, ids: Iterable[UUID]) -> None:
        """(The bulk ledger keeps everything it read in its own cache.)"""

    def find(self, cls: Any, aggregate_id: UUID) -> Any:
        found = self._touched.get(aggregate_id)
        if found is None:
            found = self._bulk.lookup(aggregate_id)
            if found is None:
                return None
            self._touched[aggregate_id] = found
        return found if isinstance(found, cls) else None


class BulkLedger:
    """Duck-types ``Ledger.execute``/``execute_batch`` for the command handlers."""

    def __init__(self, ledger: Ledger) -> None:
        self.ledger = ledger
        self.clock = ledger.clock
        self.codebook = ledger.codebook
        self.member_id_key = ledger.member_id_key
        self.cache: dict[UUID, Aggregate | None] = {}
        self.fresh: set[UUID] = set()  # ids known to be new: no need to ask the store
        self.dirty: dict[UUID, Aggregate] = {}
        self.pending = 0
        self.commands = 0
        self.saved = 0
        self.store_reads = 0
        self.read_hints: dict[UUID, tuple[UUID, ...]] = {}  # stays empty (remember_hint)

    def remember_hint(self, after: UUID, following: tuple[UUID, ...]) -> None:
        """The bulk loader keeps every aggregate it has read: nothing to read ahead."""

    def hinted(self, after: UUID) -> tuple[UUID, ...]:
        return ()

    @property
    def repository(self) -> Any:
        return self.ledger.repository

    def lookup(self, aggregate_id: UUID) -> Aggregate | None:
        if aggregate_id in self.cache:
            return self.cache[aggregate_id]
        if aggregate_id in self.fresh:
            return None
        self.store_reads += 1
        try:
            found: Aggregate | None = self.ledger.repository.get(aggregate_id)
        except AggregateNotFoundError:
            found = None
        self.cache[aggregate_id] = found
        return found

    def _keep(self, uow: UnitOfWork, records: list[ClientRequest]) -> None:
        carry_forward_where_due(uow.changed(), uow.now)  # as ``Ledger._save_many``
        for aggregate in [*uow._touched.values(), *records]:
            self.cache[aggregate.id] = aggregate
            self.fresh.discard(aggregate.id)
            if aggregate.pending_events:
                self.pending += (
                    len(aggregate.pending_events) if aggregate.id not in self.dirty else 0
                )
                self.dirty[aggregate.id] = aggregate
        if self.pending >= CHUNK_EVENTS:
            self.flush()

    def flush(self) -> None:
        if not self.dirty:
            return
        events = [e for aggregate in self.dirty.values() for e in aggregate.collect_events()]
        # every member it saves is new and tried once: no key to look for first
        self.saved += len(self.ledger.commit_events(events, new_subjects_unkeyed=True))
        self.dirty.clear()
        self.pending = 0

    def _record(self, key: RequestKey, answer: dict[str, Any], uow: UnitOfWork) -> ClientRequest:
        return key.record(answer, uow.clock())

    def execute(
        self,
        key: RequestKey,
        decide: Callable[[UnitOfWork], dict[str, Any]],
        authorize: Callable[[UnitOfWork], None] = lambda _uow: None,
        preload: Sequence[UUID] = (),
    ) -> Outcome:
        uow = BulkUnitOfWork(self)
        authorize(uow)
        answer = decide(uow)
        self._keep(uow, [self._record(key, answer, uow)])
        return Outcome(answer=answer, position=0, repeated=False)

    def execute_batch(
        self,
        keys: list[RequestKey],
        decide: Callable[[UnitOfWork, list[int]], list[dict[str, Any]]],
        preload: Sequence[UUID] = (),
    ) -> BatchOutcome:
        uow = BulkUnitOfWork(self)
        answers = decide(uow, list(range(len(keys))))
        self._keep(uow, [self._record(k, a, uow) for k, a in zip(keys, answers, strict=True)])
        return BatchOutcome(answers, [False] * len(keys), 0)


@dataclass
class BulkReport:
    events: int
    seconds: float
    lots: int
    units: list[str]  # outer codes of every unit (for trace reads)
    store_reads: int
    started_at: float  # epoch seconds: the time range of the events (as_of reads)
    ended_at: float

    @property
    def per_s(self) -> float:
        return self.events / self.seconds


def _principals(site: Site) -> tuple[Principal, Principal]:
    dealer = Principal(Role.DEALER, site.dealer, f"{HQ_CODE}/{site.dealer}")
    store = Principal(Role.STORE, site.code, f"{HQ_CODE}/{site.dealer}/{site.code}")
    return dealer, store


def load(  # noqa: PLR0915
    ledger: Ledger,
    ch: Channel,
    until_head: int,
    seed: int = 7,
    tag: str = "BULK",
    head: Callable[[], int] | None = None,
) -> BulkReport:
    """Whole lots (goods to one store, sold, scanned, ordered, paid) until the store
    holds ``until_head`` events."""
    rnd = random.Random(seed)
    factory = Principal(Role.FACTORY, HQ_CODE, HQ_CODE)
    gateway = Principal(Role.GATEWAY, HQ_CODE, HQ_CODE)
    started, started_at = time.monotonic(), time.time()
    current = head() if head is not None else 0
    lots_max = max(1, (until_head - current) // 300 + 50)
    units_n, cases_n = lots_max * UNITS_PER_LOT, lots_max
    for name, count, level in (
        (f"{tag}-U", units_n, CodeLevel.UNIT),
        (f"{tag}-C", cases_n, CodeLevel.CASE),
    ):
        issue_batch(ledger, factory, name, SKU, count, level)
    bulk = BulkLedger(ledger)
    unit_batch = bulk.lookup(batch_id(f"{tag}-U"))
    case_batch = bulk.lookup(batch_id(f"{tag}-C"))
    assert isinstance(unit_batch, CodeBatch) and isinstance(case_batch, CodeBatch)
    book = ledger.codebook
    unit_codes = iter_unit_codes(book.keys[unit_batch.key_id], unit_batch.batch_no, units_n)
    case_codes = iter_batch_codes(
        book.keys[case_batch.key_id], case_batch.batch_no, cases_n, CodeKind.CASE
    )
    members: list[str] = []
    outers: list[str] = []
    rules = ScanRules()
    seq = 0
    lots = 0

    def eid() -> str:
        nonlocal seq
        seq += 1
        return f"{tag}-{seq}"

    while current + bulk.saved + bulk.pending < until_head and lots < lots_max:
        site = ch.stores[lots % len(ch.stores)]
        dealer, store = _principals(site)
        pairs = [next(unit_codes) for _ in range(UNITS_PER_LOT)]
        case = next(case_codes)
        for outer, _consumer in pairs:
            bulk.fresh.add(unit_id(outer))
        bulk.fresh.add(case_id(case))
        outs = [o for o, _c in pairs]
        outers.extend(outs)
        in_case, loose = outs[:24], outs[24:]
        record_movements(
            bulk,
            factory,
            [
                Movement(eid(), Action.COMMISSION, tuple(loose)),
                Movement(eid(), Action.COMMISSION, (*in_case, case)),
            ],
        )
        record_movements(bulk, factory, [Movement(eid(), Action.PACK, tuple(in_case), parent=case)])
        record_movements(
            bulk, factory, [Movement(eid(), Action.SHIP, (case, *loose), to=site.dealer)]
        )
        record_movements(bulk, dealer, [Movement(eid(), Action.RECEIVE, (case, *loose))])
        record_movements(bulk, dealer, [Movement(eid(), Action.SHIP, (case, *loose), to=site.code)])
        record_movements(bulk, store, [Movement(eid(), Action.RECEIVE, (case, *loose))])
        sold = (*in_case[: SOLD_PER_LOT // 2], *loose[: SOLD_PER_LOT // 2])
        record_movements(bulk, store, [Movement(eid(), Action.SELL, (c,)) for c in sold])
        bound: list[str] = []
        for i, (_outer, consumer) in enumerate(pairs[:SCANNED_PER_LOT]):
            if i % 2 == 0 or not members:
                member = f"{tag}-m{len(members)}"
                bulk.fresh.add(keyed_id("member", bulk.member_id_key, member))
                members.append(member)
                bound.append(member)
                phone: str | None = f"138{rnd.randrange(10**8):08d}"
            else:
                member, phone = rnd.choice(members), None
            req = ScanRequest(
                scan_id=eid(), code=consumer, external_id=member, phone=phone,
                lat=site.lat + rnd.uniform(-0.003, 0.003),
                lng=site.lng + rnd.uniform(-0.003, 0.003),
            )  # fmt: skip
            scan(bulk, gateway, req, rules)
        for i, member in enumerate(bound[:ORDERS_PER_LOT]):
            order_id = eid()
            bulk.fresh.add(order_key(order_id))
            amount = rnd.randrange(1_000, 50_000)
            req_o = OrderRequest(
                order_id=order_id, member=member, lines=(LineRequest(SKU, 1, amount),),
                fulfilment=Fulfilment.HQ_DROPSHIP,
                referrer=ch.distributors[site.code] if i % 3 == 0 else None,
            )  # fmt: skip
            orders.place_order(bulk, gateway, req_o, _no_finder)
            orders.pay(bulk, gateway, order_id, eid(), amount)
        lots += 1
    bulk.flush()
    seconds = time.monotonic() - started
    return BulkReport(bulk.saved, seconds, lots, outers, bulk.store_reads, started_at, time.time())


def _no_finder(_lat: float, _lng: float) -> list[str]:
    raise AssertionError("bulk orders are attributed to bound stores or referrers")
