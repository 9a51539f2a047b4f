"""The price table and the cost of a response: exact Decimal arithmetic, no guessed prices."""

from __future__ import annotations

import json
from datetime import date
from decimal import Decimal
from fractions import Fraction
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from processors.ai.pricing import (
    DEFAULT_USD_TO_EUR,
    SHIPPED_PRICES,
    Price,
    PriceTable,
    PriceTableError,
    cost,
    parse_eur_rate,
    snapshot_family,
)

TODAY = date(2026, 11, 28)

# The prices the issue lists (USD per 1M input / cached input / output tokens).
ISSUE_PRICES = {
    "gpt-4o": ("2.50", "1.25", "10.00"),
    "gpt-4o-mini": ("0.15", "0.075", "0.60"),
    "gpt-4.1": ("2.00", "0.50", "8.00"),
    "gpt-4.1-mini": ("0.40", "0.10", "1.60"),
    "gpt-4.1-nano": ("0.10", "0.025", "0.40"),
}


@pytest.fixture(scope="module")
def table() -> PriceTable:
    return PriceTable.load()


def write(tmp_path: Path, prices: list[dict[str, object]], **top: object) -> Path:
    path = tmp_path / "my-prices.json"
    path.write_text(json.dumps({"currency": "USD", "per_tokens": 1000000, **top, "prices": prices}))
    return path


# ------------------------------------------------------------------ table
def test_the_shipped_table_holds_the_prices_of_the_issue(table: PriceTable) -> None:
    assert set(ISSUE_PRICES) <= set(table.models)
    for model, (inp, cached, out) in ISSUE_PRICES.items():
        price = table.lookup(model, TODAY)
        assert price is not None, model
        assert (price.input, price.cached_input, price.output) == (
            Decimal(inp),
            Decimal(cached),
            Decimal(out),
        )
    raw = json.loads(SHIPPED_PRICES.read_text())
    assert raw["recorded_on"] == "2026-11-28"
    assert "from the issue" in raw["comment"]


def test_price_source_names_file_model_and_date(table: PriceTable) -> None:
    price = table.lookup("gpt-4o-mini", TODAY)
    assert price is not None
    assert price.source == "prices.json gpt-4o-mini 2024-07-18"


def test_a_dated_snapshot_maps_to_its_family(table: PriceTable) -> None:
    assert snapshot_family("gpt-4o-mini-2024-07-18") == ("gpt-4o-mini", date(2024, 7, 18))
    assert snapshot_family("gpt-4o-mini") is None
    assert snapshot_family("gpt-4o-2024-13-45") is None  # not a date
    for snapshot, family in (
        ("gpt-4o-mini-2024-07-18", "gpt-4o-mini"),
        ("gpt-4o-2024-08-06", "gpt-4o"),
        ("gpt-4o-2024-11-20", "gpt-4o"),
        ("gpt-4.1-2025-04-14", "gpt-4.1"),
        ("gpt-4.1-nano-2025-04-14", "gpt-4.1-nano"),
    ):
        assert table.lookup(snapshot, TODAY) == table.lookup(family, TODAY), snapshot


def test_unknown_models_and_old_snapshots_have_no_price(table: PriceTable) -> None:
    assert table.lookup("gpt-4-turbo", TODAY) is None
    assert table.lookup("llama3:8b", TODAY) is None
    assert table.lookup("gpt-4o-mini-2024-07-18-ft", TODAY) is None
    # gpt-4o-2024-05-13 predates the gpt-4o price in the table (it cost more): unknown, not guessed
    assert table.lookup("gpt-4o-2024-05-13", TODAY) is None
    # before a price was valid there is no price either
    assert table.lookup("gpt-4.1", date(2025, 4, 13)) is None
    assert table.lookup("gpt-4.1", date(2025, 4, 14)) is not None


def test_the_newest_price_valid_on_the_day_wins(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        [
            {
                "model": "m",
                "input": "1",
                "cached_input": "0.5",
                "output": "2",
                "valid_from": "2025-01-01",
            },
            {
                "model": "m",
                "input": "3",
                "cached_input": "1",
                "output": "4",
                "valid_from": "2026-01-01",
            },
            {"model": "m", "input": "9", "output": "9", "valid_from": "2027-01-01"},
        ],
    )
    table = PriceTable.load(path)
    assert table.label == "my-prices.json"
    assert table.lookup("m", date(2024, 12, 31)) is None
    first = table.lookup("m", date(2025, 6, 1))
    second = table.lookup("m", date(2026, 1, 1))
    assert first is not None and first.input == Decimal(1)
    assert second is not None and second.input == Decimal(3)
    assert second.source == "my-prices.json m 2026-01-01"
    later = table.lookup("m", date(2027, 2, 1))
    assert later is not None and later.cached_input == later.input == Decimal(9)


def test_an_override_file_replaces_the_shipped_table(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        [
            {
                "model": "local-llm",
                "input": 0,
                "cached_input": 0,
                "output": 0,
                "valid_from": "2020-01-01",
            }
        ],
    )
    table = PriceTable.load(path)
    assert table.models == ["local-llm"]
    assert table.lookup("gpt-4o-mini", TODAY) is None


def test_an_exact_entry_beats_the_family(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        [
            {
                "model": "gpt-4o",
                "input": "2.50",
                "cached_input": "1.25",
                "output": "10",
                "valid_from": "2024-08-06",
            },
            {
                "model": "gpt-4o-2024-05-13",
                "input": "5",
                "output": "15",
                "valid_from": "2024-05-13",
            },
        ],
    )
    table = PriceTable.load(path)
    old = table.lookup("gpt-4o-2024-05-13", TODAY)
    assert old is not None and (old.input, old.output) == (Decimal(5), Decimal(15))


def test_json_floats_are_read_exactly(tmp_path: Path) -> None:
    path = tmp_path / "p.json"
    path.write_text(
        '{"prices": [{"model": "x", "input": 0.15, "cached_input": 0.075, "output": 0.6,'
        ' "valid_from": "2024-01-01"}]}'
    )
    price = PriceTable.load(path).lookup("x", TODAY)
    assert price is not None
    assert (price.input, price.cached_input, price.output) == (
        Decimal("0.15"),
        Decimal("0.075"),
        Decimal("0.6"),
    )


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ({"model": "", "input": "1", "output": "1", "valid_from": "2024-01-01"}, "'model'"),
        ({"model": "x", "input": "-1", "output": "1", "valid_from": "2024-01-01"}, "zero or more"),
        ({"model": "x", "input": "abc", "output": "1", "valid_from": "2024-01-01"}, "not a number"),
        (
            {"model": "x", "input": True, "output": "1", "valid_from": "2024-01-01"},
            "must be a number",
        ),
        ({"model": "x", "input": "1", "valid_from": "2024-01-01"}, "'output'"),
        ({"model": "x", "input": "1", "output": "1", "valid_from": "soon"}, "YYYY-MM-DD"),
        ({"model": "x", "input": "NaN", "output": "1", "valid_from": "2024-01-01"}, "zero or more"),
    ],
)
def test_bad_entries_are_rejected_with_their_place(
    tmp_path: Path, entry: dict[str, object], message: str
) -> None:
    with pytest.raises(PriceTableError, match=message) as e:
        PriceTable.load(write(tmp_path, [entry]))
    assert "my-prices.json: prices[0]" in str(e.value)


def test_bad_files_are_rejected(tmp_path: Path) -> None:
    with pytest.raises(PriceTableError, match="cannot read"):
        PriceTable.load(tmp_path / "missing.json")
    broken = tmp_path / "broken.json"
    broken.write_text("{")
    with pytest.raises(PriceTableError, match="not valid JSON"):
        PriceTable.load(broken)
    with pytest.raises(PriceTableError, match="USD"):
        PriceTable.load(write(tmp_path, [], currency="EUR"))
    with pytest.raises(PriceTableError, match="per 1000000"):
        PriceTable.load(write(tmp_path, [], per_tokens=1000))
    twice: dict[str, object] = {
        "model": "x",
        "input": "1",
        "output": "1",
        "valid_from": "2024-01-01",
    }
    with pytest.raises(PriceTableError, match="same day"):
        PriceTable.load(write(tmp_path, [twice, twice]))


# ------------------------------------------------------------------- cost
def price_of(table: PriceTable, model: str) -> Price:
    price = table.lookup(model, TODAY)
    assert price is not None
    return price


@pytest.mark.parametrize(
    ("model", "prompt", "cached", "completion", "usd"),
    [
        # (800 × 0.15 + 200 × 0.075 + 500 × 0.60) / 1e6
        ("gpt-4o-mini", 1000, 200, 500, "0.000435"),
        ("gpt-4o-mini-2024-07-18", 1000, 200, 500, "0.000435"),
        # one million in, one million out
        ("gpt-4o", 1_000_000, 0, 1_000_000, "12.50"),
        # all cached: 1e6 × 1.25 / 1e6
        ("gpt-4o-2024-08-06", 1_000_000, 1_000_000, 0, "1.25"),
        # (1234 − 1000) × 2.00 + 1000 × 0.50 + 77 × 8.00 = 468 + 500 + 616 = 1584 → 0.001584
        ("gpt-4.1", 1234, 1000, 77, "0.001584"),
        # 3 × 0.40 + 0 + 1 × 1.60 = 2.8 → 0.0000028
        ("gpt-4.1-mini", 3, 0, 1, "0.0000028"),
        # 10 × 0.025 = 0.25 → 0.00000025
        ("gpt-4.1-nano-2025-04-14", 10, 10, 0, "0.00000025"),
        ("gpt-4o-mini", 0, 0, 0, "0"),
    ],
)
def test_cost_is_exact(
    table: PriceTable, model: str, prompt: int, cached: int, completion: int, usd: str
) -> None:
    got_usd, got_eur = cost(price_of(table, model), prompt, cached, completion, Decimal("0.92"))
    assert got_usd == Decimal(usd)
    assert got_eur == Decimal(usd) * Decimal("0.92")
    # exact means: the same number as rational arithmetic gives
    assert Fraction(got_eur) == Fraction(usd) * Fraction(92, 100)


def test_cached_tokens_are_cheaper_than_uncached(table: PriceTable) -> None:
    price = price_of(table, "gpt-4o")
    cold, _ = cost(price, 10_000, 0, 100, DEFAULT_USD_TO_EUR)
    warm, _ = cost(price, 10_000, 8_000, 100, DEFAULT_USD_TO_EUR)
    # 8000 tokens at 1.25 instead of 2.50 per million: 0.01 USD less
    assert cold - warm == Decimal("0.01")


def test_cost_rejects_impossible_usage(table: PriceTable) -> None:
    price = price_of(table, "gpt-4o-mini")
    with pytest.raises(ValueError, match="cannot exceed"):
        cost(price, 10, 11, 0, DEFAULT_USD_TO_EUR)
    with pytest.raises(ValueError, match="negative"):
        cost(price, -1, 0, 0, DEFAULT_USD_TO_EUR)


@given(
    prompt=st.integers(0, 10**9),
    cached_share=st.fractions(0, 1),
    completion=st.integers(0, 10**8),
    model=st.sampled_from(sorted(ISSUE_PRICES)),
    rate=st.decimals("0.5", "1.5", places=4),
)
def test_cost_matches_rational_arithmetic(
    prompt: int, cached_share: Fraction, completion: int, model: str, rate: Decimal
) -> None:
    inp, cached_price, out = (Fraction(v) for v in ISSUE_PRICES[model])
    cached = int(prompt * cached_share)
    price = PriceTable.load().lookup(model, TODAY)
    assert price is not None
    usd, eur = cost(price, prompt, cached, completion, rate)
    expected = ((prompt - cached) * inp + cached * cached_price + completion * out) / 1_000_000
    assert Fraction(usd) == expected
    assert Fraction(eur) == expected * Fraction(rate)


# ------------------------------------------------------------------ rates
def test_eur_rate_setting() -> None:
    assert parse_eur_rate(None) == DEFAULT_USD_TO_EUR == Decimal("0.92")
    assert parse_eur_rate("  ") == DEFAULT_USD_TO_EUR
    assert parse_eur_rate("0.8571") == Decimal("0.8571")
    for bad in ("abc", "0", "-1", "NaN", "Infinity"):
        with pytest.raises(ValueError):
            parse_eur_rate(bad)


def test_batch_prices_are_half_and_say_so(table: PriceTable, tmp_path: Path) -> None:
    for model, (inp, cached, out) in ISSUE_PRICES.items():
        price = table.lookup(model, TODAY)
        assert price is not None
        batch = price.batch()
        assert (batch.input, batch.cached_input, batch.output) == (
            Decimal(inp) / 2,
            Decimal(cached) / 2,
            Decimal(out) / 2,
        )
        assert batch.source == f"{price.source} batch"
    override = tmp_path / "prices.json"
    override.write_text(
        json.dumps(
            {"prices": [{"model": "m", "input": "1", "output": "3", "valid_from": "2025-01-01"}]}
        )
    )
    derived = PriceTable.load(override).lookup("m", TODAY)
    assert derived is not None
    assert (derived.batch().input, derived.batch().output) == (Decimal("0.5"), Decimal("1.5"))
    assert derived.batch().source.endswith("batch (50% of standard)")
    override.write_text(
        json.dumps(
            {
                "prices": [
                    {
                        "model": "m",
                        "input": "1",
                        "output": "3",
                        "valid_from": "2025-01-01",
                        "batch": {"input": "x", "output": "1"},
                    }
                ]
            }
        )
    )
    with pytest.raises(PriceTableError, match="'batch' 'input'"):
        PriceTable.load(override)
