"""Audit and investigation over HTTP (API.md): the feed, digests, verification, time travel.

HQ and auditors only. Nothing here writes an event; signing a checkpoint at the head
(``/v1/audit/digest?head=true``) writes an attestation beside the chain, not a fact.
"""

from __future__ import annotations

from typing import Annotated, Any

from litestar import Controller, get, post
from litestar.datastructures import State
from litestar.di import NamedDependency, Provide
from litestar.params import PathParameter, QueryParameter

from api.audit import Audit
from api.deps import (
    After,
    CallerDep,
    Cursor,
    LegacyAfter,
    Limit,
    MinPosition,
    PrincipalDep,
    ServicesDep,
    Version,
)
from api.services import encode_cursor, page, page_limit, parse_time, position_after
from domain.errors import NotFound
from domain.principal import Principal, Role
from projections.chain import HashChain, latest_checkpoint, sign_head
from projections.event_feed import feed_page
from projections.time_travel import (
    EVENTS_PER_PAGE_MAX,
    TYPE_NAME_LENGTH_MAX,
    aggregate_at,
    aggregate_events,
)

READERS = (Role.HQ, Role.AUDITOR)
CHAIN_VIEW = HashChain.name

KeyPath = Annotated[str, PathParameter(max_length=200)]


def provide_audit(state: State) -> Audit:
    audit: Audit = state.audit
    return audit


AUDIT_DEPENDENCIES = {"audit": Provide(provide_audit, sync_to_thread=False)}
AuditDep = NamedDependency[Audit]


def _readers_only(principal: Principal) -> None:
    principal.require(*READERS)


class AuditController(Controller):
    path = "/v1/audit"
    tags = ["audit"]
    dependencies = AUDIT_DEPENDENCIES

    @get("/public-key", sync_to_thread=False, summary="The key that signs chain checkpoints")
    def public_key(self, principal: PrincipalDep, audit: AuditDep) -> dict[str, Any]:
        _readers_only(principal)
        return audit.notary.public_key_info()

    @get("/digest", sync_to_thread=True, summary="The latest signed checkpoint of the chain")
    def digest(
        self,
        caller: CallerDep,
        services: ServicesDep,
        audit: AuditDep,
        head: Annotated[
            bool, QueryParameter(required=False, description="sign one at the chain's head")
        ] = False,
    ) -> dict[str, Any]:
        principal = caller.principal()
        _readers_only(principal)
        views = services.store.views
        with views.read() as tx:
            checkpoint = latest_checkpoint(tx)
        if head or checkpoint is None:
            with views.write() as tx:
                checkpoint = sign_head(tx, audit.notary)
        if checkpoint is None:
            raise NotFound("nothing is chained yet", code="no_checkpoint")
        return checkpoint.as_dict()

    @get("/verify", sync_to_thread=False, summary="The latest verification run")
    def verify(self, principal: PrincipalDep, audit: AuditDep) -> dict[str, Any]:
        _readers_only(principal)
        return audit.watch.status()

    @post("/verifications", status_code=200, sync_to_thread=True, summary="Verify now (HQ)")
    def verify_now(self, caller: CallerDep, audit: AuditDep) -> dict[str, Any]:
        principal = caller.principal()
        principal.require(Role.HQ)
        audit.watch.run_now()
        return audit.watch.status()

    @get("/reads", sync_to_thread=True, summary="Who read partner or member data, and when")
    def reads(
        self,
        caller: CallerDep,
        audit: AuditDep,
        limit: Limit,
        cursor: Cursor,
        after: LegacyAfter = None,
        role: Annotated[str | None, QueryParameter(max_length=20, required=False)] = None,
        partner: Annotated[str | None, QueryParameter(max_length=40, required=False)] = None,
    ) -> dict[str, Any]:
        principal = caller.principal()
        _readers_only(principal)
        size = page_limit(limit)
        start = position_after(cursor, after)
        audit.writer.flush()  # this process's reads so far are listed
        return page(audit.access_log.list(start or 0, size, role, partner), size, "id")


class EventFeedController(Controller):
    path = "/v1/events"
    tags = ["audit"]

    @get("/", sync_to_thread=True, summary="Every event in position order (masked)")
    def feed(
        self,
        caller: CallerDep,
        services: ServicesDep,
        min_position: MinPosition,
        limit: Limit,
        after: After = None,
    ) -> dict[str, Any]:
        """Answered from the chain read model (each event's hash): it waits for
        ``min_position`` there, and serves only the events the chain has hashed."""
        principal = caller.principal()
        _readers_only(principal)
        size = page_limit(limit)
        services.await_view(CHAIN_VIEW, min_position)
        store = services.store
        with store.views.read() as tx:
            chained = store.engine.position(CHAIN_VIEW, tx)
            recorder, mapper = store.ledger.recorder, store.ledger.mapper
            return feed_page(recorder, mapper, tx, chained, after or 0, size)


class AggregateController(Controller):
    path = "/v1/aggregates"
    tags = ["audit"]

    @get("/{type_name:str}/{key:str}", sync_to_thread=True, summary="An aggregate, then or now")
    def read(
        self,
        type_name: Annotated[str, PathParameter(max_length=TYPE_NAME_LENGTH_MAX)],
        key: KeyPath,
        caller: CallerDep,
        services: ServicesDep,
        min_position: MinPosition,
        version: Version = None,
        as_of: Annotated[str | None, QueryParameter(max_length=40, required=False)] = None,
    ) -> dict[str, Any]:
        principal = caller.principal()
        _readers_only(principal)
        at = None if as_of is None else parse_time(as_of, "as_of")
        services.await_view("time_index", min_position)
        store = services.store
        with store.views.read() as tx:
            return aggregate_at(store, tx, type_name, key, version, at)

    @get("/{type_name:str}/{key:str}/events", sync_to_thread=True, summary="Its stream")
    def events(
        self,
        type_name: Annotated[str, PathParameter(max_length=TYPE_NAME_LENGTH_MAX)],
        key: KeyPath,
        caller: CallerDep,
        services: ServicesDep,
        min_position: MinPosition,
        limit: Limit,
        cursor: Cursor,
        after_version: LegacyAfter = None,
    ) -> dict[str, Any]:
        """Each event's hash is the chain read model's: ``min_position`` waits for it, and
        the page ends at the chain's head, as the feed's does."""
        principal = caller.principal()
        _readers_only(principal)
        size = min(page_limit(limit), EVENTS_PER_PAGE_MAX)
        start = position_after(cursor, after_version, "after_version")
        services.await_view(CHAIN_VIEW, min_position)
        store = services.store
        with store.views.read() as tx:
            chained = store.engine.position(CHAIN_VIEW, tx)
            answer = aggregate_events(store, tx, chained, type_name, key, start or 0, size)
        if answer["next"] is not None:
            answer["next"] = encode_cursor(str(answer["next"]))
        return answer
