"""Printing: Rich tables for people, plain JSON for scripts."""

from __future__ import annotations

import json
import os
import sys
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from pydantic import BaseModel
from rich.console import Console

PIPED_WIDTH = 10_000
"""Width of a console that is not a terminal and has no COLUMNS: wide enough that a table is
never squeezed (Rich would cut ``CSV_IMPORT`` to ``CS…`` at its default 80 columns), so a pipe,
a log file or ``grep`` sees every value in full."""


def _wide_when_piped(c: Console) -> Console:
    """A terminal keeps its own width and COLUMNS is honoured; anything else is not cut."""
    if not c.is_terminal and not os.environ.get("COLUMNS", "").strip().isdigit():
        c.width = PIPED_WIDTH
    return c


console = _wide_when_piped(Console(highlight=False))
err_console = _wide_when_piped(Console(stderr=True, highlight=False))


def heading(title: str) -> None:
    """A section rule on a terminal; a short line in a pipe or a log (a rule would be as wide
    as the piped console, thousands of characters)."""
    if console.width < PIPED_WIDTH:
        console.rule(title)
    else:
        console.print(f"── {title} ──")


STATUS_STYLE = {
    "PENDING": "yellow",
    "IN_PROGRESS": "cyan",
    "COMPLETED": "green",
    "FAILED": "red",
    "SKIPPED": "dim",
}


def print_json(value: Any) -> None:
    """Decimals (money) are printed as JSON numbers with their exact digits, never rounded
    through a float and never as strings (pydantic's default), so a script reads a number."""
    if isinstance(value, BaseModel) and not _has_decimal(value.model_dump()):
        text = value.model_dump_json(indent=2)
    else:
        text = _dumps(_plain(value))
    sys.stdout.write(text + "\n")
    sys.stdout.flush()


def exact_text(amount: Decimal) -> str:
    """``0.000016974`` for ``Decimal("1.6974000E-5")``: fixed point, no trailing zeros, every
    significant digit kept (``normalize()`` would round to the context's precision)."""
    text = format(amount, "f")
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return "0" if text in ("-0", "") else text


def _has_decimal(value: Any) -> bool:
    if isinstance(value, Decimal):
        return True
    if isinstance(value, dict):
        return any(_has_decimal(v) for v in value.values())
    if isinstance(value, list | tuple):
        return any(_has_decimal(v) for v in value)
    return False


def _with_decimals(as_json: Any, as_python: Any) -> Any:
    """The JSON-mode dump, with the Decimals of the Python-mode dump put back in place (where
    the two differ in shape, e.g. keys merged as text, the JSON-mode part stays as it is)."""
    if isinstance(as_python, Decimal):
        return as_python
    if isinstance(as_json, dict) and isinstance(as_python, dict) and len(as_json) == len(as_python):
        pairs = zip(as_json.items(), as_python.values(), strict=True)
        return {k: _with_decimals(v, p) for (k, v), p in pairs}
    if (
        isinstance(as_json, list)
        and isinstance(as_python, list | tuple)
        and len(as_json) == len(as_python)
    ):
        return [_with_decimals(v, p) for v, p in zip(as_json, as_python, strict=True)]
    return as_json


def _dumps(value: Any, indent: str = "") -> str:
    """``json.dumps(value, indent=2, ensure_ascii=False)``, with Decimals as exact numbers."""
    if isinstance(value, Decimal):
        return exact_text(value) if value.is_finite() else "null"
    inner = indent + "  "
    if isinstance(value, dict) and value:
        items = [
            f"{inner}{json.dumps(str(k), ensure_ascii=False)}: {_dumps(v, inner)}"
            for k, v in value.items()
        ]
        return "{\n" + ",\n".join(items) + "\n" + indent + "}"
    if isinstance(value, list) and value:
        return "[\n" + ",\n".join(inner + _dumps(v, inner) for v in value) + "\n" + indent + "]"
    return json.dumps(value, ensure_ascii=False)


def _plain(value: Any) -> Any:
    if isinstance(value, BaseModel):
        return _with_decimals(value.model_dump(mode="json"), value.model_dump())
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, datetime):
        return value.isoformat()
    if hasattr(value, "hex") and type(value).__name__ == "UUID":
        return str(value)
    return value


def styled_status(status: str) -> str:
    style = STATUS_STYLE.get(status, "")
    return f"[{style}]{status}[/]" if style else status


def fmt_time(value: datetime | None) -> str:
    if value is None:
        return "-"
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S")


def fmt_age(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f}s"
    if seconds < 5400:
        return f"{seconds / 60:.0f}m"
    if seconds < 172800:
        return f"{seconds / 3600:.1f}h"
    return f"{seconds / 86400:.1f}d"
