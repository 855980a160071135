"""Typed parsing of unknown ``--key value`` command-line pairs."""

from __future__ import annotations

import pytest

from engine.config import parse_cli_pairs, parse_cli_value
from engine.errors import ConfigError


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("42", 42),
        ("-7", -7),
        ("+3", 3),
        ("2.5", 2.5),
        ("-0.25", -0.25),
        ("1e-3", 0.001),
        (".5", 0.5),
        ("true", True),
        ("False", False),
        ("null", None),
        ("None", None),
        ('["a", "b"]', ["a", "b"]),
        ('{"EURUSD": 0.6}', {"EURUSD": 0.6}),
        ('"007"', "007"),
        ("hello", "hello"),
        ("http://127.0.0.1:8001", "http://127.0.0.1:8001"),
        ("1.2.3", "1.2.3"),
        ("nan", "nan"),  # not a number we want: stays text, and validation decides
        ("", ""),
    ],
)
def test_values_are_typed_by_their_text(text: str, expected: object) -> None:
    value = parse_cli_value(text)
    assert value == expected and type(value) is type(expected)


def test_invalid_json_names_the_option() -> None:
    with pytest.raises(ConfigError) as err:
        parse_cli_value("[1, 2", option="--weights")
    assert str(err.value) == (
        "--weights: value '[1, 2' looks like JSON but is not valid JSON "
        "(Expecting ',' delimiter at column 6)"
    )


def test_pair_forms_and_raw_text_are_kept() -> None:
    pairs = parse_cli_pairs(
        ["--api_port", "9000", "--mode=live", "--dry-run", "--fast", "-5", "--label", "x y"]
    )
    assert {key: cli.value for key, cli in pairs.items()} == {
        "api_port": 9000,
        "mode": "live",
        "dry_run": True,
        "fast": -5,
        "label": "x y",
    }
    assert pairs["api_port"].raw == "9000" and pairs["api_port"].option == "--api_port"
    assert pairs["dry_run"].option == "--dry-run"


def test_bare_flag_before_another_option_is_true() -> None:
    pairs = parse_cli_pairs(["--verbose", "--api_port", "1"])
    assert pairs["verbose"].value is True and pairs["api_port"].value == 1


def test_later_occurrence_wins() -> None:
    assert parse_cli_pairs(["--fast", "1", "--fast", "2"])["fast"].value == 2


def test_value_with_equals_sign_keeps_the_rest() -> None:
    assert parse_cli_pairs(["--database_url=sqlite:///a.db?x=1"])["database_url"].value == (
        "sqlite:///a.db?x=1"
    )


@pytest.mark.parametrize(
    ("tokens", "message"),
    [
        (["stray"], "unexpected argument 'stray': extra settings are given as --key value"),
        (["-x", "1"], "unexpected argument '-x': extra settings are given as --key value"),
        (["--9lives", "1"], "'--9lives' is not a valid option name (use --key value)"),
        (["--a.b", "1"], "'--a.b' is not a valid option name (use --key value)"),
    ],
)
def test_malformed_pairs_are_refused(tokens: list[str], message: str) -> None:
    with pytest.raises(ConfigError) as err:
        parse_cli_pairs(tokens)
    assert str(err.value) == message
