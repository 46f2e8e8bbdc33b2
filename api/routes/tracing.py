"""Read side of one item, one code: trace, EPCIS export, inventory, alerts, sell-through."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, date, datetime
from typing import Annotated, Any

from litestar import Controller, Response, get
from litestar.params import PathParameter, QueryParameter

from api.deps import CallerDep, Cursor, Limit, MinPosition, PrincipalDep, ServicesDep
from api.services import (
    Services,
    decode_position_cursor,
    encode_cursor,
    page_limit,
    parse_time,
)
from domain.codes import CodeKind
from domain.errors import InvalidInput, NotAllowed, NotFound
from domain.principal import Principal, Role
from projections.alerts import list_alerts
from projections.epcis import EpcisStep, EpcisUnit, epcis_document
from projections.inventory import get_inventory
from projections.partners import get_partner
from projections.readings import Reading, run_reading
from projections.sell_through import sell_through
from projections.time_index import read_position_at
from projections.trace import gtins_of, read_trace, trace_at

CodePath = Annotated[str, PathParameter(max_length=300)]
PartnerPath = Annotated[str, PathParameter(max_length=40)]
ALERT_KINDS = ("diversion", "repeat_scan", "unshipped", "impossible_travel")


def _scope(principal: Principal) -> str | None:
    return None if principal.sees_everything else principal.path


def _outer_code(services: Services, principal: Principal, text: str) -> str:
    """The outer code a trace is kept under; a consumer code names its unit for HQ only."""
    code = services.store.ledger.codebook.parse(text)
    if code is None:
        raise NotFound("unknown or forged code", code="unknown_code")
    if code.kind is CodeKind.UNIT_CONSUMER:
        if not principal.sees_everything:
            raise NotFound("unknown or forged code", code="unknown_code")
        return str(services.store.ledger.codebook.outer_of(code))
    return code.serial


def _trace(services: Services, principal: Principal, text: str) -> dict[str, Any]:
    code = _outer_code(services, principal, text)
    with services.store.views.query() as tx:
        return run_reading(tx, _trace_as_of(code, _scope(principal), None))


def _trace_as_of(code: str, scope: str | None, at: datetime | None) -> Reading[dict[str, Any]]:
    """The trace (404 if unknown or outside the scope), as of ``at`` if given."""
    trace = yield from read_trace(code, scope)
    if trace is None:
        raise NotFound(f"no trace of {code} in your scope", code="unknown_code")
    if at is None:
        return trace
    position = yield from read_position_at(at)
    past = trace_at(trace, position)
    if past is None:
        raise NotFound(f"{trace['code']} had no history by {at.isoformat()}", code="not_yet")
    return {**past, "as_of": at.isoformat(), "as_of_position": position}


class TraceController(Controller):
    path = "/v1/codes"
    tags = ["trace"]

    @get("/{code:str}/trace", summary="The history of one unit or case")
    async def trace(
        self,
        code: CodePath,
        principal: PrincipalDep,
        services: ServicesDep,
        min_position: MinPosition,
        as_of: Annotated[str | None, QueryParameter(max_length=40, required=False)] = None,
    ) -> dict[str, Any]:
        # On the event loop: a trace is the hottest read after balances (services.reads).
        at = None if as_of is None else parse_time(as_of, "as_of")
        await services.await_view_async("trace", min_position)
        outer = _outer_code(services, principal, code)
        return await services.reads.run(_trace_as_of(outer, _scope(principal), at))

    @get("/{code:str}/epcis", sync_to_thread=True, summary="EPCIS 2.0 document of a unit")
    def epcis(
        self,
        code: CodePath,
        caller: CallerDep,
        services: ServicesDep,
        min_position: MinPosition,
    ) -> Response[dict[str, Any]]:
        principal = caller.principal()
        services.await_view("trace", min_position)
        trace = _trace(services, principal, code)
        book = services.store.ledger.codebook
        unit = EpcisUnit(
            code=trace["code"],
            gtin=trace["gtin"],
            sku=trace["sku"],
            url=book.url(trace["gtin"], trace["code"]),
        )
        steps = _epcis_steps(services, unit, trace)
        base = services.settings.code_base_url
        document = epcis_document(
            unit, steps, lambda c: f"{base}/partners/{c}", datetime.now(tz=UTC)
        )
        return Response(document, media_type="application/ld+json")


def _epcis_steps(services: Services, unit: EpcisUnit, trace: dict[str, Any]) -> list[EpcisStep]:
    """The builder's steps for the trace of a unit or of a case (``unit``: the code the
    document is about). A case's pack and unpack steps list its units, and its sell steps
    name a unit sold out of it (an unpack of that unit, as the unit's own document has it):
    the case is the parent of those, and each unit is named by its own GTIN's URL."""
    book = services.store.ledger.codebook
    history: list[dict[str, Any]] = trace["history"]
    own = trace["kind"] == "case"
    named = {
        code
        for item in history
        for code in (
            item.get("via"),
            item.get("parent"),
            item.get("left_case"),
            item.get("unit"),
            *item.get("units", ()),
        )
        if code is not None
    }
    with services.store.views.query() as tx:
        gtins = gtins_of(tx, sorted(named))

    def url(code: str | None) -> str | None:
        # (every code a trace names was commissioned, so has a GTIN)
        return None if code is None or code not in gtins else book.url(gtins[code], code)

    def urls(codes: Sequence[str]) -> tuple[str, ...]:
        return tuple(u for u in map(url, codes) if u is not None)

    steps: list[EpcisStep] = []
    for item in history:
        at = datetime.fromisoformat(item["at"])
        action, partner, position = item["action"], item["partner"] or "", item["position"]
        here = EpcisStep(at, position, action, partner)  # the step; replace() adds the rest
        if own and "units" in item:  # the case's pack or unpack
            units = urls(item["units"])
            steps.append(replace(here, container=unit.code, container_url=unit.url, units=units))
            continue
        if own and action == "sell":  # a unit sold out of the case left it
            units = urls([item["unit"]])
            steps.append(
                replace(
                    here, action="unpack", container=unit.code, container_url=unit.url, units=units
                )
            )
            continue
        container = item.get("via") or item.get("parent")
        if action == "sell" and item.get("left_case"):
            case = item["left_case"]
            steps.append(replace(here, action="unpack", container=case, container_url=url(case)))
        steps.append(
            replace(
                here,
                to=item.get("to"),
                container=container,
                container_url=url(container),
                via_container="via" in item,
                region_code=item.get("region_code"),
                outcome=item.get("outcome"),
            )
        )
    return steps


class InventoryController(Controller):
    path = "/v1/inventory"
    tags = ["trace"]

    @get("/{partner:str}", sync_to_thread=True, summary="Units on hand per SKU of a partner")
    def inventory(
        self,
        partner: PartnerPath,
        caller: CallerDep,
        services: ServicesDep,
        min_position: MinPosition,
    ) -> dict[str, Any]:
        principal = caller.principal()
        services.await_view("inventory", min_position)
        with services.store.views.read() as tx:
            found = get_partner(tx, partner)
            if found is None or not principal.may_see(found["path"]):
                raise NotFound(f"unknown partner {partner}", code="unknown_partner")
            return get_inventory(tx, partner)


class AlertController(Controller):
    path = "/v1/alerts"
    tags = ["trace"]

    @get("/", sync_to_thread=True, summary="Anomaly alerts (HQ: all; a dealer: its own)")
    def alerts(
        self,
        caller: CallerDep,
        services: ServicesDep,
        min_position: MinPosition,
        limit: Limit,
        cursor: Cursor,
        kind: Annotated[str | None, QueryParameter(max_length=40, required=False)] = None,
    ) -> dict[str, Any]:
        principal = caller.principal()
        if principal.role not in (Role.HQ, Role.AUDITOR, Role.DEALER):
            raise NotAllowed("alerts are for HQ and dealers")
        if kind is not None and kind not in ALERT_KINDS:
            raise InvalidInput.field("kind", f"one of {', '.join(ALERT_KINDS)}")
        size = page_limit(limit)
        after = decode_position_cursor(cursor)
        services.await_view("alerts", min_position)
        dealer = None if principal.sees_everything else principal.partner
        with services.store.views.read() as tx:
            items = list_alerts(tx, dealer, kind, after, size)
        next_cursor = encode_cursor(str(items[-1]["position"])) if len(items) == size else None
        return {"items": items, "next": next_cursor}


class SellThroughController(Controller):
    path = "/v1/sell-through"
    tags = ["trace"]

    @get("/{partner:str}", sync_to_thread=True, summary="Units sold in a partner's subtree")
    def sell_through(
        self,
        partner: PartnerPath,
        caller: CallerDep,
        services: ServicesDep,
        min_position: MinPosition,
        from_: Annotated[str | None, QueryParameter(name="from", required=False)] = None,
        to: Annotated[str | None, QueryParameter(required=False)] = None,
    ) -> dict[str, Any]:
        principal = caller.principal()
        first, last = _day(from_, "from", date(2000, 1, 1)), _day(to, "to", date(9999, 12, 31))
        services.await_view("sell_through", min_position)
        with services.store.views.read() as tx:
            found = get_partner(tx, partner)
            if found is None or not principal.may_see(found["path"]):
                raise NotFound(f"unknown partner {partner}", code="unknown_partner")
            result = sell_through(tx, _scope(principal), found["path"], first, last)
        assert result is not None
        return result


def _day(value: str | None, field: str, default: date) -> date:
    if value is None:
        return default
    try:
        return date.fromisoformat(value[:10])
    except ValueError:
        raise InvalidInput.field(field, "a date like 2026-11-23") from None
