"""OpenAIAnalyser through the real `openai` client against a fake OpenAI server on 127.0.0.1.

The invariant checked throughout: every paid response the server delivered is recorded exactly
once (same request ids), before validation, and no attempt pays twice for one answer.
"""

from __future__ import annotations

import json
import logging
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from cli.bootstrap import openai_config
from cli.settings import AISettings
from domain.analysis import Category, SessionAnalysis
from domain.payloads import AIUsage
from domain.transcript import Message, parse_transcript
from processors.ai.config import OpenAIAnalyserConfig, config_problem, transcript_budget
from processors.ai.openai_client import (
    OpenAIAnalyser,
    parse_duration,
    retry_after_seconds,
    validate,
)
from processors.ai.pricing import PriceTable, cost
from processors.ai.prompt import (
    PROMPT_VERSION,
    SESSION_SCHEMA,
    estimate_tokens,
    fit_transcript,
    render_message,
    system_prompt,
)
from processors.ai.ratelimit import ModelLimits, RateLimiter
from processors.stages.analysis import AnalysisInputs
from processors.stages.base import StageError, WorkContext, WorkReleased
from tests.openai_server import (
    FakeOpenAI,
    Reply,
    content,
    context_length,
    invalid_json,
    ok,
    rate_limited,
    refusal,
    reject_schema,
    schema_invalid,
    server_error,
)

KEY = "sk-test-key"
TRANSCRIPT = """\
[14.05.2025 09:12:03] User: Hoi, ik ben ziek. Wie moet ik bellen?
[14.05.2025 09:12:05] Assistant: Wat vervelend! Meld je ziek bij je leidinggevende.
Je kunt ook de HR-lijn bellen.
User: Moet ik een doktersbriefje hebben?
[14.05.2025 09:13:42] Assistant: Nee, pas vanaf de derde ziektedag.
"""
PRICES = PriceTable.load()


class Recorder:
    def __init__(self) -> None:
        self.usages: list[AIUsage] = []
        self._lock = threading.Lock()
        self.ctx = WorkContext(record_usage=self._record)

    def _record(self, usage: AIUsage) -> None:
        with self._lock:
            self.usages.append(usage)


@pytest.fixture
def server() -> Iterator[FakeOpenAI]:
    with FakeOpenAI(api_key=KEY) as s:
        yield s


@pytest.fixture
def analysers() -> Iterator[list[OpenAIAnalyser]]:
    made: list[OpenAIAnalyser] = []
    yield made
    for a in made:
        a.close()


@pytest.fixture
def make(server: FakeOpenAI, analysers: list[OpenAIAnalyser]):
    def build(**changes: Any) -> OpenAIAnalyser:
        values: dict[str, Any] = {"api_key": KEY, "base_url": server.base_url, "timeout": 5.0}
        values.update(changes)
        analyser = OpenAIAnalyser(OpenAIAnalyserConfig(**values))
        analysers.append(analyser)
        return analyser

    return build


def messages(text: str = TRANSCRIPT) -> list[Message]:
    return parse_transcript(text, "Europe/Amsterdam")


def inputs(
    msgs: list[Message] | None = None,
    model: str | None = None,
    recorded: AIUsage | None = None,
) -> AnalysisInputs:
    return AnalysisInputs(uuid.uuid4(), messages() if msgs is None else msgs, model, recorded)


def assert_paid_once(server: FakeOpenAI, rec: Recorder) -> None:
    """What the server was paid for is exactly what was recorded: same count, same ids."""
    assert server.wait_idle()
    paid = server.paid_responses()
    assert len(paid) == len(rec.usages)
    assert sorted(p.request_id for p in paid) == sorted(str(u.request_id) for u in rec.usages)
    assert len({u.request_id for u in rec.usages}) == len(rec.usages)


def failure(analyser: OpenAIAnalyser, rec: Recorder, inp: AnalysisInputs) -> StageError:
    with pytest.raises(StageError) as e:
        analyser(inp, rec.ctx)
    return e.value


def expected_cost(model: str, prompt: int, cached: int, completion: int) -> tuple[Decimal, Decimal]:
    price = PRICES.lookup(model, datetime.now(UTC).date())
    assert price is not None
    return cost(price, prompt, cached, completion, Decimal("0.92"))


# ------------------------------------------------------------------ success
def test_a_valid_answer_is_recorded_priced_and_returned(server: FakeOpenAI, make) -> None:
    server.script(
        [ok(prompt_tokens=1000, cached_tokens=400, completion_tokens=120, reasoning_tokens=30)]
    )
    rec = Recorder()
    before = datetime.now(UTC)
    out = make()(inputs(), rec.ctx)
    after = datetime.now(UTC)

    assert server.total == 1
    assert_paid_once(server, rec)
    (usage,) = rec.usages
    sent = server.paid_responses()[0]
    assert usage.provider == "openai"
    assert (usage.model_requested, usage.model_returned) == (
        "gpt-4o-mini",
        "gpt-4o-mini-2024-07-18",
    )
    assert usage.request_id == sent.request_id and usage.request_id.startswith("req_")
    assert (usage.prompt_tokens, usage.cached_tokens, usage.completion_tokens) == (1000, 400, 120)
    assert (usage.reasoning_tokens, usage.total_tokens) == (30, 1120)
    usd, eur = expected_cost("gpt-4o-mini", 1000, 400, 120)
    # (600 × 0.15 + 400 × 0.075 + 120 × 0.60) / 1e6 = 0.000192 USD
    assert usd == Decimal("0.000192")
    assert (usage.cost_usd, usage.cost_eur) == (usd, eur)
    assert usage.price_source == "prices.json gpt-4o-mini 2024-07-18"
    assert usage.response_text == sent.content
    assert usage.purpose == "analysis"
    assert before <= usage.requested_at <= usage.received_at <= after
    assert usage.received_at.tzinfo is not None

    assert out.provider == "openai" and out.model == "gpt-4o-mini-2024-07-18"
    assert out.prompt_version == PROMPT_VERSION and out.usage is None
    assert out.analysis == SessionAnalysis.model_validate_json(sent.content or "")
    assert out.analysis.language == "nl"
    assert out.analysis.category is Category.SICK_LEAVE_RECOVERY
    assert out.metadata == {
        "model_requested": "gpt-4o-mini",
        "prompt_tokens": 1000,
        "completion_tokens": 120,
        "cost_eur": str(eur),
        "paid_calls": 1,
        "truncated": False,
        "omitted_messages": 0,
        "clipped_messages": 0,
        "response_format": "json_schema",
        "reused_recorded_response": False,
        "repaired": False,
        "request_id": sent.request_id,
    }


def test_the_request_asks_for_strict_structured_output(server: FakeOpenAI, make) -> None:
    make(temperature=0.2, max_output_tokens=800)(inputs(model="gpt-4.1"), Recorder().ctx)
    (req,) = server.requests
    assert req.path == "/v1/chat/completions"
    assert req.headers["authorization"] == f"Bearer {KEY}"
    body = req.body
    assert body["model"] == "gpt-4.1"
    assert body["temperature"] == 0.2 and body["max_completion_tokens"] == 800
    assert "max_tokens" not in body and "metadata" not in body
    rf = body["response_format"]
    assert rf["type"] == "json_schema"
    assert rf["json_schema"]["name"] == "session_analysis" and rf["json_schema"]["strict"] is True
    schema = rf["json_schema"]["schema"]
    assert schema == SESSION_SCHEMA
    assert schema["additionalProperties"] is False
    assert schema["required"] == list(SessionAnalysis.model_fields)
    assert schema["properties"]["category"]["enum"] == [c.value for c in Category]
    assert schema["properties"]["sentiment"]["enum"] == ["POSITIVE", "NEUTRAL", "NEGATIVE"]
    assert [m["role"] for m in body["messages"]] == ["system", "user"]


def test_the_client_does_not_retry_on_its_own(server: FakeOpenAI, make) -> None:
    server.script([server_error(500), server_error(502), ok()])
    rec = Recorder()
    err = failure(make(), rec, inputs())
    assert server.total == 1  # the openai client's retries are off
    assert (err.error_type, err.retryable) == ("server_error", True)
    assert "HTTP 500" in err.message and "request req_" in err.message
    assert rec.usages == []


# ---------------------------------------------------------------- prompt
def test_the_transcript_is_rendered_with_real_times_and_no_session_id(
    server: FakeOpenAI, make
) -> None:
    inp = inputs()
    make()(inp, Recorder().ctx)
    user = server.requests[0].body["messages"][1]["content"]
    assert user.splitlines() == [
        "Chat transcript (4 messages):",
        "[2025-05-14 09:12:03] user: Hoi, ik ben ziek. Wie moet ik bellen?",
        "[2025-05-14 09:12:05] assistant: Wat vervelend! Meld je ziek bij je leidinggevende.",
        "  Je kunt ook de HR-lijn bellen.",
        "user: Moet ik een doktersbriefje hebben?",  # no timestamp: none shown, never 1970
        "[2025-05-14 09:13:42] assistant: Nee, pas vanaf de derde ziektedag.",
    ]
    whole = json.dumps(server.requests[0].body)
    assert "1970" not in whole
    assert str(inp.session_id) not in whole and "session_id" not in whole


def test_render_message_roles_and_times() -> None:
    stamp = datetime(2025, 1, 2, 3, 4, 5, tzinfo=timezone(timedelta(hours=1)))
    m = Message(order=0, role="other", speaker="Agent", timestamp=stamp, content="a\nb", line=1)
    assert render_message(m) == "[2025-01-02 03:04:05] Agent (other): a\n  b"
    m = Message(order=0, role="other", speaker="", timestamp=None, content="preamble", line=1)
    assert render_message(m) == "unknown: preamble"
    m = Message(order=0, role="user", speaker="User", timestamp=None, content="", line=1)
    assert render_message(m) == "user:"


def long_conversation(n: int) -> list[Message]:
    base = datetime(2025, 5, 14, 9, 0, tzinfo=UTC)
    return [
        Message(
            order=i,
            role="user" if i % 2 == 0 else "assistant",
            speaker="User" if i % 2 == 0 else "Assistant",
            timestamp=base + timedelta(seconds=i),
            content=f"message number {i} " + "lorem ipsum dolor sit amet " * 8,
            line=i + 1,
        )
        for i in range(n)
    ]


def test_an_oversize_transcript_is_shortened_in_the_middle(server: FakeOpenAI, make) -> None:
    msgs = long_conversation(400)
    analyser = make(max_prompt_tokens=4000)
    out = analyser(inputs(msgs), Recorder().ctx)
    req = server.requests[0]
    user = req.body["messages"][1]["content"]
    omitted = out.metadata["omitted_messages"]
    assert out.metadata["truncated"] is True
    assert isinstance(omitted, int) and 300 < omitted < 400
    assert f"[... {omitted} messages omitted to fit the prompt budget ...]" in user
    assert user.count("message number") == 400 - omitted
    assert "message number 0 " in user and "message number 399 " in user  # start and end kept
    assert "Chat transcript (400 messages)" in user
    sent = sum(estimate_tokens(m["content"]) + 8 for m in req.body["messages"])
    assert sent <= 4000 - 800  # room is left for a repair turn within the budget


def test_a_huge_single_message_is_clipped(server: FakeOpenAI, make) -> None:
    msgs = messages("User: " + "x" * 200_000 + "END")
    out = make(max_prompt_tokens=4000)(inputs(msgs), Recorder().ctx)
    user = server.requests[0].body["messages"][1]["content"]
    assert out.metadata["truncated"] is True and out.metadata["clipped_messages"] == 1
    assert out.metadata["omitted_messages"] == 0
    assert "characters omitted ...]" in user and user.endswith("END")
    assert estimate_tokens(user) < 4000


@settings(max_examples=60, deadline=None)
@given(
    sizes=st.lists(st.integers(0, 3000), max_size=60),
    stamped=st.lists(st.booleans(), min_size=60, max_size=60),
    budget=st.integers(100, 5000),
)
def test_fit_transcript_stays_within_budget(
    sizes: list[int], stamped: list[bool], budget: int
) -> None:
    base = datetime(2025, 1, 1, tzinfo=UTC)
    msgs = [
        Message(
            order=i,
            role="user",
            speaker="User",
            timestamp=base if stamped[i] else None,
            content=f"m{i}:" + "é" * (size % 7) + "a" * size,
            line=i + 1,
        )
        for i, size in enumerate(sizes)
    ]
    t = fit_transcript(msgs, budget)
    assert estimate_tokens(t.text) + t.text.count("\n") + 1 <= budget or not msgs
    assert t.messages == len(msgs)
    kept = sum(1 for i in range(len(msgs)) if f"m{i}:" in t.text)
    assert kept + t.omitted == len(msgs)
    if t.omitted:
        assert f"[... {t.omitted} message" in t.text
    assert "1970" not in t.text


# ---------------------------------------------------------- response format
def test_json_schema_rejected_falls_back_to_json_mode_and_remembers(make) -> None:
    with FakeOpenAI(supports_json_schema=False) as srv:
        analyser = make(base_url=srv.base_url)
        rec = Recorder()
        out = analyser(inputs(), rec.ctx)
        assert [r.response_format for r in srv.requests] == ["json_schema", "json_object"]
        assert srv.sent[0].status == 400 and not srv.sent[0].paid
        system = srv.requests[1].body["messages"][0]["content"]
        assert "JSON Schema" in system and "json" in system.lower()
        assert out.metadata["response_format"] == "json_object"
        assert "not supported" in str(out.metadata["json_schema_rejected"])
        assert_paid_once(srv, rec)
        # the next session goes straight to JSON mode for that model
        analyser(inputs(), rec.ctx)
        assert [r.response_format for r in srv.requests][2:] == ["json_object"]
        # another model is tried with json_schema again
        analyser(inputs(model="gpt-4.1"), rec.ctx)
        assert [r.response_format for r in srv.requests][3:] == ["json_schema", "json_object"]
        assert_paid_once(srv, rec)


def test_json_mode_answers_are_validated_by_the_same_model(server: FakeOpenAI, make) -> None:
    server.script([reject_schema(), schema_invalid(), schema_invalid()])
    rec = Recorder()
    err = failure(make(), rec, inputs())
    assert [r.response_format for r in server.requests] == [
        "json_schema",
        "json_object",
        "json_object",
    ]
    assert err.error_type == "invalid_output" and "language" in err.message
    assert_paid_once(server, rec)


def test_code_fences_around_json_are_accepted() -> None:
    body = json.dumps(
        {
            "language": "EN",
            "sentiment": "NEUTRAL",
            "escalated": False,
            "forwarded_hr": False,
            "category": "ONBOARDING",
            "questions": [],
            "summary": "A short enough summary.",
        }
    )
    analysis, error = validate(f"```json\n{body}\n```")
    assert error == "" and analysis is not None and analysis.language == "en"
    assert validate("")[1] == "the answer was empty"
    assert "sentiment" in validate(body.replace("NEUTRAL", "MEH"))[1]


# -------------------------------------------------------------- repair
def test_invalid_json_gets_one_repair_and_both_answers_are_recorded(
    server: FakeOpenAI, make
) -> None:
    server.script([invalid_json(), ok()])
    rec = Recorder()
    out = make()(inputs(), rec.ctx)
    assert server.total == 2
    assert_paid_once(server, rec)
    assert [u.purpose for u in rec.usages] == ["analysis", "analysis-repair"]
    first, _ = server.paid_responses()
    assert rec.usages[0].response_text == first.content  # the invalid answer, kept
    repair = server.requests[1].body["messages"]
    assert [m["role"] for m in repair] == ["system", "user", "assistant", "user"]
    assert repair[2]["content"] == first.content
    assert "Invalid JSON" in repair[3]["content"]
    assert out.metadata["repaired"] is True and out.metadata["paid_calls"] == 2
    total = sum((u.cost_eur or Decimal(0)) for u in rec.usages)
    assert out.metadata["cost_eur"] == str(total)
    assert out.metadata["prompt_tokens"] == sum(u.prompt_tokens for u in rec.usages)


def test_a_second_invalid_answer_is_a_transient_failure_with_the_raw_output(
    server: FakeOpenAI, make
) -> None:
    server.script([schema_invalid(), content('{"language": "xx", "oops": 1}')])
    rec = Recorder()
    err = failure(make(), rec, inputs())
    # Retried with backoff like a 500 (the retry policy decides when to give up).
    assert (err.error_type, err.retryable) == ("invalid_output", True)
    assert "after one repair" in err.message and "oops" in err.message
    assert err.details["raw_output"] == '{"language": "xx", "oops": 1}'
    assert err.details["first_output"] == rec.usages[0].response_text
    assert server.total == 2
    assert_paid_once(server, rec)
    assert "sentiment" in server.requests[1].body["messages"][3]["content"]


def test_a_refusal_fails_without_retry(server: FakeOpenAI, make) -> None:
    server.script([refusal("I can't help with that.")])
    rec = Recorder()
    err = failure(make(), rec, inputs())
    assert (err.error_type, err.retryable) == ("refused", False)
    assert "I can't help with that." in err.message
    assert server.total == 1
    assert_paid_once(server, rec)
    assert rec.usages[0].response_text == "I can't help with that."


def test_a_refused_repair_is_a_refusal(server: FakeOpenAI, make) -> None:
    server.script([invalid_json(), refusal()])
    rec = Recorder()
    assert failure(make(), rec, inputs()).error_type == "refused"
    assert_paid_once(server, rec)


# ------------------------------------------------------- recorded responses
def recorded(text: str, model: str = "gpt-4o-mini") -> AIUsage:
    now = datetime.now(UTC)
    return AIUsage(
        provider="openai",
        model_requested=model,
        model_returned=f"{model}-2024-07-18",
        request_id="req_earlier",
        prompt_tokens=900,
        completion_tokens=80,
        cached_tokens=0,
        reasoning_tokens=0,
        total_tokens=980,
        cost_usd=Decimal("0.000183"),
        cost_eur=Decimal("0.00016836"),
        price_source="prices.json gpt-4o-mini 2024-07-18",
        response_text=text,
        requested_at=now,
        received_at=now,
    )


VALID = json.dumps(
    {
        "language": "nl",
        "sentiment": "NEGATIVE",
        "escalated": False,
        "forwarded_hr": True,
        "category": "SICK_LEAVE_RECOVERY",
        "questions": ["Who should I call when I am sick?"],
        "summary": "The user reported sick and was told whom to call.",
    }
)


def test_a_valid_recorded_response_is_used_without_a_call(server: FakeOpenAI, make) -> None:
    rec = Recorder()
    out = make()(inputs(recorded=recorded(VALID)), rec.ctx)
    assert server.total == 0 and rec.usages == []
    assert out.analysis == SessionAnalysis.model_validate_json(VALID)
    assert out.model == "gpt-4o-mini-2024-07-18"
    assert out.metadata["reused_recorded_response"] is True
    assert out.metadata["paid_calls"] == 0 and out.metadata["cost_eur"] == "0.00016836"
    assert out.metadata["request_id"] == "req_earlier"


def test_an_invalid_recorded_response_gets_only_the_repair_call(server: FakeOpenAI, make) -> None:
    rec = Recorder()
    out = make()(inputs(recorded=recorded('{"language": "nl"')), rec.ctx)
    assert server.total == 1
    assert_paid_once(server, rec)
    assert rec.usages[0].purpose == "analysis-repair"
    turns = server.requests[0].body["messages"]
    assert turns[2] == {"role": "assistant", "content": '{"language": "nl"'}
    assert out.metadata["reused_recorded_response"] is True and out.metadata["repaired"] is True


def test_retries_never_pay_twice_for_one_answer(server: FakeOpenAI, make) -> None:
    """Attempt 1: invalid answer (paid), then the repair is rate-limited. Attempt 2 starts from
    the recorded answer, as `unconsumed_response` hands it over, and only repairs."""
    server.script([invalid_json(), rate_limited("3"), ok()])
    analyser = make()
    rec = Recorder()
    err = failure(analyser, rec, inputs())
    assert (err.error_type, err.retryable, err.retry_after) == ("rate_limited", True, 3.0)
    assert len(rec.usages) == 1
    out = analyser(inputs(recorded=rec.usages[-1]), rec.ctx)
    assert out.metadata["repaired"] is True
    assert server.total == 3
    assert_paid_once(server, rec)
    assert [u.purpose for u in rec.usages] == ["analysis", "analysis-repair"]
    # attempt 2 re-sent only the repair that was refused with 429; the answer was not re-bought
    bodies = [json.dumps(r.body["messages"]) for r in server.requests]
    assert bodies[1] == bodies[2] and bodies[0] != bodies[1]


# -------------------------------------------------------------- errors
def test_429_retry_after_header(server: FakeOpenAI, make) -> None:
    server.script([rate_limited("7")])
    err = failure(make(), Recorder(), inputs())
    assert (err.error_type, err.retryable, err.retry_after) == ("rate_limited", True, 7.0)
    assert "Rate limit reached" in err.message


def test_429_rate_limit_reset_headers(server: FakeOpenAI, make) -> None:
    headers = {
        "x-ratelimit-remaining-requests": "12",
        "x-ratelimit-reset-requests": "20ms",
        "x-ratelimit-remaining-tokens": "0",
        "x-ratelimit-reset-tokens": "6m0s",
    }
    server.script([Reply("rate_limited", retry_after=None, headers=headers)])
    err = failure(make(), Recorder(), inputs())
    assert err.retry_after == 360.0


def test_429_insufficient_quota_is_not_retried(server: FakeOpenAI, make) -> None:
    server.script([Reply("quota")])
    err = failure(make(), Recorder(), inputs())
    assert (err.error_type, err.retryable) == ("quota_exceeded", False)


def test_5xx_is_retryable_with_its_retry_after(server: FakeOpenAI, make) -> None:
    server.script([server_error(503, retry_after="4")])
    rec = Recorder()
    err = failure(make(), rec, inputs())
    assert (err.error_type, err.retryable, err.retry_after) == ("server_error", True, 4.0)
    assert rec.usages == []


def test_a_slow_answer_times_out_and_is_not_recorded(server: FakeOpenAI, make) -> None:
    server.script([ok(latency=1.0)])
    rec = Recorder()
    started = time.monotonic()
    err = failure(make(timeout=0.3), rec, inputs())
    assert time.monotonic() - started < 0.9
    assert (err.error_type, err.retryable) == ("timeout", True)
    assert_paid_once(server, rec)  # the server noticed the client had gone: nothing paid
    assert server.abandoned == 1 and rec.usages == []


def test_connection_errors_are_retryable(make) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    err = failure(make(base_url=f"http://127.0.0.1:{port}/v1"), Recorder(), inputs())
    assert (err.error_type, err.retryable) == ("connection_error", True)


@pytest.mark.parametrize(
    ("reply", "error_type", "needle"),
    [
        (context_length(), "context_length", "maximum context length is 128000"),
        (
            Reply("bad_request", message="Unsupported parameter: 'temperature'"),
            "bad_request",
            "Unsupported parameter",
        ),
        (Reply("unauthorized"), "auth_error", "OPENAI_API_KEY"),
        (Reply("not_found"), "model_not_found", "does not exist"),
    ],
)
def test_client_errors_fail_for_good_with_the_reason(
    server: FakeOpenAI, make, reply: Reply, error_type: str, needle: str
) -> None:
    server.script([reply])
    rec = Recorder()
    err = failure(make(), rec, inputs())
    assert (err.error_type, err.retryable) == (error_type, False)
    assert needle in err.message
    assert server.total == 1 and rec.usages == []


def test_a_wrong_key_is_an_auth_error(server: FakeOpenAI, make) -> None:
    err = failure(make(api_key="sk-wrong"), Recorder(), inputs())
    assert err.error_type == "auth_error" and "Incorrect API key" in err.message


def test_a_2xx_that_is_not_a_completion_is_retried_and_not_recorded(
    server: FakeOpenAI, make
) -> None:
    server.script([Reply("not_json")])
    rec = Recorder()
    err = failure(make(), rec, inputs())
    assert (err.error_type, err.retryable) == ("bad_response", True)
    assert rec.usages == []


def test_retry_after_parsing() -> None:
    assert parse_duration("1s") == 1.0
    assert parse_duration("6m0s") == 360.0
    assert parse_duration("20ms") == pytest.approx(0.02)
    assert parse_duration("1h2m3.5s") == 3723.5
    assert parse_duration("2.5") == 2.5
    assert parse_duration("soon") is None and parse_duration("5x") is None
    assert retry_after_seconds({"retry-after-ms": "1500", "retry-after": "9"}) == 1.5
    now = datetime(2026, 1, 1, 12, 0, 0, tzinfo=UTC)
    assert retry_after_seconds({"retry-after": "Thu, 01 Jan 2026 12:00:30 GMT"}, now) == 30.0
    both = {"x-ratelimit-reset-requests": "1s", "x-ratelimit-reset-tokens": "3s"}
    assert retry_after_seconds(both) == 3.0
    assert retry_after_seconds({}) is None


# ------------------------------------------------------------ usage & cost
@pytest.mark.parametrize(
    ("requested", "returned", "prompt", "cached", "completion"),
    [
        ("gpt-4o", "gpt-4o-2024-08-06", 5000, 4096, 300),
        ("gpt-4.1", "gpt-4.1-2025-04-14", 1234, 1000, 77),
        ("gpt-4.1-nano", "gpt-4.1-nano", 10_000, 0, 10_000),
    ],
)
def test_costs_are_exact_for_dated_and_plain_names(
    server: FakeOpenAI,
    make,
    requested: str,
    returned: str,
    prompt: int,
    cached: int,
    completion: int,
) -> None:
    server.script(
        [
            ok(
                model=returned,
                prompt_tokens=prompt,
                cached_tokens=cached,
                completion_tokens=completion,
            )
        ]
    )
    rec = Recorder()
    make(eur_rate=Decimal("0.9"))(inputs(model=requested), rec.ctx)
    (usage,) = rec.usages
    price = PRICES.lookup(requested, datetime.now(UTC).date())
    assert price is not None
    usd = (
        (prompt - cached) * price.input + cached * price.cached_input + completion * price.output
    ) / Decimal(1_000_000)
    assert usage.cost_usd == usd
    assert usage.cost_eur == usd * Decimal("0.9")
    assert usage.model_returned == returned
    assert usage.price_source == price.source


def test_an_unknown_model_costs_none_with_a_warning(
    server: FakeOpenAI, make, caplog: pytest.LogCaptureFixture
) -> None:
    server.script([ok(model="llama3.1:8b"), ok(model="llama3.1:8b")])
    rec = Recorder()
    analyser = make()
    with caplog.at_level(logging.WARNING, logger="processors.ai.openai_client"):
        out = analyser(inputs(model="llama3.1:8b"), rec.ctx)
        analyser(inputs(model="llama3.1:8b"), rec.ctx)
    assert [u.cost_eur for u in rec.usages] == [None, None]
    assert [u.cost_usd for u in rec.usages] == [None, None]
    assert rec.usages[0].price_source == "unknown model llama3.1:8b"
    assert rec.usages[0].prompt_tokens > 0  # tokens are still recorded
    assert out.metadata["cost_eur"] is None
    warnings = [r for r in caplog.records if "no price for model llama3.1:8b" in r.getMessage()]
    assert len(warnings) == 1  # once per model, not per call


def test_a_response_without_usage_is_still_recorded(server: FakeOpenAI, make) -> None:
    server.script([Reply("no_usage")])
    rec = Recorder()
    make()(inputs(), rec.ctx)
    (usage,) = rec.usages
    assert (usage.prompt_tokens, usage.total_tokens, usage.cost_eur) == (0, 0, None)
    assert usage.price_source == "no usage in the response"
    assert usage.response_text


# ------------------------------------------------------- limits & concurrency
def test_concurrent_workers_are_not_serialised_and_all_paid_calls_recorded(make) -> None:
    with FakeOpenAI(latency=0.2) as srv:
        analyser = make(base_url=srv.base_url)
        rec = Recorder()
        started = time.monotonic()
        with ThreadPoolExecutor(32) as pool:
            outs = list(pool.map(lambda _: analyser(inputs(), rec.ctx), range(64)))
        elapsed = time.monotonic() - started
        assert len(outs) == 64 and all(o.analysis.language == "nl" for o in outs)
        assert srv.max_active >= 24
        assert elapsed < 64 * 0.2 / 4  # serialised would take 12.8 s; parallel about 0.5 s
        assert_paid_once(srv, rec)


def test_the_shared_limiter_holds_for_all_workers(make) -> None:
    with FakeOpenAI(latency=0.02) as srv:
        limiter = RateLimiter({"gpt-4o-mini": ModelLimits(requests_per_minute=1200)})  # 20/s
        analyser = make(base_url=srv.base_url, limiter=limiter, rate_limit_max_wait=5.0)
        rec = Recorder()
        started = time.monotonic()
        with ThreadPoolExecutor(16) as pool:
            list(pool.map(lambda _: analyser(inputs(), rec.ctx), range(30)))
        elapsed = time.monotonic() - started
        # 30 requests at 20/s need at least 29 gaps of 50 ms
        assert elapsed >= 29 * 0.05 - 0.05
        assert elapsed < 3.0
        assert_paid_once(srv, rec)


def test_a_limiter_slot_too_far_away_hands_the_claim_back_unused(server: FakeOpenAI, make) -> None:
    limiter = RateLimiter({"gpt-4o-mini": ModelLimits(requests_per_minute=2)})  # every 30 s
    analyser = make(limiter=limiter, rate_limit_max_wait=0.2)
    analyser(inputs(), Recorder().ctx)
    rec = Recorder()
    with pytest.raises(WorkReleased, match="rate-limit slot"):
        analyser(inputs(), rec.ctx)
    assert server.total == 1 and rec.usages == []


def test_a_server_429_holds_back_the_other_workers(server: FakeOpenAI, make) -> None:
    limiter = RateLimiter({}, ModelLimits(requests_per_minute=60_000))
    analyser = make(limiter=limiter)
    server.script([rate_limited("0.4"), ok()])
    assert failure(analyser, Recorder(), inputs()).retry_after == 0.4
    started = time.monotonic()
    out = analyser(inputs(), Recorder().ctx)
    assert time.monotonic() - started >= 0.3
    assert out.metadata["rate_limit_wait_s"] >= 0.3


# --------------------------------------------------------------- config
def test_config_from_settings(tmp_path) -> None:
    prices = tmp_path / "p.json"
    prices.write_text(
        '{"prices": [{"model": "x", "input": "1", "output": "2", "valid_from": "2024-01-01"}]}'
    )
    ai = AISettings.from_env(
        {
            "OPENAI_BASE_URL": "http://127.0.0.1:9/v1",
            "LIVEDASH_AI_MODEL": "gpt-4.1-mini",
            "LIVEDASH_AI_TIMEOUT": "12",
            "LIVEDASH_AI_MAX_PROMPT_TOKENS": "8000",
            "LIVEDASH_USD_EUR_RATE": "0.85",
            "LIVEDASH_PRICES_FILE": str(prices),
            "LIVEDASH_AI_RATE_LIMITS": "*=600/150000",
        }
    )
    cfg = openai_config(ai, "sk-1")
    assert (cfg.api_key, cfg.base_url, cfg.default_model) == (
        "sk-1",
        "http://127.0.0.1:9/v1",
        "gpt-4.1-mini",
    )
    assert (cfg.timeout, cfg.max_prompt_tokens, cfg.eur_rate) == (12.0, 8000, Decimal("0.85"))
    assert cfg.prices.models == ["x"]
    assert cfg.limiter is not None
    assert cfg.limiter.limits_for("any") == ModelLimits(600, 150000)
    with pytest.raises(ValidationError):  # frozen: one config, shared by every worker
        cfg.timeout = 1.0  # type: ignore[misc]
    defaults = openai_config(AISettings(), "sk-1")
    # The CLI's defaults (from the stage timeout) give way to an explicit setting.
    assert openai_config(AISettings(), "sk-1", timeout=99.0).timeout == 99.0
    explicit = AISettings.from_env({"LIVEDASH_AI_TIMEOUT": "7"})
    assert openai_config(explicit, "sk-1", timeout=99.0).timeout == 7.0
    assert defaults.default_model == "gpt-4o-mini" and defaults.limiter is None
    assert defaults.eur_rate == Decimal("0.92") and defaults.max_prompt_tokens == 12000
    with pytest.raises(ValueError, match="OPENAI_API_KEY") as empty:
        openai_config(AISettings(), "")
    assert config_problem(empty.value) == (
        "OPENAI_API_KEY is empty: set it, or use the offline analyser"
    )
    with pytest.raises(ValueError, match="no room"):
        OpenAIAnalyserConfig(api_key="k", max_prompt_tokens=1000)
    assert transcript_budget(defaults) > 9000
    assert "json" in system_prompt("json_object").lower()


def test_a_bad_setting_waits_until_the_openai_analyser_is_built() -> None:
    """Parsing never fails a command; the first problem is the error when OpenAI is chosen."""
    ai = AISettings.from_env(
        {"LIVEDASH_AI_TIMEOUT": "soon", "LIVEDASH_AI_RATE_LIMITS": "gpt-4o", "X": "1"}
    )
    assert ai.problems == (
        "LIVEDASH_AI_TIMEOUT='soon' is not a number",
        "bad rate limit 'gpt-4o': use MODEL=RPM/TPM, e.g. gpt-4o=500/30000",
    )
    assert ai.timeout is None and ai.rate_limits is None
    with pytest.raises(ValueError) as bad:
        openai_config(ai, "sk-1")
    assert config_problem(bad.value) == "LIVEDASH_AI_TIMEOUT='soon' is not a number"
