"""Reading the Sessions page's query string into a filter, a sort and a cursor; a value that
does not parse is a 400 with the reason, never a silent "any"."""

from __future__ import annotations

import base64
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from uuid import UUID

from sqlalchemy import Engine
from starlette.datastructures import QueryParams
from starlette.exceptions import HTTPException

from domain.stages import Stage, Status
from processors.service.errors import ServiceError
from processors.service.lookup import require_company
from projections.web_queries import SORTS, Cursor, SessionFilter, SortKey

FILTER_KEYS = ("company", "stage", "status", "error_type", "from", "to", "sort")


@dataclass
class SessionQuery:
    filter: SessionFilter
    sort: SortKey
    after: Cursor | None
    params: dict[str, str]
    """The filter as given (without the cursor): links and the CSV export keep it."""


def _day(value: str, name: str) -> date:
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise HTTPException(400, f"{name}: {value!r} is not a date (YYYY-MM-DD)") from None


def encode_cursor(c: Cursor) -> str:
    raw = f"{c.updated_at.isoformat()}|{c.session_id}|{c.stage}"
    return base64.urlsafe_b64encode(raw.encode()).decode()


def decode_cursor(value: str) -> Cursor:
    try:
        at, sid, stage = base64.urlsafe_b64decode(value.encode()).decode().split("|")
        return Cursor(updated_at=datetime.fromisoformat(at), session_id=UUID(sid), stage=stage)
    except ValueError:
        raise HTTPException(400, "the page cursor is damaged; start from the first page") from None


def parse(params: QueryParams, engine: Engine) -> SessionQuery:
    given = {k: params[k].strip() for k in FILTER_KEYS if params.get(k, "").strip()}
    values: dict[str, Any] = {}
    try:
        if "company" in given:
            values["company_id"] = require_company(engine, given["company"]).company_id
        if "stage" in given:
            values["stage"] = Stage.parse(given["stage"])
        if "status" in given:
            values["status"] = Status.parse(given["status"])
    except (ServiceError, ValueError) as e:
        raise HTTPException(400, str(e)) from None
    if "error_type" in given:
        values["error_type"] = given["error_type"]
    if "from" in given:
        values["updated_from"] = datetime.combine(_day(given["from"], "from"), time(), UTC)
    if "to" in given:
        last = _day(given["to"], "to") + timedelta(days=1)
        values["updated_to"] = datetime.combine(last, time(), UTC)
    sort = given.get("sort", "updated_desc")
    if sort not in SORTS:
        raise HTTPException(400, f"sort: use one of {', '.join(SORTS)}")
    after = decode_cursor(params["after"]) if params.get("after") else None
    return SessionQuery(SessionFilter(**values), sort, after, given)
