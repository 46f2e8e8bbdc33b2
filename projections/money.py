"""The money read models, registered together in ``default_projections()``."""

from __future__ import annotations

from projections.engine import Projection


def money_projections() -> list[Projection]:
    from projections.ledger_postings import LedgerPostings
    from projections.orders_view import OrdersView

    return [LedgerPostings(), OrdersView()]
