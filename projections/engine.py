"""The projection engine: follows the notification log and feeds every read model.

Exactly-once: each batch of events is applied and each projection's position
recorded in one transaction of the view store; a crash loses the whole batch or
none of it. On PostgreSQL the positions rows are locked (``FOR UPDATE``) for the
batch, so several engines (API processes, ``siyu project`` workers) may run at once
and each event is still applied once. A projection whose ``version`` changed, or
that never ran, is rebuilt from zero.
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Protocol

import msgspec
from eventsourcing.persistence import ApplicationRecorder, Mapper, Notification

from projections.views import Tx, ViewStore
from projections.wakeups import Notifications

log = logging.getLogger("siyu.projections")

# Events per batch (one transaction). Following the log (the API's inline engine) takes
# at most BATCH_SIZE; catching up (``siyu project``, ``siyu replay``) may take more, as
# larger batches amortise each batch's fixed statements (positions, every read model's
# prepare, the commit): 4,000 against 1,000 took 12.5 s against 13.1 s over 200k bulk
# events (two workers, medians of 3). The API keeps 1,000: its memory stays lower
# (4,000 raised the bench's peak RSS of two API processes from ~280 to 313 MB).
BATCH_SIZE = 1000
BATCH_SIZE_MAX = 4000
POLL_INTERVAL_S = 0.02
# With notifications of new events (PostgreSQL): an idle engine's longest wait for one
# before it looks at the head anyway (projections/wakeups.py).
IDLE_CHECK_S = 1.0
WAIT_S_MAX = 5.0
POSITIONS_TABLE = "projection_positions"
# Events after which read models scrubbed personal data: old page copies must go too.
SCRUBBING_TOPICS = frozenset({"siyu.Member.Forgotten"})


class Projection(Protocol):
    """A read model: its tables (name -> DDL), the events it reads, how it applies one."""

    name: str
    version: int
    tables: dict[str, str]
    indexes: tuple[str, ...]
    topics: frozenset[str]
    # A projection with ``reads_stored = True`` gets the stored notification (topic, bytes
    # exactly as stored) as ``event`` instead of the decoded domain event.
    # Optional, per batch: ``prepare(tx, [(event, position), ...])`` before its first
    # ``apply`` (read at once what the batch needs), ``finish(tx)`` after its last (write
    # what it folded in ``tx.memo``, check invariants). A batch is one transaction.
    # Every ``prepare`` runs before any model applies the batch, so it reads only its own
    # tables (not, e.g., partner paths the partners model may add in this batch).
    # Optional, per batch: ``check(tx)`` once every read model has applied and written the
    # batch, before the commit: invariants read back from the tables. Read earlier (in
    # ``finish``), such a read waits for every write queued before it to be executed
    # while the interpreter idles; here it waits no longer than the commit would.
    # Optional: ``follows``, the names of read models whose tables it reads (e.g. the
    # partners' paths). An engine that does not run one of them itself stops each batch
    # before the first event of that model's topics it has not applied yet (projection
    # workers, ``projections/workers.py``).

    def apply(self, tx: Tx, event: Any, position: int) -> None: ...


@dataclass
class Progress:
    position: int
    head: int
    applied: int
    seconds: float


class Engine:
    def __init__(
        self,
        recorder: ApplicationRecorder,
        mapper: Mapper[Any],
        views: ViewStore,
        projections: Iterable[Projection],
        *,
        batch_size: int = BATCH_SIZE,
        others: Iterable[Projection] = (),
        wakeups: Notifications | None = None,
    ) -> None:
        """``others``: the read models other engines run on the same views (projection
        workers), among them those that ours follow. ``wakeups``: notifications of new
        events, for the follower to wait on when it has applied everything."""
        assert 0 < batch_size <= BATCH_SIZE_MAX
        self.recorder = recorder
        self.mapper = mapper
        self.views = views
        self.projections = list(projections)
        self.batch_size = batch_size
        self._advanced = threading.Condition()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.wakeups = wakeups
        self.idle_check_s = IDLE_CHECK_S
        self.idle_checks = 0  # looks at the head that found nothing new (for tests)
        self.last_error: str | None = None
        # topic -> the read models that read it, in the engine's order
        self._readers: dict[str, tuple[Projection, ...]] = {}
        self._reads_stored = {p.name for p in self.projections if getattr(p, "reads_stored", False)}
        self._fetcher: ThreadPoolExecutor | None = None  # the next page, while one applies
        self.pages_fetched_ahead = 0  # pages used that way (for tests and benchmarks)
        self._ahead: tuple[tuple[int, int, int | None], Future[list[Notification]]] | None = None
        names = [p.name for p in self.projections]
        assert len(names) == len(set(names)), "projection names are unique"
        self._names = sorted(names)
        # Read models another engine runs that ours read (their topics): none when one
        # engine runs them all.
        wanted = {f for p in self.projections for f in getattr(p, "follows", ())} - set(names)
        others = list(others)
        self._followed = {p.name: p.topics for p in others if p.name in wanted}
        assert set(self._followed) == wanted, f"followed read models missing: {wanted}"
        assert all(self._followed.values()), "a followed read model names its topics"
        self.waiting_for: str | None = None  # a followed model this engine is waiting for

    # -- schema ---------------------------------------------------------------

    def ensure_schema(self) -> None:
        with self.views.write() as tx:
            tx.execute(
                f"CREATE TABLE IF NOT EXISTS {POSITIONS_TABLE} ("
                "name TEXT PRIMARY KEY, position BIGINT NOT NULL, version INTEGER NOT NULL)"
            )
            known = {
                r[0]: r[1] for r in tx.fetchall(f"SELECT name, version FROM {POSITIONS_TABLE}")
            }
            for p in self.projections:
                if known.get(p.name) not in (None, p.version):
                    log.warning("projection %s changed version: rebuilding", p.name)
                    self._drop(tx, p)
                for ddl in p.tables.values():
                    tx.execute(ddl)
                for ddl in p.indexes:
                    tx.execute(ddl)
                tx.execute(
                    f"INSERT INTO {POSITIONS_TABLE} (name, position, version) VALUES (?, 0, ?) "
                    "ON CONFLICT (name) DO NOTHING",
                    (p.name, p.version),
                )

    def _drop(self, tx: Tx, p: Projection) -> None:
        for table in p.tables:
            tx.execute(f"DROP TABLE IF EXISTS {table}")
        tx.execute(f"DELETE FROM {POSITIONS_TABLE} WHERE name = ?", (p.name,))

    def reset(self, names: Sequence[str] | None = None) -> None:
        """Empty the named projections (all if None) so they rebuild from zero."""
        chosen = [p for p in self.projections if names is None or p.name in names]
        with self.views.write() as tx:
            for p in chosen:
                self._drop(tx, p)
        self.ensure_schema()

    # -- applying -------------------------------------------------------------

    def positions(self, tx: Tx | None = None) -> dict[str, int]:
        """Each projection's position (read in ``tx`` if given, with the data it reads;
        else by one statement, without a transaction's BEGIN and COMMIT round trips: every
        ``min_position`` wait and every order placed by location asks)."""
        if tx is None:
            with self.views.query() as own:
                return self.positions(own)
        rows = tx.fetchall(f"SELECT name, position FROM {POSITIONS_TABLE}")
        return {name: int(position) for name, position in rows}

    def position(self, name: str | None = None, tx: Tx | None = None) -> int:
        """The position every (or the named) projection has applied."""
        positions = self.positions(tx)
        chosen = [positions.get(p.name, 0) for p in self.projections if name in (None, p.name)]
        return min(chosen) if chosen else 0

    def _readers_of(self, topic: str) -> tuple[Projection, ...]:
        """The read models that read ``topic``, in the engine's order."""
        readers = self._readers.get(topic)
        if readers is None:
            readers = self._readers[topic] = tuple(
                p for p in self.projections if not p.topics or topic in p.topics
            )
        return readers

    def run_batch(self, until: int | None = None) -> int:
        """Apply the next batch of events; returns how many notifications were read (0 also
        while ``waiting_for`` names a followed read model that has an event to apply first)."""
        with self.views.write() as tx:
            positions = self._lock_positions(tx)
            start = min(positions.get(p.name, 0) for p in self.projections)
            self.waiting_for = None
            if until is not None and start >= until:
                return 0
            limit = self.batch_size if until is None else min(self.batch_size, until - start)
            notifications = self._notifications(start, limit, until)
            if self._followed and notifications:
                notifications = self._before_unfollowed(tx, notifications)
            if not notifications:
                return 0
            self._apply(tx, notifications, positions)
            last = notifications[-1].id
            for p in self.projections:
                if positions.get(p.name, 0) < last:
                    tx.execute(
                        f"UPDATE {POSITIONS_TABLE} SET position = ? WHERE name = ?", (last, p.name)
                    )
        if any(n.topic in SCRUBBING_TOPICS for n in notifications):
            self.views.purge_freed_pages()
        with self._advanced:
            self._advanced.notify_all()
        return len(notifications)

    def _lock_positions(self, tx: Tx) -> dict[str, int]:
        """This engine's read models' positions, their rows locked for the batch on
        PostgreSQL (in name order: engines running overlapping sets lock alike); engines
        running other read models (projection workers) are not held up."""
        marks = ", ".join("?" * len(self._names))
        lock = " FOR UPDATE" if self.views.dialect == "postgresql" else ""
        rows = tx.fetchall(
            f"SELECT name, position FROM {POSITIONS_TABLE} WHERE name IN ({marks}) "
            f"ORDER BY name{lock}",
            self._names,
        )
        return {name: int(pos) for name, pos in rows}

    def _before_unfollowed(self, tx: Tx, page: list[Notification]) -> list[Notification]:
        """The page up to the first event a followed read model (run by another engine)
        reads and has not applied yet: the events before it cannot depend on it. Its
        position is read without a lock: it only grows, and the read model may be ahead
        (so what a follower reads from it must not change once written: a partner's path)."""
        marks = ", ".join("?" * len(self._followed))
        rows = tx.fetchall(
            f"SELECT name, position FROM {POSITIONS_TABLE} WHERE name IN ({marks})",
            list(self._followed),
        )
        at = {name: int(position) for name, position in rows}
        for i, n in enumerate(page):
            for name, topics in self._followed.items():
                if n.topic in topics and n.id > at.get(name, 0):
                    self.waiting_for = name
                    return page[:i]
        return page

    def _notifications(self, start: int, limit: int, stop: int | None) -> list[Notification]:
        """The page after ``start``. A full page is likely followed by another: that one is
        fetched in the background while this one is applied (the database sends it while
        Python works), and used if the next batch starts where this one ends. Pages are
        final once visible: inserts take the events table's lock until they commit."""
        ahead, self._ahead = self._ahead, None
        if ahead is not None and ahead[0] == (start, limit, stop):
            page = ahead[1].result()
            self.pages_fetched_ahead += 1
        else:
            page = self._select(start, limit, stop)
        if len(page) == limit and (stop is None or page[-1].id < stop):
            if self._fetcher is None:
                self._fetcher = ThreadPoolExecutor(1, thread_name_prefix="projection-fetch")
            after = page[-1].id
            self._ahead = (
                (after, limit, stop),
                self._fetcher.submit(self._select, after, limit, stop),
            )
        return page

    def _select(self, start: int, limit: int, stop: int | None) -> list[Notification]:
        return list(
            self.recorder.select_notifications(start, limit, stop=stop, inclusive_of_start=False)
        )

    def _apply(
        self, tx: Tx, notifications: Sequence[Notification], positions: dict[str, int]
    ) -> None:
        behind = {p.name: positions.get(p.name, 0) for p in self.projections}
        # Usually every read model is behind the whole batch; one that is not (a rebuilt
        # one caught up alone, a worker's share) has each event checked against its position.
        ahead = any(behind[p.name] >= notifications[0].id for p in self.projections)
        # Each read model's events of the batch, in log order. A topic's route (the lists
        # of the read models that take its events as stored, and of those that take them
        # decoded) is worked out once per batch, not per event and reader.
        batches: dict[str, list[tuple[Any, int]]] = {p.name: [] for p in self.projections}
        routes: dict[str, tuple[list[list[tuple[Any, int]]], list[list[tuple[Any, int]]]]] = {}
        work: list[tuple[Notification, list[list[tuple[Any, int]]]]] = []  # still to decode
        for n in notifications:
            route = routes.get(n.topic)
            if route is None or ahead:
                readers = self._readers_of(n.topic)
                if ahead:
                    readers = tuple(p for p in readers if n.id > behind[p.name])
                route = (
                    [batches[p.name] for p in readers if p.name in self._reads_stored],
                    [batches[p.name] for p in readers if p.name not in self._reads_stored],
                )
                if not ahead:
                    routes[n.topic] = route
            stored, decoded = route
            for batch in stored:  # e.g. the hash chain: the bytes exactly as stored
                batch.append((n, n.id))
            if decoded:
                work.append((n, decoded))
        prefetch = getattr(self.mapper, "prefetch_keys", None)
        if prefetch is not None:  # the members' keys the batch decrypts with, at once
            prefetch(n for n, _ in work)
        # Decoded once, whoever reads them.
        decode = self.mapper.to_domain_event
        for n, decoded in work:
            item = (decode(n), n.id)
            for batch in decoded:
                batch.append(item)
        # Every read model reads what it needs first, before any write of the batch: a read
        # waits for the writes queued before it in the pipeline.
        for p in self.projections:
            prepare = getattr(p, "prepare", None)
            if prepare is not None and batches[p.name]:
                prepare(tx, batches[p.name])
        for p in self.projections:
            events = batches[p.name]
            if not events:
                continue
            for event, position in events:
                p.apply(tx, event, position)
            finish = getattr(p, "finish", None)
            if finish is not None:  # e.g. write the rows the batch folded, check invariants
                finish(tx)
            # Its writes go out now: the database works on them while the next read
            # model is computed (pipeline mode), not all of them at commit.
            tx.flush()
        for p in self.projections:
            check = getattr(p, "check", None)
            if check is not None and batches[p.name]:
                check(tx)

    def catch_up(
        self, until: int | None = None, on_progress: Callable[[Progress], None] | None = None
    ) -> int:
        """Apply everything there is now (or up to ``until``); returns events read."""
        head = self.recorder.max_notification_id() or 0
        target = head if until is None else min(until, head)
        started = time.monotonic()
        applied = 0
        waited: str | None = None
        while True:
            n = self.run_batch(until=target)
            applied += n
            if on_progress is not None:
                on_progress(Progress(self.position(), target, applied, time.monotonic() - started))
            if n == 0:
                if self.waiting_for is None:
                    return applied
                # Another worker runs a read model ours follow: wait for it to get ahead.
                if waited != self.waiting_for:
                    waited = self.waiting_for
                    log.info("waiting for read model %s (another worker's)", waited)
                time.sleep(POLL_INTERVAL_S)

    def catch_up_for(self, seconds_max: float) -> int:
        """Apply batches until caught up or ``seconds_max`` has passed; events read."""
        deadline = time.monotonic() + seconds_max
        applied = 0
        while time.monotonic() < deadline:
            n = self.run_batch()
            applied += n
            if n == 0:
                break
        return applied

    # -- the background follower ---------------------------------------------

    def start(self) -> None:
        assert self._thread is None
        self._stop.clear()
        if self.wakeups is not None:
            try:
                self.wakeups.listen()
            except Exception as e:  # the follower polls meanwhile and retries at each wait
                log.warning("not listening for new events yet: %s", e)
        self._thread = threading.Thread(target=self._follow, name="projections", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            if self.wakeups is not None:
                self.wakeups.notify()
            self._thread.join(timeout=10)
            self._thread = None
        if self.wakeups is not None:
            self.wakeups.close()
        self._ahead = None
        if self._fetcher is not None:
            self._fetcher.shutdown(wait=True)
            self._fetcher = None

    def _follow(self) -> None:
        while not self._stop.is_set():
            looked_at = time.monotonic()
            try:
                # Idle check without locks: a batch transaction locks every position row.
                caught_up = self.position() >= (self.recorder.max_notification_id() or 0)
                n = 0 if caught_up else self.run_batch()
                self.last_error = None
            except Exception as e:  # keep following; the error is visible in /health
                self.last_error = f"{type(e).__name__}: {e}"
                log.exception("projection batch failed")
                n = 0
                self._stop.wait(1.0)
            if n == 0:
                self.idle_checks += 1
                self._idle(looked_at)

    def _idle(self, looked_at: float) -> None:
        """Wait for new events: on a notification of them where there is one, else one
        poll interval. Never look again sooner than ``POLL_INTERVAL_S`` after the last
        look: under load, events gather into batches as they did with polling."""
        if self.wakeups is not None and not self._stop.is_set():
            self.wakeups.wait(self.idle_check_s, POLL_INTERVAL_S)
        rest = POLL_INTERVAL_S - (time.monotonic() - looked_at)
        if rest > 0:
            self._stop.wait(rest)

    def relevant_head(self, name: str, applied: int | None = None) -> int:
        """The position of the newest event the named projection reads (at least the position
        it has applied, ``applied`` if the caller has just read it): waiting for this, not
        the log's head, reads its own kind of writes without waiting for unrelated traffic."""
        projection = next(p for p in self.projections if p.name == name)
        last = self.position(name) if applied is None else applied
        if not projection.topics:
            return self.recorder.max_notification_id() or 0
        while True:
            page = self.recorder.select_notifications(
                last, BATCH_SIZE_MAX, topics=sorted(projection.topics), inclusive_of_start=False
            )
            if not page:
                return last
            last = page[-1].id

    def wait_for(
        self, position: int, name: str | None = None, timeout_s: float = WAIT_S_MAX
    ) -> bool:
        """Block until the (named) read model has applied ``position``; False on timeout."""
        assert timeout_s <= WAIT_S_MAX
        deadline = time.monotonic() + timeout_s
        while True:
            if self.position(name) >= position:
                return True
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            with self._advanced:
                self._advanced.wait(timeout=min(POLL_INTERVAL_S, remaining))

    # -- checksums ------------------------------------------------------------

    def checksums(self) -> dict[str, str]:
        """A hash over every row of every table of every projection, whatever the rows'
        order: two builds of the same read models in one database (a replay and the live
        views) are equal, and any row that differs, is missing or is extra shows.

        PostgreSQL hashes in the database: each row's text form through two seeded 64-bit
        hashes, summed (a multiset hash, so no sort), and only the sums come back; a
        million-event store's millions of rows used to be sent to Python, encoded and
        sorted. It is a consistency check between builds, not a seal: tampering with
        the events is the hash chain's to show. SQLite: every row encoded, in key order."""
        result: dict[str, str] = {}
        encoder = msgspec.json.Encoder()
        with self.views.read() as tx:
            for p in self.projections:
                digest = hashlib.sha256()
                for table in sorted(p.tables):
                    digest.update(table.encode())
                    if tx.dialect == "postgresql":
                        sums = tx.fetchone(
                            "SELECT COUNT(*), COALESCE(SUM(hashtextextended(r, 0)), 0), "
                            "COALESCE(SUM(hashtextextended(r, 1)), 0) "
                            f"FROM (SELECT t::TEXT AS r FROM {table} AS t) AS rows"
                        )
                        digest.update(repr(sums).encode())
                        continue
                    rows = sorted(
                        encoder.encode([_plain(v) for v in row])
                        for row in tx.fetchall(f"SELECT * FROM {table}")
                    )
                    for row in rows:
                        digest.update(row)
                        digest.update(b"\n")
                result[p.name] = digest.hexdigest()
        return result


def _plain(value: Any) -> Any:
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value).hex()
    if isinstance(value, (str, int, float)) or value is None:
        return value
    return str(value)
