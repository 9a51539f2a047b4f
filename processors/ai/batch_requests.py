"""What goes into a Batch API file and what comes back: lines, intents, usages, results.

A batch line is the same chat-completions request the OpenAI analyser sends for a first
attempt (same prompt, same strict JSON schema, same transcript fitting), addressed by a
``custom_id`` that is also the request intent's ``client_request_id``. Costs are at the model's
batch price (`Price.batch`), and the price source says so.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from domain.payloads import AIRequestIntent, AIUsage
from domain.transcript import Message
from processors.ai.config import OpenAIAnalyserConfig, transcript_budget
from processors.ai.pricing import Price, cost, priced
from processors.ai.prompt import (
    JSON_SCHEMA,
    MESSAGE_OVERHEAD_TOKENS,
    Transcript,
    estimate_tokens,
    fit_transcript,
    response_format,
    system_prompt,
    user_prompt,
)

ENDPOINT = "/v1/chat/completions"
PURPOSE = "analysis-batch"
PROVIDER = "openai"


@dataclass(frozen=True)
class Line:
    custom_id: str
    body: dict[str, Any]
    prompt_tokens_estimated: int
    transcript: Transcript

    def jsonl(self) -> str:
        return json.dumps(
            {"custom_id": self.custom_id, "method": "POST", "url": ENDPOINT, "body": self.body},
            separators=(",", ":"),
        )


def build_line(
    cfg: OpenAIAnalyserConfig, model: str, messages: list[Message], custom_id: str
) -> Line:
    transcript = fit_transcript(messages, transcript_budget(cfg))
    chat = [
        {"role": "system", "content": system_prompt(JSON_SCHEMA)},
        {"role": "user", "content": user_prompt(transcript)},
    ]
    prompt = sum(estimate_tokens(m["content"]) + MESSAGE_OVERHEAD_TOKENS for m in chat)
    body: dict[str, Any] = {
        "model": model,
        "messages": chat,
        "response_format": response_format(JSON_SCHEMA),
        cfg.max_tokens_param: cfg.max_output_tokens,
    }
    if cfg.temperature is not None:
        body["temperature"] = cfg.temperature
    return Line(custom_id, body, prompt, transcript)


def file_content(lines: list[Line]) -> tuple[bytes, str]:
    """The JSONL file and its SHA-256."""
    data = "".join(line.jsonl() + "\n" for line in lines).encode("utf-8")
    return data, hashlib.sha256(data).hexdigest()


def batch_price(cfg: OpenAIAnalyserConfig, model: str, at: datetime) -> Price | None:
    price = cfg.prices.lookup(model, at.date())
    return price.batch() if price is not None else None


def intent(cfg: OpenAIAnalyserConfig, line: Line, model: str, now: datetime) -> AIRequestIntent:
    """The request's upper bound at the batch price: the estimated prompt and all the output."""
    price = batch_price(cfg, model, now)
    eur: Decimal | None = None
    if price is not None:
        _usd, eur = cost(
            price, line.prompt_tokens_estimated, 0, cfg.max_output_tokens, cfg.eur_rate
        )
    return AIRequestIntent(
        client_request_id=line.custom_id,
        provider=PROVIDER,
        model=model,
        purpose=PURPOSE,
        prompt_tokens_estimated=line.prompt_tokens_estimated,
        max_output_tokens=cfg.max_output_tokens,
        cost_eur_estimated=eur,
        sent_at=now,
    )


@dataclass(frozen=True)
class Result:
    """One line of the output or error file."""

    custom_id: str
    status_code: int | None
    body: dict[str, Any] | None
    request_id: str | None
    error: str | None

    @property
    def ok(self) -> bool:
        return self.status_code == 200 and isinstance(self.body, dict)


def parse_results(*texts: str) -> dict[str, Result]:
    """The output and error files' lines by custom_id (a line that is not JSON is skipped: its
    request counts as missing and is retried)."""
    found: dict[str, Result] = {}
    for text in texts:
        for raw in text.splitlines():
            try:
                line = json.loads(raw)
            except ValueError:
                continue
            if not isinstance(line, dict) or not isinstance(line.get("custom_id"), str):
                continue
            response = line.get("response") if isinstance(line.get("response"), dict) else None
            error = line.get("error")
            message = None
            if isinstance(error, dict):
                message = f"{error.get('code')}: {error.get('message')}"
            body = response.get("body") if response else None
            status = response.get("status_code") if response else None
            if message is None and status != 200 and isinstance(body, dict):
                inner = body.get("error")
                message = (
                    f"HTTP {status}: {inner.get('message') if isinstance(inner, dict) else inner}"
                )
            found[line["custom_id"]] = Result(
                line["custom_id"],
                status if isinstance(status, int) else None,
                body if isinstance(body, dict) else None,
                response.get("request_id") if response else None,
                message,
            )
    return found


def usage(
    cfg: OpenAIAnalyserConfig,
    requested: str,
    result: Result,
    requested_at: datetime,
    received_at: datetime,
) -> AIUsage:
    """A paid line's usage, priced at the batch price (unknown model: cost None, said so)."""
    body = result.body or {}
    returned = body.get("model") or None
    u = body.get("usage") if isinstance(body.get("usage"), dict) else None
    prompt = int((u or {}).get("prompt_tokens") or 0)
    completion = int((u or {}).get("completion_tokens") or 0)
    cached = int(((u or {}).get("prompt_tokens_details") or {}).get("cached_tokens") or 0)
    reasoning = int(((u or {}).get("completion_tokens_details") or {}).get("reasoning_tokens") or 0)
    total = int((u or {}).get("total_tokens") or 0) or prompt + completion
    usd: Decimal | None = None
    eur: Decimal | None = None
    if u is None:
        source = "no usage in the response"
    else:
        model = returned or requested
        price = batch_price(cfg, model, received_at)
        usd, eur, source = priced(price, model, prompt, cached, completion, cfg.eur_rate)
    return AIUsage(
        provider=PROVIDER,
        model_requested=requested,
        model_returned=returned,
        request_id=result.request_id or body.get("id"),
        prompt_tokens=prompt,
        completion_tokens=completion,
        cached_tokens=cached,
        reasoning_tokens=reasoning,
        total_tokens=total,
        cost_usd=usd,
        cost_eur=eur,
        price_source=source[:255],
        response_text=answer_text(body),
        requested_at=requested_at,
        received_at=received_at,
        purpose=PURPOSE,
        client_request_id=result.custom_id,
    )


def answer_text(body: dict[str, Any]) -> str | None:
    choices = body.get("choices") or []
    if not choices or not isinstance(choices[0], dict):
        return None
    message = choices[0].get("message") or {}
    return message.get("content") or message.get("refusal")


def refusal(body: dict[str, Any]) -> str | None:
    choices = body.get("choices") or []
    if not choices or not isinstance(choices[0], dict):
        return None
    message = choices[0].get("message") or {}
    if message.get("refusal"):
        return str(message["refusal"])
    if choices[0].get("finish_reason") == "content_filter":
        return "the answer was withheld by the content filter"
    return None
