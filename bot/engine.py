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

from collections import deque
from collections.abc import Callable
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
    Timer,
    Trade,
    VenueReport,
)
from bot.orders import TERMINAL, WORKING, Applied, ClientOrderIds, Order, OrderError, diff, reduces
from bot.portfolio import Portfolio, PortfolioError
from bot.risk import ALL_SYMBOLS, RiskEngine, RiskEvent, TradingState
from bot.strategy import Quote, QuotePolicy

log = structlog.get_logger(__name__)

NS_PER_MS: Final = 1_000_000
# Terminal orders are remembered this long (in orders) so that late fills and
# trailing acks still find their order; older ones count as unknown.
RECENT_ORDERS: Final = 10_000
_FROZEN: Final = TradingState.FROZEN
_HALTED: Final = TradingState.HALTED
_NEVER: Final = 1 << 62


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


def _divisor(step: Decimal) -> float:
    """n / divisor == n * step as a float; exact-rounded when 1/step is an integer."""
    return float(1 / step)


class _Market:
    """Everything the engine knows about one symbol."""

    __slots__ = (
        "ask_px",
        "ask_qty",
        "bid_px",
        "bid_qty",
        "book_seq",
        "instrument",
        "journaled",
        "last_fill_px",
        "live",
        "mid_px",
        "next_book_ns",
        "next_position_ns",
        "policy",
        "px_div",
        "qty_div",
        "requote_due",
        "settled",
        "symbol",
        "usd_per_tick_lot",
        "version",
    )

    def __init__(self, instrument: Instrument, policy: QuotePolicy) -> None:
        self.symbol = instrument.symbol
        self.instrument = instrument
        self.policy = policy
        self.bid_px = 0
        self.bid_qty = 0
        self.ask_px = 0
        self.ask_qty = 0
        self.mid_px = 0.0  # ticks; 0 until the first valid book
        self.last_fill_px = 0
        self.live: dict[str, Order] = {}  # orders not yet terminal, by client id
        self.px_div = _divisor(instrument.tick_size)
        self.qty_div = _divisor(instrument.lot_size)
        self.usd_per_tick_lot = float(instrument.tick_size * instrument.lot_size)
        self.next_book_ns = 0
        self.next_position_ns = 0
        self.requote_due = False  # a cycle was throttled: run it at the next event
        self.journaled: tuple[Quote, ...] | None = None  # the wanted set last journaled
        # bumped whenever one of our orders on this symbol is sent, cancelled or
        # changed by a report: the diff's other input besides the wanted set
        self.version = 0
        self.book_seq = 0  # bumped whenever the touch (prices or sizes) changes
        # (wanted, version, trading state, first ts at which a working order ages
        # out, book_seq) of the last diff that asked for nothing; see Engine._cycle
        self.settled: tuple[tuple[Quote, ...], int, TradingState, int, int] | None = None

    def mark(self) -> Decimal | None:
        """The price to value the position at: the mid, else the last fill, else None."""
        tick = self.instrument.tick_size
        if self.mid_px > 0:
            return (self.bid_px + self.ask_px) * tick / 2
        if self.last_fill_px:
            return self.last_fill_px * tick
        return None


class _Stats:
    """Counters behind `Engine.summary()`."""

    __slots__ = (
        "blocks",
        "cancels",
        "duplicate_reports",
        "fills",
        "maker_fills",
        "maker_notional",
        "market_trades",
        "notional",
        "places",
        "rejects",
        "skipped_books",
        "unknown_reports",
    )

    def __init__(self) -> None:
        self.fills = 0
        self.maker_fills = 0
        self.notional = 0.0  # USD
        self.maker_notional = 0.0
        self.places = 0
        self.cancels = 0
        self.rejects = 0
        self.blocks = 0
        self.duplicate_reports = 0
        self.unknown_reports = 0
        self.market_trades = 0
        self.skipped_books = 0


class Engine:
    """Market-making engine: events in, commands out."""

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
        self._markets = {
            symbol: _Market(
                inst,
                QuotePolicy(cfg, inst, tier.maker_bps, max_inventory, size_fraction=fraction),
            )
            for symbol, inst in insts.items()
        }
        self._portfolio = Portfolio(insts)
        self._risk = RiskEngine(settings.risk, insts, tier.maker_bps, tier.taker_bps)
        self._state = self._risk.state
        self._ids = ClientOrderIds(id_prefix)
        self._rec: Callable[..., None] = recorder.append
        self._post_only = cfg.post_only
        self._book_every_ns = settings.telemetry.book_sample_ms * NS_PER_MS
        self._position_every_ns = settings.telemetry.position_sample_ms * NS_PER_MS
        self._orders: dict[str, Order] = {}  # live and recently terminal, by client id
        self._retired: deque[str] = deque()
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
        }

    # --- read-only views ---------------------------------------------------------------

    @property
    def portfolio(self) -> Portfolio:
        return self._portfolio

    @property
    def risk(self) -> RiskEngine:
        return self._risk

    @property
    def fault(self) -> str | None:
        """Why the engine halted on a venue protocol error (sticky), or None."""
        return self._fault

    def open_orders(self, symbol: str) -> tuple[Order, ...]:
        """Our orders on `symbol` that are not terminal (working or pending cancel)."""
        return tuple(self._market(symbol).live.values())

    def summary(self) -> dict[str, Any]:
        s = self._stats
        marks = {m.symbol: mark for m in self._markets.values() if (mark := m.mark()) is not None}
        pnl = float(self._portfolio.total_pnl(marks))
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
            "places": s.places,
            "cancels": s.cancels,
            "rejects": s.rejects,
            "blocks": s.blocks,
            "freezes": self._risk.freezes,
            "open_orders": sum(len(m.live) for m in self._markets.values()),
            "duplicate_reports": s.duplicate_reports,
            "unknown_reports": s.unknown_reports,
            "market_trades": s.market_trades,
            "skipped_books": s.skipped_books,
        }

    # --- the one entry point ----------------------------------------------------------

    def on_event(self, event: Event) -> list[Command]:
        handler = self._handlers.get(type(event))
        if handler is None:
            raise IllegalCommand(f"the engine does not handle {type(event).__name__} events")
        try:
            return handler(event)
        except VenueProtocolError as exc:
            return self._halt(event.ts_ns, str(exc))

    # --- market data -------------------------------------------------------------------

    def _market(self, symbol: str) -> _Market:
        market = self._markets.get(symbol)
        if market is None:
            raise UnknownSymbol(symbol, sorted(self._markets))
        return market

    def _on_book(self, ev: BookUpdate) -> list[Command]:
        m = self._market(ev.symbol)
        bid, ask = ev.bid_px, ev.ask_px
        if bid <= 0 or ask <= bid:
            # A crossed or one-sided touch is bad data: keep what rests, quote nothing
            # new on it; if it persists the stale-data guard freezes the bot.
            self._stats.skipped_books += 1
            return []
        ts = ev.ts_ns
        if bid != m.bid_px or ask != m.ask_px:
            mid = (bid + ask) * 0.5
            m.mid_px = mid
            m.policy.observe_mid(ts, mid)
        elif ev.bid_qty == m.bid_qty and ev.ask_qty == m.ask_qty:
            commands = self._risk_events(ts, self._risk.on_book(ts, m.mid_px, m.symbol))
            if m.requote_due:
                commands.extend(self._cycle(m, ts))
            return commands
        m.bid_px, m.bid_qty, m.ask_px, m.ask_qty = bid, ev.bid_qty, ask, ev.ask_qty
        m.book_seq += 1
        self._book_seq += 1
        events = self._risk.on_book(ts, m.mid_px, m.symbol)
        if not events:
            return self._cycle(m, ts)
        commands = self._risk_events(ts, events)
        commands.extend(self._cycle(m, ts))
        return commands

    def _on_trade(self, ev: Trade) -> list[Command]:
        # Market trades do not feed the volatility estimate: their prices bounce
        # between bid and ask and would inflate it. Fills are inferred from trades
        # by the venue (sim or shadow), not here.
        self._market(ev.symbol)
        self._stats.market_trades += 1
        return []

    # --- the quoting cycle ------------------------------------------------------------

    def _cycle(self, m: _Market, ts: int, *, force: bool = False) -> list[Command]:
        """Wanted quotes -> diff against live orders -> risk-checked commands."""
        state = self._state
        if self._fault is not None or m.mid_px <= 0 or state is _FROZEN or state is _HALTED:
            return []
        policy = m.policy
        if not force and not policy.may_requote(ts):
            m.requote_due = True
            return []
        m.requote_due = False
        settled = m.settled
        if (
            settled is not None
            and settled[4] == m.book_seq
            and settled[1] == m.version
            and settled[2] is state
            and ts < settled[3]
        ):
            # Nothing the wanted set depends on moved (touch, volatility: both only
            # with book_seq; position: only with a fill, which bumps version), so it
            # and the diff's answer are those of the settled cycle: nothing to do.
            return []
        symbol = m.symbol
        position = self._portfolio.position_lots(symbol)
        wanted = policy.wanted(ts, m.bid_px, m.bid_qty, m.ask_px, m.ask_qty, position)
        reducing = state is TradingState.REDUCING
        if reducing:
            wanted = tuple(q for q in wanted if reduces(q.side, position))
        if wanted != m.journaled:
            # quotes rows only when the wanted set changes (bot/journal.py)
            m.journaled = wanted
            self._quote_rows(m, ts, wanted)
        elif (
            settled is not None
            and settled[0] is wanted
            and settled[1] == m.version
            and settled[2] is state
            and ts < settled[3]
        ):
            # Same wanted set, same orders, none aged out: the diff would again ask
            # for nothing (exact, not a heuristic; see `_settle`). Only the touch
            # moved, and it was priced in: the settled cycle now stands for it too.
            if settled[4] != m.book_seq:
                m.settled = (wanted, settled[1], state, settled[3], m.book_seq)
            return []
        cancels, places = diff(
            wanted,
            m.live.values(),
            ts_ns=ts,
            next_id=self._ids.next,
            threshold_bps=policy.requote_threshold_bps,
            max_age_ns=policy.max_quote_age_ns,
            post_only=self._post_only,
            reduce_only=reducing,
        )
        if not cancels and not places:
            self._settle(m, wanted, state)
            return []
        policy.requoted(ts)
        m.version += 1
        commands: list[Command] = []
        for cancel in cancels:
            self._send_cancel(m, m.live[cancel.client_order_id], ts)
            commands.append(cancel)
        self._stats.cancels += len(cancels)
        if places:
            commands.extend(self._checked_places(m, places, position, ts))
        return commands

    def _quote_rows(self, m: _Market, ts: int, wanted: tuple[Quote, ...]) -> None:
        rec = self._rec
        symbol = m.symbol
        px_div, qty_div = m.px_div, m.qty_div
        mid = m.mid_px / px_div
        for q in wanted:
            rec("quotes", ts, symbol, int(q.side), q.level, q.px / px_div, q.qty / qty_div, mid)

    def _settle(self, m: _Market, wanted: tuple[Quote, ...], state: TradingState) -> None:
        """Remember a diff that asked for nothing.

        Its result depends on the wanted set, the orders (their sides, sizes,
        prices, statuses: all covered by `version`), the trading state (reduce-only)
        and time only through the max-age test `ts - sent >= max_age`. Every working
        order passed that test here (an aged one would have been cancelled), so
        until the oldest one ages out the same inputs give the same empty answer.
        """
        oldest = min((o.ts_sent_ns for o in m.live.values() if o.status in WORKING), default=None)
        ages_out = _NEVER if oldest is None else oldest + m.policy.max_quote_age_ns
        m.settled = (wanted, m.version, state, ages_out, m.book_seq)

    def _send_cancel(self, m: _Market, order: Order, ts: int) -> None:
        try:
            order.request_cancel()
        except OrderError as exc:
            raise IllegalCommand(f"cancel of {order!r}: {exc}") from exc
        self._risk.check_cancel(ts)
        self._order_row(ts, m, order, "cancel")

    def _checked_places(
        self, m: _Market, places: list[Place], position: int, ts: int
    ) -> list[Command]:
        risk = self._risk
        rec = self._rec
        stats = self._stats
        open_orders = self._working_count()
        total_inventory = self._total_inventory_usd()
        sent: list[Command] = []
        for place in places:
            denied = risk.check_new(
                place,
                mid_px=m.mid_px,
                position_lots=position,
                open_orders=open_orders,
                total_inventory_usd=total_inventory,
            )
            if denied is not None:
                rec("risk", *risk.denial_event(denied, ts, m.symbol).row())
                stats.blocks += 1
                continue
            order = Order(place)
            m.live[place.client_order_id] = order
            self._orders[place.client_order_id] = order
            self._order_row(ts, m, order, "place")
            open_orders += 1
            sent.append(place)
        stats.places += len(sent)
        return sent

    def _working_count(self) -> int:
        # orders pending cancel are on their way out: the replacements may take their slots
        return sum(
            1 for m in self._markets.values() for o in m.live.values() if o.status in WORKING
        )

    def _total_inventory_usd(self) -> float:
        position = self._portfolio.position_lots
        return sum(
            abs(position(m.symbol)) * m.mid_px * m.usd_per_tick_lot for m in self._markets.values()
        )

    # --- venue reports ---------------------------------------------------------------

    def _order_row(self, ts: int, m: _Market, order: Order, event: str, reason: str = "") -> None:
        self._rec(
            "orders", ts, order.symbol, order.client_order_id, event, int(order.side),
            order.px / m.px_div, order.qty / m.qty_div, order.status._value_,
            order.ts_sent_ns, order.ts_ack_ns, reason,
        )  # fmt: skip

    def _unknown_row(self, ev: VenueReport, event: str, reason: str) -> None:
        self._stats.unknown_reports += 1
        self._rec("orders", ev.ts_ns, ev.symbol, ev.client_order_id, event, 0, 0.0, 0.0,
                  "UNKNOWN", 0, 0, reason)  # fmt: skip

    def _apply(self, ev: VenueReport, event: str) -> tuple[_Market, Order] | None:
        """Apply a report to its order; None when it changed nothing (unknown, duplicate)."""
        order = self._orders.get(ev.client_order_id)
        m = self._markets.get(ev.symbol)
        if order is None or m is None or order.symbol != ev.symbol:
            self._unknown_row(ev, event, f"{event} for an unknown order")
            return None
        try:
            applied = order.apply(ev)
        except OrderError as exc:
            raise VenueProtocolError(f"{ev.symbol}: {exc}") from exc
        if applied is Applied.DUPLICATE:
            self._stats.duplicate_reports += 1
            return None
        m.version += 1
        if order.status in TERMINAL:
            self._retire(m, order)
        return m, order

    def _retire(self, m: _Market, order: Order) -> None:
        if m.live.pop(order.client_order_id, None) is None:
            return  # a late fill on an already terminal order
        retired = self._retired
        retired.append(order.client_order_id)
        if len(retired) > RECENT_ORDERS:
            self._orders.pop(retired.popleft(), None)

    def _on_ack(self, ev: OrderAck) -> list[Command]:
        found = self._apply(ev, "ack")
        if found is None:
            return []
        m, order = found
        self._order_row(ev.ts_ns, m, order, "ack")
        return self._risk_events(ev.ts_ns, self._risk.on_order_result(ev.ts_ns, False))

    def _on_reject(self, ev: OrderReject) -> list[Command]:
        found = self._apply(ev, "reject")
        if found is None:
            return []
        m, order = found
        self._stats.rejects += 1
        self._order_row(ev.ts_ns, m, order, "reject", ev.reason)
        commands = self._risk_events(ev.ts_ns, self._risk.on_order_result(ev.ts_ns, True))
        commands.extend(self._cycle(m, ev.ts_ns))
        return commands

    def _on_order_done(self, ev: CancelAck | OrderExpired) -> list[Command]:
        event = "cancel_ack" if isinstance(ev, CancelAck) else "expired"
        found = self._apply(ev, event)
        if found is None:
            return []
        m, order = found
        self._order_row(ev.ts_ns, m, order, event)
        return self._cycle(m, ev.ts_ns)

    def _on_cancel_reject(self, ev: CancelReject) -> list[Command]:
        found = self._apply(ev, "cancel_reject")
        if found is None:
            return []
        m, order = found
        self._order_row(ev.ts_ns, m, order, "cancel_reject", ev.reason)
        return self._cycle(m, ev.ts_ns)

    def _on_fill(self, ev: OrderFill) -> list[Command]:
        found = self._apply(ev, "fill")
        if found is None:
            return []
        m, order = found
        try:
            booked = self._portfolio.apply_fill(ev)
        except PortfolioError as exc:
            raise VenueProtocolError(f"{ev.symbol}: fill {ev.trade_id}: {exc}") from exc
        if not booked:
            self._stats.duplicate_reports += 1
            return []
        ts = ev.ts_ns
        m.last_fill_px = ev.px
        mid_px = m.mid_px if m.mid_px > 0 else float(ev.px)
        self._count_fill(m, ev)
        px_div = m.px_div
        # the row is the match: the venue's time and mid when it says, not our later view
        match_ts = ev.match_ts_ns if ev.match_ts_ns >= 0 else ts
        match_mid = ev.match_mid_px if ev.match_mid_px > 0 else mid_px
        self._rec(
            "fills", match_ts, ev.symbol, ev.client_order_id, ev.trade_id, int(ev.side),
            ev.px / px_div, ev.qty / m.qty_div, ev.px, ev.qty, ev.liquidity.value,
            float(ev.fee), ev.fee, match_mid / px_div,
        )  # fmt: skip
        self._rec(
            "orders", ts, ev.symbol, ev.client_order_id, "fill", int(ev.side),
            ev.px / px_div, ev.qty / m.qty_div, order.status._value_,
            order.ts_sent_ns, order.ts_ack_ns, ev.trade_id,
        )  # fmt: skip
        commands = self._risk_events(ts, self._risk.on_fill(ev, mid_px))
        commands.extend(self._cycle(m, ts))  # the position moved: skew and the filled side
        return commands

    def _count_fill(self, m: _Market, ev: OrderFill) -> None:
        s = self._stats
        notional = ev.px * ev.qty * m.usd_per_tick_lot
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
        for m in self._markets.values():
            self._sample(m, ts)
            commands.extend(self._cycle(m, ts))  # max quote age and throttled re-quotes
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
        for m in self._markets.values():
            mark = m.mark()
            if mark is None:
                continue
            marks[m.symbol] = mark
            largest = max(largest, abs(self._portfolio.inventory_usd(m.symbol, mark)))
        return float(self._portfolio.total_pnl(marks)), float(largest)

    def _sample(self, m: _Market, ts: int) -> None:
        """Journal the sampled tables on a fixed time grid (same data -> same rows)."""
        if m.mid_px > 0 and ts >= m.next_book_ns:
            every = self._book_every_ns
            m.next_book_ns = (ts // every + 1) * every
            d, qd = m.px_div, m.qty_div
            self._rec("book", ts, m.symbol, m.bid_px / d, m.ask_px / d, m.bid_qty / qd,
                      m.ask_qty / qd, m.mid_px / d)  # fmt: skip
        if ts < m.next_position_ns:
            return  # (checked before the Decimal mark: this runs on every timer)
        mark = m.mark()
        if mark is not None:
            every = self._position_every_ns
            m.next_position_ns = (ts // every + 1) * every
            self._rec("positions", *self._portfolio.snapshot(ts, m.symbol, mark).row())

    def _on_freeze_request(self, ev: FreezeRequest) -> list[Command]:
        ts = ev.ts_ns
        risk = self._risk
        if ev.freeze:
            return self._risk_events(ts, risk.freeze(ts, ev.reason))
        if risk.state is not TradingState.FROZEN:
            # unfreeze never lifts a halt (kill switch) and is a no-op when not frozen
            note = f"unfreeze ignored in state {risk.state.value}: {ev.reason}"
            event = RiskEvent(ts, ALL_SYMBOLS, "unfreeze", "operator", note, risk.state.value)
            return self._risk_events(ts, [event])
        return self._risk_events(ts, risk.unfreeze(ts, ev.reason))

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
            commands.extend(self._cycle(m, ts, force=True))
        return commands

    def _stop_quoting(self, ts: int, reason: str) -> list[Command]:
        """Frozen or halted: cancel everything (one message) and tell the shell."""
        for m in self._markets.values():
            m.version += 1
            for order in m.live.values():
                if order.status in WORKING:
                    order.request_cancel()
                    self._order_row(ts, m, order, "cancel", reason)
                    self._stats.cancels += 1
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
