"""Parser for the upstream 16-column session export (the original has no header, see §2.2/§2.3).

The original parser silently turned zeros into nulls, truncated integers, rolled impossible dates
over and let one stray quote abort the whole file. Here every data record ends up as exactly one
`SourceRow` or one `RowRejection` with a reason, so an import run can always account for the file.
Only the four numeric columns and the two times are interpreted; the descriptive columns stay raw
(trimmed) and are normalised later by `domain.normalise`.
"""

from __future__ import annotations

import codecs
import csv
import hashlib
import io
import json
import math
import re
from array import array
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, tzinfo
from decimal import Decimal
from typing import Annotated, Any, Protocol
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, ValidationError

from domain.urls import USERINFO_HINT, has_userinfo, redact

COLUMNS: tuple[str, ...] = (
    "session_id",
    "start_time",
    "end_time",
    "ip_address",
    "country",
    "language",
    "messages_sent",
    "sentiment",
    "escalated",
    "forwarded_hr",
    "full_transcript_url",
    "avg_response_time",
    "tokens",
    "tokens_eur",
    "category",
    "initial_msg",
)
"""Legacy column names in file order; rejection reasons use them because they are the file's."""

N_COLUMNS = len(COLUMNS)
MAX_FIELD_CHARS = 10_000
MAX_IP_CHARS = 45
MAX_RAW_LINE_CHARS = 2_000
MAX_LINE_CHARS = 1_000_000
"""A longer physical line cannot hold a valid record (16 fields of at most MAX_FIELD_CHARS); it
is rejected unread instead of being held in memory whole."""
MAX_COUNT = 2**63 - 1  # what a BIGINT column can hold
_MAX_COUNT_DIGITS = len(str(MAX_COUNT))  # checked before int(), which refuses >4300 digits
DATETIME_FORMAT = "DD.MM.YYYY HH:MM:SS"

_FREE_TEXT_COLUMNS = frozenset({"category", "initial_msg"})
"""The only columns where a quoted line break is plausible; elsewhere it means a stray quote."""


class SourceRow(BaseModel):
    """One accepted export row: times interpreted, counts checked, descriptive columns raw."""

    model_config = ConfigDict(frozen=True)

    external_id: Annotated[str, Field(min_length=1)]
    start_time: AwareDatetime
    end_time: AwareDatetime
    ip_address: Annotated[str, Field(max_length=MAX_IP_CHARS)] | None
    country: str | None
    language: str | None
    messages_sent: Annotated[int, Field(ge=0)] | None
    sentiment: str | None
    escalated: str | None
    forwarded_hr: str | None
    transcript_url: str | None
    avg_response_time: Annotated[float, Field(ge=0, allow_inf_nan=False)] | None
    tokens: Annotated[int, Field(ge=0)] | None
    tokens_eur: Annotated[Decimal, Field(ge=0)] | None
    category: str | None
    initial_message: str | None

    def fingerprint(self) -> str:
        """Change detection key; times in UTC so it survives the JSON round trip of the store."""
        values = self.__dict__
        payload = {name: _canonical(values[name]) for name in _ROW_FIELDS}
        return hashlib.sha256(_CANONICAL_JSON.encode(payload).encode("utf-8")).hexdigest()


_ROW_FIELDS: tuple[str, ...] = tuple(SourceRow.model_fields)
_CANONICAL_JSON = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def _canonical(value: object) -> object:
    if isinstance(value, datetime):
        return value.astimezone(UTC).isoformat()
    if isinstance(value, Decimal):
        return str(value)
    return value


class RowRejection(BaseModel):
    """A data record that did not become a row, kept so the import run can show why."""

    model_config = ConfigDict(frozen=True)

    row_number: int
    raw_line: str
    reason: str


class ParsedCsv(BaseModel):
    """Outcome of one file: accepted rows and rejections, both tagged with their record number."""

    rows: list[tuple[int, SourceRow]]
    rejections: list[RowRejection]
    header_detected: bool
    bom_stripped: bool

    @property
    def rows_seen(self) -> int:
        """Data records: every one of them is either a row or a rejection."""
        return len(self.rows) + len(self.rejections)


class CsvFormatError(ValueError):
    """The file as a whole is unreadable; per-record problems are rejections instead."""


# ----------------------------------------------------------------------------------- values


_DATETIME_RE = re.compile(r"(\d{1,2})([.-])(\d{1,2})\2(\d{4}) +(\d{1,2}):(\d{2}):(\d{2})", re.ASCII)
_DATE_ONLY_RE = re.compile(r"\d{1,2}([.-])\d{1,2}\1\d{4}", re.ASCII)
_ISO_PREFIX_RE = re.compile(r"\d{4}-\d{1,2}-\d{1,2}", re.ASCII)
_INT_RE = re.compile(r"[+-]?\d+(?:\.0*)?", re.ASCII)
_NUMBER_RE = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d{1,3})?", re.ASCII)
_CONTROL_RE = re.compile(r"[\x00-\x1f\x7f]")
_LINE_BREAK_RE = re.compile(r"\r\n|\r|\n")


def _show(value: str, limit: int = 60) -> str:
    """Quotes a value for a reason, shortened so one bad cell cannot flood the report."""
    return repr(value if len(value) <= limit else value[:limit] + "…")


def _zone(name: str) -> tzinfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, TypeError):
        raise ValueError(f"unknown timezone {name!r}; use an IANA name such as UTC") from None


def _format_problem(value: str) -> str:
    if _DATE_ONLY_RE.fullmatch(value):
        return f"date without time {_show(value)}, expected {DATETIME_FORMAT}"
    if _ISO_PREFIX_RE.match(value):
        return f"ISO date {_show(value)} is not the expected {DATETIME_FORMAT}"
    return f"expected {DATETIME_FORMAT}, got {_show(value)}"


def _to_datetime(value: str, zone: tzinfo) -> datetime:
    """Wall time in the company's zone; nonexistent/ambiguous times take zoneinfo's fold=0."""
    if not value:
        raise ValueError("missing")
    match = _DATETIME_RE.fullmatch(value)
    if match is None:
        raise ValueError(_format_problem(value))
    day, _, month, year, hour, minute, second = match.groups()
    try:
        return datetime(
            int(year), int(month), int(day), int(hour), int(minute), int(second), tzinfo=zone
        )
    except ValueError as e:
        raise ValueError(f"impossible date {value} ({e})") from None


def parse_european_datetime(value: str, timezone: str) -> datetime:
    """Public form of the row parser's date rule, for callers holding a single value."""
    zone = _zone(timezone)
    if not value.strip():
        raise ValueError(f"missing date/time, expected {DATETIME_FORMAT}")
    return _to_datetime(value.strip(), zone)


def _to_count(value: str) -> int | None:
    """Whole, non-negative numbers only: the original truncated `1.9` and `12abc` silently."""
    if not value:
        return None
    if value.isascii() and value.isdigit():
        digits = value
    elif _INT_RE.fullmatch(value):
        digits = value.split(".", 1)[0]
    elif _NUMBER_RE.fullmatch(value):
        raise ValueError(f"not a whole number {_show(value)}")
    else:
        raise ValueError(f"not a number {_show(value)}")
    significant = digits.lstrip("+-0")
    if significant and digits.startswith("-"):
        raise ValueError(f"negative value {_show(value)}")
    number = int(significant) if 0 < len(significant) <= _MAX_COUNT_DIGITS else 0
    if number > MAX_COUNT or len(significant) > _MAX_COUNT_DIGITS:
        raise ValueError(f"value too large {_show(value)}")
    return number


def _to_float(value: str) -> float | None:
    if not value:
        return None
    if not _NUMBER_RE.fullmatch(value):
        raise ValueError(f"not a number {_show(value)}")
    number = float(value)
    if not math.isfinite(number):
        raise ValueError(f"value too large {_show(value)}")
    if number < 0:
        raise ValueError(f"negative value {_show(value)}")
    return abs(number)  # folds -0.0 into 0.0


def _to_decimal(value: str) -> Decimal | None:
    """Decimal keeps the file's precision (`0.0010` stays `0.0010`)."""
    if not value:
        return None
    if not _NUMBER_RE.fullmatch(value):
        raise ValueError(f"not a number {_show(value)}")
    number = Decimal(value)
    if number < 0:
        raise ValueError(f"negative value {_show(value)}")
    return number.copy_abs()  # folds -0 into 0


def _to_external_id(value: str) -> str:
    """A blank id collapsed every such row onto one record in the original; refuse it here."""
    if not value:
        raise ValueError("missing")
    if _CONTROL_RE.search(value):
        raise ValueError(f"contains control characters {_show(value)}")
    return value


def _to_ip(value: str) -> str | None:
    if len(value) > MAX_IP_CHARS:
        raise ValueError(f"longer than {MAX_IP_CHARS} characters ({len(value)})")
    return value or None


def _to_text(value: str) -> str | None:
    return value or None


def _to_url(value: str) -> str | None:
    """A transcript URL with a password in it would be stored with every event of the row and
    could send the password to whatever host it names: the row is refused instead."""
    if has_userinfo(value):
        raise ValueError(f"{redact(value)} has a user name or password in it; {USERINFO_HINT}")
    return value or None


Converter = Callable[[str], object]


def _converters(zone: tzinfo) -> tuple[tuple[str, str, Converter], ...]:
    """(column, SourceRow field, converter) in legacy column order."""

    def to_time(value: str) -> datetime:
        return _to_datetime(value, zone)

    return (
        ("session_id", "external_id", _to_external_id),
        ("start_time", "start_time", to_time),
        ("end_time", "end_time", to_time),
        ("ip_address", "ip_address", _to_ip),
        ("country", "country", _to_text),
        ("language", "language", _to_text),
        ("messages_sent", "messages_sent", _to_count),
        ("sentiment", "sentiment", _to_text),
        ("escalated", "escalated", _to_text),
        ("forwarded_hr", "forwarded_hr", _to_text),
        ("full_transcript_url", "transcript_url", _to_url),
        ("avg_response_time", "avg_response_time", _to_float),
        ("tokens", "tokens", _to_count),
        ("tokens_eur", "tokens_eur", _to_decimal),
        ("category", "category", _to_text),
        ("initial_msg", "initial_message", _to_text),
    )


def _fast_values(values: Sequence[str], zone: tzinfo) -> dict[str, Any]:
    """The common all-valid case in one straight line; raises ValueError at the first problem."""
    (sid, start, end, ip, country, language, sent, sentiment, escalated, forwarded, url,
     avg, tokens, eur, category, message) = values  # fmt: skip
    return {
        "external_id": _to_external_id(sid),
        "start_time": _to_datetime(start, zone),
        "end_time": _to_datetime(end, zone),
        "ip_address": _to_ip(ip),
        "country": country or None,
        "language": language or None,
        "messages_sent": _to_count(sent),
        "sentiment": sentiment or None,
        "escalated": escalated or None,
        "forwarded_hr": forwarded or None,
        "transcript_url": _to_url(url),
        "avg_response_time": _to_float(avg),
        "tokens": _to_count(tokens),
        "tokens_eur": _to_decimal(eur),
        "category": category or None,
        "initial_message": message or None,
    }


def _problems(values: Sequence[str], zone: tzinfo) -> list[str]:
    """Every problem of a bad record: one reason listing all of them beats fix-and-retry."""
    problems: list[str] = []
    for (column, _, convert), value in zip(_converters(zone), values, strict=True):
        try:
            convert(value)
        except ValueError as e:
            problems.append(f"{column}: {e}")
    return problems


def _convert(values: Sequence[str], zone: tzinfo) -> dict[str, Any] | list[str]:
    """Field values for a SourceRow, or the list of problems that keep the record out."""
    if max(map(len, values)) > MAX_FIELD_CHARS:
        return [
            f"{column}: value is {len(value)} characters, limit {MAX_FIELD_CHARS}"
            for column, value in zip(COLUMNS, values, strict=True)
            if len(value) > MAX_FIELD_CHARS
        ]
    try:
        out = _fast_values(values, zone)
    except ValueError:
        return _problems(values, zone) or ["invalid value"]
    if out["end_time"] < out["start_time"]:
        return [f"end_time: {values[2]} is before start_time {values[1]}"]
    return out


# ---------------------------------------------------------------------------------- records


_HEADER_NAMES: dict[str, str] = {
    **{name.replace("_", ""): name for name in COLUMNS},
    "id": "session_id",
    "externalid": "session_id",
    "externalsessionid": "session_id",
    "sessionid": "session_id",
    "transcripturl": "full_transcript_url",
    "fulltranscript": "full_transcript_url",
    "initialmessage": "initial_msg",
    "countrycode": "country",
    "avgresponsetimeseconds": "avg_response_time",
    "tokenseur": "tokens_eur",
}
_ID_HEADER_KEYS = frozenset(k for k, v in _HEADER_NAMES.items() if v == "session_id")
_HEADER_KEY_RE = re.compile(r"[\s_\-]+")


@dataclass(frozen=True, slots=True)
class _Layout:
    """Where each legacy column sits in the file (identity unless a header reorders them)."""

    order: tuple[int, ...] | None
    free_positions: frozenset[int]  # file positions of category / initial_msg
    time_positions: tuple[int, int]  # file positions of start_time / end_time

    @classmethod
    def of(cls, order: tuple[int, ...] | None) -> _Layout:
        def where(column: str) -> int:
            index = COLUMNS.index(column)
            return order[index] if order else index

        free = frozenset(where(c) for c in _FREE_TEXT_COLUMNS)
        return cls(order, free, (where("start_time"), where("end_time")))

    def starts_a_record(self, line: str) -> bool:
        """Shaped like `id,date,date,...`: seen inside a quoted value, a quote swallowed a row."""
        parts = line.split(",")
        start, end = self.time_positions
        return len(parts) > max(start, end) and all(
            _DATETIME_RE.fullmatch(parts[i].strip()) for i in (start, end)
        )

    def plausible_multiline(self, fields: list[str]) -> bool:
        """A quoted line break is believed only in free text and only if no row hides in it."""
        if len(fields) != N_COLUMNS:
            return False
        for i, value in enumerate(fields):
            if "\n" not in value and "\r" not in value:
                continue
            if i not in self.free_positions:
                return False
            if any(map(self.starts_a_record, _LINE_BREAK_RE.split(value)[1:])):
                return False
        return True


_POSITIONAL = _Layout.of(None)


def _header_layout(fields: Sequence[str]) -> _Layout | None:
    """A layout when the record is a header, else None (then it is data)."""
    names = [_HEADER_NAMES.get(_HEADER_KEY_RE.sub("", f.strip().lower())) for f in fields]
    first_key = _HEADER_KEY_RE.sub("", fields[0].strip().lower()) if fields else ""
    if first_key not in _ID_HEADER_KEYS and sum(n is not None for n in names) <= N_COLUMNS // 2:
        return None
    if len(names) != N_COLUMNS or set(names) != set(COLUMNS):
        return _POSITIONAL
    order = tuple(names.index(column) for column in COLUMNS)
    if order == tuple(range(N_COLUMNS)):
        return _POSITIONAL
    return _Layout.of(order)


Record = tuple[int, int, list[str] | str]
"""(first physical line, line after the last, fields or the quoting problem); plain tuples are
the cheapest thing to create 100,000 times."""


class _TooLong(str):
    """A physical line over MAX_LINE_CHARS: the csv reader sees a harmless stand-in, the
    rejection shows the line's start."""

    raw: str
    length: int

    def __new__(cls, raw: str, length: int) -> _TooLong:
        line = super().__new__(cls, "?\n")
        line.raw = raw
        line.length = length
        return line


class _TextStream(Protocol):
    def readline(self, size: int = -1, /) -> str: ...


def _bounded_lines(stream: _TextStream, limit: int = MAX_LINE_CHARS) -> Iterator[str]:
    """Physical lines with their line breaks (the stream must not translate them), none held
    longer than ``limit`` characters: a file without line breaks is not one huge string."""
    while True:
        line = stream.readline(limit)
        if not line:
            return
        if len(line) < limit or line[-1] in "\r\n":
            yield line
            continue
        length = len(line)
        while True:
            more = stream.readline(limit)
            length += len(more)
            if len(more) < limit or more[-1] in "\r\n":
                break
        yield _TooLong(line[:MAX_RAW_LINE_CHARS], length)


class _Lines:
    """The physical lines from the current record on: a quoting failure restarts reading on the
    record's second line, so those are kept until the record is settled, and no longer."""

    def __init__(self, source: Iterable[str]) -> None:
        self._next = iter(source).__next__
        self._buf: deque[str] = deque()
        self._base = 0
        """Index of ``_buf[0]``."""
        self.too_long: set[int] = set()
        """Indexes of the `_TooLong` lines read so far."""

    def release(self, upto: int) -> None:
        buf = self._buf
        while self._base < upto and buf:
            buf.popleft()
            self._base += 1
        if self.too_long:
            self.too_long = {i for i in self.too_long if i >= upto}

    def span(self, first: int, end: int) -> list[str]:
        return [self._buf[i - self._base] for i in range(first, end)]

    def feed(self, start: int) -> Iterator[str]:
        i = start
        buf = self._buf
        while True:
            k = i - self._base
            if k < len(buf):
                yield buf[k]
            else:
                try:
                    line = self._next()
                except StopIteration:
                    return
                buf.append(line)
                if type(line) is _TooLong:
                    self.too_long.add(i)
                yield line
            i += 1


def _split_records(lines: _Lines, multiline_ok: Callable[[list[str]], bool]) -> Iterator[Record]:
    """csv records, but a quoting failure costs only the line it started on.

    A stray quote makes the csv module read on into the following lines. When that ends in an
    error, or in a multi-line record that is not a plausible quoted line break, the record's first
    line is rejected alone and reading restarts on the next line, so later rows still parse.
    A line too long to hold a record is rejected on its own; the reader saw a stand-in for it.
    """
    start = 0
    while True:
        reader = csv.reader(lines.feed(start), strict=True, skipinitialspace=True)
        while True:
            first = start + reader.line_num
            lines.release(first)
            try:
                fields = next(reader)
            except StopIteration:
                return
            except csv.Error as e:
                yield first, first + 1, _too_long(lines, first) or f"malformed quoting ({e})"
                start = first + 1
                break
            end = start + reader.line_num
            if lines.too_long and first in lines.too_long:
                yield first, first + 1, _too_long(lines, first) or ""
                start = first + 1
                break
            if end - first > 1 and (
                not multiline_ok(fields) or any(i in lines.too_long for i in range(first, end))
            ):
                yield first, first + 1, _STRAY_QUOTE
                start = first + 1
                break
            yield first, end, fields


def _too_long(lines: _Lines, first: int) -> str | None:
    if first not in lines.too_long:
        return None
    line = lines.span(first, first + 1)[0]
    assert isinstance(line, _TooLong)
    return f"line is {line.length} characters, limit {MAX_LINE_CHARS}"


_STRAY_QUOTE = (
    "malformed quoting (a quoted value opened on this line runs into the following lines; "
    "this line was rejected on its own)"
)


def _is_blank(lines: _Lines, record: Record) -> bool:
    """Physically blank: whitespace only. A quoted empty value (`""`) is a record, not a blank."""
    first, end, fields = record
    return (
        not isinstance(fields, str)
        and len(fields) <= 1
        and not "".join(lines.span(first, end)).strip()
    )


def _raw(lines: _Lines, first: int, end: int) -> str:
    text = "".join(getattr(x, "raw", x) for x in lines.span(first, end))
    if text.endswith("\n"):
        text = text[:-1]
    if text.endswith("\r"):
        text = text[:-1]
    return text[:MAX_RAW_LINE_CHARS]


class _SeenIds:
    """External id -> row number of its first occurrence, in flat arrays (12 bytes a slot
    instead of ~150 for a dict of strings), so a file of millions of rows fits in memory.

    Ids are compared by a 64-bit hash: two different ids in one file collide with a
    probability of about n^2 / 2^65 (1e-7 for two million rows)."""

    def __init__(self) -> None:
        self._keys = array("Q", bytes(8 * 1024))
        self._rows = array("I", bytes(4 * 1024))
        self._mask = 1023
        self._used = 0

    def find(self, external_id: str) -> tuple[int | None, int, int]:
        """(the row that had this id first or None, the id's key, the slot for `remember`)."""
        key = hash(external_id) & 0xFFFF_FFFF_FFFF_FFFF or 1
        keys, mask = self._keys, self._mask
        i = key & mask
        while (k := keys[i]) != key:
            if k == 0:
                return None, key, i
            i = (i + 1) & mask
        return int(self._rows[i]), key, i

    def remember(self, key: int, slot: int, row: int) -> None:
        """Stores a key at the free slot `find` gave (nothing was stored in between)."""
        self._keys[slot] = key
        self._rows[slot] = row
        self._used += 1
        if self._used * 3 > self._mask * 2:
            self._grow()

    def _grow(self) -> None:
        old_keys, old_rows = self._keys, self._rows
        size = 2 * len(old_keys)
        self._keys = keys = array("Q", bytes(8 * size))
        self._rows = rows = array("I", bytes(4 * size))
        self._mask = mask = size - 1
        for key, row in zip(old_keys, old_rows, strict=True):
            if key:
                i = key & mask
                while keys[i]:
                    i = (i + 1) & mask
                keys[i] = key
                rows[i] = row


# ------------------------------------------------------------------------------------ file


def _decode(data: str | bytes) -> tuple[str, bool]:
    """Text without a BOM, and whether one was there (it used to stick to the first id)."""
    if isinstance(data, bytes):
        choose_encoding([data], "utf-8")
        data = data.decode("utf-8")
    text = data.lstrip("\ufeff")
    return text, len(text) != len(data)


AUTO_ENCODINGS = ("utf-8", "cp1252")
"""What ``--encoding auto`` tries, in order: the export's own encoding, then what a Windows
spreadsheet saves."""
ENCODING_HINT = "pass --encoding cp1252 (or --encoding auto) if the export uses another encoding"


@dataclass
class _Check:
    """One candidate encoding decoding the stream, until its first invalid byte."""

    name: str
    decoder: codecs.IncrementalDecoder
    problem: str | None = None

    def feed(self, chunk: bytes, offset: int, lines: int, final: bool = False) -> None:
        pending = len(self.decoder.getstate()[0])
        try:
            self.decoder.decode(chunk, final)
        except UnicodeDecodeError as e:
            where = offset - pending + e.start
            line = lines + e.object[: e.start].count(b"\n") + 1
            self.problem = (
                f"byte 0x{e.object[e.start]:02x} at offset {where}, line {line} ({e.reason})"
            )


def _label(encoding: str) -> str:
    name = codecs.lookup(encoding).name
    return "UTF-8" if name == "utf-8" else name


def choose_encoding(chunks: Iterable[bytes], requested: str = "utf-8") -> str:
    """The encoding the whole export decodes with: ``requested`` (a codec name), or for
    ``auto`` the first of AUTO_ENCODINGS that fits. Checked over every byte before any row is
    imported, so a bad byte at the end does not leave half a file imported; the error names
    the first bad byte's offset and line."""
    names = AUTO_ENCODINGS if requested == "auto" else (requested,)
    try:
        checks = [_Check(n, codecs.getincrementaldecoder(n)("strict")) for n in names]
    except LookupError:
        raise CsvFormatError(f"unknown encoding {requested!r}") from None
    offset = lines = 0
    for chunk in chunks:
        if offset == 0 and chunk.startswith((b"\xff\xfe", b"\xfe\xff")):
            utf8 = [c for c in checks if codecs.lookup(c.name).name == "utf-8"]
            if utf8:
                raise CsvFormatError("the file is UTF-16 encoded; the export must be UTF-8")
        for check in checks:
            if check.problem is None:
                check.feed(chunk, offset, lines)
        if all(c.problem for c in checks):
            break
        offset += len(chunk)
        lines += chunk.count(b"\n")
    else:
        for check in checks:
            if check.problem is None:
                check.feed(b"", offset, lines, final=True)
    for check in checks:
        if check.problem is None:
            return codecs.lookup(check.name).name
    problems = "; ".join(f"not {_label(c.name)}: {c.problem}" for c in checks)
    if len(checks) == 1:
        problems = f"the file is not valid {_label(checks[0].name)}: {checks[0].problem}"
    raise CsvFormatError(f"{problems}; {ENCODING_HINT}")


def _describe(error: Any) -> str:
    return f"{'.'.join(map(str, error['loc']))}: {error['msg']}"


Parsed = tuple[int, SourceRow] | RowRejection
"""What one data record became: an accepted row with its number, or a rejection."""


class CsvRowStream:
    """Parses an export record by record, holding only the record being read: a file of any
    size goes through in bounded memory. Every data record becomes exactly one row or one
    rejection; ``header_detected`` and ``bom_stripped`` are known once the first lines are read.
    """

    def __init__(self, timezone: str = "UTC") -> None:
        self.zone = _zone(timezone)
        self.layout = _POSITIONAL
        self.seen = _SeenIds()
        self.header_detected = False
        self.bom_stripped = False

    def parse_text(self, stream: _TextStream) -> Iterator[Parsed]:
        """Records from a text stream opened with ``newline=""`` (line breaks untranslated)."""
        return self.parse_lines(self._without_bom(_bounded_lines(stream)))

    def _without_bom(self, lines: Iterable[str]) -> Iterator[str]:
        """A BOM used to stick to the first id."""
        it = iter(lines)
        for first in it:
            if not isinstance(first, _TooLong):
                stripped = first.lstrip("\ufeff")
                self.bom_stripped = len(stripped) != len(first)
                first = stripped
            if first:
                yield first
            break
        yield from it

    def parse_lines(self, source: Iterable[str]) -> Iterator[Parsed]:
        """Row numbers count non-blank records from 1 (a header is record 1), so they stay
        meaningful when a quoted value spans lines."""
        lines = _Lines(source)
        number = 0
        for record in _split_records(lines, self.layout_multiline_ok):
            if _is_blank(lines, record):
                continue
            fields = record[2]
            number += 1
            if number == 1 and not isinstance(fields, str):
                layout = _header_layout(fields)
                if layout is not None:
                    self.layout = layout
                    self.header_detected = True
                    continue
            yield self._record(lines, number, record)

    def layout_multiline_ok(self, fields: list[str]) -> bool:
        return self.layout.plausible_multiline(fields)

    def _record(self, lines: _Lines, number: int, record: Record) -> Parsed:
        """Each row still goes through pydantic validation (cheap, and it keeps the model's
        invariants honest)."""
        fields = record[2]
        if isinstance(fields, str):
            return _rejection(lines, number, record, fields)
        if len(fields) != N_COLUMNS:
            reason = f"expected {N_COLUMNS} columns, found {len(fields)}"
            return _rejection(lines, number, record, reason)
        order = self.layout.order
        values = [fields[i].strip() for i in order] if order else list(map(str.strip, fields))
        result = _convert(values, self.zone)
        if isinstance(result, list):
            return _rejection(lines, number, record, "; ".join(result))
        external_id: str = result["external_id"]
        first, key, slot = self.seen.find(external_id)
        if first is not None:
            reason = f"session_id: duplicate of row {first} ({_show(external_id)})"
            return _rejection(lines, number, record, reason)
        try:
            row = SourceRow.model_validate(result)
        except ValidationError as e:  # a gap between the checks above and the model's
            reason = "; ".join(_describe(error) for error in e.errors())
            return _rejection(lines, number, record, reason)
        self.seen.remember(key, slot, number)
        return number, row


def _rejection(lines: _Lines, number: int, record: Record, reason: str) -> RowRejection:
    raw = _raw(lines, record[0], record[1])
    # The rejection is stored and shown: never with a password in it.
    raw, reason = redact(raw), redact(reason)
    return RowRejection(row_number=number, raw_line=raw, reason=reason)


def parse_csv(data: str | bytes, timezone: str = "UTC") -> ParsedCsv:
    """Parses a whole export held in memory; `timezone` is the IANA zone the file's wall-clock
    times are in. Imports stream instead (`CsvRowStream`); this is the same parser."""
    text, bom_stripped = _decode(data)
    stream = CsvRowStream(timezone)
    rows: list[tuple[int, SourceRow]] = []
    rejections: list[RowRejection] = []
    for parsed in stream.parse_lines(_bounded_lines(io.StringIO(text, newline=""))):
        if isinstance(parsed, RowRejection):
            rejections.append(parsed)
        else:
            rows.append(parsed)
    return ParsedCsv.model_construct(
        rows=rows,
        rejections=rejections,
        header_detected=stream.header_detected,
        bom_stripped=bom_stripped,
    )
