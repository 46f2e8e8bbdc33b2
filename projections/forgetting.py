"""What a forget does to the read models built beside the live ones (side builds).

A read model that keeps something derived from a member's personal data names it
(``personal``: table -> the member's key column and the columns it clears) and clears
it on ``Member.Forgotten``. The live views apply that event; a side build cannot:

- ``siyu replay`` keeps its build (a schema, or a file beside the views) to be looked
  at after the comparison, built up to the head of its start;
- a verification rebuilds into a side build and, on PostgreSQL, copies the live
  tables there (``live_copy__<table>``) for as long as it runs.

So a forget clears the member's personal columns in every side build it can find, with
the statement the live read model applies:

- PostgreSQL: every schema of the database but the live views' that holds such a table
  (or its live copy): side builds are schemas, wherever ``--into`` put them;
- SQLite: every side file registered in the live views file when it was opened
  (``side_builds``), wherever it lies; a file removed since leaves the register.

A replay may write a member's rows after the forget cleared its build: its process can
hold the member's key for up to ``KEY_CACHE_TTL_S`` after the key is destroyed, and its
batch may commit after the forget's statement. So a replay, once built and compared,
clears the members forgotten after the position it was built to
(``scrub_forgotten_since``). A verification's build is dropped when its run ends.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import sqlite3
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from eventsourcing.persistence import ApplicationRecorder

from domain.members import Member
from projections.database import Database
from projections.views import SQLITE_BUSY_TIMEOUT_S

Personal = dict[str, tuple[str, tuple[str, ...]]]  # table -> (member key, columns cleared)

log = logging.getLogger(__name__)

SIDE_BUILDS_TABLE = "side_builds"
# how long a forget waits for a side build held by another writer before it says so in
# the log and goes on (a repeat of the forget request clears it again)
LOCK_WAIT_S = 10.0
LIVE_COPY_PREFIX = "live_copy__"  # a verification's copy of a live table (compare.py)


def scrub_statement(table: str, key: str, columns: Sequence[str], members: int = 1) -> str:
    """``UPDATE`` clearing ``columns`` of ``members`` rows named by ``key`` (``?`` marks)."""
    cleared = ", ".join(f"{column} = NULL" for column in columns)
    if members == 1:  # (the shape the views' write queue folds by key)
        return f"UPDATE {table} SET {cleared} WHERE {key} = ?"
    return f"UPDATE {table} SET {cleared} WHERE {key} IN ({', '.join('?' * members)})"


def personal_of(projections: Iterable[Any]) -> Personal:
    """The personal columns the read models ``projections`` keep, by table."""
    found: Personal = {}
    for projection in projections:
        found.update(getattr(projection, "personal", {}))
    return found


@functools.cache
def every_personal() -> Personal:
    """The personal columns of every read model (whichever this process runs)."""
    from projections.store import default_projections  # (the store imports this module)

    return personal_of(default_projections())


# -- the register of SQLite side files -------------------------------------------------


def register_side_file(database: Database, path: Path) -> None:
    """Note ``path`` as a side build in the live views file (SQLite), once."""
    live = database.views_path
    if path.resolve() == live.resolve():
        return
    live.parent.mkdir(parents=True, exist_ok=True)
    with contextlib.closing(sqlite3.connect(live, timeout=SQLITE_BUSY_TIMEOUT_S)) as conn:
        conn.execute(f"CREATE TABLE IF NOT EXISTS {SIDE_BUILDS_TABLE} (path TEXT PRIMARY KEY)")
        conn.execute(
            f"INSERT OR IGNORE INTO {SIDE_BUILDS_TABLE} (path) VALUES (?)", (str(path.resolve()),)
        )
        conn.commit()


def _side_files(database: Database) -> list[Path]:
    """The registered side files that still exist (the others leave the register)."""
    live = database.views_path
    if not live.exists():
        return []
    with contextlib.closing(sqlite3.connect(live, timeout=SQLITE_BUSY_TIMEOUT_S)) as conn:
        conn.execute(f"CREATE TABLE IF NOT EXISTS {SIDE_BUILDS_TABLE} (path TEXT PRIMARY KEY)")
        paths = [Path(p) for (p,) in conn.execute(f"SELECT path FROM {SIDE_BUILDS_TABLE}")]
        gone = [(str(p),) for p in paths if not p.exists()]
        conn.executemany(f"DELETE FROM {SIDE_BUILDS_TABLE} WHERE path = ?", gone)
        conn.commit()
    return [p for p in paths if p.exists()]


# -- clearing ----------------------------------------------------------------------------


def side_builds(database: Database, personal: Personal) -> list[str]:
    """Every side build holding one of the ``personal`` tables: schemas (PostgreSQL) or
    file paths (SQLite)."""
    if database.is_sqlite:
        return [str(p) for p in _side_files(database)]
    import psycopg

    with psycopg.connect(database.psycopg_conninfo(), autocommit=True) as conn:
        return sorted({schema for schema, _table in _pg_tables(conn, database, personal)})


def scrub_side_builds(
    database: Database, personal: Personal, members: Sequence[str], only: str | None = None
) -> list[str]:
    """Clear the ``personal`` columns of ``members`` in every side build (or in ``only``);
    returns the side builds that held such a table."""
    if not members or not personal:
        return []
    if database.is_sqlite:
        paths = _side_files(database) if only is None else [Path(only)]
        return [str(p) for p in paths if p.exists() and _scrub_file(p, personal, members)]
    return _scrub_schemas(database, personal, members, only)


def scrub_forgotten_since(
    recorder: ApplicationRecorder,
    database: Database,
    personal: Personal,
    target: str,
    position: int,
) -> list[str]:
    """Clear, in the side build ``target`` (built up to ``position``), the members
    forgotten after ``position``; returns their ids."""
    members: list[str] = []
    start = position
    while True:
        page = recorder.select_notifications(
            start, 1000, topics=[Member.Forgotten.TOPIC], inclusive_of_start=False
        )
        members += [str(n.originator_id) for n in page]
        if len(page) < 1000:
            break
        start = page[-1].id
    if members:
        scrub_side_builds(database, personal, list(dict.fromkeys(members)), only=target)
    return members


def _scrub_file(path: Path, personal: Personal, members: Sequence[str]) -> bool:
    try:
        with contextlib.closing(sqlite3.connect(path, timeout=LOCK_WAIT_S)) as conn:
            conn.execute("PRAGMA secure_delete = ON")  # the old values do not linger in it
            tables = {name for (name,) in conn.execute("SELECT name FROM sqlite_master")}
            held = [t for t in personal if t in tables]
            for table in held:
                key, columns = personal[table]
                conn.execute(scrub_statement(table, key, columns, len(members)), list(members))
            conn.commit()
            if held:
                conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")  # nor in its WAL
    except sqlite3.Error as e:  # e.g. locked by a long write: said, not fatal
        log.warning("a forget could not clear side build %s: %s", path, e)
        return False
    return bool(held)


def _pg_tables(conn: Any, database: Database, personal: Personal) -> list[tuple[str, str]]:
    names = [*personal, *(LIVE_COPY_PREFIX + t for t in personal)]
    rows = conn.execute(
        "SELECT table_schema, table_name FROM information_schema.tables "
        "WHERE table_name = ANY(%s) AND table_schema <> %s "
        "AND table_schema NOT IN ('pg_catalog', 'information_schema')",
        (names, database.views_schema),
    ).fetchall()
    return [(str(schema), str(table)) for schema, table in rows]


def _scrub_schemas(
    database: Database, personal: Personal, members: Sequence[str], only: str | None
) -> list[str]:
    import psycopg

    scrubbed: set[str] = set()
    with psycopg.connect(database.psycopg_conninfo(), autocommit=True) as conn:
        found = [(s, t) for s, t in _pg_tables(conn, database, personal) if only in (None, s)]
        conn.execute(f"SET lock_timeout = '{int(LOCK_WAIT_S * 1000)}ms'")
        for schema, table in found:
            key, columns = personal[table.removeprefix(LIVE_COPY_PREFIX)]
            statement = scrub_statement(f'"{schema}"."{table}"', key, columns, len(members))
            try:
                conn.execute(statement.replace("?", "%s"), list(members))
                conn.execute(f'VACUUM "{schema}"."{table}"')  # no dead row keeps the values
            except (psycopg.errors.UndefinedTable, psycopg.errors.InvalidSchemaName):
                continue  # a verification's build, dropped since it was listed
            except psycopg.Error as e:  # e.g. held by a long transaction: said, not fatal
                log.warning("a forget could not clear side build %s.%s: %s", schema, table, e)
                continue
            scrubbed.add(schema)
    return sorted(scrubbed)
