"""The simulated venue on small hand-built books: queue, fills, rejects, fees, latency, faults."""

from __future__ import annotations

from decimal import Decimal

import pytest

from bot.config import FaultConfig, FeeTier
from bot.market.book import ASK, BID, L2Book
from bot.model import (
    Cancel,
    CancelAck,
    CancelAll,
    CancelReject,
    Instrument,
    Liquidity,
    OrderAck,
    OrderFill,
    OrderReject,
    Place,
    Side,
    VenueReport,
)
from bot.venues.latency import JitteredLatency, ZeroLatency
from bot.venues.queue import NoQueue, ProbabilisticQueue, QueueModel, RiskAverseQueue, SimOrder
from bot.venues.sim import POST_ONLY_REJECT, ReportFaults, SimVenue

SYM = "BTCUSDT"
MS = 1_000_000
BTC = Instrument(SYM, Decimal("0.1"), Decimal("0.001"), min_qty_lots=1, min_notional=Decimal("5"))
# 60 000.0 USD = 600 000 ticks of 0.1
BID_PX, ASK_PX = 600_000, 600_001


def make_book() -> L2Book:
    book = L2Book()
    for i, qty in enumerate((10, 20, 30)):
        book.apply_delta(BID, BID_PX - i, qty)
        book.apply_delta(ASK, ASK_PX + i, qty)
    return book


def make_venue(
    queue: QueueModel | None = None,
    *,
    partial: bool = True,
    maker_bps: float = -0.5,
    latency: JitteredLatency | ZeroLatency | None = None,
    faults: ReportFaults | None = None,
) -> tuple[SimVenue, L2Book]:
    book = make_book()
    venue = SimVenue(
        {SYM: BTC},
        {SYM: book},
        fee=FeeTier(maker_bps=maker_bps, taker_bps=3.0),
        latency=latency or ZeroLatency(),
        queue=queue or RiskAverseQueue(),
        partial_fills=partial,
        faults=faults,
    )
    return venue, book


def drain(venue: SimVenue, until: int = 1 << 60) -> list[VenueReport]:
    out: list[VenueReport] = []
    while venue.next_ts() <= until:
        report = venue.pop_due(until)
        if report is not None:
            out.append(report)
    return out


def place(cid: str, side: Side, px: int, qty: int, ts: int = 0, post_only: bool = True) -> Place:
    return Place(ts, SYM, cid, side, px, qty, post_only=post_only)


def fills(reports: list[VenueReport]) -> list[OrderFill]:
    return [r for r in reports if isinstance(r, OrderFill)]


# --- queue position -------------------------------------------------------------


def test_trade_at_level_fills_only_after_the_queue_ahead_is_consumed() -> None:
    venue, _ = make_venue()
    venue.submit(place("b1", Side.BUY, BID_PX, 5), 0)
    assert isinstance(drain(venue)[0], OrderAck)
    # 10 lots displayed ahead of us at the best bid
    venue.on_trade(SYM, 1, ASK, BID_PX, 10)  # sell aggressor, exactly the queue ahead
    assert fills(drain(venue)) == []
    venue.on_trade(SYM, 2, ASK, BID_PX, 3)
    (fill,) = fills(drain(venue))
    assert (fill.qty, fill.px, fill.side, fill.liquidity) == (3, BID_PX, Side.BUY, Liquidity.MAKER)


def test_trade_larger_than_queue_fills_the_excess_only() -> None:
    venue, _ = make_venue()
    venue.submit(place("b1", Side.BUY, BID_PX, 5), 0)
    drain(venue)
    venue.on_trade(SYM, 1, ASK, BID_PX, 12)  # 10 ahead, 2 reach us
    (fill,) = fills(drain(venue))
    assert fill.qty == 2
    assert venue.live["b1"].leaves == 3


def test_buy_aggressor_does_not_touch_our_bid() -> None:
    venue, _ = make_venue()
    venue.submit(place("b1", Side.BUY, BID_PX, 5), 0)
    drain(venue)
    venue.on_trade(SYM, 1, BID, BID_PX, 100)
    assert fills(drain(venue)) == []


def test_risk_averse_and_probabilistic_differ_on_a_depth_decrease() -> None:
    averse, prob = RiskAverseQueue(), ProbabilisticQueue(power=3.0)
    a = SimOrder(SYM, "a", Side.BUY, BID_PX, 1)
    p = SimOrder(SYM, "p", Side.BUY, BID_PX, 1)
    averse.on_new(a, 10)
    prob.on_new(p, 10)
    # 10 ahead of us; 10 more join behind; then 8 are cancelled
    averse.on_depth(a, 10, 20)
    prob.on_depth(p, 10, 20)
    averse.on_depth(a, 20, 12)
    prob.on_depth(p, 20, 12)
    assert a.queue_ahead == 10  # risk averse: cancels were all behind us
    # front = back = 10: half the cancels are ahead of us -> 10 - 8 * 0.5
    assert p.queue_ahead == pytest.approx(6.0)
    # a cancel larger than the whole back must come (partly) from ahead
    averse.on_depth(a, 12, 3)
    assert a.queue_ahead == 3


def test_probabilistic_power_law_favours_the_longer_side() -> None:
    q = ProbabilisticQueue(power=2.0)
    order = SimOrder(SYM, "x", Side.SELL, ASK_PX, 1)
    q.on_new(order, 30)
    q.on_depth(order, 40, 30)  # front 30, back 10, cancel 10
    # share ahead = 30^2 / (30^2 + 10^2) = 0.9 -> 30 - 9
    assert order.queue_ahead == pytest.approx(21.0)


def test_trades_are_not_counted_twice_by_the_following_depth_decrease() -> None:
    q = ProbabilisticQueue()
    order = SimOrder(SYM, "x", Side.BUY, BID_PX, 1)
    q.on_new(order, 10)
    assert q.on_trade(order, 4) == 0
    assert order.queue_ahead == 6
    q.on_depth(order, 10, 6)  # the feed shows the same 4 lots leaving
    assert order.queue_ahead == 6


@pytest.mark.parametrize(("ahead", "reach"), [(9.6, 2), (9.4, 3), (9.5, 3), (12.0, 0)])
def test_a_fractional_queue_residual_is_rounded_not_floored(ahead: float, reach: int) -> None:
    # 12 - 9.4 = 2.6 lots reach us: 3, where flooring gave 2 (and 2.5 rounds up, as
    # hftbacktest's f64::round does)
    for model in (RiskAverseQueue(), ProbabilisticQueue()):
        order = SimOrder(SYM, "x", Side.BUY, BID_PX, 5)
        model.on_new(order, 0)
        order.queue_ahead = ahead
        assert model.on_trade(order, 12) == reach
        assert order.queue_ahead == max(ahead - 12, 0.0)


def test_no_queue_model_takes_every_trade() -> None:
    order = SimOrder(SYM, "x", Side.BUY, BID_PX, 1)
    q = NoQueue()
    q.on_new(order, 99)
    assert q.on_trade(order, 7) == 7


def test_depth_change_reaches_the_queue_through_the_venue() -> None:
    venue, _ = make_venue(ProbabilisticQueue(3.0))
    venue.submit(place("b1", Side.BUY, BID_PX, 1), 0)
    drain(venue)
    assert BID_PX in venue.resting(SYM, BID)
    venue.on_depth(SYM, BID, BID_PX, 10, 4)  # 6 cancelled, nobody behind us: all ahead
    assert venue.live["b1"].queue_ahead == pytest.approx(4.0)


# --- fills ----------------------------------------------------------------------------


def test_trade_through_fills_regardless_of_queue() -> None:
    venue, _ = make_venue()
    venue.submit(place("b1", Side.BUY, BID_PX, 5), 0)
    drain(venue)
    venue.on_trade(SYM, 1, ASK, BID_PX - 1, 50)
    (fill,) = fills(drain(venue))
    assert (fill.qty, fill.px) == (5, BID_PX)  # at our price, maker
    assert "b1" not in venue.live


def test_trade_through_fills_the_whole_order_not_the_print_size() -> None:
    # the case: a 10-lot bid and a 0.002 (2-lot) print one tick below it
    venue, _ = make_venue()
    venue.submit(place("b1", Side.BUY, BID_PX, 10), 0)
    drain(venue)
    venue.on_trade(SYM, 1, ASK, BID_PX - 1, 2)
    (fill,) = fills(drain(venue))
    assert (fill.qty, fill.px, fill.liquidity) == (10, BID_PX, Liquidity.MAKER)
    assert "b1" not in venue.live


def test_trade_at_our_price_is_capped_by_the_print_after_the_queue() -> None:
    venue, _ = make_venue()
    venue.submit(place("s1", Side.SELL, ASK_PX, 8), 0)
    drain(venue)
    # 10 lots ahead at the best ask: the first print only eats the queue
    venue.on_trade(SYM, 1, BID, ASK_PX, 10)
    assert fills(drain(venue)) == []
    venue.on_trade(SYM, 2, BID, ASK_PX, 3)
    venue.on_trade(SYM, 3, BID, ASK_PX, 3)
    got = fills(drain(venue))
    assert [f.qty for f in got] == [3, 3]
    assert len({f.trade_id for f in got}) == 2
    assert venue.live["s1"].leaves == 2


def test_a_sweep_fills_through_levels_whole_and_our_order_at_the_print_by_queue() -> None:
    venue, _ = make_venue()
    venue.submit(place("near", Side.BUY, BID_PX, 4), 0)
    venue.submit(place("deep", Side.BUY, BID_PX - 1, 4), 0)
    drain(venue)
    # the sweep's last print is at our deeper level, 20 lots displayed ahead of us
    venue.on_trade(SYM, 1, ASK, BID_PX - 1, 21)
    got = {f.client_order_id: f.qty for f in fills(drain(venue))}
    assert got == {"near": 4, "deep": 1}


def test_without_partial_fills_the_whole_order_fills() -> None:
    venue, _ = make_venue(partial=False)
    venue.submit(place("s1", Side.SELL, ASK_PX, 8), 0)
    drain(venue)
    venue.on_trade(SYM, 1, BID, ASK_PX + 1, 3)
    (fill,) = fills(drain(venue))
    assert fill.qty == 8


def test_book_moving_through_a_resting_order_fills_it() -> None:
    venue, book = make_venue()
    venue.submit(place("b1", Side.BUY, BID_PX, 2), 0)
    drain(venue)
    for i in range(3):
        book.apply_delta(ASK, ASK_PX + i, 0)
    book.apply_delta(ASK, BID_PX, 5)  # best ask now at our bid
    book.apply_delta(BID, BID_PX, 0)
    venue.on_touch(SYM, 10)
    (fill,) = fills(drain(venue))
    assert (fill.qty, fill.ts_ns) == (2, 10)


def test_a_snapshot_puts_our_orders_behind_its_displayed_size() -> None:
    venue, book = make_venue()
    venue.submit(place("b1", Side.BUY, BID_PX, 5), 0)
    venue.submit(place("b2", Side.BUY, BID_PX - 2, 5), 0)
    drain(venue)
    venue.on_trade(SYM, 1, ASK, BID_PX, 9)  # 1 lot left ahead of b1
    assert venue.live["b1"].queue_ahead == 1
    book.clear()  # a reconnect: the new snapshot shows 7 lots at b1's price, none at b2's
    book.apply_delta(BID, BID_PX, 7)
    book.apply_delta(ASK, ASK_PX, 7)
    venue.on_snapshot(SYM)
    assert (venue.live["b1"].queue_ahead, venue.live["b2"].queue_ahead) == (7, 0)
    venue.on_trade(SYM, 2, ASK, BID_PX, 7)  # the stale position would have filled 5 here
    assert fills(drain(venue)) == []


def test_a_fill_carries_the_match_time_and_the_venues_mid_then() -> None:
    lat = JitteredLatency(entry_ms=20, response_ms=10, cancel_ms=15, jitter_ms=0, seed=1)
    venue, book = make_venue(latency=lat)
    venue.on_touch(SYM, 0)  # the venue's touch: 600000 / 600001
    venue.submit(place("b1", Side.BUY, BID_PX, 2), 0)
    drain(venue, 20 * MS)
    # a message moves the ask through our bid: the match meets the touch before it
    for i in range(3):
        book.apply_delta(ASK, ASK_PX + i, 0)
        book.apply_delta(BID, BID_PX - i, 0)
    book.apply_delta(ASK, BID_PX - 5, 5)
    book.apply_delta(BID, BID_PX - 6, 5)
    venue.on_touch(SYM, 25 * MS)
    (fill,) = fills(drain(venue))
    assert (fill.match_ts_ns, fill.ts_ns) == (25 * MS, 35 * MS)
    assert fill.match_mid_px == (BID_PX + ASK_PX) / 2
    assert venue.mids[SYM] == BID_PX - 5.5  # the next fill meets the new touch


# --- rejects ------------------------------------------------------------------------


def test_post_only_that_would_cross_is_rejected() -> None:
    venue, _ = make_venue()
    venue.submit(place("b1", Side.BUY, ASK_PX, 1), 0)
    venue.submit(place("s1", Side.SELL, BID_PX, 1), 0)
    reports = drain(venue)
    assert all(isinstance(r, OrderReject) for r in reports) and len(reports) == 2
    assert all(POST_ONLY_REJECT in r.reason for r in reports if isinstance(r, OrderReject))
    assert venue.live == {}


def test_crossing_order_without_post_only_takes_liquidity() -> None:
    venue, _ = make_venue()
    venue.submit(place("b1", Side.BUY, ASK_PX + 1, 40, post_only=False), 0)
    got = fills(drain(venue))
    assert [(f.px, f.qty, f.liquidity) for f in got] == [
        (ASK_PX, 10, Liquidity.TAKER),
        (ASK_PX + 1, 20, Liquidity.TAKER),
    ]
    assert venue.live["b1"].leaves == 10  # the rest rests


@pytest.mark.parametrize(
    ("px", "qty", "rule"),
    [
        (0, 1, "tick"),
        (BID_PX, 0, "lot"),
        (10, 1, "min_notional"),  # 1.0 USD * 0.001
    ],
)
def test_venue_rules_are_named_in_the_reject(px: int, qty: int, rule: str) -> None:
    venue, _ = make_venue()
    venue.submit(place("x", Side.BUY, px, qty), 0)
    (reject,) = drain(venue)
    assert isinstance(reject, OrderReject) and reject.reason.startswith(rule)


def test_min_qty_rule() -> None:
    inst = Instrument("XRPUSDT", Decimal("0.0001"), Decimal("1"), 5, Decimal("5"))
    book = L2Book()
    book.apply_delta(BID, 19_000, 100)
    book.apply_delta(ASK, 19_001, 100)
    venue = SimVenue(
        {"XRPUSDT": inst},
        {"XRPUSDT": book},
        fee=FeeTier(maker_bps=0, taker_bps=0),
        latency=ZeroLatency(),
        queue=RiskAverseQueue(),
    )
    venue.submit(Place(0, "XRPUSDT", "x", Side.BUY, 19_000, 4), 0)
    (reject,) = drain(venue)
    assert isinstance(reject, OrderReject) and reject.reason.startswith("min_qty")


# --- fees -------------------------------------------------------------------------


def test_maker_rebate_is_a_negative_exact_fee() -> None:
    venue, _ = make_venue(maker_bps=-0.5)
    venue.submit(place("b1", Side.BUY, BID_PX, 10), 0)
    drain(venue)
    venue.on_trade(SYM, 1, ASK, BID_PX - 1, 10)
    (fill,) = fills(drain(venue))
    # 60000.0 * 0.010 = 600 USD; -0.5 bps -> -0.03 USD
    assert fill.fee == Decimal("-0.03")


def test_positive_maker_fee_is_paid() -> None:
    venue, _ = make_venue(maker_bps=2.0)
    venue.submit(place("b1", Side.BUY, BID_PX, 10), 0)
    drain(venue)
    venue.on_trade(SYM, 1, ASK, BID_PX - 1, 10)
    (fill,) = fills(drain(venue))
    assert fill.fee == Decimal("0.12")


# --- latency -------------------------------------------------------------------------


def test_order_is_live_after_entry_and_acked_after_response_latency() -> None:
    lat = JitteredLatency(entry_ms=20, response_ms=10, cancel_ms=15, jitter_ms=0, seed=1)
    venue, _ = make_venue(latency=lat)
    venue.submit(place("b1", Side.BUY, BID_PX, 1, ts=1_000), 1_000)
    assert drain(venue, 1_000 + 20 * MS - 1) == []
    assert "b1" not in venue.live
    assert drain(venue, 1_000 + 20 * MS) == []
    assert "b1" in venue.live  # live, ack still travelling
    (ack,) = drain(venue, 1_000 + 30 * MS)
    assert isinstance(ack, OrderAck) and ack.ts_ns == 1_000 + 30 * MS
    venue.submit(Cancel(40 * MS, SYM, "b1"), 40 * MS)
    (cack,) = drain(venue)
    assert isinstance(cack, CancelAck) and cack.ts_ns == 40 * MS + 25 * MS


def test_jitter_only_adds_and_is_seeded() -> None:
    a = JitteredLatency(20, 10, 20, 5, seed=9)
    b = JitteredLatency(20, 10, 20, 5, seed=9)
    draws_a = [a.entry_ns() for _ in range(500)]
    assert draws_a == [b.entry_ns() for _ in range(500)]
    assert min(draws_a) >= 20 * MS and max(draws_a) <= 25 * MS
    assert len(set(draws_a)) > 100


def test_a_cancel_never_overtakes_its_place() -> None:
    lat = JitteredLatency(entry_ms=50, response_ms=1, cancel_ms=1, jitter_ms=0, seed=1)
    venue, _ = make_venue(latency=lat)
    venue.submit(place("b1", Side.BUY, BID_PX, 1), 0)
    venue.submit(Cancel(1, SYM, "b1"), 1)
    kinds = [type(r) for r in drain(venue)]
    assert kinds == [OrderAck, CancelAck]


def test_cancel_of_unknown_order_is_rejected_and_cancel_all_clears() -> None:
    venue, _ = make_venue()
    venue.submit(Cancel(0, SYM, "nope"), 0)
    (rej,) = drain(venue)
    assert isinstance(rej, CancelReject) and "not found" in rej.reason
    venue.submit(place("b1", Side.BUY, BID_PX, 1), 0)
    venue.submit(place("s1", Side.SELL, ASK_PX, 1), 0)
    drain(venue)
    venue.submit(CancelAll(1, SYM, "test"), 1)
    acks = drain(venue)
    assert [r.client_order_id for r in acks] == ["b1", "s1"]
    assert venue.live == {} and venue.resting(SYM, BID) == {}


# --- faults ----------------------------------------------------------------------------


def run_with_faults(seed: int) -> list[VenueReport]:
    cfg = FaultConfig(reject_prob=0.1, timeout_prob=0.1, duplicate_prob=0.2, reorder_prob=0.2)
    lat = JitteredLatency(20, 10, 20, 5, seed=seed)
    venue, _ = make_venue(latency=lat, faults=ReportFaults(cfg, seed))
    for i in range(200):
        venue.submit(place(f"b{i}", Side.BUY, BID_PX - (i % 3), 1, ts=i * MS), i * MS)
    reports = drain(venue, 299 * MS)  # every order has reached the venue
    for i in range(0, 200, 2):
        venue.on_trade(SYM, 300 * MS + i, ASK, BID_PX - 3, 1)
    return reports + drain(venue)


def test_fault_injection_is_deterministic_and_does_what_it_says() -> None:
    first, second = run_with_faults(5), run_with_faults(5)
    assert first == second
    assert first != run_with_faults(6)
    rejects = [r for r in first if isinstance(r, OrderReject)]
    acks = [r for r in first if isinstance(r, OrderAck)]
    assert rejects and all(r.reason.startswith("injected") for r in rejects)
    # lost acks: some accepted orders never get an ack
    assert len({a.client_order_id for a in acks}) < 200 - len(rejects)
    # duplicates: the same fill delivered twice with one trade id
    trade_ids = [f.trade_id for f in fills(first)]
    assert len(trade_ids) > len(set(trade_ids))
    # reordering: delivery order differs from the venue's event order for some ack
    ack_ids = [int(a.client_order_id[1:]) for a in acks]
    assert ack_ids != sorted(ack_ids)
