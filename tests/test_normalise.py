"""Table-driven tests for the §2.7 normalisation helpers."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from domain.normalise import country_code, language_code, sentiment_label, sentiment_score, yes_no


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("BA", "BA"),
        ("ba", "BA"),
        (" nl ", "NL"),
        ("NLD", "NL"),
        ("bih", "BA"),
        ("USA", "US"),
        ("usa", "US"),
        ("United States", "US"),
        ("United States of America", "US"),
        ("UK", "GB"),
        ("United Kingdom", "GB"),
        ("Nederland", "NL"),
        ("Netherlands", "NL"),
        ("Netherland", "NL"),
        ("HOLLAND", "NL"),
        ("Germany", "DE"),
        ("Deutschland", "DE"),
        ("Belgium", "BE"),
        ("België", "BE"),
        ("Belgie", "BE"),
        ("Belgique", "BE"),
        ("France", "FR"),
        ("Frankreich", "FR"),
        ("Bosnia", "BA"),
        ("Bosnia and Herzegovina", "BA"),
        ("Bosnia & Herzegovina", "BA"),
        ("bosnia  and   herzegovina", "BA"),
        ("Türkiye", "TR"),
        ("Turkey", "TR"),
        ("Croatia", "HR"),
        ("Viet Nam", "VN"),
        ("Vietnam", "VN"),
        ("South Korea", "KR"),
        ("Korea, Republic of", "KR"),
        ("Czech Republic", "CZ"),
        ("Czechia", "CZ"),
        ("Iran", "IR"),
        (None, None),
        ("", None),
        ("   ", None),
        ("XX", None),
        ("ZZZ", None),
        ("Atlantis", None),
        ("Europe", None),
    ],
)
def test_country_code(raw: str | None, expected: str | None) -> None:
    assert country_code(raw) == expected


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("en", "en"),
        ("EN", "en"),
        (" nl ", "nl"),
        ("english", "en"),
        ("English", "en"),
        ("ENGLISH", "en"),
        ("dutch", "nl"),
        ("Dutch", "nl"),
        ("nederlands", "nl"),
        ("Nederlands", "nl"),
        ("nizozemski", "nl"),
        ("bosnian", "bs"),
        ("Bosnian", "bs"),
        ("turkish", "tr"),
        ("Turkish", "tr"),
        ("türkçe", "tr"),
        ("Türkçe", "tr"),
        ("turkce", "tr"),
        ("german", "de"),
        ("Deutsch", "de"),
        ("french", "fr"),
        ("Français", "fr"),
        ("francais", "fr"),
        ("spanish", "es"),
        ("Español", "es"),
        ("italian", "it"),
        ("Italiano", "it"),
        ("Croatian", "hr"),
        ("Serbian", "sr"),
        ("Greek", "el"),
        ("Modern Greek", "el"),
        ("Japanese", "ja"),
        ("eng", "en"),
        ("nld", "nl"),
        ("dut", "nl"),
        ("en-US", "en"),
        ("en_GB", "en"),
        ("pt_BR", "pt"),
        ("PT-br", "pt"),
        ("zh-Hant-TW", "zh"),
        (None, None),
        ("", None),
        ("  ", None),
        ("xx", None),
        ("xx-YY", None),
        ("klingon", None),
        ("tlh", None),
        ("unknown", None),
    ],
)
def test_language_code(raw: str | None, expected: str | None) -> None:
    assert language_code(raw) == expected


@pytest.mark.parametrize(
    ("raw", "score", "label"),
    [
        ("happy", 1.0, "POSITIVE"),
        ("Happy", 1.0, "POSITIVE"),
        ("excited", 1.5, "POSITIVE"),
        ("positive", 0.8, "POSITIVE"),
        ("POSITIVE", 0.8, "POSITIVE"),
        ("playful", 0.7, "POSITIVE"),
        ("neutral", 0.0, "NEUTRAL"),
        ("negative", -0.8, "NEGATIVE"),
        ("angry", -1.0, "NEGATIVE"),
        ("sad", -0.7, "NEGATIVE"),
        ("frustrated", -0.9, "NEGATIVE"),
        ("positief", 0.8, "POSITIVE"),
        ("neutraal", 0.0, "NEUTRAL"),
        ("negatief", -0.8, "NEGATIVE"),
        ("positivo", 0.8, "POSITIVE"),
        ("neutro", 0.0, "NEUTRAL"),
        ("negativo", -0.8, "NEGATIVE"),
        ("yes", 0.5, "POSITIVE"),
        ("no", -0.5, "NEGATIVE"),
        (" sad ", -0.7, "NEGATIVE"),
        ("0.25", 0.25, "POSITIVE"),
        ("-0.3", -0.3, "NEGATIVE"),
        ("+1", 1.0, "POSITIVE"),
        ("0", 0.0, "NEUTRAL"),
        ("-0", 0.0, "NEUTRAL"),
        (".5", 0.5, "POSITIVE"),
        (None, None, None),
        ("", None, None),
        ("   ", None, None),
        ("confused", None, None),
        ("nan", None, None),
        ("inf", None, None),
        ("1,5", None, None),
        ("1_0", None, None),
    ],
)
def test_sentiment(raw: str | None, score: float | None, label: str | None) -> None:
    assert sentiment_score(raw) == score
    assert sentiment_label(raw) == label


def test_happy_is_positive_not_neutral() -> None:
    """HEAD's fallback turned every emotion word without "positive" in it into NEUTRAL."""
    assert sentiment_label("happy") == "POSITIVE"
    assert sentiment_label("excited") == "POSITIVE"


TRUE_WORDS = ["1", "true", "TRUE", "yes", "Yes", "y", "Y", "ja", "JA", "si", "sí", "SÍ", "oui"]
TRUE_WORDS += ["да", "ДА", "はい", "evet", "EVET", " yes "]
FALSE_WORDS = ["0", "false", "False", "no", "NO", "n", "nee", "Nee", "nein", "non"]
FALSE_WORDS += ["нет", "\u041d\u0415\u0422", "いいえ", "hay\u0131r", "HAYIR", " no "]


@pytest.mark.parametrize("raw", TRUE_WORDS)
def test_yes_no_true(raw: str) -> None:
    assert yes_no(raw) is True


@pytest.mark.parametrize("raw", FALSE_WORDS)
def test_yes_no_false(raw: str) -> None:
    assert yes_no(raw) is False


@pytest.mark.parametrize("raw", [None, "", "   ", "maybe", "unknown", "2", "yes please", "-"])
def test_yes_no_unknown_is_none_not_false(raw: str | None) -> None:
    assert yes_no(raw) is None


@settings(max_examples=200, deadline=None)
@given(st.one_of(st.none(), st.text(max_size=40)))
def test_helpers_never_raise_and_stay_in_their_codomain(raw: str | None) -> None:
    country = country_code(raw)
    assert country is None or (len(country) == 2 and country.isupper() and country.isascii())
    language = language_code(raw)
    assert language is None or (len(language) == 2 and language.islower() and language.isascii())
    assert sentiment_label(raw) in (None, "POSITIVE", "NEUTRAL", "NEGATIVE")
    assert (sentiment_score(raw) is None) == (sentiment_label(raw) is None)
    assert yes_no(raw) in (None, True, False)
