"""The sim loop on hand-built chunks: what reaches the engine, and when."""

from __future__ import annotations

from decimal import Decimal

import numpy as np

from bot.config import FaultConfig, FeeTier
from bot.journal import MemoryJournal
from bot.market.book import L2Book
from bot.market.schema import Kind, MarketChunk
from bot.model import (
    BookUpdate,
    Command,
    Event,
    Instrument,
    OrderAck,
    OrderFill,
    Place,
    Side,
    Timer,
    Trade,
)
from bot.runtime.sim_loop import LoopConfig, SimLoop, to_float
from bot.venues.latency import JitteredLatency
from bot.venues.queue import RiskAverseQueue
from bot.venues.sim import FeedFaults, SimVenue

SYM = "BTCUSDT"
MS = 1_000_000
T0 = 1_700_000_000_000_000_000
INST = Instrument(SYM, Decimal("0.1"), Decimal("0.001"), 1, Decimal("5"))
D, S, T = int(Kind.DELTA), int(Kind.SNAPSHOT), int(Kind.TRADE)


def chunk(rows: list[tuple[int, int, int, float, float]]) -> MarketChunk:
    """rows: (ts offset ms, kind, side, price, qty)."""
    ts = np.array([T0 + r[0] * MS for r in rows], dtype=np.int64)
    return MarketChunk(
        symbol=SYM,
        ts_local=ts,
        ts_exch=ts,
        kind=np.array([r[1] for r in rows], dtype=np.int8),
        side=np.array([r[2] for r in rows], dtype=np.int8),
        price=np.array([r[3] for r in rows], dtype=np.float64),
        qty=np.array([r[4] for r in rows], dtype=np.float64),
        trade_id=np.array([i if r[1] == T else -1 for i, r in enumerate(rows)], dtype=np.int64),
    )


SNAPSHOT = [
    (0, S, 1, 100.0, 1.0), (0, S, 1, 99.9, 2.0), (0, S, 1, 90.0, 5.0),
    (0, S, -1, 100.1, 1.0), (0, S, -1, 100.2, 2.0), (0, S, -1, 110.0, 5.0),
]  # fmt: skip


class Recording:
    """A tiny engine: records events; on the first book update quotes one bid at the touch."""

    def __init__(self) -> None:
        self.events: list[Event] = []

    def on_event(self, event: Event) -> list[Command]:
        self.events.append(event)
        if isinstance(event, BookUpdate) and not any(isinstance(e, BookUpdate) for e in
                                                     self.events[:-1]):  # fmt: skip
            return [Place(event.ts_ns, SYM, "b1", Side.BUY, event.bid_px, 500)]
        return []

    def of(self, kind: type) -> list[Event]:
        return [e for e in self.events if isinstance(e, kind)]


def make_loop(
    engine: Recording,
    *,
    timer_ms: int = 1_000,
    faults: FeedFaults | None = None,
    record_book: bool = False,
    latency_ms: float = 20,
) -> tuple[SimLoop, SimVenue, MemoryJournal]:
    book = L2Book()
    venue = SimVenue(
        {SYM: INST},
        {SYM: book},
        fee=FeeTier(maker_bps=-0.5, taker_bps=3),
        latency=JitteredLatency(latency_ms, 10, 20, 0, seed=1),
        queue=RiskAverseQueue(),
    )
    journal = MemoryJournal()
    loop = SimLoop(
        engine, venue, {SYM: book}, {SYM: INST}, journal,
        LoopConfig(timer_ms=timer_ms, book_sample_ms=100, record_book=record_book,
                   feed_faults=faults),
    )  # fmt: skip
    return loop, venue, journal


def test_book_update_only_when_a_message_changes_the_touch() -> None:
    engine = Recording()
    loop, _, _ = make_loop(engine)
    rows = [
        *SNAPSHOT,
        (5, D, 1, 90.0, 7.0),  # deep: no update
        (6, D, -1, 110.0, 0.0),  # deep removal: no update
        (7, D, 1, 100.0, 3.0), (7, D, 1, 99.0, 1.0), (7, D, -1, 100.1, 2.0),  # one message
        (8, D, 1, 99.8, 1.0),  # below the touch: no update
        (9, D, 1, 100.0, 0.0),  # best bid removed -> 99.9
    ]  # fmt: skip
    stats = loop.run([chunk(rows)])
    updates = engine.of(BookUpdate)
    assert [(u.ts_ns - T0) // MS for u in updates] == [0, 7, 9]  # type: ignore[attr-defined]
    assert updates[1] == BookUpdate(T0 + 7 * MS, SYM, 1000, 3000, 1001, 2000)
    assert updates[2] == BookUpdate(T0 + 9 * MS, SYM, 999, 2000, 1001, 2000)
    assert stats.messages == 6 and stats.book_updates == 3 and stats.rows == len(rows)


def test_venue_reports_arrive_in_time_order_between_market_rows() -> None:
    engine = Recording()
    loop, _, _ = make_loop(engine, timer_ms=15)
    rows = [*SNAPSHOT, (10, D, 1, 90.0, 1.0), (25, D, 1, 90.0, 2.0), (40, T, -1, 99.0, 1.0),
            (60, D, 1, 90.0, 3.0)]  # fmt: skip
    loop.run([chunk(rows)])
    stamps = [e.ts_ns for e in engine.events]
    assert stamps == sorted(stamps)
    (ack,) = engine.of(OrderAck)
    assert ack.ts_ns == T0 + 30 * MS  # sent at 0, live at 20 ms, ack after 10 ms more
    # the trade through our bid (a sell at 99.0 < 100.0) fills us, reported 10 ms later
    (fill,) = engine.of(OrderFill)
    assert fill.ts_ns == T0 + 50 * MS and fill.qty == 500  # type: ignore[attr-defined]
    assert [t.ts_ns - T0 for t in engine.of(Timer)] == [15 * MS, 30 * MS, 45 * MS, 60 * MS]
    # the timer at 30 ms and the ack at 30 ms: both delivered before the 40 ms trade
    assert engine.of(Trade)[0].ts_ns == T0 + 40 * MS


def test_depth_change_at_our_level_moves_the_queue() -> None:
    engine = Recording()
    loop, venue, _ = make_loop(engine, latency_ms=1)
    rows = [*SNAPSHOT, (10, D, 1, 100.0, 0.4), (20, D, 1, 100.0, 0.2)]
    loop.run([chunk(rows)])
    order = venue.live["b1"]
    # joined behind 1000 lots; risk averse: the queue ahead is capped by the level size
    assert order.queue_ahead == 200


def test_duration_stops_the_replay() -> None:
    engine = Recording()
    book = L2Book()
    venue = SimVenue({SYM: INST}, {SYM: book}, fee=FeeTier(maker_bps=0, taker_bps=0),
                     latency=JitteredLatency(1, 1, 1, 0, 1), queue=RiskAverseQueue())  # fmt: skip
    loop = SimLoop(engine, venue, {SYM: book}, {SYM: INST}, MemoryJournal(),
                   LoopConfig(duration_ns=50 * MS))  # fmt: skip
    rows = [*SNAPSHOT, (40, D, 1, 100.0, 2.0), (60, D, 1, 100.0, 3.0)]
    stats = loop.run([chunk(rows)])
    assert stats.stopped_early and stats.rows == len(SNAPSHOT) + 1


def test_book_samples_on_a_fixed_grid_with_exact_decimal_prices() -> None:
    engine = Recording()
    loop, _, journal = make_loop(engine, record_book=True)
    loop.run([chunk([*SNAPSHOT, (250, D, 1, 100.0, 2.0), (330, D, 1, 100.0, 3.0)])])
    frame = journal.frame("book")
    assert list((frame.ts_ns - T0) // MS) == [100, 200, 300]
    assert list(frame.bid_qty) == [1.0, 1.0, 2.0] and frame.mid.iloc[0] == 100.05
    assert to_float(Decimal("0.1"))(618002) == 61800.2


def test_disconnect_hides_the_market_from_the_engine() -> None:
    engine = Recording()
    faults = FeedFaults(FaultConfig(disconnect_prob=1.0), seed=3)
    loop, _, _ = make_loop(engine, faults=faults)
    loop.run([chunk([*SNAPSHOT, (7, D, 1, 100.0, 3.0), (8, T, 1, 100.1, 0.1)])])
    assert engine.of(BookUpdate) == [] and engine.of(Trade) == []


def test_crossed_fault_reaches_the_engine_crossed() -> None:
    engine = Recording()
    faults = FeedFaults(FaultConfig(crossed_book_prob=1.0), seed=3)
    loop, _, _ = make_loop(engine, faults=faults)
    loop.run([chunk([*SNAPSHOT, (7, D, 1, 100.0, 3.0)])])
    assert all(u.bid_px > u.ask_px for u in engine.of(BookUpdate))  # type: ignore[attr-defined]


def test_snapshot_replaces_the_book() -> None:
    engine = Recording()
    loop, _, _ = make_loop(engine)
    second = [(5, S, 1, 50.0, 1.0), (5, S, -1, 50.1, 1.0)]
    loop.run([chunk(SNAPSHOT), chunk(second)])  # a message may also span chunks
    last = engine.of(BookUpdate)[-1]
    assert (last.bid_px, last.ask_px) == (500, 501)  # type: ignore[attr-defined]
