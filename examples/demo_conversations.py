"""Conversations of the demo tenant, built from the text corpus in ``examples/corpus/``.

The tenant is fictitious: "Demo Retail BV", a supermarket chain whose HR chatbot ("Sam") answers
questions from shop staff in Dutch, English, German and Turkish. All text (questions, answers,
greetings, store names) lives in ``corpus/<lang>.json`` and ``corpus/tenant.json``; this module
holds the weights and the rules that turn it into conversations. Every choice is drawn from the
``random.Random`` passed in, in a fixed order, so one seed always gives the same conversations.
Standard library only.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field, fields
from datetime import date, datetime, timedelta
from pathlib import Path
from random import Random
from typing import Any

CORPUS_DIR = Path(__file__).resolve().parent / "corpus"
LANG_CODES: tuple[str, ...] = ("nl", "en", "de", "tr")

FIRST_DAY = date(2026, 10, 5)  # Monday
N_DAYS = 21  # up to and including Sunday 25 October 2026
BOT = "Sam"
HR_MAIL = "hr@demoretail.example"
PORTAL = "https://mijn.demoretail.example"

TOPICS: tuple[str, ...] = (
    "sick",
    "schedule",
    "leave",
    "salary",
    "contract",
    "onboarding",
    "offboarding",
    "workwear",
    "contacts",
    "login",
    "smalltalk",
    "unrelated",
)
TOPIC_WEIGHTS: tuple[int, ...] = (12, 16, 12, 12, 7, 7, 5, 7, 6, 7, 5, 4)
HR_TOPICS: tuple[str, ...] = TOPICS[:10]

QA = tuple[str, str]
"""A user question template and the assistant's answer template ("\\n" = a new line)."""


@dataclass(frozen=True)
class Lang:
    """All text of one language: topic questions with answers plus the conversational glue."""

    code: str
    csv_names: tuple[str, ...]
    topics: dict[str, tuple[QA, ...]]
    greet: tuple[str, ...]
    greet_reply: tuple[str, ...]
    thanks: tuple[str, ...]
    thanks_reply: tuple[str, ...]
    ok: tuple[str, ...]
    ok_reply: tuple[str, ...]
    complaint: tuple[str, ...]
    complaint_reply: tuple[str, ...]
    give_up: tuple[str, ...]
    give_up_reply: tuple[str, ...]
    ask_human: tuple[str, ...]
    forward: tuple[str, ...]
    escalate: tuple[str, ...]
    preamble: str
    weekdays: tuple[str, ...]
    months: tuple[str, ...]
    date_pattern: str
    week_pattern: str
    inline_sep: str
    lower_inline: bool
    hr_phone: str
    it_phone: str


@dataclass(frozen=True)
class Store:
    number: str
    city: str
    country: str
    manager: str
    ip: str


def read_json(name: str) -> Any:
    return json.loads((CORPUS_DIR / name).read_text(encoding="utf-8"))


def load_lang(code: str) -> Lang:
    """``corpus/<code>.json``; a missing or unknown key fails here, not halfway through a run."""
    data = read_json(f"{code}.json")
    topics = {
        topic: tuple((qa["user"], qa["reply"]) for qa in pairs)
        for topic, pairs in data.pop("topics").items()
    }
    odd = (set(data) | {"topics"}) ^ {f.name for f in fields(Lang)}
    if odd:
        raise ValueError(f"corpus/{code}.json: keys missing or unknown: {sorted(odd)}")
    values: dict[str, Any] = {k: tuple(v) if isinstance(v, list) else v for k, v in data.items()}
    return Lang(topics=topics, **values)


LANGS: dict[str, Lang] = {code: load_lang(code) for code in LANG_CODES}
_TENANT = read_json("tenant.json")
STORES: tuple[Store, ...] = tuple(Store(**s) for s in _TENANT["stores"])
COLLEAGUES: tuple[str, ...] = tuple(_TENANT["colleagues"])
UPSTREAM_CATEGORY: dict[str, tuple[str, ...]] = {
    topic: tuple(names) for topic, names in _TENANT["upstream_category"].items()
}
"""The free-text category the upstream export writes for each topic."""

STORE_COUNTRY_WEIGHTS: dict[str, dict[str, int]] = {
    "nl": {"NL": 88, "BE": 12, "DE": 0},
    "en": {"NL": 80, "BE": 10, "DE": 10},
    "de": {"NL": 25, "BE": 0, "DE": 75},
    "tr": {"NL": 85, "BE": 10, "DE": 5},
}
DOC_NETS: tuple[str, ...] = ("192.0.2", "198.51.100", "203.0.113")
HOURS: tuple[int, ...] = tuple(range(6, 23))
HOUR_WEIGHTS: tuple[int, ...] = (2, 5, 7, 6, 5, 4, 5, 6, 5, 4, 4, 5, 6, 7, 7, 6, 3)


# ----------------------------------------------------------------------------- conversation


@dataclass
class Message:
    speaker: str  # "User" or "Assistant"
    text: str
    at: datetime


@dataclass
class Conversation:
    lang: Lang
    topic: str
    mood: str  # positive | neutral | negative
    outcome: str  # normal | forwarded | escalated
    store: Store
    messages: list[Message]
    reply_delays: list[float]
    session_id: str = ""
    ip: str = ""
    country: str = ""
    variants: set[str] = field(default_factory=set)

    @property
    def start(self) -> datetime:
        return self.messages[0].at

    @property
    def end(self) -> datetime:
        return self.messages[-1].at

    @property
    def user_messages(self) -> int:
        return sum(m.speaker == "User" for m in self.messages)


def local_date(lang: Lang, day: date) -> str:
    return lang.date_pattern.format(
        weekday=lang.weekdays[day.weekday()], day=day.day, month=lang.months[day.month - 1]
    )


def make_slots(rng: Random, lang: Lang, store: Store, today: date) -> dict[str, str]:
    """Values for the {placeholders} of one conversation."""
    offsets = rng.sample(range(1, 15), 2)
    start_minutes = rng.choice((360, 420, 450, 480, 540, 720, 780, 840, 930, 960))
    end_minutes = min(start_minutes + rng.choice((240, 300, 360, 420, 480, 510)), 22 * 60)
    hours = rng.choice((12, 16, 20, 24, 28, 32))
    after_payday = today > date(2026, 10, 23)
    payday = date(2026, 11, 25) if after_payday else date(2026, 10, 23)
    payslip_month = 10 if after_payday else 9
    next_week = today + timedelta(days=7)
    publish = next_week - timedelta(days=next_week.weekday())  # Monday, two weeks ahead of {week}
    return {
        "bot": BOT,
        "store": store.number,
        "city": store.city,
        "manager": store.manager,
        "manager_first": store.manager.split()[0],
        "colleague": rng.choice(COLLEAGUES),
        "day": local_date(lang, today + timedelta(days=offsets[0])),
        "week": lang.week_pattern.format(week=(today + timedelta(days=21)).isocalendar()[1]),
        "publish_day": local_date(lang, publish),
        "time": f"{start_minutes // 60:02d}:{start_minutes % 60:02d}",
        "time2": f"{end_minutes // 60:02d}:{end_minutes % 60:02d}",
        "hours": str(hours),
        "hours2": str(hours + rng.choice((4, 8))),
        "leave_hours": str(rng.randrange(16, 160, 4)),
        "payday": local_date(lang, payday),
        "month": lang.months[payslip_month - 1],
        "portal": PORTAL,
        "hr_mail": HR_MAIL,
        "hr_phone": lang.hr_phone,
        "it_phone": lang.it_phone,
    }


def lower_first(lang: Lang, text: str) -> str:
    """The question glued after an inline greeting ("Hoi, ik ben ziek ...")."""
    if not lang.lower_inline or not text:
        return text
    first_word = text.split(maxsplit=1)[0]
    if lang.code == "en" and first_word.rstrip(",").split("'")[0] == "I":
        return text
    head = text[0]
    if lang.code == "tr":  # dotted and dotless i
        return {"İ": "i", "I": "ı"}.get(head, head.lower()) + text[1:]
    return head.lower() + text[1:]


Turn = tuple[str, str | None]


MORNING_GREETINGS = frozenset({"Goedemorgen", "Good morning", "Guten Morgen", "Günaydın"})
EVENING_GREETINGS = frozenset({"Goedenavond", "Good evening", "Guten Abend", "İyi akşamlar"})


def greetings(lang: Lang, hour: int) -> list[str]:
    """No "good evening" at seven in the morning."""
    return [
        g
        for g in lang.greet
        if not (g in MORNING_GREETINGS and hour >= 12)
        and not (g in EVENING_GREETINGS and hour < 18)
    ]


def plan_turns(
    rng: Random, lang: Lang, topic: str, mood: str, outcome: str, hour: int
) -> list[Turn]:
    """User message and assistant reply pairs; only the last reply may be missing."""
    tail: list[Turn] = []
    forward_inline = False
    if mood == "negative":
        reply = rng.choice(lang.complaint_reply)
        if outcome == "escalated":
            reply = f"{reply} {rng.choice(lang.escalate)}"
        elif outcome == "forwarded":
            reply = f"{reply}\n{rng.choice(lang.forward)}"
        tail.append((rng.choice(lang.complaint), reply))
    elif outcome == "forwarded":
        if rng.random() < 0.6:
            tail.append((rng.choice(lang.ask_human), rng.choice(lang.forward)))
        else:
            forward_inline = True

    if mood == "positive":
        tail.append((rng.choice(lang.thanks), rng.choice(lang.thanks_reply)))
    elif mood == "neutral" and rng.random() < 0.6:
        tail.append(
            (rng.choice(lang.ok), rng.choice(lang.ok_reply) if rng.random() < 0.5 else None)
        )
    elif mood == "negative" and outcome == "normal" and rng.random() < 0.6:
        answer = rng.choice(lang.give_up_reply) if rng.random() < 0.6 else None
        tail.append((rng.choice(lang.give_up), answer))
    elif mood == "negative" and rng.random() < 0.4:
        tail.append((rng.choice(lang.ok), None))

    fixed_questions = sum(user.endswith("?") for user, _ in tail)
    budget = rng.choices((1, 2, 3, 4), weights=(30, 35, 22, 13))[0]
    n_questions = max(1, min(budget - fixed_questions, 4 - fixed_questions))
    greeting = rng.choices(("separate", "inline", "none"), weights=(25, 35, 40))[0]
    while (greeting == "separate") + n_questions + len(tail) > 6:
        if greeting == "separate":
            greeting = "inline"
        else:
            n_questions -= 1

    pool = list(lang.topics[topic])
    rng.shuffle(pool)
    chosen = pool[:n_questions]
    if len(chosen) >= 2 and rng.random() < 0.25:
        other = rng.choice([t for t in HR_TOPICS if t != topic])
        chosen[-1] = rng.choice(lang.topics[other])

    turns: list[Turn] = []
    greets = greetings(lang, hour)
    if greeting == "separate":
        turns.append((rng.choice(greets), rng.choice(lang.greet_reply)))
    for i, (question, answer) in enumerate(chosen):
        text = question
        if lang.lower_inline and rng.random() < 0.12:
            text = lower_first(lang, text)
        if i == 0 and greeting == "inline":
            text = rng.choice(greets) + lang.inline_sep + lower_first(lang, question)
        if forward_inline and i == len(chosen) - 1:
            answer = f"{answer}\n\n{rng.choice(lang.forward)}"
        turns.append((text, answer))
    return turns + tail


def build_conversation(rng: Random, lang: Lang, start: datetime) -> Conversation:
    topic = rng.choices(TOPICS, weights=TOPIC_WEIGHTS)[0]
    mood = rng.choices(("positive", "neutral", "negative"), weights=(38, 40, 22))[0]
    if mood == "negative":
        outcome = rng.choices(("normal", "forwarded", "escalated"), weights=(35, 30, 35))[0]
    else:
        outcome = rng.choices(("normal", "forwarded"), weights=(90, 10))[0]
    if topic in ("smalltalk", "unrelated") and outcome == "forwarded":
        outcome = "normal"
    weights = STORE_COUNTRY_WEIGHTS[lang.code]
    country = rng.choices(list(weights), weights=list(weights.values()))[0]
    store = rng.choice([s for s in STORES if s.country == country])
    slots = make_slots(rng, lang, store, start.date())

    messages: list[Message] = []
    delays: list[float] = []
    clock = 0.0
    previous_reply = ""
    for i, (user, reply) in enumerate(plan_turns(rng, lang, topic, mood, outcome, start.hour)):
        user_text = user.format_map(slots)
        if i > 0:
            clock += rng.uniform(4, 20) + len(previous_reply) * rng.uniform(0.02, 0.06)
            clock += len(user_text) * rng.uniform(0.15, 0.45)
        messages.append(Message("User", user_text, start + timedelta(seconds=math.floor(clock))))
        if reply is None:
            break
        reply_text = reply.format_map(slots)
        delay = rng.uniform(0.5, 3.6) + len(reply_text) / rng.uniform(250, 450)
        delays.append(delay)
        clock += delay
        at = start + timedelta(seconds=math.floor(clock))
        messages.append(Message("Assistant", reply_text, at))
        previous_reply = reply_text
    return Conversation(lang, topic, mood, outcome, store, messages, delays)


def random_start(rng: Random) -> datetime:
    """A start time in the three demo weeks: weekdays busier than weekends, day shifts busiest."""
    day_weights = [3 if (FIRST_DAY + timedelta(days=d)).weekday() < 5 else 2 for d in range(N_DAYS)]
    day = FIRST_DAY + timedelta(days=rng.choices(range(N_DAYS), weights=day_weights)[0])
    hour = rng.choices(HOURS, weights=HOUR_WEIGHTS)[0]
    return datetime(day.year, day.month, day.day, hour, rng.randrange(60), rng.randrange(60))
