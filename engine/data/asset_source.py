"""Where an asset's market data comes from: the CSV file its ``data_source`` names,
resolved by the one path policy (``engine.user_paths``), and its parse.

``record`` is an asset record (``id``, ``symbol``, ``data_source``); ``settings`` the
server config (``data_dir``). Used by the actor runtime (an asset parses its own file,
a supervisor parses a file once for every asset that shares it)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from engine.data.market_data import MarketData
from engine.errors import ConfigError, DataError
from engine.user_paths import UserPathPolicy


def asset_data_path(record: Any, settings: Mapping[str, Any]) -> Path | None:
    """The CSV file an asset's ``data_source`` names (``path``, or its legacy alias
    ``csv``), resolved by the one path policy: inside ``data_dir`` with symlinks followed.
    None when it names none.

    The API refuses other paths at create/update; this check is for rows written before
    it, or a ``data_dir`` changed since. Raises ``UnsafePath`` (a ``ConfigError``) naming
    the key and the user's own text, never the server's folders."""
    source = dict(record.data_source or {})
    key = "path" if source.get("path") else "csv"
    if not source.get(key):
        return None
    return UserPathPolicy.for_config(settings).resolve_file(
        source[key], f"asset {record.id}: data_source.{key}", must_exist=False)


def data_key(record: Any, settings: Mapping[str, Any]) -> tuple[Any, ...] | None:
    """What identifies one parse of an asset's CSV: the file (path, size, modification
    time) and the parse options. Assets with equal keys can share one parsed copy; None
    when the file is missing or refused (the asset's own load then says why)."""
    try:
        full = asset_data_path(record, settings)
    except ConfigError:
        return None
    if full is None:
        return None
    try:
        stat = full.stat()
    except OSError:
        return None
    source = dict(record.data_source or {})
    return (str(full), stat.st_size, stat.st_mtime_ns,
            str(source.get("datetime_column", "DATE_TIME")), bool(source.get("drop_invalid", False)))


def load_asset_data(record: Any, settings: Mapping[str, Any]) -> MarketData:
    """The asset's market data from its ``data_source`` (``{"path": CSV, ...}``).

    A relative path is taken under the configured ``data_dir``; a path resolving outside
    it is refused (:func:`asset_data_path`). Messages name the file relative to
    ``data_dir`` and never quote its content (``engine.data.csv_loader``)."""
    # Imported here: the CSV loader brings pandas/pyarrow, which an asset actor that gets
    # its data from the supervisor's shared parse never needs.
    from engine.data.csv_loader import load_csv

    source = dict(record.data_source or {})
    full = asset_data_path(record, settings)
    if full is None:
        raise ConfigError(f"asset {record.id}: data_source needs a 'path' to an OHLC CSV")
    shown = UserPathPolicy.for_config(settings).shown(full)
    try:
        exists = full.is_file()
    except OSError as exc:  # str(exc) would carry the absolute path
        raise DataError(f"asset {record.id}: data file {shown} cannot be read ({exc.strerror})") from None
    if not exists:
        raise DataError(f"asset {record.id}: data file {shown} does not exist (data_source.path)")
    return load_csv(
        full,
        symbol=record.symbol,
        datetime_column=str(source.get("datetime_column", "DATE_TIME")),
        drop_invalid=bool(source.get("drop_invalid", False)),
        name=shown,
    )
