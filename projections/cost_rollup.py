"""The `ai_cost_daily` rollup: AI usage per company, model and UTC day, added to as usage rows
are projected (and derived once from `ai_usage` for a database that predates it).

Sums are made here in Python with Decimal, not in SQL: SQLite keeps money as text, and adding
text in SQL would go through a float."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any
from uuid import UUID

from sqlalchemy import Connection, and_, delete, or_, select

from projections.schema import ai_cost_daily, ai_usage
from projections.upsert import upsert

Key = tuple[UUID, str, str]
KEY_COLUMNS = ("company_id", "model", "day")
COUNTS = ("requests", "prompt_tokens", "completion_tokens", "cached_tokens", "total_tokens")


def key_of(usage: Mapping[str, Any]) -> Key:
    model = usage["model_returned"] or usage["model_requested"]
    received: datetime = usage["received_at"]
    return (usage["company_id"], str(model), received.astimezone(UTC).date().isoformat())


def _empty(key: Key) -> dict[str, Any]:
    company_id, model, day = key
    row: dict[str, Any] = {"company_id": company_id, "model": model, "day": day}
    row.update({c: 0 for c in COUNTS})
    row.update(cost_eur=None, unknown_cost_requests=0)
    return row


def _add(row: dict[str, Any], usage: Mapping[str, Any]) -> None:
    row["requests"] += 1
    for column in COUNTS[1:]:
        row[column] += int(usage[column])
    cost = usage["cost_eur"]
    if cost is None:
        row["unknown_cost_requests"] += 1
    else:
        row["cost_eur"] = (row["cost_eur"] or Decimal(0)) + Decimal(cost)


def add_usage(conn: Connection, usages: Iterable[Mapping[str, Any]]) -> None:
    """Adds usage rows (as inserted into `ai_usage`) to the rollup, in the caller's
    transaction: reads the rows of the keys they touch, adds, writes them back."""
    by_key: dict[Key, list[Mapping[str, Any]]] = {}
    for usage in usages:
        by_key.setdefault(key_of(usage), []).append(usage)
    if not by_key:
        return
    keys = sorted(by_key)
    rows: dict[Key, dict[str, Any]] = {}
    t = ai_cost_daily.c
    for i in range(0, len(keys), 200):
        chunk = keys[i : i + 200]
        match = or_(*(and_(t.company_id == c, t.model == m, t.day == d) for c, m, d in chunk))
        for r in conn.execute(select(ai_cost_daily).where(match)).all():
            rows[(r.company_id, r.model, r.day)] = r._asdict()
    for key in keys:
        row = rows.setdefault(key, _empty(key))
        for usage in by_key[key]:
            _add(row, usage)
    upsert(conn, ai_cost_daily, [rows[k] for k in keys], KEY_COLUMNS)


def clear(conn: Connection) -> None:
    conn.execute(delete(ai_cost_daily))


def backfill(conn: Connection) -> None:
    """Derives the rollup from `ai_usage` afresh (a database whose analytics predate it): the
    usage rows are read in pages and folded in memory (a few rows per company, model, day)."""
    columns = [
        ai_usage.c.company_id,
        ai_usage.c.model_returned,
        ai_usage.c.model_requested,
        ai_usage.c.received_at,
        ai_usage.c.prompt_tokens,
        ai_usage.c.completion_tokens,
        ai_usage.c.cached_tokens,
        ai_usage.c.total_tokens,
        ai_usage.c.cost_eur,
    ]
    rows: dict[Key, dict[str, Any]] = {}
    result = conn.execute(select(*columns).execution_options(yield_per=10_000))
    for page in result.partitions():
        for r in page:
            usage = r._asdict()
            key = key_of(usage)
            _add(rows.setdefault(key, _empty(key)), usage)
    clear(conn)
    keys = sorted(rows)
    for i in range(0, len(keys), 1000):
        upsert(conn, ai_cost_daily, [rows[k] for k in keys[i : i + 1000]], KEY_COLUMNS)
