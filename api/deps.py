"""Litestar dependencies: the services, the calling principal, ``min_position``."""

from __future__ import annotations

from typing import Annotated, Any

import anyio
from litestar import Request
from litestar.datastructures import State
from litestar.di import NamedDependency, Provide
from litestar.params import QueryParameter

from api.services import Services
from domain.principal import Principal

MinPosition = Annotated[
    int | None,
    QueryParameter(ge=0, required=False, description="read your own writes"),
]
Limit = Annotated[int | None, QueryParameter(ge=1, le=1000, required=False)]
Parent = Annotated[str | None, QueryParameter(max_length=40, required=False)]
Cursor = Annotated[str | None, QueryParameter(max_length=200, required=False)]


def provide_services(state: State) -> Services:
    services: Services = state.services
    return services


async def provide_principal(
    request: Request[Any, Any, Any], services: NamedDependency[Services]
) -> Principal:
    authorization = request.headers.get("authorization")
    known = services.principal_without_io(authorization)
    if known is not None:
        return known
    return await anyio.to_thread.run_sync(services.principal_for, authorization)


DEPENDENCIES = {
    "services": Provide(provide_services, sync_to_thread=False),
    "principal": Provide(provide_principal),
}


ServicesDep = NamedDependency[Services]
PrincipalDep = NamedDependency[Principal]
