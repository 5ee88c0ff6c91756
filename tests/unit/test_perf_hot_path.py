"""The hot-path shortcuts give the answers of the plain computation.

Each shortcut (the policy's answer cache, the engine's settled cycle, quotes rows
only on change, the loop's inlined book deltas, the journal's column buffers) is
checked against a reference that takes no shortcut: a fresh object per call, a
brute-force book, or an older row layout worked by hand.
"""

from __future__ import annotations

import random
from decimal import Decimal
from typing import Any

import numpy as np
import pytest

from bot.config import FeeTier, Settings, StrategyConfig
from bot.engine import Engine
from bot.journal import JournalError, MemoryJournal, TableBuffer
from bot.market.book import ASK, BID, NO_ASK, NO_BID, L2Book
from bot.market.schema import Kind, MarketChunk
from bot.model import (
    BookUpdate,
    Cancel,
    CancelAck,
    Command,
    Event,
    Instrument,
    Liquidity,
    OrderAck,
    OrderFill,
    Place,
    Timer,
)
from bot.orders import ClientOrderIds, diff
from bot.requoter import UNSETTLED, Requoter
from bot.runtime.sim_loop import LoopConfig, SimLoop
from bot.strategy import Quote, QuotePolicy
from bot.trading_state import TradingState
from bot.venues.latency import JitteredLatency
from bot.venues.queue import RiskAverseQueue
from bot.venues.sim import SimVenue

SYM = "BTCUSDT"
MS = 1_000_000
T0 = 1_723_161_600_000_000_000
INST = Instrument(SYM, Decimal("0.1"), Decimal("0.001"), 1, Decimal("5"))


# --- QuotePolicy.wanted: cached answers equal fresh ones ---------------------------------


def strategy_cfg(**overrides: object) -> StrategyConfig:
    base: dict[str, object] = {
        "fair_value": "microprice",
        "vol_multiplier": 0.0,  # no vol state: a fresh policy answers the same question
        "skew_model": "linear",
        "skew_bps_per_inventory": 5.0,
        "levels": 2,
        "level_spacing_bps": 0.7,
    }
    base.update(overrides)
    return StrategyConfig.model_validate(base)


def test_wanted_from_the_cache_equals_a_fresh_policy_on_random_touches() -> None:
    rng = random.Random(11)
    cfg = strategy_cfg()
    cached = QuotePolicy(cfg, INST, -0.5, 5_000.0)
    bid, position = 600_000, 0
    reused = 0
    for _ in range(3_000):
        # small moves and repeats, so that rounded prices often stay put
        bid += rng.choice((-1, 0, 0, 0, 1))
        ask = bid + rng.choice((1, 1, 2))
        bid_qty, ask_qty = rng.randint(1, 4), rng.randint(1, 4)
        if rng.random() < 0.05:
            position += rng.choice((-3, 3))
        before = cached._last_quotes
        got = cached.wanted(0, bid, bid_qty, ask, ask_qty, position)
        fresh = QuotePolicy(cfg, INST, -0.5, 5_000.0).wanted(
            0, bid, bid_qty, ask, ask_qty, position
        )
        assert got == fresh
        reused += got is before
    assert reused > 500  # the shortcut was taken, not only the slow path


def test_same_rounded_prices_return_the_same_tuple() -> None:
    cfg = strategy_cfg(fair_value="mid", levels=1)
    p = QuotePolicy(cfg, INST, -0.5, 5_000.0)
    first = p.wanted(0, 600_000, 5, 600_001, 5, 0)
    # sizes change, the mid does not: the same prices, the same object
    assert p.wanted(0, 600_000, 7, 600_001, 2, 0) is first
    # a touch 1 tick up moves both prices: a new answer
    moved = p.wanted(0, 600_001, 7, 600_002, 2, 0)
    assert moved != first
    assert [q.px - f.px for q, f in zip(moved, first, strict=True)] == [1, 1]


# --- the engine: settled cycles and quotes rows ------------------------------------------


def engine_settings(**risk: Any) -> Settings:
    return Settings.model_validate(
        {
            "strategy": {"fair_value": "mid", "vol_multiplier": 0.0, "order_qty": "0.01"},
            "risk": {"max_orders_per_s": 1000.0, "max_cancels_per_s": 1000.0, **risk},
        }
    )


def test_quotes_rows_only_when_the_wanted_set_changes() -> None:
    journal = MemoryJournal()
    engine = Engine(engine_settings(), journal, id_prefix="t1")
    out = engine.on_event(BookUpdate(T0, SYM, 600_000, 5, 600_001, 5))
    for c in out:
        assert isinstance(c, Place)
        engine.on_event(OrderAck(T0 + MS, SYM, c.client_order_id))
    # sizes change only: mid-based prices are the same, so no new decision rows
    assert engine.on_event(BookUpdate(T0 + 100 * MS, SYM, 600_000, 9, 600_001, 1)) == []
    assert engine.on_event(Timer(T0 + 200 * MS)) == []
    # a one-tick move changes both prices (within the re-quote threshold: no orders)
    assert engine.on_event(BookUpdate(T0 + 300 * MS, SYM, 600_001, 9, 600_002, 1)) == []
    quotes = journal.frame("quotes")
    # 1 bps of 600000.5 = 60.00005 ticks -> 599940 / 600061, then 599941 / 600062
    assert quotes[["ts_ns", "side", "price"]].values.tolist() == [
        [T0, 1, 59994.0],
        [T0, -1, 60006.1],
        [T0 + 300 * MS, 1, 59994.1],
        [T0 + 300 * MS, -1, 60006.2],
    ]


def test_a_settled_cycle_still_replaces_orders_when_they_age_out() -> None:
    settings = engine_settings()
    max_age_ms = settings.strategy.max_quote_age_ms
    engine = Engine(settings, MemoryJournal(), id_prefix="t1")
    placed = engine.on_event(BookUpdate(T0, SYM, 600_000, 5, 600_001, 5))
    for c in placed:
        assert isinstance(c, Place)
        engine.on_event(OrderAck(T0 + MS, SYM, c.client_order_id))
    # nothing changes (the same touch keeps the stale-data guard quiet): every timer
    # before the age limit settles with no commands
    for t_ms in range(100, max_age_ms, 100):
        assert engine.on_event(BookUpdate(T0 + t_ms * MS, SYM, 600_000, 5, 600_001, 5)) == []
        assert engine.on_event(Timer(T0 + t_ms * MS)) == [], t_ms
    aged = engine.on_event(Timer(T0 + max_age_ms * MS))
    assert [type(c) for c in aged] == [Cancel, Cancel, Place, Place]


class _PlainRequoter(Requoter):
    """The reference: forgets every cached answer before each quoting cycle, so it
    computes the wanted set and the diff from scratch and journals every decision."""

    __slots__ = ()

    def cycle(self, ts: int, state: TradingState, *, force: bool = False) -> list[Command]:
        self.settled = UNSETTLED
        self.journaled = None
        self.policy._last_inputs = None
        self.policy._last_prices = []
        return super().cycle(ts, state, force=force)


def _no_shortcuts(engine: Engine) -> Engine:
    for market in engine._markets.values():
        market.quoter.__class__ = _PlainRequoter  # same slots: only `cycle` differs
    return engine


def _drive(engine: Engine, rng: random.Random) -> list[list[Command]]:
    """A random walk of touches (small and large moves, size-only changes), timers,
    acks, cancel acks and fills; the venue's answers follow the engine's commands."""
    ts, bid = T0, 600_000
    pending: list[Any] = []  # an ack, a cancel ack or a fill, as a function of ts
    answers = []
    fills = 0
    for _ in range(400):
        ts += rng.choice((10, 30, 60, 200, 1_500)) * MS
        ev: Event
        if pending and rng.random() < 0.6:
            ev = pending.pop(0)(ts)
        elif rng.random() < 0.3:
            ev = Timer(ts)
        else:
            bid += rng.choice((-200, -1, 0, 0, 0, 1, 200))
            ev = BookUpdate(ts, SYM, bid, rng.randint(1, 5), bid + 1, rng.randint(1, 5))
        commands = engine.on_event(ev)
        answers.append(commands)
        # the timers' pnl / inventory figures: from the cache, as if recomputed
        assert engine._pnl_and_inventory() == engine._marked_pnl_and_inventory()
        for c in commands:
            if isinstance(c, Place):
                pending.append(lambda t, c=c: OrderAck(t, SYM, c.client_order_id))
                if rng.random() < 0.2:  # a partial fill moves the position
                    fills += 1
                    pending.append(
                        lambda t, c=c, n=fills: OrderFill(
                            t, SYM, c.client_order_id, f"f{n}", c.side, c.px, 1,
                            Liquidity.MAKER, Decimal("-0.003"),
                        )
                    )  # fmt: skip
            elif isinstance(c, Cancel):
                pending.append(lambda t, c=c: CancelAck(t, SYM, c.client_order_id))
    return answers


def _decisions(journal: MemoryJournal) -> list[list[Any]]:
    """Quotes rows of the decisions that differ from the previous one (mid aside)."""
    frame = journal.frame("quotes")
    kept: list[list[Any]] = []
    last: list[Any] = []
    for _, rows in frame.groupby("ts_ns", sort=False):
        now = rows[["side", "level", "price", "qty"]].values.tolist()
        if now != last:
            kept.extend(rows.values.tolist())
            last = now
    return kept


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_the_shortcuts_change_no_command_and_no_row(seed: int) -> None:
    settings = Settings.model_validate(
        {
            "strategy": {"fair_value": "microprice", "vol_multiplier": 1.0, "order_qty": "0.01"},
            "risk": {"max_orders_per_s": 1000.0, "max_cancels_per_s": 1000.0},
        }
    )
    fast_journal, slow_journal = MemoryJournal(), MemoryJournal()
    fast = _drive(Engine(settings, fast_journal, id_prefix="t1"), random.Random(seed))
    slow_engine = _no_shortcuts(Engine(settings, slow_journal, id_prefix="t1"))
    slow = _drive(slow_engine, random.Random(seed))
    assert fast == slow
    assert sum(isinstance(c, Place) for a in fast for c in a) > 10
    assert len(fast_journal.frame("fills")) > 3
    for table in ("orders", "fills", "risk", "book", "positions"):
        assert fast_journal.frame(table).equals(slow_journal.frame(table)), table
    assert fast_journal.frame("quotes").values.tolist() == _decisions(slow_journal)
    assert len(slow_journal.frame("quotes")) > len(fast_journal.frame("quotes"))


def test_shortcut_3_answers_as_the_diff_does() -> None:
    """`Requoter._still_kept` says "the diff keeps every order" exactly when `diff` does,
    on wanted sets near, at and beyond the re-quote threshold of the settled orders."""
    engine = Engine(engine_settings(), MemoryJournal(), id_prefix="t1")
    for c in engine.on_event(BookUpdate(T0, SYM, 600_000, 5, 600_001, 5)):
        assert isinstance(c, Place)
        engine.on_event(OrderAck(T0 + MS, SYM, c.client_order_id))
    quoter = engine._markets[SYM].quoter
    assert engine.on_event(Timer(T0 + 100 * MS)) == []  # the diff asked for nothing: settled
    bid, ask = (o for o in quoter.live.values())
    threshold = quoter.policy.requote_threshold_bps  # 0.5 bps: 30 ticks at 600 000
    rng = random.Random(5)
    answers = set()
    for _ in range(2_000):
        bid_px = bid.px + rng.randint(-35, 35)
        ask_px = ask.px + rng.randint(-35, 35)
        qty = rng.choice((bid.qty, bid.qty, bid.qty, bid.qty + 1))
        wanted: tuple[Quote, ...] = (
            Quote(SYM, bid.side, 0, bid_px, qty),
            Quote(SYM, ask.side, 0, ask_px, ask.qty),
        )
        if rng.random() < 0.1:
            wanted = wanted[:1]  # a side gone: its order must be cancelled
        cancels, places = diff(
            wanted, quoter.live.values(), ts_ns=T0 + 200 * MS, next_id=lambda: "n",
            threshold_bps=threshold, max_age_ns=quoter.policy.max_quote_age_ns,
        )  # fmt: skip
        kept = quoter._still_kept(wanted)
        assert kept == (not cancels and not places), (wanted, cancels, places)
        answers.add(kept)
    assert answers == {True, False}


# --- the loop's inlined deltas and the book's undo value ---------------------------------


def test_apply_delta_returns_the_previous_size() -> None:
    book = L2Book()
    assert book.apply_delta(BID, 100, 3) == 0
    assert book.apply_delta(BID, 100, 5) == 3
    assert book.apply_delta(BID, 100, 0) == 5
    assert book.apply_delta(BID, 100, 0) == 0  # removing a missing level
    assert book.best_bid == NO_BID


class _Quiet:
    def on_event(self, event: Event) -> list[Command]:
        return []


def test_the_loop_book_matches_a_brute_force_book_on_random_deltas() -> None:
    rng = random.Random(8)
    n = 6_000
    sides = rng.choices((1, -1), k=n)
    # bids below 1000.0, asks above: an uncrossed book whose best levels often go
    pxs = [
        (rng.randint(9_900, 9_999) if s == 1 else rng.randint(10_001, 10_100)) / 10 for s in sides
    ]
    qtys = [0.0 if rng.random() < 0.45 else rng.randint(1, 9) / 1000 for _ in range(n)]
    ts = np.array([T0 + (i // 3) * MS for i in range(n)], dtype=np.int64)
    chunk = MarketChunk(
        SYM, ts, ts, np.full(n, int(Kind.DELTA), dtype=np.int8), np.array(sides, dtype=np.int8),
        np.array(pxs), np.array(qtys), np.full(n, -1, dtype=np.int64),
    )  # fmt: skip
    book = L2Book()
    venue = SimVenue(
        {SYM: INST}, {SYM: book}, fee=FeeTier(maker_bps=-0.5, taker_bps=3),
        latency=JitteredLatency(20, 10, 20, 0, seed=1), queue=RiskAverseQueue(),
    )  # fmt: skip
    loop = SimLoop(_Quiet(), venue, {SYM: book}, {SYM: INST}, MemoryJournal(), LoopConfig())
    loop.run([chunk])
    ref: dict[int, dict[int, int]] = {BID: {}, ASK: {}}
    for side, px, qty in zip(sides, pxs, qtys, strict=True):
        ticks, lots = round(px * 10), round(qty * 1000)
        if lots:
            ref[side][ticks] = lots
        else:
            ref[side].pop(ticks, None)
    assert book.bids == ref[BID]
    assert book.asks == ref[ASK]
    assert book.best_bid == (max(ref[BID]) if ref[BID] else NO_BID)
    assert book.best_ask == (min(ref[ASK]) if ref[ASK] else NO_ASK)


# --- the journal's column buffers ------------------------------------------------------------


def test_column_buffer_gives_the_rows_in_order_and_reports_a_bad_width_at_flush() -> None:
    buffer = TableBuffer("risk")
    buffer.append(1, SYM, "block", "qty", "too big", "ACTIVE")
    buffer.add((2, SYM, "freeze", "edge", "low edge", "FROZEN"))
    assert buffer.rows == 2
    assert buffer.columns()[0] == [1, 2]
    table = buffer.take()
    assert table.column("kind").to_pylist() == ["block", "freeze"]
    assert buffer.rows == 0
    buffer.append(3, SYM)
    with pytest.raises(JournalError, match="risk: row has 2 values, table has 6 columns"):
        buffer.take()


# --- client order ids: the cached high digits roll over like a counter -------------------


def test_client_ids_roll_over_base_36_digits() -> None:
    # 35 = "z", 36 = "10", 37 = "11"; 1295 = 35 * 36 + 35 = "zz", 1296 = 36**2 = "100"
    ids = ClientOrderIds("p", start=34)
    assert [ids.next() for _ in range(3)] == ["p-z", "p-10", "p-11"]
    ids = ClientOrderIds("p", start=1294)
    assert [ids.next() for _ in range(2)] == ["p-zz", "p-100"]
    ids = ClientOrderIds("p")
    assert [ids.next() for _ in range(2)] == ["p-1", "p-2"]
