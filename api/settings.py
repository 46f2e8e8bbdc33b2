"""Configuration from the environment, read once, here and nowhere else."""

from __future__ import annotations

import os
from dataclasses import dataclass

DEFAULT_DATABASE_URL = "sqlite:///var/siyu.db"


@dataclass(frozen=True)
class Settings:
    database_url: str = DEFAULT_DATABASE_URL
    bootstrap_token: str | None = None
    nats_url: str | None = None
    code_base_url: str = "https://id.siyu.example"
    projections_inline: bool = True
    log_level: str = "INFO"

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None) -> Settings:
        env = os.environ if environ is None else environ
        return cls(
            database_url=env.get("SIYU_DATABASE_URL") or DEFAULT_DATABASE_URL,
            bootstrap_token=env.get("SIYU_BOOTSTRAP_TOKEN") or None,
            nats_url=env.get("SIYU_NATS_URL") or None,
            code_base_url=(env.get("SIYU_CODE_BASE_URL") or cls.code_base_url).rstrip("/"),
            projections_inline=(env.get("SIYU_PROJECTIONS", "inline") != "off"),
            log_level=env.get("SIYU_LOG_LEVEL", "INFO"),
        )
