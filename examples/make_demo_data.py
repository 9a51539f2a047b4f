#!/usr/bin/env python3
"""Deterministic generator for the bundled demo data in ``examples/demo/``.

The script writes

* ``sessions.csv``: the upstream export format (16 columns, no header row, LF line endings,
  ``DD.MM.YYYY HH:MM:SS`` wall-clock times), 150 data lines of which 6 are broken on purpose;
* ``transcripts/<session_id>.txt``: one plain-text transcript per session that has one, with the
  transcript URL in the CSV given relative to the CSV file's directory;
* ``README.md``: what is in the data, with the line numbers and ids of the deliberate defects.

The conversations come from ``demo_conversations.py`` (rules) and ``corpus/*.json`` (text).
Everything is drawn from ``random.Random(seed)``: the same seed and corpus give byte-identical
files. Standard library only::

    .venv/bin/python examples/make_demo_data.py [--seed N] [--out DIR]
"""

from __future__ import annotations

import argparse
import csv
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from random import Random

from demo_conversations import (
    BOT,
    DOC_NETS,
    LANGS,
    UPSTREAM_CATEGORY,
    Conversation,
    build_conversation,
    random_start,
)

DEFAULT_SEED = 20261005
N_LINES = 150
"""Data lines in sessions.csv, including the 6 deliberately broken ones."""

LANG_LINES: dict[str, int] = {"nl": 68, "en": 37, "de": 22, "tr": 23}
"""Data lines per conversation language: 45 % / 25 % / 15 % / 15 % of 150 (rounded)."""

EUR_PER_TOKEN = 1.48e-7
TIME_FORMAT = "%d.%m.%Y %H:%M:%S"


def transcript_text(conv: Conversation, rng: Random) -> str:
    """The transcript file in the §4.1 format, with this conversation's variants applied."""
    blank_between = rng.random() < 0.3
    middle = range(1, len(conv.messages) - 1)
    unstamped: set[int] = set()
    if "no_timestamp" in conv.variants:
        unstamped = set(rng.sample(middle, 2 if len(middle) >= 4 else 1))
    lines: list[str] = []
    if "preamble" in conv.variants:
        lines.append(conv.lang.preamble)
    for i, msg in enumerate(conv.messages):
        label = (
            "Bot" if msg.speaker == "Assistant" and "bot_label" in conv.variants else msg.speaker
        )
        stamp = "" if i in unstamped else f"[{msg.at.strftime(TIME_FORMAT)}] "
        if blank_between and i > 0:
            lines.append("")
        first, *rest = msg.text.split("\n")
        lines.append(f"{stamp}{label}: {first}")
        lines.extend(rest)
    newline = "\r\n" if "crlf" in conv.variants else "\n"
    return newline.join(lines) + newline


def country_value(conv: Conversation, rng: Random) -> str:
    if conv.lang.code == "tr" and rng.random() < 0.25:
        return "TR"  # on holiday, checking the schedule from abroad
    return conv.store.country


def ip_value(conv: Conversation, rng: Random) -> str:
    if conv.country == conv.store.country and rng.random() < 0.65:
        return conv.store.ip  # the store's wifi
    return f"{rng.choice(DOC_NETS)}.{rng.randint(1, 254)}"


def csv_row(conv: Conversation, rng: Random) -> list[str]:
    """The 16 export columns, filled the way the upstream export fills them."""
    lang = conv.lang
    unanalysed = "unanalysed" in conv.variants
    language = "" if unanalysed or rng.random() < 0.05 else rng.choice(lang.csv_names)
    if conv.mood == "positive":
        sentiment = rng.choices(("happy", "excited"), weights=(75, 25))[0]
    elif conv.mood == "neutral":
        sentiment = rng.choices(("neutral", "happy"), weights=(80, 20))[0]
    else:
        sentiment = rng.choices(("frustrated", "angry"), weights=(65, 35))[0]
    if unanalysed or rng.random() < 0.04:
        sentiment = ""
    escalated = "yes" if conv.outcome == "escalated" else "no"
    forwarded = "yes" if conv.outcome == "forwarded" else "no"
    if unanalysed:
        escalated = forwarded = ""
    elif rng.random() < 0.04:
        escalated = ""
    category = rng.choice(UPSTREAM_CATEGORY[conv.topic])
    if unanalysed or rng.random() < 0.08:
        category = ""
    url = "" if "no_url" in conv.variants else f"transcripts/{conv.session_id}.txt"
    users = conv.user_messages
    if "zero_tokens" in conv.variants:
        tokens = 0
    else:
        tokens = sum(rng.randint(6300, 7100) for _ in range(users))
    avg = sum(conv.reply_delays) / len(conv.reply_delays)
    return [
        conv.session_id,
        conv.start.strftime(TIME_FORMAT),
        conv.end.strftime(TIME_FORMAT),
        conv.ip,
        conv.country,
        language,
        str(users),
        sentiment,
        escalated,
        forwarded,
        url,
        f"{avg:.3f}",
        str(tokens),
        f"{tokens * EUR_PER_TOKEN:.4f}",
        category,
        conv.messages[0].text,
    ]


@dataclass
class Plan:
    """Which conversation gets which deliberate quirk (indices into the time-sorted list)."""

    bad: dict[str, int]
    duplicate_of: int
    duplicate_at: int
    variants: dict[str, list[int]]


def pick_plan(rng: Random, convs: Sequence[Conversation]) -> Plan:
    n = len(convs)
    taken: set[int] = set()

    def pick(count: int, candidates: Sequence[int]) -> list[int]:
        free = [i for i in candidates if i not in taken]
        chosen = sorted(rng.sample(free, count))
        taken.update(chosen)
        return chosen

    everything = range(n)
    # The duplicated row is Dutch: generate() left one Dutch line of the quota for it.
    dutch_early = [i for i in range(5, n // 2) if convs[i].lang.code == "nl"]
    duplicate_of = pick(1, dutch_early)[0]
    bad_kinds = ("impossible_date", "fifteen_columns", "blank_id", "bad_tokens", "iso_date")
    bad_rows = pick(len(bad_kinds), range(8, n - 8))
    rng.shuffle(bad_rows)
    bad = dict(zip(bad_kinds, bad_rows, strict=True))
    long_ones = [i for i in everything if len(convs[i].messages) >= 5]
    multi_reply = [i for i in everything if len(convs[i].reply_delays) >= 2]
    variants = {
        "no_url": pick(8, everything),
        "missing_file": pick(3, everything),
        "empty_file": pick(1, everything),
        "no_timestamp": pick(4, long_ones),
        "preamble": pick(1, everything),
        "bot_label": pick(1, multi_reply),
        "crlf": pick(1, long_ones),
        "zero_tokens": pick(1, everything),
    }
    # Overlapping quirks (CSV columns only, transcript untouched): may coincide with the above.
    variants["unanalysed"] = sorted(rng.sample(range(n), 7))
    return Plan(bad, duplicate_of, min(duplicate_of + rng.randint(25, 45), n), variants)


def generate(seed: int, out: Path) -> dict[str, int]:
    rng = Random(seed)
    n_conversations = N_LINES - 1  # the duplicate row re-uses a conversation
    langs = [code for code, count in LANG_LINES.items() for _ in range(count)]
    langs.remove("nl")  # the duplicated conversation below is Dutch; it supplies that line
    rng.shuffle(langs)
    convs = [build_conversation(rng, LANGS[code], random_start(rng)) for code in langs]
    convs.sort(key=lambda c: c.start)
    assert len(convs) == n_conversations
    for conv in convs:
        conv.session_id = str(uuid.UUID(int=rng.getrandbits(128), version=4))
        conv.country = country_value(conv, rng)
        conv.ip = ip_value(conv, rng)

    plan = pick_plan(rng, convs)
    for variant, indices in plan.variants.items():
        for i in indices:
            convs[i].variants.add(variant)
    nl_rows = [i for i, c in enumerate(convs) if c.lang.code == "nl"]
    de_rows = [i for i, c in enumerate(convs) if c.lang.code == "de" and c.country == "DE"]
    for i in rng.sample(nl_rows, 2):
        convs[i].country = "Nederland"
    convs[rng.choice(de_rows)].country = "Germany"
    for i in rng.sample([i for i, c in enumerate(convs) if len(c.country) == 2], 2):
        convs[i].country = ""

    rows = [csv_row(conv, rng) for conv in convs]
    bad = plan.bad
    start_time = rows[bad["impossible_date"]][1].split(" ")[1]
    rows[bad["impossible_date"]][1] = f"31.02.2026 {start_time}"
    del rows[bad["fifteen_columns"]][11]  # the export lost avg_response_time
    rows[bad["blank_id"]][0] = ""
    rows[bad["bad_tokens"]][12] = "n/a"
    for col in (1, 2):
        wall = datetime.strptime(rows[bad["iso_date"]][col], TIME_FORMAT)
        rows[bad["iso_date"]][col] = wall.strftime("%Y-%m-%d %H:%M:%S")
    duplicate = list(rows[plan.duplicate_of])
    duplicate[7] = "frustrated" if duplicate[7] != "frustrated" else "neutral"
    rows.insert(plan.duplicate_at, duplicate)
    assert len(rows) == N_LINES

    out.mkdir(parents=True, exist_ok=True)
    transcripts = out / "transcripts"
    transcripts.mkdir(exist_ok=True)
    for stale in sorted(transcripts.glob("*.txt")):
        stale.unlink()
    with (out / "sessions.csv").open("w", encoding="utf-8", newline="") as f:
        csv.writer(f, lineterminator="\n").writerows(rows)
    written = 0
    for conv in convs:
        if conv.variants & {"no_url", "missing_file"}:
            continue
        text = "" if "empty_file" in conv.variants else transcript_text(conv, rng)
        (transcripts / f"{conv.session_id}.txt").write_bytes(text.encode("utf-8"))
        written += 1
    (out / "README.md").write_text(readme(seed, convs, plan), encoding="utf-8")
    return {"lines": len(rows), "transcripts": written}


def readme(seed: int, convs: Sequence[Conversation], plan: Plan) -> str:
    """examples/demo/README.md, with the line numbers and ids of this seed's defects."""

    def line(i: int) -> int:  # 1-based line in sessions.csv of conversation i
        return i + 1 + (i >= plan.duplicate_at)

    def ids(variant: str) -> str:
        return "".join(f"\n  - `{convs[i].session_id}`" for i in plan.variants[variant])

    bad = plan.bad
    good = [i for i in range(len(convs)) if i not in bad.values()]
    langs = {code: sum(c.lang.code == code for c in convs) for code in LANG_LINES}
    langs["nl"] += 1  # the duplicate line
    fetched = sum(not convs[i].variants & {"no_url", "missing_file", "empty_file"} for i in good)
    original = line(plan.duplicate_of)
    mix = (
        f"Dutch ({langs['nl']} lines), English ({langs['en']}), German ({langs['de']}) "
        f"and Turkish ({langs['tr']})"
    )
    unanalysed = len(plan.variants["unanalysed"])
    defects = sorted(
        [
            (
                line(bad["impossible_date"]),
                "start time `31.02.2026 …`",
                "impossible date (the original rolled it over to 3 March)",
            ),
            (
                line(bad["fifteen_columns"]),
                "15 columns, `avg_response_time` missing",
                "wrong column count (the original padded the row, shifting the values)",
            ),
            (
                line(bad["blank_id"]),
                "empty session id",
                "missing id (the original merged all id-less rows into one record)",
            ),
            (
                line(bad["bad_tokens"]),
                "tokens `n/a`",
                "not a number (the original stored null)",
            ),
            (
                line(bad["iso_date"]),
                "ISO times `2026-10-… …`",
                "wrong date format (the original accepted it, then failed on every run)",
            ),
            (
                plan.duplicate_at + 1,
                f"same session id as line {original}, different sentiment",
                f"duplicate; line {original} wins",
            ),
        ]
    )
    table = "\n".join(f"| {n} | {what} | rejected: {why} |" for n, what, why in defects)
    return f"""# Demo data: Demo Retail BV

Invented chat sessions of an invented tenant: "{BOT}", the HR assistant of a supermarket chain,
answering shop staff in {mix},
between 5 and 25 October 2026. People, phone numbers and e-mail addresses are made up; IPs come
from the documentation ranges (RFC 5737).

- `sessions.csv`: the upstream export format, {N_LINES} lines (16 columns, no header, LF,
  `DD.MM.YYYY HH:MM:SS` wall-clock times).
- `transcripts/<session_id>.txt`: one transcript per session. Column 10 holds the relative path
  `transcripts/<session_id>.txt`, resolved against the CSV file's directory.

Generated by `examples/make_demo_data.py` (seed {seed}); do not edit by hand. Regenerate with
`.venv/bin/python examples/make_demo_data.py`. `livedash demo` imports it into a fresh SQLite
file and runs all stages.

## Broken CSV lines (on purpose)

Each one must be rejected with its line number and a reason, while the other lines import.

| line | defect | expected |
|---|---|---|
{table}

Result: {N_LINES} rows seen, {len(good)} sessions, 6 rejections. The rejected lines still point
at transcript files; no session uses those files.

## Transcript problems (on purpose)

- No transcript URL (column 10 empty, no file): TRANSCRIPT_FETCH is SKIPPED, and so are AI
  analysis and question extraction.{ids("no_url")}
- URL present but the file is missing: TRANSCRIPT_FETCH FAILED (`not_found`), not
  retried.{ids("missing_file")}
- Empty file: TRANSCRIPT_FETCH FAILED (`empty`), not retried.{ids("empty_file")}

The other {fetched} transcripts fetch and parse. Variants that must parse without losing text:

- Some `User:`/`Assistant:` headers without a timestamp (the message has no time):\
{ids("no_timestamp")}
- A line of text before the first header (kept as a message of role "other"):\
{ids("preamble")}
- The assistant labelled `Bot:` instead of `Assistant:`:{ids("bot_label")}
- CRLF line endings:{ids("crlf")}
- Throughout: multi-line assistant messages (Markdown lists), blank lines between messages in
  some files, a user message and its reply in the same second.

## Odd but valid values (must import; normalised later)

Country names `Nederland` and `Germany` and two empty countries among alpha-2 codes; language as
a free-text name in any case (`Dutch`, `dutch`, `Nederlands`, `english`, `Deutsch`, `turkish`)
or empty; sentiment words (`happy`, `excited`, `neutral`, `frustrated`, `angry`) or empty;
`yes`/`no` or empty flags; free-text or empty categories; one row with tokens `0` and cost
`0.0000` (zero, not null); {unanalysed} rows where language, sentiment, flags and category
are all empty; initial messages containing commas, quoted.
"""


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED, help="random seed")
    parser.add_argument(
        "--out",
        type=Path,
        default=Path(__file__).resolve().parent / "demo",
        help="output folder (default: examples/demo next to this script)",
    )
    args = parser.parse_args(argv)
    counts = generate(args.seed, args.out)
    print(f"wrote {args.out / 'sessions.csv'}: {counts['lines']} lines, "
          f"{counts['transcripts']} transcript files")  # fmt: skip


if __name__ == "__main__":
    main()
