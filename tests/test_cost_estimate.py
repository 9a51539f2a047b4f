"""Issue 18 §1: before money is spent in bulk, `reprocess` and `import` say how much.

The oracle for every figure is the shipped price table read as plain JSON here, not the
project's pricing code: cost = (prompt × input + output × output price) / 1M × the EUR rate.
"""

from __future__ import annotations

import json
import os
import subprocess
from datetime import date
from decimal import Decimal
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from processors.ai.config import first_request_tokens
from processors.ai.estimate import (
    ASSUMED_TRANSCRIPT_TOKENS,
    EstimateSettings,
    History,
    estimate,
)
from processors.ai.pricing import DEFAULT_USD_TO_EUR, SHIPPED_PRICES, PriceTable
from tests.conftest import LIVEDASH, REPO, SAMPLE_CSV, Livedash

PRICES = {p["model"]: p for p in json.loads(SHIPPED_PRICES.read_text())["prices"]}
TODAY = date(2026, 12, 5)


def oracle(model: str, prompt: int, output: int) -> Decimal:
    p = PRICES[model]
    usd = (prompt * Decimal(p["input"]) + output * Decimal(p["output"])) / 1_000_000
    return usd * DEFAULT_USD_TO_EUR


SETTINGS = EstimateSettings("gpt-4o-mini", PriceTable.load(), DEFAULT_USD_TO_EUR)

work_items = st.lists(
    st.tuples(
        st.sampled_from([None, "gpt-4o", "gpt-4.1-nano", "gpt-4o-mini"]),
        st.one_of(st.none(), st.integers(0, 20_000)),
    ),
    max_size=30,
)
histories = st.one_of(
    st.just(History(0, 0, 0)),
    st.builds(History, st.integers(1, 1000), st.floats(0, 5000), st.floats(0, 800)),
)


@settings(max_examples=150, deadline=None)
@given(work_items, histories)
def test_an_estimate_is_the_price_table_applied_to_each_session(
    work: list[tuple[str | None, int | None]], history: History
) -> None:
    got = estimate(work, SETTINGS, history, TODAY)
    out_each = round(history.completion_tokens) if history.responses else 800
    guess = (
        round(history.prompt_tokens)
        if history.responses
        else first_request_tokens() + ASSUMED_TRANSCRIPT_TOKENS
    )
    expected = Decimal(0)
    prompts = 0
    for model, prompt in work:
        tokens = guess if prompt is None else prompt
        prompts += tokens
        expected += oracle(model or "gpt-4o-mini", tokens, out_each)
    assert got.requests == got.sessions == len(work)
    assert got.prompt_tokens == prompts and got.output_tokens == out_each * len(work)
    assert got.cost_eur is not None and abs(got.cost_eur - expected) < Decimal("1e-12")
    assert sum(got.models.values()) == len(work)
    assert got.output_basis == ("history" if history.responses else "max_output_tokens")
    if all(p is not None for _, p in work):
        assert got.basis == "transcripts"


@given(work_items)
def test_a_model_without_a_price_makes_the_cost_unknown_not_zero(
    work: list[tuple[str | None, int | None]],
) -> None:
    got = estimate([*work, ("gpt-9-unpriced", 100)], SETTINGS, History(0, 0, 0), TODAY)
    assert got.cost_eur is None
    assert got.unknown_price_models == ["gpt-9-unpriced"]
    assert "cost unknown" in got.describe()


def test_import_prices_the_sessions_it_creates(livedash: Livedash) -> None:
    livedash("init")
    livedash("company", "add", "Acme", "--csv-url", str(SAMPLE_CSV), "--ai-model", "gpt-4.1-nano")
    report = json.loads(livedash("import", str(SAMPLE_CSV), "--company", "Acme", "--json").stdout)
    priced = report["ai_cost_estimate"]
    n = report["new"] + report["changed"]
    assert n > 0 and priced["sessions"] == n and priced["models"] == {"gpt-4.1-nano": n}
    assert priced["basis"] == "assumed"  # no transcript fetched, no paid response yet
    prompt = n * (first_request_tokens() + ASSUMED_TRANSCRIPT_TOKENS)
    assert priced["prompt_tokens"] == prompt
    assert Decimal(str(priced["cost_eur"])) == oracle("gpt-4.1-nano", prompt, n * 800)
    again = json.loads(livedash("import", str(SAMPLE_CSV), "--company", "Acme", "--json").stdout)
    assert again["new"] == again["changed"] == 0 and again["ai_cost_estimate"] is None
    text = livedash("import", str(SAMPLE_CSV), "--company", "Acme", "--force").stdout
    assert "AI cost estimate" not in text  # nothing new: nothing to price


@pytest.fixture(scope="module")
def demo_db(tmp_path_factory: pytest.TempPathFactory) -> str:
    """The bundled demo, run to the end: 132 sessions with an analysis (offline analyser)."""
    folder = tmp_path_factory.mktemp("estimate-demo")
    env = {k: v for k, v in os.environ.items() if not k.startswith("LIVEDASH_")}
    db = folder / "demo.db"
    subprocess.run(
        [*LIVEDASH, "demo", "--db", str(db)],
        cwd=folder,
        env={**env, "PYTHONPATH": str(REPO)},
        capture_output=True,
        check=True,
        timeout=300,
    )
    return f"sqlite:///{db}"


def _cli(url: str, tmp: Path) -> Livedash:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LIVEDASH_")}
    return Livedash(url, tmp, {**env, "PYTHONPATH": str(REPO), "COLUMNS": "200"})


def test_reprocess_prices_first_and_asks_above_the_threshold(demo_db: str, tmp_path: Path) -> None:
    cli = _cli(demo_db, tmp_path)
    dry = json.loads(cli("reprocess", "--dry-run", "--json").stdout)
    n = dry["would_reset"]
    priced = dry["ai_cost_estimate"]
    assert n > 100 and dry["dry_run"] is True and dry["reset"] == 0
    assert priced["requests"] == n and priced["basis"] == "transcripts"
    # the offline analyser's zero-token records are not history: output is the upper bound
    assert priced["output_basis"] == "max_output_tokens" and priced["output_tokens"] == n * 800
    assert priced["prompt_tokens"] > n * first_request_tokens()  # every transcript counted
    mini = Decimal(str(priced["cost_eur"]))
    assert mini == oracle("gpt-4o-mini", priced["prompt_tokens"], n * 800)
    bigger = json.loads(cli("reprocess", "--dry-run", "--model", "gpt-4o", "--json").stdout)
    assert bigger["ai_cost_estimate"]["prompt_tokens"] == priced["prompt_tokens"]
    assert Decimal(str(bigger["ai_cost_estimate"]["cost_eur"])) == oracle(
        "gpt-4o", priced["prompt_tokens"], n * 800
    )
    companies = json.loads(cli("company", "list", "--json").stdout)
    assert [c["ai_model"] for c in companies] == [None]  # a dry run changed no model

    refused = cli("reprocess", "--confirm-above", "0.01", check=False)
    assert (
        refused.code == 2 and "--yes" in refused.stderr and "nothing was changed" in refused.stderr
    )
    still = json.loads(cli("reprocess", "--dry-run", "--json").stdout)
    assert still["would_reset"] == n  # the refusal wrote nothing

    done = json.loads(cli("reprocess", "--confirm-above", "0.01", "--yes", "--json").stdout)
    assert done["reset"] == n and done["dry_run"] is False
    after = json.loads(cli("reprocess", "--dry-run", "--json").stdout)
    assert after["would_reset"] == 0 and after["ai_cost_estimate"]["requests"] == 0
