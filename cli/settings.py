"""Settings: read from the environment once, here, and passed down as plain values."""

from __future__ import annotations

import getpass
import os
from collections.abc import Callable, Mapping
from decimal import Decimal
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, SecretBytes

from domain.budget import AIBudget, parse_budget
from processors.ai.pricing import parse_eur_rate
from processors.ai.ratelimit import ModelLimits, parse_limits
from store.master_key import MasterKeyError, parse_master_key

DEFAULT_DATABASE_URL = "sqlite:///livedash.db"


class AISettings(BaseModel):
    """The AI analyser's settings (``LIVEDASH_AI_*``, ``OPENAI_BASE_URL``, prices), parsed once.

    A value that does not parse is kept as a problem instead of failing every command: it is
    reported (`problems[0]`, today's wording) only when the OpenAI analyser is chosen. The API
    key is a secret, not a setting: the composition root asks its `SecretResolver` for it.
    """

    model_config = ConfigDict(frozen=True)

    provider: str = "auto"
    """``LIVEDASH_AI_PROVIDER`` as given (lowercased); the composition root checks it."""
    base_url: str | None = None
    model: str | None = None
    timeout: float | None = None
    """None: derived from the stage timeout."""
    max_prompt_tokens: int | None = None
    max_output_tokens: int | None = None
    usd_eur_rate: Decimal | None = None
    prices_file: Path | None = None
    rate_limits: tuple[dict[str, ModelLimits], ModelLimits] | None = None
    """(per model, default) from ``LIVEDASH_AI_RATE_LIMITS``; None: no client-side limit."""
    problems: tuple[str, ...] = ()

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> AISettings:
        def get(name: str) -> str | None:
            value = env.get(name, "").strip()
            return value or None

        problems: list[str] = []
        values: dict[str, object] = {
            "provider": (get("LIVEDASH_AI_PROVIDER") or "auto").lower(),
            "base_url": get("OPENAI_BASE_URL"),
            "model": get("LIVEDASH_AI_MODEL"),
        }

        def parse(name: str, key: str, parser: Callable[[str], object], problem: str = "") -> None:
            """Parses a setting that is set into ``key``; a bad value becomes a problem,
            reported when the analyser is built (a command that needs no AI still runs)."""
            text = get(name)
            if text is None:
                return
            try:
                values[key] = parser(text)
            except ValueError as e:
                problems.append(problem.format(name=name, text=text) if problem else str(e))

        not_a_number = "{name}={text!r} is not a number"
        parse("LIVEDASH_USD_EUR_RATE", "usd_eur_rate", parse_eur_rate)
        parse("LIVEDASH_AI_TIMEOUT", "timeout", float, not_a_number)
        parse("LIVEDASH_AI_MAX_PROMPT_TOKENS", "max_prompt_tokens", int, not_a_number)
        parse("LIVEDASH_AI_MAX_OUTPUT_TOKENS", "max_output_tokens", int, not_a_number)
        parse("LIVEDASH_PRICES_FILE", "prices_file", Path)
        parse("LIVEDASH_AI_RATE_LIMITS", "rate_limits", parse_limits)
        values["problems"] = tuple(problems)
        return cls.model_validate(values)


class Settings(BaseModel):
    database_url: str = DEFAULT_DATABASE_URL
    actor: str = Field(default_factory=lambda: _os_user())
    lease_seconds: float = 30.0
    fetch_allow_hosts: tuple[str, ...] = ()
    fetch_per_host: int = Field(default=4, ge=1)
    """Transcript fetches from one host at once (LIVEDASH_FETCH_PER_HOST)."""
    max_csv_bytes: int = Field(default=1 << 30, gt=0)
    ai: AISettings = Field(default_factory=AISettings)
    ai_budget: AIBudget | None = None
    """LIVEDASH_AI_BUDGET (``500/month``): the whole installation's cap on AI spend."""
    master_key: SecretBytes | None = None
    """LIVEDASH_MASTER_KEY (base64 of 32 bytes) or LIVEDASH_MASTER_KEY_FILE: personal data
    is sealed with per-session keys wrapped by it; None: stored unsealed (not erasable)."""

    @property
    def master_key_bytes(self) -> bytes | None:
        return self.master_key.get_secret_value() if self.master_key is not None else None

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, **overrides: object) -> Settings:
        env = os.environ if env is None else env
        values: dict[str, object] = {"ai": AISettings.from_env(env)}
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
        if env.get("LIVEDASH_AI_BUDGET", "").strip():
            values["ai_budget"] = parse_budget(env["LIVEDASH_AI_BUDGET"])
        values["master_key"] = read_master_key(env)
        if env.get("LIVEDASH_MAX_CSV_BYTES"):
            values["max_csv_bytes"] = env["LIVEDASH_MAX_CSV_BYTES"]
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls.model_validate(values)


def read_master_key(env: Mapping[str, str]) -> bytes | None:
    text = env.get("LIVEDASH_MASTER_KEY", "").strip()
    path = env.get("LIVEDASH_MASTER_KEY_FILE", "").strip()
    if text and path:
        raise MasterKeyError("set LIVEDASH_MASTER_KEY or LIVEDASH_MASTER_KEY_FILE, not both")
    if path:
        try:
            text = Path(path).read_text().strip()
        except OSError as e:
            raise MasterKeyError(f"LIVEDASH_MASTER_KEY_FILE: cannot read {path}: {e}") from None
    return parse_master_key(text) if text else None


def _os_user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"
