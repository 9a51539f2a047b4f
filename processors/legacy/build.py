"""Turning one legacy unit into a Session aggregate whose events retell its legacy history.

Everything goes through the domain's own commands with the legacy timestamps, so the migrated
history obeys the same invariants as a live one. A stage attempt is claimed by the worker
"legacy-migration" with a lease one hour past the attempt's end (it is always closed again in the
same breath). What each legacy status becomes:

- COMPLETED: earlier failures (`retryCount`) are retold as failed attempts, then one attempt that
  records the stage's data (transcript text, messages, analysis, questions) and completes.
- FAILED: `retryCount` failed attempts (at least one); the last carries the legacy message and is
  *not* retryable: the original never retried on its own, a failure may have been paid for, and the
  operator decides with `livedash retry`.
- IN_PROGRESS: the attempt is started at the legacy `startedAt` and recorded FAILED at migration
  time, retryable now ("interrupted before migration"), so the daemon takes it up.
- SKIPPED: skipped with the legacy reason.
- PENDING: stays PENDING; legacy failures or AI calls it had are retold as attempts and then a
  reset by "legacy-migration", so nothing paid disappears from the cost history.

AI_ANALYSIS: when the legacy fields form a valid `SessionAnalysis`, an `AnalysisRecorded` event
carries it. When they do not (a partial analysis, as pre-refactor sessions often have, or a summary
outside 10–300 characters), the stage is still COMPLETED, as the decision table says, with the raw
legacy values and the validation error in the completion metadata and no `AnalysisRecorded`: the
counts stay those of the original, nothing is invented, and `livedash retry --force` can redo it.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any
from uuid import UUID

from pydantic import ValidationError

from domain.analysis import Category, Sentiment, SessionAnalysis
from domain.csv_rows import MAX_IP_CHARS, SourceRow, parse_european_datetime
from domain.errors import DomainError
from domain.normalise import country_code
from domain.payloads import AIUsage, FetchedTranscript
from domain.questions import normalise_questions
from domain.session import Session
from domain.stages import READY_WHEN_PREVIOUS, WORKER_STAGES, Stage, Status
from domain.transcript import ROLE_ALIASES, ROLES, Message
from processors.legacy.plan import (
    Plans,
    StagePlan,
    has_analysis,
    imported_at,
    plan_stages,
    sane_times,
    transcript_text,
    transcript_url,
)
from processors.legacy.records import LegacyUnit
from processors.stages.creation import build_fields

WORKER = "legacy-migration"
SOURCE = "livedash-node migration"
PROMPT_VERSION = "livedash-node"
LEASE = timedelta(hours=1)
MAX_RETOLD_FAILURES = 10
"""Legacy `retryCount` values above this are retold as this many attempts (and reported)."""
INTERRUPTED = "interrupted before migration"


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


# ------------------------------------------------------------------------ preparation


def external_id_of(
    import_id: str | None, external: str | None, session_id: str | None
) -> tuple[str, str | None]:
    """Our external id (and a problem if it had to be made up)."""
    if import_id is not None:
        ext = (external or "").strip()
        if ext:
            return ext, None
        return (
            f"legacy-import-{import_id}",
            "external_id: the import has a blank externalSessionId; its legacy import id stands in",
        )
    assert session_id is not None
    return (
        f"legacy-session-{session_id}",
        "external_id: the session has no import row; its legacy session id stands in",
    )


def external_id_for(unit: LegacyUnit) -> tuple[str, str | None]:
    imp = unit.imp
    return external_id_of(
        imp.id if imp else None, imp.external_id if imp else None, unit.legacy_session_id
    )


def _text(value: object) -> str | None:
    if value is None:
        return None
    text = str(value).strip()
    return text or None


def _count(name: str, value: int | None, problems: list[str]) -> int | None:
    if value is None:
        return None
    if value < 0:
        problems.append(f"{name}: negative value {value} dropped")
        return None
    return int(value)


def _float(name: str, value: float | None, problems: list[str]) -> float | None:
    if value is None:
        return None
    if not math.isfinite(value) or value < 0:
        problems.append(f"{name}: invalid value {value} dropped")
        return None
    return abs(float(value))


def _decimal(name: str, value: float | None, problems: list[str]) -> Decimal | None:
    if value is None:
        return None
    try:
        number = Decimal(repr(float(value)))
    except (InvalidOperation, ValueError):
        number = Decimal(-1)
    if not number.is_finite() or number < 0:
        problems.append(f"{name}: invalid value {value} dropped")
        return None
    return number.copy_abs()


def _time(
    which: str,
    raw: str | None,
    parsed: datetime | None,
    fallback: datetime,
    timezone: str,
    problems: list[str],
) -> datetime:
    """The raw CSV time read as our importer reads it; else the legacy parse; else the import."""
    if raw is not None:
        try:
            return parse_european_datetime(raw, timezone)
        except ValueError as e:
            if parsed is not None:
                problems.append(f"{which}: raw {raw!r} unparseable ({e}); used Session.{which}")
                return parsed
            problems.append(f"{which}: raw {raw!r} unparseable ({e}); used the import's createdAt")
            return fallback
    if parsed is not None:
        return parsed
    problems.append(f"{which}: no time at all; used the import's createdAt")
    return fallback


def source_row(unit: LegacyUnit, timezone: str, problems: list[str]) -> tuple[SourceRow, bool]:
    """The CSV row the import stood for, built like our CSV parser builds it (values trimmed,
    blanks as None), so a later import of the same CSV line finds it unchanged."""
    ext, problem = external_id_for(unit)
    if problem:
        problems.append(problem)
    imp, ses = unit.imp, unit.session
    created = imported_at(unit)
    start_raw = imp.start_raw if imp else None
    end_raw = imp.end_raw if imp else None
    start = _time(
        "startTime", start_raw, ses.start_time if ses else None, created, timezone, problems
    )
    end = _time("endTime", end_raw, ses.end_time if ses else None, created, timezone, problems)
    if end < start:
        problems.append(f"endTime: {end.isoformat()} is before startTime; kept as it was")
    differs = bool(ses and ses.start_time and start_raw is not None and start != ses.start_time)
    if imp is not None:
        ip = _text(imp.ip_address)
        values: dict[str, Any] = {
            "country": _text(imp.country),
            "language": _text(imp.language),
            "messages_sent": _count("messagesSent", imp.messages_sent, problems),
            "sentiment": _text(imp.sentiment_raw),
            "escalated": _text(imp.escalated_raw),
            "forwarded_hr": _text(imp.forwarded_hr_raw),
            "transcript_url": transcript_url(unit),
            "avg_response_time": _float("avgResponseTimeSeconds", imp.avg_response_time, problems),
            "tokens": _count("tokens", imp.tokens, problems),
            "tokens_eur": _decimal("tokensEur", imp.tokens_eur, problems),
            "category": _text(imp.category),
            "initial_message": _text(imp.initial_message),
        }
    else:
        assert ses is not None
        ip = _text(ses.ip_address)
        values = {
            "country": _text(ses.country),
            "language": None,
            "messages_sent": None,
            "sentiment": None,
            "escalated": None,
            "forwarded_hr": None,
            "transcript_url": transcript_url(unit),
            "avg_response_time": _float("avgResponseTime", ses.avg_response_time, problems),
            "tokens": None,
            "tokens_eur": None,
            "category": None,
            "initial_message": _text(ses.initial_message),
        }
    if ip is not None and len(ip) > MAX_IP_CHARS:
        problems.append(f"ipAddress: longer than {MAX_IP_CHARS} characters; dropped")
        ip = None
    country = values["country"]
    if country is not None and not (len(country) == 2 and country.isalpha() and country.isupper()):
        code = country_code(country)
        if code:
            problems.append(
                f"country: {country!r} is not an ISO 3166-1 alpha-2 code; reads as {code}"
            )
        else:
            problems.append(f"country: {country!r} is not a known country; kept raw")
    row = SourceRow(external_id=ext, start_time=start, end_time=end, ip_address=ip, **values)
    return row, differs


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


# ----------------------------------------------------------------------------- building


class _Builder:
    def __init__(self, p: Prepared, company_id: UUID, timezone: str, now: datetime) -> None:
        self.p = p
        self.company_id = company_id
        self.timezone = timezone
        self.now = now
        self.origin = p.origin()
        self.session = Session.import_row(
            company_id, p.row, SOURCE, imported_at(p.unit), origin=self.origin
        )
        self.last = imported_at(p.unit)
        self.current: Stage | None = None

    def _do(self, command: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        with self.session.recording_origin(self.origin):
            return command(*args, **kwargs)

    def _start(self, stage: Stage, at: datetime, until: datetime) -> int:
        lease = max(at, until) + LEASE
        attempt: int = self._do(self.session.start_stage, stage, WORKER, lease, at)
        return attempt

    def _fail(
        self,
        stage: Stage,
        attempt: int,
        error_type: str,
        error: str,
        retryable: bool,
        at: datetime,
        retry_at: datetime | None = None,
    ) -> None:
        self._do(
            self.session.fail_stage,
            stage,
            attempt,
            error_type,
            error,
            retryable,
            (retry_at or at) if retryable else None,
            at,
        )

    def _retell_failures(self, stage: Stage, n: int, at: datetime) -> None:
        for _ in range(n):
            attempt = self._start(stage, at, at)
            self._fail(
                stage,
                attempt,
                "legacy_failure",
                "earlier legacy failure (message not kept)",
                True,
                at,
            )

    def _usages(self, attempt: int) -> None:
        for request_id, usage in self.p.usages:
            origin = {**self.origin, "legacy_ai_request_id": request_id}
            with self.session.recording_origin(origin):
                self.session.record_ai_usage(Stage.AI_ANALYSIS, attempt, usage)

    def _retries(self, stage: Stage, plan: StagePlan, final_failure: bool) -> int:
        own = 1 if final_failure else 0  # the final failure is told anyway
        return max(0, min(plan.retries - own, MAX_RETOLD_FAILURES - own))

    def build(self) -> Session:
        for stage in WORKER_STAGES:
            self.current = stage
            self.stage(stage, self.p.plans[stage])
        return self.session

    def stage(self, stage: Stage, plan: StagePlan) -> None:
        start, end, _ = sane_times(plan, self.last)
        usages_here = stage is Stage.AI_ANALYSIS and bool(self.p.usages)
        if plan.status is Status.SKIPPED:
            reason = plan.reason or "skipped in the legacy system"
            self._do(self.session.skip_stage, stage, reason, end)
        elif plan.status is Status.COMPLETED:
            self._retell_failures(stage, self._retries(stage, plan, False), start)
            attempt = self._start(stage, start, end)
            if usages_here:
                self._usages(attempt)
            self.complete(stage, attempt, plan, end)
        elif plan.status is Status.FAILED:
            self._retell_failures(stage, self._retries(stage, plan, True), start)
            attempt = self._start(stage, start, end)
            if usages_here:
                self._usages(attempt)
            error = plan.error or "failed in the legacy system (no message)"
            self._fail(stage, attempt, "legacy_failure", error, False, end)
        elif plan.status is Status.IN_PROGRESS:
            self._retell_failures(stage, self._retries(stage, plan, False), start)
            attempt = self._start(stage, start, start)
            if usages_here:
                self._usages(attempt)
            since = f" (legacy status IN_PROGRESS since {start.isoformat()})"
            self._fail(stage, attempt, "interrupted", INTERRUPTED + since, True, self.now, self.now)
        else:  # PENDING
            retold = self._retries(stage, plan, False)
            if not (retold or usages_here):
                return
            at = start
            self._retell_failures(stage, retold, at)
            if usages_here:
                first = min(u.requested_at for _, u in self.p.usages)
                attempt = self._start(stage, first, first)
                self._usages(attempt)
                at = max(u.received_at for _, u in self.p.usages)
                self._fail(
                    stage,
                    attempt,
                    "legacy_unfinished",
                    "legacy AI call(s) without a stored analysis",
                    True,
                    at,
                )
            self._do(
                self.session.reset_stage,
                stage,
                "legacy stage was PENDING",
                WORKER,
                max(at, self.last),
            )
        self.last = max(self.last, end)

    def complete(self, stage: Stage, attempt: int, plan: StagePlan, at: datetime) -> None:
        p, s = self.p, self.session
        meta: dict[str, Any] = {"migrated": True}
        if plan.legacy_metadata is not None:
            meta["legacy_metadata"] = plan.legacy_metadata
        if plan.legacy_status is not None:
            meta["legacy_status"] = plan.legacy_status
        if stage is Stage.TRANSCRIPT_FETCH:
            text = transcript_text(p.unit)
            if text is None:
                meta["transcript_stored"] = False
                self._do(s.complete_stage, stage, attempt, at, meta)
                return
            data = text.encode("utf-8", "surrogatepass")
            transcript = FetchedTranscript(
                url=p.row.transcript_url or "",
                text=text,
                sha256=hashlib.sha256(data).hexdigest(),
                size=len(data),
                content_type=None,
                fetched_at=at,
            )
            meta.update(size=len(data), sha256=transcript.sha256)
            self._do(s.record_transcript, attempt, transcript, at, meta)
        elif stage is Stage.SESSION_CREATION:
            fields, outside = build_fields(p.row, p.messages)
            meta.update(
                has_transcript=transcript_text(p.unit) is not None,
                messages=fields.message_count,
                user_messages=fields.messages_sent,
                timestamps_outside_window=outside,
            )
            self._do(s.record_parsed, attempt, p.messages, fields, at, meta)
        elif stage is Stage.AI_ANALYSIS:
            cost = [u.cost_eur for _, u in p.usages if u.cost_eur is not None]
            meta["cost_eur"] = float(sum(cost, Decimal(0))) if cost else None
            model = next(
                (u.model_returned for _, u in reversed(p.usages) if u.total_tokens > 0), None
            )
            if p.analysis is None:
                meta["legacy_analysis"] = raw_analysis(p.unit) if p.unit.session else None
                meta["analysis_invalid"] = p.analysis_error or "no analysis stored"
                self._do(s.complete_stage, stage, attempt, at, meta)
                return
            a = p.analysis
            meta.update(
                provider="openai",
                model=model or "unknown",
                prompt_version=PROMPT_VERSION,
                language=a.language,
                sentiment=a.sentiment.value,
                category=a.category.value,
                questions=len(a.questions),
            )
            self._do(
                s.record_analysis,
                attempt,
                a,
                "openai",
                model or "unknown",
                PROMPT_VERSION,
                at,
                meta,
            )
        else:
            meta["questions"] = len(p.questions)
            self._do(s.record_questions, attempt, list(p.questions), at, meta)


def build_session(p: Prepared, company_id: UUID, timezone: str, now: datetime) -> Session:
    """The aggregate; a domain refusal at some stage leaves that stage and the later ones
    PENDING (reported), it never loses the session."""
    builder = _Builder(p, company_id, timezone, now)
    try:
        return builder.build()
    except DomainError as e:
        failed_at = builder.current or Stage.TRANSCRIPT_FETCH
        p.problems.append(f"domain: {e}; stages from {failed_at.value} on are PENDING")
        for stage in failed_at.and_later():
            old = p.plans[stage]
            p.plans[stage] = StagePlan(Status.PENDING, legacy_status=old.status.value)
        if failed_at.index <= Stage.AI_ANALYSIS.index:
            p.usages = []
        return _Builder(p, company_id, timezone, now).build()
