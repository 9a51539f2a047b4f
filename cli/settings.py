"""Settings: read from the environment once, here, and passed down as plain values."""

from __future__ import annotations

import getpass
import os
from collections.abc import Mapping

from pydantic import BaseModel, Field

DEFAULT_DATABASE_URL = "sqlite:///livedash.db"


class Settings(BaseModel):
    database_url: str = DEFAULT_DATABASE_URL
    actor: str = Field(default_factory=lambda: _os_user())
    lease_seconds: float = 30.0
    fetch_allow_hosts: tuple[str, ...] = ()
    fetch_per_host: int = Field(default=4, ge=1)
    """Transcript fetches from one host at once (LIVEDASH_FETCH_PER_HOST)."""
    max_csv_bytes: int = Field(default=1 << 30, gt=0)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, **overrides: object) -> Settings:
        env = os.environ if env is None else env
        values: dict[str, object] = {}
        if env.get("LIVEDASH_DATABASE_URL"):
            values["database_url"] = env["LIVEDASH_DATABASE_URL"]
        if env.get("LIVEDASH_LEASE_SECONDS"):
            values["lease_seconds"] = float(env["LIVEDASH_LEASE_SECONDS"])
        if env.get("LIVEDASH_FETCH_ALLOW_HOSTS"):
            values["fetch_allow_hosts"] = tuple(
                h.strip() for h in env["LIVEDASH_FETCH_ALLOW_HOSTS"].split(",") if h.strip()
            )
        if env.get("LIVEDASH_FETCH_PER_HOST"):
            values["fetch_per_host"] = env["LIVEDASH_FETCH_PER_HOST"]
        if env.get("LIVEDASH_MAX_CSV_BYTES"):
            values["max_csv_bytes"] = env["LIVEDASH_MAX_CSV_BYTES"]
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls.model_validate(values)


def _os_user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"
