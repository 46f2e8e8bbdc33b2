"""Consumer scans over HTTP (the gateway's endpoint)."""

from __future__ import annotations

from typing import Any

from litestar import post
from litestar.params import JSONBody

from api.deps import CallerDep, ServicesDep
from api.routes.partners import written
from api.schemas import ScanIn
from domain.handlers.scans import ScanRequest, scan


@post(
    "/v1/scans",
    status_code=200,
    sync_to_thread=True,
    tags=["scans"],
    summary="A consumer or outer code scan",
)
def post_scan(data: JSONBody[ScanIn], caller: CallerDep, services: ServicesDep) -> dict[str, Any]:
    where = data.location
    request = ScanRequest(
        scan_id=data.scan_id,
        code=data.code,
        external_id=data.member.external_id,
        phone=data.member.phone,
        referrer=data.referrer,
        lat=None if where is None else where.lat,
        lng=None if where is None else where.lng,
        datum="wgs84" if where is None else where.datum,
        region_code=data.region_code,
    )
    ledger, rules = services.store.ledger, services.scan_rules
    return written(caller.run(lambda principal: scan(ledger, principal, request, rules)))
