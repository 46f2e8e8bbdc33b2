"""Read model: the general ledger. Every posting of every money event, one row each.

Balances, statements and the reconciliation report are queries over these tables
(projections/balances.py, statements.py, reconciliation.py); nothing is read by
replaying the store.

- ``ledger_postings``: (position, seq) -> account, asset, amount, the partner and
  bucket the account belongs to (if any), the order, the kind of event;
- ``ledger_entries``: one row per money event, and per fulfilment (kind
  ``fulfilment``, amount 0: no postings, but it starts a return window, so "as of T"
  must see it): its kind, order, stated amount, own time and the running maximum of
  the times of every entry up to it (the monotonic index that maps "as of T" to a
  position: see ``position_at``), and for
  events not about an order, why (``reason``) and the event that caused it (``ref``,
  ``<aggregate id>:<version>``): a clerk task's reward names its task and the task's
  ``Completed`` event;
- ``ledger_windows``: when each order's return window closes (known from the
  position that fulfilled it), for "available as of T", and the position that settled
  it (its pending shares net to zero from then on: a balance sums only the windows
  not yet settled, not every window in history);
- ``ledger_totals``: each partner's running sums of its pending and available
  postings, a row per position that changed them: a balance as of any position is
  one index lookup, plus the pending shares whose window had closed by then (see
  projections/balances.py), not a scan of every posting the partner ever had.
  ``siyu reconcile`` checks them against the postings.

The postings of each event are asserted to balance again here, before they are
written: an unbalanced event stops the projection (visible in /health) rather than
corrupting every balance after it.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

from domain.money import assert_balanced, partner_of
from domain.orders import Order
from domain.tasks import ClerkTaskProgress
from domain.withdrawals import PayoutAccount
from projections.views import Tx

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

KIND_OF: dict[type, str] = {
    Order.Paid: "payment",
    Order.Refunded: "refund",
    Order.Settled: "settlement",
    PayoutAccount.WithdrawalRequested: "withdrawal_requested",
    PayoutAccount.WithdrawalApproved: "withdrawal_approved",
    PayoutAccount.WithdrawalRejected: "withdrawal_rejected",
    PayoutAccount.WithdrawalPaid: "withdrawal_paid",
    ClerkTaskProgress.RewardPaid: "task_reward",
}
FULFILMENT = "fulfilment"  # an entry without postings: a return window starts (Order.Fulfilled)


def to_micros(at: datetime) -> int:
    assert at.tzinfo is not None, "times are timezone-aware"
    delta = at - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def from_micros(us: int) -> datetime:
    return datetime.fromtimestamp(us / 1_000_000, tz=UTC)


class LedgerPostings:
    name: str = "ledger"
    # 2: task rewards; reason and ref on entries. 3: running totals. 4: windows' settlement
    # 5: fulfilments in the time index (entries without postings)
    version: int = 5
    tables: dict[str, str] = {
        "ledger_postings": (
            "CREATE TABLE IF NOT EXISTS ledger_postings ("
            "position BIGINT NOT NULL, seq INTEGER NOT NULL, account TEXT NOT NULL, "
            "asset TEXT NOT NULL, amount BIGINT NOT NULL, partner TEXT, bucket TEXT, "
            "order_id TEXT, kind TEXT NOT NULL, PRIMARY KEY (position, seq))"
        ),
        "ledger_entries": (
            "CREATE TABLE IF NOT EXISTS ledger_entries ("
            "position BIGINT PRIMARY KEY, kind TEXT NOT NULL, order_id TEXT, "
            "amount BIGINT NOT NULL, at_us BIGINT NOT NULL, running_max_us BIGINT NOT NULL, "
            "reason TEXT, ref TEXT)"
        ),
        "ledger_windows": (
            "CREATE TABLE IF NOT EXISTS ledger_windows ("
            "order_id TEXT PRIMARY KEY, due_us BIGINT NOT NULL, position BIGINT NOT NULL, "
            "settled_position BIGINT)"
        ),
        "ledger_totals": (
            "CREATE TABLE IF NOT EXISTS ledger_totals ("
            "partner TEXT NOT NULL, position BIGINT NOT NULL, pending BIGINT NOT NULL, "
            "available BIGINT NOT NULL, PRIMARY KEY (partner, position))"
        ),
    }
    indexes: tuple[str, ...] = (
        "CREATE INDEX IF NOT EXISTS ledger_postings_partner ON ledger_postings (partner, position)",
        "CREATE INDEX IF NOT EXISTS ledger_postings_order ON ledger_postings (order_id)",
        "CREATE INDEX IF NOT EXISTS ledger_entries_time "
        "ON ledger_entries (running_max_us, position)",
        "CREATE INDEX IF NOT EXISTS ledger_entries_order ON ledger_entries (order_id)",
        # the windows a balance still sums: not settled (by then), closed by its horizon
        "CREATE INDEX IF NOT EXISTS ledger_windows_open ON ledger_windows (due_us) "
        "WHERE settled_position IS NULL",
        "CREATE INDEX IF NOT EXISTS ledger_windows_settled ON ledger_windows (settled_position)",
    )
    topics: frozenset[str] = frozenset(
        {cls.TOPIC for cls in KIND_OF} | {Order.Fulfilled.TOPIC}  # type: ignore[attr-defined]
    )

    def prepare(self, tx: Tx, events: list[tuple[Any, int]]) -> None:
        """What the batch builds on, read before any of its writes (no wait for them)."""
        _running_max(tx)
        partners = {
            owner[0]
            for event, _ in events
            for account, _asset, _amount in getattr(event, "postings", ())
            if (owner := partner_of(str(account))) is not None
        }
        _totals(tx, partners)

    def apply(self, tx: Tx, event: Any, position: int) -> None:
        if isinstance(event, Order.Fulfilled):
            _window(tx, event.order_id, event.due_at, position)
            # In the time index too (no postings, amount 0): a balance as of T counts
            # the windows known by position_at(T), and a window started after the last
            # money event before T would otherwise never be known as of T.
            _entry(tx, position, FULFILMENT, event.order_id, 0, event.timestamp, (None, None))
            return
        kind = KIND_OF.get(type(event))
        if kind is None:
            return
        postings = [tuple(p) for p in event.postings]
        assert_balanced(postings)  # the second of the two checks (the first: when made)
        order_id = getattr(event, "order_id", None)
        if isinstance(event, Order.Paid) and event.fulfilled and event.due_at is not None:
            _window(tx, event.order_id, event.due_at, position)
        if isinstance(event, Order.Settled):  # its pending shares now net to zero
            tx.execute(
                "UPDATE ledger_windows SET settled_position = ? WHERE order_id = ?",
                (position, event.order_id),
            )
        stated = _stated_amount(event)
        _entry(tx, position, kind, order_id, stated, event.timestamp, _reason(event))
        rows = []
        for seq, (account, asset, amount) in enumerate(postings):
            owner = partner_of(str(account))
            rows.append(
                (
                    position,
                    seq,
                    account,
                    asset,
                    amount,
                    None if owner is None else owner[0],
                    None if owner is None else owner[1],
                    order_id,
                    kind,
                )
            )
        tx.executemany(
            "INSERT INTO ledger_postings (position, seq, account, asset, amount, partner, bucket, "
            "order_id, kind) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            rows,
        )
        _add_to_totals(tx, rows, position)


_RUNNING_MAX = "ledger.running_max"
_TOTALS = "ledger.totals"  # partner -> [pending, available] after the batch's last event
BUCKETS = ("pending", "available")
PARTNERS_PER_QUERY = 100


def _totals(tx: Tx, partners: Iterable[str]) -> dict[str, list[int]]:
    """The partners' running totals as the batch goes (read once, then kept in memo)."""
    totals: dict[str, list[int]] = tx.memo.setdefault(_TOTALS, {})
    missing = sorted({p for p in partners if p not in totals})
    for start in range(0, len(missing), PARTNERS_PER_QUERY):
        part = missing[start : start + PARTNERS_PER_QUERY]
        # each partner's latest row by its own index lookup (a "position = MAX(...)"
        # filter made PostgreSQL walk every row of a busy partner: 130 ms a batch at 1M)
        latest = " UNION ALL ".join(
            f"SELECT * FROM (SELECT partner, pending, available FROM ledger_totals "
            f"WHERE partner = ? ORDER BY position DESC LIMIT 1) AS t{i}"
            for i in range(len(part))
        )
        rows = tx.fetchall(latest, part)
        found = {str(p): [int(pending), int(available)] for p, pending, available in rows}
        for p in part:
            totals[p] = found.get(p, [0, 0])
    return totals


def _add_to_totals(tx: Tx, postings: list[tuple[Any, ...]], position: int) -> None:
    """A new totals row for each partner whose pending or available postings moved."""
    moved: dict[str, list[int]] = {}
    for _pos, _seq, _account, _asset, amount, partner, bucket, _order, _kind in postings:
        if partner is not None and bucket in BUCKETS:
            moved.setdefault(partner, [0, 0])[BUCKETS.index(bucket)] += amount
    totals = _totals(tx, moved)
    for partner, (pending, available) in moved.items():
        now = totals[partner]
        now[0] += pending
        now[1] += available
    tx.executemany(
        "INSERT INTO ledger_totals (partner, position, pending, available) VALUES (?, ?, ?, ?)",
        [(partner, position, *totals[partner]) for partner in sorted(moved)],
    )


def _entry(
    tx: Tx,
    position: int,
    kind: str,
    order_id: str | None,
    stated: int,
    at: datetime,
    why: tuple[str | None, str | None],
) -> None:
    """The event's row in ``ledger_entries``, raising the running maximum of times."""
    at_us = to_micros(at)
    running_max = tx.memo[_RUNNING_MAX] = max(_running_max(tx), at_us)
    tx.execute(
        "INSERT INTO ledger_entries (position, kind, order_id, amount, at_us, running_max_us, "
        "reason, ref) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        (position, kind, order_id, stated, at_us, running_max, *why),
    )


def _running_max(tx: Tx) -> int:
    """The latest entry's running maximum of entry times (0: none), remembered for the
    batch (which raises it as it writes entries)."""
    if _RUNNING_MAX not in tx.memo:
        row = tx.fetchone(
            "SELECT running_max_us FROM ledger_entries ORDER BY position DESC LIMIT 1"
        )
        tx.memo[_RUNNING_MAX] = 0 if row is None else int(row[0])
    return int(tx.memo[_RUNNING_MAX])


def _stated_amount(event: Any) -> int:
    """What the event says moved: a payment's or refund's amount, a settlement's total."""
    if isinstance(event, Order.Settled):
        return sum(event.net.values())
    return int(event.amount)


def _reason(event: Any) -> tuple[str | None, str | None]:
    """Why money moved, for events that are not about an order, and the causing event."""
    if isinstance(event, ClerkTaskProgress.RewardPaid):
        return f"clerk task {event.task_id} completed", event.completion
    return None, None


def _window(tx: Tx, order_id: str, due_at: datetime, position: int) -> None:
    tx.execute(
        "INSERT INTO ledger_windows (order_id, due_us, position) VALUES (?, ?, ?) "
        "ON CONFLICT (order_id) DO NOTHING",
        (order_id, to_micros(due_at), position),
    )


POSITION_AT = (  # (also a subquery of the balance's first statement)
    "SELECT position FROM ledger_entries WHERE running_max_us <= ? "
    "ORDER BY running_max_us DESC, position DESC LIMIT 1"
)


def position_at(tx: Tx, at: datetime) -> int:
    """The last ledger position (a money event or a fulfilment) committed by ``at``: the
    highest position whose running maximum of event times is not after ``at`` (event
    times are taken before commit, commits follow positions, so that position was
    committed no earlier than its running maximum; the answer is always a prefix of the
    log)."""
    # The running maximum never decreases along the log, so the last entry in (running
    # maximum, position) order is that position: one step down the index. (MAX(position)
    # ... WHERE running_max_us <= ? walked the primary key back from the newest entry,
    # about 2 ms for a time half-way through a million events.)
    row = tx.fetchone(POSITION_AT, (to_micros(at),))
    return 0 if row is None or row[0] is None else int(row[0])


def last_position(tx: Tx) -> int:
    row = tx.fetchone("SELECT MAX(position) FROM ledger_entries")
    return 0 if row is None or row[0] is None else int(row[0])
