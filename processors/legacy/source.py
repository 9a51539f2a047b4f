"""Reading a livedash-node PostgreSQL database in batches (its variant: `variant.py`).

The connection is read-only and one REPEATABLE READ snapshot, so a legacy system that is still
running cannot make the migration see half of a change. Units (sessions, and imports that never
became one) come from a server-side cursor; each batch's imports, sessions, messages, questions,
AI requests and status rows are fetched with one `= ANY(%s)` query per table.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import psycopg
from psycopg import sql

from processors.legacy.records import (
    LegacyAIRequest,
    LegacyCompany,
    LegacyImport,
    LegacyMessage,
    LegacyQuestion,
    LegacySession,
    LegacyStatus,
    LegacyUnit,
    UnitKey,
)
from processors.legacy.variant import Variant, detect


class LegacyConnectionError(Exception):
    pass


def redact(dsn: str) -> str:
    """The DSN without its password, for messages and reports."""
    if "://" not in dsn:
        return " ".join(p for p in dsn.split() if not p.lower().startswith("password="))
    parts = urlsplit(dsn)
    if parts.password is None:
        return dsn
    host = parts.hostname or ""
    if parts.port:
        host += f":{parts.port}"
    user = parts.username or ""
    return urlunsplit(parts._replace(netloc=f"{user}:***@{host}"))


def utc(value: datetime | None) -> datetime | None:
    if value is None:
        return None
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


class LegacySource:
    """A read-only connection to the legacy database."""

    def __init__(self, dsn: str) -> None:
        self.dsn = redact(dsn)
        try:
            self.conn: psycopg.Connection[tuple[Any, ...]] = psycopg.connect(
                dsn, connect_timeout=10
            )
        except psycopg.Error as e:
            first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            raise LegacyConnectionError(
                f"cannot connect to the legacy database {redact(dsn)}: {first}"
            ) from None
        self.conn.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
        self.conn.read_only = True
        self.info = detect(self._columns())

    def close(self) -> None:
        self.conn.close()

    def __enter__(self) -> LegacySource:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def variant(self) -> Variant:
        return self.info.variant

    def _columns(self) -> dict[str, frozenset[str]]:
        rows = self.conn.execute(
            "SELECT table_name, column_name FROM information_schema.columns "
            "WHERE table_schema = current_schema()"
        ).fetchall()
        found: dict[str, set[str]] = {}
        for table, column in rows:
            found.setdefault(table, set()).add(column)
        return {t: frozenset(c) for t, c in found.items()}

    # ------------------------------------------------------------------ companies
    def companies(self) -> list[LegacyCompany]:
        has = self.info.has
        status = sql.SQL('"status"::text') if has("Company", "status") else sql.SQL("NULL")
        password = (
            sql.SQL('("csvPassword" IS NOT NULL AND "csvPassword" <> \'\')')
            if has("Company", "csvPassword")
            else sql.SQL("false")
        )
        query = sql.SQL(
            'SELECT "id", "name", "csvUrl", "csvUsername", {password}, {status}, "createdAt" '
            'FROM "Company" ORDER BY "createdAt", "id"'
        ).format(password=password, status=status)
        return [
            LegacyCompany(r[0], r[1] or "", r[2] or "", r[3], bool(r[4]), r[5], _utc(r[6]))
            for r in self.conn.execute(query).fetchall()
        ]

    # ---------------------------------------------------------------------- units
    _UNITS = (
        'FROM "SessionImport" i FULL JOIN "Session" s ON s."importId" = i."id" '
        'WHERE COALESCE(i."companyId", s."companyId") = ANY(%s)'
    )

    def count_units(self, company_ids: Sequence[str]) -> int:
        row = self.conn.execute(
            "SELECT count(*) " + self._UNITS,
            (list(company_ids),),
        ).fetchone()
        return int(row[0]) if row else 0

    def unit_keys(
        self, companies: Sequence[LegacyCompany], batch_size: int
    ) -> Iterator[list[UnitKey]]:
        """Units oldest first, ``batch_size`` keys at a time, from a server-side cursor."""
        query = (
            'SELECT i."id", s."id", COALESCE(i."companyId", s."companyId"), '
            'i."externalSessionId" '
            + self._UNITS
            + ' ORDER BY COALESCE(i."createdAt", s."createdAt"), COALESCE(i."id", s."id")'
        )
        with self.conn.cursor(name="livedash_legacy_units") as cur:
            cur.itersize = batch_size
            cur.execute(query, ([c.id for c in companies],))
            while True:
                keys = cur.fetchmany(batch_size)
                if not keys:
                    break
                yield [(k[0], k[1], k[2], k[3]) for k in keys]

    def load(
        self, keys: Sequence[UnitKey], companies: dict[str, LegacyCompany]
    ) -> list[LegacyUnit]:
        """The units of ``keys`` with all of their rows: one query per table."""
        import_ids = [k[0] for k in keys if k[0] is not None]
        session_ids = [k[1] for k in keys if k[1] is not None]
        imports = self._imports(import_ids)
        sessions = self._sessions(session_ids)
        messages = self._messages(session_ids)
        questions = self._questions(session_ids) if self.info.has_questions else {}
        requests = self._requests(session_ids) if self.info.has_ai_requests else {}
        statuses = self._statuses(session_ids) if self.variant == "refactored" else {}
        units = []
        for import_id, session_id, company_id, _ in keys:
            sid = session_id
            units.append(
                LegacyUnit(
                    company=companies[company_id],
                    imp=imports.get(import_id) if import_id else None,
                    session=sessions.get(sid) if sid else None,
                    messages=messages.get(sid, []) if sid else [],
                    questions=questions.get(sid, []) if sid else [],
                    requests=requests.get(sid, []) if sid else [],
                    statuses=statuses.get(sid, {}) if sid else {},
                )
            )
        return units

    def _imports(self, ids: list[str]) -> dict[str, LegacyImport]:
        if not ids:
            return {}
        pre = self.info.has("SessionImport", "status")
        extra = ', "status"::text, "errorMsg", "processedAt"' if pre else ""
        if pre and not (
            self.info.has("SessionImport", "errorMsg")
            and self.info.has("SessionImport", "processedAt")
        ):
            extra = ', "status"::text, NULL, NULL'
        rows = self.conn.execute(
            'SELECT "id", "companyId", "externalSessionId", "startTimeRaw", "endTimeRaw", '
            '"ipAddress", "countryCode", "language", "messagesSent", "sentimentRaw", '
            '"escalatedRaw", "forwardedHrRaw", "fullTranscriptUrl", "avgResponseTimeSeconds", '
            '"tokens", "tokensEur", "category", "initialMessage", "rawTranscriptContent", '
            f'"createdAt"{extra} FROM "SessionImport" WHERE "id" = ANY(%s)',
            (ids,),
        ).fetchall()
        found = {}
        for r in rows:
            imp = LegacyImport(
                **dict(zip(_IMPORT_FIELDS, r[:19], strict=True)), created_at=_utc(r[19])
            )
            if pre:
                imp.status, imp.error, imp.processed_at = r[20], r[21], utc(r[22])
            found[imp.id] = imp
        return found

    def _sessions(self, ids: list[str]) -> dict[str, LegacySession]:
        if not ids:
            return {}
        processed = ', "processed"' if self.info.has("Session", "processed") else ", NULL"
        rows = self.conn.execute(
            'SELECT "id", "companyId", "importId", "startTime", "endTime", "ipAddress"::text, '
            '"country", "fullTranscriptUrl", "avgResponseTime", "initialMsg", "language", '
            '"messagesSent", "sentiment"::text, "escalated", "forwardedHr", "category"::text, '
            f'"summary", "createdAt", "updatedAt"{processed} FROM "Session" WHERE "id" = ANY(%s)',
            (ids,),
        ).fetchall()
        found = {}
        for row in rows:
            r = (*row[:3], utc(row[3]), utc(row[4]), _ip(row[5]), *row[6:])
            found[r[0]] = LegacySession(
                **dict(zip(_SESSION_FIELDS, r[:17], strict=True)),
                created_at=_utc(r[17]),
                updated_at=_utc(r[18]),
                processed=r[19],
            )
        return found

    def _messages(self, ids: list[str]) -> dict[str, list[LegacyMessage]]:
        found: dict[str, list[LegacyMessage]] = {}
        if not ids:
            return found
        with self.conn.cursor(binary=True) as cur:
            cur.execute(
                'SELECT "sessionId", "timestamp", "role", "content", "order", "createdAt" '
                'FROM "Message" WHERE "sessionId" = ANY(%s) ORDER BY "sessionId", "order"',
                (ids,),
            )
            for sid, ts, role, content, order, created in cur:
                found.setdefault(sid, []).append(
                    LegacyMessage(utc(ts), role, content, order, utc(created))
                )
        return found

    def _questions(self, ids: list[str]) -> dict[str, list[LegacyQuestion]]:
        found: dict[str, list[LegacyQuestion]] = {}
        if not ids:
            return found
        for sid, qid, content, order, created in self.conn.execute(
            'SELECT sq."sessionId", sq."questionId", q."content", sq."order", sq."createdAt" '
            'FROM "SessionQuestion" sq LEFT JOIN "Question" q ON q."id" = sq."questionId" '
            'WHERE sq."sessionId" = ANY(%s) ORDER BY sq."sessionId", sq."order"',
            (ids,),
        ):
            found.setdefault(sid, []).append(LegacyQuestion(qid, content, order, utc(created)))
        return found

    def _requests(self, ids: list[str]) -> dict[str, list[LegacyAIRequest]]:
        found: dict[str, list[LegacyAIRequest]] = {}
        if not ids:
            return found
        for r in self.conn.execute(
            'SELECT "sessionId", "id", "openaiRequestId", "model", "promptTokens", '
            '"completionTokens", "totalTokens", "cachedTokens", "reasoningTokens", '
            '"promptTokenCost", "completionTokenCost", "totalCostEur", "success", '
            '"errorMessage", "requestedAt", "completedAt" FROM "AIProcessingRequest" '
            'WHERE "sessionId" = ANY(%s) ORDER BY "sessionId", "requestedAt", "id"',
            (ids,),
        ):
            found.setdefault(r[0], []).append(
                LegacyAIRequest(
                    **dict(zip(_REQUEST_FIELDS, r[1:14], strict=True)),
                    requested_at=_utc(r[14]),
                    completed_at=utc(r[15]),
                )
            )
        return found

    def _statuses(self, ids: list[str]) -> dict[str, dict[str, LegacyStatus]]:
        found: dict[str, dict[str, LegacyStatus]] = {}
        if not ids:
            return found
        for sid, stage, status, started, completed, error, retries, meta in self.conn.execute(
            'SELECT "sessionId", "stage"::text, "status"::text, "startedAt", "completedAt", '
            '"errorMessage", "retryCount", "metadata" FROM "SessionProcessingStatus" '
            'WHERE "sessionId" = ANY(%s)',
            (ids,),
        ):
            found.setdefault(sid, {})[stage] = LegacyStatus(
                stage, status, utc(started), utc(completed), error, int(retries or 0), meta
            )
        return found


_IMPORT_FIELDS = tuple(LegacyImport.__dataclass_fields__)[:19]
_SESSION_FIELDS = tuple(LegacySession.__dataclass_fields__)[:17]
_REQUEST_FIELDS = tuple(LegacyAIRequest.__dataclass_fields__)[:13]


def _utc(value: datetime | None) -> datetime:
    """For NOT NULL timestamps; a NULL (a damaged row) reads as the epoch, never crashes."""
    return utc(value) or datetime(1970, 1, 1, tzinfo=UTC)


def _ip(value: str | None) -> str | None:
    """`inet` renders a host as `a.b.c.d/32`; the mask is noise for a single address."""
    if value and value.endswith(("/32", "/128")):
        return value.rsplit("/", 1)[0]
    return value
