"""Configuration from the environment, read once, here and nowhere else."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

from projections.database import DatabaseUrlError, masked_url, parse_database_url
from projections.store import Store

DEFAULT_DATABASE_URL = "sqlite:///var/siyu.db"


@dataclass(frozen=True)
class Settings:
    database_url: str = DEFAULT_DATABASE_URL
    bootstrap_token: str | None = None
    nats_url: str | None = None
    code_base_url: str = "https://id.siyu.example"
    code_key_id: int = 0
    projections_inline: bool = True
    log_level: str = "INFO"
    audit_signing_key: str | None = None  # 64 hex digits (Ed25519 seed); else kept with store
    audit_checkpoint_every: int = 1000
    audit_verify_interval_s: float = 3600.0
    audit_verify_at_start: bool = True

    def open_store(self, **overrides: Any) -> Store:
        """The store these settings name, with the code keys and the brand's link domain."""
        options: dict[str, Any] = {
            "code_base_url": self.code_base_url,
            "code_key_id": self.code_key_id,
            "signing_key": self.audit_signing_key,
            "checkpoint_every": self.audit_checkpoint_every,
            **overrides,
        }
        try:
            return Store.open(self.database_url, **options)
        except Exception as e:
            if not _cannot_open(e):
                raise
            raise StoreUnavailable(self.database_url, e) from e

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None) -> Settings:
        env = os.environ if environ is None else environ
        return cls(
            database_url=env.get("SIYU_DATABASE_URL") or DEFAULT_DATABASE_URL,
            bootstrap_token=env.get("SIYU_BOOTSTRAP_TOKEN") or None,
            nats_url=env.get("SIYU_NATS_URL") or None,
            code_base_url=(env.get("SIYU_CODE_BASE_URL") or cls.code_base_url).rstrip("/"),
            code_key_id=int(env.get("SIYU_CODE_KEY_ID") or 0),
            projections_inline=(env.get("SIYU_PROJECTIONS", "inline") != "off"),
            log_level=env.get("SIYU_LOG_LEVEL", "INFO"),
            audit_signing_key=env.get("SIYU_AUDIT_SIGNING_KEY") or None,
            audit_checkpoint_every=int(env.get("SIYU_AUDIT_CHECKPOINT_EVERY") or 1000),
            audit_verify_interval_s=float(env.get("SIYU_AUDIT_VERIFY_INTERVAL_S") or 3600),
            audit_verify_at_start=_flag(env.get("SIYU_AUDIT_VERIFY_AT_START"), default=True),
        )


class StoreUnavailable(Exception):
    """The store the settings name cannot be opened: a URL that names none, a server that
    does not answer, a database that does not exist, a file that cannot be made. Its text
    is one line, fit to print (a password in the URL is masked): ``siyu`` prints it
    instead of a traceback (api/cli.py ``main``)."""

    def __init__(self, url: str, error: Exception) -> None:
        self.bad_url = isinstance(error, DatabaseUrlError)
        reason = " ".join(str(error).split()) or type(error).__name__
        password = "" if self.bad_url else parse_database_url(url).password
        if password:  # a driver's message should not repeat it; if one does, masked too
            reason = reason.replace(password, "***")
        where = (
            "SIYU_DATABASE_URL" if self.bad_url else f"cannot open the store at {masked_url(url)}"
        )
        super().__init__(f"{where}: {reason}")


def _cannot_open(error: Exception) -> bool:
    """Whether ``Store.open`` failed on the store itself, not on a bug of its own."""
    import sqlite3

    import psycopg
    from eventsourcing.persistence import InterfaceError, OperationalError

    if type(error) is sqlite3.DatabaseError:  # "file is not a database", not a subclass's
        return True
    kinds = (DatabaseUrlError, OSError, sqlite3.OperationalError, psycopg.OperationalError)
    return isinstance(error, (*kinds, OperationalError, InterfaceError))


FLAG_WORDS = {"1": True, "true": True, "yes": True, "on": True,
              "0": False, "false": False, "no": False, "off": False}  # fmt: skip


def _flag(value: str | None, *, default: bool) -> bool:
    if value is None or value.strip() == "":
        return default
    try:
        return FLAG_WORDS[value.strip().lower()]
    except KeyError:
        raise ValueError(f"not a yes/no setting: {value!r} (use 1/0, true/false)") from None
