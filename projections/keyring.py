"""Per-member keys for personal fields (crypto-shredding), kept outside the event log.

A personal field is stored as ``enc1:<base64(nonce | AES-256-GCM ciphertext)>`` with
the member id as associated data. Destroying a member's key (``forget``) leaves
every copy of those fields unreadable: they decode as null.
"""

from __future__ import annotations

import base64
import os
import threading
from typing import Any

import msgspec
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

KEYS_TABLE = "siyu_member_keys"
PREFIX = "enc1:"
NONCE_BYTES = 12

_json = msgspec.json.Encoder()
_unjson = msgspec.json.Decoder()


class MemberKeyring:
    """Implements domain.encoding.FieldCipher over a key table in the event database."""

    def __init__(self, datastore: Any, is_sqlite: bool) -> None:
        self._datastore = datastore
        self._sqlite = is_sqlite
        self._keys: dict[str, AESGCM | None] = {}
        self._lock = threading.Lock()
        key_type = "BLOB" if is_sqlite else "BYTEA"
        self._sql(
            f"CREATE TABLE IF NOT EXISTS {KEYS_TABLE} "
            f"(subject TEXT PRIMARY KEY, key {key_type} NOT NULL)",
            (),
        )

    def _sql(self, sql: str, params: tuple[Any, ...], fetch: bool = False) -> Any:
        statement = sql if self._sqlite else sql.replace("?", "%s")
        with self._datastore.transaction(commit=True) as cur:
            cur.execute(statement, params)
            if not fetch:
                return None
            row = cur.fetchone()
        if row is None:
            return None
        return row[0] if self._sqlite else row["key"]

    def _key(self, subject: str, create: bool) -> AESGCM | None:
        with self._lock:
            if subject in self._keys:
                return self._keys[subject]
        if create:
            self._sql(
                f"INSERT INTO {KEYS_TABLE} (subject, key) VALUES (?, ?) ON CONFLICT DO NOTHING",
                (subject, AESGCM.generate_key(bit_length=256)),
            )
        raw = self._sql(f"SELECT key FROM {KEYS_TABLE} WHERE subject = ?", (subject,), True)
        cipher = None if raw is None else AESGCM(bytes(raw))
        with self._lock:
            self._keys[subject] = cipher
        return cipher

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
            plain = cipher.decrypt(blob[:NONCE_BYTES], blob[NONCE_BYTES:], str(subject).encode())
            state[name] = _unjson.decode(plain)

    def forget(self, subject: str) -> bool:
        """Destroy the subject's key; True if there was one."""
        existed = self._sql(f"SELECT key FROM {KEYS_TABLE} WHERE subject = ?", (subject,), True)
        self._sql(f"DELETE FROM {KEYS_TABLE} WHERE subject = ?", (subject,))
        with self._lock:
            self._keys[subject] = None
        return existed is not None
