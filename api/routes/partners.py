"""The channel tree over HTTP: register, read, list, change partners."""

from __future__ import annotations

from typing import Annotated, Any

from litestar import Controller, get, post
from litestar.params import JSONBody, PathParameter

from api.deps import CallerDep, Cursor, Limit, MinPosition, Parent, ServicesDep
from api.schemas import PartnerIn, ReactivationIn, RelocationIn, SuspensionIn, TerritoryIn
from api.services import decode_cursor, page, page_limit
from domain.channel import Location, PartnerKind, PartnerSpec
from domain.errors import NotFound
from domain.handlers import channel
from domain.ledger import Outcome
from projections.partners import get_partner, list_partners

CodePath = Annotated[str, PathParameter(max_length=40)]


def written(outcome: Outcome) -> dict[str, Any]:
    return {**outcome.answer, "position": outcome.position}


class PartnerController(Controller):
    path = "/v1/partners"
    tags = ["channel"]

    @post("/", status_code=201, sync_to_thread=True, summary="Register a partner")
    def register(
        self, data: JSONBody[PartnerIn], caller: CallerDep, services: ServicesDep
    ) -> dict[str, Any]:
        principal = caller.principal()
        location = None if data.location is None else Location(data.location.lat, data.location.lng)
        spec = PartnerSpec(
            code=data.code,
            kind=PartnerKind(data.kind),
            parent=data.parent,
            name=data.name,
            region_codes=tuple(data.region_codes),
            location=location,
            region_code=data.region_code,
        )
        return written(channel.register_partner(services.store.ledger, principal, spec))

    @get("/{code:str}", sync_to_thread=True, summary="One partner (in scope)")
    def read(
        self,
        code: CodePath,
        caller: CallerDep,
        services: ServicesDep,
        min_position: MinPosition,
    ) -> dict[str, Any]:
        principal = caller.principal()
        services.await_view("partners", min_position)
        with services.store.views.read() as tx:
            partner = get_partner(tx, code)
        if partner is None or not principal.may_see(partner["path"]):
            raise NotFound(f"unknown partner {code}", code="unknown_partner")
        return partner

    @get("/", sync_to_thread=True, summary="Partners in scope, optionally the children of one")
    def list(
        self,
        caller: CallerDep,
        services: ServicesDep,
        min_position: MinPosition,
        limit: Limit,
        cursor: Cursor,
        parent: Parent = None,
    ) -> dict[str, Any]:
        principal = caller.principal()
        size = page_limit(limit)
        services.await_view("partners", min_position)
        scope = None if principal.sees_everything else principal.path
        with services.store.views.read() as tx:
            items = list_partners(tx, scope, parent, decode_cursor(cursor), size)
        return page(items, size, "code")

    @post("/{code:str}/suspension", status_code=200, sync_to_thread=True)
    def suspend(
        self,
        code: CodePath,
        data: JSONBody[SuspensionIn],
        caller: CallerDep,
        services: ServicesDep,
    ) -> dict[str, Any]:
        principal = caller.principal()
        return written(
            channel.suspend(services.store.ledger, principal, code, data.change_id, data.reason)
        )

    @post("/{code:str}/reactivation", status_code=200, sync_to_thread=True)
    def reactivate(
        self,
        code: CodePath,
        data: JSONBody[ReactivationIn],
        caller: CallerDep,
        services: ServicesDep,
    ) -> dict[str, Any]:
        principal = caller.principal()
        return written(channel.reactivate(services.store.ledger, principal, code, data.change_id))

    @post("/{code:str}/territory", status_code=200, sync_to_thread=True)
    def territory(
        self,
        code: CodePath,
        data: JSONBody[TerritoryIn],
        caller: CallerDep,
        services: ServicesDep,
    ) -> dict[str, Any]:
        principal = caller.principal()
        return written(
            channel.update_territory(
                services.store.ledger, principal, code, data.change_id, tuple(data.region_codes)
            )
        )

    @post("/{code:str}/location", status_code=200, sync_to_thread=True)
    def location(
        self,
        code: CodePath,
        data: JSONBody[RelocationIn],
        caller: CallerDep,
        services: ServicesDep,
    ) -> dict[str, Any]:
        principal = caller.principal()
        where = Location(data.location.lat, data.location.lng)
        return written(
            channel.relocate(
                services.store.ledger, principal, code, data.change_id, where, data.region_code
            )
        )
