"""Pinned HTTP workloads (fixed seeds and sizes): every request body is different."""

from __future__ import annotations

import json
import random
from dataclasses import dataclass, field

from bench.channel import Channel, Site
from bench.wrk import Request

CASE_UNITS = 24  # units per case (cases of at most 24 units)
GROUP = 24  # loose units per logistics event
EVENTS_PER_REQUEST = 10


def _json(value: object) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


@dataclass
class Lot:
    """Goods for one store: cased units (a case each 24) and loose units."""

    store: Site
    cases: list[tuple[str, list[dict[str, str]]]] = field(default_factory=list)
    loose: list[dict[str, str]] = field(default_factory=list)

    def units(self) -> list[dict[str, str]]:
        return [u for _case, units in self.cases for u in units] + self.loose


@dataclass
class LogisticsPlan:
    phases: list[tuple[str, list[Request]]]
    unit_events: int  # one unit moved one step
    lots: list[Lot]


def plan_lots(ch: Channel, units: list[dict[str, str]], cases: list[str], n_cases: int,
              n_loose: int) -> list[Lot]:  # fmt: skip
    """``n_cases`` cases of 24 and ``n_loose`` loose units, dealt round-robin to stores."""
    assert len(units) >= n_cases * CASE_UNITS + n_loose and len(cases) >= n_cases
    lots = [Lot(s) for s in ch.stores]
    at = 0
    for i in range(n_cases):
        lots[i % len(lots)].cases.append((cases[i], units[at : at + CASE_UNITS]))
        at += CASE_UNITS
    for j in range(0, n_loose, GROUP):
        lots[(j // GROUP) % len(lots)].loose.extend(units[at + j : at + min(n_loose, j + GROUP)])
    return [lot for lot in lots if lot.cases or lot.loose]


def logistics_plan(ch: Channel, lots: list[Lot], tag: str) -> LogisticsPlan:
    """Commission, pack, ship HQ -> dealer, receive, ship dealer -> store, receive.

    A cased unit makes 6 unit-events (pack included), a loose one 5: with 5 loose units
    for 6 cased ones, half the unit-events are on loose units.
    """
    seq = [0]
    unit_events = 0

    def event(action: str, codes: list[str], **extra: str) -> dict[str, object]:
        seq[0] += 1
        return {"event_id": f"{tag}-{seq[0]}", "action": action, "codes": codes, **extra}

    def loose_groups(lot: Lot) -> list[list[str]]:
        codes = [u["code"] for u in lot.loose]
        return [codes[i : i + GROUP] for i in range(0, len(codes), GROUP)]

    by_phase: list[tuple[str, dict[str, list[dict[str, object]]]]] = []
    steps = ["commission", "pack", "ship-dealer", "receive-dealer", "ship-store", "receive-store"]
    for step in steps:
        per_token: dict[str, list[dict[str, object]]] = {}
        for lot in lots:
            dealer, store = lot.store.dealer, lot.store.code
            events: list[dict[str, object]] = []
            if step == "commission":
                for case, units in lot.cases:
                    events.append(event("commission", [u["code"] for u in units] + [case]))
                    unit_events += len(units)
                for group in loose_groups(lot):
                    events.append(event("commission", group))
                    unit_events += len(group)
                who = "factory"
            elif step == "pack":
                for case, units in lot.cases:
                    events.append(event("pack", [u["code"] for u in units], parent=case))
                    unit_events += len(units)
                who = "factory"
            else:
                to = {"ship-dealer": dealer, "ship-store": store}.get(step)
                action = "ship" if to else "receive"
                who = {"ship-dealer": "factory", "receive-dealer": dealer,
                       "ship-store": dealer, "receive-store": store}[step]  # fmt: skip
                for case, units in lot.cases:
                    extra = {"to": to} if to else {}
                    events.append(event(action, [case], **extra))
                    unit_events += len(units)
                for group in loose_groups(lot):
                    extra = {"to": to} if to else {}
                    events.append(event(action, group, **extra))
                    unit_events += len(group)
            per_token.setdefault(ch.tokens[who], []).extend(events)
        by_phase.append((step, per_token))
    phases: list[tuple[str, list[Request]]] = []
    for step, per_token in by_phase:
        requests = [
            Request("POST", "/v1/logistics", token,
                    _json({"events": events[i : i + EVENTS_PER_REQUEST]}))
            for token, events in per_token.items()
            for i in range(0, len(events), EVENTS_PER_REQUEST)
        ]  # fmt: skip
        phases.append((step, requests))
    return LogisticsPlan(phases, unit_events, lots)


def sell_requests(ch: Channel, lots: list[Lot], tag: str, every: int = 5) -> list[Request]:
    """Stores sell one unit in ``every`` (some out of cases, some loose)."""
    out: list[Request] = []
    for lot in lots:
        sold = [u["code"] for u in lot.units()[::every]]
        events = [{"event_id": f"{tag}-sell-{c}", "action": "sell", "codes": [c]} for c in sold]
        for i in range(0, len(events), EVENTS_PER_REQUEST):
            body = _json({"events": events[i : i + EVENTS_PER_REQUEST]})
            out.append(Request("POST", "/v1/logistics", ch.tokens[lot.store.code], body))
    return out


def _near(rnd: random.Random, site: Site, spread: float = 0.003) -> dict[str, float]:
    return {"lat": round(site.lat + rnd.uniform(-spread, spread), 6),
            "lng": round(site.lng + rnd.uniform(-spread, spread), 6)}  # fmt: skip


def scan_requests(ch: Channel, lots: list[Lot], tag: str, existing: list[str], seed: int,
                  diverted_every: int = 20) -> list[Request]:  # fmt: skip
    """One consumer scan per unit, located: half new members (with a phone), half
    existing ones; one in ``diverted_every`` scanned in another dealer's territory."""
    rnd = random.Random(seed)
    pairs = [(lot, u) for lot in lots for u in lot.units()]
    rnd.shuffle(pairs)
    out: list[Request] = []
    for i, (lot, unit) in enumerate(pairs):
        site = lot.store
        if i % diverted_every == diverted_every - 1:
            site = rnd.choice([s for s in ch.stores if s.dealer != lot.store.dealer])
        if i % 2 == 0:
            member = {"external_id": f"{tag}-m{i}", "phone": f"139{rnd.randrange(10**8):08d}"}
        else:
            member = {"external_id": rnd.choice(existing)}
        body = {"scan_id": f"{tag}-s{i}", "code": unit["consumer_url"], "member": member,
                "location": _near(rnd, site)}  # fmt: skip
        out.append(Request("POST", "/v1/scans", ch.tokens["gateway"], _json(body)))
    return out


def order_requests(ch: Channel, n: int, tag: str, seed: int) -> tuple[list[Request], list[Request]]:
    """``n`` orders (hq_dropship: the brand has a share of every one) spread over every
    store, new members; one in three with the store's distributor as referrer (a 4-way
    split), the others placed by location (the nearest store); then their payments."""
    rnd = random.Random(seed)
    orders: list[Request] = []
    payments: list[Request] = []
    gateway = ch.tokens["gateway"]
    for i in range(n):
        site = ch.stores[i % len(ch.stores)]
        amount = rnd.randrange(1_000, 50_000)
        body: dict[str, object] = {
            "order_id": f"{tag}-o{i}",
            "member": f"{tag}-om{i}",
            "lines": [{"sku": "BENCH-TEA", "qty": 1, "unit_price": amount}],
            "fulfilment": "hq_dropship",
        }
        if i % 3 == 0:
            body["referrer"] = ch.distributors[site.code]
        else:
            body["location"] = _near(rnd, site, 0.0005)
        orders.append(Request("POST", "/v1/orders", gateway, _json(body)))
        pay = {"payment_id": f"{tag}-p{i}", "amount": amount}
        payments.append(Request("POST", f"/v1/orders/{tag}-o{i}/payments", gateway, _json(pay)))
    return orders, payments
