"""Every controller of orders, splits and the ledger (registered in api/app.py)."""

from __future__ import annotations

from typing import Any

from api.routes.balances import (
    BalanceController,
    PartnerMoneyController,
    ReconciliationController,
    SettlementController,
)
from api.routes.orders import OrderController, SplitPolicyController

MONEY_ROUTES: list[Any] = [
    OrderController,
    SplitPolicyController,
    BalanceController,
    PartnerMoneyController,
    ReconciliationController,
    SettlementController,
]
