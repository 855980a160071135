"""A plain-text progress bar on stderr: done/total, failures, elapsed time and ETA.

On a terminal the bar redraws in place with ``\\r``; when stderr is a file or a pipe
(CI logs) it prints a full line at most every ``line_interval_s`` seconds and at the
end, so logs stay readable. No dependency beyond the standard library.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TextIO


def format_duration(seconds: float) -> str:
    """``75`` -> ``1:15``, ``3725`` -> ``1:02:05``."""
    seconds = max(0, int(round(seconds)))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}:{minutes:02d}:{secs:02d}"
    return f"{minutes}:{secs:02d}"


class ProgressBar:
    """Draws ``[#####-----] 6/12 done, 1 failed, 0:04 elapsed, ETA 0:04``."""

    def __init__(
        self,
        total: int,
        stream: TextIO,
        *,
        label: str = "backtests",
        width: int = 30,
        is_tty: bool | None = None,
        line_interval_s: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.total = total
        self.stream = stream
        self.label = label
        self.width = width
        self.is_tty = stream.isatty() if is_tty is None else is_tty
        self.line_interval_s = line_interval_s
        self._clock = clock
        self._started = clock()
        self._last_line = float("-inf")
        self.done = 0
        self.failed = 0
        self._last_len = 0

    def render(self) -> str:
        """The bar as text (no ``\\r``)."""
        filled = self.width * self.done // self.total if self.total else self.width
        bar = "#" * filled + "-" * (self.width - filled)
        elapsed = self._clock() - self._started
        if self.done and self.done < self.total:
            eta = format_duration(elapsed / self.done * (self.total - self.done))
        elif self.done >= self.total:
            eta = "0:00"
        else:
            eta = "?"
        return (
            f"{self.label} [{bar}] {self.done}/{self.total} done, {self.failed} failed, "
            f"{format_duration(elapsed)} elapsed, ETA {eta}"
        )

    def update(self, done: int, failed: int) -> None:
        """Record the new counts and redraw (rate-limited when not on a terminal)."""
        self.done, self.failed = done, failed
        if self.is_tty:
            text = self.render()
            pad = " " * max(0, self._last_len - len(text))
            self.stream.write("\r" + text + pad)
            self._last_len = len(text)
            self.stream.flush()
            return
        now = self._clock()
        if now - self._last_line >= self.line_interval_s or done >= self.total:
            self._last_line = now
            self.stream.write(self.render() + "\n")
            self.stream.flush()

    def finish(self, note: str = "") -> None:
        """End the bar's line (and say why it stopped early, when it did)."""
        if self.is_tty:
            self.stream.write("\n")
        elif self.done < self.total:
            self.stream.write(self.render() + "\n")
        if note:
            self.stream.write(note + "\n")
        self.stream.flush()
