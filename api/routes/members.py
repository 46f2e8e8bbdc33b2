"""Members and loyalty over HTTP: member view, redemptions, draws, policies, tasks, 4R.

A member is named by its external id; the member id is its keyed hash. Who sees a
member: HQ, auditors and the gateway; the store it is bound to (and that store's
dealer); the distributor or clerk that referred it. Everyone else gets 404. The phone
is shown masked, and in clear to the HQ role only (read from the write side).
"""

from __future__ import annotations

from datetime import date, datetime, timedelta
from typing import Annotated, Any
from uuid import UUID

from litestar import Controller, get, post
from litestar.params import JSONBody, PathParameter, QueryParameter

from api.deps import CallerDep, Cursor, LegacyAfter, Limit, MinPosition, ServicesDep
from api.loyalty_schemas import (
    AdjustmentIn,
    CampaignIn,
    ContactIn,
    DistributorLinkIn,
    DrawIn,
    LevelsIn,
    PointRulesIn,
    RebindingIn,
    RedemptionIn,
    TagsIn,
    TaskIn,
    TierPolicyIn,
)
from api.routes.partners import written
from api.services import (
    Services,
    decode_cursor,
    decode_pair_cursor,
    encode_pair_cursor,
    page,
    page_limit,
    parse_time,
    position_after,
)
from domain.clock import SHANGHAI
from domain.distributor_levels import NO_OVERRIDE, Level, publish_levels
from domain.draws import CampaignSpec, Prize
from domain.errors import InvalidInput, NotFound
from domain.handlers import draws, members
from domain.handlers.members import member_uuid
from domain.ledger import UnitOfWork
from domain.members import Member
from domain.point_rules import PointRuleSet, current_rules, publish_point_rules
from domain.principal import Principal, Role
from domain.tasks import TaskSpec, publish_task
from domain.tiers import DEFAULT_TIERS, Tier, current_tiers, publish_tier_policy
from projections.dashboard_4r import dashboard
from projections.loyalty_programs import clerk_progress, list_tasks, standing_of
from projections.members_view import get_member, member_lots, member_tasks, tier_distribution
from projections.partners import get_partner
from projections.points_history import points_history
from projections.time_index import position_at
from projections.time_travel import event_positions

ExternalId = Annotated[str, PathParameter(min_length=1, max_length=100)]
CampaignPath = Annotated[str, PathParameter(min_length=1, max_length=64)]
PartnerQuery = Annotated[str | None, QueryParameter(max_length=40, required=False)]
DayQuery = Annotated[date | None, QueryParameter(required=False)]
DASHBOARD_DAYS_MAX = 366
SEED_KEY_NAME = "draw-seed-key"


def seed_key(services: Services) -> bytes:
    return bytes.fromhex(services.store.secrets.get(SEED_KEY_NAME))


def may_see_member(principal: Principal, record: dict[str, Any]) -> bool:
    if principal.sees_everything or principal.role is Role.GATEWAY:
        return True
    if principal.role in (Role.CLERK, Role.DISTRIBUTOR):
        return bool(record["referrer"] == principal.partner)
    if principal.role in (Role.STORE, Role.DEALER):
        path = record["bound_path"]
        return path is not None and principal.may_see(path)
    return False


def visible_member(
    services: Services, principal: Principal, external_id: str, min_position: int | None
) -> dict[str, Any]:
    services.await_view("members", min_position)
    member_id = str(member_uuid(services.store.ledger, external_id))
    with services.store.views.read() as tx:
        record = get_member(tx, member_id)
        lots = member_lots(tx, member_id) if record is not None else []
    if record is None or not may_see_member(principal, record):
        raise NotFound("unknown member", code="unknown_member")
    record["lots"] = lots
    return record


def member_as_of(services: Services, member_id: str, at: datetime) -> dict[str, Any]:
    """Points, growth, tier, binding and referrer as they stood at ``at``: the member's own
    events up to the position committed by then (the time index), no other replay."""
    store = services.store
    with store.views.read() as tx:
        position = position_at(tx, at)
    member_key = UUID(member_id)
    versions = [v for v, p in event_positions(store, member_key).items() if p <= position]
    if not versions:
        raise NotFound(f"the member had not joined by {at.isoformat()}", code="not_yet")
    member: Any = None
    for stored in store.ledger.recorder.select_events(member_key, lte=max(versions)):
        event: Any = store.ledger.mapper.to_domain_event(stored)
        member = event.mutate(member)
    assert isinstance(member, Member)
    tier = member.loyalty.tier or DEFAULT_TIERS.lowest.name
    since = member.loyalty.tier_since
    return {
        "member_id": member_id,
        "points": member.points,
        "growth": member.growth,
        "tier": tier,
        "tier_since": None if since is None else since.isoformat(),
        "bound_store": member.bound_store,
        "referrer": member.referrer,
        "as_of": at.isoformat(),
        "as_of_position": position,
    }


class MemberController(Controller):
    path = "/v1/members"
    tags = ["members"]

    @get("/{external_id:str}", sync_to_thread=True, summary="A member (in scope)")
    def read(
        self,
        external_id: ExternalId,
        caller: CallerDep,
        services: ServicesDep,
        min_position: MinPosition,
        as_of: Annotated[str | None, QueryParameter(max_length=40, required=False)] = None,
    ) -> dict[str, Any]:
        principal = caller.principal()
        at = None if as_of is None else parse_time(as_of, "as_of")
        record = visible_member(services, principal, external_id, min_position)
        if at is not None:
            return member_as_of(services, record["member_id"], at)
        answer = {
            "member_id": record["member_id"],
            "points": record["points"],
            "growth": record["growth"],
            "tier": record["tier"],
            "tier_since": record["tier_since"],
            "bound_store": record["bound_store"],
            "first_store": record["first_store"],
            "referrer": record["referrer"],
            "distributor": record["distributor"],
            "phone_masked": record["phone_masked"],
            "channel": record["channel"],
            "region_code": record["region_code"],
            "tags": record["tags"],
            "debt": record["debt"],
            "lots": record["lots"],
            "joined_at": record["joined_at"],
        }
        if principal.role is Role.HQ:
            found: Any = services.store.ledger.repository.get(
                member_uuid(services.store.ledger, external_id)
            )
            answer["phone"] = found.phone if isinstance(found, Member) else None
        return answer

    @get("/{external_id:str}/points", sync_to_thread=True, summary="Points history")
    def history(
        self,
        external_id: ExternalId,
        caller: CallerDep,
        services: ServicesDep,
        min_position: MinPosition,
        limit: Limit,
        cursor: Cursor,
        after: LegacyAfter = None,
    ) -> dict[str, Any]:
        principal = caller.principal()
        size = page_limit(limit)
        start = position_after(cursor, after)
        record = visible_member(services, principal, external_id, min_position)
        services.await_view("points_history", min_position)
        with services.store.views.read() as tx:
            items = points_history(tx, record["member_id"], start, size)
        return {"member_id": record["member_id"], **page(items, size, "position")}

    @get("/{external_id:str}/tasks", sync_to_thread=True, summary="Task progress")
    def tasks(
        self,
        external_id: ExternalId,
        caller: CallerDep,
        services: ServicesDep,
        min_position: MinPosition,
    ) -> dict[str, Any]:
        principal = caller.principal()
        record = visible_member(services, principal, external_id, min_position)
        with services.store.views.read() as tx:
            items = member_tasks(tx, record["member_id"])
        return {"member_id": record["member_id"], "items": items}

    @post("/{external_id:str}/redemptions", status_code=201, sync_to_thread=True)
    def redeem(
        self,
        external_id: ExternalId,
        data: JSONBody[RedemptionIn],
        caller: CallerDep,
        services: ServicesDep,
    ) -> dict[str, Any]:
        principal = caller.principal()
        return written(
            members.redeem(
                services.store.ledger,
                principal,
                external_id,
                data.redemption_id,
                data.points,
                data.reward,
            )
        )

    @post("/{external_id:str}/adjustments", status_code=201, sync_to_thread=True)
    def adjust(
        self,
        external_id: ExternalId,
        data: JSONBody[AdjustmentIn],
        caller: CallerDep,
        services: ServicesDep,
    ) -> dict[str, Any]:
        principal = caller.principal()
        return written(
            members.adjust(
                services.store.ledger,
                principal,
                external_id,
                data.adjustment_id,
                data.points,
                data.reason,
                data.expires_in_days,
            )
        )

    @post("/{external_id:str}/draws", status_code=201, sync_to_thread=True)
    def draw(
        self,
        external_id: ExternalId,
        data: JSONBody[DrawIn],
        caller: CallerDep,
        services: ServicesDep,
    ) -> dict[str, Any]:
        principal = caller.principal()
        return written(
            draws.draw(
                services.store.ledger,
                principal,
                external_id,
                data.draw_id,
                data.campaign_id,
                data.client_seed,
                seed_key(services),
            )
        )

    @post("/{external_id:str}/binding", status_code=200, sync_to_thread=True)
    def rebind(
        self,
        external_id: ExternalId,
        data: JSONBody[RebindingIn],
        caller: CallerDep,
        services: ServicesDep,
    ) -> dict[str, Any]:
        principal = caller.principal()
        return written(
            members.rebind(
                services.store.ledger,
                principal,
                external_id,
                data.change_id,
                data.store,
                data.reason,
            )
        )

    @post("/{external_id:str}/tags", status_code=200, sync_to_thread=True)
    def tag(
        self,
        external_id: ExternalId,
        data: JSONBody[TagsIn],
        caller: CallerDep,
        services: ServicesDep,
    ) -> dict[str, Any]:
        principal = caller.principal()
        return written(
            members.tag(services.store.ledger, principal, external_id, data.change_id, data.tags)
        )

    @post("/{external_id:str}/contact", status_code=200, sync_to_thread=True)
    def contact(
        self,
        external_id: ExternalId,
        data: JSONBody[ContactIn],
        caller: CallerDep,
        services: ServicesDep,
    ) -> dict[str, Any]:
        principal = caller.principal()
        return written(
            members.update_contact(
                services.store.ledger,
                principal,
                external_id,
                data.change_id,
                data.name,
                data.phone,
            )
        )

    @post("/{external_id:str}/distributor", status_code=201, sync_to_thread=True)
    def enrol(
        self,
        external_id: ExternalId,
        data: JSONBody[DistributorLinkIn],
        caller: CallerDep,
        services: ServicesDep,
    ) -> dict[str, Any]:
        principal = caller.principal()
        return written(
            members.enrol_distributor(services.store.ledger, principal, external_id, data.partner)
        )


class LoyaltyPolicyController(Controller):
    """HQ's loyalty policy data: tier policy, point rules, tasks, distributor levels."""

    path = "/v1"
    tags = ["loyalty"]

    @post("/tier-policies", status_code=201, sync_to_thread=True)
    def publish_tiers(
        self, data: JSONBody[TierPolicyIn], caller: CallerDep, services: ServicesDep
    ) -> dict[str, Any]:
        principal = caller.principal()
        tiers = tuple(Tier(t.name, t.threshold, t.multiplier_bp, t.discount_bp) for t in data.tiers)
        return written(
            publish_tier_policy(
                services.store.ledger, principal, data.policy_id, tiers, data.evaluation_days
            )
        )

    @get("/tier-policies/current", sync_to_thread=True)
    def tier_policy(self, caller: CallerDep, services: ServicesDep) -> dict[str, Any]:
        caller.principal()  # any authenticated caller
        return current_tiers(UnitOfWork(services.store.ledger)).as_data()

    @post("/point-rules", status_code=201, sync_to_thread=True)
    def publish_rules(
        self, data: JSONBody[PointRulesIn], caller: CallerDep, services: ServicesDep
    ) -> dict[str, Any]:
        principal = caller.principal()
        spec = PointRuleSet(
            0, data.points_per_yuan, data.daily_cap, tuple(sorted(data.sku_points.items()))
        )
        return written(publish_point_rules(services.store.ledger, principal, data.rules_id, spec))

    @get("/point-rules/current", sync_to_thread=True)
    def point_rules(self, caller: CallerDep, services: ServicesDep) -> dict[str, Any]:
        caller.principal()  # any authenticated caller
        return current_rules(UnitOfWork(services.store.ledger)).as_data()

    @post("/member-tasks", status_code=201, sync_to_thread=True)
    def member_task(
        self, data: JSONBody[TaskIn], caller: CallerDep, services: ServicesDep
    ) -> dict[str, Any]:
        principal = caller.principal()
        return written(publish_task(services.store.ledger, principal, _task(data, "member")))

    @post("/clerk-tasks", status_code=201, sync_to_thread=True)
    def clerk_task(
        self, data: JSONBody[TaskIn], caller: CallerDep, services: ServicesDep
    ) -> dict[str, Any]:
        principal = caller.principal()
        return written(publish_task(services.store.ledger, principal, _task(data, "clerk")))

    @get("/tasks", sync_to_thread=True, summary="Tasks HQ published")
    def tasks(
        self,
        caller: CallerDep,
        services: ServicesDep,
        min_position: MinPosition,
        limit: Limit,
        cursor: Cursor,
    ) -> dict[str, Any]:
        caller.principal()  # any authenticated caller
        size, after = page_limit(limit), decode_cursor(cursor)
        services.await_view("loyalty_programs", min_position)
        with services.store.views.read() as tx:
            return page(list_tasks(tx, None, after, size), size, "task_id")

    @get("/clerk-tasks/progress", sync_to_thread=True, summary="Clerk task progress in scope")
    def clerk_progress(
        self,
        caller: CallerDep,
        services: ServicesDep,
        min_position: MinPosition,
        limit: Limit,
        cursor: Cursor,
        task_id: Annotated[str | None, QueryParameter(max_length=64, required=False)] = None,
    ) -> dict[str, Any]:
        principal = caller.principal()
        size, after = page_limit(limit), decode_pair_cursor(cursor)
        services.await_view("loyalty_programs", min_position)
        scope = None if principal.sees_everything else principal.path
        with services.store.views.read() as tx:
            items = clerk_progress(tx, scope, task_id, after, size)
        last = items[-1] if len(items) == size else None
        return {
            "items": items,
            "next": None if last is None else encode_pair_cursor(last["task_id"], last["clerk"]),
        }

    @post("/distributor-levels", status_code=201, sync_to_thread=True)
    def publish_levels(
        self, data: JSONBody[LevelsIn], caller: CallerDep, services: ServicesDep
    ) -> dict[str, Any]:
        principal = caller.principal()
        levels = tuple(
            Level(
                lv.name,
                lv.threshold,
                NO_OVERRIDE if lv.commission_rate_bp is None else lv.commission_rate_bp,
            )
            for lv in data.levels
        )
        return written(publish_levels(services.store.ledger, principal, data.policy_id, levels))

    @get("/distributors/{code:str}/standing", sync_to_thread=True)
    def standing(
        self,
        code: Annotated[str, PathParameter(max_length=40)],
        caller: CallerDep,
        services: ServicesDep,
        min_position: MinPosition,
    ) -> dict[str, Any]:
        principal = caller.principal()
        services.await_view("loyalty_programs", min_position)
        with services.store.views.read() as tx:
            partner = get_partner(tx, code)
            found = standing_of(tx, code)
        if partner is None or not principal.may_see(partner["path"]):
            raise NotFound(f"unknown partner {code}", code="unknown_partner")
        if found is None:
            return {"partner": code, "level": None, "sales": 0, "member_id": None}
        found.pop("path")
        return found

    @get("/tiers/distribution", sync_to_thread=True, summary="Members per tier in scope")
    def tier_mix(
        self,
        caller: CallerDep,
        services: ServicesDep,
        min_position: MinPosition,
        partner: PartnerQuery = None,
    ) -> dict[str, Any]:
        principal = caller.principal()
        path = _scope_path(services, principal, partner)
        services.await_view("members", min_position)
        with services.store.views.read() as tx:
            tiers = tier_distribution(tx, None if path == "HQ" else path)
        return {"partner": path.rsplit("/", 1)[-1], "tiers": tiers}

    @get("/dashboard/4r", sync_to_thread=True, summary="The 4R dashboard (docs/4r.md)")
    def four_r(
        self,
        caller: CallerDep,
        services: ServicesDep,
        min_position: MinPosition,
        partner: PartnerQuery = None,
        from_: Annotated[date | None, QueryParameter(name="from", required=False)] = None,
        to: DayQuery = None,
    ) -> dict[str, Any]:
        principal = caller.principal()
        if principal.role not in (Role.HQ, Role.AUDITOR, Role.DEALER):
            raise NotFound("the 4R dashboard is for HQ and dealers", code="not_found")
        path = _scope_path(services, principal, partner)
        today = datetime.now(tz=SHANGHAI).date()
        last = to or today
        first = from_ or (last - timedelta(days=29))
        if first > last or (last - first).days >= DASHBOARD_DAYS_MAX:
            raise InvalidInput.field(
                "from", f"on or before 'to', at most {DASHBOARD_DAYS_MAX} days"
            )
        services.await_view("dashboard_4r", min_position)
        with services.store.views.read() as tx:
            return dashboard(tx, path, first.isoformat(), last.isoformat())


class LuckyDrawController(Controller):
    path = "/v1/lucky-draws"
    tags = ["lucky draws"]

    @post("/", status_code=201, sync_to_thread=True, summary="Open a campaign (commits a seed)")
    def open(
        self, data: JSONBody[CampaignIn], caller: CallerDep, services: ServicesDep
    ) -> dict[str, Any]:
        principal = caller.principal()
        spec = CampaignSpec(
            data.campaign_id,
            data.name,
            data.cost_points,
            tuple(
                Prize(p.prize_id, p.name, p.value, p.probability_ppm, p.stock, p.points)
                for p in data.prizes
            ),
        )
        return written(
            draws.open_campaign(services.store.ledger, principal, spec, seed_key(services))
        )

    @get("/{campaign_id:str}", sync_to_thread=True, summary="A campaign, its stock, its seed")
    def read(
        self, campaign_id: CampaignPath, caller: CallerDep, services: ServicesDep
    ) -> dict[str, Any]:
        caller.principal()  # campaigns are public to every caller (the gateway shows them)
        return draws.read_campaign(services.store.ledger, campaign_id)

    @post(
        "/{campaign_id:str}/close",
        status_code=200,
        sync_to_thread=True,
        summary="Close the campaign and reveal its seed",
    )
    def close(
        self, campaign_id: CampaignPath, caller: CallerDep, services: ServicesDep
    ) -> dict[str, Any]:
        principal = caller.principal()
        return written(
            draws.close_campaign(services.store.ledger, principal, campaign_id, seed_key(services))
        )

    @get(
        "/{campaign_id:str}/verification",
        sync_to_thread=True,
        summary="Recompute every draw from the revealed seed",
    )
    def verification(
        self, campaign_id: CampaignPath, caller: CallerDep, services: ServicesDep
    ) -> dict[str, Any]:
        caller.principal()  # a revealed seed and the outcomes are for anyone to check
        return draws.verify_campaign(services.store.ledger, campaign_id).as_data()


def _task(data: TaskIn, audience: str) -> TaskSpec:
    return TaskSpec(
        data.task_id,
        audience,
        data.kind,
        data.sku,
        data.target,
        data.reward_points,
        data.reward,
        data.starts_at,
        data.ends_at,
    )


def _scope_path(services: Services, principal: Principal, partner: str | None) -> str:
    """The path of ``partner`` (default: the caller's own), if the caller may see it."""
    code = partner or principal.partner
    with services.store.views.read() as tx:
        found = get_partner(tx, code)
    if found is None or not principal.may_see(found["path"]):
        raise NotFound(f"unknown partner {code}", code="unknown_partner")
    return str(found["path"])
