"""Commands on members: redemptions, adjustments, rebinding, tags, contact, distributor link;
and the loyalty part of a first consumer scan (called by the scan command)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any
from uuid import UUID

from domain.channel import Partner, PartnerKind
from domain.distributor_levels import DistributorStanding, standing
from domain.errors import BusinessRuleBroken, Conflict, InvalidInput, NotAllowed
from domain.identity import keyed_id, partner_id
from domain.ledger import GLOBAL_SCOPE, Ledger, Outcome, RequestKey, UnitOfWork
from domain.loyalty import ContactUpdated, EnrolledAsDistributor, Rebound, Tagged
from domain.members import POINTS_LIFETIME, Member, validate_external_id, validate_phone
from domain.point_rules import points_for_scan
from domain.points import earn, execute_patiently, spend, validate_points, validate_reason
from domain.principal import Principal, Role
from domain.tasks import on_first_scan
from domain.tiers import current_tiers, upgrade_if_crossed

TAGS_MAX = 20
LIFETIME_DAYS_MAX = 3660
TAG_LENGTH_MAX = 40
NAME_LENGTH_MAX = 100


def member_uuid(ledger_or_uow: Ledger | UnitOfWork, external_id: str) -> UUID:
    return keyed_id("member", ledger_or_uow.member_id_key, external_id)


def get_member(uow: UnitOfWork, external_id: str) -> Member:
    return uow.get(Member, member_uuid(uow, external_id), "member")


def loyalty_on_first_scan(
    uow: UnitOfWork,
    member: Member,
    sku: str,
    product_points: int,
    serial: str,
    scan_ref: str,
    by: str,
) -> int:
    """The first consumer scan of a unit: its points (rules, multiplier, cap), the tier
    it may win, and the tasks it advances. Returns the points credited for the scan."""
    points = points_for_scan(uow, member, sku, product_points, serial, scan_ref, by)
    on_first_scan(uow, member, sku, scan_ref, by)
    upgrade_if_crossed(member, current_tiers(uow), f"scan {scan_ref}", by, uow.now)
    return points


def redeem(
    ledger: Ledger, by: Principal, external_id: str, redemption_id: str, points: int, reward: str
) -> Outcome:
    """Spend points on a reward: never overdraws (422 ``insufficient_points``)."""
    validate_external_id(external_id)
    validate_points(points)
    validate_reason(reward, "reward")
    content = {"member": external_id, "points": points, "reward": reward}
    key = RequestKey(by.scope_key, "redemption", redemption_id, content)

    def authorize(_uow: UnitOfWork) -> None:
        by.require(Role.GATEWAY, Role.HQ)

    def decide(uow: UnitOfWork) -> dict[str, Any]:
        member = get_member(uow, external_id)
        taken = spend(
            member,
            f"redemption:{by.scope_key}/{redemption_id}",
            points,
            "redemption",
            f"reward {reward}",
            by.scope_key,
            uow.now,
        )
        return {
            "redemption_id": redemption_id,
            "member_id": member.member_id,
            "points": points,
            "reward": reward,
            "lots": [{"lot_id": lot, "points": n} for lot, n in taken],
            "points_left": member.points,
        }

    return execute_patiently(ledger, key, decide, authorize)


def adjust(
    ledger: Ledger,
    by: Principal,
    external_id: str,
    adjustment_id: str,
    points: int,
    reason: str,
    lifetime_days: int | None = None,
) -> Outcome:
    """HQ corrects a balance or grants a bonus: a credit (a lot, source ``adjustment``,
    valid ``lifetime_days``, default a year) or a spend."""
    validate_external_id(external_id)
    if lifetime_days is not None and not 1 <= lifetime_days <= LIFETIME_DAYS_MAX:
        raise InvalidInput.field("expires_in_days", f"1 to {LIFETIME_DAYS_MAX}")
    lifetime = POINTS_LIFETIME if lifetime_days is None else timedelta(days=lifetime_days)
    validate_points(abs(points) or 1)
    if points == 0:
        raise InvalidInput.field("points", "not 0")
    validate_reason(reason)
    content = {"member": external_id, "points": points, "reason": reason, "days": lifetime_days}
    key = RequestKey(by.scope_key, "points-adjustment", adjustment_id, content)

    def authorize(_uow: UnitOfWork) -> None:
        by.require(Role.HQ)

    def decide(uow: UnitOfWork) -> dict[str, Any]:
        member = get_member(uow, external_id)
        ref = f"adjustment:{by.scope_key}/{adjustment_id}"
        if points > 0:
            earn(member, ref, points, "adjustment", reason, by.scope_key, uow.now, lifetime)
            upgrade_if_crossed(member, current_tiers(uow), reason, by.scope_key, uow.now)
        else:
            spend(member, ref, -points, "adjustment", reason, by.scope_key, uow.now)
        return {"adjustment_id": adjustment_id, "points": points, "points_left": member.points}

    return execute_patiently(ledger, key, decide, authorize)


def rebind(
    ledger: Ledger, by: Principal, external_id: str, change_id: str, store: str, reason: str
) -> Outcome:
    """Only HQ moves a permanent binding, with a reason that stays on record."""
    validate_external_id(external_id)
    validate_reason(reason)
    content = {"member": external_id, "store": store, "reason": reason}
    key = RequestKey(by.scope_key, "member-rebinding", change_id, content)

    def authorize(_uow: UnitOfWork) -> None:
        by.require(Role.HQ)

    def decide(uow: UnitOfWork) -> dict[str, Any]:
        member = get_member(uow, external_id)
        partner = uow.partner(store)
        if partner.kind is not PartnerKind.STORE or not partner.is_active:
            raise BusinessRuleBroken(f"{store} is not an active store", code="not_a_store")
        if member.bound_store == store:
            raise Conflict(f"the member is bound to {store}", code="already_bound")
        member.trigger_event(
            Rebound,
            timestamp=uow.now,
            store=store,
            previous=member.bound_store,
            reason=reason,
            by=by.scope_key,
        )
        return {"member_id": member.member_id, "bound_store": store}

    return ledger.execute(key, decide, authorize)


def tag(
    ledger: Ledger, by: Principal, external_id: str, change_id: str, tags: list[str]
) -> Outcome:
    validate_external_id(external_id)
    if len(tags) > TAGS_MAX or any(not 1 <= len(t) <= TAG_LENGTH_MAX for t in tags):
        raise InvalidInput.field("tags", f"at most {TAGS_MAX} tags of 1 to {TAG_LENGTH_MAX}")
    clean = tuple(sorted(set(tags)))
    key = RequestKey(by.scope_key, "member-tags", change_id, {"member": external_id, "tags": clean})

    def authorize(_uow: UnitOfWork) -> None:
        by.require(Role.HQ)

    def decide(uow: UnitOfWork) -> dict[str, Any]:
        member = get_member(uow, external_id)
        member.trigger_event(Tagged, timestamp=uow.now, tags=clean, by=by.scope_key)
        return {"member_id": member.member_id, "tags": list(clean)}

    return ledger.execute(key, decide, authorize)


def update_contact(
    ledger: Ledger,
    by: Principal,
    external_id: str,
    change_id: str,
    name: str | None,
    phone: str | None,
) -> Outcome:
    """Name and phone: encrypted with the member's key; the answer shows neither."""
    validate_external_id(external_id)
    validate_phone(phone)
    if name is not None and not 1 <= len(name) <= NAME_LENGTH_MAX:
        raise InvalidInput.field("name", f"1 to {NAME_LENGTH_MAX} characters")
    key = RequestKey(
        by.scope_key,
        "member-contact",
        change_id,
        {"member": external_id, "n": name, "p": phone},
        personal=(("n",), ("p",)),  # sealed with the member's key in the record
        subject=str(member_uuid(ledger, external_id)),
    )

    def authorize(_uow: UnitOfWork) -> None:
        by.require(Role.GATEWAY, Role.HQ)

    def decide(uow: UnitOfWork) -> dict[str, Any]:
        member = get_member(uow, external_id)
        member.trigger_event(
            ContactUpdated,
            timestamp=uow.now,
            member_id=member.member_id,
            name=name,
            phone=phone,
            by=by.scope_key,
        )
        return {"member_id": member.member_id}

    return ledger.execute(key, decide, authorize)


def enrol_distributor(ledger: Ledger, by: Principal, external_id: str, partner: str) -> Outcome:
    """Link a member (a consumer who promotes, 团长) to its distributor partner, once."""
    validate_external_id(external_id)
    key = RequestKey(GLOBAL_SCOPE, "distributor-link", partner, {"member": external_id})

    def authorize(uow: UnitOfWork) -> None:
        found = uow.partner(partner)
        if found.kind is not PartnerKind.DISTRIBUTOR:
            raise BusinessRuleBroken(f"{partner} is not a distributor", code="not_a_distributor")
        if by.role is not Role.HQ and not (by.role is Role.STORE and by.partner == found.parent):
            raise NotAllowed("HQ or the distributor's store links a distributor to a member")

    def decide(uow: UnitOfWork) -> dict[str, Any]:
        member = get_member(uow, external_id)
        if member.loyalty.distributor is not None:
            raise Conflict("the member is linked to a distributor", code="already_linked")
        s = standing(uow, partner)
        if s.member_id is not None:
            raise Conflict(f"{partner} is linked to another member", code="already_linked")
        s.trigger_event(
            DistributorStanding.MemberLinked,
            timestamp=uow.now,
            member_id=member.member_id,
            by=by.scope_key,
        )
        member.trigger_event(
            EnrolledAsDistributor, timestamp=uow.now, partner=partner, by=by.scope_key
        )
        return {"member_id": member.member_id, "distributor": partner}

    return ledger.execute(key, decide, authorize)


def partner_exists(uow: UnitOfWork, code: str) -> bool:
    return uow.find(Partner, partner_id(code)) is not None
