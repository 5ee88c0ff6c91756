"""Progress on long work (issue 8): percent of the data time, ETA, simulated time,
fills and PnL; a bar on a terminal, log lines elsewhere; display only."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path

import pytest
from rich.console import Console

from bot.market.readers import InputMeter, read_tardis
from bot.runtime.clock import FrozenClock
from bot.runtime.progress import (
    BAR_REFRESH_NS,
    NS_PER_S,
    BarSink,
    LogSink,
    ReplayProgress,
    estimating_total,
)
from bot.runtime.run import RunSpec, execute

MMBOT = Path(sys.executable).parent / "mmbot"
T0 = 1_723_161_600_000_000_000
MINUTE_NS = 60 * 1_000_000_000


class Wall:
    """A wall clock the test moves by hand."""

    def __init__(self) -> None:
        self.ns = 0

    def now_ns(self) -> int:
        return self.ns


def progress_lines(stderr: str) -> list[dict]:
    lines = [json.loads(line) for line in stderr.splitlines() if line.startswith("{")]
    return [line for line in lines if line["event"] == "run_progress"]


def test_a_run_without_a_terminal_logs_its_progress_every_ten_percent(tmp_path: Path) -> None:
    done = subprocess.run(
        [str(MMBOT), "run", "--synth", "5", "--duration", "3m", "--out", str(tmp_path / "j")],
        capture_output=True, text=True, timeout=300, stdin=subprocess.DEVNULL,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    lines = progress_lines(done.stderr)
    percents = [line["percent"] for line in lines]
    assert len(percents) >= 9, percents
    assert percents == sorted(set(percents)) and percents[-1] == 100.0
    assert all(10 * (i + 1) <= p < 10 * (i + 2) for i, p in enumerate(percents[:-1])), percents
    times = [line["sim_time"] for line in lines]
    assert times == sorted(times) and times[0].startswith("2024-08-08T00:0")
    assert all({"fills", "pnl_usd", "eta_s", "elapsed_s"} <= set(line) for line in lines)
    assert lines[-1]["fills"] == json.loads((tmp_path / "j" / "summary.json").read_text())["fills"]
    assert lines[-1]["eta_s"] == 0.0
    # and none with --no-progress
    quiet = subprocess.run(
        [str(MMBOT), "run", "--synth", "5", "--duration", "30s", "--out", str(tmp_path / "q"),
         "--no-progress"], capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert quiet.returncode == 0 and progress_lines(quiet.stderr) == []


def bar_text(console: Console) -> str:
    file = console.file
    assert isinstance(file, io.StringIO)
    return file.getvalue()


def test_the_bar_shows_data_time_not_a_row_count() -> None:
    console = Console(file=io.StringIO(), force_terminal=True, width=160, color_system=None)
    wall = Wall()
    figures = iter([(0, 0.0), (3, -1.25), (7, 2.5)])
    progress = ReplayProgress(BarSink(console), 10 * MINUTE_NS, lambda: next(figures), wall)
    progress(T0, T0)  # nothing replayed yet: 0 %, no ETA, the data time, never "0 rows"
    first = bar_text(console)
    assert "0.0%" in first and "ETA -" in first and "data 2024-08-09 00:00:00" in first
    assert "rows" not in first
    wall.ns = 30 * 1_000_000_000
    progress(T0, T0 + 5 * MINUTE_NS)  # half the data time in 30 s of wall time
    second = bar_text(console)[len(first) :]
    assert "50.0%" in second and "ETA 0:00:30" in second
    assert "data 2024-08-09 00:05:00" in second and "fills 3" in second and "-1.25 USD" in second
    progress.close(finished=True, reached_ns=T0 + 10 * MINUTE_NS)
    assert "100.0%" in bar_text(console)


def test_the_bar_is_redrawn_at_most_every_fifth_of_a_second() -> None:
    console = Console(file=io.StringIO(), force_terminal=True, width=160, color_system=None)
    wall = Wall()
    asked = []
    progress = ReplayProgress(BarSink(console), MINUTE_NS, lambda: asked.append(1) or (0, 0.0),
                              wall)  # fmt: skip
    for i in range(100):  # 100 ticks within 0.1 s of wall time: one redraw
        wall.ns = i * 1_000_000
        progress(T0, T0 + i * 100_000_000)
    assert len(asked) == 1
    wall.ns = BAR_REFRESH_NS
    progress(T0, T0 + 20 * 1_000_000_000)
    assert len(asked) == 2
    progress.close(finished=False)


def test_log_lines_are_due_at_each_step_and_once_for_a_jump() -> None:
    sink = LogSink(25.0)
    assert not sink.due(0.24, 0) and sink.due(0.25, 0)
    progress = ReplayProgress(sink, 100, lambda: (0, 0.0), FrozenClock(0))
    shown = []
    sink.show = lambda point, now: (shown.append(point.percent), LogSink.show(sink, point, now))  # type: ignore[method-assign]
    for reached in (10, 30, 80, 90, 99):
        progress(0, reached)
    assert shown == [30.0, 80.0]  # 25 % passed at 30; 50 and 75 % at once at 80
    with pytest.raises(ValueError, match=r"progress step must be in \(0, 100\] %, got 0"):
        LogSink(0)


def test_progress_changes_no_journal_byte(tmp_path: Path) -> None:
    journals = []
    for name, shown in (("with", True), ("without", False)):
        out = tmp_path / name
        execute(RunSpec(mode="paper", out_dir=out, synth_seed=4, duration="2m", progress=shown,
                        progress_every_pct=1.0))  # fmt: skip
        journals.append({p.relative_to(out): p.read_bytes() for p in sorted(out.rglob("*"))
                         if p.is_file() and p.name != "summary.json"})  # fmt: skip
    with_progress, without = journals
    assert len(with_progress) > 6 and with_progress == without


def test_a_compressed_capture_estimates_its_span_as_it_is_read(binance_dir: Path) -> None:
    """The real capture is gzip'ed: no span up front. The estimate (data time read over
    the share of the input read) is the true span once the files are read."""
    meter = InputMeter()
    progress = ReplayProgress(LogSink(), 3_600 * NS_PER_S, lambda: (0, 0.0), FrozenClock(0))
    chunks = read_tardis(binance_dir, chunk_rows=50_000, meter=meter)
    estimates, firsts, lasts = [], [], []
    for chunk in estimating_total(chunks, meter.fraction, progress, 3_600 * NS_PER_S):
        estimates.append(progress.total_ns)
        firsts.append(int(chunk.ts_local[0]))
        lasts.append(int(chunk.ts_local[-1]))
    span = lasts[-1] - firsts[0]
    assert meter.fraction() == 1.0 and len(estimates) > 5
    assert estimates[-1] == span  # 5.7 min, not the hour of the cap
    assert all(abs(e / span - 1) < 0.25 for e in estimates[1:]), [e / span for e in estimates]
    # a cap below the data: the duration, the run's own end
    capped = ReplayProgress(LogSink(), 1, lambda: (0, 0.0), FrozenClock(0))
    for _ in estimating_total(read_tardis(binance_dir, meter=InputMeter()), lambda: 1.0, capped,
                              60 * NS_PER_S):  # fmt: skip
        pass
    assert capped.total_ns == 60 * NS_PER_S
