"""The record of one client request: its id, a fingerprint of its content, its answer.

Saved in the same store transaction as the request's effect, so a repeat finds it
exactly when the effect exists; a second writer of the same id collides on the
record's version 1 and retries into "repeat". A refused request saves nothing.

Fingerprints (docs/decisions/crypto-shredding.md, "Request fingerprints"): a request's
content may hold personal data (a scan's phone and exact location, a member's name and
phone). An unkeyed hash of it is reversed by trying every phone number, so the record's
``fingerprint`` covers only the public part, each personal value present replaced by a
marker (scheme ``2:``); the personal values' own digest, ``personal_print``, is a
personal field sealed with the member's key, and unreadable once the member is
forgotten. Records written before carry the legacy hash of the whole content (no
scheme prefix) and are compared that way.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import msgspec
from eventsourcing.domain import Aggregate

from domain.identity import request_id

_encoder = msgspec.json.Encoder(order="sorted")

PRINT_SCHEME = "2:"  # a fingerprint of the public part; none: the legacy whole-content hash
PERSONAL_MARK = "[personal]"  # stands for a personal value present in the public part

# Where a personal value sits in a request's content: keys and list indices from its root.
ContentPath = tuple[str | int, ...]


def fingerprint(content: Any) -> str:
    """A stable hash of a request's content (keys sorted), as Formance does."""
    return hashlib.sha256(_encoder.encode(content)).hexdigest()


def _split_at(node: Any, path: ContentPath) -> tuple[Any, Any]:
    """``node`` with the value at ``path`` replaced by the marker (copied along the path
    only; None stays None), and that value (None: none there)."""
    if not path:
        return (None if node is None else PERSONAL_MARK), node
    head, rest = path[0], path[1:]
    if isinstance(node, dict) and isinstance(head, str) and head in node:
        inner, value = _split_at(node[head], rest)
        return {**node, head: inner}, value
    if isinstance(node, list | tuple) and isinstance(head, int) and -len(node) <= head < len(node):
        inner, value = _split_at(node[head], rest)
        copy = list(node)
        copy[head] = inner
        return copy, value
    return node, None


def split_personal(content: Any, paths: Sequence[ContentPath]) -> tuple[Any, list[Any]]:
    """The content's public part (each personal value present replaced by a marker, so a
    different set of present values still differs) and its personal values, in the
    order of ``paths``."""
    public = content
    values: list[Any] = []
    for path in paths:
        public, value = _split_at(public, path)
        values.append(value)
    return public, values


def request_prints(
    kind: str, content: Any, personal: Sequence[ContentPath]
) -> tuple[str, str | None]:
    """(fingerprint of the public part, with its scheme; digest of the personal values,
    None when the content holds none)."""
    if not personal:
        return PRINT_SCHEME + fingerprint({"kind": kind, "content": content}), None
    public, values = split_personal(content, personal)
    public_print = PRINT_SCHEME + fingerprint({"kind": kind, "content": public})
    if all(v is None for v in values):
        return public_print, None
    return public_print, fingerprint({"kind": kind, "personal": values})


def legacy_print(kind: str, content: Any) -> str:
    """The fingerprint records were written with before the scheme: the whole content."""
    return fingerprint({"kind": kind, "content": content})


class ClientRequest(Aggregate):
    TOPIC = "siyu.ClientRequest"

    class Created(Aggregate.Created):
        """Unused: eventsourcing defines one per aggregate; ours is named in domain words."""

        TOPIC = "siyu.ClientRequest.Created"

    class Recorded(Aggregate.Created):
        """``personal_print``: the digest of the request's personal values, sealed with
        the key of ``member_id`` (both None where the content holds none; absent from
        records written before them). Read back as None once the member is forgotten."""

        TOPIC = "siyu.ClientRequest.Recorded"
        personal_fields = ("personal_print",)
        subject_field = "member_id"
        scope: str
        kind: str
        client_id: str
        fingerprint: str
        answer: str
        personal_print: str | None = None
        member_id: str | None = None

    def __init__(
        self,
        scope: str,
        kind: str,
        client_id: str,
        fingerprint: str,
        answer: str,
        personal_print: str | None = None,
        member_id: str | None = None,
    ) -> None:
        self.scope = scope
        self.kind = kind
        self.client_id = client_id
        self.fingerprint = fingerprint
        self.answer = answer
        self.personal_print = personal_print
        self.member_id = member_id

    @classmethod
    def record(
        cls,
        scope: str,
        kind: str,
        client_id: str,
        print_: str,
        answer: str,
        at: datetime,
        personal_print: str | None = None,
        member_id: str | None = None,
    ) -> ClientRequest:
        assert personal_print is None or member_id is not None, "sealed for a member"
        return cls._create(
            cls.Recorded,
            id=request_id(scope, kind, client_id),
            timestamp=at,
            scope=scope,
            kind=kind,
            client_id=client_id,
            fingerprint=print_,
            answer=answer,
            personal_print=personal_print,
            member_id=None if personal_print is None else member_id,
        )
