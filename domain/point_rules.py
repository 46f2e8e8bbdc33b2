"""Point rules (HQ data, versioned): points per scan per product, points per yuan paid,
the daily cap per member; and the credits they drive (scans, payments, refunds).

A credit from a scan or an order is ``base x the member's tier multiplier`` (rounded
down), limited by the daily cap (points from scans and orders per member per Shanghai
day; 0 = no cap); the tier is the one held *before* the credit, so a multiplier won at a
crossing applies from the next credit. Growth grows by every point earned and, for a
payment, by every whole yuan paid. A refund reverses, cumulatively and in proportion,
the points and growth its order earned: after refunds totalling R of a paid P, the
order has given back floor(points x R / P) points and floor(growth x R / P) growth.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from eventsourcing.domain import Aggregate

from domain.errors import InvalidInput
from domain.identity import namespace
from domain.ledger import GLOBAL_SCOPE, Ledger, Outcome, RequestKey, UnitOfWork
from domain.loyalty import OrderRewarded, OrderRewardReversed, shanghai_day
from domain.members import Member
from domain.points import earn, reverse
from domain.principal import Principal, Role
from domain.tiers import TierSchedule, current_tiers, tier_of, upgrade_if_crossed

POINT_RULES_ID = namespace("point-rules")
POINTS_PER_YUAN_MAX = 1000
DAILY_CAP_MAX = 10_000_000
SKU_RULES_MAX = 1000
FEN_PER_YUAN = 100
BP = 10_000


@dataclass(frozen=True)
class PointRuleSet:
    version: int = 0
    points_per_yuan: int = 1
    daily_cap: int = 0  # points from scans and orders per member per day; 0 = no cap
    sku_points: tuple[tuple[str, int], ...] = ()  # per-product points per scan overrides

    def __post_init__(self) -> None:
        if not 0 <= self.points_per_yuan <= POINTS_PER_YUAN_MAX:
            raise InvalidInput.field("points_per_yuan", f"0 to {POINTS_PER_YUAN_MAX}")
        if not 0 <= self.daily_cap <= DAILY_CAP_MAX:
            raise InvalidInput.field("daily_cap", f"0 to {DAILY_CAP_MAX}")
        if len(self.sku_points) > SKU_RULES_MAX:
            raise InvalidInput.field("sku_points", f"at most {SKU_RULES_MAX}")
        for sku, points in self.sku_points:
            if not sku or len(sku) > 40 or not 0 <= points <= 100_000:
                raise InvalidInput.field("sku_points", "sku: 0 to 100000 points")

    def scan_points(self, sku: str, product_points: int) -> int:
        return dict(self.sku_points).get(sku, product_points)

    def as_data(self) -> dict[str, Any]:
        return {
            "version": self.version,
            "points_per_yuan": self.points_per_yuan,
            "daily_cap": self.daily_cap,
            "sku_points": dict(self.sku_points),
        }


DEFAULT_RULES = PointRuleSet()


class PointRules(Aggregate):
    TOPIC = "siyu.PointRules"

    class Created(Aggregate.Created):
        """Unused: eventsourcing defines one per aggregate; ours is named in domain words."""

        TOPIC = "siyu.PointRules.Created"

    class Started(Aggregate.Created):
        TOPIC = "siyu.PointRules.Started"

    class Published(Aggregate.Event):
        TOPIC = "siyu.PointRules.Published"
        rules_id: str
        version: int
        points_per_yuan: int
        daily_cap: int
        sku_points: tuple[tuple[str, int], ...]
        by: str

        def apply(self, rules: Any) -> None:
            rules.current = PointRuleSet(
                self.version, self.points_per_yuan, self.daily_cap, tuple(self.sku_points)
            )

    def __init__(self) -> None:
        self.current = DEFAULT_RULES

    @classmethod
    def start(cls, at: datetime) -> PointRules:
        return cls._create(cls.Started, id=POINT_RULES_ID, timestamp=at)


def current_rules(uow: UnitOfWork) -> PointRuleSet:
    rules = uow.find(PointRules, POINT_RULES_ID)
    return DEFAULT_RULES if rules is None else rules.current


def publish_point_rules(
    ledger: Ledger, by: Principal, rules_id: str, spec: PointRuleSet
) -> Outcome:
    content = {k: v for k, v in spec.as_data().items() if k != "version"}
    key = RequestKey(GLOBAL_SCOPE, "point-rules", rules_id, content)

    def authorize(_uow: UnitOfWork) -> None:
        by.require(Role.HQ)

    def decide(uow: UnitOfWork) -> dict[str, Any]:
        rules = uow.find(PointRules, POINT_RULES_ID)
        if rules is None:
            rules = PointRules.start(uow.now)
            uow.add(rules)
        version = rules.current.version + 1
        rules.trigger_event(
            PointRules.Published,
            timestamp=uow.now,
            rules_id=rules_id,
            version=version,
            points_per_yuan=spec.points_per_yuan,
            daily_cap=spec.daily_cap,
            sku_points=spec.sku_points,
            by=by.scope_key,
        )
        return {"rules_id": rules_id, **rules.current.as_data()}

    return ledger.execute(key, decide, authorize)


# -- credits ----------------------------------------------------------------------------


def multiplied(member: Member, schedule: TierSchedule, base: int) -> int:
    return base * tier_of(member, schedule).multiplier_bp // BP


def capped(member: Member, rules: PointRuleSet, points: int, at: datetime) -> int:
    if rules.daily_cap == 0:
        return points
    day, earned_today = member.loyalty.earned_on
    used = earned_today if day == shanghai_day(at) else 0
    return max(0, min(points, rules.daily_cap - used))


def credit(
    member: Member,
    schedule: TierSchedule,
    rules: PointRuleSet,
    lot_id: str,
    base: int,
    source: str,
    cause: str,
    by: str,
    at: datetime,
) -> int:
    """A scan or order credit: multiplier of the tier held now, the daily cap, then the
    upgrade its growth may cause. Returns the points credited."""
    points = capped(member, rules, multiplied(member, schedule, base), at)
    earn(member, lot_id, points, source, cause, by, at)
    upgrade_if_crossed(member, schedule, cause, by, at)
    return points


def points_for_scan(
    uow: UnitOfWork,
    member: Member,
    sku: str,
    product_points: int,
    serial: str,
    cause: str,
    by: str,
) -> int:
    """The first consumer scan of unit ``serial``: its product's points, by the rules."""
    rules = current_rules(uow)
    base = rules.scan_points(sku, product_points)
    return credit(
        member, current_tiers(uow), rules, f"scan:{serial}", base, "scan", cause, by, uow.now
    )


def points_for_payment(
    member: Member,
    schedule: TierSchedule,
    rules: PointRuleSet,
    amount_fen: int,
    order_id: str,
    payment_id: str,
    by: str,
    at: datetime,
) -> int:
    """A paid order: points per whole yuan (x multiplier, capped) and growth per yuan."""
    assert amount_fen >= 0
    yuan = amount_fen // FEN_PER_YUAN
    cause = f"order {order_id} payment {payment_id}"
    points = capped(member, rules, multiplied(member, schedule, yuan * rules.points_per_yuan), at)
    earn(member, f"order:{order_id}:{payment_id}", points, "order", cause, by, at)
    member.trigger_event(
        OrderRewarded,
        timestamp=at,
        order_id=order_id,
        payment_id=payment_id,
        amount_fen=amount_fen,
        points=points,
        growth=yuan,
        by=by,
    )
    upgrade_if_crossed(member, schedule, cause, by, at)
    return points


def reverse_for_refund(
    member: Member,
    order_id: str,
    refund_id: str,
    refunded_fen_total: int,
    paid_fen: int,
    by: str,
    at: datetime,
) -> tuple[int, int]:
    """After refunds totalling ``refunded_fen_total`` of ``paid_fen``: give back the
    order's points and growth in proportion (cumulative, so a full refund gives back
    exactly what was earned). Returns (points, growth) reversed by this refund."""
    assert paid_fen > 0 and 0 <= refunded_fen_total <= paid_fen
    reward = member.loyalty.orders.get(order_id)
    if reward is None:
        return (0, 0)
    earned_growth = reward.growth + reward.points  # growth from the yuan and from the points
    points = reward.points * refunded_fen_total // paid_fen - reward.points_reversed
    growth = earned_growth * refunded_fen_total // paid_fen - reward.growth_reversed
    if points <= 0 and growth <= 0:
        return (0, 0)
    cause = f"order {order_id} refund {refund_id}"
    if points > 0:
        reverse(
            member,
            f"refund:{order_id}:{refund_id}",
            points,
            "refund",
            cause,
            by,
            at,
            first_lot=_order_lot(member, order_id),
        )
    member.trigger_event(
        OrderRewardReversed,
        timestamp=at,
        order_id=order_id,
        refund_id=refund_id,
        points=max(points, 0),
        growth=max(growth, 0),
        by=by,
    )
    return (max(points, 0), max(growth, 0))


def _order_lot(member: Member, order_id: str) -> str | None:
    prefix = f"order:{order_id}:"
    for lot_id in member.loyalty.wallet.lots:
        if lot_id.startswith(prefix):
            return lot_id
    return None
