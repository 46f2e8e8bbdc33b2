"""Consumer scans: authenticity, rewards, membership, binding, and the anomaly checks."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar
from uuid import UUID

from domain.alerts import Alert, AlertKind, TravelRule
from domain.catalog import Product
from domain.channel import Partner, PartnerKind
from domain.codes import CodeKind, ParsedCode
from domain.errors import BusinessRuleBroken, InvalidInput, NotFound
from domain.handlers.members import loyalty_on_first_scan, member_uuid
from domain.identity import case_id, neighbourhood, partner_id, product_id, unit_id
from domain.ledger import Ledger, Outcome, RequestKey, UnitOfWork
from domain.logistics import batch_of, whereabouts
from domain.members import Member, validate_external_id, validate_phone
from domain.point_rules import POINT_RULES_ID
from domain.principal import Principal, Role
from domain.region import code_within, gcj02_to_wgs84, is_region_code, region_of
from domain.requests import ContentPath
from domain.tasks import TASK_BOARD_ID
from domain.tiers import TIER_POLICY_ID
from domain.units import Case, Unit, event_ref


@dataclass(frozen=True)
class ScanRequest:
    scan_id: str
    code: str
    external_id: str
    phone: str | None = None
    referrer: str | None = None
    lat: float | None = None
    lng: float | None = None
    datum: str = "wgs84"
    region_code: str | None = None

    def __post_init__(self) -> None:
        validate_external_id(self.external_id, "member.external_id")
        validate_phone(self.phone)
        if (self.lat is None) != (self.lng is None):
            raise InvalidInput.field("location", "both lat and lng")
        if self.region_code is not None and not (
            len(self.region_code) == 6 and is_region_code(self.region_code)
        ):
            raise InvalidInput.field("region_code", "a known 6-digit region code")
        if self.datum not in ("wgs84", "gcj02"):
            raise InvalidInput.field("location.datum", "wgs84 or gcj02")

    def content(self) -> dict[str, Any]:
        return {
            "code": self.code,
            "member": self.external_id,
            "phone": self.phone,
            "referrer": self.referrer,
            "location": [self.lat, self.lng, self.datum],
            "region_code": self.region_code,
        }

    # the phone and the exact coordinates: sealed with the member's key in the record
    PERSONAL: ClassVar[tuple[ContentPath, ...]] = (("phone",), ("location", 0), ("location", 1))

    def fix(self) -> tuple[float, float] | None:
        """The scan's WGS-84 coordinates (GCJ-02 input normalised to one datum)."""
        if self.lat is None or self.lng is None:
            return None
        if self.datum == "gcj02":
            return gcj02_to_wgs84(self.lat, self.lng)
        return (self.lat, self.lng)


@dataclass
class ScanContext:
    """What one scan found out, gathered while deciding."""

    request: ScanRequest
    by: Principal
    member_id: UUID  # the request's external id, keyed
    fix: tuple[float, float] | None
    region: str | None
    alerts: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class ScanRules:
    travel: TravelRule = field(default_factory=TravelRule)


def scan(
    ledger: Ledger, by: Principal, req: ScanRequest, rules: ScanRules = ScanRules()
) -> Outcome:
    by.require(Role.GATEWAY, Role.HQ)
    member = member_uuid(ledger, req.external_id)
    parsed = ledger.codebook.parse_with_gtin(req.code)  # once: each is an HMAC or two
    sent = req.content()
    content = sent if parsed is None else {**sent, "code": parsed[0].serial}  # bare or URL
    key = RequestKey(
        by.scope_key,
        "scan",
        req.scan_id,
        content,
        req.PERSONAL,
        str(member),
        sent=sent,
    )
    outer = None if parsed is None else _outer_serial(ledger, parsed[0])
    fix = req.fix()
    nearby = None if fix is None else neighbourhood(*fix, "scan")

    def decide(uow: UnitOfWork) -> dict[str, Any]:
        if parsed is None:
            raise NotFound("unknown or forged code", code="unknown_code")
        code, url_gtin = parsed
        batch = batch_of(uow, code)
        if url_gtin is not None and url_gtin != batch.gtin:
            raise NotFound("unknown or forged code", code="unknown_code")
        region = region_of(*fix) if fix is not None else req.region_code
        ctx = ScanContext(req, by, member, fix, region or req.region_code)
        if code.kind is CodeKind.CASE:
            return _case_scan(uow, ctx, code.serial)
        assert outer is not None, "a unit's code"
        product = uow.get(Product, product_id(batch.sku), f"product {batch.sku}")
        unit = uow.find(Unit, unit_id(outer))
        if unit is not None:  # its case, then the partners the checks and binding read
            case = None if unit.container is None else case_id(unit.container)
            if case is not None:  # with its holders as the case's last scan here found
                uow.preload_following([case])
            holder = whereabouts(uow, unit)
            holders = [partner_id(p) for p in (holder.owner, holder.dealer) if p is not None]
            others = [partner_id(p) for p in (unit.sold_by, req.referrer) if p is not None]
            uow.preload([*holders, *others])
            if case is not None:
                uow.hint(case, holders)
            if nearby is not None:  # the next scan here reads them with its first read
                uow.hint(nearby, [*holders, *others])
        if unit is None:
            unit = Unit.surface(outer, batch.batch_id, batch.sku, batch.gtin, by.scope_key, uow.now)
            uow.add(unit)
        if code.kind is CodeKind.UNIT_OUTER:
            return _outer_scan(uow, ctx, unit, rules)
        return _consumer_scan(uow, ctx, unit, product, rules)

    reads = _reads_of(member, parsed, outer, req.referrer)
    if nearby is not None and reads:  # the partners the last scan near here went on to read
        reads += ledger.hinted(nearby)
    return ledger.execute(key, decide, preload=reads)


def _outer_serial(ledger: Ledger, code: ParsedCode) -> str | None:
    """The serial of the unit's outer code (a unit's aggregate is named by it); None: a
    case's code."""
    if code.kind is CodeKind.CASE:
        return None
    return code.serial if code.kind is CodeKind.UNIT_OUTER else ledger.codebook.outer_of(code)


def _reads_of(
    member: UUID,
    parsed: tuple[ParsedCode, str | None] | None,
    outer: str | None,
    referrer: str | None,
) -> list[UUID]:
    """What a scan of ``parsed`` reads first: its unit, the referrer, the ``member``, the
    loyalty policies (each otherwise its own query)."""
    if parsed is None or outer is None:
        return []
    reads = [unit_id(outer)]
    if referrer is not None:
        reads.append(partner_id(referrer))
    if parsed[0].kind is not CodeKind.UNIT_OUTER:
        reads += [
            member,
            TIER_POLICY_ID,
            POINT_RULES_ID,
            TASK_BOARD_ID,
        ]
    return reads


def _case_scan(uow: UnitOfWork, ctx: ScanContext, serial: str) -> dict[str, Any]:
    if uow.find(Case, case_id(serial)) is None:
        raise BusinessRuleBroken("this case code was never commissioned", code="not_commissioned")
    # A case code is a logistics code: genuine, nothing more to record for a consumer.
    return _answer("authentic", None, 0, None, [])


def _record_scan(
    uow: UnitOfWork,
    ctx: ScanContext,
    unit: Unit,
    code_kind: str,
    member_id: str | None,
    outcome: str,
) -> str:
    lat, lng = ctx.fix if (ctx.fix is not None and member_id is not None) else (None, None)
    unit.trigger_event(
        Unit.Scanned,
        timestamp=uow.now,
        scan_id=ctx.request.scan_id,
        code_kind=code_kind,
        member_id=member_id,
        outcome=outcome,
        region_code=ctx.region,
        lat=lat,
        lng=lng,
        by=ctx.by.scope_key,
    )
    return event_ref(unit.pending_events[-1])


def _outer_scan(uow: UnitOfWork, ctx: ScanContext, unit: Unit, rules: ScanRules) -> dict[str, Any]:
    before = unit.last_fix
    scan_ref = _record_scan(uow, ctx, unit, "outer", None, "authentic")
    _check_anomalies(uow, ctx, unit, scan_ref, before, rules)
    return _answer("authentic", None, 0, None, ctx.alerts)


def _consumer_scan(
    uow: UnitOfWork, ctx: ScanContext, unit: Unit, product: Product, rules: ScanRules
) -> dict[str, Any]:
    member = _member(uow, ctx)
    member_id = member.member_id
    if unit.first_member is None:
        outcome = "first_scan"
    elif unit.first_member == member_id:
        outcome = "own_repeat"
    else:
        outcome = "repeat_scan"
    before, first_ref = unit.last_fix, unit.first_scan_ref
    scan_ref = _record_scan(uow, ctx, unit, "consumer", member_id, outcome)
    points = 0
    if outcome == "first_scan":
        _bind(uow, ctx, member, unit)
        points = loyalty_on_first_scan(
            uow,
            member,
            product.sku,
            product.points_per_scan,
            unit.serial,
            scan_ref,
            ctx.by.scope_key,
        )
    if outcome == "repeat_scan":
        assert first_ref is not None
        _alert(
            uow,
            ctx,
            unit,
            AlertKind.REPEAT_SCAN,
            (first_ref, scan_ref),
            "a consumer code scanned by a second member",
        )
    _check_anomalies(uow, ctx, unit, scan_ref, before, rules)
    return _answer(outcome, member_id, points, member.bound_store, ctx.alerts)


def _member(uow: UnitOfWork, ctx: ScanContext) -> Member:
    member = uow.find(Member, ctx.member_id)
    if member is None:
        member = Member.join(
            ctx.member_id, "scan", ctx.region, ctx.request.phone, ctx.by.scope_key, uow.now
        )
        uow.add(member)
    return member


def _bind(uow: UnitOfWork, ctx: ScanContext, member: Member, unit: Unit) -> None:
    """Bind to the store the unit was sold by or delivered to; referrer if none yet."""
    holder = whereabouts(uow, unit)
    store = unit.sold_by or holder.owner
    if store is not None and member.bound_store is None:
        partner = uow.find(Partner, partner_id(store))
        if partner is not None and partner.kind is PartnerKind.STORE:
            member.bind(store, f"first scan of {unit.serial}", ctx.by.scope_key, uow.now)
    referrer = ctx.request.referrer
    if referrer is not None and member.referrer is None:
        partner = uow.find(Partner, partner_id(referrer))
        if partner is None or partner.kind not in (PartnerKind.DISTRIBUTOR, PartnerKind.CLERK):
            raise BusinessRuleBroken(f"unknown referrer {referrer}", code="unknown_referrer")
        member.refer(referrer, ctx.by.scope_key, uow.now)


def _check_anomalies(
    uow: UnitOfWork,
    ctx: ScanContext,
    unit: Unit,
    scan_ref: str,
    before: Any,
    rules: ScanRules,
) -> None:
    holder = whereabouts(uow, unit)
    if holder.dealer is None or holder.dealer_ref is None:
        _alert(
            uow,
            ctx,
            unit,
            AlertKind.UNSHIPPED,
            (scan_ref,),
            "scanned before it was ever shipped out of HQ",
        )
    elif ctx.region is not None:
        dealer = uow.get(Partner, partner_id(holder.dealer), f"dealer {holder.dealer}")
        if not any(code_within(ctx.region, t) for t in dealer.region_codes):
            _alert(
                uow,
                ctx,
                unit,
                AlertKind.DIVERSION,
                (holder.dealer_ref, scan_ref),
                f"scanned in {ctx.region}, outside the territory of {dealer.code}",
            )
    if before is not None and ctx.fix is not None:
        now = (uow.now, ctx.fix[0], ctx.fix[1])
        if rules.travel.broken_by(before, now):
            _alert(
                uow,
                ctx,
                unit,
                AlertKind.IMPOSSIBLE_TRAVEL,
                (scan_ref,),
                "scanned too far from its previous scan too soon",
            )


def _alert(
    uow: UnitOfWork,
    ctx: ScanContext,
    unit: Unit,
    kind: AlertKind,
    evidence: tuple[str, ...],
    detail: str,
) -> None:
    holder = whereabouts(uow, unit)
    cause = f"{ctx.by.scope_key}/{ctx.request.scan_id}"
    uow.add(
        Alert.raise_(
            cause, kind, unit.serial, unit.sku, holder.dealer, ctx.region, evidence, detail, uow.now
        )
    )
    ctx.alerts.append(kind.value)


def _answer(
    outcome: str, member_id: str | None, points: int, bound_store: str | None, alerts: list[str]
) -> dict[str, Any]:
    return {
        "outcome": outcome,
        "member_id": member_id,
        "points_awarded": points,
        "bound_store": bound_store,
        "alerts": list(alerts),
    }
