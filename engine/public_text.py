"""What a client may see of an error: one short line, nothing of the server's insides.

Every error text that leaves the server (an asset's ``status_reason``, the engine
status, statistics values, audit details, step results, backtest errors, API error
bodies) passes through :func:`public_text` or :func:`public_reason`. They keep the
domain message and drop what only the operator should see: tracebacks and every line
after the first, ANSI colour codes, absolute paths outside ``data_dir`` (paths inside
it are shown relative to it), process ids, IP addresses and ports, URLs, and the long
hex ids Ray gives actors, tasks and nodes. The full exception belongs in the server log.

Pure text rules, no Ray: unwrapping Ray's own exceptions is ``actors.errors``' job.
"""

from __future__ import annotations

import functools
import os
import re
from collections.abc import Iterable
from pathlib import Path

from engine.errors import LTSError

MAX_REASON_CHARS = 400
"""Longest reason shown to a client (longer ones end in an ellipsis)."""

GENERIC_REASON = "internal error"

_ANSI = re.compile(r"\x1b(?:\[[0-?]*[ -/]*[@-~]|\][^\x07\x1b]*(?:\x07|\x1b\\)?|[@-Z\\-_])")
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")
# Ray's "(pid=123, ip=10.0.0.5, actor_id=..., repr=...)" tag on a remote error's first line.
_RAY_TAG = re.compile(r"\s*\((?:pid|ip|actor_id|repr|node_id)=[^)]*\)")
_URL = re.compile(r"\b[a-zA-Z][a-zA-Z0-9+.-]*://[^\s'\"`<>]+")
_PATH_CHARS = r"[^\s'\"`,;:()<>\[\]{}|]"
_POSIX_PATH = re.compile(rf"(?<![\w/.~:-])(?:~|\.\.?)?/{_PATH_CHARS}+")
_WINDOWS_PATH = re.compile(r"(?<![\w])[A-Za-z]:\\[^\s'\"`,;()<>|]*")
_IPV4 = re.compile(r"(?<![\w.])(?:\d{1,3}\.){3}\d{1,3}(?::\d{1,5})?(?![\w.])")
_IPV6 = re.compile(
    r"\[[0-9A-Fa-f:.]+\](?::\d{1,5})?"  # [::1]:8000
    r"|(?<![\w:])(?:[0-9A-Fa-f]{1,4}:){7}[0-9A-Fa-f]{1,4}(?![\w:])"  # all eight groups
    r"|(?<![\w:])(?=[0-9A-Fa-f:.]*::)[0-9A-Fa-f:.]{2,}(?![\w:])"  # compressed: fe80::1, ::1
)
_LOCALHOST = re.compile(r"\blocalhost(?::\d{1,5})?\b", re.IGNORECASE)
_PORT = re.compile(r"\bport\s+\d{2,5}\b", re.IGNORECASE)
_PID = re.compile(r"\b(pid)(\s*[=:#]?\s*)\d+\b", re.IGNORECASE)
# Ray's actor / task / node / object ids (hex, with a letter: not a long decimal number)
# and memory addresses in reprs.
_HEX_ID = re.compile(r"\b(?:0x[0-9a-fA-F]{6,}|(?=[0-9]*[a-fA-F])[0-9a-fA-F]{16,})\b")
_SPACES = re.compile(r"[ \t]+")
_TRACEBACK_HEAD = "Traceback (most recent call last)"


def public_text(text: object, *, data_dir: str | os.PathLike[str] | None = None,
                limit: int = MAX_REASON_CHARS) -> str:
    """``text`` as a client may see it: its first meaningful line, scrubbed, at most
    ``limit`` characters. ``data_dir``: paths inside it are shown relative to it (every
    other absolute path becomes ``<path>``). Idempotent."""
    raw, root = str(text), None if data_dir is None else os.fspath(data_dir)
    # Only short texts are cached (a traceback held 4096 times is memory for nothing).
    clean = _public_text if len(raw) <= 2048 else _public_text.__wrapped__
    return clean(raw, root, limit)


@functools.lru_cache(maxsize=4096)  # the same few reasons come back on every failing step
def _public_text(text: str, data_dir: str | None, limit: int) -> str:
    line = _first_line(text)[: 4 * limit]  # the rules below need not read a megabyte
    line = _RAY_TAG.sub("", line)
    line = _URL.sub("<url>", line)
    for root in _roots(data_dir):
        line = _relative_to(root, line)
    line = _WINDOWS_PATH.sub("<path>", line)
    line = _POSIX_PATH.sub(_posix_path, line)
    line = _IPV6.sub("<address>", line)
    line = _IPV4.sub("<address>", line)
    line = _LOCALHOST.sub("<address>", line)
    line = _PORT.sub("port <port>", line)
    line = _PID.sub(lambda m: f"{m.group(1)}{m.group(2)}<pid>", line)
    line = _HEX_ID.sub("<id>", line)
    return _bounded(_SPACES.sub(" ", line).strip(), limit)


def one_line(text: object, *, limit: int = MAX_REASON_CHARS) -> str:
    """Only the shape rules of :func:`public_text`: the first meaningful line, without
    ANSI or control characters, bounded. For messages we wrote ourselves that may quote
    the user's own input (a path they gave) but must still be one short line."""
    return _bounded(_SPACES.sub(" ", _first_line(str(text))).strip(), limit)


def _bounded(line: str, limit: int) -> str:
    return line if len(line) <= limit else line[: max(limit - 1, 0)].rstrip() + "…"


def public_reason(exc: BaseException, *, data_dir: str | os.PathLike[str] | None = None,
                  generic: str = GENERIC_REASON) -> str:
    """The one-line reason a client sees for ``exc``.

    An :class:`~engine.errors.LTSError` says what went wrong in words meant for users:
    its message, scrubbed by :func:`public_text`. A timeout says so. Anything else is a
    bug or a library's internals: ``generic`` and the exception's class name only (its
    message may quote a file, a query or an address)."""
    if isinstance(exc, LTSError):
        return public_text(exc, data_dir=data_dir) or type(exc).__name__
    if isinstance(exc, TimeoutError):
        return "timed out"
    return f"{generic} ({type(exc).__name__})"


def _first_line(text: str) -> str:
    """The first non-blank line, without ANSI codes or control characters. A formatted
    traceback gives its last line (the exception), never its ``Traceback`` header."""
    lines = [_CONTROL.sub("", line).strip() for line in _ANSI.sub("", text).splitlines()]
    lines = [line for line in lines if line]
    if not lines:
        return ""
    if lines[0].startswith(_TRACEBACK_HEAD):
        tail = [line for line in lines[1:] if not line.startswith(("File ", "^", "~"))]
        return tail[-1] if tail else "error"
    return lines[0]


def _roots(data_dir: str | None) -> Iterable[str]:
    """``data_dir`` as written, absolute and resolved (longest first), for matching."""
    if not data_dir:
        return ()
    raw = Path(os.path.expanduser(data_dir))
    forms = {str(raw.absolute()), str(raw.resolve())}
    return sorted((f.rstrip("/") for f in forms if f not in ("", "/")), key=len, reverse=True)


def _relative_to(root: str, line: str) -> str:
    """Absolute paths under ``root`` written relative to it (``.`` for ``root`` itself);
    one that ``..`` takes out of it becomes ``<path>``."""
    pattern = re.compile(rf"(?<![\w/.~:-]){re.escape(root)}(?![^/\s'\"`,;:()<>\[\]{{}}|])(/{_PATH_CHARS}*)?")

    def shown(match: re.Match[str]) -> str:
        rest = (match.group(1) or "").lstrip("/")
        relative = os.path.normpath(rest) if rest else "."
        if relative == ".." or relative.startswith("../") or os.path.isabs(relative):
            return "<path>"
        return relative

    return pattern.sub(shown, line)


def _posix_path(match: re.Match[str]) -> str:
    text = match.group(0)
    # "a/b" pieces of relative paths and "./x" stay (the user's own words); absolute and
    # home-relative ones go.
    return text if text.startswith(("./", "../")) else "<path>"


__all__ = ["GENERIC_REASON", "MAX_REASON_CHARS", "one_line", "public_reason", "public_text"]
