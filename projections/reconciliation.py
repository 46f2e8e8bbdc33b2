"""The reconciliation report over a period: what auditors check, each breach with evidence.

Over the money events at positions ``(start, end]``:

- every event's postings balance (per asset), and the trial balance over all
  accounts up to ``end`` is zero;
- payments = shares booked: each payment's amount equals the shares it put into
  partners' income;
- refunds = reversals: each refund's amount equals the shares it took back;
- task rewards are transfers: each clerk task reward credits partners exactly its stated
  amount and takes it from partners (the brand) in the same event, so partners' income
  as a whole neither grows nor shrinks;
- every paid order has its split: a payment entry in the ledger for every order the
  orders view shows paid, and every store's collection account nets to zero per order
  (what was collected was split, what was refunded was reversed);
- each partner's running totals (what balances read) equal the sum of its postings;
- split instructions without a succeeded receipt from the provider (open items to
  chase, listed but not breaches: the provider answers later).
"""

from __future__ import annotations

from typing import Any

from projections.views import Tx

EVIDENCE_MAX = 1000


def _breach(check: str, detail: str, positions: list[int], **extra: Any) -> dict[str, Any]:
    return {"check": check, "detail": detail, "evidence": sorted(positions), **extra}


def _unbalanced_events(tx: Tx, start: int, end: int) -> list[dict[str, Any]]:
    rows = tx.fetchall(
        "SELECT position, asset, SUM(amount) FROM ledger_postings "
        "WHERE position > ? AND position <= ? GROUP BY position, asset "
        "HAVING SUM(amount) <> 0 ORDER BY position LIMIT ?",
        (start, end, EVIDENCE_MAX),
    )
    return [
        _breach("event_balanced", f"postings of {asset} sum to {int(total)}", [int(pos)])
        for pos, asset, total in rows
    ]


def _trial_balance(tx: Tx, end: int) -> dict[str, int]:
    rows = tx.fetchall(
        "SELECT asset, SUM(amount) FROM ledger_postings WHERE position <= ? GROUP BY asset",
        (end,),
    )
    return {str(asset): int(total) for asset, total in rows}


def _stated_vs_shares(tx: Tx, kind: str, start: int, end: int) -> tuple[int, int, list[Any]]:
    """Per event of ``kind``: its stated amount and what moved in partners' income."""
    rows = tx.fetchall(
        "SELECT e.position, e.order_id, e.amount, "
        "(SELECT COALESCE(SUM(p.amount), 0) FROM ledger_postings p "
        "WHERE p.position = e.position AND p.partner IS NOT NULL) "
        "FROM ledger_entries e WHERE e.kind = ? AND e.position > ? AND e.position <= ? "
        "ORDER BY e.position",
        (kind, start, end),
    )
    sign = 1 if kind == "payment" else -1
    stated = moved = 0
    breaches: list[Any] = []
    for position, order_id, amount, shares in rows:
        stated += int(amount)
        moved += sign * int(shares)
        if int(amount) != sign * int(shares) and len(breaches) < EVIDENCE_MAX:
            check = "payment_split" if kind == "payment" else "refund_reversed"
            breaches.append(
                _breach(
                    check,
                    f"{kind} of {int(amount)} fen moved {sign * int(shares)} fen of shares",
                    [int(position)],
                    order_id=order_id,
                )
            )
    return stated, moved, breaches


def _task_rewards(tx: Tx, start: int, end: int) -> tuple[int, list[dict[str, Any]]]:
    rows = tx.fetchall(
        "SELECT e.position, e.amount, e.ref, "
        "(SELECT COALESCE(SUM(p.amount), 0) FROM ledger_postings p "
        "WHERE p.position = e.position AND p.partner IS NOT NULL AND p.amount > 0), "
        "(SELECT COALESCE(SUM(p.amount), 0) FROM ledger_postings p "
        "WHERE p.position = e.position AND p.partner IS NOT NULL) "
        "FROM ledger_entries e WHERE e.kind = 'task_reward' AND e.position > ? "
        "AND e.position <= ? ORDER BY e.position",
        (start, end),
    )
    total = 0
    breaches: list[dict[str, Any]] = []
    for position, amount, ref, credited, net in rows:
        total += int(amount)
        if (int(credited) != int(amount) or int(net) != 0) and len(breaches) < EVIDENCE_MAX:
            breaches.append(
                _breach(
                    "task_reward_paid",
                    f"a task reward of {int(amount)} fen credited {int(credited)} fen "
                    f"and moved {int(net)} fen net",
                    [int(position)],
                    ref=ref,
                )
            )
    return total, breaches


def _orders_without_split(tx: Tx, start: int, end: int) -> list[dict[str, Any]]:
    rows = tx.fetchall(
        "SELECT o.order_id, o.paid_position, o.paid FROM orders o "
        "WHERE o.paid > 0 AND o.paid_position > ? AND o.paid_position <= ? "
        "AND NOT EXISTS (SELECT 1 FROM ledger_entries e WHERE e.order_id = o.order_id "
        "AND e.kind = 'payment' AND e.amount = o.paid) ORDER BY o.paid_position LIMIT ?",
        (start, end, EVIDENCE_MAX),
    )
    found = [
        _breach("paid_order_split", "a paid order without its split", [int(pos)], order_id=oid)
        for oid, pos, _paid in rows
    ]
    uncleared = tx.fetchall(
        "SELECT order_id, SUM(amount), MAX(position) FROM ledger_postings "
        "WHERE account LIKE 'store:%' AND position <= ? GROUP BY order_id "
        "HAVING SUM(amount) <> 0 LIMIT ?",
        (end, EVIDENCE_MAX),
    )
    for order_id, total, last in uncleared:
        positions = [
            int(r[0])
            for r in tx.fetchall(
                "SELECT DISTINCT position FROM ledger_postings WHERE order_id = ? "
                "AND account LIKE 'store:%' AND position <= ? ORDER BY position LIMIT ?",
                (order_id, end, EVIDENCE_MAX),
            )
        ] or [int(last)]
        found.append(
            _breach(
                "store_cleared",
                f"the store's collection for this order is off by {int(total)} fen",
                positions,
                order_id=order_id,
            )
        )
    return found


def _running_totals(tx: Tx, end: int) -> list[dict[str, Any]]:
    """Each partner's running totals at ``end`` (what balances read) against the sum of
    its postings (what they stand for)."""
    rows = tx.fetchall(
        "SELECT s.partner, s.bucket, s.total, COALESCE(("
        "SELECT CASE s.bucket WHEN 'pending' THEN t.pending ELSE t.available END "
        "FROM ledger_totals t WHERE t.partner = s.partner AND t.position <= ? "
        "ORDER BY t.position DESC LIMIT 1), 0), s.last FROM ("
        "SELECT partner, bucket, SUM(amount) AS total, MAX(position) AS last "
        "FROM ledger_postings WHERE partner IS NOT NULL AND bucket IN ('pending', 'available') "
        "AND position <= ? GROUP BY partner, bucket) AS s ORDER BY s.partner, s.bucket",
        (end, end),
    )
    found = [
        _breach(
            "running_totals",
            f"{partner}'s {bucket} total reads {int(kept)} fen, its postings sum to {int(total)}",
            [int(last)],
            partner=partner,
        )
        for partner, bucket, total, kept, last in rows
        if int(total) != int(kept)
    ]
    return found[:EVIDENCE_MAX]


def _open_instructions(tx: Tx, end: int) -> list[dict[str, Any]]:
    rows = tx.fetchall(
        "SELECT instruction_id, order_id, kind, store, receiver, amount, position, "
        "receipt_status FROM order_instructions WHERE position <= ? "
        "AND (receipt_status IS NULL OR receipt_status <> 'succeeded') "
        "ORDER BY position, instruction_id LIMIT ?",
        (end, EVIDENCE_MAX),
    )
    return [
        {
            "instruction_id": r[0],
            "order_id": r[1],
            "kind": r[2],
            "from_store": r[3],
            "receiver": r[4],
            "amount": int(r[5]),
            "evidence": [int(r[6])],
            "receipt": r[7],
        }
        for r in rows
    ]


def reconcile(tx: Tx, start: int, end: int) -> dict[str, Any]:
    assert 0 <= start <= end
    breaches = _unbalanced_events(tx, start, end)
    trial = _trial_balance(tx, end)
    for asset, total in trial.items():
        if total != 0:
            evidence = [b["evidence"][0] for b in _unbalanced_events(tx, 0, end)]
            breaches.append(_breach("trial_balance", f"{asset} accounts sum to {total}", evidence))
    payments, shares_booked, payment_breaches = _stated_vs_shares(tx, "payment", start, end)
    refunds, reversals, refund_breaches = _stated_vs_shares(tx, "refund", start, end)
    task_rewards, reward_breaches = _task_rewards(tx, start, end)
    breaches += payment_breaches + refund_breaches + reward_breaches
    breaches += _orders_without_split(tx, start, end)
    breaches += _running_totals(tx, end)
    open_items = _open_instructions(tx, end)
    return {
        "ok": not breaches,
        "from_position": start,
        "to_position": end,
        "totals": {
            "payments": payments,
            "shares_booked": shares_booked,
            "refunds": refunds,
            "reversals": reversals,
            "task_rewards": task_rewards,
            "trial_balance": trial,
        },
        "breaches": breaches,
        "instructions_without_receipts": open_items,
    }
