"""Rebate-aware two-sided quoting: a pure function of (market, position, params).

Units inside: prices in integer ticks (fair value and mid may be fractional
ticks), sizes in integer lots, spreads in basis points of the fair value.

The half-spread is the largest of three numbers:
- `vol_multiplier` x the EWMA volatility of mid log-returns (see `EwmaVol`),
- the edge floor `min_edge_bps + expected_adverse_bps + maker_fee_bps`, so
  half-spread + rebate - expected adverse >= min_edge for every quote
  (a negative maker fee is a rebate and lowers the floor),
- `min_half_spread_bps`.
Inventory skew shifts the reservation price away from the inventory we hold;
it may widen a side freely but narrows the reducing side only down to the
floor, so no quote is ever posted with less than the required edge.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from decimal import Decimal
from fractions import Fraction
from typing import Final

from bot.config import StrategyConfig
from bot.model import Instrument, Side

# Volatility is quoted as the standard deviation of the mid over this horizon:
# the adverse-selection horizon of the KPIs (DESIGN §6, default 1 s).
VOL_HORIZON_NS: Final = 1_000_000_000
_NS_PER_MS: Final = 1_000_000
# Float prices in ticks carry ~1e-9 relative error; without the nudge a price
# that is exactly on a tick (50000 - 7.5 = 49992.5) could floor one tick away.
_EPS_TICKS: Final = 1e-6
_QUOTE_CACHE_SIZE: Final = 4096


class StrategyError(ValueError):
    """Strategy parameters that cannot produce a valid quote."""


@dataclass(frozen=True, slots=True)
class Quote:
    """One price level the strategy wants to rest on the book."""

    symbol: str
    side: Side
    level: int
    px: int
    qty: int


class EwmaVol:
    """Exponentially weighted variance rate of mid log-returns.

    `acc` is the sum of squared log-returns, each weighted by exp(-age / tau);
    for a constant variance rate v its expectation is v * tau * (1 - exp(-T / tau))
    after T of data, so dividing by that factor gives an unbiased rate from the
    first observations on (no warm-up bias toward zero).
    """

    __slots__ = ("_acc", "_first_ns", "_last_log", "_last_ns", "_tau_ns", "sigma_bps", "var_bps2")

    def __init__(self, window_ms: int) -> None:
        if window_ms <= 0:
            raise StrategyError(f"vol_window_ms must be > 0, got {window_ms}")
        self._tau_ns = float(window_ms * _NS_PER_MS)
        self._acc = 0.0
        self._first_ns = -1
        self._last_ns = -1
        self._last_log = 0.0
        self.var_bps2 = 0.0  # variance over VOL_HORIZON_NS, bps^2
        self.sigma_bps = 0.0  # its square root

    def observe(self, ts_ns: int, mid_px: float) -> None:
        log_mid = math.log(mid_px)
        if self._first_ns < 0:
            self._first_ns = self._last_ns = ts_ns
            self._last_log = log_mid
            return
        # Real feeds interleave exchange timestamps: a step back in time is no time.
        dt = ts_ns - self._last_ns
        if dt > 0:
            self._acc *= math.exp(-dt / self._tau_ns)
            self._last_ns = ts_ns
        r = log_mid - self._last_log
        self._last_log = log_mid
        self._acc += r * r
        elapsed = self._last_ns - self._first_ns
        if elapsed <= 0:
            return
        norm = self._tau_ns * -math.expm1(-elapsed / self._tau_ns)
        self.var_bps2 = self._acc / norm * VOL_HORIZON_NS * 1e8
        self.sigma_bps = math.sqrt(self.var_bps2)


def edge_floor_bps(cfg: StrategyConfig, maker_fee_bps: float) -> float:
    """The smallest half-spread any quote may have (bps of fair value)."""
    edge = cfg.min_edge_bps + cfg.expected_adverse_bps + maker_fee_bps
    return max(cfg.min_half_spread_bps, edge)


def base_lots(order_qty: Decimal, fraction: float, instrument: Instrument) -> int:
    """Lots per quote: order_qty x fraction rounded down to the lot, >= min qty, >= 1."""
    if not 0 < fraction <= 1:
        raise StrategyError(f"size fraction must be in (0, 1], got {fraction}")
    wanted = Decimal(order_qty) * Decimal(str(fraction))
    lots = int(wanted / instrument.lot_size)
    return max(lots, instrument.min_qty_lots, 1)


class QuotePolicy:
    """Quoting policy for one instrument.

    State: the volatility estimate and the time of the last re-quote (for the
    min-interval throttle). Every other input arrives as an argument, so the
    same calls give the same quotes. Parameters are copied to plain attributes
    at construction: no pydantic access on the hot path.
    """

    __slots__ = (
        "_ask_side",
        "_bid_side",
        "_floor_bps",
        "_gamma_t",
        "_inv_per_lot_tick",
        "_last_inputs",
        "_last_prices",
        "_last_quotes",
        "_levels",
        "_linear",
        "_microprice",
        "_min_interval_ns",
        "_notional_den",
        "_notional_num",
        "_qty_lots",
        "_quote_cache",
        "_skew_cap",
        "_skew_per_inv",
        "_spacing_bps",
        "_target_lots",
        "_vol_mult",
        "instrument",
        "last_requote_ns",
        "max_quote_age_ns",
        "requote_threshold_bps",
        "symbol",
        "vol",
    )

    def __init__(
        self,
        cfg: StrategyConfig,
        instrument: Instrument,
        maker_fee_bps: float,
        max_inventory_usd: float,
        *,
        size_fraction: float = 1.0,
    ) -> None:
        if max_inventory_usd <= 0:
            raise StrategyError(f"max_inventory_usd must be > 0, got {max_inventory_usd}")
        self.instrument = instrument
        self.symbol = instrument.symbol
        self.vol = EwmaVol(cfg.vol_window_ms)
        self._microprice = cfg.fair_value == "microprice"
        self._vol_mult = cfg.vol_multiplier
        self._floor_bps = edge_floor_bps(cfg, maker_fee_bps)
        self._linear = cfg.skew_model == "linear"
        self._skew_per_inv = cfg.skew_bps_per_inventory
        # Avellaneda-Stoikov in bps: skew = gamma * q * sigma^2 * T with q the
        # inventory in units of max_inventory, sigma^2 the 1 s variance (bps^2)
        # and T the vol window in seconds (the horizon the inventory is held over).
        self._gamma_t = cfg.risk_aversion * cfg.vol_window_ms / 1000.0
        self._skew_cap = cfg.skew_cap_bps
        self._levels = cfg.levels
        self._spacing_bps = cfg.level_spacing_bps
        self._target_lots = int(cfg.target_inventory / instrument.lot_size)
        tick_lot = instrument.tick_size * instrument.lot_size
        self._inv_per_lot_tick = float(tick_lot) / max_inventory_usd
        self._qty_lots = base_lots(cfg.order_qty, size_fraction, instrument)
        # min notional in (tick x lot) units as an exact fraction: qty >= num / (den * px)
        units = Fraction(instrument.min_notional) / Fraction(tick_lot)
        self._notional_num = units.numerator
        self._notional_den = units.denominator
        self._bid_side = Side.BUY
        self._ask_side = Side.SELL
        self.requote_threshold_bps = cfg.requote_threshold_bps
        self.max_quote_age_ns = cfg.max_quote_age_ms * _NS_PER_MS
        self._min_interval_ns = cfg.min_interval_ms * _NS_PER_MS
        self.last_requote_ns = -(1 << 62)
        # The last answer and the prices it was built from: most touch moves round
        # to the same ticks, and returning the very same tuple lets the engine see
        # "nothing to do" with one identity test.
        self._last_inputs: tuple[int, int, int, int, int, float, float] | None = None
        self._last_prices: list[int] = []
        self._last_quotes: tuple[Quote, ...] = ()
        # Quote objects by (side, level, px): the market revisits the same prices,
        # and a frozen dataclass costs more to build than a dict lookup
        self._quote_cache: dict[tuple[int, int, int], Quote] = {}

    # --- inputs -------------------------------------------------------------------

    def observe_mid(self, ts_ns: int, mid_px: float) -> None:
        """Feed the volatility estimator with a mid (ticks)."""
        self.vol.observe(ts_ns, mid_px)

    # --- re-quote throttle --------------------------------------------------------

    def may_requote(self, ts_ns: int) -> bool:
        """False within `min_interval_ms` of the last re-quote of this symbol."""
        return ts_ns - self.last_requote_ns >= self._min_interval_ns

    def requoted(self, ts_ns: int) -> None:
        self.last_requote_ns = ts_ns

    # --- pricing ------------------------------------------------------------------

    def half_spread_bps(self) -> float:
        return max(self._floor_bps, self._vol_mult * self.vol.sigma_bps)

    def skew_bps(self, position_lots: int, mid_px: float) -> float:
        """Positive when long of target: quotes move down to sell inventory off."""
        q = (position_lots - self._target_lots) * mid_px * self._inv_per_lot_tick
        skew = self._skew_per_inv * q if self._linear else self._gamma_t * q * self.vol.var_bps2
        cap = self._skew_cap
        return cap if skew > cap else -cap if skew < -cap else skew

    def min_lots_at(self, px: int) -> int:
        """The smallest size allowed at `px`: min qty, min notional, one lot."""
        den = self._notional_den * px
        by_notional = -(-self._notional_num // den) if den > 0 else 0
        return max(by_notional, self.instrument.min_qty_lots, 1)

    def wanted(
        self,
        ts_ns: int,
        bid_px: int,
        bid_qty: int,
        ask_px: int,
        ask_qty: int,
        position_lots: int,
    ) -> tuple[Quote, ...]:
        """The quotes to rest now; empty when the touch is not a valid two-sided book."""
        del ts_ns  # time enters through observe_mid; kept for a uniform call shape
        if bid_px <= 0 or ask_px <= bid_px:
            return ()
        vol = self.vol
        # every input of the prices below; timers re-ask with nothing changed
        inputs = (bid_px, bid_qty, ask_px, ask_qty, position_lots, vol.sigma_bps, vol.var_bps2)
        if inputs == self._last_inputs:
            return self._last_quotes
        self._last_inputs = inputs
        mid = (bid_px + ask_px) * 0.5
        depth = bid_qty + ask_qty
        if self._microprice and depth > 0:
            fair = (bid_px * ask_qty + ask_px * bid_qty) / depth
        else:
            fair = mid
        half = self.half_spread_bps()
        skew = self.skew_bps(position_lots, mid)
        floor = self._floor_bps
        bid_bps = max(half + skew, floor)
        ask_bps = max(half - skew, floor)
        unit = fair * 1e-4
        spacing = self._spacing_bps
        prices: list[int] = []
        prev_bid = ask_px  # a post-only bid must stay below the best ask
        prev_ask = bid_px
        for level in range(self._levels):
            extra = level * spacing
            bid = math.floor(fair - (bid_bps + extra) * unit + _EPS_TICKS)
            if bid >= prev_bid:
                bid = prev_bid - 1
            ask = math.ceil(fair + (ask_bps + extra) * unit - _EPS_TICKS)
            if ask <= prev_ask:
                ask = prev_ask + 1
            prices.append(bid)
            prices.append(ask)
            prev_bid, prev_ask = bid, ask
        if prices == self._last_prices:
            return self._last_quotes  # sizes are a function of the prices alone
        self._last_prices = prices
        self._last_quotes = quotes = self._quotes(prices)
        return quotes

    def _quotes(self, prices: list[int]) -> tuple[Quote, ...]:
        """Quote objects of (bid, ask) prices per level, from the best level out."""
        cache = self._quote_cache
        if len(cache) > _QUOTE_CACHE_SIZE:
            cache.clear()  # a trending market leaves old prices behind
        quotes: list[Quote] = []
        for level in range(len(prices) // 2):
            bid, ask = prices[2 * level], prices[2 * level + 1]
            if bid > 0:
                quote = cache.get((1, level, bid))
                if quote is None:
                    quote = cache[1, level, bid] = self._quote(self._bid_side, level, bid)
                quotes.append(quote)
            quote = cache.get((-1, level, ask))
            if quote is None:
                quote = cache[-1, level, ask] = self._quote(self._ask_side, level, ask)
            quotes.append(quote)
        return tuple(quotes)

    def _quote(self, side: Side, level: int, px: int) -> Quote:
        return Quote(self.symbol, side, level, px, max(self._qty_lots, self.min_lots_at(px)))
