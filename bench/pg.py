"""Scratch PostgreSQL databases: created for one run, always dropped."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from contextlib import contextmanager

import psycopg

HOST, PORT, USER = "127.0.0.1", 5432, "postgres"


def conninfo(dbname: str) -> str:
    return f"host={HOST} port={PORT} user={USER} dbname={dbname}"


def url_of(dbname: str) -> str:
    return f"postgresql://{USER}@{HOST}:{PORT}/{dbname}"


def available() -> bool:
    try:
        with psycopg.connect(conninfo("postgres"), connect_timeout=3):
            return True
    except psycopg.Error:
        return False


@contextmanager
def scratch_database(prefix: str = "siyu_bench") -> Iterator[str]:
    """A new database; yields its name; dropped (connections closed by force) at exit."""
    name = f"{prefix}_{secrets.token_hex(4)}"
    with psycopg.connect(conninfo("postgres"), autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield name
    finally:
        with psycopg.connect(conninfo("postgres"), autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
