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
import queue
import threading
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import anyio

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


class AccessWriter:
    """Writes access-log rows from a background thread, in batches: a logged read costs
    its request no database round trip and no thread hop.

    ``flush`` waits until every row submitted before it is written (the access-log
    route calls it, so this process's reads are listed at once; another API process's
    as soon as its writer thread gets to them). ``stop`` writes what is queued. Rows
    still queued when a process is killed are lost: at most its last few reads."""

    BATCH_MAX = 500
    GATHER_S = 0.05

    def __init__(self, access_log: AccessLog) -> None:
        self.access_log = access_log
        self._queue: queue.SimpleQueue[Access | threading.Event | None] = queue.SimpleQueue()
        self._wake = threading.Event()  # a flush or stop cuts the gathering short
        self._thread = threading.Thread(target=self._run, name="access-log", daemon=True)
        self._thread.start()

    def submit(self, access: Access) -> None:
        self._queue.put(access)

    def flush(self, timeout_s: float = 5.0) -> bool:
        written = threading.Event()
        self._queue.put(written)
        self._wake.set()
        return written.wait(timeout_s)

    def stop(self) -> None:
        if self._thread.is_alive():
            self._queue.put(None)
            self._wake.set()
            self._thread.join(timeout=10)

    def _run(self) -> None:
        while True:
            first = self._queue.get()
            if isinstance(first, Access):
                # Gather a moment: a busy reader's rows then go out in one transaction,
                # not one commit (and WAL flush) per read. A flush request does not wait.
                self._wake.wait(self.GATHER_S)
                self._wake.clear()
            items = [first]
            while len(items) < self.BATCH_MAX:
                try:
                    items.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            rows = [i for i in items if isinstance(i, Access)]
            try:
                self.access_log.record_many(rows)
            except Exception:  # the reads were answered; a lost log line must be loud
                log.exception("could not record %d accesses: %s", len(rows), rows[:3])
            for item in items:
                if isinstance(item, threading.Event):
                    item.set()
            if None in items:
                return


@dataclass
class Audit:
    notary: Notary
    watch: VerificationWatch
    access_log: AccessLog
    clock: Clock
    writer: AccessWriter


def build_audit(settings: Settings, store: Store, clock: Clock = system_clock) -> Audit:
    chain = find_chain(store.engine.projections)
    notary = chain.notary if chain is not None and chain.notary is not None else None
    if notary is None:
        notary = notary_from_secrets(
            store.secrets, settings.audit_signing_key, settings.audit_checkpoint_every, clock
        )
    watch = VerificationWatch(
        store,
        notary.public_key,
        settings.audit_verify_interval_s,
        clock,
        at_start=settings.audit_verify_at_start,
    )
    access_log = AccessLog.of(store)
    return Audit(notary, watch, access_log, clock, AccessWriter(access_log))


class _Principals:
    """Token -> principal, for the middleware only. A token's role and partner never
    change, so a cached answer stays right; revocation is still enforced by the route's
    own authentication (a revoked auditor's write gets 403 here rather than 401)."""

    def __init__(self) -> None:
        self._known: dict[str, Principal] = {}
        self._lock = threading.Lock()

    @staticmethod
    def _key(authorization: str) -> str:
        return hashlib.sha256(authorization.encode()).hexdigest()

    def known(self, authorization: str | None) -> Principal | None:
        """The cached answer, if any (cheap: no thread hop needed)."""
        if not authorization:
            return None
        with self._lock:
            return self._known.get(self._key(authorization))

    async def resolve_async(self, services: Any, authorization: str | None) -> Principal | None:
        found = self.known(authorization)
        if found is not None:
            return found
        return await anyio.to_thread.run_sync(self.resolve, services, authorization)

    def resolve(self, services: Any, authorization: str | None) -> Principal | None:
        if not authorization:
            return None
        key = self._key(authorization)
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


def _header(scope: Any, name: bytes) -> str | None:
    for key, value in scope.get("headers", ()):
        if key.lower() == name:
            return bytes(value).decode("latin-1")
    return None


def audit_middleware(app: ASGIApp) -> ASGIApp:
    principals = _Principals()

    async def middleware(scope: Any, receive: Any, send: Any) -> None:
        path: str = scope.get("path", "")
        # Only reads are logged (the read-only roles' writes are refused by the handler's
        # caller, after the body's validation: api/deps.py).
        logged = (
            scope["type"] == "http"
            and scope["method"] in READ_METHODS
            and path.startswith(LOGGED_PREFIXES)
        )
        if not logged:
            await app(scope, receive, send)
            return
        state = scope["litestar_app"].state
        services, audit = state.services, state.audit
        authorization = _header(scope, b"authorization")
        method: str = scope["method"]

        async def log_then_send(message: Any) -> None:
            # Queued before the answer leaves: a later read of the log (which flushes
            # the queue) always lists it.
            if message["type"] == "http.response.start":
                status = int(message["status"])
                principal = await principals.resolve_async(services, authorization)
                if principal is not None and principal.role in LOGGED_ROLES and status != 401:
                    query = bytes(scope.get("query_string", b"")).decode("latin-1")
                    access = Access(
                        at=audit.clock().isoformat(),
                        role=principal.role.value,
                        partner=principal.partner,
                        token_id=principal.token_id,
                        method=method,
                        path=path,
                        query=redacted_query(query),
                        status=status,
                    )
                    audit.writer.submit(access)
            await send(message)

        await app(scope, receive, log_then_send)

    return middleware


PERSONAL_QUERY_PARAMETERS = frozenset({"phone", "name"})


def redacted_query(query: str) -> str:
    """The query string with the values of personal parameters replaced: the access log
    is outside the event log, so a forget could not reach a phone number kept there."""
    from urllib.parse import parse_qsl, urlencode

    keys = (part.partition("=")[0] for part in query.split("&"))
    if not any("%" in key or key.lower() in PERSONAL_QUERY_PARAMETERS for key in keys):
        return query  # no personal parameter, however spelled: kept as sent (most reads)
    pairs = parse_qsl(query, keep_blank_values=True)
    return urlencode(
        [(k, "[personal]" if k.lower() in PERSONAL_QUERY_PARAMETERS else v) for k, v in pairs]
    )
