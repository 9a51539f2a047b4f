"""Which livedash-node schema a legacy database has: the columns read decide the variant.

Two variants exist: the pre-refactor one keeps a status on each import, the refactored one has a
status table per session and stage. Anything required that is missing is named at once.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Variant = Literal["pre-refactor", "refactored"]

REQUIRED: dict[str, tuple[str, ...]] = {
    "Company": ("id", "name", "csvUrl", "csvUsername", "createdAt"),
    "SessionImport": (
        "id",
        "companyId",
        "externalSessionId",
        "startTimeRaw",
        "endTimeRaw",
        "ipAddress",
        "countryCode",
        "language",
        "messagesSent",
        "sentimentRaw",
        "escalatedRaw",
        "forwardedHrRaw",
        "fullTranscriptUrl",
        "avgResponseTimeSeconds",
        "tokens",
        "tokensEur",
        "category",
        "initialMessage",
        "rawTranscriptContent",
        "createdAt",
    ),
    "Session": (
        "id",
        "companyId",
        "importId",
        "startTime",
        "endTime",
        "ipAddress",
        "country",
        "fullTranscriptUrl",
        "avgResponseTime",
        "initialMsg",
        "language",
        "messagesSent",
        "sentiment",
        "escalated",
        "forwardedHr",
        "category",
        "summary",
        "createdAt",
        "updatedAt",
    ),
    "Message": ("sessionId", "timestamp", "role", "content", "order", "createdAt"),
}
OPTIONAL: dict[str, tuple[str, ...]] = {
    "Question": ("id", "content"),
    "SessionQuestion": ("sessionId", "questionId", "order", "createdAt"),
    "AIProcessingRequest": (
        "id",
        "sessionId",
        "openaiRequestId",
        "model",
        "promptTokens",
        "completionTokens",
        "totalTokens",
        "cachedTokens",
        "reasoningTokens",
        "promptTokenCost",
        "completionTokenCost",
        "totalCostEur",
        "success",
        "errorMessage",
        "requestedAt",
        "completedAt",
    ),
}
STATUS_TABLE = "SessionProcessingStatus"
STATUS_COLUMNS = (
    "sessionId",
    "stage",
    "status",
    "startedAt",
    "completedAt",
    "errorMessage",
    "retryCount",
    "metadata",
)
PRE_REFACTOR_MARKER = ("SessionImport", "status")


class LegacySchemaError(Exception):
    """The database is not a livedash-node database this migration can read."""


@dataclass(frozen=True)
class SchemaInfo:
    variant: Variant
    columns: dict[str, frozenset[str]]
    has_questions: bool
    has_ai_requests: bool
    notes: tuple[str, ...]

    def has(self, table: str, column: str) -> bool:
        return column in self.columns.get(table, frozenset())


def detect(columns: dict[str, frozenset[str]]) -> SchemaInfo:
    """Which variant the columns describe; a LegacySchemaError names everything missing."""
    missing = [
        f'"{table}"' if table not in columns else f'"{table}"."{col}"'
        for table, cols in REQUIRED.items()
        for col in ([cols[0]] if table not in columns else cols)
        if table not in columns or col not in columns[table]
    ]
    if missing:
        raise LegacySchemaError(
            "not a livedash-node database: missing "
            + ", ".join(missing[:12])
            + (f" and {len(missing) - 12} more" if len(missing) > 12 else "")
        )
    status_cols = columns.get(STATUS_TABLE)
    table, column = PRE_REFACTOR_MARKER
    if status_cols is not None:
        absent = [c for c in STATUS_COLUMNS if c not in status_cols]
        if absent:
            raise LegacySchemaError(
                f'"{STATUS_TABLE}" lacks ' + ", ".join(f'"{c}"' for c in absent)
            )
        variant: Variant = "refactored"
    elif column in columns[table]:
        variant = "pre-refactor"
    else:
        raise LegacySchemaError(
            "cannot tell which livedash-node schema this is: neither the "
            f'"{STATUS_TABLE}" table (refactored variant) nor the "{table}"."{column}" column '
            "(pre-refactor variant) exists"
        )
    notes = []
    optional_ok = {}
    for name, cols in OPTIONAL.items():
        present = columns.get(name)
        ok = present is not None and all(c in present for c in cols)
        optional_ok[name] = ok
        if not ok:
            notes.append(f'table "{name}" is missing or incomplete: its data is not migrated')
    return SchemaInfo(
        variant=variant,
        columns=columns,
        has_questions=optional_ok["Question"] and optional_ok["SessionQuestion"],
        has_ai_requests=optional_ok["AIProcessingRequest"],
        notes=tuple(notes),
    )
