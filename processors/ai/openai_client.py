"""The AI_ANALYSIS analyser for OpenAI and OpenAI-compatible servers (§6, §14 items 16–27).

`OpenAIAnalyser(config)` is a `processors.stages.analysis.Analyser`:
``(inputs, ctx) -> AnalysisOutput``. Its configuration is `processors.ai.config`, what it sends
(schema, prompt text, transcript fitting) is `processors.ai.prompt`; this module is the client.
One instance (one `openai.OpenAI` client, thread-safe) serves every worker thread.

What it does for one attempt:

1. Renders the transcript from the parsed messages with their real timestamps (a missing one is
   left out, never 1970) and fits it into a token budget: an oversize transcript loses messages in
   the middle, replaced by a visible marker, and the output's metadata says how many.
2. When the attempt inherits a paid response that was never turned into an analysis
   (``inputs.recorded_response``), it validates that first and pays for nothing when it is valid.
3. Otherwise asks the model for structured output: a strict JSON schema generated from
   `SessionAnalysis`; a server that rejects ``json_schema`` gets JSON mode instead (remembered per
   model for the process), validated by the same model.
4. Hands every 2xx response to ``ctx.record_usage`` at once, before parsing or validating, with
   tokens, cost (exact Decimal, from the price table; None when the model is unknown) and the raw
   text, so a paid answer is recorded once whatever happens next.
5. An answer that is not valid JSON or fails validation gets one repair request (the error goes
   back to the model); a second invalid answer fails the attempt as a transient fault (retried
   with backoff, like a 500, until the retry policy gives up), with the raw output kept.
6. Before each request its intent is stored (``ctx.before_request``): a request whose answer
   never reaches the store still shows, with its estimated cost. Waiting for a client-side
   rate-limit slot that does not come hands the claim back unstarted (no attempt used).

The client's own retries are off (``max_retries=0``): every failure becomes a classified
`StageError` and the daemon's retry policy decides, so every attempt is in the history.
"""

from __future__ import annotations

import logging
import re
import threading
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any, cast

import openai
from pydantic import ValidationError

from domain.analysis import SessionAnalysis
from domain.payloads import AIRequestIntent, AIUsage
from processors.ai.config import OpenAIAnalyserConfig, transcript_budget
from processors.ai.pricing import cost, priced
from processors.ai.prompt import (
    JSON_OBJECT,
    JSON_SCHEMA,
    MESSAGE_OVERHEAD_TOKENS,
    REPAIR_PROMPT,
    Transcript,
    clip,
    estimate_tokens,
    fit_transcript,
    response_format,
    system_prompt,
    user_prompt,
)
from processors.ai.ratelimit import RateLimitWait
from processors.net.retry_after import parse_duration as parse_duration  # re-exported
from processors.net.retry_after import retry_after_seconds
from processors.stages.analysis import AnalysisInputs, AnalysisOutput
from processors.stages.base import StageError, WorkContext, WorkReleased

log = logging.getLogger(__name__)

PROVIDER = "openai"


# ------------------------------------------------------------------ analyser
@dataclass
class _Reply:
    usage: AIUsage
    text: str | None
    refusal: str | None
    finish_reason: str | None
    mode: str


@dataclass
class _Attempt:
    model: str
    transcript: Transcript
    usages: list[AIUsage] = field(default_factory=list)
    paid_calls: int = 0
    waited: float = 0.0
    mode: str = JSON_SCHEMA
    fallback_reason: str | None = None


class OpenAIAnalyser:
    """The `Analyser` for the OpenAI chat-completions API; one instance for all workers."""

    def __init__(self, config: OpenAIAnalyserConfig, client: openai.OpenAI | None = None) -> None:
        self.config = config
        self.client = client or openai.OpenAI(
            api_key=config.api_key,
            base_url=config.base_url,
            max_retries=0,
            timeout=openai.Timeout(config.timeout, connect=min(10.0, config.timeout)),
        )
        self._lock = threading.Lock()
        self._json_object_models: dict[str, str] = {}
        """Models whose server rejected ``json_schema``, with the server's reason."""
        self._warned: set[str] = set()

    def close(self) -> None:
        self.client.close()

    # ------------------------------------------------------------- public
    def __call__(self, inputs: AnalysisInputs, ctx: WorkContext) -> AnalysisOutput:
        model = inputs.model or self.config.default_model
        with self._lock:
            mode = JSON_OBJECT if model in self._json_object_models else JSON_SCHEMA
        transcript = fit_transcript(inputs.messages, transcript_budget(self.config))
        attempt = _Attempt(model, transcript, mode=mode)

        recorded = inputs.recorded_response
        if recorded is not None:
            previous = recorded.response_text or ""
            attempt.usages.append(recorded)
            analysis, error = validate(previous)
            if analysis is not None:
                return self._output(attempt, analysis, recorded, reused=True, repaired=False)
        else:
            reply = self._request(attempt, [], ctx, "analysis")
            _raise_if_refused(reply)
            previous = reply.text or ""
            analysis, error = validate(previous)
            if analysis is not None:
                return self._output(attempt, analysis, reply.usage, reused=False, repaired=False)

        repair = [
            {"role": "assistant", "content": clip(previous, self.config.max_output_tokens)},
            {"role": "user", "content": REPAIR_PROMPT.format(error=error)},
        ]
        reply = self._request(attempt, repair, ctx, "analysis-repair")
        _raise_if_refused(reply)
        analysis, second_error = validate(reply.text or "")
        if analysis is not None:
            return self._output(
                attempt, analysis, reply.usage, reused=recorded is not None, repaired=True
            )
        raise StageError(
            "invalid_output",
            f"the model's answer failed validation after one repair request: {second_error}",
            retryable=True,
            details={"raw_output": reply.text, "first_output": previous, "first_error": error},
        )

    # ------------------------------------------------------------ requests
    def _request(
        self, attempt: _Attempt, turns: list[dict[str, Any]], ctx: WorkContext, purpose: str
    ) -> _Reply:
        """One request, in JSON mode again when the server rejects ``json_schema``."""
        try:
            try:
                return self._send(attempt, turns, ctx, purpose)
            except (openai.BadRequestError, openai.UnprocessableEntityError) as e:
                if attempt.mode != JSON_SCHEMA or not _rejects_json_schema(e):
                    raise
                self._fall_back(attempt, _server_message(e))
            return self._send(attempt, turns, ctx, purpose)
        except openai.OpenAIError as e:
            raise _classify(e, attempt.model) from None

    def _fall_back(self, attempt: _Attempt, reason: str) -> None:
        with self._lock:
            first = attempt.model not in self._json_object_models
            self._json_object_models[attempt.model] = reason
        if first:
            log.warning(
                "%s: the server rejected json_schema (%s); using JSON mode for this model",
                attempt.model,
                reason,
            )
        attempt.mode = JSON_OBJECT
        attempt.fallback_reason = reason

    def _send(
        self, attempt: _Attempt, turns: list[dict[str, Any]], ctx: WorkContext, purpose: str
    ) -> _Reply:
        """One HTTP request; the usage of a 2xx answer is recorded before anything else."""
        cfg = self.config
        messages: list[dict[str, Any]] = [
            {"role": "system", "content": system_prompt(attempt.mode)},
            {"role": "user", "content": user_prompt(attempt.transcript)},
            *turns,
        ]
        estimate = (
            sum(estimate_tokens(str(m["content"])) + MESSAGE_OVERHEAD_TOKENS for m in messages)
            + cfg.max_output_tokens
        )
        limiter = cfg.limiter
        if limiter is not None:
            try:
                admission = limiter.acquire(
                    attempt.model, estimate, max_wait=cfg.rate_limit_max_wait
                )
            except RateLimitWait as e:
                if not attempt.paid_calls:  # nothing ran yet: hand the claim back unused
                    raise WorkReleased(f"no client-side rate-limit slot: {e}") from None
                raise StageError(
                    "rate_limited", f"client-side limit: {e}", True, e.retry_after
                ) from None
            attempt.waited += admission.waited
        cap = cfg.max_output_tokens
        client_request_id = uuid.uuid4().hex
        try:
            ctx.before_request(self._intent(attempt, purpose, client_request_id, estimate))
        except WorkReleased as e:
            if limiter is not None:
                limiter.settle(attempt.model, estimate, 0)
            if attempt.paid_calls:  # a paid answer came already: this attempt did run
                raise StageError("interrupted", f"not sent: {e}", True, 0.0) from None
            raise
        requested_at = cfg.clock()
        try:
            raw = self.client.chat.completions.with_raw_response.create(
                model=attempt.model,
                messages=cast(Any, messages),
                response_format=cast(Any, response_format(attempt.mode)),
                temperature=openai.omit if cfg.temperature is None else cfg.temperature,
                max_completion_tokens=cap
                if cfg.max_tokens_param == "max_completion_tokens"
                else openai.omit,
                max_tokens=cap if cfg.max_tokens_param == "max_tokens" else openai.omit,
            )
        except openai.APIStatusError as e:
            if limiter is not None:
                limiter.settle(attempt.model, estimate, 0)
                if e.status_code == 429:
                    limiter.penalize(attempt.model, retry_after_seconds(e.response.headers) or 1)
            raise
        received_at = cfg.clock()
        try:
            completion = raw.parse()
            choices = list(completion.choices or [])
        except Exception as e:  # a 2xx body that is not a completion (a proxy page, say)
            if limiter is not None:
                limiter.settle(attempt.model, estimate, 0)
            raise StageError(
                "bad_response",
                f"the server's 2xx answer is not a chat completion ({type(e).__name__})",
                retryable=True,
            ) from None
        message = choices[0].message if choices else None
        text = message.content if message is not None else None
        refusal = getattr(message, "refusal", None) if message is not None else None
        usage = self._usage(
            attempt.model,
            completion,
            raw.headers.get("x-request-id") or getattr(completion, "id", None),
            text if text is not None else refusal,
            requested_at,
            received_at,
            purpose,
            client_request_id,
        )
        ctx.record_usage(usage)  # paid: on record before it is judged
        attempt.paid_calls += 1
        attempt.usages.append(usage)
        if limiter is not None:
            limiter.settle(attempt.model, estimate, usage.total_tokens)
        return _Reply(
            usage,
            text,
            refusal,
            choices[0].finish_reason if choices else None,
            attempt.mode,
        )

    def _usage(
        self,
        requested: str,
        completion: Any,
        request_id: str | None,
        response_text: str | None,
        requested_at: datetime,
        received_at: datetime,
        purpose: str,
        client_request_id: str | None = None,
    ) -> AIUsage:
        returned = getattr(completion, "model", None) or None
        u = getattr(completion, "usage", None)
        prompt = int(getattr(u, "prompt_tokens", 0) or 0)
        completion_tokens = int(getattr(u, "completion_tokens", 0) or 0)
        cached = int(getattr(getattr(u, "prompt_tokens_details", None), "cached_tokens", 0) or 0)
        details = getattr(u, "completion_tokens_details", None)
        reasoning = int(getattr(details, "reasoning_tokens", 0) or 0)
        total = int(getattr(u, "total_tokens", 0) or 0) or prompt + completion_tokens
        priced_as = returned or requested
        usd: Decimal | None = None
        eur: Decimal | None = None
        if u is None:
            source = "no usage in the response"
        else:
            price = self.config.prices.lookup(priced_as, received_at.date())
            if price is None:
                self._warn_unknown(priced_as)
            usd, eur, source = priced(
                price, priced_as, prompt, cached, completion_tokens, self.config.eur_rate
            )
        return AIUsage(
            provider=PROVIDER,
            model_requested=requested,
            model_returned=returned,
            request_id=request_id,
            prompt_tokens=prompt,
            completion_tokens=completion_tokens,
            cached_tokens=cached,
            reasoning_tokens=reasoning,
            total_tokens=total,
            cost_usd=usd,
            cost_eur=eur,
            price_source=source[:255],
            response_text=response_text,
            requested_at=requested_at,
            received_at=received_at,
            purpose=purpose,
            client_request_id=client_request_id,
        )

    def _intent(
        self, attempt: _Attempt, purpose: str, client_request_id: str, estimate: int
    ) -> AIRequestIntent:
        """What is about to be sent, priced at its upper bound: the estimated prompt and the
        whole output allowance."""
        cfg = self.config
        now = cfg.clock()
        prompt = max(0, estimate - cfg.max_output_tokens)
        price = cfg.prices.lookup(attempt.model, now.date())
        eur: Decimal | None = None
        if price is not None:
            try:
                _usd, eur = cost(price, prompt, 0, cfg.max_output_tokens, cfg.eur_rate)
            except ValueError:
                eur = None
        return AIRequestIntent(
            client_request_id=client_request_id,
            provider=PROVIDER,
            model=attempt.model,
            purpose=purpose,
            prompt_tokens_estimated=prompt,
            max_output_tokens=cfg.max_output_tokens,
            cost_eur_estimated=eur,
            sent_at=now,
        )

    def _warn_unknown(self, model: str) -> None:
        with self._lock:
            if model in self._warned:
                return
            self._warned.add(model)
        log.warning(
            "no price for model %s in %s: its cost is recorded as unknown",
            model,
            self.config.prices.label,
        )

    # -------------------------------------------------------------- output
    def _output(
        self,
        attempt: _Attempt,
        analysis: SessionAnalysis,
        final: AIUsage,
        reused: bool,
        repaired: bool,
    ) -> AnalysisOutput:
        costs = [u.cost_eur for u in attempt.usages if u.cost_eur is not None]
        cost_known = len(costs) == len(attempt.usages)
        metadata: dict[str, object] = {
            "model_requested": attempt.model,
            "prompt_tokens": sum(u.prompt_tokens for u in attempt.usages),
            "completion_tokens": sum(u.completion_tokens for u in attempt.usages),
            "cost_eur": str(sum(costs, Decimal(0))) if cost_known else None,
            "paid_calls": attempt.paid_calls,
            "truncated": attempt.transcript.truncated,
            "omitted_messages": attempt.transcript.omitted,
            "clipped_messages": attempt.transcript.clipped,
            "response_format": attempt.mode,
            "reused_recorded_response": reused,
            "repaired": repaired,
            "request_id": final.request_id,
        }
        if attempt.fallback_reason is not None:
            metadata["json_schema_rejected"] = attempt.fallback_reason[:200]
        if attempt.waited:
            metadata["rate_limit_wait_s"] = round(attempt.waited, 3)
        return AnalysisOutput(
            analysis=analysis,
            provider=PROVIDER,
            model=final.model_returned or final.model_requested,
            prompt_version=self.config.prompt_version,
            usage=None,  # every usage went to ctx.record_usage as it arrived
            metadata=metadata,
        )


# ------------------------------------------------------------------ helpers
_FENCE = re.compile(r"^```(?:json)?\s*(?P<body>.*?)\s*```$", re.DOTALL | re.IGNORECASE)


def validate(text: str) -> tuple[SessionAnalysis | None, str]:
    """(analysis, "") or (None, what is wrong), for the repair request and the failure."""
    body = text.strip()
    fenced = _FENCE.match(body)
    if fenced:
        body = fenced["body"]
    if not body:
        return None, "the answer was empty"
    try:
        return SessionAnalysis.model_validate_json(body), ""
    except ValidationError as e:
        problems = []
        for err in e.errors(include_url=False)[:8]:
            where = ".".join(str(p) for p in err["loc"]) or "answer"
            problems.append(f"{where}: {err['msg']}")
        return None, "; ".join(problems)[:1000]


def _raise_if_refused(reply: _Reply) -> None:
    if reply.refusal:
        raise StageError("refused", f"the model refused: {reply.refusal[:300]}", retryable=False)
    if reply.finish_reason == "content_filter":
        raise StageError(
            "refused", "the answer was withheld by the content filter", retryable=False
        )


def _server_message(e: openai.APIStatusError) -> str:
    body = e.body
    if isinstance(body, dict):
        inner = body.get("error", body)
        if isinstance(inner, dict) and inner.get("message"):
            return str(inner["message"])
        if isinstance(inner, str):
            return inner
    return e.message


def _rejects_json_schema(e: openai.APIStatusError) -> bool:
    """A 400/422 about the response format: the server does not do strict JSON schemas."""
    text = f"{_server_message(e)} {e.param or ''}".lower()
    return "json_schema" in text or "response_format" in text


def _classify(e: openai.OpenAIError, model: str) -> StageError:
    if isinstance(e, openai.APITimeoutError):
        return StageError("timeout", "the model did not answer in time", retryable=True)
    if isinstance(e, openai.APIConnectionError):
        return StageError("connection_error", f"cannot reach the server: {e}", retryable=True)
    if not isinstance(e, openai.APIStatusError):
        return StageError("internal_error", f"{type(e).__name__}: {e}", retryable=True)
    status = e.status_code
    message = _server_message(e)[:500]
    rid = f" (request {e.request_id})" if e.request_id else ""
    headers = e.response.headers
    if status == 429:
        if e.code == "insufficient_quota":
            return StageError(
                "quota_exceeded",
                f"{message}{rid}: add credit or raise the limit, then retry the failed sessions",
                retryable=False,
            )
        return StageError("rate_limited", f"{message}{rid}", True, retry_after_seconds(headers))
    if status >= 500 or status in (408, 409):
        return StageError(
            "server_error", f"HTTP {status}: {message}{rid}", True, retry_after_seconds(headers)
        )
    if status == 401:
        return StageError(
            "auth_error",
            f"{message}{rid}: check OPENAI_API_KEY (and OPENAI_BASE_URL for another server)",
            retryable=False,
        )
    if status == 403:
        return StageError("permission_denied", f"{message}{rid}", retryable=False)
    if status == 404:
        return StageError(
            "model_not_found",
            f"{message}{rid}: check the company's AI model or LIVEDASH_AI_MODEL ({model})",
            retryable=False,
        )
    if e.code == "context_length_exceeded" or "context length" in message.lower():
        return StageError(
            "context_length",
            f"{message}{rid}: lower LIVEDASH_AI_MAX_PROMPT_TOKENS for {model}",
            retryable=False,
        )
    return StageError("bad_request", f"HTTP {status}: {message}{rid}", retryable=False)
