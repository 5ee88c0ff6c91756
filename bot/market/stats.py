"""Microstructure statistics of a market stream, real or synthetic, from the reader's chunks.

One walk over the rows keeps an L2 book in ticks and records the touch after each
book message (the rows sharing one `ts_local`: a message is applied whole, as the
bot sees it, so a transient cross inside a message never counts) and, for each
trade, the touch in force when it printed. The statistics are then plain numpy
over those two tapes:

- rates: book rows, book messages and trades per second of stream time;
- the spread in ticks, time-weighted (how long each width stood);
- trade sizes as quote notional (median, p90, p99, mean);
- realized volatility of the mid, sampled on a 1 s and a 1 min grid, annualized;
- the markout of a touch quoter: for every trade printed at the touch in force, the
  maker's loss to the mid's move, s * (mid_{t+H} - mid_t) / mid_t in bps with s the
  aggressor's sign (DESIGN §6 `adverse_bps` of the maker's fill), notional-weighted,
  at H = 1 s and 5 s; the mid at t+H is the one in force then.

`python -m bot.market.stats` prints the side-by-side table of docs/synthetic.md.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Iterable
from dataclasses import dataclass, fields
from pathlib import Path

import numpy as np

from bot.market.book import L2Book
from bot.market.schema import Kind, MarketChunk

NS = 1_000_000_000
SECONDS_PER_YEAR = 365.0 * 86_400.0
MARKOUT_HORIZONS_S = (1, 5)


class StatsError(ValueError):
    """A stream the statistics cannot describe (too short, no trades, no two-sided book)."""


@dataclass(frozen=True, slots=True)
class Tapes:
    """The touch after every book message that changed it, and every trade with its touch."""

    touch_ts: np.ndarray  # ns, ts_local
    bid: np.ndarray  # ticks
    ask: np.ndarray
    trade_ts: np.ndarray
    trade_side: np.ndarray  # +1 buy aggressor, -1 sell
    trade_px: np.ndarray  # ticks
    trade_notional: np.ndarray  # quote currency
    trade_bid: np.ndarray  # touch in force when the trade printed (ticks; -1 none)
    trade_ask: np.ndarray
    book_rows: int
    book_messages: int
    touch_level_rows: int  # book rows at the price of the touch in force
    first_ts: int
    last_ts: int


class _Walker:
    """Replays rows into an L2 book; mutable on purpose, one per stream."""

    def __init__(self, tick: float) -> None:
        self.tick = tick
        self.book = L2Book()
        self.snapshot_ts = -1
        self.pending_ts = -1  # ts of a book message not yet settled, -1 none
        self.bid, self.ask = -1, -1  # settled touch
        self.touch: tuple[list[int], list[int], list[int]] = ([], [], [])
        self.trades: tuple[list[int], ...] = ([], [], [], [], [])
        self.notional: list[float] = []
        self.book_rows = self.book_messages = self.touch_level_rows = 0
        self.first_ts = self.last_ts = -1

    def _settle(self, ts: int) -> None:
        """The message at `ts` is whole: record the touch if it is two-sided and changed."""
        book = self.book
        self.pending_ts = -1
        if not (book.bids and book.asks) or book.best_bid >= book.best_ask:
            return  # one-sided or crossed after a whole message: no touch to quote against
        if (book.best_bid, book.best_ask) != (self.bid, self.ask):
            self.bid, self.ask = book.best_bid, book.best_ask
            touch_ts, bid, ask = self.touch
            touch_ts.append(ts)
            bid.append(self.bid)
            ask.append(self.ask)

    def feed(self, chunk: MarketChunk) -> None:
        if not len(chunk):
            return
        if self.first_ts < 0:
            self.first_ts = int(chunk.ts_local[0])
        ticks = np.rint(chunk.price / self.tick).astype(np.int64).tolist()
        book, apply = self.book, self.book.apply_delta
        t_ts, t_side, t_px, t_bid, t_ask = self.trades
        notional = self.notional
        trade, snapshot, tick = int(Kind.TRADE), int(Kind.SNAPSHOT), self.tick
        pending, book_rows, messages, at_touch = self.pending_ts, 0, 0, 0
        rows = zip(
            chunk.ts_local.tolist(), chunk.kind.tolist(), chunk.side.tolist(), ticks,
            chunk.qty.tolist(), strict=True,
        )  # fmt: skip
        # one pass over every row with the state in locals: this loop is the whole cost
        for ts, kind, side, px, qty in rows:
            if pending >= 0 and (ts != pending or kind == trade):
                self._settle(pending)
                pending = -1
            if kind == trade:
                t_ts.append(ts)
                t_side.append(side)
                t_px.append(px)
                t_bid.append(self.bid)
                t_ask.append(self.ask)
                notional.append(px * tick * qty)
                continue
            if kind == snapshot and ts != self.snapshot_ts:
                book.clear()
                self.snapshot_ts = ts
            # sizes stay floats: the book is only asked where its best levels are
            apply(side, px, qty)
            book_rows += 1
            at_touch += px == (self.bid if side > 0 else self.ask)
            if ts != pending:
                messages += 1
                pending = ts
        self.pending_ts = pending
        self.book_rows += book_rows
        self.book_messages += messages
        self.touch_level_rows += at_touch
        self.last_ts = int(chunk.ts_local[-1])

    def tapes(self) -> Tapes:
        if self.pending_ts >= 0:
            self._settle(self.pending_ts)
        ts, bid, ask = (np.array(x, np.int64) for x in self.touch)
        t_ts, t_side, t_px, t_bid, t_ask = (np.array(x, np.int64) for x in self.trades)
        return Tapes(
            ts,
            bid,
            ask,
            t_ts,
            t_side,
            t_px,
            np.array(self.notional, float),
            t_bid,
            t_ask,
            self.book_rows,
            self.book_messages,
            self.touch_level_rows,
            self.first_ts,
            self.last_ts,
        )


def walk(chunks: Iterable[MarketChunk], tick: float) -> Tapes:
    """The touch and trade tapes of a stream (one pass; memory grows with touch changes)."""
    walker = _Walker(tick)
    for chunk in chunks:
        walker.feed(chunk)
    return walker.tapes()


@dataclass(frozen=True, slots=True)
class MarketStats:
    """The calibration figures of one stream; see the module docstring for definitions."""

    duration_s: float
    book_rows_per_s: float
    book_messages_per_s: float
    touch_level_rows_per_s: float
    trades_per_s: float
    touch_changes_per_s: float
    spread_1_tick_share: float
    spread_2_ticks_share: float
    spread_3plus_ticks_share: float
    spread_mean_ticks: float
    trade_notional_median: float
    trade_notional_p90: float
    trade_notional_p99: float
    trade_notional_mean: float
    vol_1s_annual: float
    vol_1m_annual: float
    touch_trade_share: float
    adverse_1s_bps: float
    adverse_5s_bps: float

    def as_dict(self) -> dict[str, float]:
        return {f.name: getattr(self, f.name) for f in fields(self)}


def _mid_at(t: Tapes, at: np.ndarray) -> np.ndarray:
    """Mid in ticks in force at each time (the last touch at or before it)."""
    idx = np.searchsorted(t.touch_ts, at, side="right") - 1
    mid = (t.bid + t.ask) / 2.0
    return np.where(idx >= 0, mid[np.maximum(idx, 0)], np.nan)


def _spread_shares(t: Tapes) -> tuple[float, float, float, float]:
    held = np.diff(np.append(t.touch_ts, t.last_ts)).astype(float)
    spread = t.ask - t.bid
    total = held.sum()
    if total <= 0:
        raise StatsError("the touch never stood for any time: stream too short")
    share = [float(held[spread == 1].sum() / total), float(held[spread == 2].sum() / total)]
    return share[0], share[1], 1.0 - share[0] - share[1], float(np.dot(held, spread) / total)


def _annual_vol(t: Tapes, step_s: int) -> float:
    """Annualized std of log returns of the mid on a grid of `step_s` seconds."""
    grid = np.arange(int(t.touch_ts[0]), t.last_ts + 1, step_s * NS)
    mid = _mid_at(t, grid)
    if len(mid) < 3:
        return math.nan
    returns = np.diff(np.log(mid))
    return float(returns.std(ddof=1) * math.sqrt(SECONDS_PER_YEAR / step_s))


def _markouts(t: Tapes) -> tuple[float, tuple[float, ...]]:
    """(share of trades at the touch, notional-weighted maker adverse bps per horizon)."""
    at_touch = np.where(t.trade_side > 0, t.trade_px == t.trade_ask, t.trade_px == t.trade_bid)
    share = float(at_touch.mean())
    out = []
    for h in MARKOUT_HORIZONS_S:
        keep = at_touch & (t.trade_ts + h * NS <= t.last_ts)
        if not keep.any():
            raise StatsError(f"no trade at the touch with {h} s of stream after it")
        mid = (t.trade_bid[keep] + t.trade_ask[keep]) / 2.0
        later = _mid_at(t, t.trade_ts[keep] + h * NS)
        adverse = t.trade_side[keep] * (later - mid) / mid * 1e4
        out.append(float(np.average(adverse, weights=t.trade_notional[keep])))
    return share, tuple(out)


def describe(t: Tapes) -> MarketStats:
    """The statistics of a walked stream."""
    if len(t.touch_ts) < 2 or len(t.trade_ts) == 0:
        raise StatsError(
            f"need a two-sided book that moves and trades: {len(t.touch_ts)} touch states, "
            f"{len(t.trade_ts)} trades"
        )
    seconds = (t.last_ts - t.first_ts) / NS
    s1, s2, s3, mean_spread = _spread_shares(t)
    share, (a1, a5) = _markouts(t)
    q = np.quantile(t.trade_notional, [0.5, 0.9, 0.99])
    return MarketStats(
        duration_s=seconds,
        book_rows_per_s=t.book_rows / seconds,
        book_messages_per_s=t.book_messages / seconds,
        touch_level_rows_per_s=t.touch_level_rows / seconds,
        trades_per_s=len(t.trade_ts) / seconds,
        touch_changes_per_s=(len(t.touch_ts) - 1) / seconds,
        spread_1_tick_share=s1,
        spread_2_ticks_share=s2,
        spread_3plus_ticks_share=s3,
        spread_mean_ticks=mean_spread,
        trade_notional_median=float(q[0]),
        trade_notional_p90=float(q[1]),
        trade_notional_p99=float(q[2]),
        trade_notional_mean=float(t.trade_notional.mean()),
        vol_1s_annual=_annual_vol(t, 1),
        vol_1m_annual=_annual_vol(t, 60),
        touch_trade_share=share,
        adverse_1s_bps=a1,
        adverse_5s_bps=a5,
    )


def market_stats(chunks: Iterable[MarketChunk], tick: float) -> MarketStats:
    """`describe(walk(chunks, tick))`: the statistics of any stream of chunks."""
    return describe(walk(chunks, tick))


# --- the side-by-side table (docs/synthetic.md) -------------------------------------------

_ROWS: tuple[tuple[str, str, str], ...] = (
    ("book_rows_per_s", "book rows / s", "{:,.0f}"),
    ("book_messages_per_s", "book messages / s", "{:.1f}"),
    ("touch_level_rows_per_s", "rows at the touch's price / s", "{:.1f}"),
    ("touch_changes_per_s", "touch changes / s", "{:.2f}"),
    ("trades_per_s", "trades / s", "{:.1f}"),
    ("spread_1_tick_share", "spread 1 tick (time share)", "{:.4f}"),
    ("spread_2_ticks_share", "spread 2 ticks", "{:.4f}"),
    ("spread_3plus_ticks_share", "spread 3+ ticks", "{:.4f}"),
    ("spread_mean_ticks", "mean spread, ticks", "{:.3f}"),
    ("trade_notional_median", "trade notional median, USD", "{:,.0f}"),
    ("trade_notional_p90", "trade notional p90, USD", "{:,.0f}"),
    ("trade_notional_p99", "trade notional p99, USD", "{:,.0f}"),
    ("trade_notional_mean", "trade notional mean, USD", "{:,.0f}"),
    ("vol_1s_annual", "realized vol, 1 s returns, annual", "{:.3f}"),
    ("vol_1m_annual", "realized vol, 1 min returns, annual", "{:.3f}"),
    ("touch_trade_share", "trades at the touch (share)", "{:.3f}"),
    ("adverse_1s_bps", "touch quoter markout 1 s, bps", "{:.3f}"),
    ("adverse_5s_bps", "touch quoter markout 5 s, bps", "{:.3f}"),
    ("duration_s", "stream length, s", "{:,.0f}"),
)


def table(columns: dict[str, MarketStats]) -> str:
    """A Markdown table: one row per statistic, one column per named stream."""
    head = "| statistic | " + " | ".join(columns) + " |"
    rule = "|---|" + "---:|" * len(columns)
    body = [
        f"| {label} | " + " | ".join(fmt.format(getattr(s, name)) for s in columns.values()) + " |"
        for name, label, fmt in _ROWS
    ]
    return "\n".join([head, rule, *body])


def main(argv: list[str] | None = None) -> None:
    """`python -m bot.market.stats`: the synthetic-vs-real table of docs/synthetic.md."""
    import argparse

    import structlog

    from bot.config import SynthConfig
    from bot.market.readers import open_market
    from bot.market.synth import generate
    from bot.profiles import load_settings

    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("--real", type=str, help="a recorded source (Tardis dir, Parquet, ...)")
    parser.add_argument("--synth-seed", type=int, default=None, help="add the synthetic market")
    parser.add_argument("--duration", default="30m", help="of the synthetic market")
    parser.add_argument("--profile", default="demo", help="whose data.synth and venue to use")
    args = parser.parse_args(argv)
    if not structlog.is_configured():
        # stdout is the table; sys.stderr is looked up per logger, not bound once
        structlog.configure(logger_factory=lambda *_: structlog.PrintLogger(sys.stderr))
    settings = load_settings(args.profile)
    cfg = SynthConfig.model_validate(
        {**settings.data.synth.model_dump(), "duration": args.duration}
    )
    tick = float(settings.venue.symbols[cfg.symbol].tick_size)
    columns: dict[str, MarketStats] = {}
    if args.synth_seed is not None:
        spec = settings.venue.symbols[cfg.symbol]
        label = f"synthetic (seed {args.synth_seed}, {args.duration})"
        columns[label] = market_stats(generate(cfg, spec, args.synth_seed), tick)
    if args.real:
        columns[f"real ({Path(args.real).name})"] = market_stats(open_market(args.real), tick)
    if not columns:
        parser.error("give --real PATH, --synth-seed N, or both")
    print(table(columns))


if __name__ == "__main__":
    main()
