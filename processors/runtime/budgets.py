"""The daemon's budget gate: which companies' AI work waits because their budget is reached.

Refreshed on every level tick from the projections all daemons share (`projections.budgets`),
so a fleet honours a budget within one tick of it being reached. Claims are what it stops:
requests already running finish, so spend can pass a budget by at most the work in flight
when the gate closed (plus whatever was claimed in the tick before it saw the spend).
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from datetime import datetime
from decimal import Decimal
from uuid import UUID

from eventsourcing.persistence import IntegrityError
from sqlalchemy import Engine

from domain.budget import AIBudget, BudgetStop, check_budget
from domain.company import Company
from domain.stages import Stage
from processors.runtime.reporting import Reporter
from projections.budgets import INSTALLATION, spend_in_periods, spend_since
from store.application import LiveDashApp

PAID_STAGES = frozenset({Stage.AI_ANALYSIS})
"""Stages that call the LLM: the only ones a budget holds back."""

CLAIM_MAX_AGE = 0.5
"""Seconds a budget reading may be old when paid work is claimed."""


class BudgetGate:
    def __init__(
        self, engine: Engine, app: LiveDashApp, installation: AIBudget | None, reporter: Reporter
    ) -> None:
        self.engine = engine
        self.app = app
        self.installation = installation
        self.reporter = reporter
        self.stops: dict[UUID, BudgetStop] = {}
        self.installation_stop: BudgetStop | None = None
        self._refreshed = 0.0

    def holds(self, stage: Stage, company_id: UUID) -> bool:
        """True when ``stage`` of this company's sessions must wait for its budget."""
        if stage not in PAID_STAGES:
            return False
        return self.installation_stop is not None or company_id in self.stops

    def why_wait(self, stage: Stage, company_id: UUID) -> str | None:
        """The reason work must wait for a budget (also asked on worker threads), if any."""
        if not self.holds(stage, company_id):
            return None
        stop = self.installation_stop or self.stops.get(company_id)
        until = f", resumes {stop.resumes_at:%Y-%m-%d %H:%M} UTC" if stop else ""
        return f"its AI budget is reached{until}"

    def refresh_before_claims(
        self, companies: Mapping[UUID, Company], now: datetime, max_age: float = CLAIM_MAX_AGE
    ) -> None:
        """Before paid work is claimed: spend moves with every request, not with the level
        tick, so a gate older than ``max_age`` seconds is read again (only when a budget is
        set at all: no query otherwise)."""
        if self.installation is None and not any(c.ai_budget for c in companies.values()):
            return
        if time.monotonic() - self._refreshed < max_age:
            return
        self.refresh(companies, now)

    def refresh(self, companies: Mapping[UUID, Company], now: datetime) -> None:
        self._refreshed = time.monotonic()
        budgeted = {cid: c for cid, c in companies.items() if c.ai_budget is not None}
        stops: dict[UUID, BudgetStop] = {}
        installation_stop = None
        budgets = {cid: c.ai_budget for cid, c in budgeted.items() if c.ai_budget is not None}
        with self.engine.connect() as conn:
            spent = spend_in_periods(
                conn, {cid: b.window(now, budgeted[cid].timezone)[0] for cid, b in budgets.items()}
            )
            for cid, budget in budgets.items():
                company = budgeted[cid]
                stop = check_budget(company.name, budget, spent[cid], now, company.timezone)
                if stop is not None:
                    stops[cid] = stop
            if self.installation is not None:
                start, _ = self.installation.window(now)
                total = sum(spend_since(conn, start).values(), Decimal(0))
                installation_stop = check_budget(INSTALLATION, self.installation, total, now)
        for cid, stop in stops.items():
            if cid not in self.stops:
                self._reached(budgeted[cid], stop, now)
        if installation_stop is not None and self.installation_stop is None:
            self._log(installation_stop)
        self.stops = stops
        self.installation_stop = installation_stop

    def _reached(self, company: Company, stop: BudgetStop, now: datetime) -> None:
        """Logs it, and records it on the company once per period (the first daemon wins).

        The daemon's copy of the company may be older than the log (an import recorded a
        run since it was read): a lost race is tried again on a fresh copy, which says
        whether another daemon recorded the moment meanwhile."""
        self._log(stop)
        for _ in range(3):
            if not company.record_budget_reached(stop, now):
                return
            try:
                self.app.save(company)
                return
            except IntegrityError:
                company = self.app.get_company(company.id)

    def _log(self, stop: BudgetStop) -> None:
        self.reporter.log(
            "budget_reached",
            scope=stop.scope,
            budget=str(stop.budget),
            spent_eur=str(stop.spent_eur),
            resumes_at=stop.resumes_at.isoformat(),
        )
