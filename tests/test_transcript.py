"""The transcript parser: the §4.1 example, every §4.5 edge case, the false-header rule, and
properties (round trip, nothing lost, prefix stability) over generated transcripts."""

from __future__ import annotations

import itertools
import pickle
import re
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from domain.transcript import (
    ROLE_ALIASES,
    Message,
    TranscriptParseError,
    parse_transcript,
    user_message_count,
)

AMS = ZoneInfo("Europe/Amsterdam")
EXAMPLE = """\
[14.05.2025 09:12:03] User: Hoi, ik ben ziek. Wie moet ik bellen?
[14.05.2025 09:12:05] Assistant: Wat vervelend! Meld je ziek bij je leidinggevende.
Je kunt ook de HR-lijn bellen.

[14.05.2025 09:13:40] User: Moet ik een doktersbriefje hebben?
[14.05.2025 09:13:42] Assistant: Nee, pas vanaf de derde ziektedag.
"""
TS = "[14.05.2025 09:12:03]"


def summary(messages: list[Message]) -> list[tuple[str, str, str]]:
    return [(m.role, m.speaker, m.content) for m in messages]


def parse_error(text: str, timezone: str = "UTC") -> TranscriptParseError:
    with pytest.raises(TranscriptParseError) as info:
        parse_transcript(text, timezone)
    return info.value


# ------------------------------------------------------------------------- the §4.1 example


def test_reference_example_gives_four_messages_with_local_times() -> None:
    messages = parse_transcript(EXAMPLE, "Europe/Amsterdam")
    assert summary(messages) == [
        ("user", "User", "Hoi, ik ben ziek. Wie moet ik bellen?"),
        (
            "assistant",
            "Assistant",
            "Wat vervelend! Meld je ziek bij je leidinggevende.\nJe kunt ook de HR-lijn bellen.",
        ),
        ("user", "User", "Moet ik een doktersbriefje hebben?"),
        ("assistant", "Assistant", "Nee, pas vanaf de derde ziektedag."),
    ]
    assert [m.timestamp for m in messages] == [
        datetime(2025, 5, 14, 9, 12, 3, tzinfo=AMS),
        datetime(2025, 5, 14, 9, 12, 5, tzinfo=AMS),
        datetime(2025, 5, 14, 9, 13, 40, tzinfo=AMS),
        datetime(2025, 5, 14, 9, 13, 42, tzinfo=AMS),
    ]
    first = messages[0].timestamp
    assert first is not None
    assert first.astimezone(UTC) == datetime(2025, 5, 14, 7, 12, 3, tzinfo=UTC)
    assert [m.order for m in messages] == [0, 1, 2, 3]
    assert [m.line for m in messages] == [1, 2, 5, 6]
    assert user_message_count(messages) == 2


def test_default_timezone_is_utc() -> None:
    stamp = parse_transcript(EXAMPLE)[0].timestamp
    assert stamp == datetime(2025, 5, 14, 9, 12, 3, tzinfo=UTC)
    assert stamp is not None and stamp.utcoffset() == timedelta(0)


def test_unknown_timezone_is_a_configuration_error_not_a_parse_error() -> None:
    with pytest.raises(ValueError, match="unknown timezone") as info:
        parse_transcript(EXAMPLE, "Mars/Olympus")
    assert not isinstance(info.value, TranscriptParseError)


def test_ambiguous_dst_time_takes_the_first_occurrence() -> None:
    (m,) = parse_transcript("[26.10.2025 02:30:00] User: hi", "Europe/Amsterdam")
    assert m.timestamp is not None and m.timestamp.utcoffset() == timedelta(hours=2)


# ------------------------------------------------------------------------- header syntax


@pytest.mark.parametrize(
    ("label", "role"),
    [
        ("User", "user"),
        ("USER", "user"),
        ("user", "user"),
        ("Customer", "user"),
        ("Visitor", "user"),
        ("Human", "user"),
        ("Gebruiker", "user"),
        ("Klant", "user"),
        ("Assistant", "assistant"),
        ("assistant", "assistant"),
        ("Assistent", "assistant"),
        ("Bot", "assistant"),
        ("Chatbot", "assistant"),
        ("AI", "assistant"),
        ("System", "system"),
        ("SYSTEEM", "system"),
    ],
)
def test_known_labels_map_to_roles_with_and_without_timestamp(label: str, role: str) -> None:
    for line in (f"{TS} {label}: hallo", f"{label}: hallo"):
        (m,) = parse_transcript(line)
        assert (m.role, m.speaker, m.content, m.line) == (role, label, "hallo", 1)


@pytest.mark.parametrize("label", ["Agent", "HR", "HR-medewerker", "Dr. Smith", "agent_2", "Émile"])
def test_other_labels_with_a_timestamp_become_role_other_keeping_the_label(label: str) -> None:
    (m,) = parse_transcript(f"{TS} {label}: Ik neem het over.")
    assert (m.role, m.speaker, m.content) == ("other", label, "Ik neem het over.")
    assert m.timestamp == datetime(2025, 5, 14, 9, 12, 3, tzinfo=UTC)


def test_lenient_one_digit_fields_and_blanks_around_tokens() -> None:
    text = (
        "[1.5.2025 9:05:00] User: een\n"
        "  [ 14.05.2025   09:12:03 ]   Bot  :   twee  \n"
        "[14.05.2025 09:12:04]User:drie\n"
        "\tAssistant\t:\tvier"
    )
    messages = parse_transcript(text)
    assert summary(messages) == [
        ("user", "User", "een"),
        ("assistant", "Bot", "twee"),
        ("user", "User", "drie"),
        ("assistant", "Assistant", "vier"),
    ]
    assert messages[0].timestamp == datetime(2025, 5, 1, 9, 5, 0, tzinfo=UTC)
    assert messages[1].timestamp == datetime(2025, 5, 14, 9, 12, 3, tzinfo=UTC)
    assert messages[3].timestamp is None


def test_colons_after_the_first_belong_to_the_text() -> None:
    (m,) = parse_transcript(f"{TS} User: kan ik om 10:30 bellen? Zie: https://x.nl/a:b")
    assert m.content == "kan ik om 10:30 bellen? Zie: https://x.nl/a:b"


def test_label_length_limit_is_forty_characters() -> None:
    ok = "A" * 40
    (m,) = parse_transcript(f"{TS} {ok}: x")
    assert (m.role, m.speaker) == ("other", ok)
    text = f"User: hi\n{TS} {'A' * 41}: x"
    assert summary(parse_transcript(text)) == [("user", "User", f"hi\n{TS} {'A' * 41}: x")]


def test_label_must_start_with_a_letter() -> None:
    text = f"User: hi\n{TS} 2nd: x\n{TS} _x: y\n{TS} -x: z"
    (m,) = parse_transcript(text)
    assert m.content == f"hi\n{TS} 2nd: x\n{TS} _x: y\n{TS} -x: z"


def test_timestamp_without_a_label_is_ordinary_text() -> None:
    text = f"User: hi\n{TS} (geen spreker)\n{TS} https://example.com"
    (m,) = parse_transcript(text)
    assert m.content == f"hi\n{TS} (geen spreker)\n{TS} https://example.com"


# ------------------------------------------------------------------------- false headers


@pytest.mark.parametrize(
    "line",
    [
        "Note: bring your ID",
        "Let op: neem je pas mee",
        "Tip: bel voor 10 uur",
        "Re: ziekmelding",
        "HR: 020-1234567",
        "Agent: (niet eerder gezien)",
        "https://example.com/ziekmelden",
        "http://example.com:8080/x",
        "User://not-a-header",
        "10:30 afspraak",
        "- Stap 1: bel je manager",
        "**Belangrijk:** meld je op tijd",
        "Een hele lange zin die toevallig eindigt met een dubbele punt:",
    ],
)
def test_colon_lines_without_timestamp_and_unknown_label_continue_the_message(line: str) -> None:
    text = f"{TS} Assistant: Goed om te weten:\n{line}\nUser: dank"
    messages = parse_transcript(text)
    assert summary(messages) == [
        ("assistant", "Assistant", f"Goed om te weten:\n{line}"),
        ("user", "User", "dank"),
    ]
    assert [m.line for m in messages] == [1, 3]


def test_label_seen_with_a_timestamp_is_a_header_later_without_one() -> None:
    text = (
        "Agent: nog geen header\n"  # before the first timestamped Agent: preamble
        f"{TS} Agent: Hallo, ik ben Sanne van HR.\n"
        "User: Hoi Sanne\n"
        "AGENT: Waarmee kan ik helpen?\n"  # same label, any case: header, no timestamp
        "Note: dit blijft tekst\n"
    )
    messages = parse_transcript(text)
    assert [(m.role, m.speaker, m.timestamp is None, m.content, m.line) for m in messages] == [
        ("other", "", True, "Agent: nog geen header", 1),
        ("other", "Agent", False, "Hallo, ik ben Sanne van HR.", 2),
        ("user", "User", True, "Hoi Sanne", 3),
        ("other", "AGENT", True, "Waarmee kan ik helpen?\nNote: dit blijft tekst", 4),
    ]


def test_timestamped_note_line_is_always_a_header() -> None:
    text = f"User: hi\n{TS} Note: bring your ID"
    assert summary(parse_transcript(text)) == [
        ("user", "User", "hi"),
        ("other", "Note", "bring your ID"),
    ]


# ------------------------------------------------------------------------- bracket text


@pytest.mark.parametrize(
    "line",
    [
        "[note] User: hi",
        "[Bijlage](https://x.nl/a.pdf) User: hi",
        "[1] User: hi",
        "[1]: https://example.com",
        "[ ] User: taak",
        "[x] Bot: klaar",
        "[14 mei 2025 09:12] User: hi",
        "[unclosed User: hi",
    ],
)
def test_bracket_text_that_is_not_a_timestamp_makes_the_line_ordinary_text(line: str) -> None:
    text = f"{TS} Assistant: Zie hieronder.\n{line}"
    assert summary(parse_transcript(text)) == [
        ("assistant", "Assistant", f"Zie hieronder.\n{line}")
    ]
    (m,) = parse_transcript(line)
    assert (m.role, m.speaker, m.content, m.timestamp) == ("other", "", line, None)


@pytest.mark.parametrize(
    ("stamp", "reason"),
    [
        ("31.02.2025 10:00:00", "impossible date [31.02.2025 10:00:00]"),
        ("29.02.2025 10:00:00", "impossible date"),
        ("00.05.2025 10:00:00", "impossible date"),
        ("14.13.2025 10:00:00", "impossible date"),
        ("14.05.0000 10:00:00", "impossible date"),
        ("14.05.2025 25:00:00", "impossible date"),
        ("14.05.2025 09:60:00", "impossible date"),
        ("14.05.2025 09:12:61", "impossible date"),
        ("2025-05-14 09:12:03", "unrecognised timestamp [2025-05-14 09:12:03]"),
        ("2025-05-14T09:12:03", "unrecognised timestamp"),
        ("14/05/2025 09:12:03", "unrecognised timestamp"),
        ("14.05.2025 09:12", "unrecognised timestamp"),
        ("14.05.2025", "unrecognised timestamp"),
        ("10:30", "unrecognised timestamp"),
        ("14.05.25 09:12:03", "unrecognised timestamp"),
    ],
)
def test_broken_timestamp_before_a_label_is_an_error_with_its_line(stamp: str, reason: str) -> None:
    text = f"{TS} User: hi\n{TS} Bot: hallo\n\n[{stamp}] User: nog een vraag\n"
    error = parse_error(text)
    assert error.line == 4
    assert reason in error.reason
    assert str(error).startswith(f"line 4: {reason}")


def test_leap_day_is_a_real_date() -> None:
    (m,) = parse_transcript("[29.02.2024 23:59:59] User: hi")
    assert m.timestamp == datetime(2024, 2, 29, 23, 59, 59, tzinfo=UTC)


def test_broken_timestamp_without_a_label_is_only_text() -> None:
    (m,) = parse_transcript("User: hi\n[31.02.2025 10:00:00] geen spreker")
    assert m.content == "hi\n[31.02.2025 10:00:00] geen spreker"


def test_error_is_a_picklable_value_error() -> None:
    error = TranscriptParseError(7, "binary or control characters")
    assert isinstance(error, ValueError)
    assert str(error) == "line 7: binary or control characters"
    copy = pickle.loads(pickle.dumps(error))
    assert (type(copy), copy.line, copy.reason, str(copy)) == (
        TranscriptParseError,
        7,
        "binary or control characters",
        str(error),
    )


# ------------------------------------------------------------------------- timestamps and order


def test_headers_with_and_without_timestamps_mix_and_none_is_never_invented() -> None:
    text = f"User: hoi\n{TS} Assistant: hallo\nUser: vraag\n[14.05.2025 09:15:00] Bot: antwoord"
    messages = parse_transcript(text, "Europe/Amsterdam")
    assert [m.timestamp for m in messages] == [
        None,
        datetime(2025, 5, 14, 9, 12, 3, tzinfo=AMS),
        None,
        datetime(2025, 5, 14, 9, 15, 0, tzinfo=AMS),
    ]


def test_equal_timestamps_keep_file_order_even_assistant_first() -> None:
    text = f"{TS} Assistant: Welkom!\n{TS} User: hoi\n{TS} Assistant: Wat kan ik doen?"
    messages = parse_transcript(text)
    assert [(m.order, m.role) for m in messages] == [
        (0, "assistant"),
        (1, "user"),
        (2, "assistant"),
    ]
    assert len({m.timestamp for m in messages}) == 1


def test_decreasing_and_far_away_timestamps_are_kept_as_written() -> None:
    text = (
        "[14.05.2025 09:12:03] User: een\n"
        "[13.05.2025 23:00:00] Bot: twee\n"
        "[01.01.2030 00:00:00] User: drie\n"
    )
    messages = parse_transcript(text)
    assert [m.content for m in messages] == ["een", "twee", "drie"]
    assert [m.timestamp for m in messages] == [
        datetime(2025, 5, 14, 9, 12, 3, tzinfo=UTC),
        datetime(2025, 5, 13, 23, 0, 0, tzinfo=UTC),
        datetime(2030, 1, 1, 0, 0, 0, tzinfo=UTC),
    ]


def test_order_has_no_gaps_and_lines_point_at_headers() -> None:
    text = "\n\nintro\n\nUser: a\n\n\nBot: b\nvervolg\n\n\nUser:\nSystem: c\n"
    messages = parse_transcript(text)
    assert [m.order for m in messages] == list(range(5))
    assert [(m.line, m.role, m.content) for m in messages] == [
        (3, "other", "intro"),
        (5, "user", "a"),
        (8, "assistant", "b\nvervolg"),
        (12, "user", ""),
        (13, "system", "c"),
    ]


# ------------------------------------------------------------------------- content and layout


def test_multi_line_message_stays_one_message_with_paragraphs_collapsed() -> None:
    text = (
        "Bot:   \n"
        "\n"
        "Eerste alinea,   \n"
        "  - ingesprongen punt\t\n"
        "\n"
        "\n"
        "\n"
        "Tweede alinea.\n"
        "\n"
        "\n"
        "User: ok\n"
    )
    messages = parse_transcript(text)
    assert summary(messages) == [
        ("assistant", "Bot", "Eerste alinea,\n  - ingesprongen punt\n\nTweede alinea."),
        ("user", "User", "ok"),
    ]


def test_empty_header_without_continuation_is_kept_with_empty_content() -> None:
    messages = parse_transcript("User: hi\nBot:\n\nUser:   \n")
    assert summary(messages) == [
        ("user", "User", "hi"),
        ("assistant", "Bot", ""),
        ("user", "User", ""),
    ]
    assert user_message_count(messages) == 2


def test_preamble_before_the_first_header_is_kept() -> None:
    text = "\n  \nChat export\nSessie 42:   \n\n{TS} User: hi".replace("{TS}", TS)
    messages = parse_transcript(text)
    assert [(m.role, m.speaker, m.timestamp, m.content, m.line) for m in messages] == [
        ("other", "", None, "Chat export\nSessie 42:", 3),
        ("user", "User", datetime(2025, 5, 14, 9, 12, 3, tzinfo=UTC), "hi", 6),
    ]
    assert user_message_count(messages) == 1


def test_text_without_any_header_is_one_preamble_message() -> None:
    (m,) = parse_transcript("alleen tekst\nNote: geen header")
    assert (m.role, m.speaker, m.content, m.line, m.order) == (
        "other",
        "",
        "alleen tekst\nNote: geen header",
        1,
        0,
    )


@pytest.mark.parametrize("text", ["", " ", "\n", "\r\n\r\n", " \t\n\n   \n", "\ufeff", "\ufeff\n "])
def test_empty_or_blank_input_gives_no_messages(text: str) -> None:
    assert parse_transcript(text) == []
    assert user_message_count([]) == 0


def test_final_newline_and_trailing_whitespace_create_nothing() -> None:
    base = parse_transcript(EXAMPLE.rstrip("\n"))
    assert parse_transcript(EXAMPLE) == base
    assert parse_transcript(EXAMPLE + "\n\n   \n\t") == base
    spaced = "\n".join(line + " \t " for line in EXAMPLE.splitlines())
    assert parse_transcript(spaced) == base


@pytest.mark.parametrize("newline", ["\r\n", "\r"])
def test_crlf_and_cr_line_endings_give_the_same_messages_and_lines(newline: str) -> None:
    assert parse_transcript(EXAMPLE.replace("\n", newline)) == parse_transcript(EXAMPLE)


def test_leading_bom_is_stripped_and_the_first_header_still_counts() -> None:
    messages = parse_transcript("\ufeff" + EXAMPLE.replace("\n", "\r\n"))
    assert messages == parse_transcript(EXAMPLE)
    assert (messages[0].role, messages[0].line) == ("user", 1)


@pytest.mark.parametrize("char", ["\x00", "\x01", "\x08", "\x0b", "\x0c", "\x1b", "\x1f", "\x7f"])
def test_control_characters_are_rejected_with_their_line(char: str) -> None:
    text = f"{TS} User: hi\r\n{TS} Bot: hallo\r\nvervolg {char} tekst\r\nUser: dag"
    error = parse_error(text)
    assert error.line == 3
    assert "binary or control characters" in error.reason


def test_tabs_are_not_control_characters() -> None:
    (m,) = parse_transcript("User: kolom\ta\tb")
    assert m.content == "kolom\ta\tb"


def test_growing_transcript_keeps_earlier_messages() -> None:
    early = "\n".join(EXAMPLE.splitlines()[:2]) + "\n"  # fetched while the chat was running
    before, after = parse_transcript(early), parse_transcript(EXAMPLE)
    assert before[:-1] == after[: len(before) - 1]
    assert before[-1].content == "Wat vervelend! Meld je ziek bij je leidinggevende."
    assert after[len(before) - 1].content.startswith(before[-1].content)
    assert len(after) == 4


def test_user_message_count_counts_user_role_only() -> None:
    text = "intro\nCustomer: a\nBot: b\nUser:\nSystem: c\n" + f"{TS} Agent: d\nKlant: e"
    assert user_message_count(parse_transcript(text)) == 3


# ------------------------------------------------------------------------- the Message model


def test_message_is_frozen_and_validated() -> None:
    (m,) = parse_transcript(f"{TS} User: hi", "Europe/Amsterdam")
    with pytest.raises(ValidationError):
        m.content = "changed"
    stored = m.model_dump(mode="json")  # how the event store keeps it
    assert stored["timestamp"] == "2025-05-14T09:12:03+02:00"
    assert Message.model_validate(stored) == m
    for bad in ({"role": "unknown"}, {"timestamp": "2025-05-14T09:12:03"}, {"order": -1}):
        with pytest.raises(ValidationError):
            Message.model_validate({**stored, **bad})


def test_five_megabytes_parse_whole() -> None:
    """Every message of a 5 MB transcript is found (speed is measured by `make bench`, not
    asserted here: a timed assertion fails on a busy machine)."""
    block = (
        f"{TS} User: Hoi, ik ben ziek. Wie moet ik bellen? Note: bring ID\n"
        "[14.05.2025 09:12:05] Assistant: Meld je ziek bij je leidinggevende.\n"
        "Je kunt ook de HR-lijn bellen: https://example.com/hr\n\n"
        "Tip: dit is geen header\n"
        "User: Moet ik een doktersbriefje hebben?\n"
    )
    text = block * (5_000_000 // len(block) + 1)
    messages = parse_transcript(text, "Europe/Amsterdam")
    assert len(messages) == 3 * (5_000_000 // len(block) + 1)
    assert messages[-1].content.startswith("Moet ik een doktersbriefje")


# ------------------------------------------------------------------------- properties

ZONES = ["UTC", "Europe/Amsterdam", "America/New_York"]
LABELS = {
    "user": ["User", "user", "Customer", "Gebruiker"],
    "assistant": ["Assistant", "Bot", "AI", "chatbot"],
    "system": ["System"],
    "other": ["Agent", "HR-medewerker", "Note", "Dr. Smith"],
}
LOOKS_LIKE_HEADER = re.compile(r"\s*[^\W\d_][\w.\- \t]{0,39}:")
CONTENT_LINE = (
    st.text(alphabet="abcXYZéß019 \t.,!?:-*#()/'\"€", max_size=30)
    .map(str.rstrip)
    .filter(lambda s: not LOOKS_LIKE_HEADER.match(s))
)


def normalise(lines: list[str]) -> str:
    """Content as the parser defines it: no outer blank lines, inner blank runs of one."""
    kept: list[str] = []
    for line in lines:
        if line or (kept and kept[-1]):
            kept.append(line)
    while kept and not kept[-1]:
        kept.pop()
    if kept:
        kept[0] = kept[0].lstrip()
    return "\n".join(kept)


@st.composite
def conversations(draw: st.DrawFn) -> tuple[str, str, list[tuple[str, str, datetime | None, str]]]:
    zone_name = draw(st.sampled_from(ZONES))
    zone = ZoneInfo(zone_name)
    stamped: set[str] = set()
    expected: list[tuple[str, str, datetime | None, str]] = []
    for _ in range(draw(st.integers(0, 6))):
        role = draw(st.sampled_from(sorted(LABELS)))
        label = draw(st.sampled_from(LABELS[role]))
        naive = draw(st.none() | st.datetimes(datetime(2000, 1, 1), datetime(2099, 12, 31)))
        if naive is None and role == "other" and label.casefold() not in stamped:
            naive = datetime(2025, 5, 14, 9, 12, 3)  # unknown labels need a timestamp first
        stamp = None if naive is None else naive.replace(microsecond=0, fold=0, tzinfo=zone)
        if stamp is not None:
            stamped.add(label.casefold())
        content = normalise(draw(st.lists(CONTENT_LINE, max_size=5)))
        expected.append((role, label, stamp, content))

    newline = draw(st.sampled_from(["\n", "\r\n", "\r"]))
    pad = st.sampled_from(["", " ", "\t", "  \t"])
    out: list[str] = []
    preamble = normalise(draw(st.lists(CONTENT_LINE, max_size=3)))
    if preamble:
        out.extend(preamble.split("\n"))
        expected.insert(0, ("other", "", None, preamble))
    for _role, label, stamp, content in expected[1 if preamble else 0 :]:
        prefix = ""
        if stamp is not None:
            zero_padded: bool = draw(st.booleans())
            day, month = (
                (f"{stamp.day:02d}", f"{stamp.month:02d}")
                if zero_padded
                else (str(stamp.day), str(stamp.month))
            )
            prefix = f"[{day}.{month}.{stamp.year} {stamp.hour}:{stamp:%M:%S}]{draw(pad)} "
        lines = content.split("\n") if content else []
        text_on_header: bool = draw(st.booleans())
        if lines and text_on_header:
            out.append(f"{prefix}{label}:{draw(pad)} {lines[0]}{draw(pad)}")
            lines = lines[1:]
        else:
            out.append(f"{prefix}{label}:{draw(pad)}")
        out.extend(line + draw(pad) for line in lines)
        out.extend(draw(pad) for _ in range(draw(st.integers(0, 2))))
    bom = draw(st.sampled_from(["", "\ufeff"]))
    return bom + newline.join(out) + draw(st.sampled_from(["", newline])), zone_name, expected


@settings(max_examples=200, deadline=None)
@given(conversations())
def test_rendered_conversations_parse_back_to_the_same_messages(
    case: tuple[str, str, list[tuple[str, str, datetime | None, str]]],
) -> None:
    text, zone, expected = case
    messages = parse_transcript(text, zone)
    assert [(m.role, m.speaker, m.timestamp, m.content) for m in messages] == expected
    assert [m.timestamp.utcoffset() if m.timestamp else None for m in messages] == [
        e[2].utcoffset() if e[2] else None for e in expected
    ]
    assert [m.order for m in messages] == list(range(len(expected)))
    assert user_message_count(messages) == sum(1 for e in expected if e[0] == "user")


FRAGMENTS = [
    "User:",
    "Bot: ",
    "Agent:",
    "Note: ",
    "https://x.nl/a:b",
    "[14.05.2025 09:12:03] ",
    "[note] ",
    " ",
    "\t",
    ":",
    "[",
    "]",
    "\r\n",
    "\r",
    "\ufeff",
    "\u2028",
    "\x85",  # NEL: a C1 control, allowed (and whitespace)
]
LINE_STARTS = [
    "",
    "",
    "",
    " ",
    "[14.05.2025 09:12:03] ",
    " [ 1.5.2025  9:05:00 ]",
    "[note] ",
    "[1] ",
]
LINE_LABELS = [
    "",
    "User:",
    "user : ",
    "Bot:",
    "AI:",
    "Agent: ",
    "HR-medewerker:",
    "Note:",
    "https:",
]
BREAKERS = ["\x00", "\x1b", "[31.02.2025 10:00:00] User:", "[10:30] Bot:", "[2025-05-14 1:2:3] A:"]


@st.composite
def arbitrary_texts(draw: st.DrawFn) -> str:
    """Line-shaped pieces, so headers, false headers and odd line breaks occur often, with at
    most one thing that must be rejected (a control character or a broken stamp)."""
    junk = st.lists(
        st.sampled_from(FRAGMENTS)
        | st.text(st.characters(exclude_categories=("Cs", "Cc")), max_size=6),
        max_size=4,
    ).map("".join)
    line = st.tuples(st.sampled_from(LINE_STARTS), st.sampled_from(LINE_LABELS), junk)
    lines = ["".join(parts) for parts in draw(st.lists(line, max_size=12))]
    breaker = draw(st.none() | st.none() | st.sampled_from(BREAKERS))
    if breaker is not None:
        lines.insert(draw(st.integers(0, len(lines))), breaker)
    newlines = draw(st.lists(st.sampled_from(["\n", "\r\n", "\r", "\n\n", "\n \n"])))
    return "".join(
        text + (newlines[i] if i < len(newlines) else "\n") for i, text in enumerate(lines)
    )


ARBITRARY = arbitrary_texts()


def split_lines(text: str) -> list[str]:
    return re.split(r"\r\n|\r|\n", text.removeprefix("\ufeff"))


def visible(text: str) -> str:
    return "".join(c for c in text if not c.isspace())


@settings(max_examples=200, deadline=None)
@given(ARBITRARY, st.sampled_from(ZONES))
def test_arbitrary_text_loses_nothing_but_header_prefixes(text: str, zone: str) -> None:
    """Either a TranscriptParseError pointing at a real line, or messages whose contents hold
    exactly the non-blank characters of the file minus each header's `[stamp] Label:` prefix."""
    lines = split_lines(text)
    try:
        messages = parse_transcript(text, zone)
    except TranscriptParseError as e:
        assert 1 <= e.line <= len(lines)
        return
    assert [m.order for m in messages] == list(range(len(messages)))
    assert all(a.line < b.line for a, b in itertools.pairwise(messages))
    assert all(m.speaker for m in messages[1:])  # only the first message can be preamble
    headers = {m.line: m for m in messages if m.speaker}
    seen_stamped: set[str] = set()
    expected: list[str] = []
    for number, line in enumerate(lines, start=1):
        m = headers.get(number)
        if m is None:
            expected.append(line)
            continue
        key = " ".join(m.speaker.casefold().split())
        if m.timestamp is None:
            assert not line.lstrip().startswith("[")
            assert key in ROLE_ALIASES or key in seen_stamped
        else:
            seen_stamped.add(key)
        prefix = re.match(r"[ \t]*(?:\[[^\]]*\][ \t]*)?" + re.escape(m.speaker) + r"[ \t]*:", line)
        assert prefix is not None
        expected.append(line[prefix.end() :])
    assert visible("".join(m.content for m in messages)) == visible("".join(expected))
    for m in messages:
        assert m.content == m.content.strip("\n")
        assert "\n\n\n" not in m.content
        assert all(part == part.rstrip() for part in m.content.split("\n"))


@settings(max_examples=200, deadline=None)
@given(ARBITRARY, st.integers(0, 40))
def test_a_growing_transcript_only_extends_its_last_message(text: str, cut: int) -> None:
    lines = split_lines(text)
    cut = min(cut, len(lines))
    early, full = "\n".join(lines[:cut]) + "\n", "\n".join(lines) + "\n"
    try:
        after = parse_transcript(full)
    except TranscriptParseError:
        return
    before = parse_transcript(early)
    assert len(before) <= len(after)
    if before:
        assert before[:-1] == after[: len(before) - 1]
        last, grown = before[-1], after[len(before) - 1]
        assert last.model_dump(exclude={"content"}) == grown.model_dump(exclude={"content"})
        assert grown.content.startswith(last.content)
