"""What every request handler needs, wired once by the app factory."""

from __future__ import annotations

import base64
import binascii
import hmac
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import anyio.to_thread
from litestar.exceptions import ValidationException

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
        text = base64.b64decode(padded, altchars=b"-_", validate=True).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise InvalidInput.field("cursor", "not a cursor this API returned") from None
    if not text.isprintable():  # none this API returns; PostgreSQL text refuses a NUL (a 500)
        raise InvalidInput.field("cursor", "not a cursor this API returned")
    return text


def decode_position_cursor(cursor: str | None) -> int | None:
    """A cursor that names a position (``encode_cursor(str(position))``), or another
    integer a list is ordered by (an aggregate's version, an access log id)."""
    after = decode_cursor(cursor)
    if after is None:
        return None
    if not _is_stored_int(after):
        raise InvalidInput.field("cursor", "not a cursor this API returned")
    return int(after)


def encode_pair_cursor(first: str, last: str) -> str:
    """A cursor that names a row of a list ordered by two text keys, the last one without
    spaces (a partner code)."""
    return encode_cursor(f"{first} {last}")


def decode_pair_cursor(cursor: str | None) -> tuple[str, str] | None:
    text = decode_cursor(cursor)
    if text is None:
        return None
    first, space, last = text.rpartition(" ")
    if not space:
        raise InvalidInput.field("cursor", "not a cursor this API returned")
    return first, last


def _is_stored_int(text: str) -> bool:
    return text.isascii() and text.isdigit() and int(text) <= STORED_INT_MAX


def position_after(cursor: str | None, after: str | None, name: str = "after") -> int | None:
    """Where a page of a list ordered by an integer starts: ``cursor`` (a ``next`` this
    API returned; API.md: lists page by ``cursor``), else, for clients written before
    these lists took one, ``after`` (``name``): the integer itself, or the ``next`` they
    were given, which is now a cursor. A bad ``after`` is the 400 it was while it was an
    integer parameter; a bad cursor the 422 of every list."""
    if cursor is not None:
        return decode_position_cursor(cursor)
    if after is None:
        return None
    if _is_stored_int(after):
        return int(after)
    try:
        return decode_position_cursor(after)
    except InvalidInput:
        message = f"an integer from 0 to {STORED_INT_MAX}, or a cursor this API returned"
        raise ValidationException(
            f"{name}: {message}", extra=[{"key": name, "message": message}]
        ) from None


def next_cursor(items: list[dict[str, Any]], limit: int, key: str) -> str | None:
    """The cursor of the page after ``items`` (ordered by ``key``), None after the last."""
    return encode_cursor(str(items[-1][key])) if len(items) == limit else None


def page(items: list[dict[str, Any]], limit: int, key: str) -> dict[str, Any]:
    return {"items": items, "next": next_cursor(items, limit, key)}


def parse_time(text: str, field: str) -> datetime:
    """An RFC 3339 time with its offset, or a 422 naming the field."""
    try:
        at = datetime.fromisoformat(text)
    except ValueError:
        raise InvalidInput.field(field, "an RFC 3339 time with offset") from None
    if at.tzinfo is None:
        raise InvalidInput.field(field, "an RFC 3339 time with offset")
    return at
