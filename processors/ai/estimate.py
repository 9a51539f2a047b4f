"""What AI work will cost before it is caused: `reprocess` and `import` say it up front.

An estimate is only as good as its inputs, so it says what it rests on (``basis``):

* ``transcripts``: the sessions' own transcripts, fitted to the prompt budget exactly as the
  analyser will fit them (``fit_transcript``), plus the fixed instructions;
* ``history``: the mean prompt tokens of the last responses this installation received (sessions
  whose transcripts are not fetched yet, as after an import);
* ``assumed``: no history either: ``ASSUMED_TRANSCRIPT_TOKENS`` a transcript.

Output tokens are the mean of past responses when there are any, else ``max_output_tokens``
(an upper bound). A model without a price makes the cost unknown, never zero.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date
from decimal import Decimal

from pydantic import BaseModel

from domain.transcript import Message
from processors.ai.config import budget_for_transcript, first_request_tokens
from processors.ai.pricing import PriceTable, cost
from processors.ai.prompt import fit_transcript

ASSUMED_TRANSCRIPT_TOKENS = 1_000
"""Used only with no transcript and no history: a typical HR chat of 20-30 short messages."""


@dataclass(frozen=True)
class EstimateSettings:
    """The numbers the analyser would use, handed in by the CLI (no API key needed)."""

    default_model: str
    prices: PriceTable
    eur_rate: Decimal
    max_prompt_tokens: int = 12_000
    max_output_tokens: int = 800
    batch: bool = False
    """Priced at the Batch API tier (`Price.batch`): ``reprocess --batch``."""


@dataclass(frozen=True)
class History:
    """Means over the last responses received for analyses (``responses`` 0: none yet)."""

    responses: int
    prompt_tokens: float
    completion_tokens: float


class AICostEstimate(BaseModel):
    sessions: int
    requests: int
    prompt_tokens: int
    output_tokens: int
    cost_eur: Decimal | None
    """None when a model in the work has no price (see ``unknown_price_models``)."""
    models: dict[str, int]
    """Requests per model."""
    unknown_price_models: list[str]
    basis: str
    """``transcripts``, ``history`` or ``assumed`` (see the module docstring)."""
    output_basis: str
    """``history`` (mean of past responses) or ``max_output_tokens`` (an upper bound)."""
    tier: str = "standard"
    """``standard`` or ``batch`` (the Batch API's prices)."""

    def describe(self) -> str:
        """One line for people: ``€0.42 for 120 requests (…)``."""
        money = "cost unknown" if self.cost_eur is None else f"€{self.cost_eur:.2f}"
        where = ", ".join(f"{n} × {m}" for m, n in sorted(self.models.items()))
        unknown = (
            f"; no price for {', '.join(self.unknown_price_models)}"
            if self.unknown_price_models
            else ""
        )
        return (
            f"{money} for {self.requests} request(s) ({where or 'none'}; "
            f"~{self.prompt_tokens} prompt + {self.output_tokens} output tokens, "
            f"prompts from {self.basis}, output from {self.output_basis}{unknown}"
            + ("; at Batch API prices)" if self.tier == "batch" else ")")
        )


def transcript_prompt_tokens(messages: Sequence[Message], settings: EstimateSettings) -> int:
    """Prompt tokens of the first request the analyser would send for these messages."""
    budget = budget_for_transcript(settings.max_prompt_tokens, settings.max_output_tokens)
    return first_request_tokens() + fit_transcript(messages, budget).estimated_tokens


def estimate(
    work: Iterable[tuple[str | None, int | None]],
    settings: EstimateSettings,
    history: History,
    today: date,
) -> AICostEstimate:
    """``work``: one (model or None for the default, prompt tokens or None if unknown) per
    session that will be analysed once."""
    per_model: Counter[str] = Counter()
    prompts: Counter[str] = Counter()
    guessed = known = 0
    for model, prompt in work:
        name = model or settings.default_model
        per_model[name] += 1
        if prompt is None:
            guessed += 1
            prompt = _guessed_prompt(history)
        else:
            known += 1
        prompts[name] += prompt
    output_each = (
        round(history.completion_tokens) if history.responses else settings.max_output_tokens
    )
    total: Decimal | None = Decimal(0)
    unknown: list[str] = []
    for name, n in sorted(per_model.items()):
        price = settings.prices.lookup(name, today)
        if price is None:
            unknown.append(name)
            continue
        if settings.batch:
            price = price.batch()
        _usd, eur = cost(price, prompts[name], 0, n * output_each, settings.eur_rate)
        if total is not None:
            total += eur
    if unknown:
        total = None
    sessions = sum(per_model.values())
    return AICostEstimate(
        sessions=sessions,
        requests=sessions,
        prompt_tokens=sum(prompts.values()),
        output_tokens=sessions * output_each,
        cost_eur=total,
        models=dict(per_model),
        unknown_price_models=unknown,
        basis=_basis(known, guessed, history),
        output_basis="history" if history.responses else "max_output_tokens",
        tier="batch" if settings.batch else "standard",
    )


def _guessed_prompt(history: History) -> int:
    if history.responses:
        return round(history.prompt_tokens)
    return first_request_tokens() + ASSUMED_TRANSCRIPT_TOKENS


def _basis(known: int, guessed: int, history: History) -> str:
    if not guessed:
        return "transcripts"
    where = "history" if history.responses else "assumed"
    return where if not known else f"transcripts and {where}"
