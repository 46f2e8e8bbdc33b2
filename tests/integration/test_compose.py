"""compose.yaml and the Dockerfile, checked without Docker (it does not run everywhere).

The file is parsed and its wiring checked; then our own services' command lines (api,
projector) run as real processes against the local PostgreSQL, with the environment
compose.yaml gives them (``${...}`` interpolated as compose does, compose hostnames
translated to the local servers, a fresh database per test), and the api's own health
check command decides when it is up. The nats service's own command line runs too (a
private nats-server on free ports, when the binary is installed), so that the api's relay
publishes into it and not into the shared local server. For postgres and nats, their
health checks also run against the local servers.
"""

from __future__ import annotations

import ast
import json
import re
import shlex
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx
import pytest
import yaml

from projections.store import Store
from tests.conftest import NATS_URL, PG_HOST, PG_PORT
from tests.e2e.test_cli import (
    CLEAN_EXIT,
    CLI,
    REPO,
    START_TIMEOUT_S,
    ServerProcess,
    base_env,
    bearer,
    free_port,
)

pytestmark = pytest.mark.postgres

COMPOSE = REPO / "compose.yaml"
DOCKERFILE = REPO / "Dockerfile"
OPERATOR_ENV = {"SIYU_BOOTSTRAP_TOKEN": "compose-test-bootstrap-token"}
OUR_SERVICES = ("api", "projector")

_VARIABLE = re.compile(
    r"\$(?:(?P<escaped>\$)|\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?:(?P<op>:?[-?+])(?P<arg>[^}]*))?\})"
)


class InterpolationError(ValueError):
    pass


def interpolate(value: Any, env: Mapping[str, str]) -> Any:
    """Compose's ``${VAR}``, ``${VAR:-default}``, ``${VAR-default}``, ``${VAR:?error}``..."""
    if isinstance(value, dict):
        return {k: interpolate(v, env) for k, v in value.items()}
    if isinstance(value, list):
        return [interpolate(v, env) for v in value]
    if not isinstance(value, str):
        return value

    def one(m: re.Match[str]) -> str:
        if m.group("escaped"):
            return "$"
        name, op, arg = m.group("name"), m.group("op"), m.group("arg") or ""
        present = name in env
        usable = present and (env[name] != "" or not (op or "").startswith(":"))
        if op in (":-", "-"):
            return env[name] if usable else arg
        if op in (":?", "?"):
            if not usable:
                raise InterpolationError(f"{name}: {arg}")
            return env[name]
        if op in (":+", "+"):
            return arg if usable else ""
        return env.get(name, "")

    return _VARIABLE.sub(one, value)


def load_compose(env: Mapping[str, str] = OPERATOR_ENV) -> dict[str, Any]:
    compose: dict[str, Any] = interpolate(yaml.safe_load(COMPOSE.read_text()), env)
    return compose


def environment(service: dict[str, Any]) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) for item in env)
    return {k: "" if v is None else str(v) for k, v in env.items()}


def healthcheck_argv(service: dict[str, Any]) -> list[str]:
    test = service["healthcheck"]["test"]
    if isinstance(test, str):
        return shlex.split(test)
    kind, *rest = test
    assert kind in ("CMD", "CMD-SHELL"), test
    return shlex.split(rest[0]) if kind == "CMD-SHELL" else list(rest)


def dockerfile_cmd() -> list[str]:
    found = re.findall(r"^CMD\s+(\[.*\])\s*$", DOCKERFILE.read_text(), re.M)
    assert found, "the Dockerfile has an exec-form CMD"
    return list(json.loads(found[-1]))


def service_command(compose: dict[str, Any], name: str) -> list[str]:
    command = compose["services"][name].get("command")
    if command is None:
        return dockerfile_cmd()
    return shlex.split(command) if isinstance(command, str) else list(command)


def settings_read_by(package: str) -> set[str]:
    """The SIYU_* variables a package reads (env.get("SIYU_X"), os.getenv, environ[...])."""
    names: set[str] = set()
    for path in (REPO / package).rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            key: ast.expr | None = None
            if isinstance(node, ast.Call) and node.args:
                func = node.func
                called = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
                if called in ("get", "getenv", "pop", "setdefault"):
                    key = node.args[0]
            elif isinstance(node, ast.Subscript):
                key = node.slice
            if isinstance(key, ast.Constant) and str(key.value).startswith("SIYU_"):
                names.add(str(key.value))
    return names


def named_volumes(service: dict[str, Any]) -> list[tuple[str, str]]:
    mounts = []
    for v in service.get("volumes") or []:
        if isinstance(v, str):
            source, target = v.split(":")[:2]
        else:
            source, target = v.get("source", ""), v["target"]
        mounts.append((source, target))
    return mounts


# -- the file -------------------------------------------------------------------------


def test_services_and_their_wiring() -> None:
    compose = load_compose()
    services = compose["services"]
    assert {"postgres", "nats", "api", "projector"} <= services.keys()
    declared_volumes = set(compose.get("volumes") or {})

    # Volumes: named (declared at the top level), never a host path.
    for name in ("postgres", "nats"):
        mounts = named_volumes(services[name])
        assert mounts, f"{name} keeps its data on a volume"
        for source, _target in mounts:
            assert source in declared_volumes, f"{name}: {source!r} is not a named volume"
    assert any(t == "/var/lib/postgresql/data" for _, t in named_volumes(services["postgres"]))

    # PostgreSQL.
    postgres = services["postgres"]
    assert postgres["image"].startswith("postgres:16")
    assert healthcheck_argv(postgres)[0] == "pg_isready"
    pg_env = environment(postgres)

    # NATS with JetStream stored on its volume and the monitoring port for its health check.
    nats = services["nats"]
    assert nats["image"].startswith("nats:2.10")
    args = service_command(compose, "nats")
    assert "-js" in args or "--jetstream" in args
    store_dir = args[args.index("-sd") + 1]
    assert store_dir in {t for _, t in named_volumes(nats)}, "JetStream data is persistent"
    assert args[args.index("-m") + 1] == "8222"
    probe = " ".join(healthcheck_argv(nats))
    assert ":8222/healthz" in probe

    # The API: every setting it reads is given; it reaches the other services by name.
    api = services["api"]
    assert "build" in api
    api_env = environment(api)
    missing = settings_read_by("api") - api_env.keys()
    assert not missing, f"compose.yaml does not set {sorted(missing)} for the api"
    db = urlsplit(api_env["SIYU_DATABASE_URL"])
    assert db.scheme == "postgresql" and db.hostname == "postgres" and db.port == 5432
    assert db.path.lstrip("/") == pg_env["POSTGRES_DB"]
    assert db.username == pg_env["POSTGRES_USER"] and db.password == pg_env["POSTGRES_PASSWORD"]
    nats_url = urlsplit(api_env["SIYU_NATS_URL"])
    assert (nats_url.scheme, nats_url.hostname, nats_url.port) == ("nats", "nats", 4222)
    assert api_env["SIYU_PROJECTIONS"] == "off", "the projector service feeds the views"
    assert api_env["SIYU_BOOTSTRAP_TOKEN"] == OPERATOR_ENV["SIYU_BOOTSTRAP_TOKEN"]
    with pytest.raises(InterpolationError, match="SIYU_BOOTSTRAP_TOKEN"):
        load_compose({})  # no silent default for the admin token
    assert "/health" in " ".join(healthcheck_argv(api))
    published = [str(p) for p in api.get("ports") or []]
    assert any(p.endswith(":8000") for p in published), published

    # The projector: the same image, `siyu project`, the same store and code settings.
    projector = services["projector"]
    assert projector.get("image") == api.get("image") and projector.get("build") == api.get("build")
    assert service_command(compose, "projector") == ["siyu", "project"]
    projector_env = environment(projector)
    for key in api_env.keys() - {"SIYU_BOOTSTRAP_TOKEN", "SIYU_NATS_URL", "SIYU_PROJECTIONS"}:
        assert projector_env.get(key) == api_env[key], key
    assert projector_env.get("SIYU_PROJECTIONS", "inline") != "off"

    # Start order: only on healthy dependencies, and each of those has a health check.
    expected = {"api": {"postgres", "nats"}, "projector": {"postgres"}}
    for name, needs in expected.items():
        depends = services[name]["depends_on"]
        assert needs <= set(depends), (name, depends)
        for dependency, rule in depends.items():
            assert rule["condition"] == "service_healthy", (name, dependency)
            assert "healthcheck" in services[dependency], dependency


def test_dockerfile_builds_the_package_and_serves_on_the_published_port() -> None:
    text = DOCKERFILE.read_text()
    assert re.search(r"^FROM python:3\.11-slim\b", text, re.M)
    assert re.search(r"^RUN .*\bpip install \.(\s|$)", text, re.M)
    copied = " ".join(re.findall(r"^COPY\s+(.+)$", text, re.M))
    for needed in ("pyproject.toml", "domain", "projections", "api"):
        assert re.search(rf"(^|\s){re.escape(needed)}(\s|$)", copied), needed
    cmd = dockerfile_cmd()
    assert cmd[:2] == ["siyu", "serve"]
    assert cmd[cmd.index("--host") + 1] == "0.0.0.0"
    port = cmd[cmd.index("--port") + 1]
    api = load_compose()["services"]["api"]
    assert any(str(p).endswith(f":{port}") for p in api["ports"])
    assert f"127.0.0.1:{port}/health" in " ".join(healthcheck_argv(api))


# -- running our services with the compose environment ---------------------------------


def local_env(
    service_env: Mapping[str, str], dbname: str, nats_url: str = NATS_URL
) -> dict[str, str]:
    """Compose hostnames -> the local servers; the compose database -> a fresh one."""
    nats = urlsplit(nats_url)
    out = {}
    for key, given in service_env.items():
        value = given
        url = urlsplit(given) if "://" in given else None
        if url is not None and url.hostname == "postgres":
            auth = given.split("://", 1)[1].split("@", 1)[0]
            value = urlunsplit((url.scheme, f"{auth}@{PG_HOST}:{PG_PORT}", f"/{dbname}", "", ""))
        elif url is not None and url.hostname == "nats":
            value = urlunsplit((url.scheme, nats.netloc, url.path, "", ""))
        out[key] = value
    return out


def local_command(argv: list[str], port: int) -> list[str]:
    assert argv[0] == "siyu"
    args = [*CLI, *argv[1:]]
    if "--host" in args:
        args[args.index("--host") + 1] = "127.0.0.1"
    if "--port" in args:
        args[args.index("--port") + 1] = str(port)
    return args


def local_probe(api: dict[str, Any], port: int) -> list[str]:
    argv = healthcheck_argv(api)
    assert argv[0] == "python", argv  # the image's python; here, ours
    return [sys.executable, *(a.replace("127.0.0.1:8000", f"127.0.0.1:{port}") for a in argv[1:])]


def probe(argv: list[str], timeout: float = 10.0) -> int:
    return subprocess.run(argv, capture_output=True, timeout=timeout, check=False).returncode


@contextmanager
def private_nats(compose: dict[str, Any], tmp_path: Path) -> Iterator[tuple[str, int] | None]:
    """The nats service's own command line on free ports, healthy by its own probe.

    The api publishes every event to JetStream when SIYU_NATS_URL is set: a private
    server keeps this test's events out of the shared local server's streams.
    """
    binary = shutil.which("nats-server")
    if binary is None:
        yield None
        return
    args = service_command(compose, "nats")
    client, monitor = free_port(), free_port()
    args[args.index("-sd") + 1] = str(tmp_path / "jetstream")
    args[args.index("-m") + 1] = str(monitor)
    argv = [binary, *args, "-a", "127.0.0.1", "-p", str(client)]
    healthz = next(a for a in healthcheck_argv(compose["services"]["nats"]) if "://" in a)
    healthz = healthz.replace(":8222/", f":{monitor}/")
    with ServerProcess(argv, base_env(), tmp_path, "nats") as server:
        deadline = time.monotonic() + START_TIMEOUT_S
        while True:
            assert server.running(), server.logs()
            try:
                if httpx.get(healthz, timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, f"nats not healthy\n{server.logs()}"
            time.sleep(0.1)
        yield f"nats://127.0.0.1:{client}", monitor
        server.stop()


def test_api_and_projector_run_with_the_compose_environment(pg_url: str, tmp_path: Path) -> None:
    compose = load_compose()
    with private_nats(compose, tmp_path) as nats:
        run_api_and_projector(compose, pg_url, tmp_path, nats)


def run_api_and_projector(
    compose: dict[str, Any], pg_url: str, tmp_path: Path, nats: tuple[str, int] | None
) -> None:
    services = compose["services"]
    dbname = urlsplit(pg_url).path.lstrip("/")
    port = free_port()
    check = local_probe(services["api"], port)
    assert probe(check) != 0, "the health check fails while nothing listens"

    api_env = local_env(environment(services["api"]), dbname, nats[0] if nats else NATS_URL)
    if nats is None:
        api_env.pop("SIYU_NATS_URL")  # no nats-server here: the relay stays off
    api_argv = local_command(service_command(compose, "api"), port)
    with ServerProcess(api_argv, base_env(api_env), tmp_path, "api") as api:
        deadline = time.monotonic() + START_TIMEOUT_S
        while probe(check) != 0:
            assert api.running(), api.logs()
            assert time.monotonic() < deadline, f"api not healthy\n{api.logs()}"
            time.sleep(0.2)
        base = f"http://127.0.0.1:{port}"
        assert httpx.get(f"{base}/health", timeout=5).json()["store"] == "postgresql"

        projector_env = local_env(environment(services["projector"]), dbname)
        projector_argv = local_command(service_command(compose, "projector"), port)
        with ServerProcess(
            projector_argv, base_env(projector_env), tmp_path, "projector"
        ) as worker:
            worker.wait_for_output("projecting")

            token = bearer(api_env["SIYU_BOOTSTRAP_TOKEN"])
            body = {
                "code": "D1",
                "kind": "dealer",
                "parent": "HQ",
                "name": "dealer D1",
                "region_codes": ["31"],
            }
            created = httpx.post(f"{base}/v1/partners", json=body, headers=token, timeout=10)
            assert created.status_code == 201, created.text
            # The API projects nothing itself (SIYU_PROJECTIONS=off): this read is answered
            # only because the projector process applies the event.
            fresh = {"min_position": created.json()["position"]}
            got = httpx.get(f"{base}/v1/partners/D1", params=fresh, headers=token, timeout=10)
            assert got.status_code == 200, got.text
            assert got.json()["path"] == "HQ/D1"

            assert worker.stop() == 0, worker.logs()

        if nats is not None:  # the api's relay publishes every stored event to JetStream
            events = count_events(pg_url)
            jsz = f"http://127.0.0.1:{nats[1]}/jsz"
            deadline = time.monotonic() + 30
            while httpx.get(jsz, timeout=5).json().get("messages", 0) < events:
                assert time.monotonic() < deadline, (events, httpx.get(jsz, timeout=5).text)
                time.sleep(0.2)
        assert api.stop() in CLEAN_EXIT, api.logs()
    assert probe(check) != 0


def count_events(database_url: str) -> int:
    store = Store.open(database_url)
    try:
        return len(store.ledger.recorder.select_notifications(0, 10_000))
    finally:
        store.close()


def test_postgres_health_check_against_the_local_server(pg_url: str) -> None:
    postgres = load_compose()["services"]["postgres"]
    argv = healthcheck_argv(postgres)
    dbname = urlsplit(pg_url).path.lstrip("/")
    if "-d" in argv:
        argv[argv.index("-d") + 1] = dbname
    local = [*argv, "-h", PG_HOST, "-p", str(PG_PORT), "-t", "5"]
    assert probe(local) == 0
    nobody = [*argv, "-h", "127.0.0.1", "-p", str(free_port()), "-t", "2"]
    assert probe(nobody) != 0, "the check can fail"


def test_nats_health_check_against_the_local_server(nats_url: str) -> None:
    nats = load_compose()["services"]["nats"]
    url = next(a for a in healthcheck_argv(nats) if a.startswith("http://"))
    host = urlsplit(nats_url).hostname or "127.0.0.1"
    monitor = urlsplit(url)._replace(netloc=f"{host}:{urlsplit(url).port}").geturl()
    try:
        response = httpx.get(monitor, timeout=3)
    except httpx.TransportError:
        response = None
    if response is not None:
        # The same probe as the container's: /healthz answers 200 once JetStream is ready.
        assert response.status_code == 200, response.text
        assert response.json().get("status") == "ok"
        return
    # The local server runs without the monitoring port (-m), so /healthz cannot be asked
    # here. Its client port answering INFO with "jetstream": true is the closest check.
    port = urlsplit(nats_url).port or 4222
    with socket.create_connection((host, port), timeout=3) as conn:
        conn.settimeout(3)
        line = b""
        while not line.endswith(b"\r\n"):
            chunk = conn.recv(4096)
            assert chunk, "NATS closed the connection before INFO"
            line += chunk
    assert line.startswith(b"INFO "), line[:80]
    info = json.loads(line[5:].strip())
    assert info.get("jetstream") is True, "JetStream is enabled"
