"""The record of one client request: its id, a fingerprint of its content, its answer.

Saved in the same store transaction as the request's effect, so a repeat finds it
exactly when the effect exists; a second writer of the same id collides on the
record's version 1 and retries into "repeat". A refused request saves nothing.
"""

from __future__ import annotations

import hashlib
from datetime import datetime
from typing import Any

import msgspec
from eventsourcing.domain import Aggregate

from domain.identity import request_id

_encoder = msgspec.json.Encoder(order="sorted")


def fingerprint(content: Any) -> str:
    """A stable hash of a request's content (keys sorted), as Formance does."""
    return hashlib.sha256(_encoder.encode(content)).hexdigest()


class ClientRequest(Aggregate):
    TOPIC = "siyu.ClientRequest"

    class Created(Aggregate.Created):
        """Unused: eventsourcing defines one per aggregate; ours is named in domain words."""

        TOPIC = "siyu.ClientRequest.Created"

    class Recorded(Aggregate.Created):
        TOPIC = "siyu.ClientRequest.Recorded"
        scope: str
        kind: str
        client_id: str
        fingerprint: str
        answer: str

    def __init__(
        self, scope: str, kind: str, client_id: str, fingerprint: str, answer: str
    ) -> None:
        self.scope = scope
        self.kind = kind
        self.client_id = client_id
        self.fingerprint = fingerprint
        self.answer = answer

    @classmethod
    def record(
        cls, scope: str, kind: str, client_id: str, print_: str, answer: str, at: datetime
    ) -> ClientRequest:
        return cls._create(
            cls.Recorded,
            id=request_id(scope, kind, client_id),
            timestamp=at,
            scope=scope,
            kind=kind,
            client_id=client_id,
            fingerprint=print_,
            answer=answer,
        )
