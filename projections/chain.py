"""The hash chain over the notification log, and the notary that signs its checkpoints.

Every event is chained in position order (docs/decisions/audit.md has the formula):

    hash_n = SHA-256( prev || u64(position) || aggregate id (16 bytes) || u64(version)
                      || u32 len + topic || u32 len + event time || u32 len + stored bytes )

``prev`` is the hash of the previous *existing* event (32 zero bytes before the first),
the event time is the ``timestamp`` of the stored state exactly as stored, and the
stored bytes are the state column exactly as stored (personal fields as ciphertext).
Lengths are big-endian, so no two different events can feed the same bytes.

The (position, seq, hash) of every chained event is persisted in ``audit_chain``:
a position present there and missing from the log is a deleted event, while a
natural gap (a failed insert consumed a sequence value) is absent from both.

Every ``every`` chained events (and on demand at the head) the notary signs a
checkpoint with Ed25519. Checkpoints live in ``audit_checkpoints``, outside the
projection's ``tables``: a rebuild of the chain never drops a signed attestation,
and the checksum of the chain compares only what a rebuild recomputes.
"""

from __future__ import annotations

import base64
import hashlib
import struct
from dataclasses import dataclass
from typing import Any, Protocol
from uuid import UUID

import msgspec
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from domain.clock import Clock, system_clock
from projections.views import Tx

GENESIS = bytes(32)
CHECKPOINT_EVERY_DEFAULT = 1000
CHECKPOINT_EVERY_MAX = 1_000_000
SIGNING_KEY_SECRET = "audit-signing-key"
MESSAGE_TAG = "siyu-ledger/chain-checkpoint/v1"
CHAIN_TABLE = "audit_chain"
CHECKPOINTS_TABLE = "audit_checkpoints"
CHECKPOINTS_DDL = (
    f"CREATE TABLE IF NOT EXISTS {CHECKPOINTS_TABLE} ("
    "position BIGINT PRIMARY KEY, seq BIGINT NOT NULL, hash TEXT NOT NULL, "
    "key_id TEXT NOT NULL, signature TEXT NOT NULL, signed_at TEXT NOT NULL)"
)


class _Stamped(msgspec.Struct):
    timestamp: str | None = None


_stamp_decoder = msgspec.json.Decoder(_Stamped)


def stored_time(state: bytes) -> str:
    """The ``timestamp`` of a stored state as stored; empty if it cannot be read."""
    try:
        return _stamp_decoder.decode(state).timestamp or ""
    except (msgspec.DecodeError, msgspec.ValidationError):
        return ""


def _id_bytes(aggregate_id: UUID | str) -> bytes:
    if isinstance(aggregate_id, UUID):
        return aggregate_id.bytes
    try:
        return UUID(aggregate_id).bytes
    except ValueError:
        return aggregate_id.encode()


_U32 = struct.Struct(">I").pack
_U64 = struct.Struct(">Q").pack


def link_hash(
    prev: bytes,
    position: int,
    aggregate_id: UUID | str,
    version: int,
    topic: str,
    event_time: str,
    state: bytes,
) -> bytes:
    """One link of the chain (see the module docstring)."""
    assert len(prev) == 32
    topic_b, time_b = topic.encode(), event_time.encode()
    return hashlib.sha256(
        b"".join(
            (
                prev,
                _U64(position),
                _id_bytes(aggregate_id),
                _U64(version),
                _U32(len(topic_b)),
                topic_b,
                _U32(len(time_b)),
                time_b,
                _U32(len(state)),
                state,
            )
        )
    ).digest()


class StoredLike(Protocol):
    @property
    def originator_id(self) -> UUID | str: ...
    @property
    def originator_version(self) -> int: ...
    @property
    def topic(self) -> str: ...
    @property
    def state(self) -> bytes: ...


def hash_of(prev: bytes, position: int, stored: StoredLike) -> bytes:
    state = bytes(stored.state)
    return link_hash(
        prev,
        position,
        stored.originator_id,
        stored.originator_version,
        stored.topic,
        stored_time(state),
        state,
    )


# -- checkpoints and the notary ----------------------------------------------------------


@dataclass(frozen=True)
class Checkpoint:
    position: int
    seq: int
    hash: str
    key_id: str
    signature: str
    signed_at: str

    @property
    def message(self) -> bytes:
        return checkpoint_message(self.position, self.seq, self.hash, self.signed_at)

    def as_dict(self) -> dict[str, Any]:
        return {
            "position": self.position,
            "seq": self.seq,
            "hash": self.hash,
            "key_id": self.key_id,
            "algorithm": "ed25519",
            "signature": self.signature,
            "signed_at": self.signed_at,
            "message": self.message.decode(),
        }


def checkpoint_message(position: int, seq: int, hash_hex: str, signed_at: str) -> bytes:
    """The exact bytes signed: an auditor can rebuild them from the digest's fields."""
    return f"{MESSAGE_TAG}\n{position}\n{seq}\n{hash_hex}\n{signed_at}".encode()


def key_id_of(public_key: Ed25519PublicKey) -> str:
    raw = public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()[:16]


class Notary:
    """Signs checkpoints of the chain with the install's Ed25519 key."""

    def __init__(
        self,
        private_key: Ed25519PrivateKey,
        every: int = CHECKPOINT_EVERY_DEFAULT,
        clock: Clock = system_clock,
    ) -> None:
        assert 1 <= every <= CHECKPOINT_EVERY_MAX
        self._private_key = private_key
        self.public_key = private_key.public_key()
        self.key_id = key_id_of(self.public_key)
        self.every = every
        self.clock = clock

    def sign(self, position: int, seq: int, hash_hex: str) -> Checkpoint:
        signed_at = self.clock().isoformat()
        signature = self._private_key.sign(checkpoint_message(position, seq, hash_hex, signed_at))
        return Checkpoint(
            position, seq, hash_hex, self.key_id, base64.b64encode(signature).decode(), signed_at
        )

    def public_key_info(self) -> dict[str, str]:
        raw = self.public_key.public_bytes(
            serialization.Encoding.Raw, serialization.PublicFormat.Raw
        )
        pem = self.public_key.public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        return {
            "algorithm": "ed25519",
            "key_id": self.key_id,
            "public_key": base64.b64encode(raw).decode(),
            "pem": pem.decode(),
            "message_format": f"{MESSAGE_TAG}\\n<position>\\n<seq>\\n<hash>\\n<signed_at>",
        }


def signature_valid(public_key: Ed25519PublicKey, checkpoint: Checkpoint) -> bool:
    try:
        public_key.verify(base64.b64decode(checkpoint.signature, validate=True), checkpoint.message)
    except (InvalidSignature, ValueError):
        return False
    return True


class SecretSource(Protocol):
    def get(self, name: str, *, configured: str | None = None, nbytes: int = 32) -> str: ...


def notary_from_secrets(
    secrets: SecretSource,
    configured: str | None = None,
    every: int = CHECKPOINT_EVERY_DEFAULT,
    clock: Clock = system_clock,
) -> Notary:
    """The configured key (64 hex digits: an Ed25519 seed), else the one kept with the store."""
    seed_hex = secrets.get(SIGNING_KEY_SECRET, configured=configured, nbytes=32)
    try:
        seed = bytes.fromhex(seed_hex)
    except ValueError:
        raise ValueError("the audit signing key must be 64 hex digits (an Ed25519 seed)") from None
    if len(seed) != 32:
        raise ValueError("the audit signing key must be 64 hex digits (an Ed25519 seed)")
    return Notary(Ed25519PrivateKey.from_private_bytes(seed), every, clock)


# -- the projection ---------------------------------------------------------------------


@dataclass(frozen=True)
class ChainHead:
    position: int
    seq: int
    hash: bytes


EMPTY_HEAD = ChainHead(0, 0, GENESIS)


def chain_head(tx: Tx) -> ChainHead:
    row = tx.fetchone(
        f"SELECT position, seq, hash FROM {CHAIN_TABLE} ORDER BY position DESC LIMIT 1"
    )
    return EMPTY_HEAD if row is None else ChainHead(int(row[0]), int(row[1]), bytes.fromhex(row[2]))


class HashChain:
    """Projection: chains every event as it is projected; signs every ``notary.every``."""

    name: str = "chain"
    version: int = 1
    reads_stored: bool = True
    tables: dict[str, str] = {
        CHAIN_TABLE: (
            f"CREATE TABLE IF NOT EXISTS {CHAIN_TABLE} ("
            "position BIGINT PRIMARY KEY, seq BIGINT NOT NULL, hash TEXT NOT NULL)"
        ),
    }
    # Extra DDL, run with the indexes: the checkpoints survive a rebuild of the chain.
    indexes: tuple[str, ...] = (CHECKPOINTS_DDL,)
    topics: frozenset[str] = frozenset()

    def __init__(self, notary: Notary | None = None) -> None:
        self.notary = notary
        # The head as of the last apply in transaction ``_tx``; any other transaction
        # (a new batch, a retried one, another process's) reads it again.
        self._tx: Tx | None = None
        self._head = EMPTY_HEAD

    def prepare(self, tx: Tx, events: list[tuple[Any, int]]) -> None:
        """The head, read before the batch writes anything (no wait on those writes)."""
        self._head = chain_head(tx)
        self._tx = tx

    def apply(self, tx: Tx, event: Any, position: int) -> None:
        if tx is not self._tx:
            self.prepare(tx, [])
        prev = self._head
        assert position > prev.position, "the chain grows in position order"
        digest = hash_of(prev.hash, position, event)
        seq = prev.seq + 1
        tx.execute(
            f"INSERT INTO {CHAIN_TABLE} (position, seq, hash) VALUES (?, ?, ?)",
            (position, seq, digest.hex()),
        )
        self._head = ChainHead(position, seq, digest)
        if self.notary is not None and seq % self.notary.every == 0:
            save_checkpoint(tx, self.notary.sign(position, seq, digest.hex()))


def save_checkpoint(tx: Tx, checkpoint: Checkpoint) -> None:
    tx.execute(
        f"INSERT INTO {CHECKPOINTS_TABLE} (position, seq, hash, key_id, signature, signed_at) "
        "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (position) DO NOTHING",
        (
            checkpoint.position,
            checkpoint.seq,
            checkpoint.hash,
            checkpoint.key_id,
            checkpoint.signature,
            checkpoint.signed_at,
        ),
    )


_CHECKPOINT_COLUMNS = "position, seq, hash, key_id, signature, signed_at"


def _checkpoint(row: tuple[Any, ...]) -> Checkpoint:
    return Checkpoint(int(row[0]), int(row[1]), str(row[2]), str(row[3]), str(row[4]), str(row[5]))


def latest_checkpoint(tx: Tx) -> Checkpoint | None:
    row = tx.fetchone(
        f"SELECT {_CHECKPOINT_COLUMNS} FROM {CHECKPOINTS_TABLE} ORDER BY position DESC LIMIT 1"
    )
    return None if row is None else _checkpoint(row)


def all_checkpoints(tx: Tx) -> list[Checkpoint]:
    rows = tx.fetchall(f"SELECT {_CHECKPOINT_COLUMNS} FROM {CHECKPOINTS_TABLE} ORDER BY position")
    return [_checkpoint(r) for r in rows]


def sign_head(tx: Tx, notary: Notary) -> Checkpoint | None:
    """A checkpoint at the chain's head (the latest one if it is already there)."""
    head = chain_head(tx)
    if head.seq == 0:
        return None
    latest = latest_checkpoint(tx)
    if latest is not None and latest.position >= head.position:
        return latest
    checkpoint = notary.sign(head.position, head.seq, head.hash.hex())
    save_checkpoint(tx, checkpoint)
    return checkpoint


def chain_hashes(tx: Tx, positions: list[int]) -> dict[int, str]:
    """The persisted hash of each of ``positions`` that is chained."""
    if not positions:
        return {}
    marks = ", ".join("?" for _ in positions)
    rows = tx.fetchall(
        f"SELECT position, hash FROM {CHAIN_TABLE} WHERE position IN ({marks})", positions
    )
    return {int(r[0]): str(r[1]) for r in rows}


def find_chain(projections: Any) -> HashChain | None:
    for p in projections:
        if isinstance(p, HashChain):
            return p
    return None
