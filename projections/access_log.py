"""The access log: who read partner or member data, what, and when.

Kept in table ``siyu_access_log`` of the event database, beside the secrets: outside
the event log (a read is not a fact of the ledger, and an event per read would flood
the log and the chain), and outside the read models (a rebuild never drops it).
Rows are only ever inserted.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from projections.database import reading

ACCESS_LOG_TABLE = "siyu_access_log"
PATH_LENGTH_MAX = 300
QUERY_LENGTH_MAX = 500

_COLUMNS = ("id", "at", "role", "partner", "token_id", "method", "path", "query", "status")


@dataclass(frozen=True)
class Access:
    at: str
    role: str
    partner: str
    token_id: str | None
    method: str
    path: str
    query: str
    status: int


class AccessLog:
    def __init__(self, datastore: Any, is_sqlite: bool) -> None:
        self._datastore = datastore
        self._sqlite = is_sqlite
        key = "INTEGER PRIMARY KEY AUTOINCREMENT" if is_sqlite else "BIGSERIAL PRIMARY KEY"
        self._sql(
            f"CREATE TABLE IF NOT EXISTS {ACCESS_LOG_TABLE} (id {key}, at TEXT NOT NULL, "
            "role TEXT NOT NULL, partner TEXT NOT NULL, token_id TEXT, method TEXT NOT NULL, "
            "path TEXT NOT NULL, query TEXT NOT NULL, status INTEGER NOT NULL)",
            (),
        )

    @classmethod
    def of(cls, store: Any) -> AccessLog:
        return cls(store.ledger.recorder.datastore, store.database.is_sqlite)

    def _sql(self, sql: str, params: tuple[Any, ...], fetch: bool = False) -> list[Any]:
        statement = sql if self._sqlite else sql.replace("?", "%s")
        if not fetch:
            with self._datastore.transaction(commit=True) as cur:
                cur.execute(statement, params)
            return []
        with reading(self._datastore) as cur:
            cur.execute(statement, params)
            rows = cur.fetchall()
        return [tuple(r) if self._sqlite else tuple(r[c] for c in _COLUMNS) for r in rows]

    def record(self, access: Access) -> None:
        self.record_many([access])

    def record_many(self, accesses: Sequence[Access]) -> None:
        """Rows in order, in one transaction."""
        if not accesses:
            return
        statement = (
            f"INSERT INTO {ACCESS_LOG_TABLE} "
            "(at, role, partner, token_id, method, path, query, status) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
        )
        rows = [
            (
                a.at,
                a.role,
                a.partner,
                a.token_id,
                a.method,
                a.path[:PATH_LENGTH_MAX],
                a.query[:QUERY_LENGTH_MAX],
                a.status,
            )
            for a in accesses
        ]
        with self._datastore.transaction(commit=True) as cur:
            if self._sqlite:
                cur.executemany(statement, rows)
                return
            # COPY: a busy HQ or auditor's reads cost the writer thread (which shares
            # the API's interpreter) a fraction of one INSERT per row.
            columns = "at, role, partner, token_id, method, path, query, status"
            with cur.copy(f"COPY {ACCESS_LOG_TABLE} ({columns}) FROM STDIN") as copy:
                for row in rows:
                    copy.write_row(row)

    def list(
        self, after: int, limit: int, role: str | None = None, partner: str | None = None
    ) -> list[dict[str, Any]]:
        sql = f"SELECT {', '.join(_COLUMNS)} FROM {ACCESS_LOG_TABLE} WHERE id > ?"
        params: list[Any] = [after]
        if role is not None:
            sql += " AND role = ?"
            params.append(role)
        if partner is not None:
            sql += " AND partner = ?"
            params.append(partner)
        sql += " ORDER BY id LIMIT ?"
        params.append(limit)
        rows = self._sql(sql, tuple(params), fetch=True)
        return [dict(zip(_COLUMNS, row, strict=True)) for row in rows]
