"""Offline "WGS-84 location -> Chinese administrative region code" (GB/T 2260 style).

``region_of`` does point-in-polygon over packaged county-level boundaries
(see docs/region-data.md for source, licence and accuracy). The data is
loaded lazily on first use (``preload()`` to do it at start-up).

Codes: province ``"31"``, prefecture ``"3101"``, county ``"310104"``.
Hong Kong, Macau and Taiwan have no county codes in GB/T 2260: points there
resolve to ``"810000"``, ``"820000"``, ``"710000"``.

Territory semantics (``code_within``) are plain prefixes, with two caveats:

* Municipalities (Beijing 11, Tianjin 12, Shanghai 31, Chongqing 50) have
  GB/T 2260 grouping rows ``xx01`` (districts) and, for Chongqing, ``5002``
  (counties). ``"5001"`` therefore does not cover the counties 5002xx; use
  the 2-digit code (``"50"``) for the whole municipality.
* County-level units administered directly by a province (Hubei 4290xx,
  Henan 4190xx, Hainan 4690xx, Xinjiang 6590xx) sit under the grouping row
  ``xx90``, not under any prefecture: ``"4290"`` covers Xiantao, Qianjiang,
  Tianmen and Shennongjia together, ``"4201"`` (Wuhan) covers none of them.
  Grant one of them alone with its 6-digit code.

6-digit territory codes ending in ``0000`` / ``00`` are read as the province /
prefecture they name (``"310000"`` == ``"31"``, ``"310100"`` == ``"3101"``).
"""

from __future__ import annotations

from domain.region._data import load
from domain.region._gcj import gcj02_to_wgs84, wgs84_to_gcj02

__all__ = [
    "code_within",
    "gcj02_to_wgs84",
    "is_region_code",
    "preload",
    "region_name",
    "region_of",
    "wgs84_to_gcj02",
]


def preload() -> None:
    """Load the boundary data now rather than on the first lookup."""
    load()


def region_of(lat: float, lng: float) -> str | None:
    """6-digit county-level code of the unit containing a WGS-84 point, None outside China."""
    if not (-90.0 <= lat <= 90.0 and -180.0 <= lng <= 180.0):
        return None
    return load().index.lookup(lng, lat)


def is_region_code(code: str) -> bool:
    """True for a province (2), prefecture (4) or county (6 digit) code in the data set."""
    return code in load().names


def region_name(code: str) -> str | None:
    """Chinese name of a province / prefecture / county code, None if unknown."""
    return load().names.get(code)


def _territory_prefix(territory_code: str) -> str:
    t = territory_code
    if len(t) not in (2, 4, 6) or not t.isascii() or not t.isdigit():
        raise ValueError(f"territory code must be 2, 4 or 6 digits: {territory_code!r}")
    if len(t) == 6 and t.endswith("0000"):
        return t[:2]
    if len(t) == 6 and t.endswith("00"):
        return t[:4]
    return t


def code_within(code6: str, territory_code: str) -> bool:
    """Whether county code ``code6`` lies in the territory (prefix semantics, see module doc)."""
    if len(code6) != 6 or not code6.isascii() or not code6.isdigit():
        raise ValueError(f"county code must be 6 digits: {code6!r}")
    return code6.startswith(_territory_prefix(territory_code))
