"""The one rule for what a client sees of an error (``engine.public_text``)."""

from __future__ import annotations

import pytest

from engine.errors import ConfigError, DataError, StrategyError
from engine.public_text import MAX_REASON_CHARS, one_line, public_reason, public_text

# What Ray's RayTaskError text looks like (captured from a real cluster, Ray 2.x).
RAY_TEXT = (
    "\x1b[36mray::AssetActor.start()\x1b[39m (pid=10925, ip=192.0.2.2, "
    "actor_id=d03f9579e6693739d525af6501000000, repr=<actors.asset_actor.AssetActor object at 0x7f12fdfcd850>)\n"
    "           ^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^\n"
    '  File "/srv/lts/actors/asset_actor.py", line 8, in start\n'
    "engine.errors.DataError: asset 3: data file /srv/lts/data/e.csv does not exist"
)


def test_ray_tracebacks_become_one_line_without_pid_ip_actor_id_or_colour() -> None:
    text = public_text(RAY_TEXT)
    assert "\n" not in text and "\x1b" not in text
    for leaked in ("10925", "192.0.2.2", "d03f9579e6693739d525af6501000000", "0x7f12fdfcd850", "File ",
                   "/srv/lts", "Traceback"):
        assert leaked not in text, (leaked, text)


def test_a_formatted_traceback_gives_its_exception_line_not_its_header() -> None:
    text = public_text('Traceback (most recent call last):\n  File "/x/y.py", line 3, in f\n    1/0\n'
                       "    ^^^\nZeroDivisionError: division by zero")
    assert text == "ZeroDivisionError: division by zero"


def test_paths_inside_data_dir_are_shown_relative_others_are_hidden(tmp_path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    assert public_text(f"data file {data}/sub/e.csv does not exist", data_dir=data) == \
        "data file sub/e.csv does not exist"
    assert public_text(f"{data}/../secret and {tmp_path}/lts.db and /etc/passwd", data_dir=data) == \
        "<path> and <path> and <path>"
    # A sibling that merely starts with the same letters is not inside it.
    assert public_text(f"{data}base/x", data_dir=data) == "<path>"
    assert public_text("see ~/notes and C:\\Users\\op\\x.txt") == "see <path> and <path>"


def test_relative_paths_the_user_wrote_stay() -> None:
    assert public_text("data_source.path '../../etc/passwd': outside") == "data_source.path '../../etc/passwd': outside"
    assert public_text("ratio 1/2, file a/b.csv") == "ratio 1/2, file a/b.csv"


@pytest.mark.parametrize("leak", [
    "127.0.0.1", "10.0.0.5:6379", "[::1]:8000", "fe80::1", "localhost:5432", "http://10.1.2.3:9/x?a=b",
    "port 5432", "pid=4242", "PID: 4242", "28f603f86f4756dd0f78618d8d7b72a362fd077fa70707f2a353415f",
])
def test_addresses_ports_pids_and_ids_are_hidden(leak: str) -> None:
    text = public_text(f"failed near {leak} today")
    assert leak not in text and text.startswith("failed near ") and text.endswith("> today"), text
    assert "<" in text


def test_ordinary_numbers_times_and_words_are_kept() -> None:
    line = "step took longer than step_timeout_s=10 at 12:30:45 on 2024-01-01, bar 1700000000000000000"
    assert public_text(line) == line


def test_length_is_bounded_and_control_characters_go() -> None:
    assert len(public_text("x" * 10_000)) == MAX_REASON_CHARS
    assert public_text("a\x00b\x07c\u2028second") == "abc"
    assert public_text("\n\n  hello   world \n next") == "hello world"


def test_idempotent() -> None:
    once = public_text(RAY_TEXT, data_dir="/srv/lts/data")
    assert public_text(once, data_dir="/srv/lts/data") == once


def test_one_line_keeps_the_words_but_not_the_shape() -> None:
    assert one_line("name '/etc/x' is taken\nDETAIL: (owner)=(3)") == "name '/etc/x' is taken"
    assert one_line("\x1b[31mred\x1b[0m") == "red"


def test_domain_errors_give_their_message_anything_else_only_its_class() -> None:
    assert public_reason(DataError("asset 3: bad CSV line 4\nmore")) == "asset 3: bad CSV line 4"
    assert public_reason(ConfigError("")) == "ConfigError"
    assert public_reason(StrategyError("x at 10.0.0.1")) == "x at <address>"
    # A library's message may quote a file's content or a statement: never shown.
    assert public_reason(ValueError("could not convert 'root:x:0:0'")) == "internal error (ValueError)"
    assert public_reason(KeyError("secret"), generic="strategy failed") == "strategy failed (KeyError)"
    assert public_reason(TimeoutError()) == "timed out"
