"""The auditor's feed: stored events as they are, decoded, with personal data masked.

Decision (docs/decisions/audit.md): personal data never leaves in clear, for any role.
The feed does not decrypt: each field an event class names in ``personal_fields``
(a member's phone, a scan's exact coordinates) is replaced by ``"[personal]"`` when
it holds a value (``null`` stays ``null``), and so is any other string that is still
ciphertext (``enc1:...``). The marker, rather than the ciphertext, because a
ciphertext is useless to an auditor and would outlive a forgotten member's key in
every copy of the feed taken outside. The names of clerks and distributors (people,
not businesses) are masked the same way.
"""

from __future__ import annotations

from typing import Any
from uuid import UUID

from eventsourcing.persistence import StoredEvent

from projections.chain import chain_hashes
from projections.keyring import PREFIX as CIPHERTEXT_PREFIX
from projections.views import Tx

PERSONAL = "[personal]"
PEOPLE_KINDS = frozenset({"clerk", "distributor"})
PARTNER_REGISTERED = "siyu.Partner.Registered"


def _mask_ciphertext(value: Any) -> Any:
    if isinstance(value, str) and value.startswith(CIPHERTEXT_PREFIX):
        return PERSONAL
    if isinstance(value, list):
        return [_mask_ciphertext(v) for v in value]
    if isinstance(value, dict):
        return {k: _mask_ciphertext(v) for k, v in value.items()}
    return value


def mask_personal(cls: type | None, topic: str, state: dict[str, Any]) -> dict[str, Any]:
    masked: dict[str, Any] = _mask_ciphertext(state)
    for name in getattr(cls, "personal_fields", ()):
        if masked.get(name) is not None:
            masked[name] = PERSONAL
    if topic == PARTNER_REGISTERED and masked.get("kind") in PEOPLE_KINDS:
        masked["name"] = PERSONAL
    return masked


def feed_item(
    mapper: Any, position: int, stored: StoredEvent, hash_hex: str | None
) -> dict[str, Any]:
    """One event as the feed shows it (API.md: position, aggregate_id, version, type...)."""
    try:
        cls, state = mapper.decode_state(stored)
    except Exception:  # a stored event this code cannot read is still shown, unread
        cls, state = None, {"unreadable": True}
    at = state.pop("timestamp", None)
    originator_id = stored.originator_id
    aggregate_id = originator_id if isinstance(originator_id, UUID) else UUID(str(originator_id))
    return {
        "position": position,
        "aggregate_id": str(aggregate_id),
        "version": stored.originator_version,
        "type": stored.topic,
        "at": at,
        "data": mask_personal(cls, stored.topic, state),
        "hash": hash_hex,
    }


def feed_page(
    recorder: Any, mapper: Any, views_tx: Tx, chained: int, after: int, limit: int
) -> dict[str, Any]:
    """The events after ``after`` that the chain has hashed (``chained``: the position the
    chain read model has applied, read in ``views_tx``), at most ``limit``.

    The page ends at the chain's head: the chain trails the log, and an event served
    before it is chained would go out with a null hash, and a client that polls the feed
    would never see that event again with its hash. ``next`` is the ``after`` of the next
    page whenever the log holds more past this page (a full page, or one the chain's head
    cut short); null when the page is empty or reaches the log's head. An event at or
    below the head that the chain has no hash for was never seen by it (written behind
    the ledger's back): it is shown, its null hash the evidence (``siyu verify`` names it).
    """
    notifications = recorder.select_notifications(after, limit, inclusive_of_start=False)
    served = [n for n in notifications if n.id <= chained]
    hashes = chain_hashes(views_tx, [n.id for n in served])
    items = [feed_item(mapper, n.id, n, hashes.get(n.id)) for n in served]
    more = len(notifications) == limit or len(served) < len(notifications)
    return {"items": items, "next": served[-1].id if served and more else None}
