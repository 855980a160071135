"""The one "did you mean" rule: which known names are close to a name a user mistyped.

Every message that refuses an unknown name (a config key, a plugin parameter, a backtest
parameter, a command) takes its hint from here, so they all suggest alike."""

from __future__ import annotations

import difflib
from collections.abc import Iterable

CUTOFF = 0.6
"""How similar a known name must be (difflib's ratio) to be suggested."""


def close_matches(word: str, known: Iterable[str], n: int = 1) -> list[str]:
    """Up to ``n`` names of ``known`` closest to ``word``, best first."""
    return difflib.get_close_matches(word, list(known), n=n, cutoff=CUTOFF)


def did_you_mean(word: str, known: Iterable[str], n: int = 1) -> str:
    """``"did you mean 'x'?"`` (or ``"... 'x' or 'y'?"`` for ``n`` > 1), or ``""`` when
    nothing is close. Callers put it after their own separator."""
    matches = close_matches(word, known, n)
    return "did you mean " + " or ".join(repr(m) for m in matches) + "?" if matches else ""


__all__ = ["CUTOFF", "close_matches", "did_you_mean"]
