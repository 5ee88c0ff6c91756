"""The venue on the exchange clock, the bot on its local clock (DESIGN §4), on hand-made rows.

Each row carries both stamps; the scenarios set them apart on purpose and check
what the venue and the engine each see, and when.
"""

from __future__ import annotations

from decimal import Decimal

import numpy as np
import pytest

from bot.config import FeeTier
from bot.journal import MemoryJournal
from bot.market.book import L2Book
from bot.market.clocks import ClockError, ClockOffset, estimate_offset
from bot.market.schema import Kind, MarketChunk
from bot.model import (
    BookUpdate,
    Command,
    Event,
    Instrument,
    OrderAck,
    OrderFill,
    OrderReject,
    Place,
    Side,
    Trade,
)
from bot.runtime.sim_loop import LoopConfig, OffTickError, SimLoop
from bot.venues.latency import JitteredLatency
from bot.venues.queue import RiskAverseQueue
from bot.venues.sim import POST_ONLY_REJECT, SimVenue

SYM = "BTCUSDT"
MS = 1_000_000
T0 = 1_700_000_000_000_000_000
INST = Instrument(SYM, Decimal("0.1"), Decimal("0.001"), 1, Decimal("5"))
D, S, T = int(Kind.DELTA), int(Kind.SNAPSHOT), int(Kind.TRADE)
Row = tuple[int, int, int, int, float, float]  # (local ms, exch ms, kind, side, price, qty)


def chunk(rows: list[Row]) -> MarketChunk:
    return MarketChunk(
        symbol=SYM,
        ts_local=np.array([T0 + r[0] * MS for r in rows], dtype=np.int64),
        ts_exch=np.array([T0 + r[1] * MS for r in rows], dtype=np.int64),
        kind=np.array([r[2] for r in rows], dtype=np.int8),
        side=np.array([r[3] for r in rows], dtype=np.int8),
        price=np.array([r[4] for r in rows], dtype=np.float64),
        qty=np.array([r[5] for r in rows], dtype=np.float64),
        trade_id=np.array([i if r[2] == T else -1 for i, r in enumerate(rows)], dtype=np.int64),
    )


def snapshot(local: int, exch: int) -> list[Row]:
    return [(local, exch, S, 1, 100.0, 1.0), (local, exch, S, 1, 99.9, 2.0),
            (local, exch, S, -1, 100.1, 1.0), (local, exch, S, -1, 100.2, 2.0)]  # fmt: skip


class BidOnce:
    """On the first book update, one post-only bid of 500 lots at the touch."""

    def __init__(self) -> None:
        self.events: list[Event] = []

    def on_event(self, event: Event) -> list[Command]:
        self.events.append(event)
        if isinstance(event, BookUpdate) and len(self.of(BookUpdate)) == 1:
            return [Place(event.ts_ns, SYM, "b1", Side.BUY, event.bid_px, 500)]
        return []

    def of(self, kind: type) -> list[Event]:
        return [e for e in self.events if isinstance(e, kind)]


class SeenVenue(SimVenue):
    """The real sim venue, noting the venue time of every market event it matches on."""

    seen: list[tuple[str, int]]

    def on_trade(self, symbol: str, ts_ns: int, aggressor: int, px: int, qty: int) -> None:
        self.seen.append(("trade", (ts_ns - T0) // MS))
        super().on_trade(symbol, ts_ns, aggressor, px, qty)

    def on_touch(self, symbol: str, ts_ns: int) -> None:
        self.seen.append(("touch", (ts_ns - T0) // MS))
        super().on_touch(symbol, ts_ns)


def replay(
    chunks: list[MarketChunk], clock: ClockOffset | None = None
) -> tuple[BidOnce, SeenVenue, SimLoop]:
    book = L2Book()
    venue = SeenVenue({SYM: INST}, {SYM: book}, fee=FeeTier(maker_bps=-0.5, taker_bps=3),
                      latency=JitteredLatency(20, 10, 20, 0, seed=1),
                      queue=RiskAverseQueue())  # fmt: skip
    venue.seen = []
    engine = BidOnce()
    loop = SimLoop(engine, venue, {SYM: book}, {SYM: INST}, MemoryJournal(),
                   LoopConfig(timer_ms=10_000, clock=clock))  # fmt: skip
    loop.run(chunks)
    return engine, venue, loop


# --- the offset ----------------------------------------------------------------------


def test_the_offset_is_the_smallest_gap_less_the_feed_latency() -> None:
    rows = [(0, 1270, D, 1, 90.0, 1.0), (5, 1255, D, 1, 90.0, 2.0), (9, 1200, T, 1, 100.0, 1.0)]
    data = chunk(rows)
    assert estimate_offset(data).offset_ns == -1270 * MS
    clock = estimate_offset(data, feed_latency_ns=2 * MS)
    assert (clock.offset_ns, clock.min_gap_ns) == (-1272 * MS, -1270 * MS)
    assert clock.as_dict()["offset_ms"] == -1272.0
    # a later row faster than the estimate is seen by the venue when the bot sees it
    later = chunk([(100, 1371, D, 1, 90.0, 3.0)])
    assert clock.to_venue(later.ts_exch, later.ts_local).tolist() == [T0 + 99 * MS]
    assert clock.to_venue(data.ts_exch, data.ts_local).tolist() == [
        T0 + (1270 - 1272) * MS, T0 + (1255 - 1272) * MS, T0 + (1200 - 1272) * MS
    ]  # fmt: skip


def test_an_offset_needs_rows_and_a_non_negative_feed_latency() -> None:
    with pytest.raises(ClockError, match="no rows"):
        estimate_offset(chunk([]))
    with pytest.raises(ClockError, match="feed latency"):
        estimate_offset(chunk([(0, 0, D, 1, 90.0, 1.0)]), feed_latency_ns=-1)


# --- post-only after a cross in exchange time ---------------------------------------------


def crossing_rows(exch_of_cross: int) -> list[Row]:
    # the bot bids 100.0 at local 0; the ask comes down to 100.0 (our bid leaves the
    # market's book) at exchange time `exch_of_cross`, which the bot learns at local 40
    return [*snapshot(0, 0),
            (40, exch_of_cross, D, 1, 100.0, 0.0), (40, exch_of_cross, D, 1, 99.9, 2.0),
            (40, exch_of_cross, D, -1, 100.0, 1.0),
            (80, 80, D, 1, 99.0, 1.0)]  # fmt: skip


def test_a_post_only_order_arriving_after_the_cross_in_exchange_time_is_rejected() -> None:
    # the cross happened at exchange 10 ms; our order reaches the venue at 20 ms
    engine, venue, _ = replay([chunk(crossing_rows(10))])
    (reject,) = engine.of(OrderReject)
    assert POST_ONLY_REJECT in reject.reason  # type: ignore[attr-defined]
    assert reject.ts_ns == T0 + 30 * MS  # venue 20 ms + 10 ms response
    assert engine.of(OrderFill) == [] and venue.counts["post_only_rejects"] == 1
    # the engine saw the cross only at its own receipt time
    assert [(u.ts_ns - T0) // MS for u in engine.of(BookUpdate)] == [0, 40]


def test_on_one_clock_the_same_order_rests_and_the_cross_fills_it() -> None:
    engine, venue, _ = replay([chunk(crossing_rows(40))])
    assert engine.of(OrderReject) == [] and len(engine.of(OrderAck)) == 1
    (fill,) = engine.of(OrderFill)
    assert fill.match_ts_ns == T0 + 40 * MS  # type: ignore[attr-defined]
    assert venue.counts["post_only_rejects"] == 0


# --- the venue sees rows in exchange-time order -------------------------------------------


def test_the_venue_sees_a_trade_before_a_book_row_the_bot_received_first() -> None:
    rows = [*snapshot(0, 0),
            (20, 20, D, -1, 100.1, 3.0),  # received first, happened at 20
            (30, 5, T, -1, 99.9, 0.5)]  # fmt: skip  # received later, happened at 5
    engine, venue, loop = replay([chunk(rows)], ClockOffset(0, 0, 0, len(rows)))
    assert venue.seen == [("touch", 0), ("trade", 5), ("touch", 20)]
    # the bot hears of each in receipt order, at its receipt time
    heard = [(type(e).__name__, (e.ts_ns - T0) // MS) for e in engine.events
             if isinstance(e, BookUpdate | Trade)]  # fmt: skip
    assert heard == [("BookUpdate", 0), ("BookUpdate", 20), ("Trade", 30)]
    assert loop.stats.late_rows == 0


def test_within_one_stream_the_receipt_order_stands() -> None:
    # the book stream's second row carries an earlier stamp (a jittered feed): it still
    # follows the first, or the level added then removed would be left standing
    rows = [*snapshot(0, 0),
            (10, 10, D, -1, 100.3, 1.0), (12, 8, D, -1, 100.3, 0.0),
            (11, 9, T, 1, 100.1, 0.001)]  # fmt: skip
    _, venue, loop = replay([chunk(rows)], ClockOffset(0, 0, 0, 1))
    book = venue.books[SYM]
    assert 1003 not in book.asks and loop.stats.crossed_messages == 0
    # the trade stream is ordered against the book by its own stamp: 9 < the lifted 10
    assert venue.seen == [("touch", 0), ("trade", 9)]


def test_rows_near_a_chunk_end_wait_for_an_earlier_row_of_the_next_chunk() -> None:
    first = [*snapshot(0, 0), (30, 5, D, -1, 100.2, 3.0), (40, 40, D, -1, 100.1, 4.0)]
    second = [(45, 30, T, -1, 99.9, 0.5)]  # lag 15 ms <= the 25 ms seen: before the 40 row
    _, venue, loop = replay([chunk(first), chunk(second)], ClockOffset(0, 0, 0, 1))
    assert venue.seen == [("touch", 0), ("trade", 30), ("touch", 40)]
    assert loop.stats.late_rows == 0 and loop.stats.rows == len(first) + len(second)


def test_a_row_later_than_the_bound_is_replayed_now_not_in_the_venues_past() -> None:
    first = [*snapshot(0, 0), (30, 5, D, -1, 100.2, 3.0), (40, 40, D, -1, 100.1, 4.0)]
    second = [(45, 2, T, -1, 99.9, 0.5)]  # lag 43 ms: slower than any row before it
    _, venue, loop = replay([chunk(first), chunk(second)], ClockOffset(0, 0, 0, 1))
    # replayed 5 ms (the venue's time then: the 40 ms row was still held back)
    assert venue.seen == [("touch", 0), ("trade", 5), ("touch", 40)]
    assert loop.stats.late_rows == 1


def test_fills_carry_the_venues_match_time_not_the_bots_receipt() -> None:
    # a sell sweeps through our 100.0 bid at exchange 30 ms; the bot hears at 70 ms
    rows = [*snapshot(0, 0), (70, 30, T, -1, 99.9, 0.001), (90, 90, D, 1, 99.0, 1.0)]
    engine, _, _ = replay([chunk(rows)], ClockOffset(0, 0, 0, 1))
    (fill,) = engine.of(OrderFill)
    assert (fill.qty, fill.match_ts_ns, fill.ts_ns) == (500, T0 + 30 * MS, T0 + 40 * MS)  # type: ignore[attr-defined]
    assert fill.match_mid_px == 1000.5  # type: ignore[attr-defined]
    assert engine.of(Trade)[0].ts_ns == T0 + 70 * MS


# --- snapshots and the tick grid -----------------------------------------------------------


def test_a_mid_stream_snapshot_resets_the_queue_at_our_level() -> None:
    rows = [*snapshot(0, 0), (50, 50, S, 1, 100.0, 0.3), (50, 50, S, -1, 100.1, 1.0)]
    _, venue, _ = replay([chunk(rows[:4]), chunk(rows[4:])], ClockOffset(0, 0, 0, 1))
    assert venue.live["b1"].queue_ahead == 300  # joined behind 1000 lots; the snapshot shows 300


def test_a_price_off_the_tick_grid_is_an_error_naming_symbol_price_tick_and_time() -> None:
    rows = [*snapshot(0, 0), (7, 3, D, 1, 99.95, 1.0)]
    with pytest.raises(OffTickError) as err:
        replay([chunk(rows)])
    assert (err.value.symbol, err.value.price, err.value.tick) == (SYM, 99.95, Decimal("0.1"))
    assert (err.value.ts_local, err.value.ts_exch) == (T0 + 7 * MS, T0 + 3 * MS)
    for text in (SYM, "99.95", "0.1", str(T0 + 7 * MS), "2023-11-14T22:13:20.007000000Z"):
        assert text in str(err.value)
    # the same prices on the grid replay
    replay([chunk([*snapshot(0, 0), (7, 3, D, 1, 99.8, 1.0)])])
