"""Registering companies, changing their settings and status, and reading their history."""

from __future__ import annotations

from pydantic import BaseModel

from domain.budget import parse_budget
from domain.company import Company, CompanyStatus, CredentialRef
from domain.company_history import CompanyHistoryEntry, describe_company
from domain.personal import parse_retention
from domain.urls import UrlError, parse_origin
from processors.service.backend import Backend
from processors.service.errors import ExitCode, ServiceError
from processors.service.lookup import require_company
from projections.models import CompanyInfo
from projections.queries import list_companies


class CompanySettings(BaseModel):
    """What an operator sets on a company; ``None`` keeps the current value on an update."""

    csv_url: str | None = None
    username: str | None = None
    password_ref: CredentialRef | None = None
    timezone: str | None = None
    ai_model: str | None = None
    auth_scope: list[str] | None = None
    """Origins (``scheme://host[:port]``) that may receive the credentials; on an update, ``[]``
    clears the list. Checked by the use case, after the company is known."""
    allow_plain_http_auth: bool | None = None
    ai_budget: str | None = None
    """``50/month``, ``5/day`` (EUR); on an update ``none`` removes the cap."""
    retain_transcripts: str | None = None
    """``90d``: personal data is erased that long after a session started; ``none``: kept."""


class CompanyHistory(BaseModel):
    company: str
    events: list[CompanyHistoryEntry]


def add_company(
    backend: Backend,
    name: str,
    settings: CompanySettings,
    status: CompanyStatus = CompanyStatus.ACTIVE,
    actor: str = "unknown",
) -> CompanyInfo:
    if settings.csv_url is None:
        raise ServiceError("a company needs a CSV source")
    if settings.password_ref and not settings.username:
        raise ServiceError("a password reference needs --username")
    now = backend.clock()
    company = Company.register(
        name,
        settings.csv_url,
        now,
        username=settings.username,
        password_ref=settings.password_ref,
        timezone=settings.timezone if settings.timezone is not None else "UTC",
        status=status,
        ai_model=settings.ai_model,
        auth_scope=_origins(settings.auth_scope),
        allow_plain_http_auth=bool(settings.allow_plain_http_auth),
    )
    if settings.ai_budget is not None:
        company.set_ai_budget(parse_budget(settings.ai_budget), actor, "set at registration", now)
    if settings.retain_transcripts is not None:
        days = _retention(settings.retain_transcripts)
        company.set_retention(days, actor, "set at registration", now)
    backend.app.register_company(company)
    backend.catch_up()
    return company_info(backend, name)


def update_company(
    backend: Backend, name: str, settings: CompanySettings, actor: str = "unknown"
) -> CompanyInfo:
    backend.catch_up()
    require_company(backend.engine, name)
    company = backend.app.get_company(name)
    if settings.password_ref and not (settings.username or company.username):
        raise ServiceError("a password reference needs --username")
    now = backend.clock()
    s = settings
    if any(v is not None for v in (s.csv_url, s.username, s.password_ref, s.timezone, s.ai_model)):
        company.change_settings(
            now,
            csv_url=s.csv_url,
            username=s.username,
            password_ref=s.password_ref,
            timezone=s.timezone,
            ai_model=s.ai_model,
        )
    company.change_auth_policy(now, _origins(s.auth_scope), s.allow_plain_http_auth)
    if s.ai_budget is not None:
        company.set_ai_budget(parse_budget(s.ai_budget), actor, "company update", now)
    if s.retain_transcripts is not None:
        company.set_retention(_retention(s.retain_transcripts), actor, "company update", now)
    backend.app.save(company)
    backend.catch_up()
    return company_info(backend, name)


def company_info(backend: Backend, name: str) -> CompanyInfo:
    return _with_auth(backend, require_company(backend.engine, name))


def companies(backend: Backend) -> list[CompanyInfo]:
    backend.catch_up()
    with backend.engine.connect() as conn:
        rows = list_companies(conn)
    return [_with_auth(backend, info) for info in rows]


def company_history(backend: Backend, name: str, limit: int = 100) -> CompanyHistory:
    """The last ``limit`` changes, oldest first."""
    backend.catch_up()
    info = require_company(backend.engine, name)
    entries = describe_company(backend.app.events.get(info.company_id))[-max(limit, 0) :]
    return CompanyHistory(company=info.name, events=entries)


def set_status(
    backend: Backend, name: str, status: CompanyStatus, actor: str, reason: str | None = None
) -> Company:
    backend.catch_up()
    require_company(backend.engine, name)  # unknown name: one line with a hint
    company = backend.app.change_company_status(
        name, status, reason or f"set to {status.value}", actor, backend.clock()
    )
    backend.catch_up()
    return company


def _retention(text: str) -> int | None:
    try:
        return parse_retention(text)
    except ValueError as e:
        raise ServiceError(str(e), code=ExitCode.USAGE) from None


def _origins(scope: list[str] | None) -> list[str] | None:
    if scope is None:
        return None
    try:
        return [parse_origin(item) for item in scope if item.strip()]
    except UrlError as e:
        raise ServiceError(str(e), code=ExitCode.USAGE) from None


def _with_auth(backend: Backend, info: CompanyInfo) -> CompanyInfo:
    """The credential scope, read from the company itself (the projection predates it)."""
    company = backend.app.get_company(info.company_id)
    info.auth_scope = list(company.auth_scope)
    info.allow_plain_http_auth = company.allow_plain_http_auth
    info.ai_budget = str(company.ai_budget) if company.ai_budget else None
    days = company.retain_transcripts_days
    info.retain_transcripts = f"{days}d" if days is not None else None
    return info
