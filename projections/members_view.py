"""Read model: members (points, growth, tier, binding, referrer, tags), their lots and tasks.

Personal data: the phone is kept only masked (``138****5678``), derived here from the
decrypted event; the name is not kept at all. The bound store's and the referrer's
paths are kept so each principal sees only the members in its scope (a store its
bound members, a dealer those of its stores, a clerk or distributor those it referred).
Invariant checked on every change: points = sum of the lots' remaining - debt.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import msgspec

from domain import loyalty
from domain.identity import id_text
from domain.members import Member, mask_phone
from domain.tiers import DEFAULT_TIERS, TierPolicy
from projections.forgetting import Personal, scrub_statement
from projections.partners import partner_path
from projections.views import Tx, rows_in

_json = msgspec.json.Encoder()
_unjson = msgspec.json.Decoder(list[str])

PERSONAL: Personal = {"members": ("member_id", ("phone_masked",))}
_FORGET = scrub_statement("members", *PERSONAL["members"])

MEMBER_COLUMNS = (
    "member_id",
    "channel",
    "region_code",
    "phone_masked",
    "bound_store",
    "bound_path",
    "first_store",
    "referrer",
    "referrer_path",
    "distributor",
    "tier",
    "tier_since",
    "points",
    "debt",
    "growth",
    "tags",
    "joined_at",
    "last_earned_at",
    "position",
)
LOT_COLUMNS = ("lot_id", "source", "cause", "points", "remaining", "earned_at", "expires_at")

TOPICS = frozenset(
    {
        Member.Joined.TOPIC,
        Member.Bound.TOPIC,
        Member.ReferrerSet.TOPIC,
        Member.PointsEarned.TOPIC,
        "siyu.Member.Forgotten",
        TierPolicy.Published.TOPIC,
        *(e.TOPIC for e in loyalty.MEMBER_EVENTS),  # type: ignore[attr-defined]
    }
)


class MembersView:
    name: str = "members"
    follows: tuple[str, ...] = ("partners",)  # reads partner paths
    version: int = 1
    tables: dict[str, str] = {
        "members": (
            "CREATE TABLE IF NOT EXISTS members ("
            "member_id TEXT PRIMARY KEY, channel TEXT NOT NULL, region_code TEXT, "
            "phone_masked TEXT, bound_store TEXT, bound_path TEXT, first_store TEXT, "
            "referrer TEXT, referrer_path TEXT, distributor TEXT, tier TEXT NOT NULL, "
            "tier_since TEXT, points BIGINT NOT NULL, debt BIGINT NOT NULL, "
            "growth BIGINT NOT NULL, tags TEXT NOT NULL, joined_at TEXT NOT NULL, "
            "last_earned_at TEXT, position BIGINT NOT NULL)"
        ),
        "member_lots": (
            "CREATE TABLE IF NOT EXISTS member_lots ("
            "member_id TEXT NOT NULL, lot_id TEXT NOT NULL, source TEXT NOT NULL, "
            "cause TEXT NOT NULL, points BIGINT NOT NULL, remaining BIGINT NOT NULL, "
            "earned_at TEXT NOT NULL, expires_at TEXT NOT NULL, PRIMARY KEY (member_id, lot_id))"
        ),
        "member_tasks": (
            "CREATE TABLE IF NOT EXISTS member_tasks ("
            "member_id TEXT NOT NULL, task_id TEXT NOT NULL, progress INTEGER NOT NULL, "
            "target INTEGER NOT NULL, completed INTEGER NOT NULL, at TEXT NOT NULL, "
            "PRIMARY KEY (member_id, task_id))"
        ),
        "members_tier_policy": (
            "CREATE TABLE IF NOT EXISTS members_tier_policy ("
            "id INTEGER PRIMARY KEY, lowest TEXT NOT NULL, version INTEGER NOT NULL)"
        ),
    }
    indexes: tuple[str, ...] = (
        "CREATE INDEX IF NOT EXISTS members_bound_path ON members (bound_path)",
        "CREATE INDEX IF NOT EXISTS members_referrer ON members (referrer)",
        "CREATE INDEX IF NOT EXISTS member_lots_expiry ON member_lots (expires_at)",
    )
    topics: frozenset[str] = TOPICS
    # what it derives from personal data, cleared on Member.Forgotten here and, by a
    # forget, in the side builds (projections/forgetting.py)
    personal: Personal = PERSONAL

    def apply(self, tx: Tx, event: Any, position: int) -> None:
        member = id_text(event.originator_id)
        handler = _HANDLERS.get(type(event).__name__)
        if isinstance(event, TierPolicy.Published):
            tx.memo["members.lowest"] = event.tiers[0][0]
            tx.execute(
                "INSERT INTO members_tier_policy (id, lowest, version) VALUES (1, ?, ?) "
                "ON CONFLICT (id) DO UPDATE SET lowest = excluded.lowest, "
                "version = excluded.version",
                (event.tiers[0][0], event.version),
            )
            return
        if handler is None:
            return
        handler(tx, member, event)
        tx.memo.setdefault("members.position", {})[member] = position

    def prepare(self, tx: Tx, events: list[tuple[Any, int]]) -> None:
        if any(isinstance(e, Member.Joined) for e, _ in events):
            _lowest(tx)  # read before the batch's writes: no wait for them

    def finish(self, tx: Tx) -> None:
        """Each touched member's position, once per batch (one statement, not one per
        event), with the sums of the members whose points, growth or debt moved (one
        new row version each, not two); those members are ``check``ed."""
        positions: dict[str, int] = tx.memo.pop("members.position", {})
        tx.memo[CHECKED_MEMO] = _write_moved(tx, positions)
        tx.executemany(
            "UPDATE members SET position = ? WHERE member_id = ?",
            [(position, member) for member, position in positions.items()],
        )

    def check(self, tx: Tx) -> None:
        """The points invariant of each member the batch moved (one statement), once every
        read model has written the batch: the read waits only as long as the commit would."""
        _check_all(tx, tx.memo.pop(CHECKED_MEMO, set()))


MOVED_MEMO = "members.moved"  # member -> [points, growth, debt, last earned at]
CHECKED_MEMO = "members.checked"  # the members whose points invariant the batch checks


def _lowest(tx: Tx) -> str:
    """The lowest tier of the policy in force (a new member's), remembered for the batch."""
    if "members.lowest" not in tx.memo:
        row = tx.fetchone("SELECT lowest FROM members_tier_policy WHERE id = 1")
        tx.memo["members.lowest"] = DEFAULT_TIERS.lowest.name if row is None else row[0]
    return str(tx.memo["members.lowest"])


def _joined(tx: Tx, member: str, e: Any) -> None:
    lowest = _lowest(tx)
    tx.execute(
        "INSERT INTO members (member_id, channel, region_code, phone_masked, tier, points, debt, "
        "growth, tags, joined_at, position) VALUES (?, ?, ?, ?, ?, 0, 0, 0, '[]', ?, 0)",
        (member, e.channel, e.region_code, mask_phone(e.phone), lowest, e.timestamp.isoformat()),
    )


def _utc(at: datetime) -> str:
    """Times kept for comparison in SQL: UTC, one format, so text order is time order."""
    return at.astimezone(UTC).isoformat()


def _bound(tx: Tx, member: str, e: Any) -> None:
    path = partner_path(tx, e.store)
    tx.execute(
        "UPDATE members SET bound_store = ?, bound_path = ?, "
        "first_store = COALESCE(first_store, ?) WHERE member_id = ?",
        (e.store, path, e.store, member),
    )


def _referred(tx: Tx, member: str, e: Any) -> None:
    tx.execute(
        "UPDATE members SET referrer = ?, referrer_path = ? WHERE member_id = ?",
        (e.referrer, partner_path(tx, e.referrer), member),
    )


def _earned(tx: Tx, member: str, e: Any) -> None:
    tx.execute(
        "INSERT INTO member_lots (member_id, lot_id, source, cause, points, remaining, "
        "earned_at, expires_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        (
            member,
            e.lot_id,
            e.source,
            e.cause,
            e.points,
            e.points,
            _utc(e.timestamp),
            _utc(e.expires_at),
        ),
    )
    _moved(tx, member, points=e.points, growth=e.points, earned_at=e.timestamp.isoformat())


def _take(tx: Tx, member: str, lots: Any) -> None:
    for lot_id, n in lots:
        tx.execute(
            "UPDATE member_lots SET remaining = remaining - ? WHERE member_id = ? AND lot_id = ?",
            (n, member, lot_id),
        )


def _spent(tx: Tx, member: str, e: Any) -> None:
    _take(tx, member, e.lots)
    _moved(tx, member, points=-e.points)


def _expired(tx: Tx, member: str, e: Any) -> None:
    _take(tx, member, ((e.lot_id, e.points),))
    _moved(tx, member, points=-e.points)


def _reversed(tx: Tx, member: str, e: Any) -> None:
    _take(tx, member, e.lots)
    _moved(tx, member, points=-e.points, debt=e.debt)


def _recovered(tx: Tx, member: str, e: Any) -> None:
    _take(tx, member, e.lots)
    _moved(tx, member, debt=-e.points)


def _order_rewarded(tx: Tx, member: str, e: Any) -> None:
    _moved(tx, member, growth=e.growth)


def _order_reversed(tx: Tx, member: str, e: Any) -> None:
    _moved(tx, member, growth=-e.growth)


def _tier(tx: Tx, member: str, e: Any) -> None:
    tx.execute(
        "UPDATE members SET tier = ?, tier_since = ? WHERE member_id = ?",
        (e.tier, _utc(e.timestamp), member),
    )


def _task(tx: Tx, member: str, e: Any) -> None:
    tx.execute(
        "INSERT INTO member_tasks (member_id, task_id, progress, target, completed, at) "
        "VALUES (?, ?, ?, ?, 0, ?) ON CONFLICT (member_id, task_id) DO UPDATE SET "
        "progress = excluded.progress, at = excluded.at",
        (member, e.task_id, e.count, e.target, e.timestamp.isoformat()),
    )


def _task_done(tx: Tx, member: str, e: Any) -> None:
    tx.execute(
        "UPDATE member_tasks SET completed = 1, at = ? WHERE member_id = ? AND task_id = ?",
        (e.timestamp.isoformat(), member, e.task_id),
    )


def _rebound(tx: Tx, member: str, e: Any) -> None:
    tx.execute(
        "UPDATE members SET bound_store = ?, bound_path = ? WHERE member_id = ?",
        (e.store, partner_path(tx, e.store), member),
    )


def _tagged(tx: Tx, member: str, e: Any) -> None:
    tags = _json.encode(list(e.tags)).decode()
    tx.execute("UPDATE members SET tags = ? WHERE member_id = ?", (tags, member))


def _enrolled(tx: Tx, member: str, e: Any) -> None:
    tx.execute("UPDATE members SET distributor = ? WHERE member_id = ?", (e.partner, member))


def _contact(tx: Tx, member: str, e: Any) -> None:
    if e.phone is not None:
        tx.execute(
            "UPDATE members SET phone_masked = ? WHERE member_id = ?",
            (mask_phone(e.phone), member),
        )


def _forgotten(tx: Tx, member: str, _e: Any) -> None:
    tx.execute(_FORGET, (member,))


def _moved(
    tx: Tx,
    member: str,
    *,
    points: int = 0,
    growth: int = 0,
    debt: int = 0,
    earned_at: str | None = None,
) -> None:
    """Points, growth and debt move by sums: folded per member over the batch and written
    once at its end (a busy member earns many times in one batch); each such member's
    points invariant is checked then (the second path: the first is the aggregate's)."""
    moved: dict[str, list[Any]] = tx.memo.setdefault(MOVED_MEMO, {})
    sums = moved.get(member)
    if sums is None:
        sums = moved[member] = [0, 0, 0, None]
    sums[0] += points
    sums[1] += growth
    sums[2] += debt
    if earned_at is not None:
        sums[3] = earned_at  # the batch's last, as writing each in turn would leave


def _write_moved(tx: Tx, positions: dict[str, int]) -> set[str]:
    """The batch's sums written, each with its member's position (taken out of
    ``positions``, which every member an event moved is in); the members they moved."""
    moved: dict[str, list[Any]] = tx.memo.pop(MOVED_MEMO, {})
    tx.executemany(
        "UPDATE members SET points = points + ?, growth = growth + ?, debt = debt + ?, "
        "last_earned_at = COALESCE(?, last_earned_at), position = ? WHERE member_id = ?",
        [(p, g, d, at, positions.pop(member), member) for member, (p, g, d, at) in moved.items()],
    )
    return set(moved)


def _check_all(tx: Tx, members: set[str]) -> None:
    """The view's balance is its lots minus debt, and no lot is below zero.

    The lots by scalar subqueries, one index probe per member: as a join, PostgreSQL
    without statistics hashed the whole lots table for every batch (17 ms at 114,000
    lots, for 20 members), a third of its CPU per scan on a million-event store."""
    rows = list(
        rows_in(
            tx,
            "SELECT m.member_id, m.points, m.debt, "
            "COALESCE((SELECT SUM(l.remaining) FROM member_lots l "
            "WHERE l.member_id = m.member_id), 0), "
            "COALESCE((SELECT MIN(l.remaining) FROM member_lots l "
            "WHERE l.member_id = m.member_id), 0) FROM members m WHERE m.member_id",
            sorted(members),
        )
    )
    found = {str(r[0]) for r in rows}
    assert found == members, f"no member {sorted(members - found)[:3]}"
    for member, *values in rows:
        points, debt, remaining, lowest = (int(v) for v in values)
        assert points == remaining - debt, f"points of {member} do not add up"
        assert lowest >= 0, f"a lot of {member} went below zero"


_HANDLERS: dict[str, Any] = {
    "Joined": _joined,
    "Bound": _bound,
    "ReferrerSet": _referred,
    "PointsEarned": _earned,
    "PointsSpent": _spent,
    "PointsExpired": _expired,
    "PointsReversed": _reversed,
    "DebtRecovered": _recovered,
    "OrderRewarded": _order_rewarded,
    "OrderRewardReversed": _order_reversed,
    "TierChanged": _tier,
    "TaskProgressed": _task,
    "TaskCompleted": _task_done,
    "Rebound": _rebound,
    "Tagged": _tagged,
    "EnrolledAsDistributor": _enrolled,
    "ContactUpdated": _contact,
    "Forgotten": _forgotten,
}


# -- queries ----------------------------------------------------------------------------


def get_member(tx: Tx, member_id: str) -> dict[str, Any] | None:
    row = tx.fetchone(
        f"SELECT {', '.join(MEMBER_COLUMNS)} FROM members WHERE member_id = ?", (member_id,)
    )
    if row is None:
        return None
    record = dict(zip(MEMBER_COLUMNS, row, strict=True))
    record["tags"] = _unjson.decode(record["tags"])
    return record


def member_lots(tx: Tx, member_id: str, include_spent: bool = False) -> list[dict[str, Any]]:
    where = "" if include_spent else " AND remaining > 0"
    rows = tx.fetchall(
        f"SELECT {', '.join(LOT_COLUMNS)} FROM member_lots WHERE member_id = ?{where} "
        "ORDER BY expires_at, earned_at, lot_id",
        (member_id,),
    )
    return [dict(zip(LOT_COLUMNS, r, strict=True)) for r in rows]


def member_tasks(tx: Tx, member_id: str) -> list[dict[str, Any]]:
    rows = tx.fetchall(
        "SELECT task_id, progress, target, completed FROM member_tasks WHERE member_id = ? "
        "ORDER BY task_id",
        (member_id,),
    )
    return [
        {"task_id": t, "progress": int(p), "target": int(n), "completed": bool(c)}
        for t, p, n, c in rows
    ]


def members_with_lots_due(tx: Tx, at_iso: str, limit: int) -> list[str]:
    rows = tx.fetchall(
        "SELECT DISTINCT member_id FROM member_lots WHERE remaining > 0 AND expires_at <= ? "
        "ORDER BY member_id LIMIT ?",
        (at_iso, limit),
    )
    return [str(r[0]) for r in rows]


def members_due_for_evaluation(tx: Tx, held_since_iso: str, limit: int) -> list[str]:
    """Members whose tier was set at or before ``held_since_iso`` (UTC ISO)."""
    rows = tx.fetchall(
        "SELECT member_id FROM members WHERE tier_since IS NOT NULL AND tier_since <= ? "
        "ORDER BY member_id LIMIT ?",
        (held_since_iso, limit),
    )
    return [str(r[0]) for r in rows]


def tier_distribution(tx: Tx, scope_path: str | None) -> dict[str, int]:
    """Members per tier, within the subtree of ``scope_path`` (by bound store; None: all)."""
    if scope_path is None:
        rows = tx.fetchall("SELECT tier, COUNT(*) FROM members GROUP BY tier ORDER BY tier")
    else:
        prefix = scope_path + "/"
        rows = tx.fetchall(
            "SELECT tier, COUNT(*) FROM members WHERE bound_path = ? "
            "OR substr(bound_path, 1, ?) = ? GROUP BY tier ORDER BY tier",
            (scope_path, len(prefix), prefix),
        )
    return {str(t): int(n) for t, n in rows}
