"""The one policy for every file path a user names (asset data, backtest files, prediction CSVs),
and the one rule that keeps the server's own files out of the directory users reach.

A user-supplied path is untrusted: it may only name a file inside the operator's
``data_dir``. The check resolves the path with symlinks followed, so ``..``, an absolute
path elsewhere and a symlink pointing out are all refused the same way. Messages name the
field and the user's own text, never the server's absolute paths or a file's content.

The other half of the rule (:func:`check_server_layout`, run at startup): what the server
owns (its state directory with the JWT secret, the SQLite database, the backtest reports)
never lies inside ``data_dir``, and ``data_dir`` never inside one of those folders. Inside
``data_dir`` is then, by construction, nothing but data.
"""

from __future__ import annotations

import glob
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from engine.config.defaults import DEFAULT_VALUES
from engine.errors import ConfigError

_MAX_PATH_CHARS = 1024
_SHOWN_CHARS = 200  # a user's own text is echoed, but not a kilobyte of it
_SQLITE_PREFIXES = ("sqlite:///", "sqlite+pysqlite:///", "sqlite+aiosqlite:///")


class UnsafePath(ConfigError):
    """A user-supplied path that is not a file inside ``data_dir`` (a client error: 422)."""


def data_root(data_dir: str | os.PathLike[str]) -> Path:
    """The configured data directory, absolute and resolved (symlinks included)."""
    return _resolved(data_dir)


def _resolved(path: str | os.PathLike[str]) -> Path:
    return Path(os.path.expanduser(os.fspath(path))).resolve()


def _quoted(text: str) -> str:
    shown = repr(text)
    return shown if len(shown) <= _SHOWN_CHARS else shown[: _SHOWN_CHARS - 4] + "...'"


@dataclass(frozen=True, slots=True)
class UserPathPolicy:
    """Resolves user-named paths under one data directory (``root``, already resolved)."""

    root: Path

    @classmethod
    def for_data_dir(cls, data_dir: str | os.PathLike[str]) -> "UserPathPolicy":
        return cls(data_root(data_dir))

    @classmethod
    def for_config(cls, config: Mapping[str, Any]) -> "UserPathPolicy":
        """The policy of a merged config (``data_dir``, or its default when unset)."""
        return cls.for_data_dir(str(config.get("data_dir") or DEFAULT_VALUES["data_dir"]))

    def _check_text(self, value: object, field: str) -> str:
        if not isinstance(value, str) or not value.strip():
            raise UnsafePath(f"{field}: must be a non-empty path relative to the data directory")
        if "\x00" in value or len(value) > _MAX_PATH_CHARS:
            raise UnsafePath(f"{field}: not a usable path (a NUL byte, or over {_MAX_PATH_CHARS} characters)")
        if value.startswith("~"):
            raise UnsafePath(f"{field} {_quoted(value)}: give a path relative to the data directory")
        if ".." in Path(value).parts:
            raise UnsafePath(
                f"{field} {_quoted(value)}: '..' is not allowed: files must be inside the data directory")
        return value

    def _inside(self, candidate: Path, field: str, shown: str) -> Path:
        try:
            resolved = candidate.resolve()
        except RuntimeError:  # Python 3.11 raises this for a symlink loop
            raise UnsafePath(f"{field} {_quoted(shown)}: cannot be read (symlink loop)") from None
        except OSError as exc:
            raise UnsafePath(f"{field} {_quoted(shown)}: cannot be read ({_why(exc)})") from None
        if not resolved.is_relative_to(self.root):
            raise UnsafePath(f"{field} {_quoted(shown)}: resolves outside the data directory")
        return resolved

    def _is_file(self, path: Path, field: str, shown: str) -> bool:
        try:
            return path.is_file()
        except OSError as exc:  # EACCES and the like; a missing file is just False
            raise UnsafePath(f"{field} {_quoted(shown)}: cannot be read ({_why(exc)})") from None

    def resolve_file(self, value: object, field: str, *, must_exist: bool = True) -> Path:
        """The file ``value`` names (relative to ``root``, or absolute inside it).

        Raises :class:`UnsafePath` naming ``field`` when the path leaves the data
        directory (after following symlinks), or, with ``must_exist``, is not a file."""
        text = self._check_text(value, field)
        candidate = Path(text) if Path(text).is_absolute() else self.root / text
        resolved = self._inside(candidate, field, text)
        if must_exist and not self._is_file(resolved, field, text):
            raise UnsafePath(f"{field} {_quoted(text)}: no such file in the data directory")
        return resolved

    def resolve_files(self, entries: list[str], field: str) -> list[Path]:
        """Files named by ``entries`` (paths or glob patterns under ``root``), in order,
        each once. A pattern that matches nothing is an error, so a typo cannot silently
        shrink a batch; every match must itself lie inside ``root``."""
        found: dict[Path, None] = {}
        for position, entry in enumerate(entries):
            where = f"{field}[{position}]"
            text = self._check_text(entry, where)
            if not glob.has_magic(text):
                found.setdefault(self.resolve_file(text, where), None)
                continue
            pattern = text if Path(text).is_absolute() else str(self.root / text)
            # The literal folder the pattern starts from must itself be inside: "/**"
            # is refused before it walks the whole file system.
            self._inside(Path(*_parts_before_magic(Path(pattern))), where, text)
            try:
                matches = sorted(glob.glob(pattern, recursive=True))
            except OSError as exc:
                raise UnsafePath(f"{where} {_quoted(text)}: cannot be read ({_why(exc)})") from None
            files = [p for p in (self._inside(Path(m), where, text) for m in matches) if self._is_file(p, where, text)]
            if not files:
                raise UnsafePath(f"{where} {_quoted(text)}: no such file in the data directory")
            for path in files:
                found.setdefault(path, None)
        return list(found)

    def shown(self, path: str | os.PathLike[str]) -> str:
        """``path`` as a user may see it: relative to ``root``, or just its name."""
        try:
            return str(Path(path).resolve().relative_to(self.root))
        except (ValueError, OSError, RuntimeError):
            return Path(path).name


def _parts_before_magic(pattern: Path) -> list[str]:
    parts: list[str] = []
    for part in pattern.parts:
        if glob.has_magic(part):
            break
        parts.append(part)
    return parts


def _why(exc: OSError) -> str:
    """An OS error without its file name (``str(exc)`` carries the absolute path)."""
    return exc.strerror or type(exc).__name__


# ------------------------------------------------------------------ server-owned files


def sqlite_file(database_url: object) -> Path | None:
    """The database file of a ``sqlite:///PATH`` URL (None for other databases and
    in-memory SQLite). Plain text parsing: ``engine`` does not import SQLAlchemy."""
    url = str(database_url or "")
    for prefix in _SQLITE_PREFIXES:
        if url.startswith(prefix):
            path = url[len(prefix):].split("?", 1)[0]
            if path and path != ":memory:" and not path.startswith("file:"):
                return Path(os.path.expanduser(path))
    return None


def _setting(config: Mapping[str, Any], key: str) -> str:
    return str(config.get(key) or DEFAULT_VALUES[key])


def server_owned(config: Mapping[str, Any]) -> dict[str, tuple[Path, bool]]:
    """What the server owns, by the config key that places it: ``{label: (path, is_dir)}``."""
    owned: dict[str, tuple[Path, bool]] = {
        "state_dir": (Path(_setting(config, "state_dir")), True),
        "backtest_dir": (Path(_setting(config, "backtest_dir")), True),
    }
    database = sqlite_file(_setting(config, "database_url"))
    if database is not None:
        owned["database_url (the SQLite file)"] = (database, False)
    return owned


def check_server_layout(config: Mapping[str, Any], extra_files: Mapping[str, Path] | None = None) -> None:
    """Refuse a layout where a server-owned file or folder is reachable as user data.

    Raises one-line ``ConfigError`` when a server-owned path (see :func:`server_owned`,
    plus ``extra_files``) lies inside ``data_dir``, or ``data_dir`` lies inside a
    server-owned folder (``state_dir`` or ``backtest_dir``: reports written there would
    overwrite data files, and the JWT secret would be a data file)."""
    root = data_root(_setting(config, "data_dir"))
    owned = dict(server_owned(config))
    for label, path in (extra_files or {}).items():
        owned[label] = (path, False)
    for label, (path, is_dir) in owned.items():
        resolved = _resolved(path)
        if resolved.is_relative_to(root):
            raise ConfigError(
                f"config key {label.split(' ')[0]!r} ({path}) lies inside data_dir ({root}), where every "
                f"user can name files: move it out of data_dir")
        if is_dir and root.is_relative_to(resolved):
            raise ConfigError(
                f"config key 'data_dir' ({root}) lies inside {label} ({resolved}), which holds "
                f"server files: use separate folders")
