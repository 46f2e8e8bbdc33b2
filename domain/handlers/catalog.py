"""Products and code batches."""

from __future__ import annotations

from typing import Any

from domain.batches import (
    BatchNumber,
    CodeBatch,
    CodeLevel,
    batch_number_candidates,
    validate_batch_id,
    validate_count,
)
from domain.catalog import Product, ProductSpec
from domain.errors import BusinessRuleBroken, Conflict, NotFound
from domain.identity import batch_number_id, product_id
from domain.ledger import GLOBAL_SCOPE, Ledger, Outcome, RequestKey, UnitOfWork
from domain.principal import Principal, Role


def list_product(ledger: Ledger, by: Principal, spec: ProductSpec) -> Outcome:
    key = RequestKey(GLOBAL_SCOPE, "product", spec.sku, spec.content())

    def authorize(_uow: UnitOfWork) -> None:
        by.require(Role.HQ)

    def decide(uow: UnitOfWork) -> dict[str, Any]:
        if uow.find(Product, product_id(spec.sku)) is not None:
            raise Conflict(f"product {spec.sku} exists", code="product_exists")
        uow.add(Product.list(spec, by, uow.now))
        return spec.content()

    return ledger.execute(key, decide, authorize)


def issue_batch(
    ledger: Ledger, by: Principal, name: str, sku: str, count: int, level: CodeLevel
) -> Outcome:
    validate_batch_id(name)
    validate_count(count)
    key = RequestKey(
        GLOBAL_SCOPE, "code-batch", name, {"sku": sku, "count": count, "level": level.value}
    )

    def authorize(_uow: UnitOfWork) -> None:
        by.require(Role.HQ, Role.FACTORY)

    def decide(uow: UnitOfWork) -> dict[str, Any]:
        product = uow.find(Product, product_id(sku))
        if product is None:
            raise NotFound(f"unknown sku {sku}", code="unknown_sku")
        gtin = product.gtin
        if level is CodeLevel.CASE:
            if product.case_gtin is None:
                raise BusinessRuleBroken(f"{sku} has no case GTIN", code="no_case_gtin")
            gtin = product.case_gtin
        key_id = uow.codebook.current_key_id
        batch_no = _free_batch_number(uow, key_id, name)
        uow.add(BatchNumber.claim(key_id, batch_no, name, uow.now))
        uow.add(CodeBatch.issue(name, sku, gtin, level, count, key_id, batch_no, by, uow.now))
        return {"batch_id": name, "sku": sku, "count": count, "level": level.value}

    return ledger.execute(key, decide, authorize)


def _free_batch_number(uow: UnitOfWork, key_id: int, name: str) -> int:
    for candidate in batch_number_candidates(name):
        if uow.find(BatchNumber, batch_number_id(key_id, candidate)) is None:
            return candidate
    raise Conflict("no free batch number near this batch id; choose another", code="contention")
