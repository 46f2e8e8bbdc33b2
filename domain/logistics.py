"""Logistics: commission, pack, unpack, ship, receive, sell; who may do which, to what.

``move`` applies one logistics event to the aggregates in a unit of work or raises
a typed refusal; the handler runs a whole request atomically on top of it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any
from uuid import UUID

from domain.batches import BatchNumber, CodeBatch, CodeLevel
from domain.channel import Partner
from domain.codebook import Codebook
from domain.codes import CodeKind, ParsedCode
from domain.errors import BusinessRuleBroken, InvalidInput, NotAllowed, NotFound
from domain.identity import batch_id, batch_number_id, case_id, partner_id, unit_id
from domain.ledger import UnitOfWork
from domain.principal import HQ_CODE, Principal, Role
from domain.units import Case, Unit, UnitState

CODES_PER_EVENT_MAX = 1000


class Action(StrEnum):
    COMMISSION = "commission"
    PACK = "pack"
    UNPACK = "unpack"
    SHIP = "ship"
    RECEIVE = "receive"
    SELL = "sell"


@dataclass(frozen=True)
class Movement:
    event_id: str
    action: Action
    codes: tuple[str, ...]
    parent: str | None = None
    to: str | None = None

    def __post_init__(self) -> None:
        if not 1 <= len(self.codes) <= CODES_PER_EVENT_MAX:
            raise InvalidInput.field("codes", f"1 to {CODES_PER_EVENT_MAX} codes per event")
        if len(set(self.codes)) != len(self.codes):
            raise InvalidInput.field("codes", "a code appears twice in one event")
        if self.action in (Action.PACK, Action.UNPACK) and not self.parent:
            raise InvalidInput.field("parent", f"{self.action.value} needs the case code")
        if self.action is Action.SHIP and not self.to:
            raise InvalidInput.field("to", "ship needs the destination partner")

    def named(self) -> tuple[str, ...]:
        """Every code the movement names: its codes, then the case it packs into or from."""
        return (*self.codes, self.parent) if self.parent else self.codes

    def content(self) -> dict[str, Any]:
        return {
            "action": self.action.value,
            "codes": list(self.codes),
            "parent": self.parent,
            "to": self.to,
        }


def operates_for(by: Principal, partner: str) -> bool:
    """May ``by`` move goods held by ``partner``? HQ's are moved by hq and factory roles."""
    if by.partner != partner:
        return False
    if partner == HQ_CODE:
        return by.role in (Role.HQ, Role.FACTORY)
    return by.role in (Role.DEALER, Role.STORE)


# -- resolving codes -------------------------------------------------------------

# Every code a request names, parsed once (a parse is two HMACs; the reads and the
# movements both need them, and a conflicting request is decided again): None where
# the text is not a genuine code.
Codes = Mapping[str, ParsedCode | None]


def parse_all(codebook: Codebook, movements: Iterable[Movement]) -> dict[str, ParsedCode | None]:
    return {text: codebook.parse(text) for m in movements for text in m.named()}


def parse(codes: Codes, text: str) -> ParsedCode:
    code = codes[text]
    if code is None:
        raise NotFound(f"unknown code {text[:40]!r}", code="unknown_code")
    return code


def reads_of(codes: Codes, movements: Iterable[Movement]) -> list[UUID]:
    """The units, cases and partners these movements will read, to fetch them in one query
    (codes that do not parse are left to the movement, which refuses them)."""
    reads: list[UUID] = []
    for m in movements:
        for text in m.named():
            code = codes[text]
            if code is None or code.kind is CodeKind.UNIT_CONSUMER:
                continue
            reads.append(
                case_id(code.serial) if code.kind is CodeKind.CASE else unit_id(code.serial)
            )
        if m.to:
            reads.append(partner_id(m.to))
    return reads


def batch_of(uow: UnitOfWork, code: ParsedCode) -> CodeBatch:
    claim = uow.find(BatchNumber, batch_number_id(code.key_id, code.batch_no))
    batch = None if claim is None else uow.find(CodeBatch, batch_id(claim.batch_id))
    if batch is None or code.index >= batch.count:
        raise NotFound("unknown code", code="unknown_code")
    return batch


def held(uow: UnitOfWork, codes: Codes, text: str) -> Unit | Case:
    """The commissioned unit or case an outer code names."""
    code = parse(codes, text)
    if code.kind is CodeKind.UNIT_CONSUMER:
        raise BusinessRuleBroken(
            "logistics uses outer codes, not consumer codes", code="consumer_code_in_logistics"
        )
    found: Unit | Case | None
    if code.kind is CodeKind.CASE:
        found = uow.find(Case, case_id(code.serial))
    else:
        found = uow.find(Unit, unit_id(code.serial))
    if found is None or (isinstance(found, Unit) and not found.commissioned):
        raise BusinessRuleBroken(f"{text[:40]} is not commissioned", code="not_commissioned")
    return found


def whereabouts(uow: UnitOfWork, item: Unit | Case) -> Unit | Case:
    """What carries the item's state: its case while it is packed, else itself."""
    if isinstance(item, Unit) and item.container is not None:
        return uow.get(Case, case_id(item.container), "case")
    return item


# -- the actions -----------------------------------------------------------------


def move(uow: UnitOfWork, by: Principal, m: Movement, codes: Codes) -> None:
    """``codes``: at least the movement's, parsed (``parse_all``)."""
    if by.role in (Role.AUDITOR, Role.GATEWAY, Role.CLERK, Role.DISTRIBUTOR):
        raise NotAllowed(f"role {by.role.value} does not move goods")
    handler = {
        Action.COMMISSION: _commission,
        Action.PACK: _pack,
        Action.UNPACK: _unpack,
        Action.SHIP: _ship,
        Action.RECEIVE: _receive,
        Action.SELL: _sell,
    }[m.action]
    handler(uow, by, m, codes)


def _commission(uow: UnitOfWork, by: Principal, m: Movement, codes: Codes) -> None:
    by.require(Role.FACTORY, Role.HQ)
    for text in m.codes:
        code = parse(codes, text)
        batch = batch_of(uow, code)
        if code.kind is CodeKind.UNIT_CONSUMER:
            raise BusinessRuleBroken("commission outer codes", code="consumer_code_in_logistics")
        wanted = CodeLevel.CASE if code.kind is CodeKind.CASE else CodeLevel.UNIT
        if batch.level is not wanted:
            raise BusinessRuleBroken("code level does not match its batch", code="unknown_code")
        if code.kind is CodeKind.CASE:
            if uow.find(Case, case_id(code.serial)) is not None:
                raise BusinessRuleBroken(f"{text} is commissioned", code="already_commissioned")
            uow.add(
                Case.commission(
                    code.serial,
                    batch.batch_id,
                    batch.sku,
                    batch.gtin,
                    HQ_CODE,
                    by.scope_key,
                    uow.now,
                )
            )
            continue
        if uow.find(Unit, unit_id(code.serial)) is not None:
            raise BusinessRuleBroken(
                f"{text} is commissioned or surfaced", code="already_commissioned"
            )
        uow.add(
            Unit.commission(
                code.serial, batch.batch_id, batch.sku, batch.gtin, HQ_CODE, by.scope_key, uow.now
            )
        )


def _case(uow: UnitOfWork, codes: Codes, text: str | None) -> Case:
    assert text is not None
    found = held(uow, codes, text)
    if not isinstance(found, Case):
        raise BusinessRuleBroken("parent must be a case code", code="not_a_case")
    return found


def _require_holder(by: Principal, item: Unit | Case) -> None:
    if item.owner is None or not operates_for(by, item.owner):
        raise NotAllowed(f"{by.partner} does not hold this item")


def _pack(uow: UnitOfWork, by: Principal, m: Movement, codes: Codes) -> None:
    case = _case(uow, codes, m.parent)
    _require_holder(by, case)
    if case.state is not UnitState.IN_STOCK:
        raise BusinessRuleBroken("the case is not in stock", code="not_in_stock")
    units: list[Unit] = []
    for text in m.codes:
        unit = held(uow, codes, text)
        if not isinstance(unit, Unit):
            raise BusinessRuleBroken("cases hold units, not cases", code="not_a_unit")
        if unit.container is not None:
            raise BusinessRuleBroken(f"{text} is in case {unit.container}", code="already_packed")
        _require_holder(by, unit)
        if unit.state is not UnitState.IN_STOCK or unit.owner != case.owner:
            raise BusinessRuleBroken(f"{text} is not in stock with the case", code="not_in_stock")
        if unit.sku != case.sku:  # the case's GTIN names its product: what it holds
            raise BusinessRuleBroken(
                f"{text} is {unit.sku}; the case holds {case.sku}", code="other_sku"
            )
        units.append(unit)
    serials = tuple(u.serial for u in units)
    case.trigger_event(Case.Packed, timestamp=uow.now, units=serials, by=by.scope_key)
    for unit in units:
        unit.trigger_event(Unit.Packed, timestamp=uow.now, case=case.serial, by=by.scope_key)


def _unpack(uow: UnitOfWork, by: Principal, m: Movement, codes: Codes) -> None:
    case = _case(uow, codes, m.parent)
    _require_holder(by, case)
    if case.state is not UnitState.IN_STOCK:
        raise BusinessRuleBroken("unpack a case that is in stock", code="not_in_stock")
    units: list[Unit] = []
    for text in m.codes:
        unit = held(uow, codes, text)
        if not isinstance(unit, Unit) or unit.container != case.serial:
            raise BusinessRuleBroken(f"{text} is not in this case", code="not_in_case")
        units.append(unit)
    case.trigger_event(
        Case.Unpacked, timestamp=uow.now, units=tuple(u.serial for u in units), by=by.scope_key
    )
    for unit in units:
        unit.trigger_event(
            Unit.Unpacked,
            timestamp=uow.now,
            case=case.serial,
            state=case.state.value,
            owner=case.owner,
            destination=case.destination,
            dealer=case.dealer,
            dealer_ref=case.dealer_ref,
            by=by.scope_key,
        )


def _ship(uow: UnitOfWork, by: Principal, m: Movement, codes: Codes) -> None:
    assert m.to is not None
    for text in m.codes:
        item = held(uow, codes, text)
        # Permission first, on whoever holds the unit now (its case, if packed: the unit's
        # own owner is as of its packing): only a holder learns that it is packed, and in
        # which case.
        holder = whereabouts(uow, item)
        _require_holder(by, holder)
        if holder is not item:
            raise BusinessRuleBroken(
                f"{text} is packed in {holder.serial}: ship the case", code="packed"
            )
        if item.state is not UnitState.IN_STOCK:
            raise BusinessRuleBroken(f"{text} is not in stock", code="not_in_stock")
        destination = uow.find(Partner, partner_id(m.to))
        if destination is None:
            raise NotFound(f"unknown partner {m.to}", code="unknown_partner")
        if destination.parent != item.owner:
            raise NotAllowed(f"{m.to} is not a direct child of {item.owner}")
        if not destination.is_active:
            raise BusinessRuleBroken(f"{m.to} is suspended", code="partner_suspended")
        fields = {
            "source": item.owner,
            "to": destination.code,
            "to_kind": destination.kind.value,
            "by": by.scope_key,
        }
        if isinstance(item, Case):
            item.trigger_event(
                Case.Shipped, timestamp=uow.now, units=tuple(sorted(item.units)), **fields
            )
        else:
            item.trigger_event(Unit.Shipped, timestamp=uow.now, **fields)


def _receive(uow: UnitOfWork, by: Principal, m: Movement, codes: Codes) -> None:
    for text in m.codes:
        item = held(uow, codes, text)
        # Permission first: only the item's holder or its destination (its case's, if
        # packed) learns what state it is in.
        holder = whereabouts(uow, item)
        if not any(
            partner is not None and operates_for(by, partner)
            for partner in (holder.owner, holder.destination)
        ):
            raise NotAllowed(f"{text} is not on its way to {by.partner}")
        if holder is not item:
            raise BusinessRuleBroken(f"{text} is packed: receive the case", code="packed")
        if item.state is not UnitState.IN_TRANSIT:
            raise BusinessRuleBroken(f"{text} is not in transit", code="not_in_transit")
        if item.destination is None or not operates_for(by, item.destination):
            raise NotAllowed(f"{text} is not on its way to {by.partner}")
        if isinstance(item, Case):
            item.trigger_event(
                Case.Received, timestamp=uow.now, units=tuple(sorted(item.units)), by=by.scope_key
            )
        else:
            item.trigger_event(Unit.Received, timestamp=uow.now, by=by.scope_key)


def _sell(uow: UnitOfWork, by: Principal, m: Movement, codes: Codes) -> None:
    by.require(Role.STORE)
    for text in m.codes:
        unit = held(uow, codes, text)
        if not isinstance(unit, Unit):
            raise BusinessRuleBroken("sell units; unpack cases first", code="not_a_unit")
        holder = whereabouts(uow, unit)
        _require_holder(by, holder)
        if holder.state is not UnitState.IN_STOCK:
            raise BusinessRuleBroken(f"{text} is not in stock", code="not_in_stock")
        left_case = None
        if isinstance(holder, Case):
            left_case = holder.serial
            holder.trigger_event(
                Case.UnitSold,
                timestamp=uow.now,
                unit=unit.serial,
                store=by.partner,
                by=by.scope_key,
            )
        unit.trigger_event(
            Unit.Sold,
            timestamp=uow.now,
            store=by.partner,
            left_case=left_case,
            dealer=holder.dealer,
            dealer_ref=holder.dealer_ref,
            by=by.scope_key,
        )
