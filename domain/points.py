"""Points as lots: credit, spend earliest-expiry first, expire, reverse (the rules).

- Every credit is a lot (``Member.PointsEarned``) with its source and expiry; a credit
  first pays back any debt (``DebtRecovered`` names the lots that paid).
- A spend (redemption, draw, negative adjustment) never overdraws: it takes from the
  lots alive at that moment, earliest expiry first, and names each lot it used.
- Lots whose expiry has come are expired (one ``PointsExpired`` per lot) before any
  spend of the member, and by the periodic sweep ``expire_points``.
- Only a reversal (a refund of an order whose points were already spent) may leave a
  negative balance: the part no lot covers is recorded as a debt.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Iterable
from datetime import datetime, timedelta
from typing import Any
from uuid import UUID

from domain.errors import BusinessRuleBroken, Conflict, InvalidInput
from domain.ledger import GLOBAL_SCOPE, Ledger, Outcome, RequestKey, UnitOfWork
from domain.loyalty import (
    DebtRecovered,
    PointsExpired,
    PointsReversed,
    PointsSpent,
    plan_take,
)
from domain.members import POINTS_LIFETIME, Member

SOURCES = frozenset({"scan", "order", "task", "prize", "adjustment"})
POINTS_PER_REQUEST_MAX = 10_000_000
REASON_LENGTH_MAX = 200
EXPIRY_BATCH_MAX = 1000
PATIENCE_ROUNDS_MAX = 6
PATIENCE_PAUSE_S_MAX = 0.05


class InsufficientPoints(BusinessRuleBroken):
    code = "insufficient_points"


def validate_points(points: int, field: str = "points") -> None:
    if not 1 <= points <= POINTS_PER_REQUEST_MAX:
        raise InvalidInput.field(field, f"1 to {POINTS_PER_REQUEST_MAX}")


def validate_reason(reason: str, field: str = "reason") -> None:
    if not reason.strip() or len(reason) > REASON_LENGTH_MAX:
        raise InvalidInput.field(field, f"1 to {REASON_LENGTH_MAX} characters")


def earn(
    member: Member,
    lot_id: str,
    points: int,
    source: str,
    cause: str,
    by: str,
    at: datetime,
    lifetime: timedelta = POINTS_LIFETIME,
) -> int:
    """Credit a lot of ``points`` (nothing if 0); a debt is recovered from it first."""
    assert source in SOURCES, source
    assert points >= 0
    if points == 0:
        return 0
    expire_due(member, by, at)  # what is due goes first: a new lot never revives an old one
    member.trigger_event(
        member.PointsEarned,
        timestamp=at,
        lot_id=lot_id,
        points=points,
        source=source,
        cause=cause,
        expires_at=at + lifetime,
        by=by,
    )
    wallet = member.loyalty.wallet
    if wallet.debt > 0:
        taken, left = plan_take([wallet.lots[lot_id]], min(wallet.debt, points))
        assert left == 0
        member.trigger_event(
            DebtRecovered, timestamp=at, points=sum(n for _, n in taken), lots=taken, by=by
        )
    return points


def expire_due(member: Member, by: str, at: datetime) -> int:
    """Expire every lot of the member whose expiry has come; returns the points expired."""
    expired = 0
    for lot in member.loyalty.wallet.due(at):
        member.trigger_event(
            PointsExpired, timestamp=at, lot_id=lot.lot_id, points=lot.remaining, by=by
        )
        expired += lot.remaining
    return expired


def spend(
    member: Member, spend_id: str, points: int, reason: str, cause: str, by: str, at: datetime
) -> tuple[tuple[str, int], ...]:
    """Take ``points`` from the member's live lots, earliest expiry first; never overdraw."""
    validate_points(points)
    expire_due(member, by, at)
    wallet = member.loyalty.wallet
    if wallet.debt > 0 or wallet.balance < points:
        raise InsufficientPoints(
            f"the member has {wallet.balance} points, {points} asked"
            + (  # the balance the member's page shows, debt included
                f" (a refund took back {wallet.debt} points already spent)" if wallet.debt else ""
            ),
            code="insufficient_points",
        )
    taken, left = plan_take(wallet.spendable(at), points)
    assert left == 0, "a positive balance without debt is covered by live lots"
    member.trigger_event(
        PointsSpent,
        timestamp=at,
        spend_id=spend_id,
        points=points,
        reason=reason,
        cause=cause,
        lots=taken,
        by=by,
    )
    return taken


def reverse(
    member: Member,
    reversal_id: str,
    points: int,
    reason: str,
    cause: str,
    by: str,
    at: datetime,
    first_lot: str | None = None,
) -> int:
    """Take back ``points`` (a refund): lot ``first_lot`` first, then earliest expiry;
    what no lot covers becomes a debt. Returns the debt added."""
    assert points > 0
    expire_due(member, by, at)
    taken, debt = plan_take(member.loyalty.wallet.spendable(at), points, first=first_lot)
    member.trigger_event(
        PointsReversed,
        timestamp=at,
        reversal_id=reversal_id,
        points=points,
        reason=reason,
        cause=cause,
        lots=taken,
        debt=debt,
        by=by,
    )
    return debt


# -- the runner's patience ------------------------------------------------------------


def execute_patiently(
    ledger: Ledger,
    key: RequestKey,
    decide: Callable[[UnitOfWork], dict[str, Any]],
    authorize: Callable[[UnitOfWork], None] = lambda _uow: None,
) -> Outcome:
    """``ledger.execute``, retried a few more rounds (with a random pause) when one
    member's aggregate is so contended that a round of attempts ran out: concurrency
    is the server's problem, never the client's."""
    for round_ in range(PATIENCE_ROUNDS_MAX):
        try:
            return ledger.execute(key, decide, authorize)
        except Conflict as e:
            if e.code != "contention" or round_ == PATIENCE_ROUNDS_MAX - 1:
                raise
            time.sleep(random.uniform(0, PATIENCE_PAUSE_S_MAX))
    raise AssertionError("unreachable")


# -- the periodic sweep -----------------------------------------------------------------


def members_with_due_lots(ledger: Ledger, now: datetime) -> list[UUID]:
    """Members holding a lot whose expiry has come, found by reading the log (no index).

    The server may pass a faster finder (a read model) to ``expire_points``.
    """
    found: set[UUID] = set()
    start = 0
    topic = Member.PointsEarned.TOPIC
    while True:
        page = ledger.recorder.select_notifications(
            start, EXPIRY_BATCH_MAX, inclusive_of_start=False, topics=[topic]
        )
        for notification in page:
            event: Any = ledger.mapper.to_domain_event(notification)
            if event.expires_at <= now:
                found.add(event.originator_id)
        if len(page) < EXPIRY_BATCH_MAX:
            return sorted(found)
        start = page[-1].id


def expire_points(
    ledger: Ledger, now: datetime, candidates: Iterable[UUID] | None = None, by: str = "system"
) -> int:
    """Expire every lot due by ``now``; returns the number of lots expired.

    Idempotent: a lot expires once (a second run finds nothing due). ``candidates``
    are member ids that may hold due lots (default: found by reading the log).
    """
    members = list(candidates) if candidates is not None else members_with_due_lots(ledger, now)
    expired_lots = 0
    for member_uuid in members:
        try:
            member: Any = ledger.repository.get(member_uuid)
        except Exception:
            continue
        if not isinstance(member, Member) or not member.loyalty.wallet.due(now):
            continue
        key = RequestKey(
            GLOBAL_SCOPE, "points-expiry", f"{member_uuid}@{now.isoformat()}", {"at": str(now)}
        )

        def decide(uow: UnitOfWork, member_uuid: UUID = member_uuid) -> dict[str, Any]:
            fresh = uow.get(Member, member_uuid, "member")
            lots = len(fresh.loyalty.wallet.due(now))
            points = expire_due(fresh, by, now)
            return {"member_id": str(member_uuid), "lots": lots, "points": points}

        outcome = execute_patiently(ledger, key, decide)
        if not outcome.repeated:
            expired_lots += int(outcome.answer["lots"])
    return expired_lots
