"""Which event attributes hold personal data, and what stands in their place once erased.

The store seals exactly these values with the session's data key and leaves the rest of each
event readable (stage transitions, counts, times, costs stay for audit). The same redacted
values are what a sealed event decodes to after its key was erased, and what the aggregate
holds after `PersonalDataErased`, so a session reads the same whichever way it was loaded.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel

REDACTED_SUMMARY = "(personal data erased)"
"""The analysis summary must be 10 to 300 characters even when erased."""

WHOLE = ""
"""Field name meaning the attribute itself (a list of messages, the questions)."""

_ROW: dict[str, Any] = {"ip_address": None, "transcript_url": None, "initial_message": None}

PERSONAL: dict[str, dict[str, dict[str, Any]]] = {
    "livedash:Session.Imported": {"row": _ROW},
    "livedash:Session.SourceRowChanged": {"row": _ROW},
    "livedash:Session.TranscriptFetched": {"transcript": {"url": "", "text": ""}},
    "livedash:Session.SessionParsed": {
        "messages": {WHOLE: ()},
        "fields": {"ip_address": None, "initial_message": None},
    },
    "livedash:Session.AnalysisRecorded": {
        "analysis": {"summary": REDACTED_SUMMARY, "questions": ()}
    },
    "livedash:Session.QuestionsExtracted": {"questions": {WHOLE: ()}},
    "livedash:Session.AIUsageRecorded": {"usage": {"response_text": None}},
}
"""Event topic -> attribute -> field -> its redacted value (``()`` means an empty list)."""


def parse_retention(text: str) -> int | None:
    """``90d`` (days), ``12w`` (weeks) or ``none`` -> days, or None for no retention."""
    value = text.strip().lower()
    if value in ("none", "off", ""):
        return None
    units = {"d": 1, "w": 7}
    unit = units.get(value[-1:])
    number = value[:-1] if unit else value
    if not number.isdigit() or int(number) < 1:
        raise ValueError(f"cannot read retention {text!r}: use e.g. 90d, 12w or none")
    return int(number) * (unit or 1)


def field_names() -> list[str]:
    """``attribute.field`` of every personal value, as `PersonalDataErased` records them."""
    names = {
        attr if field == WHOLE else f"{attr}.{field}"
        for spec in PERSONAL.values()
        for attr, fields in spec.items()
        for field in fields
    }
    return sorted(names)


def _redacted(value: Any) -> Any:
    return [] if value == () else value


def split(topic: str, state: dict[str, Any]) -> dict[str, Any] | None:
    """Replaces the personal values in ``state`` (an event's attributes) by their redacted
    values and returns what was taken out; None for an event that holds nothing personal."""
    spec = PERSONAL.get(topic)
    if spec is None:
        return None
    taken: dict[str, Any] = {}
    for attr, fields in spec.items():
        value = state.get(attr)
        if value is None:
            continue
        if WHOLE in fields:
            taken[attr] = value
            state[attr] = _redacted(fields[WHOLE])
            continue
        assert isinstance(value, BaseModel)
        taken[attr] = {f: getattr(value, f) for f in fields}
        state[attr] = redact_model(value, fields)
    return taken


def join(state: dict[str, Any], taken: Mapping[str, Any]) -> None:
    """Puts values taken out by `split` back into a decoded event's attributes."""
    for attr, value in taken.items():
        current = state.get(attr)
        if isinstance(current, BaseModel) and isinstance(value, Mapping):
            state[attr] = current.model_copy(update=dict(value))
        else:
            state[attr] = value


def redact_model(value: BaseModel, fields: Mapping[str, Any]) -> Any:
    return value.model_copy(update={f: _redacted(v) for f, v in fields.items()})


def redact_attribute(topic: str, attr: str, value: Any) -> Any:
    """``value`` of an event attribute with its personal parts redacted."""
    fields = PERSONAL.get(topic, {}).get(attr)
    if fields is None or value is None:
        return value
    if WHOLE in fields:
        return _redacted(fields[WHOLE])
    return redact_model(value, fields)


def redact_session(s: Any) -> None:
    """A Session aggregate as it loads once its key is gone."""
    s.row = redact_attribute("livedash:Session.Imported", "row", s.row)
    s.transcript = redact_attribute(
        "livedash:Session.TranscriptFetched", "transcript", s.transcript
    )
    s.messages = []
    s.fields = redact_attribute("livedash:Session.SessionParsed", "fields", s.fields)
    s.analysis = redact_attribute("livedash:Session.AnalysisRecorded", "analysis", s.analysis)
    s.questions = []
    usage = "livedash:Session.AIUsageRecorded"
    s.ai_usage = [(st, a, redact_attribute(usage, "usage", u)) for st, a, u in s.ai_usage]
