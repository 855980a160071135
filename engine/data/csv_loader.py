"""Load an OHLC(V) CSV into validated ``MarketData`` — fast, and precise when it refuses.

Format
    A header line, then one bar per line. Columns are matched by name, case-insensitively,
    in any order: ``OPEN``, ``HIGH``, ``LOW``, ``CLOSE``, optional ``VOLUME``, and the
    datetime column (``DATE_TIME`` by default; other columns are ignored). The datetime
    column can be named with ``datetime_column``; ``""`` (or ``0``) means the first
    column, and when the default ``DATE_TIME`` is absent and the first column has no
    name (pandas' ``to_csv`` index, as in the ``backtesting`` package's CSVs) that first
    column is used. Naive datetimes are UTC; aware ones are converted to UTC.

Validation (vectorised; line numbers are only computed when something is wrong)
    Every row must have a parsable date/time, finite numbers in every price (and volume)
    column, ``low <= high``, ``open`` and ``close`` within ``[low, high]``, a volume
    >= 0, and a timestamp later than every earlier row's (no duplicates, no going back).
    A violation raises ``DataError("<file>:<line>: <what>")`` with the 1-based line of the
    file (the header is line 1). With ``drop_invalid=True`` such rows are dropped
    instead: the count is logged and stored in ``MarketData.meta["dropped_rows"]`` (with
    a per-reason breakdown in ``meta["dropped_by_reason"]``); a row out of time order is
    one whose timestamp is not later than the latest kept so far.

Result: ``MarketData`` whose columns are contiguous, read-only numpy arrays (float64
prices, int64 ns UTC timestamps), ``source`` the file path and ``meta`` the row counts.

Speed: pyarrow's multithreaded CSV reader, then numpy; a 1,000,000-bar file loads in
a fraction of a second (``bench/bench_csv_load.py``).
"""

from __future__ import annotations

import csv
import logging
import math
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pa_csv

from engine.data.market_data import MarketData
from engine.errors import DataError

logger = logging.getLogger(__name__)

PRICE_COLUMNS: tuple[str, ...] = ("OPEN", "HIGH", "LOW", "CLOSE")
VOLUME_COLUMN = "VOLUME"
DEFAULT_DATETIME_COLUMN = "DATE_TIME"
_NAT = np.iinfo(np.int64).min  # numpy's NaT as int64
_NAN_WORDS = {"nan", "-nan", "na", "n/a", "null", "none", "#n/a", "-1.#ind", "1.#qnan"}


@dataclass(frozen=True, slots=True)
class _Columns:
    """Header positions of the columns we use, and the header as written."""

    header: list[str]
    datetime: int
    prices: dict[str, int]  # "OPEN" -> position
    volume: int | None


def _read_header(path: Path) -> list[str]:
    try:
        with path.open("r", encoding="utf-8-sig", newline="") as handle:
            first = handle.readline()
    except FileNotFoundError:
        raise DataError(f"{path}: file not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(f"{path}: cannot read: {exc}") from exc
    if not first.strip():
        raise DataError(f"{path}:1: empty file or empty header line")
    return next(csv.reader([first]))


def _locate_columns(path: Path, header: list[str], datetime_column: str | int) -> _Columns:
    folded: dict[str, list[int]] = {}
    for pos, name in enumerate(header):
        folded.setdefault(name.strip().casefold(), []).append(pos)

    def find(name: str) -> int | None:
        positions = folded.get(name.casefold())
        if not positions:
            return None
        if len(positions) > 1:
            found = ", ".join(repr(header[p]) for p in positions)
            raise DataError(f"{path}:1: column {name} appears more than once ({found})")
        return positions[0]

    missing: list[str] = []
    if isinstance(datetime_column, int):
        dt_pos: int | None = datetime_column if 0 <= datetime_column < len(header) else None
        dt_label = f"#{datetime_column} (0-based)"
    elif datetime_column == "":
        dt_pos, dt_label = 0, "#0 (first column)"
    else:
        dt_pos, dt_label = find(datetime_column), datetime_column
        if (
            dt_pos is None
            and datetime_column == DEFAULT_DATETIME_COLUMN
            and header[0].strip() == ""
        ):
            dt_pos = 0  # unnamed first column: a pandas index written by to_csv
    if dt_pos is None:
        missing.append(dt_label)
    prices: dict[str, int] = {}
    for name in PRICE_COLUMNS:
        pos = find(name)
        if pos is None:
            missing.append(name)
        else:
            prices[name] = pos
    if missing:
        found = ", ".join(repr(h) for h in header)
        raise DataError(
            f"{path}:1: missing column(s) {', '.join(missing)} "
            f"(matched case-insensitively); found: {found}"
        )
    assert dt_pos is not None
    return _Columns(header, dt_pos, prices, find(VOLUME_COLUMN))


def _data_lines(path: Path, rows: Iterable[int]) -> dict[int, tuple[int, str]]:
    """Data row index (0-based, blank lines skipped as the reader does) -> (1-based
    file line, raw text). Only called when a message needs it."""
    wanted = set(rows)
    result: dict[int, tuple[int, str]] = {}
    if not wanted:
        return result
    last = max(wanted)
    row = -1
    with path.open("r", encoding="utf-8-sig", newline="") as handle:
        handle.readline()  # header, line 1
        for line_no, line in enumerate(handle, start=2):
            if not line.strip("\r\n"):
                continue
            row += 1
            if row in wanted:
                result[row] = (line_no, line.rstrip("\r\n"))
                if row == last:
                    break
    return result


def _cell(raw_line: str, pos: int) -> str:
    fields = next(csv.reader([raw_line]), [])
    return fields[pos] if pos < len(fields) else ""


def _number_problem(name: str, text: str) -> str:
    stripped = text.strip()
    if stripped == "":
        return f"{name} is empty"
    if stripped.casefold() in _NAN_WORDS:
        return f"{name} is NaN ({stripped!r})"
    try:
        value = float(stripped)
    except ValueError:
        return f"{name} {stripped!r} is not a number"
    return f"{name} {stripped!r} is not finite" if not math.isfinite(value) else f"{name} is invalid"


def _field_count_error(path: Path, expected: int, exc: Exception) -> DataError:
    """Find the line the pyarrow reader choked on (wrong number of fields)."""
    with path.open("r", encoding="utf-8-sig", newline="") as handle:
        handle.readline()
        for line_no, line in enumerate(handle, start=2):
            if not line.strip("\r\n"):
                continue
            found = len(next(csv.reader([line])))
            if found != expected:
                return DataError(
                    f"{path}:{line_no}: expected {expected} fields as in the header, found {found}"
                )
    return DataError(f"{path}: cannot parse CSV: {exc}")


def _to_float(column: pa.ChunkedArray) -> np.ndarray:
    """Numbers as float64; null and unparsable cells become NaN (reported later)."""
    if pa.types.is_floating(column.type) or pa.types.is_integer(column.type):
        return np.ascontiguousarray(
            column.cast(pa.float64()).to_numpy(zero_copy_only=False), dtype=np.float64
        )
    if pa.types.is_null(column.type):
        return np.full(len(column), np.nan)
    series = pd.Series(column.to_numpy(zero_copy_only=False), dtype=object)
    return pd.to_numeric(series, errors="coerce").to_numpy(dtype=np.float64)


def _to_ns(column: pa.ChunkedArray) -> np.ndarray:
    """Timestamps as int64 ns UTC; null/unparsable cells become NaT (reported later)."""
    kind = column.type
    if pa.types.is_timestamp(kind):
        if kind.tz is not None:
            column = column.cast(pa.timestamp(kind.unit, tz="UTC"))
        values = column.cast(pa.timestamp(kind.unit)).to_numpy(zero_copy_only=False)
        return values.astype("datetime64[ns]").view(np.int64)
    if pa.types.is_date(kind):
        values = column.to_numpy(zero_copy_only=False)
        return values.astype("datetime64[ns]").view(np.int64)
    if pa.types.is_null(kind):
        return np.full(len(column), _NAT, dtype=np.int64)
    text = pd.Series(column.to_numpy(zero_copy_only=False), dtype=object).astype("string")
    best: pd.Series | None = None
    # ISO 8601 (mixed naive/aware allowed) first, then one format inferred from the data.
    for fmt in ("ISO8601", None):
        parsed = pd.to_datetime(text, utc=True, errors="coerce", format=fmt)
        if best is None or parsed.isna().sum() < best.isna().sum():
            best = parsed
        if not best.isna().any():
            break
    assert best is not None
    return best.to_numpy(dtype="datetime64[ns]").view(np.int64)


def _iso(ns: int) -> str:
    return pd.Timestamp(ns, tz="UTC").isoformat()


def load_csv(
    path: str | Path,
    *,
    symbol: str | None = None,
    datetime_column: str | int = DEFAULT_DATETIME_COLUMN,
    drop_invalid: bool = False,
) -> MarketData:
    """Load and validate an OHLC(V) CSV (see the module doc for format and checks).

    ``symbol`` defaults to the file name without extension. Raises ``DataError`` naming
    the file and the 1-based line of the first defect, unless ``drop_invalid`` is set.
    """
    path = Path(path)
    header = _read_header(path)
    cols = _locate_columns(path, header, datetime_column)
    used = [cols.datetime, *cols.prices.values()] + ([cols.volume] if cols.volume is not None else [])
    # Column names of our own: the header may hold blanks or duplicates we do not use.
    names = [f"c{i}" for i in range(len(header))]
    try:
        table = pa_csv.read_csv(
            path,
            read_options=pa_csv.ReadOptions(column_names=names, skip_rows=1),
            convert_options=pa_csv.ConvertOptions(
                include_columns=[names[i] for i in used],
                strings_can_be_null=True,
                quoted_strings_can_be_null=True,
            ),
        )
    except pa.ArrowInvalid as exc:
        if "Expected" in str(exc) and "columns" in str(exc):
            raise _field_count_error(path, len(header), exc) from exc
        raise DataError(f"{path}: cannot parse CSV: {exc}") from exc
    n = table.num_rows
    if n == 0:
        raise DataError(f"{path}: no data rows after the header")

    ts = _to_ns(table.column(names[cols.datetime]))
    prices = {name: _to_float(table.column(names[pos])) for name, pos in cols.prices.items()}
    volume = _to_float(table.column(names[cols.volume])) if cols.volume is not None else None
    o, h, lo, c = (prices[name] for name in PRICE_COLUMNS)

    # Row defects, checked in this order for the message of a row with several.
    checks: list[tuple[str, np.ndarray]] = [("bad date/time", ts == _NAT)]
    checks += [(f"bad {name}", ~np.isfinite(arr)) for name, arr in prices.items()]
    if volume is not None:
        checks.append(("bad VOLUME", ~np.isfinite(volume)))
    with np.errstate(invalid="ignore"):
        checks.append(("HIGH below LOW", h < lo))
        checks.append(("OPEN outside [LOW, HIGH]", (o < lo) | (o > h)))
        checks.append(("CLOSE outside [LOW, HIGH]", (c < lo) | (c > h)))
        if volume is not None:
            checks.append(("negative VOLUME", volume < 0))
    bad_row = np.zeros(n, dtype=bool)
    for _, mask in checks:
        bad_row |= mask

    def describe(row: int, raw: str, prev: tuple[int, int] | None = None) -> str:
        """What is wrong with data row ``row`` (``prev``: (line, ns) of the row it clashes with)."""
        for reason, mask in checks:
            if not mask[row]:
                continue
            if reason == "bad date/time":
                text = _cell(raw, cols.datetime).strip()
                label = header[cols.datetime].strip() or "the date/time column"
                return f"{label} is empty" if not text else f"{label} {text!r} is not a date/time"
            if reason.startswith("bad "):
                name = reason[4:]
                pos = cols.volume if name == VOLUME_COLUMN else cols.prices[name]
                return _number_problem(header[pos].strip(), _cell(raw, pos))
            if reason == "HIGH below LOW":
                return f"HIGH {float(h[row])!r} is below LOW {float(lo[row])!r}"
            if reason == "negative VOLUME":
                return f"VOLUME {float(volume[row])!r} is negative"  # type: ignore[index]
            which, value = ("OPEN", o[row]) if reason.startswith("OPEN") else ("CLOSE", c[row])
            return (
                f"{which} {float(value)!r} is outside "
                f"[LOW {float(lo[row])!r}, HIGH {float(h[row])!r}]"
            )
        assert prev is not None
        prev_line, prev_ns = prev
        if ts[row] == prev_ns:
            return f"duplicate timestamp {_iso(ts[row])} (also on line {prev_line})"
        return (
            f"timestamp {_iso(ts[row])} is earlier than {_iso(prev_ns)} on line {prev_line} "
            f"(timestamps must increase)"
        )

    if not drop_invalid:
        # Time order among rows whose own values are fine: each later than the one before.
        ok_idx = np.flatnonzero(~bad_row)
        order_bad = ok_idx[1:][np.diff(ts[ok_idx]) <= 0]
        first_value_bad = int(np.argmax(bad_row)) if bad_row.any() else n
        first_order_bad = int(order_bad[0]) if order_bad.size else n
        first = min(first_value_bad, first_order_bad)
        if first == n:
            return _market_data(path, symbol, ts, o, h, lo, c, volume, n, {})
        n_bad = int(bad_row.sum()) + int(order_bad.size)
        more = f" (and {n_bad - 1} more invalid row(s); drop_invalid=True skips them)" if n_bad > 1 else ""
        if first == first_order_bad and first != first_value_bad:
            prev_row = int(ok_idx[np.searchsorted(ok_idx, first) - 1])
            lines = _data_lines(path, [first, prev_row])
            message = describe(first, lines[first][1], (lines[prev_row][0], int(ts[prev_row])))
        else:
            lines = _data_lines(path, [first])
            message = describe(first, lines[first][1])
        raise DataError(f"{path}:{lines[first][0]}: {message}{more}")

    # drop_invalid: drop bad rows, then rows not later than the latest kept timestamp.
    reasons: dict[str, int] = {}
    first_reason = np.zeros(n, dtype=bool)
    for reason, mask in checks:
        fresh = mask & ~first_reason
        if fresh.any():
            reasons[reason] = int(fresh.sum())
        first_reason |= mask
    keep_idx = np.flatnonzero(~bad_row)
    kept_ts = ts[keep_idx]
    if kept_ts.size:
        latest_before = np.maximum.accumulate(kept_ts)[:-1]
        in_order = np.concatenate(([True], kept_ts[1:] > latest_before))
        if not in_order.all():
            reasons["timestamp not increasing"] = int((~in_order).sum())
        keep_idx = keep_idx[in_order]
    dropped = n - keep_idx.size
    if dropped:
        dropped_rows = np.setdiff1d(np.arange(n), keep_idx)[:5]
        lines = _data_lines(path, dropped_rows.tolist())
        logger.warning(
            "%s: dropped %d invalid row(s) of %d (%s); first at line(s) %s",
            path,
            dropped,
            n,
            ", ".join(f"{k}: {v}" for k, v in reasons.items()),
            ", ".join(str(lines[r][0]) for r in dropped_rows.tolist()),
        )
    if keep_idx.size == 0:
        raise DataError(f"{path}: all {n} data rows are invalid")
    take = (lambda arr: arr) if dropped == 0 else (lambda arr: np.ascontiguousarray(arr[keep_idx]))
    return _market_data(
        path,
        symbol,
        take(ts),
        take(o),
        take(h),
        take(lo),
        take(c),
        None if volume is None else take(volume),
        n,
        reasons,
    )


def _market_data(
    path: Path,
    symbol: str | None,
    ts: np.ndarray,
    o: np.ndarray,
    h: np.ndarray,
    lo: np.ndarray,
    c: np.ndarray,
    volume: np.ndarray | None,
    rows_read: int,
    dropped_by_reason: dict[str, int],
) -> MarketData:
    for array in (ts, o, h, lo, c, volume):
        if array is not None:
            array.flags.writeable = False  # shared by every reader; never changed in place
    return MarketData(
        symbol=symbol or path.stem,
        timestamps=ts,
        open=o,
        high=h,
        low=lo,
        close=c,
        volume=volume,
        source=str(path),
        meta={
            "rows_read": rows_read,
            "dropped_rows": rows_read - len(c),
            "dropped_by_reason": dropped_by_reason,
        },
    )
