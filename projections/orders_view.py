"""Read model: orders with their split, refunds and split instructions (and receipts).

Also the settlement runs' work list: orders whose return window has closed and that
are not settled yet (``due_orders``). The order's own state decides, on the write
side, whether it really settles; this view only finds candidates.
"""

from __future__ import annotations

from typing import Any

import msgspec

from domain.orders import Order
from projections.ledger_postings import from_micros, to_micros
from projections.views import Tx

_json = msgspec.json.Encoder(order="sorted")
_unjson = msgspec.json.Decoder()
DETAILS_MAX = 1000


class OrdersView:
    name: str = "orders"
    version: int = 2  # 2: a partial refund's status (partially_refunded)
    tables: dict[str, str] = {
        "orders": (
            "CREATE TABLE IF NOT EXISTS orders ("
            "order_id TEXT PRIMARY KEY, status TEXT NOT NULL, total BIGINT NOT NULL, "
            "paid BIGINT NOT NULL, refunded BIGINT NOT NULL, currency TEXT NOT NULL, "
            "fulfilment TEXT NOT NULL, store TEXT NOT NULL, dealer TEXT NOT NULL, "
            "distributor TEXT, attribution TEXT NOT NULL, member_id TEXT NOT NULL, "
            "policy_id TEXT NOT NULL, policy_version INTEGER NOT NULL, split TEXT NOT NULL, "
            "reversed TEXT NOT NULL, placed_us BIGINT NOT NULL, paid_us BIGINT, "
            "fulfilled_us BIGINT, due_us BIGINT, settled_position BIGINT, paid_position BIGINT, "
            "position BIGINT NOT NULL)"
        ),
        "order_refunds": (
            "CREATE TABLE IF NOT EXISTS order_refunds ("
            "position BIGINT PRIMARY KEY, order_id TEXT NOT NULL, refund_id TEXT NOT NULL, "
            "amount BIGINT NOT NULL, reversed TEXT NOT NULL, after_settlement INTEGER NOT NULL, "
            "at_us BIGINT NOT NULL)"
        ),
        "order_instructions": (
            "CREATE TABLE IF NOT EXISTS order_instructions ("
            "instruction_id TEXT PRIMARY KEY, order_id TEXT NOT NULL, kind TEXT NOT NULL, "
            "receiver TEXT NOT NULL, store TEXT NOT NULL, amount BIGINT NOT NULL, "
            "position BIGINT NOT NULL, at_us BIGINT NOT NULL, receipt_status TEXT, "
            "receipt_amount BIGINT, receipt_ref TEXT, receipt_position BIGINT)"
        ),
    }
    indexes: tuple[str, ...] = (
        "CREATE INDEX IF NOT EXISTS orders_due ON orders (due_us, order_id)",
        "CREATE INDEX IF NOT EXISTS order_refunds_order ON order_refunds (order_id, position)",
        "CREATE INDEX IF NOT EXISTS order_instructions_order "
        "ON order_instructions (order_id, instruction_id)",
        "CREATE INDEX IF NOT EXISTS order_instructions_open "
        "ON order_instructions (receipt_status, position)",
    )
    topics: frozenset[str] = frozenset(
        {
            Order.Placed.TOPIC,
            Order.Cancelled.TOPIC,
            Order.Paid.TOPIC,
            Order.Fulfilled.TOPIC,
            Order.Refunded.TOPIC,
            Order.Settled.TOPIC,
            Order.ReceiptRecorded.TOPIC,
        }
    )

    def apply(self, tx: Tx, event: Any, position: int) -> None:
        if isinstance(event, Order.Placed):
            _placed(tx, event, position)
            return
        order_id = event.order_id
        at_us = to_micros(event.timestamp)
        if isinstance(event, Order.Cancelled):
            _set(tx, order_id, position, status="cancelled")
        elif isinstance(event, Order.Paid):
            due = None if event.due_at is None else to_micros(event.due_at)
            status = "fulfilled" if event.fulfilled else "paid"
            fulfilled = at_us if event.fulfilled else None
            _set(
                tx,
                order_id,
                position,
                status=status,
                paid=event.amount,
                paid_us=at_us,
                paid_position=position,
                fulfilled_us=fulfilled,
                due_us=due,
            )
        elif isinstance(event, Order.Fulfilled):
            _set(
                tx,
                order_id,
                position,
                status="fulfilled",
                fulfilled_us=at_us,
                due_us=to_micros(event.due_at),
            )
        elif isinstance(event, Order.Refunded):
            _refunded(tx, event, position, at_us)
        elif isinstance(event, Order.Settled):
            _set(tx, order_id, position, status="settled", settled_position=position)
            _instructions(tx, event, "split", position, at_us)
        elif isinstance(event, Order.ReceiptRecorded):
            tx.execute(
                "UPDATE order_instructions SET receipt_status = ?, receipt_amount = ?, "
                "receipt_ref = ?, receipt_position = ? WHERE instruction_id = ?",
                (event.status, event.amount, event.provider_ref, position, event.instruction_id),
            )
            _set(tx, order_id, position)


def _placed(tx: Tx, event: Any, position: int) -> None:
    tx.execute(
        "INSERT INTO orders (order_id, status, total, paid, refunded, currency, fulfilment, "
        "store, dealer, distributor, attribution, member_id, policy_id, policy_version, split, "
        "reversed, placed_us, position) "
        "VALUES (?, 'placed', ?, 0, 0, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (
            event.order_id,
            event.total,
            event.currency,
            event.fulfilment,
            event.store,
            event.dealer,
            event.distributor,
            event.attribution,
            event.member_id,
            event.policy_id,
            event.policy_version,
            _json.encode(event.split).decode(),
            _json.encode(dict.fromkeys(event.split, 0)).decode(),
            to_micros(event.timestamp),
            position,
        ),
    )


_COLUMNS = frozenset(
    {
        "status",
        "paid",
        "paid_us",
        "paid_position",
        "fulfilled_us",
        "due_us",
        "settled_position",
        "refunded",
        "reversed",
    }
)


def _set(tx: Tx, order_id: str, position: int, **values: Any) -> None:
    assert set(values) <= _COLUMNS
    names = sorted(values)
    assignments = "".join(f"{name} = ?, " for name in names)
    tx.execute(
        f"UPDATE orders SET {assignments}position = ? WHERE order_id = ?",
        (*[values[n] for n in names], position, order_id),
    )


def _refunded(tx: Tx, event: Any, position: int, at_us: int) -> None:
    row = tx.fetchone("SELECT reversed, paid FROM orders WHERE order_id = ?", (event.order_id,))
    assert row is not None, "a refunded order was placed"
    reversed_so_far: dict[str, int] = _unjson.decode(row[0])
    for role, amount in event.reversed.items():
        reversed_so_far[role] = reversed_so_far.get(role, 0) + amount
    _set(
        tx,
        event.order_id,
        position,
        status=event.status_after(int(row[1])).value,
        refunded=event.refunded_total,
        reversed=_json.encode(reversed_so_far).decode(),
    )
    tx.execute(
        "INSERT INTO order_refunds (position, order_id, refund_id, amount, reversed, "
        "after_settlement, at_us) VALUES (?, ?, ?, ?, ?, ?, ?)",
        (
            position,
            event.order_id,
            event.refund_id,
            event.amount,
            _json.encode(event.reversed).decode(),
            1 if event.after_settlement else 0,
            at_us,
        ),
    )
    _instructions(tx, event, "split_refund", position, at_us)


def _instructions(tx: Tx, event: Any, kind: str, position: int, at_us: int) -> None:
    row = tx.fetchone("SELECT store FROM orders WHERE order_id = ?", (event.order_id,))
    assert row is not None
    for instruction_id, receiver, amount in event.instructions:
        # A negative split refund (a remainder fen returned) is a forward split.
        this_kind = kind if amount > 0 else "split"
        tx.execute(
            "INSERT INTO order_instructions (instruction_id, order_id, kind, receiver, store, "
            "amount, position, at_us) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (
                instruction_id,
                event.order_id,
                this_kind,
                receiver,
                row[0],
                abs(amount),
                position,
                at_us,
            ),
        )


# -- queries ----------------------------------------------------------------------------

_ORDER_COLUMNS = (
    "order_id, status, total, paid, refunded, currency, fulfilment, store, dealer, "
    "distributor, attribution, policy_id, policy_version, split, reversed, placed_us, paid_us, "
    "fulfilled_us, due_us, settled_position, position"
)


def _time(us: Any) -> str | None:
    return None if us is None else from_micros(int(us)).isoformat()


def get_order(tx: Tx, order_id: str) -> dict[str, Any] | None:
    row = tx.fetchone(f"SELECT {_ORDER_COLUMNS} FROM orders WHERE order_id = ?", (order_id,))
    if row is None:
        return None
    (oid, status, total, paid, refunded, currency, fulfilment, store, dealer, distributor,
     attribution, policy_id, policy_version, split, reversed_, placed_us, paid_us, fulfilled_us,
     due_us, settled_position, position) = row  # fmt: skip
    refunds = tx.fetchall(
        "SELECT refund_id, amount, reversed, after_settlement, position, at_us "
        "FROM order_refunds WHERE order_id = ? ORDER BY position LIMIT ?",
        (order_id, DETAILS_MAX),
    )
    instructions = tx.fetchall(
        "SELECT instruction_id, kind, receiver, amount, position, receipt_status, "
        "receipt_amount, receipt_ref, receipt_position FROM order_instructions "
        "WHERE order_id = ? ORDER BY position, instruction_id LIMIT ?",
        (order_id, DETAILS_MAX),
    )
    return {
        "order_id": oid,
        "status": status,
        "total": int(total),
        "paid": int(paid),
        "refunded": int(refunded),
        "currency": currency,
        "fulfilment": fulfilment,
        "store": store,
        "dealer": dealer,
        "distributor": distributor,
        "attribution": attribution,
        "policy": {"policy_id": policy_id, "version": int(policy_version)},
        "split": _unjson.decode(split),
        "reversed": _unjson.decode(reversed_),
        "placed_at": _time(placed_us),
        "paid_at": _time(paid_us),
        "fulfilled_at": _time(fulfilled_us),
        "return_window_closes": _time(due_us),
        "settled_position": settled_position,
        "refunds": [
            {
                "refund_id": r[0],
                "amount": int(r[1]),
                "reversed": _unjson.decode(r[2]),
                "after_settlement": bool(r[3]),
                "position": int(r[4]),
                "at": _time(r[5]),
            }
            for r in refunds
        ],
        "instructions": [
            {
                "instruction_id": i[0],
                "kind": i[1],
                "receiver": i[2],
                "amount": int(i[3]),
                "position": int(i[4]),
                "receipt": None
                if i[5] is None
                else {"status": i[5], "amount": i[6], "provider_ref": i[7], "position": i[8]},
            }
            for i in instructions
        ],
        "position": int(position),
    }


def due_orders(
    tx: Tx, now_us: int, after: tuple[str, str] | None, limit: int
) -> list[tuple[str, str]]:
    """Paid orders whose window closed by ``now`` and that are not settled: (due, id)."""
    sql = (
        "SELECT due_us, order_id FROM orders WHERE due_us IS NOT NULL AND due_us <= ? "
        "AND settled_position IS NULL AND paid > refunded "
        "AND status IN ('paid', 'fulfilled', 'partially_refunded')"
    )
    params: list[Any] = [now_us]
    if after is not None:
        sql += " AND (due_us > ? OR (due_us = ? AND order_id > ?))"
        params += [int(after[0]), int(after[0]), after[1]]
    sql += " ORDER BY due_us, order_id LIMIT ?"
    params.append(limit)
    return [(str(due), str(order_id)) for due, order_id in tx.fetchall(sql, params)]
