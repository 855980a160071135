"""The bounds of free-form JSON objects and the storable-text rule (``api.schemas.common``),
exactly at their limits."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from api.schemas.common import (
    MAX_JSON_DEPTH,
    MAX_JSON_ITEMS,
    MAX_JSON_KEY,
    MAX_JSON_STRING,
    JsonObject,
    RequestModel,
    json_bounds_problem,
    unstorable_text,
)


def nested(depth: int) -> dict:
    value: dict = {}
    for _ in range(depth - 1):
        value = {"a": value}
    return value


class Body(RequestModel):
    config: JsonObject = {}
    name: str = ""


def test_depth_limit_is_exact() -> None:
    assert json_bounds_problem(nested(MAX_JSON_DEPTH)) is None
    assert "nested deeper than 32" in (json_bounds_problem(nested(MAX_JSON_DEPTH + 1)) or "")
    assert "nested deeper" in (json_bounds_problem({"a": [[[[nested(MAX_JSON_DEPTH)]]]]}) or "")


def test_size_limits_are_exact() -> None:
    assert json_bounds_problem({str(i): 0 for i in range(MAX_JSON_ITEMS)}) is None
    assert "more than" in (json_bounds_problem({str(i): 0 for i in range(MAX_JSON_ITEMS + 1)}) or "")
    assert "more than" in (json_bounds_problem({"a": list(range(MAX_JSON_ITEMS))}) or "")  # counted over levels
    assert json_bounds_problem({"s": "x" * MAX_JSON_STRING, "k" * MAX_JSON_KEY: 1}) is None
    assert "longer than" in (json_bounds_problem({"s": "x" * (MAX_JSON_STRING + 1)}) or "")
    assert "key is longer" in (json_bounds_problem({"k" * (MAX_JSON_KEY + 1): 1}) or "")


@pytest.mark.parametrize("number", [float("nan"), float("inf"), float("-inf")])
def test_numbers_must_be_finite(number: float) -> None:
    assert json_bounds_problem({"a": [1, {"b": number}]}) == f"a[1].b: {number!r} is not a finite number"


def test_unstorable_text_anywhere_is_found_with_its_place() -> None:
    assert unstorable_text({"a": ["ok", {"b": "x\x00"}]}) == "a[1].b: text contains a NUL character"
    assert unstorable_text({"a": {"k\ud800": 1}}) == "a: a key contains a lone surrogate (not valid Unicode)"
    assert unstorable_text({"a": "\U0001F600 \u00e9 \t"}) is None


def test_a_hostile_depth_is_refused_without_recursion() -> None:
    deep: list = []
    for _ in range(100_000):  # far past Python's recursion limit
        deep = [deep]
    assert "nested too deeply" in (unstorable_text({"x": deep}) or "")
    with pytest.raises(ValidationError, match="nested too deeply"):
        Body.model_validate({"config": {"x": deep}})


def test_request_models_refuse_before_their_fields_are_validated() -> None:
    with pytest.raises(ValidationError, match="name: text contains a NUL character"):
        Body.model_validate({"name": "a\x00"})
    with pytest.raises(ValidationError, match="nested deeper than 32"):
        Body.model_validate({"config": nested(MAX_JSON_DEPTH + 1)})
    assert Body.model_validate({"config": nested(MAX_JSON_DEPTH)}).config
