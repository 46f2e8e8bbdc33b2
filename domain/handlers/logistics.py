"""A logistics request: many events, applied atomically, each idempotent by its event_id."""

from __future__ import annotations

from typing import Any

from domain.errors import BatchRefused, DomainError, InvalidInput, NotAllowed, Refusal
from domain.ledger import BatchOutcome, Ledger, RequestKey, UnitOfWork
from domain.logistics import Codes, Movement, move, parse_all, reads_of
from domain.principal import Principal

EVENTS_PER_REQUEST_MAX = 1000
CODES_PER_REQUEST_MAX = 20_000


def record_movements(ledger: Ledger, by: Principal, movements: list[Movement]) -> BatchOutcome:
    by.require_writer()
    if not 1 <= len(movements) <= EVENTS_PER_REQUEST_MAX:
        raise InvalidInput.field("events", f"1 to {EVENTS_PER_REQUEST_MAX} events per request")
    if sum(len(m.codes) for m in movements) > CODES_PER_REQUEST_MAX:
        raise InvalidInput.field("events", f"at most {CODES_PER_REQUEST_MAX} codes per request")
    if len({m.event_id for m in movements}) != len(movements):
        raise InvalidInput.field("events", "an event_id appears twice in one request")
    codes = parse_all(ledger.codebook, movements)
    keys = [_key(by, m, codes) for m in movements]

    def decide(uow: UnitOfWork, fresh: list[int]) -> list[dict[str, Any]]:
        refusals: list[Refusal] = []
        for i in fresh:
            m = movements[i]
            try:
                move(uow, by, m, codes)
            except DomainError as e:
                refusals.append(Refusal(m.event_id, e.code, e.detail, isinstance(e, NotAllowed)))
        if refusals:
            raise BatchRefused(refusals)
        return [{"event_id": movements[i].event_id, "status": "applied"} for i in fresh]

    return ledger.execute_batch(keys, decide, preload=reads_of(codes, movements))


def _key(by: Principal, movement: Movement, codes: Codes) -> RequestKey:
    """The movement's request key, its codes bare (a code may be sent bare or as its URL:
    either way it is the same request)."""
    sent = movement.content()

    def bare(text: str) -> str:
        code = codes[text]
        return text if code is None else code.serial

    content = {
        **sent,
        "codes": [bare(t) for t in movement.codes],
        "parent": None if movement.parent is None else bare(movement.parent),
    }
    return RequestKey(by.scope_key, "logistics", movement.event_id, content, sent=sent)
