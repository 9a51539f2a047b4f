"""What every command shares: the settings, the runtime, and one way to fail."""

from __future__ import annotations

import functools
import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ParamSpec, TypeVar

import typer
from eventsourcing.persistence import OperationalError as ESOperationalError
from pydantic import ValidationError
from rich.markup import escape
from sqlalchemy.exc import OperationalError as SAOperationalError

from cli.errors import CliError, ExitCode
from cli.output import err_console
from cli.runtime import Runtime
from cli.secrets import environment_secrets
from cli.settings import Settings
from domain.errors import DomainError
from processors.clock import utc_now
from processors.net.credentials import SecretResolver
from processors.service import lookup
from processors.service.backend import Backend
from projections.models import CompanyInfo

P = ParamSpec("P")
R = TypeVar("R")


@dataclass
class State:
    settings: Settings
    secrets: SecretResolver
    """Credential references and the API key resolve here (a snapshot taken once at start)."""

    def runtime(self, create: bool = False) -> Runtime:
        return Runtime.open(
            self.settings.database_url, create=create, master_key=self.settings.master_key_bytes
        )


def state(ctx: typer.Context) -> State:
    obj = ctx.find_object(State)
    if obj is None:  # a command invoked without the callback (tests calling functions)
        environ = dict(os.environ)
        obj = State(Settings.from_env(environ), environment_secrets(environ))
        ctx.obj = obj
    return obj


def fail(err: CliError) -> typer.Exit:
    # The message quotes user input (names, ids, paths): never read it as Rich markup, and
    # never wrap it: scripts read exactly one `error:` line whatever the terminal width.
    err_console.print(f"[bold red]error:[/] {escape(err.message)}", soft_wrap=True)
    if err.hint:
        err_console.print(f"[dim]hint:[/] {escape(err.hint)}", soft_wrap=True)
    return typer.Exit(int(err.code))


def handle_errors(func: Callable[P, R]) -> Callable[P, R]:
    """Turns the errors a user can cause into one clear line, a hint and an exit code."""

    @functools.wraps(func)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return func(*args, **kwargs)
        except CliError as e:
            raise fail(e) from None
        except DomainError as e:
            raise fail(CliError(str(e))) from None
        except ValueError as e:
            if isinstance(e, ValidationError):
                raise fail(CliError(f"invalid value: {e.errors()[0]['msg']}")) from None
            raise fail(CliError(str(e), code=ExitCode.USAGE)) from None
        except (SAOperationalError, ESOperationalError) as e:
            first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            raise fail(
                CliError(
                    f"database error: {first}",
                    hint="check that the database is reachable and initialised (`livedash init`)",
                    code=ExitCode.DATABASE,
                )
            ) from None

    return wrapper


def backend(rt: Runtime) -> Backend:
    """What the use cases of processors/service work on."""
    return Backend(app=rt.app, engine=rt.engine, runner=rt.runner, clock=utc_now)


def require_company(rt: Runtime, name: str) -> CompanyInfo:
    return lookup.require_company(rt.engine, name)


def optional_company(rt: Runtime, name: str | None) -> CompanyInfo | None:
    return lookup.optional_company(rt.engine, name)


def catch_up(rt: Runtime) -> None:
    """Reports reflect the command that ran just before them."""
    rt.runner.catch_up()


def kwargs_without_none(**kwargs: Any) -> dict[str, Any]:
    return {k: v for k, v in kwargs.items() if v is not None}
