"""The offline analyser: rules and a language detector, so the pipeline runs without an API key.

Every result it gives is labelled `provider: offline`, `model: offline-rules-v1`, cost zero, so
nobody mistakes it for an LLM's answer.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Sequence
from functools import lru_cache
from typing import Any

from domain.analysis import Category, Sentiment, SessionAnalysis
from domain.transcript import Message
from processors.stages.analysis import AnalysisInputs, AnalysisOutput
from processors.stages.base import WorkContext

PROVIDER = "offline"
MODEL = "offline-rules-v1"
PROMPT_VERSION = "rules-1"

POSITIVE = {
    # en
    "thanks",
    "thank",
    "great",
    "perfect",
    "awesome",
    "helpful",
    "good",
    "nice",
    "excellent",
    "happy",
    "love",
    "clear",
    "super",
    # nl
    "bedankt",
    "dank",
    "dankjewel",
    "top",
    "prima",
    "fijn",
    "geweldig",
    "duidelijk",
    "goed",
    "handig",
    "mooi",
    "blij",
    # de
    "danke",
    "vielen",
    "toll",
    "hilfreich",
    "gut",
    "klasse",
    "perfekt",
    # tr
    "teşekkürler",
    "teşekkür",
    "sağol",
    "sağolun",
    "harika",
    "süper",
    "güzel",
    "iyi",
    "mükemmel",
}
NEGATIVE = {
    # en
    "bad",
    "terrible",
    "awful",
    "useless",
    "angry",
    "frustrated",
    "annoying",
    "wrong",
    "worst",
    "unacceptable",
    "ridiculous",
    "disappointed",
    "complaint",
    "never",
    # nl
    "slecht",
    "boos",
    "belachelijk",
    "waardeloos",
    "nutteloos",
    "vervelend",
    "klacht",
    "teleurgesteld",
    "irritant",
    "fout",
    "nooit",
    # de
    "schlecht",
    "ärgerlich",
    "nutzlos",
    "falsch",
    "enttäuscht",
    "beschwerde",
    "unmöglich",
    "frustriert",
    "nie",
    # tr
    "kötü",
    "berbat",
    "sinir",
    "şikayet",
    "yanlış",
    "saçma",
    "hayal",
    "kırıklığı",
    "asla",
}

CATEGORY_KEYWORDS: dict[Category, tuple[str, ...]] = {
    Category.SICK_LEAVE_RECOVERY: (
        "sick",
        "ill",
        "ziek",
        "ziekmelding",
        "beter",
        "doctor",
        "dokter",
        "arzt",
        "krank",
        "hasta",
        "rapor",
        "herstel",
    ),
    Category.LEAVE_VACATION: (
        "vacation",
        "holiday",
        "leave",
        "vakantie",
        "verlof",
        "vrije dag",
        "urlaub",
        "izin",
        "tatil",
        "free day",
    ),
    Category.SCHEDULE_HOURS: (
        "schedule",
        "rooster",
        "shift",
        "dienst",
        "dienstplan",
        "schicht",
        "vardiya",
        "hours",
        "uren",
        "rota",
        "saat",
    ),
    Category.SALARY_COMPENSATION: (
        "salary",
        "pay",
        "payslip",
        "loon",
        "salaris",
        "loonstrook",
        "gehalt",
        "lohn",
        "maaş",
        "bordro",
        "bonus",
        "overtime",
        "toeslag",
    ),
    Category.CONTRACT_HOURS: (
        "contract",
        "vertrag",
        "sözleşme",
        "contracturen",
        "arbeitszeit",
        "min-max",
        "uitbreiden",
    ),
    Category.ONBOARDING: (
        "first day",
        "eerste dag",
        "erster tag",
        "ilk gün",
        "onboarding",
        "new employee",
        "nieuwe medewerker",
        "introductie",
        "training",
        "einarbeitung",
    ),
    Category.OFFBOARDING: (
        "resign",
        "quit",
        "ontslag",
        "opzeggen",
        "kündigen",
        "kündigung",
        "istifa",
        "last day",
        "laatste dag",
        "uitdienst",
    ),
    Category.WORKWEAR_STAFF_PASS: (
        "uniform",
        "workwear",
        "werkkleding",
        "pas",
        "badge",
        "staff pass",
        "personeelspas",
        "arbeitskleidung",
        "ausweis",
        "kıyafet",
        "kart",
    ),
    Category.TEAM_CONTACTS: (
        "manager",
        "leidinggevende",
        "teamleider",
        "contact",
        "phone number",
        "telefoonnummer",
        "vorgesetzter",
        "ansprechpartner",
        "müdür",
        "yönetici",
        "colleague",
        "collega",
    ),
    Category.ACCESS_LOGIN: (
        "login",
        "log in",
        "password",
        "wachtwoord",
        "inloggen",
        "passwort",
        "anmelden",
        "şifre",
        "giriş",
        "account",
        "app",
    ),
    Category.PERSONAL_QUESTIONS: (
        "who are you",
        "wie ben je",
        "wer bist du",
        "sen kimsin",
        "are you a robot",
        "ben je een robot",
        "your name",
        "je naam",
    ),
    Category.SOCIAL_QUESTIONS: (
        "how are you",
        "hoe gaat het",
        "wie geht",
        "nasılsın",
        "weather",
        "weer",
        "wetter",
        "hava",
        "joke",
        "grap",
        "witz",
    ),
}

_WORD = re.compile(r"[^\W\d_]+", re.UNICODE)
_SENTENCE = re.compile(r"[^.!?\n]+[.!?]?")
LANGUAGES = ("ENGLISH", "DUTCH", "GERMAN", "TURKISH", "FRENCH", "SPANISH", "ITALIAN", "BOSNIAN")


@lru_cache(maxsize=1)
def _detector() -> Any:
    from lingua import Language, LanguageDetectorBuilder

    languages = [getattr(Language, name) for name in LANGUAGES]
    return LanguageDetectorBuilder.from_languages(*languages).with_low_accuracy_mode().build()


def detect_language(text: str) -> str | None:
    if len(text.strip()) < 3:
        return None
    language = _detector().detect_language_of(text)
    return language.iso_code_639_1.name.lower() if language is not None else None


def sentiment_of(texts: Sequence[str]) -> Sentiment:
    words = [w.lower() for text in texts for w in _WORD.findall(text)]
    score = sum(1 for w in words if w in POSITIVE) - sum(1 for w in words if w in NEGATIVE)
    if score > 0:
        return Sentiment.POSITIVE
    if score < 0:
        return Sentiment.NEGATIVE
    return Sentiment.NEUTRAL


def category_of(text: str) -> Category:
    lowered = text.lower()
    scores: Counter[Category] = Counter()
    for category, keywords in CATEGORY_KEYWORDS.items():
        for kw in keywords:
            if (" " in kw and kw in lowered) or re.search(rf"\b{re.escape(kw)}\b", lowered):
                scores[category] += 1
    if not scores:
        return Category.UNRECOGNIZED_OTHER
    return scores.most_common(1)[0][0]


def questions_of(user_texts: Sequence[str]) -> list[str]:
    found: list[str] = []
    for text in user_texts:
        for sentence in _SENTENCE.findall(text):
            sentence = " ".join(sentence.split())
            if sentence.endswith("?") and len(sentence) > 2:
                found.append(sentence)
    return found[:5]


def summary_of(user_texts: Sequence[str], category: Category) -> str:
    joined = " ".join(" ".join(t.split()) for t in user_texts[:2])
    text = f"User asked about {category.value.lower().replace('_', ' ')}: {joined}"
    if len(text) > 300:
        text = text[:297].rstrip() + "..."
    return text if len(text) >= 10 else (text + " (short)").ljust(10, ".")


_ESCALATION = re.compile(
    r"\b(manager|leidinggevende|teamleider|supervisor|vorgesetzte\w*|müdür\w*|escalat\w*)\b", re.I
)
_HR = re.compile(r"\b(hr|p&o|personeelszaken|personalabteilung|insan kaynaklar\w*)\b|@", re.I)


def analyse(messages: Sequence[Message]) -> SessionAnalysis:
    user = [m.content for m in messages if m.role == "user" and m.content.strip()]
    bot = [m.content for m in messages if m.role == "assistant"]
    everything = "\n".join(m.content for m in messages)
    language = detect_language(" ".join(user) or everything) or "en"
    category = category_of(" ".join(user) or everything)
    bot_text = "\n".join(bot)
    return SessionAnalysis(
        language=language,
        sentiment=sentiment_of(user),
        escalated=bool(_ESCALATION.search(bot_text)),
        forwarded_hr=bool(_HR.search(bot_text)),
        category=category,
        questions=questions_of(user),
        summary=summary_of(user or [everything], category),
    )


def analyser(inputs: AnalysisInputs, _ctx: WorkContext) -> AnalysisOutput:
    """The offline `processors.stages.analysis.Analyser`: free, immediate, clearly labelled."""
    return AnalysisOutput(
        analysis=analyse(inputs.messages),
        provider=PROVIDER,
        model=MODEL,
        prompt_version=PROMPT_VERSION,
        usage=None,
        metadata={"cost_eur": 0},
    )
