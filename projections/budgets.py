"""Spend against AI budgets, read from the projections every daemon shares.

Spend in a period is what was paid (``ai_usage.cost_eur`` of responses received in it) plus the
estimated upper bound of requests sent in it whose answer is still pending or was lost
(``ai_requests``): money possibly spent counts until it is known, so a fleet of daemons stops
at the budget instead of after it.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from datetime import datetime
from decimal import Decimal
from uuid import UUID

from sqlalchemy import Connection, and_, func, select

from domain.budget import AIBudget, BudgetPeriod, check_budget
from domain.stages import Stage, Status
from projections.models import BudgetInfo
from projections.schema import ai_requests, ai_usage, companies, company_budgets
from projections.schema import session_stage_status as sss
from projections.store import money_sum

INSTALLATION = "installation"
"""The scope of LIVEDASH_AI_BUDGET, the whole installation's cap."""


def spend_since(
    conn: Connection, start: datetime, company_ids: Collection[UUID] | None = None
) -> dict[UUID, Decimal]:
    """EUR per company since ``start`` (all companies when ``company_ids`` is None)."""
    paid = (
        select(ai_usage.c.company_id, money_sum(conn, ai_usage.c.cost_eur))
        .where(ai_usage.c.received_at >= start)
        .group_by(ai_usage.c.company_id)
    )
    open_requests = (
        select(sss.c.company_id, money_sum(conn, ai_requests.c.cost_eur_estimated))
        .join(
            sss,
            and_(
                sss.c.session_id == ai_requests.c.session_id,
                sss.c.stage == Stage.AI_ANALYSIS.value,
            ),
        )
        .where(ai_requests.c.sent_at >= start, ai_requests.c.state != "answered")
        .group_by(sss.c.company_id)
    )
    if company_ids is not None:
        ids = list(company_ids)
        paid = paid.where(ai_usage.c.company_id.in_(ids))
        open_requests = open_requests.where(sss.c.company_id.in_(ids))
    total: dict[UUID, Decimal] = {}
    for query in (paid, open_requests):
        for company_id, amount in conn.execute(query).all():
            total[company_id] = total.get(company_id, Decimal(0)) + (amount or Decimal(0))
    return total


def spend_in_periods(conn: Connection, starts: Mapping[UUID, datetime]) -> dict[UUID, Decimal]:
    """Each company's spend since its own period start, one query pair per distinct start
    (companies in one timezone with one kind of period share it)."""
    by_start: dict[datetime, list[UUID]] = {}
    for cid, start in starts.items():
        by_start.setdefault(start, []).append(cid)
    spent: dict[UUID, Decimal] = {}
    for start, ids in by_start.items():
        found = spend_since(conn, start, ids)
        spent.update({cid: found.get(cid, Decimal(0)) for cid in ids})
    return spent


def budget_standing(
    conn: Connection,
    now: datetime,
    installation: AIBudget | None = None,
    company_id: UUID | None = None,
) -> list[BudgetInfo]:
    """Every budget that is set (of one company, or all, and the installation's), with its
    spend in the current period and the sessions whose AI work waits for it."""
    rows = conn.execute(
        select(companies.c.company_id, companies.c.name, companies.c.timezone)
        .add_columns(company_budgets.c.budget_eur, company_budgets.c.period)
        .join(company_budgets, company_budgets.c.company_id == companies.c.company_id)
        .where(company_budgets.c.budget_eur.is_not(None))
    ).all()
    wanted = [r for r in rows if company_id is None or r[0] == company_id]
    budgets = {r[0]: AIBudget(r[3], BudgetPeriod(r[4])) for r in wanted}
    spent = spend_in_periods(
        conn, {cid: budgets[cid].window(now, tz)[0] for cid, _, tz, _, _ in wanted}
    )
    out = [
        _info(conn, name, budgets[cid], spent[cid], now, tz, [cid])
        for cid, name, tz, _, _ in wanted
    ]
    if installation is not None:
        start, _ = installation.window(now)
        total = sum(spend_since(conn, start).values(), Decimal(0))
        out.append(_info(conn, INSTALLATION, installation, total, now, "UTC", None))
    return out


def _info(
    conn: Connection,
    scope: str,
    budget: AIBudget,
    spent: Decimal,
    now: datetime,
    timezone: str,
    company_ids: list[UUID] | None,
) -> BudgetInfo:
    start, end = budget.window(now, timezone)
    reached = check_budget(scope, budget, spent, now, timezone) is not None
    waiting = 0
    if reached:
        query = select(func.count()).where(
            sss.c.stage == Stage.AI_ANALYSIS.value, sss.c.status == Status.PENDING.value
        )
        if company_ids is not None:
            query = query.where(sss.c.company_id.in_(company_ids))
        waiting = int(conn.execute(query).scalar() or 0)
    return BudgetInfo(
        scope=scope,
        budget=str(budget),
        spent_eur=spent,
        period_start=start,
        resumes_at=end,
        reached=reached,
        waiting_sessions=waiting,
    )
