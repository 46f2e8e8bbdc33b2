"""Natural keys to aggregate ids: uuid5 in one namespace per aggregate type (DESIGN.md)."""

from __future__ import annotations

import functools
import hashlib
import hmac
import math
from uuid import UUID, uuid5

import msgspec

_ROOT = UUID("6f1d3c52-5b1e-4f57-9a63-2a4f0b3c9d10")


_encode = msgspec.json.encode


def id_text(aggregate_id: UUID) -> str:
    """``str(aggregate_id)``, three times as fast (``UUID.__str__`` is Python; the read
    models turn every event's id into text, several times over)."""
    return _encode(aggregate_id)[1:-1].decode()


# uuid5 is Python (a UUID built with every check): a command derives the same ids several
# times (a scan: the unit in reading, deciding and holding; a member's namespace per
# key), so the natural keys' ids are kept, a few thousand each (immutable values).
_IDS_KEPT = 4096
_kept = functools.lru_cache(maxsize=_IDS_KEPT)


@functools.cache
def namespace(type_name: str) -> UUID:
    return uuid5(_ROOT, type_name)


NS_PARTNER = namespace("partner")
NS_TOKEN = namespace("token")
NS_REQUEST = namespace("client-request")
NS_PRODUCT = namespace("product")
NS_BATCH = namespace("code-batch")
NS_BATCH_NUMBER = namespace("code-batch-number")
NS_UNIT = namespace("unit")
NS_CASE = namespace("case")
NS_ALERT = namespace("alert")
NS_LOT = namespace("points-lot")
NS_NEIGHBOURHOOD = namespace("neighbourhood")
NEIGHBOURHOOD_DEG = 0.01  # about a kilometre north-south; less east-west away from the equator


@_kept
def product_id(sku: str) -> UUID:
    return uuid5(NS_PRODUCT, sku)


@_kept
def batch_id(batch: str) -> UUID:
    return uuid5(NS_BATCH, batch)


@_kept
def batch_number_id(key_id: int, batch_no: int) -> UUID:
    return uuid5(NS_BATCH_NUMBER, f"{key_id}/{batch_no}")


@_kept
def unit_id(serial: str) -> UUID:
    return uuid5(NS_UNIT, serial)


@_kept
def case_id(serial: str) -> UUID:
    return uuid5(NS_CASE, serial)


def neighbourhood(lat: float, lng: float, kind: str) -> UUID:
    """A key for the square of ``NEIGHBOURHOOD_DEG`` a location falls in, for one kind of
    command: the read-ahead hints of that kind made there are kept under it
    (``UnitOfWork.hint``); no aggregate has it as its id."""
    return _square(kind, math.floor(lat / NEIGHBOURHOOD_DEG), math.floor(lng / NEIGHBOURHOOD_DEG))


@_kept  # by square, not by location: locations hardly ever repeat
def _square(kind: str, row: int, column: int) -> UUID:
    return uuid5(NS_NEIGHBOURHOOD, f"{kind}:{row}:{column}")


def alert_id(cause: str, kind: str) -> UUID:
    return uuid5(NS_ALERT, f"{cause}\x1f{kind}")


@_kept
def partner_id(code: str) -> UUID:
    return uuid5(NS_PARTNER, code)


def token_id(token_hash: str) -> UUID:
    return uuid5(NS_TOKEN, token_hash)


def request_id(scope: str, kind: str, client_id: str) -> UUID:
    """Id of the record of one client request; ``scope`` is the caller or ``global``."""
    return uuid5(NS_REQUEST, f"{scope}\x1f{kind}\x1f{client_id}")


def keyed_id(type_name: str, key: bytes, external_id: str) -> UUID:
    """An id that cannot be derived from outside: HMAC of the external id (members)."""
    digest = hmac.new(key, external_id.encode(), hashlib.sha256).digest()
    return uuid5(namespace(type_name), digest.hex())


def hash_token(token: str) -> str:
    """Tokens carry 256 bits of randomness, so a plain SHA-256 is a safe verifier."""
    return hashlib.sha256(token.encode()).hexdigest()
