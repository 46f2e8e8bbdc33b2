"""Point-in-polygon over county-level units, with a two-level spatial index.

* A coarse grid of ``CELL``-degree cells maps to the units whose bounding box
  touches the cell (the candidates).
* Each unit keeps its ring edges split into horizontal bands ``BAND`` degrees
  high. An even-odd ray cast along the point's latitude only meets edges whose
  latitude range holds that latitude, and all of them are in the point's band,
  so a test reads a handful of edges instead of the whole outline.

Edges are stored flat in ``array('d')`` as ``ylo, yhi, x_at_ylo, x_at_yhi``.
"""

from __future__ import annotations

import math
from array import array
from collections.abc import Iterable
from dataclasses import dataclass
from itertools import accumulate

BAND = 0.05  # degrees of latitude per edge band
CELL = 0.25  # degrees per candidate-grid cell
SNAP_M = 1000.0  # a point in no polygon snaps to a unit whose edge is this close
_M_PER_DEG = 111_195.0


def band_of(lat: float) -> int:
    return math.floor((lat + 90.0) / BAND)


def cell_of(lng: float, lat: float) -> tuple[int, int]:
    return math.floor((lng + 180.0) / CELL), math.floor((lat + 90.0) / CELL)


@dataclass(frozen=True, slots=True)
class RingSource:
    """Where a unit's rings sit in the shared int32 delta stream."""

    deltas: array[int]
    offset: int  # index of the unit's first int
    lengths: tuple[int, ...]  # vertices per ring
    scale: float

    def rings(self) -> Iterable[list[tuple[float, float]]]:
        pos = self.offset
        for n in self.lengths:
            chunk = self.deltas[pos : pos + 2 * n]
            pos += 2 * n
            xs = accumulate(chunk[0::2])
            ys = accumulate(chunk[1::2])
            yield [(x / self.scale, y / self.scale) for x, y in zip(xs, ys, strict=True)]


@dataclass(slots=True)
class Unit:
    """One county-level unit: code, bounding box, edges banded on first use."""

    code: str
    minx: float
    miny: float
    maxx: float
    maxy: float
    source: RingSource | None = None
    _bands: dict[int, array[float]] | None = None

    @property
    def bands(self) -> dict[int, array[float]]:
        if self._bands is None:
            self._bands = self._build_bands()
        return self._bands

    def _build_bands(self) -> dict[int, array[float]]:
        bands: dict[int, array[float]] = {}
        for ring in self.source.rings() if self.source else ():
            for i, (xb, yb) in enumerate(ring):
                xa, ya = ring[i - 1]
                if ya == yb:
                    continue
                edge = (ya, yb, xa, xb) if ya < yb else (yb, ya, xb, xa)
                for band in range(band_of(edge[0]), band_of(edge[1]) + 1):
                    bands.setdefault(band, array("d")).extend(edge)
        return bands

    def contains(self, x: float, y: float) -> bool:
        """Even-odd rule over every ring of the unit (holes and islands included)."""
        if not (self.minx <= x <= self.maxx and self.miny <= y <= self.maxy):
            return False
        edges = self.bands.get(band_of(y))
        if edges is None:
            return False
        inside = False
        it = iter(edges)
        for ylo, yhi, xa, xb in zip(it, it, it, it, strict=True):
            if not (ylo <= y < yhi) or (x >= xa and x >= xb):
                continue
            if (x < xa and x < xb) or x < xa + (y - ylo) * (xb - xa) / (yhi - ylo):
                inside = not inside
        return inside

    def distance_m(self, x: float, y: float, reach_deg: float) -> float:
        """Distance in metres to the nearest edge within ``reach_deg`` latitude."""
        kx = math.cos(math.radians(y))
        best = math.inf
        seen: set[tuple[float, float, float, float]] = set()
        for b in range(band_of(y - reach_deg), band_of(y + reach_deg) + 1):
            edges = self.bands.get(b, array("d"))
            it = iter(edges)
            for edge in zip(it, it, it, it, strict=True):
                if edge not in seen:
                    seen.add(edge)
                    best = min(best, _seg_dist(x, y, edge, kx))
        return best * _M_PER_DEG


def _seg_dist(x: float, y: float, edge: tuple[float, float, float, float], kx: float) -> float:
    """Equirectangular distance (degrees of latitude) from a point to an edge."""
    ylo, yhi, xa, xb = edge
    ax, ay, bx, by = (xa - x) * kx, ylo - y, (xb - x) * kx, yhi - y
    dx, dy = bx - ax, by - ay
    den = dx * dx + dy * dy
    t = 0.0 if den == 0 else max(0.0, min(1.0, -(ax * dx + ay * dy) / den))
    return math.hypot(ax + t * dx, ay + t * dy)


class RegionIndex:
    """Candidate grid over ``Unit`` objects."""

    def __init__(self, units: Iterable[Unit]) -> None:
        self.units = sorted(units, key=lambda u: (u.maxx - u.minx) * (u.maxy - u.miny))
        self.grid: dict[tuple[int, int], list[Unit]] = {}
        for unit in self.units:
            (cx0, cy0), (cx1, cy1) = cell_of(unit.minx, unit.miny), cell_of(unit.maxx, unit.maxy)
            for cx in range(cx0, cx1 + 1):
                for cy in range(cy0, cy1 + 1):
                    self.grid.setdefault((cx, cy), []).append(unit)

    def lookup(self, lng: float, lat: float) -> str | None:
        for unit in self.grid.get(cell_of(lng, lat), ()):
            if unit.contains(lng, lat):
                return unit.code
        return self._snap(lng, lat)

    def _snap(self, lng: float, lat: float) -> str | None:
        """Points in no polygon (coast, simplification slivers): nearest unit within SNAP_M."""
        reach = SNAP_M / _M_PER_DEG
        rx = reach / max(math.cos(math.radians(lat)), 0.01)
        (cx0, cy0), (cx1, cy1) = cell_of(lng - rx, lat - reach), cell_of(lng + rx, lat + reach)
        near = {
            u.code: u
            for cx in range(cx0, cx1 + 1)
            for cy in range(cy0, cy1 + 1)
            for u in self.grid.get((cx, cy), ())
        }
        best, code = SNAP_M, None
        for unit in near.values():
            d = unit.distance_m(lng, lat, reach)
            if d <= best:
                best, code = d, unit.code
        return code
