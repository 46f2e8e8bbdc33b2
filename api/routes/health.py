"""Liveness and readiness: open, no token."""

from __future__ import annotations

from typing import Any

from litestar import get

from api.deps import ServicesDep


@get("/health", sync_to_thread=True, tags=["ops"], summary="Health and projection lag")
def health(services: ServicesDep) -> dict[str, Any]:
    store = services.store
    head = store.head
    positions = store.engine.positions()
    return {
        "status": "ok" if store.engine.last_error is None else "degraded",
        "store": store.database.kind,
        "position": head,
        "projections": positions,
        "projection_error": store.engine.last_error,
    }
