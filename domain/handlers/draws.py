"""Commands on lucky draws: open a campaign, draw, close (reveal), verify from the log.

``seed_key`` is the secret the store keeps for draws (never in an event): a campaign's
server seed is derived from it and the campaign id, so every API process derives the
same seed, and revealing one campaign's seed reveals nothing of another's.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from domain.draws import (
    CampaignSpec,
    DrawCampaign,
    DrawRecord,
    PrizeStock,
    Verification,
    campaign_id,
    commitment,
    outcome,
    prize_stock_id,
    roll,
    server_seed,
    validate_client_seed,
    verify,
)
from domain.errors import Conflict, NotFound
from domain.handlers.members import get_member
from domain.ledger import GLOBAL_SCOPE, Ledger, Outcome, RequestKey, UnitOfWork
from domain.loyalty import DrawMade
from domain.members import validate_external_id
from domain.points import earn, execute_patiently, spend
from domain.principal import Principal, Role
from domain.tiers import current_tiers, upgrade_if_crossed

LOG_PAGE_SIZE = 1000
PRIZE_LOT_LIFETIME_DAYS = 365


def open_campaign(ledger: Ledger, by: Principal, spec: CampaignSpec, seed_key: bytes) -> Outcome:
    key = RequestKey(GLOBAL_SCOPE, "draw-campaign", spec.campaign_id, spec.content())

    def authorize(_uow: UnitOfWork) -> None:
        by.require(Role.HQ)

    def decide(uow: UnitOfWork) -> dict[str, Any]:
        if uow.find(DrawCampaign, campaign_id(spec.campaign_id)) is not None:
            raise Conflict(f"campaign {spec.campaign_id} exists", code="campaign_exists")
        seed = server_seed(seed_key, spec.campaign_id)
        campaign = DrawCampaign.open(spec, seed, by.scope_key, uow.now)
        uow.add(campaign)
        for prize in spec.prizes:
            uow.add(PrizeStock.stocked(spec.campaign_id, prize, by.scope_key, uow.now))
        return {"campaign_id": spec.campaign_id, "seed_hash": campaign.seed_hash}

    return ledger.execute(key, decide, authorize)


def get_campaign(uow: UnitOfWork, name: str) -> DrawCampaign:
    found = uow.find(DrawCampaign, campaign_id(name))
    if found is None:
        raise NotFound(f"unknown campaign {name}", code="unknown_campaign")
    return found


def draw(
    ledger: Ledger,
    by: Principal,
    external_id: str,
    draw_id: str,
    campaign: str,
    client_seed: str,
    seed_key: bytes,
) -> Outcome:
    """One draw paid with points. Idempotent by ``draw_id``; stock never oversold."""
    validate_external_id(external_id)
    validate_client_seed(client_seed)
    content = {"member": external_id, "campaign": campaign, "client_seed": client_seed}
    key = RequestKey(by.scope_key, "draw", draw_id, content)

    def authorize(_uow: UnitOfWork) -> None:
        by.require(Role.GATEWAY, Role.HQ)

    def decide(uow: UnitOfWork) -> dict[str, Any]:
        found = get_campaign(uow, campaign)
        if not found.is_open:
            raise Conflict(f"campaign {campaign} is closed", code="campaign_closed")
        member = get_member(uow, external_id)
        ref = f"{by.scope_key}/{draw_id}"
        spend(
            member,
            f"draw:{ref}",
            found.cost_points,
            "draw",
            f"draw {campaign} {draw_id}",
            by.scope_key,
            uow.now,
        )
        seed = server_seed(seed_key, campaign)
        assert commitment(seed) == found.seed_hash, "the seed key changed since the commitment"
        counter = member.loyalty.draws.get(campaign, 0)
        value = roll(seed, campaign, member.member_id, client_seed, counter)
        prize_id = outcome(found.prizes, value)
        awarded = False
        if prize_id is not None:
            stock = uow.get(PrizeStock, prize_stock_id(campaign, prize_id), "prize stock")
            awarded = stock.award(ref, member.member_id, by.scope_key, uow.now)
        member.trigger_event(
            DrawMade,
            timestamp=uow.now,
            draw_id=draw_id,
            campaign_id=campaign,
            counter=counter,
            client_seed=client_seed,
            roll=value,
            prize_id=prize_id,
            awarded=awarded,
            cost_points=found.cost_points,
            by=by.scope_key,
        )
        prize = None if prize_id is None else found.prize(prize_id)
        if awarded and prize is not None and prize.points > 0:
            earn(
                member,
                f"prize:{campaign}/{ref}",
                prize.points,
                "prize",
                f"draw {campaign} {draw_id}",
                by.scope_key,
                uow.now,
            )
            upgrade_if_crossed(member, current_tiers(uow), f"draw {draw_id}", by.scope_key, uow.now)
        return {
            "draw_id": draw_id,
            "campaign_id": campaign,
            "counter": counter,
            "roll": value,
            "prize_id": prize_id,
            "prize": None if prize is None else prize.name,
            "awarded": awarded,
            "points_left": member.points,
        }

    return execute_patiently(ledger, key, decide, authorize)


def close_campaign(ledger: Ledger, by: Principal, campaign: str, seed_key: bytes) -> Outcome:
    """No more draws; the server seed is revealed (a repeat answers the same)."""
    key = RequestKey(GLOBAL_SCOPE, "draw-campaign-close", campaign, {})

    def authorize(_uow: UnitOfWork) -> None:
        by.require(Role.HQ)

    def decide(uow: UnitOfWork) -> dict[str, Any]:
        found = get_campaign(uow, campaign)
        found.close(server_seed(seed_key, campaign), by.scope_key, uow.now)
        return {"campaign_id": campaign, "seed": found.seed, "seed_hash": found.seed_hash}

    return ledger.execute(key, decide, authorize)


def draws_in_log(ledger: Ledger, campaign: str) -> Iterator[DrawRecord]:
    """Every DrawMade of the campaign, in log order, read from the event store itself."""
    start = 0
    while True:
        page = ledger.recorder.select_notifications(
            start, LOG_PAGE_SIZE, inclusive_of_start=False, topics=[DrawMade.TOPIC]
        )
        for n in page:
            e: Any = ledger.mapper.to_domain_event(n)
            if e.campaign_id == campaign:
                yield DrawRecord(
                    n.id,
                    str(e.originator_id),
                    e.draw_id,
                    e.counter,
                    e.client_seed,
                    e.roll,
                    e.prize_id,
                    e.awarded,
                )
        if len(page) < LOG_PAGE_SIZE:
            return
        start = page[-1].id


def verify_campaign(ledger: Ledger, campaign: str, seed: str | None = None) -> Verification:
    """Recompute every draw of a closed campaign from its revealed seed (or ``seed``,
    to show that any other seed fails)."""
    try:
        found: Any = ledger.repository.get(campaign_id(campaign))
    except Exception:
        raise NotFound(f"unknown campaign {campaign}", code="unknown_campaign") from None
    assert isinstance(found, DrawCampaign)
    revealed = seed if seed is not None else found.seed
    if revealed is None:
        raise Conflict(
            f"campaign {campaign} is open: its seed is revealed at the close",
            code="campaign_open",
        )
    return verify(campaign, found.prizes, found.seed_hash, revealed, draws_in_log(ledger, campaign))


def campaign_answer(found: DrawCampaign, stocks: dict[str, int]) -> dict[str, Any]:
    return {
        "campaign_id": found.campaign_id,
        "name": found.name,
        "cost_points": found.cost_points,
        "status": "open" if found.is_open else "closed",
        "seed_hash": found.seed_hash,
        "seed": found.seed,
        "prizes": [
            {
                "prize_id": p.prize_id,
                "name": p.name,
                "value": p.value_fen,
                "probability_ppm": p.probability_ppm,
                "stock": p.stock,
                "remaining": stocks.get(p.prize_id, p.stock),
                "points": p.points,
            }
            for p in found.prizes
        ],
    }


def read_campaign(ledger: Ledger, campaign: str) -> dict[str, Any]:
    """The campaign from the write side (its stock left is exact)."""
    repo = ledger.repository
    cid = campaign_id(campaign)
    if cid not in repo:
        raise NotFound(f"unknown campaign {campaign}", code="unknown_campaign")
    found: Any = repo.get(cid)
    assert isinstance(found, DrawCampaign)
    stocks = {}
    for p in found.prizes:
        stock: Any = repo.get(prize_stock_id(campaign, p.prize_id))
        stocks[p.prize_id] = stock.remaining
    return campaign_answer(found, stocks)
