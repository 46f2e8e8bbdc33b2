"""Every stored type, loaded: a process that reads the log resolves every topic.

eventsourcing resolves a stored topic (``siyu.Product.Listed``) to its class through a
registry filled when the class is defined, so the module that defines it must have been
imported. A command that only reads the log (``siyu relay``, a projection worker) would
otherwise depend on what it happened to import. ``Ledger`` loads these at construction.
"""

from __future__ import annotations

import importlib

STORED_TYPE_MODULES = (
    "domain.alerts",
    "domain.batches",
    "domain.catalog",
    "domain.channel",
    "domain.distributor_levels",
    "domain.draws",
    "domain.loyalty",
    "domain.members",
    "domain.orders",
    "domain.point_rules",
    "domain.policies",
    "domain.requests",
    "domain.tasks",
    "domain.tiers",
    "domain.tokens",
    "domain.units",
    "domain.withdrawals",
)


def load_stored_types() -> None:
    for module in STORED_TYPE_MODULES:
        importlib.import_module(module)
