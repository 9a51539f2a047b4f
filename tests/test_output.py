"""JSON printing: exact decimals as numbers, everything else exactly as json.dumps prints it."""

from __future__ import annotations

import json
from decimal import Decimal

from pydantic import BaseModel

from cli.output import _dumps, _plain, exact_text


def test_without_decimals_it_is_json_dumps() -> None:
    value = {"a": [1, 2.5, None, True, {}], "é": {"b": [], "c": 'x\n"y"'}, "n": 1e-05}
    assert _dumps(value) == json.dumps(value, indent=2, ensure_ascii=False)


def test_decimals_are_exact_numbers() -> None:
    assert exact_text(Decimal("1.6974000E-5")) == "0.000016974"
    assert exact_text(Decimal("0E-8")) == "0"
    assert exact_text(Decimal("1E+2")) == "100"
    digits = "1234567.000000000000000000000000000001"  # more than a float or normalize() keeps
    assert exact_text(Decimal(digits)) == digits
    text = _dumps({"cost_eur": Decimal(digits), "none": None})
    assert json.loads(text, parse_float=Decimal) == {"cost_eur": Decimal(digits), "none": None}


class Row(BaseModel):
    key: str
    cost_eur: Decimal | None
    by: dict[str, Decimal | None]


def test_models_keep_their_decimals() -> None:
    row = Row(key="k", cost_eur=Decimal("0.10"), by={"a": None, "b": Decimal("0.000000069")})
    text = _dumps(_plain([row]))
    assert '"cost_eur": 0.1,' in text and '"b": 0.000000069' in text
    assert json.loads(text) == [{"key": "k", "cost_eur": 0.1, "by": {"a": None, "b": 6.9e-08}}]
