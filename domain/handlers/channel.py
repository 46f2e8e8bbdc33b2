"""Commands on the channel tree: register, update territory, relocate, suspend, reactivate."""

from __future__ import annotations

from typing import Any

from domain.channel import Location, Partner, PartnerSpec
from domain.errors import Conflict
from domain.identity import partner_id
from domain.ledger import GLOBAL_SCOPE, Ledger, Outcome, RequestKey, UnitOfWork
from domain.principal import Principal


def partner_answer(partner: Partner) -> dict[str, Any]:
    return {
        "code": partner.code,
        "kind": partner.kind.value,
        "parent": partner.parent,
        "path": partner.path,
    }


def register_partner(ledger: Ledger, by: Principal, spec: PartnerSpec) -> Outcome:
    """The partner code is a global natural key: the same content again is a repeat."""
    by.require_writer()
    key = RequestKey(GLOBAL_SCOPE, "partner", spec.code, spec.fingerprint())

    def authorize(uow: UnitOfWork) -> None:
        parent = uow.partner(spec.parent)
        parent.authorize_registration(spec, by)

    def decide(uow: UnitOfWork) -> dict[str, Any]:
        existing = uow.find(Partner, partner_id(spec.code))
        if existing is not None:
            # Registered before this service recorded requests, or by the demo loader.
            raise Conflict(f"partner {spec.code} exists with other content", code="partner_exists")
        partner = Partner.register(spec, uow.partner(spec.parent), by, uow.clock())
        uow.add(partner)
        return partner_answer(partner)

    return ledger.execute(key, decide, authorize)


def _change(
    ledger: Ledger,
    by: Principal,
    code: str,
    change_id: str,
    kind: str,
    content: dict[str, Any],
    apply: Any,
) -> Outcome:
    by.require_writer()
    key = RequestKey(by.scope_key, kind, change_id, {"partner": code, **content})

    def authorize(uow: UnitOfWork) -> None:
        uow.partner(code).authorize_management(by)

    def decide(uow: UnitOfWork) -> dict[str, Any]:
        partner = uow.partner(code)
        apply(partner, uow)
        return {"code": partner.code, "status": partner.status.value}

    return ledger.execute(key, decide, authorize)


def update_territory(
    ledger: Ledger, by: Principal, code: str, change_id: str, region_codes: tuple[str, ...]
) -> Outcome:
    return _change(
        ledger,
        by,
        code,
        change_id,
        "partner.territory",
        {"region_codes": list(region_codes)},
        lambda p, uow: p.update_territory(region_codes, by, uow.clock()),
    )


def relocate(
    ledger: Ledger, by: Principal, code: str, change_id: str, location: Location, region_code: str
) -> Outcome:
    content = {"lat": location.lat, "lng": location.lng, "region_code": region_code}
    return _change(
        ledger,
        by,
        code,
        change_id,
        "partner.location",
        content,
        lambda p, uow: p.relocate(location, region_code, by, uow.clock()),
    )


def suspend(ledger: Ledger, by: Principal, code: str, change_id: str, reason: str) -> Outcome:
    return _change(
        ledger,
        by,
        code,
        change_id,
        "partner.suspend",
        {"reason": reason},
        lambda p, uow: p.suspend(reason, by, uow.clock()),
    )


def reactivate(ledger: Ledger, by: Principal, code: str, change_id: str) -> Outcome:
    return _change(
        ledger,
        by,
        code,
        change_id,
        "partner.reactivate",
        {},
        lambda p, uow: p.reactivate(by, uow.clock()),
    )
