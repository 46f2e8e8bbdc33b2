"""Demo loyalty: published policies, members across tiers, lots about to expire, tasks in
progress (member, invite and clerk tasks), a redemption and a closed lucky-draw campaign
whose every outcome verifies. Runs after the codes demo (its members and codes)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from domain.codes import unit_codes
from domain.draws import CampaignSpec, Prize
from domain.handlers import draws, members, orders
from domain.handlers.orders import LineRequest, OrderRequest
from domain.handlers.scans import ScanRequest, scan
from domain.identity import batch_id
from domain.point_rules import PointRuleSet, publish_point_rules
from domain.principal import HQ_CODE, Principal, Role, hq_admin
from domain.splits import Fulfilment
from domain.tasks import TaskSpec, publish_task
from domain.tiers import DEFAULT_TIERS, publish_tier_policy
from projections.store import Store

SEED_KEY_NAME = "draw-seed-key"  # the same secret the API uses (api.routes.members)
TIER_GRANTS = {  # member -> points granted, so the demo shows every tier
    "demo-member-0-0": 25_000,
    "demo-member-0-1": 6_000,
    "demo-member-0-2": 1_500,
}


def _consumer_code(store: Store, sku: str, index: int) -> str:
    batch: Any = store.ledger.repository.get(batch_id(f"DEMO-{sku}-U"))
    return str(unit_codes(store.ledger.codebook.current_key, batch.batch_no, index)[1])


def load_loyalty_demo(store: Store) -> dict[str, Any]:
    ledger, hq = store.ledger, hq_admin()
    gateway = Principal(Role.GATEWAY, HQ_CODE, HQ_CODE)
    now = ledger.clock()
    publish_tier_policy(ledger, hq, "demo-tiers-v1", DEFAULT_TIERS.tiers)
    publish_point_rules(
        ledger, hq, "demo-rules-v1", PointRuleSet(points_per_yuan=1, daily_cap=5000)
    )
    for external_id, points in TIER_GRANTS.items():
        members.adjust(ledger, hq, external_id, f"demo-tier-{external_id}", points, "demo grant")
    # Lots about to expire: a promotion's bonus valid 3 days, for two members.
    for external_id in ("demo-member-1-0", "demo-member-2-0"):
        members.adjust(ledger, hq, external_id, f"demo-bonus-{external_id}", 30, "weekend bonus", 3)
    members.redeem(ledger, gateway, "demo-member-0-1", "demo-redemption-1", 500, "tea set")
    tasks = _tasks_in_progress(store, now)
    campaign = _closed_campaign(store)
    return {"tasks": tasks, "campaign": campaign}


def _tasks_in_progress(store: Store, now: Any) -> list[str]:
    ledger, hq = store.ledger, hq_admin()
    gateway = Principal(Role.GATEWAY, HQ_CODE, HQ_CODE)
    year = (now - timedelta(days=1), now + timedelta(days=365))
    specs = [
        TaskSpec("demo-scan-3", "member", "scan_distinct", None, 3, 200, 0, *year),
        TaskSpec("demo-invite-2", "member", "invite", None, 2, 300, 0, *year),
        TaskSpec("demo-clerk-liq", "clerk", "sell_units", "LIQ-500", 5, 0, 20_000, *year),
    ]
    for spec in specs:
        publish_task(ledger, hq, spec)
    # One member two scans into "scan 3 distinct products" (one of each of two SKUs).
    for n, sku in enumerate(("TEA-250", "DJ-001")):
        code = _consumer_code(store, sku, 4)
        scan(ledger, gateway, ScanRequest(f"demo-task-scan-{n}", code, "demo-member-0-3"))
    # A group leader: a member linked to distributor R-SH-01; one invitee scans.
    members.enrol_distributor(ledger, hq, "demo-member-1-1", "R-SH-01")
    code = _consumer_code(store, "LIQ-500", 5)
    scan(ledger, gateway, ScanRequest("demo-invitee", code, "demo-invitee-1", referrer="R-SH-01"))
    # A clerk's sales task: two units sold to members the clerk referred...
    for i in (6, 7):
        code = _consumer_code(store, "LIQ-500", i)
        request = ScanRequest(f"demo-clerk-{i}", code, f"demo-clerk-buyer-{i}", referrer="C-SH-01")
        scan(ledger, gateway, request)
    # ...and one ordered online by one of them (it counts), whose scan of the unit
    # afterwards is matched to the order, not counted again: 3 of 5.
    line = (LineRequest("LIQ-500", 1, 49900),)
    order = OrderRequest("DEMO-O-CLERK-1", "demo-clerk-buyer-6", line, Fulfilment.PICKUP)
    placed = orders.place_order(ledger, gateway, order, lambda _lat, _lng: [])
    orders.pay(ledger, gateway, order.order_id, "demo-pay-DEMO-O-CLERK-1", placed.answer["total"])
    code = _consumer_code(store, "LIQ-500", 8)
    scan(ledger, gateway, ScanRequest("demo-clerk-order-scan", code, "demo-clerk-buyer-6"))
    return [s.task_id for s in specs]


def _closed_campaign(store: Store) -> dict[str, Any]:
    ledger, hq = store.ledger, hq_admin()
    gateway = Principal(Role.GATEWAY, HQ_CODE, HQ_CODE)
    seed_key = bytes.fromhex(store.secrets.get(SEED_KEY_NAME))
    spec = CampaignSpec(
        "demo-spring-wheel",
        "春季转盘 Spring wheel",
        10,
        (
            Prize("car", "A small car (top prize)", 5_000_000, 1_000, 1),
            Prize("tea", "Longjing tea 250g", 16_800, 150_000, 5),
            Prize("bonus", "30 points", 0, 300_000, 50, points=30),
        ),
    )
    draws.open_campaign(ledger, hq, spec, seed_key)
    players = ["demo-member-0-0", "demo-member-0-1", "demo-member-0-2"]
    for i in range(24):
        who = players[i % len(players)]
        draws.draw(
            ledger, gateway, who, f"demo-draw-{i}", spec.campaign_id, f"seed-{who}", seed_key
        )
    draws.close_campaign(ledger, hq, spec.campaign_id, seed_key)
    report = draws.verify_campaign(ledger, spec.campaign_id)
    assert report.ok, report.as_data()
    return {"campaign_id": spec.campaign_id, "draws": report.checked, "verified": report.ok}
