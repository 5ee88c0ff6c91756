"""The risk engine: pre-trade checks and runtime guards around one trading state.

Modelled on NautilusTrader's risk engine (STYLE.md §1): a gate between strategy
and venue with a trading state. Its parts each have one job:

- bot/trading_state.py: the state (ACTIVE / REDUCING / FROZEN / HALTED) and
  its transition table; every change is a ``RiskEvent``;
- bot/pretrade.py: the checks every new order passes, first failure a ``Denied``;
- bot/guards.py: the runtime guards (edge, reject rate, pnl, stale data,
  inventory), each answering with a ``Breach``.

This class wires them: it feeds the guards, applies their breaches to the
state table, and keeps the two rules that span parts: an unfreeze judges the
bot afresh (the guards' windows are cleared) and goes straight to REDUCING if
the inventory is still high. Time is always the ``ts_ns`` handed in.

Journaling: every state change is returned as ``RiskEvent`` values from the
method that caused it; the engine appends ``event.row()`` to the ``risk``
table. ``check_new`` returns only the ``Denied``; the engine turns it into a
journal row with ``denial_event(denied, ts_ns, symbol)``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final

from bot.config import RiskConfig
from bot.guards import (
    Breach,
    EdgeGuard,
    InventoryGuard,
    PnlGuards,
    RejectRateGuard,
    StaleDataGuard,
)
from bot.model import Instrument, OrderFill, Place
from bot.pretrade import Denied, PreTradeChecks
from bot.trading_state import (
    ALL_SYMBOLS,
    RiskAction,
    RiskError,
    RiskEvent,
    TradingState,
    TradingStateTable,
)

NS_PER_MS: Final = 1_000_000
NS_PER_DAY: Final = 86_400 * 1_000_000_000
_A: Final = TradingState.ACTIVE
_R: Final = TradingState.REDUCING
_F: Final = TradingState.FROZEN
_H: Final = TradingState.HALTED


class RiskEngine:
    """The trading state plus the checks and guards that move it.

    Hot methods (``check_new``, ``on_book``) use only plain attributes copied
    from the config at construction, so no pydantic access on the hot path.
    """

    def __init__(
        self,
        cfg: RiskConfig,
        instruments: Mapping[str, Instrument],
        *,
        min_edge_fills: int = 20,
        resume_inventory_fraction: float = 0.5,
    ) -> None:
        if not 0 < resume_inventory_fraction < 1:
            raise ValueError(
                f"resume_inventory_fraction must be in (0, 1), got {resume_inventory_fraction}"
            )
        self._table = TradingStateTable()
        self._pretrade = PreTradeChecks(cfg, instruments)
        self._edge = EdgeGuard(
            cfg.edge_freeze_bps, cfg.edge_horizon_ms, cfg.edge_window_fills, min_edge_fills
        )
        self._rejects = RejectRateGuard(cfg.reject_rate_max, cfg.reject_window)
        self._pnl = PnlGuards(cfg.daily_loss_limit_usd, cfg.max_drawdown_usd)
        self._stale = StaleDataGuard(cfg.stale_data_ms)
        self._last_book_ns = self._stale.last_book_ns
        reduce_enter = cfg.reduce_only_inventory_ratio * cfg.max_inventory_usd
        self._inventory = InventoryGuard(reduce_enter, reduce_enter * resume_inventory_fraction)
        cooldown = cfg.freeze_cooldown_ms
        self._cooldown_ns = None if cooldown is None else cooldown * NS_PER_MS
        self._stale_ns = cfg.stale_data_ms * NS_PER_MS
        self._queued: list[RiskEvent] = []
        self._held = False  # the freeze in force waits for an unfreeze (no cool-down)
        # A timer whose (pnl, inventory, state) equal those of the last quiet timer
        # (one that produced no event), before `_quiet_until` (the next UTC midnight
        # or the earliest time a book could be stale), gets the same answer: none.
        self._quiet: tuple[float, float, TradingState] | None = None
        self._quiet_until = 0

    # --- state --------------------------------------------------------------------

    @property
    def state(self) -> TradingState:
        return self._table.state

    def rolling_edge_bps(self) -> tuple[float, int]:
        return self._edge.rolling_edge_bps()

    @property
    def freezes(self) -> int:
        """How many times the engine entered FROZEN."""
        return self._table.freezes

    def freeze(
        self, ts_ns: int, reason: str, *, check: str = "operator", hold: bool = False
    ) -> list[RiskEvent]:
        """`hold`: until an unfreeze, whatever the cool-down (operator, lost lease)."""
        event = self._table.apply(RiskAction.FREEZE, ts_ns, check, reason)
        if self._table.state is _F:
            self._held = self._held or hold
        return [event]

    def unfreeze(self, ts_ns: int, reason: str, *, check: str = "operator") -> list[RiskEvent]:
        events = [self._unfreeze(ts_ns, check, reason)]
        reduce = self._inventory_guard(ts_ns, self._inventory.last_usd)
        if reduce is not None:
            events.append(reduce)
        return events

    def kill(self, ts_ns: int, reason: str, *, check: str = "operator") -> list[RiskEvent]:
        return [self._table.apply(RiskAction.KILL, ts_ns, check, reason)]

    def unhalt(self, ts_ns: int, reason: str, *, check: str = "operator") -> list[RiskEvent]:
        """HALTED -> ACTIVE, judged afresh as after an unfreeze (the loss guards still
        see the PnL: a loss limit still breached halts again at the next timer)."""
        event = self._table.apply(RiskAction.UNHALT, ts_ns, check, reason)
        self._held = False
        self._edge.clear()
        self._rejects.clear()
        events = [event]
        reduce = self._inventory_guard(ts_ns, self._inventory.last_usd)
        if reduce is not None:
            events.append(reduce)
        return events

    def _unfreeze(self, ts_ns: int, check: str, reason: str) -> RiskEvent:
        event = self._table.apply(RiskAction.UNFREEZE, ts_ns, check, reason)
        self._held = False
        # judge the bot afresh: the fills and orders that caused the freeze are history
        self._edge.clear()
        self._rejects.clear()
        return event

    def _breach(self, ts_ns: int, breach: Breach) -> RiskEvent:
        return self._table.apply(breach.action, ts_ns, breach.check, breach.reason)

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
        """First failing pre-trade check as a Denied, or None (bot/pretrade.py)."""
        return self._pretrade.check_new(
            place,
            self._table.state,
            mid_px=mid_px,
            position_lots=position_lots,
            open_orders=open_orders,
            total_inventory_usd=total_inventory_usd,
        )

    def denial_event(self, denied: Denied, ts_ns: int, symbol: str) -> RiskEvent:
        """The journal row for a denial (kind "block")."""
        return RiskEvent(
            ts_ns,
            symbol,
            "block",
            denied.check,
            f"{denied.client_order_id}: {denied.reason}",
            self._table.state.value,
        )

    def check_cancel(self, ts_ns: int) -> None:
        """Record a cancel. Never blocks it; a cancel-rate breach throttles new places
        until the rate is back within the limit, and is reported by the next on_timer."""
        reason = self._pretrade.record_cancel(ts_ns)
        if reason is not None:
            state = self._table.state.value
            event = RiskEvent(ts_ns, ALL_SYMBOLS, "block", "cancel_rate", reason, state)
            self._queued.append(event)

    # --- runtime guards -----------------------------------------------------------------

    def on_book(self, ts_ns: int, mid_px: float, symbol: str | None = None) -> list[RiskEvent]:
        """A new mid (ticks). Feeds the stale-data guard and completes pending fill edges.

        With ``symbol`` None the mid applies to every symbol (single-symbol bots).
        """
        key = ALL_SYMBOLS if symbol is None else symbol
        last = self._last_book_ns
        previous = last.get(key)
        if previous is None or ts_ns < previous:
            # a new symbol arms its stale deadline, a book from the past moves it earlier
            self._quiet_until = 0
        last[key] = ts_ns
        if not self._edge.on_mid(ts_ns, mid_px, symbol) or not self._table.trading:
            return []
        breach = self._edge.verdict()
        return [] if breach is None else [self._breach(ts_ns, breach)]

    def on_fill(self, fill: OrderFill, mid_px: float) -> list[RiskEvent]:
        """Start the edge measurement of a fill; it completes at the first mid at or
        after fill time + edge_horizon_ms (``on_book``), so this returns no events."""
        if mid_px <= 0:
            raise RiskError(f"mid {mid_px} at fill {fill.trade_id} on {fill.symbol} must be > 0")
        limits = self._pretrade.limits.get(fill.symbol)
        if limits is None:
            raise RiskError(
                f"fill {fill.trade_id} on unknown symbol {fill.symbol!r}; "
                f"risk limits exist for {sorted(self._pretrade.limits)}"
            )
        notional = fill.px * fill.qty * limits.usd_per_tick_lot
        self._edge.on_fill(
            fill.symbol, fill.ts_ns, int(fill.side), fill.px, float(fill.fee), notional, mid_px
        )
        return []

    def on_order_result(self, ts_ns: int, rejected: bool) -> list[RiskEvent]:
        """An order was acknowledged (False) or rejected (True) by the venue."""
        breach = self._rejects.on_result(rejected)
        if breach is None or not self._table.trading:
            return []
        return [self._breach(ts_ns, breach)]

    def on_timer(self, ts_ns: int, pnl_usd: float, inventory_usd: float) -> list[RiskEvent]:
        """Periodic guards. ``pnl_usd`` is the bot's total PnL since start (after fees);
        ``inventory_usd`` the largest |position notional| of any symbol."""
        if (
            ts_ns < self._quiet_until
            and not self._queued
            and self._quiet == (pnl_usd, inventory_usd, self._table.state)
        ):
            return []
        events = self._guards(ts_ns, pnl_usd, inventory_usd)
        state = self._table.state
        if events or state is _F:
            self._quiet_until = 0  # (frozen: the cool-down is a deadline of its own)
        else:
            self._quiet = (pnl_usd, inventory_usd, state)
            self._quiet_until = self._quiet_deadline(ts_ns)
        return events

    def _quiet_deadline(self, ts_ns: int) -> int:
        """The next UTC midnight, or earlier the first time a book may turn stale."""
        deadline = (ts_ns // NS_PER_DAY + 1) * NS_PER_DAY
        if self._table.trading and self._last_book_ns:
            deadline = min(deadline, min(self._last_book_ns.values()) + self._stale_ns)
        return deadline

    def _guards(self, ts_ns: int, pnl_usd: float, inventory_usd: float) -> list[RiskEvent]:
        events = self._queued
        self._queued = []
        table = self._table
        cooldown = self._cooldown_ns
        if (
            table.state is _F
            and cooldown is not None
            and not self._held
            and ts_ns >= table.frozen_at_ns + cooldown
        ):
            reason = f"cool-down of {cooldown // NS_PER_MS} ms over"
            events.append(self._unfreeze(ts_ns, "cooldown", reason))
        breach = self._pnl.on_pnl(ts_ns, pnl_usd, table.state is _H)
        if breach is not None:
            events.append(self._breach(ts_ns, breach))
        if table.trading:
            breach = self._stale.check(ts_ns)
            if breach is not None:
                events.append(self._breach(ts_ns, breach))
        reduce = self._inventory_guard(ts_ns, inventory_usd)
        if reduce is not None:
            events.append(reduce)
        return events

    def _inventory_guard(self, ts_ns: int, inventory_usd: float) -> RiskEvent | None:
        state = self._table.state
        breach = self._inventory.check(inventory_usd, state is _A, state is _R)
        return None if breach is None else self._breach(ts_ns, breach)
