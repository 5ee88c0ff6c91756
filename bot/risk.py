"""Pre-trade checks, runtime guards and the trading state (freeze, reduce-only, kill).

Modelled on NautilusTrader's risk engine: a gate between strategy and venue
with a trading state, checks in a fixed order, the first failure a denial
with a reason. Cancels are never blocked, so the bot can always get flat.

Trading states and the only ways between them (``_NEXT``):

- ACTIVE: every check applies.
- REDUCING: only orders that shrink |position| pass (inventory guard, with
  hysteresis back to ACTIVE).
- FROZEN: nothing new is placed; the engine cancels everything. Lifted by an
  operator ``unfreeze`` or, if the profile sets ``freeze_cooldown_ms``, by the
  first ``on_timer`` after the cool-down.
- HALTED: the kill switch (loss limit, drawdown, operator). Only an explicit
  operator ``reset`` clears it.

Time is always the ``ts_ns`` handed in; nothing here reads a clock.

Journaling: every state change is returned as ``RiskEvent`` values from the
method that caused it; the engine appends ``event.row()`` to the ``risk``
table. ``check_new`` returns only the ``Denied``; the engine turns it into a
journal row with ``denial_event(denied, ts_ns, symbol)``.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from enum import Enum
from typing import Final

import structlog

from bot.config import RiskConfig
from bot.model import Instrument, Liquidity, OrderFill, Place

log = structlog.get_logger(__name__)

NS_PER_S: Final = 1_000_000_000
NS_PER_MS: Final = 1_000_000
NS_PER_DAY: Final = 86_400 * NS_PER_S
ALL_SYMBOLS: Final = "*"  # the `symbol` of risk events that concern the whole bot


class TradingState(Enum):
    ACTIVE = "active"
    REDUCING = "reducing"
    FROZEN = "frozen"
    HALTED = "halted"


class RiskAction(Enum):
    FREEZE = "freeze"
    UNFREEZE = "unfreeze"
    REDUCE = "reduce"
    RESUME = "resume"
    KILL = "kill"
    RESET = "reset"


_A = TradingState.ACTIVE
_R = TradingState.REDUCING
_F = TradingState.FROZEN
_H = TradingState.HALTED

# (state, action) -> next state. A pair that is missing is an illegal transition.
_NEXT: Final[Mapping[tuple[TradingState, RiskAction], TradingState]] = {
    (_A, RiskAction.FREEZE): _F,
    (_R, RiskAction.FREEZE): _F,
    (_F, RiskAction.FREEZE): _F,  # a second freeze restarts the cool-down
    (_H, RiskAction.FREEZE): _H,  # already stricter than frozen: recorded, nothing loosens
    (_F, RiskAction.UNFREEZE): _A,
    (_A, RiskAction.REDUCE): _R,
    (_R, RiskAction.RESUME): _A,
    (_A, RiskAction.KILL): _H,
    (_R, RiskAction.KILL): _H,
    (_F, RiskAction.KILL): _H,
    (_H, RiskAction.KILL): _H,
    (_H, RiskAction.RESET): _A,
}

# the `kind` column of the journal's risk table for each action
_KIND: Final[Mapping[RiskAction, str]] = {
    RiskAction.FREEZE: "freeze",
    RiskAction.UNFREEZE: "unfreeze",
    RiskAction.REDUCE: "reduce_only",
    RiskAction.RESUME: "resume",
    RiskAction.KILL: "kill",
    RiskAction.RESET: "resume",
}


class RiskError(Exception):
    """Base of the risk engine's errors."""


class InvalidRiskTransition(RiskError):
    """An action that the current trading state does not allow (caller's bug or operator error)."""

    def __init__(self, state: TradingState, action: RiskAction) -> None:
        allowed = sorted(a.value for (s, a) in _NEXT if s is state)
        super().__init__(
            f"cannot {action.value} while {state.value}; allowed from {state.value}: {allowed}"
        )
        self.state = state
        self.action = action


def next_state(state: TradingState, action: RiskAction) -> TradingState:
    try:
        return _NEXT[(state, action)]
    except KeyError:
        raise InvalidRiskTransition(state, action) from None


@dataclass(frozen=True, slots=True)
class Denied:
    """A place refused by a pre-trade check; `check` names the rule."""

    client_order_id: str
    check: str
    reason: str


@dataclass(frozen=True, slots=True)
class RiskEvent:
    """One row of the journal ``risk`` table (fields in column order).

    kind: block / freeze / unfreeze / reduce_only / resume / kill;
    state: the trading state after the event.
    """

    ts_ns: int
    symbol: str
    kind: str
    check: str
    reason: str
    state: str

    def row(self) -> tuple[int, str, str, str, str, str]:
        return (self.ts_ns, self.symbol, self.kind, self.check, self.reason, self.state)


@dataclass(frozen=True, slots=True)
class _Limits:
    """Per-symbol limits in engine units, computed once."""

    max_lots: int  # largest order qty in lots
    max_notional_tl: int  # largest order notional in ticks x lots (exact floor)
    max_inventory_tl: float  # largest |position notional| in ticks x lots
    usd_per_tick_lot: float


@dataclass(slots=True)
class _PendingEdge:
    """A fill whose edge completes at the first mid at or after `due_ns`."""

    due_ns: int
    side: int
    px: float
    mid: float
    fee_bps: float
    notional: float


def _floor_div(limit: Decimal, unit: Decimal) -> int:
    return math.floor(limit / unit)


class RiskEngine:
    """The trading state plus the checks and guards that move it.

    Hot methods (``check_new``, ``on_book``) use only plain attributes copied
    from the config at construction, so no pydantic access on the hot path.
    """

    def __init__(
        self,
        cfg: RiskConfig,
        instruments: Mapping[str, Instrument],
        maker_fee_bps: float,
        taker_fee_bps: float,
        *,
        min_edge_fills: int = 20,
        resume_inventory_fraction: float = 0.5,
    ) -> None:
        if not 0 < resume_inventory_fraction < 1:
            raise ValueError(
                f"resume_inventory_fraction must be in (0, 1), got {resume_inventory_fraction}"
            )
        self._limits = {s: self._symbol_limits(cfg, i) for s, i in instruments.items()}
        self._fee_bps = {Liquidity.MAKER: maker_fee_bps, Liquidity.TAKER: taker_fee_bps}
        self._max_notional = cfg.max_order_notional
        self._max_inventory = cfg.max_inventory_usd
        self._max_total_inventory = cfg.max_total_inventory_usd
        self._band = cfg.price_band_bps / 1e4
        self._band_bps = cfg.price_band_bps
        self._max_open = cfg.max_open_orders
        self._max_orders_per_s = cfg.max_orders_per_s
        self._max_cancels_per_s = cfg.max_cancels_per_s
        self._daily_loss = cfg.daily_loss_limit_usd
        self._max_drawdown = cfg.max_drawdown_usd
        self._stale_ns = cfg.stale_data_ms * NS_PER_MS
        self._reject_max = cfg.reject_rate_max
        self._edge_freeze_bps = cfg.edge_freeze_bps
        self._edge_horizon_ns = cfg.edge_horizon_ms * NS_PER_MS
        self._min_edge_fills = min(min_edge_fills, cfg.edge_window_fills)
        cooldown = cfg.freeze_cooldown_ms
        self._cooldown_ns = None if cooldown is None else cooldown * NS_PER_MS
        self._reduce_enter = cfg.reduce_only_inventory_ratio * cfg.max_inventory_usd
        self._reduce_exit = self._reduce_enter * resume_inventory_fraction

        self._state = TradingState.ACTIVE
        self._freezes = 0
        self._frozen_at_ns = 0
        # windows
        self._placed_ns: deque[int] = deque()
        self._cancels_ns: deque[int] = deque()
        self._cancel_block_until_ns = 0
        self._cancel_rate_breached = False
        self._results: deque[bool] = deque(maxlen=cfg.reject_window)
        self._rejects = 0
        self._edges: deque[tuple[float, float]] = deque(maxlen=cfg.edge_window_fills)
        self._pending: dict[str, deque[_PendingEdge]] = {}
        self._last_book_ns: dict[str, int] = {}
        # pnl guards
        self._peak_pnl: float | None = None
        self._day: int | None = None
        self._day_start_pnl = 0.0
        self._last_pnl = 0.0
        self._rebase_pnl = False
        self._last_inventory = 0.0
        self._queued: list[RiskEvent] = []

    @staticmethod
    def _symbol_limits(cfg: RiskConfig, inst: Instrument) -> _Limits:
        tick_lot = inst.tick_size * inst.lot_size
        # An int notional n exceeds a limit x exactly when n > floor(x): compare ints.
        max_notional = Decimal(repr(cfg.max_order_notional))
        max_inventory = Decimal(repr(cfg.max_inventory_usd))
        return _Limits(
            max_lots=_floor_div(cfg.max_order_qty, inst.lot_size),
            max_notional_tl=_floor_div(max_notional, tick_lot),
            max_inventory_tl=float(max_inventory / tick_lot),
            usd_per_tick_lot=float(tick_lot),
        )

    # --- state --------------------------------------------------------------------

    @property
    def state(self) -> TradingState:
        return self._state

    @property
    def freezes(self) -> int:
        """How many times the engine entered FROZEN."""
        return self._freezes

    def freeze(self, ts_ns: int, reason: str, *, check: str = "operator") -> list[RiskEvent]:
        return [self._transition(RiskAction.FREEZE, ts_ns, check, reason)]

    def unfreeze(self, ts_ns: int, reason: str, *, check: str = "operator") -> list[RiskEvent]:
        events = [self._transition(RiskAction.UNFREEZE, ts_ns, check, reason)]
        reduce = self._inventory_guard(ts_ns, self._last_inventory)
        if reduce is not None:
            events.append(reduce)
        return events

    def kill(self, ts_ns: int, reason: str, *, check: str = "operator") -> list[RiskEvent]:
        return [self._transition(RiskAction.KILL, ts_ns, check, reason)]

    def reset(self, ts_ns: int, reason: str) -> list[RiskEvent]:
        """Operator clears HALTED. The losses so far are accepted: the loss and
        drawdown guards measure again from the pnl at the next ``on_timer``."""
        event = self._transition(RiskAction.RESET, ts_ns, "operator_reset", reason)
        self._rebase_pnl = True
        return [event]

    def _transition(
        self, action: RiskAction, ts_ns: int, check: str, reason: str, symbol: str = ALL_SYMBOLS
    ) -> RiskEvent:
        before = self._state
        after = next_state(before, action)
        self._state = after
        if action is RiskAction.FREEZE and after is _F:
            self._frozen_at_ns = ts_ns
            if before is not _F:
                self._freezes += 1
        elif action is RiskAction.UNFREEZE:
            # judge the bot afresh: the fills and orders that caused the freeze are history
            self._edges.clear()
            self._results.clear()
            self._rejects = 0
        event = RiskEvent(ts_ns, symbol, _KIND[action], check, reason, after.value)
        log.warning(
            "risk_state_change",
            ts_ns=ts_ns,
            symbol=symbol,
            kind=event.kind,
            check=check,
            reason=reason,
            before=before.value,
            after=after.value,
        )
        return event

    # --- pre-trade ---------------------------------------------------------------------

    def check_new(
        self,
        place: Place,
        *,
        mid_px: float,
        position_lots: int,
        open_orders: int,
        total_inventory_usd: float,
    ) -> Denied | None:
        """First failing check as a Denied, or None (and the place counts toward the rate).

        Order: trading state, instrument, qty, notional, price band, symbol
        inventory, total inventory, open orders, cancel-rate throttle, order rate.
        ``mid_px`` is in ticks; ``total_inventory_usd`` is the sum of
        |position notional| over symbols, this one included.
        """
        state = self._state
        side = int(place.side)
        new_position = position_lots + side * place.qty
        increases = abs(new_position) >= abs(position_lots)
        if state is not _A:
            denied = self._state_denial(place, state, increases, position_lots)
            if denied is not None:
                return denied
        limits = self._limits.get(place.symbol)
        if limits is None:
            return Denied(place.client_order_id, "instrument", f"unknown symbol {place.symbol!r}")
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
        if increases:
            denied = self._inventory_denial(
                place, limits, mid_px, position_lots, new_position, total_inventory_usd
            )
            if denied is not None:
                return denied
        return self._flow_denial(place, open_orders)

    def _state_denial(
        self, place: Place, state: TradingState, increases: bool, position_lots: int
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

    def _inventory_denial(
        self,
        place: Place,
        limits: _Limits,
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

    def denial_event(self, denied: Denied, ts_ns: int, symbol: str) -> RiskEvent:
        """The journal row for a denial (kind "block")."""
        return RiskEvent(
            ts_ns,
            symbol,
            "block",
            denied.check,
            f"{denied.client_order_id}: {denied.reason}",
            self._state.value,
        )

    def check_cancel(self, ts_ns: int) -> None:
        """Record a cancel. Never blocks it; a cancel-rate breach throttles new places
        until the rate is back within the limit, and is reported by the next on_timer."""
        cancels = self._cancels_ns
        cancels.append(ts_ns)
        horizon = ts_ns - NS_PER_S
        while cancels[0] <= horizon:
            cancels.popleft()
        if len(cancels) > self._max_cancels_per_s:
            # the rate falls back to the limit when the oldest cancel in the window ages out
            self._cancel_block_until_ns = cancels[0] + NS_PER_S
            if not self._cancel_rate_breached:
                self._cancel_rate_breached = True
                self._queued.append(
                    RiskEvent(
                        ts_ns,
                        ALL_SYMBOLS,
                        "block",
                        "cancel_rate",
                        f"{len(cancels)} cancels in 1 s > max {self._max_cancels_per_s:g}/s; "
                        f"new orders throttled",
                        self._state.value,
                    )
                )
        elif ts_ns >= self._cancel_block_until_ns:
            self._cancel_rate_breached = False

    # --- runtime guards -----------------------------------------------------------------

    def on_book(self, ts_ns: int, mid_px: float, symbol: str | None = None) -> list[RiskEvent]:
        """A new mid (ticks). Feeds the stale-data guard and completes pending fill edges.

        With ``symbol`` None the mid applies to every symbol (single-symbol bots).
        """
        key = ALL_SYMBOLS if symbol is None else symbol
        self._last_book_ns[key] = ts_ns
        if not self._pending:
            return []
        completed = False
        if symbol is None:
            for queue in self._pending.values():
                completed |= self._complete(queue, ts_ns, mid_px)
        else:
            pending = self._pending.get(symbol)
            if pending is not None:
                completed = self._complete(pending, ts_ns, mid_px)
        return self._edge_guard(ts_ns) if completed else []

    def _complete(self, queue: deque[_PendingEdge], ts_ns: int, mid_h: float) -> bool:
        completed = False
        while queue and queue[0].due_ns <= ts_ns:
            p = queue.popleft()
            # net = gross - fee - adverse = side * (mid_H - px) / mid * 1e4 - fee
            net_bps = p.side * (mid_h - p.px) / p.mid * 1e4 - p.fee_bps
            self._edges.append((net_bps, p.notional))
            completed = True
        return completed

    def rolling_edge_bps(self) -> tuple[float, int]:
        """Notional-weighted net edge over the completed fills in the window, and their count."""
        edges = self._edges
        weight = math.fsum(n for _, n in edges)
        if weight <= 0:
            return 0.0, len(edges)
        return math.fsum(e * n for e, n in edges) / weight, len(edges)

    def _edge_guard(self, ts_ns: int) -> list[RiskEvent]:
        if self._state is not _A and self._state is not _R:
            return []
        edge, count = self.rolling_edge_bps()
        if count < self._min_edge_fills or edge >= self._edge_freeze_bps:
            return []
        reason = (
            f"net edge {edge:.2f} bps over the last {count} fills < {self._edge_freeze_bps:g} bps"
        )
        return [self._transition(RiskAction.FREEZE, ts_ns, "edge", reason)]

    def on_fill(self, fill: OrderFill, mid_px: float) -> list[RiskEvent]:
        """Start the edge measurement of a fill; it completes at the first mid at or
        after fill time + edge_horizon_ms (``on_book``), so this returns no events."""
        if mid_px <= 0:
            raise RiskError(f"mid {mid_px} at fill {fill.trade_id} on {fill.symbol} must be > 0")
        limits = self._limits.get(fill.symbol)
        if limits is None:
            raise RiskError(
                f"fill {fill.trade_id} on unknown symbol {fill.symbol!r}; "
                f"risk limits exist for {sorted(self._limits)}"
            )
        pending = _PendingEdge(
            due_ns=fill.ts_ns + self._edge_horizon_ns,
            side=int(fill.side),
            px=float(fill.px),
            mid=mid_px,
            fee_bps=self._fee_bps[fill.liquidity],
            notional=fill.px * fill.qty * limits.usd_per_tick_lot,
        )
        self._pending.setdefault(fill.symbol, deque()).append(pending)
        return []

    def on_order_result(self, ts_ns: int, rejected: bool) -> list[RiskEvent]:
        """An order was acknowledged (False) or rejected (True) by the venue."""
        results = self._results
        if len(results) == results.maxlen and results[0]:
            self._rejects -= 1
        results.append(rejected)
        self._rejects += rejected
        if len(results) < (results.maxlen or 0):
            return []
        rate = self._rejects / len(results)
        if rate <= self._reject_max or (self._state is not _A and self._state is not _R):
            return []
        reason = (
            f"reject rate {rate:.2f} over the last {len(results)} orders > max {self._reject_max:g}"
        )
        return [self._transition(RiskAction.FREEZE, ts_ns, "reject_rate", reason)]

    def on_timer(self, ts_ns: int, pnl_usd: float, inventory_usd: float) -> list[RiskEvent]:
        """Periodic guards. ``pnl_usd`` is the bot's total PnL since start (after fees);
        ``inventory_usd`` the largest |position notional| of any symbol."""
        events = self._queued
        self._queued = []
        cooldown = self._cooldown_ns
        if self._state is _F and cooldown is not None and ts_ns >= self._frozen_at_ns + cooldown:
            reason = f"cool-down of {cooldown // NS_PER_MS} ms over"
            events.append(self._transition(RiskAction.UNFREEZE, ts_ns, "cooldown", reason))
        # each guard answers one event or None (no list per guard: this runs every timer)
        for event in (
            self._pnl_guards(ts_ns, pnl_usd),
            self._stale_guard(ts_ns),
            self._inventory_guard(ts_ns, inventory_usd),
        ):
            if event is not None:
                events.append(event)
        return events

    def _pnl_guards(self, ts_ns: int, pnl: float) -> RiskEvent | None:
        day = ts_ns // NS_PER_DAY
        if self._peak_pnl is None or self._rebase_pnl:
            self._peak_pnl = pnl
            self._day_start_pnl = pnl
            self._day = day
            self._rebase_pnl = False
        if day != self._day:
            # the last pnl seen before midnight UTC is the new day's starting point
            self._day = day
            self._day_start_pnl = self._last_pnl
        self._last_pnl = pnl
        self._peak_pnl = max(self._peak_pnl, pnl)
        if self._state is _H:
            return None
        daily = pnl - self._day_start_pnl
        if daily < -self._daily_loss:
            reason = f"daily pnl {daily:.2f} USD < -{self._daily_loss:.2f} limit"
            return self._transition(RiskAction.KILL, ts_ns, "daily_loss", reason)
        drawdown = self._peak_pnl - pnl
        if drawdown > self._max_drawdown:
            reason = (
                f"drawdown {drawdown:.2f} USD from peak {self._peak_pnl:.2f} "
                f"> max {self._max_drawdown:.2f}"
            )
            return self._transition(RiskAction.KILL, ts_ns, "drawdown", reason)
        return None

    def _stale_guard(self, ts_ns: int) -> RiskEvent | None:
        # armed per symbol by its first book: before that there is no mid to quote on
        if self._state is not _A and self._state is not _R:
            return None
        for symbol, last in self._last_book_ns.items():
            age = ts_ns - last
            if age >= self._stale_ns:
                reason = (
                    f"no book for {symbol} since {age // NS_PER_MS} ms "
                    f">= {self._stale_ns // NS_PER_MS} ms"
                )
                return self._transition(RiskAction.FREEZE, ts_ns, "stale_data", reason)
        return None

    def _inventory_guard(self, ts_ns: int, inventory_usd: float) -> RiskEvent | None:
        inventory = abs(inventory_usd)
        self._last_inventory = inventory
        if self._state is _A and inventory > self._reduce_enter:
            reason = (
                f"inventory {inventory:.2f} USD > {self._reduce_enter:.2f} "
                f"(ratio x max_inventory_usd)"
            )
            return self._transition(RiskAction.REDUCE, ts_ns, "inventory", reason)
        if self._state is _R and inventory <= self._reduce_exit:
            reason = f"inventory {inventory:.2f} USD <= {self._reduce_exit:.2f}"
            return self._transition(RiskAction.RESUME, ts_ns, "inventory", reason)
        return None
