"""The app factory: the one place where concrete adapters are wired together."""

from __future__ import annotations

import logging
from typing import Any

from litestar import Litestar
from litestar.datastructures import State
from litestar.openapi import OpenAPIConfig
from litestar.openapi.plugins import ScalarRenderPlugin, SwaggerRenderPlugin
from litestar.openapi.spec import Components, SecurityScheme

from api.deps import DEPENDENCIES
from api.problems import EXCEPTION_HANDLERS
from api.routes.catalog import CodeBatchController, ProductController, QrController
from api.routes.health import health
from api.routes.logistics import logistics
from api.routes.partners import PartnerController
from api.routes.scans import post_scan
from api.routes.tracing import (
    AlertController,
    InventoryController,
    SellThroughController,
    TraceController,
)
from api.routes.tokens import TokenController
from api.services import Services
from api.settings import Settings
from domain.clock import Clock, system_clock
from projections.store import Store

log = logging.getLogger("siyu.api")
REQUEST_BODY_BYTES_MAX = 8 * 1024 * 1024


def create_app(
    settings: Settings | None = None, *, store: Store | None = None, clock: Clock = system_clock
) -> Litestar:
    settings = settings or Settings.from_env()
    owned = store is None
    store = store or settings.open_store(clock=clock)
    services = Services(settings=settings, store=store)

    def start() -> None:
        store.engine.catch_up()
        if settings.projections_inline:
            store.engine.start()

    def stop() -> None:
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
    ]
    return Litestar(
        route_handlers=route_handlers,
        dependencies=DEPENDENCIES,
        exception_handlers=EXCEPTION_HANDLERS,
        state=State({"services": services}),
        on_startup=[start],
        on_shutdown=[stop],
        openapi_config=openapi,
        request_max_body_size=REQUEST_BODY_BYTES_MAX,
        debug=False,
    )
