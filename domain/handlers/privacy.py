"""Forgetting a member (PIPL) and finding one by phone: HQ only.

Forgetting destroys the member's key first and records ``Member.Forgotten`` second:
irreversible, so the privacy-safe order. A crash in between leaves the data
unreadable but not yet recorded; the client's retry with the same ``request_id``
finishes it (a refused request records nothing and may be sent again). The other
order could leave a log that says "forgotten" over data still readable.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any
from uuid import UUID

from domain.errors import InvalidInput, NotFound
from domain.ledger import Ledger, Outcome, RequestKey, UnitOfWork
from domain.members import Member, mask_phone, validate_forget_reason
from domain.principal import Principal, Role

Shredder = Callable[[str], bool]
PhoneIndex = Callable[[str], list[str]]


def member_uuid(member_id: str) -> UUID:
    try:
        return UUID(member_id)
    except ValueError:
        raise NotFound("unknown member", code="unknown_member") from None


def forget_member(
    ledger: Ledger,
    by: Principal,
    member_id: str,
    request_id: str,
    reason: str,
    shred: Shredder,
) -> Outcome:
    """``shred(member_id)`` destroys the member's key (and blind-index entries)."""
    validate_forget_reason(reason)
    key = RequestKey(
        by.scope_key, "member.forget", request_id, {"member_id": member_id, "reason": reason}
    )

    def authorize(_uow: UnitOfWork) -> None:
        by.require(Role.HQ)

    def decide(uow: UnitOfWork) -> dict[str, Any]:
        member = uow.get(Member, member_uuid(member_id), "member")
        shred(member.member_id)  # idempotent: a retried attempt finds no key
        member.forget(reason, by.scope_key, uow.now)
        return {"member_id": member.member_id, "forgotten": True}

    return ledger.execute(key, decide, authorize)


def find_by_phone(
    ledger: Ledger,
    by: Principal,
    phone: str,
    candidates: PhoneIndex,
    normalise: Callable[[str], str],
) -> list[dict[str, Any]]:
    """Members whose recorded phone is ``phone``, checked against the write side.

    The blind index only proposes candidates (it may hold an entry of a save that
    failed); each is loaded and its decrypted phone compared, so a forgotten member
    (no key: phone null) is never found.
    """
    by.require(Role.HQ)
    wanted = normalise(phone)
    if not wanted:
        raise InvalidInput.field("phone", "a phone number")
    uow = UnitOfWork(ledger)
    found: list[dict[str, Any]] = []
    for subject in candidates(phone):
        member = uow.find(Member, member_uuid(subject))
        if member is None or member.phone is None or normalise(member.phone) != wanted:
            continue
        found.append({"member_id": member.member_id, "phone_masked": mask_phone(member.phone)})
    return found
