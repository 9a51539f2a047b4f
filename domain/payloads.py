"""What the stages produce: the values the data events carry (pydantic: they cross boundaries)."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from pydantic import BaseModel, ConfigDict


class FetchedTranscript(BaseModel):
    model_config = ConfigDict(frozen=True)

    url: str
    text: str
    sha256: str
    size: int
    content_type: str | None
    fetched_at: datetime


class SessionFields(BaseModel):
    """The normalised view of a CSV row plus what the transcript adds."""

    model_config = ConfigDict(frozen=True)

    start_time: datetime
    end_time: datetime
    country: str | None
    language: str | None
    upstream_sentiment: str | None
    upstream_sentiment_label: str | None
    escalated: bool | None
    forwarded_hr: bool | None
    messages_sent: int
    message_count: int
    initial_message: str | None
    ip_address: str | None
    avg_response_time: float | None
    tokens: int | None
    tokens_eur: Decimal | None
    upstream_category: str | None
    first_message_at: datetime | None
    last_message_at: datetime | None


class AIUsage(BaseModel):
    """One paid (or free, for the offline analyser) model response, recorded before validation."""

    model_config = ConfigDict(frozen=True)

    provider: str
    model_requested: str
    model_returned: str | None
    request_id: str | None
    prompt_tokens: int
    completion_tokens: int
    cached_tokens: int
    reasoning_tokens: int
    total_tokens: int
    cost_usd: Decimal | None
    cost_eur: Decimal | None
    price_source: str
    response_text: str | None
    requested_at: datetime
    received_at: datetime
    purpose: str = "analysis"
    client_request_id: str | None = None
    """The id of the `AIRequestIntent` recorded before the request was sent (None before
    intents were recorded): links an answer to its intent, so an intent without one is a
    request whose answer was lost."""


class AIRequestIntent(BaseModel):
    """A paid request about to be sent, recorded before it leaves: if the answer never reaches
    the store (a crash, a timeout), the request still shows, with what it would have cost."""

    model_config = ConfigDict(frozen=True)

    client_request_id: str
    provider: str
    model: str
    purpose: str
    prompt_tokens_estimated: int
    max_output_tokens: int
    cost_eur_estimated: Decimal | None
    """Estimated prompt tokens plus the full output allowance at the model's price: an upper
    bound of what the request costs; None when the model has no price."""
    sent_at: datetime
