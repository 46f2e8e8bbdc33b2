"""Orders, payments, fulfilment, refunds, receipts, and HQ's split policies over HTTP."""

from __future__ import annotations

from typing import Annotated, Any

from litestar import Controller, get, post
from litestar.params import JSONBody, PathParameter

from api.deps import CallerDep, MinPosition, ServicesDep
from api.money_schemas import (
    CancellationIn,
    FulfilmentIn,
    OrderIn,
    PaymentIn,
    ReceiptIn,
    RefundIn,
    SplitPolicyIn,
    policy_from,
)
from api.routes.partners import written
from api.services import parse_time
from domain.errors import NotFound
from domain.handlers import orders
from domain.handlers.orders import LineRequest, OrderRequest, ReceiptRequest
from domain.ledger import Outcome, UnitOfWork
from domain.policies import PolicySchedule, schedule_id
from domain.principal import Principal, Role
from domain.splits import Fulfilment, default_policy
from projections.orders_view import get_order
from projections.partners import get_partner

OrderPath = Annotated[str, PathParameter(max_length=64)]


class OrderController(Controller):
    path = "/v1/orders"
    tags = ["orders"]

    @post("/", status_code=201, sync_to_thread=True, summary="Place an order (attributed)")
    def place(
        self, data: JSONBody[OrderIn], caller: CallerDep, services: ServicesDep
    ) -> dict[str, Any]:
        store, where = services.store, data.location

        def place(principal: Principal) -> Outcome:
            request = OrderRequest(  # the body's own rules before permission (API.md)
                order_id=data.order_id,
                member=data.member,
                lines=tuple(LineRequest(x.sku, x.qty, x.unit_price) for x in data.lines),
                fulfilment=Fulfilment(data.fulfilment),
                lat=None if where is None else where.lat,
                lng=None if where is None else where.lng,
                referrer=data.referrer,
            )
            principal.require(Role.GATEWAY, Role.HQ)
            return orders.place_order(store.ledger, principal, request, services.find_stores)

        return written(caller.run(place))

    @get("/{order_id:str}", sync_to_thread=True, summary="One order with its split and refunds")
    def read(
        self,
        order_id: OrderPath,
        caller: CallerDep,
        services: ServicesDep,
        min_position: MinPosition,
    ) -> dict[str, Any]:
        principal = caller.principal()
        services.await_view("orders", min_position)
        with services.store.views.read() as tx:
            found = get_order(tx, order_id)
            store = None if found is None else get_partner(tx, found["store"])
        if found is None or store is None or not _may_see_order(principal, found, store):
            raise NotFound(f"unknown order {order_id}", code="unknown_order")
        return found

    @post("/{order_id:str}/payments", status_code=200, sync_to_thread=True)
    def pay(
        self,
        order_id: OrderPath,
        data: JSONBody[PaymentIn],
        caller: CallerDep,
        services: ServicesDep,
    ) -> dict[str, Any]:
        ledger = services.store.ledger
        return written(
            caller.run(lambda by: orders.pay(ledger, by, order_id, data.payment_id, data.amount))
        )

    @post("/{order_id:str}/fulfilment", status_code=200, sync_to_thread=True)
    def fulfil(
        self,
        order_id: OrderPath,
        data: JSONBody[FulfilmentIn],
        caller: CallerDep,
        services: ServicesDep,
    ) -> dict[str, Any]:
        principal = caller.principal()
        ledger = services.store.ledger
        return written(orders.fulfil(ledger, principal, order_id, data.fulfilment_id))

    @post("/{order_id:str}/cancellation", status_code=200, sync_to_thread=True)
    def cancel(
        self,
        order_id: OrderPath,
        data: JSONBody[CancellationIn],
        caller: CallerDep,
        services: ServicesDep,
    ) -> dict[str, Any]:
        principal = caller.principal()
        ledger = services.store.ledger
        outcome = orders.cancel(ledger, principal, order_id, data.cancellation_id, data.reason)
        return written(outcome)

    @post("/{order_id:str}/refunds", status_code=200, sync_to_thread=True)
    def refund(
        self,
        order_id: OrderPath,
        data: JSONBody[RefundIn],
        caller: CallerDep,
        services: ServicesDep,
    ) -> dict[str, Any]:
        principal = caller.principal()
        ledger = services.store.ledger
        return written(orders.refund(ledger, principal, order_id, data.refund_id, data.amount))

    @post("/{order_id:str}/receipts", status_code=200, sync_to_thread=True)
    def receipt(
        self,
        order_id: OrderPath,
        data: JSONBody[ReceiptIn],
        caller: CallerDep,
        services: ServicesDep,
    ) -> dict[str, Any]:
        principal = caller.principal()
        request = ReceiptRequest(
            data.receipt_id, data.instruction_id, data.status, data.amount, data.provider_ref
        )
        return written(orders.record_receipt(services.store.ledger, principal, order_id, request))


def _may_see_order(principal: Principal, order: dict[str, Any], store: dict[str, Any]) -> bool:
    if principal.may_see(store["path"]):
        return True
    return order["distributor"] is not None and principal.partner == order["distributor"]


class SplitPolicyController(Controller):
    path = "/v1/split-policies"
    tags = ["orders"]

    @post("/", status_code=201, sync_to_thread=True, summary="Publish a split policy (HQ)")
    def publish(
        self, data: JSONBody[SplitPolicyIn], caller: CallerDep, services: ServicesDep
    ) -> dict[str, Any]:
        principal = caller.principal()
        policy = policy_from(data, parse_time(data.effective_from, "effective_from"))
        principal.require(Role.HQ)  # after the body's own rules (API.md)
        return written(orders.publish_policy(services.store.ledger, principal, policy))

    @get("/", sync_to_thread=True, summary="The policies of each fulfilment mode, in force first")
    def list(self, caller: CallerDep, services: ServicesDep) -> dict[str, Any]:
        caller.principal()  # any authenticated caller
        uow = UnitOfWork(services.store.ledger)
        items = []
        for fulfilment in Fulfilment:
            schedule = uow.find(PolicySchedule, schedule_id(fulfilment))
            in_force = (
                default_policy(fulfilment) if schedule is None else schedule.in_force(uow.now)
            )
            published = [] if schedule is None else schedule.policies
            items.append(
                {
                    "fulfilment": fulfilment.value,
                    "in_force": {**in_force.content(), "version": in_force.version},
                    "published": [{**p.content(), "version": p.version} for p in published],
                }
            )
        return {"items": items}
