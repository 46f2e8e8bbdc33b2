"""State carried forward: a long-lived aggregate restates its whole state in its own stream.

An aggregate that only grows (a distributor's standing: an event per sale attributed to
it) would cost a command more the longer it lives, since every one of its events is read
and applied before deciding: 121 events took 0.62 ms of the client's CPU to load, a unit's
three 0.17 ms (round 14, docs/performance.md). Such a class names ``CARRY_FORWARD_EVERY``
and a ``CarriedForward`` event holding its state field by field. When a command takes its
version past a multiple of that number, the command also records the state carried
forward (``carry_forward_where_due``), in the same transaction. The store reads an
aggregate from its newest carried-forward event on (``projections.store``): a command
reads at most about ``CARRY_FORWARD_EVERY`` of its events, however old it is.

A carried-forward event is an ordinary event: in the log, hash-chained, replayed, shown in
the event feed. Read first, it makes the aggregate (``mutate(None)``); applied to the
aggregate made from the earlier events (a full replay, time travel, eventsourcing's
repository), it is compared with it field by field, and a difference raises
``CarriedForwardMismatch``: a restatement that does not restate is never used silently.

Every carried-forward topic ends with ``SUFFIX``: the store finds the newest one by it.
"""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Iterable
from datetime import datetime
from typing import Any, ClassVar

from eventsourcing.domain import Aggregate, OriginatorIDError, OriginatorVersionError
from eventsourcing.utils import resolve_topic

SUFFIX = ".CarriedForward"
_BASE_FIELDS = frozenset({"originator_id", "originator_version", "timestamp", "created_on"})
_BASE_ATTRIBUTES = frozenset({"_id", "_version", "_created_on", "_modified_on", "_pending_events"})


class CarriedForwardMismatch(Exception):
    """A carried-forward event states something its aggregate's earlier events do not."""


class CarriedForward(Aggregate.Event):
    """The aggregate's state as of this event (subclasses declare its fields, typed)."""

    TOPIC: ClassVar[str]
    created_on: datetime  # the aggregate's, which its first event set

    @classmethod
    def state_fields(cls) -> tuple[str, ...]:
        return tuple(f.name for f in dataclasses.fields(cls) if f.name not in _BASE_FIELDS)

    @classmethod
    def aggregate_class(cls) -> type[Aggregate]:
        found: type[Aggregate] = resolve_topic(cls.TOPIC.removesuffix(SUFFIX))
        return found

    def mutate(self, aggregate: Any) -> Any:
        if aggregate is None:  # the read starts here: the aggregate as it was then
            cls = self.aggregate_class()
            made: Any = cls.__new__(cls)
            made.__base_init__(self.originator_id, self.originator_version, self.created_on)
            made._modified_on = self.timestamp
            for name in self.state_fields():  # a copy: the aggregate changes, the event not
                setattr(made, name, copy.deepcopy(getattr(self, name)))
            return made
        if self.originator_id != aggregate.id:
            raise OriginatorIDError(self.originator_id, aggregate.id)
        if self.originator_version != aggregate.version + 1:
            raise OriginatorVersionError(self.originator_version, aggregate.version + 1)
        differs = [
            name
            for name in ("created_on", *self.state_fields())
            if getattr(aggregate, name) != getattr(self, name)
        ]
        if differs:
            raise CarriedForwardMismatch(
                f"{type(aggregate).__name__} {aggregate.id} version {self.originator_version}"
                f" restates {', '.join(differs)} otherwise than its earlier events"
            )
        aggregate._version = self.originator_version
        aggregate._modified_on = self.timestamp
        return aggregate


def state_of(aggregate: Aggregate) -> dict[str, Any]:
    """The aggregate's own attributes (not eventsourcing's: id, version, times)."""
    return {k: v for k, v in vars(aggregate).items() if k not in _BASE_ATTRIBUTES}


def _due(aggregate: Aggregate, every: int) -> bool:
    """Did this command's events take the version past a multiple of ``every`` since the
    state was last carried forward (events not yet saved may already carry it)?"""
    pending = aggregate.pending_events
    if not pending or isinstance(pending[-1], CarriedForward):
        return False
    carried = [e.originator_version for e in pending if isinstance(e, CarriedForward)]
    before = carried[-1] if carried else pending[0].originator_version - 1
    return aggregate.version // every > before // every


def carry_forward_where_due(aggregates: Iterable[Aggregate], now: datetime) -> None:
    """Record the state carried forward of each changed aggregate that is due."""
    for aggregate in aggregates:
        every: int | None = getattr(type(aggregate), "CARRY_FORWARD_EVERY", None)
        if every is None or not _due(aggregate, every):
            continue
        event_class: type[CarriedForward] = type(aggregate).CarriedForward  # type: ignore[attr-defined]
        state = copy.deepcopy(state_of(aggregate))  # as of now: the aggregate changes on
        assert set(state) == set(event_class.state_fields()), (
            f"{type(aggregate).__name__}.CarriedForward states every attribute"
        )
        aggregate.trigger_event(
            event_class, timestamp=now, created_on=aggregate.created_on, **state
        )
