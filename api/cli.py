"""The ``siyu`` command line: serve, project, replay, demo."""

from __future__ import annotations

import argparse
import importlib
import json
import logging
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from api.audit_cli import (
    add_diff_arguments,
    add_verify_arguments,
    cmd_diff,
    cmd_verify,
    replayed_as_of,
    until_position,
)
from api.settings import Settings, StoreUnavailable
from api.workers_cli import add_worker_arguments, run_workers, workers_to_start
from projections.database import DatabaseUrlError, parse_database_url
from projections.engine import BATCH_SIZE_MAX, Progress, Projection
from projections.forgetting import personal_of, scrub_forgotten_since
from projections.relay import add_arguments as add_relay_arguments
from projections.relay import cmd_relay
from projections.store import Store
from projections.workers import with_followed

log = logging.getLogger("siyu")


def _configure_logging(settings: Settings) -> None:
    logging.basicConfig(
        level=settings.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )


def worker_app() -> Any:
    """A ``siyu serve --workers N`` worker: logging as the CLI's, the app from SIYU_*."""
    from api.app import create_app

    settings = Settings.from_env()
    _configure_logging(settings)
    app = create_app(settings)
    _collect_less_often()  # the app's long-lived objects made: left out of the walks
    return app


def _progress_printer(label: str) -> Any:
    last = [0.0]

    def show(p: Progress) -> None:
        now = time.monotonic()
        if now - last[0] < 0.2 and p.position < p.head:
            return
        last[0] = now
        width = 30
        done = 1.0 if p.head == 0 else min(1.0, p.position / p.head)
        bar = "#" * int(done * width) + "-" * (width - int(done * width))
        rate = p.applied / p.seconds if p.seconds > 0 else 0.0
        sys.stderr.write(f"\r{label} [{bar}] {p.position}/{p.head} events, {rate:,.0f} events/s ")
        sys.stderr.flush()

    return show


# -- serve ---------------------------------------------------------------------


def cmd_serve(args: argparse.Namespace, settings: Settings) -> int:
    import uvicorn

    from api.app import create_app
    from api.demo import tokens_path

    store = settings.open_store()
    if not settings.bootstrap_token and store.head <= 1:
        sys.stderr.write(
            "siyu serve: a new install needs SIYU_BOOTSTRAP_TOKEN (an HQ admin token) "
            "to mint the first tokens.\n"
        )
        store.close()
        return 2
    base = f"http://{args.host}:{args.port}"
    lines = [
        f"Siyu Ledger on {store.database.kind} ({settings.database_url})"
        + (f", {args.workers} worker processes" if args.workers > 1 else ""),
        f"  API:      {base}/v1/...",
        f"  health:   {base}/health",
        f"  API docs: {base}/schema  (OpenAPI document: {base}/schema/openapi.json)",
    ]
    demo_file = tokens_path(store)
    if demo_file.exists():
        lines += _demo_hints(json.loads(demo_file.read_text()), demo_file, base)
    if args.workers > 1:
        # Several processes on one port (the scale-out path on one machine). This process
        # becomes uvicorn's supervisor (exec: a small process, same pid for signals); each
        # worker opens the store from the same environment; their projection engines take
        # turns (positions are locked per batch).
        store.close()
        print("\n".join(lines), flush=True)
        argv = [sys.executable, "-m", "uvicorn", "api.cli:worker_app", "--factory",
                "--workers", str(args.workers), "--host", args.host, "--port", str(args.port),
                "--log-level", "warning", "--no-access-log"]  # fmt: skip
        os.execv(sys.executable, argv)
    app = create_app(settings, store=store, close_store=True)
    _collect_less_often()
    print("\n".join(lines), flush=True)
    try:
        uvicorn.run(app, host=args.host, port=args.port, log_level="warning", access_log=False)
    finally:
        store.close()
    return 0


def _demo_hints(demo: dict[str, Any], demo_file: Any, base: str) -> list[str]:
    tokens: dict[str, str] = demo.get("tokens", {})
    lines = [f"  demo tokens ({demo_file}):"]
    lines += [f"    {label:<22} {token}" for label, token in tokens.items()]
    hq = tokens.get("hq", "")
    lines.append(f"  try: curl -H 'Authorization: Bearer {hq}' {base}/v1/partners")
    diverted = demo.get("codes", {}).get("diverted_unit")
    if diverted:
        lines.append(
            f"       curl -H 'Authorization: Bearer {hq}' {base}/v1/codes/{diverted}/trace"
        )
        lines.append(f"       curl -H 'Authorization: Bearer {hq}' {base}/v1/alerts")
    return lines


# -- project -------------------------------------------------------------------


def cmd_project(args: argparse.Namespace, settings: Settings) -> int:
    from projections.store import default_projections

    workers = workers_to_start(args, settings, default_projections())
    if workers:
        command = ["project", *(["--once"] if args.once else [])]
        if args.until_position is not None:
            command += ["--until-position", str(args.until_position)]
        return run_workers(command, workers)
    store = _catching_up(settings.open_store(worker=args.group))
    try:
        if not store.engine.projections:
            return 0  # more workers than groups of read models: nothing is this one's
        if args.once:
            progress = None if args.group else _progress_printer("project")
            n = store.engine.catch_up(until=args.until_position, on_progress=progress)
            share = f" (worker {args.group[0] + 1}/{args.group[1]})" if args.group else ""
            print(f"\nprojected {n} events{share}; positions {store.engine.positions()}")
            return 0
        stop = threading.Event()
        signal.signal(signal.SIGTERM, lambda *_: stop.set())
        signal.signal(signal.SIGINT, lambda *_: stop.set())
        store.engine.start()
        print(f"projecting {settings.database_url} until stopped", flush=True)
        stop.wait()
        return 0
    finally:
        store.close()


def _catching_up(store: Store) -> Store:
    """A store whose engine takes the large batches of catching up (not the API's)."""
    store.engine.batch_size = BATCH_SIZE_MAX
    return store


# -- replay --------------------------------------------------------------------


def cmd_replay(args: argparse.Namespace, settings: Settings) -> int:
    """Rebuild read models from zero into a side store and compare with the live ones."""
    from projections.store import default_projections

    live = _catching_up(settings.open_store())
    everything = default_projections(live.ledger.positions_of)
    chosen = [p for p in everything if args.projection in (None, p.name)]
    if not chosen:
        sys.stderr.write(f"unknown projection {args.projection!r}\n")
        live.close()
        return 2
    chosen = with_followed(everything, chosen)  # e.g. the partner paths trace reads
    try:
        if args.in_place:
            return _replay_in_place(args, settings, live, chosen)
        target = args.into or _default_side_target(live)
        if args.group is not None:  # one worker's share of a build the parent started
            return _build_share(settings, chosen, args.group, target, args.until_position)
        side = _catching_up(settings.open_store(projections=chosen, views_target=target))
        try:
            side.views.drop_everything()
            side.engine.ensure_schema()
            head = live.head if args.until is None else until_position(live, args.until)
            workers = workers_to_start(args, settings, chosen)
            if workers:
                command = ["replay", "--into", target, "--until-position", str(head)]
                if args.projection is not None:
                    command += ["--projection", args.projection]
                if run_workers(command, workers) != 0:
                    return 1
            else:
                side.engine.catch_up(until=head, on_progress=_progress_printer("replay"))
                sys.stderr.write("\n")
            if args.until is not None:
                answer = replayed_as_of(side, args.until, head, target)
            else:
                answer = _compare(live, side, [p.name for p in chosen], target)
            # The build stays to be looked at: a member forgotten while it was built may
            # have rows written with a key still cached (projections/forgetting.py).
            scrub_forgotten_since(
                live.ledger.recorder, live.database, personal_of(chosen), target, head
            )
            return answer
        finally:
            side.close()
    finally:
        live.close()


def _replay_in_place(
    args: argparse.Namespace, settings: Settings, live: Store, chosen: list[Projection]
) -> int:
    live.engine.reset([p.name for p in chosen])
    workers = workers_to_start(args, settings, live.engine.projections)
    if workers:
        if run_workers(["project", "--once", "--until-position", str(live.head)], workers):
            return 1
    else:
        live.engine.catch_up(on_progress=_progress_printer("replay"))
        sys.stderr.write("\n")
    print("rebuilt in place: " + ", ".join(p.name for p in chosen))
    return 0


def _build_share(
    settings: Settings,
    chosen: list[Projection],
    group: tuple[int, int],
    target: str,
    until: int | None,
) -> int:
    side = _catching_up(settings.open_store(projections=chosen, views_target=target, worker=group))
    try:
        if side.engine.projections:
            side.engine.catch_up(until=until)
        return 0
    finally:
        side.close()


def _default_side_target(store: Store) -> str:
    if store.database.is_sqlite:
        return str(
            store.database.views_path.with_name(store.database.views_path.stem + ".replay.db")
        )
    return store.database.views_schema + "_replay"


def _compare(live: Store, side: Store, names: Sequence[str], target: str) -> int:
    with ThreadPoolExecutor(1) as other:  # the two builds hashed at once (two backends)
        side_hashing = other.submit(side.engine.checksums)
        live_sums = live.engine.checksums()
        side_sums = side_hashing.result()
    live_at, side_at = live.engine.position(), side.engine.position()
    different = 0
    for name in names:
        same = live_sums.get(name) == side_sums.get(name)
        different += not same
        print(f"{name:<24} {'equal' if same else 'DIFFERENT'}  {side_sums[name][:16]}")
    print(f"rebuilt into {target} up to position {side_at}; live views at {live_at}")
    if different and live_at != side_at:
        print("note: live views were at another position; run again when idle to compare")
    return 1 if different and live_at == side_at else 0


# -- demo ----------------------------------------------------------------------


def cmd_demo(args: argparse.Namespace, settings: Settings) -> int:
    from api.demo import demo_loaded, load_demo
    from domain.errors import DomainError

    store = settings.open_store()
    try:
        if args.if_empty and store.head > 1:
            print(f"demo: the store already holds {store.head} events; left as it is")
            return 0
        if demo_loaded(store):
            print("demo: this store already holds the demo; left as it is")
            return 0
        try:
            summary = load_demo(store)
        except DomainError as e:  # e.g. the store already has partners with the demo's codes
            sys.stderr.write(f"siyu demo: refused ({e.code}): {e.detail}\n")
            return 2
        store.engine.catch_up()
        print(
            f"demo: {summary['partners']} partners, goods through the channel, scans, alerts, "
            f"orders, settlement and members; tokens and sample codes in "
            f"{summary['tokens_file']}"
        )
        return 0
    finally:
        store.close()


def _position(text: str) -> int:
    try:
        position = int(text)
    except ValueError:
        position = -1
    if position < 0:
        raise argparse.ArgumentTypeError(f"not a log position: {text!r}")
    return position


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="siyu", description="Siyu Ledger")
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="serve the HTTP API")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8000)
    serve.add_argument(
        "--workers",
        type=int,
        default=1,
        choices=range(1, 33),
        metavar="N",
        help="API processes on the port (default 1; PostgreSQL: one per core)",
    )
    project = sub.add_parser("project", help="run the projection engine (a worker)")
    project.add_argument("--once", action="store_true", help="catch up and exit")
    project.add_argument(
        "--until-position", type=_position, help="with --once: up to this log position"
    )
    add_worker_arguments(project)
    replay = sub.add_parser("replay", help="rebuild read models from zero and compare")
    replay.add_argument("--projection", help="only this read model")
    replay.add_argument("--into", help="side store: a SQLite file or a PostgreSQL schema")
    replay.add_argument("--in-place", action="store_true", help="rebuild the live views")
    replay.add_argument("--until", help="as of this time (RFC 3339): into the side store")
    replay.add_argument("--until-position", type=_position, help=argparse.SUPPRESS)
    add_worker_arguments(replay)
    verify_parser = sub.add_parser("verify", help="check the chain, the ledger and the views")
    add_verify_arguments(verify_parser)
    diff_parser = sub.add_parser("diff", help="compare the live views with a side build")
    add_diff_arguments(diff_parser)
    demo = sub.add_parser("demo", help="load the demo channel")
    demo.add_argument("--if-empty", action="store_true", help="only into an empty store")
    relay_parser = sub.add_parser("relay", help="publish every event to NATS JetStream")
    add_relay_arguments(relay_parser)
    settle = sub.add_parser("settle", help="close due return windows (split instructions)")
    settle.add_argument("--now", help="settle as of this RFC 3339 time, not later than now")
    settle.add_argument("--allow-future", action="store_true", help="a later --now (tests only)")
    reconcile = sub.add_parser("reconcile", help="reconciliation report; exit 1 on breach")
    reconcile.add_argument("--from", dest="start", help="period start (RFC 3339 or YYYY-MM-DD)")
    reconcile.add_argument("--to", dest="end", help="period end (RFC 3339 or YYYY-MM-DD)")
    reconcile.add_argument("--json", action="store_true", help="print the whole report as JSON")
    forget = sub.add_parser("forget", help="forget a member: destroy their key")
    forget.add_argument("member_id", help="the member's id (GET /v1/members?phone=... finds it)")
    forget.add_argument("--reason", default="the member asked to be forgotten")
    forget.add_argument("--request-id", help="to make a retry a repeat (default: a new one)")
    expire = sub.add_parser("expire-points", help="expire due points lots; evaluate tiers")
    expire.add_argument("--now", help="as of this RFC 3339 time, not later than now")
    expire.add_argument("--allow-future", action="store_true", help="a later --now (tests only)")
    draws = sub.add_parser("verify-draws", help="recompute every draw of a campaign")
    draws.add_argument("campaign", help="the campaign id")
    draws.add_argument("--seed", help="verify with this seed instead of the revealed one")
    what_if = sub.add_parser("what-if", help="re-split a period's orders under another policy")
    what_if.add_argument("--policy", required=True, help="a split policy as JSON (API.md shape)")
    what_if.add_argument("--from", dest="start", required=True, help="RFC 3339 time")
    what_if.add_argument("--to", dest="end", required=True, help="RFC 3339 time")
    return parser


Command = Callable[[argparse.Namespace, Settings], int]


def _later(module: str, name: str) -> Command:
    """A command whose module is imported when it runs: the money, loyalty, privacy and
    what-if commands load the domain's handlers and the HTTP layer (about 0.9 s of every
    batch command's start-up here, once per process of ``siyu project --workers N``)."""

    def run(args: argparse.Namespace, settings: Settings) -> int:
        command: Command = getattr(importlib.import_module(module), name)
        return command(args, settings)

    return run


COMMANDS: dict[str, Command] = {
    "serve": cmd_serve,
    "project": cmd_project,
    "replay": cmd_replay,
    "demo": cmd_demo,
}
COMMANDS["relay"] = cmd_relay
COMMANDS["settle"] = _later("api.money", "cmd_settle")
COMMANDS["reconcile"] = _later("api.money", "cmd_reconcile")
COMMANDS["forget"] = _later("api.routes.privacy", "cmd_forget")
COMMANDS["verify"] = cmd_verify
COMMANDS["diff"] = cmd_diff
COMMANDS["expire-points"] = _later("api.loyalty", "cmd_expire_points")
COMMANDS["verify-draws"] = _later("api.loyalty", "cmd_verify_draws")
COMMANDS["what-if"] = _later("api.what_if", "cmd_what_if")


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; its exit status. A store that cannot be opened (a wrong
    SIYU_DATABASE_URL, a server that does not answer, a database that does not exist) is
    one line on stderr and exit 2, as the other errors of how the command was called (an
    unknown projection, a missing bootstrap token, argparse's own), not a traceback: and
    not 1, which ``siyu verify`` keeps for a store it checked and found tampered with."""
    args = build_parser().parse_args(argv)
    if args.command == "serve":
        fewer_malloc_arenas()  # before any thread starts
    settings = Settings.from_env()
    _configure_logging(settings)
    if args.command in BATCH_COMMANDS:
        _collect_less_often()
    try:
        try:  # a URL that names no store, before any command reads it its own way
            parse_database_url(settings.database_url)
        except DatabaseUrlError as e:
            raise StoreUnavailable(settings.database_url, e) from e
        return COMMANDS[args.command](args, settings)
    except StoreUnavailable as e:
        sys.stderr.write(f"siyu: {e}\n")
        return 2


BATCH_COMMANDS = frozenset({"project", "replay"})
GC_YOUNG_THRESHOLD = 200_000  # (Python's default: 700)


MALLOC_ARENAS_MAX = 2
M_ARENA_MAX = -8  # glibc's mallopt parameter


def fewer_malloc_arenas() -> bool:
    """At most two malloc arenas in the server (glibc gives each thread that allocates
    while the others hold theirs an arena of its own, up to eight per core, and freed
    memory stays with its arena): measured on the bench's scans with two processes,
    peak RSS 276-285 -> 260-263 MB, throughput unchanged. Set for this process
    (``mallopt``; False where there is none) and, by the environment, for the worker
    processes ``--workers N`` starts. An operator's own MALLOC_ARENA_MAX wins."""
    import ctypes

    arenas = os.environ.setdefault("MALLOC_ARENA_MAX", str(MALLOC_ARENAS_MAX))
    try:
        mallopt = ctypes.CDLL(None).mallopt
        return bool(mallopt(M_ARENA_MAX, int(arenas)))
    except (AttributeError, OSError, ValueError):
        return False


def _collect_less_often() -> None:
    """A projection batch makes tens of thousands of short-lived objects, nearly all
    freed by reference counting; with Python's default thresholds the cyclic collector
    ran every 700 of them and walked the long-lived ones (about 8% of a worker's CPU in
    ``perf``). Objects made so far (modules, the schema) are left out of its walks.

    The API processes too (``siyu serve``; their inline engines run batches, every
    request makes short-lived objects): during the bench's 4,500 scans the collector
    took 0.32 s of the two processes' CPU (5% of it, 74 us a scan), none with this
    threshold, at the same peak RSS (262 MB against 257 and 269 in the same hour)."""
    import gc

    gc.freeze()
    gc.set_threshold(GC_YOUNG_THRESHOLD, 10, 10)


if __name__ == "__main__":
    sys.exit(main())
