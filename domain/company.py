"""The Company aggregate: a tenant, where its CSV comes from, and what its imports did.

Credentials are only ever a *reference* (an environment variable name or a file path);
the secret itself is resolved at the edge, when a request is made, and never stored.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from enum import Enum
from typing import Literal
from uuid import NAMESPACE_URL, UUID, uuid5
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from eventsourcing.domain import Aggregate
from pydantic import BaseModel, ConfigDict, Field

from domain.budget import AIBudget, BudgetPeriod, BudgetStop
from domain.csv_rows import RowRejection
from domain.errors import CompanyError
from domain.urls import UrlError, parse_origin, refuse_userinfo

COMPANY_NAMESPACE = uuid5(NAMESPACE_URL, "https://livedash.invalid/company")
MAX_REJECTIONS_KEPT = 1000


class CompanyStatus(Enum):
    ACTIVE = "ACTIVE"
    TRIAL = "TRIAL"
    SUSPENDED = "SUSPENDED"
    ARCHIVED = "ARCHIVED"

    @classmethod
    def parse(cls, value: str) -> CompanyStatus:
        try:
            return cls[value.strip().upper()]
        except KeyError:
            names = ", ".join(s.value for s in cls)
            raise ValueError(f"unknown company status {value!r}; expected one of {names}") from None


class CredentialRef(BaseModel):
    """Where to find a password, never the password."""

    model_config = ConfigDict(frozen=True)

    kind: Literal["env", "file"]
    name: str

    def describe(self) -> str:
        return f"${self.name}" if self.kind == "env" else f"file:{self.name}"


class ImportRun(BaseModel):
    """One import of a company's CSV, as reported to the operator."""

    model_config = ConfigDict(frozen=True)

    run_id: UUID
    source: str
    started_at: datetime
    finished_at: datetime
    outcome: Literal["ok", "empty", "all_rejected", "not_modified", "error"]
    """``empty``: no data rows; ``all_rejected``: rows, none accepted. Both read the whole
    source, like ``ok``; a broken upstream export must not look like a quiet day."""
    rows_seen: int = 0
    new: int = 0
    changed: int = 0
    unchanged: int = 0
    rejected: int = 0
    rejections: list[RowRejection] = Field(default_factory=list)
    bytes: int = 0
    http_status: int | None = None
    etag: str | None = None
    last_modified: str | None = None
    content_sha256: str | None = None
    error: str | None = None
    encoding: str | None = None
    """The encoding the content was read with (None before it was recorded)."""

    @property
    def duration_ms(self) -> float:
        return (self.finished_at - self.started_at).total_seconds() * 1000


def import_warning(outcome: str, rows_seen: int = 0, error: str | None = None) -> str | None:
    """What an import run that needs an operator means, in a few words (None: nothing)."""
    if outcome == "empty":
        return "last import empty (the export has no data rows)"
    if outcome == "all_rejected":
        return f"last import had every row rejected ({rows_seen} rows)"
    if outcome == "error":
        return f"last import failed: {error or 'unknown error'}"
    return None


def company_id_for(name: str) -> UUID:
    """Names are unique regardless of case, so the id follows from the name."""
    return uuid5(COMPANY_NAMESPACE, name.strip().casefold())


def check_timezone(tz: str) -> str:
    try:
        ZoneInfo(tz)
    except (ZoneInfoNotFoundError, ValueError):
        raise CompanyError(
            f"unknown timezone {tz!r}; use an IANA name such as Europe/Amsterdam"
        ) from None
    return tz


class Company(Aggregate):
    TOPIC = "livedash:Company"

    class Event(Aggregate.Event):
        TOPIC = "livedash:Company.Event"

    class Created(Aggregate.Created):
        TOPIC = "livedash:Company.Created"

    class Registered(Aggregate.Created):
        TOPIC = "livedash:Company.Registered"
        name: str
        csv_url: str
        username: str | None
        password_ref: CredentialRef | None
        timezone: str
        status: CompanyStatus
        ai_model: str | None

    class StatusChanged(Aggregate.Event):
        TOPIC = "livedash:Company.StatusChanged"
        status: CompanyStatus
        reason: str
        actor: str

        def apply(self, aggregate: Company) -> None:
            aggregate.status = self.status

    class SettingsChanged(Aggregate.Event):
        TOPIC = "livedash:Company.SettingsChanged"
        csv_url: str
        username: str | None
        password_ref: CredentialRef | None
        timezone: str
        ai_model: str | None
        actor: str | None = None
        """Who made the change, and why, as for a status change (None in older events)."""
        reason: str | None = None

        def apply(self, aggregate: Company) -> None:
            aggregate.csv_url = self.csv_url
            aggregate.username = self.username
            aggregate.password_ref = self.password_ref
            aggregate.timezone = self.timezone
            aggregate.ai_model = self.ai_model

    class AuthPolicyChanged(Aggregate.Event):
        """Where the company's credentials may be sent besides its CSV source's origin, and
        whether they may travel over plain http to a non-loopback host."""

        TOPIC = "livedash:Company.AuthPolicyChanged"
        auth_scope: list[str]
        allow_plain_http_auth: bool

        def apply(self, aggregate: Company) -> None:
            aggregate.auth_scope = list(self.auth_scope)
            aggregate.allow_plain_http_auth = self.allow_plain_http_auth

    class AIBudgetChanged(Aggregate.Event):
        """The company's cap on LLM spend per period (None amount: no cap)."""

        TOPIC = "livedash:Company.AIBudgetChanged"
        amount_eur: str | None
        period: str | None
        actor: str
        reason: str

        def apply(self, aggregate: Company) -> None:
            aggregate.ai_budget_eur = self.amount_eur
            aggregate.ai_budget_period = self.period

    class AIBudgetReached(Aggregate.Event):
        """The moment a daemon found the period's spend at the budget: AI work waits."""

        TOPIC = "livedash:Company.AIBudgetReached"
        period_start: datetime
        resumes_at: datetime
        spent_eur: str
        budget_eur: str

        def apply(self, aggregate: Company) -> None:
            aggregate.budget_reached_for = self.period_start

    class RetentionChanged(Aggregate.Event):
        """How many days a session's personal data is kept (after it started) before the
        daemon erases it; None: kept until erased by hand."""

        TOPIC = "livedash:Company.RetentionChanged"
        days: int | None
        actor: str
        reason: str

        def apply(self, aggregate: Company) -> None:
            aggregate.retain_transcripts_days = self.days

    class ImportRecorded(Aggregate.Event):
        TOPIC = "livedash:Company.ImportRecorded"
        run: ImportRun

        def apply(self, aggregate: Company) -> None:
            # The aggregate keeps the run without its rejections (up to 1000 rows of text): it
            # is loaded on every level tick, and its snapshots stay small. Projections and
            # `imports` read the rejections from the event.
            run = self.run
            aggregate.last_import = (
                run.model_copy(update={"rejections": []}) if run.rejections else run
            )
            if run.outcome in ("ok", "empty", "all_rejected"):
                aggregate.etag = run.etag
                aggregate.last_modified = run.last_modified
                aggregate.content_sha256 = run.content_sha256

    # Class-level defaults: a company loaded from a snapshot taken before budgets existed
    # has none of these attributes of its own.
    ai_budget_eur: str | None = None
    ai_budget_period: str | None = None
    budget_reached_for: datetime | None = None
    retain_transcripts_days: int | None = None

    def __init__(
        self,
        name: str,
        csv_url: str,
        username: str | None,
        password_ref: CredentialRef | None,
        timezone: str,
        status: CompanyStatus,
        ai_model: str | None,
    ) -> None:
        self.name = name
        self.csv_url = csv_url
        self.username = username
        self.password_ref = password_ref
        self.timezone = timezone
        self.status = status
        self.ai_model = ai_model
        self.auth_scope: list[str] = []
        """A list, not a tuple: a snapshot (JSON) gives back a list, and a loaded company must
        equal the fold of its events."""
        """Origins besides the CSV source's own that receive the credentials."""
        self.allow_plain_http_auth = False
        self.last_import: ImportRun | None = None
        self.etag: str | None = None
        self.last_modified: str | None = None
        self.content_sha256: str | None = None

    @classmethod
    def register(
        cls,
        name: str,
        csv_url: str,
        now: datetime,
        username: str | None = None,
        password_ref: CredentialRef | None = None,
        timezone: str = "UTC",
        status: CompanyStatus = CompanyStatus.ACTIVE,
        ai_model: str | None = None,
        auth_scope: list[str] | None = None,
        allow_plain_http_auth: bool = False,
    ) -> Company:
        name = name.strip()
        if not name:
            raise CompanyError("a company needs a name")
        if not csv_url.strip():
            raise CompanyError("a company needs a CSV source (a URL or a file path)")
        _check_source(csv_url)
        company = cls._create(
            cls.Registered,
            id=company_id_for(name),
            name=name,
            csv_url=csv_url.strip(),
            username=username or None,
            password_ref=password_ref,
            timezone=check_timezone(timezone),
            status=status,
            ai_model=ai_model,
            timestamp=now,
        )
        company.change_auth_policy(now, auth_scope, allow_plain_http_auth)
        return company

    def change_status(self, status: CompanyStatus, reason: str, actor: str, now: datetime) -> bool:
        if status is self.status:
            return False
        self.trigger_event(
            self.StatusChanged, status=status, reason=reason, actor=actor, timestamp=now
        )
        return True

    def change_settings(
        self,
        now: datetime,
        csv_url: str | None = None,
        username: str | None = None,
        password_ref: CredentialRef | None = None,
        timezone: str | None = None,
        ai_model: str | None = None,
        actor: str | None = None,
        reason: str | None = None,
    ) -> None:
        if csv_url:
            _check_source(csv_url)
        self.trigger_event(
            self.SettingsChanged,
            csv_url=csv_url or self.csv_url,
            username=username if username is not None else self.username,
            password_ref=password_ref if password_ref is not None else self.password_ref,
            timezone=check_timezone(timezone) if timezone else self.timezone,
            ai_model=ai_model if ai_model is not None else self.ai_model,
            actor=actor,
            reason=reason,
            timestamp=now,
        )

    def change_auth_policy(
        self,
        now: datetime,
        auth_scope: list[str] | None = None,
        allow_plain_http_auth: bool | None = None,
    ) -> bool:
        """None keeps a value. Scope entries are origins (``https://host[:port]``)."""
        try:
            scope = (
                tuple(dict.fromkeys(parse_origin(o) for o in auth_scope if o.strip()))
                if auth_scope is not None
                else tuple(self.auth_scope)
            )
        except UrlError as e:
            raise CompanyError(str(e)) from None
        plain = (
            self.allow_plain_http_auth if allow_plain_http_auth is None else allow_plain_http_auth
        )
        if scope == tuple(self.auth_scope) and plain == self.allow_plain_http_auth:
            return False
        self.trigger_event(
            self.AuthPolicyChanged,
            auth_scope=list(scope),
            allow_plain_http_auth=plain,
            timestamp=now,
        )
        return True

    def record_import(self, run: ImportRun) -> None:
        if len(run.rejections) > MAX_REJECTIONS_KEPT:
            run = run.model_copy(update={"rejections": run.rejections[:MAX_REJECTIONS_KEPT]})
        self.trigger_event(self.ImportRecorded, run=run, timestamp=run.finished_at)

    @property
    def ai_budget(self) -> AIBudget | None:
        if self.ai_budget_eur is None or self.ai_budget_period is None:
            return None
        return AIBudget(Decimal(self.ai_budget_eur), BudgetPeriod(self.ai_budget_period))

    def set_ai_budget(
        self, budget: AIBudget | None, actor: str, reason: str, now: datetime
    ) -> bool:
        if budget == self.ai_budget:
            return False
        self.trigger_event(
            self.AIBudgetChanged,
            amount_eur=str(budget.amount_eur) if budget else None,
            period=budget.period.value if budget else None,
            actor=actor,
            reason=reason,
            timestamp=now,
        )
        return True

    def set_retention(self, days: int | None, actor: str, reason: str, now: datetime) -> bool:
        if days == self.retain_transcripts_days:
            return False
        if days is not None and days < 1:
            raise ValueError("a retention must be at least one day")
        self.trigger_event(
            self.RetentionChanged, days=days, actor=actor, reason=reason, timestamp=now
        )
        return True

    def record_budget_reached(self, stop: BudgetStop, now: datetime) -> bool:
        """Once per period: the first daemon to see the budget reached records it."""
        if self.budget_reached_for == stop.period_start:
            return False
        self.trigger_event(
            self.AIBudgetReached,
            period_start=stop.period_start,
            resumes_at=stop.resumes_at,
            spent_eur=str(stop.spent_eur),
            budget_eur=str(stop.budget.amount_eur),
            timestamp=now,
        )
        return True

    @property
    def is_active(self) -> bool:
        return self.status is CompanyStatus.ACTIVE


def _check_source(csv_url: str) -> None:
    try:
        refuse_userinfo(csv_url, "CSV source")
    except UrlError as e:
        raise CompanyError(str(e)) from None
