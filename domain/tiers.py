"""Growth and tiers: HQ-published, versioned tier policy; upgrade at once, downgrade yearly.

Growth counts what was earned (every point earned, every yuan paid) and is never
reduced by spending; only a refund takes back the growth its part earned. Tiers are
judged on the growth earned in the rolling 365 days:

- upgrade at once, by the very event whose growth crosses a threshold (the new
  multiplier applies from the next credit);
- downgrade only at an evaluation (the periodic sweep), and only after the tier was
  held for the policy's evaluation period (365 days by default): then the member
  drops to the tier its rolling growth qualifies for.

Every change is a ``TierChanged`` event with its reason and the policy version.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from uuid import UUID

from eventsourcing.domain import Aggregate

from domain.errors import InvalidInput
from domain.identity import namespace
from domain.ledger import GLOBAL_SCOPE, Ledger, RequestKey, UnitOfWork
from domain.loyalty import TierChanged
from domain.members import Member
from domain.principal import Principal, Role

TIER_POLICY_ID = namespace("tier-policy")
TIERS_MAX = 10
THRESHOLD_MAX = 10**12
RATE_BP_MAX = 100_000  # multipliers up to 10x
DISCOUNT_BP_MAX = 10_000
EVALUATION_DAYS_DEFAULT = 365


@dataclass(frozen=True)
class Tier:
    name: str
    threshold: int  # growth needed
    multiplier_bp: int  # points multiplier in basis points (1.2x = 12000)
    discount_bp: int  # privilege: discount on the mall price, basis points


@dataclass(frozen=True)
class TierSchedule:
    version: int
    tiers: tuple[Tier, ...]
    evaluation_days: int = EVALUATION_DAYS_DEFAULT

    def __post_init__(self) -> None:
        if not 1 <= len(self.tiers) <= TIERS_MAX:
            raise InvalidInput.field("tiers", f"1 to {TIERS_MAX} tiers")
        if self.tiers[0].threshold != 0:
            raise InvalidInput.field("tiers", "the first tier starts at growth 0")
        names = [t.name for t in self.tiers]
        if len(set(names)) != len(names):
            raise InvalidInput.field("tiers", "tier names are unique")
        for before, after in zip(self.tiers, self.tiers[1:], strict=False):
            if after.threshold <= before.threshold:
                raise InvalidInput.field("tiers", "thresholds strictly increase")
        for t in self.tiers:
            if not (t.name and len(t.name) <= 40 and t.name.isascii()):
                raise InvalidInput.field("tiers.name", "1 to 40 ASCII characters")
            if not 0 <= t.threshold <= THRESHOLD_MAX:
                raise InvalidInput.field("tiers.threshold", f"0 to {THRESHOLD_MAX}")
            if not 0 < t.multiplier_bp <= RATE_BP_MAX:
                raise InvalidInput.field("tiers.multiplier_bp", f"1 to {RATE_BP_MAX}")
            if not 0 <= t.discount_bp <= DISCOUNT_BP_MAX:
                raise InvalidInput.field("tiers.discount_bp", f"0 to {DISCOUNT_BP_MAX}")
        if not 1 <= self.evaluation_days <= 3660:
            raise InvalidInput.field("evaluation_days", "1 to 3660")

    @property
    def lowest(self) -> Tier:
        return self.tiers[0]

    def rank(self, name: str | None) -> int:
        """Index of tier ``name``; an unknown (retired) tier ranks as the lowest."""
        for i, t in enumerate(self.tiers):
            if t.name == name:
                return i
        return 0

    def get(self, name: str | None) -> Tier:
        return self.tiers[self.rank(name)]

    def qualifying(self, growth: int) -> Tier:
        return [t for t in self.tiers if t.threshold <= growth][-1]

    def as_data(self) -> dict[str, Any]:
        return {
            "version": self.version,
            "evaluation_days": self.evaluation_days,
            "tiers": [
                {
                    "name": t.name,
                    "threshold": t.threshold,
                    "multiplier_bp": t.multiplier_bp,
                    "discount_bp": t.discount_bp,
                }
                for t in self.tiers
            ],
        }


# API.md defaults: bronze 0, silver 1,000, gold 5,000, diamond 20,000; 1.0/1.2/1.5/2.0.
# The discounts are this project's defaults (docs/decisions/loyalty.md).
DEFAULT_TIERS = TierSchedule(
    version=0,
    tiers=(
        Tier("bronze", 0, 10_000, 0),
        Tier("silver", 1_000, 12_000, 200),
        Tier("gold", 5_000, 15_000, 500),
        Tier("diamond", 20_000, 20_000, 1_000),
    ),
)

TierRow = tuple[str, int, int, int]


class TierPolicy(Aggregate):
    """The tier policy HQ publishes; each publication is a new version (one aggregate)."""

    TOPIC = "siyu.TierPolicy"

    class Created(Aggregate.Created):
        """Unused: eventsourcing defines one per aggregate; ours is named in domain words."""

        TOPIC = "siyu.TierPolicy.Created"

    class Started(Aggregate.Created):
        TOPIC = "siyu.TierPolicy.Started"

    class Published(Aggregate.Event):
        TOPIC = "siyu.TierPolicy.Published"
        policy_id: str
        version: int
        tiers: tuple[TierRow, ...]
        evaluation_days: int
        by: str

        def apply(self, policy: Any) -> None:
            policy.schedule = TierSchedule(
                self.version, tuple(Tier(*row) for row in self.tiers), self.evaluation_days
            )

    def __init__(self) -> None:
        self.schedule = DEFAULT_TIERS

    @classmethod
    def start(cls, at: datetime) -> TierPolicy:
        return cls._create(cls.Started, id=TIER_POLICY_ID, timestamp=at)

    def publish(
        self, policy_id: str, tiers: tuple[Tier, ...], evaluation_days: int, by: str, at: datetime
    ) -> TierSchedule:
        schedule = TierSchedule(self.schedule.version + 1, tiers, evaluation_days)
        rows = tuple((t.name, t.threshold, t.multiplier_bp, t.discount_bp) for t in tiers)
        self.trigger_event(
            self.Published,
            timestamp=at,
            policy_id=policy_id,
            version=schedule.version,
            tiers=rows,
            evaluation_days=evaluation_days,
            by=by,
        )
        return schedule


def current_tiers(uow: UnitOfWork) -> TierSchedule:
    policy = uow.find(TierPolicy, TIER_POLICY_ID)
    return DEFAULT_TIERS if policy is None else policy.schedule


def tier_of(member: Member, schedule: TierSchedule) -> Tier:
    return schedule.get(member.loyalty.tier or schedule.lowest.name)


def upgrade_if_crossed(
    member: Member, schedule: TierSchedule, cause: str, by: str, at: datetime
) -> bool:
    """After a credit: move up at once if the rolling growth now qualifies higher."""
    current = tier_of(member, schedule)
    growth = member.loyalty.rolling_growth(at)
    target = schedule.qualifying(growth)
    if schedule.rank(target.name) <= schedule.rank(current.name):
        return False
    member.trigger_event(
        TierChanged,
        timestamp=at,
        tier=target.name,
        previous=current.name,
        direction="up",
        reason=f"growth {growth} in 365 days reached {target.threshold} ({cause})",
        policy_version=schedule.version,
        by=by,
    )
    return True


def downgrade_due(member: Member, schedule: TierSchedule, at: datetime) -> Tier | None:
    """The tier to drop to at an evaluation at ``at`` (None: keep the tier)."""
    current = tier_of(member, schedule)
    since = member.loyalty.tier_since
    if since is None or at - since < timedelta(days=schedule.evaluation_days):
        return None
    target = schedule.qualifying(member.loyalty.rolling_growth(at))
    if schedule.rank(target.name) >= schedule.rank(current.name):
        return None
    return target


def evaluate(member: Member, schedule: TierSchedule, by: str, at: datetime) -> bool:
    """The rolling evaluation: down to the qualifying tier once the tier was held a period."""
    current = tier_of(member, schedule)
    target = downgrade_due(member, schedule, at)
    if target is None:
        return False
    growth = member.loyalty.rolling_growth(at)
    member.trigger_event(
        TierChanged,
        timestamp=at,
        tier=target.name,
        previous=current.name,
        direction="down",
        reason=(
            f"evaluation: growth {growth} in the last 365 days is below "
            f"{current.threshold} ({current.name})"
        ),
        policy_version=schedule.version,
        by=by,
    )
    return True


def publish_tier_policy(
    ledger: Ledger,
    by: Principal,
    policy_id: str,
    tiers: tuple[Tier, ...],
    evaluation_days: int = EVALUATION_DAYS_DEFAULT,
) -> Any:
    TierSchedule(0, tiers, evaluation_days)  # validate before anything is loaded
    content = {
        "tiers": [[t.name, t.threshold, t.multiplier_bp, t.discount_bp] for t in tiers],
        "evaluation_days": evaluation_days,
    }
    key = RequestKey(GLOBAL_SCOPE, "tier-policy", policy_id, content)

    def authorize(_uow: UnitOfWork) -> None:
        by.require(Role.HQ)

    def decide(uow: UnitOfWork) -> dict[str, Any]:
        policy = uow.find(TierPolicy, TIER_POLICY_ID)
        if policy is None:
            policy = TierPolicy.start(uow.now)
            uow.add(policy)
        schedule = policy.publish(policy_id, tiers, evaluation_days, by.scope_key, uow.now)
        return {"policy_id": policy_id, **schedule.as_data()}

    return ledger.execute(key, decide, authorize)


def evaluate_tiers(
    ledger: Ledger, now: datetime, candidates: Iterable[UUID], by: str = "system"
) -> int:
    """Run the rolling evaluation for ``candidates`` (members); returns downgrades made."""
    from domain.points import execute_patiently

    changed = 0
    repository = ledger.repository
    policy: Any = repository.get(TIER_POLICY_ID) if TIER_POLICY_ID in repository else None
    schedule = policy.schedule if isinstance(policy, TierPolicy) else DEFAULT_TIERS
    for member_uuid in candidates:
        found: Any = repository.get(member_uuid)
        if not isinstance(found, Member) or downgrade_due(found, schedule, now) is None:
            continue
        key = RequestKey(
            GLOBAL_SCOPE, "tier-evaluation", f"{member_uuid}@{now.isoformat()}", {"at": str(now)}
        )

        def decide(uow: UnitOfWork, member_uuid: UUID = member_uuid) -> dict[str, Any]:
            member = uow.get(Member, member_uuid, "member")
            return {"downgraded": evaluate(member, current_tiers(uow), by, now)}

        outcome = execute_patiently(ledger, key, decide)
        changed += bool(outcome.answer["downgraded"]) and not outcome.repeated
    return changed
