"""`make bench` keeps working: the whole suite at its smoke sizes, as a process.

The figures mean nothing at these sizes (speed is never asserted in a test); what is
checked is that every metric of the issue is measured, on both stores, and written
with the commit it measured."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import PG_HOST, PG_PORT, REQUIRE_SERVICES, service_missing

REPO = Path(__file__).resolve().parents[2]
REAL_RESULTS = REPO / "bench" / "results.json"
MEASURED = {
    "baseline_copy_rows_per_s", "baseline_es_events_per_s", "scan_http_per_s",
    "scan_http_p99_ms", "logistics_events_per_s", "payment_http_per_s",
    "projection_events_per_s", "replay_events_per_s", "balance_read_p99_ms",
    "trace_read_p99_ms", "codes_issue_1m_s", "api_rss_mb_max",
}  # fmt: skip
ON_SQLITE_TOO = MEASURED - {"baseline_copy_rows_per_s"}
# the write workloads again on the store the bulk backlog filled (PostgreSQL only)
WRITES = ("scan_http_per_s", "logistics_events_per_s", "payment_http_per_s")
ON_THE_LARGE_STORE = {f"{name}_large_store" for name in (*WRITES, "scan_http_p99_ms")}


def test_the_benchmark_suite_runs_and_writes_every_metric(tmp_path: Path) -> None:
    service_missing("PostgreSQL", PG_HOST, PG_PORT)
    if shutil.which("wrk") is None:
        message = "wrk is not installed (make bench installs it; .ci/run too)"
        if REQUIRE_SERVICES:
            pytest.fail(message, pytrace=False)
        pytest.skip(message)
    results = tmp_path / "results.json"
    real_before = _stamp(REAL_RESULTS)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SIYU_", "BENCH_"))}
    env.update(BENCH_SIZES="smoke", BENCH_RESULTS=str(results), PYTHONPATH=str(REPO))
    done = subprocess.run(
        [sys.executable, "-m", "bench"], cwd=REPO, env=env, capture_output=True, text=True,
        timeout=900, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-4000:]
    assert "scan_http_per_s" in done.stdout, "the table is printed"
    written = json.loads(results.read_text())
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO, capture_output=True,
                          text=True, check=True).stdout.strip()  # fmt: skip
    assert written["git_commit"] == head and written["store"] == "postgresql"
    every = MEASURED | ON_THE_LARGE_STORE
    assert written["metrics"].keys() >= every, every - written["metrics"].keys()
    assert written["metrics_sqlite"].keys() >= ON_SQLITE_TOO
    for name in every:
        assert written["metrics"][name] > 0, name
        assert written["details"][name].get("extra", {}).get("failed", 0) == 0, name
    for name in (*WRITES, *(f"{name}_large_store" for name in WRITES)):
        per_op = written["details"][name]["extra"]["cpu_ms_per_op"]
        assert len(per_op["api"]) == len(per_op["database"]) == 1, (name, per_op)
        assert per_op["api"][0] > 0 and per_op["database"][0] > 0, (name, per_op)
    for name in ("logistics_events_per_s", "logistics_events_per_s_large_store"):
        extra = written["details"][name]["extra"]
        # a case's move is one stored event for all its units: fewer events than unit-events
        assert 0 < extra["events_per_repeat"] < extra["unit_events_per_repeat"], (name, extra)
    assert "CPU per operation" in done.stdout and "order + payment" in done.stdout
    assert "per stored event" in done.stdout
    assert "order + payment (large store)" in done.stdout
    large = written["details"]["scan_http_per_s_large_store"]["note"]
    assert "on a store of" in large, "the large store's size is in the metric's note"
    assert _stamp(REAL_RESULTS) == real_before, "the real run's results.json is left alone"


def _stamp(path: Path) -> int | None:
    return path.stat().st_mtime_ns if path.exists() else None
