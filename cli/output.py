"""Printing: Rich tables for people, plain JSON for scripts."""

from __future__ import annotations

import json
import os
import sys
from datetime import UTC, datetime
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

STATUS_STYLE = {
    "PENDING": "yellow",
    "IN_PROGRESS": "cyan",
    "COMPLETED": "green",
    "FAILED": "red",
    "SKIPPED": "dim",
}


def print_json(value: Any) -> None:
    if isinstance(value, BaseModel):
        text = value.model_dump_json(indent=2)
    else:
        text = json.dumps(_plain(value), indent=2, ensure_ascii=False)
    sys.stdout.write(text + "\n")
    sys.stdout.flush()


def _plain(value: Any) -> Any:
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json")
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
