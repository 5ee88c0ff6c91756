"""The sim shell (DESIGN §3): one synchronous loop over replayed market data.

Two clocks, one axis (DESIGN §4, bot/market/clocks.py). The axis is the bot's
local clock. The venue sees a row at its exchange time mapped onto it (`ts_exch`
+ the capture clock's offset, never after the row's `ts_local`); the engine sees
the row at `ts_local`. The loop walks rows in venue-time order, so the one book
is always the venue's book; what the engine gets (top-of-book changes, trades)
waits in a feed queue until its local time.

Ordering rule: exchange stamps go backwards across the book and trade streams,
so each chunk is stably sorted by venue time. Within one stream the receipt
order stands (one connection delivers in the venue's order): a stamp going
backwards inside the book or the trade stream is lifted to the stream's latest
(never on the real captures; the synthetic feed jitters each row's stamp), so
exchange time decides only between the streams. Rows near a chunk's end wait for
the next chunk unless no later row can come before them: a later row has
`ts_local` >= the chunk's last `ts_local` L, so assuming its feed lag is no more
than the largest lag seen so far (`ts_local` - venue time), rows at or before L -
max lag are safe. A row later than that bound is replayed at the venue's current
time (counted as `late_rows`), never in the venue's past.

Per chunk, prices and sizes become integer ticks and lots in one vectorised
step (a price off the tick grid is an `OffTickError`); the rows are then walked
with local variables. A delta costs a dict lookup (is one of our orders at this
price?) and a book update; nothing else happens per row. A message is a run of
rows with one venue time; when it ends the loop compares the top of book with
the last one and only a change makes a `BookUpdate`. Trades go to the venue
(which may fill us) and to the engine. Between messages, feed events, venue
reports, timers and book samples that are due are delivered in time order
(feed first on a tie); commands from the engine go to the venue stamped with
the local time of the event that caused them.

No asyncio, no wall clock: time is the data's.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, Final, Protocol

import numpy as np
import structlog

from bot.journal import Recorder
from bot.market.book import NO_ASK, NO_BID, L2Book
from bot.market.clocks import ClockOffset, estimate_offset
from bot.market.schema import Kind, MarketChunk
from bot.model import (
    BookUpdate,
    Cancel,
    CancelAll,
    Command,
    Event,
    Freeze,
    Instrument,
    OrderAck,
    Place,
    Side,
    Timer,
    Trade,
)
from bot.venues.sim import NEVER, FeedFaults, SimVenue

log = structlog.get_logger(__name__)

NS_PER_MS: Final = 1_000_000
# the progress callback hears the data time reached once per this many messages
PROGRESS_MESSAGES: Final = 256
_DELTA: Final = int(Kind.DELTA)
_SNAPSHOT: Final = int(Kind.SNAPSHOT)
_TRADE: Final = int(Kind.TRADE)
_SIDES: Final = {int(side): side for side in Side}
# price / tick is off a whole number by ~1e-16 relative in binary floating point;
# 1e-6 of a tick tolerates that for prices up to 1e9 ticks and catches a wrong tick
_TICK_TOL: Final = 1e-6


class EngineLike(Protocol):
    def on_event(self, event: Event) -> list[Command]: ...


class SimLoopError(Exception):
    """Market data the loop cannot replay (unknown symbol, bad units)."""


def _utc(ts_ns: int) -> str:
    """A data timestamp as ISO 8601 UTC (a conversion, not a clock read)."""
    seconds, ns = divmod(ts_ns, 1_000_000_000)
    stamp = datetime.fromtimestamp(seconds, tz=UTC).strftime("%Y-%m-%dT%H:%M:%S")
    return f"{stamp}.{ns:09d}Z"


class OffTickError(SimLoopError):
    """A price that is not a whole number of the instrument's ticks."""

    def __init__(self, symbol: str, price: float, tick: Decimal, ts_local: int, ts_exch: int):
        self.symbol, self.price, self.tick = symbol, price, tick
        self.ts_local, self.ts_exch = ts_local, ts_exch
        super().__init__(
            f"{symbol}: price {price!r} is off the tick grid {tick} ({price / float(tick):.6f} "
            f"ticks) in the row at {_utc(ts_local)} (ts_local={ts_local} ts_exch={ts_exch} "
            f"ns): wrong tick_size in venue.symbols.{symbol}, or bad data"
        )


@dataclass(slots=True)
class LoopStats:
    """Counts of one replay (mutable while the loop runs; read after)."""

    rows: int = 0
    messages: int = 0
    book_updates: int = 0
    trades: int = 0
    venue_reports: int = 0
    timers: int = 0
    commands: int = 0
    crossed_messages: int = 0
    late_rows: int = 0
    first_ts_ns: int = 0
    last_ts_ns: int = 0
    stopped_early: bool = False

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def to_float(step: Decimal) -> Callable[[int], float]:
    """ticks/lots -> float units, correctly rounded when 1/step is whole (0.1, 0.001, 1).

    618002 * 0.1 is 61800.200000000004 in binary; 618002 / 10 is 61800.2.
    """
    inverse = 1 / step
    if inverse == inverse.to_integral_value():
        scale = float(inverse)
        return lambda n: n / scale
    factor = float(step)
    return lambda n: n * factor


@dataclass(slots=True)
class _SymbolState:
    book: L2Book
    tick_size: Decimal
    tick: float
    lot: float
    px_float: Callable[[int], float]
    qty_float: Callable[[int], float]
    last_top: tuple[int, int, int, int] = (NO_BID, 0, NO_ASK, 0)
    # rows held back for the next chunk (see "Ordering rule"), already in ticks/lots
    carry: _Rows | None = None
    venue_ts: int = -1  # the venue time of the last row replayed
    book_ts: int = -1  # the latest venue time of the book stream, then of the trades
    trade_ts: int = -1


@dataclass(frozen=True, slots=True)
class _Rows:
    """Rows in venue-time order, in integer ticks and lots (one chunk's, or held back)."""

    ts_venue: np.ndarray
    ts_local: np.ndarray
    kind: np.ndarray
    side: np.ndarray
    px: np.ndarray
    qty: np.ndarray
    trade_id: np.ndarray

    def __len__(self) -> int:
        return int(self.ts_venue.shape[0])

    def take(self, index: np.ndarray | slice) -> _Rows:
        return _Rows(*(a[index] for a in self.arrays()))

    def arrays(self) -> tuple[np.ndarray, ...]:
        return (self.ts_venue, self.ts_local, self.kind, self.side, self.px, self.qty,
                self.trade_id)  # fmt: skip


@dataclass(slots=True)
class LoopConfig:
    timer_ms: int = 100
    book_sample_ms: int = 100
    duration_ns: int | None = None
    record_book: bool = True
    # (first data time, data time reached), every PROGRESS_MESSAGES messages: display only
    progress: Callable[[int, int], None] | None = None
    # the engine's view of the market can be spoiled by feed faults (paper only)
    feed_faults: FeedFaults | None = None
    # exchange -> local clock; None: estimated from the first chunk, no feed latency
    clock: ClockOffset | None = None
    # the shared state (bot/runtime/control.py), None without `--state`: heard after each
    # timer (loop time, last market event for the engine, last ack) and answering with operator or
    # lease events for the engine; `gate` sees each Place before the venue and answers
    # a refusal (a reject for the engine) when the bot may not send it
    on_timer: Callable[[int, int, int], list[Event]] | None = None
    gate: Callable[[Place], Event | None] | None = None


class SimLoop:
    """Replays MarketChunks through a venue and an engine; one instance per run."""

    def __init__(
        self,
        engine: EngineLike,
        venue: SimVenue,
        books: Mapping[str, L2Book],
        instruments: Mapping[str, Instrument],
        recorder: Recorder,
        config: LoopConfig | None = None,
    ) -> None:
        self.engine = engine
        self.venue = venue
        self.recorder = recorder
        self.config = config or LoopConfig()
        self.stats = LoopStats()
        self._symbols = {
            s: _SymbolState(
                book=books[s],
                tick_size=inst.tick_size,
                tick=float(inst.tick_size),
                lot=float(inst.lot_size),
                px_float=to_float(inst.tick_size),
                qty_float=to_float(inst.lot_size),
            )
            for s, inst in instruments.items()
        }
        self._timer_ns = self.config.timer_ms * NS_PER_MS
        self._sample_ns = self.config.book_sample_ms * NS_PER_MS
        self._next_timer = NEVER
        self._next_sample = NEVER if not self.config.record_book else 0
        self._end_ns = NEVER
        self._cur_ts = -1
        self._cur_symbol = ""
        self._snapshot_open = False
        self._trade_seq = 0
        self.clock = self.config.clock
        # what the engine will see, waiting for its local time: (ts_local, seq, event)
        self._feed: list[tuple[int, int, Event]] = []
        self._feed_seq = 0
        self._last_local = -1
        self._max_lag = 0
        self._faults = self.config.feed_faults if self.config.feed_faults else None
        self._progress = self.config.progress
        self._on_timer = self.config.on_timer
        self._gate = self.config.gate
        self._last_ack = -1
        self._last_market = -1  # local time of the last market event for the engine
        if self._faults is not None and not self._faults.active:
            self._faults = None

    # --- driving ------------------------------------------------------------------

    def run(self, chunks: Iterable[MarketChunk]) -> LoopStats:
        for chunk in chunks:
            if not self._replay_chunk(chunk):
                self.stats.stopped_early = True
                self._finish()
                return self.stats
        # the data ended: nothing can come before the rows held back any more
        for symbol, state in self._symbols.items():
            if state.carry is not None and len(state.carry):
                rows, state.carry = state.carry, None
                if not self._replay_rows(symbol, state, rows):
                    self.stats.stopped_early = True
                    break
        self._finish()
        return self.stats

    def _start(self, ts: int) -> None:
        self.stats.first_ts_ns = ts
        self._next_timer = ts + self._timer_ns
        if self.config.record_book:
            self._next_sample = ts + self._sample_ns
        if self.config.duration_ns is not None:
            self._end_ns = ts + self.config.duration_ns

    def _finish(self) -> None:
        if self._cur_ts >= 0:
            self._end_message()
            # what the venue saw reaches the bot; reports already on their way arrive
            self._advance(max([self._cur_ts, *(local for local, _, _ in self._feed)]))
        self.stats.last_ts_ns = max(self._cur_ts, 0)

    # --- venue-time order ---------------------------------------------------------------

    def _in_venue_order(self, chunk: MarketChunk, state: _SymbolState) -> _Rows:
        """The chunk's rows (after the held-back ones) that may be replayed now, sorted
        by venue time; the rest is held back in `state.carry` (see "Ordering rule")."""
        if self.clock is None:
            self.clock = estimate_offset(chunk)
        venue = self._in_stream_order(
            chunk, state, self.clock.to_venue(chunk.ts_exch, chunk.ts_local)
        )
        self._max_lag = max(self._max_lag, int(np.max(chunk.ts_local - venue)))
        rows = _Rows(venue, chunk.ts_local, chunk.kind, chunk.side, self._ticks(chunk, state),
                     np.rint(chunk.qty / state.lot).astype(np.int64), chunk.trade_id)  # fmt: skip
        if state.carry is not None:
            rows = _Rows(
                *(np.concatenate(p) for p in zip(state.carry.arrays(), rows.arrays(), strict=True))
            )
        rows = rows.take(np.argsort(rows.ts_venue, kind="stable"))
        safe = int(np.searchsorted(rows.ts_venue, int(chunk.ts_local[-1]) - self._max_lag, "right"))
        state.carry = rows.take(slice(safe, None)) if safe < len(rows) else None
        return rows.take(slice(0, safe))

    @staticmethod
    def _in_stream_order(chunk: MarketChunk, state: _SymbolState, venue: np.ndarray) -> np.ndarray:
        """Venue times that never go backwards within the book or the trade stream."""
        trades = chunk.kind == _TRADE
        for in_stream, is_book in ((~trades, True), (trades, False)):
            times = venue[in_stream]
            if len(times) == 0:
                continue
            times = np.maximum.accumulate(np.maximum(times, state.book_ts if is_book else
                                                     state.trade_ts))  # fmt: skip
            venue[in_stream] = times
            if is_book:
                state.book_ts = int(times[-1])
            else:
                state.trade_ts = int(times[-1])
        return venue

    def _ticks(self, chunk: MarketChunk, state: _SymbolState) -> np.ndarray:
        """Prices in whole ticks; a price off the grid is an error, never rounded away."""
        ticks = chunk.price / state.tick
        whole = np.rint(ticks)
        off = np.abs(ticks - whole) > _TICK_TOL
        if off.any():
            i = int(np.argmax(off))
            raise OffTickError(chunk.symbol, float(chunk.price[i]), state.tick_size,
                               int(chunk.ts_local[i]), int(chunk.ts_exch[i]))  # fmt: skip
        return whole.astype(np.int64)

    # --- the hot loop ----------------------------------------------------------------

    def _replay_chunk(self, chunk: MarketChunk) -> bool:
        if len(chunk) == 0:
            return True
        state = self._enter(chunk)
        return self._replay_rows(chunk.symbol, state, self._in_venue_order(chunk, state))

    # Complexity 17: the per-row work is inlined on purpose (a call per row costs more
    # than all its branches); the branches are one per row kind and book side.
    def _replay_rows(self, symbol: str, state: _SymbolState, rows: _Rows) -> bool:  # noqa: C901
        n = len(rows)
        if n == 0:
            return True
        ts_vl = self._venue_times(symbol, state, rows)
        book = state.book
        apply = book.apply_delta
        bids, asks = book.bids, book.asks
        watch = self.venue.levels[symbol]
        watch_bid, watch_ask = watch[1], watch[-1]
        on_depth = self.venue.on_depth
        ts_l = rows.ts_local.tolist()
        kinds = rows.kind.tolist()
        sides = rows.side.tolist()
        pxs = rows.px.tolist()
        qtys = rows.qty.tolist()
        trade_ids = rows.trade_id.tolist()
        cur_ts = self._cur_ts
        end_ns = self._end_ns
        next_due = self._next_due()
        stats = self.stats
        delta = _DELTA
        # one tuple per row from zip and enumerate (CPython reuses it): cheaper than
        # indexing five lists
        columns = zip(ts_vl, kinds, sides, pxs, qtys, strict=True)
        for i, (ts, kind, side, px, qty) in enumerate(columns):
            if ts != cur_ts:
                # the local time of the message that ends: its last row's (the latest)
                local = ts_l[i - 1] if i else self._last_local
                if ts >= end_ns:
                    self._cur_ts = cur_ts
                    self._last_local = local
                    self._end_message()
                    stats.rows += i
                    return False
                next_due = self._boundary(state, cur_ts, ts, next_due, local)
                cur_ts = ts
            if kind == delta:
                # L2Book.apply_delta inlined for the common cases: most deltas are far
                # from the touch and cost one dict store and a compare here
                if side == 1:
                    if px in watch_bid:
                        on_depth(symbol, 1, px, bids.get(px, 0), qty)
                        next_due = self._next_due()
                    if qty:
                        bids[px] = qty
                        if px > book.best_bid:
                            book.best_bid = px
                    elif px != book.best_bid:
                        bids.pop(px, None)
                    else:
                        apply(1, px, 0)  # the best bid went: the book finds the next one
                elif side == -1:
                    if px in watch_ask:
                        on_depth(symbol, -1, px, asks.get(px, 0), qty)
                        next_due = self._next_due()
                    if qty:
                        asks[px] = qty
                        if px < book.best_ask:
                            book.best_ask = px
                    elif px != book.best_ask:
                        asks.pop(px, None)
                    else:
                        apply(-1, px, 0)
                else:
                    apply(side, px, qty)  # raises BookError naming the side
            elif kind == _SNAPSHOT:
                self._snapshot_row(book, side, px, qty)
            else:
                self._cur_ts = ts
                self._on_trade(symbol, ts, ts_l[i], side, px, qty, trade_ids[i])
                next_due = self._next_due()
        self._cur_ts = cur_ts
        self._last_local = ts_l[n - 1]
        state.venue_ts = cur_ts
        stats.rows += n
        return True

    def _venue_times(self, symbol: str, state: _SymbolState, rows: _Rows) -> list[int]:
        """Start the run or switch symbols; the rows' venue times, never in the past."""
        if self._cur_ts < 0:
            self._start(int(rows.ts_venue[0]))
        if symbol != self._cur_symbol and self._cur_symbol:
            self._end_message()
        self._cur_symbol = symbol
        ts_v = rows.ts_venue
        if ts_v[0] < state.venue_ts:
            # later than the ordering bound: replayed now, not in the venue's past
            self.stats.late_rows += int(np.count_nonzero(ts_v < state.venue_ts))
            ts_v = np.maximum(ts_v, state.venue_ts)
        return ts_v.tolist()

    def _enter(self, chunk: MarketChunk) -> _SymbolState:
        """The state of the chunk's symbol."""
        state = self._symbols.get(chunk.symbol)
        if state is None:
            raise SimLoopError(
                f"market data for {chunk.symbol!r} but no symbol spec; configured: "
                f"{', '.join(self._symbols)} (add venue.symbols.{chunk.symbol})"
            )
        return state

    # --- between messages -------------------------------------------------------------

    def _boundary(
        self, state: _SymbolState, cur_ts: int, ts: int, next_due: int, local: int
    ) -> int:
        """The message at venue time `cur_ts` (local time `local`) is complete and the one
        at `ts` begins: close the first (as `_end_message`, inlined: most messages leave
        the touch alone), deliver what is due before `ts` (not at it); returns the next due time."""
        if self._snapshot_open:
            self._snapshot_open = False
            self.venue.on_snapshot(self._cur_symbol)
        if cur_ts >= 0:
            stats = self.stats
            stats.messages += 1
            if self._progress is not None and not stats.messages % PROGRESS_MESSAGES:
                self._progress(stats.first_ts_ns, cur_ts)
            book = state.book
            bb, ba = book.best_bid, book.best_ask
            bq, aq = book.bids.get(bb, 0), book.asks.get(ba, 0)
            last = state.last_top
            if bb != last[0] or ba != last[2] or bq != last[1] or aq != last[3]:
                self._cur_ts = cur_ts
                self._touch(state, self._cur_symbol, (bb, bq, ba, aq), cur_ts, local)
                next_due = self._next_due()
        # venue work due at the new message's own time waits until after it: on a tie
        # the market row is applied first, as at hftbacktest's venue (an order arriving
        # in the millisecond the book crossed it is rejected, not filled through it)
        if ts > next_due:
            next_due = self._advance(ts - 1)
        return next_due

    def _snapshot_row(self, book: L2Book, side: int, px: int, qty: int) -> None:
        if not self._snapshot_open:
            book.clear()
            self._snapshot_open = True
        book.apply_delta(side, px, qty)

    def _next_due(self) -> int:
        feed = self._feed
        due = min(self.venue.next_ts(), self._next_timer, self._next_sample)
        return min(due, feed[0][0]) if feed else due

    def _end_message(self) -> None:
        """Close the message at `_cur_ts`: one BookUpdate if the touch changed."""
        ts = self._cur_ts
        if ts < 0:
            return
        if self._snapshot_open:
            self._snapshot_open = False
            self.venue.on_snapshot(self._cur_symbol)
        self.stats.messages += 1
        symbol = self._cur_symbol
        state = self._symbols[symbol]
        book = state.book
        top = (book.best_bid, book.bids.get(book.best_bid, 0), book.best_ask,
               book.asks.get(book.best_ask, 0))  # fmt: skip
        if top != state.last_top:
            self._touch(state, symbol, top, ts, max(self._last_local, ts))

    def _touch(
        self,
        state: _SymbolState,
        symbol: str,
        top: tuple[int, int, int, int],
        ts: int,
        local: int,
    ) -> None:
        """The touch changed at the end of the message at venue time `ts`: the venue
        matches now, the engine hears of it at `local`."""
        state.last_top = top
        if top[0] == NO_BID or top[2] == NO_ASK or top[0] >= top[2]:
            # one-sided or crossed (a feed glitch): nothing sound to quote against
            self.stats.crossed_messages += 1
            return
        self.venue.on_touch(symbol, ts)
        update = BookUpdate(local, symbol, top[0], top[1], top[2], top[3])
        if self._faults is not None:
            spoiled = self._faults.spoil(update)
            if spoiled is None:
                return  # disconnected: the engine hears nothing
            update = spoiled
        self.stats.book_updates += 1
        self._to_engine(update, local, ts)

    def _on_trade(
        self, symbol: str, ts: int, local: int, side: int, px: int, qty: int, trade_id: int
    ) -> None:
        self.venue.on_trade(symbol, ts, side, px, qty)
        self.stats.trades += 1
        if self._faults is not None and not self._faults.trade_visible(local):
            return
        self._trade_seq += 1
        tid = str(trade_id) if trade_id >= 0 else f"t{self._trade_seq}"
        aggressor = _SIDES.get(side) or Side(side)  # Side(x) is a slow enum call
        self._to_engine(Trade(local, symbol, tid, px, qty, aggressor), local, ts)

    def _to_engine(self, event: Event, local: int, venue_ts: int) -> None:
        """Market data for the engine at its local time: now on one clock, else queued."""
        self._last_market = local
        if local <= venue_ts and not self._feed:
            self._deliver(event, local)
            return
        self._feed_seq += 1
        heapq.heappush(self._feed, (local, self._feed_seq, event))

    def _advance(self, until: int) -> int:
        """Deliver book samples, feed events, venue reports and timers due at or before
        `until`, in time order (in that order on a tie); returns the next due time."""
        venue = self.venue
        stats = self.stats
        feed = self._feed
        while True:
            venue_ts = venue.next_ts()
            sample = self._next_sample
            due = min(venue_ts, self._next_timer, sample)
            # feed events are the common case between messages: checked first, and
            # without min() over a sentinel (one call per touch change)
            if feed and ((feed_ts := feed[0][0]) < due or (feed_ts == due and sample != due)):
                if feed_ts > until:
                    return feed_ts
                self._deliver(heapq.heappop(feed)[2], feed_ts)
                continue
            if due > until:
                return due
            if sample == due:
                self._sample_books(due)
                self._next_sample = due + self._sample_ns
            elif venue_ts == due:
                report = venue.pop_due(due)
                if report is not None:
                    stats.venue_reports += 1
                    if type(report) is OrderAck:
                        self._last_ack = report.ts_ns
                    self._deliver(report, report.ts_ns)
            else:
                self._next_timer = due + self._timer_ns
                stats.timers += 1
                self._deliver(Timer(due), due)
                if self._on_timer is not None:
                    for event in self._on_timer(due, self._last_market, self._last_ack):
                        self._deliver(event, due)

    def _deliver(self, event: Event, ts: int) -> None:
        commands = self.engine.on_event(event)
        if not commands:
            return
        self.stats.commands += len(commands)
        submit = self.venue.submit
        gate = self._gate
        for cmd in commands:
            if gate is not None and type(cmd) is Place and (refused := gate(cmd)) is not None:
                # heard after this event, not inside it: the engine is mid-event
                self._feed_seq += 1
                heapq.heappush(self._feed, (ts, self._feed_seq, refused))
                continue
            if isinstance(cmd, Place | Cancel | CancelAll):
                submit(cmd, ts)
            elif isinstance(cmd, Freeze):
                # the engine journals its own freeze; the shell has nobody to page
                log.info("engine_freeze", ts_ns=ts, reason=cmd.reason)

    def _sample_books(self, ts: int) -> None:
        append = self.recorder.append
        for symbol, state in self._symbols.items():
            book = state.book
            bid, ask = book.best_bid, book.best_ask
            if bid == NO_BID or ask == NO_ASK:
                continue
            px, qty = state.px_float, state.qty_float
            bid_f, ask_f = px(bid), px(ask)
            append(
                "book",
                ts,
                symbol,
                bid_f,
                ask_f,
                qty(book.bids[bid]),
                qty(book.asks[ask]),
                px(bid + ask) / 2,
            )
