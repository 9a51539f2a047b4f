"""The demo data generator: deterministic, and the committed ``examples/demo/`` is exactly what it
writes from ``examples/corpus/`` (nobody edited the output by hand, nobody changed the corpus
without regenerating)."""

from __future__ import annotations

import csv
import re
import sys
from pathlib import Path
from random import Random
from types import ModuleType

import pytest

from tests.conftest import REPO

EXAMPLES = REPO / "examples"
DEMO = EXAMPLES / "demo"


@pytest.fixture(scope="module")
def gen() -> ModuleType:
    """``examples/make_demo_data.py``, imported the way running it as a script resolves it."""
    sys.path.insert(0, str(EXAMPLES))
    try:
        import make_demo_data

        return make_demo_data
    finally:
        sys.path.remove(str(EXAMPLES))


@pytest.fixture(scope="module")
def conv() -> ModuleType:
    sys.path.insert(0, str(EXAMPLES))
    try:
        import demo_conversations

        return demo_conversations
    finally:
        sys.path.remove(str(EXAMPLES))


def files(folder: Path) -> dict[str, bytes]:
    return {
        p.relative_to(folder).as_posix(): p.read_bytes()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def test_committed_demo_data_is_byte_identical_to_a_fresh_run(
    gen: ModuleType, tmp_path: Path
) -> None:
    counts = gen.generate(gen.DEFAULT_SEED, tmp_path)
    fresh, committed = files(tmp_path), files(DEMO)
    assert sorted(fresh) == sorted(committed)
    changed = [name for name in fresh if fresh[name] != committed[name]]
    assert changed == []
    assert counts == {"lines": 150, "transcripts": 138}


def test_same_seed_same_bytes_other_seed_other_data(gen: ModuleType, tmp_path: Path) -> None:
    a, b, c = tmp_path / "a", tmp_path / "b", tmp_path / "c"
    gen.generate(7, a)
    gen.generate(7, b)
    gen.generate(8, c)
    assert files(a) == files(b)
    assert files(a)["sessions.csv"] != files(c)["sessions.csv"]


def test_regenerating_into_a_used_folder_drops_stale_transcripts(
    gen: ModuleType, tmp_path: Path
) -> None:
    gen.generate(7, tmp_path)
    first = set(files(tmp_path))
    gen.generate(8, tmp_path)
    transcripts = {n for n in files(tmp_path) if n.startswith("transcripts/")}
    assert len(transcripts) == 138
    assert not transcripts & {n for n in first if n.startswith("transcripts/")}


def test_corpus_has_every_topic_and_only_known_placeholders(conv: ModuleType) -> None:
    assert set(conv.UPSTREAM_CATEGORY) == set(conv.TOPICS)
    assert {s.country for s in conv.STORES} == {"NL", "BE", "DE"}
    for code, lang in conv.LANGS.items():
        assert lang.code == code
        assert set(lang.topics) == set(conv.TOPICS), code
        assert all(len(pairs) >= 2 for pairs in lang.topics.values()), code
        slots = conv.make_slots(Random(0), lang, conv.STORES[0], conv.FIRST_DAY)
        texts = [t for pairs in lang.topics.values() for qa in pairs for t in qa]
        for name in ("greet", "greet_reply", "thanks_reply", "ok_reply", "forward", "escalate"):
            texts.extend(getattr(lang, name))
        used = {m for t in texts for m in re.findall(r"\{(\w+)\}", t)}
        assert used <= set(slots), (code, used - set(slots))
        assert used, code


def test_output_follows_the_corpus(gen: ModuleType, conv: ModuleType) -> None:
    """Each session's first transcript line is its CSV initial message, and the language mix is
    the one the generator promises."""
    rows = list(csv.reader((DEMO / "sessions.csv").open(encoding="utf-8", newline="")))
    assert len(rows) == gen.N_LINES
    by_id = {r[0]: r for r in rows if len(r) == 16 and r[0]}
    transcripts = sorted((DEMO / "transcripts").glob("*.txt"))
    assert len(transcripts) == 138
    checked = 0
    for path in transcripts:
        row = by_id.get(path.stem)
        text = path.read_text(encoding="utf-8")
        if row is None or not text:
            continue  # a rejected line's file, or the deliberately empty one
        lines = [ln for ln in text.splitlines() if ln.startswith(("User: ", "["))]
        first = lines[0].split("User: ", 1)[1]
        assert first == row[15], path.name
        checked += 1
    assert checked > 120
    readme = (DEMO / "README.md").read_text(encoding="utf-8")
    mix = gen.LANG_LINES
    assert f"Dutch ({mix['nl']} lines), English ({mix['en']}), German ({mix['de']})" in readme
    assert sum(mix.values()) == gen.N_LINES
