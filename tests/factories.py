"""Small builders for tests: rows, sessions and a fixed clock."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from uuid import UUID, uuid5

from domain.csv_rows import SourceRow

COMPANY = uuid5(UUID(int=0), "test-company")
T0 = datetime(2026, 10, 1, 12, 0, tzinfo=UTC)


def row(
    external_id: str = "s-1", url: str | None = "https://t.example/s-1.txt", **changes: object
) -> SourceRow:
    values: dict[str, object] = {
        "external_id": external_id,
        "start_time": T0,
        "end_time": T0 + timedelta(minutes=3),
        "ip_address": "192.0.2.1",
        "country": "NL",
        "language": "dutch",
        "messages_sent": 2,
        "sentiment": "happy",
        "escalated": "no",
        "forwarded_hr": "no",
        "transcript_url": url,
        "avg_response_time": 2.5,
        "tokens": 100,
        "tokens_eur": Decimal("0.0010"),
        "category": "Greeting",
        "initial_message": "hoi",
    }
    values.update(changes)
    return SourceRow(**values)  # type: ignore[arg-type]


class Clock:
    def __init__(self, start: datetime = T0) -> None:
        self.now = start

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> datetime:
        self.now += timedelta(seconds=seconds)
        return self.now
