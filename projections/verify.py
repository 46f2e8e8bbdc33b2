"""Verification of a store: the chain, its signed checkpoints, the ledger, the read models.

One run (``siyu verify``, or the server's background run) checks, reading only:

1. the chain: every stored event is hashed again from the genesis, in position order,
   and compared with the persisted ``audit_chain``. A chained position missing from
   the log is a deleted event; an event at a chained position whose hash differs was
   edited or moved (a swap shows at the smaller position); an event the chain never
   saw below its head was inserted. The first divergence is reported (after it, every
   recomputed hash differs by construction).
2. the checkpoints: each signature with the install's public key, and each signed
   hash against the persisted chain (a chain table rewritten to match edited events
   fails here unless the signing key was stolen too: keep digests outside).
3. the ledger: every event that carries ``postings`` of (account, asset, amount)
   sums to zero per asset, and so does the trial balance over all of them.
4. the read models: every projection is rebuilt from zero into a side build, up to
   the position the live views are at (read from one snapshot), and compared row for
   row; the first bad row is named by its ``position`` column when the table has one.
5. the states carried forward (``domain.carry_forward``), in the pass of 1 and 3: each
   is replayed onto its aggregate as rebuilt from the one before it (or from the
   aggregate's first event) and must restate it exactly. Commands read an aggregate from
   its newest one, so a wrong one would decide; the chain shows an edited one, this check
   a miscomputed one.

``first_bad_position`` names where the tampering is, not where it shows (``Report``):
the smallest position the log's own checks (1 and 2) name; only when they find nothing,
the smallest position the others (3, 4 and 5) name.
"""

from __future__ import annotations

import logging
import os
import secrets
import socket
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import msgspec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from eventsourcing.persistence import Notification

from domain.carry_forward import SUFFIX, CarriedForwardMismatch
from domain.clock import Clock, system_clock
from projections.chain import (
    CHAIN_TABLE,
    GENESIS,
    Checkpoint,
    all_checkpoints,
    chain_hashes,
    hash_of,
    key_id_of,
    signature_valid,
)
from projections.compare import (
    Tables,
    TableSummary,
    build_until,
    compare_with_live_copy,
    copy_live_build,
    diff_tables,
    fresh_projections,
    open_side,
    read_build,
    remove_side,
    unique_side_target,
)
from projections.store import Store

log = logging.getLogger("siyu.verify")

PAGE_SIZE = 1000
FINDINGS_MAX = 100
VERIFY_INTERVAL_S_DEFAULT = 3600.0

Progress = Callable[[str, int, int], None]
StopFlag = Callable[[], bool]


# The checks of the log itself: its events against the chain (an event edited, deleted,
# moved or inserted) and the chain against its signed checkpoints. Every other check
# (postings, trial_balance, carried_forward, view, rebuild) reads what the log says, so
# a tampered log makes them fail too, as a consequence, often at another position.
LOG_CHECKS = frozenset({"chain", "checkpoint"})


@dataclass(frozen=True)
class Finding:
    position: int
    check: str  # chain, checkpoint (LOG_CHECKS); postings, trial_balance, carried_forward,
    # view, rebuild
    detail: str

    def line(self) -> str:
        return f"{self.check} at position {self.position}: {self.detail}"


@dataclass
class Report:
    at: str
    checked: int = 0
    head: int = 0
    chain_head: int = 0
    findings: list[Finding] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    seconds: float = 0.0
    complete: bool = True
    # the smallest position named by the log's checks, and by the others (kept past
    # FINDINGS_MAX: a finding left out of the list still counts)
    first_in_log: int | None = None
    first_elsewhere: int | None = None

    @property
    def ok(self) -> bool:
        return not self.findings and self.complete

    @property
    def first_bad_position(self) -> int | None:
        """Where the tampering is, not where it shows.

        The log's own checks (``LOG_CHECKS``: the chain, the signed checkpoints) find the
        tampering itself: an event edited, deleted, moved or inserted, a chain rewritten.
        The other checks read what the log says, so what they find on a tampered log are
        consequences, at the positions where they show: a deleted event leaves the read
        model row it had updated at the position of the update before it (smaller), a
        deleted posting unbalances the trial balance at the last event. So when the log's
        checks find anything, this is the smallest position they name; only when the log
        is intact is it the smallest position the others name: the ledger's invariants
        (postings of an event, the trial balance), the states carried forward, the read
        models against a rebuild (a view edited in place, a projection's bug).

        The same rule for ``siyu verify``'s last line and ``GET /v1/audit/verify``."""
        return self.first_elsewhere if self.first_in_log is None else self.first_in_log

    def add(self, position: int, check: str, detail: str) -> None:
        if check in LOG_CHECKS:
            self.first_in_log = _smaller(self.first_in_log, position)
        else:
            self.first_elsewhere = _smaller(self.first_elsewhere, position)
        if len(self.findings) < FINDINGS_MAX:
            self.findings.append(Finding(position, check, detail))

    def as_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "checked": self.checked,
            "first_bad_position": self.first_bad_position,
            "at": self.at,
            "head": self.head,
            "chain_head": self.chain_head,
            "findings": [
                {"position": f.position, "check": f.check, "detail": f.detail}
                for f in self.findings
            ],
            "notes": list(self.notes),
            "seconds": round(self.seconds, 3),
        }


def _smaller(known: int | None, position: int) -> int:
    return position if known is None else min(known, position)


# -- ledger invariants ------------------------------------------------------------------


def postings_of(state: dict[str, Any]) -> list[tuple[str, str, int]] | None:
    """The (account, asset, amount) items of an event, if it carries postings."""
    raw = state.get("postings")
    if raw is None:
        return None
    items: list[tuple[str, str, int]] = []
    for item in raw:
        if isinstance(item, dict):
            items.append((str(item["account"]), str(item["asset"]), int(item["amount"])))
        else:
            account, asset, amount = item
            items.append((str(account), str(asset), int(amount)))
    return items


class _Ledger:
    """Per-event balance and the running trial balance per asset."""

    def __init__(self, store: Store, report: Report) -> None:
        self._mapper: Any = store.ledger.mapper
        self._report = report
        self.trial: dict[str, int] = defaultdict(int)
        self.events = 0

    def check(self, n: Notification) -> None:
        state_bytes = bytes(n.state)
        if b'"postings"' not in state_bytes:
            return
        try:
            _cls, state = self._mapper.decode_state(n)
            postings = postings_of(state)
        except Exception as e:  # an unreadable event is itself a finding
            self._report.add(n.id, "postings", f"cannot read postings: {type(e).__name__}: {e}")
            return
        if postings is None:
            return
        self.events += 1
        sums: dict[str, int] = defaultdict(int)
        for _account, asset, amount in postings:
            sums[asset] += amount
            self.trial[asset] += amount
        unbalanced = {asset: total for asset, total in sums.items() if total != 0}
        if unbalanced:
            self._report.add(n.id, "postings", f"postings do not sum to zero: {unbalanced}")

    def finish(self, last_position: int) -> None:
        unbalanced = {asset: total for asset, total in self.trial.items() if total != 0}
        if unbalanced:
            self._report.add(last_position, "trial_balance", f"not zero: {unbalanced}")
        if self.events:
            self._report.notes.append(f"{self.events} events with postings; trial balance zero")


class _CarriedForward:
    """Each carried-forward event against the events since the one before it (or since
    the aggregate's first), read backwards from it: nothing is kept between events, so a
    store of millions of restated members costs no memory here."""

    PAGE = 64  # events read backwards at a time (restatements are about 20 apart)

    def __init__(self, store: Store, report: Report) -> None:
        self._ledger = store.ledger
        self._report = report
        self.checked = 0

    def check(self, n: Notification) -> None:
        if not n.topic.endswith(SUFFIX):
            return
        try:
            self._ledger.aggregate_from(self._since_previous(n.originator_id, n.originator_version))
        except CarriedForwardMismatch as e:
            self._report.add(n.id, "carried_forward", str(e))
        except Exception as e:  # an unreadable or out-of-sequence stream is itself a finding
            self._report.add(n.id, "carried_forward", f"cannot replay: {type(e).__name__}: {e}")
        self.checked += 1

    def _since_previous(self, aggregate_id: Any, version: int) -> list[Any]:
        """The aggregate's events from the restatement before ``version`` (from its first
        event where there is none) up to ``version``, in version order."""
        recorder = self._ledger.recorder
        back: list[Any] = []
        upper = version
        while True:
            page = recorder.select_events(aggregate_id, lte=upper, desc=True, limit=self.PAGE)
            back.extend(page)
            earlier = (e for e in page if e.originator_version < version)
            if len(page) < self.PAGE or any(e.topic.endswith(SUFFIX) for e in earlier):
                break
            upper = page[-1].originator_version - 1
        events = back[::-1]
        restated = [
            i
            for i, e in enumerate(events)
            if e.topic.endswith(SUFFIX) and e.originator_version < version
        ]
        return events[restated[-1] :] if restated else events

    def finish(self) -> None:
        if self.checked:
            self._report.notes.append(f"{self.checked} states carried forward restate their events")


# -- the run ------------------------------------------------------------------------------


class Verifier:
    def __init__(
        self, store: Store, public_key: Ed25519PublicKey | None, clock: Clock = system_clock
    ) -> None:
        self.store = store
        self.public_key = public_key
        self.clock = clock

    def run(
        self,
        *,
        views: bool = True,
        on_progress: Progress | None = None,
        should_stop: StopFlag = lambda: False,
    ) -> Report:
        started = time.monotonic()
        report = Report(at=self.clock().isoformat())
        report.head = self.store.head
        self._chain(report, on_progress, should_stop)
        self._checkpoints(report)
        if views and not should_stop():
            self._views(report, on_progress, should_stop)
        if should_stop():
            report.complete = False
            report.notes.append("stopped before the end")
        report.seconds = time.monotonic() - started
        return report

    # 1 and 3: the chain and the ledger, in one pass over the log

    def _events(self) -> Iterator[Notification]:
        recorder = self.store.ledger.recorder
        start = 0
        while True:
            page = recorder.select_notifications(start, PAGE_SIZE, inclusive_of_start=False)
            yield from page
            if len(page) < PAGE_SIZE:
                return
            start = page[-1].id

    def _chain_rows(self) -> Iterator[tuple[int, str]]:
        after = 0
        while True:
            with self.store.views.read() as tx:
                rows = tx.fetchall(
                    f"SELECT position, hash FROM {CHAIN_TABLE} WHERE position > ? "
                    "ORDER BY position LIMIT ?",
                    (after, PAGE_SIZE),
                )
            yield from ((int(p), str(h)) for p, h in rows)
            if len(rows) < PAGE_SIZE:
                return
            after = int(rows[-1][0])

    def _chain(self, report: Report, on_progress: Progress | None, should_stop: StopFlag) -> None:
        with self.store.views.read() as tx:
            row = tx.fetchone(f"SELECT MAX(position) FROM {CHAIN_TABLE}")
        report.chain_head = int(row[0]) if row is not None and row[0] is not None else 0
        ledger = _Ledger(self.store, report)
        carried = _CarriedForward(self.store, report)
        rows = self._chain_rows()
        persisted = next(rows, None)
        prev = GENESIS
        diverged = False
        last = 0

        def diverge(position: int, detail: str) -> None:
            nonlocal diverged
            if not diverged:
                report.add(position, "chain", detail)
                diverged = True

        for n in self._events():
            if should_stop():
                return
            while persisted is not None and persisted[0] < n.id:
                diverge(persisted[0], "a chained event is missing from the log (deleted)")
                persisted = next(rows, None)
            prev = hash_of(prev, n.id, n)
            if persisted is not None and persisted[0] == n.id:
                if persisted[1] != prev.hex():
                    diverge(n.id, "the event differs from the one chained (edited or moved)")
                persisted = next(rows, None)
            elif n.id <= report.chain_head:
                diverge(n.id, "an event the chain never saw (inserted)")
            ledger.check(n)
            carried.check(n)
            report.checked += 1
            last = n.id
            if on_progress is not None and report.checked % PAGE_SIZE == 0:
                on_progress("chain", n.id, report.head)
        while persisted is not None:
            # past the events read: deleted, unless written since the run began
            if persisted[0] <= report.head or not self._exists(persisted[0]):
                diverge(persisted[0], "a chained event is missing from the log (deleted)")
            persisted = next(rows, None)
        ledger.finish(last)
        carried.finish()
        if on_progress is not None:
            on_progress("chain", last, report.head)
        if report.head > report.chain_head:
            report.notes.append(
                f"events after {report.chain_head} are not chained yet (head {report.head})"
            )

    # 2: the signed checkpoints

    def _checkpoints(self, report: Report) -> None:
        with self.store.views.read() as tx:
            checkpoints = all_checkpoints(tx)
            persisted = chain_hashes(tx, [c.position for c in checkpoints])
        if not checkpoints:
            report.notes.append("no signed checkpoint yet")
            return
        if self.public_key is None:
            report.notes.append("no public key: checkpoint signatures not checked")
        good_before = 0
        for c in checkpoints:
            problem = self._checkpoint_problem(c, persisted.get(c.position))
            if problem is None:
                good_before = c.position
                continue
            position = c.position if problem.startswith("signature") else good_before + 1
            report.add(position, "checkpoint", f"checkpoint at {c.position}: {problem}")
        report.notes.append(f"{len(checkpoints)} signed checkpoints, last at {good_before}")

    def _checkpoint_problem(self, c: Checkpoint, persisted_hash: str | None) -> str | None:
        if self.public_key is not None:
            if c.key_id != key_id_of(self.public_key):
                return f"signature by an unknown key {c.key_id}"
            if not signature_valid(self.public_key, c):
                return "signature invalid"
        if persisted_hash is None:
            return "its position is no longer chained (chain rows deleted)"
        if persisted_hash != c.hash:
            return "the chain was rewritten after it was signed"
        return None

    # 4: the read models against a rebuild from zero

    def _views(self, report: Report, on_progress: Progress | None, should_stop: StopFlag) -> None:
        first = Report(at=report.at)
        differences = self._compare_views(first, on_progress, should_stop)
        if differences and not should_stop():
            # A member forgotten during the run: the live views were read before the
            # forget reached them, the rebuild after the key was gone. Such a difference
            # is gone in a second run; tampering is not.
            report.notes.append("differences found: the read models compared once more")
            differences = self._compare_views(report, on_progress, should_stop)
        else:
            report.notes += first.notes
            for finding in first.findings:
                report.add(finding.position, finding.check, finding.detail)
        for position, difference in differences or []:
            # The summary only: the rows may hold personal data, which a stored report
            # would keep beyond a forget (`siyu diff` shows them).
            report.add(position, "view", difference.line() + " (rows: siyu diff)")

    def _compare_views(
        self, report: Report, on_progress: Progress | None, should_stop: StopFlag
    ) -> list[tuple[int, TableSummary]] | None:
        """The live read models against a rebuild from zero up to their position: the
        tables that differ, with the first position of each (None: not compared).

        PostgreSQL: the live tables are copied (one snapshot) into the side build's
        schema and compared there, so no row passes through this process; SQLite (the
        embedded store, for smaller logs): both builds are read and compared here."""
        projections = fresh_projections(self.store)
        target = unique_side_target(self.store, "verify")
        side = open_side(self.store, target, projections)
        in_database = side.views.dialect == "postgresql"
        try:
            live_tables: Tables = {}
            if in_database:
                live_positions = copy_live_build(self.store.views, side.views.schema, projections)
            else:
                live_positions, live_tables = read_build(self.store.views, projections)
            if not live_positions:
                return None
            until = min(live_positions.values())
            if len(set(live_positions.values())) > 1:
                report.notes.append(f"live views at different positions: {live_positions}")

            def progress(p: Any) -> None:
                if on_progress is not None:
                    on_progress("rebuild", p.position, until)

            try:
                reached = build_until(side, until, should_stop, progress)
            except Exception as e:
                failed_at = self._next_position(side.position())
                report.add(failed_at, "rebuild", f"rebuild failed: {type(e).__name__}: {e}")
                return None
            if should_stop():
                # e.g. the server is shutting down: a half-built side store proves nothing
                report.notes.append("interrupted before the read models were compared")
                return None
            if reached < until:
                # the log ends before the live views: events were deleted after projection
                report.add(reached + 1, "rebuild", f"the log ends at {reached}, views at {until}")
            compared = [
                t for p in projections if live_positions.get(p.name) == until for t in p.tables
            ]
            report.notes.append(f"read models rebuilt from zero up to {until} and compared")
            if in_database:
                summaries = compare_with_live_copy(side.views, compared)
            else:
                _, side_tables = read_build(side.views, projections)
                live_compared = {t: live_tables[t] for t in compared if t in live_tables}
                summaries = [d.summary() for d in diff_tables(live_compared, side_tables)]
            return [(until if d.first_position is None else d.first_position, d) for d in summaries]
        finally:
            remove_side(side)

    def _exists(self, position: int) -> bool:
        page = self.store.ledger.recorder.select_notifications(position, 1)
        return bool(page) and page[0].id == position

    def _next_position(self, after: int) -> int:
        page = self.store.ledger.recorder.select_notifications(after, 1, inclusive_of_start=False)
        return page[0].id if page else after + 1


# -- the server's background verification -----------------------------------------------


RUNS_TABLE = "audit_verification"
LEASE_S = 120.0  # a run renews its lease while it progresses; a dead holder's lapses
WAIT_POLL_S = 5.0  # how often a process waiting for another's run looks again


class SharedRuns:
    """One verification at a time per store, whichever process runs it, and its latest
    report for every process: a row in the read-model store holding the lease (who runs
    now, until when) and the latest complete report. N API processes no longer replay
    the whole store N times at start and every interval."""

    def __init__(self, store: Store) -> None:
        self.views = store.views
        self.holder = f"{socket.gethostname()}/{os.getpid()}/{secrets.token_hex(4)}"
        with self.views.write() as tx:
            tx.execute(
                f"CREATE TABLE IF NOT EXISTS {RUNS_TABLE} (id INTEGER PRIMARY KEY, "
                "holder TEXT, lease_until DOUBLE PRECISION NOT NULL, "
                "finished_at DOUBLE PRECISION, report TEXT)"
            )
            tx.execute(
                f"INSERT INTO {RUNS_TABLE} (id, holder, lease_until) VALUES (1, NULL, 0) "
                "ON CONFLICT (id) DO NOTHING"
            )

    def take(self) -> bool:
        """The lease, if nobody else holds a live one."""
        now = time.time()
        with self.views.write() as tx:
            tx.execute(
                f"UPDATE {RUNS_TABLE} SET holder = ?, lease_until = ? WHERE id = 1 "
                "AND (holder IS NULL OR holder = ? OR lease_until < ?)",
                (self.holder, now + LEASE_S, self.holder, now),
            )
            row = tx.fetchone(f"SELECT holder FROM {RUNS_TABLE} WHERE id = 1")
        return row is not None and row[0] == self.holder

    def renew(self) -> None:
        with self.views.write() as tx:
            tx.execute(
                f"UPDATE {RUNS_TABLE} SET lease_until = ? WHERE id = 1 AND holder = ?",
                (time.time() + LEASE_S, self.holder),
            )

    def finish(self, report: Report | None) -> None:
        """Release the lease; a complete report becomes everyone's latest."""
        with self.views.write() as tx:
            if report is not None and report.complete:
                tx.execute(
                    f"UPDATE {RUNS_TABLE} SET finished_at = ?, report = ? WHERE id = 1",
                    (time.time(), _json.encode(report.as_dict()).decode()),
                )
            tx.execute(
                f"UPDATE {RUNS_TABLE} SET holder = NULL, lease_until = 0 "
                "WHERE id = 1 AND holder = ?",
                (self.holder,),
            )

    def state(self) -> tuple[bool, float | None, dict[str, Any] | None]:
        """(someone runs one now, when the latest finished, its report)."""
        with self.views.read() as tx:
            row = tx.fetchone(
                f"SELECT holder, lease_until, finished_at, report FROM {RUNS_TABLE} WHERE id = 1"
            )
        if row is None:
            return False, None, None
        holder, until, finished, report = row
        running = holder is not None and float(until) >= time.time()
        latest = None if report is None else dict(_unjson.decode(report))
        return running, None if finished is None else float(finished), latest


_json = msgspec.json.Encoder()
_unjson = msgspec.json.Decoder()


class VerificationWatch:
    """Verifies the store once when the process starts (unless another process of the
    store finished a run since) and then every ``interval_s`` (unless another process
    did); one run at a time per store (``SharedRuns``); keeps the latest report.

    ``at_start=False`` leaves the first run to one interval after the start: a run
    rebuilds every read model from zero, minutes of the process's CPU on a store of
    millions of events, which an operator restarting processes one by one (or a
    benchmark that has just compared every read model with ``siyu replay``) may not
    want to pay at each start. Until a run finishes, ``status`` says ``ok: None``."""

    def __init__(
        self,
        store: Store,
        public_key: Ed25519PublicKey | None,
        interval_s: float = VERIFY_INTERVAL_S_DEFAULT,
        clock: Clock = system_clock,
        *,
        at_start: bool = True,
    ) -> None:
        assert interval_s > 0
        self.at_start = at_start
        self.verifier = Verifier(store, public_key, clock)
        self.shared = SharedRuns(store)
        self.interval_s = interval_s
        self.latest: Report | None = None
        self.last_error: str | None = None
        self.runs = 0  # runs this process made (complete or not)
        self._started_at = time.time()
        self._run_lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def running(self) -> bool:
        return self._run_lock.locked()

    def run_now(self) -> Report:
        """A run in this process, after the one another process may be running."""
        while not self.shared.take():
            if self._stop.wait(1.0):
                raise RuntimeError("stopping")
        return self._run()

    def _run(self) -> Report:
        report = None
        renewed = time.monotonic()

        def renew(_stage: str, _position: int, _of: int) -> None:
            nonlocal renewed
            if time.monotonic() - renewed > LEASE_S / 4:
                self.shared.renew()
                renewed = time.monotonic()

        try:
            with self._run_lock:
                self.runs += 1
                report = self.verifier.run(on_progress=renew, should_stop=self._stop.is_set)
                if report.complete:
                    self.latest = report
                if not report.complete:
                    log.info("verification interrupted (stopping); the previous result stands")
                elif not report.ok:
                    log.error(
                        "verification failed: first_bad_position=%s %s",
                        report.first_bad_position,
                        [f.line() for f in report.findings[:5]],
                    )
                return report
        finally:
            self.shared.finish(report)

    def due(self) -> bool:
        """No run finished since this process started, or the latest is ``interval_s`` old
        (without ``at_start``: not before one interval after the start)."""
        now = time.time()
        if not self.at_start and now < self._started_at + self.interval_s:
            return False
        _running, finished, _report = self.shared.state()
        if finished is None:
            return True
        return finished < max(self._started_at, now - self.interval_s)

    def start(self) -> None:
        assert self._thread is None
        self._stop.clear()
        self._thread = threading.Thread(target=self._loop, name="verification", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=30)
            self._thread = None

    def _loop(self) -> None:
        while not self._stop.is_set():
            wait = min(self.interval_s, WAIT_POLL_S)
            try:
                if self.due():
                    if self.shared.take():
                        self._run()
                        wait = self.interval_s
                    # else another process runs it: look again soon, adopt its report
                else:
                    wait = min(self.interval_s, WAIT_POLL_S * 12)
                self.last_error = None
            except Exception as e:  # keep the server up; the error shows at /v1/audit/verify
                self.last_error = f"{type(e).__name__}: {e}"
                log.exception("verification run failed")
                wait = self.interval_s
            self._stop.wait(wait)

    def status(self) -> dict[str, Any]:
        """The latest complete report of any process of this store."""
        elsewhere, finished, shared = self.shared.state()
        # A run finished before this process started says nothing of the store it found
        # (events may have been edited while no process ran): as before any run, until
        # one finishes. This process's complete runs are shared too (its own report is
        # only the fallback if that write failed).
        if finished is None or finished < self._started_at:
            shared = None
        latest = (
            shared if shared is not None else None if self.latest is None else self.latest.as_dict()
        )
        running = self.running or elsewhere
        if latest is None:
            return {
                "ok": None,
                "checked": 0,
                "first_bad_position": None,
                "at": None,
                "running": running,
                "error": self.last_error,
            }
        return {**latest, "running": running, "error": self.last_error}
