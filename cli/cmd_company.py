"""`livedash company add|update|list|history|suspend|activate|archive`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from cli.context import backend, handle_errors, state
from cli.errors import CliError, ExitCode
from cli.output import console, fmt_time, print_json
from domain.company import CompanyStatus, CredentialRef
from domain.urls import UrlError, redact, refuse_userinfo
from processors.service.companies import (
    CompanySettings,
    add_company,
    companies,
    company_history,
    set_status,
    update_company,
)

AUTH_SCOPE_HELP = (
    "Origins (scheme://host[:port], comma-separated) that may receive the credentials besides "
    "the CSV source's own origin; transcripts elsewhere are fetched without them"
)
PLAIN_HTTP_HELP = "Allow sending the credentials over plain http to a non-loopback host"

app = typer.Typer(help="Register companies and change their status.", no_args_is_help=True)


@app.command("add")
@handle_errors
def add(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="Company name (unique, case-insensitive)")],
    csv_url: Annotated[str, typer.Option("--csv-url", help="URL or local path of the CSV export")],
    username: Annotated[str | None, typer.Option("--username", help="Basic-auth user")] = None,
    password_env: Annotated[
        str | None, typer.Option("--password-env", help="Environment variable holding the password")
    ] = None,
    password_file: Annotated[
        Path | None, typer.Option("--password-file", help="File holding the password")
    ] = None,
    timezone: Annotated[
        str, typer.Option("--timezone", help="IANA timezone of the CSV's times")
    ] = "UTC",
    status: Annotated[
        str, typer.Option("--status", help="ACTIVE, TRIAL, SUSPENDED or ARCHIVED")
    ] = "ACTIVE",
    ai_model: Annotated[
        str | None, typer.Option("--ai-model", help="Model for AI_ANALYSIS")
    ] = None,
    ai_budget: Annotated[
        str | None,
        typer.Option("--ai-budget", help="EUR the AI work may cost per period: 50/month, 5/day"),
    ] = None,
    retain_transcripts: Annotated[
        str | None,
        typer.Option(
            "--retain-transcripts",
            help="Erase sessions' personal data this long after they started: 90d, 12w, none",
        ),
    ] = None,
    auth_scope: Annotated[str | None, typer.Option("--auth-scope", help=AUTH_SCOPE_HELP)] = None,
    allow_plain_http_auth: Annotated[
        bool, typer.Option("--allow-plain-http-auth", help=PLAIN_HTTP_HELP)
    ] = False,
    json_out: Annotated[bool, typer.Option("--json", help="Print JSON")] = False,
) -> None:
    """Register a company. Credentials are stored as a reference, never as the secret."""
    ref = _credential_ref(password_env, password_file)
    if ref and not username:
        raise CliError("a password reference needs --username")
    settings = CompanySettings(
        csv_url=_source(csv_url),
        username=username,
        password_ref=ref,
        timezone=timezone,
        ai_model=ai_model,
        ai_budget=ai_budget,
        retain_transcripts=retain_transcripts,
        auth_scope=_scope(auth_scope),
        allow_plain_http_auth=allow_plain_http_auth,
    )
    with state(ctx).runtime() as rt:
        info = add_company(
            backend(rt), name, settings, CompanyStatus.parse(status), state(ctx).settings.actor
        )
    if json_out:
        print_json(info)
    else:
        console.print(
            f"[green]registered[/] {escape(info.name)} ({info.status}), id {info.company_id}"
        )


@app.command("update")
@handle_errors
def update(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="Company name")],
    csv_url: Annotated[
        str | None, typer.Option("--csv-url", help="URL or local path of the CSV export")
    ] = None,
    username: Annotated[str | None, typer.Option("--username", help="Basic-auth user")] = None,
    password_env: Annotated[
        str | None, typer.Option("--password-env", help="Environment variable holding the password")
    ] = None,
    password_file: Annotated[
        Path | None, typer.Option("--password-file", help="File holding the password")
    ] = None,
    timezone: Annotated[
        str | None, typer.Option("--timezone", help="IANA timezone of the CSV's times")
    ] = None,
    ai_model: Annotated[
        str | None, typer.Option("--ai-model", help="Model for AI_ANALYSIS")
    ] = None,
    ai_budget: Annotated[
        str | None,
        typer.Option(
            "--ai-budget", help="EUR the AI work may cost per period: 50/month, 5/day, none"
        ),
    ] = None,
    retain_transcripts: Annotated[
        str | None,
        typer.Option(
            "--retain-transcripts",
            help="Erase sessions' personal data this long after they started: 90d, 12w, none",
        ),
    ] = None,
    auth_scope: Annotated[
        str | None,
        typer.Option("--auth-scope", help=AUTH_SCOPE_HELP + "; an empty value clears the list"),
    ] = None,
    allow_plain_http_auth: Annotated[
        bool | None,
        typer.Option("--allow-plain-http-auth/--no-allow-plain-http-auth", help=PLAIN_HTTP_HELP),
    ] = None,
    json_out: Annotated[bool, typer.Option("--json", help="Print JSON")] = False,
) -> None:
    """Change a company's CSV source, credentials, timezone, model or credential scope;
    options not given keep their value."""
    settings = CompanySettings(
        password_ref=_credential_ref(password_env, password_file),
        csv_url=_source(csv_url) if csv_url is not None else None,
        username=username,
        timezone=timezone,
        ai_model=ai_model,
        ai_budget=ai_budget,
        retain_transcripts=retain_transcripts,
        auth_scope=_scope(auth_scope),
        allow_plain_http_auth=allow_plain_http_auth,
    )
    with state(ctx).runtime() as rt:
        info = update_company(backend(rt), name, settings, state(ctx).settings.actor)
    if json_out:
        print_json(info)
    else:
        console.print(f"[green]updated[/] {escape(info.name)}")


def _credential_ref(password_env: str | None, password_file: Path | None) -> CredentialRef | None:
    if password_env and password_file:
        raise CliError("give --password-env or --password-file, not both")
    if password_env:
        return CredentialRef(kind="env", name=password_env)
    if password_file:
        return CredentialRef(kind="file", name=str(password_file.expanduser().resolve()))
    return None


def _source(csv_url: str) -> str:
    """A URL as given (never with a password in it) or an absolute path."""
    try:
        refuse_userinfo(csv_url, "CSV source")
    except UrlError as e:
        raise CliError(str(e), code=ExitCode.USAGE) from None
    if "://" not in csv_url:
        return str(Path(csv_url).expanduser().resolve())
    return csv_url


def _scope(value: str | None) -> list[str] | None:
    """The comma-separated origins; the use case checks each one."""
    if value is None:
        return None
    return [item for item in value.split(",") if item.strip()]


@app.command("list")
@handle_errors
def list_(
    ctx: typer.Context,
    json_out: Annotated[bool, typer.Option("--json", help="Print JSON")] = False,
) -> None:
    """Companies with their status, session count and last import."""
    with state(ctx).runtime() as rt:
        rows = companies(backend(rt))
    if json_out:
        print_json(rows)
        return
    table = Table(title="Companies")
    for col in (
        "name",
        "status",
        "sessions",
        "timezone",
        "CSV source",
        "auth scope",
        "last import",
    ):
        table.add_column(col)
    for c in rows:
        last = "-"
        if c.last_import:
            r = c.last_import
            last = (
                f"{fmt_time(r.finished_at)} {r.outcome}: {r.rows_seen} seen, {r.new} new, "
                f"{r.changed} changed, {r.rejected} rejected"
            )
        scope = ", ".join(c.auth_scope) or "-"
        if c.allow_plain_http_auth:
            scope += " (plain http allowed)"
        table.add_row(
            escape(c.name),
            c.status,
            str(c.sessions),
            c.timezone,
            escape(redact(c.csv_url)),
            escape(scope),
            last,
        )
    console.print(table)


@app.command("history")
@handle_errors
def history(
    ctx: typer.Context,
    name: str,
    limit: Annotated[int, typer.Option("--limit", help="Only the last N events")] = 100,
    json_out: Annotated[bool, typer.Option("--json", help="Print JSON")] = False,
) -> None:
    """Every change to a company, in order: who changed its status or settings, and why."""
    with state(ctx).runtime() as rt:
        trail = company_history(backend(rt), name, limit)
    entries = trail.events
    if json_out:
        print_json({"company": trail.company, "events": entries})
        return
    table = Table(title=f"History of {escape(trail.company)}")
    for col in ("#", "time (UTC)", "event", "change", "by", "reason"):
        table.add_column(col)
    for e in entries:
        change = ", ".join(f"{k}: {v}" for k, v in e.changes.items())
        if e.data:
            change = ", ".join(f"{k}={v}" for k, v in e.data.items())
        table.add_row(
            str(e.version),
            fmt_time(e.timestamp),
            e.event,
            escape(change),
            escape(e.actor or ""),
            escape(e.reason or ""),
        )
    console.print(table)


def _set_status(ctx: typer.Context, name: str, status: CompanyStatus, reason: str | None) -> None:
    settings = state(ctx).settings
    with state(ctx).runtime() as rt:
        company = set_status(backend(rt), name, status, settings.actor, reason)
    console.print(f"{escape(company.name)} is now {company.status.value}")


@app.command("suspend")
@handle_errors
def suspend(
    ctx: typer.Context,
    name: str,
    reason: Annotated[str | None, typer.Option("--reason")] = None,
) -> None:
    """Stop processing a company's sessions (they wait; `status` says why)."""
    _set_status(ctx, name, CompanyStatus.SUSPENDED, reason)


@app.command("activate")
@handle_errors
def activate(
    ctx: typer.Context,
    name: str,
    reason: Annotated[str | None, typer.Option("--reason")] = None,
) -> None:
    """Process a company's sessions again."""
    _set_status(ctx, name, CompanyStatus.ACTIVE, reason)


@app.command("archive")
@handle_errors
def archive(
    ctx: typer.Context,
    name: str,
    reason: Annotated[str | None, typer.Option("--reason")] = None,
) -> None:
    """Archive a company: its history stays, nothing is processed."""
    _set_status(ctx, name, CompanyStatus.ARCHIVED, reason)
