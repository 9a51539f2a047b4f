"""What every page shares: the backend, who is signed in, and one way to render."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from jinja2 import Environment, FileSystemLoader, select_autoescape
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import HTMLResponse

from cli.output import exact_text, fmt_age, fmt_time
from cli.web.auth import Auth
from domain.budget import AIBudget
from domain.stages import STAGE_ORDER, STATUSES
from processors.service.backend import Backend
from projections.overview_at import LogSource

HERE = Path(__file__).resolve().parent


def _eur(amount: Decimal | None, unknown: int = 0) -> str:
    """An exact amount; "unknown" when nothing is priced (never a guess)."""
    if amount is None:
        return "unknown"
    return "€" + exact_text(amount) + (f" + {unknown} unknown" if unknown else "")


def _query(base: dict[str, Any], **changes: Any) -> str:
    """The current filter with some values changed, as a query string (None drops a key)."""
    merged = {**base, **changes}
    return urlencode({k: v for k, v in merged.items() if v not in (None, "")})


def make_environment() -> Environment:
    env = Environment(
        loader=FileSystemLoader(HERE / "templates"),
        autoescape=select_autoescape(default=True),
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["time"] = fmt_time
    env.filters["age"] = fmt_age
    env.filters["eur"] = _eur
    env.globals["query"] = _query
    env.globals["STAGES"] = [s.value for s in STAGE_ORDER]
    env.globals["STATUSES"] = [s.value for s in STATUSES]
    return env


@dataclass
class Site:
    backend: Backend
    auth: Auth
    env: Environment
    installation_budget: AIBudget | None = None
    """LIVEDASH_AI_BUDGET, shown beside the companies' budgets on the overview."""
    log: LogSource | None = None
    """Where the overview as of a time (``/?at=``) replays the log from; None: not offered."""

    def render(
        self, request: Request, name: str, status_code: int = 200, **ctx: Any
    ) -> HTMLResponse:
        operator = self.auth.operator(request)
        page = self.env.get_template(name).render(
            request=request,
            operator=operator,
            csrf=self.auth.csrf(request),
            can_sign_in=self.auth.enabled,
            path=request.url.path,
            **ctx,
        )
        return HTMLResponse(page, status_code=status_code)

    def now(self) -> datetime:
        return self.backend.clock()

    def actor(self, request: Request, csrf: str) -> str:
        """The operator behind an action, or a refusal: read-only server, not signed in, or
        a form without this session's CSRF token."""
        if not self.auth.enabled:
            raise HTTPException(403, "read-only: start `livedash serve` with LIVEDASH_ADMIN_TOKEN")
        operator = self.auth.operator(request)
        if operator is None:
            raise HTTPException(403, "sign in first")
        if not self.auth.csrf_ok(request, csrf):
            raise HTTPException(403, "the form is stale or not ours (CSRF token); reload the page")
        return f"web:{operator}"


def site(request: Request) -> Site:
    found: Site = request.app.state.site
    return found
