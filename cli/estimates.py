"""Pricing work before it is caused, and asking before money is spent in bulk."""

from __future__ import annotations

import sys
from decimal import Decimal

import typer

from cli.errors import CliError, ExitCode
from cli.settings import AISettings
from processors.ai.config import DEFAULT_MODEL
from processors.ai.estimate import AICostEstimate, EstimateSettings
from processors.ai.pricing import DEFAULT_USD_TO_EUR, PriceTable, PriceTableError
from processors.service.reprocess import Approve

DEFAULT_CONFIRM_ABOVE_EUR = Decimal("5")


def estimate_settings(ai: AISettings) -> EstimateSettings:
    """The numbers the analyser would use; no API key needed to price work."""
    try:
        prices = PriceTable.load(ai.prices_file)
    except PriceTableError as e:
        raise CliError(str(e), hint="check LIVEDASH_PRICES_FILE", code=ExitCode.USAGE) from None
    limits: dict[str, int] = {
        k: v
        for k, v in {
            "max_prompt_tokens": ai.max_prompt_tokens,
            "max_output_tokens": ai.max_output_tokens,
        }.items()
        if v is not None
    }
    return EstimateSettings(
        default_model=ai.model or DEFAULT_MODEL,
        prices=prices,
        eur_rate=ai.usd_eur_rate or DEFAULT_USD_TO_EUR,
        max_prompt_tokens=limits.get("max_prompt_tokens", EstimateSettings.max_prompt_tokens),
        max_output_tokens=limits.get("max_output_tokens", EstimateSettings.max_output_tokens),
    )


def ask_above(limit: Decimal, yes: bool) -> Approve:
    """Refuses (or, at a terminal, asks) when the work costs more than ``limit`` EUR or its
    cost is unknown; ``--yes`` approves without asking."""

    def approve(count: int, priced: AICostEstimate | None) -> None:
        if yes or priced is None or priced.requests == 0:
            return
        if priced.cost_eur is not None and priced.cost_eur <= limit:
            return
        what = f"{count} session(s): AI cost estimate {priced.describe()}"
        if sys.stdin.isatty() and sys.stdout.isatty():
            if typer.confirm(f"{what}. Go ahead?", default=False):
                return
            raise CliError("not confirmed; nothing was changed", code=ExitCode.FAILED)
        above = "unknown" if priced.cost_eur is None else f"above €{limit}"
        raise CliError(
            f"{what} is {above}; nothing was changed",
            hint="add --yes to go ahead, --dry-run to see the estimate, or --confirm-above EUR",
            code=ExitCode.USAGE,
        )

    return approve
