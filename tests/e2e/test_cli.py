"""The ``siyu`` command line as real processes, on a SQLite file and on PostgreSQL.

The helpers here (``run_cli``, ``ServerProcess``, ``serving``...) are shared by the other
process tests (restart, two servers, compose). Processes run from a per-test working
directory, with PYTHONPATH at the repository root: ``siyu demo`` on PostgreSQL writes its
tokens under ``./var``, which must not land in a developer's checkout.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

from api.cli import fewer_malloc_arenas
from bench.metrics import family
from domain.handlers.tokens import authenticate
from projections.store import Store, default_projections
from tests.conftest import BOOTSTRAP, PG_HOST, PG_PORT, PG_USER, service_missing

REPO = Path(__file__).resolve().parents[2]
CLI = (sys.executable, "-m", "api.cli")
RUN_TIMEOUT_S = 90.0
START_TIMEOUT_S = 45.0
STOP_TIMEOUT_S = 20.0
CLEAN_EXIT = (0, -signal.SIGTERM)


# -- helpers shared by the process tests ------------------------------------------


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def port_open(port: int, host: str = "127.0.0.1") -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


def base_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The test's environment without any SIYU_* setting, plus PYTHONPATH and ``extra``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("SIYU_")}
    env["PYTHONPATH"] = str(REPO)
    env["PYTHONUNBUFFERED"] = "1"
    env.update(extra or {})
    return env


def cli_env(database_url: str, **extra: str) -> dict[str, str]:
    return base_env({"SIYU_DATABASE_URL": database_url, **extra})


def run_cli(
    args: Sequence[str], env: Mapping[str, str], cwd: Path, timeout: float = RUN_TIMEOUT_S
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*CLI, *args],
        env=dict(env),
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def head_of(database_url: str) -> int:
    store = Store.open(database_url)
    try:
        return store.head
    finally:
        store.close()


class ServerProcess:
    """A long-running CLI process (``serve``, ``project``) with bounded start and stop."""

    def __init__(
        self, argv: Sequence[str], env: Mapping[str, str], cwd: Path, name: str = "server"
    ) -> None:
        self.argv = list(argv)
        self.env = dict(env)
        self.cwd = cwd
        self.stdout_path = cwd / f"{name}-{id(self)}.out"
        self.stderr_path = cwd / f"{name}-{id(self)}.err"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> ServerProcess:
        with self.stdout_path.open("wb") as out, self.stderr_path.open("wb") as err:
            self.proc = subprocess.Popen(
                self.argv,
                env=self.env,
                cwd=self.cwd,
                stdout=out,
                stderr=err,
                stdin=subprocess.DEVNULL,
                start_new_session=True,  # its own process group: nothing leaks past kill()
            )
        return self

    @property
    def stdout(self) -> str:
        return self.stdout_path.read_text(errors="replace")

    @property
    def stderr(self) -> str:
        return self.stderr_path.read_text(errors="replace")

    def logs(self) -> str:
        return f"--- stdout ---\n{self.stdout}\n--- stderr ---\n{self.stderr[-4000:]}"

    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def wait_for_output(self, needle: str, timeout: float = START_TIMEOUT_S) -> None:
        deadline = time.monotonic() + timeout
        while needle not in self.stdout:
            if not self.running():
                pytest.fail(f"{self.argv} exited before printing {needle!r}\n{self.logs()}")
            if time.monotonic() > deadline:
                pytest.fail(f"{self.argv} did not print {needle!r} in {timeout}s\n{self.logs()}")
            time.sleep(0.05)

    def wait_healthy(self, base_url: str, timeout: float = START_TIMEOUT_S) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        last = "no answer"
        while time.monotonic() < deadline:
            if not self.running():
                pytest.fail(f"{self.argv} exited while starting\n{self.logs()}")
            try:
                response = httpx.get(f"{base_url}/health", timeout=2.0)
                if response.status_code == 200:
                    health: dict[str, Any] = response.json()
                    return health
                last = f"{response.status_code} {response.text[:200]}"
            except httpx.HTTPError as e:
                last = repr(e)
            time.sleep(0.1)
        pytest.fail(f"{self.argv} not healthy after {timeout}s ({last})\n{self.logs()}")

    def stop(self, timeout: float = STOP_TIMEOUT_S) -> int:
        """SIGTERM and a bounded wait; a process that ignores it is killed and the test fails."""
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.kill()
                pytest.fail(f"{self.argv} did not stop within {timeout}s of SIGTERM\n{self.logs()}")
        return self.proc.returncode

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=STOP_TIMEOUT_S)

    def __enter__(self) -> ServerProcess:
        return self.start()

    def __exit__(self, *_exc: object) -> None:
        self.kill()  # whatever happened in the test, no process outlives it


@contextmanager
def serving(
    database_url: str,
    cwd: Path,
    *,
    token: str | None = BOOTSTRAP,
    name: str = "serve",
    workers: int = 1,
    **extra: str,
) -> Iterator[tuple[ServerProcess, str]]:
    """A ``siyu serve`` process on a free port, healthy; yields it and its base URL."""
    port = free_port()
    env = cli_env(database_url, **extra)
    if token is not None:
        env["SIYU_BOOTSTRAP_TOKEN"] = token
    argv = [*CLI, "serve", "--host", "127.0.0.1", "--port", str(port), "--workers", str(workers)]
    base = f"http://127.0.0.1:{port}"
    with ServerProcess(argv, env, cwd, name) as server:
        server.wait_healthy(base)
        yield server, base


def bearer(token: str = BOOTSTRAP) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def token_texts(value: Any) -> Iterator[str]:
    """Every token in a JSON document (the demo's tokens file), wherever it sits."""
    if isinstance(value, str) and re.fullmatch(r"siyu_[A-Za-z0-9_-]{20,}", value):
        yield value
    elif isinstance(value, dict):
        for item in value.values():
            yield from token_texts(item)
    elif isinstance(value, list):
        for item in value:
            yield from token_texts(item)


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    path = tmp_path / "work"
    path.mkdir()
    return path


# -- demo --------------------------------------------------------------------------


def test_demo_loads_and_if_empty_leaves_a_loaded_store_alone(
    database_url: str, workdir: Path
) -> None:
    env = cli_env(database_url)
    assert head_of(database_url) == 1, "a new store holds only HQ"
    loaded = run_cli(["demo"], env, workdir)
    assert loaded.returncode == 0, loaded.stderr
    found = re.search(r"^demo: (\d+) partners\b.* in (\S+)$", loaded.stdout, re.M)
    assert found, loaded.stdout
    assert int(found.group(1)) > 10
    tokens = list(token_texts(json.loads((workdir / found.group(2)).read_text())))
    assert len(tokens) >= 4, tokens
    store = Store.open(database_url)
    try:
        for token in tokens:  # each one it wrote down works on this store
            assert authenticate(store.ledger, token).partner
        head = store.head
    finally:
        store.close()
    assert head > int(found.group(1)), "every partner is at least one event"

    again = run_cli(["demo", "--if-empty"], env, workdir)
    assert again.returncode == 0, again.stderr
    assert "left as it is" in again.stdout
    assert head_of(database_url) == head, "--if-empty wrote into a loaded store"

    twice = run_cli(["demo"], env, workdir)  # without --if-empty: no error, no new events
    assert twice.returncode == 0, twice.stdout + twice.stderr
    assert "already holds the demo" in twice.stdout and "Traceback" not in twice.stderr
    assert head_of(database_url) == head, "a second demo wrote into the loaded store"


# -- project, replay -----------------------------------------------------------------


def test_project_once_then_replay_equal_and_a_damaged_view_differs(
    database_url: str, workdir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from api.demo import load_demo

    monkeypatch.chdir(workdir)  # the demo's tokens go under ./var, not into the checkout

    store = Store.open(database_url)
    try:
        load_demo(store)  # events only: the views are left behind
        head = store.head
        assert store.engine.position() < head
    finally:
        store.close()
    env = cli_env(database_url)

    projected = run_cli(["project", "--once"], env, workdir)
    assert projected.returncode == 0, projected.stderr
    assert "projected" in projected.stdout
    store = Store.open(database_url)
    try:
        assert set(store.engine.positions().values()) == {head}, store.engine.positions()
    finally:
        store.close()

    replayed = run_cli(["replay"], env, workdir)
    assert replayed.returncode == 0, replayed.stdout + replayed.stderr
    names = [p.name for p in default_projections()]
    for name in names:
        assert re.search(rf"^{name}\s+equal\b", replayed.stdout, re.M), replayed.stdout
    assert "DIFFERENT" not in replayed.stdout

    # The comparison can fail: damage one live row, and replay says so (exit 1).
    store = Store.open(database_url)
    try:
        with store.views.write() as tx:
            tx.execute("UPDATE partners SET name = 'tampered' WHERE code = 'HQ'")
    finally:
        store.close()
    damaged = run_cli(["replay"], env, workdir)
    assert damaged.returncode == 1, damaged.stdout + damaged.stderr
    assert re.search(r"^partners\s+DIFFERENT\b", damaged.stdout, re.M), damaged.stdout


def test_project_and_replay_over_two_worker_processes(
    database_url: str, workdir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from api.demo import load_demo

    monkeypatch.chdir(workdir)  # the demo's tokens go under ./var, not into the checkout

    store = Store.open(database_url)
    try:
        load_demo(store)  # events only: the views are left behind
        head = store.head
    finally:
        store.close()
    env = cli_env(database_url)
    sqlite = database_url.startswith("sqlite")

    # Half way first (--until-position), then the rest: two processes each time.
    half = run_cli(["project", "--once", "--workers", "2", "--until-position", str(head // 2)],
                   env, workdir)  # fmt: skip
    assert half.returncode == 0, half.stdout + half.stderr
    assert positions_of(database_url) == {head // 2}
    rest = run_cli(["project", "--once", "--workers", "2"], env, workdir)
    assert rest.returncode == 0, rest.stdout + rest.stderr
    if sqlite:  # one writer: one process, and it says so
        assert "running as one process" in rest.stderr
        assert rest.stdout.count("projected") == 1
    else:
        assert "(worker 1/2)" in rest.stdout and "(worker 2/2)" in rest.stdout, rest.stdout
    assert positions_of(database_url) == {head}

    replayed = run_cli(["replay", "--workers", "2"], env, workdir)
    assert replayed.returncode == 0, replayed.stdout + replayed.stderr
    for name in (p.name for p in default_projections()):
        assert re.search(rf"^{name}\s+equal\b", replayed.stdout, re.M), replayed.stdout
    # One read model: the partner directory it follows is rebuilt with it (this crashed
    # with "no such table: partners" before read models declared what they follow).
    trace = run_cli(["replay", "--projection", "trace", "--workers", "2"], env, workdir)
    assert trace.returncode == 0, trace.stdout + trace.stderr
    assert re.search(r"^trace\s+equal\b", trace.stdout, re.M), trace.stdout
    assert re.search(r"^partners\s+equal\b", trace.stdout, re.M), trace.stdout

    in_place = run_cli(["replay", "--in-place", "--workers", "2"], env, workdir)
    assert in_place.returncode == 0, in_place.stdout + in_place.stderr
    assert "rebuilt in place" in in_place.stdout
    assert positions_of(database_url) == {head}
    again = run_cli(["replay"], env, workdir)  # the rebuilt live views equal a side build
    assert again.returncode == 0 and "DIFFERENT" not in again.stdout, again.stdout

    for bad in (["--workers", "0"], ["--workers", "9"], ["--until-position", "-1"],
                ["--group", "3/2"]):  # fmt: skip
        refused = run_cli(["project", "--once", *bad], env, workdir)
        assert refused.returncode == 2, (bad, refused.stdout, refused.stderr)
        assert "Traceback" not in refused.stderr


def positions_of(database_url: str) -> set[int]:
    """The distinct positions of the store's read models (one when all are level)."""
    store = Store.open(database_url)
    try:
        return set(store.engine.positions().values())
    finally:
        store.close()


def test_a_failed_worker_fails_the_command(tmp_path: Path) -> None:
    from api.workers_cli import run_workers

    # Each worker refuses its arguments (exit 2): the command says so and fails.
    assert run_workers(["project", "--until-position", "x"], 2) == 1


# -- a store that cannot be opened -----------------------------------------------------

PASSWORD = "s3cret-pw"


def wrong_url(kind: str, tmp_path: Path) -> tuple[str, str]:
    """A SIYU_DATABASE_URL that opens no store, and a word its one line of error holds."""
    if kind == "missing database":
        service_missing("PostgreSQL", PG_HOST, PG_PORT)
        name = f"siyu_wtcli_missing_{uuid.uuid4().hex[:8]}"  # never created
        return f"postgresql://{PG_USER}:{PASSWORD}@{PG_HOST}:{PG_PORT}/{name}", "does not exist"
    if kind == "closed port":
        return f"postgresql://{PG_USER}:{PASSWORD}@127.0.0.1:{free_port()}/siyu", "refused"
    if kind == "unsupported scheme":
        return f"mysql://root:{PASSWORD}@127.0.0.1/siyu", "unsupported database URL"
    if kind == "not a port":
        return f"postgresql://{PG_USER}:{PASSWORD}@127.0.0.1:five/siyu", "five"
    if kind == "sqlite under a file":
        (tmp_path / "a-file").write_text("not a directory")
        return f"sqlite:///{tmp_path}/a-file/siyu.db", "a-file"
    assert kind == "sqlite not a database"
    (tmp_path / "text.db").write_text("not a database " * 100)
    return f"sqlite:///{tmp_path}/text.db", "not a database"


def assert_one_line_refusal(
    done: subprocess.CompletedProcess[str], url: str, word: str, command: str = "verify"
) -> None:
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    what = (command, done.returncode, done.stdout, done.stderr)
    assert done.returncode == 2, what  # as the other errors of how siyu was called
    assert "Traceback" not in done.stderr, what
    assert len(lines) == 1 and lines[0].startswith("siyu: "), what
    assert word in lines[0], what
    assert PASSWORD not in done.stderr + done.stdout, what
    if PASSWORD in url:  # the URL is named, its password masked
        assert ":***@" in lines[0], what


@pytest.mark.parametrize(
    "kind",
    [
        "missing database",
        "closed port",
        "unsupported scheme",
        "not a port",
        "sqlite under a file",
        "sqlite not a database",
    ],
)
def test_a_store_that_cannot_be_opened_is_one_line_not_a_traceback(
    kind: str, workdir: Path
) -> None:
    url, word = wrong_url(kind, workdir)
    assert_one_line_refusal(run_cli(["verify"], cli_env(url), workdir), url, word)


def test_every_command_says_so_in_one_line(workdir: Path) -> None:
    """Caught once, in ``main``: every command that opens the store."""
    url, word = wrong_url("closed port", workdir)
    commands = [
        ["replay"],
        ["diff"],
        ["reconcile"],
        ["forget", str(uuid.uuid4())],
        ["settle"],
        ["demo"],
        ["project", "--once"],
        ["serve", "--host", "127.0.0.1", "--port", str(free_port())],
        ["expire-points"],
    ]
    with ThreadPoolExecutor(2) as pool:
        runs = list(pool.map(lambda argv: run_cli(argv, cli_env(url), workdir), commands))
    for argv, done in zip(commands, runs, strict=True):
        assert_one_line_refusal(done, url, word, " ".join(argv))


# -- serve ---------------------------------------------------------------------------


def test_serve_refuses_a_new_store_without_bootstrap_token(
    database_url: str, workdir: Path
) -> None:
    port = free_port()
    result = run_cli(
        ["serve", "--host", "127.0.0.1", "--port", str(port)],
        cli_env(database_url),
        workdir,
        timeout=60,
    )
    assert result.returncode == 2, result.stdout + result.stderr
    assert "SIYU_BOOTSTRAP_TOKEN" in result.stderr
    assert "Traceback" not in result.stderr
    assert "API docs" not in result.stdout
    assert not port_open(port)


def test_serve_starts_prints_docs_answers_and_stops_on_sigterm(
    database_url: str, workdir: Path
) -> None:
    with serving(database_url, workdir) as (server, base):
        server.wait_for_output("API docs")
        assert f"{base}/schema" in server.stdout
        assert f"{base}/schema/openapi.json" in server.stdout

        health = httpx.get(f"{base}/health", timeout=5)
        assert health.status_code == 200
        body = health.json()
        assert body["status"] == "ok"
        assert body["store"] == ("sqlite" if database_url.startswith("sqlite") else "postgresql")
        assert body["position"] >= 1

        schema = httpx.get(f"{base}/schema/openapi.json", timeout=10)
        assert schema.status_code == 200
        document = schema.json()
        assert document["openapi"].startswith("3.")
        assert "/v1/partners" in document["paths"] and "/health" in document["paths"]

        partners = httpx.get(f"{base}/v1/partners", headers=bearer(), timeout=5)
        assert partners.status_code == 200, partners.text
        assert [p["code"] for p in partners.json()["items"]] == ["HQ"]
        assert httpx.get(f"{base}/v1/partners", timeout=5).status_code == 401

        started = time.monotonic()
        code = server.stop()
        # uvicorn (>= 0.29) shuts down gracefully, then re-raises the captured SIGTERM so
        # that the parent sees why it ended: -15 is a clean stop, like 0.
        assert code in CLEAN_EXIT, f"exit {code} after SIGTERM\n{server.logs()}"
        assert time.monotonic() - started < STOP_TIMEOUT_S
        assert not port_open(int(base.rsplit(":", 1)[1]))
        assert "Traceback" not in server.stderr, server.stderr


def _children(pid: int) -> list[int]:
    return family(pid)[1:]


def _alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def test_serve_with_two_worker_processes_answers_concurrent_writes_once_each(
    database_url: str, workdir: Path
) -> None:
    """``--workers 2``: two API processes on one port (each with its projection engine);
    concurrent registrations all land once, repeats answer the same, SIGTERM stops all."""
    with serving(database_url, workdir, workers=2) as (server, base):
        assert server.proc is not None
        deadline = time.monotonic() + 60
        while len(_children(server.proc.pid)) < 2 and time.monotonic() < deadline:
            time.sleep(0.1)
        workers = _children(server.proc.pid)
        assert len(workers) >= 2, f"worker processes: {workers}\n{server.logs()}"
        for pid in workers:  # (api.cli.fewer_malloc_arenas)
            environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
            assert b"MALLOC_ARENA_MAX=2" in environ, "at most two malloc arenas per worker"

        def register(i: int) -> httpx.Response:
            body = {"code": f"D{i:02d}", "kind": "dealer", "parent": "HQ", "name": f"dealer {i}",
                    "region_codes": ["31"]}  # fmt: skip
            return httpx.post(f"{base}/v1/partners", json=body, headers=bearer(), timeout=30)

        with ThreadPoolExecutor(16) as pool:
            first = list(pool.map(register, range(24)))
            again = list(pool.map(register, range(24)))
        assert [r.status_code for r in first] == [201] * 24, [r.text for r in first]
        for a, b in zip(first, again, strict=True):
            assert b.status_code in (200, 201) and b.json() == a.json(), (a.text, b.text)
        positions = [r.json()["position"] for r in first]
        assert len(set(positions)) == 24
        listed = httpx.get(
            f"{base}/v1/partners",
            params={"min_position": max(positions), "limit": 100},
            headers=bearer(),
            timeout=30,
        )
        assert listed.status_code == 200, listed.text
        codes = {p["code"] for p in listed.json()["items"]}
        assert {f"D{i:02d}" for i in range(24)} <= codes

        code = server.stop()
        assert code in CLEAN_EXIT, f"exit {code} after SIGTERM\n{server.logs()}"
        assert not port_open(int(base.rsplit(":", 1)[1]))
        deadline = time.monotonic() + STOP_TIMEOUT_S
        while [p for p in workers if _alive(p)] and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not [p for p in workers if _alive(p)], "a worker outlived the server"
        assert "Traceback" not in server.stderr, server.stderr


def test_serve_prints_only_demo_tokens_that_work_on_its_store(tmp_path: Path) -> None:
    """Two stores side by side: the demo tokens of one are no use on the other."""
    work = tmp_path / "stores"
    work.mkdir()
    demo_url, other_url = f"sqlite:///{work}/demo.db", f"sqlite:///{work}/other.db"
    loaded = run_cli(["demo"], cli_env(demo_url), work)
    assert loaded.returncode == 0, loaded.stderr
    with serving(other_url, work) as (server, base):
        server.wait_for_output("API docs")
        printed = re.findall(r"\bsiyu_[A-Za-z0-9_-]{20,}", server.stdout)
        refused = [
            t
            for t in printed
            if httpx.get(f"{base}/v1/partners", headers=bearer(t), timeout=5).status_code != 200
        ]
        assert not refused, (
            f"serve on {other_url} printed {len(refused)} token(s) that do not work on it "
            f"(the demo tokens of {demo_url}):\n{server.stdout}"
        )


def test_the_server_keeps_two_malloc_arenas_unless_told_otherwise(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("MALLOC_ARENA_MAX", raising=False)
    assert fewer_malloc_arenas(), "glibc's mallopt accepted the limit"
    assert os.environ["MALLOC_ARENA_MAX"] == "2"
    monkeypatch.setenv("MALLOC_ARENA_MAX", "4")
    assert fewer_malloc_arenas()
    assert os.environ["MALLOC_ARENA_MAX"] == "4", "the operator's setting stands"


def test_an_api_worker_collects_cycles_less_often(tmp_path: Path) -> None:
    """A ``--workers N`` worker, once its app is made, runs the cyclic collector as the
    batch commands do (its long-lived objects frozen out of the walks): the collector
    had taken 5% of the API's CPU in the bench's scans."""
    probe = (
        "import gc; from api.cli import GC_YOUNG_THRESHOLD, worker_app; "
        "before = gc.get_threshold()[0]; worker_app(); "
        "print(before, gc.get_threshold()[0] == GC_YOUNG_THRESHOLD, gc.get_freeze_count() > 0)"
    )
    env = base_env(
        {"SIYU_DATABASE_URL": f"sqlite:///{tmp_path}/gc.db", "SIYU_BOOTSTRAP_TOKEN": BOOTSTRAP}
    )
    done = subprocess.run(
        [sys.executable, "-c", probe], env=env, cwd=tmp_path, capture_output=True, text=True,
        timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.split() == ["700", "True", "True"], done.stdout
