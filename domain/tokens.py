"""Bearer tokens: minted by HQ, stored only as a hash, revocable by an event."""

from __future__ import annotations

import secrets
from datetime import datetime
from typing import Any

from eventsourcing.domain import Aggregate

from domain.channel import Partner, PartnerKind
from domain.errors import BusinessRuleBroken, Conflict, InvalidInput
from domain.identity import hash_token, token_id
from domain.principal import HQ_CODE, HQ_ROLES, Principal, Role

TOKEN_PREFIX = "siyu_"
TOKEN_BYTES = 32
LABEL_LENGTH_MAX = 200


def new_token_text() -> str:
    return TOKEN_PREFIX + secrets.token_urlsafe(TOKEN_BYTES)


def roles_for(partner: Partner) -> frozenset[Role]:
    """HQ hands out hq, auditor, factory and gateway tokens; others get their own kind."""
    if partner.code == HQ_CODE:
        return HQ_ROLES
    if partner.kind is PartnerKind.BRAND:
        return frozenset()
    return frozenset({Role(partner.kind.value)})


class Token(Aggregate):
    TOPIC = "siyu.Token"

    class Created(Aggregate.Created):
        """Unused: eventsourcing defines one per aggregate; ours is named in domain words."""

        TOPIC = "siyu.Token.Created"

    class Minted(Aggregate.Created):
        TOPIC = "siyu.Token.Minted"
        token_hash: str
        partner: str
        role: str
        label: str
        by: str

    class Revoked(Aggregate.Event):
        TOPIC = "siyu.Token.Revoked"
        reason: str
        by: str

        def apply(self, aggregate: Any) -> None:
            aggregate.revoked = True

    def __init__(self, token_hash: str, partner: str, role: str, label: str, by: str) -> None:
        self.token_hash = token_hash
        self.partner = partner
        self.role = Role(role)
        self.label = label
        self.minted_by = by
        self.revoked = False

    @classmethod
    def mint(
        cls, text: str, partner: Partner, role: Role, label: str, by: Principal, at: datetime
    ) -> Token:
        by.require(Role.HQ)
        if len(label) > LABEL_LENGTH_MAX:
            raise InvalidInput.field("label", f"at most {LABEL_LENGTH_MAX} characters")
        if role not in roles_for(partner):
            raise BusinessRuleBroken(
                f"role {role.value} cannot act for {partner.kind.value} {partner.code}",
                code="role_not_for_partner",
            )
        if not partner.is_active:
            raise Conflict(f"{partner.code} is suspended", code="partner_suspended")
        digest = hash_token(text)
        return cls._create(
            cls.Minted,
            id=token_id(digest),
            timestamp=at,
            token_hash=digest,
            partner=partner.code,
            role=role.value,
            label=label,
            by=by.scope_key,
        )

    def revoke(self, reason: str, by: Principal, at: datetime) -> None:
        by.require(Role.HQ)
        if self.revoked:
            raise Conflict("token already revoked", code="token_revoked")
        self.trigger_event(
            self.Revoked, timestamp=at, reason=reason[:LABEL_LENGTH_MAX], by=by.scope_key
        )
