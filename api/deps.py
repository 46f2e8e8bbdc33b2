"""Litestar dependencies: the services, the calling principal (or the caller, for a
handler that checks it in its worker thread), ``min_position``."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Any, TypeVar

from litestar import Request
from litestar.datastructures import State
from litestar.di import NamedDependency, Provide
from litestar.params import QueryParameter

from api.services import STORED_INT_MAX, Services
from domain.ledger import StaleCredentials
from domain.principal import Principal

T = TypeVar("T")

# Every integer query parameter that reaches SQL is bounded here, to what the stores keep.
MinPosition = Annotated[
    int | None,
    QueryParameter(ge=0, le=STORED_INT_MAX, required=False, description="read your own writes"),
]
After = Annotated[
    int | None, QueryParameter(ge=0, le=STORED_INT_MAX, required=False, description="a position")
]
# A list that paged by ``after`` before it took ``cursor``: still read, for old clients, as
# the integer or as the ``next`` (now a cursor) they were given (services.position_after).
LegacyAfter = Annotated[
    str | None,
    QueryParameter(
        max_length=200, required=False, description="deprecated: pass `next` as `cursor`"
    ),
]
Version = Annotated[
    int | None,
    QueryParameter(ge=1, le=STORED_INT_MAX, required=False, description="an aggregate version"),
]
Limit = Annotated[int | None, QueryParameter(ge=1, le=1000, required=False)]
Parent = Annotated[str | None, QueryParameter(max_length=40, required=False)]
Cursor = Annotated[str | None, QueryParameter(max_length=200, required=False)]


def provide_services(state: State) -> Services:
    services: Services = state.services
    return services


WRITE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})


async def provide_principal(
    request: Request[Any, Any, Any], services: NamedDependency[Services]
) -> Principal:
    """For a handler on the event loop: the token checked there (an async reading); a
    read-only role (the auditor) is refused a write here, once the body is validated."""
    principal = await services.principal_async(request.headers.get("authorization"))
    if request.method in WRITE_METHODS:
        principal.require_writer()
    return principal


@dataclass(frozen=True, slots=True)
class Caller:
    """For a handler in a worker thread (``sync_to_thread=True``): the caller's token,
    checked by ``principal()`` in that thread on the store's own (synchronous) driver.
    The handler goes to a thread anyway; checking the token first on the event loop cost
    an asynchronous round trip there (about a fifth of an API process's interpreter time
    in a scan; see docs/performance.md, round 10)."""

    services: Services
    authorization: str | None
    writes: bool = False

    def principal(self) -> Principal:
        """The authenticated principal (NotAuthenticated: 401), checked now; a read-only
        role is refused a write (403 ``read_only``): after the body's validation, which
        ran before the handler (API.md: the body first, then permission)."""
        principal = self.services.principal_for(self.authorization)
        if self.writes:
            principal.require_writer()
        return principal

    def run(self, command: Callable[[Principal], T]) -> T:
        """``command(principal)``, the token checked by the command's first read of the
        ledger (the token and its partner read with the request record) instead of by a
        statement of its own before it: under load a scan was 4.5 statements, one of
        them this check. Answers as ``command(self.principal())`` would: stale
        credentials stop the command before it decides (it then runs again, checked
        first), and the token of a command that read nothing (refused early) is checked
        before its answer stands. (Every write reads first: such a command wrote
        nothing.)"""
        cached = self.services.cached_principal(self.authorization)
        if cached is None:
            return command(self.principal())
        principal, credentials = cached
        if self.writes:
            principal.require_writer()
        try:
            with self.services.store.ledger.checking(credentials) as check:
                answer = command(principal)
        except StaleCredentials:
            return command(self.principal())
        except Exception:
            if check.done:
                raise
            current = self.principal()  # 401 here replaces the refusal
            if current == principal:
                raise
            return command(current)
        if check.done:
            return answer
        current = self.principal()
        return answer if current == principal else command(current)


def provide_caller(request: Request[Any, Any, Any], services: NamedDependency[Services]) -> Caller:
    return Caller(services, request.headers.get("authorization"), request.method in WRITE_METHODS)


DEPENDENCIES = {
    "services": Provide(provide_services, sync_to_thread=False),
    "principal": Provide(provide_principal),
    "caller": Provide(provide_caller, sync_to_thread=False),
}


ServicesDep = NamedDependency[Services]
PrincipalDep = NamedDependency[Principal]
CallerDep = NamedDependency[Caller]
