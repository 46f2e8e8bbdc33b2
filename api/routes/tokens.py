"""Bearer tokens over HTTP: HQ mints and revokes."""

from __future__ import annotations

from typing import Annotated, Any
from uuid import UUID

from litestar import Controller, post
from litestar.params import JSONBody, PathParameter

from api.deps import CallerDep, ServicesDep
from api.routes.partners import written
from api.schemas import RevocationIn, TokenIn
from domain.handlers import tokens
from domain.principal import Role


class TokenController(Controller):
    path = "/v1/tokens"
    tags = ["auth"]

    @post("/", status_code=201, sync_to_thread=True, summary="Mint a token (HQ)")
    def mint(
        self, data: JSONBody[TokenIn], caller: CallerDep, services: ServicesDep
    ) -> dict[str, Any]:
        principal = caller.principal()
        principal.require(Role.HQ)
        outcome = tokens.mint_token(
            services.store.ledger, principal, data.partner, Role(data.role), data.label
        )
        return written(outcome)

    @post("/{token_id:uuid}/revocation", status_code=200, sync_to_thread=True)
    def revoke(
        self,
        token_id: Annotated[UUID, PathParameter()],
        data: JSONBody[RevocationIn],
        caller: CallerDep,
        services: ServicesDep,
    ) -> dict[str, Any]:
        principal = caller.principal()
        principal.require(Role.HQ)
        return written(tokens.revoke_token(services.store.ledger, principal, token_id, data.reason))
