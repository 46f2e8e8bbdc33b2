"""The app factory: the one place where concrete adapters are wired together."""

from __future__ import annotations

import logging
from typing import Any

from litestar import Litestar
from litestar.datastructures import State
from litestar.openapi import OpenAPIConfig
from litestar.openapi.plugins import ScalarRenderPlugin, SwaggerRenderPlugin
from litestar.openapi.spec import Components, SecurityScheme

from api.audit import audit_middleware, build_audit
from api.deps import DEPENDENCIES
from api.money import SettlementTask
from api.problems import EXCEPTION_HANDLERS, BodyRequest
from api.routes.audit import AggregateController, AuditController, EventFeedController
from api.routes.catalog import CodeBatchController, ProductController, QrController
from api.routes.health import health
from api.routes.logistics import logistics
from api.routes.members import LoyaltyPolicyController, LuckyDrawController, MemberController
from api.routes.money import MONEY_ROUTES
from api.routes.partners import PartnerController
from api.routes.privacy import MemberPrivacyController
from api.routes.scans import post_scan
from api.routes.tokens import TokenController
from api.routes.tracing import (
    AlertController,
    InventoryController,
    SellThroughController,
    TraceController,
)
from api.services import Services
from api.settings import Settings
from domain.clock import Clock, system_clock
from projections.relay import RelayThread, start_relay
from projections.store import Store

log = logging.getLogger("siyu.api")
REQUEST_BODY_BYTES_MAX = 8 * 1024 * 1024
START_CATCH_UP_S_MAX = 2.0


def create_app(
    settings: Settings | None = None,
    *,
    store: Store | None = None,
    clock: Clock = system_clock,
    close_store: bool | None = None,
) -> Litestar:
    """``close_store``: close the store on shutdown (default: if this factory opened it)."""
    settings = settings or Settings.from_env()
    owned = store is None if close_store is None else close_store
    store = store or settings.open_store(clock=clock)
    services = Services(settings=settings, store=store)
    audit = build_audit(settings, store, clock)  # background verification, notary, access log
    relays: list[RelayThread] = []  # the NATS relay, when SIYU_NATS_URL is set
    settlement = SettlementTask(store)  # closes due return windows periodically

    def start() -> None:
        # A short catch-up first (a small backlog is gone before the first request), the
        # rest in the engine's own thread: a large backlog never delays the API, and with
        # SIYU_PROJECTIONS=off the API writes no view at all.
        if settings.projections_inline:
            try:
                store.engine.catch_up_for(START_CATCH_UP_S_MAX)
            except Exception:  # a tampered store must still serve, to be investigated
                log.exception("catching up at start failed; the engine keeps trying")
            store.engine.start()
        if settings.nats_url:
            relays.append(start_relay(store, settings.nats_url))
        audit.watch.start()
        settlement.start()

    def stop() -> None:
        settlement.stop()
        audit.watch.stop()
        audit.writer.stop()
        while relays:
            relays.pop().stop()
        store.engine.stop()
        if owned:
            store.close()

    openapi = OpenAPIConfig(
        title="Siyu Ledger",
        version="1.0.0",
        description="Event-sourced ledger for a brand's private-domain channel (API.md).",
        path="/schema",
        render_plugins=[ScalarRenderPlugin(), SwaggerRenderPlugin(path="/swagger")],
        components=Components(
            security_schemes={"bearer": SecurityScheme(type="http", scheme="bearer")}
        ),
        security=[{"bearer": []}],
    )
    route_handlers: list[Any] = [
        health,
        *MONEY_ROUTES,
        PartnerController,
        TokenController,
        ProductController,
        CodeBatchController,
        QrController,
        logistics,
        post_scan,
        TraceController,
        InventoryController,
        AlertController,
        SellThroughController,
        MemberPrivacyController,
        AuditController,
        EventFeedController,
        AggregateController,
        MemberController,
        LoyaltyPolicyController,
        LuckyDrawController,
    ]
    return Litestar(
        route_handlers=route_handlers,
        dependencies=DEPENDENCIES,
        exception_handlers=EXCEPTION_HANDLERS,
        state=State({"services": services, "audit": audit}),
        middleware=[audit_middleware],
        on_startup=[services.reads.open, start],
        on_shutdown=[services.reads.close, stop],
        openapi_config=openapi,
        request_max_body_size=REQUEST_BODY_BYTES_MAX,
        request_class=BodyRequest,
        debug=False,
    )
