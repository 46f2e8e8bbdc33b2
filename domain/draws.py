"""Provably fair lucky draws (转盘抽奖): campaigns, prize stock, outcomes anyone can recompute.

- At creation a campaign commits to ``SHA-256(server seed)``; the seed itself stays
  secret (derived from a key kept with the store) until the campaign closes.
- A draw's roll is ``HMAC-SHA256(key = server seed, message = campaign | member |
  client seed | counter)``, its first 8 bytes as an integer, modulo 1,000,000; the
  prize is the one whose cumulative probability range (parts per million) holds the
  roll. The member chooses the client seed; the counter is the member's count of draws
  in the campaign. The operator cannot steer an outcome (the seed was fixed before);
  the member cannot either (the seed is unknown until the close).
- Prize stock is one aggregate per prize: awards of one prize are serialised by its
  optimistic concurrency, so stock is never oversold. A roll on a prize with no stock
  left is recorded as such (``awarded`` false): the outcome still verifies.
- The seed is revealed at the close; ``verify`` recomputes every outcome.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from uuid import UUID, uuid5

from eventsourcing.domain import Aggregate

from domain import carry_forward
from domain.errors import Conflict, InvalidInput
from domain.identity import namespace

NS_CAMPAIGN = namespace("draw-campaign")
NS_PRIZE_STOCK = namespace("prize-stock")
PROBABILITY_SCALE = 1_000_000  # parts per million
TOP_PRIZE_VALUE_FEN_MAX = 5_000_000  # 50,000 yuan: the legal cap on a lottery-style prize
PRIZES_MAX = 20
STOCK_MAX = 1_000_000
COST_POINTS_MAX = 1_000_000
CLIENT_SEED_LENGTH_MAX = 64
ID_LENGTH_MAX = 64

PrizeRow = tuple[str, str, int, int, int, int]  # id, name, value_fen, ppm, stock, points


def campaign_id(name: str) -> UUID:
    return uuid5(NS_CAMPAIGN, name)


def prize_stock_id(campaign: str, prize: str) -> UUID:
    return uuid5(NS_PRIZE_STOCK, f"{campaign}\x1f{prize}")


@dataclass(frozen=True)
class Prize:
    prize_id: str
    name: str
    value_fen: int
    probability_ppm: int
    stock: int
    points: int = 0  # a points prize credits a lot (source "prize")

    def row(self) -> PrizeRow:
        return (
            self.prize_id,
            self.name,
            self.value_fen,
            self.probability_ppm,
            self.stock,
            self.points,
        )


@dataclass(frozen=True)
class CampaignSpec:
    campaign_id: str
    name: str
    cost_points: int
    prizes: tuple[Prize, ...]

    def __post_init__(self) -> None:
        _check_id(self.campaign_id, "campaign_id")
        if not self.name.strip() or len(self.name) > 200:
            raise InvalidInput.field("name", "1 to 200 characters")
        if not 1 <= self.cost_points <= COST_POINTS_MAX:
            raise InvalidInput.field("cost_points", f"1 to {COST_POINTS_MAX}")
        if not 1 <= len(self.prizes) <= PRIZES_MAX:
            raise InvalidInput.field("prizes", f"1 to {PRIZES_MAX} prizes")
        if len({p.prize_id for p in self.prizes}) != len(self.prizes):
            raise InvalidInput.field("prizes", "prize ids are unique")
        for p in self.prizes:
            _check_id(p.prize_id, "prizes.prize_id")
            if not 0 <= p.value_fen <= TOP_PRIZE_VALUE_FEN_MAX:
                raise InvalidInput(
                    f"prize {p.prize_id}: the legal cap is {TOP_PRIZE_VALUE_FEN_MAX} fen",
                    code="prize_over_legal_cap",
                )
            if not 1 <= p.probability_ppm <= PROBABILITY_SCALE:
                raise InvalidInput.field("prizes.probability_ppm", f"1 to {PROBABILITY_SCALE}")
            if not 0 <= p.stock <= STOCK_MAX:
                raise InvalidInput.field("prizes.stock", f"0 to {STOCK_MAX}")
            if not 0 <= p.points <= COST_POINTS_MAX:
                raise InvalidInput.field("prizes.points", f"0 to {COST_POINTS_MAX}")
        if sum(p.probability_ppm for p in self.prizes) > PROBABILITY_SCALE:
            raise InvalidInput.field("prizes", "probabilities sum to at most 1,000,000 ppm")

    def content(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "cost_points": self.cost_points,
            "prizes": [list(p.row()) for p in self.prizes],
        }


def _check_id(value: str, field_name: str) -> None:
    if not 1 <= len(value) <= ID_LENGTH_MAX or not value.isascii() or not value.isprintable():
        raise InvalidInput.field(field_name, f"1 to {ID_LENGTH_MAX} printable ASCII characters")


def validate_client_seed(seed: str) -> None:
    if not 1 <= len(seed) <= CLIENT_SEED_LENGTH_MAX or not seed.isascii() or ":" in seed:
        raise InvalidInput.field(
            "client_seed", f"1 to {CLIENT_SEED_LENGTH_MAX} ASCII characters, no ':'"
        )


# -- the fairness functions (pure; documented in the module docstring) ---------------------


def server_seed(seed_key: bytes, campaign: str) -> str:
    """The campaign's secret seed (hex), derived from the key kept with the store."""
    assert seed_key, "the draw seed key is set"
    return hmac.new(seed_key, f"draw-seed\x1f{campaign}".encode(), hashlib.sha256).hexdigest()


def commitment(seed_hex: str) -> str:
    return hashlib.sha256(bytes.fromhex(seed_hex)).hexdigest()


def roll(seed_hex: str, campaign: str, member_id: str, client_seed: str, counter: int) -> int:
    message = f"{campaign}:{member_id}:{client_seed}:{counter}".encode()
    digest = hmac.new(bytes.fromhex(seed_hex), message, hashlib.sha256).digest()
    return int.from_bytes(digest[:8], "big") % PROBABILITY_SCALE


def outcome(prizes: Iterable[Prize], value: int) -> str | None:
    """The prize whose cumulative range holds ``value`` (ranges in table order), or None."""
    assert 0 <= value < PROBABILITY_SCALE
    upper = 0
    for p in prizes:
        upper += p.probability_ppm
        if value < upper:
            return p.prize_id
    return None


# -- aggregates ------------------------------------------------------------------------


class DrawCampaign(Aggregate):
    TOPIC = "siyu.DrawCampaign"

    class Created(Aggregate.Created):
        """Unused: eventsourcing defines one per aggregate; ours is named in domain words."""

        TOPIC = "siyu.DrawCampaign.Created"

    class Opened(Aggregate.Created):
        TOPIC = "siyu.DrawCampaign.Opened"
        campaign_id: str
        name: str
        cost_points: int
        prizes: tuple[PrizeRow, ...]
        seed_hash: str
        by: str

    class Closed(Aggregate.Event):
        """The campaign takes no more draws; its server seed is revealed."""

        TOPIC = "siyu.DrawCampaign.Closed"
        seed: str
        by: str

        def apply(self, campaign: Any) -> None:
            assert commitment(self.seed) == campaign.seed_hash, "the revealed seed is the one"
            campaign.seed = self.seed

    def __init__(
        self,
        campaign_id: str,
        name: str,
        cost_points: int,
        prizes: tuple[PrizeRow, ...],
        seed_hash: str,
        by: str,
    ) -> None:
        self.campaign_id = campaign_id
        self.name = name
        self.cost_points = cost_points
        self.prizes = tuple(Prize(*row) for row in prizes)
        self.seed_hash = seed_hash
        self.seed: str | None = None

    @property
    def is_open(self) -> bool:
        return self.seed is None

    @classmethod
    def open(cls, spec: CampaignSpec, seed_hex: str, by: str, at: datetime) -> DrawCampaign:
        return cls._create(
            cls.Opened,
            id=campaign_id(spec.campaign_id),
            timestamp=at,
            campaign_id=spec.campaign_id,
            name=spec.name,
            cost_points=spec.cost_points,
            prizes=tuple(p.row() for p in spec.prizes),
            seed_hash=commitment(seed_hex),
            by=by,
        )

    def prize(self, prize_id: str) -> Prize:
        return next(p for p in self.prizes if p.prize_id == prize_id)

    def close(self, seed_hex: str, by: str, at: datetime) -> None:
        if not self.is_open:
            raise Conflict(f"campaign {self.campaign_id} is closed", code="campaign_closed")
        self.trigger_event(self.Closed, timestamp=at, seed=seed_hex, by=by)


class PrizeStock(Aggregate):
    """The stock of one prize of one campaign: the only thing awards of it write."""

    TOPIC = "siyu.PrizeStock"

    class Created(Aggregate.Created):
        """Unused: eventsourcing defines one per aggregate; ours is named in domain words."""

        TOPIC = "siyu.PrizeStock.Created"

    class Stocked(Aggregate.Created):
        TOPIC = "siyu.PrizeStock.Stocked"
        campaign_id: str
        prize_id: str
        stock: int
        by: str

    class Awarded(Aggregate.Event):
        TOPIC = "siyu.PrizeStock.Awarded"
        draw_ref: str
        member_id: str
        by: str

        def apply(self, stock: Any) -> None:
            assert stock.remaining > 0, "stock is never oversold"
            stock.remaining -= 1

    # an event per prize awarded, up to the stock (thousands for a campaign's small
    # prizes): a draw reads the stock from its state carried forward
    CARRY_FORWARD_EVERY = 20

    class CarriedForward(carry_forward.CarriedForward):
        TOPIC = "siyu.PrizeStock.CarriedForward"
        campaign_id: str
        prize_id: str
        stock: int
        remaining: int

    def __init__(self, campaign_id: str, prize_id: str, stock: int, by: str) -> None:
        self.campaign_id = campaign_id
        self.prize_id = prize_id
        self.stock = stock
        self.remaining = stock

    @classmethod
    def stocked(cls, campaign: str, prize: Prize, by: str, at: datetime) -> PrizeStock:
        return cls._create(
            cls.Stocked,
            id=prize_stock_id(campaign, prize.prize_id),
            timestamp=at,
            campaign_id=campaign,
            prize_id=prize.prize_id,
            stock=prize.stock,
            by=by,
        )

    def award(self, draw_ref: str, member_id: str, by: str, at: datetime) -> bool:
        if self.remaining <= 0:
            return False
        self.trigger_event(
            self.Awarded, timestamp=at, draw_ref=draw_ref, member_id=member_id, by=by
        )
        return True


# -- verification -------------------------------------------------------------------------


@dataclass(frozen=True)
class DrawRecord:
    """What a DrawMade event recorded (read from the log)."""

    position: int
    member_id: str
    draw_id: str
    counter: int
    client_seed: str
    roll: int
    prize_id: str | None
    awarded: bool


@dataclass
class Verification:
    campaign_id: str
    seed_matches: bool
    checked: int = 0
    failures: list[dict[str, Any]] = field(default_factory=list)
    awarded: dict[str, int] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.seed_matches and not self.failures

    def as_data(self) -> dict[str, Any]:
        return {
            "campaign_id": self.campaign_id,
            "ok": self.ok,
            "seed_matches_commitment": self.seed_matches,
            "checked": self.checked,
            "failures": self.failures[:100],
            "awarded": dict(sorted(self.awarded.items())),
        }


def verify(
    campaign: str,
    prizes: tuple[Prize, ...],
    seed_hash: str,
    seed_hex: str,
    draws: Iterable[DrawRecord],
) -> Verification:
    """Recompute every draw from the revealed seed; check counters and stock."""
    try:
        seed_matches = commitment(seed_hex) == seed_hash
    except ValueError:
        seed_matches = False
        seed_hex = "00"
    report = Verification(campaign, seed_matches)
    counters: dict[str, int] = {}
    for d in draws:
        report.checked += 1
        expected_counter = counters.get(d.member_id, 0)
        counters[d.member_id] = expected_counter + 1
        value = roll(seed_hex, campaign, d.member_id, d.client_seed, d.counter)
        expected = outcome(prizes, value)
        if d.counter != expected_counter or value != d.roll or expected != d.prize_id:
            report.failures.append(
                {
                    "position": d.position,
                    "draw_id": d.draw_id,
                    "recorded": {"roll": d.roll, "prize_id": d.prize_id, "counter": d.counter},
                    "recomputed": {"roll": value, "prize_id": expected},
                }
            )
        if d.awarded and d.prize_id is not None:
            report.awarded[d.prize_id] = report.awarded.get(d.prize_id, 0) + 1
    for p in prizes:
        if report.awarded.get(p.prize_id, 0) > p.stock:
            report.failures.append({"prize_id": p.prize_id, "problem": "oversold"})
    return report
