"""The one policy for every file path a user names (asset data, backtest files, prediction CSVs).

A user-supplied path is untrusted: it may only name a file inside the operator's
``data_dir``. The check resolves the path with symlinks followed, so ``..``, an absolute
path elsewhere and a symlink pointing out are all refused the same way. Messages name the
field and the user's own text, never the server's absolute paths or a file's content.
"""

from __future__ import annotations

import glob
import os
from dataclasses import dataclass
from pathlib import Path

from engine.errors import ConfigError

_MAX_PATH_CHARS = 1024


class UnsafePath(ConfigError):
    """A user-supplied path that is not a file inside ``data_dir`` (a client error: 422)."""


def data_root(data_dir: str | os.PathLike[str]) -> Path:
    """The configured data directory, absolute and resolved (symlinks included)."""
    return Path(os.path.expanduser(os.fspath(data_dir))).resolve()


@dataclass(frozen=True, slots=True)
class UserPathPolicy:
    """Resolves user-named paths under one data directory (``root``, already resolved)."""

    root: Path

    @classmethod
    def for_data_dir(cls, data_dir: str | os.PathLike[str]) -> "UserPathPolicy":
        return cls(data_root(data_dir))

    def _check_text(self, value: object, field: str) -> str:
        if not isinstance(value, str) or not value.strip():
            raise UnsafePath(f"{field}: must be a non-empty path relative to the data directory")
        if "\x00" in value or len(value) > _MAX_PATH_CHARS:
            raise UnsafePath(f"{field}: not a usable path")
        if value.startswith("~"):
            raise UnsafePath(f"{field}: give a path relative to the data directory")
        if ".." in Path(value).parts:
            raise UnsafePath(f"{field}: '..' is not allowed: files must be inside the data directory")
        return value

    def _inside(self, candidate: Path, field: str, shown: str) -> Path:
        try:
            resolved = candidate.resolve()
        except RuntimeError:  # Python 3.11 raises this for a symlink loop
            raise UnsafePath(f"{field} {shown!r}: cannot be read (symlink loop)") from None
        except OSError as exc:
            raise UnsafePath(f"{field} {shown!r}: cannot be read ({exc.strerror or type(exc).__name__})") from None
        if not resolved.is_relative_to(self.root):
            raise UnsafePath(f"{field} {shown!r}: resolves outside the data directory")
        return resolved

    def resolve_file(self, value: object, field: str, *, must_exist: bool = True) -> Path:
        """The file ``value`` names (relative to ``root``, or absolute inside it).

        Raises :class:`UnsafePath` naming ``field`` when the path leaves the data
        directory (after following symlinks), or, with ``must_exist``, is not a file."""
        text = self._check_text(value, field)
        candidate = Path(text) if Path(text).is_absolute() else self.root / text
        resolved = self._inside(candidate, field, text)
        if must_exist:
            try:
                is_file = resolved.is_file()
            except OSError as exc:
                raise UnsafePath(f"{field} {text!r}: cannot be read ({exc.strerror or type(exc).__name__})") from None
            if not is_file:
                raise UnsafePath(f"{field} {text!r}: no such file in the data directory")
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
            try:
                matches = sorted(glob.glob(pattern, recursive=True))
            except OSError as exc:
                raise UnsafePath(f"{where} {text!r}: cannot be read ({exc.strerror or type(exc).__name__})") from None
            files = [p for p in (self._inside(Path(m), where, text) for m in matches) if p.is_file()]
            if not files:
                raise UnsafePath(f"{where} {text!r}: no such file in the data directory")
            for path in files:
                found.setdefault(path, None)
        return list(found)

    def shown(self, path: str | os.PathLike[str]) -> str:
        """``path`` as a user may see it: relative to ``root``, or just its name."""
        try:
            return str(Path(path).resolve().relative_to(self.root))
        except (ValueError, OSError, RuntimeError):
            return Path(path).name
