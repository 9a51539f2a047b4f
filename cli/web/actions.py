"""What a signed-in operator may do: sign in and out, retry failed stages, suspend and resume
a company. Each goes through the CLI's use case, with the operator as the recorded actor."""

from __future__ import annotations

from urllib.parse import quote

from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from cli.web.auth import COOKIE, SESSION_SECONDS
from cli.web.pages import _local
from cli.web.site import site
from domain.company import CompanyStatus
from domain.stages import Stage
from processors.service.companies import set_status
from processors.service.errors import ServiceError
from processors.service.retry import RetryRequest, RetryResult, retry

MAX_REASON = 500


def _text(form: FormData, name: str) -> str:
    value = form.get(name, "")
    return value.strip() if isinstance(value, str) else ""


def _reason(form: FormData) -> str:
    reason = _text(form, "reason")
    if not reason:
        raise HTTPException(400, "say why (a reason is recorded with the action)")
    return reason[:MAX_REASON]


def _back(path: str, message: str) -> RedirectResponse:
    return RedirectResponse(f"{path}?flash={quote(message)}", status_code=303)


async def login(request: Request) -> Response:
    s = site(request)
    form = await request.form()
    name, token = _text(form, "name"), _text(form, "token")
    target = _local(_text(form, "next"))
    if not s.auth.enabled:
        raise HTTPException(403, "read-only: this server has no LIVEDASH_ADMIN_TOKEN")
    if not s.auth.valid_name(name) or not s.auth.token_matches(token):
        return s.render(
            request,
            "login.html",
            status_code=401,
            next=target,
            error="wrong token, or a name that is not 1-64 letters, digits, spaces or .@-",
        )
    response = RedirectResponse(target, status_code=303)
    response.set_cookie(
        COOKIE,
        s.auth.issue(name),
        max_age=SESSION_SECONDS,
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
    )
    return response


async def logout(request: Request) -> Response:
    s = site(request)
    form = await request.form()
    s.actor(request, _text(form, "csrf"))
    response = RedirectResponse("/", status_code=303)
    response.delete_cookie(COOKIE, httponly=True, samesite="strict")
    return response


def _summary(result: RetryResult) -> str:
    text = f"{len(result.reset)} sent back to PENDING"
    if result.refused:
        first = result.refused[0]
        text += f"; {len(result.refused)} refused ({first.external_id}: {first.reason})"
    return text


async def _retry(request: Request, make: RetryRequest, actor: str) -> RetryResult:
    s = site(request)
    try:
        return await run_in_threadpool(retry, s.backend, make, actor)
    except ServiceError as e:
        raise HTTPException(400, e.message) from None


async def retry_session(request: Request) -> Response:
    s = site(request)
    form = await request.form()
    actor = s.actor(request, _text(form, "csrf"))
    key = request.path_params["session_id"]
    stage = _stage(_text(form, "stage"))
    result = await _retry(
        request, RetryRequest(sessions=[key], stage=stage, reason=_reason(form)), actor
    )
    return _back(f"/sessions/{quote(key)}", _summary(result))


async def retry_failures(request: Request) -> Response:
    """A selection (``session`` ids) or a whole group (``stage`` and ``error_type``)."""
    s = site(request)
    form = await request.form()
    actor = s.actor(request, _text(form, "csrf"))
    reason = _reason(form)
    if _text(form, "group"):
        stage = _stage(_text(form, "stage"))
        if stage is None:
            raise HTTPException(400, "a group retry needs its stage")
        request_ = RetryRequest(
            stage=stage, all_failed=True, error_type=_text(form, "error_type"), reason=reason
        )
    else:
        chosen = [v for v in form.getlist("session") if isinstance(v, str) and v]
        if not chosen:
            raise HTTPException(400, "tick the sessions to retry, or retry a whole group")
        request_ = RetryRequest(sessions=chosen, reason=reason)
    result = await _retry(request, request_, actor)
    return _back("/failures", _summary(result))


async def company_status(request: Request) -> Response:
    s = site(request)
    form = await request.form()
    actor = s.actor(request, _text(form, "csrf"))
    name, wanted = _text(form, "name"), _text(form, "status")
    allowed = {"SUSPENDED": CompanyStatus.SUSPENDED, "ACTIVE": CompanyStatus.ACTIVE}
    if wanted not in allowed:
        raise HTTPException(400, "status: SUSPENDED or ACTIVE")
    try:
        await run_in_threadpool(set_status, s.backend, name, allowed[wanted], actor, _reason(form))
    except ServiceError as e:
        raise HTTPException(400, e.message) from None
    return _back("/companies", f"{name} is {wanted}")


def _stage(value: str) -> Stage | None:
    if not value:
        return None
    try:
        return Stage.parse(value)
    except ValueError as e:
        raise HTTPException(400, str(e)) from None
