"""Finding the company or session an operator names, with one clear refusal when there is none."""

from __future__ import annotations

from uuid import UUID

from pydantic import BaseModel
from sqlalchemy import Engine

from processors.service.errors import ServiceError
from projections.models import CompanyInfo
from projections.queries import company_by_name, find_sessions


class SessionRef(BaseModel):
    session_id: UUID
    external_id: str
    company: str


def require_company(engine: Engine, name: str) -> CompanyInfo:
    with engine.connect() as conn:
        info = company_by_name(conn, name)
    if info is None:
        raise ServiceError(
            f"unknown company {name!r}",
            hint="`livedash company list` shows the registered companies",
        )
    return info


def optional_company(engine: Engine, name: str | None) -> CompanyInfo | None:
    return require_company(engine, name) if name else None


def find_session(engine: Engine, key: str, company: str | None = None) -> SessionRef:
    """``key`` is the internal id or the external id; ``company`` settles an external id that
    two companies share."""
    info = optional_company(engine, company)
    with engine.connect() as conn:
        found = find_sessions(conn, key, info.company_id if info else None)
    if not found:
        raise ServiceError(
            f"unknown session {key!r}",
            hint="use the internal id or the external session id; `livedash sessions` lists them",
        )
    if len(found) > 1:
        names = ", ".join(sorted(str(f["company"]) for f in found))
        raise ServiceError(
            f"session id {key!r} exists in several companies ({names})",
            hint="add --company NAME",
        )
    row = found[0]
    return SessionRef(
        session_id=row["session_id"], external_id=row["external_id"], company=row["company"]
    )
