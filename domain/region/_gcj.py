"""WGS-84 <-> GCJ-02 ("Mars coordinates", used by Amap, Tencent and WeChat)."""

from __future__ import annotations

import math

_A = 6378245.0  # Krasovsky 1940 semi-major axis used by the GCJ-02 formula
_EE = 0.00669342162296594323  # its first eccentricity squared
_TOLERANCE_DEG = 1e-10  # about 0.01 mm; the inversion stops below this
_MAX_ITERATIONS = 30


def out_of_china(lat: float, lng: float) -> bool:
    """The rectangle outside which GCJ-02 applies no offset (the usual convention)."""
    return not (72.004 <= lng <= 137.8347 and 0.8293 <= lat <= 55.8271)


def _raw_lat(x: float, y: float) -> float:
    r = -100.0 + 2.0 * x + 3.0 * y + 0.2 * y * y + 0.1 * x * y + 0.2 * math.sqrt(abs(x))
    r += (20.0 * math.sin(6.0 * x * math.pi) + 20.0 * math.sin(2.0 * x * math.pi)) * 2.0 / 3.0
    r += (20.0 * math.sin(y * math.pi) + 40.0 * math.sin(y / 3.0 * math.pi)) * 2.0 / 3.0
    r += (160.0 * math.sin(y / 12.0 * math.pi) + 320 * math.sin(y * math.pi / 30.0)) * 2.0 / 3.0
    return r


def _raw_lng(x: float, y: float) -> float:
    r = 300.0 + x + 2.0 * y + 0.1 * x * x + 0.1 * x * y + 0.1 * math.sqrt(abs(x))
    r += (20.0 * math.sin(6.0 * x * math.pi) + 20.0 * math.sin(2.0 * x * math.pi)) * 2.0 / 3.0
    r += (20.0 * math.sin(x * math.pi) + 40.0 * math.sin(x / 3.0 * math.pi)) * 2.0 / 3.0
    r += (150.0 * math.sin(x / 12.0 * math.pi) + 300.0 * math.sin(x / 30.0 * math.pi)) * 2.0 / 3.0
    return r


def _offset(lat: float, lng: float) -> tuple[float, float]:
    """GCJ-02 minus WGS-84, in degrees, at a WGS-84 point."""
    x, y = lng - 105.0, lat - 35.0
    rad = lat / 180.0 * math.pi
    magic = 1 - _EE * math.sin(rad) ** 2
    sqrt_magic = math.sqrt(magic)
    dlat = _raw_lat(x, y) * 180.0 / ((_A * (1 - _EE)) / (magic * sqrt_magic) * math.pi)
    dlng = _raw_lng(x, y) * 180.0 / (_A / sqrt_magic * math.cos(rad) * math.pi)
    return dlat, dlng


def wgs84_to_gcj02(lat: float, lng: float) -> tuple[float, float]:
    """Forward GCJ-02 transform; points outside China are returned unchanged."""
    if out_of_china(lat, lng):
        return lat, lng
    dlat, dlng = _offset(lat, lng)
    return lat + dlat, lng + dlng


def gcj02_to_wgs84(lat: float, lng: float) -> tuple[float, float]:
    """Invert GCJ-02 by fixed-point iteration (converges to ~1e-10 deg in a few steps)."""
    wlat, wlng = lat, lng
    for _ in range(_MAX_ITERATIONS):
        glat, glng = wgs84_to_gcj02(wlat, wlng)
        elat, elng = glat - lat, glng - lng
        wlat, wlng = wlat - elat, wlng - elng
        if abs(elat) < _TOLERANCE_DEG and abs(elng) < _TOLERANCE_DEG:
            break
    return wlat, wlng
