"""Read model: the trace of every unit and case by its outer code, scoped by who held it.

``trace_codes`` keeps each code's current state; ``trace_steps`` its history. A unit
inherits the steps of the case it is in while it is in it: Case.Shipped and
Case.Received name the units inside at that moment, so each gets its own step with
detail ``via`` (containment is time-scoped: after an unpack, later shipments of the
case name other units). Pack and unpack show on the case (Case.Packed/Unpacked,
detail ``units``) and on each unit (Unit.Packed/Unpacked, detail ``parent``).

Visibility: ``trace_holders`` keeps every partner path that held or was sent a code
(owner at commission, destination at ship, who is then the receiver, seller; the
holders of a case count for the units inside it at the time). A scope sees a code, and its whole
history, when one of those paths lies in its subtree. A scan step carries only its
outcome, region code and code kind: never a member, a consumer code or coordinates.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import msgspec

from domain.identity import id_text
from domain.units import Case, Unit, UnitState
from projections.partners import partner_path, scope_clause
from projections.readings import Reading, every, run_reading
from projections.views import Tx, rows_in

_json = msgspec.json.Encoder()
_unjson = msgspec.json.Decoder(dict[str, Any])

STATE_COLUMNS = (
    "code",
    "kind",
    "sku",
    "gtin",
    "batch_id",
    "state",
    "owner",
    "container",
    "dealer",
    "scan_count",
    "position",
)


CODES_CACHED_MAX = 1_000_000


class TraceView:
    name: str = "trace"
    follows: tuple[str, ...] = ("partners",)  # reads partner paths
    version: int = 1
    tables: dict[str, str] = {
        "trace_codes": (
            "CREATE TABLE IF NOT EXISTS trace_codes ("
            "code TEXT PRIMARY KEY, id TEXT NOT NULL UNIQUE, kind TEXT NOT NULL, "
            "sku TEXT NOT NULL, gtin TEXT NOT NULL, batch_id TEXT NOT NULL, state TEXT NOT NULL, "
            "owner TEXT, destination TEXT, container TEXT, dealer TEXT, "
            "scan_count BIGINT NOT NULL, position BIGINT NOT NULL)"
        ),
        "trace_steps": (
            "CREATE TABLE IF NOT EXISTS trace_steps ("
            "code TEXT NOT NULL, position BIGINT NOT NULL, seq INTEGER NOT NULL, "
            "at TEXT NOT NULL, action TEXT NOT NULL, partner TEXT, detail TEXT NOT NULL, "
            "PRIMARY KEY (code, position, seq))"
        ),
        "trace_holders": (
            "CREATE TABLE IF NOT EXISTS trace_holders ("
            "code TEXT NOT NULL, path TEXT NOT NULL, position BIGINT NOT NULL, "
            "PRIMARY KEY (code, path))"
        ),
    }
    indexes: tuple[str, ...] = ()

    def __init__(self) -> None:
        # aggregate id -> outer code: fixed by the commissioning event, so it may outlive a
        # transaction (unlike anything else a read model reads)
        self._codes: dict[str, str] = {}

    topics: frozenset[str] = frozenset(
        {
            Unit.Commissioned.TOPIC,
            Unit.Surfaced.TOPIC,
            Unit.Packed.TOPIC,
            Unit.Unpacked.TOPIC,
            Unit.Shipped.TOPIC,
            Unit.Received.TOPIC,
            Unit.Sold.TOPIC,
            Unit.Scanned.TOPIC,
            Case.Commissioned.TOPIC,
            Case.Packed.TOPIC,
            Case.Unpacked.TOPIC,
            Case.UnitSold.TOPIC,
            Case.Shipped.TOPIC,
            Case.Received.TOPIC,
        }
    )

    def prepare(self, tx: Tx, events: list[tuple[Any, int]]) -> None:
        """Codes, owners and destinations of the items the batch moves, in one query (not
        of those it commissions: they have no row before the batch ends)."""
        created = (Unit.Commissioned, Unit.Surfaced, Case.Commissioned)
        new = {id_text(e.originator_id) for e, _ in events if isinstance(e, created)}
        ids = list(
            dict.fromkeys(
                item
                for e, _ in events
                if not isinstance(e, created) and (item := id_text(e.originator_id)) not in new
            )
        )
        stored: dict[str, dict[str, Any]] = tx.memo.setdefault(_STORED, {})
        select = "SELECT id, code, owner, destination FROM trace_codes WHERE id"
        for item, code, owner, destination in rows_in(tx, select, ids):
            self._remember(str(item), str(code))
            stored[str(code)] = {"owner": owner, "destination": destination}

    def finish(self, tx: Tx) -> None:
        write_codes(tx)

    def apply(self, tx: Tx, event: Any, position: int) -> None:
        if isinstance(event, (Unit.Commissioned, Unit.Surfaced, Case.Commissioned)):
            _commissioned(tx, event, position)
            self._remember(id_text(event.originator_id), event.serial)
            return
        code = self._code_of(tx, event)
        if code is None:
            return
        if isinstance(event, (Unit.Shipped, Case.Shipped)):
            _shipped(tx, [code], event, position, {})
            _shipped(tx, getattr(event, "units", ()), event, position, {"via": code})
        elif isinstance(event, (Unit.Received, Case.Received)):
            receiver = _destination(tx, code)
            _received(tx, [code], receiver, event, position, {})
            _received(tx, getattr(event, "units", ()), receiver, event, position, {"via": code})
        elif isinstance(event, (Case.Packed, Case.Unpacked)):
            action = "pack" if isinstance(event, Case.Packed) else "unpack"
            _add_step(
                tx, code, event, position, action, _owner(tx, code), {"units": list(event.units)}
            )
        elif isinstance(event, Unit.Packed):
            _unit_packed(tx, code, event, position)
        elif isinstance(event, Unit.Unpacked):
            _unit_unpacked(tx, code, event, position)
        elif isinstance(event, Unit.Sold):
            _sold(tx, code, event, position)
        elif isinstance(event, Case.UnitSold):
            _add_step(tx, code, event, position, "sell", event.store, {"unit": event.unit})
        elif isinstance(event, Unit.Scanned):
            _scanned(tx, code, event, position)

    def _remember(self, item: str, code: str) -> None:
        if len(self._codes) >= CODES_CACHED_MAX:
            self._codes.clear()
        self._codes[item] = code

    def _code_of(self, tx: Tx, event: Any) -> str | None:
        item = id_text(event.originator_id)
        code = self._codes.get(item) or tx.memo.get(_NEW_IDS, {}).get(item)
        if code is None:
            row = tx.fetchone("SELECT code FROM trace_codes WHERE id = ?", (item,))
            if row is None:
                return None
            code = str(row[0])
            self._remember(item, code)
        return code


# -- applying --------------------------------------------------------------------
# A code's owner and destination as this batch leaves them: its own change if it made
# one (``_change``: every write of those columns is in this module), else the row as
# stored, read in ``prepare`` (or here, once, for a code it did not foresee).

_STORED = "trace.stored"  # code -> {"owner": ..., "destination": ...} as read


def _column(tx: Tx, column: str, code: str) -> str | None:
    change = tx.memo.get(_CHANGES, {}).get(code)
    if change is not None and column in change:
        return change[column]  # type: ignore[no-any-return]
    stored: dict[str, dict[str, Any]] = tx.memo.setdefault(_STORED, {})
    if code not in stored:
        row = tx.fetchone("SELECT owner, destination FROM trace_codes WHERE code = ?", (code,))
        stored[code] = {"owner": None, "destination": None} if row is None else {
            "owner": row[0], "destination": row[1]
        }  # fmt: skip
    return stored[code][column]  # type: ignore[no-any-return]


def _owner(tx: Tx, code: str) -> str | None:
    return _column(tx, "owner", code)


def _destination(tx: Tx, code: str) -> str | None:
    return _column(tx, "destination", code)


# The codes' rows are folded per batch: ``_change`` records each code's new column
# values (and how many scans to add) in ``tx.memo``, and ``write_codes`` writes them at
# the batch's end, one INSERT for the new codes and one UPDATE per set of changed columns.

_CHANGES = "trace.changes"  # code -> {column: value}; the batch's new codes: whole rows
_NEW_IDS = "trace.new_ids"  # aggregate id -> code, of the codes the batch commissioned
_SCANS = "+scans"  # (in a change: scans to add to scan_count)
_CODE_COLUMNS = (
    "code", "id", "kind", "sku", "gtin", "batch_id", "state", "owner", "destination",
    "container", "dealer", "scan_count", "position",
)  # fmt: skip


def _change(tx: Tx, codes: Iterable[str], **columns: Any) -> None:
    changes: dict[str, dict[str, Any]] = tx.memo.setdefault(_CHANGES, {})
    for code in codes:
        changes.setdefault(code, {}).update(columns)


def _add_scan(tx: Tx, code: str, position: int) -> None:
    change: dict[str, Any] = tx.memo.setdefault(_CHANGES, {}).setdefault(code, {})
    if "scan_count" in change:  # a code this batch commissioned
        change["scan_count"] += 1
    else:
        change[_SCANS] = change.get(_SCANS, 0) + 1
    change["position"] = position


def write_codes(tx: Tx) -> None:
    changes: dict[str, dict[str, Any]] = tx.memo.pop(_CHANGES, {})
    new = tx.memo.get(_NEW_IDS, {})
    fresh = set(new.values())
    tx.executemany(
        f"INSERT INTO trace_codes ({', '.join(_CODE_COLUMNS)}) "
        f"VALUES ({', '.join('?' * len(_CODE_COLUMNS))})",
        [tuple(changes[code][c] for c in _CODE_COLUMNS) for code in changes if code in fresh],
    )
    by_columns: dict[tuple[str, ...], list[tuple[Any, ...]]] = {}
    for code, change in changes.items():
        if code not in fresh:
            columns = tuple(sorted(change))
            by_columns.setdefault(columns, []).append((*(change[c] for c in columns), code))
    for columns, rows in by_columns.items():
        assignments = ", ".join(
            "scan_count = scan_count + ?" if c == _SCANS else f"{c} = ?" for c in columns
        )
        tx.executemany(f"UPDATE trace_codes SET {assignments} WHERE code = ?", rows)


def _commissioned(tx: Tx, event: Any, position: int) -> None:
    kind = "case" if isinstance(event, Case.Commissioned) else "unit"
    state = UnitState.IN_STOCK if event.owner is not None else UnitState.ISSUED
    tx.memo.setdefault(_NEW_IDS, {})[id_text(event.originator_id)] = event.serial
    _change(
        tx,
        [event.serial],
        code=event.serial,
        id=id_text(event.originator_id),
        kind=kind,
        sku=event.sku,
        gtin=event.gtin,
        batch_id=event.batch_id,
        state=state.value,
        owner=event.owner,
        destination=None,
        container=None,
        dealer=None,
        scan_count=0,
        position=position,
    )
    if event.owner is not None:
        _add_step(tx, event.serial, event, position, "commission", event.owner, {})
        _add_holders(tx, [event.serial], event.owner, position)


def _shipped(
    tx: Tx, codes: Sequence[str], event: Any, position: int, detail: dict[str, Any]
) -> None:
    """Ship steps for ``codes``: in transit to ``event.to``, who may trace them from now."""
    if not codes:
        return
    _add_steps(tx, codes, event, position, "ship", event.source, {"to": event.to, **detail})
    dealer = {"dealer": event.to} if event.to_kind == "dealer" else {}
    _change(
        tx,
        codes,
        state=UnitState.IN_TRANSIT.value,
        destination=event.to,
        position=position,
        **dealer,
    )
    _add_holders(tx, codes, event.to, position)


def _received(
    tx: Tx,
    codes: Sequence[str],
    receiver: str | None,
    event: Any,
    position: int,
    detail: dict[str, Any],
) -> None:
    if not codes:
        return
    _add_steps(tx, codes, event, position, "receive", receiver, detail)
    _change(
        tx,
        codes,
        state=UnitState.IN_STOCK.value,
        owner=receiver,
        destination=None,
        position=position,
    )
    # No holder rows: the receiver is the destination the ship named, a holder of these
    # codes since the ship's position (a path never changes), so each row would be
    # dropped by ON CONFLICT DO NOTHING; sent, they cost a row per unit per receive.


def _unit_packed(tx: Tx, code: str, event: Any, position: int) -> None:
    _add_step(tx, code, event, position, "pack", _owner(tx, code), {"parent": event.case})
    _change(tx, [code], container=event.case, position=position)


def _unit_unpacked(tx: Tx, code: str, event: Any, position: int) -> None:
    """The unit leaves its case and takes over the case's whereabouts at that moment."""
    _add_step(tx, code, event, position, "unpack", event.owner, {"parent": event.case})
    _change(
        tx,
        [code],
        container=None,
        state=event.state,
        owner=event.owner,
        destination=event.destination,
        dealer=event.dealer,
        position=position,
    )


def _sold(tx: Tx, code: str, event: Any, position: int) -> None:
    detail = {} if event.left_case is None else {"left_case": event.left_case}
    _add_step(tx, code, event, position, "sell", event.store, detail)
    _change(
        tx,
        [code],
        state=UnitState.SOLD.value,
        owner=event.store,
        container=None,
        destination=None,
        dealer=event.dealer,
        position=position,
    )
    _add_holders(tx, [code], event.store, position)


def _scanned(tx: Tx, code: str, event: Any, position: int) -> None:
    detail = {
        "outcome": event.outcome,
        "region_code": event.region_code,
        "code_kind": event.code_kind,
    }
    _add_step(tx, code, event, position, "scan", None, detail)
    _add_scan(tx, code, position)


def _add_step(
    tx: Tx,
    code: str,
    event: Any,
    position: int,
    action: str,
    partner: str | None,
    detail: dict[str, Any],
) -> None:
    _add_steps(tx, [code], event, position, action, partner, detail)


def _add_steps(
    tx: Tx,
    codes: Iterable[str],
    event: Any,
    position: int,
    action: str,
    partner: str | None,
    detail: dict[str, Any],
) -> None:
    at = event.timestamp.isoformat()
    text = _json.encode(detail).decode()
    tx.executemany(
        "INSERT INTO trace_steps (code, position, seq, at, action, partner, detail) "
        "VALUES (?, ?, 0, ?, ?, ?, ?)",
        [(code, position, at, action, partner, text) for code in codes],
    )


def _add_holders(tx: Tx, codes: Iterable[str], partner: str, position: int) -> None:
    """A holder's first position stands (``DO NOTHING``; the write queue sends a pair
    queued twice once: a unit shipped to a partner and received by it)."""
    path = partner_path(tx, partner)
    tx.executemany(
        "INSERT INTO trace_holders (code, path, position) VALUES (?, ?, ?) "
        "ON CONFLICT (code, path) DO NOTHING",
        [(code, path, position) for code in codes],
    )


# -- queries ---------------------------------------------------------------------


def get_trace(tx: Tx, code: str, scope_path: str | None) -> dict[str, Any] | None:
    return run_reading(tx, read_trace(code, scope_path))


def read_trace(code: str, scope_path: str | None) -> Reading[dict[str, Any] | None]:
    """The trace of ``code`` (API.md's shape), or None if unknown or outside the scope.
    One statement (the state, whether the scope may see it, each step of its history):
    a snapshot, and one round trip."""
    params: list[Any] = []
    seen = "1"  # the root's subtree is everything
    if scope_path is not None and "/" in scope_path:
        clause, params = scope_clause(scope_path)
        seen = f"EXISTS (SELECT 1 FROM trace_holders h WHERE h.code = c.code AND {clause})"
    rows = yield from every(
        f"SELECT {', '.join('c.' + column for column in STATE_COLUMNS)}, {seen}, "
        "s.at, s.position, s.action, s.partner, s.detail "
        "FROM trace_codes c LEFT JOIN trace_steps s ON s.code = c.code "
        "WHERE c.code = ? ORDER BY s.position, s.seq",
        [*params, code],
    )
    if not rows or not rows[0][len(STATE_COLUMNS)]:
        return None
    record = dict(zip(STATE_COLUMNS, rows[0], strict=False))
    record["scan_count"] = int(record["scan_count"])
    record["position"] = int(record["position"])
    record["history"] = [
        {
            "at": at,
            "position": int(position),
            "action": action,
            "partner": partner,
            **_unjson.decode(detail),
        }
        for at, position, action, partner, detail in (row[len(STATE_COLUMNS) + 1 :] for row in rows)
        if position is not None  # (a code with no step yet: one row, no step)
    ]
    return record


def gtins_of(tx: Tx, codes: Sequence[str]) -> dict[str, str]:
    """The GTIN of each of ``codes`` the trace knows (unscoped: for the URLs of the cases
    and units a trace the caller may see names)."""
    select = "SELECT code, gtin FROM trace_codes WHERE code"
    return {str(code): str(gtin) for code, gtin in rows_in(tx, select, codes)}


def trace_at(trace: dict[str, Any], position: int) -> dict[str, Any] | None:
    """The trace as it stood at ``position`` (as of a time, via the time index): the
    history up to there, and the state, owner, container and scan count it implies.
    None if the code had no step yet."""
    steps = [h for h in trace["history"] if h["position"] <= position]
    if not steps:
        return None
    state, owner, container = "issued", None, None
    for step in steps:
        action = step["action"]
        if action in ("commission", "receive"):
            state, owner = "in_stock", step["partner"]
        elif action == "ship":
            state, owner = "in_transit", step["partner"]  # the source holds it in transit
        elif action == "sell" and "unit" not in step:  # (a case's sell step: a unit left it)
            state, owner, container = "sold", step["partner"], None
        elif action == "pack" and "parent" in step:
            container = step["parent"]
        elif action == "unpack" and "parent" in step:
            container = None
    return {
        **trace,
        "state": state,
        "owner": owner,
        "container": container,
        "scan_count": sum(1 for h in steps if h["action"] == "scan"),
        "position": steps[-1]["position"],
        "history": steps,
    }
