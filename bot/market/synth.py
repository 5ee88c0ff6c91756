"""Seeded synthetic market: an L2 book of one symbol plus its trades, in chunks of time.

Calibrated to the real Binance BTCUSDT capture in ../shared/data (docs/synthetic.md
holds the side-by-side table and the command that makes it). The model, and why
each part is there:

- Sweeps move the touch. On the real book the level behind the touch is mostly
  empty, so the touch rarely moves (1.4 times a second) and then by many ticks
  (median 22 ticks, lognormal tail); 83 % of those moves follow a trade of their
  sign by a few tens of ms. A sweep here is a run of same-sign trades a couple of
  ms apart, printing at the touch and then at the levels it eats, and the book
  shows the move `book_lag_s` after its last trade (the real depth feed lags the
  trade feed the same way). A maker at the touch is therefore filled just before
  the mid moves against it: that is the adverse selection of the real feed.
- A sweep is followed, with probability `follow_eta` and about a second later, by
  another one its way (momentum: the real 5 s markout is larger than the 1 s one).
- Quiet moves (no trade before them) and rare jumps move the touch either way.
- The rate of sweeps is solved from `annual_vol`: every move's size in ticks is
  known in distribution, so the variance per second is too. Volatility regimes
  (calm / normal / stressed, a Markov chain) scale the rates, so it clusters.
- Background trades (the rest of `trade_rate_hz`) arrive in clusters (a parent
  from a regime-scaled Poisson process, then a geometric number of children a
  few tens of ms apart, mostly of the same sign) and print at the touch.
- Toxic bursts: about a minute of one-sided aggressive trades plus sweeps in the
  same direction.
- The spread is one tick nearly all the time (99.3 % on the real feed); a renewal
  process pulls one side back by a few ticks for about a tenth of a second.
- Each side holds exactly `depth_levels` contiguous levels from the touch, with
  lognormal sizes: a large touch level, smaller levels behind it whose median
  grows with the distance. When the touch moves, the rows that keep the book
  consistent are emitted in an order that never crosses it and never empties a
  side: the retreating side first (add the new levels, then remove the old), then
  the advancing side. A move costs 4 * min(ticks, depth_levels) rows.
- The rest of the book-row budget `book_rate_hz` is size changes at random levels,
  grouped into messages (`size_message_hz`), as a depth feed sends them.

Everything is drawn from one `numpy.random.default_rng(seed)` in a fixed order, so
the same seed, config and `chunk_seconds` give identical arrays. Only one chunk of
rows is alive at a time; what crosses a chunk boundary (regime, spread state,
open bursts, pending trades and moves, the touch) is carried over.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass, field, fields
from decimal import Decimal

import numpy as np

from bot.config import SymbolSpec, SynthConfig
from bot.market.schema import Kind, MarketChunk
from bot.runtime.clock import parse_duration, parse_utc

SECONDS_PER_YEAR = 365.0 * 86_400.0
NS = 1_000_000_000


class SynthConfigError(ValueError):
    """A synthetic-market setting that cannot produce a valid stream."""


@dataclass(frozen=True, slots=True)
class MarketShape:
    """Microstructure constants of the synthetic market (not user settings).

    Values in comments marked "real" are from the Binance BTCUSDT capture of
    2024-08-08 (`python -m bot.market.stats`).
    """

    regime_sigma: tuple[float, float, float] = (0.7, 1.0, 1.5)
    regime_hold_s: tuple[float, float, float] = (600.0, 400.0, 160.0)
    step_median_bps: float = 0.36  # size of a touch move; real median 22.5 ticks at 61 800
    step_sigma: float = 1.0  # lognormal; real p90 / median = 3.2, p99 / median = 12.8
    quiet_share: float = 0.2  # moves with no trade before them, per sweep (real: ~17 %)
    sweep_trade_share: float = 0.9  # share of trades that belong to a sweep
    sweep_queue_share: float = 0.35  # of a sweep's trades, those at the touch
    sweep_gap_s: float = 0.002  # between the trades of a sweep (real: a few ms)
    book_lag_s: float = 0.02  # the book shows a sweep's move this long after its last trade
    sweep_size_mult: float = 2.0  # sweeping orders are larger than background ones
    follow_eta: float = 0.45  # chance that a sweep is followed by another one its way
    follow_delay_s: float = 1.5
    cluster_eta: float = 0.5  # mean background trades per cluster = 1 / (1 - eta)
    cluster_gap_s: float = 0.05
    cluster_same_sign: float = 0.85
    wide_share: float = 0.007  # share of time the spread is wider than one tick (real 0.7 %)
    wide_hold_s: float = 0.1
    wide_median_ticks: float = 10.0  # how far the side pulls back, lognormal
    wide_sigma: float = 1.3
    burst_duration_s: tuple[float, float] = (45.0, 90.0)
    burst_trade_mult: float = 1.0  # extra one-sided trades, in units of trade_rate_hz
    burst_sweep_hz: float = 0.6  # extra sweeps in the burst direction (~20 bps a minute)
    jump_median_bps: float = 5.0
    touch_notional: float = 150_000.0  # median size at the touch, quote (real 189 k)
    level_notional: float = 10_000.0  # median size one level behind it
    depth_growth: float = 0.1  # behind the touch the median grows this share per level
    level_sigma: float = 0.7
    trade_notional: float = 520.0  # median background trade, quote; sweeps trade twice that
    trade_sigma: float = 1.9  # lognormal; real median 989, p90 16 k, p99 71 k, mean 7.0 k
    size_message_hz: float = 17.0  # size-change messages; real 19 book messages/s in all
    latency_floor_ms: float = 0.5
    latency_median_ms: float = 3.0
    latency_sigma: float = 0.5


@dataclass(frozen=True, slots=True)
class Rates:
    """Event rates derived once from the config, the symbol and the shape."""

    regime_pi: tuple[float, ...]
    step_ticks: float  # median size of a touch move
    sweep_hz: float  # mean rate of sweep families over regimes
    quiet_hz: float
    sweep_trades: float  # mean trades per sweep
    parent_hz: float  # mean rate of background trade-cluster parents over regimes
    burst_trade_hz: float
    burst_hz: float
    jump_hz: float
    jump_ticks: float
    widen_hz: float
    wide_ticks: float
    touch_rows_hz: float
    size_change_hz: float
    size_message_hz: float
    target_vol: float
    effective_vol: float  # of the touch moves, jumps left out
    touch_lots: float
    level_lots: float
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
    # trades: (time, sign, ticks through the touch, size multiple); moves: (time, ticks)
    pending_trades: tuple[np.ndarray, ...] = (
        np.empty(0),
        np.empty(0, np.int64),
        np.empty(0, np.int64),
        np.empty(0),
    )
    pending_moves: tuple[np.ndarray, ...] = (np.empty(0), np.empty(0, np.int64))
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


def _lognormal_ticks(rng: np.random.Generator, n: int, median: float, sigma: float) -> np.ndarray:
    """Whole ticks >= 1 from a lognormal size (the touch moves and the spread widths)."""
    size = np.rint(median * np.exp(sigma * rng.standard_normal(n)))
    return np.maximum(size, 1).astype(np.int64)


def _step_moments(median: float, sigma: float, depth: int) -> tuple[float, float, float]:
    """E[k], E[k^2] and E[min(k, depth)] of `_lognormal_ticks`, by Gauss-Hermite quadrature."""
    z, w = np.polynomial.hermite_e.hermegauss(64)
    w = w / w.sum()
    k = np.maximum(np.rint(median * np.exp(sigma * z)), 1)
    return float(w @ k), float(w @ k**2), float(w @ np.minimum(k, depth))


@dataclass(frozen=True, slots=True)
class _Variance:
    """Touch-move counts and variance (ticks^2/s) per unit of the sweep-family rate."""

    family_sweeps: float  # sweeps per family
    per_family: float  # variance a family and its share of quiet moves add
    burst_sweeps_hz: float
    burst_var: float  # variance the bursts' trends add, per second


def _variance(cfg: SynthConfig, shape: MarketShape, ek: float, ek2: float) -> _Variance:
    eta = shape.follow_eta
    family = 1.0 / (1.0 - eta)
    # a family's sweeps share a sign: E[M] E[k^2] + E[M (M - 1)] E[k]^2 for geometric M
    per_family = family * ek2 + 2.0 * eta / (1.0 - eta) ** 2 * ek**2
    burst_hz = cfg.toxic_burst_rate_per_h / 3_600.0
    nu = shape.burst_sweep_hz * float(np.mean(shape.burst_duration_s))
    # a burst's Poisson(nu) sweeps share a sign as well
    return _Variance(
        family, per_family + shape.quiet_share * family * ek2, burst_hz * nu,
        burst_hz * (nu * ek2 + nu**2 * ek**2),
    )  # fmt: skip


def derive_rates(cfg: SynthConfig, spec: SymbolSpec, shape: MarketShape = MarketShape()) -> Rates:
    """Rates of every event type so that the stream meets the config's vol and budgets."""
    units = _Units.of(spec)
    depth = cfg.depth_levels
    per_tick_bps = units.tick / cfg.initial_mid * 1e4
    step_ticks = shape.step_median_bps / per_tick_bps
    ek, ek2, emin = _step_moments(step_ticks, shape.step_sigma, depth)
    var = _variance(cfg, shape, ek, ek2)
    target = (cfg.annual_vol / per_tick_bps * 1e4) ** 2 / SECONDS_PER_YEAR
    sweep_hz = max(target - var.burst_var, 0.0) / var.per_family
    sweeps = sweep_hz * var.family_sweeps + var.burst_sweeps_hz
    quiet_hz = shape.quiet_share * sweep_hz * var.family_sweeps
    effective = math.sqrt((sweep_hz * var.per_family + var.burst_var) * SECONDS_PER_YEAR)
    burst_hz = cfg.toxic_burst_rate_per_h / 3_600.0
    burst_trade_hz = shape.burst_trade_mult * cfg.trade_rate_hz
    one_sided = burst_hz * float(np.mean(shape.burst_duration_s)) * burst_trade_hz
    sweep_trades = max(1.0, shape.sweep_trade_share * cfg.trade_rate_hz / sweeps) if sweeps else 1.0
    rest = cfg.trade_rate_hz - one_sided - sweeps * sweep_trades
    background = max(rest, 0.05 * cfg.trade_rate_hz)
    widen_hz = shape.wide_share / ((1.0 - shape.wide_share) * shape.wide_hold_s)
    wide_ticks = max(1.0, shape.wide_median_ticks)
    _, _, wide_rows = _step_moments(wide_ticks, shape.wide_sigma, depth)
    jump_hz = cfg.jump_rate_per_h / 3_600.0
    # a widen and its narrowing each move one side: 2 rows a tick, twice a cycle
    touch_rows = 4.0 * emin * (sweeps + quiet_hz) + 4.0 * wide_rows * widen_hz + 4 * depth * jump_hz
    if touch_rows > cfg.book_rate_hz:
        raise SynthConfigError(
            f"data.synth.book_rate_hz={cfg.book_rate_hz} is below the {touch_rows:.0f} rows/s "
            f"that the touch moves of annual_vol={cfg.annual_vol} need on a {units.tick} tick"
        )
    size_change_hz = cfg.book_rate_hz - touch_rows
    lots_per_quote = 1.0 / (cfg.initial_mid * units.lot)
    return Rates(
        regime_pi=tuple(float(x) for x in _stationary(shape)),
        step_ticks=step_ticks,
        sweep_hz=sweep_hz,
        quiet_hz=quiet_hz,
        sweep_trades=sweep_trades,
        parent_hz=background * (1.0 - shape.cluster_eta),
        burst_trade_hz=burst_trade_hz,
        burst_hz=burst_hz,
        jump_hz=jump_hz,
        jump_ticks=max(1.0, shape.jump_median_bps / per_tick_bps),
        widen_hz=widen_hz,
        wide_ticks=wide_ticks,
        touch_rows_hz=touch_rows,
        size_change_hz=size_change_hz,
        size_message_hz=min(shape.size_message_hz, size_change_hz),
        target_vol=cfg.annual_vol,
        effective_vol=effective * per_tick_bps * 1e-4,
        touch_lots=max(1.0, shape.touch_notional * lots_per_quote),
        level_lots=max(1.0, shape.level_notional * lots_per_quote),
        trade_lots=max(1.0, shape.trade_notional * lots_per_quote),
    )


# --- drawing events -----------------------------------------------------------------------


def _signs(rng: np.random.Generator, n: int) -> np.ndarray:
    return rng.integers(0, 2, n, dtype=np.int64) * 2 - 1


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
) -> np.ndarray:
    """Poisson times over the regime segments at each regime's rate."""
    return np.concatenate([_poisson_times(rng, float(hz[r]), s, e) for s, e, r in segments])


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


def _families(
    rng: np.random.Generator, parents: np.ndarray, eta: float, gap_s: float, same_sign: float
) -> tuple[np.ndarray, np.ndarray]:
    """Each parent and a geometric number of children `gap_s` apart, mostly of its sign.

    A one-generation Hawkes process, cheap to draw with numpy: background trade
    clusters (order splitting) and sweep families (momentum) both use it.
    """
    sizes = rng.geometric(1.0 - eta, len(parents))
    total = int(sizes.sum())
    owner = np.repeat(np.arange(len(parents)), sizes)
    first = np.cumsum(sizes) - sizes
    rank = np.arange(total) - np.repeat(first, sizes)
    gaps = np.where(rank == 0, 0.0, rng.exponential(gap_s, total))
    csum = np.cumsum(gaps)
    offset = csum - np.repeat(csum[first], sizes)
    parent_sign = _signs(rng, len(parents))[owner]
    flip = (rank > 0) & (rng.random(total) > same_sign)
    return parents[owner] + offset, np.where(flip, -parent_sign, parent_sign)


def _split_pending(
    times: np.ndarray, values: tuple[np.ndarray, ...], t1: float
) -> tuple[np.ndarray, tuple[np.ndarray, ...], tuple[np.ndarray, ...]]:
    """Events before t1 sorted by time, and the rest kept for the next chunk."""
    now = times < t1
    order = np.argsort(times[now], kind="stable")
    later = (times[~now], *(v[~now] for v in values))
    return times[now][order], tuple(v[now][order] for v in values), later


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
            width = int(_lognormal_ticks(rng, 1, rates.wide_ticks, shape.wide_sigma)[0])
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

# `_Rows.group`: rows of one touch event or size message share an exchange latency
_OWN_LATENCY = -1
_SNAPSHOT_GROUP = -2


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
    # the touch holds the queue; behind it the book thins out, then thickens with distance
    behind = rates.level_lots * (1.0 + shape.depth_growth * (distance - 1))
    median = np.where(distance == 0, rates.touch_lots, behind)
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
    messages: np.ndarray,
    first_group: int,
    ev: _TouchEvents,
    ev_ts: np.ndarray,
    st: _Stream,
) -> _Rows:
    """Size changes at random levels, `size_change_hz` rows in `size_message_hz` messages."""
    per_message = st.rates.size_change_hz / max(st.rates.size_message_hz, 1e-9)
    count = 1 + rng.poisson(max(per_message - 1.0, 0.0), len(messages))
    n = int(count.sum())
    group = np.repeat(np.arange(len(messages)), count)
    ts = st.ns(messages)[group]
    side = _signs(rng, n)
    # most updates sit behind the touch (real: 28 rows/s at the touch's price of 1 292)
    offset = np.floor(st.depth * rng.random(n) ** 0.7).astype(np.int64)
    bid, ask = _touch_at(ev, ev_ts, ts)
    return _Rows(
        ts,
        np.full(n, Kind.DELTA, np.int8),
        side.astype(np.int8),
        np.where(side > 0, bid - offset, ask + offset),
        _level_lots(rng, offset, st.rates, st.shape),
        first_group + group,
    )


def _trade_rows(
    rng: np.random.Generator,
    trades: tuple[np.ndarray, ...],
    ev: _TouchEvents,
    ev_ts: np.ndarray,
    st: _Stream,
) -> _Rows:
    """Trades at the touch in force, or `through` ticks beyond it on a displayed level."""
    t, sign, through, mult = trades
    ts = st.ns(t)
    n = len(ts)
    bid, ask = _touch_at(ev, ev_ts, ts)
    noise = np.exp(st.shape.trade_sigma * rng.standard_normal(n))
    lots = np.maximum(np.rint(st.rates.trade_lots * mult * noise), 1).astype(np.int64)
    return _Rows(
        ts,
        np.full(n, Kind.TRADE, np.int8),
        sign.astype(np.int8),
        np.where(sign > 0, ask + through, bid - through),
        lots,
        np.full(n, _OWN_LATENCY, np.int64),
    )


def _snapshot_rows(
    rng: np.random.Generator, carry: _Carry, ts: int, depth: int, rates: Rates, shape: MarketShape
) -> _Rows:
    distance = np.tile(np.arange(depth), 2)
    side = np.repeat(np.array([1, -1], np.int8), depth)
    bid, ask = carry.base + carry.db, carry.base + 1 + carry.da
    ticks = np.where(side > 0, bid - distance, ask + distance).astype(np.int64)
    lots = _level_lots(rng, distance, rates, shape)
    return _Rows(
        np.full(2 * depth, ts, np.int64),
        np.full(2 * depth, Kind.SNAPSHOT, np.int8),
        side,
        ticks,
        lots,
        np.full(2 * depth, _SNAPSHOT_GROUP, np.int64),
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

    def regime_hz(self, hz: float, power: int) -> np.ndarray:
        """A mean rate spread over the regimes in proportion to sigma**power."""
        scale = np.array(self.shape.regime_sigma) ** power
        return hz * scale / float(np.dot(self.rates.regime_pi, scale))


@dataclass(frozen=True, slots=True)
class _Sweeps:
    """The trades of the chunk's sweeps and the touch moves they cause."""

    trade_t: np.ndarray
    trade_s: np.ndarray
    through: np.ndarray  # ticks beyond the touch in force
    move_t: np.ndarray
    move_d: np.ndarray  # signed ticks


def _sweeps(
    rng: np.random.Generator,
    st: _Stream,
    segments: list[tuple[float, float, int]],
    bursts: list[tuple[float, float, int]],
    t0: float,
    t1: float,
) -> _Sweeps:
    """Sweep families (momentum) and burst sweeps: each a run of trades, then its move."""
    shape = st.shape
    parents = _per_regime(rng, segments, st.regime_hz(st.rates.sweep_hz, 2))
    family_t, family_s = _families(rng, parents, shape.follow_eta, shape.follow_delay_s, 1.0)
    burst_t, burst_s = _burst_events(rng, bursts, shape.burst_sweep_hz, t0, t1)
    start, sign = np.concatenate([family_t, burst_t]), np.concatenate([family_s, burst_s])
    ticks = _lognormal_ticks(rng, len(start), st.rates.step_ticks, shape.step_sigma)
    count = rng.geometric(1.0 / st.rates.sweep_trades, len(start))
    owner = np.repeat(np.arange(len(start)), count)
    first = np.cumsum(count) - count
    rank = np.arange(len(owner)) - np.repeat(first, count)
    gaps = np.where(rank == 0, 0.0, rng.exponential(shape.sweep_gap_s, len(owner)))
    csum = np.cumsum(gaps)
    trade_t = start[owner] + csum - np.repeat(csum[first], count)
    # the first trades of a sweep eat the queue at the touch, the rest the levels up to its
    # move (real: 46 % of trades print at the touch, 49 % through it); prints stay on the book
    beyond = (rank / count[owner] - shape.sweep_queue_share) / (1.0 - shape.sweep_queue_share)
    through = np.clip(np.floor(ticks[owner] * beyond), 0, st.depth - 1).astype(np.int64)
    last = trade_t[first + count - 1] if len(start) else start
    move_t = last + rng.exponential(shape.book_lag_s, len(start))
    return _Sweeps(trade_t, sign[owner], through, move_t, sign * ticks)


def _trades_in(
    rng: np.random.Generator,
    st: _Stream,
    carry: _Carry,
    segments: list[tuple[float, float, int]],
    bursts: list[tuple[float, float, int]],
    sweeps: _Sweeps,
    t0: float,
    t1: float,
) -> tuple[np.ndarray, ...]:
    """(time, sign, ticks through the touch, size multiple) of the trades before t1."""
    shape = st.shape
    parents = _per_regime(rng, segments, st.regime_hz(st.rates.parent_hz, 1))
    cluster_t, cluster_s = _families(
        rng, parents, shape.cluster_eta, shape.cluster_gap_s, shape.cluster_same_sign
    )
    burst_t, burst_s = _burst_events(rng, bursts, st.rates.burst_trade_hz, t0, t1)
    background = len(cluster_t) + len(burst_t)
    times = np.concatenate([carry.pending_trades[0], cluster_t, burst_t, sweeps.trade_t])
    values = (
        np.concatenate([carry.pending_trades[1], cluster_s, burst_s, sweeps.trade_s]),
        np.concatenate([carry.pending_trades[2], np.zeros(background, np.int64), sweeps.through]),
        np.concatenate(
            [
                carry.pending_trades[3],
                np.ones(background),
                np.full(len(sweeps.trade_t), shape.sweep_size_mult),
            ]
        ),
    )
    t, now, carry.pending_trades = _split_pending(times, values, t1)
    return (t, *now)


def _moves_in(
    rng: np.random.Generator,
    st: _Stream,
    carry: _Carry,
    segments: list[tuple[float, float, int]],
    sweeps: _Sweeps,
    t0: float,
    t1: float,
) -> tuple[np.ndarray, np.ndarray]:
    """Signed base moves in ticks before t1: sweeps, quiet moves, jumps."""
    shape = st.shape
    quiet_t = _per_regime(rng, segments, st.regime_hz(st.rates.quiet_hz, 2))
    quiet_d = _signs(rng, len(quiet_t)) * _lognormal_ticks(
        rng, len(quiet_t), st.rates.step_ticks, shape.step_sigma
    )
    jump_t = _poisson_times(rng, st.rates.jump_hz, t0, t1)
    jump_d = _signs(rng, len(jump_t)) * _lognormal_ticks(rng, len(jump_t), st.rates.jump_ticks, 0.5)
    t = np.concatenate([carry.pending_moves[0], sweeps.move_t, quiet_t, jump_t])
    d = np.concatenate([carry.pending_moves[1], sweeps.move_d, quiet_d, jump_d])
    now, (moves,), carry.pending_moves = _split_pending(t, (d,), t1)
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
    sweeps = _sweeps(rng, st, segments, bursts, t0, t1)
    trades = _trades_in(rng, st, carry, segments, bursts, sweeps, t0, t1)
    moves = _moves_in(rng, st, carry, segments, sweeps, t0, t1)
    spread = _spread_changes(rng, carry, t1, st.rates, st.shape)
    snapshot = (
        _snapshot_rows(rng, carry, st.start_ns, st.depth, st.rates, st.shape) if first else None
    )
    ev = _touch_path(carry, moves, spread, floor=st.depth + 1)
    ev_ts = st.ns(ev.t)
    messages = np.sort(_poisson_times(rng, st.rates.size_message_hz, t0, t1))
    parts = [
        _touch_rows(rng, ev, ev_ts, st.depth, st.rates, st.shape),
        _size_rows(rng, messages, len(ev.t), ev, ev_ts, st),
        _trade_rows(rng, trades, ev, ev_ts, st),
    ]
    rows = _Rows.concat([snapshot, *parts] if snapshot else parts)
    return _finish(rng, st, carry, rows, len(ev.t) + len(messages))


def _finish(
    rng: np.random.Generator, st: _Stream, carry: _Carry, rows: _Rows, n_groups: int
) -> MarketChunk:
    """Replay order, exchange stamps, trade ids, and conversion to floats."""
    order = np.argsort(rows.ts, kind="stable")
    ts, kind, group = rows.ts[order], rows.kind[order], rows.group[order]
    # rows of one touch move, size message or snapshot left the venue together
    per_group = _latency_ns(rng, n_groups + 1, st.shape)
    per_row = _latency_ns(rng, len(ts), st.shape)
    latency = np.where(
        group >= 0,
        per_group[np.maximum(group, 0)],
        np.where(group == _SNAPSHOT_GROUP, per_group[-1], per_row),
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
    chunk_seconds: float = 120,
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
