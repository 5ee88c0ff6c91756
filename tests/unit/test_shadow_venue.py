"""The shadow venue: fills inferred from trades at or through the would-be quotes."""

from __future__ import annotations

from bot.config import Settings, instruments
from bot.market.book import ASK, BID, L2Book
from bot.model import OrderAck, OrderFill, OrderReject, Place, Side, VenueReport
from bot.venues.shadow import ShadowVenue

SYM = "BTCUSDT"


def setup() -> tuple[ShadowVenue, L2Book]:
    book = L2Book()
    book.apply_delta(BID, 600_000, 10_000)  # a long queue: shadow ignores it
    book.apply_delta(ASK, 600_001, 10_000)
    return ShadowVenue(Settings(), instruments(Settings()), {SYM: book}), book


def drain(venue: ShadowVenue, ts: int) -> list[VenueReport]:
    out = []
    while venue.next_ts() <= ts:
        report = venue.pop_due(ts)
        if report is not None:
            out.append(report)
    return out


def test_zero_latency_ack_and_fill_at_the_quote_without_queue() -> None:
    venue, _ = setup()
    venue.submit(Place(5, SYM, "b1", Side.BUY, 600_000, 10), 5)
    (ack,) = drain(venue, 5)
    assert isinstance(ack, OrderAck) and ack.ts_ns == 5
    venue.on_trade(SYM, 7, ASK, 600_000, 4)  # a sell AT our bid: fills despite 10 000 ahead
    (fill,) = drain(venue, 7)
    assert isinstance(fill, OrderFill) and (fill.qty, fill.ts_ns, fill.px) == (4, 7, 600_000)


def test_fill_through_the_quote_and_nothing_on_the_wrong_side() -> None:
    venue, _ = setup()
    venue.submit(Place(0, SYM, "s1", Side.SELL, 600_003, 10), 0)
    drain(venue, 0)
    venue.on_trade(SYM, 1, BID, 600_002, 50)  # below our ask: no fill
    venue.on_trade(SYM, 2, ASK, 600_004, 50)  # a sell aggressor never lifts our ask
    assert drain(venue, 2) == []
    venue.on_trade(SYM, 3, BID, 600_005, 50)  # through: fill all 10
    (fill,) = drain(venue, 3)
    assert isinstance(fill, OrderFill) and fill.qty == 10 and fill.px == 600_003
    assert fill.fee < 0  # mm1 maker rebate


def test_shadow_keeps_the_venue_rules() -> None:
    venue, _ = setup()
    venue.submit(Place(0, SYM, "x", Side.BUY, 600_001, 10), 0)
    (reject,) = drain(venue, 0)
    assert isinstance(reject, OrderReject) and "PostOnly" in reject.reason


def test_book_moving_through_a_quote_is_not_a_shadow_fill() -> None:
    venue, book = setup()
    venue.submit(Place(0, SYM, "b1", Side.BUY, 600_000, 10), 0)
    drain(venue, 0)
    book.apply_delta(ASK, 600_001, 0)
    book.apply_delta(ASK, 599_999, 1)
    venue.on_touch(SYM, 1)
    assert drain(venue, 1) == []
