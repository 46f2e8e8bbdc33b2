"""``python -m bench`` (``make bench``): every metric on PostgreSQL and on SQLite, a table
on stdout, ``bench/results.json``. The default sizes are the issue's
(``BENCH_SIZES=quick``: a 40k-event backlog, about 3 minutes; ``smoke``: seconds)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench import baselines, pg, suite, wrk
from bench.metrics import Metric, median, table
from bench.suite import PRESETS, SQLITE, say

# BENCH_RESULTS: another file (the smoke test writes its own, not the real run's)
RESULTS = Path(os.environ.get("BENCH_RESULTS") or Path(__file__).with_name("results.json"))
REPO = Path(__file__).resolve().parents[1]
ES_CALLS = 50  # x 100 events per repeat

TARGETS: dict[str, tuple[str, Any]] = {
    "scan_http_per_s": (">= 2000", lambda v: v >= 2000),
    "scan_http_p99_ms": ("<= 100", lambda v: v <= 100),
    "payment_http_per_s": (">= 1000", lambda v: v >= 1000),
    "logistics_events_per_s": (">= 30000", lambda v: v >= 30000),
    "projection_events_per_s": (">= 20000", lambda v: v >= 20000),
    "replay_events_per_s": (">= 17000", lambda v: v >= 17000),
    "balance_read_p99_ms": ("<= 10", lambda v: v <= 10),
    "trace_read_p99_ms": ("<= 10", lambda v: v <= 10),
    "api_rss_mb_max": ("<= 300", lambda v: v <= 300),
}
# the write workloads' targets as rates: what one operation may cost, all cores together
RATE_TARGETS = {
    "scan_http_per_s": ("scan", 2000),
    "logistics_events_per_s": ("unit-event", 30000),
    "payment_http_per_s": ("order + payment", 1000),
}
ORDER = [
    "baseline_copy_rows_per_s", "baseline_es_events_per_s", "scan_http_per_s",
    "scan_http_p99_ms", "logistics_events_per_s", "payment_http_per_s",
    "projection_events_per_s", "replay_events_per_s", "balance_read_p99_ms",
    "trace_read_p99_ms", "codes_issue_1m_s", "api_rss_mb_max", "bulk_load_events_per_s",
    *(f"{name}{suite.LARGE}" for name in (
        "scan_http_per_s", "scan_http_p99_ms", "logistics_events_per_s", "payment_http_per_s",
        "api_rss_mb_max",
    )),
]  # fmt: skip


def git_commit() -> str:
    done = subprocess.run(
        ["git", "rev-parse", "HEAD"], cwd=REPO, capture_output=True, text=True, check=False
    )
    return done.stdout.strip() or "unknown"


def git_dirty() -> bool:
    """Uncommitted changes outside bench/ (the measured code is not exactly HEAD)."""
    done = subprocess.run(
        ["git", "status", "--porcelain", "--", ".", ":!bench"],
        cwd=REPO, capture_output=True, text=True, check=False,
    )  # fmt: skip
    return bool(done.stdout.strip())


def run_postgresql(sizes: suite.Sizes, workdir: Path) -> dict[str, Metric]:
    out: dict[str, Metric] = {}
    with pg.scratch_database() as db:
        copy = out["baseline_copy_rows_per_s"] = Metric(
            "baseline_copy_rows_per_s", "rows/s",
            note=f"psycopg COPY of {baselines.COPY_ROWS:,} rows (uuid, version, 40-char topic, "
            "200-byte payload), primary key (uuid, version), unique index on a bigserial",
        )  # fmt: skip
        es = out["baseline_es_events_per_s"] = Metric(
            "baseline_es_events_per_s", "events/s",
            note=f"bare eventsourcing Application (postgres module): {ES_CALLS} saves of 100 "
            "small events (10 new aggregates x 10 events) per repeat",
        )  # fmt: skip
        for _ in range(sizes.repeats):
            copy.values.append(baselines.copy_rows_per_s(db))
            es.values.append(baselines.es_events_per_s(baselines.pg_env(db), ES_CALLS))
        say(f"baselines: COPY {copy.value:,.0f} rows/s, eventsourcing {es.value:,.0f} events/s")
    with pg.scratch_database() as db:
        suite.http_metrics(pg.url_of(db), workdir, sizes, out)
    with pg.scratch_database() as db:
        suite.bulk_metrics(pg.url_of(db), workdir, sizes, out)
    return out


def run_sqlite(sizes: suite.Sizes, workdir: Path) -> dict[str, Metric]:
    out: dict[str, Metric] = {}
    es = out["baseline_es_events_per_s"] = Metric(
        "baseline_es_events_per_s", "events/s",
        note=f"bare eventsourcing Application (sqlite module): {ES_CALLS} saves of 100 events",
    )  # fmt: skip
    for r in range(sizes.repeats):
        es.values.append(
            baselines.es_events_per_s(baselines.sqlite_env(str(workdir / f"es{r}.db")), ES_CALLS)
        )
    http_dir, bulk_dir = workdir / "http", workdir / "bulk"
    http_dir.mkdir()
    bulk_dir.mkdir()
    suite.http_metrics(f"sqlite:///{http_dir}/siyu.db", http_dir, sizes, out)
    suite.bulk_metrics(f"sqlite:///{bulk_dir}/siyu.db", bulk_dir, sizes, out)
    return out


def _fmt(m: Metric | None) -> str:
    if m is None:
        return "-"
    v = m.value
    return f"{v:,.1f}" if v < 100 else f"{v:,.0f}"


def cpu_budget(metrics: dict[str, Metric]) -> str:
    """CPU per operation (medians: the API processes', PostgreSQL's) beside what the target
    rate leaves for one operation on this machine's cores (load generator included)."""
    cores = os.cpu_count() or 1
    lines = ["", "CPU per operation, PostgreSQL run (API + PostgreSQL = total; the target "
             f"leaves {cores} cores / rate):"]  # fmt: skip
    for store, where in (("", ""), (suite.LARGE, " (large store)")):
        for name, (what, rate) in RATE_TARGETS.items():
            m = metrics.get(f"{name}{store}")
            per = m.extra.get("cpu_ms_per_op") if m is not None else None
            if not per or not per["api"]:
                continue
            api, database = median(per["api"]), median(per["database"])
            total, budget = api + database, 1000 * cores / rate
            lines.append(
                f"  {what + where:<30} {api:7.3f} + {database:6.3f} = {total:7.3f} ms"
                f"   budget {budget:6.3f} ms ({total / budget:.1f}x)"
            )
            events, ops = m.extra.get("events_per_repeat"), m.extra.get("unit_events_per_repeat")
            if events and ops:  # logistics: the same per stored event
                lines.append(
                    f"  {'  per stored event':<30} {api * ops / events:7.3f} + "
                    f"{database * ops / events:6.3f} = {total * ops / events:7.3f} ms"
                    f"   ({events / ops:.2f} stored events per unit-event)"
                )
    return "\n".join(lines)


def main() -> int:
    preset = os.environ.get("BENCH_SIZES", "default")
    sizes = PRESETS[preset]
    wrk.require_wrk()
    if not pg.available():
        sys.stderr.write("bench: PostgreSQL is not reachable at 127.0.0.1:5432 (user postgres)\n")
        return 2
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="siyu-bench-") as tmp:
        work = Path(tmp)
        (work / "pg").mkdir()
        (work / "sqlite").mkdir()
        pg_metrics = run_postgresql(sizes, work / "pg")
        sqlite_metrics = run_sqlite(
            suite.SQLITE_SMOKE if preset == "smoke" else SQLITE, work / "sqlite"
        )
    copy = pg_metrics["baseline_copy_rows_per_s"].value
    rows = []
    for name in ORDER:
        a, b = pg_metrics.get(name), sqlite_metrics.get(name)
        target = TARGETS.get(name, ("", None))[0]
        ratio = ""
        if name.endswith("_per_s") and a is not None and name != "baseline_copy_rows_per_s":
            ratio = f"{a.value / copy:.2%}"
        rows.append((name, _fmt(a), _fmt(b), target, ratio))
    print(table(rows))
    print(cpu_budget(pg_metrics))
    elapsed = time.monotonic() - started
    print(f"\n{preset} sizes; medians of {sizes.repeats} repeats (PostgreSQL) unless noted in "
          f"{RESULTS.name}; {elapsed / 60:.1f} minutes")  # fmt: skip
    results = {
        "git_commit": git_commit(),
        "git_dirty": git_dirty(),
        "store": "postgresql",
        "metrics": {k: round(m.value, 3) for k, m in pg_metrics.items() if m.values},
        "metrics_sqlite": {k: round(m.value, 3) for k, m in sqlite_metrics.items() if m.values},
        "targets": {k: t for k, (t, _f) in TARGETS.items()},
        "details": {k: m.as_dict() for k, m in pg_metrics.items()},
        "details_sqlite": {k: m.as_dict() for k, m in sqlite_metrics.items()},
        "sizes": {
            "postgresql": suite.asdict(sizes),
            "sqlite": suite.asdict(SQLITE),
            "preset": preset,
        },
        "seconds": round(elapsed, 1),
        "machine": {"cpus": os.cpu_count()},
    }
    RESULTS.write_text(json.dumps(results, indent=2) + "\n")
    print(f"wrote {RESULTS}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
