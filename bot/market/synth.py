"""Seeded synthetic market: an L2 book of one symbol plus its trades, in chunks of time.

The model, and why each part is there:

- The touch moves in whole ticks (a step of k >= 1 ticks, geometric, mostly 1).
  Diffusive steps arrive at a rate scaled by a 3-state Markov volatility regime
  (calm / normal / stressed), so volatility clusters; rare jumps move it many ticks.
- Trades arrive in clusters (a parent from a regime-scaled Poisson process, then a
  geometric number of children a few tens of ms apart, mostly of the same sign):
  a one-generation Hawkes process, cheap to draw with numpy.
- Informed flow: a share of trades is followed, a few hundred ms later, by a step
  of the touch in the aggressor's direction. A symmetric quoter at the touch
  therefore loses slightly more to adverse selection than the half tick of spread
  it earns, as on a real liquid venue before rebates.
- Toxic bursts: about a minute of one-sided aggressive trades plus a trend of
  steps in the same direction.
- The spread is one tick most of the time; a renewal process widens it by one or
  two ticks (one side pulls back) for about half a second.
- Each side holds exactly `depth_levels` contiguous levels from the touch, with
  lognormal sizes whose median grows with the distance from the touch. When the
  touch moves, the rows that keep the book consistent are emitted in an order
  that never crosses it and never empties a side: the retreating side first
  (add the new levels, then remove the old), then the advancing side.
- Between touch moves, size-change rows at random levels (mostly near the touch)
  fill the book-row budget `book_rate_hz`.

The row budget bounds the volatility. Every tick the touch moves costs four rows
(an add and a remove on each side), so a book-row budget of ~50/s caps the
variance of the touch at a few ticks^2 per second: for BTCUSDT at tick 0.1 and
60 000 USD that is an annual volatility of a few percent, far below
`annual_vol` = 0.6 (which would need ~1 000 rows/s, as the real feed has).
`annual_vol` is therefore a target reached only when the budget allows (low
price in ticks, or a higher `book_rate_hz`); the generator logs
`synth_vol_capped` with both figures when it is not reached.

Everything is drawn from one `numpy.random.default_rng(seed)` in a fixed order, so
the same seed, config and `chunk_seconds` give identical arrays. Only one chunk of
rows is alive at a time; what crosses a chunk boundary (regime, spread state,
open bursts, pending children and informed steps, the touch) is carried over.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass, field, fields
from decimal import Decimal

import numpy as np
import structlog

from bot.config import SymbolSpec, SynthConfig
from bot.market.schema import Kind, MarketChunk
from bot.runtime.clock import parse_duration, parse_utc

log = structlog.get_logger(__name__)

SECONDS_PER_YEAR = 365.0 * 86_400.0
NS = 1_000_000_000


class SynthConfigError(ValueError):
    """A synthetic-market setting that cannot produce a valid stream."""


@dataclass(frozen=True, slots=True)
class MarketShape:
    """Microstructure constants of the synthetic market (not user settings)."""

    regime_sigma: tuple[float, float, float] = (0.5, 1.0, 2.0)
    regime_hold_s: tuple[float, float, float] = (1_800.0, 1_200.0, 480.0)
    step_p: float = 0.6  # touch step k ~ Geometric(p) on 1, 2, ...: mean 1.67 ticks
    touch_share: float = 0.6  # share of the book-row budget that touch moves may use
    informed_prob: float = 0.4  # share of trades followed by a step their way
    informed_delay_s: float = 0.25
    cluster_eta: float = 0.5  # mean trades per cluster = 1 / (1 - eta)
    cluster_gap_s: float = 0.05
    cluster_same_sign: float = 0.85
    wide_share: float = 0.05  # share of time the spread is wider than one tick
    wide_hold_s: float = 0.5
    burst_duration_s: tuple[float, float] = (45.0, 90.0)
    burst_trade_mult: float = 3.0  # extra one-sided trades, in units of trade_rate_hz
    burst_step_hz: float = 2.0  # extra steps in the burst direction
    jump_median_bps: float = 5.0
    touch_notional: float = 50_000.0  # median size at the touch, quote currency
    depth_growth: float = 0.1  # median size grows by this share per level from the touch
    level_sigma: float = 0.7
    trade_notional: float = 2_000.0
    trade_sigma: float = 1.2
    latency_floor_ms: float = 0.5
    latency_median_ms: float = 3.0
    latency_sigma: float = 0.5


@dataclass(frozen=True, slots=True)
class Rates:
    """Event rates derived once from the config, the symbol and the shape."""

    regime_pi: tuple[float, ...]
    diffuse_hz: float  # mean rate of diffusive steps over regimes
    parent_hz: float  # mean rate of trade-cluster parents over regimes
    burst_trade_hz: float
    burst_hz: float
    jump_hz: float
    jump_ticks: float
    size_change_hz: float
    widen_hz: float
    target_vol: float
    effective_vol: float  # of the touch steps, jumps left out
    vol_capped: bool
    touch_lots: float
    trade_lots: float


@dataclass(slots=True)
class _Carry:
    """State that crosses chunk boundaries (mutable on purpose: one per stream)."""

    base: int  # best bid of a one-tick book, in ticks; the spread state widens it
    db: int = 0  # ticks the bid has pulled back (<= 0)
    da: int = 0  # ticks the ask has pulled back (>= 0)
    regime: int = 1
    regime_until: float = 0.0
    spread_next: float = 0.0
    bursts: list[tuple[float, float, int]] = field(default_factory=list)
    pending_trades: tuple[np.ndarray, np.ndarray] = (np.empty(0), np.empty(0, np.int64))
    pending_steps: tuple[np.ndarray, np.ndarray] = (np.empty(0), np.empty(0, np.int64))
    next_trade_id: int = 1


@dataclass(frozen=True, slots=True)
class _Units:
    """Float conversion of ticks and lots, exact to the nearest double when possible."""

    tick: float
    per_tick: int  # 1 / tick when that is an integer, else 0
    lot: float
    per_lot: int

    @classmethod
    def of(cls, spec: SymbolSpec) -> _Units:
        def inverse(step: Decimal) -> int:
            inv = 1 / step
            return int(inv) if inv == inv.to_integral_value() else 0

        return cls(
            float(spec.tick_size),
            inverse(spec.tick_size),
            float(spec.lot_size),
            inverse(spec.lot_size),
        )

    def price(self, ticks: np.ndarray) -> np.ndarray:
        # ticks / 10 is the double nearest to the decimal price; ticks * 0.1 may not be
        return ticks / self.per_tick if self.per_tick else ticks * self.tick

    def qty(self, lots: np.ndarray) -> np.ndarray:
        return lots / self.per_lot if self.per_lot else lots * self.lot


def _stationary(shape: MarketShape) -> np.ndarray:
    # birth-death chain 0 <-> 1 <-> 2: the embedded chain visits 1 half the time
    weights = np.array([0.25, 0.5, 0.25]) * np.array(shape.regime_hold_s)
    return weights / weights.sum()


def derive_rates(cfg: SynthConfig, spec: SymbolSpec, shape: MarketShape = MarketShape()) -> Rates:
    """Rates of every event type so that the stream meets the config's budgets."""
    units = _Units.of(spec)
    depth = cfg.depth_levels
    mean_k = 1.0 / shape.step_p
    mean_k2 = (2.0 - shape.step_p) / shape.step_p**2
    burst_hz = cfg.toxic_burst_rate_per_h / 3_600.0
    burst_time_share = burst_hz * float(np.mean(shape.burst_duration_s))
    burst_trade_hz = shape.burst_trade_mult * cfg.trade_rate_hz
    base_trade_hz = max(
        cfg.trade_rate_hz - burst_time_share * burst_trade_hz, 0.5 * cfg.trade_rate_hz
    )
    trades_hz = base_trade_hz + burst_time_share * burst_trade_hz
    informed_hz = trades_hz * shape.informed_prob
    burst_step_hz = burst_time_share * shape.burst_step_hz
    widen_hz = shape.wide_share / ((1.0 - shape.wide_share) * shape.wide_hold_s)
    # a widen or narrow moves one side by 1.5 ticks on average: 3 rows, 2 events a cycle
    spread_rows = 2.0 * widen_hz * (1.0 - shape.wide_share) * 3.0
    jump_hz = cfg.jump_rate_per_h / 3_600.0
    other_rows = 4.0 * mean_k * (informed_hz + burst_step_hz) + spread_rows + 4.0 * depth * jump_hz
    budget = shape.touch_share * cfg.book_rate_hz
    tick_vol = cfg.annual_vol * cfg.initial_mid / units.tick
    # informed and burst steps are part of the variance: diffusion supplies the rest
    target_hz = max(tick_vol**2 / SECONDS_PER_YEAR / mean_k2 - informed_hz - burst_step_hz, 0.0)
    cap_hz = max(budget - other_rows, 0.0) / (4.0 * mean_k)
    diffuse_hz = min(target_hz, cap_hz)
    touch_rows = other_rows + 4.0 * mean_k * diffuse_hz
    steps_hz = diffuse_hz + informed_hz + burst_step_hz
    effective = math.sqrt(steps_hz * mean_k2 * SECONDS_PER_YEAR) * units.tick / cfg.initial_mid
    lots_per_quote = 1.0 / (cfg.initial_mid * units.lot)
    return Rates(
        regime_pi=tuple(float(x) for x in _stationary(shape)),
        diffuse_hz=diffuse_hz,
        parent_hz=base_trade_hz * (1.0 - shape.cluster_eta),
        burst_trade_hz=burst_trade_hz,
        burst_hz=burst_hz,
        jump_hz=jump_hz,
        jump_ticks=max(1.0, shape.jump_median_bps * 1e-4 * cfg.initial_mid / units.tick),
        size_change_hz=max(cfg.book_rate_hz - touch_rows, 0.2 * cfg.book_rate_hz),
        widen_hz=widen_hz,
        target_vol=cfg.annual_vol,
        effective_vol=effective,
        vol_capped=diffuse_hz < target_hz,
        touch_lots=max(1.0, shape.touch_notional * lots_per_quote),
        trade_lots=max(1.0, shape.trade_notional * lots_per_quote),
    )


# --- drawing events -----------------------------------------------------------------------


def _signs(rng: np.random.Generator, n: int) -> np.ndarray:
    return rng.integers(0, 2, n, dtype=np.int64) * 2 - 1


def _steps(rng: np.random.Generator, n: int, shape: MarketShape) -> np.ndarray:
    return rng.geometric(shape.step_p, n).astype(np.int64)


def _regime_segments(
    rng: np.random.Generator, carry: _Carry, t0: float, t1: float, shape: MarketShape
) -> list[tuple[float, float, int]]:
    """(start, end, regime) pieces covering [t0, t1); advances the regime chain."""
    segments = []
    start = t0
    while True:
        end = min(carry.regime_until, t1)
        segments.append((start, end, carry.regime))
        if carry.regime_until >= t1:
            return segments
        start = carry.regime_until
        if carry.regime == 1:
            carry.regime = 0 if rng.random() < 0.5 else 2
        else:
            carry.regime = 1
        carry.regime_until = start + rng.exponential(shape.regime_hold_s[carry.regime])


def _poisson_times(rng: np.random.Generator, hz: float, start: float, end: float) -> np.ndarray:
    n = rng.poisson(hz * (end - start)) if end > start and hz > 0 else 0
    return rng.uniform(start, end, n)


def _per_regime(
    rng: np.random.Generator, segments: list[tuple[float, float, int]], hz: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Poisson times over the regime segments at each regime's rate, with the regime."""
    times = [_poisson_times(rng, float(hz[r]), s, e) for s, e, r in segments]
    regimes = [np.full(len(t), r, np.int64) for t, (_, _, r) in zip(times, segments, strict=True)]
    return np.concatenate(times), np.concatenate(regimes)


def _open_bursts(
    rng: np.random.Generator, carry: _Carry, t0: float, t1: float, rates: Rates, shape: MarketShape
) -> list[tuple[float, float, int]]:
    """Bursts overlapping [t0, t1): carried ones plus new arrivals; keeps the open ones."""
    starts = np.sort(_poisson_times(rng, rates.burst_hz, t0, t1))
    lengths = rng.uniform(*shape.burst_duration_s, len(starts))
    signs = _signs(rng, len(starts))
    new = [(float(s), float(s + d), int(g)) for s, d, g in zip(starts, lengths, signs, strict=True)]
    active = carry.bursts + new
    carry.bursts = [b for b in active if b[1] > t1]
    return active


def _burst_events(
    rng: np.random.Generator,
    bursts: list[tuple[float, float, int]],
    hz: float,
    t0: float,
    t1: float,
) -> tuple[np.ndarray, np.ndarray]:
    """Poisson times inside the bursts' parts within [t0, t1), signed by each burst."""
    times, signs = [np.empty(0)], [np.empty(0, np.int64)]
    for start, end, sign in bursts:
        t = _poisson_times(rng, hz, max(start, t0), min(end, t1))
        times.append(t)
        signs.append(np.full(len(t), sign, np.int64))
    return np.concatenate(times), np.concatenate(signs)


def _clusters(
    rng: np.random.Generator, parents: np.ndarray, shape: MarketShape
) -> tuple[np.ndarray, np.ndarray]:
    """Each parent trade and its children: same-sign order splitting a few tens of ms apart."""
    sizes = rng.geometric(1.0 - shape.cluster_eta, len(parents))
    total = int(sizes.sum())
    owner = np.repeat(np.arange(len(parents)), sizes)
    first = np.cumsum(sizes) - sizes
    rank = np.arange(total) - np.repeat(first, sizes)
    gaps = np.where(rank == 0, 0.0, rng.exponential(shape.cluster_gap_s, total))
    csum = np.cumsum(gaps)
    offset = csum - np.repeat(csum[first], sizes)
    parent_sign = _signs(rng, len(parents))[owner]
    flip = (rank > 0) & (rng.random(total) > shape.cluster_same_sign)
    return parents[owner] + offset, np.where(flip, -parent_sign, parent_sign)


def _split_pending(
    times: np.ndarray, values: np.ndarray, t1: float
) -> tuple[np.ndarray, np.ndarray, tuple[np.ndarray, np.ndarray]]:
    """Events before t1 sorted by time, and the rest kept for the next chunk."""
    now = times < t1
    order = np.argsort(times[now], kind="stable")
    return times[now][order], values[now][order], (times[~now], values[~now])


@dataclass(frozen=True, slots=True)
class _TouchEvents:
    t: np.ndarray  # seconds since the stream's start, sorted
    bid: np.ndarray  # ticks after the event
    ask: np.ndarray
    bid_before: np.ndarray
    ask_before: np.ndarray
    bid0: int  # in force before the chunk's first event
    ask0: int


def _spread_changes(
    rng: np.random.Generator, carry: _Carry, t1: float, rates: Rates, shape: MarketShape
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Times and (db, da) states of the spread renewal process within the chunk.

    The carry's db/da stay as the book shows them at the chunk's start; the touch
    path moves them to the last state.
    """
    times, dbs, das = [], [], []
    db, da = carry.db, carry.da
    while carry.spread_next < t1:
        if db or da:
            db, da = 0, 0
            hold = rng.exponential(1.0 / rates.widen_hz)
        else:
            width = int(rng.integers(1, 3))
            db, da = (-width, 0) if rng.random() < 0.5 else (0, width)
            hold = rng.exponential(shape.wide_hold_s)
        times.append(carry.spread_next)
        dbs.append(db)
        das.append(da)
        carry.spread_next += hold
    return np.array(times, float), np.array(dbs, np.int64), np.array(das, np.int64)


def _touch_path(
    carry: _Carry,
    moves: tuple[np.ndarray, np.ndarray],
    spread: tuple[np.ndarray, np.ndarray, np.ndarray],
    floor: int,
) -> _TouchEvents:
    """Merge base moves and spread changes into one ordered path of (bid, ask)."""
    move_t, move_d = moves
    spread_t, spread_db, spread_da = spread
    t = np.concatenate([move_t, spread_t])
    delta = np.concatenate([move_d, np.zeros(len(spread_t), np.int64)])
    spread_idx = np.concatenate([np.full(len(move_t), -1), np.arange(len(spread_t))])
    order = np.argsort(t, kind="stable")
    t, delta, spread_idx = t[order], delta[order], spread_idx[order]
    # a floor keeps the deepest bid level above zero; clipping the path keeps it consistent
    base = np.maximum(carry.base + np.cumsum(delta), floor)
    last = np.maximum.accumulate(spread_idx) if len(t) else spread_idx
    db = np.where(last >= 0, np.append(spread_db, 0)[last], carry.db)
    da = np.where(last >= 0, np.append(spread_da, 0)[last], carry.da)
    bid, ask = base + db, base + 1 + da
    bid0, ask0 = carry.base + carry.db, carry.base + 1 + carry.da
    bid_before = np.concatenate([[bid0], bid])[:-1].astype(np.int64)
    ask_before = np.concatenate([[ask0], ask])[:-1].astype(np.int64)
    if len(t):
        carry.base, carry.db, carry.da = int(base[-1]), int(db[-1]), int(da[-1])
    return _TouchEvents(t, bid, ask, bid_before, ask_before, bid0, ask0)


# --- rows -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Rows:
    """Rows in ticks and lots before conversion; `group` shares an exchange latency."""

    ts: np.ndarray
    kind: np.ndarray
    side: np.ndarray
    ticks: np.ndarray
    lots: np.ndarray
    group: np.ndarray

    @staticmethod
    def concat(parts: list[_Rows]) -> _Rows:
        names = [f.name for f in fields(_Rows)]
        return _Rows(*(np.concatenate([getattr(p, n) for p in parts]) for n in names))


def _level_lots(
    rng: np.random.Generator, distance: np.ndarray, rates: Rates, shape: MarketShape
) -> np.ndarray:
    median = rates.touch_lots * (1.0 + shape.depth_growth * distance)
    noise = np.exp(shape.level_sigma * rng.standard_normal(len(distance)))
    return np.maximum(np.rint(median * noise), 1).astype(np.int64)


def _touch_rows(
    rng: np.random.Generator,
    ev: _TouchEvents,
    ts: np.ndarray,
    depth: int,
    rates: Rates,
    shape: MarketShape,
) -> _Rows:
    """The add/remove rows that move each side's `depth` contiguous levels with the touch.

    Per event, four ranges in this order: the first side's adds and removes, then
    the second side's. The first side is the one that retreats (or the ask when
    both advance); adds precede removes so that no side is ever empty.
    """
    kb, ka = ev.bid - ev.bid_before, ev.ask - ev.ask_before
    cb, ca = np.minimum(np.abs(kb), depth), np.minimum(np.abs(ka), depth)
    bid_add = np.where(kb > 0, ev.bid - cb + 1, ev.bid - depth + 1)
    bid_rem = np.where(kb > 0, ev.bid_before - depth + 1, ev.bid_before - cb + 1)
    ask_add = np.where(ka < 0, ev.ask, ev.ask + depth - ca)
    ask_rem = np.where(ka < 0, ev.ask_before + depth - ca, ev.ask_before)
    bid_first = (kb <= 0)[:, None]
    bids_lo, bids_n = np.stack([bid_add, bid_rem], 1), np.stack([cb, cb], 1)
    asks_lo, asks_n = np.stack([ask_add, ask_rem], 1), np.stack([ca, ca], 1)
    lo = np.where(bid_first, np.hstack([bids_lo, asks_lo]), np.hstack([asks_lo, bids_lo])).ravel()
    count = np.where(bid_first, np.hstack([bids_n, asks_n]), np.hstack([asks_n, bids_n])).ravel()
    side = np.where(bid_first, [[1, 1, -1, -1]], [[-1, -1, 1, 1]]).ravel()
    is_add = np.tile([True, False, True, False], len(ev.t))
    seg = np.repeat(np.arange(len(lo)), count)
    start = np.cumsum(count) - count
    ticks = lo[seg] + np.arange(len(seg)) - np.repeat(start, count)
    row_side, row_add, event = side[seg], is_add[seg], seg // 4
    distance = np.where(row_side > 0, ev.bid[event] - ticks, ticks - ev.ask[event])
    lots = np.zeros(len(seg), np.int64)
    lots[row_add] = _level_lots(rng, distance[row_add], rates, shape)
    return _Rows(
        ts[event],
        np.full(len(seg), Kind.DELTA, np.int8),
        row_side.astype(np.int8),
        ticks.astype(np.int64),
        lots,
        event,
    )


def _touch_at(ev: _TouchEvents, ev_ts: np.ndarray, ts: np.ndarray) -> tuple[np.ndarray, ...]:
    """Bid and ask in force at each time (events at the same ns come first)."""
    idx = np.searchsorted(ev_ts, ts, side="right") - 1
    bid = np.concatenate([[ev.bid0], ev.bid])[idx + 1]
    ask = np.concatenate([[ev.ask0], ev.ask])[idx + 1]
    return bid, ask


def _size_rows(
    rng: np.random.Generator,
    t: np.ndarray,
    ev: _TouchEvents,
    ev_ts: np.ndarray,
    ts: np.ndarray,
    depth: int,
    rates: Rates,
    shape: MarketShape,
) -> _Rows:
    n = len(t)
    side = _signs(rng, n)
    # updates concentrate near the touch, as on real books
    offset = np.floor(depth * rng.random(n) ** 2).astype(np.int64)
    bid, ask = _touch_at(ev, ev_ts, ts)
    ticks = np.where(side > 0, bid - offset, ask + offset)
    lots = _level_lots(rng, offset.astype(float), rates, shape)
    return _Rows(
        ts,
        np.full(n, Kind.DELTA, np.int8),
        side.astype(np.int8),
        ticks,
        lots,
        np.full(n, -1, np.int64),
    )


def _trade_rows(
    rng: np.random.Generator,
    sign: np.ndarray,
    ev: _TouchEvents,
    ev_ts: np.ndarray,
    ts: np.ndarray,
    rates: Rates,
    shape: MarketShape,
) -> _Rows:
    n = len(ts)
    bid, ask = _touch_at(ev, ev_ts, ts)
    noise = np.exp(shape.trade_sigma * rng.standard_normal(n))
    lots = np.maximum(np.rint(rates.trade_lots * noise), 1).astype(np.int64)
    return _Rows(
        ts,
        np.full(n, Kind.TRADE, np.int8),
        sign.astype(np.int8),
        np.where(sign > 0, ask, bid),
        lots,
        np.full(n, -1, np.int64),
    )


def _snapshot_rows(
    rng: np.random.Generator, carry: _Carry, ts: int, depth: int, rates: Rates, shape: MarketShape
) -> _Rows:
    distance = np.tile(np.arange(depth), 2)
    side = np.repeat(np.array([1, -1], np.int8), depth)
    bid, ask = carry.base + carry.db, carry.base + 1 + carry.da
    ticks = np.where(side > 0, bid - distance, ask + distance).astype(np.int64)
    lots = _level_lots(rng, distance.astype(float), rates, shape)
    return _Rows(
        np.full(2 * depth, ts, np.int64),
        np.full(2 * depth, Kind.SNAPSHOT, np.int8),
        side,
        ticks,
        lots,
        np.full(2 * depth, -2, np.int64),
    )


# --- the stream ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Stream:
    cfg: SynthConfig
    rates: Rates
    shape: MarketShape
    units: _Units
    start_ns: int
    depth: int

    def ns(self, t: np.ndarray) -> np.ndarray:
        return self.start_ns + np.rint(t * NS).astype(np.int64)


def _trades_in(
    rng: np.random.Generator,
    st: _Stream,
    carry: _Carry,
    segments: list[tuple[float, float, int]],
    bursts: list[tuple[float, float, int]],
    t0: float,
    t1: float,
) -> tuple[np.ndarray, np.ndarray]:
    sigma = np.array(st.shape.regime_sigma)
    parent_hz = st.rates.parent_hz * sigma / float(np.dot(st.rates.regime_pi, sigma))
    parents, _ = _per_regime(rng, segments, parent_hz)
    cluster_t, cluster_s = _clusters(rng, parents, st.shape)
    burst_t, burst_s = _burst_events(rng, bursts, st.rates.burst_trade_hz, t0, t1)
    times = np.concatenate([carry.pending_trades[0], cluster_t, burst_t])
    signs = np.concatenate([carry.pending_trades[1], cluster_s, burst_s])
    t, s, carry.pending_trades = _split_pending(times, signs, t1)
    return t, s


def _moves_in(
    rng: np.random.Generator,
    st: _Stream,
    carry: _Carry,
    segments: list[tuple[float, float, int]],
    bursts: list[tuple[float, float, int]],
    trades: tuple[np.ndarray, np.ndarray],
    t0: float,
    t1: float,
) -> tuple[np.ndarray, np.ndarray]:
    """Signed base moves in ticks: diffusion, burst trend, jumps, informed steps."""
    sigma2 = np.array(st.shape.regime_sigma) ** 2
    diffuse_hz = st.rates.diffuse_hz * sigma2 / float(np.dot(st.rates.regime_pi, sigma2))
    diffuse_t, _ = _per_regime(rng, segments, diffuse_hz)
    diffuse_d = _signs(rng, len(diffuse_t)) * _steps(rng, len(diffuse_t), st.shape)
    trend_t, trend_s = _burst_events(rng, bursts, st.shape.burst_step_hz, t0, t1)
    trend_d = trend_s * _steps(rng, len(trend_t), st.shape)
    jump_t = _poisson_times(rng, st.rates.jump_hz, t0, t1)
    size = np.rint(st.rates.jump_ticks * np.exp(0.5 * rng.standard_normal(len(jump_t))))
    jump_d = _signs(rng, len(jump_t)) * np.maximum(size, 1).astype(np.int64)
    trade_t, trade_s = trades
    informed = rng.random(len(trade_t)) < st.shape.informed_prob
    step_t = trade_t[informed] + rng.exponential(st.shape.informed_delay_s, int(informed.sum()))
    step_d = trade_s[informed] * _steps(rng, len(step_t), st.shape)
    t = np.concatenate([diffuse_t, trend_t, jump_t, carry.pending_steps[0], step_t])
    d = np.concatenate([diffuse_d, trend_d, jump_d, carry.pending_steps[1], step_d])
    now, moves, carry.pending_steps = _split_pending(t, d, t1)
    return now, moves


def _latency_ns(rng: np.random.Generator, n: int, shape: MarketShape) -> np.ndarray:
    ms = shape.latency_floor_ms + shape.latency_median_ms * np.exp(
        shape.latency_sigma * rng.standard_normal(n)
    )
    return np.rint(ms * 1e6).astype(np.int64)


def _chunk(
    rng: np.random.Generator, st: _Stream, carry: _Carry, t0: float, t1: float, first: bool
) -> MarketChunk:
    segments = _regime_segments(rng, carry, t0, t1, st.shape)
    bursts = _open_bursts(rng, carry, t0, t1, st.rates, st.shape)
    trade_t, trade_s = _trades_in(rng, st, carry, segments, bursts, t0, t1)
    moves = _moves_in(rng, st, carry, segments, bursts, (trade_t, trade_s), t0, t1)
    spread = _spread_changes(rng, carry, t1, st.rates, st.shape)
    snapshot = (
        _snapshot_rows(rng, carry, st.start_ns, st.depth, st.rates, st.shape) if first else None
    )
    ev = _touch_path(carry, moves, spread, floor=st.depth + 1)
    ev_ts = st.ns(ev.t)
    size_t = np.sort(_poisson_times(rng, st.rates.size_change_hz, t0, t1))
    parts = [
        _touch_rows(rng, ev, ev_ts, st.depth, st.rates, st.shape),
        _size_rows(rng, size_t, ev, ev_ts, st.ns(size_t), st.depth, st.rates, st.shape),
        _trade_rows(rng, trade_s, ev, ev_ts, st.ns(trade_t), st.rates, st.shape),
    ]
    rows = _Rows.concat([snapshot, *parts] if snapshot else parts)
    return _finish(rng, st, carry, rows, len(ev.t))


def _finish(
    rng: np.random.Generator, st: _Stream, carry: _Carry, rows: _Rows, n_events: int
) -> MarketChunk:
    """Replay order, exchange stamps, trade ids, and conversion to floats."""
    order = np.argsort(rows.ts, kind="stable")
    ts, kind, group = rows.ts[order], rows.kind[order], rows.group[order]
    # rows of one touch move (or of the snapshot) left the venue together
    per_event = _latency_ns(rng, n_events + 1, st.shape)
    per_row = _latency_ns(rng, len(ts), st.shape)
    latency = np.where(
        group >= 0, per_event[np.maximum(group, 0)], np.where(group == -2, per_event[-1], per_row)
    )
    is_trade = kind == Kind.TRADE
    trade_id = np.where(is_trade, np.cumsum(is_trade) + carry.next_trade_id - 1, 0)
    carry.next_trade_id += int(is_trade.sum())
    return MarketChunk(
        symbol=st.cfg.symbol,
        ts_local=ts,
        ts_exch=ts - latency,
        kind=kind,
        side=rows.side[order],
        price=st.units.price(rows.ticks[order]),
        qty=st.units.qty(rows.lots[order]),
        trade_id=trade_id.astype(np.int64),
    )


def _start(
    rng: np.random.Generator, cfg: SynthConfig, units: _Units, rates: Rates, shape: MarketShape
) -> _Carry:
    base = round(cfg.initial_mid / units.tick - 0.5)
    if base <= cfg.depth_levels + 1:
        raise SynthConfigError(
            f"data.synth.initial_mid={cfg.initial_mid} is only {base} ticks of {units.tick}: "
            f"need more than depth_levels+1={cfg.depth_levels + 1} ticks for a bid side"
        )
    regime = int(rng.choice(3, p=rates.regime_pi))
    return _Carry(
        base=base,
        regime=regime,
        regime_until=float(rng.exponential(shape.regime_hold_s[regime])),
        spread_next=float(rng.exponential(1.0 / rates.widen_hz)),
    )


def generate(
    cfg: SynthConfig,
    spec: SymbolSpec,
    seed: int,
    chunk_seconds: float = 600,
    shape: MarketShape = MarketShape(),
) -> Iterator[MarketChunk]:
    """The synthetic stream of `cfg.symbol` in replay order, one chunk of time at a time.

    Same config, spec, seed and `chunk_seconds` -> identical chunks. The first
    rows are a SNAPSHOT of `depth_levels` levels a side at `cfg.start`.
    """
    if chunk_seconds <= 0:
        raise SynthConfigError(f"chunk_seconds must be > 0, got {chunk_seconds}")
    duration_s = parse_duration(cfg.duration) / NS
    units = _Units.of(spec)
    rates = derive_rates(cfg, spec, shape)
    if rates.vol_capped:
        log.warning(
            "synth_vol_capped",
            symbol=cfg.symbol,
            target_annual_vol=cfg.annual_vol,
            effective_annual_vol=round(rates.effective_vol, 4),
            book_rate_hz=cfg.book_rate_hz,
        )
    rng = np.random.default_rng(seed)
    carry = _start(rng, cfg, units, rates, shape)
    st = _Stream(cfg, rates, shape, units, parse_utc(cfg.start), cfg.depth_levels)
    t0, first = 0.0, True
    while first or t0 < duration_s:
        t1 = min(t0 + chunk_seconds, duration_s)
        chunk = _chunk(rng, st, carry, t0, t1, first)
        if len(chunk):
            yield chunk
        t0, first = t1, False


# --- a tally for summaries ------------------------------------------------------------------


@dataclass(slots=True)
class StreamTally:
    """Counts of a stream as it passes (mutable: it accumulates)."""

    rows: int = 0
    book_rows: int = 0
    trades: int = 0
    first_ts: int | None = None
    last_ts: int | None = None

    def counted(self, chunks: Iterator[MarketChunk]) -> Iterator[MarketChunk]:
        for chunk in chunks:
            if len(chunk):
                self.rows += len(chunk)
                self.trades += int(np.count_nonzero(chunk.kind == Kind.TRADE))
                self.book_rows = self.rows - self.trades
                if self.first_ts is None:
                    self.first_ts = int(chunk.ts_local[0])
                self.last_ts = int(chunk.ts_local[-1])
            yield chunk
