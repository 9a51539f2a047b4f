"""The one Retry-After parser and the one set of retryable statuses (processors/net)."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from email.message import Message
from email.utils import format_datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from processors.ai import openai_client
from processors.ingest import source
from processors.net.retry_after import (
    RETRYABLE_STATUS,
    parse_duration,
    parse_http_date,
    retry_after_seconds,
)
from processors.stages import fetch

NOW = datetime(2026, 1, 1, 12, 0, 0, tzinfo=UTC)


def test_every_user_shares_the_one_parser_and_status_set() -> None:
    assert openai_client.retry_after_seconds is retry_after_seconds
    assert openai_client.parse_duration is parse_duration
    assert fetch.retry_after_seconds is retry_after_seconds
    assert fetch.RETRYABLE_STATUS is RETRYABLE_STATUS
    assert source.RETRYABLE_STATUS is RETRYABLE_STATUS


def test_retryable_statuses() -> None:
    assert {408, 425, 429, 500, 502, 503, 504} == RETRYABLE_STATUS
    assert not RETRYABLE_STATUS & {200, 304, 400, 401, 403, 404, 501}


@given(st.integers(min_value=0, max_value=10**9))
def test_delta_seconds_are_read_as_given(seconds: int) -> None:
    assert retry_after_seconds({"retry-after": str(seconds)}, NOW) == seconds


@given(st.integers(min_value=0, max_value=10**8))
def test_an_http_date_is_the_seconds_until_it(seconds: int) -> None:
    when = format_datetime(NOW + timedelta(seconds=seconds), usegmt=True)
    assert retry_after_seconds({"retry-after": when}, NOW) == seconds


@given(st.integers(min_value=1, max_value=10**8))
def test_a_past_date_means_now(seconds: int) -> None:
    when = format_datetime(NOW - timedelta(seconds=seconds), usegmt=True)
    assert retry_after_seconds({"retry-after": when}, NOW) == 0.0


@given(st.text(max_size=40))
def test_any_header_value_is_none_or_a_finite_non_negative_wait(value: str) -> None:
    for name in ("retry-after", "retry-after-ms", "x-ratelimit-reset-tokens"):
        wait = retry_after_seconds({name: value}, NOW)
        assert wait is None or (math.isfinite(wait) and wait >= 0)


@pytest.mark.parametrize("value", ["inf", "-inf", "nan", "Infinity", "1e400"])
def test_no_endless_wait(value: str) -> None:
    assert retry_after_seconds({"retry-after": value}, NOW) is None
    assert retry_after_seconds({"retry-after-ms": value}, NOW) is None


@pytest.mark.parametrize(
    ("value", "seconds"),
    [("7", 7.0), (" 7 ", 7.0), ("2.5", 2.5), ("-5", 0.0), ("1m30s", 90.0), ("soon", None)],
)
def test_retry_after_forms(value: str, seconds: float | None) -> None:
    assert retry_after_seconds({"retry-after": value}, NOW) == seconds


def test_the_clock_is_read_only_for_a_date() -> None:
    reads: list[int] = []

    def clock() -> datetime:
        reads.append(1)
        return NOW

    assert retry_after_seconds({"retry-after": "3"}, clock) == 3.0
    assert reads == []
    assert retry_after_seconds({"retry-after": "Thu, 01 Jan 2026 12:00:30 GMT"}, clock) == 30.0
    assert reads == [1]


def test_a_date_without_zone_is_gmt() -> None:
    assert parse_http_date("Thu, 01 Jan 2026 12:00:30 -0000", NOW) == 30.0


def test_headers_of_the_standard_library_work() -> None:
    headers = Message()
    headers["Retry-After"] = "12"
    assert retry_after_seconds(headers, NOW) == 12.0


def test_precedence_ms_then_retry_after_then_rate_limit_reset() -> None:
    assert retry_after_seconds({"retry-after-ms": "1500", "retry-after": "9"}, NOW) == 1.5
    assert retry_after_seconds({"retry-after-ms": "x", "retry-after": "9"}, NOW) == 9.0
    reset = {"x-ratelimit-reset-requests": "1s", "x-ratelimit-reset-tokens": "3s"}
    assert retry_after_seconds({**reset, "retry-after": "2"}, NOW) == 2.0
    assert retry_after_seconds(reset, NOW) == 3.0
    exhausted = {**reset, "x-ratelimit-remaining-requests": "0"}
    assert retry_after_seconds(exhausted, NOW) == 1.0
    assert retry_after_seconds({}, NOW) is None


@given(
    st.lists(
        st.tuples(st.integers(min_value=0, max_value=999), st.sampled_from(["h", "m", "s"])),
        min_size=1,
        max_size=3,
    )
)
def test_durations_add_their_parts(parts: list[tuple[int, str]]) -> None:
    text = "".join(f"{n}{unit}" for n, unit in parts)
    expected = sum(n * {"h": 3600, "m": 60, "s": 1}[unit] for n, unit in parts)
    assert parse_duration(text) == pytest.approx(expected)


@pytest.mark.parametrize("text", ["soon", "5x", "1s2", "s", "", None])
def test_not_a_duration(text: str | None) -> None:
    assert parse_duration(text) is None
