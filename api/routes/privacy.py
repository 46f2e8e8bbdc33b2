"""Members' personal data over HTTP (HQ only): find by phone, forget (crypto-shredding)."""

from __future__ import annotations

import argparse
import json
import uuid
from typing import Annotated, Any

import msgspec
from litestar import Controller, get, post
from litestar.params import JSONBody, PathParameter, QueryParameter
from msgspec import Meta

from api.deps import CallerDep, ServicesDep
from api.routes.partners import written
from domain.handlers.privacy import find_by_phone, forget_member
from domain.principal import Role, hq_admin
from projections.forgetting import every_personal, scrub_side_builds
from projections.keyring import normalise_for_index
from projections.store import Store

MemberIdPath = Annotated[str, PathParameter(max_length=64)]
PhoneQuery = Annotated[str, QueryParameter(pattern=r"^\+?[0-9 -]{5,24}$")]


class ForgetIn(msgspec.Struct, forbid_unknown_fields=True):
    request_id: Annotated[str, Meta(min_length=1, max_length=100, pattern=r"^[\x21-\x7e]+$")]
    reason: Annotated[str, Meta(min_length=1, max_length=200)]


def forget(store: Store, principal: Any, member_id: str, request_id: str, reason: str) -> Any:
    """Destroy the key, record the forget, then clear what the side builds derived from
    the member's personal data (the live views clear theirs as they apply the event). A
    repeat of the request clears them again: a side build made meanwhile holds nothing
    readable (the key is gone), and one that was missed is cleared now."""
    outcome = forget_member(
        store.ledger, principal, member_id, request_id, reason, store.keyring.forget
    )
    scrub_side_builds(store.database, every_personal(), [outcome.answer["member_id"]])
    return outcome


def lookup(store: Store, principal: Any, phone: str) -> list[dict[str, Any]]:
    return find_by_phone(
        store.ledger,
        principal,
        phone,
        lambda value: store.keyring.lookup("phone", value),
        normalise_for_index,
    )


class MemberPrivacyController(Controller):
    path = "/v1/members"
    tags = ["members"]

    @get("/", sync_to_thread=True, summary="Find members by phone (HQ; a blind index)")
    def by_phone(
        self, phone: PhoneQuery, caller: CallerDep, services: ServicesDep
    ) -> dict[str, Any]:
        principal = caller.principal()
        principal.require(Role.HQ)
        return {"items": lookup(services.store, principal, phone), "next": None}

    @post(
        "/{member_id:str}/forget",
        status_code=200,
        sync_to_thread=True,
        summary="Forget a member: destroy their key (HQ)",
    )
    def forget(
        self,
        member_id: MemberIdPath,
        data: JSONBody[ForgetIn],
        caller: CallerDep,
        services: ServicesDep,
    ) -> dict[str, Any]:
        principal = caller.principal()  # HQ: checked after the reason's rules
        outcome = forget(services.store, principal, member_id, data.request_id, data.reason)
        return written(outcome)


# -- the command line: siyu forget MEMBER_ID ----------------------------------------


def cmd_forget(args: argparse.Namespace, settings: Any) -> int:
    from domain.errors import DomainError

    store = settings.open_store()
    try:
        request_id = args.request_id or f"cli-{uuid.uuid4()}"
        try:
            outcome = forget(store, hq_admin(), args.member_id, request_id, args.reason)
        except DomainError as e:
            print(f"siyu forget: {e.detail} ({e.code})")
            return 1
        # Scrub the views now (they drop what they derived from the member's personal
        # data on Member.Forgotten), whether or not a server is running.
        store.engine.catch_up()
        print(json.dumps(written(outcome)))
        return 0
    finally:
        store.close()
