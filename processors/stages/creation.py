"""SESSION_CREATION: parse the transcript into messages and normalise the session's fields."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from domain.company import Company
from domain.csv_rows import SourceRow
from domain.normalise import country_code, language_code, sentiment_label, yes_no
from domain.payloads import SessionFields
from domain.session import Session
from domain.stages import Stage
from domain.transcript import Message, TranscriptParseError, parse_transcript, user_message_count
from processors.stages.base import StageError, WorkContext


@dataclass(frozen=True)
class CreationInputs:
    row: SourceRow
    transcript: str | None
    timezone: str


@dataclass(frozen=True)
class CreationOutput:
    messages: list[Message]
    fields: SessionFields
    outside_window: int


def build_fields(row: SourceRow, messages: list[Message]) -> tuple[SessionFields, int]:
    stamps = [m.timestamp for m in messages if m.timestamp is not None]
    outside = sum(1 for t in stamps if t < row.start_time or t > row.end_time)
    return (
        SessionFields(
            start_time=row.start_time,
            end_time=row.end_time,
            country=country_code(row.country),
            language=language_code(row.language),
            upstream_sentiment=row.sentiment,
            upstream_sentiment_label=sentiment_label(row.sentiment),
            escalated=yes_no(row.escalated),
            forwarded_hr=yes_no(row.forwarded_hr),
            messages_sent=user_message_count(messages) if messages else (row.messages_sent or 0),
            message_count=len(messages),
            initial_message=row.initial_message,
            ip_address=row.ip_address,
            avg_response_time=row.avg_response_time,
            tokens=row.tokens,
            tokens_eur=row.tokens_eur,
            upstream_category=row.category,
            first_message_at=min(stamps) if stamps else None,
            last_message_at=max(stamps) if stamps else None,
        ),
        outside,
    )


class SessionCreationProcessor:
    stage = Stage.SESSION_CREATION

    def prepare(self, session: Session, company: Company) -> CreationInputs:
        text = session.transcript.text if session.transcript else None
        return CreationInputs(row=session.row, transcript=text, timezone=company.timezone)

    def run(self, inputs: CreationInputs, ctx: WorkContext | None = None) -> CreationOutput:
        messages: list[Message] = []
        if inputs.transcript is not None:
            try:
                messages = parse_transcript(inputs.transcript, inputs.timezone)
            except TranscriptParseError as e:
                raise StageError(
                    "parse_error", f"transcript line {e.line}: {e.reason}", retryable=False
                ) from None
        fields, outside = build_fields(inputs.row, messages)
        return CreationOutput(messages=messages, fields=fields, outside_window=outside)

    def record(self, session: Session, attempt: int, output: CreationOutput, now: datetime) -> None:
        session.record_parsed(
            attempt,
            output.messages,
            output.fields,
            now,
            {
                "has_transcript": session.transcript is not None,
                "messages": output.fields.message_count,
                "user_messages": output.fields.messages_sent,
                "timestamps_outside_window": output.outside_window,
            },
        )
