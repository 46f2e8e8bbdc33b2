"""Money as double entry: integer fen, hierarchical accounts, postings that sum to zero.

Every event that moves money carries its postings ``(account, asset, amount)``; the
amounts of each asset sum to zero within the event. That is asserted when the event
is made (here) and again when the postings projection applies it.

Accounts (one sign convention: money flows from one account to another; ``world:*``
accounts are the outside world and run negative or positive without limit):

- ``world:payments``: consumers' money coming in (negative by what was paid, net of
  refunds);
- ``store:<code>:collected``: the store's sub-merchant account at the payment provider,
  where 100% of a payment lands; the split is booked out of it in the same event, so
  it is a clearing account whose balance is zero unless a payment lacks its split;
- ``partner:<code>:pending`` / ``partner:<code>:available``: a partner's split income
  before and after the return window closed (may go negative: a visible debt);
- ``partner:<code>:withdrawal:requested`` / ``...:approved``: payouts on their way;
- ``world:payouts``: what was paid out to partners.

Besides orders and withdrawals, a completed clerk task pays its reward from the brand to
the clerk (``ClerkTaskProgress.RewardPaid``): ``partner:HQ:available`` ->
``partner:<clerk>:available``. A reward has no return window (a completed task is never
un-completed), so it is available at once, like settled income; the brand's available
income pays for it (and may go negative: a visible debt).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping

CURRENCY = "CNY"
WORLD_PAYMENTS = "world:payments"
WORLD_PAYOUTS = "world:payouts"
AMOUNT_FEN_MAX = 10_000_000_000  # 100 million yuan: the largest amount one order may carry

Posting = tuple[str, str, int]
Postings = tuple[Posting, ...]


class Unbalanced(AssertionError):
    """Postings that do not sum to zero: a bug, never a user's mistake."""


def pending(partner: str) -> str:
    return f"partner:{partner}:pending"


def available(partner: str) -> str:
    return f"partner:{partner}:available"


def withdrawal_requested(partner: str) -> str:
    return f"partner:{partner}:withdrawal:requested"


def withdrawal_approved(partner: str) -> str:
    return f"partner:{partner}:withdrawal:approved"


def collected(store: str) -> str:
    return f"store:{store}:collected"


def partner_of(account: str) -> tuple[str, str] | None:
    """``partner:S-1:pending`` -> ``("S-1", "pending")``; None for other accounts."""
    if not account.startswith("partner:"):
        return None
    _, code, bucket = account.split(":", 2)
    return code, bucket


def totals(postings: Iterable[Posting]) -> dict[str, int]:
    by_asset: dict[str, int] = defaultdict(int)
    for _account, asset, amount in postings:
        by_asset[asset] += amount
    return dict(by_asset)


def assert_balanced(postings: Iterable[Posting]) -> None:
    """Each asset's amounts sum to zero; no posting is empty or malformed."""
    listed = list(postings)
    for account, asset, amount in listed:
        if not account or ":" not in account or not asset or not isinstance(amount, int):
            raise Unbalanced(f"malformed posting {(account, asset, amount)!r}")
    unbalanced = {asset: total for asset, total in totals(listed).items() if total != 0}
    if unbalanced:
        raise Unbalanced(f"postings do not sum to zero: {unbalanced}")


def transfer(source: str, destination: str, amount: int) -> Postings:
    """Move ``amount`` fen from one account to another (nothing if zero)."""
    if amount == 0:
        return ()
    return ((source, CURRENCY, -amount), (destination, CURRENCY, amount))


def balanced(*groups: Iterable[Posting]) -> Postings:
    """Concatenate postings and assert they balance (the first of the two checks)."""
    postings = tuple(p for group in groups for p in group)
    assert_balanced(postings)
    return postings


def payment_postings(
    store: str, amount: int, shares: Mapping[str, int], receivers: Mapping[str, str]
) -> Postings:
    """100% into the store's account, then each share to its receiver's pending income."""
    return balanced(
        transfer(WORLD_PAYMENTS, collected(store), amount),
        *(transfer(collected(store), pending(receivers[role]), shares[role]) for role in shares),
    )


def refund_postings(
    store: str,
    amount: int,
    reversed_shares: Mapping[str, int],
    receivers: Mapping[str, str],
    settled: bool,
) -> Postings:
    """Each share reversed out of the income it sits in, back out to the consumer."""
    bucket = available if settled else pending
    return balanced(
        *(
            transfer(bucket(receivers[role]), collected(store), reversed_shares[role])
            for role in reversed_shares
        ),
        transfer(collected(store), WORLD_PAYMENTS, amount),
    )


def settlement_postings(net_shares: Mapping[str, int], receivers: Mapping[str, str]) -> Postings:
    """The return window closed: pending income becomes available."""
    return balanced(
        *(
            transfer(pending(receivers[role]), available(receivers[role]), net_shares[role])
            for role in net_shares
        )
    )


def task_reward_postings(brand: str, clerk: str, amount: int) -> Postings:
    """A completed clerk task's reward: the brand's available income to the clerk's."""
    assert amount > 0 and brand != clerk
    return balanced(transfer(available(brand), available(clerk), amount))
