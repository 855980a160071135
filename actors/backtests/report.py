"""Reports of a batch: ranked terminal table, summary.csv/json, per-run files, report.html.

Layout of the output directory::

    OUT/summary.csv            one row per run, ranked
    OUT/summary.json           the plan, totals and the same rows (with every statistic)
    OUT/report.html            self-contained: winner, ranking chart, top curves, table
    OUT/runs/NNNN-<slug>/trades.csv   every trade of that run
    OUT/runs/NNNN-<slug>/equity.png   its equity curve with drawdowns shaded

Per-run files are written by :class:`ReportWriter.add` as each run finishes (their bytes
were made in the Ray task), so the driver never holds more than one run's trades; only
the top curves (for the overlay chart) and one :class:`SummaryRow` per run stay in
memory.
"""

from __future__ import annotations

import base64
import csv
import html
import io
import json
import logging
import math
import re
from collections.abc import Iterable, Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from actors.backtests import plots
from actors.backtests.outcome import METRIC_KEYS, METRICS, RunOutcome, RunStatus, SummaryRow, json_number
from engine.backtest.rounding import round_money_array, round_price_array
from engine.backtest.stats import STAT_KEYS
from engine.backtest.trade_log import EXIT_REASONS, TradeLog
from engine.types import Side, Trade

logger = logging.getLogger(__name__)

RANKABLE: tuple[str, ...] = (
    "total_return",
    "annualized_return",
    "sharpe",
    "sortino",
    "max_drawdown",
    "win_rate",
    "profit_factor",
)
TOP_CURVES = 10  # curves drawn together on the report's overlay chart
HTML_MAX_RUN_IMAGES = 50  # per-run PNGs embedded in report.html (the rest stay in runs/)
TRADE_FIELDS: tuple[str, ...] = (
    "symbol", "side", "quantity", "entry_time", "entry_price",
    "exit_time", "exit_price", "pnl", "commission", "swap", "exit_reason",
)


def rank_key(metric: str) -> Any:
    """Sort key for ``metric``: best first. Drawdown is better when smaller in size
    (whatever its sign convention); every other metric is better when larger."""

    def key(row: SummaryRow) -> tuple[int, float, int]:
        value = row.metric(metric) if row.status is RunStatus.OK else None
        if value is None:
            return (1, 0.0, row.index)  # failed or missing: at the bottom, plan order
        score = -abs(value) if metric == "max_drawdown" else value
        return (0, -score, row.index)

    return key


def rank_rows(rows: Iterable[SummaryRow], metric: str = "total_return") -> list[SummaryRow]:
    """Rows best first by ``metric``; failed and cancelled runs last, in plan order."""
    if metric not in RANKABLE:
        raise ValueError(f"cannot rank by {metric!r}; choose one of {', '.join(RANKABLE)}")
    return sorted(rows, key=rank_key(metric))


def format_metric(value: float | None, kind: str) -> str:
    if value is None:
        return "-"
    if kind == "int":
        return str(int(value))
    if math.isinf(value):
        return "inf" if value > 0 else "-inf"
    if kind == "pct":
        return f"{value * 100:.2f}%"
    return f"{value:.2f}"


def params_text(params: dict[str, Any]) -> str:
    return " ".join(f"{k}={v}" for k, v in params.items()) or "-"


def status_text(row: SummaryRow) -> str:
    if row.status is RunStatus.OK:
        rejected = row.metric("rejected_orders")
        # Orders the account could not carry (margin): explains a run with few trades.
        return f"ok, {int(rejected)} orders rejected" if rejected else "ok"
    return f"{row.status.value.upper()}: {row.error or 'no reason given'}"


def table_rows(ranked: Sequence[SummaryRow]) -> list[list[str]]:
    """The ranked table as text cells (header first), shared by terminal and CSV."""
    header = ["rank", "file", "parameters"] + [title for _, title, _ in METRICS] + ["status"]
    lines = [header]
    for position, row in enumerate(ranked, start=1):
        ok = row.status is RunStatus.OK
        cells = [str(position) if ok else "-", Path(row.path).name, params_text(row.grid_params)]
        cells += [format_metric(row.metric(key) if ok else None, kind) for key, _, kind in METRICS]
        cells.append(status_text(row))
        lines.append(cells)
    return lines


def format_table(ranked: Sequence[SummaryRow], *, max_reason: int = 100) -> str:
    """Aligned plain-text table for the terminal (numbers right-aligned)."""
    lines = table_rows(ranked)
    for cells in lines[1:]:
        if len(cells[-1]) > max_reason:
            cells[-1] = cells[-1][: max_reason - 3] + "..."
    numeric = set(range(3, 3 + len(METRICS))) | {0}
    widths = [max(len(cells[i]) for cells in lines) for i in range(len(lines[0]))]
    out = []
    for cells in lines:
        parts = [
            cell.rjust(widths[i]) if i in numeric else cell.ljust(widths[i])
            for i, cell in enumerate(cells)
        ]
        out.append("  ".join(parts).rstrip())
    out.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(out)


def run_slug(row: SummaryRow | RunOutcome) -> str:
    """``0003-EURUSD-fast10-slow30``: a unique, filesystem-safe folder name per run."""
    stem = Path(row.path).stem
    point = "-".join(f"{k}{v}" for k, v in row.grid_params.items())
    text = f"{stem}-{point}" if point else stem
    text = re.sub(r"[^A-Za-z0-9._=-]+", "_", text)[:80].strip("._-") or "run"
    return f"{row.index:04d}-{text}"


def _iso(value: datetime) -> str:
    return value.astimezone(timezone.utc).isoformat()


def trades_csv_bytes(trades: Sequence[Trade]) -> bytes:
    """Every trade of one run as CSV (UTF-8), one line each, times in ISO 8601 UTC,
    prices and quantities to 15 significant digits and money to 8 decimal places
    (``engine.backtest.rounding``: the float noise of the simulation is not written).

    Built inside the Ray task, so formatting is spread over the cluster and the driver
    only writes bytes."""
    columns = _rounded_columns(
        np.array([t.quantity for t in trades], dtype=np.float64),
        np.array([t.entry_price for t in trades], dtype=np.float64),
        np.array([t.exit_price for t in trades], dtype=np.float64),
        np.array([t.pnl for t in trades], dtype=np.float64),
        np.array([t.commission for t in trades], dtype=np.float64),
        np.array([t.swap for t in trades], dtype=np.float64),
    )
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(TRADE_FIELDS)
    for trade, (qty, ep, xp, pnl, comm, swp) in zip(trades, zip(*columns)):
        writer.writerow([
            trade.symbol, str(trade.side), repr(qty), _iso(trade.entry_time), repr(ep),
            _iso(trade.exit_time), repr(xp), repr(pnl), repr(comm), repr(swp), trade.exit_reason,
        ])
    return buffer.getvalue().encode("utf-8")


def _rounded_columns(quantity: np.ndarray, entry_price: np.ndarray, exit_price: np.ndarray,
                     pnl: np.ndarray, commission: np.ndarray, swap: np.ndarray) -> list[list[float]]:
    """The numeric trade columns rounded for writing, as Python floats."""
    return [
        round_price_array(quantity).tolist(), round_price_array(entry_price).tolist(),
        round_price_array(exit_price).tolist(), round_money_array(pnl).tolist(),
        round_money_array(commission).tolist(), round_money_array(swap).tolist(),
    ]


def trade_log_csv_bytes(log: TradeLog) -> bytes:
    """The same bytes as ``trades_csv_bytes(log.trades())``, written straight from the
    log's columns: building a pydantic ``Trade`` per row first cost as much as the
    simulation of a 250,000-bar run."""
    if log._cache is not None:  # the log came from Trade objects: keep their exact times
        return trades_csv_bytes(log._cache)
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(TRADE_FIELDS)
    side_text = {1: str(Side.BUY), -1: str(Side.SELL)}
    utc = timezone.utc
    qtys, eps, xps, pnls, comms, swps = _rounded_columns(
        log.quantity, log.entry_price, log.exit_price, log.pnl, log.commission, log.swap)
    for side, qty, et, ep, xt, xp, pnl, comm, swp, reason in zip(
        log.side.tolist(), qtys, log.entry_time.tolist(), eps, log.exit_time.tolist(), xps,
        pnls, comms, swps, log.exit_reason.tolist(),
    ):
        writer.writerow([
            log.symbol, side_text[1 if side > 0 else -1], repr(qty),
            datetime.fromtimestamp(et / 1e9, tz=utc).isoformat(), repr(ep),
            datetime.fromtimestamp(xt / 1e9, tz=utc).isoformat(), repr(xp),
            repr(pnl), repr(comm), repr(swp), EXIT_REASONS[reason],
        ])
    return buffer.getvalue().encode("utf-8")


def summary_stat_columns(rows: Iterable[SummaryRow]) -> list[str]:
    """The statistics columns of summary.csv: the ranked table's metrics first, then the
    engine's other statistics in their documented order, then any others by name. The
    ``bars`` statistic is left out: the row's own ``bars`` column already holds it."""
    present = {key for row in rows for key in row.stats} - {"bars"}
    ordered = [key for key in (*METRIC_KEYS, *STAT_KEYS) if key in present]
    return list(dict.fromkeys(ordered)) + sorted(present - set(ordered))


class ReportWriter:
    """Collects finished runs, writes their files at once, and the summaries at the end."""

    def __init__(self, out_dir: Path, *, rank_by: str = "total_return") -> None:
        if rank_by not in RANKABLE:
            raise ValueError(f"cannot rank by {rank_by!r}; choose one of {', '.join(RANKABLE)}")
        self.out_dir = Path(out_dir)
        self.rank_by = rank_by
        self.rows: dict[int, SummaryRow] = {}
        # The best curves so far (for the overlay chart): index -> (score, label, values).
        self._curves: dict[int, tuple[float, str, np.ndarray]] = {}
        self.out_dir.mkdir(parents=True, exist_ok=True)

    def add(self, outcome: RunOutcome) -> SummaryRow:
        """Write one run's trades CSV and equity PNG now and keep its summary row."""
        row = outcome.summary()
        run_dir = self.out_dir / "runs" / run_slug(outcome)
        if outcome.trades_csv is not None:
            run_dir.mkdir(parents=True, exist_ok=True)
            (run_dir / "trades.csv").write_bytes(outcome.trades_csv)
            row.files["trades_csv"] = str((run_dir / "trades.csv").relative_to(self.out_dir))
        if outcome.equity_png:
            run_dir.mkdir(parents=True, exist_ok=True)
            (run_dir / "equity.png").write_bytes(outcome.equity_png)
            row.files["equity_png"] = str((run_dir / "equity.png").relative_to(self.out_dir))
        self._keep_curve(row, outcome.curve_values)
        self.rows[row.index] = row
        return row

    def add_unfinished(self, row: SummaryRow) -> None:
        """A run with no outcome (cancelled before it ran, or lost with its worker)."""
        self.rows[row.index] = row

    def _keep_curve(self, row: SummaryRow, values: np.ndarray | None) -> None:
        if values is None or row.status is not RunStatus.OK:
            return
        sort_key = rank_key(self.rank_by)(row)
        if sort_key[0]:
            return
        score = -sort_key[1]
        self._curves[row.index] = (score, row.label, np.asarray(values, dtype=np.float64))
        if len(self._curves) > TOP_CURVES:
            worst = min(self._curves, key=lambda i: (self._curves[i][0], -i))
            del self._curves[worst]

    def ranked(self) -> list[SummaryRow]:
        return rank_rows(self.rows.values(), self.rank_by)

    def finish(self, plan_json: dict[str, Any], *, interrupted: bool = False) -> dict[str, Path]:
        """Write summary.csv, summary.json and report.html; return their paths."""
        ranked = self.ranked()
        paths = {
            "summary_csv": self.out_dir / "summary.csv",
            "summary_json": self.out_dir / "summary.json",
            "report_html": self.out_dir / "report.html",
        }
        self._write_csv(paths["summary_csv"], ranked)
        self._write_json(paths["summary_json"], ranked, plan_json, interrupted)
        self._write_html(paths["report_html"], ranked, plan_json, interrupted)
        return paths

    def counts(self) -> dict[str, int]:
        counts = {status.value: 0 for status in RunStatus}
        for row in self.rows.values():
            counts[row.status.value] += 1
        counts["total"] = len(self.rows)
        return counts

    def _write_csv(self, path: Path, ranked: Sequence[SummaryRow]) -> None:
        stat_keys = summary_stat_columns(ranked)
        with path.open("w", newline="", encoding="utf-8") as handle:
            writer = csv.writer(handle)
            writer.writerow(["rank", "index", "file", "parameters", "status", "error",
                             "bars", "seconds", *stat_keys, "trades_csv", "equity_png"])
            position = 0
            for row in ranked:
                ok = row.status is RunStatus.OK
                position += ok
                stats = [json_number(row.stats.get(key)) for key in stat_keys]
                writer.writerow([
                    position if ok else "", row.index, row.path,
                    json.dumps(row.grid_params, sort_keys=True), row.status.value,
                    row.error or "", row.bars, f"{row.seconds:.6f}",
                    *["" if v is None else v for v in stats],
                    row.files.get("trades_csv", ""), row.files.get("equity_png", ""),
                ])

    def _write_json(self, path: Path, ranked: Sequence[SummaryRow], plan_json: dict[str, Any],
                    interrupted: bool) -> None:
        document = {
            "plan": plan_json,
            "rank_by": self.rank_by,
            "interrupted": interrupted,
            "counts": self.counts(),
            "winner": ranked[0].to_json() if ranked and ranked[0].status is RunStatus.OK else None,
            "runs": [row.to_json() for row in ranked],
        }
        path.write_text(json.dumps(document, indent=2, default=str), encoding="utf-8")

    def _write_html(self, path: Path, ranked: Sequence[SummaryRow], plan_json: dict[str, Any],
                    interrupted: bool) -> None:
        path.write_text(
            render_html(
                ranked,
                plan_json=plan_json,
                rank_by=self.rank_by,
                counts=self.counts(),
                interrupted=interrupted,
                curves=self._top_curves(),
                out_dir=self.out_dir,
            ),
            encoding="utf-8",
        )

    def _top_curves(self) -> list[tuple[str, np.ndarray]]:
        best = sorted(self._curves.items(), key=lambda item: (-item[1][0], item[0]))
        return [(label, values) for _, (_, label, values) in best]


def _data_uri(png: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,sans-serif;margin:24px;color:#222}
h1{margin-bottom:4px} .meta{color:#666;margin-top:0}
.winner{background:#fff4e5;border-left:6px solid #ff7f0e;padding:12px 16px;margin:16px 0;
 font-size:1.1em}
table{border-collapse:collapse;font-size:13px;margin:12px 0}
th,td{border-bottom:1px solid #ddd;padding:4px 8px;text-align:right;white-space:nowrap}
th{background:#f4f4f4;position:sticky;top:0} td.l,th.l{text-align:left}
tr.best td{background:#fff4e5;font-weight:600} tr.failed td{color:#b00020}
td.reason{white-space:normal;max-width:480px;text-align:left}
img{max-width:100%;border:1px solid #eee} .runs figure{margin:16px 0}
.warn{background:#fdecea;padding:8px 12px;border-left:6px solid #b00020}
"""


def render_html(
    ranked: Sequence[SummaryRow],
    *,
    plan_json: dict[str, Any],
    rank_by: str,
    counts: dict[str, int],
    interrupted: bool,
    curves: Sequence[tuple[str, np.ndarray]],
    out_dir: Path,
) -> str:
    """One self-contained page (images inlined as data URIs): the winner in a banner,
    a ranking chart, the top curves together, the full table, then each run's curve."""
    esc = html.escape
    ok_rows = [row for row in ranked if row.status is RunStatus.OK]
    metric_title = {key: title for key, title, _ in METRICS}.get(rank_by, rank_by)
    parts = [
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>",
        "<title>LTS backtest report</title>",
        f"<style>{_CSS}</style></head><body>",
        "<h1>Backtest report</h1>",
        f"<p class='meta'>strategy <b>{esc(str(plan_json.get('strategy')))}</b> &middot; "
        f"{counts.get('total', 0)} runs: {counts.get('ok', 0)} ok, {counts.get('failed', 0)} "
        f"failed, {counts.get('cancelled', 0)} cancelled &middot; ranked by {esc(metric_title)} "
        f"&middot; generated {esc(datetime.now(timezone.utc).strftime('%Y-%m-%d %H:%M UTC'))}</p>",
    ]
    if interrupted:
        parts.append("<p class='warn'>The batch was interrupted: runs that had not finished "
                     "are marked cancelled.</p>")
    if ok_rows:
        best = ok_rows[0]
        kinds = {key: kind for key, _, kind in METRICS}
        parts.append(
            f"<div class='winner'>Winner: <b>{esc(best.label)}</b> &mdash; total return "
            f"<b>{format_metric(best.metric('total_return'), 'pct')}</b>, Sharpe "
            f"{format_metric(best.metric('sharpe'), 'ratio')}, max drawdown "
            f"{format_metric(best.metric('max_drawdown'), 'pct')}, "
            f"{format_metric(best.metric('trades'), 'int')} trades"
            + (f" (ranked by {esc(metric_title)}: "
               f"{format_metric(best.metric(rank_by), kinds.get(rank_by, 'ratio'))})"
               if rank_by != "total_return" else "")
            + "</div>"
        )
        bars = [(row.label, row.metric(rank_by) or 0.0) for row in ok_rows[:40]]
        if rank_by in ("total_return", "annualized_return", "win_rate", "max_drawdown"):
            bars = [(label, value * 100.0) for label, value in bars]
            axis = f"{metric_title} (%)"
        else:
            axis = metric_title
        parts.append("<h2>Ranking</h2>")
        parts.append(f"<img alt='ranking by {esc(metric_title)}' "
                     f"src='{_data_uri(plots.ranking_png(bars, metric=axis))}'>")
        if curves:
            parts.append(f"<h2>Top {len(curves)} equity curves</h2>")
            overlay = plots.overlay_png(curves, title="return % of each run (best thickest)")
            parts.append(f"<img alt='top equity curves' src='{_data_uri(overlay)}'>")
    else:
        parts.append("<p class='warn'>No run finished successfully.</p>")

    parts.append("<h2>All runs</h2><table><thead><tr>")
    cells = table_rows(ranked)
    for i, title in enumerate(cells[0]):
        cls = " class='l'" if i in (1, 2) or i == len(cells[0]) - 1 else ""
        parts.append(f"<th{cls}>{esc(title)}</th>")
    parts.append("<th class='l'>files</th></tr></thead><tbody>")
    for position, (row, line) in enumerate(zip(ranked, cells[1:])):
        cls = "best" if position == 0 and row.status is RunStatus.OK else (
            "failed" if row.status is not RunStatus.OK else "")
        parts.append(f"<tr class='{cls}'>")
        for i, cell in enumerate(line):
            if i == len(line) - 1:
                parts.append(f"<td class='reason'>{esc(cell)}</td>")
            elif i in (1, 2):
                parts.append(f"<td class='l'>{esc(cell)}</td>")
            else:
                parts.append(f"<td>{esc(cell)}</td>")
        links = " ".join(
            f"<a href='{esc(rel)}'>{esc(file_kind.split('_')[0])}</a>"
            for file_kind, rel in row.files.items()
        )
        parts.append(f"<td class='l'>{links}</td></tr>")
    parts.append("</tbody></table>")

    shown = [row for row in ok_rows if "equity_png" in row.files][:HTML_MAX_RUN_IMAGES]
    if shown:
        parts.append("<h2>Equity curve of each run</h2><div class='runs'>")
        for position, row in enumerate(shown, start=1):
            png_path = out_dir / row.files["equity_png"]
            try:
                png = png_path.read_bytes()
            except OSError as exc:  # the file was removed meanwhile: say so, keep going
                logger.warning("cannot embed %s: %s", png_path, exc)
                continue
            parts.append(f"<figure><figcaption>#{position} {esc(row.label)}</figcaption>"
                         f"<img alt='equity of {esc(row.label)}' src='{_data_uri(png)}'></figure>")
        if len(ok_rows) > len(shown):
            parts.append(f"<p>{len(ok_rows) - len(shown)} more curves are in runs/.</p>")
        parts.append("</div>")
    parts.append("</body></html>")
    return "\n".join(parts)
