"""The Starlette application: routes, static files, security headers and error pages."""

from __future__ import annotations

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from cli.web import actions, pages
from cli.web.auth import Auth
from cli.web.headers import SecurityHeaders
from cli.web.site import HERE, Site, make_environment, site
from domain.budget import AIBudget
from domain.errors import DomainError
from processors.service.backend import Backend
from processors.service.errors import ServiceError
from projections.health import HealthEndpoints, installation_registry
from projections.overview_at import LogSource


def build_app(
    backend: Backend,
    admin_token: str | None,
    installation_budget: AIBudget | None = None,
    log: LogSource | None = None,
) -> Starlette:
    """``admin_token`` None: read-only (no sign-in, no actions, no personal data)."""
    routes = [
        Route("/", pages.overview, name="overview"),
        Route("/sessions", pages.sessions, name="sessions"),
        Route("/sessions.csv", pages.sessions_csv, name="sessions_csv"),
        Route("/sessions/{session_id}", pages.session, name="session"),
        Route("/sessions/{session_id}/retry", actions.retry_session, methods=["POST"]),
        Route("/failures", pages.failures, name="failures"),
        Route("/failures/retry", actions.retry_failures, methods=["POST"]),
        Route("/companies", pages.companies, name="companies"),
        Route("/companies/status", actions.company_status, methods=["POST"]),
        Route("/costs", pages.costs_page, name="costs"),
        Route("/login", pages.login_form, name="login"),
        Route("/login", actions.login, methods=["POST"]),
        Route("/logout", actions.logout, methods=["POST"]),
        Mount("/static", StaticFiles(directory=HERE / "static"), name="static"),
        *health_routes(backend),
    ]
    app = Starlette(
        routes=routes,
        middleware=[Middleware(SecurityHeaders)],
        exception_handlers={
            HTTPException: _error_page,
            ServiceError: _error_page,
            DomainError: _error_page,
        },
    )
    app.state.site = Site(
        backend=backend,
        auth=Auth(admin_token, backend.clock),
        env=make_environment(),
        installation_budget=installation_budget,
        log=log,
    )
    return app


def health_routes(backend: Backend) -> list[Route]:
    """``/metrics`` (the installation's gauges, no worker label), ``/healthz`` and ``/readyz``,
    as a daemon serves them (projections/health.py)."""
    health = HealthEndpoints(installation_registry(backend.runner), backend.runner)

    async def endpoint(request: Request) -> Response:
        code, body, kind = await run_in_threadpool(health.respond, request.url.path)
        return Response(body, status_code=code, media_type=kind)

    return [Route(path, endpoint) for path in ("/metrics", "/healthz", "/readyz")]


async def _error_page(request: Request, exc: Exception) -> Response:
    if isinstance(exc, HTTPException):
        code, message = exc.status_code, str(exc.detail)
    elif isinstance(exc, ServiceError):
        code, message = 400, exc.message
    else:
        code, message = 400, str(exc)
    return site(request).render(request, "error.html", status_code=code, code=code, message=message)
