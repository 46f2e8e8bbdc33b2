"""The NATS JetStream relay against real servers: one message per event, whatever happens.

The machine's own nats-server (``nats_url``) is shared with others: tests there use a
stream and subject prefix of their own and delete the stream afterwards. The test that
restarts nats-server starts a server of its own on a free port.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import msgspec
import nats
import pytest

from projections.event_feed import PERSONAL
from projections.keyring import PREFIX as CIPHERTEXT_PREFIX
from projections.relay import MSG_ID_HEADER, PositionTable, Relay, RelayConfig, subject_words
from projections.store import Store
from tests.e2e.client import running_api
from tests.e2e.personal_flow import SECRETS_IN_CLEAR, more_events, with_personal_data
from tests.e2e.test_cli import CLI, ServerProcess, cli_env, free_port, port_open

pytestmark = pytest.mark.nats

NATS_SERVER = "/usr/sbin/nats-server"
WAIT_S_MAX = 60.0


def unique() -> tuple[str, str]:
    tag = uuid.uuid4().hex[:10]
    return f"TEST_RELAY_{tag}", f"t{tag}"


async def _messages(url: str, stream: str) -> list[Any]:
    nc = await nats.connect(url, connect_timeout=2, allow_reconnect=False)
    try:
        js = nc.jetstream(timeout=5)
        info = await js.stream_info(stream)
        found = []
        for seq in range(info.state.first_seq, info.state.last_seq + 1):
            found.append(await js.get_msg(stream, seq))
        return found
    finally:
        await nc.close()


async def _count(url: str, stream: str) -> int:
    nc = await nats.connect(url, connect_timeout=1, allow_reconnect=False)
    try:
        return int((await nc.jetstream(timeout=2).stream_info(stream)).state.messages)
    finally:
        await nc.close()


def count(url: str, stream: str) -> int:
    try:
        return asyncio.run(_count(url, stream))
    except Exception:
        return -1  # no server or no stream yet


def messages(url: str, stream: str) -> list[Any]:
    return asyncio.run(_messages(url, stream))


def delete_stream(url: str, stream: str) -> None:
    async def go() -> None:
        nc = await nats.connect(url, connect_timeout=2, allow_reconnect=False)
        try:
            await nc.jetstream().delete_stream(stream)
        except Exception:
            pass
        finally:
            await nc.close()

    asyncio.run(go())


def positions_in_store(store: Store) -> list[int]:
    found: list[int] = []
    while True:
        batch = store.ledger.recorder.select_notifications(
            found[-1] if found else 0, 1000, inclusive_of_start=False
        )
        if not batch:
            return found
        found += [n.id for n in batch]


def assert_one_message_per_event(store: Store, found: list[Any], install_id: str) -> None:
    ids = [m.headers[MSG_ID_HEADER] for m in found]
    positions = [int(i.rpartition(":")[2]) for i in ids]
    assert all(i.startswith(install_id + ":") for i in ids)
    assert len(positions) == len(set(positions)), "a duplicate message"
    assert positions == positions_in_store(store), "exactly the events, in order"
    for m in found:
        text = m.data.decode()
        assert CIPHERTEXT_PREFIX not in text, "not even ciphertext leaves"
        for secret in SECRETS_IN_CLEAR:
            assert secret not in text, f"{secret} in clear in {m.subject}"
        assert m.headers[MSG_ID_HEADER].rpartition(":")[2] == str(
            msgspec.json.decode(m.data)["position"]
        )


def wait_until(condition: Any, what: str, timeout: float = WAIT_S_MAX) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.02)


def test_subjects_are_lower_case_words() -> None:
    assert subject_words("siyu.Member.Joined") == ("member", "joined")
    assert subject_words("siyu.ClientRequest.Recorded") == ("client_request", "recorded")
    assert subject_words("siyu.Member.PointsEarned") == ("member", "points_earned")


def test_each_event_once_encrypted_and_no_duplicate_after_a_lost_position(
    database_url: str, nats_url: str
) -> None:
    stream, prefix = unique()
    with running_api(database_url) as api:
        store = api.store
        assert store is not None
        with_personal_data(api)
        # A short duplicate window, so that the broker cannot be what saves us below.
        config = RelayConfig(nats_url, stream=stream, subject_prefix=prefix, duplicate_window_s=0.5)
        try:
            relay = Relay(store, config)
            asyncio.run(relay.run(once=True))
            found = messages(nats_url, stream)
            assert_one_message_per_event(store, found, relay.install_id)
            assert relay.positions.get(stream) == store.head

            joined = [m for m in found if m.subject == f"{prefix}.member.joined"]
            assert len(joined) == 2
            body = msgspec.json.decode(joined[0].data)
            assert set(body) == {"position", "aggregate_id", "version", "type", "at", "data"}
            assert body["type"] == "siyu.Member.Joined" and body["version"] == 1
            assert body["data"]["phone"] == PERSONAL
            scanned = [m for m in found if m.subject == f"{prefix}.unit.scanned"]
            located = [msgspec.json.decode(m.data)["data"] for m in scanned]
            assert located and all(d["lat"] == d["lng"] == PERSONAL for d in located)
            assert f"{prefix}.client_request.recorded" in {m.subject for m in found}

            # A crash after the acks but before the position was recorded, and a start
            # after the duplicate window: the stream's last message says where to resume.
            PositionTable(store.ledger.recorder.datastore, store.database.is_sqlite).set(stream, 0)
            time.sleep(0.6)
            more_events(store, 3, "LATE")
            again = Relay(store, config)
            asyncio.run(again.run(once=True))
            assert again.published == store.head - len(found)
            assert_one_message_per_event(store, messages(nats_url, stream), relay.install_id)
        finally:
            delete_stream(nats_url, stream)


@contextmanager
def own_nats_server(tmp_path: Path) -> Iterator[tuple[str, Any]]:
    """A nats-server of this test's own (never the machine's), restartable, always stopped."""
    port = free_port()
    argv = [NATS_SERVER, "-a", "127.0.0.1", "-p", str(port), "-js", "-sd", str(tmp_path / "js")]
    servers: list[ServerProcess] = []

    def start() -> None:
        server = ServerProcess(argv, {}, tmp_path, name="nats").start()
        servers.append(server)
        wait_until(lambda: port_open(port), "nats-server to listen", timeout=15)

    def restart() -> None:
        stopped = servers[-1].stop()  # SIGTERM: a clean restart, as an operator would
        assert stopped in (0, 1, -15), stopped
        start()

    start()
    try:
        yield f"nats://127.0.0.1:{port}", restart
    finally:
        for server in servers:
            server.kill()


@pytest.mark.slow
def test_killing_the_relay_and_restarting_nats_mid_stream(
    database_url: str, tmp_path: Path
) -> None:
    stream, prefix = unique()
    with running_api(database_url) as api, own_nats_server(tmp_path) as (url, restart_nats):
        store = api.store
        assert store is not None
        with_personal_data(api)
        more_events(store, 300, "A")
        env = cli_env(database_url, SIYU_NATS_URL=url)
        argv = [*CLI, "relay", "--stream", stream, "--subject-prefix", prefix, "--batch-size", "8"]

        with ServerProcess(argv, env, tmp_path, name="relay-1") as first:
            wait_until(lambda: count(url, stream) >= 40, "the first messages")
            first.kill()  # SIGKILL mid-stream: acks may be in flight, positions unrecorded
        published = count(url, stream)
        assert 0 < published < store.head, "killed mid-stream"

        with ServerProcess(argv, env, tmp_path, name="relay-2") as second:
            wait_until(lambda: count(url, stream) > published + 20, "the relay to resume")
            restart_nats()  # the server goes away and comes back with its stream
            more_events(store, 40, "B")  # written while the relay reconnects
            wait_until(lambda: count(url, stream) == store.head, "every event", timeout=90)
            assert second.stop() in (0, -15), second.logs()
            assert "published" in second.stdout
            assert "retrying" in second.stderr, "the relay saw the server go away"

        relay = Relay(store, RelayConfig(url, stream=stream, subject_prefix=prefix))
        assert_one_message_per_event(store, messages(url, stream), relay.install_id)


def test_serve_runs_the_relay_in_process_when_nats_url_is_set(
    database_url: str, tmp_path: Path
) -> None:
    with (
        own_nats_server(tmp_path) as (url, _restart),
        running_api(database_url, nats_url=url) as api,
    ):
        store = api.store
        assert store is not None
        with_personal_data(api)
        wait_until(lambda: count(url, "SIYU") == store.head, "the in-process relay")
        found = messages(url, "SIYU")
        assert {m.subject.split(".")[0] for m in found} == {"siyu"}
        install_id = store.secrets.get("install-id")
        assert_one_message_per_event(store, found, install_id)
