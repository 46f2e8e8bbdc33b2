"""``siyu demo``: a realistic channel to explore, loaded through the same commands as the API.

Idempotent: every registration uses its natural key, so running it twice changes
nothing. Tokens are minted fresh and written (in clear, for the demo only) to
``demo-tokens.json`` beside the SQLite store, or under ./var for PostgreSQL.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from api.demo_codes import load_codes_demo
from api.demo_data import DEALERS
from api.demo_loyalty import load_loyalty_demo
from api.demo_money import load_money_demo
from domain.channel import Location, PartnerKind, PartnerSpec
from domain.handlers import channel, tokens
from domain.identity import partner_id
from domain.principal import Role, hq_admin
from projections.store import Store

DEMO_TOKENS_FILE = "demo-tokens.json"


def tokens_path(store: Store) -> Path:
    """Beside the store it belongs to: tokens of one store never show for another."""
    database = store.database
    if database.sqlite_path is not None:
        return database.sqlite_path.with_name(f"{database.sqlite_path.stem}.{DEMO_TOKENS_FILE}")
    return Path("var") / f"{database.host}-{database.port}-{database.dbname}.{DEMO_TOKENS_FILE}"


def demo_loaded(store: Store) -> bool:
    """Has the demo been loaded into this store (its first dealer exists)?"""
    return partner_id(DEALERS[0][0]) in store.ledger.repository


def load_demo(store: Store) -> dict[str, Any]:
    ledger, hq = store.ledger, hq_admin()
    partners = 0
    for dealer_code, dealer_name, territory, stores in DEALERS:
        spec = PartnerSpec(dealer_code, PartnerKind.DEALER, "HQ", dealer_name, tuple(territory))
        channel.register_partner(ledger, hq, spec)
        partners += 1
        city = dealer_code.removeprefix("D-")
        for suffix, name, lat, lng, county in stores:
            store_code = f"S-{city}-{suffix}"
            channel.register_partner(
                ledger,
                hq,
                PartnerSpec(
                    store_code,
                    PartnerKind.STORE,
                    dealer_code,
                    name,
                    location=Location(lat, lng),
                    region_code=county,
                ),
            )
            clerk = PartnerSpec(
                f"C-{city}-{suffix}", PartnerKind.CLERK, store_code, f"店员 Clerk of {store_code}"
            )
            channel.register_partner(ledger, hq, clerk)
            partners += 2
            if int(suffix) % 2 == 1:
                distributor = PartnerSpec(
                    f"R-{city}-{suffix}",
                    PartnerKind.DISTRIBUTOR,
                    store_code,
                    f"分销员 Distributor of {store_code}",
                )
                channel.register_partner(ledger, hq, distributor)
                partners += 1
    minted = {
        "hq": ("HQ", Role.HQ),
        "auditor": ("HQ", Role.AUDITOR),
        "factory": ("HQ", Role.FACTORY),
        "gateway": ("HQ", Role.GATEWAY),
        "dealer D-SH": ("D-SH", Role.DEALER),
        "store S-SH-01": ("S-SH-01", Role.STORE),
        "clerk C-SH-01": ("C-SH-01", Role.CLERK),
        "distributor R-SH-01": ("R-SH-01", Role.DISTRIBUTOR),
    }
    demo_tokens: dict[str, str] = {}
    for label, (partner, role) in minted.items():
        outcome = tokens.mint_token(ledger, hq, partner, role, label=f"demo {label}")
        demo_tokens[label] = outcome.answer["token"]
    goods = load_codes_demo(store)
    load_money_demo(store)  # orders, refunds, settlement, receipts, a withdrawal
    load_loyalty_demo(store)  # tiers, expiring lots, tasks in progress, a verified draw
    path = tokens_path(store)
    path.parent.mkdir(parents=True, exist_ok=True)
    shown = {"tokens": demo_tokens, "codes": goods}
    path.write_text(json.dumps(shown, indent=2, ensure_ascii=False) + "\n")
    return {"partners": partners, "tokens": demo_tokens, "tokens_file": str(path), "goods": goods}
