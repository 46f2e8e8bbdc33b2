"""Wiring of the loyalty sweeps to the read models, and their command lines.

``settle_loyalty`` expires due points lots and runs the rolling tier evaluation; it is
called by ``siyu settle`` and by the server's periodic settlement task, and on its own
by ``siyu expire-points``. ``siyu verify-draws CAMPAIGN`` recomputes every draw of a
closed campaign from the event log (``--seed`` checks another seed: it must fail).
"""

from __future__ import annotations

import argparse
import logging
import sys
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

from api.settings import Settings
from domain.clock import FixedClock
from domain.errors import DomainError
from domain.handlers.draws import verify_campaign
from domain.ledger import UnitOfWork
from domain.points import expire_points
from domain.tiers import current_tiers, evaluate_tiers
from projections.members_view import members_due_for_evaluation, members_with_lots_due
from projections.statements import parse_period_bound
from projections.store import Store

log = logging.getLogger("siyu.loyalty")
PAGE_SIZE = 1000
PAGES_MAX = 100
CATCH_UP_WAIT_S = 5.0


def settle_loyalty(store: Store, now: datetime | None = None) -> dict[str, int]:
    """Expire every lot due by ``now``, then evaluate tiers held for a full period."""
    at = now or store.ledger.clock()
    lots = 0
    for _page in range(PAGES_MAX):
        store.engine.wait_for(store.head, "members", timeout_s=CATCH_UP_WAIT_S)
        with store.views.read() as tx:
            due = members_with_lots_due(tx, at.astimezone(UTC).isoformat(), PAGE_SIZE)
        expired = expire_points(store.ledger, at, [UUID(m) for m in due])
        lots += expired
        if len(due) < PAGE_SIZE or expired == 0:
            break
    period_days = current_tiers(UnitOfWork(store.ledger)).evaluation_days
    held_since = (at - timedelta(days=period_days)).astimezone(UTC).isoformat()
    store.engine.wait_for(store.head, "members", timeout_s=CATCH_UP_WAIT_S)
    with store.views.read() as tx:
        candidates = members_due_for_evaluation(tx, held_since, PAGE_SIZE * PAGES_MAX)
    downgraded = evaluate_tiers(store.ledger, at, [UUID(m) for m in candidates])
    if lots or downgraded:
        log.info("loyalty: expired %d lots, %d tier downgrades", lots, downgraded)
    return {"lots_expired": lots, "tiers_downgraded": downgraded}


def open_store_as_of(command: str, args: argparse.Namespace, settings: Settings) -> Store:
    """The store for ``settle`` and ``expire-points``: on the clock, or as of ``--now``.

    A ``--now`` later than the clock would close return windows or expire lots early, and
    its events, dated ahead, would make every later event read as of that time (the log's
    times never go back): refused unless ``--allow-future`` (tests). A refusal is one line
    on stderr and exit 2."""
    if args.now is None:
        return settings.open_store()
    try:
        now = parse_period_bound(args.now, "now")
    except DomainError as e:
        sys.stderr.write(f"siyu {command}: {e.detail}\n")
        raise SystemExit(2) from e
    if now is None:
        return settings.open_store()
    if now > datetime.now(UTC) and not args.allow_future:
        sys.stderr.write(
            f"siyu {command}: --now {now.isoformat()} is later than the clock; it would act "
            "ahead of time and date the log ahead (--allow-future: tests only)\n"
        )
        raise SystemExit(2)
    return settings.open_store(clock=FixedClock(now))


def cmd_expire_points(args: argparse.Namespace, settings: Settings) -> int:
    store = open_store_as_of("expire-points", args, settings)
    try:
        store.engine.catch_up()
        report = settle_loyalty(store)
        print(f"expired {report['lots_expired']} lots; {report['tiers_downgraded']} downgrades")
        return 0
    finally:
        store.close()


def cmd_verify_draws(args: argparse.Namespace, settings: Settings) -> int:
    """Exit 0 when every outcome verifies; 1 otherwise. The last line is ``ok`` or
    ``failed``."""
    store = settings.open_store()
    try:
        try:
            report = verify_campaign(store.ledger, args.campaign, seed=args.seed)
        except DomainError as e:
            print(f"{e.code}: {e.detail}")
            print("failed")
            return 1
        data: dict[str, Any] = report.as_data()
        print(
            f"campaign {args.campaign}: {data['checked']} draws checked; seed matches its "
            f"commitment: {data['seed_matches_commitment']}; awarded {data['awarded']}"
        )
        for failure in data["failures"][:10]:
            print(f"  mismatch: {failure}")
        print("ok" if report.ok else "failed")
        return 0 if report.ok else 1
    finally:
        store.close()
