"""Fixtures of the integration tests: a store opened on each database."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from projections.store import Store


@pytest.fixture
def store(database_url: str) -> Iterator[Store]:
    opened = Store.open(database_url)
    try:
        yield opened
    finally:
        opened.close()
