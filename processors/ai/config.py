"""The OpenAI analyser's configuration: plain values handed in by the composition root.

Nothing here reads the environment: the CLI parses its settings once (`cli.settings.AISettings`)
and builds this object from them, so a test or a script configures the analyser the same way.
"""

from __future__ import annotations

from decimal import Decimal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from processors.ai.pricing import DEFAULT_USD_TO_EUR, PriceTable
from processors.ai.prompt import (
    JSON_OBJECT,
    MESSAGE_OVERHEAD_TOKENS,
    MIN_TRANSCRIPT_TOKENS,
    PROMPT_VERSION,
    REPAIR_PROMPT,
    Transcript,
    estimate_tokens,
    system_prompt,
    user_prompt,
)
from processors.ai.ratelimit import RateLimiter
from processors.clock import Clock, utc_now

DEFAULT_MODEL = "gpt-4o-mini"


class OpenAIAnalyserConfig(BaseModel):
    model_config = ConfigDict(frozen=True, arbitrary_types_allowed=True)

    api_key: str
    base_url: str | None = None
    """None: OpenAI itself."""
    default_model: str = DEFAULT_MODEL
    """Used when the company has no model setting."""
    timeout: float = 30.0
    """Per HTTP request; keep two requests plus limiter waits inside the stage timeout."""
    max_prompt_tokens: int = 12_000
    max_output_tokens: int = 800
    temperature: float | None = 0.2
    """None leaves it out (reasoning models accept only their default)."""
    max_tokens_param: str = "max_completion_tokens"
    """``max_tokens`` for older OpenAI-compatible servers."""
    eur_rate: Decimal = DEFAULT_USD_TO_EUR
    prices: PriceTable = Field(default_factory=PriceTable.load)
    limiter: RateLimiter | None = None
    rate_limit_max_wait: float = 10.0
    """Longest wait for a client-side rate-limit slot before the attempt is retried later."""
    prompt_version: str = PROMPT_VERSION
    clock: Clock = utc_now

    @model_validator(mode="after")
    def _usable(self) -> OpenAIAnalyserConfig:
        if not self.api_key:
            raise ValueError("OPENAI_API_KEY is empty: set it, or use the offline analyser")
        if self.max_output_tokens < 100:
            raise ValueError("max_output_tokens below 100 cannot hold an analysis")
        if transcript_budget(self) < MIN_TRANSCRIPT_TOKENS:
            raise ValueError(
                f"max_prompt_tokens {self.max_prompt_tokens} leaves no room for a transcript "
                f"next to the instructions and a repair turn (max_output_tokens "
                f"{self.max_output_tokens})"
            )
        if self.max_tokens_param not in ("max_completion_tokens", "max_tokens"):
            raise ValueError("max_tokens_param must be max_completion_tokens or max_tokens")
        return self


def transcript_budget(cfg: OpenAIAnalyserConfig) -> int:
    """Estimated tokens left for the transcript: the whole request, a repair turn included,
    stays within ``max_prompt_tokens``."""
    return budget_for_transcript(cfg.max_prompt_tokens, cfg.max_output_tokens)


def budget_for_transcript(max_prompt_tokens: int, max_output_tokens: int) -> int:
    """`transcript_budget` from plain numbers, for estimates made without an API key."""
    fixed = (
        first_request_tokens()
        + max_output_tokens  # the previous answer, sent back with a repair request
        + estimate_tokens(REPAIR_PROMPT)
        + 260  # the validation error in the repair request (at most 1000 characters)
        + 2 * MESSAGE_OVERHEAD_TOKENS
    )
    return max_prompt_tokens - fixed


def first_request_tokens() -> int:
    """Estimated prompt tokens of a first request apart from the transcript itself."""
    return (
        estimate_tokens(system_prompt(JSON_OBJECT))  # the longer of the two system prompts
        + estimate_tokens(user_prompt(Transcript("", 1, 0, 0, 0)))
        + 2 * MESSAGE_OVERHEAD_TOKENS
    )


def config_problem(error: ValueError) -> str:
    """The sentence a `ValueError` from building the config says, without pydantic's framing:
    ``OPENAI_API_KEY is empty: …``, not ``1 validation error for OpenAIAnalyserConfig …``."""
    if not isinstance(error, ValidationError):
        return str(error)
    first = error.errors(include_url=False)[0]
    cause = first.get("ctx", {}).get("error")
    if isinstance(cause, ValueError):
        return str(cause)
    where = ".".join(str(p) for p in first["loc"])
    return f"{where}: {first['msg']}" if where else str(first["msg"])
