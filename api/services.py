"""What every request handler needs, wired once by the app factory."""

from __future__ import annotations

import base64
import binascii
import hmac
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import anyio.to_thread

from api.money import store_finder
from api.problems import ServiceUnavailable
from api.settings import Settings
from domain.errors import InvalidInput, NotAuthenticated
from domain.handlers.scans import ScanRules
from domain.handlers.tokens import Authenticator
from domain.ledger import Credentials
from domain.principal import Principal, hq_admin
from projections.readings import AsyncReads
from projections.store import Store, read_versions

LIMIT_DEFAULT = 100
LIMIT_MAX = 1000
CURSOR_LENGTH_MAX = 200
# The largest integer both stores keep (SQLite INTEGER, PostgreSQL BIGINT): every integer a
# request sends to SQL (a position, a version) is at most this, or the driver raises
# OverflowError, a 500 for what is bad input.
STORED_INT_MAX = 2**63 - 1


@dataclass
class Services:
    settings: Settings
    store: Store
    scan_rules: ScanRules = field(default_factory=ScanRules)

    def __post_init__(self) -> None:
        self.authenticate = Authenticator(self.store.ledger)
        # the hot reads' driver on the event loop (opened and closed with the app)
        self.reads = AsyncReads(self.store.views)
        # one finder for every order: its searches' radii carry from order to order
        self.find_stores = store_finder(self.store)

    def principal_for(self, authorization: str | None) -> Principal:
        token = _bearer(authorization)
        if self._is_bootstrap(token):
            return hq_admin()
        return self.authenticate(token)

    def cached_principal(self, authorization: str | None) -> tuple[Principal, Credentials] | None:
        """The principal cached for this token, unchecked, and what to check it by (None:
        the bootstrap token, or a token not cached: ``principal_for`` then). 401 for a
        missing or malformed header, as ``principal_for``."""
        token = _bearer(authorization)
        if self._is_bootstrap(token):
            return None
        cached = self.authenticate.cached(token)
        return None if cached is None else (cached.principal, cached.credentials)

    async def principal_async(self, authorization: str | None) -> Principal:
        """``principal_for`` from the event loop: a known token's principal is checked
        against the current versions of the token and its partner by a reading on the
        loop (PostgreSQL), so an authenticated request needs no worker thread for it."""
        token = _bearer(authorization)
        if self._is_bootstrap(token):
            return hq_admin()
        if not self.reads.on_loop:  # (SQLite: the check and any load in one thread)
            return await anyio.to_thread.run_sync(self.authenticate, token)
        cached = self.authenticate.cached(token)
        if cached is not None:
            versions = await self.reads.run(read_versions(self.store.ledger, cached.ids))
            if cached.current(versions):
                return cached.principal
        return await anyio.to_thread.run_sync(self.authenticate.load, token)

    def _is_bootstrap(self, token: str) -> bool:
        bootstrap = self.settings.bootstrap_token
        return bootstrap is not None and hmac.compare_digest(token.encode(), bootstrap.encode())

    def await_view(self, name: str, min_position: int | None) -> None:
        """API.md: reads wait (at most 5 s) until their view has applied ``min_position``."""
        if min_position is None or min_position <= 0:
            return
        if not self.store.engine.wait_for(min_position, name):
            raise ServiceUnavailable(
                f"view {name} has not applied position {min_position} yet; retry"
            )

    async def await_view_async(self, name: str, min_position: int | None) -> None:
        """``await_view`` for a route on the event loop: a worker thread only when there
        is a position to wait for."""
        if min_position is not None and min_position > 0:
            await anyio.to_thread.run_sync(self.await_view, name, min_position)


def _bearer(authorization: str | None) -> str:
    if not authorization:
        raise NotAuthenticated("missing bearer token", code="missing_token")
    scheme, _, token = authorization.partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token or len(token) > 512:
        raise NotAuthenticated("expected 'Authorization: Bearer <token>'", code="invalid_token")
    return token


def page_limit(limit: int | None) -> int:
    if limit is None:
        return LIMIT_DEFAULT
    if not 1 <= limit <= LIMIT_MAX:
        raise InvalidInput.field("limit", f"between 1 and {LIMIT_MAX}")
    return limit


def encode_cursor(value: str) -> str:
    return base64.urlsafe_b64encode(value.encode()).decode().rstrip("=")


def decode_cursor(cursor: str | None) -> str | None:
    if cursor is None:
        return None
    if len(cursor) > CURSOR_LENGTH_MAX:
        raise InvalidInput.field("cursor", "not a cursor this API returned")
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        return base64.b64decode(padded, altchars=b"-_", validate=True).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise InvalidInput.field("cursor", "not a cursor this API returned") from None


def decode_position_cursor(cursor: str | None) -> int | None:
    """A cursor that names a position (``encode_cursor(str(position))``)."""
    after = decode_cursor(cursor)
    if after is None:
        return None
    if not (after.isascii() and after.isdigit()) or int(after) > STORED_INT_MAX:
        raise InvalidInput.field("cursor", "not a cursor this API returned")
    return int(after)


def page(items: list[dict[str, Any]], limit: int, key: str) -> dict[str, Any]:
    next_cursor = encode_cursor(str(items[-1][key])) if len(items) == limit else None
    return {"items": items, "next": next_cursor}


def parse_time(text: str, field: str) -> datetime:
    """An RFC 3339 time with its offset, or a 422 naming the field."""
    try:
        at = datetime.fromisoformat(text)
    except ValueError:
        raise InvalidInput.field(field, "an RFC 3339 time with offset") from None
    if at.tzinfo is None:
        raise InvalidInput.field(field, "an RFC 3339 time with offset")
    return at
