"""Projection tables (SQLAlchemy Core), portable across SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    DateTime,
    Dialect,
    Float,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    Numeric,
    String,
    Table,
    Text,
    TypeDecorator,
    Uuid,
    text,
)


class UtcDateTime(TypeDecorator[datetime]):
    """Stores UTC, returns timezone-aware values on every backend (SQLite keeps no zone)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        parsed: datetime = datetime.fromisoformat(value) if isinstance(value, str) else value
        if parsed.tzinfo is None:
            return parsed.replace(tzinfo=UTC)
        return parsed.astimezone(UTC)


class ExactDecimal(TypeDecorator[Decimal]):
    """Money, exact on every backend: PostgreSQL ``NUMERIC`` without a scale (nothing is
    rounded), SQLite text (its NUMERIC affinity would store a float; sums of floats drifted in
    the eighth decimal). Sum it with ``projections.store.money_sum``, not ``func.sum``."""

    impl = Numeric
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> Any:
        if dialect.name == "sqlite":
            return dialect.type_descriptor(Text())
        return dialect.type_descriptor(Numeric(asdecimal=True))

    def process_bind_param(self, value: Any, dialect: Dialect) -> Any:
        if value is None:
            return None
        if isinstance(value, float):
            raise TypeError("money must be a Decimal (or int or str), never a float")
        amount = Decimal(value)
        return format(amount, "f") if dialect.name == "sqlite" else amount

    def process_result_value(self, value: Any, dialect: Dialect) -> Decimal | None:
        if value is None:
            return None
        # A float only comes from a row written before this type (see store.upgrade_money).
        return value if isinstance(value, Decimal) else Decimal(str(value))


metadata = MetaData()

projection_tracking = Table(
    "projection_tracking",
    metadata,
    Column("name", String(64), primary_key=True),
    Column("position", BigInteger, nullable=False),
    Column("events_applied", BigInteger, nullable=False, default=0),
    Column("updated_at", UtcDateTime, nullable=False),
)

session_stage_status = Table(
    "session_stage_status",
    metadata,
    Column("session_id", Uuid, primary_key=True),
    Column("stage", String(32), primary_key=True),
    Column("company_id", Uuid, nullable=False),
    Column("external_id", String(255), nullable=False),
    Column("status", String(16), nullable=False),
    Column("attempt", Integer, nullable=False),
    Column("retry_count", Integer, nullable=False),
    Column("worker", String(128)),
    Column("started_at", UtcDateTime),
    Column("completed_at", UtcDateTime),
    Column("lease_expires_at", UtcDateTime),
    Column("retry_at", UtcDateTime),
    Column("error_type", String(64)),
    Column("error_message", Text),
    Column("retryable", Boolean),
    Column("note", Text),
    Column("metadata", JSON, nullable=False),
    Column("updated_at", UtcDateTime, nullable=False),
    Column("attempts_run", Integer, nullable=False, server_default="0"),
    Index("ix_sss_stage_status_updated", "stage", "status", "updated_at"),
    Index("ix_sss_status_retry", "status", "retry_at"),
    Index("ix_sss_stage_company_status_updated", "stage", "company_id", "status", "updated_at"),
)

stage_ready = Table(
    "stage_ready",
    metadata,
    Column("session_id", Uuid, primary_key=True),
    Column("stage", String(32), primary_key=True),
    Column("company_id", Uuid, nullable=False),
    Column("since", UtcDateTime, nullable=False),
    Index("ix_stage_ready_stage_since", "stage", "since"),
    Index("ix_stage_ready_stage_company_since", "stage", "company_id", "since"),
)
"""Stages that wait only for a worker: PENDING while their predecessor is done (for stages
after TRANSCRIPT_FETCH). Kept by the status projection, so finding due work reads these few
rows instead of every PENDING row with a lookup of its predecessor."""

RETRY_SCHEDULED = "RETRY_SCHEDULED"  # fits the status column (16)
"""An extra `pipeline_overview` bucket next to the five statuses: FAILED rows with a retry time,
counted as they change, so the status report never counts them row by row (that took
56–125 ms at a million sessions on PostgreSQL)."""

pipeline_overview = Table(
    "pipeline_overview",
    metadata,
    Column("company_id", Uuid, primary_key=True),
    Column("stage", String(32), primary_key=True),
    Column("status", String(16), primary_key=True),
    Column("count", BigInteger, nullable=False),
)

sessions = Table(
    "sessions",
    metadata,
    Column("session_id", Uuid, primary_key=True),
    Column("company_id", Uuid, nullable=False),
    Column("external_id", String(255), nullable=False),
    Column("row_fingerprint", String(64), nullable=False),
    Column("start_time", UtcDateTime),
    Column("end_time", UtcDateTime),
    Column("transcript_url", Text),
    Column("imported_at", UtcDateTime, nullable=False),
    Column("updated_at", UtcDateTime, nullable=False),
    Index("ux_sessions_company_external", "company_id", "external_id", unique=True),
    Index("ix_sessions_external", "external_id"),
)

companies = Table(
    "companies",
    metadata,
    Column("company_id", Uuid, primary_key=True),
    Column("name", String(255), nullable=False, unique=True),
    Column("status", String(16), nullable=False),
    Column("csv_url", Text, nullable=False),
    Column("username", String(255)),
    Column("password_ref", String(512)),
    Column("timezone", String(64), nullable=False),
    Column("ai_model", String(128)),
    Column("registered_at", UtcDateTime, nullable=False),
    Column("updated_at", UtcDateTime, nullable=False),
    Column("status_reason", Text),
)

company_budgets = Table(
    "company_budgets",
    metadata,
    Column("company_id", Uuid, primary_key=True),
    Column("budget_eur", ExactDecimal),
    Column("period", String(8)),
    Column("changed_by", String(255)),
    Column("change_reason", Text),
    Column("reached_period_start", UtcDateTime),
    Column("reached_at", UtcDateTime),
    Column("resumes_at", UtcDateTime),
    Column("updated_at", UtcDateTime, nullable=False),
)
"""A company's AI budget and the last time a daemon found it reached (its own table, so a
database made before budgets gains it by `create_all`, with no column added to `companies`)."""

import_runs = Table(
    "import_runs",
    metadata,
    Column("run_id", Uuid, primary_key=True),
    Column("company_id", Uuid, nullable=False, index=True),
    Column("source", Text, nullable=False),
    Column("started_at", UtcDateTime, nullable=False),
    Column("finished_at", UtcDateTime, nullable=False),
    Column("duration_ms", Float, nullable=False),
    Column("outcome", String(16), nullable=False),
    Column("rows_seen", Integer, nullable=False),
    Column("new", Integer, nullable=False),
    Column("changed", Integer, nullable=False),
    Column("unchanged", Integer, nullable=False),
    Column("rejected", Integer, nullable=False),
    Column("bytes", BigInteger, nullable=False),
    Column("http_status", Integer),
    Column("error", Text),
)

import_rejections = Table(
    "import_rejections",
    metadata,
    Column("run_id", Uuid, primary_key=True),
    Column("row_number", Integer, primary_key=True),
    Column("company_id", Uuid, nullable=False),
    Column("reason", Text, nullable=False),
    Column("raw_line", Text, nullable=False),
)

event_index = Table(
    "event_index",
    metadata,
    Column("position", BigInteger, primary_key=True, autoincrement=False),
    Column("time", UtcDateTime, nullable=False),
    Column("type", String(32), nullable=False),
    Column("session_id", Uuid),
    Column("company_id", Uuid),
    Column("stage", String(32)),
    Column("status_before", String(16)),
    Column("status_after", String(16)),
    Column("attempt", Integer),
    Column("worker", String(128)),
    Column("actor", String(128)),
    Column("error_type", String(64)),
    Index("ix_event_index_session", "session_id", "position"),
    Index("ix_event_index_company_type", "company_id", "type", "position"),
    Index("ix_event_index_type", "type", "position"),
    Index("ix_event_index_time", "time"),
    Index(
        "ix_event_index_error_type",
        "error_type",
        "position",
        postgresql_where=text("error_type IS NOT NULL"),
        sqlite_where=text("error_type IS NOT NULL"),
    ),
    Index(
        "ix_event_index_actor",
        "actor",
        "position",
        postgresql_where=text("actor IS NOT NULL"),
        sqlite_where=text("actor IS NOT NULL"),
    ),
    Index(
        "ix_event_index_worker",
        "worker",
        "position",
        postgresql_where=text("worker IS NOT NULL"),
        sqlite_where=text("worker IS NOT NULL"),
    ),
)
"""The log's searchable fields, one row per stored event by log position (`livedash events`
reads it, then decodes only the events it returns). Status before and after are the
session's stage status around the event, kept from the session's earlier rows."""


overview_buckets = Table(
    "overview_buckets",
    metadata,
    Column("width", Integer, primary_key=True, autoincrement=False),
    Column("bucket", BigInteger, primary_key=True, autoincrement=False),
    Column("counts", Text, nullable=False),
)
"""The overview's history (projections/overview_history.py): for each bucket width (a day,
an hour, a minute, a second) and bucket start (epoch seconds), what the events taking effect
in it did, per company, as canonical JSON: the net change of each (stage, status) count,
status moves (``FROM>TO``), imports, resets, failures, paid AI calls and their cost. The
overview at T adds up the days before T's day, then at most 24 hours, 60 minutes and 60
seconds, plus a replay of T's own second; `status --between` subtracts two such sums. One
row per bucket, not per company and count: a second of a quiet pipeline holds one event."""

overview_sessions = Table(
    "overview_sessions",
    metadata,
    Column("session_id", Uuid, primary_key=True),
    Column("company_id", Uuid),
    Column("eff", UtcDateTime),
    Column("codes", String(8), nullable=False),
)
"""Each session's effective time and five overview codes after its last event: what the
overview projection needs to know what the session's next event changes."""

# ---------------------------------------------------------------- analytics
analytics_sessions = Table(
    "analytics_sessions",
    metadata,
    Column("session_id", Uuid, primary_key=True),
    Column("company_id", Uuid, nullable=False),
    Column("external_id", String(255), nullable=False),
    Column("start_time", UtcDateTime, nullable=False),
    Column("end_time", UtcDateTime, nullable=False),
    Column("country", String(8)),
    Column("language", String(8)),
    Column("ip_address", String(64)),
    Column("messages_sent", Integer),
    Column("message_count", Integer),
    Column("avg_response_time", Float),
    Column("tokens", BigInteger),
    Column("tokens_eur", ExactDecimal),
    Column("upstream_sentiment", String(64)),
    Column("upstream_category", String(255)),
    Column("initial_message", Text),
    Column("sentiment", String(16)),
    Column("category", String(32)),
    Column("escalated", Boolean),
    Column("forwarded_hr", Boolean),
    Column("summary", Text),
    Column("analysis_language", String(8)),
    Column("analysis_provider", String(32)),
    Column("analysis_model", String(128)),
    Column("updated_at", UtcDateTime, nullable=False),
    Index("ix_analytics_company_start", "company_id", "start_time"),
)

session_questions = Table(
    "session_questions",
    metadata,
    Column("session_id", Uuid, primary_key=True),
    Column("position", Integer, primary_key=True),
    Column("company_id", Uuid, nullable=False),
    Column("question_key", Text, nullable=False),
    Column("text", Text, nullable=False),
    Column("start_time", UtcDateTime, nullable=False),
    Index("ix_session_questions_company", "company_id", "question_key"),
)

erased_sessions = Table(
    "erased_sessions",
    metadata,
    Column("session_id", Uuid, primary_key=True),
    Column("erased_at", UtcDateTime, nullable=False),
    Column("actor", String(128), nullable=False),
    Column("reason", Text, nullable=False),
)
"""Sessions whose personal data was erased (`PersonalDataErased`): who, when, why. The
erasure projection keeps it and scrubs the copies other projections made of the content."""

ai_usage = Table(
    "ai_usage",
    metadata,
    Column("session_id", Uuid, primary_key=True),
    Column("version", Integer, primary_key=True),
    Column("company_id", Uuid, nullable=False),
    Column("stage", String(32), nullable=False),
    Column("attempt", Integer, nullable=False),
    Column("provider", String(32), nullable=False),
    Column("model_requested", String(128), nullable=False),
    Column("model_returned", String(128)),
    Column("request_id", String(128)),
    Column("prompt_tokens", Integer, nullable=False),
    Column("completion_tokens", Integer, nullable=False),
    Column("cached_tokens", Integer, nullable=False),
    Column("reasoning_tokens", Integer, nullable=False),
    Column("total_tokens", Integer, nullable=False),
    Column("cost_eur", ExactDecimal),
    Column("price_source", String(255), nullable=False),
    Column("received_at", UtcDateTime, nullable=False),
    Index("ix_ai_usage_company_received", "company_id", "received_at"),
)

ai_cost_daily = Table(
    "ai_cost_daily",
    metadata,
    Column("company_id", Uuid, primary_key=True),
    Column("model", String(128), primary_key=True),
    Column("day", String(10), primary_key=True),
    Column("requests", BigInteger, nullable=False),
    Column("prompt_tokens", BigInteger, nullable=False),
    Column("completion_tokens", BigInteger, nullable=False),
    Column("cached_tokens", BigInteger, nullable=False),
    Column("total_tokens", BigInteger, nullable=False),
    Column("cost_eur", ExactDecimal),
    Column("unknown_cost_requests", BigInteger, nullable=False),
)
"""`ai_usage` rolled up per company, model (as returned, else as requested) and UTC day
(``YYYY-MM-DD``), kept with it by the analytics projection: the status page's Costs read a
few hundred of these rows instead of grouping every request. ``cost_eur`` is the exact sum of
the known costs, NULL while none of the requests had a price."""

ai_requests = Table(
    "ai_requests",
    metadata,
    Column("client_request_id", String(64), primary_key=True),
    Column("session_id", Uuid, nullable=False, index=True),
    Column("stage", String(32), nullable=False),
    Column("attempt", Integer, nullable=False),
    Column("model", String(128), nullable=False),
    Column("purpose", String(32), nullable=False),
    Column("prompt_tokens_estimated", Integer, nullable=False),
    Column("cost_eur_estimated", ExactDecimal),
    Column("sent_at", UtcDateTime, nullable=False),
    Column("state", String(16), nullable=False),
    Index("ix_ai_requests_state_sent", "state", "sent_at"),
)
"""Every paid request as it was about to be sent: ``sent`` while its attempt runs, then
``answered`` (its usage is recorded) or ``answer_lost`` (the attempt ended without it)."""

daemon_workers = Table(
    "daemon_workers",
    metadata,
    Column("worker_id", String(200), primary_key=True),
    Column("host", String(255), nullable=False),
    Column("pid", Integer, nullable=False),
    Column("started_at", UtcDateTime, nullable=False),
    Column("heartbeat_at", UtcDateTime, nullable=False),
    Column("stopped_at", UtcDateTime),
    Column("stop_reason", String(64)),
    Column("in_flight", JSON, nullable=False),
    Column("completed_last_minute", Integer, nullable=False),
    Column("partitions", Integer, nullable=False),
    Index("ix_daemon_workers_heartbeat", "heartbeat_at"),
)
"""Every daemon that ran: operational state, not history (the log holds what they did).
A row whose heartbeat is older than the fleet's claim timeout belongs to a dead daemon."""

fleet_partitions = Table(
    "fleet_partitions",
    metadata,
    Column("partition", Integer, primary_key=True, autoincrement=False),
    Column("owner", String(200)),
    Column("expires_at", UtcDateTime),
    Column("taken_at", UtcDateTime),
)
"""Who works which partition (domain/partitions.py), until when: a claim the owner renews
with each heartbeat; past ``expires_at`` any live daemon may take it over."""

shared_limits = Table(
    "shared_limits",
    metadata,
    Column("key", String(200), primary_key=True),
    Column("tat", UtcDateTime, nullable=False),
)
"""One row per limit shared by the fleet (``model:gpt-4o:requests``, later a company's
budget): a token bucket in its virtual-scheduling form, ``tat`` being the time at which the
bucket is empty again. Daemons take slots from it in batches (projections/shared_limits.py)."""

audit_chain = Table(
    "audit_chain",
    metadata,
    Column("position", BigInteger, primary_key=True, autoincrement=False),
    Column("hash", LargeBinary(32), nullable=False),
)
"""The log's hash chain (projections/chain.py): one link per stored event, by log position.
Not a projection to rebuild: recomputing it from the log would bless whatever the log holds."""
