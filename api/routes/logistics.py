"""Logistics events over HTTP: one atomic batch per request."""

from __future__ import annotations

from typing import Any

from litestar import post
from litestar.params import JSONBody

from api.deps import CallerDep, ServicesDep
from api.schemas import LogisticsIn
from domain.handlers.logistics import record_movements
from domain.logistics import Action, Movement


@post(
    "/v1/logistics",
    status_code=200,
    sync_to_thread=True,
    tags=["logistics"],
    summary="Record logistics events (atomic batch)",
)
def logistics(
    data: JSONBody[LogisticsIn], caller: CallerDep, services: ServicesDep
) -> dict[str, Any]:
    movements = [
        Movement(e.event_id, Action(e.action), tuple(e.codes), e.parent, e.to) for e in data.events
    ]
    ledger = services.store.ledger
    outcome = caller.run(lambda principal: record_movements(ledger, principal, movements))
    results = [
        {"event_id": m.event_id, "status": "duplicate" if repeated else "applied"}
        for m, repeated in zip(movements, outcome.repeated, strict=True)
    ]
    return {"results": results, "position": outcome.position}
