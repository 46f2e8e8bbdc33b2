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


def feed_page(recorder: Any, mapper: Any, views_tx: Tx, after: int, limit: int) -> dict[str, Any]:
    notifications = recorder.select_notifications(after, limit, inclusive_of_start=False)
    hashes = chain_hashes(views_tx, [n.id for n in notifications])
    items = [feed_item(mapper, n.id, n, hashes.get(n.id)) for n in notifications]
    next_after = notifications[-1].id if len(notifications) == limit else None
    return {"items": items, "next": next_after}
