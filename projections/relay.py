"""The outward feed: a relay that publishes every event to a NATS JetStream stream.

It follows the notification log (never the request handlers) and publishes event
``P`` on subject ``siyu.<aggregate>.<event>`` (``siyu.member.joined``), with header
``Nats-Msg-Id: <install id>:<P>`` and a JSON payload
``{position, aggregate_id, version, type, at, data}``.

Exactly one message per event, across crashes:

- the relay's own position lives in ``siyu_relay_position`` (event database, one row
  per stream) and is written only after the broker acknowledged the publish;
- a crash between the ack and that write means the next start would publish again:
  the broker drops a repeat of a ``Nats-Msg-Id`` it saw within the stream's
  duplicate window (2 minutes), and beyond that window nothing would stop it, so
  on every (re)connection the relay also reads the stream's last message
  (subject filter ``siyu.>``) and resumes after the larger of the two positions;
- one relay publishes at a time: a lease in the same row (several API processes on
  one PostgreSQL database may all run one); during a hand-over the duplicate window
  absorbs the few messages both may send.

Personal data never leaves, not even encrypted: the payload's ``data`` is the
event's stored state masked exactly as the auditor's feed masks it
(``projections.event_feed.mask_personal``: a phone, exact coordinates, the name of a
clerk or distributor become ``"[personal]"``). Nothing is decrypted here. Not the
ciphertext either: no consumer holds a key, and a copy outside our control would
outlive the key's destruction (``forget``) in any backup that still holds the key.

Batches of at most ``batch_size_max`` events are published concurrently (at most
that many acks in flight); any failure (server down, ack timeout) closes the
connection, backs off (0.5 s doubling to 10 s) and starts again with the checks.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import re
import socket
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import msgspec
from eventsourcing.persistence import Notification

from projections.event_feed import mask_personal

log = logging.getLogger("siyu.relay")

POSITION_TABLE = "siyu_relay_position"
MSG_ID_HEADER = "Nats-Msg-Id"
DEFAULT_STREAM = "SIYU"
DEFAULT_SUBJECT_PREFIX = "siyu"
BATCH_SIZE_MAX = 256
ACK_TIMEOUT_S = 5.0
CONNECT_TIMEOUT_S = 2.0
POLL_INTERVAL_S = 0.1
BACKOFF_S_MIN = 0.5
BACKOFF_S_MAX = 10.0
LEASE_S = 15.0
DUPLICATE_WINDOW_S = 120.0
MAX_AGE_S = 365 * 24 * 3600.0

_payload_encoder = msgspec.json.Encoder()
_payload_decoder = msgspec.json.Decoder()
_CAMEL = re.compile(r"(?<=[a-z0-9])(?=[A-Z])")
_ENVELOPE_FIELDS = frozenset({"timestamp", "originator_topic"})


@dataclass(frozen=True)
class RelayConfig:
    """Where and how to publish; every stream setting is explicit (DESIGN.md)."""

    nats_url: str
    stream: str = DEFAULT_STREAM
    subject_prefix: str = DEFAULT_SUBJECT_PREFIX
    batch_size_max: int = BATCH_SIZE_MAX
    duplicate_window_s: float = DUPLICATE_WINDOW_S
    # An outward feed for integrations: a year of history; consumers that need more
    # read GET /v1/events. No byte cap: with "discard old" it would silently drop
    # events a slow consumer has not read yet; the server's own limits still apply.
    max_age_s: float = MAX_AGE_S
    max_bytes: int = -1
    replicas: int = 1  # one server here; 3 on a production cluster

    def __post_init__(self) -> None:
        assert 0 < self.batch_size_max <= BATCH_SIZE_MAX
        assert re.fullmatch(r"[A-Za-z0-9_-]{1,64}", self.stream), "a NATS stream name"
        assert re.fullmatch(r"[a-z0-9_-]+(\.[a-z0-9_-]+)*", self.subject_prefix)


def subject_words(topic: str) -> tuple[str, str]:
    """``siyu.ClientRequest.Recorded`` -> (``client_request``, ``recorded``)."""
    name = topic.split(":", 1)[-1]
    parts = [p for p in name.split(".") if p]
    if parts and parts[0] == "siyu":
        parts = parts[1:]
    if not parts:
        return ("unknown", "unknown")
    aggregate, event = (parts[0], parts[-1]) if len(parts) > 1 else ("event", parts[0])
    return tuple(_CAMEL.sub("_", w).lower() for w in (aggregate, event))  # type: ignore[return-value]


def event_message(
    mapper: Any, notification: Notification, install_id: str, subject_prefix: str
) -> tuple[str, bytes, dict[str, str]]:
    """The subject, payload and headers of one event (no decryption happens here)."""
    cls, state = mapper.decode_state(notification)
    at = state.get("timestamp")
    topic = notification.topic
    data = mask_personal(cls, topic, {k: v for k, v in state.items() if k not in _ENVELOPE_FIELDS})
    aggregate, event = subject_words(topic)
    payload = {
        "position": notification.id,
        "aggregate_id": str(notification.originator_id),
        "version": notification.originator_version,
        "type": topic,
        "at": at.isoformat() if isinstance(at, datetime) else at,
        "data": data,
    }
    headers = {MSG_ID_HEADER: f"{install_id}:{notification.id}"}
    return f"{subject_prefix}.{aggregate}.{event}", _payload_encoder.encode(payload), headers


def position_of_msg_id(msg_id: str | None, install_id: str) -> int | None:
    """The position in one of our message ids; None for another install's message."""
    if not msg_id:
        return None
    install, _, position = msg_id.rpartition(":")
    if install != install_id or not position.isdigit():
        return None
    return int(position)


def _holder_is_dead(holder: str) -> bool:
    """A relay of this machine whose process is gone (killed): no need to wait its lease out."""
    host, _, rest = holder.partition("/")
    pid = rest.partition("/")[0]
    if host != socket.gethostname() or not pid.isdigit():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


class PositionTable:
    """The relay's position and lease, one row per stream, in the event database."""

    def __init__(self, datastore: Any, is_sqlite: bool) -> None:
        self._datastore = datastore
        self._sqlite = is_sqlite
        self._sql(
            f"CREATE TABLE IF NOT EXISTS {POSITION_TABLE} (name TEXT PRIMARY KEY, "
            "position BIGINT NOT NULL, holder TEXT, lease_until DOUBLE PRECISION NOT NULL)",
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
        return row[0] if self._sqlite else next(iter(row.values()))

    def ensure(self, name: str) -> None:
        self._sql(
            f"INSERT INTO {POSITION_TABLE} (name, position, holder, lease_until) "
            "VALUES (?, 0, NULL, 0) ON CONFLICT (name) DO NOTHING",
            (name,),
        )

    def get(self, name: str) -> int:
        found = self._sql(f"SELECT position FROM {POSITION_TABLE} WHERE name = ?", (name,), True)
        return 0 if found is None else int(found)

    def advance(self, name: str, position: int) -> None:
        """Only forward: a slow relay that lost its lease never moves it back."""
        self._sql(
            f"UPDATE {POSITION_TABLE} SET position = ? WHERE name = ? AND position < ?",
            (position, name, position),
        )

    def set(self, name: str, position: int) -> None:
        """Operator's tool (and tests): put the position anywhere."""
        self.ensure(name)
        self._sql(f"UPDATE {POSITION_TABLE} SET position = ? WHERE name = ?", (position, name))

    def take_lease(self, name: str, holder: str, lease_s: float = LEASE_S) -> bool:
        now = time.time()
        current = self._sql(f"SELECT holder FROM {POSITION_TABLE} WHERE name = ?", (name,), True)
        gone = current if current is not None and _holder_is_dead(str(current)) else holder
        self._sql(
            f"UPDATE {POSITION_TABLE} SET holder = ?, lease_until = ? "
            "WHERE name = ? AND (holder IN (?, ?) OR holder IS NULL OR lease_until < ?)",
            (holder, now + lease_s, name, holder, gone, now),
        )
        found = self._sql(f"SELECT holder FROM {POSITION_TABLE} WHERE name = ?", (name,), True)
        return bool(found == holder)

    def release(self, name: str, holder: str) -> None:
        self._sql(
            f"UPDATE {POSITION_TABLE} SET holder = NULL, lease_until = 0 "
            "WHERE name = ? AND holder = ?",
            (name, holder),
        )


class Relay:
    """Follows one store's notification log into one JetStream stream."""

    def __init__(self, store: Any, config: RelayConfig) -> None:
        self.store = store
        self.config = config
        self.recorder = store.ledger.recorder
        self.mapper = store.ledger.mapper
        self.install_id: str = store.secrets.get("install-id")
        self.positions = PositionTable(store.ledger.recorder.datastore, store.database.is_sqlite)
        self.positions.ensure(config.stream)
        self.holder = f"{socket.gethostname()}/{os.getpid()}/{id(self):x}"
        self.published = 0
        self.last_error: str | None = None
        self._halt = threading.Event()  # stop_soon may come from any thread
        self._wake: asyncio.Event | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    # -- the stream -------------------------------------------------------------

    def stream_config(self) -> Any:
        from nats.js.api import DiscardPolicy, RetentionPolicy, StorageType, StreamConfig

        c = self.config
        return StreamConfig(
            name=c.stream,
            description="Siyu Ledger events, one message per event (Nats-Msg-Id install:position)",
            subjects=[f"{c.subject_prefix}.>"],
            retention=RetentionPolicy.LIMITS,
            storage=StorageType.FILE,
            discard=DiscardPolicy.OLD,
            duplicate_window=c.duplicate_window_s,
            max_age=c.max_age_s,
            max_bytes=c.max_bytes,
            num_replicas=c.replicas,
        )

    async def ensure_stream(self, js: Any) -> None:
        from nats.js.errors import NotFoundError

        config = self.stream_config()
        try:
            await js.stream_info(self.config.stream)
        except NotFoundError:
            await js.add_stream(config)
            log.info("created stream %s on %s", self.config.stream, config.subjects)
            return
        await js.update_stream(config)

    async def stream_position(self, js: Any) -> int | None:
        """The position of the stream's last message, if it is one of ours."""
        from nats.js.errors import NotFoundError

        try:
            last = await js.get_last_msg(self.config.stream, f"{self.config.subject_prefix}.>")
        except NotFoundError:
            return None
        msg_id = (last.headers or {}).get(MSG_ID_HEADER)
        found = position_of_msg_id(msg_id, self.install_id)
        if found is None:
            log.warning("the last message of %s is not ours (%s)", self.config.stream, msg_id)
        return found

    async def resume_position(self, js: Any) -> int:
        """After the larger of our recorded position and the stream's last message."""
        recorded = self.positions.get(self.config.stream)
        in_stream = await self.stream_position(js)
        if in_stream is not None and in_stream > recorded:
            log.info(
                "stream %s holds up to %d, recorded %d: resuming after %d",
                self.config.stream,
                in_stream,
                recorded,
                in_stream,
            )
            self.positions.advance(self.config.stream, in_stream)
            return in_stream
        return recorded

    # -- publishing -------------------------------------------------------------

    async def publish_batch(self, js: Any, notifications: Sequence[Notification]) -> int:
        """Publish concurrently; record and return the last position acknowledged in order."""
        prefix = self.config.subject_prefix
        messages = [event_message(self.mapper, n, self.install_id, prefix) for n in notifications]
        results = await asyncio.gather(
            *(
                js.publish(subject, payload, timeout=ACK_TIMEOUT_S, headers=headers)
                for subject, payload, headers in messages
            ),
            return_exceptions=True,
        )
        done = 0
        failure: BaseException | None = None
        for n, result in zip(notifications, results, strict=True):
            if isinstance(result, BaseException):
                failure = result
                break
            done = n.id
            self.published += 1
        if done:
            self.positions.advance(self.config.stream, done)
        if failure is not None:
            raise failure
        return done

    async def run_connected(self, nc: Any, once: bool) -> None:
        js = nc.jetstream(timeout=ACK_TIMEOUT_S)
        await self.ensure_stream(js)
        position = await self.resume_position(js)
        lease_checked = time.monotonic()
        while not self._halt.is_set():
            if time.monotonic() - lease_checked > LEASE_S / 3:
                if not self.positions.take_lease(self.config.stream, self.holder):
                    return  # another relay took over; go back to waiting for the lease
                lease_checked = time.monotonic()
            notifications = await asyncio.to_thread(
                self.recorder.select_notifications,
                position,
                self.config.batch_size_max,
                inclusive_of_start=False,
            )
            if not notifications:
                if once:
                    return
                await self._sleep(POLL_INTERVAL_S)
                continue
            position = await self.publish_batch(js, notifications)
            self.last_error = None

    async def run(self, once: bool = False) -> None:
        """Until stopped (or, ``once``, until the stream holds every event there is)."""
        import nats

        self._loop = asyncio.get_running_loop()
        self._wake = asyncio.Event()
        if self._halt.is_set():
            self._wake.set()
        backoff = BACKOFF_S_MIN
        try:
            while not self._halt.is_set():
                nc = None
                try:
                    if not await asyncio.to_thread(
                        self.positions.take_lease, self.config.stream, self.holder
                    ):
                        await self._sleep(LEASE_S / 3)  # another relay publishes
                        continue
                    nc = await nats.connect(
                        self.config.nats_url,
                        allow_reconnect=False,
                        connect_timeout=CONNECT_TIMEOUT_S,
                        name="siyu-relay",
                    )
                    await self.run_connected(nc, once)
                    backoff = BACKOFF_S_MIN
                    if once:
                        return
                except Exception as e:  # NATS or the database is down: back off, check again
                    self.last_error = f"{type(e).__name__}: {e}"
                    log.warning("relay: %s; retrying in %.1f s", self.last_error, backoff)
                    await self._sleep(backoff)
                    backoff = min(BACKOFF_S_MAX, backoff * 2)
                finally:
                    if nc is not None:
                        with contextlib.suppress(Exception):
                            await nc.close()
        finally:
            with contextlib.suppress(Exception):
                await asyncio.to_thread(self.positions.release, self.config.stream, self.holder)

    async def _sleep(self, seconds: float) -> None:
        assert self._wake is not None
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(self._wake.wait(), seconds)

    def stop_soon(self) -> None:
        """Ask the relay to stop after its current batch (safe from any thread)."""
        self._halt.set()
        loop, wake = self._loop, self._wake
        if loop is not None and wake is not None and not loop.is_closed():
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(wake.set)


class RelayThread:
    """The relay inside ``siyu serve``: its own event loop in a background thread."""

    def __init__(self, store: Any, config: RelayConfig) -> None:
        self.relay = Relay(store, config)
        self._thread = threading.Thread(target=self._main, name="nats-relay", daemon=True)

    def _main(self) -> None:
        try:
            asyncio.run(self.relay.run())
        except Exception:
            log.exception("the NATS relay stopped")

    def start(self) -> RelayThread:
        self._thread.start()
        return self

    def stop(self, timeout_s: float = 10.0) -> None:
        self.relay.stop_soon()
        self._thread.join(timeout=timeout_s)


def start_relay(store: Any, nats_url: str, **options: Any) -> RelayThread:
    return RelayThread(store, RelayConfig(nats_url=nats_url, **options)).start()


# -- the command line ------------------------------------------------------------


def add_arguments(parser: Any) -> None:
    parser.add_argument("--nats-url", help="default: SIYU_NATS_URL")
    parser.add_argument("--stream", default=DEFAULT_STREAM)
    parser.add_argument("--subject-prefix", default=DEFAULT_SUBJECT_PREFIX)
    parser.add_argument("--batch-size", type=int, default=BATCH_SIZE_MAX)
    parser.add_argument("--once", action="store_true", help="publish what there is and exit")


def cmd_relay(args: Any, settings: Any) -> int:
    """``siyu relay``: publish every event to JetStream until stopped (SIGTERM, Ctrl-C)."""
    import signal
    import sys

    url = args.nats_url or settings.nats_url
    if not url:
        sys.stderr.write("siyu relay: set SIYU_NATS_URL (or --nats-url)\n")
        return 2
    config = RelayConfig(
        nats_url=url,
        stream=args.stream,
        subject_prefix=args.subject_prefix,
        batch_size_max=args.batch_size,
    )
    store = settings.open_store()
    try:
        relay = Relay(store, config)

        async def main() -> None:
            loop = asyncio.get_running_loop()
            for sig in (signal.SIGTERM, signal.SIGINT):
                loop.add_signal_handler(sig, relay.stop_soon)
            print(f"relaying {settings.database_url} to {url} stream {config.stream}", flush=True)
            await relay.run(once=args.once)

        asyncio.run(main())
        print(f"relay: published {relay.published} events", flush=True)
        return 0
    finally:
        store.close()
