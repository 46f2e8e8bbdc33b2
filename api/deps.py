"""Litestar dependencies: the services, the calling principal, ``min_position``."""

from __future__ import annotations

from typing import Annotated, Any

from litestar import Request
from litestar.datastructures import State
from litestar.di import Provide
from litestar.params import Parameter

from api.services import Services
from domain.principal import Principal

MinPosition = Annotated[
    int | None,
    Parameter(query="min_position", ge=0, required=False, description="read your own writes"),
]
Limit = Annotated[int | None, Parameter(query="limit", ge=1, le=1000, required=False)]
Cursor = Annotated[str | None, Parameter(query="cursor", max_length=200, required=False)]


def provide_services(state: State) -> Services:
    services: Services = state.services
    return services


def provide_principal(request: Request[Any, Any, Any], services: Services) -> Principal:
    return services.principal_for(request.headers.get("authorization"))


DEPENDENCIES = {
    "services": Provide(provide_services, sync_to_thread=False),
    "principal": Provide(provide_principal, sync_to_thread=True),
}
