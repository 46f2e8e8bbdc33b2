"""Natural keys to aggregate ids: uuid5 in one namespace per aggregate type (DESIGN.md)."""

from __future__ import annotations

import hashlib
import hmac
from uuid import UUID, uuid5

_ROOT = UUID("6f1d3c52-5b1e-4f57-9a63-2a4f0b3c9d10")


def namespace(type_name: str) -> UUID:
    return uuid5(_ROOT, type_name)


NS_PARTNER = namespace("partner")
NS_TOKEN = namespace("token")
NS_REQUEST = namespace("client-request")


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
