"""Code batches: N codes in ONE event; every code is derived from (key, batch number, index).

A batch number is claimed by a tiny ``BatchNumber`` aggregate saved in the same
transaction as the batch, so two batches can never share a number (the store's
primary key decides), and a scanned code leads back to its batch through it.
"""

from __future__ import annotations

import hashlib
import re
from datetime import datetime
from enum import StrEnum
from typing import Any

from eventsourcing.domain import Aggregate

from domain.codes import BATCH_NO_LIMIT, BATCH_SIZE_MAX
from domain.errors import InvalidInput
from domain.identity import batch_id, batch_number_id
from domain.principal import Principal, Role

BATCH_ID_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
BATCH_NUMBER_PROBES_MAX = 64


class CodeLevel(StrEnum):
    UNIT = "unit"
    CASE = "case"


def validate_batch_id(value: str) -> None:
    if not BATCH_ID_PATTERN.match(value):
        raise InvalidInput.field("batch_id", "1 to 64 of A-Z a-z 0-9 _ . - starting alphanumeric")


def validate_count(count: int) -> None:
    if not 1 <= count <= BATCH_SIZE_MAX:
        raise InvalidInput.field("count", f"1 to {BATCH_SIZE_MAX} codes per batch")


def batch_number_candidates(name: str) -> list[int]:
    """Where to look for a free batch number: a hash of the batch id, then the next ones."""
    start = int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "big") % BATCH_NO_LIMIT
    return [(start + i) % BATCH_NO_LIMIT for i in range(BATCH_NUMBER_PROBES_MAX)]


class BatchNumber(Aggregate):
    """Claims one batch number under one code key for one batch."""

    TOPIC = "siyu.BatchNumber"
    IMMUTABLE = True  # one event, never changed: commands may share a cached copy

    class Created(Aggregate.Created):
        """Unused: eventsourcing defines one per aggregate; ours is named in domain words."""

        TOPIC = "siyu.BatchNumber.Created"

    class Claimed(Aggregate.Created):
        TOPIC = "siyu.BatchNumber.Claimed"
        key_id: int
        batch_no: int
        batch_id: str

    def __init__(self, key_id: int, batch_no: int, batch_id: str) -> None:
        self.key_id = key_id
        self.batch_no = batch_no
        self.batch_id = batch_id

    @classmethod
    def claim(cls, key_id: int, batch_no: int, name: str, at: datetime) -> BatchNumber:
        return cls._create(
            cls.Claimed,
            id=batch_number_id(key_id, batch_no),
            timestamp=at,
            key_id=key_id,
            batch_no=batch_no,
            batch_id=name,
        )


class CodeBatch(Aggregate):
    TOPIC = "siyu.CodeBatch"
    IMMUTABLE = True  # one event, never changed: commands may share a cached copy

    class Created(Aggregate.Created):
        """Unused: eventsourcing defines one per aggregate; ours is named in domain words."""

        TOPIC = "siyu.CodeBatch.Created"

    class Issued(Aggregate.Created):
        TOPIC = "siyu.CodeBatch.Issued"
        batch_id: str
        sku: str
        gtin: str
        level: str
        count: int
        key_id: int
        batch_no: int
        by: str

    def __init__(
        self,
        batch_id: str,
        sku: str,
        gtin: str,
        level: str,
        count: int,
        key_id: int,
        batch_no: int,
        by: str,
    ) -> None:
        self.batch_id = batch_id
        self.sku = sku
        self.gtin = gtin
        self.level = CodeLevel(level)
        self.count = count
        self.key_id = key_id
        self.batch_no = batch_no

    @classmethod
    def issue(
        cls,
        name: str,
        sku: str,
        gtin: str,
        level: CodeLevel,
        count: int,
        key_id: int,
        batch_no: int,
        by: Principal,
        at: datetime,
    ) -> CodeBatch:
        by.require(Role.HQ, Role.FACTORY)
        validate_batch_id(name)
        validate_count(count)
        return cls._create(
            cls.Issued,
            id=batch_id(name),
            timestamp=at,
            batch_id=name,
            sku=sku,
            gtin=gtin,
            level=level.value,
            count=count,
            key_id=key_id,
            batch_no=batch_no,
            by=by.scope_key,
        )

    def content(self) -> dict[str, Any]:
        return {
            "batch_id": self.batch_id,
            "sku": self.sku,
            "count": self.count,
            "level": self.level.value,
        }
