"""Shared fixtures: real stores (SQLite file, PostgreSQL database), the real app, services.

PostgreSQL and NATS tests skip with a reason when the server is not there, except
when SIYU_REQUIRE_SERVICES=1 (CI): then they fail.
"""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import Iterator

import pytest

PG_HOST = os.environ.get("SIYU_TEST_PG_HOST", "127.0.0.1")
PG_PORT = int(os.environ.get("SIYU_TEST_PG_PORT", "5432"))
PG_USER = os.environ.get("SIYU_TEST_PG_USER", "postgres")
NATS_URL = os.environ.get("SIYU_TEST_NATS_URL", "nats://127.0.0.1:4222")
REQUIRE_SERVICES = os.environ.get("SIYU_REQUIRE_SERVICES") == "1"
BOOTSTRAP = "test-bootstrap-token"


def _port_open(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=1.0):
            return True
    except OSError:
        return False


def service_missing(name: str, host: str, port: int) -> None:
    """Skip (or, in CI, fail) when a required service does not answer."""
    if _port_open(host, port):
        return
    message = f"{name} is not running on {host}:{port}"
    if REQUIRE_SERVICES:
        pytest.fail(f"{message} and SIYU_REQUIRE_SERVICES=1", pytrace=False)
    pytest.skip(message)


def pg_admin_url(dbname: str = "postgres") -> str:
    return f"postgresql://{PG_USER}@{PG_HOST}:{PG_PORT}/{dbname}"


def create_pg_database() -> str:
    import psycopg

    service_missing("PostgreSQL", PG_HOST, PG_PORT)
    name = f"siyu_test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(pg_admin_url(), autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    return name


def drop_pg_database(name: str) -> None:
    import psycopg

    with psycopg.connect(pg_admin_url(), autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def pg_url() -> Iterator[str]:
    name = create_pg_database()
    try:
        yield pg_admin_url(name)
    finally:
        drop_pg_database(name)


@pytest.fixture
def sqlite_url(tmp_path: os.PathLike[str]) -> str:
    return f"sqlite:///{tmp_path}/siyu.db"


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: os.PathLike[str]) -> Iterator[str]:
    """The same behaviour tests run against SQLite and PostgreSQL."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path}/siyu.db"
        return
    name = create_pg_database()
    try:
        yield pg_admin_url(name)
    finally:
        drop_pg_database(name)


@pytest.fixture
def nats_url() -> str:
    host, port = NATS_URL.removeprefix("nats://").split(":")
    service_missing("NATS", host, int(port))
    return NATS_URL
