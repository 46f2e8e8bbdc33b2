"""``siyu verify``, ``siyu diff``, and the ``--until`` of ``siyu replay``."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

from api.settings import Settings
from projections.chain import find_chain, notary_from_secrets
from projections.compare import ROWS_SHOWN_MAX, columns_of, diff_tables, fresh_projections
from projections.compare import read_build as read_views
from projections.store import Store
from projections.time_index import position_at_in_log
from projections.verify import Verifier
from projections.views import ViewStore

PROGRESS_EVERY_S = 0.2


def _stderr_progress() -> Any:
    last = [0.0]

    def show(stage: str, done: int, total: int) -> None:
        now = time.monotonic()
        if now - last[0] < PROGRESS_EVERY_S and done < total:
            return
        last[0] = now
        width = 30
        fraction = 1.0 if total <= 0 else min(1.0, done / total)
        bar = "#" * int(fraction * width) + "-" * (width - int(fraction * width))
        sys.stderr.write(f"\rverify {stage:<8} [{bar}] {done}/{total} ")
        sys.stderr.flush()

    return show


# -- verify ------------------------------------------------------------------------------


def add_verify_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--no-views", action="store_true", help="skip rebuilding the read models from zero"
    )


def cmd_verify(args: argparse.Namespace, settings: Settings) -> int:
    """Exit 0 and last line ``ok``, or exit 1 and last line ``first_bad_position=N``."""
    store = settings.open_store()
    try:
        chain = find_chain(store.engine.projections)
        notary = chain.notary if chain is not None else None
        if notary is None:
            notary = notary_from_secrets(store.secrets, settings.audit_signing_key)
        report = Verifier(store, notary.public_key).run(
            views=not args.no_views, on_progress=_stderr_progress()
        )
    finally:
        store.close()
    sys.stderr.write("\n")
    for note in report.notes:
        print(f"note: {note}")
    for finding in report.findings:
        print(finding.line())
    print(
        f"checked {report.checked} events (head {report.head}, chained to {report.chain_head}) "
        f"in {report.seconds:.1f}s"
    )
    if report.ok:
        print("ok")
        return 0
    print(f"first_bad_position={report.first_bad_position}")
    return 1


# -- diff --------------------------------------------------------------------------------


def default_side_target(store: Store) -> str:
    """Where ``siyu replay`` builds by default (api/cli.py ``_default_side_target``)."""
    if store.database.is_sqlite:
        path = store.database.views_path
        return str(path.with_name(path.stem + ".replay.db"))
    return store.database.views_schema + "_replay"


def add_diff_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--projection", help="only this read model")
    parser.add_argument(
        "--side", help="the other build: a SQLite file or a PostgreSQL schema (default: replay's)"
    )
    parser.add_argument("--rows", type=int, default=ROWS_SHOWN_MAX, help="rows shown per table")


def cmd_diff(args: argparse.Namespace, settings: Settings) -> int:
    """Compare the live views with a side build, table by table; exit 1 if they differ."""
    live = settings.open_store()
    try:
        names = None if args.projection is None else [args.projection]
        chosen = fresh_projections(live, names)
        if not chosen:
            sys.stderr.write(f"unknown projection {args.projection!r}\n")
            return 2
        target = args.side or default_side_target(live)
        if live.database.is_sqlite and not Path(target).exists():
            sys.stderr.write(f"no side build at {target}: run `siyu replay --into {target}`\n")
            return 2
        side = ViewStore(live.database, target=target)
        try:
            with side.read() as tx:
                missing = [t for p in chosen for t in p.tables if not columns_of(tx, t)]
            if missing:
                sys.stderr.write(f"the side build {target} lacks tables {missing}\n")
                return 2
            live_positions, live_tables = read_views(live.views, chosen)
            side_positions, side_tables = read_views(side, chosen)
        finally:
            side.close()
    finally:
        live.close()
    differences = {d.table: d for d in diff_tables(live_tables, side_tables)}
    for table, (_columns, rows) in live_tables.items():
        found = differences.get(table)
        if found is None:
            print(f"{table}: equal ({sum(rows.values())} rows)")
        else:
            print("\n".join(found.lines(args.rows)))
    print(f"live at {live_positions}")
    print(f"side at {side_positions} ({target})")
    if differences:
        print(f"different: {', '.join(sorted(differences))}")
        return 1
    print("equal")
    return 0


# -- replay --until ------------------------------------------------------------------------


def until_position(store: Store, text: str) -> int:
    """The last position committed by time ``text`` (RFC 3339), from the log itself."""
    from datetime import datetime

    try:
        at = datetime.fromisoformat(text)
    except ValueError:
        at = None
    if at is None or at.tzinfo is None:
        sys.stderr.write(f"--until wants an RFC 3339 time with offset, not {text!r}\n")
        raise SystemExit(2)
    return position_at_in_log(store.ledger.recorder, at)


def replayed_as_of(side: Store, until: str, position: int, target: str) -> int:
    print(f"rebuilt as of {until}: up to position {position} into {target}")
    print(f"positions {side.engine.positions()}")
    return 0
