"""AI budgets: how much a company (or the installation) may spend on the LLM per day or month.

A budget is a cap on spend inside a calendar period of the company's own timezone, so "50/month"
resumes at midnight on the 1st where the company is, not in UTC. Reaching it makes AI work wait,
never fail: the period's end, or a higher budget, lets it go on.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal, InvalidOperation
from enum import Enum
from zoneinfo import ZoneInfo

from domain.errors import DomainError


class BudgetError(DomainError, ValueError):
    """A budget that does not parse: the CLI shows the message with the accepted form."""


class BudgetPeriod(Enum):
    DAY = "day"
    MONTH = "month"


@dataclass(frozen=True)
class AIBudget:
    amount_eur: Decimal
    period: BudgetPeriod

    def __str__(self) -> str:
        return f"{self.amount_eur}/{self.period.value}"

    def window(self, now: datetime, timezone: str = "UTC") -> tuple[datetime, datetime]:
        """The current period as (start, end) in UTC: a calendar day or month in ``timezone``."""
        tz = ZoneInfo(timezone)
        local = now.astimezone(tz)
        if self.period is BudgetPeriod.DAY:
            start = datetime(local.year, local.month, local.day, tzinfo=tz)
            nxt = (start + timedelta(days=1)).date()
            end = datetime(nxt.year, nxt.month, nxt.day, tzinfo=tz)
        else:
            start = datetime(local.year, local.month, 1, tzinfo=tz)
            months = local.year * 12 + local.month  # the next month, as year * 12 + month - 1
            end = datetime(months // 12, months % 12 + 1, 1, tzinfo=tz)
        return start.astimezone(UTC), end.astimezone(UTC)


def parse_budget(text: str) -> AIBudget | None:
    """``50/month``, ``12.5/day`` (EUR); ``none`` or an empty text removes the budget."""
    value = text.strip().lower().replace("€", "").replace("eur", "")
    if value in ("", "none", "off"):
        return None
    amount_text, _, period_text = value.partition("/")
    try:
        amount = Decimal(amount_text.strip())
        period = BudgetPeriod(period_text.strip() or "month")
    except (InvalidOperation, ValueError):
        raise BudgetError(
            f"not a budget: {text!r}; use EUR per period, e.g. 50/month or 5/day (none removes it)"
        ) from None
    if not amount.is_finite() or amount < 0:
        raise BudgetError(f"a budget must be a positive amount of EUR, not {amount_text.strip()!r}")
    return AIBudget(amount, period)


@dataclass(frozen=True)
class BudgetStop:
    """A budget that is reached: AI work of its scope waits until ``resumes_at``."""

    scope: str
    """A company's name, or ``installation`` for LIVEDASH_AI_BUDGET."""
    budget: AIBudget
    spent_eur: Decimal
    period_start: datetime
    resumes_at: datetime


def check_budget(
    scope: str, budget: AIBudget, spent_eur: Decimal, now: datetime, timezone: str = "UTC"
) -> BudgetStop | None:
    """The stop when ``spent_eur`` in the current period has reached the budget, else None."""
    start, end = budget.window(now, timezone)
    if spent_eur < budget.amount_eur:
        return None
    return BudgetStop(scope, budget, spent_eur, start, end)
