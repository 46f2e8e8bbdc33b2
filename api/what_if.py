"""``siyu what-if``: a period's orders re-split under another policy; no event is written.

Reads the paid orders placed in [from, to) of the policy's fulfilment mode from the
event log (the orders' own lines, parties and refunds), computes each order's shares
under the given policy with the same arithmetic the ledger uses, nets refunds with
API.md's cumulative formula, and prints per-partner booked vs what-if amounts.
"""

from __future__ import annotations

import argparse
import sys
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import msgspec

from api.money_schemas import SplitPolicyIn, policy_from
from api.services import parse_time
from api.settings import Settings
from domain.errors import DomainError
from domain.orders import Order
from domain.splits import PricedLine, SplitPolicy, reversed_in_all, split_lines
from projections.store import Store

PAGE_SIZE = 1000


@dataclass
class OrderFacts:
    placed: Any
    paid: int = 0
    refunded: int = 0


@dataclass
class WhatIf:
    booked: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    proposed: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    orders: int = 0


def _net(shares: dict[str, int], facts: OrderFacts, remainder_to: str) -> dict[str, int]:
    back = reversed_in_all(shares, facts.paid, facts.refunded, remainder_to)
    return {role: shares[role] - back.get(role, 0) for role in shares}


def _orders(store: Store, start: datetime, end: datetime, fulfilment: str) -> list[OrderFacts]:
    wanted = {Order.Placed.TOPIC, Order.Paid.TOPIC, Order.Refunded.TOPIC}
    mapper, recorder = store.ledger.mapper, store.ledger.recorder
    found: dict[str, OrderFacts] = {}
    after = 0
    while True:
        page = recorder.select_notifications(
            after, PAGE_SIZE, topics=list(wanted), inclusive_of_start=False
        )
        if not page:
            break
        after = page[-1].id
        for n in page:
            event: Any = mapper.to_domain_event(n)
            if isinstance(event, Order.Placed):
                if start <= event.timestamp < end and event.fulfilment == fulfilment:
                    found[event.order_id] = OrderFacts(event)
            elif event.order_id in found:
                facts = found[event.order_id]
                if isinstance(event, Order.Paid):
                    facts.paid = event.amount
                elif isinstance(event, Order.Refunded):
                    facts.refunded = event.refunded_total
    return [f for f in found.values() if f.paid > 0]


def what_if(store: Store, policy: SplitPolicy, start: datetime, end: datetime) -> WhatIf:
    result = WhatIf()
    for facts in _orders(store, start, end, policy.fulfilment.value):
        placed = facts.placed
        has_distributor = placed.distributor is not None
        priced = [
            PricedLine(qty * price, policy.rates_for(sku, category).pick(has_distributor))
            for sku, qty, price, category in placed.lines
        ]
        proposed = split_lines(priced, policy.remainder_to)
        assert sum(proposed.values()) == placed.total, "what-if shares sum to the amount"
        for role, amount in _net(dict(placed.split), facts, placed.remainder_to).items():
            result.booked[placed.receivers[role]] += amount
        for role, amount in _net(proposed, facts, policy.remainder_to).items():
            partner = placed.receivers.get(role)
            if partner is None:  # e.g. a distributor share for an order that had none
                partner = placed.receivers[policy.remainder_to]
            result.proposed[partner] += amount
        result.orders += 1
    return result


def cmd_what_if(args: argparse.Namespace, settings: Settings) -> int:
    try:
        body = msgspec.json.decode(Path(args.policy).read_bytes(), type=SplitPolicyIn)
        policy = policy_from(body, parse_time(body.effective_from, "effective_from"))
    except (OSError, msgspec.DecodeError, msgspec.ValidationError, ValueError, DomainError) as e:
        sys.stderr.write(f"what-if: cannot read the policy {args.policy}: {e}\n")
        return 2
    try:
        start, end = parse_time(args.start, "--from"), parse_time(args.end, "--to")
    except DomainError as e:
        sys.stderr.write(f"what-if: {e.detail}\n")
        return 2
    store = settings.open_store()
    try:
        result = what_if(store, policy, start, end)
    finally:
        store.close()
    print(
        f"{result.orders} paid {policy.fulfilment.value} orders placed in "
        f"[{start.isoformat()}, {end.isoformat()}), net of refunds, in fen:"
    )
    print(f"{'partner':<16} {'booked':>14} {'what-if':>14} {'difference':>14}")
    partners = sorted(set(result.booked) | set(result.proposed))
    for partner in partners:
        booked, proposed = result.booked.get(partner, 0), result.proposed.get(partner, 0)
        print(f"{partner:<16} {booked:>14} {proposed:>14} {proposed - booked:>+14}")
    assert sum(result.booked.values()) == sum(result.proposed.values()), "money is conserved"
    print("no events were written")
    return 0
