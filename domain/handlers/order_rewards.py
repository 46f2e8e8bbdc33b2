"""What a paid, refunded or settled order does to loyalty, inside the payment, refund or
settlement command's own transaction: the member's points and growth (and tier), the
first-order task, the clerk tasks of the clerk it is attributed to (units of the task's
SKU; a refund takes them back unless the task was completed: rules in domain/tasks.py),
and the growth of the distributor it is attributed to.

A distributor's growth counts a sale when its return window closes (``reward_settlement``:
the amount paid net of the refunds made by then), not at payment: an order paid and
refunded in full before that never promotes its distributor. A refund after the sale was
credited takes its amount back (the level stays)."""

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
        count_clerk_order(uow, order, payment_id, by)
    return int(points)


def reverse_refund(uow: UnitOfWork, order: Any, refund_id: str, amount_fen: int, by: str) -> int:
    """Call after ``order.refund``: returns the points taken back from the member."""
    member = uow.get(Member, UUID(order.member_id), "member")
    points, _growth = reverse_for_refund(
        member, order.order_id, refund_id, order.refunded, order.paid, by, uow.now
    )
    if order.distributor is not None:
        if order.standing_credited:  # else the settlement credits what is left, if any
            credit_sale(uow, order.distributor, -amount_fen, f"order {order.order_id} refund", by)
        take_back_clerk_order(uow, order, refund_id, by)
    return points


def reward_settlement(uow: UnitOfWork, order: Any, standing_credit: int, by: str) -> None:
    """Call after ``order.settle``: the sale, net of refunds, counts for the distributor's
    level (``Settlement.standing_credit``, 0 when there is nothing to credit)."""
    if standing_credit:
        assert order.distributor is not None and order.standing_credited
        cause = f"order {order.order_id} settled"
        credit_sale(uow, order.distributor, standing_credit, cause, by)
