"""The CSV loader on real market data (the ``backtesting`` package's EURUSD and GOOG) and
on small broken copies: each defect is refused with its exact ``file:line`` message, which
says what is wrong without quoting the file (no cell, header text or line of it)."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from engine.data import load_csv
from engine.errors import DataError

EditedCsv = Callable[..., Path]


def set_field(lines: list[str], line_no: int, column: str, value: str) -> list[str]:
    """Set ``column`` (header name) on 1-based file line ``line_no``."""
    header = lines[0].split(",")
    fields = lines[line_no - 1].split(",")
    fields[header.index(column)] = value
    lines[line_no - 1] = ",".join(fields)
    return lines


def field(path: Path, line_no: int, column: str) -> str:
    lines = path.read_text().splitlines()
    return lines[line_no - 1].split(",")[lines[0].split(",").index(column)]


# --- loading real data ------------------------------------------------------------


def test_shipped_eurusd_loads_with_its_unnamed_datetime_column(eurusd_csv: Path) -> None:
    data = load_csv(eurusd_csv)
    reference = pd.read_csv(eurusd_csv, index_col=0, parse_dates=True)
    assert data.symbol == "EURUSD" and len(data) == len(reference) == 5000
    np.testing.assert_array_equal(data.close, reference["Close"].to_numpy())
    np.testing.assert_array_equal(data.low, reference["Low"].to_numpy())
    np.testing.assert_array_equal(data.volume, reference["Volume"].to_numpy(dtype=float))
    expected_ns = reference.index.tz_localize("UTC").as_unit("ns").asi8
    np.testing.assert_array_equal(data.timestamps, expected_ns)
    assert data.timestamps.dtype == np.int64 and data.close.dtype == np.float64
    assert data.close.flags.c_contiguous
    assert not data.close.flags.writeable and not data.timestamps.flags.writeable
    assert data.meta == {"rows_read": 5000, "dropped_rows": 0, "dropped_by_reason": {}}
    assert data.source == str(eurusd_csv)


def test_explicit_first_column_selector(goog_csv: Path) -> None:
    by_name = load_csv(goog_csv, datetime_column="")
    by_index = load_csv(goog_csv, datetime_column=0, symbol="GOOGL")
    np.testing.assert_array_equal(by_name.timestamps, by_index.timestamps)
    assert by_index.symbol == "GOOGL"
    assert by_name.time_at(0).isoformat() == "2004-08-19T00:00:00+00:00"
    assert len(by_name) == 2148


def test_columns_matched_by_name_in_any_order(eurusd_lts_csv: Path, eurusd_csv: Path) -> None:
    assert eurusd_lts_csv.read_text().splitlines()[0] == "DATE_TIME,OPEN,LOW,HIGH,CLOSE"
    data = load_csv(eurusd_lts_csv)
    shipped = load_csv(eurusd_csv)
    assert data.volume is None  # volume is optional
    for name in ("open", "high", "low", "close", "timestamps"):
        np.testing.assert_array_equal(getattr(data, name), getattr(shipped, name))
    assert (data.high >= data.low).all()


def test_column_names_are_case_insensitive_and_extra_columns_ignored(tmp_path: Path) -> None:
    path = tmp_path / "mixed.csv"
    path.write_text(
        "Note,close,Date_Time,HIGH,low,Open\n"
        "x,1.5,2020-01-01 00:00:00,2,1,1.2\n"
        "y,1.7,2020-01-01 01:00:00,2,1,1.5\n"
    )
    data = load_csv(path)
    assert data.close.tolist() == [1.5, 1.7] and data.open.tolist() == [1.2, 1.5]
    assert data.high.tolist() == [2.0, 2.0] and data.low.tolist() == [1.0, 1.0]


def test_naive_times_are_utc_and_aware_times_are_converted(tmp_path: Path) -> None:
    path = tmp_path / "tz.csv"
    path.write_text(
        "DATE_TIME,OPEN,HIGH,LOW,CLOSE\n"
        "2020-01-01 10:00:00,1,1,1,1\n"
        "2020-01-01T13:30:00+02:00,1,1,1,1\n"
        "2020-01-01 12:00:00Z,1,1,1,1\n"
    )
    data = load_csv(path)
    assert [data.time_at(i).isoformat() for i in range(3)] == [
        "2020-01-01T10:00:00+00:00",
        "2020-01-01T11:30:00+00:00",
        "2020-01-01T12:00:00+00:00",
    ]


def test_aware_times_all_with_an_offset(tmp_path: Path) -> None:
    path = tmp_path / "tz.csv"
    path.write_text(
        "DATE_TIME,OPEN,HIGH,LOW,CLOSE\n"
        "2020-01-01T11:00:00+02:00,1,1,1,1\n"
        "2020-01-01T12:00:00+02:00,1,1,1,1\n"
    )
    data = load_csv(path)
    assert data.time_at(0).isoformat() == "2020-01-01T09:00:00+00:00"
    assert int(data.timestamps[1] - data.timestamps[0]) == 3_600_000_000_000


def test_non_iso_dates_are_parsed_consistently(tmp_path: Path) -> None:
    path = tmp_path / "us.csv"
    path.write_text(
        "DATE_TIME,OPEN,HIGH,LOW,CLOSE\n01/02/2020 10:00,1,1,1,1\n01/03/2020 10:00,1,1,1,1\n"
    )
    data = load_csv(path)
    assert data.time_at(1).isoformat() == "2020-01-03T10:00:00+00:00"


# --- refusals with file:line ------------------------------------------------------


def test_missing_column_names_it_and_counts_the_columns_found(tmp_path: Path, eurusd_lts_csv: Path) -> None:
    path = tmp_path / "nohigh.csv"
    frame = pd.read_csv(eurusd_lts_csv).drop(columns=["HIGH"])
    frame.to_csv(path, index=False)
    with pytest.raises(DataError) as err:
        load_csv(path)
    assert str(err.value) == (
        f"{path}:1: missing column(s) HIGH (matched case-insensitively; the header has 4 column(s))"
    )


def test_missing_datetime_column(edited_csv: EditedCsv, eurusd_lts_csv: Path) -> None:
    path = edited_csv(eurusd_lts_csv, lambda ls: ["TIME" + ls[0][len("DATE_TIME"):], *ls[1:]])
    with pytest.raises(DataError) as err:
        load_csv(path)
    assert str(err.value) == (
        f"{path}:1: missing column(s) DATE_TIME (matched case-insensitively; the header has 5 column(s))"
    )
    assert len(load_csv(path, datetime_column="time")) == 5000


def test_duplicate_column_is_ambiguous(tmp_path: Path) -> None:
    path = tmp_path / "dup.csv"
    path.write_text("DATE_TIME,OPEN,HIGH,LOW,CLOSE,close\n2020-01-01,1,1,1,1,1\n")
    with pytest.raises(DataError) as err:
        load_csv(path)
    assert str(err.value) == f"{path}:1: column CLOSE appears more than once (columns #5 and #6)"


def test_unparsable_number(edited_csv: EditedCsv, eurusd_lts_csv: Path) -> None:
    path = edited_csv(eurusd_lts_csv, lambda ls: set_field(ls, 11, "OPEN", "1.07x"))
    with pytest.raises(DataError) as err:
        load_csv(path)
    assert str(err.value) == f"{path}:11: OPEN is not a number"


def test_empty_value(edited_csv: EditedCsv, eurusd_lts_csv: Path) -> None:
    path = edited_csv(eurusd_lts_csv, lambda ls: set_field(ls, 20, "HIGH", ""))
    with pytest.raises(DataError) as err:
        load_csv(path)
    assert str(err.value) == f"{path}:20: HIGH is empty"


def test_nan_value(edited_csv: EditedCsv, eurusd_lts_csv: Path) -> None:
    path = edited_csv(eurusd_lts_csv, lambda ls: set_field(ls, 4321, "CLOSE", "NaN"))
    with pytest.raises(DataError) as err:
        load_csv(path)
    assert str(err.value) == f"{path}:4321: CLOSE is NaN"


def test_infinite_value(edited_csv: EditedCsv, goog_lts_csv: Path) -> None:
    path = edited_csv(goog_lts_csv, lambda ls: set_field(ls, 7, "VOLUME", "inf"))
    with pytest.raises(DataError) as err:
        load_csv(path)
    assert str(err.value) == f"{path}:7: VOLUME is not finite"


def test_unparsable_date(edited_csv: EditedCsv, eurusd_lts_csv: Path) -> None:
    path = edited_csv(eurusd_lts_csv, lambda ls: set_field(ls, 100, "DATE_TIME", "2017-13-45 10:00:00"))
    with pytest.raises(DataError) as err:
        load_csv(path)
    assert str(err.value) == f"{path}:100: DATE_TIME is not a date/time"


def test_empty_date(edited_csv: EditedCsv, goog_lts_csv: Path) -> None:
    path = edited_csv(goog_lts_csv, lambda ls: set_field(ls, 2, "DATE_TIME", ""))
    with pytest.raises(DataError) as err:
        load_csv(path)
    assert str(err.value) == f"{path}:2: DATE_TIME is empty"


def test_high_below_low(edited_csv: EditedCsv, eurusd_lts_csv: Path) -> None:
    high, low = field(eurusd_lts_csv, 50, "HIGH"), field(eurusd_lts_csv, 50, "LOW")
    assert float(high) > float(low)

    def swap(lines: list[str]) -> list[str]:
        return set_field(set_field(lines, 50, "HIGH", low), 50, "LOW", high)

    path = edited_csv(eurusd_lts_csv, swap)
    with pytest.raises(DataError) as err:
        load_csv(path)
    assert str(err.value) == f"{path}:50: HIGH is below LOW"


@pytest.mark.parametrize("column", ["OPEN", "CLOSE"])
def test_open_or_close_outside_the_bar(edited_csv: EditedCsv, goog_lts_csv: Path, column: str) -> None:
    high, low = float(field(goog_lts_csv, 30, "HIGH")), float(field(goog_lts_csv, 30, "LOW"))
    value = round(high + 1.0, 2)
    path = edited_csv(goog_lts_csv, lambda ls: set_field(ls, 30, column, str(value)))
    with pytest.raises(DataError) as err:
        load_csv(path)
    assert str(err.value) == f"{path}:30: {column} is outside [LOW, HIGH]"
    assert str(value) not in str(err.value) and str(low) not in str(err.value)


def test_duplicate_timestamp(edited_csv: EditedCsv, eurusd_lts_csv: Path) -> None:
    stamp = field(eurusd_lts_csv, 29, "DATE_TIME")
    path = edited_csv(eurusd_lts_csv, lambda ls: set_field(ls, 30, "DATE_TIME", stamp))
    with pytest.raises(DataError) as err:
        load_csv(path)
    assert str(err.value) == f"{path}:30: duplicate timestamp (also on line 29)"


def test_timestamp_going_back(edited_csv: EditedCsv, eurusd_lts_csv: Path) -> None:
    def swap_lines(lines: list[str]) -> list[str]:
        lines[39], lines[40] = lines[40], lines[39]  # file lines 40 and 41
        return lines

    path = edited_csv(eurusd_lts_csv, swap_lines)
    with pytest.raises(DataError) as err:
        load_csv(path)
    assert str(err.value) == f"{path}:41: timestamp is earlier than the one on line 40 (timestamps must increase)"


def test_timezone_conversion_is_checked_for_order(tmp_path: Path) -> None:
    path = tmp_path / "tz.csv"
    path.write_text(
        "DATE_TIME,OPEN,HIGH,LOW,CLOSE\n"
        "2020-01-01 10:00:00,1,1,1,1\n"
        "2020-01-01T11:30:00+02:00,1,1,1,1\n"
    )
    with pytest.raises(DataError) as err:
        load_csv(path)
    assert str(err.value) == f"{path}:3: timestamp is earlier than the one on line 2 (timestamps must increase)"


def test_wrong_number_of_fields(edited_csv: EditedCsv, eurusd_lts_csv: Path) -> None:
    def drop_field(lines: list[str]) -> list[str]:
        lines[4999] = lines[4999].rsplit(",", 1)[0]  # file line 5000
        return lines

    path = edited_csv(eurusd_lts_csv, drop_field)
    with pytest.raises(DataError) as err:
        load_csv(path)
    assert str(err.value) == f"{path}:5000: expected 5 fields as in the header, found 4"


def test_line_numbers_stay_exact_across_blank_lines(edited_csv: EditedCsv, eurusd_lts_csv: Path) -> None:
    def blank_then_break(lines: list[str]) -> list[str]:
        lines = set_field(lines, 10, "CLOSE", "oops")
        return [*lines[:3], "", "", *lines[3:]]  # two blank lines at file lines 4-5

    path = edited_csv(eurusd_lts_csv, blank_then_break)
    with pytest.raises(DataError) as err:
        load_csv(path)
    assert str(err.value) == f"{path}:12: CLOSE is not a number"


def test_first_defect_is_reported_with_the_count_of_the_others(edited_csv: EditedCsv, eurusd_lts_csv: Path) -> None:
    def three_defects(lines: list[str]) -> list[str]:
        lines = set_field(lines, 900, "OPEN", "")
        lines = set_field(lines, 300, "LOW", "abc")
        return set_field(lines, 2000, "DATE_TIME", "nope")

    path = edited_csv(eurusd_lts_csv, three_defects)
    with pytest.raises(DataError) as err:
        load_csv(path)
    assert str(err.value) == (
        f"{path}:300: LOW is not a number "
        "(and 2 more invalid row(s); drop_invalid=True skips them)"
    )


def test_negative_volume(edited_csv: EditedCsv, goog_lts_csv: Path) -> None:
    path = edited_csv(goog_lts_csv, lambda ls: set_field(ls, 15, "VOLUME", "-5"))
    with pytest.raises(DataError) as err:
        load_csv(path)
    assert str(err.value) == f"{path}:15: VOLUME is negative"


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("", ":1: empty file or empty header line"),
        ("DATE_TIME,OPEN,HIGH,LOW,CLOSE\n", ": no data rows after the header"),
    ],
)
def test_empty_files(tmp_path: Path, content: str, message: str) -> None:
    path = tmp_path / "empty.csv"
    path.write_text(content)
    with pytest.raises(DataError) as err:
        load_csv(path)
    assert str(err.value) == f"{path}{message}"


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(DataError) as err:
        load_csv(tmp_path / "nope.csv")
    assert str(err.value) == f"{tmp_path / 'nope.csv'}: file not found"


# --- drop_invalid -------------------------------------------------------------------


def test_drop_invalid_drops_and_counts_each_kind(
    edited_csv: EditedCsv, eurusd_lts_csv: Path, caplog: pytest.LogCaptureFixture
) -> None:
    def defects(lines: list[str]) -> list[str]:
        lines = set_field(lines, 10, "OPEN", "x")  # bad number
        lines = set_field(lines, 20, "DATE_TIME", "")  # bad date
        lines = set_field(lines, 30, "HIGH", "0.5")  # high below low
        lines = set_field(lines, 40, "DATE_TIME", lines[38].split(",")[0])  # duplicate of line 39
        lines[59], lines[60] = lines[60], lines[59]  # line 61 goes back in time
        return lines

    path = edited_csv(eurusd_lts_csv, defects)
    original = load_csv(eurusd_lts_csv)
    with caplog.at_level(logging.WARNING, logger="engine.data.csv_loader"):
        data = load_csv(path, drop_invalid=True)
    assert data.meta["rows_read"] == 5000
    assert data.meta["dropped_rows"] == 5 and len(data) == 4995
    assert data.meta["dropped_by_reason"] == {
        "bad date/time": 1,
        "bad OPEN": 1,
        "HIGH below LOW": 1,
        "timestamp not increasing": 2,
    }
    assert (np.diff(data.timestamps) > 0).all()
    assert "dropped 5 invalid row(s) of 5000" in caplog.text
    assert "first at line(s) 10, 20, 30, 40, 61" in caplog.text
    # Untouched rows are kept as they were.
    keep = np.isin(original.timestamps, data.timestamps)
    np.testing.assert_array_equal(data.close, original.close[keep][: len(data)])


def test_drop_invalid_refuses_when_nothing_is_left(tmp_path: Path) -> None:
    path = tmp_path / "bad.csv"
    path.write_text("DATE_TIME,OPEN,HIGH,LOW,CLOSE\nx,1,1,1,1\n")
    with pytest.raises(DataError, match=r"all 1 data rows are invalid"):
        load_csv(path, drop_invalid=True)


def test_drop_invalid_keeps_a_clean_file_untouched(goog_lts_csv: Path) -> None:
    data = load_csv(goog_lts_csv, drop_invalid=True)
    assert data.meta["dropped_rows"] == 0 and len(data) == 2148


def test_crlf_line_endings_keep_exact_line_numbers(tmp_path: Path, goog_lts_csv: Path) -> None:
    lines = goog_lts_csv.read_text().splitlines()
    lines = set_field(lines, 1234, "LOW", "n/a")
    path = tmp_path / "crlf.csv"
    path.write_bytes(("\r\n".join(lines) + "\r\n").encode())
    with pytest.raises(DataError) as err:
        load_csv(path)
    assert str(err.value) == f"{path}:1234: LOW is NaN"
    path.write_bytes(("\r\n".join(goog_lts_csv.read_text().splitlines()) + "\r\n").encode())
    assert len(load_csv(path)) == 2148


# --- messages never quote the file ----------------------------------------------------

MARKER = "s3cr3t-MARKER"


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        # /etc/passwd-like: the first line is the "header"
        (f"root:x:0:0:{MARKER}:/root:/bin/bash\ndaemon:x:1:1::/usr/sbin:/bin/false\n",
         ":1: missing column(s) DATE_TIME, OPEN, HIGH, LOW, CLOSE (matched case-insensitively; "
         "the header has 1 column(s))"),
        # a one-line secret file (what a JWT secret file looks like)
        (f"{MARKER}\n", ":1: missing column(s) DATE_TIME, OPEN, HIGH, LOW, CLOSE"),
        # pyarrow's own message would quote the row with the wrong field count
        (f"DATE_TIME,OPEN,HIGH,LOW,CLOSE\n2020-01-01,1,1,1,1\n{MARKER},a,b\n",
         ":3: expected 5 fields as in the header, found 3"),
        # an unterminated quote: pyarrow's message would quote the rest of the file
        (f'DATE_TIME,OPEN,HIGH,LOW,CLOSE\n2020-01-01,1,1,1,1\n2020-01-02,"{MARKER},1,1,1\n',
         ":3: expected 5 fields as in the header, found 2"),
        (f"DATE_TIME,OPEN,HIGH,LOW,CLOSE\n{MARKER},1,1,1,1\n", ":2: DATE_TIME is not a date/time"),
        (f"DATE_TIME,OPEN,HIGH,LOW,CLOSE\n2020-01-01,{MARKER},1,1,1\n", ":2: OPEN is not a number"),
        (f"date_time,open,{MARKER},high,low,close,Open\n2020-01-01,1,1,1,1,1,1\n",
         ":1: column OPEN appears more than once (columns #2 and #7)"),
    ],
)
def test_no_message_quotes_the_file(tmp_path: Path, content: str, expected: str) -> None:
    path = tmp_path / "probe.csv"
    path.write_text(content)
    with pytest.raises(DataError) as err:
        load_csv(path)
    message = str(err.value)
    assert message.startswith(f"{path}{expected}"), message
    assert MARKER not in message and "root:x" not in message and "\n" not in message
    assert err.value.__cause__ is None  # the parser's own message (it quotes rows) is not chained


def test_undecodable_bytes_are_named_not_shown(tmp_path: Path) -> None:
    path = tmp_path / "binary.csv"
    path.write_bytes(b"\xff\xfe" + MARKER.encode() + b"\x00\x81\n")
    with pytest.raises(DataError) as err:
        load_csv(path)
    assert str(err.value) == f"{path}:1: not UTF-8 text"


def test_messages_use_the_name_the_caller_gives(tmp_path: Path) -> None:
    path = tmp_path / "deep" / "server" / "folder" / "x.csv"
    path.parent.mkdir(parents=True)
    path.write_text("DATE_TIME,OPEN,HIGH,LOW,CLOSE\n2020-01-01,1,1,1,abc\n")
    with pytest.raises(DataError) as err:
        load_csv(path, name="folder/x.csv")
    assert str(err.value) == "folder/x.csv:2: CLOSE is not a number"
    with pytest.raises(DataError) as err:
        load_csv(tmp_path / "gone.csv", name="gone.csv")
    assert str(err.value) == "gone.csv: file not found"
