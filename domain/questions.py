"""Question normalisation: one rule, so the catalogue counts the same question once."""

from __future__ import annotations

from collections.abc import Iterable

MAX_QUESTIONS = 5


def normalise_questions(questions: Iterable[object], cap: int = MAX_QUESTIONS) -> list[str]:
    """Trim, collapse whitespace, drop empties and non-text, de-duplicate ignoring case.

    The first spelling of a question is kept, in order.
    """
    seen: set[str] = set()
    result: list[str] = []
    for q in questions:
        if not isinstance(q, str):
            continue
        text = " ".join(q.split())
        key = text.casefold()
        if not text or key in seen:
            continue
        seen.add(key)
        result.append(text)
        if len(result) == cap:
            break
    return result
