"""Lazy loading of the packaged boundary data (``data/regions.json.gz``)."""

from __future__ import annotations

import functools
import gzip
import json
import sys
from array import array
from dataclasses import dataclass
from importlib import resources
from typing import Any

from domain.region._index import RegionIndex, RingSource, Unit

DATA_FILE = "regions.json.gz"


@dataclass(frozen=True, slots=True)
class RegionData:
    index: RegionIndex
    names: dict[str, str]
    source: dict[str, Any]


def read_raw() -> tuple[dict[str, Any], array[int]]:
    """The JSON header line and the int32 coordinate-delta stream."""
    blob = resources.files("domain.region.data").joinpath(DATA_FILE).read_bytes()
    head, _, body = gzip.decompress(blob).partition(b"\n")
    deltas = array("i")
    deltas.frombytes(body)
    if sys.byteorder == "big":
        deltas.byteswap()
    header: dict[str, Any] = json.loads(head)
    return header, deltas


def _units(header: dict[str, Any], deltas: array[int]) -> list[Unit]:
    scale = float(header["scale"])
    units: list[Unit] = []
    offset = 0
    for code, bbox, lengths in header["units"]:
        minx, miny, maxx, maxy = (v / scale for v in bbox)
        src = RingSource(deltas, offset, tuple(lengths), scale)
        units.append(Unit(code, minx, miny, maxx, maxy, src))
        offset += 2 * sum(lengths)
    return units


@functools.cache
def load() -> RegionData:
    """Parse the data set once per process; unit edges are banded on first use."""
    header, deltas = read_raw()
    index = RegionIndex(_units(header, deltas))
    return RegionData(index, dict(header["names"]), dict(header["source"]))
