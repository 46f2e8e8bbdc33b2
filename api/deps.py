"""Litestar dependencies: the services, the calling principal, ``min_position``."""

from __future__ import annotations

from typing import Annotated, Any

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
    return await services.principal_async(request.headers.get("authorization"))


DEPENDENCIES = {
    "services": Provide(provide_services, sync_to_thread=False),
    "principal": Provide(provide_principal),
}


ServicesDep = NamedDependency[Services]
PrincipalDep = NamedDependency[Principal]
