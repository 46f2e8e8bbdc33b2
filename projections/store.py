"""Opening a store: the Ledger (write side), its secrets, the view store and the engine.

Secrets that are not configured (install id, key for member ids, code keys,
signing keys...) are generated on first use and kept in table ``siyu_secrets`` of
the event database: with the store, never in an event, never in a log line.
"""

from __future__ import annotations

import functools
import secrets as random_secrets
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any
from uuid import UUID

from eventsourcing.persistence import StoredEvent

from domain.clock import Clock, system_clock
from domain.codebook import Codebook
from domain.codes import KEY_ID_COUNT, CodeKey
from domain.ledger import Ledger
from projections.alerts import PositionsOf
from projections.database import Database, parse_database_url, reading, reading_rows
from projections.engine import Engine, Projection
from projections.keyring import KEYS_TABLE, MemberKeyring
from projections.readings import Reading, every
from projections.recorders import CARRIED_FORWARD
from projections.views import ViewStore
from projections.wakeups import Notifications
from projections.workers import worker_share

SECRETS_TABLE = "siyu_secrets"
CODE_KEY_PREFIX = "code-key-"
DEFAULT_CODE_BASE_URL = "https://id.siyu.example"


def default_projections(
    positions_of: PositionsOf | None = None,
    notary: Any = None,
) -> list[Projection]:
    """Every read model, the partner directory first (the others read its paths)."""
    from projections.alerts import AlertsView
    from projections.chain import HashChain
    from projections.inventory import InventoryView
    from projections.money import money_projections
    from projections.partners import PartnerDirectory
    from projections.sell_through import SellThroughView
    from projections.time_index import TimeIndex
    from projections.trace import TraceView

    return [
        PartnerDirectory(),
        TraceView(),
        InventoryView(),
        AlertsView(positions_of),
        SellThroughView(),
        HashChain(notary),
        TimeIndex(),
        *money_projections(),
        *loyalty_projections(),
    ]


def loyalty_projections() -> list[Projection]:
    """Members, points history, loyalty programmes and the 4R dashboard (issue 5)."""
    from projections.dashboard_4r import Dashboard4RView
    from projections.loyalty_programs import LoyaltyProgramsView
    from projections.members_view import MembersView
    from projections.points_history import PointsHistoryView

    return [MembersView(), PointsHistoryView(), LoyaltyProgramsView(), Dashboard4RView()]


class Secrets:
    """Named secrets kept with the event store; created at most once, race-free."""

    def __init__(self, ledger: Ledger, database: Database) -> None:
        self._datastore: Any = ledger.recorder.datastore  # type: ignore[attr-defined]
        self._sqlite = database.is_sqlite
        self._cache: dict[str, str] = {}
        self._sql(
            f"CREATE TABLE IF NOT EXISTS {SECRETS_TABLE} "
            "(name TEXT PRIMARY KEY, value TEXT NOT NULL)",
            (),
        )

    def _sql(self, sql: str, params: tuple[Any, ...], fetch: bool = False) -> Any:
        if self._sqlite:
            with self._datastore.transaction(commit=True) as cur:
                cur.execute(sql, params)
                return cur.fetchone() if fetch else None
        with self._datastore.transaction(commit=True) as cur:
            cur.execute(sql.replace("?", "%s"), params)
            return cur.fetchone() if fetch else None

    def with_prefix(self, prefix: str) -> dict[str, str]:
        sql = f"SELECT name, value FROM {SECRETS_TABLE}"
        statement = sql if self._sqlite else sql.replace("?", "%s")
        with reading(self._datastore) as cur:
            cur.execute(statement, ())
            rows = cur.fetchall()
        pairs = [(r[0], r[1]) if self._sqlite else (r["name"], r["value"]) for r in rows]
        return {name: value for name, value in pairs if name.startswith(prefix)}

    def get(self, name: str, *, configured: str | None = None, nbytes: int = 32) -> str:
        """The secret ``name``: the configured value, else the kept one, else a new one."""
        if configured:
            return configured
        if name not in self._cache:
            self._sql(
                f"INSERT INTO {SECRETS_TABLE} (name, value) VALUES (?, ?) ON CONFLICT DO NOTHING",
                (name, random_secrets.token_hex(nbytes)),
            )
            row = self._sql(f"SELECT value FROM {SECRETS_TABLE} WHERE name = ?", (name,), True)
            self._cache[name] = row[0] if self._sqlite else row["value"]
        return self._cache[name]


def codebook(secrets: Secrets, base_url: str, current_key_id: int) -> Codebook:
    """The code key ring: every key ever used (kept), and the current one (made if new)."""
    if not 0 <= current_key_id < KEY_ID_COUNT:
        raise ValueError(f"code key id must be in [0, {KEY_ID_COUNT})")
    secrets.get(f"{CODE_KEY_PREFIX}{current_key_id}")
    keys = {
        int(name.removeprefix(CODE_KEY_PREFIX)): CodeKey(
            int(name.removeprefix(CODE_KEY_PREFIX)), bytes.fromhex(value)
        )
        for name, value in secrets.with_prefix(CODE_KEY_PREFIX).items()
    }
    return Codebook(keys=keys, current_key_id=current_key_id, base_url=base_url)


class _InitialisationLock:
    """Serialises opening a PostgreSQL store across processes (CREATE ... IF NOT EXISTS
    races on the catalog when two processes create the same table at once)."""

    KEY = 0x5179_4C65_6467_6572  # "SiyLedger"

    def __init__(self, database: Database) -> None:
        self._conn: Any = None
        if database.is_sqlite:
            return
        import psycopg

        self._conn = psycopg.connect(database.psycopg_conninfo(), autocommit=True)
        self._conn.execute("SELECT pg_advisory_lock(%s)", (self.KEY % (1 << 63),))

    def release(self) -> None:
        if self._conn is not None:
            self._conn.close()  # closing the session releases its advisory lock
            self._conn = None

    def __del__(self) -> None:
        self.release()


def _position_lookup(ledger: Ledger, database: Database) -> Any:
    datastore: Any = ledger.recorder.datastore  # type: ignore[attr-defined]
    table: str = ledger.recorder.events_table_name  # type: ignore[attr-defined]
    if database.is_sqlite:

        def sqlite_position(aggregate_id: UUID, version: int) -> int | None:
            with reading(datastore) as cur:
                cur.execute(
                    f"SELECT rowid FROM {table} WHERE originator_id = ? AND originator_version = ?",
                    (aggregate_id.hex, version),
                )
                row = cur.fetchone()
            return None if row is None else int(row[0])

        return sqlite_position

    def pg_position(aggregate_id: UUID, version: int) -> int | None:
        with reading(datastore) as cur:
            cur.execute(
                f"SELECT notification_id FROM {table} "
                "WHERE originator_id = %s AND originator_version = %s",
                (aggregate_id, version),
            )
            row = cur.fetchone()
        return None if row is None else int(row["notification_id"])

    return pg_position


def _positions_lookup(ledger: Ledger) -> Any:
    """Events' positions (aggregate id and version each; those stored), in one statement
    (PostgreSQL; the ids and versions as two binary arrays)."""
    datastore: Any = ledger.recorder.datastore  # type: ignore[attr-defined]
    table: str = ledger.recorder.events_table_name  # type: ignore[attr-defined]
    statement = (
        f"SELECT e.originator_id, e.originator_version, e.notification_id FROM {table} e "
        "JOIN unnest(%b::uuid[], %b::bigint[]) AS r (id, version) "
        "ON e.originator_id = r.id AND e.originator_version = r.version"
    )

    def pg_positions(events: Sequence[tuple[UUID, int]]) -> dict[tuple[UUID, int], int]:
        if not events:
            return {}
        ids, versions = [e[0] for e in events], [e[1] for e in events]
        with reading_rows(datastore) as cur:
            cur.execute(statement, (ids, versions), prepare=True)
            rows = cur.fetchall()
        return {(_uuid(r[0]), int(r[1])): int(r[2]) for r in rows}

    return pg_positions


def _uuid(value: Any) -> UUID:
    """An originator id as psycopg returns it (UUID, or text where no adapter is set)."""
    return value if isinstance(value, UUID) else UUID(str(value))


def events_with_keys_statement(table: str) -> str:
    """Aggregates' events (``%s``: their ids) from each one's newest carried-forward event
    on (``domain.carry_forward``; from its first where it has none), each first row with
    the key of the aggregate if it has one (PostgreSQL).

    A subquery per first row, not a join: without statistics (a young table, or
    autovacuum off) the planner hashed the whole key table for each read (7.7 ms at
    10,000 members against 0.3 ms); a scalar subquery is one index probe. The newest
    carried-forward event is one probe of its partial index (``CARRIED_FORWARD``, stated
    as the index states it)."""
    carried = CARRIED_FORWARD.replace("%", "%%")  # a statement with parameters
    # Each id's events by a lateral subquery that cannot be flattened (OFFSET 0): an index
    # scan per id whatever the estimates. As a plain join it was planned, without
    # statistics, as a hash join over a sequential scan of the whole table (312 ms at a
    # million events, against 1 ms). ``since`` likewise is worked out once per id.
    return (
        "SELECT e.originator_id, e.originator_version, e.topic, e.state, e.key "
        "FROM (SELECT DISTINCT unnest(%s::uuid[]) AS id) AS i "
        "CROSS JOIN LATERAL (SELECT x.originator_id, x.originator_version, x.topic, x.state, "
        f"CASE WHEN x.originator_version = s.since THEN (SELECT k.key FROM {KEYS_TABLE} k "
        "WHERE k.subject = x.originator_id::text) END AS key "
        "FROM (SELECT COALESCE((SELECT c.originator_version "
        f"FROM {table} c WHERE c.originator_id = i.id AND c.{carried} "
        "ORDER BY c.originator_version DESC LIMIT 1), 1) AS since OFFSET 0) AS s "
        f"JOIN {table} x ON x.originator_id = i.id AND x.originator_version >= s.since "
        "OFFSET 0) AS e "
        "ORDER BY e.originator_id, e.originator_version"
    )


def _sqlite_events_statement(table: str, count: int) -> str:
    """``events_with_keys_statement`` for SQLite (``count`` ids as parameters; no keys)."""
    marks = ", ".join("(?)" for _ in range(count))
    return (
        f"WITH i(id) AS (SELECT DISTINCT column1 FROM (VALUES {marks})), "
        "s(id, since) AS (SELECT i.id, COALESCE((SELECT c.originator_version "
        f"FROM {table} c WHERE c.originator_id = i.id AND c.{CARRIED_FORWARD} "
        "ORDER BY c.originator_version DESC LIMIT 1), 1) FROM i) "
        "SELECT e.originator_id, e.originator_version, e.topic, e.state "
        f"FROM s JOIN {table} e ON e.originator_id = s.id AND e.originator_version >= s.since "
        "ORDER BY e.originator_id, e.originator_version"
    )


def _events_lookup(ledger: Ledger, database: Database, keyring: MemberKeyring) -> Any:
    """Many aggregates' stored events in one query (a command's reads in one round trip).

    PostgreSQL: with each aggregate's key, where it is the subject of its own personal
    fields (a member), so that decoding the member's events asks for no key again: a
    scan by a known member cost a statement for it."""
    datastore: Any = ledger.recorder.datastore  # type: ignore[attr-defined]
    table: str = ledger.recorder.events_table_name  # type: ignore[attr-defined]

    def grouped(rows: Any, uuid_of: Callable[[Any], UUID]) -> dict[UUID, list[StoredEvent]]:
        found: dict[UUID, list[StoredEvent]] = {}
        for row in rows:
            originator = uuid_of(row[0])
            found.setdefault(originator, []).append(
                StoredEvent(originator, int(row[1]), str(row[2]), bytes(row[3]))
            )
        return found

    if database.is_sqlite:

        def sqlite_events(ids: Sequence[UUID]) -> dict[UUID, list[StoredEvent]]:
            with reading(datastore) as cur:
                cur.execute(_sqlite_events_statement(table, len(ids)), [i.hex for i in ids])
                return grouped(cur.fetchall(), UUID)

        return sqlite_events

    # Binary both ways, rows as tuples: as text, every state came hex-encoded and the
    # ids went as a text array, each dumped and parsed in Python (a scan's reads: 63 ->
    # 40 us of the client's CPU for three aggregates; a logistics request reads hundreds).
    statement = events_with_keys_statement(table).replace("unnest(%s", "unnest(%b")

    def pg_events(ids: Sequence[UUID]) -> dict[UUID, list[StoredEvent]]:
        with reading_rows(datastore) as cur:
            cur.execute(statement, (list(ids),), prepare=True)
            rows = cur.fetchall()
        keyring.remember_stored({str(r[0]): r[4] for r in rows if r[4] is not None})
        return grouped(rows, _uuid)

    return pg_events


def _versions_lookup(ledger: Ledger, database: Database) -> Any:
    """Each aggregate's latest version, in one query, decoding nothing (absent: not
    listed): enough to tell whether something cached from it is still current."""
    datastore: Any = ledger.recorder.datastore  # type: ignore[attr-defined]
    table: str = ledger.recorder.events_table_name  # type: ignore[attr-defined]

    if database.is_sqlite:

        def sqlite_versions(ids: Sequence[UUID]) -> dict[UUID, int]:
            marks = ", ".join("?" for _ in ids)
            with reading(datastore) as cur:
                cur.execute(
                    f"SELECT originator_id, MAX(originator_version) FROM {table} "
                    f"WHERE originator_id IN ({marks}) GROUP BY originator_id",
                    [i.hex for i in ids],
                )
                return {UUID(r[0]): int(r[1]) for r in cur.fetchall()}

        return sqlite_versions

    versions = _VERSIONS.format(table).replace("?", "%b")  # binary, as ``pg_events``

    def pg_versions(ids: Sequence[UUID]) -> dict[UUID, int]:
        with reading_rows(datastore) as cur:
            cur.execute(versions, (list(ids),), prepare=True)
            return {r[0]: r[1] for r in cur.fetchall()}

    return pg_versions


_VERSIONS = (
    "SELECT originator_id, MAX(originator_version) AS version FROM {} "
    "WHERE originator_id = ANY(?) GROUP BY originator_id"
)


@functools.cache
def _versions_named(schema: str, table: str) -> str:
    return _VERSIONS.format(f'"{schema}"."{table}"')


def read_versions(ledger: Ledger, ids: Sequence[UUID]) -> Reading[dict[UUID, int]]:
    """``ledger.versions_of`` as a reading, for ``AsyncReads`` on PostgreSQL, whose
    connections are to the same database (the events table named with its schema)."""
    recorder: Any = ledger.recorder
    statement = _versions_named(recorder.datastore.schema, recorder.events_table_name)
    rows = yield from every(statement, (list(ids),))
    return {_uuid(r[0]): int(r[1]) for r in rows}


@dataclass
class Store:
    database: Database
    ledger: Ledger
    secrets: Secrets
    views: ViewStore
    engine: Engine
    keyring: MemberKeyring

    @classmethod
    def open(
        cls,
        url: str,
        *,
        clock: Clock = system_clock,
        projections: Iterable[Projection] | None = None,
        worker: tuple[int, int] | None = None,
        views_target: str | None = None,
        code_base_url: str = DEFAULT_CODE_BASE_URL,
        code_key_id: int = 0,
        signing_key: str | None = None,
        checkpoint_every: int | None = None,
    ) -> Store:
        from projections.chain import CHECKPOINT_EVERY_DEFAULT, notary_from_secrets

        database = parse_database_url(url)
        if database.sqlite_path is not None:
            database.sqlite_path.parent.mkdir(parents=True, exist_ok=True)
        guard = _InitialisationLock(database)  # tables are created once, not raced
        ledger = Ledger(database.eventsourcing_env(), clock=clock)
        ledger.position_of = _position_lookup(ledger, database)
        if not database.is_sqlite:  # SQLite: one by one, each a local call
            ledger.positions_of = _positions_lookup(ledger)
        ledger.versions_of = _versions_lookup(ledger, database)
        secrets = Secrets(ledger, database)
        keyring = MemberKeyring(ledger.recorder.datastore, database.is_sqlite)  # type: ignore[attr-defined]
        ledger.select_many = _events_lookup(ledger, database, keyring)
        ledger.mapper.field_cipher = keyring  # type: ignore[attr-defined]
        ledger.codebook = codebook(secrets, code_base_url, code_key_id)
        ledger.member_id_key = bytes.fromhex(secrets.get("member-id-key"))
        ledger.ensure_hq()
        views = ViewStore(database, target=views_target)
        chosen = (
            default_projections(
                ledger.positions_of,
                notary_from_secrets(
                    secrets, signing_key, checkpoint_every or CHECKPOINT_EVERY_DEFAULT, clock
                ),
            )
            if projections is None
            else list(projections)
        )
        others: list[Projection] = []
        if worker is not None:  # one projection worker's share (projections/workers.py)
            chosen, others = worker_share(chosen, *worker)
        wakeups = None
        if not database.is_sqlite:
            channel: str = ledger.recorder.channel_name  # type: ignore[attr-defined]
            wakeups = Notifications(database.psycopg_conninfo(), channel)
        engine = Engine(
            ledger.recorder, ledger.mapper, views, chosen, others=others, wakeups=wakeups
        )
        engine.ensure_schema()
        guard.release()
        return cls(database, ledger, secrets, views, engine, keyring)

    @property
    def head(self) -> int:
        return self.ledger.recorder.max_notification_id() or 0

    def close(self) -> None:
        """Idempotent: the app's shutdown and the CLI's ``finally`` may both call it."""
        if getattr(self, "_closed", False):
            return
        self._closed = True
        self.engine.stop()
        self.views.close()
        self.ledger.close()
