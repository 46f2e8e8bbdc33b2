"""wrk (Debian's package) with ``requests.lua``: a fixed list of different requests, each
sent once over N connections; throughput and latency percentiles as wrk measures them."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

SCRIPT = Path(__file__).with_name("requests.lua")
THREADS = 2


@dataclass(frozen=True)
class Request:
    method: str
    path: str
    token: str
    body: str = ""

    def line(self) -> str:
        assert "\t" not in self.body and "\n" not in self.body
        return f"{self.method}\t{self.path}\t{self.token}\t{self.body}"


@dataclass
class WrkResult:
    ok: int
    failed: int
    seconds: float  # first request sent .. last answer received
    p50_ms: float
    p90_ms: float
    p99_ms: float
    max_ms: float
    cpu_s: float  # wrk's own CPU (user + system)
    errors: list[str]

    @property
    def per_s(self) -> float:
        return self.ok / self.seconds if self.seconds > 0 else 0.0


def require_wrk() -> str:
    path = shutil.which("wrk")
    if path is None:
        raise SystemExit("bench: wrk is missing (apt-get install wrk; `make bench` does it)")
    return path


def run(
    base_url: str, requests: list[Request], connections: int, timeout_s: float = 600
) -> WrkResult:
    """Send every request once; ``connections`` at a time (closed loop)."""
    wrk = require_wrk()
    threads = min(THREADS, connections)
    with tempfile.TemporaryDirectory(prefix="siyu-wrk-") as tmp:
        out = Path(tmp)
        lines = out / "requests.txt"
        lines.write_text("\n".join(r.line() for r in requests) + "\n")
        argv = [
            wrk, "-t", str(threads), "-c", str(connections), "-d", "3600s",
            "--timeout", "120s", "-s", str(SCRIPT), base_url, str(lines), str(threads), str(out),
        ]  # fmt: skip
        proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout_s
        while len(list(out.glob("done-*"))) < threads:
            if proc.poll() is not None:
                raise RuntimeError(
                    f"wrk exited early: {proc.stdout.read().decode() if proc.stdout else ''}"
                )
            if time.monotonic() > deadline:
                break
            time.sleep(0.01)
        proc.send_signal(signal.SIGINT)
        _pid, _status, usage = os.wait4(proc.pid, 0)
        output = proc.stdout.read().decode() if proc.stdout else ""
        result_file = out / "result.json"
        if not result_file.exists():
            raise RuntimeError(f"wrk wrote no result:\n{output}")
        r = json.loads(result_file.read_text())
        errors = []
        for f in sorted(out.glob("errors-*")):
            errors += f.read_text().splitlines()
        seconds = (r["last_us"] - r["first_us"]) / 1e6 if r["last_us"] else float("nan")
        return WrkResult(
            ok=r["ok"],
            failed=r["failed"] + (len(requests) - r["ok"] - r["failed"]),
            seconds=seconds,
            p50_ms=r["p50_us"] / 1000,
            p90_ms=r["p90_us"] / 1000,
            p99_ms=r["p99_us"] / 1000,
            max_ms=r["max_us"] / 1000,
            cpu_s=usage.ru_utime + usage.ru_stime,
            errors=errors,
        )
