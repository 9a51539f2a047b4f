"""The CSV parser: the sample, a corpus of bad inputs, the one-record-one-outcome property."""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import TypeVar
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from domain.csv_rows import (
    COLUMNS,
    CsvFormatError,
    ParsedCsv,
    RowRejection,
    SourceRow,
    parse_csv,
    parse_european_datetime,
)
from tests.conftest import SAMPLE_CSV

SAMPLE = """\
a068d62a-439b-4d70-924f-3d45ffba673b,30.04.2025 11:38:14,30.04.2025 11:38:14,31.176.221.57,BA,,1,,,,https://proto.notso.ai/jumbo/chats/a068d62a-439b-4d70-924f-3d45ffba673b.txt,2.051,6470,0.0009,,test
284c6849-51ba-41b8-8afd-c1a70e7bd997,30.04.2025 11:41:48,30.04.2025 11:41:48,31.176.221.57,BA,english,1,happy,no,no,https://proto.notso.ai/jumbo/chats/284c6849-51ba-41b8-8afd-c1a70e7bd997.txt,3.977,6537,0.0010,Greeting,Good day
ef6b43f6-e46f-4d6c-9bf7-3d8f3b658d40,01.05.2025 12:11:18,01.05.2025 12:14:53,31.176.221.57,BA,Dutch,8,excited,no,no,https://proto.notso.ai/jumbo/chats/ef6b43f6-e46f-4d6c-9bf7-3d8f3b658d40.txt,3.458,56027,0.0083,Onboarding,whats up
e5c6d4d1-7a02-4c0e-9d93-214ea06d6764,01.05.2025 12:37:43,01.05.2025 12:37:43,31.176.221.57,BA,turkish,1,happy,no,no,https://proto.notso.ai/jumbo/chats/e5c6d4d1-7a02-4c0e-9d93-214ea06d6764.txt,3.004,6549,0.0010,Language inquiry,Spreek je ook turks?
461086bd-bac0-496b-a541-d76468b96f44,01.05.2025 12:48:13,01.05.2025 12:48:21,31.176.221.57,BA,dutch,2,happy,no,no,https://proto.notso.ai/jumbo/chats/461086bd-bac0-496b-a541-d76468b96f44.txt,2.442,13220,0.0020,General,Lalalaposie
689ae197-2005-4f09-b993-d9f6fa16fc1f,01.05.2025 12:52:07,01.05.2025 12:57:14,31.176.221.57,BA,,3,,,,https://proto.notso.ai/jumbo/chats/689ae197-2005-4f09-b993-d9f6fa16fc1f.txt,1.487,19751,0.0029,,hi liza
"""  # noqa: E501
T = TypeVar("T")
SHARED_SAMPLE = Path("/work/shared/data/livedash-sample.csv")
AMSTERDAM = ZoneInfo("Europe/Amsterdam")
HEADER = ",".join(COLUMNS)

DEFAULTS: dict[str, str] = {
    "session_id": "sess-1",
    "start_time": "30.04.2025 11:38:14",
    "end_time": "30.04.2025 11:40:00",
    "ip_address": "31.176.221.57",
    "country": "BA",
    "language": "english",
    "messages_sent": "2",
    "sentiment": "happy",
    "escalated": "no",
    "forwarded_hr": "no",
    "full_transcript_url": "https://example.test/t.txt",
    "avg_response_time": "2.051",
    "tokens": "6470",
    "tokens_eur": "0.0009",
    "category": "Greeting",
    "initial_msg": "hello",
}


def line(**overrides: str) -> str:
    """One CSV record (properly quoted) from the defaults with some columns replaced."""
    unknown = set(overrides) - set(DEFAULTS)
    assert not unknown, unknown
    values = [overrides.get(column, DEFAULTS[column]) for column in COLUMNS]
    return fields_line(values)


def fields_line(values: list[str]) -> str:
    """A CRLF writer terminator makes csv quote values holding a lone CR as well."""
    out = io.StringIO()
    csv.writer(out, lineterminator="\r\n").writerow(values)
    return out.getvalue().removesuffix("\r\n") + "\n"


def only_rows(parsed: ParsedCsv) -> list[SourceRow]:
    assert parsed.rejections == []
    return [row for _, row in parsed.rows]


# ------------------------------------------------------------------------------- the sample


def test_sample_parses_into_six_rows_with_exact_values() -> None:
    parsed = parse_csv(SAMPLE)
    assert [number for number, _ in parsed.rows] == [1, 2, 3, 4, 5, 6]
    assert parsed.rejections == []
    assert parsed.rows_seen == 6
    assert parsed.header_detected is False
    assert parsed.bom_stripped is False
    first, second, third, fourth, _, sixth = only_rows(parsed)

    assert first.external_id == "a068d62a-439b-4d70-924f-3d45ffba673b"
    assert first.start_time == datetime(2025, 4, 30, 11, 38, 14, tzinfo=UTC)
    assert first.end_time == first.start_time
    assert first.ip_address == "31.176.221.57"
    assert first.country == "BA"
    assert first.language is None
    assert first.messages_sent == 1
    assert first.sentiment is None
    assert first.escalated is None
    assert first.forwarded_hr is None
    assert first.transcript_url == (
        "https://proto.notso.ai/jumbo/chats/a068d62a-439b-4d70-924f-3d45ffba673b.txt"
    )
    assert first.avg_response_time == 2.051
    assert first.tokens == 6470
    assert first.tokens_eur == Decimal("0.0009")
    assert first.category is None
    assert first.initial_message == "test"

    assert second.language == "english"
    assert second.sentiment == "happy"
    assert second.escalated == "no"
    assert second.forwarded_hr == "no"
    assert second.category == "Greeting"
    assert second.initial_message == "Good day"
    assert str(second.tokens_eur) == "0.0010"  # the file's precision is kept

    assert third.language == "Dutch"
    assert third.messages_sent == 8
    assert third.sentiment == "excited"
    assert third.start_time == datetime(2025, 5, 1, 12, 11, 18, tzinfo=UTC)
    assert third.end_time == datetime(2025, 5, 1, 12, 14, 53, tzinfo=UTC)
    assert third.tokens == 56027
    assert third.tokens_eur == Decimal("0.0083")
    assert third.avg_response_time == 3.458
    assert third.category == "Onboarding"

    assert fourth.language == "turkish"
    assert fourth.category == "Language inquiry"
    assert fourth.initial_message == "Spreek je ook turks?"

    assert sixth.external_id == "689ae197-2005-4f09-b993-d9f6fa16fc1f"
    assert sixth.messages_sent == 3
    assert sixth.tokens == 19751
    assert sixth.initial_message == "hi liza"


def test_sample_times_are_wall_clock_in_the_company_timezone() -> None:
    utc_rows = only_rows(parse_csv(SAMPLE, "UTC"))
    ams_rows = only_rows(parse_csv(SAMPLE, "Europe/Amsterdam"))
    start = ams_rows[0].start_time
    assert start.tzinfo is not None
    assert start.utcoffset() == timedelta(hours=2)
    assert start == datetime(2025, 4, 30, 9, 38, 14, tzinfo=UTC)
    assert start.astimezone(UTC).isoformat() == "2025-04-30T09:38:14+00:00"
    assert utc_rows[0].start_time.isoformat() == "2025-04-30T11:38:14+00:00"
    for utc_row, ams_row in zip(utc_rows, ams_rows, strict=True):
        assert utc_row.start_time - ams_row.start_time == timedelta(hours=2)
        assert utc_row.end_time.utcoffset() == timedelta(0)


def test_bundled_sample_file_matches_the_embedded_copy() -> None:
    """The bundled file is a byte copy of the shared sample (compared too where it exists)."""
    bundled = SAMPLE_CSV.read_bytes()
    assert parse_csv(bundled).rows == parse_csv(SAMPLE).rows
    if SHARED_SAMPLE.exists():
        assert SHARED_SAMPLE.read_bytes() == bundled


# ------------------------------------------------------------------------------ value rules


def test_zeros_are_kept_as_zero_not_null() -> None:
    text = line(messages_sent="0", tokens="0", tokens_eur="0.0000", avg_response_time="0.000")
    (row,) = only_rows(parse_csv(text))
    assert row.messages_sent == 0
    assert row.tokens == 0
    assert row.tokens_eur == Decimal(0)
    assert str(row.tokens_eur) == "0.0000"
    assert row.avg_response_time == 0.0


def test_number_spellings_that_are_accepted() -> None:
    text = line(messages_sent="12.0", tokens="+7", tokens_eur="1E-8", avg_response_time=".5")
    (row,) = only_rows(parse_csv(text))
    assert row.messages_sent == 12
    assert row.tokens == 7
    assert row.tokens_eur == Decimal("0.00000001")
    assert row.avg_response_time == 0.5


def test_empty_and_blank_optional_values_become_none_and_values_are_trimmed() -> None:
    blanks = {c: "  " for c in COLUMNS if c not in ("session_id", "start_time", "end_time")}
    text = line(session_id="  id-7 ", start_time=" 30.04.2025 11:38:14 ", **blanks)
    (row,) = only_rows(parse_csv(text))
    assert row.external_id == "id-7"
    assert row.start_time == datetime(2025, 4, 30, 11, 38, 14, tzinfo=UTC)
    dumped = row.model_dump()
    assert all(
        dumped[name] is None
        for name in dumped
        if name not in ("external_id", "start_time", "end_time")
    )


def test_lenient_date_forms_are_accepted() -> None:
    text = line(start_time="1.5.2025 9:05:00", end_time="01-05-2025 09:05:07")
    (row,) = only_rows(parse_csv(text, "Europe/Amsterdam"))
    assert row.start_time == datetime(2025, 5, 1, 9, 5, 0, tzinfo=AMSTERDAM)
    assert row.end_time == datetime(2025, 5, 1, 9, 5, 7, tzinfo=AMSTERDAM)


def test_long_free_text_up_to_the_limit_is_kept_whole() -> None:
    message = "x" * 10_000
    (row,) = only_rows(parse_csv(line(initial_msg=message, ip_address="a" * 45)))
    assert row.initial_message == message
    assert row.ip_address == "a" * 45


@pytest.mark.parametrize(
    ("text", "timezone", "expected"),
    [
        ("30.04.2025 11:38:14", "UTC", datetime(2025, 4, 30, 11, 38, 14, tzinfo=UTC)),
        ("30.04.2025 11:38:14", "Europe/Amsterdam", datetime(2025, 4, 30, 9, 38, 14, tzinfo=UTC)),
        ("1.5.2025 9:05:00", "UTC", datetime(2025, 5, 1, 9, 5, tzinfo=UTC)),
        ("01-05-2025 09:05:00", "UTC", datetime(2025, 5, 1, 9, 5, tzinfo=UTC)),
        ("  29.02.2024 23:59:59 ", "UTC", datetime(2024, 2, 29, 23, 59, 59, tzinfo=UTC)),
        ("15.01.2025 12:00:00", "Europe/Amsterdam", datetime(2025, 1, 15, 11, tzinfo=UTC)),
    ],
)
def test_parse_european_datetime(text: str, timezone: str, expected: datetime) -> None:
    parsed = parse_european_datetime(text, timezone)
    assert parsed == expected
    assert parsed.tzinfo is not None


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("31.02.2025 11:00:00", "impossible date 31.02.2025 11:00:00"),
        ("29.02.2025 11:00:00", "impossible date"),
        ("30.04.2025 25:00:00", "impossible date"),
        ("30.04.2025 11:60:00", "impossible date"),
        ("00.04.2025 11:00:00", "impossible date"),
        ("2025-04-30T11:38:14", "ISO date"),
        ("2025-04-30 11:38:14", "ISO date"),
        ("30/04/2025 11:38:14", "expected DD.MM.YYYY HH:MM:SS"),
        ("30.04.2025", "date without time"),
        ("30.04.2025 11:38", "expected DD.MM.YYYY HH:MM:SS"),
        ("30.04-2025 11:38:14", "expected DD.MM.YYYY HH:MM:SS"),
        ("30.04.25 11:38:14", "expected DD.MM.YYYY HH:MM:SS"),
        ("", "missing"),
        ("   ", "missing"),
    ],
)
def test_parse_european_datetime_rejects(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_european_datetime(text, "UTC")


def test_unknown_timezone_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="unknown timezone"):
        parse_european_datetime("30.04.2025 11:38:14", "Mars/Olympus")
    with pytest.raises(ValueError, match="unknown timezone"):
        parse_csv(SAMPLE, "Mars/Olympus")


# ------------------------------------------------------------------------- bad-row corpus


BAD_VALUES: list[tuple[str, dict[str, str], str]] = [
    ("blank id", {"session_id": ""}, "session_id: missing"),
    ("whitespace id", {"session_id": "   "}, "session_id: missing"),
    ("control character in id", {"session_id": "ab\x07c"}, "session_id: contains control"),
    ("impossible day", {"start_time": "31.02.2025 11:00:00"},
     "start_time: impossible date 31.02.2025 11:00:00"),
    ("hour 25", {"start_time": "30.04.2025 25:00:00"}, "start_time: impossible date"),
    ("ISO date", {"start_time": "2025-04-30T11:38:14"}, "start_time: ISO date"),
    ("slash date", {"end_time": "30/04/2025 11:40:00"}, "end_time: expected DD.MM.YYYY"),
    ("date without time", {"start_time": "30.04.2025"}, "start_time: date without time"),
    ("empty start", {"start_time": ""}, "start_time: missing"),
    ("non-numeric tokens", {"tokens": "many"}, "tokens: not a number 'many'"),
    ("trailing garbage", {"tokens": "12abc"}, "tokens: not a number '12abc'"),
    ("fractional messages", {"messages_sent": "1.9"}, "messages_sent: not a whole number '1.9'"),
    ("negative messages", {"messages_sent": "-1"}, "messages_sent: negative"),
    ("negative tokens", {"tokens": "-5"}, "tokens: negative"),
    ("negative cost", {"tokens_eur": "-0.01"}, "tokens_eur: negative value '-0.01'"),
    ("non-numeric cost", {"tokens_eur": "1,5"}, "tokens_eur: not a number"),
    ("NaN cost", {"tokens_eur": "NaN"}, "tokens_eur: not a number"),
    ("negative response time", {"avg_response_time": "-2"}, "avg_response_time: negative"),
    ("infinite response time", {"avg_response_time": "inf"}, "avg_response_time: not a number"),
    ("underscore digits", {"tokens": "1_000"}, "tokens: not a number"),
    ("exponent count", {"tokens": "1e3"}, "tokens: not a whole number"),
    ("unicode digits", {"tokens": "\u0663"}, "tokens: not a number"),
    ("huge count", {"tokens": "9" * 30}, "tokens: value too large"),
    ("end before start", {"start_time": "30.04.2025 12:00:00", "end_time": "30.04.2025 11:00:00"},
     "end_time: 30.04.2025 11:00:00 is before start_time 30.04.2025 12:00:00"),
    ("ip too long", {"ip_address": "1" * 46}, "ip_address: longer than 45 characters"),
    ("overlong message", {"initial_msg": "y" * 10_001},
     "initial_msg: value is 10001 characters, limit 10000"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("overrides", "reason"), [case[1:] for case in BAD_VALUES], ids=[c[0] for c in BAD_VALUES]
)
def test_bad_value_rejects_only_its_row(overrides: dict[str, str], reason: str) -> None:
    text = (
        line(session_id="ok-1")
        + line(**{"session_id": "bad", **overrides})
        + line(session_id="ok-3")
    )
    parsed = parse_csv(text)
    assert [number for number, _ in parsed.rows] == [1, 3]
    assert [row.external_id for _, row in parsed.rows] == ["ok-1", "ok-3"]
    (rejection,) = parsed.rejections
    assert rejection.row_number == 2
    assert reason in rejection.reason
    assert rejection.raw_line == text.splitlines()[1][:2000]
    assert parsed.rows_seen == 3


def test_every_problem_of_a_row_is_reported() -> None:
    parsed = parse_csv(line(start_time="31.02.2025 11:00:00", tokens="x", tokens_eur="-1"))
    (rejection,) = parsed.rejections
    assert "start_time: impossible date" in rejection.reason
    assert "tokens: not a number" in rejection.reason
    assert "tokens_eur: negative" in rejection.reason


@pytest.mark.parametrize("count", [1, 15, 17, 30])
def test_wrong_column_count_is_rejected(count: int) -> None:
    values = [DEFAULTS[c] for c in COLUMNS] + ["extra"] * 14
    text = line(session_id="a") + fields_line(values[:count]) + line(session_id="b")
    parsed = parse_csv(text)
    assert [n for n, _ in parsed.rows] == [1, 3]
    assert parsed.rejections == [
        RowRejection(
            row_number=2,
            raw_line=text.splitlines()[1],
            reason=f"expected 16 columns, found {count}",
        )
    ]


def test_quoted_empty_line_is_a_record_not_a_blank() -> None:
    parsed = parse_csv('""\n' + line())
    assert parsed.rejections[0].row_number == 1
    assert parsed.rejections[0].reason == "expected 16 columns, found 1"
    assert [n for n, _ in parsed.rows] == [2]


def test_duplicate_id_rejects_the_later_row_naming_the_first() -> None:
    text = line(session_id="dup") + line(session_id="other") + line(session_id="dup")
    parsed = parse_csv(text)
    assert [(n, r.external_id) for n, r in parsed.rows] == [(1, "dup"), (2, "other")]
    (rejection,) = parsed.rejections
    assert rejection.row_number == 3
    assert "session_id: duplicate of row 1" in rejection.reason


def test_duplicate_check_compares_against_accepted_rows_only() -> None:
    """A broken first copy must not block a good later copy of the same session."""
    text = line(session_id="dup", tokens="x") + line(session_id="dup")
    parsed = parse_csv(text)
    assert [(n, r.external_id) for n, r in parsed.rows] == [(2, "dup")]
    assert parsed.rejections[0].row_number == 1


def test_overlong_raw_line_is_capped_in_the_rejection() -> None:
    parsed = parse_csv(line(initial_msg="z" * 12_000))
    (rejection,) = parsed.rejections
    assert len(rejection.raw_line) == 2000
    assert rejection.raw_line.startswith("sess-1,")


# ------------------------------------------------------------------------- quoting, lines


def test_stray_quote_mid_file_rejects_only_that_line() -> None:
    stray = line(session_id="s2").rstrip("\n").rsplit(",", 1)[0] + ',"unterminated message\n'
    text = (
        line(session_id="s1")
        + stray
        + line(session_id="s3")
        + line(session_id="s4", initial_msg='she said "hi", then\nleft')
        + line(session_id="s5")
    )
    parsed = parse_csv(text)
    assert [(n, r.external_id) for n, r in parsed.rows] == [(1, "s1"), (3, "s3"), (4, "s4"),
                                                            (5, "s5")]  # fmt: skip
    assert parsed.rows[2][1].initial_message == 'she said "hi", then\nleft'
    (rejection,) = parsed.rejections
    assert rejection.row_number == 2
    assert rejection.raw_line == stray.rstrip("\n")
    assert "quoting" in rejection.reason


def test_stray_quote_closed_by_a_later_row_does_not_swallow_it() -> None:
    """RFC 4180 would read rows 2-3 as one 16-column record; a row hiding in a value is refused."""
    text = (
        line(session_id="s1")
        + line(session_id="s2").replace(",hello\n", ',"hello\n')
        + line(session_id="s3").replace(",hello\n", ',said hi"\n')
        + line(session_id="s4")
    )
    parsed = parse_csv(text)
    assert [(n, r.external_id) for n, r in parsed.rows] == [(1, "s1"), (3, "s3"), (4, "s4")]
    assert parsed.rows[1][1].initial_message == 'said hi"'
    (rejection,) = parsed.rejections
    assert rejection.row_number == 2
    assert rejection.raw_line.endswith(',"hello')
    assert "malformed quoting" in rejection.reason


def test_stray_quote_on_the_last_line() -> None:
    text = line(session_id="s1") + 'broken,"no end\n'
    parsed = parse_csv(text)
    assert [n for n, _ in parsed.rows] == [1]
    assert parsed.rejections[0].row_number == 2
    assert "malformed quoting" in parsed.rejections[0].reason


def test_text_after_a_closing_quote_is_a_quoting_error_for_that_line_only() -> None:
    text = line(session_id="s1") + '"ab"c,d\n' + line(session_id="s3")
    parsed = parse_csv(text)
    assert [n for n, _ in parsed.rows] == [1, 3]
    (rejection,) = parsed.rejections
    assert (rejection.row_number, rejection.raw_line) == (2, '"ab"c,d')
    assert "malformed quoting" in rejection.reason


def test_quote_inside_an_unquoted_value_is_literal() -> None:
    (row,) = only_rows(parse_csv(line().replace("hello", 'say "hi" twice')))
    assert row.initial_message == 'say "hi" twice'


def test_line_break_in_a_non_text_column_is_treated_as_a_stray_quote() -> None:
    """A quoted line break is only plausible in category/initial_msg; elsewhere resync."""
    broken = line(session_id="s2", start_time="30.04.2025\n11:38:14")
    text = line(session_id="s1") + broken + line(session_id="s3")
    parsed = parse_csv(text)
    assert [r.external_id for _, r in parsed.rows] == ["s1", "s3"]
    assert [r.row_number for r in parsed.rejections] == [2, 3]
    assert parsed.rows[-1][0] == 4
    assert parsed.rows_seen == 4


def test_quoted_message_with_comma_and_newline() -> None:
    message = 'Hello, I have a question\nabout my "contract", please'
    text = line(session_id="m1", initial_msg=message) + line(session_id="m2")
    parsed = parse_csv(text)
    rows = only_rows(parsed)
    assert rows[0].initial_message == message
    assert [n for n, _ in parsed.rows] == [1, 2]


def test_multiline_rejection_keeps_the_whole_record_as_raw_line() -> None:
    record = line(session_id="m1", tokens="bad", category="two\nlines")
    parsed = parse_csv(record + line(session_id="m2"))
    (rejection,) = parsed.rejections
    assert rejection.row_number == 1
    assert rejection.raw_line == record.rstrip("\n")
    assert "\n" in rejection.raw_line
    assert [n for n, _ in parsed.rows] == [2]


def test_crlf_line_endings() -> None:
    text = SAMPLE.replace("\n", "\r\n")
    parsed = parse_csv(text.encode())
    assert parsed.rows == parse_csv(SAMPLE).rows
    assert all(not r.initial_message or "\r" not in r.initial_message for _, r in parsed.rows)
    assert parse_csv(SAMPLE.replace("\n", "\r")).rows == parse_csv(SAMPLE).rows


def test_line_breaks_inside_a_quoted_message_are_kept_verbatim() -> None:
    text = line(initial_msg="a\r\nb\rc\nd").replace("\n", "\r\n")
    (row,) = only_rows(parse_csv(text))
    assert row.initial_message == "a\r\r\nb\rc\r\nd"  # the file's bytes, not normalised


def test_blank_lines_are_skipped_and_not_counted() -> None:
    text = "\n   \n" + line(session_id="a") + "\n\n \t \n" + line(session_id="b") + "\n"
    parsed = parse_csv(text)
    assert [n for n, _ in parsed.rows] == [1, 2]
    assert parsed.rows_seen == 2


@pytest.mark.parametrize("text", ["", "\n", "\n\n  \n", "\ufeff"])
def test_empty_files(text: str) -> None:
    parsed = parse_csv(text)
    assert (parsed.rows, parsed.rejections, parsed.rows_seen) == ([], [], 0)


def test_missing_final_newline_is_fine() -> None:
    assert len(only_rows(parse_csv(SAMPLE.rstrip("\n")))) == 6


# ---------------------------------------------------------------------------- header, BOM


@pytest.mark.parametrize(
    "header",
    [
        HEADER,
        HEADER.upper(),
        "sessionId,startTime,endTime,ipAddress,country,language,messagesSent,sentiment,"
        "escalated,forwardedHr,fullTranscriptUrl,avgResponseTime,tokens,tokensEur,category,"
        "initialMsg",
        "id,start,end",
        "session_id",
    ],
)
def test_header_row_is_skipped_not_rejected(header: str) -> None:
    parsed = parse_csv(header + "\n" + SAMPLE)
    assert parsed.header_detected is True
    assert parsed.rejections == []
    assert [n for n, _ in parsed.rows] == [2, 3, 4, 5, 6, 7]
    assert parsed.rows_seen == 6


def test_header_only_counts_on_the_first_record() -> None:
    parsed = parse_csv(line(session_id="a") + HEADER + "\n")
    assert parsed.header_detected is False
    assert [r.row_number for r in parsed.rejections] == [2]


def test_reordered_header_maps_columns_by_name() -> None:
    order = list(reversed(COLUMNS))
    values = [DEFAULTS[c] for c in order]
    values[order.index("session_id")] = "rev-1"
    values[order.index("tokens")] = "42"
    values[order.index("initial_msg")] = "first, words\nand more"
    parsed = parse_csv(",".join(order) + "\n" + fields_line(values))
    (row,) = only_rows(parsed)
    assert parsed.header_detected
    assert row.external_id == "rev-1"
    assert row.tokens == 42
    assert row.messages_sent == 2
    assert row.initial_message == "first, words\nand more"
    assert row.start_time == datetime(2025, 4, 30, 11, 38, 14, tzinfo=UTC)


def test_bom_in_bytes_is_stripped() -> None:
    parsed = parse_csv(b"\xef\xbb\xbf" + SAMPLE.encode())
    assert parsed.bom_stripped is True
    assert parsed.rows[0][1].external_id == "a068d62a-439b-4d70-924f-3d45ffba673b"
    assert parsed.rows == parse_csv(SAMPLE).rows


def test_bom_in_str_is_stripped_and_header_still_detected() -> None:
    parsed = parse_csv("\ufeff" + HEADER + "\n" + SAMPLE)
    assert parsed.bom_stripped is True
    assert parsed.header_detected is True
    assert parsed.rows[0] == (2, parse_csv(SAMPLE).rows[0][1])


def test_undecodable_bytes_are_a_format_error() -> None:
    with pytest.raises(CsvFormatError, match=r"not valid UTF-8: byte 0xff at offset 5"):
        parse_csv(b"sess-\xff,30.04.2025 11:38:14\n")
    with pytest.raises(CsvFormatError, match="UTF-16"):
        parse_csv(SAMPLE.encode("utf-16"))


def test_utf8_text_survives_decoding() -> None:
    (row,) = only_rows(parse_csv(line(initial_msg="Grüß dich, ça va? 你好").encode()))
    assert row.initial_message == "Grüß dich, ça va? 你好"


# ----------------------------------------------------------------------------- fingerprint


def test_fingerprint_is_stable_and_sensitive() -> None:
    rows = only_rows(parse_csv(SAMPLE))
    again = only_rows(parse_csv(SAMPLE))
    assert [r.fingerprint() for r in rows] == [r.fingerprint() for r in again]
    assert len({r.fingerprint() for r in rows}) == 6
    assert all(len(fp) == 64 and int(fp, 16) >= 0 for fp in (r.fingerprint() for r in rows))
    changed = rows[0].model_copy(update={"tokens": 6471})
    assert changed.fingerprint() != rows[0].fingerprint()
    precision = rows[0].model_copy(update={"tokens_eur": Decimal("0.00090")})
    assert precision.fingerprint() != rows[0].fingerprint()
    amsterdam = only_rows(parse_csv(SAMPLE, "Europe/Amsterdam"))[0]
    assert amsterdam.fingerprint() != rows[0].fingerprint()


def test_fingerprint_survives_the_json_round_trip_of_the_event_store() -> None:
    for row in only_rows(parse_csv(SAMPLE, "Europe/Amsterdam")):
        restored = SourceRow.model_validate(row.model_dump(mode="json"))
        assert restored == row
        assert restored.fingerprint() == row.fingerprint()
        assert restored.tokens_eur is not None and row.tokens_eur is not None
        assert str(restored.tokens_eur) == str(row.tokens_eur)


def test_source_row_is_frozen_and_validates_its_invariants() -> None:
    row = only_rows(parse_csv(SAMPLE))[0]
    with pytest.raises(ValueError):
        row.tokens = 1
    data = row.model_dump()
    with pytest.raises(ValueError):
        SourceRow.model_validate({**data, "tokens": -1})
    with pytest.raises(ValueError):
        SourceRow.model_validate({**data, "start_time": datetime(2025, 1, 1)})


# ------------------------------------------------------------------------------- property


def csv_text(
    specials: list[str], *, min_size: int = 0, max_size: int, line_breaks: bool = False
) -> st.SearchStrategy[str]:
    """Text that often holds the characters CSV quoting is about, not only rare unicode."""
    if line_breaks:
        char = st.characters(blacklist_categories=["Cs"], blacklist_characters="\r\n")
    else:
        char = st.characters(blacklist_categories=("Cs", "Cc"))
    pieces = st.one_of(st.sampled_from(specials), char)
    return st.lists(pieces, min_size=min_size, max_size=max_size).map("".join)


SAFE_TEXT = csv_text([",", '"', " ", "'", "a"], max_size=12)
FREE_TEXT = csv_text([",", '"', " ", "\n", "\r\n", "\r", '""', "\t"], max_size=30, line_breaks=True)
PADDING = st.sampled_from(["", " ", "  "])


@dataclass(frozen=True)
class Generated:
    """One generated record: its CSV text and what the parser must make of it."""

    text: str
    kind: str  # "valid", "columns", "dates", "garbage"
    expected: dict[str, object] | None = None
    columns: int = 16


def format_datetime(dt: datetime, short: bool, separator: str) -> str:
    if short:
        date = f"{dt.day}{separator}{dt.month}{separator}{dt.year}"
        return f"{date} {dt.hour}:{dt.minute:02}:{dt.second:02}"
    date = f"{dt.day:02}{separator}{dt.month:02}{separator}{dt.year}"
    return f"{date} {dt.hour:02}:{dt.minute:02}:{dt.second:02}"


def optional(strategy: st.SearchStrategy[T]) -> st.SearchStrategy[T | None]:
    return st.one_of(st.none(), strategy)


@st.composite
def valid_records(draw: st.DrawFn, index: int) -> Generated:
    start = draw(st.datetimes(min_value=datetime(1990, 1, 1), max_value=datetime(2090, 1, 1)))
    start = start.replace(microsecond=0)
    end = start + timedelta(seconds=draw(st.integers(0, 3 * 86_400)))
    short, separator = draw(st.booleans()), draw(st.sampled_from([".", "-"]))
    ip = draw(optional(st.ip_addresses().map(str)))
    counts = [draw(optional(st.integers(0, 10**12))) for _ in range(2)]
    whole_suffix = draw(st.sampled_from(["", ".0"]))
    avg = draw(optional(st.floats(0, 1e6, allow_nan=False, allow_infinity=False)))
    places = draw(st.integers(0, 8))
    eur = draw(optional(st.decimals(0, 10**6, places=places, allow_nan=False)))
    texts = [draw(optional(SAFE_TEXT)) for _ in range(6)]
    free = [draw(optional(FREE_TEXT)) for _ in range(2)]
    external_id = f"{draw(st.uuids())}-{index}"
    cells = [
        external_id,
        format_datetime(start, short, separator),
        format_datetime(end, short, separator),
        ip or "",
        texts[0] or "",
        texts[1] or "",
        "" if counts[0] is None else f"{counts[0]}{whole_suffix}",
        texts[2] or "",
        texts[3] or "",
        texts[4] or "",
        texts[5] or "",
        "" if avg is None else repr(avg),
        "" if counts[1] is None else str(counts[1]),
        "" if eur is None else str(eur),
        free[0] or "",
        free[1] or "",
    ]
    pads = [draw(PADDING) for _ in cells]
    padded = [pad + cell + pad for pad, cell in zip(pads, cells, strict=True)]

    def stripped(value: str | None) -> str | None:
        return (value or "").strip() or None

    expected: dict[str, object] = {
        "external_id": external_id,
        "start_time": start.replace(tzinfo=UTC),
        "end_time": end.replace(tzinfo=UTC),
        "ip_address": ip,
        "country": stripped(texts[0]),
        "language": stripped(texts[1]),
        "messages_sent": counts[0],
        "sentiment": stripped(texts[2]),
        "escalated": stripped(texts[3]),
        "forwarded_hr": stripped(texts[4]),
        "transcript_url": stripped(texts[5]),
        "avg_response_time": avg,
        "tokens": counts[1],
        "tokens_eur": eur,
        "category": stripped(free[0]),
        "initial_message": stripped(free[1]),
    }
    return Generated(fields_line(padded), "valid", expected)


@st.composite
def wrong_column_records(draw: st.DrawFn, index: int) -> Generated:
    count = draw(st.integers(1, 30).filter(lambda n: n != 16))
    values = [f"v{index}-{i}" for i in range(count)]
    return Generated(fields_line(values), "columns", columns=count)


@st.composite
def random_date_records(draw: st.DrawFn, index: int) -> Generated:
    numbers = draw(st.tuples(*(st.integers(0, 99) for _ in range(5))))
    year = draw(st.integers(0, 9999))
    made_up = f"{numbers[0]}.{numbers[1]}.{year:04} {numbers[2]}:{numbers[3]:02}:{numbers[4]:02}"
    value = draw(st.one_of(st.just(made_up), SAFE_TEXT))
    column = draw(st.sampled_from(["start_time", "end_time"]))
    return Generated(line(session_id=f"d-{index}", **{column: value}), "dates")


GARBAGE = (
    csv_text([",", '"', " ", ",,,", '"a,b"', '""', "x"], min_size=1, max_size=40, line_breaks=True)
    .filter(lambda s: s.strip() != "")
    .filter(lambda s: s.count(",") <= 13)
)
"""At most 13 commas: with 14-15, a line ending in an open quote followed by a line holding just
a quote is one RFC 4180 record whose value spans the break, so "one garbage line" would be a
matter of opinion rather than a parser property."""


@st.composite
def garbage_records(draw: st.DrawFn, index: int) -> Generated:
    return Generated(draw(GARBAGE) + "\n", "garbage")


@st.composite
def files(draw: st.DrawFn) -> tuple[list[Generated], bool, list[str]]:
    count = draw(st.integers(0, 12))
    kinds = [valid_records, wrong_column_records, random_date_records, garbage_records]
    records = [draw(draw(st.sampled_from(kinds))(i)) for i in range(count)]
    with_header = draw(st.booleans())
    if records and not with_header:
        records[0] = draw(valid_records(0))  # so garbage is never taken for a header
    blanks = [draw(st.sampled_from(["", "", "\n", "  \n"])) for _ in range(count + 1)]
    return records, with_header, blanks


@settings(max_examples=150, deadline=None)
@given(files(), st.sampled_from(["\n", "\r\n"]), st.booleans(), st.booleans())
def test_every_record_becomes_exactly_one_row_or_rejection(
    generated: tuple[list[Generated], bool, list[str]],
    newline: str,
    as_bytes: bool,
    with_bom: bool,
) -> None:
    records, with_header, blanks = generated
    parts = [blanks[0]] + ([HEADER + "\n"] if with_header else [])
    for record, blank in zip(records, blanks[1:], strict=True):
        parts += [record.text, blank]
    text = "".join(parts)
    if newline == "\r\n":  # every line ending, including those inside quoted values
        text = text.replace("\r\n", "\n").replace("\n", "\r\n")
    text = ("\ufeff" if with_bom else "") + text

    parsed = parse_csv(text.encode() if as_bytes else text, "UTC")

    offset = 2 if with_header else 1
    numbers = [n for n, _ in parsed.rows] + [r.row_number for r in parsed.rejections]
    assert sorted(numbers) == list(range(offset, offset + len(records)))
    assert parsed.rows_seen == len(records)
    assert parsed.header_detected is with_header
    assert parsed.bom_stripped is with_bom
    assert all(r.reason.strip() for r in parsed.rejections)
    assert all(len(r.raw_line) <= 2000 for r in parsed.rejections)

    rows = dict(parsed.rows)
    rejections = {r.row_number: r for r in parsed.rejections}
    for position, record in enumerate(records):
        number = position + offset
        if record.kind == "valid":
            assert number in rows, rejections.get(number)
            actual = rows[number].model_dump()
            expected = dict(record.expected or {})
            if newline == "\r\n":
                for key in ("category", "initial_message"):
                    value = expected[key]
                    if isinstance(value, str):
                        expected[key] = value.replace("\r\n", "\n").replace("\n", "\r\n")
            assert actual == expected
            eur = expected["tokens_eur"]
            assert str(actual["tokens_eur"]) == str(eur)
        elif record.kind == "columns":
            assert rejections[number].reason == f"expected 16 columns, found {record.columns}"
        elif record.kind == "dates":
            assert number in rows or "_time" in rejections[number].reason
        else:
            assert number in rejections


@settings(max_examples=150, deadline=None)
@given(
    st.datetimes(min_value=datetime(1, 1, 1), max_value=datetime(9999, 12, 31)),
    st.booleans(),
    st.sampled_from([".", "-"]),
)
def test_formatted_datetimes_round_trip(dt: datetime, short: bool, separator: str) -> None:
    dt = dt.replace(microsecond=0)
    text = format_datetime(dt, short, separator)
    if dt.year < 1000:
        with pytest.raises(ValueError):
            parse_european_datetime(text, "UTC")
        return
    assert parse_european_datetime(text, "Asia/Tokyo") == dt.replace(tzinfo=ZoneInfo("Asia/Tokyo"))
