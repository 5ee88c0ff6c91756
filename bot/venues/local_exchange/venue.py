"""The exchange behind the local server: books, our account's orders, fills, position.

Matching is the project's simulated venue (bot/venues/sim.py: queue model,
post-only crossing check, fees) with zero latency: the server's own request
handling is the latency a client sees. Books move by market-data rows (a replay
of bot/market/readers.py chunks, or rows a test writes), so the same path that
runs a paper replay decides here whether a post-only order would cross and when a
resting order fills.

What this adds on top of the sim venue is the account as Bybit keeps it: each
order's record (orderId, orderLinkId, status, cumExecQty, ...), the execution
list, one net position per symbol and a USDT wallet. A post-only order that would
cross is accepted and then cancelled with rejectReason EC_PostOnlyWillTakeLiquidity,
which is what Bybit v5 does for linear contracts.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Final

import numpy as np
import structlog

from bot.config import FeeTier
from bot.market.book import L2Book
from bot.market.schema import Kind, MarketChunk
from bot.model import (
    Cancel,
    CancelAck,
    CancelAll,
    Instrument,
    OrderFill,
    OrderReject,
    Place,
    Side,
    VenueReport,
)
from bot.runtime.clock import Clock
from bot.venues.latency import ZeroLatency
from bot.venues.queue import queue_model
from bot.venues.sim import NEVER, POST_ONLY_REJECT, SimVenue

log = structlog.get_logger(__name__)

NS_PER_MS: Final = 1_000_000
OPEN_STATUSES: Final = frozenset({"New", "PartiallyFilled"})


class LocalVenueError(Exception):
    """A request the venue refuses; `ret_code` is Bybit's code for it."""

    def __init__(self, ret_code: int, message: str) -> None:
        super().__init__(message)
        self.ret_code = ret_code


@dataclass(slots=True)
class OrderRecord:
    """One order as Bybit reports it (mutable venue state, not a value)."""

    order_id: str
    order_link_id: str
    symbol: str
    side: Side
    px: int
    qty: int
    time_in_force: str
    created_ms: int
    status: str = "New"
    cum_qty: int = 0
    cum_value: Decimal = Decimal(0)
    cum_fee: Decimal = Decimal(0)
    updated_ms: int = 0
    reject_reason: str = "EC_NoError"

    @property
    def is_open(self) -> bool:
        return self.status in OPEN_STATUSES


@dataclass(frozen=True, slots=True)
class BookChanged:
    """Levels that changed in one `apply` (final qty; 0 removes), or a new snapshot."""

    symbol: str
    snapshot: bool
    levels: tuple[tuple[int, int, int], ...]  # (side, px, qty)


@dataclass(frozen=True, slots=True)
class TradePrinted:
    symbol: str
    trade_id: str
    px: int
    qty: int
    side: Side
    ts_ms: int


@dataclass(frozen=True, slots=True)
class OrderChanged:
    order: OrderRecord


@dataclass(frozen=True, slots=True)
class Executed:
    execution: Execution


@dataclass(frozen=True, slots=True)
class Execution:
    exec_id: str
    order_id: str
    order_link_id: str
    symbol: str
    side: Side
    px: int
    qty: int
    fee: Decimal
    is_maker: bool
    ts_ms: int


VenueNews = BookChanged | TradePrinted | OrderChanged | Executed


@dataclass(slots=True)
class PositionRecord:
    """Net position in lots (signed) and the average entry notional per lot."""

    lots: int = 0
    avg_per_lot: Decimal = Decimal(0)
    realised: Decimal = Decimal(0)


@dataclass(slots=True)
class _Replay:
    """Market rows waiting for their time on the exchange clock."""

    chunks: Iterator[MarketChunk]
    offset_ns: int | None = None
    pending: MarketChunk | None = None
    index: int = 0


@dataclass(slots=True)
class Account:
    balance: Decimal
    positions: dict[str, PositionRecord] = field(default_factory=dict)


class LocalVenue:
    """Books and one account, Bybit-shaped, matched by the simulated venue."""

    def __init__(
        self,
        instruments: Mapping[str, Instrument],
        clock: Clock,
        *,
        fee: FeeTier,
        queue: str = "risk_averse",
        balance: Decimal = Decimal(100_000),
    ) -> None:
        self.instruments = dict(instruments)
        self.clock = clock
        self.fee = fee
        self.books: dict[str, L2Book] = {symbol: L2Book() for symbol in self.instruments}
        self.sim = SimVenue(
            self.instruments, self.books, fee=fee, latency=ZeroLatency(),
            queue=queue_model(queue), name="local",
        )  # fmt: skip
        self.orders: dict[str, OrderRecord] = {}
        self.by_order_id: dict[str, str] = {}
        self.executions: list[Execution] = []
        self.account = Account(balance=balance)
        self.trades: dict[str, list[tuple[str, int, int, Side, int]]] = {s: [] for s in self.books}
        self.update_ids: dict[str, int] = dict.fromkeys(self.books, 0)
        self._replay: _Replay | None = None
        # the streams (bot/venues/local_exchange/streams.py) hear every change here
        self.listeners: list[Callable[[VenueNews], None]] = []
        self._seq = 0
        # orders whose next post-only check fails whatever the book (fault injection)
        self.forced_post_only_rejects = 0

    def now_ms(self) -> int:
        return self.clock.now_ns() // NS_PER_MS

    # --- market data -----------------------------------------------------------------

    def apply(self, chunk: MarketChunk) -> None:
        """Apply market rows to the book and let resting orders meet them."""
        symbol = chunk.symbol
        inst = self._instrument(symbol)
        book = self.books[symbol]
        ticks = np.rint(chunk.price / float(inst.tick_size)).astype(np.int64).tolist()
        lots = np.rint(chunk.qty / float(inst.lot_size)).astype(np.int64).tolist()
        kinds, sides = chunk.kind.tolist(), chunk.side.tolist()
        stamps, trade_ids = chunk.ts_exch.tolist(), chunk.trade_id.tolist()
        snapshot_ts: int | None = None
        changed: dict[tuple[int, int], int] = {}
        snapshot = False
        for i, kind in enumerate(kinds):
            side, px, qty, ts = sides[i], ticks[i], lots[i], stamps[i]
            if kind == Kind.SNAPSHOT:
                if snapshot_ts != ts:
                    book.clear()
                    snapshot_ts, snapshot = ts, True
                book.apply_snapshot_level(side, px, qty)
                self.sim.on_snapshot(symbol)
            elif kind == Kind.DELTA:
                snapshot_ts = None
                prev = book.apply_delta(side, px, qty)
                changed[(side, px)] = qty
                if px in self.sim.levels[symbol][side]:
                    self.sim.on_depth(symbol, side, px, prev, qty)
            else:
                snapshot_ts = None
                self._market_trade(symbol, str(trade_ids[i]), ts, side, px, qty)
            self.update_ids[symbol] += 1
            self.sim.on_touch(symbol, ts)
            self._drain()
        if snapshot or changed:
            levels = tuple((side, px, qty) for (side, px), qty in changed.items())
            self._tell(BookChanged(symbol, snapshot, () if snapshot else levels))

    def _market_trade(
        self, symbol: str, trade_id: str, ts: int, side: int, px: int, qty: int
    ) -> None:
        self.trades[symbol].append((trade_id, px, qty, Side(side), ts // NS_PER_MS))
        del self.trades[symbol][:-1000]
        self._tell(TradePrinted(symbol, trade_id, px, qty, Side(side), self.now_ms()))
        self.sim.on_trade(symbol, ts, side, px, qty)

    def replay(self, chunks: Iterable[MarketChunk]) -> None:
        """Play `chunks` on the exchange clock: the first row is due now, the rest keep
        their spacing in receipt time (`ts_local`: the one column that never goes
        backwards in a recording); `advance` applies what is due."""
        self._replay = _Replay(iter(chunks))

    def advance(self) -> int:
        """Apply every replay row due by the clock; returns how many were applied."""
        replay = self._replay
        if replay is None:
            return 0
        now = self.clock.now_ns()
        applied = 0
        while True:
            if replay.pending is None or replay.index >= len(replay.pending):
                replay.pending = next(replay.chunks, None)
                replay.index = 0
                if replay.pending is None:
                    self._replay = None
                    return applied
            chunk = replay.pending
            if replay.offset_ns is None:
                replay.offset_ns = now - int(chunk.ts_local[0])
            due = int(np.searchsorted(chunk.ts_local, now - replay.offset_ns, side="right"))
            if due <= replay.index:
                return applied
            self.apply(chunk.take(slice(replay.index, due)))
            applied += due - replay.index
            replay.index = due

    # --- orders --------------------------------------------------------------------

    def place(
        self, symbol: str, side: Side, px: int, qty: int, link_id: str, tif: str
    ) -> OrderRecord:
        self._instrument(symbol)
        if link_id in self.orders:
            raise LocalVenueError(110072, f"OrderLinkedID is duplicate: {link_id}")
        self._seq += 1
        now = self.now_ms()
        order = OrderRecord(
            f"local-{self._seq:08d}", link_id, symbol, side, px, qty, tif, now, updated_ms=now
        )
        self.orders[link_id] = order
        self.by_order_id[order.order_id] = link_id
        post_only = tif == "PostOnly"
        if post_only and self.forced_post_only_rejects > 0:
            self.forced_post_only_rejects -= 1
            self._post_only_cancelled(order)
            return order
        self.sim.submit(Place(0, symbol, link_id, side, px, qty, post_only=post_only), 0)
        self._drain()
        if order.status == "New":
            # a crossing post-only order or a taker fill already told its own status
            self._tell(OrderChanged(order))
        return order

    def _post_only_cancelled(self, order: OrderRecord) -> None:
        order.status = "Cancelled"
        order.reject_reason = "EC_PostOnlyWillTakeLiquidity"
        order.updated_ms = self.now_ms()
        log.info("local_post_only_cancelled", order_link_id=order.order_link_id)
        self._tell(OrderChanged(order))

    def find(self, symbol: str, order_id: str | None, link_id: str | None) -> OrderRecord:
        key = link_id or self.by_order_id.get(order_id or "", "")
        order = self.orders.get(key)
        if order is None or order.symbol != symbol:
            raise LocalVenueError(110001, "Order does not exist.")
        return order

    def cancel(self, symbol: str, order_id: str | None, link_id: str | None) -> OrderRecord:
        order = self.find(symbol, order_id, link_id)
        if not order.is_open:
            raise LocalVenueError(110001, "Order does not exist.")
        self.sim.submit(Cancel(0, symbol, order.order_link_id), 0)
        self._drain()
        return order

    def cancel_all(self, symbol: str | None) -> list[OrderRecord]:
        doomed = self.open_orders(symbol)
        self.sim.submit(CancelAll(0, symbol, "cancel-all"), 0)
        self._drain()
        return doomed

    def open_orders(self, symbol: str | None) -> list[OrderRecord]:
        return [o for o in self.orders.values() if o.is_open and symbol in (None, o.symbol)]

    # --- reports from the matching engine -----------------------------------------

    def _drain(self) -> None:
        # zero latency: everything the sim venue scheduled is due at once
        while (report := self.sim.pop_due(NEVER)) is not None:
            self._on_report(report)

    def _on_report(self, report: VenueReport) -> None:
        order = self.orders.get(report.client_order_id)
        if order is None:
            return
        order.updated_ms = self.now_ms()
        if isinstance(report, OrderReject):
            if report.reason.startswith(POST_ONLY_REJECT):
                self._post_only_cancelled(order)
                return
            order.status, order.reject_reason = "Rejected", "EC_Others"
        elif isinstance(report, CancelAck):
            order.status = "Cancelled"
        elif isinstance(report, OrderFill):
            self._on_fill(order, report)
        else:
            return  # an ack changes nothing Bybit shows
        self._tell(OrderChanged(order))

    def _on_fill(self, order: OrderRecord, fill: OrderFill) -> None:
        inst = self.instruments[order.symbol]
        notional = inst.notional(fill.px, fill.qty)
        order.cum_qty += fill.qty
        order.cum_value += notional
        order.cum_fee += fill.fee
        order.status = "Filled" if order.cum_qty >= order.qty else "PartiallyFilled"
        execution = Execution(
            fill.trade_id, order.order_id, order.order_link_id, order.symbol, order.side,
            fill.px, fill.qty, fill.fee, fill.liquidity.value == "maker", self.now_ms(),
        )  # fmt: skip
        self.executions.append(execution)
        self._tell(Executed(execution))
        self._book_position(order.symbol, order.side, fill.qty, notional)
        self.account.balance -= fill.fee

    def _book_position(self, symbol: str, side: Side, lots: int, notional: Decimal) -> None:
        pos = self.account.positions.setdefault(symbol, PositionRecord())
        per_lot = notional / lots
        signed = int(side) * lots
        if pos.lots == 0 or (pos.lots > 0) == (signed > 0):
            held = abs(pos.lots)
            pos.avg_per_lot = (pos.avg_per_lot * held + notional) / (held + lots)
            pos.lots += signed
            return
        closing = min(lots, abs(pos.lots))
        pnl = closing * (per_lot - pos.avg_per_lot) * (1 if pos.lots > 0 else -1)
        pos.realised += pnl
        self.account.balance += pnl
        flipped = abs(signed) > abs(pos.lots)
        pos.lots += signed
        if pos.lots == 0:
            pos.avg_per_lot = Decimal(0)
        elif flipped:
            # what is left of the fill opened a position the other way at its price
            pos.avg_per_lot = per_lot

    def _tell(self, news: VenueNews) -> None:
        for listener in self.listeners:
            listener(news)

    def _instrument(self, symbol: str) -> Instrument:
        inst = self.instruments.get(symbol)
        if inst is None:
            raise LocalVenueError(10001, f"params error: symbol invalid: {symbol}")
        return inst
