"""Minting and revoking bearer tokens; resolving a token to a principal (write side)."""

from __future__ import annotations

from typing import Any

from domain.channel import Partner
from domain.errors import NotAllowed, NotAuthenticated, NotFound
from domain.identity import hash_token, partner_id, token_id
from domain.ledger import Ledger, Outcome, RequestKey, UnitOfWork
from domain.principal import Principal, Role
from domain.tokens import Token, new_token_text


def mint_token(
    ledger: Ledger, by: Principal, partner_code: str, role: Role, label: str = ""
) -> Outcome:
    """Each call mints a new token (API.md's one exception to idempotency)."""
    text = new_token_text()
    key = RequestKey(by.scope_key, "token.mint", hash_token(text), {"partner": partner_code})

    def authorize(_uow: UnitOfWork) -> None:
        by.require(Role.HQ)

    def decide(uow: UnitOfWork) -> dict[str, Any]:
        partner = uow.partner(partner_code)
        uow.add(Token.mint(text, partner, role, label, by, uow.clock()))
        return {
            "token_id": str(token_id(hash_token(text))),
            "partner": partner_code,
            "role": role.value,
        }

    outcome = ledger.execute(key, decide, authorize)
    # The token text is never stored: it is added to the answer only here, once.
    return Outcome({**outcome.answer, "token": text}, outcome.position, outcome.repeated)


def revoke_token(ledger: Ledger, by: Principal, token_uuid: Any, reason: str) -> Outcome:
    key = RequestKey(by.scope_key, "token.revoke", str(token_uuid), {"reason": reason})

    def authorize(_uow: UnitOfWork) -> None:
        by.require(Role.HQ)

    def decide(uow: UnitOfWork) -> dict[str, Any]:
        token = uow.get(Token, token_uuid, "token")
        token.revoke(reason, by, uow.clock())
        return {"token_id": str(token.id), "revoked": True}

    return ledger.execute(key, decide, authorize)


def authenticate(ledger: Ledger, token_text: str) -> Principal:
    """Reads the write side, so a token works the moment it is minted."""
    uow = UnitOfWork(ledger)
    token = uow.find(Token, token_id(hash_token(token_text)))
    if token is None or token.revoked:
        raise NotAuthenticated("invalid or revoked token", code="invalid_token")
    partner = uow.find(Partner, partner_id(token.partner))
    if partner is None:
        raise NotFound("the token's partner is gone")
    if not partner.is_active:
        raise NotAllowed(f"partner {partner.code} is suspended", code="partner_suspended")
    return Principal(
        role=token.role, partner=partner.code, path=partner.path, token_id=str(token.id)
    )
