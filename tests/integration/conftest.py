"""Fixtures of the integration tests: a store opened on each database."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from projections.store import Store


@pytest.fixture
def store(database_url: str) -> Iterator[Store]:
    opened = Store.open(database_url)
    try:
        yield opened
    finally:
        opened.close()


def every_idle_connection(pool: Any) -> list[Any]:
    """Takes every idle connection out of a psycopg pool (the caller puts them back)."""
    taken = []
    while pool.get_stats().get("pool_available", 0) > 0:
        taken.append(pool.getconn(timeout=5))
    return taken
