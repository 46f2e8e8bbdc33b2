"""What a paid or refunded order does to loyalty, inside the payment or refund command's
own transaction: the member's points and growth (and tier), the first-order task, the
growth of the distributor the order is attributed to, and the clerk tasks of the clerk
it is attributed to (units of the task's SKU; a refund takes them back unless the task
was completed: rules in domain/tasks.py)."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from domain.distributor_levels import credit_sale
from domain.ledger import UnitOfWork
from domain.members import Member
from domain.point_rules import current_rules, points_for_payment, reverse_for_refund
from domain.tasks import count_clerk_order, on_first_order, take_back_clerk_order
from domain.tiers import current_tiers


def reward_payment(uow: UnitOfWork, order: Any, payment_id: str, amount_fen: int, by: str) -> int:
    """Call after ``order.pay``: returns the points credited to the member."""
    member = uow.get(Member, UUID(order.member_id), "member")
    points = points_for_payment(
        member,
        current_tiers(uow),
        current_rules(uow),
        amount_fen,
        order.order_id,
        payment_id,
        by,
        uow.now,
    )
    on_first_order(uow, member, order.order_id, by)
    if order.distributor is not None:
        credit_sale(uow, order.distributor, amount_fen, f"order {order.order_id}", by)
        count_clerk_order(uow, order, payment_id, by)
    return int(points)


def reverse_refund(uow: UnitOfWork, order: Any, refund_id: str, amount_fen: int, by: str) -> int:
    """Call after ``order.refund``: returns the points taken back from the member."""
    member = uow.get(Member, UUID(order.member_id), "member")
    points, _growth = reverse_for_refund(
        member, order.order_id, refund_id, order.refunded, order.paid, by, uow.now
    )
    if order.distributor is not None:
        credit_sale(uow, order.distributor, -amount_fen, f"order {order.order_id} refund", by)
        take_back_clerk_order(uow, order, refund_id, by)
    return points
