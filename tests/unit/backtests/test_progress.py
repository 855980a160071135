"""The stderr progress bar: counts, failures, ETA, terminal vs log output."""

from __future__ import annotations

import io

from actors.backtests.progress import ProgressBar, format_duration


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_format_duration() -> None:
    assert format_duration(0) == "0:00"
    assert format_duration(75) == "1:15"
    assert format_duration(3725) == "1:02:05"


def test_terminal_bar_redraws_in_place_with_counts_and_eta() -> None:
    clock, out = FakeClock(), io.StringIO()
    bar = ProgressBar(12, out, is_tty=True, width=12, clock=clock)
    clock.now += 6.0
    bar.update(3, 1)
    text = out.getvalue()
    assert text.startswith("\r")
    assert "[###---------] 3/12 done, 1 failed" in text
    assert "0:06 elapsed" in text
    assert "ETA 0:18" in text  # 6 s for 3 runs -> 18 s for the 9 left
    clock.now += 18.0
    bar.update(12, 1)
    bar.finish()
    assert out.getvalue().count("\r") == 2
    assert "12/12 done" in out.getvalue() and out.getvalue().endswith("\n")


def test_eta_is_unknown_before_the_first_run_finishes() -> None:
    bar = ProgressBar(4, io.StringIO(), is_tty=True, clock=FakeClock())
    assert bar.render().endswith("ETA ?")


def test_log_output_prints_whole_lines_rate_limited() -> None:
    clock, out = FakeClock(), io.StringIO()
    bar = ProgressBar(10, out, is_tty=False, line_interval_s=5.0, clock=clock)
    bar.update(1, 0)
    clock.now += 1.0
    bar.update(2, 0)  # too soon: no line
    clock.now += 5.0
    bar.update(3, 1)
    bar.update(10, 1)  # the last one always prints
    lines = out.getvalue().splitlines()
    assert "\r" not in out.getvalue()
    assert [line.split("]")[1].split(",")[0].strip() for line in lines] == [
        "1/10 done", "3/10 done", "10/10 done"]


def test_finish_explains_an_interruption() -> None:
    out = io.StringIO()
    bar = ProgressBar(5, out, is_tty=False, clock=FakeClock())
    bar.update(2, 0)
    bar.finish("interrupted: unfinished runs were cancelled")
    assert out.getvalue().splitlines()[-1] == "interrupted: unfinished runs were cancelled"
    assert "2/5 done" in out.getvalue().splitlines()[-2]
