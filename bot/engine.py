"""The sans-IO core: `Engine.on_event(event) -> list[Command]`.

Synchronous, no I/O, no clock: time is `event.ts_ns`. The strategy, the order
state machine, the portfolio and the risk engine all live inside; the shells
(sim loop, live loop) decide where the commands go, so the engine behaves the
same in every mode. Only canary mode differs, and only in order size.

Errors say who is at fault (h11, STYLE.md §2): `IllegalCommand` is our own
bug and propagates; `VenueProtocolError` is the venue sending the impossible
(a fill beyond the order's size, a transition the table refuses) and halts
the bot for good: risk kill, CancelAll, no quoting until the process restarts.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from decimal import Decimal
from typing import Any, Final

import structlog

from bot.config import Settings, instruments
from bot.journal import Recorder
from bot.model import (
    BookUpdate,
    CancelAck,
    CancelAll,
    CancelReject,
    Command,
    Event,
    Freeze,
    FreezeRequest,
    Instrument,
    Liquidity,
    Mode,
    OrderAck,
    OrderExpired,
    OrderFill,
    OrderReject,
    Place,
    Side,
    Timer,
    Trade,
    UnhaltRequest,
    VenueReport,
)
from bot.order_registry import OrderRegistry, UnknownOrder
from bot.orders import ClientOrderIds, Order, OrderError
from bot.portfolio import Portfolio, PortfolioError
from bot.requoter import CrossSymbol, Requoter
from bot.risk import RiskEngine
from bot.strategy import QuotePolicy
from bot.trading_state import ALL_SYMBOLS, RiskEvent, TradingState

log = structlog.get_logger(__name__)

NS_PER_MS: Final = 1_000_000
_FROZEN: Final = TradingState.FROZEN
_HALTED: Final = TradingState.HALTED


class EngineError(Exception):
    """Base of the engine's errors."""


class IllegalCommand(EngineError):
    """The engine broke one of its own rules: a bug, fail loudly."""


class VenueProtocolError(EngineError):
    """The venue sent the impossible; the engine halts and cancels everything."""


class UnknownSymbol(EngineError, KeyError):
    def __init__(self, symbol: str, known: list[str]) -> None:
        super().__init__(f"event for unknown symbol {symbol!r}; configured symbols: {known}")

    def __str__(self) -> str:
        return str(self.args[0])


class _Market:
    """What the engine keeps of one symbol besides its requoter: marks and sampling."""

    __slots__ = (
        "entry_px", "instrument", "last_fill_px", "next_book_ns", "next_position_ns", "quoter",
    )  # fmt: skip

    def __init__(self, instrument: Instrument, quoter: Requoter) -> None:
        self.instrument = instrument
        self.quoter = quoter
        self.last_fill_px = 0
        self.entry_px = 0  # of the position the run opened with
        self.next_book_ns = 0
        self.next_position_ns = 0

    def mark(self) -> Decimal | None:
        """The price to value the position at: the mid, else the last fill, else the
        opening's entry price (a live restart before its first book), else None."""
        tick = self.instrument.tick_size
        q = self.quoter
        if q.mid_px > 0:
            return (q.bid_px + q.ask_px) * tick / 2
        if self.last_fill_px:
            return self.last_fill_px * tick
        if self.entry_px:
            return self.entry_px * tick
        return None


class _Stats:
    """Counters behind `Engine.summary()` (the requoters count places, cancels, blocks)."""

    __slots__ = (
        "cancels",
        "duplicate_reports",
        "fills",
        "maker_fills",
        "maker_notional",
        "market_trades",
        "notional",
        "rejects",
        "skipped_books",
        "unknown_reports",
    )

    def __init__(self) -> None:
        self.fills = 0
        self.maker_fills = 0
        self.notional = 0.0  # USD
        self.maker_notional = 0.0
        self.cancels = 0  # by a stop (freeze, halt); the requoters count their own
        self.rejects = 0
        self.duplicate_reports = 0
        self.unknown_reports = 0
        self.market_trades = 0
        self.skipped_books = 0


class Engine:
    """Market-making engine: events in, commands out.

    Its parts, each with one job: the per-symbol requoters (bot/requoter.py), the
    order registry (bot/order_registry.py), the portfolio, and the risk engine
    with its trading-state table, pre-trade checks and runtime guards (bot/risk.py).
    The engine routes events to them and acts on changes of the trading state.
    """

    def __init__(self, settings: Settings, recorder: Recorder, *, id_prefix: str) -> None:
        self.mode = Mode(settings.mode)
        fees = settings.fees
        if fees.tier not in fees.tiers:
            raise EngineError(f"fees.tier {fees.tier!r} is not one of {sorted(fees.tiers)}")
        tier = fees.tiers[fees.tier]
        fraction = settings.canary.fraction if self.mode is Mode.CANARY else 1.0
        if not 0 < fraction <= 1:
            raise EngineError(f"canary.fraction must be in (0, 1], got {fraction}")
        insts = instruments(settings)
        cfg = settings.strategy
        max_inventory = settings.risk.max_inventory_usd
        self._portfolio = Portfolio(insts)
        self._risk = RiskEngine(settings.risk, insts)
        self._state = self._risk.state
        self._orders = OrderRegistry(insts)
        self._rec: Callable[..., None] = recorder.append
        requoters: dict[str, Requoter] = {}
        cross = CrossSymbol(self._portfolio.position_lots, self._orders, requoters)
        ids = ClientOrderIds(id_prefix)
        for symbol, inst in insts.items():
            policy = QuotePolicy(cfg, inst, tier.maker_bps, max_inventory, size_fraction=fraction)
            requoters[symbol] = Requoter(
                inst, policy, registry=self._orders, risk=self._risk, ids=ids,
                record=self._rec, cross=cross, post_only=cfg.post_only,
            )  # fmt: skip
        self._markets = {s: _Market(insts[s], q) for s, q in requoters.items()}
        self._book_every_ns = settings.telemetry.book_sample_ms * NS_PER_MS
        self._position_every_ns = settings.telemetry.position_sample_ms * NS_PER_MS
        self._fault: str | None = None
        self._stats = _Stats()
        self._book_seq = 0  # touches seen, all symbols
        self._pnl_fills = -1  # fills and touches when _pnl_value was computed
        self._pnl_book_seq = -1
        self._pnl_flat = False
        self._pnl_value = (0.0, 0.0)
        self._handlers: dict[type, Callable[[Any], list[Command]]] = {
            BookUpdate: self._on_book,
            Trade: self._on_trade,
            OrderAck: self._on_ack,
            OrderReject: self._on_reject,
            OrderFill: self._on_fill,
            CancelAck: self._on_order_done,
            CancelReject: self._on_cancel_reject,
            OrderExpired: self._on_order_done,
            Timer: self._on_timer,
            FreezeRequest: self._on_freeze_request,
            UnhaltRequest: self._on_unhalt_request,
        }

    # --- read-only views ---------------------------------------------------------------

    @property
    def portfolio(self) -> Portfolio:
        return self._portfolio

    @property
    def risk(self) -> RiskEngine:
        return self._risk

    def progress_figures(self) -> tuple[int, float]:
        """(fills, marked PnL USD) so far, for a progress display: reads, changes nothing."""
        return self._stats.fills, self._marked_pnl_and_inventory()[0]

    def exposure(self) -> dict[str, float]:
        """Signed position notional (USD) per symbol at its mark, for metrics: reads,
        changes nothing; a symbol with no mark yet is left out."""
        out: dict[str, float] = {}
        for symbol, m in self._markets.items():
            mark = m.mark()
            if mark is not None:
                out[symbol] = float(self._portfolio.inventory_usd(symbol, mark))
        return out

    def rolling_net_edge_bps(self) -> tuple[float, int]:
        """The edge guard's rolling net edge over its window of fills, and their count."""
        return self._risk.rolling_edge_bps()

    def summary(self) -> dict[str, Any]:
        s = self._stats
        marks = {s: mark for s, m in self._markets.items() if (mark := m.mark()) is not None}
        pnl = float(self._portfolio.total_pnl(marks))
        quoters = [m.quoter for m in self._markets.values()]
        return {
            "mode": self.mode.value,
            "state": self._risk.state.value,
            "fault": self._fault,
            "fills": s.fills,
            "maker_fills": s.maker_fills,
            # undefined without a fill: None, never a made-up 0
            "maker_share": s.maker_notional / s.notional if s.notional else None,
            "turnover_usd": s.notional,
            "pnl_usd": pnl,
            "realized_pnl_usd": float(self._portfolio.realized_pnl()),
            "fees_usd": float(self._portfolio.fees()),
            # PnL per turnover: not the KPI net_bps of DESIGN §6 (`mmbot kpi` computes that)
            "pnl_per_turnover_bps": pnl / s.notional * 1e4 if s.notional else None,
            "places": sum(q.places for q in quoters),
            "cancels": s.cancels + sum(q.cancels for q in quoters),
            "rejects": s.rejects,
            "blocks": sum(q.blocks for q in quoters),
            "freezes": self._risk.freezes,
            "open_orders": self._orders.open_count(),
            "duplicate_reports": s.duplicate_reports,
            "unknown_reports": s.unknown_reports,
            "market_trades": s.market_trades,
            "skipped_books": s.skipped_books,
        }

    def open_positions(self, openings: Mapping[str, tuple[int, int]]) -> None:
        """Before the first event: positions held when the run starts, symbol ->
        (lots, entry price in ticks); the quotes skew and the risk limits count them."""
        for symbol, (lots, px) in openings.items():
            self._market(symbol).entry_px = px
            self._portfolio.open_position(symbol, lots, px)

    def adopt(self, ts: int, symbol: str, client_order_id: str, side: Side, px: int,
              qty: int, venue_order_id: str, reason: str) -> None:  # fmt: skip
        """Before the first event: an order resting at the venue (a previous run's, `qty`
        lots left) becomes one of this run's working orders; its requoter keeps or
        cancels it as it would its own. Journaled as its ack, with `reason`."""
        q = self._market(symbol).quoter
        order = Order(Place(ts, symbol, client_order_id, side, px, qty))
        order.apply(OrderAck(ts, symbol, client_order_id, venue_order_id))
        self._orders.add(order)
        q.orders_changed()
        q.order_row(ts, order, "ack", reason)

    # --- the one entry point ----------------------------------------------------------

    def on_event(self, event: Event) -> list[Command]:
        handler = self._handlers.get(type(event))
        if handler is None:
            raise IllegalCommand(f"the engine does not handle {type(event).__name__} events")
        try:
            return handler(event)
        except VenueProtocolError as exc:
            return self._halt(event.ts_ns, str(exc))

    def retune(self, make_policy: Callable[[Instrument], QuotePolicy]) -> None:
        """New quote policies between two segments of a run (a soak's tuning): each
        symbol's policy is rebuilt by `make_policy`, keeping its volatility estimate and
        requote throttle, so that retuning does not reset what the market taught it."""
        for market in self._markets.values():
            old = market.quoter.policy
            new = make_policy(market.instrument)
            new.vol = old.vol
            new.last_requote_ns = old.last_requote_ns
            market.quoter.policy = new

    # --- market data -------------------------------------------------------------------

    def _market(self, symbol: str) -> _Market:
        market = self._markets.get(symbol)
        if market is None:
            raise UnknownSymbol(symbol, sorted(self._markets))
        return market

    def _on_book(self, ev: BookUpdate) -> list[Command]:
        q = self._market(ev.symbol).quoter
        bid, ask = ev.bid_px, ev.ask_px
        if bid <= 0 or ask <= bid:
            # A crossed or one-sided touch is bad data: keep what rests, quote nothing
            # new on it; if it persists the stale-data guard freezes the bot.
            self._stats.skipped_books += 1
            return []
        ts = ev.ts_ns
        if bid != q.bid_px or ask != q.ask_px:
            mid = (bid + ask) * 0.5
            q.mid_px = mid
            q.policy.observe_mid(ts, mid)
        elif ev.bid_qty == q.bid_qty and ev.ask_qty == q.ask_qty:
            commands = self._risk_events(ts, self._risk.on_book(ts, q.mid_px, q.symbol))
            if q.requote_due:
                commands.extend(q.cycle(ts, self._state))
            return commands
        q.bid_px, q.bid_qty, q.ask_px, q.ask_qty = bid, ev.bid_qty, ask, ev.ask_qty
        q.book_seq += 1
        self._book_seq += 1
        events = self._risk.on_book(ts, q.mid_px, q.symbol)
        if not events:
            return q.cycle(ts, self._state)
        commands = self._risk_events(ts, events)
        commands.extend(q.cycle(ts, self._state))
        return commands

    def _on_trade(self, ev: Trade) -> list[Command]:
        # Market trades do not feed the volatility estimate: their prices bounce
        # between bid and ask and would inflate it. Fills are inferred from trades
        # by the venue (sim or shadow), not here.
        self._market(ev.symbol)
        self._stats.market_trades += 1
        return []

    # --- venue reports ---------------------------------------------------------------

    def _unknown_row(self, ev: VenueReport, event: str, reason: str) -> None:
        self._stats.unknown_reports += 1
        self._rec("orders", ev.ts_ns, ev.symbol, ev.client_order_id, event, 0, 0.0, 0.0,
                  "UNKNOWN", 0, 0, reason)  # fmt: skip

    def _apply(self, ev: VenueReport, event: str) -> tuple[Requoter, Order] | None:
        """Apply a report to its order; None when it changed nothing (unknown, duplicate)."""
        try:
            order = self._orders.apply(ev)
        except UnknownOrder:
            self._unknown_row(ev, event, f"{event} for an unknown order")
            return None
        except OrderError as exc:
            raise VenueProtocolError(f"{ev.symbol}: {exc}") from exc
        if order is None:
            self._stats.duplicate_reports += 1
            return None
        q = self._markets[ev.symbol].quoter
        q.orders_changed()
        return q, order

    def _on_ack(self, ev: OrderAck) -> list[Command]:
        found = self._apply(ev, "ack")
        if found is None:
            return []
        q, order = found
        q.order_row(ev.ts_ns, order, "ack")
        return self._risk_events(ev.ts_ns, self._risk.on_order_result(ev.ts_ns, False))

    def _on_reject(self, ev: OrderReject) -> list[Command]:
        found = self._apply(ev, "reject")
        if found is None:
            return []
        q, order = found
        self._stats.rejects += 1
        q.order_row(ev.ts_ns, order, "reject", ev.reason)
        commands = self._risk_events(ev.ts_ns, self._risk.on_order_result(ev.ts_ns, True))
        commands.extend(q.cycle(ev.ts_ns, self._state))
        return commands

    def _on_order_done(self, ev: CancelAck | OrderExpired) -> list[Command]:
        event = "cancel_ack" if isinstance(ev, CancelAck) else "expired"
        found = self._apply(ev, event)
        if found is None:
            return []
        q, order = found
        q.order_row(ev.ts_ns, order, event)
        return q.cycle(ev.ts_ns, self._state)

    def _on_cancel_reject(self, ev: CancelReject) -> list[Command]:
        found = self._apply(ev, "cancel_reject")
        if found is None:
            return []
        q, order = found
        q.order_row(ev.ts_ns, order, "cancel_reject", ev.reason)
        return q.cycle(ev.ts_ns, self._state)

    def _on_fill(self, ev: OrderFill) -> list[Command]:
        found = self._apply(ev, "fill")
        if found is None:
            return []
        q, order = found
        try:
            booked = self._portfolio.apply_fill(ev)
        except PortfolioError as exc:
            raise VenueProtocolError(f"{ev.symbol}: fill {ev.trade_id}: {exc}") from exc
        if not booked:
            self._stats.duplicate_reports += 1
            return []
        ts = ev.ts_ns
        self._markets[ev.symbol].last_fill_px = ev.px
        mid_px = q.mid_px if q.mid_px > 0 else float(ev.px)
        self._count_fill(q, ev)
        self._fill_rows(q, order, ev, mid_px)
        commands = self._risk_events(ts, self._risk.on_fill(ev, mid_px))
        commands.extend(q.cycle(ts, self._state))  # the position moved: skew and the filled side
        return commands

    def _fill_rows(self, q: Requoter, order: Order, ev: OrderFill, mid_px: float) -> None:
        """The fill's rows in the fills and orders tables."""
        ts = ev.ts_ns
        px_div = q.px_div
        # the row is the match: the venue's time and mid when it says, not our later view
        match_ts = ev.match_ts_ns if ev.match_ts_ns >= 0 else ts
        match_mid = ev.match_mid_px if ev.match_mid_px > 0 else mid_px
        self._rec(
            "fills", match_ts, ev.symbol, ev.client_order_id, ev.trade_id, int(ev.side),
            ev.px / px_div, ev.qty / q.qty_div, ev.px, ev.qty, ev.liquidity.value,
            float(ev.fee), ev.fee, match_mid / px_div,
        )  # fmt: skip
        self._rec(
            "orders", ts, ev.symbol, ev.client_order_id, "fill", int(ev.side),
            ev.px / px_div, ev.qty / q.qty_div, order.status._value_,
            order.ts_sent_ns, order.ts_ack_ns, ev.trade_id,
        )  # fmt: skip

    def _count_fill(self, q: Requoter, ev: OrderFill) -> None:
        s = self._stats
        notional = ev.px * ev.qty * q.usd_per_tick_lot
        s.fills += 1
        s.notional += notional
        if ev.liquidity is Liquidity.MAKER:
            s.maker_fills += 1
            s.maker_notional += notional

    # --- timers, guards and the trading state -----------------------------------------

    def _on_timer(self, ev: Timer) -> list[Command]:
        ts = ev.ts_ns
        pnl, inventory = self._pnl_and_inventory()
        commands = self._risk_events(ts, self._risk.on_timer(ts, pnl, inventory))
        state = self._state
        for m in self._markets.values():
            self._sample(m, ts)
            commands.extend(m.quoter.cycle(ts, state))  # max quote age and throttled re-quotes
        return commands

    def _pnl_and_inventory(self) -> tuple[float, float]:
        # Decimal marks on every timer are costly; the figures change only with a
        # booked fill (every portfolio change is one; it also sets last_fill_px) or,
        # when some position is open, with a touch (mids change only with _book_seq).
        fills = self._stats.fills
        if fills == self._pnl_fills and (self._pnl_flat or self._book_seq == self._pnl_book_seq):
            return self._pnl_value
        self._pnl_fills = fills
        self._pnl_book_seq = self._book_seq
        # flat everywhere: pnl is cash minus fees and inventory is 0, whatever the marks
        self._pnl_flat = not any(self._portfolio.position_lots(s) for s in self._markets)
        self._pnl_value = self._marked_pnl_and_inventory()
        return self._pnl_value

    def _marked_pnl_and_inventory(self) -> tuple[float, float]:
        marks: dict[str, Decimal] = {}
        largest = Decimal(0)
        for symbol, m in self._markets.items():
            mark = m.mark()
            if mark is None:
                continue
            marks[symbol] = mark
            largest = max(largest, abs(self._portfolio.inventory_usd(symbol, mark)))
        return float(self._portfolio.total_pnl(marks)), float(largest)

    def _sample(self, m: _Market, ts: int) -> None:
        """Journal the sampled tables on a fixed time grid (same data -> same rows)."""
        q = m.quoter
        if q.mid_px > 0 and ts >= m.next_book_ns:
            every = self._book_every_ns
            m.next_book_ns = (ts // every + 1) * every
            d, qd = q.px_div, q.qty_div
            self._rec("book", ts, q.symbol, q.bid_px / d, q.ask_px / d, q.bid_qty / qd,
                      q.ask_qty / qd, q.mid_px / d)  # fmt: skip
        if ts < m.next_position_ns:
            return  # (checked before the Decimal mark: this runs on every timer)
        mark = m.mark()
        if mark is not None:
            every = self._position_every_ns
            m.next_position_ns = (ts // every + 1) * every
            self._rec("positions", *self._portfolio.snapshot(ts, q.symbol, mark).row())

    def _on_freeze_request(self, ev: FreezeRequest) -> list[Command]:
        ts = ev.ts_ns
        risk = self._risk
        reason = _with_author(ev.reason, ev.author)
        if ev.freeze:
            return self._risk_events(ts, risk.freeze(ts, reason, check=ev.source, hold=ev.hold))
        if risk.state is not TradingState.FROZEN:
            # unfreeze never lifts a halt (kill switch) and is a no-op when not frozen
            note = f"unfreeze ignored in state {risk.state.value}: {reason}"
            event = RiskEvent(ts, ALL_SYMBOLS, "unfreeze", ev.source, note, risk.state.value)
            return self._risk_events(ts, [event])
        return self._risk_events(ts, risk.unfreeze(ts, reason, check=ev.source))

    def _on_unhalt_request(self, ev: UnhaltRequest) -> list[Command]:
        ts = ev.ts_ns
        risk = self._risk
        reason = _with_author(ev.reason, ev.author)
        if risk.state is not _HALTED:
            note = f"unhalt ignored in state {risk.state.value}: {reason}"
            event = RiskEvent(ts, ALL_SYMBOLS, "unhalt", "operator", note, risk.state.value)
            return self._risk_events(ts, [event])
        return self._risk_events(ts, risk.unhalt(ts, reason))

    def _risk_events(self, ts: int, events: list[RiskEvent]) -> list[Command]:
        """Journal risk events and act on a change of trading state."""
        rec = self._rec
        for event in events:
            rec("risk", *event.row())
        state = self._risk.state
        if state is self._state:
            return []
        self._state = state
        if state is _FROZEN or state is _HALTED:
            reason = events[-1].reason if events else state.value
            return self._stop_quoting(ts, reason)
        # back to ACTIVE, or into REDUCING: re-quote at once (REDUCING cancels the
        # orders that would add inventory because they are no longer wanted)
        commands: list[Command] = []
        for m in self._markets.values():
            commands.extend(m.quoter.cycle(ts, state, force=True))
        return commands

    def _stop_quoting(self, ts: int, reason: str) -> list[Command]:
        """Frozen or halted: cancel everything (one message) and tell the shell."""
        for m in self._markets.values():
            self._stats.cancels += m.quoter.cancel_working(ts, reason)
        log.warning("quoting_stopped", ts_ns=ts, state=self._state.value, reason=reason)
        return [CancelAll(ts, None, reason), Freeze(ts, reason)]

    def _halt(self, ts: int, reason: str) -> list[Command]:
        """Venue protocol error: kill switch, cancel all; sticky until restart."""
        log.error("venue_protocol_error", ts_ns=ts, reason=reason)
        if self._fault is None:
            self._fault = reason
        events = self._risk.kill(ts, reason, check="venue_protocol")
        commands = self._risk_events(ts, events)
        if not commands:  # already halted: still make sure nothing rests
            commands = self._stop_quoting(ts, reason)
        return commands


def _with_author(reason: str, author: str) -> str:
    """The journal's reason of an operator's request: who asked is part of the record."""
    return f"{reason} (by {author})" if author else reason
