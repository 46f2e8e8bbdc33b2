"""Minting and revoking bearer tokens; resolving a token to a principal (write side)."""

from __future__ import annotations

import threading
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from uuid import UUID

from domain.channel import Partner
from domain.errors import NotAllowed, NotAuthenticated, NotFound
from domain.identity import hash_token, partner_id, token_id
from domain.ledger import Credentials, Ledger, Outcome, RequestKey, UnitOfWork
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
    return _authenticated(ledger, token_id(hash_token(token_text)))[0]


def _authenticated(ledger: Ledger, tid: UUID) -> tuple[Principal, int, int]:
    """The principal, and the versions of the token and partner it was made from."""
    uow = UnitOfWork(ledger)
    token = uow.find(Token, tid)
    if token is None or token.revoked:
        raise NotAuthenticated("invalid or revoked token", code="invalid_token")
    partner = uow.find(Partner, partner_id(token.partner))
    if partner is None:
        raise NotFound("the token's partner is gone")
    if not partner.is_active:
        raise NotAllowed(f"partner {partner.code} is suspended", code="partner_suspended")
    principal = Principal(
        role=token.role, partner=partner.code, path=partner.path, token_id=str(token.id)
    )
    return principal, token.version, partner.version


@dataclass(frozen=True)
class Authenticated:
    """A token's principal as last loaded, and the versions it was loaded at."""

    principal: Principal
    token: UUID
    partner: UUID
    token_version: int
    partner_version: int

    @property
    def ids(self) -> list[UUID]:
        return [self.token, self.partner]

    @property
    def credentials(self) -> Credentials:
        """What to check this principal by with a command's first read (``Ledger.checking``)."""
        return Credentials(((self.token, self.token_version), (self.partner, self.partner_version)))

    def current(self, versions: Mapping[UUID, int]) -> bool:
        """Still right if neither the token nor its partner has changed since."""
        return (
            versions.get(self.token) == self.token_version
            and versions.get(self.partner) == self.partner_version
        )


class Authenticator:
    """``authenticate`` for a server: the principal is cached per token and checked on
    every request against the current versions of the token and its partner (one
    query, nothing decoded), so a revocation, a suspension or a move is seen by the
    next request exactly as before, at a fraction of the cost of loading both.
    ``cached`` and ``Authenticated.current`` let a server run that check itself (the
    API does, on its event loop)."""

    CACHED_MAX = 4096

    def __init__(self, ledger: Ledger) -> None:
        self._ledger = ledger
        self._cached: dict[UUID, Authenticated] = {}
        self._lock = threading.Lock()

    def cached(self, token_text: str) -> Authenticated | None:
        """The principal last loaded for this token, to be checked before use."""
        return self._cached_by_id(token_id(hash_token(token_text)))

    def _cached_by_id(self, tid: UUID) -> Authenticated | None:
        with self._lock:
            return self._cached.get(tid)

    def __call__(self, token_text: str) -> Principal:
        tid = token_id(hash_token(token_text))
        cached = self._cached_by_id(tid)
        if cached is not None and cached.current(self._ledger.versions_of(cached.ids)):
            return cached.principal
        return self._load(tid)

    def load(self, token_text: str) -> Principal:
        """Load the token and its partner (and cache them): for a token not cached, or
        whose cached principal was found out of date."""
        return self._load(token_id(hash_token(token_text)))

    def _load(self, tid: UUID) -> Principal:
        principal, token_version, partner_version = _authenticated(self._ledger, tid)
        loaded = Authenticated(
            principal, tid, partner_id(principal.partner), token_version, partner_version
        )
        with self._lock:
            if len(self._cached) >= self.CACHED_MAX:
                self._cached.clear()
            self._cached[tid] = loaded
        return principal
