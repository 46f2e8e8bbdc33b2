"""Members: consumers the brand owns. Joined by a first consumer-code scan or a first order.

The id is a keyed hash of the external id (so it cannot be derived from outside);
phone is personal data, encrypted at rest with the member's own key.
Binding to a store, and the referrer, are set once and then stick.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any
from uuid import UUID

from eventsourcing.domain import Aggregate

from domain import carry_forward
from domain.errors import InvalidInput
from domain.loyalty import LoyaltyState, earned

EXTERNAL_ID_LENGTH_MAX = 100
POINTS_LIFETIME = timedelta(days=365)


def validate_external_id(external_id: str, field: str = "external_id") -> None:
    """A member's id in the brand's own systems; it is a path segment of the member's
    endpoints (``/v1/members/{external_id}``), so a member made with an id no path can
    name (a slash, ``.``, ``..``, control characters, blanks at either end) could never
    be read or spend their points."""
    rule = (
        f"1 to {EXTERNAL_ID_LENGTH_MAX} characters, no slash, control character or blank at an end"
    )
    if (
        not 1 <= len(external_id) <= EXTERNAL_ID_LENGTH_MAX
        or "/" in external_id
        or external_id in (".", "..")
        or external_id != external_id.strip()
        or any(ord(c) < 32 or ord(c) == 127 for c in external_id)
    ):
        raise InvalidInput.field(field, rule)


def mask_phone(phone: str | None) -> str | None:
    """``13812345678`` -> ``138****5678``: what everyone below HQ sees."""
    if not phone:
        return None
    if len(phone) < 7:
        return "*" * len(phone)
    return phone[:3] + "*" * (len(phone) - 7) + phone[-4:]


def validate_phone(phone: str | None) -> None:
    if phone is not None and not (phone.isascii() and phone.isdigit() and 5 <= len(phone) <= 15):
        raise InvalidInput.field("member.phone", "5 to 15 digits")


FORGET_REASON_LENGTH_MAX = 200


def validate_forget_reason(reason: str) -> None:
    """A reason is kept for good in the log: it must not itself carry a phone number."""
    if not 1 <= len(reason) <= FORGET_REASON_LENGTH_MAX:
        raise InvalidInput.field("reason", f"1 to {FORGET_REASON_LENGTH_MAX} characters")
    digits_run = 0
    for ch in reason:
        digits_run = digits_run + 1 if ch.isdigit() else 0
        if digits_run >= 5:
            raise InvalidInput.field("reason", "no phone numbers or other personal data")


class Member(Aggregate):
    TOPIC = "siyu.Member"

    class Created(Aggregate.Created):
        """Unused: eventsourcing defines one per aggregate; ours is named in domain words."""

        TOPIC = "siyu.Member.Created"

    class Joined(Aggregate.Created):
        TOPIC = "siyu.Member.Joined"
        personal_fields = ("phone",)
        blind_index_fields = ("phone",)  # HQ finds a member by phone (a keyed hash)
        subject_field = "member_id"
        member_id: str
        channel: str
        region_code: str | None
        phone: str | None
        by: str

    class Bound(Aggregate.Event):
        """Permanently credited to a store (订单权益永久绑定)."""

        TOPIC = "siyu.Member.Bound"
        store: str
        reason: str
        by: str

        def apply(self, member: Any) -> None:
            member.bound_store = self.store

    class ReferrerSet(Aggregate.Event):
        TOPIC = "siyu.Member.ReferrerSet"
        referrer: str
        by: str

        def apply(self, member: Any) -> None:
            member.referrer = self.referrer

    class PointsEarned(Aggregate.Event):
        """A lot of points with its source and expiry; ``cause`` names what earned it."""

        TOPIC = "siyu.Member.PointsEarned"
        lot_id: str
        points: int
        source: str
        cause: str
        expires_at: datetime
        by: str

        def apply(self, member: Any) -> None:
            assert self.points > 0
            member.points += self.points
            member.growth += self.points
            earned(member, self)

    class Forgotten(Aggregate.Event):
        """The member asked to be forgotten (PIPL): their key was destroyed before this.

        Carries no personal data. The history stays (the ledger needs it); every
        personal field recorded before is unreadable from now on.
        """

        TOPIC = "siyu.Member.Forgotten"
        reason: str
        by: str

        def apply(self, member: Any) -> None:
            member.phone = None
            member.forgotten = True

    # an event or more per scan, order, reward and draw, for as long as the member buys:
    # a command reads the member from its state carried forward at most this many ago
    CARRY_FORWARD_EVERY = 20

    class CarriedForward(carry_forward.CarriedForward):
        """The member's state; the phone and name under the member's key, as everywhere
        (forgetting the member shreds them here too)."""

        TOPIC = "siyu.Member.CarriedForward"
        personal_fields = ("phone", "name")
        subject_field = "member_id"
        member_id: str
        channel: str
        region_code: str | None
        phone: str | None
        bound_store: str | None
        referrer: str | None
        points: int
        growth: int
        name: str | None
        loyalty: LoyaltyState
        forgotten: bool

    def __init__(
        self, member_id: str, channel: str, region_code: str | None, phone: str | None, by: str
    ) -> None:
        self.member_id = member_id
        self.channel = channel
        self.region_code = region_code
        self.phone = phone
        self.bound_store: str | None = None
        self.referrer: str | None = None
        self.points = 0
        self.growth = 0
        self.name: str | None = None
        self.loyalty = LoyaltyState()
        self.forgotten = False

    @classmethod
    def join(
        cls,
        member_uuid: UUID,
        channel: str,
        region_code: str | None,
        phone: str | None,
        by: str,
        at: datetime,
    ) -> Member:
        validate_phone(phone)
        return cls._create(
            cls.Joined,
            id=member_uuid,
            timestamp=at,
            member_id=str(member_uuid),
            channel=channel,
            region_code=region_code,
            phone=phone,
            by=by,
        )

    def bind(self, store: str, reason: str, by: str, at: datetime) -> bool:
        if self.bound_store is not None:
            return False
        self.trigger_event(self.Bound, timestamp=at, store=store, reason=reason, by=by)
        return True

    def refer(self, referrer: str, by: str, at: datetime) -> bool:
        if self.referrer is not None:
            return False
        self.trigger_event(self.ReferrerSet, timestamp=at, referrer=referrer, by=by)
        return True

    def earn(
        self, lot_id: str, points: int, source: str, cause: str, by: str, at: datetime
    ) -> None:
        if points <= 0:
            return
        self.trigger_event(
            self.PointsEarned,
            timestamp=at,
            lot_id=lot_id,
            points=points,
            source=source,
            cause=cause,
            expires_at=at + POINTS_LIFETIME,
            by=by,
        )

    def forget(self, reason: str, by: str, at: datetime) -> None:
        """Record that the member was forgotten; a member may be forgotten again later."""
        validate_forget_reason(reason)
        self.trigger_event(self.Forgotten, timestamp=at, reason=reason, by=by)
