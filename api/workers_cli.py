"""``--workers N`` of ``siyu project`` and ``siyu replay``: the read models split over N
processes (``projections/workers.py``), so their Python runs on several cores.

The command starts N children of itself, each with ``--group K/N`` (its share), waits
for them all, and forwards SIGTERM and SIGINT. If one fails the others are stopped
(one may be waiting for a read model the failed one ran) and the command fails.
SQLite has one writer at a time: there the command runs as one process and says so.
"""

from __future__ import annotations

import argparse
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from typing import Any

from api.settings import Settings
from projections.database import parse_database_url
from projections.engine import Projection
from projections.workers import WORKERS_MAX, parse_group, worker_groups

POLL_S = 0.1
STOP_TIMEOUT_S = 30.0


def add_worker_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--workers",
        type=int,
        default=1,
        choices=range(1, WORKERS_MAX + 1),
        metavar="N",
        help="processes the read models are split over (PostgreSQL; default 1)",
    )
    # One worker's share, K of N: set by --workers for the processes it starts.
    parser.add_argument("--group", type=_group, help=argparse.SUPPRESS)


def _group(text: str) -> tuple[int, int]:
    try:
        return parse_group(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from e


def workers_to_start(
    args: argparse.Namespace, settings: Settings, projections: Sequence[Projection]
) -> int:
    """How many worker processes this command starts (0: it is one, or runs alone)."""
    if args.group is not None or args.workers == 1:
        return 0
    if parse_database_url(settings.database_url).is_sqlite:
        sys.stderr.write("SQLite has one writer at a time: running as one process\n")
        return 0
    return len(worker_groups(projections, args.workers))


def run_workers(command: Sequence[str], workers: int) -> int:
    """Run ``siyu <command> --group K/workers`` for every K; 0 if all of them succeed."""
    children = [
        subprocess.Popen(  # same environment, same working directory, same output
            [sys.executable, "-m", "api.cli", *command, "--group", f"{k + 1}/{workers}"]
        )
        for k in range(workers)
    ]

    def forward(signum: int, _frame: Any) -> None:
        for child in children:
            if child.poll() is None:
                child.send_signal(signum)

    previous = {s: signal.signal(s, forward) for s in (signal.SIGTERM, signal.SIGINT)}
    try:
        while True:
            codes = [child.poll() for child in children]
            failed = [c for c in codes if c not in (None, 0)]
            if failed:
                _stop(children)
                sys.stderr.write(f"a projection worker failed (exit {failed[0]})\n")
                return 1
            if all(c == 0 for c in codes):
                return 0
            time.sleep(POLL_S)
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)


def _stop(children: Sequence[subprocess.Popen[bytes]]) -> None:
    for child in children:
        if child.poll() is None:
            child.terminate()
    deadline = time.monotonic() + STOP_TIMEOUT_S
    for child in children:
        try:
            child.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()
