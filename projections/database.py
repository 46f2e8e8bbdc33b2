"""Where the store lives: ``SIYU_DATABASE_URL`` -> eventsourcing environment and view storage.

``sqlite:///path/siyu.db``: events in that file, read models in ``path/siyu.views.db``
(SQLite allows one writer per file: the API's writes and the projection engine's
writes then never wait on each other).
``postgresql://user@host:port/db``: events in table ``stored_events``, read models in
schema ``views`` of the same database (or another schema for a side build).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlparse

DEFAULT_SQLITE_PATH = "var/siyu.db"
DEFAULT_VIEWS_SCHEMA = "views"
# Every PostgreSQL session the store opens (the event store's pool, the views' pools, the
# engine's listener): no JIT. Its cost threshold is a planner estimate, and the command's
# one-query reads (``= ANY`` of a few ids) are estimated at a tenth of the events table
# where no statistics are kept (autovacuum off, a restored or freshly loaded database):
# past about 110,000 events each read compiled first, 6 to 29 ms for 0.1 ms of work, and
# scans fell from 600 to 130-270/s at 5-10 times PostgreSQL's CPU (docs/performance.md,
# round 13). The statements here are short lookups and set-based writes; none gains.
SESSION_OPTIONS = "-c jit=off"


class DatabaseUrlError(ValueError):
    pass


@dataclass(frozen=True)
class Database:
    url: str
    kind: str  # "sqlite" or "postgresql"
    sqlite_path: Path | None = None
    host: str = "127.0.0.1"
    port: int = 5432
    user: str = "postgres"
    password: str = ""
    dbname: str = ""
    views_schema: str = DEFAULT_VIEWS_SCHEMA

    @property
    def is_sqlite(self) -> bool:
        return self.kind == "sqlite"

    @property
    def views_path(self) -> Path:
        assert self.sqlite_path is not None
        return self.sqlite_path.with_name(self.sqlite_path.stem + ".views.db")

    def eventsourcing_env(self) -> dict[str, str]:
        if self.is_sqlite:
            assert self.sqlite_path is not None
            return {
                "PERSISTENCE_MODULE": "eventsourcing.sqlite",
                "SQLITE_DBNAME": str(self.sqlite_path),
                "SQLITE_LOCK_TIMEOUT": "30",
                "APPLICATION_RECORDER_TOPIC": "projections.recorders:SQLiteLedgerRecorder",
            }
        return {
            "PERSISTENCE_MODULE": "eventsourcing.postgres",
            "POSTGRES_DBNAME": self.dbname,
            "POSTGRES_HOST": self.host,
            "POSTGRES_PORT": str(self.port),
            "POSTGRES_USER": self.user,
            "POSTGRES_PASSWORD": self.password,
            "POSTGRES_POOL_SIZE": "10",
            "POSTGRES_MAX_OVERFLOW": "10",
            "POSTGRES_LOCK_TIMEOUT": "10",
            "POSTGRES_CONN_MAX_AGE": "",
            "APPLICATION_RECORDER_TOPIC": "projections.recorders:PostgresLedgerRecorder",
        }

    def psycopg_conninfo(self, dbname: str | None = None) -> str:
        from psycopg.conninfo import make_conninfo

        return make_conninfo(
            host=self.host,
            port=self.port,
            user=self.user,
            password=self.password or None,
            dbname=dbname or self.dbname,
            options=SESSION_OPTIONS,
        )


def masked_url(url: str) -> str:
    """``url`` fit to print: its password (``user:password@``, ``?password=``) as ``***``."""
    scheme, sep, rest = url.partition("://")
    if not sep:
        return url
    # up to the last "@" before the query: a password may hold a "/" left unencoded
    head, question, query = rest.partition("?")
    userinfo, at, after = head.rpartition("@")
    if at and ":" in userinfo:
        head = f"{userinfo.split(':', 1)[0]}:***@{after}"
    query = re.sub(r"(?i)((?:^|[&;])password=)[^&;]*", r"\1***", query)
    return f"{scheme}{sep}{head}{question}{query}"


def parse_database_url(url: str) -> Database:
    try:
        return _parse_database_url(url)
    except DatabaseUrlError:
        raise
    except ValueError as e:  # urllib's own complaints: a port that is not a number, ...
        raise DatabaseUrlError(f"cannot read the database URL {masked_url(url)!r}: {e}") from None


def _parse_database_url(url: str) -> Database:
    parsed = urlparse(url)
    if parsed.scheme == "sqlite":
        # SQLAlchemy's convention: sqlite:///relative/file.db, sqlite:////absolute/file.db
        prefix = "sqlite:///"
        if not url.startswith(prefix):
            raise DatabaseUrlError("a sqlite URL looks like sqlite:///var/siyu.db")
        raw = unquote(url[len(prefix) :].split("?", 1)[0])
        return Database(url=url, kind="sqlite", sqlite_path=Path(raw or DEFAULT_SQLITE_PATH))
    if parsed.scheme in {"postgresql", "postgres"}:
        query = parse_qs(parsed.query)
        dbname = parsed.path.lstrip("/")
        if not dbname:
            raise DatabaseUrlError("a postgresql URL needs a database name")
        return Database(
            url=url,
            kind="postgresql",
            host=parsed.hostname or "127.0.0.1",
            port=parsed.port or 5432,
            user=unquote(parsed.username or "postgres"),
            password=unquote(parsed.password or ""),
            dbname=dbname,
            views_schema=query.get("views_schema", [DEFAULT_VIEWS_SCHEMA])[0],
        )
    raise DatabaseUrlError(
        f"unsupported database URL {masked_url(url)!r} (sqlite:/// or postgresql://)"
    )


@contextmanager
def reading(datastore: Any) -> Iterator[Any]:
    """A cursor for one read on the event store's datastore (eventsourcing's).

    PostgreSQL: on the pool's autocommit connection, not in ``transaction(commit=False)``:
    that one ends in ROLLBACK, and psycopg answers a rollback by dropping every statement
    the connection had prepared (DEALLOCATE ALL), so one such read cost the commands
    that next used the connection their prepared plans (measured: 1 in 10 scans)."""
    from eventsourcing.postgres import PostgresDatastore

    if not isinstance(datastore, PostgresDatastore):  # SQLite: no prepared statements
        with datastore.transaction(commit=False) as cur:
            yield cur
        return
    with datastore.get_connection() as conn, conn.cursor() as cur:
        assert conn.autocommit, "eventsourcing's PostgreSQL connections are autocommit"
        yield cur


@contextmanager
def reading_rows(datastore: Any) -> Iterator[Any]:
    """``reading``'s cursor on PostgreSQL for a read of many rows: sent in binary (as text,
    bytes come hex-encoded and ids as text, each converted in Python) and made tuples, not
    dicts. The caller's statement may take binary parameters (``%b``)."""
    from psycopg.rows import tuple_row

    with datastore.get_connection() as conn, conn.cursor(row_factory=tuple_row, binary=True) as cur:
        assert conn.autocommit, "eventsourcing's PostgreSQL connections are autocommit"
        yield cur
