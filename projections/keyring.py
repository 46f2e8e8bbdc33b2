"""Per-member keys for personal fields (crypto-shredding), kept outside the event log.

A personal field is stored as ``enc1:<base64(nonce | AES-256-GCM ciphertext)>`` with
the member id as associated data. Destroying a member's key (``forget``) leaves
every copy of those fields unreadable: they decode as null.

Across processes (several API processes, workers, the relay on one database), each
process caches keys for at most ``cache_ttl_s``: a forget made elsewhere takes effect
here within that time, and a miss (no key) is looked up again after it too. A
forgotten member who comes back gets a new key under the same subject; what the old
key sealed fails authentication under the new one and decodes as null as well.

Blind index: an event class may name ``blind_index_fields`` (Member.Joined: phone).
Encrypting such a field also records HMAC(server secret, normalised value) ->
subject in ``siyu_blind_index``, so HQ can find a member by phone without a clear
phone anywhere. ``forget`` deletes the subject's key and its index rows in one
transaction (docs/decisions/crypto-shredding.md).

Inside ``sealing()`` (a command's events being encrypted, in the command's thread) a
new key and the index rows are not written at once but listed; the ledger writes
them in the events' own transaction (projections.recorders). Outside it they are
committed at once, before the events that use them.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
import os
import secrets
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import msgspec
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from projections.database import reading

KEYS_TABLE = "siyu_member_keys"
BLIND_INDEX_TABLE = "siyu_blind_index"
BLIND_KEY_SECRET = "blind-index-key"
SECRETS_TABLE = "siyu_secrets"  # projections.store.SECRETS_TABLE (which imports this module)
PREFIX = "enc1:"
NONCE_BYTES = 12
KEY_CACHE_TTL_S = 2.0
# A cap on the cached keys, whatever the rate: the time to live alone keeps only those
# fetched in its last seconds (each entry goes once it is stale and the next key comes).
KEYS_CACHED_MAX = 50_000
PREFETCH_MAX = 500

log = logging.getLogger("siyu.keyring")
_json = msgspec.json.Encoder()
_unjson = msgspec.json.Decoder()


INSERT_KEY = f"INSERT INTO {KEYS_TABLE} (subject, key) VALUES (?, ?)"
INSERT_INDEX = (
    f"INSERT INTO {BLIND_INDEX_TABLE} (field, blind, subject) VALUES (?, ?, ?) "
    "ON CONFLICT DO NOTHING"
)


@dataclass
class _Sealing:
    """One command's encryption: the keys it made and the rows still to write."""

    keyring: MemberKeyring
    created: frozenset[str] = frozenset()  # subjects known to have no key yet
    keys: dict[str, AESGCM] = field(default_factory=dict)
    writes: list[tuple[str, tuple[Any, ...]]] = field(default_factory=list)

    def committed(self) -> None:
        """The writes are stored: the keys made here are everyone's now."""
        for subject, cipher in self.keys.items():
            self.keyring._remember(subject, cipher)


def normalise_for_index(value: Any) -> str:
    """One form per phone: digits only, without China's country code (+86 / 0086)."""
    text = "".join(ch for ch in str(value) if ch.isalnum()).lower()
    if text.isdigit():
        for code in ("0086", "86"):
            rest = text.removeprefix(code)
            if rest != text and len(rest) == 11 and rest.startswith("1"):
                return rest
    return text


class MemberKeyring:
    """Implements domain.encoding.FieldCipher over a key table in the event database."""

    def __init__(
        self,
        datastore: Any,
        is_sqlite: bool,
        cache_ttl_s: float = KEY_CACHE_TTL_S,
        clock: Callable[[], float] = time.monotonic,  # the cache's (seconds)
    ) -> None:
        self._datastore = datastore
        self._sqlite = is_sqlite
        self.cache_ttl_s = cache_ttl_s
        self._clock = clock
        self._keys: dict[str, tuple[AESGCM | None, float]] = {}
        self._lock = threading.Lock()
        self._blind_key: bytes | None = None
        self._sealing = threading.local()
        key_type = "BLOB" if is_sqlite else "BYTEA"
        self._sql(
            f"CREATE TABLE IF NOT EXISTS {KEYS_TABLE} "
            f"(subject TEXT PRIMARY KEY, key {key_type} NOT NULL)",
            (),
        )
        self._sql(
            f"CREATE TABLE IF NOT EXISTS {BLIND_INDEX_TABLE} (field TEXT NOT NULL, "
            "blind TEXT NOT NULL, subject TEXT NOT NULL, PRIMARY KEY (field, blind, subject))",
            (),
        )

    def _sql(
        self, sql: str, params: tuple[Any, ...], fetch: bool = False, column: str = "key"
    ) -> Any:
        statement = sql if self._sqlite else sql.replace("?", "%s")
        with self._datastore.transaction(commit=True) as cur:
            cur.execute(statement, params)
            if not fetch:
                return None
            row = cur.fetchone()
        if row is None:
            return None
        return row[0] if self._sqlite else row[column]

    @contextmanager
    def sealing(self, created: Iterable[str] = ()) -> Iterator[_Sealing]:
        """Within (this thread): new keys and index rows are listed, not written; the
        caller writes the list in the transaction of the events encrypted meanwhile.
        A key made here is not cached for others: until that transaction commits it is
        only this command's (a retried command starts a new sealing and looks again);
        the caller says ``committed()`` once it is stored.

        ``created``: subjects the events create (a new member), whose key is made
        without first looking for a stored one. Should one exist after all (made and
        committed outside a sealing, by a save that then failed), the key's plain
        INSERT fails the events' transaction and the caller, deciding again, looks
        (the ledger names ``created`` on a command's first attempt only)."""
        session = _Sealing(self, frozenset(created))
        outer = getattr(self._sealing, "current", None)
        self._sealing.current = session
        try:
            yield session
        finally:
            self._sealing.current = outer

    def _stored_key(self, subject: str) -> bytes | None:
        statement = f"SELECT key FROM {KEYS_TABLE} WHERE subject = ?"
        with reading(self._datastore) as cur:
            cur.execute(statement if self._sqlite else statement.replace("?", "%s"), (subject,))
            row = cur.fetchone()
        if row is None:
            return None
        return bytes(row[0] if self._sqlite else row["key"])

    def _key(self, subject: str, create: bool) -> AESGCM | None:
        with self._lock:
            cached = self._keys.get(subject)
        fresh = cached is not None and self._clock() - cached[1] < self.cache_ttl_s
        if cached is not None and fresh and (cached[0] is not None or not create):
            return cached[0]
        session: _Sealing | None = getattr(self._sealing, "current", None)
        if session is not None and subject in session.keys:
            return session.keys[subject]
        if create and session is not None:
            return self._key_sealed(subject, session)
        raw = None
        if create:  # one statement (one commit) for a new member's key
            raw = self._sql(
                f"INSERT INTO {KEYS_TABLE} (subject, key) VALUES (?, ?) "
                "ON CONFLICT DO NOTHING RETURNING key",
                (subject, AESGCM.generate_key(bit_length=256)),
                True,
            )
        if raw is None:  # an existing key (or another process made it first)
            raw = self._stored_key(subject)
        cipher = None if raw is None else AESGCM(bytes(raw))
        self._remember(subject, cipher)
        return cipher

    def _remember(self, subject: str, cipher: AESGCM | None) -> None:
        self._remember_all({subject: cipher})

    def _remember_all(self, ciphers: Mapping[str, AESGCM | None]) -> None:
        """Cache these subjects' keys (None: no key, i.e. forgotten) as fetched now.

        The cache is kept in the order keys were fetched (one is moved to the end when
        fetched again), so its stale entries are at its start: they are dropped here, and
        the oldest beyond ``KEYS_CACHED_MAX``. It held every subject a process ever
        decrypted: in a server's inline engine, ``siyu verify`` or a replay, a million
        members were a million entries kept for good, each useful for two seconds."""
        fetched_at = self._clock()
        with self._lock:
            keys = self._keys
            for subject, cipher in ciphers.items():
                keys.pop(subject, None)
                keys[subject] = (cipher, fetched_at)
            dropped: list[str] = []
            for subject, (_cipher, at) in keys.items():
                kept = len(keys) - len(dropped)
                if kept <= KEYS_CACHED_MAX and fetched_at - at < self.cache_ttl_s:
                    break
                dropped.append(subject)
            for subject in dropped:
                del keys[subject]

    def _key_sealed(self, subject: str, session: _Sealing) -> AESGCM:
        """The subject's stored key, or a new one listed for the command's transaction."""
        raw = None if subject in session.created else self._stored_key(subject)
        if raw is not None:
            cipher = AESGCM(bytes(raw))
            self._remember(subject, cipher)
            return cipher
        new = AESGCM.generate_key(bit_length=256)
        session.writes.append((INSERT_KEY, (subject, new)))
        session.keys[subject] = AESGCM(new)
        return session.keys[subject]

    def cached_subjects(self) -> list[str]:
        """The subjects whose keys (or their absence) are cached, oldest first."""
        with self._lock:
            return list(self._keys)

    def remember_stored(self, keys: dict[str, bytes]) -> None:
        """Keys read with other rows in one statement (e.g. a member's with its events):
        cached as if fetched here, now."""
        if keys:
            self._remember_all({subject: AESGCM(bytes(raw)) for subject, raw in keys.items()})

    def prefetch(self, subjects: Iterable[str]) -> None:
        """The keys of ``subjects`` not freshly cached, in one query per 500."""
        now = self._clock()
        with self._lock:
            missing = [
                s
                for s in dict.fromkeys(subjects)
                if (cached := self._keys.get(s)) is None or now - cached[1] >= self.cache_ttl_s
            ]
        for start in range(0, len(missing), PREFETCH_MAX):
            chunk = missing[start : start + PREFETCH_MAX]
            marks = ", ".join("?" for _ in chunk)
            statement = f"SELECT subject, key FROM {KEYS_TABLE} WHERE subject IN ({marks})"
            with reading(self._datastore) as cur:
                cur.execute(statement if self._sqlite else statement.replace("?", "%s"), chunk)
                rows = cur.fetchall()
            found = {
                (r[0] if self._sqlite else r["subject"]): AESGCM(
                    bytes(r[1] if self._sqlite else r["key"])
                )
                for r in rows
            }
            # absent: forgotten (its key destroyed)
            self._remember_all({subject: found.get(subject) for subject in chunk})

    def encrypt_fields(self, event_cls: type, state: dict[str, Any]) -> None:
        subject = state.get(getattr(event_cls, "subject_field", ""))
        if subject is None:
            return
        cipher: AESGCM | None = None
        for name in event_cls.personal_fields:  # type: ignore[attr-defined]
            value = state.get(name)
            if value is None:
                continue
            cipher = cipher or self._key(str(subject), create=True)
            assert cipher is not None
            nonce = os.urandom(NONCE_BYTES)
            sealed = cipher.encrypt(nonce, _json.encode(value), str(subject).encode())
            state[name] = PREFIX + base64.b64encode(nonce + sealed).decode()
            if name in getattr(event_cls, "blind_index_fields", ()):
                self._index(name, value, str(subject))

    def decrypt_fields(self, event_cls: type, state: dict[str, Any]) -> None:
        subject = state.get(getattr(event_cls, "subject_field", ""))
        for name in event_cls.personal_fields:  # type: ignore[attr-defined]
            value = state.get(name)
            if not isinstance(value, str) or not value.startswith(PREFIX):
                continue
            cipher = None if subject is None else self._key(str(subject), create=False)
            if cipher is None:
                state[name] = None  # the key is gone: forgotten for good
                continue
            blob = base64.b64decode(value[len(PREFIX) :])
            try:
                plain = cipher.decrypt(
                    blob[:NONCE_BYTES], blob[NONCE_BYTES:], str(subject).encode()
                )
            except InvalidTag:
                # Sealed by a key destroyed since (the subject was forgotten and came
                # back with a new key). Tampering with stored bytes is the hash
                # chain's to detect; here it can only mean "no longer readable".
                state[name] = None
                continue
            state[name] = _unjson.decode(plain)

    # -- blind index --------------------------------------------------------------

    def _blind(self, field: str, value: Any) -> str:
        if self._blind_key is None:
            self._sql(
                f"INSERT INTO {SECRETS_TABLE} (name, value) VALUES (?, ?) ON CONFLICT DO NOTHING",
                (BLIND_KEY_SECRET, secrets.token_hex(32)),
            )
            raw = self._sql(
                f"SELECT value FROM {SECRETS_TABLE} WHERE name = ?",
                (BLIND_KEY_SECRET,),
                True,
                column="value",
            )
            self._blind_key = bytes.fromhex(str(raw))
        message = f"{field}\x1f{normalise_for_index(value)}".encode()
        return hmac.new(self._blind_key, message, hashlib.sha256).hexdigest()

    def _index(self, field: str, value: Any, subject: str) -> None:
        row = (field, self._blind(field, value), subject)
        session: _Sealing | None = getattr(self._sealing, "current", None)
        if session is not None:
            session.writes.append((INSERT_INDEX, row))
        else:
            self._sql(INSERT_INDEX, row)

    def lookup(self, field: str, value: Any) -> list[str]:
        """Subjects whose ``field`` was recorded with this value (callers re-check it)."""
        statement = f"SELECT subject FROM {BLIND_INDEX_TABLE} WHERE field = ? AND blind = ?"
        with reading(self._datastore) as cur:
            cur.execute(
                statement if self._sqlite else statement.replace("?", "%s"),
                (field, self._blind(field, value)),
            )
            rows = cur.fetchall()
        return sorted(r[0] if self._sqlite else r["subject"] for r in rows)

    # -- forgetting -----------------------------------------------------------------

    def forget(self, subject: str) -> bool:
        """Destroy the subject's key and blind-index rows; True if there was a key.

        SQLite overwrites the deleted rows (secure_delete) and folds the WAL back
        into the file, so the key's bytes are gone from the files; PostgreSQL keeps
        dead rows until vacuumed, so the two tables are vacuumed (best effort).
        Backups and PostgreSQL's WAL archive still hold the key: see
        docs/decisions/crypto-shredding.md.
        """
        with self._datastore.transaction(commit=True) as cur:
            if self._sqlite:
                cur.execute("PRAGMA secure_delete = ON", ())
            p = "?" if self._sqlite else "%s"
            cur.execute(f"SELECT subject FROM {KEYS_TABLE} WHERE subject = {p}", (subject,))
            existed = cur.fetchone() is not None
            cur.execute(f"DELETE FROM {KEYS_TABLE} WHERE subject = {p}", (subject,))
            cur.execute(f"DELETE FROM {BLIND_INDEX_TABLE} WHERE subject = {p}", (subject,))
        self._remember(subject, None)
        self._purge_remnants()
        return existed

    def _purge_remnants(self) -> None:
        try:
            if self._sqlite:
                with self._datastore.get_connection(commit=True) as conn:
                    conn.cursor().execute("PRAGMA wal_checkpoint(TRUNCATE)")
                return
            with self._datastore.get_connection() as conn:
                autocommit = conn.autocommit
                conn.autocommit = True
                try:
                    conn.execute(f"VACUUM {KEYS_TABLE}, {BLIND_INDEX_TABLE}")
                finally:
                    conn.autocommit = autocommit
        except Exception as e:  # the key row is deleted already; this only tidies up
            log.warning("after forget, could not purge deleted rows: %s", e)
