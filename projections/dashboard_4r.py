"""Read model: the 4R dashboard (Recognize, Reach, Relationship, Return), for HQ and per
dealer subtree. Each figure's exact definition is in docs/4r.md; in short (days are
Asia/Shanghai calendar days, ``[from, to]`` both included, scope = a partner's subtree):

- Recognize: of the units sold over the counter (``Unit.Sold``) by stores in scope
  on days in the period, how many have been first-scanned by a member (at any time up
  to now), as a count and a share in basis points.
- Reach: members now bound to a store in scope, per store; members per referrer
  (distributor or clerk) in scope; HQ also sees the members bound to no store (online).
- Relationship: members in scope (by the store they are bound to) with
  an activity (a first consumer scan of a unit, or a paid order) in the period; of
  them, those with an activity in the period that came at most 30 (90) days after their
  previous activity; and the tier mix of the members now bound in scope.
- Return: GMV (paid minus refunded, on the day of each payment or refund) of the orders
  attributed to stores in scope, and the split income (shares booked minus shares
  reversed) of each partner in scope, per period.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

import msgspec

from domain.clock import SHANGHAI
from domain.identity import id_text
from domain.loyalty import OrderRewarded, Rebound, TierChanged
from domain.members import Member
from domain.orders import Order
from domain.tiers import DEFAULT_TIERS, TierPolicy
from domain.units import Unit
from projections.partners import partner_path, scope_clause
from projections.views import Tx, rows_in

_json = msgspec.json.Encoder()
_unjson = msgspec.json.Decoder(dict[str, Any])
REPEAT_WINDOWS_DAYS = (30, 90)
BP = 10_000


def _day(at: datetime) -> str:
    return at.astimezone(SHANGHAI).date().isoformat()


class Dashboard4RView:
    name: str = "dashboard_4r"
    follows: tuple[str, ...] = ("partners",)  # reads partner paths
    version: int = 1
    tables: dict[str, str] = {
        "r4_units": (
            "CREATE TABLE IF NOT EXISTS r4_units ("
            "unit_id TEXT PRIMARY KEY, store TEXT, path TEXT, sold_day TEXT, "
            "recognized INTEGER NOT NULL)"
        ),
        "r4_members": (
            "CREATE TABLE IF NOT EXISTS r4_members ("
            "member_id TEXT PRIMARY KEY, store TEXT, path TEXT, referrer TEXT, referrer_path TEXT, "
            "tier TEXT NOT NULL, last_at TEXT)"
        ),
        "r4_activity": (
            "CREATE TABLE IF NOT EXISTS r4_activity ("
            "member_id TEXT NOT NULL, position BIGINT NOT NULL, day TEXT NOT NULL, "
            "gap_days INTEGER, PRIMARY KEY (member_id, position))"
        ),
        "r4_orders": (
            "CREATE TABLE IF NOT EXISTS r4_orders ("
            "order_id TEXT PRIMARY KEY, id TEXT NOT NULL UNIQUE, member_id TEXT NOT NULL, "
            "store TEXT NOT NULL, path TEXT NOT NULL, split TEXT NOT NULL, "
            "receivers TEXT NOT NULL)"
        ),
        "r4_return": (
            "CREATE TABLE IF NOT EXISTS r4_return ("
            "partner TEXT NOT NULL, path TEXT NOT NULL, day TEXT NOT NULL, gmv BIGINT NOT NULL, "
            "income BIGINT NOT NULL, PRIMARY KEY (partner, day))"
        ),
        "r4_policy": (
            "CREATE TABLE IF NOT EXISTS r4_policy (id INTEGER PRIMARY KEY, lowest TEXT NOT NULL)"
        ),
    }
    indexes: tuple[str, ...] = (
        "CREATE INDEX IF NOT EXISTS r4_units_path ON r4_units (path, sold_day)",
        "CREATE INDEX IF NOT EXISTS r4_activity_day ON r4_activity (day)",
        "CREATE INDEX IF NOT EXISTS r4_return_path ON r4_return (path, day)",
    )
    topics: frozenset[str] = frozenset(
        {
            Unit.Sold.TOPIC,
            Unit.Scanned.TOPIC,
            Member.Joined.TOPIC,
            Member.Bound.TOPIC,
            Member.ReferrerSet.TOPIC,
            Rebound.TOPIC,
            TierChanged.TOPIC,
            TierPolicy.Published.TOPIC,
            OrderRewarded.TOPIC,
            Order.Placed.TOPIC,
            Order.Paid.TOPIC,
            Order.Refunded.TOPIC,
        }
    )

    def apply(self, tx: Tx, event: Any, position: int) -> None:
        oid = id_text(event.originator_id)
        if isinstance(event, Unit.Sold):
            tx.execute(
                "INSERT INTO r4_units (unit_id, store, path, sold_day, recognized) "
                "VALUES (?, ?, ?, ?, 0) ON CONFLICT (unit_id) DO UPDATE SET "
                "store = excluded.store, path = excluded.path, sold_day = excluded.sold_day",
                (oid, event.store, partner_path(tx, event.store), _day(event.timestamp)),
            )
        elif isinstance(event, Unit.Scanned):
            if event.code_kind == "consumer" and event.outcome == "first_scan":
                tx.execute(
                    "INSERT INTO r4_units (unit_id, recognized) VALUES (?, 1) "
                    "ON CONFLICT (unit_id) DO UPDATE SET recognized = 1",
                    (oid,),
                )
                if event.member_id is not None:
                    self._activity(tx, event.member_id, event.timestamp, position)
        elif isinstance(event, OrderRewarded):
            pass  # the order's payment is the activity (below), whatever it earned
        else:
            self._apply_member(tx, event, oid, position)

    def prepare(self, tx: Tx, events: list[tuple[Any, int]]) -> None:
        """The orders the batch pays or refunds, and the last activity of its scanning
        and paying members: one query each, not one per event."""
        members = {
            e.member_id
            for e, _ in events
            if isinstance(e, Unit.Scanned) and e.member_id is not None
        }
        placed = {
            id_text(e.originator_id): e.member_id for e, _ in events if isinstance(e, Order.Placed)
        }
        settled = [
            oid
            for e, _ in events
            if isinstance(e, (Order.Paid, Order.Refunded))
            and (oid := id_text(e.originator_id)) not in placed
        ]
        orders = _orders(tx, settled)
        members.update(placed.values())
        members.update(known[0] for known in orders.values() if known is not None)
        _last_seen(tx, members)
        _lowest(tx)

    def finish(self, tx: Tx) -> None:
        returns: dict[tuple[str, str], list[Any]] = tx.memo.pop("r4.return", {})
        tx.executemany(
            "INSERT INTO r4_return (partner, path, day, gmv, income) VALUES (?, ?, ?, ?, ?) "
            "ON CONFLICT (partner, day) DO UPDATE SET gmv = r4_return.gmv + excluded.gmv, "
            "income = r4_return.income + excluded.income",
            [(partner, path, day, gmv, income) for (partner, day), (path, gmv, income) in
             returns.items()],
        )  # fmt: skip
        tx.memo.pop("r4.ensured", None)
        last_seen: dict[str, str | None] = tx.memo.get("r4.last_at", {})
        tx.executemany(
            "UPDATE r4_members SET last_at = ? WHERE member_id = ?",
            [(last_seen[m], m) for m in sorted(tx.memo.pop("r4.active", ()))],
        )

    def _activity(self, tx: Tx, member: str, at: datetime, position: int) -> None:
        _ensure_member(tx, member)
        last_seen = _last_seen(tx, (member,))
        last = last_seen[member]
        gap = None if last is None else (at - datetime.fromisoformat(last)).days
        tx.execute(
            "INSERT INTO r4_activity (member_id, position, day, gap_days) "
            "VALUES (?, ?, ?, ?) ON CONFLICT (member_id, position) DO NOTHING",
            (member, position, _day(at), gap),
        )
        last_seen[member] = at.isoformat()
        tx.memo.setdefault("r4.active", set()).add(member)  # written by ``finish``

    def _apply_member(self, tx: Tx, event: Any, oid: str, position: int) -> None:
        if isinstance(event, TierPolicy.Published):
            tx.memo["r4.lowest"] = event.tiers[0][0]
            tx.execute(
                "INSERT INTO r4_policy (id, lowest) VALUES (1, ?) "
                "ON CONFLICT (id) DO UPDATE SET lowest = excluded.lowest",
                (event.tiers[0][0],),
            )
        elif isinstance(event, Member.Joined):
            _ensure_member(tx, oid)
        elif isinstance(event, (Member.Bound, Rebound)):
            tx.execute(
                "UPDATE r4_members SET store = ?, path = ? WHERE member_id = ?",
                (event.store, partner_path(tx, event.store), oid),
            )
        elif isinstance(event, Member.ReferrerSet):
            tx.execute(
                "UPDATE r4_members SET referrer = ?, referrer_path = ? WHERE member_id = ?",
                (event.referrer, partner_path(tx, event.referrer), oid),
            )
        elif isinstance(event, TierChanged):
            tx.execute("UPDATE r4_members SET tier = ? WHERE member_id = ?", (event.tier, oid))
        else:
            self._apply_order(tx, event, oid, position)

    def _apply_order(self, tx: Tx, event: Any, oid: str, position: int) -> None:
        orders: dict[str, tuple[Any, ...] | None] = tx.memo.setdefault("r4.orders", {})
        if isinstance(event, Order.Placed):
            orders[oid] = (
                event.member_id,
                event.store,
                partner_path(tx, event.store),
                dict(event.split),
                dict(event.receivers),
            )
            tx.execute(
                "INSERT INTO r4_orders (order_id, id, member_id, store, path, split, receivers) "
                "VALUES (?, ?, ?, ?, ?, ?, ?)",
                (
                    event.order_id,
                    oid,
                    event.member_id,
                    event.store,
                    partner_path(tx, event.store),
                    _json.encode(dict(event.split)).decode(),
                    _json.encode(dict(event.receivers)).decode(),
                ),
            )
            return
        known = _orders(tx, [oid])[oid]  # read in prepare, or now
        if known is None:
            return
        member, store, path, split, receivers = known
        day = _day(event.timestamp)
        if isinstance(event, Order.Paid):
            self._return(tx, store, path, day, event.amount, 0)
            for role, share in split.items():
                self._income(tx, receivers.get(role), day, int(share))
            self._activity(tx, member, event.timestamp, position)
        elif isinstance(event, Order.Refunded):
            self._return(tx, store, path, day, -event.amount, 0)
            for role, amount in event.reversed.items():
                self._income(tx, receivers.get(role), day, -int(amount))

    def _income(self, tx: Tx, partner: str | None, day: str, amount: int) -> None:
        if partner is None or amount == 0:
            return
        self._return(tx, partner, partner_path(tx, partner), day, 0, amount)

    def _return(self, tx: Tx, partner: str, path: str, day: str, gmv: int, income: int) -> None:
        """Summed per partner and day over the batch, written by ``finish`` (one row each)."""
        returns: dict[tuple[str, str], list[Any]] = tx.memo.setdefault("r4.return", {})
        sums = returns.get((partner, day))
        if sums is None:
            returns[(partner, day)] = [path, gmv, income]
        else:
            sums[1] += gmv
            sums[2] += income


def _orders(tx: Tx, ids: Iterable[str]) -> dict[str, tuple[Any, ...] | None]:
    """Orders by aggregate id (None: not placed here), remembered for the batch."""
    orders: dict[str, tuple[Any, ...] | None] = tx.memo.setdefault("r4.orders", {})
    missing = sorted({i for i in ids if i not in orders})
    rows = rows_in(
        tx, "SELECT id, member_id, store, path, split, receivers FROM r4_orders WHERE id", missing
    )
    found = {
        str(r[0]): (str(r[1]), str(r[2]), str(r[3]), _unjson.decode(r[4]), _unjson.decode(r[5]))
        for r in rows
    }
    orders.update({i: found.get(i) for i in missing})
    return orders


def _last_seen(tx: Tx, members: Iterable[str]) -> dict[str, str | None]:
    """Each member's last activity (None: none yet), remembered for the batch."""
    last_seen: dict[str, str | None] = tx.memo.setdefault("r4.last_at", {})
    missing = sorted({m for m in members if m not in last_seen})
    rows = rows_in(tx, "SELECT member_id, last_at FROM r4_members WHERE member_id", missing)
    found = {str(m): None if at is None else str(at) for m, at in rows}
    last_seen.update({m: found.get(m) for m in missing})
    return last_seen


def _lowest(tx: Tx) -> str:
    if "r4.lowest" not in tx.memo:
        row = tx.fetchone("SELECT lowest FROM r4_policy WHERE id = 1")
        tx.memo["r4.lowest"] = DEFAULT_TIERS.lowest.name if row is None else str(row[0])
    return str(tx.memo["r4.lowest"])


def _ensure_member(tx: Tx, member: str) -> None:
    """A member's row (a scan's unit event may come before the member's Joined)."""
    ensured: set[str] = tx.memo.setdefault("r4.ensured", set())
    if member in ensured:  # the batch's first insert stands (rows are never deleted)
        return
    ensured.add(member)
    lowest = _lowest(tx)
    tx.execute(
        "INSERT INTO r4_members (member_id, tier) VALUES (?, ?) ON CONFLICT (member_id) DO NOTHING",
        (member, lowest),
    )


# -- the figures -------------------------------------------------------------------------


def _share_bp(part: int, whole: int) -> int | None:
    return None if whole == 0 else part * BP // whole


def dashboard(tx: Tx, partner_path_: str, day_from: str, day_to: str) -> dict[str, Any]:
    """The four figures for the subtree of ``partner_path_`` over ``[day_from, day_to]``."""
    clause, params = scope_clause(partner_path_)
    is_root = "/" not in partner_path_
    return {
        "partner": partner_path_.rsplit("/", 1)[-1],
        "from": day_from,
        "to": day_to,
        "recognize": _recognize(tx, clause, params, day_from, day_to),
        "reach": _reach(tx, clause, params, is_root),
        "relationship": _relationship(tx, clause, params, day_from, day_to, is_root),
        "return": _returns(tx, clause, params, day_from, day_to),
    }


def _recognize(tx: Tx, clause: str, params: list[Any], a: str, b: str) -> dict[str, Any]:
    row = tx.fetchone(
        f"SELECT COUNT(*), COALESCE(SUM(recognized), 0) FROM r4_units WHERE {clause} "
        "AND sold_day >= ? AND sold_day <= ?",
        [*params, a, b],
    )
    sold, recognized = (0, 0) if row is None else (int(row[0]), int(row[1]))
    return {
        "sold_units": sold,
        "recognized_units": recognized,
        "share_bp": _share_bp(recognized, sold),
    }


def _reach(tx: Tx, clause: str, params: list[Any], is_root: bool) -> dict[str, Any]:
    stores = tx.fetchall(
        f"SELECT store, COUNT(*) FROM r4_members WHERE {clause} GROUP BY store ORDER BY store",
        params,
    )
    referrer_clause = clause.replace("path", "referrer_path")
    referrers = tx.fetchall(
        f"SELECT referrer, COUNT(*) FROM r4_members WHERE {referrer_clause} "
        "GROUP BY referrer ORDER BY referrer",
        params,
    )
    online = None
    if is_root:
        row = tx.fetchone("SELECT COUNT(*) FROM r4_members WHERE path IS NULL")
        online = 0 if row is None else int(row[0])
    by_store = {str(s): int(n) for s, n in stores}
    return {
        "members": sum(by_store.values()) + (online or 0),
        "by_store": by_store,
        "by_referrer": {str(r): int(n) for r, n in referrers},
        "online": online,
    }


def _relationship(
    tx: Tx, clause: str, params: list[Any], a: str, b: str, is_root: bool
) -> dict[str, Any]:
    scope = f"({clause}{' OR path IS NULL' if is_root else ''})"
    scope_params = list(params)
    joined = "r4_activity a JOIN r4_members m ON m.member_id = a.member_id"
    active_row = tx.fetchone(
        f"SELECT COUNT(DISTINCT a.member_id) FROM {joined} WHERE {scope} AND day >= ? AND day <= ?",
        [*scope_params, a, b],
    )
    active = 0 if active_row is None else int(active_row[0])
    repeats: dict[str, int] = {}
    for days in REPEAT_WINDOWS_DAYS:
        row = tx.fetchone(
            f"SELECT COUNT(DISTINCT a.member_id) FROM {joined} WHERE {scope} "
            "AND day >= ? AND day <= ? AND gap_days IS NOT NULL AND gap_days <= ?",
            [*scope_params, a, b, days],
        )
        repeats[f"repeat_{days}d"] = 0 if row is None else int(row[0])
    tiers = tx.fetchall(
        f"SELECT tier, COUNT(*) FROM r4_members WHERE {clause} GROUP BY tier ORDER BY tier",
        params,
    )
    return {
        "active_members": active,
        **repeats,
        **{
            f"repeat_{d}d_share_bp": _share_bp(repeats[f"repeat_{d}d"], active)
            for d in REPEAT_WINDOWS_DAYS
        },
        "tier_mix": {str(t): int(n) for t, n in tiers},
    }


def _returns(tx: Tx, clause: str, params: list[Any], a: str, b: str) -> dict[str, Any]:
    rows = tx.fetchall(
        f"SELECT partner, SUM(gmv), SUM(income) FROM r4_return WHERE {clause} "
        "AND day >= ? AND day <= ? GROUP BY partner ORDER BY partner",
        [*params, a, b],
    )
    gmv = sum(int(r[1]) for r in rows)
    return {
        "gmv": gmv,
        "split_income": {str(p): int(i) for p, _g, i in rows if int(i) != 0},
        "gmv_by_store": {str(p): int(g) for p, g, _i in rows if int(g) != 0},
    }
