"""Products, code batches, their codes as CSV, and QR images."""

from __future__ import annotations

import io
from collections.abc import Iterator
from typing import Annotated, Any

import segno
from litestar import Controller, MediaType, Response, get, post
from litestar.params import JSONBody, PathParameter, QueryParameter
from litestar.response import Stream

from api.deps import CallerDep, ServicesDep
from api.routes.partners import written
from api.schemas import CodeBatchIn, ProductIn
from api.services import STORED_INT_MAX
from domain.batches import CodeBatch, CodeLevel
from domain.catalog import Product, ProductSpec
from domain.codes import CodeKind, issue_code, iter_batch_codes, iter_unit_codes
from domain.errors import InvalidInput, NotFound
from domain.handlers import catalog
from domain.identity import batch_id, product_id
from domain.ledger import UnitOfWork
from domain.logistics import batch_of
from domain.principal import Role

CSV_ROWS_PER_CHUNK = 2000
SHEET_CODES_MAX = 200
QR_SCALE_MAX = 20


class ProductController(Controller):
    path = "/v1/products"
    tags = ["codes"]

    @post("/", status_code=201, sync_to_thread=True, summary="List a product (HQ)")
    def create(
        self, data: JSONBody[ProductIn], caller: CallerDep, services: ServicesDep
    ) -> dict[str, Any]:
        principal = caller.principal()
        spec = ProductSpec(  # the body's own rules before permission (API.md)
            data.sku,
            data.gtin,
            data.name,
            data.price,
            data.points_per_scan,
            data.case_gtin,
            data.category,
        )
        principal.require(Role.HQ)
        return written(catalog.list_product(services.store.ledger, principal, spec))

    @get("/{sku:str}", sync_to_thread=True, summary="One product")
    def read(
        self,
        sku: Annotated[str, PathParameter(max_length=40)],
        caller: CallerDep,
        services: ServicesDep,
    ) -> dict[str, Any]:
        caller.principal()  # any authenticated caller
        product = UnitOfWork(services.store.ledger).find(Product, product_id(sku))
        if product is None:
            raise NotFound(f"unknown sku {sku}", code="unknown_sku")
        return {
            "sku": product.sku,
            "gtin": product.gtin,
            "name": product.name,
            "price": product.price_fen,
            "points_per_scan": product.points_per_scan,
            "case_gtin": product.case_gtin,
            "category": product.category,
        }


class CodeBatchController(Controller):
    path = "/v1/code-batches"
    tags = ["codes"]

    @post("/", status_code=201, sync_to_thread=True, summary="Issue a batch of codes")
    def issue(
        self, data: JSONBody[CodeBatchIn], caller: CallerDep, services: ServicesDep
    ) -> dict[str, Any]:
        principal = caller.principal()  # hq or factory: checked after the body's rules
        outcome = catalog.issue_batch(
            services.store.ledger,
            principal,
            data.batch_id,
            data.sku,
            data.count,
            CodeLevel(data.level),
        )
        return {
            "batch_id": data.batch_id,
            "count": data.count,
            "level": data.level,
            "sku": data.sku,
            "position": outcome.position,
        }

    @get("/{batch:str}/codes", sync_to_thread=True, summary="The batch's codes as CSV")
    def codes(
        self,
        batch: Annotated[str, PathParameter(max_length=64)],
        caller: CallerDep,
        services: ServicesDep,
    ) -> Stream:
        principal = caller.principal()
        principal.require(Role.HQ, Role.FACTORY)
        found = _batch(services, batch)
        rows = _csv_rows(services, found)
        return Stream(
            rows,
            media_type="text/csv",  # Litestar adds "; charset=utf-8" to a text/* type
            headers={"Content-Disposition": f'attachment; filename="{found.batch_id}.csv"'},
        )

    @get("/{batch:str}/sheet", sync_to_thread=True, summary="A printable QR sheet (HTML)")
    def sheet(
        self,
        batch: Annotated[str, PathParameter(max_length=64)],
        caller: CallerDep,
        services: ServicesDep,
        start: Annotated[int, QueryParameter(ge=0, le=STORED_INT_MAX, required=False)] = 0,
        count: Annotated[int, QueryParameter(ge=1, le=SHEET_CODES_MAX, required=False)] = 48,
    ) -> Response[str]:
        principal = caller.principal()
        principal.require(Role.HQ, Role.FACTORY)
        found = _batch(services, batch)
        if start >= found.count:
            raise InvalidInput.field("start", f"the batch has {found.count} codes")
        return Response(
            _sheet_html(services, found, start, min(count, found.count - start)),
            media_type=MediaType.HTML,
        )


def _batch(services: Any, name: str) -> CodeBatch:
    found = UnitOfWork(services.store.ledger).find(CodeBatch, batch_id(name))
    if found is None:
        raise NotFound(f"unknown batch {name}", code="unknown_batch")
    return found


def _csv_rows(services: Any, batch: CodeBatch) -> Iterator[bytes]:
    """Constant memory: codes are derived chunk by chunk, never stored."""
    book = services.store.ledger.codebook
    key = book.keys[batch.key_id]
    yield b"code,url,consumer_code,consumer_url\n"
    prefix = book.url_prefix(batch.gtin)
    lines: list[str] = []
    if batch.level is CodeLevel.UNIT:
        for outer, consumer in iter_unit_codes(key, batch.batch_no, batch.count):
            lines.append(f"{outer},{prefix}{outer},{consumer},{prefix}{consumer}\n")
            if len(lines) >= CSV_ROWS_PER_CHUNK:
                yield "".join(lines).encode()
                lines.clear()
    else:
        for case in iter_batch_codes(key, batch.batch_no, batch.count, CodeKind.CASE):
            lines.append(f"{case},{prefix}{case},,\n")
            if len(lines) >= CSV_ROWS_PER_CHUNK:
                yield "".join(lines).encode()
                lines.clear()
    if lines:
        yield "".join(lines).encode()


def _sheet_html(services: Any, batch: CodeBatch, start: int, count: int) -> str:
    book = services.store.ledger.codebook
    key = book.keys[batch.key_id]
    kind = CodeKind.CASE if batch.level is CodeLevel.CASE else CodeKind.UNIT_OUTER
    cells = []
    for index in range(start, start + count):
        serial = issue_code(key, batch.batch_no, index, kind)
        svg = segno.make(book.url(batch.gtin, serial), error="m").svg_inline(scale=3)
        cells.append(f"<figure>{svg}<figcaption>{serial}</figcaption></figure>")
    return (
        "<!doctype html><html><head><meta charset='utf-8'>"
        f"<title>{batch.batch_id} {start}-{start + count - 1}</title><style>"
        "body{font-family:monospace}main{display:grid;grid-template-columns:repeat(6,1fr);gap:8px}"
        "figure{margin:0;text-align:center;break-inside:avoid}figcaption{font-size:9px}"
        f"</style></head><body><h1>{batch.batch_id} ({batch.sku}, {batch.level.value})</h1>"
        f"<main>{''.join(cells)}</main></body></html>"
    )


class QrController(Controller):
    path = "/v1/codes"
    tags = ["codes"]

    @get("/{code:str}/qr.svg", sync_to_thread=True, summary="QR image of a code (SVG)")
    def svg(
        self,
        code: Annotated[str, PathParameter(max_length=40)],
        caller: CallerDep,
        services: ServicesDep,
        scale: Annotated[int, QueryParameter(ge=1, le=QR_SCALE_MAX, required=False)] = 4,
    ) -> Response[bytes]:
        principal = caller.principal()
        return _qr_image(services, principal, code, "svg", scale)

    @get("/{code:str}/qr.png", sync_to_thread=True, summary="QR image of a code (PNG)")
    def png(
        self,
        code: Annotated[str, PathParameter(max_length=40)],
        caller: CallerDep,
        services: ServicesDep,
        scale: Annotated[int, QueryParameter(ge=1, le=QR_SCALE_MAX, required=False)] = 4,
    ) -> Response[bytes]:
        principal = caller.principal()
        return _qr_image(services, principal, code, "png", scale)


QR_MEDIA_TYPES = {"svg": "image/svg+xml", "png": "image/png"}


def _qr_image(services: Any, principal: Any, text: str, kind: str, scale: int) -> Response[bytes]:
    out = io.BytesIO()
    _qr(services, principal, text).save(out, kind=kind, scale=scale)
    return Response(out.getvalue(), media_type=QR_MEDIA_TYPES[kind])


def _qr(services: Any, principal: Any, text: str) -> Any:
    principal.require(Role.HQ, Role.FACTORY)
    uow = UnitOfWork(services.store.ledger)
    code = uow.codebook.parse(text)
    if code is None:
        raise NotFound("unknown or forged code", code="unknown_code")
    batch = batch_of(uow, code)
    return segno.make(uow.codebook.url(batch.gtin, code.serial), error="m")
