"""Audit wiring for the server: the notary, the background verification, the access log,
and the middleware that keeps the auditor read-only and logs reads of personal data.

The middleware runs before routing reads a body, so an auditor's write is refused
with 403 whatever its body (the role may not write at all: there is nothing to
validate). A read of partner or member data by an HQ user or an auditor is logged
(who, what, when, answer status) after it is answered; the log is not an event.
"""

from __future__ import annotations

import hashlib
import logging
import threading
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import anyio
import msgspec

from api.settings import Settings
from domain.clock import Clock, system_clock
from domain.errors import DomainError
from domain.principal import Principal, Role
from projections.access_log import Access, AccessLog
from projections.chain import Notary, find_chain, notary_from_secrets
from projections.store import Store
from projections.verify import VerificationWatch

log = logging.getLogger("siyu.audit")

# Reads of partner or member data: logged when made by HQ or an auditor.
LOGGED_PREFIXES = (
    "/v1/partners",
    "/v1/members",
    "/v1/balances",
    "/v1/orders",
    "/v1/inventory",
    "/v1/aggregates",
    "/v1/events",
)
LOGGED_ROLES = frozenset({Role.HQ, Role.AUDITOR})
READ_METHODS = frozenset({"GET", "HEAD"})
PRINCIPALS_CACHED_MAX = 4096

ASGIApp = Callable[[Any, Any, Any], Awaitable[None]]


@dataclass
class Audit:
    notary: Notary
    watch: VerificationWatch
    access_log: AccessLog
    clock: Clock


def build_audit(settings: Settings, store: Store, clock: Clock = system_clock) -> Audit:
    chain = find_chain(store.engine.projections)
    notary = chain.notary if chain is not None and chain.notary is not None else None
    if notary is None:
        notary = notary_from_secrets(
            store.secrets, settings.audit_signing_key, settings.audit_checkpoint_every, clock
        )
    watch = VerificationWatch(store, notary.public_key, settings.audit_verify_interval_s, clock)
    return Audit(notary, watch, AccessLog.of(store), clock)


class _Principals:
    """Token -> principal, for the middleware only. A token's role and partner never
    change, so a cached answer stays right; revocation is still enforced by the route's
    own authentication (a revoked auditor's write gets 403 here rather than 401)."""

    def __init__(self) -> None:
        self._known: dict[str, Principal] = {}
        self._lock = threading.Lock()

    def resolve(self, services: Any, authorization: str | None) -> Principal | None:
        if not authorization:
            return None
        key = hashlib.sha256(authorization.encode()).hexdigest()
        with self._lock:
            found = self._known.get(key)
        if found is not None:
            return found
        try:
            principal: Principal = services.principal_for(authorization)
        except DomainError:
            return None
        with self._lock:
            if len(self._known) >= PRINCIPALS_CACHED_MAX:
                self._known.clear()
            self._known[key] = principal
        return principal


_problem = msgspec.json.Encoder()


async def _refuse(send: Any, role: str) -> None:
    body = _problem.encode(
        {
            "type": "https://siyu.example/problems/read_only",
            "title": "Not allowed",
            "status": 403,
            "detail": f"role {role} is read-only",
            "code": "read_only",
        }
    )
    headers = [
        (b"content-type", b"application/problem+json"),
        (b"content-length", str(len(body)).encode()),
    ]
    await send({"type": "http.response.start", "status": 403, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def _header(scope: Any, name: bytes) -> str | None:
    for key, value in scope.get("headers", ()):
        if key.lower() == name:
            return bytes(value).decode("latin-1")
    return None


def audit_middleware(app: ASGIApp) -> ASGIApp:
    principals = _Principals()

    async def middleware(scope: Any, receive: Any, send: Any) -> None:
        path: str = scope.get("path", "")
        if scope["type"] != "http" or not path.startswith("/v1/"):
            await app(scope, receive, send)
            return
        state = scope["litestar_app"].state
        services, audit = state.services, state.audit
        authorization = _header(scope, b"authorization")
        method: str = scope["method"]
        if method not in READ_METHODS:
            principal = await anyio.to_thread.run_sync(principals.resolve, services, authorization)
            if principal is not None and principal.role is Role.AUDITOR:
                await _refuse(send, principal.role.value)
                return
            await app(scope, receive, send)
            return
        if not path.startswith(LOGGED_PREFIXES):
            await app(scope, receive, send)
            return
        status = 0

        async def capture(message: Any) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        await app(scope, receive, capture)
        principal = await anyio.to_thread.run_sync(principals.resolve, services, authorization)
        if principal is None or principal.role not in LOGGED_ROLES or status == 401:
            return
        access = Access(
            at=audit.clock().isoformat(),
            role=principal.role.value,
            partner=principal.partner,
            token_id=principal.token_id,
            method=method,
            path=path,
            query=redacted_query(bytes(scope.get("query_string", b"")).decode("latin-1")),
            status=status,
        )
        try:
            await anyio.to_thread.run_sync(audit.access_log.record, access)
        except Exception:  # the read was answered; a lost log line must be loud, not fatal
            log.exception("could not record an access: %s", access)

    return middleware


PERSONAL_QUERY_PARAMETERS = frozenset({"phone", "name"})


def redacted_query(query: str) -> str:
    """The query string with the values of personal parameters replaced: the access log
    is outside the event log, so a forget could not reach a phone number kept there."""
    from urllib.parse import parse_qsl, urlencode

    pairs = parse_qsl(query, keep_blank_values=True)
    return urlencode(
        [(k, "[personal]" if k.lower() in PERSONAL_QUERY_PARAMETERS else v) for k, v in pairs]
    )
