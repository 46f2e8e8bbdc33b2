"""Wiring of the money commands to the read models: the store finder, the settlement
runs (``siyu settle``, ``POST /v1/settlements`` and the server's periodic task) and
``siyu reconcile``."""

from __future__ import annotations

import argparse
import json
import logging
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from datetime import datetime
from typing import Any

from api.loyalty import open_store_as_of, settle_loyalty
from api.problems import ServiceUnavailable
from api.settings import Settings
from domain.errors import DomainError
from domain.handlers.orders import STORE_CANDIDATES_MAX, StoreFinder
from domain.handlers.settlement import DueOrders, SettlementReport, settle_due
from domain.principal import hq_admin
from projections.ledger_postings import last_position, position_at, to_micros
from projections.orders_view import due_orders
from projections.reconciliation import reconcile
from projections.statements import parse_period_bound
from projections.store import Store
from projections.store_finder import Current, DirectoryBehind, Search, nearest_stores

log = logging.getLogger("siyu.settlement")
SETTLE_INTERVAL_S = 60.0
SETTLE_FIRST_DELAY_S = 1.0
CATCH_UP_WAIT_S = 5.0


def store_finder(store: Store) -> StoreFinder:
    """Nearest active stores from the partner directory, once it has applied every partner
    event there is: a store registered just before the order is found, the choice is
    deterministic, and unrelated traffic (scans, payments) never makes an order wait.

    The nearest store is read alone (a small box, usually one statement); the others only
    if the write side refuses it (suspended or gone since the directory applied it).
    Reading twenty every time took a radius that holds twenty stores: 2.6 statements an
    order, and twenty rows ranked, where the bench's orders need one. On PostgreSQL the
    same statement checks that the directory is current (``Current``); on SQLite the
    directory and the events are two files, and that takes two statements before it."""

    nearest, others = Search(), Search()  # radii for one store and for the candidates
    current = _directory_current(store)

    def first_store(lat: float, lng: float) -> list[str]:
        deadline = time.monotonic() + CATCH_UP_WAIT_S
        while True:
            if current is None:
                _wait_for_directory(store, deadline)
            try:
                with store.views.query() as tx:  # one statement: no transaction needed
                    return nearest_stores(tx, lat, lng, 1, nearest, current)
            except DirectoryBehind as behind:
                waited = deadline - time.monotonic()
                if not store.engine.wait_for(behind.position, "partners", max(0.0, waited)):
                    raise ServiceUnavailable(
                        "the partner directory is catching up; retry"
                    ) from None

    def find(lat: float, lng: float) -> Iterator[str]:
        first = first_store(lat, lng)
        yield from first
        if not first:
            return
        with store.views.query() as tx:
            more = nearest_stores(tx, lat, lng, STORE_CANDIDATES_MAX, others)
        yield from [code for code in more if code not in first][: STORE_CANDIDATES_MAX - 1]

    return find


def _directory_current(store: Store) -> Current | None:
    """The check ``nearest_stores`` makes in its first statement (PostgreSQL: the events
    and the views share the database); None where it cannot."""
    directory = next(p for p in store.engine.projections if p.name == "partners")
    if store.database.is_sqlite or not directory.topics:
        return None
    recorder: Any = store.ledger.recorder
    events = f'"{recorder.datastore.schema}"."{recorder.events_table_name}"'
    return Current(events, tuple(sorted(directory.topics)), directory.name)


def _wait_for_directory(store: Store, deadline: float) -> None:
    applied = store.engine.position("partners")
    needed = store.engine.relevant_head("partners", applied)
    remaining = max(0.0, deadline - time.monotonic())
    if needed > applied and not store.engine.wait_for(needed, "partners", remaining):
        raise ServiceUnavailable("the partner directory is catching up; retry")


def due_orders_of(store: Store) -> DueOrders:
    def due(now: datetime, after: tuple[str, str] | None, limit: int) -> Sequence[tuple[str, str]]:
        with store.views.read() as tx:
            return due_orders(tx, to_micros(now), after, limit)

    return due


def settle_now(store: Store) -> SettlementReport:
    """Settle every order due now; the orders view first catches up (bounded wait)."""
    store.engine.wait_for(store.head, "orders", timeout_s=CATCH_UP_WAIT_S)
    return settle_due(store.ledger, hq_admin(), due_orders_of(store))


class SettlementTask:
    """The server's periodic settlement run (a thread; started and stopped with the app)."""

    def __init__(self, store: Store, interval_s: float = SETTLE_INTERVAL_S) -> None:
        self.store = store
        self.interval_s = interval_s
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.last_error: str | None = None

    def start(self) -> None:
        assert self._thread is None
        self._thread = threading.Thread(target=self._run, name="settlement", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
            self._thread = None

    def _run(self) -> None:
        wait = SETTLE_FIRST_DELAY_S
        while not self._stop.wait(wait):
            wait = self.interval_s
            try:
                report = settle_now(self.store)
                settle_loyalty(self.store)  # expire points lots, evaluate tiers (issue 5)
                self.last_error = None
                if report.settled:
                    log.info("settled %d orders", len(report.settled))
            except Exception as e:  # keep running; the next run retries
                self.last_error = f"{type(e).__name__}: {e}"
                log.exception("settlement run failed")


# -- command line --------------------------------------------------------------------


def cmd_settle(args: argparse.Namespace, settings: Settings) -> int:
    store = open_store_as_of("settle", args, settings)
    try:
        store.engine.catch_up()
        report = settle_due(store.ledger, hq_admin(), due_orders_of(store))
        print(
            f"settled {len(report.settled)} orders (examined {report.examined}); "
            f"position {report.position}"
        )
        loyalty = settle_loyalty(store)
        print(
            f"expired {loyalty['lots_expired']} points lots; {loyalty['tiers_downgraded']} "
            "tier downgrades"
        )
        return 0
    finally:
        store.close()


def reconciliation_report(
    store: Store, start_at: datetime | None, end_at: datetime | None
) -> dict[str, Any]:
    applied = store.engine.position("ledger")
    with store.views.read() as tx:
        start = 0 if start_at is None else min(applied, position_at(tx, start_at))
        end = applied if end_at is None else min(applied, position_at(tx, end_at))
        end = max(start, end)
        report = reconcile(tx, start, end)
        report["ledger_position"] = last_position(tx)
    return report


def cmd_reconcile(args: argparse.Namespace, settings: Settings) -> int:
    try:
        start = parse_period_bound(args.start, "from")
        end = parse_period_bound(args.end, "to")
    except DomainError as e:
        sys.stderr.write(f"siyu reconcile: {e.detail}\n")
        return 2
    store = settings.open_store()
    try:
        store.engine.catch_up()
        report = reconciliation_report(store, start, end)
    finally:
        store.close()
    if args.json:
        print(json.dumps(report, indent=2, ensure_ascii=False))
    totals = report["totals"]
    print(
        f"positions {report['from_position']}..{report['to_position']}: "
        f"payments {totals['payments']} = shares {totals['shares_booked']}; "
        f"refunds {totals['refunds']} = reversals {totals['reversals']}; "
        f"task rewards {totals['task_rewards']}; "
        f"trial balance {totals['trial_balance']}; "
        f"{len(report['instructions_without_receipts'])} instructions without receipts"
    )
    for breach in report["breaches"]:
        sys.stdout.write(
            f"BREACH {breach['check']}: {breach['detail']} (positions {breach['evidence']})\n"
        )
    print("ok" if report["ok"] else f"breaches={len(report['breaches'])}")
    return 0 if report["ok"] else 1
