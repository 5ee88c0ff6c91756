"""Progress of a replay (issue 8): the share of the data time done, an ETA, the
simulated time reached, fills and PnL so far.

Display only: nothing here feeds back into the run, so the journal is the same bytes
with or without it. The sim loop reports the data time it has reached every few
hundred messages (`SimLoop` `progress`); `ReplayProgress` turns that into a
`ProgressPoint` when its sink says one is due, so the hot path pays one call per
few hundred messages and one wall-clock read per call. Two sinks: a rich bar on a
terminal (redrawn at most every 0.2 s of wall time), a structlog line every N % of
the data time elsewhere (a log file, CI, `--log-format json`).

The share is of the data's span when the source says it up front; a compressed
capture cannot, so its span is estimated as it is read (`estimating_total`).
The wall clock (for the elapsed time and the ETA) is injected; the data time is the
data's, so the sim itself stays deterministic.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any, Final, Protocol

import structlog

from bot.market.schema import MarketChunk
from bot.runtime.clock import Clock, iso_utc

log = structlog.get_logger(__name__)

NS_PER_S: Final = 1_000_000_000
BAR_REFRESH_NS: Final = 200_000_000  # a terminal redraw at most 5 times a second


@dataclass(frozen=True, slots=True)
class ProgressPoint:
    """Where a replay stands."""

    done: float  # share of the data time replayed, 0..1
    sim_ns: int  # data time reached (ns since the epoch)
    fills: int
    pnl_usd: float
    elapsed_s: float  # wall time since the replay started

    @property
    def percent(self) -> float:
        return 100.0 * self.done

    @property
    def eta_s(self) -> float | None:
        """Wall seconds left at the pace so far; None before any data time is done."""
        if self.done <= 0.0:
            return None
        return self.elapsed_s * (1.0 - self.done) / self.done

    def fields(self) -> dict[str, Any]:
        eta = self.eta_s
        return {
            "percent": round(self.percent, 1),
            "sim_time": iso_utc(self.sim_ns),
            "eta_s": None if eta is None else round(eta, 1),
            "elapsed_s": round(self.elapsed_s, 1),
            "fills": self.fills,
            "pnl_usd": round(self.pnl_usd, 4),
        }


class ProgressSink(Protocol):
    def due(self, done: float, now_ns: int) -> bool: ...
    def show(self, point: ProgressPoint, now_ns: int) -> None: ...
    def close(self, point: ProgressPoint) -> None: ...


class LogSink:
    """A structlog line `run_progress` each time the done share crosses a multiple of
    `every_pct`, and one at the end (100 %)."""

    def __init__(self, every_pct: float = 10.0) -> None:
        if not 0 < every_pct <= 100:
            raise ValueError(f"progress step must be in (0, 100] %, got {every_pct}")
        self.every = every_pct / 100.0
        self._next = self.every

    def due(self, done: float, now_ns: int) -> bool:
        return done >= self._next

    def show(self, point: ProgressPoint, now_ns: int) -> None:
        steps = int(point.done / self.every + 1e-9)  # several steps at once: one line
        self._next = (steps + 1) * self.every
        if point.done < 1.0:
            log.info("run_progress", **point.fields())

    def close(self, point: ProgressPoint) -> None:
        log.info("run_progress", **point.fields())


class BarSink:
    """A rich progress bar on stderr, redrawn at most every `BAR_REFRESH_NS` of wall
    time; it goes away when the run ends (the summary follows)."""

    def __init__(self, console: Any = None) -> None:
        from rich.console import Console  # only a terminal run pays for rich's bar
        from rich.progress import BarColumn, Progress, TextColumn

        self._bar = Progress(
            TextColumn("replay"),
            BarColumn(),
            TextColumn("{task.percentage:>5.1f}%  ETA {task.fields[eta]}"),
            TextColumn(
                "data {task.fields[sim]}  fills {task.fields[fills]:,}  "
                "pnl {task.fields[pnl]:+,.2f} USD"
            ),
            console=console if console is not None else Console(stderr=True),
            transient=True,
            auto_refresh=False,  # no refresh thread: redrawn when `show` is due
        )
        self._task = self._bar.add_task("replay", total=1.0, eta="-", sim="-", fills=0, pnl=0.0)
        self._last_ns: int | None = None
        self._bar.start()

    def due(self, done: float, now_ns: int) -> bool:
        return self._last_ns is None or now_ns - self._last_ns >= BAR_REFRESH_NS

    def show(self, point: ProgressPoint, now_ns: int) -> None:
        self._last_ns = now_ns
        eta = point.eta_s
        self._bar.update(
            self._task, completed=point.done, eta="-" if eta is None else _clock_text(eta),
            sim=iso_utc(point.sim_ns)[:19].replace("T", " "), fills=point.fills,
            pnl=point.pnl_usd, refresh=True,
        )  # fmt: skip

    def close(self, point: ProgressPoint) -> None:
        self.show(point, self._last_ns or 0)
        self._bar.stop()


def _clock_text(seconds: float) -> str:
    minutes, secs = divmod(round(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}"


class ReplayProgress:
    """The sim loop's progress callback: data time reached -> points for a sink.

    `total_ns` is the data time the run will replay (the data's span, capped by the
    run's duration); `figures` gives (fills, PnL) so far and is asked only when a
    point is due.
    """

    def __init__(
        self,
        sink: ProgressSink,
        total_ns: int,
        figures: Callable[[], tuple[int, float]],
        wall: Clock,
    ) -> None:
        self.sink = sink
        self.total_ns = max(total_ns, 1)
        self.figures = figures
        self.wall = wall
        self._start_wall = wall.now_ns()
        self._first_ns: int | None = None
        self._reached_ns = 0

    def __call__(self, first_ns: int, ts_ns: int) -> None:
        """The replay started at data time `first_ns` and has reached `ts_ns`."""
        self._first_ns = first_ns
        self._reached_ns = ts_ns
        done = min((ts_ns - first_ns) / self.total_ns, 1.0)
        now = self.wall.now_ns()
        if self.sink.due(done, now):
            self.sink.show(self._point(done, now), now)

    def close(self, finished: bool, reached_ns: int | None = None) -> None:
        """The replay ended (at data time `reached_ns`, if known): a last point, at 100 %
        when it `finished` (all the data, or its duration), else where it stopped."""
        if reached_ns is not None:
            self._reached_ns = reached_ns
        first = self._reached_ns if self._first_ns is None else self._first_ns
        done = 1.0 if finished else min((self._reached_ns - first) / self.total_ns, 1.0)
        self.sink.close(self._point(done, self.wall.now_ns()))

    def _point(self, done: float, now_ns: int) -> ProgressPoint:
        fills, pnl = self.figures()
        return ProgressPoint(done, self._reached_ns, fills, pnl,
                             (now_ns - self._start_wall) / NS_PER_S)  # fmt: skip


def estimating_total(
    chunks: Iterable[MarketChunk],
    read: Callable[[], float],
    progress: ReplayProgress,
    cap_ns: int,
) -> Iterator[MarketChunk]:
    """The chunks of a source whose span is unknown up front (a compressed file), setting
    `progress.total_ns` as they come: the data time read so far over the share of the
    input it took (`read`, e.g. `InputMeter.fraction`), at most `cap_ns` (the duration).
    Exact once the input is read to its end."""
    first: int | None = None
    for chunk in chunks:
        share = read()
        if len(chunk) and share > 0:
            first = int(chunk.ts_local[0]) if first is None else first
            estimate = (int(chunk.ts_local[-1]) - first) / share
            progress.total_ns = max(min(cap_ns, round(estimate)), 1)
        yield chunk
