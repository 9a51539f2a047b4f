"""Model prices and the cost of one response, in exact Decimal arithmetic.

The table ships as ``prices.json`` next to this module (USD per 1M input, cached-input and output
tokens, each with the date it is valid from). An override file in the same shape replaces it
(``PriceTable.load(path)``; the CLI reads the path from ``LIVEDASH_PRICES_FILE``).

Lookup (``PriceTable.lookup``) never guesses (§14 item 23: the original priced an unknown snapshot
at a 4× higher fallback rate):

* the exact model name first; when the table has entries for it, only those count;
* otherwise a dated snapshot (``gpt-4o-mini-2024-07-18``) maps to its family (``gpt-4o-mini``) by
  stripping a trailing ``-YYYY-MM-DD``, unless the snapshot is older than every price the table
  has for the family (an older snapshot may have had another price: ``gpt-4o-2024-05-13`` cost
  twice what ``gpt-4o`` costs now);
* among the candidates, the newest price whose ``valid_from`` is on or before the usage date;
* anything else is unknown: ``None``, and the caller reports the cost as unknown.

Cost (``cost``): ``prompt_tokens`` include ``cached_tokens`` (OpenAI's usage semantics), so the
uncached part is billed at the input price and the cached part at the cached-input price;
completion tokens (reasoning tokens included) at the output price. EUR is the USD cost times a
configurable rate; ``DEFAULT_USD_TO_EUR`` is only a default (override with
``LIVEDASH_USD_EUR_RATE``), not a live exchange rate.

Batch tier (``Price.batch()``): OpenAI's Batch API bills half the standard prices. An entry may
carry its own ``"batch": {"input": …, "cached_input": …, "output": …}``; without one the batch
price is half the entry's standard price. Either way the returned price's ``source`` ends in
``batch`` (or ``batch (50% of standard)``), so every recorded cost says which tier it used.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, replace
from datetime import date
from decimal import Decimal, InvalidOperation, localcontext
from pathlib import Path
from typing import Any

SHIPPED_PRICES = Path(__file__).with_name("prices.json")

DEFAULT_USD_TO_EUR = Decimal("0.92")
"""USD→EUR used when nothing else is configured (a rounded late-2026 rate, not a live quote).
Set ``LIVEDASH_USD_EUR_RATE`` to the rate your finance team uses."""

PER_TOKENS = 1_000_000

_SNAPSHOT = re.compile(r"^(?P<family>.+)-(?P<date>\d{4}-\d{2}-\d{2})$")


class PriceTableError(ValueError):
    """The price file is missing, not JSON, or has an entry that is not a valid price."""


@dataclass(frozen=True)
class Price:
    """USD per 1M tokens for one model, valid from a date on (until a newer entry)."""

    model: str
    input: Decimal
    cached_input: Decimal
    output: Decimal
    valid_from: date
    source: str
    """Where the price came from, e.g. ``prices.json gpt-4o-mini 2024-07-18``."""
    batch_prices: tuple[Decimal, Decimal, Decimal] | None = None
    """The entry's own Batch API (input, cached_input, output), if it lists them."""

    def batch(self) -> Price:
        """This model's Batch API price: the listed one, or half the standard price."""
        if self.batch_prices is not None:
            inp, cached, out = self.batch_prices
            return replace(
                self, input=inp, cached_input=cached, output=out, source=f"{self.source} batch"
            )
        half = Decimal("0.5")
        return replace(
            self,
            input=self.input * half,
            cached_input=self.cached_input * half,
            output=self.output * half,
            source=f"{self.source} batch (50% of standard)",
        )


def parse_eur_rate(value: str | None) -> Decimal:
    """The USD→EUR rate from a setting such as ``LIVEDASH_USD_EUR_RATE``; blank means default."""
    if value is None or not value.strip():
        return DEFAULT_USD_TO_EUR
    try:
        rate = Decimal(value.strip())
    except InvalidOperation:
        raise ValueError(f"USD→EUR rate {value!r} is not a number") from None
    if not rate.is_finite() or rate <= 0:
        raise ValueError(f"USD→EUR rate {value!r} must be a positive number")
    return rate


def snapshot_family(model: str) -> tuple[str, date] | None:
    """``("gpt-4o-mini", 2024-07-18)`` for ``gpt-4o-mini-2024-07-18``; None for other names."""
    match = _SNAPSHOT.match(model)
    if match is None:
        return None
    try:
        return match["family"], date.fromisoformat(match["date"])
    except ValueError:
        return None


class PriceTable:
    def __init__(self, prices: list[Price], label: str = "prices.json") -> None:
        self.label = label
        self._by_model: dict[str, list[Price]] = {}
        for price in prices:
            self._by_model.setdefault(price.model, []).append(price)
        for entries in self._by_model.values():
            entries.sort(key=lambda p: p.valid_from)
            dates = [p.valid_from for p in entries]
            if len(set(dates)) != len(dates):
                raise PriceTableError(
                    f"{label}: model {entries[0].model!r} has two prices valid from the same day"
                )

    @classmethod
    def load(cls, path: Path | None = None) -> PriceTable:
        """The shipped table, or the override file at ``path`` (same JSON shape; it replaces)."""
        file = path or SHIPPED_PRICES
        try:
            raw = json.loads(file.read_text(encoding="utf-8"), parse_float=Decimal)
        except OSError as e:
            raise PriceTableError(f"cannot read price file {file}: {e.strerror or e}") from None
        except ValueError as e:
            raise PriceTableError(f"price file {file} is not valid JSON: {e}") from None
        return cls.from_json(raw, file.name)

    @classmethod
    def from_json(cls, raw: Any, label: str) -> PriceTable:
        if not isinstance(raw, dict) or not isinstance(raw.get("prices"), list):
            raise PriceTableError(f"{label}: expected an object with a 'prices' list")
        if raw.get("currency", "USD") != "USD":
            raise PriceTableError(f"{label}: prices must be in USD, not {raw.get('currency')!r}")
        if raw.get("per_tokens", PER_TOKENS) != PER_TOKENS:
            raise PriceTableError(f"{label}: prices must be per {PER_TOKENS} tokens")
        return cls([_entry(e, i, label) for i, e in enumerate(raw["prices"])], label)

    @property
    def models(self) -> list[str]:
        return sorted(self._by_model)

    def lookup(self, model: str, at: date) -> Price | None:
        """The price for ``model`` on day ``at``, or None when the table does not know it."""
        name = model.strip()
        entries = self._by_model.get(name)
        if entries is None:
            snapshot = snapshot_family(name)
            if snapshot is None:
                return None
            family, released = snapshot
            entries = self._by_model.get(family)
            if entries is None or released < entries[0].valid_from:
                return None
        valid = [p for p in entries if p.valid_from <= at]
        return valid[-1] if valid else None


def _entry(raw: Any, index: int, label: str) -> Price:
    where = f"{label}: prices[{index}]"
    if not isinstance(raw, dict):
        raise PriceTableError(f"{where} must be an object")
    model = raw.get("model")
    if not isinstance(model, str) or not model.strip():
        raise PriceTableError(f"{where}: 'model' must be a non-empty string")
    amounts = {k: _usd(raw.get(k), f"{where} ({model}) '{k}'") for k in ("input", "output")}
    cached = raw.get("cached_input")
    # A model without prompt caching bills cached tokens (there are none) at the input price.
    amounts["cached_input"] = (
        amounts["input"] if cached is None else _usd(cached, f"{where} ({model}) 'cached_input'")
    )
    try:
        valid_from = date.fromisoformat(str(raw.get("valid_from")))
    except ValueError:
        raise PriceTableError(f"{where} ({model}): 'valid_from' must be YYYY-MM-DD") from None
    return Price(
        model=model.strip(),
        input=amounts["input"],
        cached_input=amounts["cached_input"],
        output=amounts["output"],
        valid_from=valid_from,
        source=f"{label} {model.strip()} {valid_from.isoformat()}",
        batch_prices=_batch_entry(raw.get("batch"), f"{where} ({model}) 'batch'"),
    )


def _batch_entry(raw: Any, where: str) -> tuple[Decimal, Decimal, Decimal] | None:
    if raw is None:
        return None
    if not isinstance(raw, dict):
        raise PriceTableError(f"{where} must be an object with input, cached_input and output")
    inp = _usd(raw.get("input"), f"{where} 'input'")
    out = _usd(raw.get("output"), f"{where} 'output'")
    cached = raw.get("cached_input")
    return inp, inp if cached is None else _usd(cached, f"{where} 'cached_input'"), out


def _usd(value: Any, where: str) -> Decimal:
    if isinstance(value, bool) or not isinstance(value, str | int | Decimal):
        raise PriceTableError(f'{where} must be a number (a string such as "0.15" is exact)')
    try:
        amount = Decimal(value)
    except InvalidOperation:
        raise PriceTableError(f"{where}: {value!r} is not a number") from None
    if not amount.is_finite() or amount < 0:
        raise PriceTableError(f"{where}: {value!r} must be zero or more")
    return amount


def cost(
    price: Price,
    prompt_tokens: int,
    cached_tokens: int,
    completion_tokens: int,
    eur_rate: Decimal,
) -> tuple[Decimal, Decimal]:
    """(USD, EUR) for one response, exact: no rounding happens here."""
    if min(prompt_tokens, cached_tokens, completion_tokens) < 0:
        raise ValueError("token counts must not be negative")
    if cached_tokens > prompt_tokens:
        raise ValueError(
            f"cached tokens ({cached_tokens}) cannot exceed prompt tokens ({prompt_tokens})"
        )
    with localcontext() as ctx:
        ctx.prec = 60  # far beyond any real token count × price: every step below is exact
        per_million = (
            (prompt_tokens - cached_tokens) * price.input
            + cached_tokens * price.cached_input
            + completion_tokens * price.output
        )
        usd = per_million.scaleb(-6)
        eur = usd * eur_rate
    return usd, eur


def priced(
    price: Price | None,
    model: str,
    prompt_tokens: int,
    cached_tokens: int,
    completion_tokens: int,
    eur_rate: Decimal,
) -> tuple[Decimal | None, Decimal | None, str]:
    """(USD, EUR, price source) of a response that reported its usage. An unknown model or
    counts that cannot be priced cost None, and the source says why: the call is recorded
    all the same."""
    if price is None:
        return None, None, f"unknown model {model}"
    try:
        usd, eur = cost(price, prompt_tokens, cached_tokens, completion_tokens, eur_rate)
    except ValueError as e:
        return None, None, f"unusable usage from the server: {e}"
    return usd, eur, price.source
