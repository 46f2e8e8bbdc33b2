"""Projection workers: the read models split over several processes.

One engine applies every read model in one transaction per batch; on a machine with
idle cores most of that time is one interpreter's. ``siyu project --workers N`` and
``siyu replay --workers N`` run N engines in N processes, each with its own group of
read models, its own positions rows (locked per batch by that engine only) and its own
connection: their Python runs on separate cores, and PostgreSQL works for all of them.

A read model that reads another's tables declares it (``follows``): its engine applies
no event the followed model has not applied (``Engine.waiting_for``). Followed read
models go to the first group, and must not follow anything themselves, so no two
workers wait for each other.

The groups are balanced by each read model's measured cost (``COST``; unknown models
count 1). Every read model is in exactly one group, and each group keeps the order of
the full list (the partner directory first).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TypeVar

from projections.engine import Projection

P = TypeVar("P", bound=Projection)

WORKERS_MAX = 8
COST: dict[str, int] = {
    # Measured (round 10, a 202k-event bulk store from make bench's loader, PostgreSQL):
    # the CPU (the worker's interpreter and its PostgreSQL backend together) of each read
    # model's catch-up of 60,000 events beside the partner directory, less the
    # directory's alone (0.9 s: start-up, reading and decoding the log), in units of
    # about 0.07 s; two runs each.
    "trace": 20,
    "dashboard_4r": 10,
    "members": 8,
    "chain": 7,
    "time_index": 5,
    "inventory": 5,
    "ledger": 3,
    "points_history": 3,
    "sell_through": 1,
    "orders": 1,
    "loyalty_programs": 1,
    "alerts": 1,
    "partners": 1,
}


def followed(projections: Sequence[Projection]) -> set[str]:
    return {f for p in projections for f in getattr(p, "follows", ())}


def worker_groups(projections: Sequence[P], workers: int) -> list[list[P]]:
    """``projections`` split into at most ``workers`` non-empty groups (see the module)."""
    assert 1 <= workers <= WORKERS_MAX
    names = {p.name for p in projections}
    leaders = followed(projections)
    assert leaders <= names, f"followed read models missing: {sorted(leaders - names)}"
    for p in projections:
        if p.name in leaders:
            assert not getattr(p, "follows", ()), f"{p.name} is followed and follows"
    load = [0] * workers
    group_of: dict[str, int] = {}
    for name in leaders:
        group_of[name] = 0
        load[0] += COST.get(name, 1)
    # Heaviest first, each to the lightest group (ties: the lowest number).
    rest = sorted(
        (p for p in projections if p.name not in leaders),
        key=lambda p: (-COST.get(p.name, 1), p.name),
    )
    for p in rest:
        k = min(range(workers), key=lambda i: (load[i], i))
        group_of[p.name] = k
        load[k] += COST.get(p.name, 1)
    groups = [[p for p in projections if group_of[p.name] == k] for k in range(workers)]
    return [g for g in groups if g]


def parse_group(text: str) -> tuple[int, int]:
    """``"K/N"`` (1-based K) -> (K - 1, N); ValueError if it is not one."""
    k, _, n = text.partition("/")
    index, count = int(k), int(n)
    if not 1 <= index <= count <= WORKERS_MAX:
        raise ValueError(f"not a worker group K/N with 1 <= K <= N <= {WORKERS_MAX}: {text!r}")
    return index - 1, count


def worker_share(projections: Sequence[P], index: int, workers: int) -> tuple[list[P], list[P]]:
    """The read models worker ``index`` (0-based) of ``workers`` runs, and the others'."""
    groups = worker_groups(projections, workers)
    if index >= len(groups):
        return [], list(projections)
    mine = {p.name for p in groups[index]}
    return groups[index], [p for p in projections if p.name not in mine]


def with_followed(projections: Sequence[P], chosen: Sequence[P]) -> list[P]:
    """``chosen`` and the read models they follow, in the order of ``projections``."""
    names = {p.name for p in chosen} | followed(chosen)
    return [p for p in projections if p.name in names]
