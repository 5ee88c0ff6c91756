"""L2Book: level bookkeeping, best-price recomputation, sentinels."""

from __future__ import annotations

import random

import pytest

from bot.market.book import ASK, BID, NO_ASK, NO_BID, SCAN_TICKS, BookError, L2Book


def test_empty_book_has_sentinels_that_compare_naturally() -> None:
    book = L2Book()
    assert book.best_bid == NO_BID and book.best_ask == NO_ASK
    assert not book.has_bid() and not book.has_ask()
    assert book.bid_qty == 0 and book.ask_qty == 0
    assert NO_BID < 0 < NO_ASK
    assert not book.is_crossed()


def test_best_prices_follow_inserts_and_updates() -> None:
    book = L2Book()
    book.apply_delta(BID, 100, 5)
    book.apply_delta(BID, 98, 7)
    book.apply_delta(ASK, 103, 2)
    book.apply_delta(ASK, 105, 4)
    assert (book.best_bid, book.best_ask) == (100, 103)
    book.apply_delta(BID, 101, 1)
    book.apply_delta(ASK, 102, 9)
    assert (book.best_bid, book.best_ask) == (101, 102)
    book.apply_delta(BID, 101, 3)  # update in place
    assert book.bid_qty == 3 and book.ask_qty == 9
    assert book.qty_at(BID, 98) == 7 and book.qty_at(ASK, 104) == 0


def test_removing_the_best_level_walks_to_the_next_one() -> None:
    book = L2Book()
    for px, qty in ((100, 1), (99, 2), (95, 3)):
        book.apply_delta(BID, px, qty)
    for px, qty in ((101, 1), (104, 2)):
        book.apply_delta(ASK, px, qty)
    book.apply_delta(BID, 100, 0)
    assert book.best_bid == 99
    book.apply_delta(BID, 99, 0)
    assert book.best_bid == 95
    book.apply_delta(ASK, 101, 0)
    assert book.best_ask == 104
    book.apply_delta(ASK, 104, 0)
    assert book.best_ask == NO_ASK and not book.has_ask()


def test_removal_beyond_the_scan_window_falls_back_to_a_full_search() -> None:
    book = L2Book()
    book.apply_delta(BID, 1_000, 1)
    book.apply_delta(BID, 1_000 - SCAN_TICKS - 50, 4)
    book.apply_delta(ASK, 2_000, 1)
    book.apply_delta(ASK, 2_000 + SCAN_TICKS * 3, 2)
    book.apply_delta(BID, 1_000, 0)
    book.apply_delta(ASK, 2_000, 0)
    assert book.best_bid == 1_000 - SCAN_TICKS - 50
    assert book.best_ask == 2_000 + SCAN_TICKS * 3


def test_removing_a_missing_or_deep_level_keeps_the_best() -> None:
    book = L2Book()
    book.apply_delta(BID, 100, 1)
    book.apply_delta(BID, 90, 1)
    book.apply_delta(BID, 90, 0)
    book.apply_delta(BID, 50, 0)  # never existed
    assert book.best_bid == 100 and book.level_count(BID) == 1


def test_depth_is_sorted_best_first() -> None:
    book = L2Book()
    for px in (97, 100, 99):
        book.apply_delta(BID, px, px - 90)
    for px in (110, 104, 107):
        book.apply_delta(ASK, px, 1)
    assert book.depth(BID, 2) == [(100, 10), (99, 9)]
    assert book.depth(ASK, 5) == [(104, 1), (107, 1), (110, 1)]


def test_clear_and_snapshot_replace_the_book() -> None:
    book = L2Book()
    book.apply_delta(BID, 100, 1)
    book.apply_delta(ASK, 101, 1)
    book.clear()
    book.apply_snapshot_level(BID, 50, 3)
    book.apply_snapshot_level(ASK, 52, 4)
    book.apply_snapshot_level(ASK, 60, 0)  # an empty level in a snapshot adds nothing
    assert (book.best_bid, book.bid_qty, book.best_ask, book.ask_qty) == (50, 3, 52, 4)
    assert book.level_count(ASK) == 1


def test_crossed_state_is_reported() -> None:
    book = L2Book()
    book.apply_delta(BID, 101, 1)
    book.apply_delta(ASK, 100, 1)
    assert book.is_crossed()


def test_bad_side_is_a_typed_error() -> None:
    book = L2Book()
    with pytest.raises(BookError, match="side must be"):
        book.apply_delta(0, 100, 1)
    with pytest.raises(BookError):
        book.qty_at(2, 100)


def test_matches_a_brute_force_book_on_random_deltas() -> None:
    rng = random.Random(3)
    book = L2Book()
    ref: dict[int, dict[int, int]] = {BID: {}, ASK: {}}
    for _ in range(20_000):
        side = rng.choice((BID, ASK))
        px = rng.randint(900, 1_100) if rng.random() < 0.9 else rng.randint(0, 5_000)
        qty = 0 if rng.random() < 0.4 else rng.randint(1, 50)
        book.apply_delta(side, px, qty)
        if qty:
            ref[side][px] = qty
        else:
            ref[side].pop(px, None)
        assert book.best_bid == (max(ref[BID]) if ref[BID] else NO_BID)
        assert book.best_ask == (min(ref[ASK]) if ref[ASK] else NO_ASK)
