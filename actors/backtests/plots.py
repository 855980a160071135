"""Equity-curve images, drawn with matplotlib's object API (no pyplot global state).

``Figure`` objects are used directly so drawing is safe in Ray workers and threads and
never needs a display: PNG output goes through the Agg renderer.

Curves are reduced before drawing (:func:`downsample_curve`) to at most a few thousand
points that keep every bucket's minimum and maximum, so a 1,000,000-bar curve draws as
fast as a small one and its drawdowns stay visible.
"""

from __future__ import annotations

import io
from collections.abc import Sequence

import numpy as np

PNG_SIZE_INCHES = (9.0, 3.2)
PNG_DPI = 100


def downsample_curve(
    timestamps: np.ndarray, values: np.ndarray, max_points: int = 2000
) -> tuple[np.ndarray, np.ndarray]:
    """At most ``max_points`` points of a curve, keeping each bucket's min and max.

    The first and last points are always kept, in time order, so the curve starts and
    ends where the real one does.
    """
    timestamps = np.asarray(timestamps)
    values = np.asarray(values, dtype=np.float64)
    n = values.shape[0]
    if n <= max_points or max_points < 4:
        return timestamps.copy(), values.copy()
    buckets = (max_points - 2) // 2
    edges = np.linspace(1, n - 1, buckets + 1).astype(np.int64)
    keep = [0]
    for start, stop in zip(edges[:-1], edges[1:]):
        if stop <= start:
            continue
        chunk = values[start:stop]
        lo = start + int(np.argmin(chunk))
        hi = start + int(np.argmax(chunk))
        keep.extend(sorted({lo, hi}))
    keep.append(n - 1)
    index = np.asarray(keep, dtype=np.int64)
    return timestamps[index], values[index]


def _dates(timestamps_ns: np.ndarray) -> np.ndarray:
    return np.asarray(timestamps_ns, dtype="datetime64[ns]")


def equity_png(
    timestamps_ns: np.ndarray,
    equity: np.ndarray,
    *,
    title: str,
    initial_equity: float | None = None,
) -> bytes:
    """One run's equity curve (with its drawdown shaded) as PNG bytes."""
    from matplotlib.dates import AutoDateLocator, ConciseDateFormatter
    from matplotlib.figure import Figure

    fig = Figure(figsize=PNG_SIZE_INCHES, dpi=PNG_DPI)
    ax = fig.subplots()
    dates = _dates(timestamps_ns)
    values = np.asarray(equity, dtype=np.float64)
    ax.plot(dates, values, color="#1f77b4", linewidth=1.0, label="equity")
    if values.size:
        peak = np.maximum.accumulate(values)
        ax.fill_between(dates, values, peak, where=peak > values, color="#d62728",
                        alpha=0.25, linewidth=0, label="drawdown")
    if initial_equity is not None:
        ax.axhline(initial_equity, color="#555555", linewidth=0.8, linestyle="--")
    # A figure-level title and concise (unrotated) date labels: Axes.set_title and
    # autofmt_xdate each make matplotlib lay out the tick labels an extra time
    # (bench/RESULTS.md).
    fig.text(0.5, 0.96, title, ha="center", va="top", fontsize=10)
    locator = AutoDateLocator(maxticks=8)
    ax.xaxis.set_major_locator(locator)
    ax.xaxis.set_major_formatter(ConciseDateFormatter(locator))
    ax.set_ylabel("equity")
    ax.grid(True, alpha=0.3)
    ax.legend(loc="upper left", fontsize=8)
    # Fixed margins: tight_layout would draw the figure twice (it renders to measure).
    fig.subplots_adjust(left=0.09, right=0.98, top=0.88, bottom=0.14)
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return buf.getvalue()


def overlay_png(curves: Sequence[tuple[str, np.ndarray]], *, title: str) -> bytes:
    """Several runs' curves on one chart, each as % return from its own start against the
    share of its own test period elapsed, so runs on files covering different years
    compare at a glance. ``curves``: (label, equity), best first: the first is thickest."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(11.0, 4.5), dpi=PNG_DPI)
    ax = fig.subplots()
    for rank, (label, values) in enumerate(curves):
        values = np.asarray(values, dtype=np.float64)
        if values.size < 2 or values[0] == 0:
            continue
        pct = (values / values[0] - 1.0) * 100.0
        x = np.linspace(0.0, 100.0, values.size)
        ax.plot(x, pct, linewidth=2.4 if rank == 0 else 1.0,
                label=f"#{rank + 1} {label}", zorder=len(curves) - rank)
    ax.axhline(0.0, color="#555555", linewidth=0.8, linestyle="--")
    ax.set_title(title, fontsize=11)
    ax.set_xlabel("share of the test period elapsed (%)")
    ax.set_ylabel("return %")
    ax.grid(True, alpha=0.3)
    if curves:
        ax.legend(loc="upper left", fontsize=7, ncol=2)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return buf.getvalue()


def ranking_png(rows: Sequence[tuple[str, float]], *, metric: str) -> bytes:
    """Horizontal bars of one metric per run, best on top and highlighted."""
    from matplotlib.figure import Figure

    height = max(2.0, 0.28 * len(rows) + 1.0)
    fig = Figure(figsize=(11.0, height), dpi=PNG_DPI)
    ax = fig.subplots()
    labels = [label for label, _ in rows][::-1]
    values = [value for _, value in rows][::-1]
    colors = ["#2ca02c" if v >= 0 else "#d62728" for v in values]
    if colors:
        colors[-1] = "#ff7f0e"  # the winner (drawn last = on top)
    ax.barh(range(len(values)), values, color=colors)
    ax.set_yticks(range(len(values)), labels, fontsize=8)
    ax.axvline(0.0, color="#555555", linewidth=0.8)
    ax.set_xlabel(metric)
    ax.grid(True, axis="x", alpha=0.3)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return buf.getvalue()
