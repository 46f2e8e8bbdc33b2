"""Distributor levels: growth from the sales attributed to a distributor or clerk.

Levels and their privileges (a commission rate that overrides the split policy's
distributor rate) are HQ policy data, versioned. A distributor's standing is one
aggregate per partner (not a hot aggregate: only its own sales write it); each sale
attributed to it adds to its growth once the order's return window has closed (at
settlement, net of refunds: ``domain/handlers/order_rewards.py``), and a crossing is a
``Promoted`` event at once. Levels are not lowered automatically (a demotion would be an
HQ decision, not built).

A member who also sells (a group leader, 团长) is linked to its distributor partner
here and on the Member (``EnrolledAsDistributor``).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID, uuid5

from eventsourcing.domain import Aggregate

from domain import carry_forward
from domain.errors import InvalidInput
from domain.identity import namespace
from domain.ledger import GLOBAL_SCOPE, Ledger, Outcome, RequestKey, UnitOfWork
from domain.principal import Principal, Role

LEVEL_POLICY_ID = namespace("distributor-level-policy")
NS_STANDING = namespace("distributor-standing")
LEVELS_MAX = 10
NO_OVERRIDE = -1


def standing_id(partner: str) -> UUID:
    return uuid5(NS_STANDING, partner)


@dataclass(frozen=True)
class Level:
    name: str
    threshold_fen: int  # attributed sales needed
    commission_rate_bp: int = NO_OVERRIDE  # the distributor's split rate; -1: the policy's


@dataclass(frozen=True)
class LevelSchedule:
    version: int
    levels: tuple[Level, ...]

    def __post_init__(self) -> None:
        if not 1 <= len(self.levels) <= LEVELS_MAX or self.levels[0].threshold_fen != 0:
            raise InvalidInput.field("levels", f"1 to {LEVELS_MAX}, the first from 0")
        for before, after in zip(self.levels, self.levels[1:], strict=False):
            if after.threshold_fen <= before.threshold_fen:
                raise InvalidInput.field("levels", "thresholds strictly increase")
        for level in self.levels:
            if not 1 <= len(level.name) <= 40:
                raise InvalidInput.field("levels.name", "1 to 40 characters")
            if not NO_OVERRIDE <= level.commission_rate_bp <= 10_000:
                raise InvalidInput.field("levels.commission_rate_bp", "-1 (none) to 10000")

    def qualifying(self, sales_fen: int) -> Level:
        return [lv for lv in self.levels if lv.threshold_fen <= sales_fen][-1]

    def rank(self, name: str) -> int:
        return next((i for i, lv in enumerate(self.levels) if lv.name == name), 0)

    def as_data(self) -> dict[str, Any]:
        return {
            "version": self.version,
            "levels": [
                {
                    "name": lv.name,
                    "threshold": lv.threshold_fen,
                    "commission_rate_bp": (
                        None if lv.commission_rate_bp == NO_OVERRIDE else lv.commission_rate_bp
                    ),
                }
                for lv in self.levels
            ],
        }


# Until HQ publishes levels: the levels and their thresholds, but no rate of their own,
# so the split policy's distributor rate holds (API.md's defaults "until HQ publishes
# others"); a level's rate is money HQ decides, never a silent default.
DEFAULT_LEVELS = LevelSchedule(
    0,
    (
        Level("starter", 0),
        Level("senior", 1_000_000),  # 10,000 yuan sold
        Level("star", 5_000_000),  # 50,000 yuan sold
    ),
)


class LevelPolicy(Aggregate):
    TOPIC = "siyu.DistributorLevelPolicy"

    class Created(Aggregate.Created):
        """Unused: eventsourcing defines one per aggregate; ours is named in domain words."""

        TOPIC = "siyu.DistributorLevelPolicy.Created"

    class Started(Aggregate.Created):
        TOPIC = "siyu.DistributorLevelPolicy.Started"

    class Published(Aggregate.Event):
        TOPIC = "siyu.DistributorLevelPolicy.Published"
        policy_id: str
        version: int
        levels: tuple[tuple[str, int, int], ...]
        by: str

        def apply(self, policy: Any) -> None:
            policy.schedule = LevelSchedule(self.version, tuple(Level(*row) for row in self.levels))

    def __init__(self) -> None:
        self.schedule = DEFAULT_LEVELS


class DistributorStanding(Aggregate):
    TOPIC = "siyu.DistributorStanding"
    # an event per attributed sale, for as long as the distributor sells: a command
    # reads it from its state carried forward at most this many events ago
    CARRY_FORWARD_EVERY = 20

    class Created(Aggregate.Created):
        """Unused: eventsourcing defines one per aggregate; ours is named in domain words."""

        TOPIC = "siyu.DistributorStanding.Created"

    class Opened(Aggregate.Created):
        TOPIC = "siyu.DistributorStanding.Opened"
        partner: str
        level: str

    class SaleCredited(Aggregate.Event):
        TOPIC = "siyu.DistributorStanding.SaleCredited"
        amount_fen: int
        cause: str
        by: str

        def apply(self, standing: Any) -> None:
            standing.sales_fen += self.amount_fen

    class Promoted(Aggregate.Event):
        TOPIC = "siyu.DistributorStanding.Promoted"
        level: str
        previous: str
        reason: str
        policy_version: int
        by: str

        def apply(self, standing: Any) -> None:
            standing.level = self.level

    class MemberLinked(Aggregate.Event):
        TOPIC = "siyu.DistributorStanding.MemberLinked"
        member_id: str
        by: str

        def apply(self, standing: Any) -> None:
            standing.member_id = self.member_id

    class CarriedForward(carry_forward.CarriedForward):
        TOPIC = "siyu.DistributorStanding.CarriedForward"
        partner: str
        level: str
        sales_fen: int
        member_id: str | None

    def __init__(self, partner: str, level: str) -> None:
        self.partner = partner
        self.level = level
        self.sales_fen = 0
        self.member_id: str | None = None


def current_levels(uow: UnitOfWork) -> LevelSchedule:
    policy = uow.find(LevelPolicy, LEVEL_POLICY_ID)
    return DEFAULT_LEVELS if policy is None else policy.schedule


def standing(uow: UnitOfWork, partner: str) -> DistributorStanding:
    found = uow.find(DistributorStanding, standing_id(partner))
    if found is None:
        found = DistributorStanding._create(
            DistributorStanding.Opened,
            id=standing_id(partner),
            timestamp=uow.now,
            partner=partner,
            level=current_levels(uow).levels[0].name,
        )
        uow.add(found)
    return found


def credit_sale(uow: UnitOfWork, partner: str, amount_fen: int, cause: str, by: str) -> bool:
    """A sale attributed to ``partner`` (an order it brought): growth, maybe a promotion.

    Called by the settlement of the order (its return window closed), for the amount paid
    net of refunds; a refund after that calls it with a negative amount (growth shrinks,
    the level stays). Payments before ``Order.Paid`` version 2 called it at payment."""
    s = standing(uow, partner)
    if amount_fen == 0:
        return False
    s.trigger_event(
        DistributorStanding.SaleCredited,
        timestamp=uow.now,
        amount_fen=amount_fen,
        cause=cause,
        by=by,
    )
    schedule = current_levels(uow)
    target = schedule.qualifying(s.sales_fen)
    if schedule.rank(target.name) <= schedule.rank(s.level):
        return False
    s.trigger_event(
        DistributorStanding.Promoted,
        timestamp=uow.now,
        level=target.name,
        previous=s.level,
        reason=f"attributed sales {s.sales_fen} fen reached {target.threshold_fen} ({cause})",
        policy_version=schedule.version,
        by=by,
    )
    return True


def commission_rate_bp(uow: UnitOfWork, partner: str) -> int | None:
    """The split rate a distributor's level grants, or None to use the split policy's."""
    found = uow.find(DistributorStanding, standing_id(partner))
    schedule = current_levels(uow)
    level = schedule.levels[0] if found is None else schedule.levels[schedule.rank(found.level)]
    rate = level.commission_rate_bp
    return None if rate == NO_OVERRIDE else rate


def linked_member(uow: UnitOfWork, partner: str) -> str | None:
    found = uow.find(DistributorStanding, standing_id(partner))
    return None if found is None else found.member_id


def publish_levels(
    ledger: Ledger, by: Principal, policy_id: str, levels: tuple[Level, ...]
) -> Outcome:
    LevelSchedule(0, levels)
    rows = tuple((lv.name, lv.threshold_fen, lv.commission_rate_bp) for lv in levels)
    key = RequestKey(GLOBAL_SCOPE, "distributor-levels", policy_id, {"levels": rows})

    def authorize(_uow: UnitOfWork) -> None:
        by.require(Role.HQ)

    def decide(uow: UnitOfWork) -> dict[str, Any]:
        policy = uow.find(LevelPolicy, LEVEL_POLICY_ID)
        if policy is None:
            policy = LevelPolicy._create(LevelPolicy.Started, id=LEVEL_POLICY_ID, timestamp=uow.now)
            uow.add(policy)
        version = policy.schedule.version + 1
        policy.trigger_event(
            LevelPolicy.Published,
            timestamp=uow.now,
            policy_id=policy_id,
            version=version,
            levels=rows,
            by=by.scope_key,
        )
        return {"policy_id": policy_id, **policy.schedule.as_data()}

    return ledger.execute(key, decide, authorize)


def standing_answer(s: DistributorStanding | None, partner: str, at: datetime) -> dict[str, Any]:
    del at
    if s is None:
        return {
            "partner": partner,
            "level": DEFAULT_LEVELS.levels[0].name,
            "sales": 0,
            "member_id": None,
        }
    return {"partner": partner, "level": s.level, "sales": s.sales_fen, "member_id": s.member_id}
