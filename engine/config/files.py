"""JSON config files: find (``--load_config``), read with line numbers, save (``--save_config``).

A bare name such as ``simulation`` (no ``/``, no ``.json``) that is not an existing file
resolves to ``configs/simulation.json`` shipped in the ``configs`` package.
"""

from __future__ import annotations

import json
import logging
import re
from importlib.resources import files
from pathlib import Path
from typing import Any

from engine.config.lts_config import LTSConfig
from engine.config.schema import is_secret_key
from engine.errors import ConfigError

logger = logging.getLogger(__name__)

BUNDLED_PACKAGE = "configs"


def bundled_configs() -> dict[str, Path]:
    """Name -> path of every JSON config shipped in the ``configs`` package."""
    try:
        root = files(BUNDLED_PACKAGE)
    except ModuleNotFoundError:  # pragma: no cover - the package is part of the install
        return {}
    return {
        Path(str(entry)).stem: Path(str(entry))
        for entry in root.iterdir()
        if entry.name.endswith(".json")
    }


def resolve_config_path(name_or_path: str | Path) -> Path:
    """An existing file path as given, or a bundled config for a bare name."""
    path = Path(name_or_path)
    if path.is_file():
        return path
    text = str(name_or_path)
    is_bare = "/" not in text and "\\" not in text and not text.endswith(".json")
    bundled = bundled_configs()
    if is_bare and text in bundled:
        return bundled[text]
    names = ", ".join(sorted(bundled)) or "(none)"
    if path.exists():
        raise ConfigError(f"config file {text!r} is not a regular file")
    raise ConfigError(
        f"config file {text!r} not found (no such file"
        + (f", and no bundled config named {text!r}; bundled: {names})" if is_bare else ")")
    )


def _reject_duplicates(path: Path):  # type: ignore[no-untyped-def]
    def hook(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        result: dict[str, Any] = {}
        for key, value in pairs:
            if key in result:
                raise ConfigError(f"{path}: key {key!r} appears more than once")
            result[key] = value
        return result

    return hook


def _key_lines(text: str, keys: list[str]) -> dict[str, int]:
    """1-based line of each top-level key (its first ``"key":``), for messages."""
    lines: dict[str, int] = {}
    for key in keys:
        match = re.search(r'"' + re.escape(key) + r'"\s*:', text)
        if match:
            lines[key] = text.count("\n", 0, match.start()) + 1
    return lines


def read_config_file(name_or_path: str | Path) -> tuple[Path, dict[str, Any], dict[str, int]]:
    """Read a JSON config: ``(path, values, key -> line)``.

    Refuses (``ConfigError`` naming file and line) unreadable files, invalid JSON,
    duplicate keys and a top level that is not an object.
    """
    path = resolve_config_path(name_or_path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read config file {path}: {exc}") from exc
    try:
        data = json.loads(text, object_pairs_hook=_reject_duplicates(path))
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{path}:{exc.lineno}:{exc.colno}: invalid JSON: {exc.msg}") from exc
    if not isinstance(data, dict):
        raise ConfigError(
            f"{path}: a config file must hold a JSON object of key: value, "
            f"not a {type(data).__name__}"
        )
    return path, data, _key_lines(text, list(data))


def save_config(config: LTSConfig, path: str | Path) -> Path:
    """Write the values that differ from their defaults to ``path`` as JSON.

    Secrets (keys like ``jwt_secret``, ``*_api_key``, ``*password*``) are never
    written: a saved config is meant to be shared and committed. The result loads back
    with ``--load_config``.
    """
    values = config.differing_from_defaults()
    secrets = sorted(key for key in values if is_secret_key(key))
    for key in secrets:
        del values[key]
    if secrets:
        logger.warning("not saved to %s (secrets): %s", path, ", ".join(secrets))
    target = Path(path)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(json.dumps(values, indent=2, sort_keys=True, default=str) + "\n")
    except OSError as exc:
        raise ConfigError(f"cannot write config file {target}: {exc}") from exc
    logger.info("saved %d config value(s) to %s", len(values), target)
    return target
