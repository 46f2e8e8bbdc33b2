"""Medians, percentiles, CPU accounting and the printed table."""

from __future__ import annotations

import contextlib
import os
import resource
import statistics
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any


def median(values: Sequence[float]) -> float:
    return float(statistics.median(values))


def percentile(values: Sequence[float], p: float) -> float:
    """Nearest-rank percentile (p in 0..100)."""
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    rank = max(1, min(len(ordered), round(p / 100.0 * len(ordered) + 0.5)))
    return float(ordered[rank - 1])


@dataclass
class Metric:
    """One metric: every repeat's value, the median reported, and how it was measured."""

    name: str
    unit: str
    values: list[float] = field(default_factory=list)
    note: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def value(self) -> float:
        return median(self.values) if self.values else float("nan")

    def as_dict(self) -> dict[str, Any]:
        return {
            "median": round(self.value, 3) if self.values else None,
            "unit": self.unit,
            "repeats": [round(v, 3) for v in self.values],
            "note": self.note,
            **({"extra": self.extra} if self.extra else {}),
        }


@dataclass
class CpuUse:
    """CPU seconds a load generator used over a wall time: how much of the cores it took."""

    cpu_s: float
    wall_s: float

    @property
    def cores(self) -> float:
        return self.cpu_s / self.wall_s if self.wall_s > 0 else 0.0


@contextmanager
def own_cpu() -> Iterator[list[CpuUse]]:
    """This process's CPU over the block (for the in-process Python load generators)."""
    out: list[CpuUse] = []
    before, started = resource.getrusage(resource.RUSAGE_SELF), time.monotonic()
    yield out
    after = resource.getrusage(resource.RUSAGE_SELF)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    out.append(CpuUse(cpu, time.monotonic() - started))


def rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024.0
    return 0.0


def family(pid: int) -> list[int]:
    """The process and its children (``siyu serve --workers N``: the supervisor and its
    worker processes)."""
    pids = [pid]
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    ppid = int(f.read().rsplit(")", 1)[1].split()[1])
            except (OSError, ValueError, IndexError):
                continue
            if ppid == pid:
                pids.append(int(entry))
    return pids


class RssSampler:
    """Samples the resident memory of a process and its children every ``interval_s``;
    keeps the peak of their sum (``peak_mb``) and of the largest one (``peak_one_mb``)."""

    def __init__(self, pid: int, interval_s: float = 0.05) -> None:
        self.pid = pid
        self.interval_s = interval_s
        self.peak_mb = 0.0
        self.peak_one_mb = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            sizes = []
            for pid in family(self.pid):
                with contextlib.suppress(OSError):
                    sizes.append(rss_mb(pid))
            if not sizes:
                return
            self.peak_mb = max(self.peak_mb, sum(sizes))
            self.peak_one_mb = max(self.peak_one_mb, *sizes)
            self._stop.wait(self.interval_s)

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._stop.set()
        self._thread.join()


def cpu_seconds_of(pid: int) -> float:
    """User + system CPU seconds a live process has used so far."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    return (int(fields[11]) + int(fields[12])) / ticks


def _postgres_cpu() -> dict[int, float]:
    """CPU seconds so far of every process named postgres (the server and its backends)."""
    out: dict[int, float] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            with contextlib.suppress(OSError, ValueError, IndexError):
                with open(f"/proc/{entry}/comm") as f:
                    if not f.read().startswith("postgres"):
                        continue
                out[int(entry)] = cpu_seconds_of(int(entry))
    return out


@dataclass
class ServerCpu:
    """CPU seconds the API processes and PostgreSQL's processes used over a block."""

    api_s: float
    database_s: float


@contextmanager
def server_cpu(pid: int) -> Iterator[list[ServerCpu]]:
    """The CPU of ``pid`` and its children (``siyu serve``) and of every PostgreSQL process
    (on this machine, quiet but for the bench) over the block. A backend that exits inside
    the block takes its share with it; the API's pools keep theirs open."""

    def api() -> float:
        total = 0.0
        for p in family(pid):
            with contextlib.suppress(OSError, ValueError, IndexError):
                total += cpu_seconds_of(p)
        return total

    out: list[ServerCpu] = []
    api_before, pg_before = api(), _postgres_cpu()
    yield out
    api_after, pg_after = api(), _postgres_cpu()
    database = sum(cpu - pg_before.get(p, 0.0) for p, cpu in pg_after.items())
    out.append(ServerCpu(api_after - api_before, database))


def table(rows: list[tuple[str, str, str, str, str]]) -> str:
    header = ("metric", "PostgreSQL", "SQLite", "target", "vs COPY")
    all_rows = [header, *rows]
    widths = [max(len(r[i]) for r in all_rows) for i in range(len(header))]
    lines = []
    for n, r in enumerate(all_rows):
        lines.append(
            "  ".join(
                c.ljust(w) if i == 0 else c.rjust(w)
                for i, (c, w) in enumerate(zip(r, widths, strict=True))
            )
        )
        if n == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)
