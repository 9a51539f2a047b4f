"""The one transcript parser (§4.1), replacing the original's three divergent ones (§14 item 14).

The original split multi-line messages into `unknown` rows, threw the embedded timestamps away or
could not read them at all, dropped text before the first header and invented times (1970, "now",
even spreading; §14 item 15). Here nothing is invented and nothing is dropped: every non-blank
character of the file ends up in exactly one message, or the file is rejected with a line number.

Rules, in the order they are applied:

* A leading BOM is stripped; CRLF and lone CR count as line breaks. Any other C0 control character
  (and DEL) rejects the transcript: such text is binary or corrupt, not a conversation.
* A header is `[DD.MM.YYYY HH:MM:SS] Label: text` or `Label: text`. Day, month and hour may have one
  digit; blanks around the bracket, the label and the colon are tolerated. A label starts with a
  letter and holds at most 40 letters, digits, blanks, `-`, `_` or `.`. A label directly followed
  by `://` is a URL scheme, never a header.
* False headers: colons are common in chat text (`Note: bring your ID`, `Tip: ...`). So a header
  WITHOUT a timestamp needs a known label (`ROLE_ALIASES`) or a label that already appeared on a
  timestamped header earlier in the same transcript. A header WITH a valid timestamp may carry any
  label; unknown labels get role "other" and keep the label in `speaker`. The decision for a line
  depends only on the lines above it, so a transcript that is still growing parses to the same
  messages plus new ones (only the last message can gain lines).
* Bracket text that looks like a timestamp (only digits, blanks and `. : / - T`) in front of
  `Label:` must be a real `DD.MM.YYYY HH:MM:SS` date, or the transcript is rejected: silently
  misreading an ISO or impossible date (`31.02.2025`, which the original rolled over) would attach
  wrong times or glue the whole conversation into one message. Any other bracket text (`[note]`,
  Markdown links) makes the line ordinary text. A valid bracket not followed by `Label:` is also
  ordinary text.
* Every other line continues the current message; lines before the first header form a preamble
  message (role "other", speaker ""), they are not dropped.
* Content: trailing whitespace is stripped from every line, leading indentation of continuation
  lines is kept (Markdown), blank lines at the start or end of a message are removed and a run of
  blank lines inside a message becomes one blank line (one paragraph break). Blank lines between
  messages are therefore noise.
* A header with empty text and no continuation is kept with content "": the message happened, and
  dropping it would shift `order` and undercount the user's messages.
* Timestamps are wall times in the company's timezone (ambiguous or missing DST times take
  zoneinfo's fold=0); a header without one gets None. Messages keep file order, never re-sorted,
  also for equal or decreasing times; times outside the session window are left for callers to flag.
* Empty or blank input gives an empty list; whether that is a problem is the caller's decision.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import datetime, tzinfo
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, field_validator

ROLES: tuple[str, ...] = ("user", "assistant", "system", "other")

ROLE_ALIASES: dict[str, str] = {
    "user": "user",
    "customer": "user",
    "visitor": "user",
    "human": "user",
    "gebruiker": "user",
    "klant": "user",
    "assistant": "assistant",
    "assistent": "assistant",
    "bot": "assistant",
    "chatbot": "assistant",
    "ai": "assistant",
    "system": "system",
    "systeem": "system",
}
"""Labels (case-insensitive) that name a role. Deliberately small: ambiguous ones such as `Agent`
or `Medewerker` (a human hand-off? the employee asking?) stay "other" with their label kept."""

MAX_LABEL_CHARS = 40
TIMESTAMP_FORMAT = "DD.MM.YYYY HH:MM:SS"

_CONTROL_RE = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")
_HEADER_RE = re.compile(
    r"[ \t]*(?:\[(?P<bracket>[^\]]*)\][ \t]*)?"
    rf"(?P<label>[^\W\d_][\w.\- \t]{{0,{MAX_LABEL_CHARS - 1}}}?)[ \t]*:(?!//)[ \t]*(?P<text>.*)"
)
_STAMP_CHARS_RE = re.compile(r"[\d\s.:/T-]+", re.ASCII)
_STAMP_SEPARATOR_RE = re.compile(r"\d[.:/-]|[.:/-]\d", re.ASCII)
_STAMP_RE = re.compile(r"(\d{1,2})\.(\d{1,2})\.(\d{4})[ \t]+(\d{1,2}):(\d{2}):(\d{2})", re.ASCII)


class Message(BaseModel):
    """One chat message; `line` points back into the file so a reviewer can find it."""

    model_config = ConfigDict(frozen=True)

    order: int = Field(ge=0)
    role: str
    speaker: str
    timestamp: AwareDatetime | None
    content: str
    line: int = Field(ge=1)

    @field_validator("role")
    @classmethod
    def _known_role(cls, value: str) -> str:
        if value not in ROLES:
            raise ValueError(f"role must be one of {', '.join(ROLES)}")
        return value


class TranscriptParseError(ValueError):
    """The transcript cannot be read faithfully; `line` is 1-based, as an editor shows it."""

    def __init__(self, line: int, reason: str) -> None:
        super().__init__(f"line {line}: {reason}")
        self.line = line
        self.reason = reason

    def __reduce__(self) -> tuple[type[TranscriptParseError], tuple[int, str]]:
        """Keeps the error picklable (worker processes) despite the two-argument constructor."""
        return (type(self), (self.line, self.reason))


def _zone(name: str) -> tzinfo:
    """A bad zone is the company's configuration problem, not the transcript's: plain ValueError."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, TypeError):
        raise ValueError(f"unknown timezone {name!r}; use an IANA name such as UTC") from None


def _show(value: str, limit: int = 40) -> str:
    return value if len(value) <= limit else value[:limit] + "…"


def _looks_like_stamp(bracket: str) -> bool:
    return bool(_STAMP_CHARS_RE.fullmatch(bracket) and _STAMP_SEPARATOR_RE.search(bracket))


def _timestamp(bracket: str, line: int, zone: tzinfo) -> datetime | None:
    """None for bracket text that is not meant as a time; raises for a broken time."""
    value = bracket.strip()
    match = _STAMP_RE.fullmatch(value)
    if match is None:
        if not _looks_like_stamp(value):
            return None
        raise TranscriptParseError(
            line, f"unrecognised timestamp [{_show(value)}], expected [{TIMESTAMP_FORMAT}]"
        )
    day, month, year, hour, minute, second = map(int, match.groups())
    try:
        return datetime(year, month, day, hour, minute, second, tzinfo=zone)
    except ValueError as e:
        raise TranscriptParseError(line, f"impossible date [{value}] ({e})") from None


def _label_key(label: str) -> str:
    key = label.casefold()
    return key if " " not in key and "\t" not in key else " ".join(key.split())


_Header = tuple[str, str, datetime | None, str]


def _header(line: str, number: int, zone: tzinfo, stamped: set[str]) -> _Header | None:
    """(role, speaker, timestamp, text) when the line starts a message; `stamped` is updated."""
    if ":" not in line:  # cheap rejection of most continuation lines
        return None
    match = _HEADER_RE.match(line)
    if match is None:
        return None
    label = match["label"].rstrip()
    key = _label_key(label)
    bracket = match["bracket"]
    if bracket is None:
        role = ROLE_ALIASES.get(key)
        if role is None:
            if key not in stamped:
                return None
            role = "other"
        return role, label, None, match["text"]
    stamp = _timestamp(bracket, number, zone)
    if stamp is None:
        return None
    stamped.add(key)
    return ROLE_ALIASES.get(key, "other"), label, stamp, match["text"]


def _content(parts: list[str]) -> str:
    """Drops leading and trailing blank lines and collapses inner runs of them into one."""
    kept: list[str] = []
    for part in parts:
        if part or (kept and kept[-1]):
            kept.append(part)
    if kept and not kept[-1]:
        kept.pop()
    return "\n".join(kept)


def parse_transcript(text: str, timezone: str = "UTC") -> list[Message]:
    """Messages in file order; raises TranscriptParseError rather than guess (see module doc)."""
    zone = _zone(timezone)
    text = text.removeprefix("\ufeff").replace("\r\n", "\n").replace("\r", "\n")
    bad = _CONTROL_RE.search(text)
    if bad is not None:
        number = text.count("\n", 0, bad.start()) + 1
        raise TranscriptParseError(number, f"binary or control characters (U+{ord(bad[0]):04X})")

    # (header, line number, content lines) per message; "" in the lines marks a blank line
    opened: list[tuple[_Header, int, list[str]]] = []
    stamped: set[str] = set()
    for number, raw in enumerate(text.split("\n"), start=1):
        line = raw.rstrip()
        if not line:
            if opened:
                opened[-1][2].append("")
            continue
        header = _header(line, number, zone, stamped)
        if header is not None:
            opened.append((header, number, [header[3]]))
        elif opened:
            opened[-1][2].append(line)
        else:
            opened.append((("other", "", None, ""), number, [line]))
    return [
        Message(
            order=order,
            role=role,
            speaker=speaker,
            timestamp=stamp,
            content=_content(parts),
            line=number,
        )
        for order, ((role, speaker, stamp, _), number, parts) in enumerate(opened)
    ]


def user_message_count(messages: Sequence[Message]) -> int:
    """What the dashboard calls "messages sent": the user's messages, empty ones included."""
    return sum(1 for m in messages if m.role == "user")
