"""Time is injected: production uses the wall clock, tests a clock they move."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

Clock = Callable[[], datetime]
SHANGHAI = ZoneInfo("Asia/Shanghai")


def system_clock() -> datetime:
    return datetime.now(tz=UTC)


class FixedClock:
    """A clock for tests and replays: returns ``now`` until moved."""

    def __init__(self, now: datetime) -> None:
        assert now.tzinfo is not None, "clock times must be timezone-aware"
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, delta: timedelta) -> None:
        self.now += delta
