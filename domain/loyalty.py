"""A member's loyalty state (points lots, tier, tasks, draws) and the Member events that change it.

The events are Member events (topics ``siyu.Member.*``) kept here, beside the state they
change, so that ``domain.members`` stays small. ``domain.members`` imports this module,
so their topics are registered wherever a Member can be loaded.

Points are lots: every credit is a lot with its source, cause and expiry; every debit
names the lots it took from. The balance is the sum of what the lots have left minus
the debt (a debt exists only after a reversal of points already spent, and later
credits recover it first).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from eventsourcing.domain import Aggregate
from eventsourcing.utils import register_topic

GROWTH_WINDOW = timedelta(days=365)
Taken = tuple[tuple[str, int], ...]  # (lot id, points taken from it)


@dataclass
class Lot:
    lot_id: str
    source: str
    cause: str
    points: int
    remaining: int
    earned_at: datetime
    expires_at: datetime
    seq: int


@dataclass
class Wallet:
    """The open lots of one member (a lot is dropped when it has nothing left) and the debt."""

    lots: dict[str, Lot] = field(default_factory=dict)
    debt: int = 0
    seq: int = 0

    @property
    def balance(self) -> int:
        return sum(lot.remaining for lot in self.lots.values()) - self.debt

    def credit(
        self, lot_id: str, points: int, source: str, cause: str, at: datetime, expires_at: datetime
    ) -> None:
        assert points > 0, "a lot holds points"
        assert lot_id not in self.lots, f"lot {lot_id} credited twice"
        self.seq += 1
        self.lots[lot_id] = Lot(lot_id, source, cause, points, points, at, expires_at, self.seq)

    def take(self, taken: Taken) -> None:
        for lot_id, points in taken:
            lot = self.lots[lot_id]
            assert 0 < points <= lot.remaining, f"lot {lot_id} cannot give {points}"
            lot.remaining -= points
            if lot.remaining == 0:
                del self.lots[lot_id]

    def spendable(self, now: datetime) -> list[Lot]:
        """Lots not yet expired at ``now``, earliest expiry first (then earliest earned)."""
        live = [lot for lot in self.lots.values() if lot.expires_at > now and lot.remaining > 0]
        return sorted(live, key=lambda lot: (lot.expires_at, lot.seq))

    def due(self, now: datetime) -> list[Lot]:
        """Lots whose expiry has come, with points left (earliest first)."""
        late = [lot for lot in self.lots.values() if lot.expires_at <= now]
        return sorted(late, key=lambda lot: (lot.expires_at, lot.seq))


def plan_take(lots: list[Lot], points: int, first: str | None = None) -> tuple[Taken, int]:
    """Take ``points`` from ``lots`` in order (lot ``first`` before the others).

    Returns what each lot gives and the part no lot could cover.
    """
    assert points >= 0
    ordered = sorted(lots, key=lambda lot: lot.lot_id != first) if first is not None else lots
    taken: list[tuple[str, int]] = []
    left = points
    for lot in ordered:
        if left == 0:
            break
        n = min(lot.remaining, left)
        if n > 0:
            taken.append((lot.lot_id, n))
            left -= n
    return tuple(taken), left


@dataclass
class TaskProgress:
    items: set[str] = field(default_factory=set)
    completed: bool = False


@dataclass
class OrderReward:
    """What one order earned (points, growth) and what its refunds have reversed so far."""

    points: int = 0
    growth: int = 0
    points_reversed: int = 0
    growth_reversed: int = 0


@dataclass
class LoyaltyState:
    wallet: Wallet = field(default_factory=Wallet)
    tier: str | None = None  # None: the lowest tier of the policy in force
    tier_since: datetime | None = None
    growth_log: list[tuple[datetime, int]] = field(default_factory=list)
    earned_on: tuple[str, int] = ("", 0)  # (Shanghai day, capped points earned that day)
    draws: dict[str, int] = field(default_factory=dict)  # campaign -> draws made
    tasks: dict[str, TaskProgress] = field(default_factory=dict)
    orders: dict[str, OrderReward] = field(default_factory=dict)
    tags: tuple[str, ...] = ()
    distributor: str | None = None

    def gain(self, at: datetime, growth: int) -> None:
        self.growth_log.append((at, growth))
        horizon = at - GROWTH_WINDOW - timedelta(days=1)
        while self.growth_log and self.growth_log[0][0] < horizon:
            self.growth_log.pop(0)

    def rolling_growth(self, now: datetime) -> int:
        """Growth earned in the 365 days up to ``now`` (what tiers are judged on)."""
        since = now - GROWTH_WINDOW
        return sum(g for at, g in self.growth_log if at > since)

    def task(self, task_id: str) -> TaskProgress:
        return self.tasks.setdefault(task_id, TaskProgress())


CAPPED_SOURCES = frozenset({"scan", "order"})


def earned(member: Any, event: Any) -> None:
    """Called by ``Member.PointsEarned.apply``: the lot, growth, the daily counter."""
    state: LoyaltyState = member.loyalty
    state.wallet.credit(
        event.lot_id, event.points, event.source, event.cause, event.timestamp, event.expires_at
    )
    state.gain(event.timestamp, event.points)
    if event.source in CAPPED_SOURCES:
        day = shanghai_day(event.timestamp)
        before = state.earned_on[1] if state.earned_on[0] == day else 0
        state.earned_on = (day, before + event.points)
    assert member.points == state.wallet.balance


def shanghai_day(at: datetime) -> str:
    from domain.clock import SHANGHAI

    return at.astimezone(SHANGHAI).date().isoformat()


# -- events ------------------------------------------------------------------------


class PointsSpent(Aggregate.Event):
    """Points taken for a reason (redemption, draw, adjustment), naming the lots used."""

    TOPIC = "siyu.Member.PointsSpent"
    spend_id: str
    points: int
    reason: str
    cause: str
    lots: Taken
    by: str

    def apply(self, member: Any) -> None:
        assert sum(n for _, n in self.lots) == self.points > 0
        member.loyalty.wallet.take(self.lots)
        member.points -= self.points
        assert member.points == member.loyalty.wallet.balance >= 0


class PointsExpired(Aggregate.Event):
    TOPIC = "siyu.Member.PointsExpired"
    lot_id: str
    points: int
    by: str

    def apply(self, member: Any) -> None:
        member.loyalty.wallet.take(((self.lot_id, self.points),))
        member.points -= self.points
        assert member.points == member.loyalty.wallet.balance


class PointsReversed(Aggregate.Event):
    """Points taken back (a refund): from the lots (named), the rest becomes a debt."""

    TOPIC = "siyu.Member.PointsReversed"
    reversal_id: str
    points: int
    reason: str
    cause: str
    lots: Taken
    debt: int
    by: str

    def apply(self, member: Any) -> None:
        assert sum(n for _, n in self.lots) + self.debt == self.points > 0
        assert self.debt >= 0
        member.loyalty.wallet.take(self.lots)
        member.loyalty.wallet.debt += self.debt
        member.points -= self.points
        assert member.points == member.loyalty.wallet.balance


class DebtRecovered(Aggregate.Event):
    """A new credit pays back a debt: the lots give, the debt shrinks, the balance stays."""

    TOPIC = "siyu.Member.DebtRecovered"
    points: int
    lots: Taken
    by: str

    def apply(self, member: Any) -> None:
        assert sum(n for _, n in self.lots) == self.points > 0
        member.loyalty.wallet.take(self.lots)
        member.loyalty.wallet.debt -= self.points
        assert member.loyalty.wallet.debt >= 0
        assert member.points == member.loyalty.wallet.balance


class OrderRewarded(Aggregate.Event):
    """A payment earned points (its lot is a PointsEarned) and growth (per yuan paid)."""

    TOPIC = "siyu.Member.OrderRewarded"
    order_id: str
    payment_id: str
    amount_fen: int
    points: int
    growth: int
    by: str

    def apply(self, member: Any) -> None:
        reward = member.loyalty.orders.setdefault(self.order_id, OrderReward())
        reward.points += self.points
        reward.growth += self.growth
        member.growth += self.growth
        member.loyalty.gain(self.timestamp, self.growth)


class OrderRewardReversed(Aggregate.Event):
    """A refund took back what its part of the order earned (points and growth)."""

    TOPIC = "siyu.Member.OrderRewardReversed"
    order_id: str
    refund_id: str
    points: int
    growth: int
    by: str

    def apply(self, member: Any) -> None:
        reward = member.loyalty.orders[self.order_id]
        reward.points_reversed += self.points
        reward.growth_reversed += self.growth
        assert reward.points_reversed <= reward.points
        assert reward.growth_reversed <= reward.growth + reward.points
        member.growth -= self.growth
        member.loyalty.gain(self.timestamp, -self.growth)


class TierChanged(Aggregate.Event):
    TOPIC = "siyu.Member.TierChanged"
    tier: str
    previous: str
    direction: str  # up | down
    reason: str
    policy_version: int
    by: str

    def apply(self, member: Any) -> None:
        member.loyalty.tier = self.tier
        member.loyalty.tier_since = self.timestamp


class TaskProgressed(Aggregate.Event):
    TOPIC = "siyu.Member.TaskProgressed"
    task_id: str
    item: str
    count: int
    target: int
    by: str

    def apply(self, member: Any) -> None:
        progress = member.loyalty.task(self.task_id)
        progress.items.add(self.item)
        assert len(progress.items) == self.count


class TaskCompleted(Aggregate.Event):
    TOPIC = "siyu.Member.TaskCompleted"
    task_id: str
    reward_points: int
    by: str

    def apply(self, member: Any) -> None:
        progress = member.loyalty.task(self.task_id)
        assert not progress.completed, "a task is rewarded once"
        progress.completed = True


class DrawMade(Aggregate.Event):
    """One lucky draw: the inputs of its outcome (so anyone can recompute it) and the prize."""

    TOPIC = "siyu.Member.DrawMade"
    draw_id: str
    campaign_id: str
    counter: int
    client_seed: str
    roll: int
    prize_id: str | None
    awarded: bool
    cost_points: int
    by: str

    def apply(self, member: Any) -> None:
        assert member.loyalty.draws.get(self.campaign_id, 0) == self.counter
        member.loyalty.draws[self.campaign_id] = self.counter + 1


class Rebound(Aggregate.Event):
    """HQ moved a member's permanent binding to another store, with a reason."""

    TOPIC = "siyu.Member.Rebound"
    store: str
    previous: str | None
    reason: str
    by: str

    def apply(self, member: Any) -> None:
        member.bound_store = self.store


class Tagged(Aggregate.Event):
    TOPIC = "siyu.Member.Tagged"
    tags: tuple[str, ...]
    by: str

    def apply(self, member: Any) -> None:
        member.loyalty.tags = self.tags


class EnrolledAsDistributor(Aggregate.Event):
    """The member also sells: linked to a distributor partner (a group leader, say)."""

    TOPIC = "siyu.Member.EnrolledAsDistributor"
    partner: str
    by: str

    def apply(self, member: Any) -> None:
        member.loyalty.distributor = self.partner


class ContactUpdated(Aggregate.Event):
    """Name and phone: personal data, encrypted with the member's key."""

    TOPIC = "siyu.Member.ContactUpdated"
    personal_fields = ("name", "phone")
    subject_field = "member_id"
    member_id: str
    name: str | None
    phone: str | None
    by: str

    def apply(self, member: Any) -> None:
        member.name = self.name
        if self.phone is not None:
            member.phone = self.phone


MEMBER_EVENTS: tuple[type[Aggregate.Event], ...] = (
    PointsSpent,
    PointsExpired,
    PointsReversed,
    DebtRecovered,
    OrderRewarded,
    OrderRewardReversed,
    TierChanged,
    TaskProgressed,
    TaskCompleted,
    DrawMade,
    Rebound,
    Tagged,
    EnrolledAsDistributor,
    ContactUpdated,
)
for _event in MEMBER_EVENTS:
    register_topic(getattr(_event, "TOPIC"), _event)  # noqa: B009
