"""Request bodies of the members and loyalty endpoints (unknown fields are refused)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from msgspec import Meta

from api.schemas import Body, ClientId, Code

Points = Annotated[int, Meta(ge=1, le=10_000_000)]
Reason = Annotated[str, Meta(min_length=1, max_length=200)]
ShortId = Annotated[str, Meta(min_length=1, max_length=64, pattern=r"^[\x21-\x7e]+$")]
Bp = Annotated[int, Meta(ge=0, le=100_000)]


class RedemptionIn(Body):
    redemption_id: ClientId
    points: Points
    reward: Reason


class AdjustmentIn(Body):
    adjustment_id: ClientId
    points: Annotated[int, Meta(ge=-10_000_000, le=10_000_000)]
    reason: Reason
    expires_in_days: Annotated[int, Meta(ge=1, le=3660)] | None = None


class DrawIn(Body):
    draw_id: ClientId
    campaign_id: ShortId
    client_seed: Annotated[
        str, Meta(min_length=1, max_length=64, pattern=r"^[\x20-\x39\x3b-\x7e]+$")
    ]


class RebindingIn(Body):
    change_id: ClientId
    store: Code
    reason: Reason


class TagsIn(Body):
    change_id: ClientId
    tags: Annotated[list[Annotated[str, Meta(min_length=1, max_length=40)]], Meta(max_length=20)]


class ContactIn(Body):
    change_id: ClientId
    name: Annotated[str, Meta(min_length=1, max_length=100)] | None = None
    phone: Annotated[str, Meta(pattern=r"^\d{5,15}$")] | None = None


class DistributorLinkIn(Body):
    partner: Code


class TierIn(Body):
    name: Annotated[str, Meta(min_length=1, max_length=40, pattern=r"^[A-Za-z0-9_-]+$")]
    threshold: Annotated[int, Meta(ge=0, le=10**12)]
    multiplier_bp: Annotated[int, Meta(ge=1, le=100_000)]
    discount_bp: Annotated[int, Meta(ge=0, le=10_000)] = 0


class TierPolicyIn(Body):
    policy_id: ShortId
    tiers: Annotated[list[TierIn], Meta(min_length=1, max_length=10)]
    evaluation_days: Annotated[int, Meta(ge=1, le=3660)] = 365


class PointRulesIn(Body):
    rules_id: ShortId
    points_per_yuan: Annotated[int, Meta(ge=0, le=1000)] = 1
    daily_cap: Annotated[int, Meta(ge=0, le=10_000_000)] = 0
    sku_points: dict[
        Annotated[str, Meta(min_length=1, max_length=40)], Annotated[int, Meta(ge=0, le=100_000)]
    ] = {}


class TaskIn(Body):
    task_id: ShortId
    kind: Annotated[str, Meta(min_length=1, max_length=40)]
    target: Annotated[int, Meta(ge=1, le=100_000)]
    starts_at: datetime
    ends_at: datetime
    sku: Annotated[str, Meta(min_length=1, max_length=40)] | None = None
    reward_points: Annotated[int, Meta(ge=0, le=1_000_000)] = 0
    reward: Annotated[int, Meta(ge=0, le=10_000_000)] = 0


class PrizeIn(Body):
    prize_id: ShortId
    name: Annotated[str, Meta(min_length=1, max_length=200)]
    value: Annotated[int, Meta(ge=0)]
    probability_ppm: Annotated[int, Meta(ge=1, le=1_000_000)]
    stock: Annotated[int, Meta(ge=0, le=1_000_000)]
    points: Annotated[int, Meta(ge=0, le=1_000_000)] = 0


class CampaignIn(Body):
    campaign_id: ShortId
    name: Annotated[str, Meta(min_length=1, max_length=200)]
    cost_points: Points
    prizes: Annotated[list[PrizeIn], Meta(min_length=1, max_length=20)]


class LevelIn(Body):
    name: Annotated[str, Meta(min_length=1, max_length=40)]
    threshold: Annotated[int, Meta(ge=0)]
    commission_rate_bp: Annotated[int, Meta(ge=0, le=10_000)] | None = None


class LevelsIn(Body):
    policy_id: ShortId
    levels: Annotated[list[LevelIn], Meta(min_length=1, max_length=10)]
