"""Balances, statements, withdrawals, reconciliation and settlement runs over HTTP.

Reads are scoped like the partner directory: a partner sees its own, a dealer (or a
store) its subtree, HQ and auditors everything; anything outside is 404.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from litestar import Controller, get, post
from litestar.params import JSONBody, PathParameter, QueryParameter

from api.deps import CallerDep, Cursor, Limit, MinPosition, PrincipalDep, ServicesDep
from api.money import reconciliation_report, settle_now
from api.money_schemas import WithdrawalDecisionIn, WithdrawalIn, WithdrawalPaymentIn
from api.routes.partners import written
from api.services import (
    Services,
    decode_cursor,
    decode_position_cursor,
    encode_cursor,
    next_cursor,
    page_limit,
)
from domain.errors import InvalidInput, NotFound
from domain.handlers import settlement
from domain.ledger import UnitOfWork
from domain.principal import Principal, Role
from domain.withdrawals import PayoutAccount, payout_account_id
from projections.balances import LEDGER_VIEW, balance_answer, partner_and_positions
from projections.ledger_postings import position_at
from projections.partners import get_partner
from projections.readings import Reading
from projections.statements import parse_period_bound, statement
from projections.views import Tx

CodePath = Annotated[str, PathParameter(max_length=40)]
WithdrawalPath = Annotated[str, PathParameter(max_length=100)]
TimeParam = Annotated[str | None, QueryParameter(max_length=40, required=False)]
PERIOD_FROM = (
    "RFC 3339 time, excluded (the opening is the balance as of it), or YYYY-MM-DD: "
    "from that Asia/Shanghai day's midnight, included"
)
PERIOD_TO = (
    "RFC 3339 time, included (the closing is the balance as of it), or YYYY-MM-DD: "
    "through that Asia/Shanghai day, up to the next midnight, excluded"
)


def _partner_in_scope(services: Services, principal: Principal, code: str) -> dict[str, Any]:
    with services.store.views.read() as tx:
        return _partner_seen(tx, principal, code)


def _partner_seen(tx: Tx, principal: Principal, code: str) -> dict[str, Any]:
    return _seen(principal, code, get_partner(tx, code))


def _seen(principal: Principal, code: str, partner: dict[str, Any] | None) -> dict[str, Any]:
    """The partner if the principal may see it; outside its scope is as unknown (404)."""
    if partner is None or not principal.may_see(partner["path"]):
        raise NotFound(f"unknown partner {code}", code="unknown_partner")
    return partner


class BalanceController(Controller):
    path = "/v1/balances"
    tags = ["balances"]

    @get("/{partner:str}", summary="Pending and available, as of any time")
    async def read(
        self,
        partner: CodePath,
        principal: PrincipalDep,
        services: ServicesDep,
        min_position: MinPosition,
        as_of: TimeParam = None,
        rollup: Annotated[bool, QueryParameter(required=False)] = False,
    ) -> dict[str, Any]:
        # On the event loop: a balance is the hottest read (services.reads).
        at = parse_period_bound(as_of, "as_of")
        await services.await_view_async(LEDGER_VIEW, min_position)
        now = services.store.ledger.clock()
        return await services.reads.run(_balance(principal, partner, at, now, rollup))


def _balance(
    principal: Principal, code: str, at: datetime | None, now: datetime, rollup: bool
) -> Reading[dict[str, Any]]:
    """Two statements, no transaction: the partner and the position to read up to, then
    the balance up to that position (rows after it are not counted)."""
    found, upto = yield from partner_and_positions(code, at)
    seen = _seen(principal, code, found)
    return (yield from balance_answer(seen, at, now, upto, rollup))


class PartnerMoneyController(Controller):
    path = "/v1/partners"
    tags = ["balances"]

    @get("/{code:str}/statement", sync_to_thread=True, summary="A statement for a period")
    def statement(
        self,
        code: CodePath,
        caller: CallerDep,
        services: ServicesDep,
        min_position: MinPosition,
        limit: Limit,
        cursor: Cursor,
        start: Annotated[str | None, QueryParameter(
            name="from", max_length=40, required=False, description=PERIOD_FROM
        )] = None,
        end: Annotated[str | None, QueryParameter(
            name="to", max_length=40, required=False, description=PERIOD_TO
        )] = None,
    ) -> dict[str, Any]:  # fmt: skip
        principal = caller.principal()
        start_at, end_at = parse_period_bound(start, "from"), parse_period_bound(end, "to")
        if start_at is not None and end_at is not None and end_at < start_at:
            raise InvalidInput.field("to", "the period ends before it starts")
        size = page_limit(limit)
        after = decode_position_cursor(cursor)
        services.await_view("ledger", min_position)
        store = services.store
        with store.views.read() as tx:
            _partner_seen(tx, principal, code)
            applied = store.engine.position("ledger", tx)
            first = 0 if start_at is None else min(applied, position_at(tx, start_at))
            last = applied if end_at is None else min(applied, position_at(tx, end_at))
            answer = statement(tx, code, first, max(first, last), after, size)
        # the period's ends as resolved (a bare date's): the opening and the closing are
        # the balances as of these times
        answer["from"] = None if start_at is None else start_at.isoformat()
        answer["to"] = None if end_at is None else end_at.isoformat()
        if answer["next"] is not None:
            answer["next"] = encode_cursor(answer["next"])
        return answer

    @post("/{code:str}/withdrawals", status_code=201, sync_to_thread=True)
    def request_withdrawal(
        self,
        code: CodePath,
        data: JSONBody[WithdrawalIn],
        caller: CallerDep,
        services: ServicesDep,
    ) -> dict[str, Any]:
        principal = caller.principal()
        outcome = settlement.request_withdrawal(
            services.store.ledger, principal, code, data.withdrawal_id, data.amount
        )
        return written(outcome)

    @post("/{code:str}/withdrawals/{withdrawal_id:str}/decision", status_code=200,
          sync_to_thread=True)  # fmt: skip
    def decide_withdrawal(
        self,
        code: CodePath,
        withdrawal_id: WithdrawalPath,
        data: JSONBody[WithdrawalDecisionIn],
        caller: CallerDep,
        services: ServicesDep,
    ) -> dict[str, Any]:
        principal = caller.principal()
        outcome = settlement.decide_withdrawal(
            services.store.ledger,
            principal,
            code,
            withdrawal_id,
            data.decision == "approve",
            data.reason,
        )
        return written(outcome)

    @post("/{code:str}/withdrawals/{withdrawal_id:str}/payment", status_code=200,
          sync_to_thread=True)  # fmt: skip
    def pay_withdrawal(
        self,
        code: CodePath,
        withdrawal_id: WithdrawalPath,
        data: JSONBody[WithdrawalPaymentIn],
        caller: CallerDep,
        services: ServicesDep,
    ) -> dict[str, Any]:
        principal = caller.principal()
        outcome = settlement.pay_withdrawal(
            services.store.ledger, principal, code, withdrawal_id, data.payout_ref
        )
        return written(outcome)

    @get("/{code:str}/withdrawals", sync_to_thread=True, summary="Withdrawals (write side)")
    def withdrawals(
        self,
        code: CodePath,
        caller: CallerDep,
        services: ServicesDep,
        limit: Limit,
        cursor: Cursor,
    ) -> dict[str, Any]:
        """A page of the partner's withdrawals, by withdrawal_id (the account's own order)."""
        principal = caller.principal()
        size, after = page_limit(limit), decode_cursor(cursor)
        _partner_in_scope(services, principal, code)
        found = UnitOfWork(services.store.ledger).find(PayoutAccount, payout_account_id(code))
        view: dict[str, Any] = {"partner": code, "available": 0, "withdrawals": []}
        if found is not None:
            view = found.view()
        listed = [w for w in view["withdrawals"] if after is None or w["withdrawal_id"] > after]
        listed = listed[:size]
        return {**view, "withdrawals": listed, "next": next_cursor(listed, size, "withdrawal_id")}


class ReconciliationController(Controller):
    path = "/v1/reconciliation"
    tags = ["balances"]

    @get("/", sync_to_thread=True, summary="Reconciliation report for a period (HQ, auditor)")
    def report(
        self,
        caller: CallerDep,
        services: ServicesDep,
        min_position: MinPosition,
        start: Annotated[
            str | None, QueryParameter(name="from", max_length=40, required=False)
        ] = None,
        end: Annotated[str | None, QueryParameter(name="to", max_length=40, required=False)] = None,
    ) -> dict[str, Any]:
        principal = caller.principal()
        principal.require(Role.HQ, Role.AUDITOR)
        start_at, end_at = parse_period_bound(start, "from"), parse_period_bound(end, "to")
        services.await_view("ledger", min_position)
        services.await_view("orders", min_position)
        return reconciliation_report(services.store, start_at, end_at)


class SettlementController(Controller):
    path = "/v1/settlements"
    tags = ["balances"]

    @post("/", status_code=200, sync_to_thread=True, summary="Run settlement now (HQ)")
    def run(self, caller: CallerDep, services: ServicesDep) -> dict[str, Any]:
        principal = caller.principal()
        principal.require(Role.HQ)
        report = settle_now(services.store)
        return {
            "settled": report.settled,
            "examined": report.examined,
            "position": report.position,
        }
