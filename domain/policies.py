"""Split policies published by HQ: one schedule per fulfilment mode, versioned.

A schedule is written only when HQ publishes (rarely) and read by every order (reads
do not contend): it is not a hot aggregate. The policy in force at a time is the one
with the latest ``effective_from`` not after that time (the later version on a tie);
before any, API.md's defaults (version 0).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID, uuid5

from eventsourcing.domain import Aggregate

from domain.errors import Conflict
from domain.identity import namespace
from domain.principal import Principal, Role
from domain.splits import Fulfilment, Override, RateSet, SplitPolicy, default_policy

NS_POLICY_SCHEDULE = namespace("split-policy-schedule")
VERSIONS_MAX = 10_000

OverrideData = tuple[str | None, str | None, dict[str, int], dict[str, int]]


def schedule_id(fulfilment: Fulfilment) -> UUID:
    return uuid5(NS_POLICY_SCHEDULE, fulfilment.value)


class PolicySchedule(Aggregate):
    TOPIC = "siyu.PolicySchedule"

    class Created(Aggregate.Created):
        """Unused: eventsourcing defines one per aggregate; ours is named in domain words."""

        TOPIC = "siyu.PolicySchedule.Created"

    class Opened(Aggregate.Created):
        TOPIC = "siyu.PolicySchedule.Opened"
        fulfilment: str

    class Published(Aggregate.Event):
        TOPIC = "siyu.PolicySchedule.Published"
        policy_id: str
        version: int
        rates_bp: dict[str, int]
        rates_bp_without_distributor: dict[str, int]
        remainder_to: str
        return_window_days: int
        window_days_by_category: dict[str, int]
        overrides: tuple[OverrideData, ...]
        effective_from: datetime
        by: str

        def apply(self, schedule: Any) -> None:
            schedule.policies.append(_policy_of(schedule.fulfilment, self))

    def __init__(self, fulfilment: str) -> None:
        self.fulfilment = Fulfilment(fulfilment)
        self.policies: list[SplitPolicy] = []

    @classmethod
    def open(cls, fulfilment: Fulfilment, at: datetime) -> PolicySchedule:
        return cls._create(
            cls.Opened, id=schedule_id(fulfilment), timestamp=at, fulfilment=fulfilment.value
        )

    def publish(self, policy: SplitPolicy, by: Principal, at: datetime) -> int:
        by.require(Role.HQ)
        if any(p.policy_id == policy.policy_id for p in self.policies):
            raise Conflict(f"policy {policy.policy_id} exists", code="policy_exists")
        assert policy.fulfilment is self.fulfilment
        assert len(self.policies) < VERSIONS_MAX
        version = len(self.policies) + 1
        self.trigger_event(
            self.Published,
            timestamp=at,
            policy_id=policy.policy_id,
            version=version,
            rates_bp=dict(policy.rates.with_distributor),
            rates_bp_without_distributor=dict(policy.rates.without_distributor),
            remainder_to=policy.remainder_to,
            return_window_days=policy.return_window_days,
            window_days_by_category=dict(policy.window_days_by_category),
            overrides=tuple(
                (
                    o.sku,
                    o.category,
                    dict(o.rates.with_distributor),
                    dict(o.rates.without_distributor),
                )
                for o in policy.overrides
            ),
            effective_from=policy.effective_from,
            by=by.scope_key,
        )
        return version

    def in_force(self, at: datetime) -> SplitPolicy:
        return policy_in_force(self.fulfilment, self.policies, at)


def policy_in_force(
    fulfilment: Fulfilment, policies: list[SplitPolicy], at: datetime
) -> SplitPolicy:
    started = [p for p in policies if p.effective_from <= at]
    if not started:
        return default_policy(fulfilment)
    return max(started, key=lambda p: (p.effective_from, p.version))


def _policy_of(fulfilment: Fulfilment, event: PolicySchedule.Published) -> SplitPolicy:
    return SplitPolicy(
        policy_id=event.policy_id,
        fulfilment=fulfilment,
        rates=RateSet(event.rates_bp, event.rates_bp_without_distributor),
        remainder_to=event.remainder_to,
        return_window_days=event.return_window_days,
        effective_from=event.effective_from,
        window_days_by_category=event.window_days_by_category,
        overrides=tuple(
            Override(sku, category, RateSet(with_d, without_d))
            for sku, category, with_d, without_d in event.overrides
        ),
        version=event.version,
    )
