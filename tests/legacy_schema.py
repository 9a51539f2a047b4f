"""The livedash-node PostgreSQL schema, both variants, written from
shared/reference/livedash-legacy-schema.md, plus helpers that fill it with legacy data.

Only what the migration reads is modelled, in Prisma's style: quoted camelCase identifiers, text
ids, PostgreSQL enum types. The pre-refactor variant keeps status on the import row
(`SessionImport.status/errorMsg/processedAt`, `Session.processed`) and uses `timestamp(3)`; the
refactored variant has `SessionProcessingStatus` instead and uses `timestamptz(6)`.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

import psycopg
from psycopg.types.json import Jsonb

Variant = Literal["pre-refactor", "refactored"]

CATEGORIES = (
    "SCHEDULE_HOURS",
    "LEAVE_VACATION",
    "SICK_LEAVE_RECOVERY",
    "SALARY_COMPENSATION",
    "CONTRACT_HOURS",
    "ONBOARDING",
    "OFFBOARDING",
    "WORKWEAR_STAFF_PASS",
    "TEAM_CONTACTS",
    "PERSONAL_QUESTIONS",
    "ACCESS_LOGIN",
    "SOCIAL_QUESTIONS",
    "UNRECOGNIZED_OTHER",
)
STAGES = (
    "CSV_IMPORT",
    "TRANSCRIPT_FETCH",
    "SESSION_CREATION",
    "AI_ANALYSIS",
    "QUESTION_EXTRACTION",
)


def _enum(name: str, values: Iterable[str]) -> str:
    quoted = ", ".join(f"'{v}'" for v in values)
    return f'CREATE TYPE "{name}" AS ENUM ({quoted});'


def ddl(variant: Variant, strict: bool = True) -> str:
    """The DDL of one variant. ``strict=False`` leaves out the unique constraints on questions,
    as in databases where that migration never ran (so a question can be linked twice)."""
    pre = variant == "pre-refactor"
    ts = "TIMESTAMP(3)" if pre else "TIMESTAMPTZ(6)"
    parts = [
        _enum("CompanyStatus", ("ACTIVE", "SUSPENDED", "TRIAL", "ARCHIVED")),
        _enum("SentimentCategory", ("POSITIVE", "NEUTRAL", "NEGATIVE")),
        _enum("SessionCategory", CATEGORIES),
        _enum("ProcessingStage", STAGES),
        _enum("ProcessingStatus", ("PENDING", "IN_PROGRESS", "COMPLETED", "FAILED", "SKIPPED")),
    ]
    if pre:
        parts.append(_enum("ImportStatus", ("QUEUED", "PROCESSING", "DONE", "ERROR")))
    company_status = "" if pre else """"status" "CompanyStatus" NOT NULL DEFAULT 'ACTIVE',\n    """
    parts.append(f"""
CREATE TABLE "Company" (
    "id" TEXT NOT NULL PRIMARY KEY,
    "name" TEXT NOT NULL,
    "csvUrl" TEXT NOT NULL,
    "csvUsername" TEXT,
    "csvPassword" TEXT,
    {company_status}"sentimentAlert" DOUBLE PRECISION,
    "dashboardOpts" JSONB,
    "createdAt" {ts} NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "updatedAt" {ts} NOT NULL DEFAULT CURRENT_TIMESTAMP
);""")
    import_status = (
        """,
    "status" "ImportStatus" NOT NULL DEFAULT 'QUEUED',
    "errorMsg" TEXT,
    "processedAt" TIMESTAMP(3)"""
        if pre
        else ""
    )
    parts.append(f"""
CREATE TABLE "SessionImport" (
    "id" TEXT NOT NULL PRIMARY KEY,
    "companyId" TEXT NOT NULL REFERENCES "Company"("id") ON DELETE CASCADE,
    "externalSessionId" TEXT NOT NULL,
    "startTimeRaw" TEXT NOT NULL,
    "endTimeRaw" TEXT NOT NULL,
    "ipAddress" VARCHAR(45),
    "countryCode" VARCHAR(3),
    "language" VARCHAR(10),
    "messagesSent" INTEGER,
    "sentimentRaw" VARCHAR(50),
    "escalatedRaw" VARCHAR(50),
    "forwardedHrRaw" VARCHAR(50),
    "fullTranscriptUrl" TEXT,
    "avgResponseTimeSeconds" DOUBLE PRECISION,
    "tokens" INTEGER,
    "tokensEur" DOUBLE PRECISION,
    "category" TEXT,
    "initialMessage" TEXT,
    "rawTranscriptContent" TEXT,
    "createdAt" {ts} NOT NULL DEFAULT CURRENT_TIMESTAMP{import_status},
    CONSTRAINT "SessionImport_companyId_externalSessionId_key"
        UNIQUE ("companyId", "externalSessionId")
);""")
    processed = ',\n    "processed" BOOLEAN NOT NULL DEFAULT false' if pre else ""
    parts.append(f"""
CREATE TABLE "Session" (
    "id" TEXT NOT NULL PRIMARY KEY,
    "companyId" TEXT NOT NULL REFERENCES "Company"("id") ON DELETE CASCADE,
    "importId" TEXT UNIQUE REFERENCES "SessionImport"("id") ON DELETE SET NULL,
    "startTime" {ts} NOT NULL,
    "endTime" {ts} NOT NULL,
    "ipAddress" INET,
    "country" VARCHAR(3),
    "fullTranscriptUrl" TEXT,
    "avgResponseTime" DOUBLE PRECISION,
    "initialMsg" TEXT,
    "language" VARCHAR(10),
    "messagesSent" INTEGER,
    "sentiment" "SentimentCategory",
    "escalated" BOOLEAN,
    "forwardedHr" BOOLEAN,
    "category" "SessionCategory",
    "summary" TEXT,
    "createdAt" {ts} NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "updatedAt" {ts} NOT NULL DEFAULT CURRENT_TIMESTAMP{processed}
);
CREATE INDEX "Session_companyId_startTime_idx" ON "Session"("companyId", "startTime");""")
    parts.append(f"""
CREATE TABLE "Message" (
    "id" TEXT NOT NULL PRIMARY KEY,
    "sessionId" TEXT NOT NULL REFERENCES "Session"("id") ON DELETE CASCADE,
    "timestamp" {ts},
    "role" TEXT NOT NULL,
    "content" TEXT NOT NULL,
    "order" INTEGER NOT NULL,
    "createdAt" {ts} NOT NULL DEFAULT CURRENT_TIMESTAMP,
    CONSTRAINT "Message_sessionId_order_key" UNIQUE ("sessionId", "order")
);""")
    question_unique = (
        """,
    CONSTRAINT "SessionQuestion_sessionId_questionId_key" UNIQUE ("sessionId", "questionId"),
    CONSTRAINT "SessionQuestion_sessionId_order_key" UNIQUE ("sessionId", "order")"""
        if strict
        else ""
    )
    parts.append(f"""
CREATE TABLE "Question" (
    "id" TEXT NOT NULL PRIMARY KEY,
    "content" TEXT NOT NULL UNIQUE,
    "createdAt" {ts} NOT NULL DEFAULT CURRENT_TIMESTAMP
);
CREATE TABLE "SessionQuestion" (
    "id" TEXT NOT NULL PRIMARY KEY,
    "sessionId" TEXT NOT NULL REFERENCES "Session"("id") ON DELETE CASCADE,
    "questionId" TEXT NOT NULL REFERENCES "Question"("id"),
    "order" INTEGER NOT NULL,
    "createdAt" {ts} NOT NULL DEFAULT CURRENT_TIMESTAMP{question_unique}
);""")
    parts.append(f"""
CREATE TABLE "AIProcessingRequest" (
    "id" TEXT NOT NULL PRIMARY KEY,
    "sessionId" TEXT NOT NULL REFERENCES "Session"("id") ON DELETE CASCADE,
    "openaiRequestId" TEXT,
    "model" TEXT NOT NULL,
    "serviceTier" TEXT,
    "systemFingerprint" TEXT,
    "promptTokens" INTEGER NOT NULL,
    "completionTokens" INTEGER NOT NULL,
    "totalTokens" INTEGER NOT NULL,
    "cachedTokens" INTEGER,
    "audioTokensPrompt" INTEGER,
    "reasoningTokens" INTEGER,
    "audioTokensCompletion" INTEGER,
    "acceptedPredictionTokens" INTEGER,
    "rejectedPredictionTokens" INTEGER,
    "promptTokenCost" DOUBLE PRECISION NOT NULL,
    "completionTokenCost" DOUBLE PRECISION NOT NULL,
    "totalCostEur" DOUBLE PRECISION NOT NULL,
    "processingType" TEXT NOT NULL,
    "success" BOOLEAN NOT NULL,
    "errorMessage" TEXT,
    "requestedAt" {ts} NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "completedAt" {ts}
);
CREATE INDEX "AIProcessingRequest_sessionId_idx" ON "AIProcessingRequest"("sessionId");""")
    if not pre:
        parts.append("""
CREATE TABLE "SessionProcessingStatus" (
    "id" TEXT NOT NULL PRIMARY KEY,
    "sessionId" TEXT NOT NULL REFERENCES "Session"("id") ON DELETE CASCADE,
    "stage" "ProcessingStage" NOT NULL,
    "status" "ProcessingStatus" NOT NULL DEFAULT 'PENDING',
    "startedAt" TIMESTAMPTZ(6),
    "completedAt" TIMESTAMPTZ(6),
    "errorMessage" TEXT,
    "retryCount" INTEGER NOT NULL DEFAULT 0,
    "metadata" JSONB,
    CONSTRAINT "SessionProcessingStatus_sessionId_stage_key" UNIQUE ("sessionId", "stage")
);
CREATE INDEX "SessionProcessingStatus_stage_status_idx"
    ON "SessionProcessingStatus"("stage", "status");""")
    return "\n".join(parts)


def create_schema(dsn: str, variant: Variant, strict: bool = True) -> None:
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(ddl(variant, strict))


# ----------------------------------------------------------------------------- filling

T0 = datetime(2025, 6, 20, 9, 0, tzinfo=UTC)


def raw_time(t: datetime) -> str:
    """The upstream CSV's `DD.MM.YYYY HH:MM:SS` (times here are UTC)."""
    return t.astimezone(UTC).strftime("%d.%m.%Y %H:%M:%S")


def new_id() -> str:
    return str(uuid.uuid4())


def transcript_for(messages: Sequence[tuple[datetime | None, str, str]]) -> str:
    lines = []
    for at, role, content in messages:
        stamp = f"[{at.strftime('%d.%m.%Y %H:%M:%S')}] " if at else ""
        lines.append(f"{stamp}{role.capitalize()}: {content}")
    return "\n".join(lines) + "\n"


@dataclass
class Legacy:
    """Writes legacy rows through one connection; ids are generated and returned."""

    conn: psycopg.Connection[Any]
    variant: Variant
    questions: dict[str, str] = field(default_factory=dict)

    @classmethod
    def connect(cls, dsn: str, variant: Variant) -> Legacy:
        return cls(psycopg.connect(dsn, autocommit=True), variant)

    def close(self) -> None:
        self.conn.close()

    def _insert(self, table: str, values: dict[str, Any]) -> None:
        cols = ", ".join(f'"{c}"' for c in values)
        marks = ", ".join(["%s"] * len(values))
        self.conn.execute(
            f'INSERT INTO "{table}" ({cols}) VALUES ({marks})',
            [Jsonb(v) if isinstance(v, dict) else v for v in values.values()],
        )

    def _t(self, t: datetime | None) -> datetime | None:
        """Naive UTC for `timestamp(3)` columns, aware for `timestamptz`."""
        if t is None or self.variant == "refactored":
            return t
        return t.astimezone(UTC).replace(tzinfo=None)

    def company(
        self,
        name: str,
        csv_url: str = "https://legacy.example/export.csv",
        username: str | None = "dash",
        password: str | None = "s3cret-plaintext",
        status: str = "ACTIVE",
        created: datetime = T0 - timedelta(days=30),
    ) -> str:
        cid = new_id()
        values: dict[str, Any] = {
            "id": cid,
            "name": name,
            "csvUrl": csv_url,
            "csvUsername": username,
            "csvPassword": password,
            "createdAt": self._t(created),
            "updatedAt": self._t(created),
        }
        if self.variant == "refactored":
            values["status"] = status
        self._insert("Company", values)
        return cid

    def import_(
        self,
        company_id: str,
        external_id: str,
        start: datetime = T0,
        minutes: int = 5,
        url: str | None = None,
        transcript: str | None = None,
        created: datetime | None = None,
        start_raw: str | None = None,
        end_raw: str | None = None,
        **columns: Any,
    ) -> str:
        iid = new_id()
        values: dict[str, Any] = {
            "id": iid,
            "companyId": company_id,
            "externalSessionId": external_id,
            "startTimeRaw": start_raw if start_raw is not None else raw_time(start),
            "endTimeRaw": end_raw
            if end_raw is not None
            else raw_time(start + timedelta(minutes=minutes)),
            "ipAddress": "192.0.2.10",
            "countryCode": "NL",
            "language": "dutch",
            "messagesSent": 2,
            "sentimentRaw": "neutral",
            "escalatedRaw": "no",
            "forwardedHrRaw": "no",
            "fullTranscriptUrl": url,
            "avgResponseTimeSeconds": 2.5,
            "tokens": 120,
            "tokensEur": 0.0012,
            "category": "Schedule",
            "initialMessage": "Hoi",
            "rawTranscriptContent": transcript,
            "createdAt": self._t(created or start + timedelta(hours=1)),
        }
        for key, value in columns.items():
            values[key] = self._t(value) if isinstance(value, datetime) else value
        self._insert("SessionImport", values)
        return iid

    def session(
        self,
        company_id: str,
        import_id: str | None,
        start: datetime = T0,
        minutes: int = 5,
        created: datetime | None = None,
        **columns: Any,
    ) -> str:
        sid = new_id()
        created = created or start + timedelta(hours=2)
        values: dict[str, Any] = {
            "id": sid,
            "companyId": company_id,
            "importId": import_id,
            "startTime": self._t(start),
            "endTime": self._t(start + timedelta(minutes=minutes)),
            "ipAddress": "192.0.2.10",
            "country": "NL",
            "createdAt": self._t(created),
            "updatedAt": self._t(created),
        }
        for key, value in columns.items():
            values[key] = self._t(value) if isinstance(value, datetime) else value
        self._insert("Session", values)
        return sid

    def messages(
        self,
        session_id: str,
        messages: Sequence[tuple[datetime | None, str, str]],
        created: datetime | None = None,
    ) -> None:
        for order, (at, role, content) in enumerate(messages):
            self._insert(
                "Message",
                {
                    "id": new_id(),
                    "sessionId": session_id,
                    "timestamp": self._t(at),
                    "role": role,
                    "content": content,
                    "order": order,
                    "createdAt": self._t(created or T0 + timedelta(hours=2)),
                },
            )

    def question(self, text: str) -> str:
        if text not in self.questions:
            qid = new_id()
            self._insert("Question", {"id": qid, "content": text, "createdAt": self._t(T0)})
            self.questions[text] = qid
        return self.questions[text]

    def link_questions(
        self, session_id: str, texts: Sequence[str], created: datetime | None = None
    ) -> None:
        for order, text in enumerate(texts):
            self._insert(
                "SessionQuestion",
                {
                    "id": new_id(),
                    "sessionId": session_id,
                    "questionId": self.question(text),
                    "order": order,
                    "createdAt": self._t(created or T0 + timedelta(hours=3)),
                },
            )

    def ai_request(
        self,
        session_id: str,
        requested: datetime,
        model: str = "gpt-4o-2024-08-06",
        prompt: int = 1000,
        completion: int = 200,
        cost_eur: float = 0.00382,
        success: bool = True,
        error: str | None = None,
        completed: datetime | None = None,
    ) -> str:
        rid = new_id()
        self._insert(
            "AIProcessingRequest",
            {
                "id": rid,
                "sessionId": session_id,
                "openaiRequestId": f"chatcmpl-{rid[:8]}" if success else None,
                "model": model if success else "unknown",
                "promptTokens": prompt if success else 0,
                "completionTokens": completion if success else 0,
                "totalTokens": prompt + completion if success else 0,
                "cachedTokens": None,
                "reasoningTokens": None,
                "promptTokenCost": 2.5e-6 if success else 0,
                "completionTokenCost": 1e-5 if success else 0,
                "totalCostEur": cost_eur if success else 0,
                "processingType": "session_analysis",
                "success": success,
                "errorMessage": error,
                "requestedAt": self._t(requested),
                "completedAt": self._t(completed or requested + timedelta(seconds=3)),
            },
        )
        return rid

    def status(
        self,
        session_id: str,
        stage: str,
        status: str,
        started: datetime | None = None,
        completed: datetime | None = None,
        error: str | None = None,
        retries: int = 0,
        metadata: dict[str, Any] | None = None,
    ) -> None:
        self._insert(
            "SessionProcessingStatus",
            {
                "id": new_id(),
                "sessionId": session_id,
                "stage": stage,
                "status": status,
                "startedAt": started,
                "completedAt": completed,
                "errorMessage": error,
                "retryCount": retries,
                "metadata": metadata,
            },
        )

    def analyse(
        self,
        session_id: str,
        language: str | None = "nl",
        sentiment: str | None = "NEUTRAL",
        category: str | None = "SICK_LEAVE_RECOVERY",
        summary: str | None = "User asked how to report sick leave.",
        escalated: bool | None = False,
        forwarded_hr: bool | None = True,
        updated: datetime | None = None,
    ) -> None:
        self.conn.execute(
            'UPDATE "Session" SET "language" = %s, "sentiment" = %s, "category" = %s, '
            '"summary" = %s, "escalated" = %s, "forwardedHr" = %s, '
            '"updatedAt" = COALESCE(%s, "updatedAt") WHERE "id" = %s',
            (
                language,
                sentiment,
                category,
                summary,
                escalated,
                forwarded_hr,
                self._t(updated),
                session_id,
            ),
        )


def chat(start: datetime, n: int = 4) -> list[tuple[datetime | None, str, str]]:
    """A short conversation starting at ``start`` (alternating user and assistant)."""
    lines: list[tuple[datetime | None, str, str]] = []
    for i in range(n):
        role = "user" if i % 2 == 0 else "assistant"
        text = f"Vraag {i // 2 + 1}: hoe meld ik me ziek?" if role == "user" else "Bel je manager."
        lines.append((start + timedelta(seconds=20 * i), role, text))
    return lines


def fill_seed_109(db: Legacy, company_id: str, status_rows: bool = False) -> list[str]:
    """The tenant of the seed document: 109 sessions, every one with its transcript and messages;
    16 analysed, 11 of those with questions. With ``status_rows`` the refactored database also
    holds the rows the original's migration script would have written for it."""
    ids = []
    for i in range(109):
        start = T0 + timedelta(hours=i)
        msgs = chat(start)
        url = f"https://legacy.example/transcripts/seed-{i}.txt"
        iid = db.import_(
            company_id, f"seed-{i:03d}", start, url=url, transcript=transcript_for(msgs)
        )
        sid = db.session(company_id, iid, start, fullTranscriptUrl=url)
        db.messages(sid, msgs)
        analysed = i < 16
        if analysed:
            db.analyse(sid, updated=start + timedelta(hours=3))
            db.ai_request(sid, start + timedelta(hours=3))
        if i < 11:
            db.link_questions(sid, [f"How do I report sick leave ({i % 3})?", "Who do I call?"])
        if status_rows:
            created = start + timedelta(hours=2)
            db.status(sid, "CSV_IMPORT", "COMPLETED", created, created)
            db.status(sid, "TRANSCRIPT_FETCH", "COMPLETED", created, created)
            db.status(sid, "SESSION_CREATION", "COMPLETED", created, created)
            done = start + timedelta(hours=3)
            if analysed:
                db.status(sid, "AI_ANALYSIS", "COMPLETED", done, done)
            else:
                db.status(sid, "AI_ANALYSIS", "PENDING")
            if i < 11:
                db.status(sid, "QUESTION_EXTRACTION", "COMPLETED", done, done)
            else:
                db.status(sid, "QUESTION_EXTRACTION", "PENDING")
        ids.append(sid)
    return ids
