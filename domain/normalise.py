"""Normalisation of the export's free-text columns (the pre-refactor tables of §2.7, fixed).

The upstream file carries language *names* in any casing, country codes or names, emotion words
and yes/no flags in several languages. These helpers map them to ISO codes, a score, a label and a
tri-state boolean, and answer None rather than guess: an unknown flag is not "no" (the original
collapsed everything unknown to false). All tables are built once at import; a call is one or two
dict look-ups because these run once per session.
"""

from __future__ import annotations

import functools
import math
import re
import unicodedata
from collections.abc import Iterable

import pycountry

_SPACES_RE = re.compile(r"\s+")
_PARENTHESISED_RE = re.compile(r"\s*\([^)]*\)")
_LANGUAGE_TAG_RE = re.compile(r"([a-z]{2,3})[-_][a-z0-9]{1,8}(?:[-_][a-z0-9]{1,8})*", re.ASCII)
_DECIMAL_RE = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)", re.ASCII)


def _fold(value: str) -> str:
    """Look-up key: case, accents and spacing do not matter ("België" == "belgie ")."""
    decomposed = unicodedata.normalize("NFKD", value.casefold())
    stripped = "".join(c for c in decomposed if not unicodedata.combining(c))
    return _SPACES_RE.sub(" ", stripped).strip()


def _lookup(table: dict[str, str], value: str | None) -> str | None:
    """Exact casefolded hit first (the common case), accent/space folding only on a miss."""
    if value is None:
        return None
    key = value.strip().casefold()
    if not key:
        return None
    hit = table.get(key)
    return hit if hit is not None else table.get(_fold(key))


def _table(pairs: Iterable[tuple[str, str]]) -> dict[str, str]:
    """Keys in both casefolded and folded form; the first mapping of a key wins."""
    table: dict[str, str] = {}
    for name, code in pairs:
        for key in (name.strip().casefold(), _fold(name)):
            table.setdefault(key, code)
    return table


# ------------------------------------------------------------------------------- countries

_COUNTRY_ALIASES: dict[str, str] = {
    "USA": "US",
    "United States": "US",
    "United States of America": "US",
    "UK": "GB",
    "Great Britain": "GB",
    "Britain": "GB",
    "England": "GB",
    "Scotland": "GB",
    "Wales": "GB",
    "Nederland": "NL",
    "Netherlands": "NL",
    "The Netherlands": "NL",
    "Netherland": "NL",
    "Holland": "NL",
    "Germany": "DE",
    "Deutschland": "DE",
    "Belgium": "BE",
    "België": "BE",
    "Belgique": "BE",
    "Belgien": "BE",
    "France": "FR",
    "Frankreich": "FR",
    "Bosnia": "BA",
    "Bosnia and Herzegovina": "BA",
    "Bosnia & Herzegovina": "BA",
    "Bosnia-Herzegovina": "BA",
    "Bosna i Hercegovina": "BA",
    "Turkey": "TR",
    "Russia": "RU",
    "North Korea": "KP",
    "Czech Republic": "CZ",
    "Moldova": "MD",
    "Tanzania": "TZ",
    "Venezuela": "VE",
    "Laos": "LA",
    "Syria": "SY",
    "Macedonia": "MK",
    "Ivory Coast": "CI",
    "Cape Verde": "CV",
    "Swaziland": "SZ",
    "Burma": "MM",
    "Vatican": "VA",
    "Palestine": "PS",
    "Österreich": "AT",
    "Schweiz": "CH",
    "Suisse": "CH",
    "Svizzera": "CH",
    "España": "ES",
    "Italia": "IT",
    "Polska": "PL",
    "Hrvatska": "HR",
    "Srbija": "RS",
    "Crna Gora": "ME",
    "Slovenija": "SI",
    "Danmark": "DK",
    "Sverige": "SE",
    "Norge": "NO",
    "Suomi": "FI",
}


def _country_pairs() -> Iterable[tuple[str, str]]:
    """Aliases first so they win over any clash, then codes and the English names."""
    yield from _COUNTRY_ALIASES.items()
    for country in pycountry.countries:
        code: str = country.alpha_2
        yield code, code
        yield country.alpha_3, code
        for attribute in ("name", "official_name", "common_name"):
            name = getattr(country, attribute, None)
            if name:
                yield name, code


@functools.cache
def _countries() -> dict[str, str]:
    """Built on first use: pycountry's tables cost ~0.1 s, which every CLI start would pay."""
    return _table(_country_pairs())


def country_code(value: str | None) -> str | None:
    """ISO 3166-1 alpha-2 (upper case) for a code, alias or English name; None if unknown."""
    return _lookup(_countries(), value)


# ------------------------------------------------------------------------------- languages

_LANGUAGE_ALIASES: dict[str, str] = {
    "english": "en",
    "engels": "en",
    "engleski": "en",
    "englisch": "en",
    "anglais": "en",
    "inglés": "en",
    "inglese": "en",
    "ingilizce": "en",
    "dutch": "nl",
    "nederlands": "nl",
    "nizozemski": "nl",
    "holländisch": "nl",
    "niederländisch": "nl",
    "flemish": "nl",
    "vlaams": "nl",
    "bosnian": "bs",
    "bosanski": "bs",
    "croatian": "hr",
    "hrvatski": "hr",
    "serbian": "sr",
    "srpski": "sr",
    "српски": "sr",
    "turkish": "tr",
    "türkçe": "tr",
    "turski": "tr",
    "türkisch": "tr",
    "turks": "tr",
    "german": "de",
    "deutsch": "de",
    "duits": "de",
    "njemački": "de",
    "allemand": "de",
    "alemán": "de",
    "french": "fr",
    "français": "fr",
    "frans": "fr",
    "francuski": "fr",
    "französisch": "fr",
    "spanish": "es",
    "español": "es",
    "castellano": "es",
    "spaans": "es",
    "španjolski": "es",
    "italian": "it",
    "italiano": "it",
    "italiaans": "it",
    "talijanski": "it",
    "portuguese": "pt",
    "português": "pt",
    "russian": "ru",
    "русский": "ru",
    "polish": "pl",
    "polski": "pl",
    "ukrainian": "uk",
    "українська": "uk",
    "albanian": "sq",
    "shqip": "sq",
    "slovenian": "sl",
    "slovenščina": "sl",
    "macedonian": "mk",
    "македонски": "mk",
    "hungarian": "hu",
    "magyar": "hu",
    "romanian": "ro",
    "română": "ro",
    "greek": "el",
    "ελληνικά": "el",
    "persian": "fa",
    "farsi": "fa",
    "arabic": "ar",
    "العربية": "ar",
    "chinese": "zh",
    "中文": "zh",
    "japanese": "ja",
    "日本語": "ja",
    "swedish": "sv",
    "svenska": "sv",
    "danish": "da",
    "dansk": "da",
    "norwegian": "no",
    "norsk": "no",
    "finnish": "fi",
    "suomi": "fi",
    "czech": "cs",
    "čeština": "cs",
    "slovak": "sk",
    "slovenčina": "sk",
    "bulgarian": "bg",
    "български": "bg",
}


def _language_pairs() -> Iterable[tuple[str, str]]:
    """Aliases, then ISO 639-1/-2 codes and English names of languages that have a 639-1 code."""
    yield from _LANGUAGE_ALIASES.items()
    for language in pycountry.languages:
        code: str | None = getattr(language, "alpha_2", None)
        if code is None:
            continue
        yield code, code
        yield language.alpha_3, code
        bibliographic = getattr(language, "bibliographic", None)
        if bibliographic:
            yield bibliographic, code
        for attribute in ("name", "common_name", "inverted_name"):
            for name in str(getattr(language, attribute, "") or "").split(";"):
                if name.strip():
                    yield name, code
                    yield _PARENTHESISED_RE.sub("", name), code  # "Modern Greek (1453-)"


@functools.cache
def _languages() -> dict[str, str]:
    return _table(_language_pairs())


@functools.cache
def _language_codes() -> dict[str, str]:
    return {key: code for key, code in _languages().items() if len(key) in (2, 3) and key.isascii()}


def language_code(value: str | None) -> str | None:
    """ISO 639-1 (lower case) for a code, name or alias; "en-US"/"pt_BR" give the primary tag."""
    code = _lookup(_languages(), value)
    if code is not None or value is None:
        return code
    tag = _LANGUAGE_TAG_RE.fullmatch(value.strip().casefold())
    return _language_codes().get(tag.group(1)) if tag else None


# ------------------------------------------------------------------------------- sentiment

_SENTIMENT_SCORES: dict[str, float] = {
    "happy": 1.0,
    "excited": 1.5,
    "positive": 0.8,
    "playful": 0.7,
    "neutral": 0.0,
    "negative": -0.8,
    "angry": -1.0,
    "sad": -0.7,
    "frustrated": -0.9,
    "positief": 0.8,
    "neutraal": 0.0,
    "negatief": -0.8,
    "positivo": 0.8,
    "neutro": 0.0,
    "negativo": -0.8,
    "yes": 0.5,
    "no": -0.5,
}


def sentiment_score(value: str | None) -> float | None:
    """Score in the legacy scale (happy 1.0, excited 1.5, angry -1.0...); numbers pass through."""
    if value is None:
        return None
    key = value.strip().casefold()
    score = _SENTIMENT_SCORES.get(key)
    if score is not None:
        return score
    if _DECIMAL_RE.fullmatch(key):
        number = float(key)
        return number + 0.0 if math.isfinite(number) else None  # + 0.0 folds -0.0
    return None


def sentiment_label(value: str | None) -> str | None:
    """POSITIVE / NEUTRAL / NEGATIVE by the sign of the score (not by substring, as HEAD did)."""
    score = sentiment_score(value)
    if score is None:
        return None
    if score > 0:
        return "POSITIVE"
    return "NEGATIVE" if score < 0 else "NEUTRAL"


# -------------------------------------------------------------------------------- booleans

_TRUE_WORDS = ("1", "true", "yes", "y", "ja", "si", "sí", "oui", "да", "はい", "evet")
# Turkish "hay\u0131r" has a dotless i that casefold() never produces from "HAYIR", hence both.
_FALSE_WORDS = (
    "0",
    "false",
    "no",
    "n",
    "nee",
    "nein",
    "non",
    "нет",
    "いいえ",
    "hay\u0131r",
    "hayir",
)
_YES_NO: dict[str, bool] = {
    **{word: True for word in _TRUE_WORDS},
    **{word: False for word in _FALSE_WORDS},
}


def yes_no(value: str | None) -> bool | None:
    """Tri-state flag: unknown or empty stays None so "not known" never reads as "no"."""
    if value is None:
        return None
    return _YES_NO.get(value.strip().casefold())
