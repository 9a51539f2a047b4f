"""Everything a legacy unit needs before its first event: row, plans, messages, analysis, usage.

It is computed up front so every event can carry the unit's complete list of problems in its
origin, and so the builder knows in advance what it will have to adjust.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any

from pydantic import ValidationError

from domain.analysis import Category, Sentiment, SessionAnalysis
from domain.csv_rows import SourceRow
from domain.payloads import AIUsage
from domain.questions import normalise_questions
from domain.stages import READY_WHEN_PREVIOUS, WORKER_STAGES, Stage, Status
from domain.transcript import ROLE_ALIASES, ROLES, Message
from processors.legacy.csv_row import source_row
from processors.legacy.plan import Plans, has_analysis, imported_at, plan_stages, sane_times
from processors.legacy.records import LegacyUnit

MAX_RETOLD_FAILURES = 10
"""Legacy `retryCount` values above this are retold as this many attempts (and reported)."""


@dataclass
class Prepared:
    """Everything a unit needs, computed before any event, so every event can carry the
    complete list of problems in its origin."""

    unit: LegacyUnit
    external_id: str
    row: SourceRow
    plans: Plans
    messages: list[Message]
    analysis: SessionAnalysis | None
    analysis_error: str | None
    questions: list[str]
    usages: list[tuple[str, AIUsage]]
    problems: list[str] = field(default_factory=list)
    start_differs: bool = False
    """The raw start time, read in the migration's timezone, is not the legacy Session.startTime."""

    def origin(self) -> dict[str, Any]:
        unit = self.unit
        origin: dict[str, Any] = {
            "migrated_from": "livedash-node",
            "legacy_company_id": unit.company.id,
            "legacy_session_id": unit.legacy_session_id,
            "legacy_import_id": unit.legacy_import_id,
        }
        if self.problems:
            origin["problems"] = list(self.problems)
        return origin


def legacy_messages(unit: LegacyUnit, problems: list[str]) -> list[Message]:
    messages = []
    untimed = 0
    roles: set[str] = set()
    for i, m in enumerate(unit.messages):
        speaker = (m.role or "").strip()
        role = ROLE_ALIASES.get(speaker.casefold(), "other")
        if role == "other" and speaker.casefold() not in ("unknown", "other", ""):
            roles.add(speaker)
        if m.timestamp is None:
            untimed += 1
        messages.append(
            Message(
                order=i,
                role=role if role in ROLES else "other",
                speaker=speaker,
                timestamp=m.timestamp,
                content=m.content or "",
                line=i + 1,
            )
        )
    if untimed:
        problems.append(f"messages: {untimed} of {len(messages)} have no timestamp; kept without")
    if roles:
        problems.append(f"messages: unknown roles {sorted(roles)} kept as 'other'")
    orders = [m.order for m in unit.messages]
    if orders and orders != list(range(orders[0], orders[0] + len(orders))):
        problems.append("messages: legacy order has gaps or duplicates; renumbered from 0")
    return messages


def legacy_questions(unit: LegacyUnit, problems: list[str]) -> list[str]:
    seen: set[str] = set()
    texts: list[object] = []
    for q in unit.questions:
        if q.question_id in seen:
            problems.append(f"questions: question {q.question_id} is linked twice; kept once")
            continue
        seen.add(q.question_id)
        if q.content is None:
            problems.append(f"questions: question {q.question_id} has no text; dropped")
            continue
        texts.append(q.content)
    questions = normalise_questions(texts, cap=max(1, len(texts)))
    if len(questions) < len(texts):
        problems.append(
            f"questions: {len(texts) - len(questions)} blank or duplicate question(s) merged"
        )
    return questions


def legacy_analysis(
    unit: LegacyUnit, questions: list[str]
) -> tuple[SessionAnalysis | None, str | None]:
    s = unit.session
    if s is None or not has_analysis(unit):
        return None, None
    try:
        analysis = SessionAnalysis(
            language=s.language or "",
            sentiment=Sentiment(s.sentiment) if s.sentiment else None,  # type: ignore[arg-type]
            escalated=s.escalated,  # type: ignore[arg-type]
            forwarded_hr=s.forwarded_hr,  # type: ignore[arg-type]
            category=Category(s.category) if s.category else None,  # type: ignore[arg-type]
            questions=questions[:5],
            summary=s.summary or "",
        )
    except ValidationError as e:
        reasons = "; ".join(
            f"{'.'.join(str(p) for p in err['loc'])}: {err['msg']}" for err in e.errors()
        )
        return None, reasons
    except ValueError as e:
        return None, str(e)
    return analysis, None


def raw_analysis(unit: LegacyUnit) -> dict[str, Any]:
    s = unit.session
    assert s is not None
    return {
        "language": s.language,
        "sentiment": s.sentiment,
        "escalated": s.escalated,
        "forwarded_hr": s.forwarded_hr,
        "category": s.category,
        "summary": s.summary,
    }


def _dec(value: float | None) -> Decimal | None:
    if value is None or not math.isfinite(value):
        return None
    return Decimal(repr(float(value)))


def legacy_usages(unit: LegacyUnit) -> list[tuple[str, AIUsage]]:
    usages = []
    for r in unit.requests:
        model = r.model or "unknown"
        prompt, completion = int(r.prompt_tokens or 0), int(r.completion_tokens or 0)
        p_price, c_price = _dec(r.prompt_price), _dec(r.completion_price)
        cost_usd = (
            prompt * p_price + completion * c_price
            if p_price is not None and c_price is not None
            else None
        )
        usages.append(
            (
                r.id,
                AIUsage(
                    provider="openai",
                    model_requested=model,
                    model_returned=model,
                    request_id=r.request_id,
                    prompt_tokens=prompt,
                    completion_tokens=completion,
                    cached_tokens=int(r.cached_tokens or 0),
                    reasoning_tokens=int(r.reasoning_tokens or 0),
                    total_tokens=int(r.total_tokens or prompt + completion),
                    cost_usd=cost_usd,
                    cost_eur=_dec(r.cost_eur),
                    price_source="legacy",
                    response_text=None,
                    requested_at=r.requested_at,
                    received_at=r.completed_at or r.requested_at,
                    purpose="analysis",
                ),
            )
        )
    return usages


def prepare(unit: LegacyUnit, timezone: str) -> Prepared:
    problems: list[str] = []
    row, differs = source_row(unit, timezone, problems)
    ext = row.external_id
    plans, plan_problems = plan_stages(unit)
    problems.extend(plan_problems)
    messages = legacy_messages(unit, problems)
    questions = legacy_questions(unit, problems)
    analysis, error = legacy_analysis(unit, questions)
    if error and plans[Stage.AI_ANALYSIS].status is Status.COMPLETED:
        problems.append(
            f"analysis: legacy fields are not a valid analysis ({error}); "
            "AI_ANALYSIS is COMPLETED with the raw values in its metadata"
        )
    if len(questions) > 5:
        problems.append(f"questions: {len(questions)} questions (more than 5); all kept")
    usages = legacy_usages(unit)
    usages_ok = _check_plans(plans, bool(usages), imported_at(unit), problems)
    if usages and not usages_ok:
        problems.append(
            f"ai_usage: {len(usages)} legacy AI request(s) not recorded: AI_ANALYSIS is "
            f"{plans[Stage.AI_ANALYSIS].status.value} and has no attempt to attach them to"
        )
        usages = []
    return Prepared(
        unit=unit,
        external_id=ext,
        row=row,
        plans=plans,
        messages=messages,
        analysis=analysis,
        analysis_error=error,
        questions=questions,
        usages=usages,
        problems=problems,
        start_differs=differs,
    )


def _ready(plans: Plans, stage: Stage) -> bool:
    prev = stage.previous
    return prev is None or plans[prev].status in READY_WHEN_PREVIOUS[stage]


def _check_plans(plans: Plans, usages: bool, fallback: datetime, problems: list[str]) -> bool:
    """Reports what the builder will have to adjust; answers whether AI usage can be attached."""
    for stage in WORKER_STAGES:
        plan = plans[stage]
        name = stage.value.lower()
        if plan.status is not Status.PENDING:
            _, _, problem = sane_times(plan, fallback)
            if problem:
                problems.append(f"{name}: {problem}")
        if plan.retries > MAX_RETOLD_FAILURES:
            problems.append(
                f"{name}: legacy retryCount {plan.retries}; {MAX_RETOLD_FAILURES} failures "
                "are retold"
            )
        if plan.status is Status.PENDING and plan.retries and not _ready(plans, stage):
            problems.append(
                f"{name}: legacy retryCount {plan.retries} not retold: the stage is PENDING "
                "and cannot be started"
            )
            plan.retries = 0
        if plan.status is Status.SKIPPED and plan.retries:
            plan.retries = 0
    ai = plans[Stage.AI_ANALYSIS]
    if ai.status is Status.SKIPPED:
        return False
    return ai.status is not Status.PENDING or _ready(plans, Stage.AI_ANALYSIS) or not usages
