"""The CSV row a legacy unit stood for, built as our CSV parser builds it.

A later import of the same CSV line must find the migrated session unchanged, so values are trimmed,
blanks read as None and the raw times are parsed as our importer parses them; what had to be
adjusted is reported as a problem.
"""

from __future__ import annotations

import math
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from domain.csv_rows import MAX_IP_CHARS, SourceRow, parse_european_datetime
from domain.normalise import country_code
from processors.legacy.plan import imported_at, transcript_url
from processors.legacy.records import LegacyUnit


def external_id_of(
    import_id: str | None, external: str | None, session_id: str | None
) -> tuple[str, str | None]:
    """Our external id (and a problem if it had to be made up)."""
    if import_id is not None:
        ext = (external or "").strip()
        if ext:
            return ext, None
        return (
            f"legacy-import-{import_id}",
            "external_id: the import has a blank externalSessionId; its legacy import id stands in",
        )
    assert session_id is not None
    return (
        f"legacy-session-{session_id}",
        "external_id: the session has no import row; its legacy session id stands in",
    )


def external_id_for(unit: LegacyUnit) -> tuple[str, str | None]:
    imp = unit.imp
    return external_id_of(
        imp.id if imp else None, imp.external_id if imp else None, unit.legacy_session_id
    )


def _text(value: object) -> str | None:
    if value is None:
        return None
    text = str(value).strip()
    return text or None


def _count(name: str, value: int | None, problems: list[str]) -> int | None:
    if value is None:
        return None
    if value < 0:
        problems.append(f"{name}: negative value {value} dropped")
        return None
    return int(value)


def _float(name: str, value: float | None, problems: list[str]) -> float | None:
    if value is None:
        return None
    if not math.isfinite(value) or value < 0:
        problems.append(f"{name}: invalid value {value} dropped")
        return None
    return abs(float(value))


def _decimal(name: str, value: float | None, problems: list[str]) -> Decimal | None:
    if value is None:
        return None
    try:
        number = Decimal(repr(float(value)))
    except (InvalidOperation, ValueError):
        number = Decimal(-1)
    if not number.is_finite() or number < 0:
        problems.append(f"{name}: invalid value {value} dropped")
        return None
    return number.copy_abs()


def _time(
    which: str,
    raw: str | None,
    parsed: datetime | None,
    fallback: datetime,
    timezone: str,
    problems: list[str],
) -> datetime:
    """The raw CSV time read as our importer reads it; else the legacy parse; else the import."""
    if raw is not None:
        try:
            return parse_european_datetime(raw, timezone)
        except ValueError as e:
            if parsed is not None:
                problems.append(f"{which}: raw {raw!r} unparseable ({e}); used Session.{which}")
                return parsed
            problems.append(f"{which}: raw {raw!r} unparseable ({e}); used the import's createdAt")
            return fallback
    if parsed is not None:
        return parsed
    problems.append(f"{which}: no time at all; used the import's createdAt")
    return fallback


def source_row(unit: LegacyUnit, timezone: str, problems: list[str]) -> tuple[SourceRow, bool]:
    """The CSV row the import stood for, built like our CSV parser builds it (values trimmed,
    blanks as None), so a later import of the same CSV line finds it unchanged."""
    ext, problem = external_id_for(unit)
    if problem:
        problems.append(problem)
    imp, ses = unit.imp, unit.session
    created = imported_at(unit)
    start_raw = imp.start_raw if imp else None
    end_raw = imp.end_raw if imp else None
    start = _time(
        "startTime", start_raw, ses.start_time if ses else None, created, timezone, problems
    )
    end = _time("endTime", end_raw, ses.end_time if ses else None, created, timezone, problems)
    if end < start:
        problems.append(f"endTime: {end.isoformat()} is before startTime; kept as it was")
    differs = bool(ses and ses.start_time and start_raw is not None and start != ses.start_time)
    if imp is not None:
        ip = _text(imp.ip_address)
        values: dict[str, Any] = {
            "country": _text(imp.country),
            "language": _text(imp.language),
            "messages_sent": _count("messagesSent", imp.messages_sent, problems),
            "sentiment": _text(imp.sentiment_raw),
            "escalated": _text(imp.escalated_raw),
            "forwarded_hr": _text(imp.forwarded_hr_raw),
            "transcript_url": transcript_url(unit),
            "avg_response_time": _float("avgResponseTimeSeconds", imp.avg_response_time, problems),
            "tokens": _count("tokens", imp.tokens, problems),
            "tokens_eur": _decimal("tokensEur", imp.tokens_eur, problems),
            "category": _text(imp.category),
            "initial_message": _text(imp.initial_message),
        }
    else:
        assert ses is not None
        ip = _text(ses.ip_address)
        values = {
            "country": _text(ses.country),
            "language": None,
            "messages_sent": None,
            "sentiment": None,
            "escalated": None,
            "forwarded_hr": None,
            "transcript_url": transcript_url(unit),
            "avg_response_time": _float("avgResponseTime", ses.avg_response_time, problems),
            "tokens": None,
            "tokens_eur": None,
            "category": None,
            "initial_message": _text(ses.initial_message),
        }
    if ip is not None and len(ip) > MAX_IP_CHARS:
        problems.append(f"ipAddress: longer than {MAX_IP_CHARS} characters; dropped")
        ip = None
    country = values["country"]
    if country is not None and not (len(country) == 2 and country.isalpha() and country.isupper()):
        code = country_code(country)
        if code:
            problems.append(
                f"country: {country!r} is not an ISO 3166-1 alpha-2 code; reads as {code}"
            )
        else:
            problems.append(f"country: {country!r} is not a known country; kept raw")
    row = SourceRow(external_id=ext, start_time=start, end_time=end, ip_address=ip, **values)
    return row, differs
