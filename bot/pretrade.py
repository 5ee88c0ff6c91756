"""Pre-trade checks: the gate every new order passes before it leaves the engine.

Checks run in a fixed order (NautilusTrader's risk engine, STYLE.md §1):
trading state, instrument, qty, notional, price band, symbol inventory, total
inventory, open orders, cancel-rate throttle, order rate. The first failure is
a ``Denied`` naming the rule. Cancels are never refused: they are only counted,
and a cancel storm throttles new orders until the rate is back within the limit.

Limits are turned into engine units (lots, ticks x lots) once, at construction,
so the hot checks compare plain numbers.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Final

from bot.config import RiskConfig
from bot.model import Instrument, Place
from bot.trading_state import TradingState

NS_PER_S: Final = 1_000_000_000
_A: Final = TradingState.ACTIVE
_F: Final = TradingState.FROZEN
_H: Final = TradingState.HALTED


@dataclass(frozen=True, slots=True)
class Denied:
    """A place refused by a pre-trade check; `check` names the rule."""

    client_order_id: str
    check: str
    reason: str


@dataclass(frozen=True, slots=True)
class SymbolLimits:
    """Per-symbol limits in engine units, computed once."""

    max_lots: int  # largest order qty in lots
    max_notional_tl: int  # largest order notional in ticks x lots (exact floor)
    max_inventory_tl: float  # largest |position notional| in ticks x lots
    usd_per_tick_lot: float

    @classmethod
    def of(cls, cfg: RiskConfig, inst: Instrument) -> SymbolLimits:
        tick_lot = inst.tick_size * inst.lot_size
        # An int notional n exceeds a limit x exactly when n > floor(x): compare ints.
        max_notional = Decimal(repr(cfg.max_order_notional))
        max_inventory = Decimal(repr(cfg.max_inventory_usd))
        return cls(
            max_lots=math.floor(cfg.max_order_qty / inst.lot_size),
            max_notional_tl=math.floor(max_notional / tick_lot),
            max_inventory_tl=float(max_inventory / tick_lot),
            usd_per_tick_lot=float(tick_lot),
        )


class PreTradeChecks:
    """The order-level checks plus the order- and cancel-rate windows they need."""

    def __init__(self, cfg: RiskConfig, instruments: Mapping[str, Instrument]) -> None:
        self.limits = {s: SymbolLimits.of(cfg, i) for s, i in instruments.items()}
        self._max_notional = cfg.max_order_notional
        self._max_inventory = cfg.max_inventory_usd
        self._max_total_inventory = cfg.max_total_inventory_usd
        self._band = cfg.price_band_bps / 1e4
        self._band_bps = cfg.price_band_bps
        self._max_open = cfg.max_open_orders
        self._max_orders_per_s = cfg.max_orders_per_s
        self._max_cancels_per_s = cfg.max_cancels_per_s
        self._placed_ns: deque[int] = deque()
        self._cancels_ns: deque[int] = deque()
        self._cancel_block_until_ns = 0
        self._cancel_rate_breached = False

    def check_new(
        self,
        place: Place,
        state: TradingState,
        *,
        mid_px: float,
        position_lots: int,
        open_orders: int,
        total_inventory_usd: float,
    ) -> Denied | None:
        """First failing check as a Denied, or None (and the place counts toward the rate).

        ``mid_px`` is in ticks; ``total_inventory_usd`` is the sum of |position
        notional| over symbols, this one included.
        """
        new_position = position_lots + int(place.side) * place.qty
        increases = abs(new_position) >= abs(position_lots)
        if state is not _A:
            denied = _state_denial(place, state, increases, position_lots)
            if denied is not None:
                return denied
        limits = self.limits.get(place.symbol)
        if limits is None:
            return Denied(place.client_order_id, "instrument", f"unknown symbol {place.symbol!r}")
        denied = self._order_denial(place, limits, mid_px)
        if denied is not None:
            return denied
        if increases:
            denied = self._inventory_denial(
                place, limits, mid_px, position_lots, new_position, total_inventory_usd
            )
            if denied is not None:
                return denied
        return self._flow_denial(place, open_orders)

    def _order_denial(self, place: Place, limits: SymbolLimits, mid_px: float) -> Denied | None:
        if place.qty > limits.max_lots:
            return Denied(
                place.client_order_id,
                "max_order_qty",
                f"qty {place.qty} lots > max {limits.max_lots} lots",
            )
        if place.px * place.qty > limits.max_notional_tl:
            notional = place.px * place.qty * limits.usd_per_tick_lot
            return Denied(
                place.client_order_id,
                "max_order_notional",
                f"notional {notional:.2f} > max {self._max_notional:.2f}",
            )
        if abs(place.px - mid_px) > self._band * mid_px:
            off_bps = (place.px - mid_px) / mid_px * 1e4
            return Denied(
                place.client_order_id,
                "price_band",
                f"px {place.px} ticks is {off_bps:+.1f} bps from mid {mid_px:.1f}, "
                f"band {self._band_bps:g} bps",
            )
        return None

    def _inventory_denial(
        self,
        place: Place,
        limits: SymbolLimits,
        mid_px: float,
        position_lots: int,
        new_position: int,
        total_inventory_usd: float,
    ) -> Denied | None:
        # compared in ticks x lots so a limit hit exactly is not lost to float rounding
        new_tl = abs(new_position) * mid_px
        if new_tl > limits.max_inventory_tl:
            new_notional = new_tl * limits.usd_per_tick_lot
            return Denied(
                place.client_order_id,
                "max_inventory_usd",
                f"position would be {new_position} lots = {new_notional:.2f} USD "
                f"> max {self._max_inventory:.2f}",
            )
        added_usd = (abs(new_position) - abs(position_lots)) * mid_px * limits.usd_per_tick_lot
        new_total = total_inventory_usd + added_usd
        if new_total > self._max_total_inventory:
            return Denied(
                place.client_order_id,
                "max_total_inventory_usd",
                f"total inventory would be {new_total:.2f} USD "
                f"> max {self._max_total_inventory:.2f}",
            )
        return None

    def _flow_denial(self, place: Place, open_orders: int) -> Denied | None:
        if open_orders >= self._max_open:
            return Denied(
                place.client_order_id,
                "max_open_orders",
                f"{open_orders} open orders >= max {self._max_open}",
            )
        ts = place.ts_ns
        if ts < self._cancel_block_until_ns:
            return Denied(
                place.client_order_id,
                "cancel_rate",
                f"cancel rate above {self._max_cancels_per_s:g}/s: "
                f"no new orders until {self._cancel_block_until_ns}",
            )
        placed = self._placed_ns
        horizon = ts - NS_PER_S
        while placed and placed[0] <= horizon:
            placed.popleft()
        if len(placed) >= self._max_orders_per_s:
            return Denied(
                place.client_order_id,
                "max_orders_per_s",
                f"{len(placed)} orders in the last 1 s >= max {self._max_orders_per_s:g}/s",
            )
        placed.append(ts)
        return None

    def record_cancel(self, ts_ns: int) -> str | None:
        """Count a cancel (never refused). Returns the reason of a cancel-rate breach
        the first time the rate goes over the limit, else None; while breached, new
        places are throttled until the oldest cancel of the window ages out."""
        cancels = self._cancels_ns
        cancels.append(ts_ns)
        horizon = ts_ns - NS_PER_S
        while cancels[0] <= horizon:
            cancels.popleft()
        if len(cancels) > self._max_cancels_per_s:
            self._cancel_block_until_ns = cancels[0] + NS_PER_S
            if not self._cancel_rate_breached:
                self._cancel_rate_breached = True
                return (
                    f"{len(cancels)} cancels in 1 s > max {self._max_cancels_per_s:g}/s; "
                    f"new orders throttled"
                )
        elif ts_ns >= self._cancel_block_until_ns:
            self._cancel_rate_breached = False
        return None


def _state_denial(
    place: Place, state: TradingState, increases: bool, position_lots: int
) -> Denied | None:
    if state is _F or state is _H:
        return Denied(place.client_order_id, "trading_state", f"{state.value}: no new orders")
    if increases:  # REDUCING
        return Denied(
            place.client_order_id,
            "trading_state",
            f"reducing: {place.side.name.lower()} {place.qty} lots would not reduce "
            f"position {position_lots} lots",
        )
    return None
