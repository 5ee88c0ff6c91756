"""Streaming validation: each error in raise and skip mode, state across chunks, stats."""

from __future__ import annotations

import itertools
import math
import re
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from bot.config import ValidationConfig
from bot.market.readers import open_market
from bot.market.schema import COLUMNS, Kind, MarketChunk
from bot.market.validate import (
    BadValue,
    CrossedBook,
    DataGap,
    MarketDataError,
    StatsScan,
    TimestampBackwards,
    Validator,
    _stable_order,
    describe,
)

S, D, T = int(Kind.SNAPSHOT), int(Kind.DELTA), int(Kind.TRADE)
MS = 1_000_000
RAISE = ValidationConfig(on_error="raise", max_gap_ms=1_000)
SKIP = ValidationConfig(on_error="skip", max_gap_ms=1_000)


def chunk(rows: list[tuple[int, int, int, float, float]], symbol: str = "X") -> MarketChunk:
    """rows of (ts_local ms, kind, side, price, qty); ts_exch = ts_local, trade ids = row no."""
    ts = np.array([r[0] * MS for r in rows], dtype=np.int64)
    return MarketChunk(
        symbol,
        ts,
        ts.copy(),
        np.array([r[1] for r in rows], dtype=np.int8),
        np.array([r[2] for r in rows], dtype=np.int8),
        np.array([r[3] for r in rows], dtype=np.float64),
        np.array([r[4] for r in rows], dtype=np.float64),
        np.arange(len(rows), dtype=np.int64),
    )


def split(data: MarketChunk, *cuts: int) -> list[MarketChunk]:
    bounds = [0, *cuts, len(data)]
    return [
        MarketChunk(data.symbol, *(getattr(data, c)[a:b] for c in COLUMNS))
        for a, b in itertools.pairwise(bounds)
    ]


def run(parts: list[MarketChunk], config: ValidationConfig) -> tuple[MarketChunk, Validator]:
    validator = Validator(config)
    out = list(validator.validate(parts))
    joined = MarketChunk(
        parts[0].symbol,
        *(np.concatenate([getattr(c, n) for c in out]) if out else np.empty(0) for n in COLUMNS),
    )
    return joined, validator


SNAP = [(1, S, 1, 100.0, 1.0), (1, S, -1, 101.0, 1.0)]


def touch(validator: Validator) -> tuple[float, float]:
    """(best bid, best ask) of the validator's book, as prices."""
    levels, unit = validator._levels, 10.0**validator._decimals
    return float(levels.bids.max()) / unit, -float(levels.neg_asks.max()) / unit


def test_clean_stream_passes_unchanged_whatever_the_chunking() -> None:
    data = chunk(
        [
            *SNAP,
            (2, D, 1, 100.5, 2.0),
            (2, T, 1, 101.0, 0.5),
            (3, D, -1, 101.0, 0.0),
            (3, D, -1, 102.0, 1.0),
            (4, T, -1, 100.5, 1.0),
        ]
    )
    for cuts in [(), (1,), (3,), (2, 4, 5), (1, 2, 3, 4, 5, 6)]:
        out, validator = run(split(data, *cuts), RAISE)
        assert list(out.trade_id) == list(range(7)), cuts
        assert validator.skipped == {}


def test_last_message_is_held_until_the_next_chunk() -> None:
    validator = Validator(RAISE)
    first = validator.check(chunk([*SNAP, (2, D, 1, 100.5, 2.0), (2, D, -1, 100.8, 1.0)]))
    assert len(first) == 2  # the ts=2 message may continue in the next chunk
    second = validator.check(chunk([(2, D, 1, 100.2, 1.0), (3, T, 1, 100.8, 1.0)]))
    assert list(second.ts_local // MS) == [2, 2, 2]
    assert list(validator.finish().ts_local // MS) == [3]


# --- timestamps going backwards -----------------------------------------------------------


def test_backwards_raises_with_global_row_index_across_chunks() -> None:
    data = chunk([*SNAP, (5, T, 1, 101.0, 1.0), (4, T, 1, 101.0, 1.0), (6, T, 1, 101.0, 1.0)])
    with pytest.raises(TimestampBackwards) as err:
        run(split(data, 3), RAISE)
    assert err.value.row == 3
    assert err.value.column == "ts_local"
    assert err.value.ts_ns == 4 * MS
    assert "row 3" in str(err.value) and str(4 * MS) in str(err.value)
    assert isinstance(err.value, MarketDataError)


def test_backwards_skip_drops_the_row_and_counts_it() -> None:
    data = chunk(
        [
            *SNAP,
            (5, T, 1, 101.0, 1.0),
            (4, T, 1, 101.0, 1.0),
            (3, T, 1, 101.0, 1.0),
            (6, T, 1, 101.0, 1.0),
        ]
    )
    out, validator = run(split(data, 3), SKIP)
    assert list(out.trade_id) == [0, 1, 2, 5]
    assert validator.skipped == {"ts_backwards": 2}


# --- bad values ---------------------------------------------------------------------------


BAD_ROWS = [
    ((2, T, 1, math.nan, 1.0), "price"),
    ((2, D, 1, 100.0, math.nan), "qty"),
    ((2, T, 1, 0.0, 1.0), "price"),
    ((2, D, -1, -101.0, 1.0), "price"),
    ((2, T, 1, 100.0, 0.0), "qty"),  # a trade of size 0
    ((2, D, 1, 100.0, -1.0), "qty"),  # book size below 0 (0 is a delete)
    ((2, T, 0, 100.0, 1.0), "side"),
    ((2, 7, 1, 100.0, 1.0), "kind"),
    ((2, T, 1, math.inf, 1.0), "price"),
]


@pytest.mark.parametrize(("row", "column"), BAD_ROWS)
def test_bad_value_raises(row: tuple[int, int, int, float, float], column: str) -> None:
    data = chunk([*SNAP, (1, T, 1, 101.0, 1.0), row])
    with pytest.raises(BadValue) as err:
        run([data], RAISE)
    assert (err.value.row, err.value.column) == (3, column)
    assert f"column {column}" in str(err.value)


@pytest.mark.parametrize(("row", "column"), BAD_ROWS)
def test_bad_value_skip(row: tuple[int, int, int, float, float], column: str) -> None:
    data = chunk([*SNAP, (1, T, 1, 101.0, 1.0), row, (3, T, 1, 101.0, 1.0)])
    out, validator = run(split(data, 3), SKIP)
    assert list(out.trade_id) == [0, 1, 2, 4]
    assert validator.skipped == {"bad_value": 1}


def test_book_delete_with_qty_zero_is_fine() -> None:
    data = chunk([*SNAP, (2, D, 1, 100.0, 0.0), (3, D, 1, 99.0, 1.0)])
    out, validator = run([data], RAISE)
    assert len(out) == 4 and validator.skipped == {}


# --- gaps ---------------------------------------------------------------------------------


def test_gap_raises_across_chunks() -> None:
    data = chunk([*SNAP, (500, T, 1, 101.0, 1.0), (1_501, T, 1, 101.0, 1.0)])
    with pytest.raises(DataGap) as err:
        run(split(data, 3), RAISE)
    assert err.value.row == 3 and "1001 ms" in str(err.value)
    # exactly the limit is not a gap
    run([chunk([*SNAP, (1_001, T, 1, 101.0, 1.0)])], RAISE)


def test_gap_skip_counts_and_keeps_the_rows() -> None:
    data = chunk(
        [*SNAP, (2_000, T, 1, 101.0, 1.0), (2_001, T, 1, 101.0, 1.0), (5_000, T, 1, 101.0, 1.0)]
    )
    out, validator = run(split(data, 3), SKIP)
    assert len(out) == 5
    assert validator.skipped == {"gap": 2}


# --- crossed book -------------------------------------------------------------------------


def test_crossed_book_raises_after_the_message() -> None:
    data = chunk(
        [
            *SNAP,
            (2, D, 1, 100.5, 1.0),
            (3, D, 1, 101.5, 1.0),
            (3, D, 1, 99.0, 1.0),
            (4, T, 1, 101.0, 1.0),
        ]
    )
    with pytest.raises(CrossedBook) as err:
        run(split(data, 4), RAISE)
    assert err.value.row == 3 and err.value.ts_ns == 3 * MS
    assert "best bid 101.5 >= best ask 101" in str(err.value)


def test_crossed_mid_message_but_not_after_it_is_fine() -> None:
    # bid 101.5 crosses the 101.0 ask, which the same message then removes
    data = chunk([*SNAP, (2, D, 1, 101.5, 1.0), (2, D, -1, 101.0, 0.0), (2, D, -1, 102.0, 1.0)])
    for cuts in [(), (3,), (4,)]:  # also with the message split across chunks
        out, _ = run(split(data, *cuts), RAISE)
        assert len(out) == 5


def test_crossed_skip_drops_the_message_and_rolls_the_book_back() -> None:
    data = chunk(
        [
            *SNAP,
            (2, D, 1, 100.5, 1.0),
            (3, D, -1, 101.0, 0.0),  # removes the ask ...
            (3, D, 1, 101.5, 1.0),  # ... and a bid through 101.0 -- fine alone, but:
            (3, D, -1, 101.2, 1.0),  # ask below the bid: crossed after the message
            (3, T, 1, 101.2, 1.0),  # a trade of the same message goes too
            (4, D, 1, 100.8, 1.0),  # fine against the rolled-back book (ask 101.0)
            (5, D, -1, 100.9, 1.0),  # fine only if the ts=3 message left no trace
        ]
    )
    out, validator = run(split(data, 4), SKIP)
    assert list(out.trade_id) == [0, 1, 2, 7, 8]
    assert validator.skipped == {"crossed_book": 4}
    assert touch(validator) == pytest.approx((100.8, 100.9))


def test_crossed_snapshot_skip_keeps_the_previous_book() -> None:
    data = chunk([*SNAP, (2, S, 1, 105.0, 1.0), (2, S, -1, 104.0, 1.0), (3, D, 1, 100.5, 1.0)])
    out, validator = run([data], SKIP)
    assert list(out.trade_id) == [0, 1, 4]
    assert touch(validator) == pytest.approx((100.5, 101.0))
    with pytest.raises(CrossedBook):
        run([data], RAISE)


# --- real data and speed ------------------------------------------------------------------


def test_real_files_pass_validation(binance_dir: Path, bybit_ob500: Path) -> None:
    for path, rows in [(binance_dir, 466_501), (bybit_ob500, 3_966)]:
        validator = Validator(ValidationConfig())
        assert sum(len(c) for c in validator.validate(open_market(path))) == rows
        assert validator.skipped == {}


# --- stats for `market info` --------------------------------------------------------------


def test_stats_by_hand() -> None:
    data = chunk(
        [
            *SNAP,
            (3, T, 1, 101.0, 1.0),
            (2_000, T, 1, 101.0, 1.0),
            (1_999, T, 1, 101.0, 1.0),
            (4_000, D, 1, 100.5, 1.0),
        ]
    )
    data.ts_exch[2] = 0  # exchange time below the snapshot's: one inversion
    scan = StatsScan(gap_limit_ms=1_000)
    for part in split(data, 2, 4):
        scan.update(part)
    stats = scan.result()
    assert stats.rows == 6 and stats.messages == 5
    assert stats.counts == {"DELTA": 1, "SNAPSHOT": 2, "TRADE": 3}
    assert stats.gaps_over_limit == 2 and stats.largest_gap_ms == 2_001.0
    assert stats.ts_local_backwards == 1
    assert stats.ts_exch_inversions == 2  # row 2 (0 < 1 ms) and row 4 (1999 < 2000 ms)
    assert stats.duration_s == pytest.approx(3.999)
    assert stats.to_dict()["start_utc"] == "1970-01-01T00:00:00.001000Z"
    described = describe(split(data, 2, 4), gap_limit_ms=1_000)
    assert described.violations == {"gap": 2, "ts_backwards": 1}


def test_finer_prices_later_rescale_the_book_grid() -> None:
    # 1 decimal in the first chunk, 2 and 3 later: the book keeps its levels
    data = chunk(
        [
            (1, S, 1, 100.0, 1.0),
            (1, S, -1, 100.5, 1.0),
            (2, D, 1, 100.25, 1.0),
            (3, D, -1, 100.375, 1.0),
            (4, D, -1, 100.2, 1.0),  # below the 100.25 bid: crossed
        ]
    )
    with pytest.raises(CrossedBook, match=re.escape("best bid 100.25 >= best ask 100.2")):
        run(split(data, 2, 3), RAISE)
    out, validator = run(split(data, 2, 3), SKIP)
    assert list(out.trade_id) == [0, 1, 2, 3]
    assert validator._decimals == 3
    assert touch(validator) == (100.25, 100.375)


# --- the vectorised book check against a row-by-row reference ---------------------------------


def reference(data: MarketChunk, skip: bool) -> tuple[list[int], int] | int:
    """The crossed-book rule walked row by row on a plain dict book: (kept trade ids,
    crossed rows dropped) in skip mode, else the row a raise names (-1: none)."""
    bids: dict[float, float] = {}
    asks: dict[float, float] = {}
    kept: list[int] = []
    dropped = 0
    ts = data.ts_local.tolist()
    start = 0
    while start < len(ts):
        stop = start
        while stop < len(ts) and ts[stop] == ts[start]:
            stop += 1
        saved = (dict(bids), dict(asks))
        in_snapshot = False
        for i in range(start, stop):
            kind = int(data.kind[i])
            if kind == T:
                continue
            if kind == S and not in_snapshot:
                bids.clear()
                asks.clear()
            in_snapshot = kind == S
            levels = bids if data.side[i] == 1 else asks
            if data.qty[i] > 0:
                levels[float(data.price[i])] = 1.0
            else:
                levels.pop(float(data.price[i]), None)
        if bids and asks and max(bids) >= min(asks):
            if not skip:
                return start
            bids, asks = saved
            dropped += stop - start
        else:
            kept += data.trade_id[start:stop].tolist()
        start = stop
    return (kept, dropped) if skip else -1


def random_book(rng: np.random.Generator, n: int) -> MarketChunk:
    """Messages of deltas (some through the touch), trades, and now and then a snapshot."""
    ts = np.sort(rng.integers(0, max(n // 3, 1), n)).astype(np.int64) * MS
    message = np.cumsum(np.r_[True, ts[1:] != ts[:-1]]) - 1
    snapshot = (rng.random(int(message[-1]) + 1) < 0.05)[message]
    trade = rng.random(n) < 0.15
    kind = np.where(trade, T, np.where(snapshot, S, D)).astype(np.int8)
    side = rng.choice([1, -1], n).astype(np.int8)
    mid = 1_000 + np.cumsum(rng.integers(-1, 2, n))
    depth = np.where(rng.random(n) < 0.03, -3, rng.integers(0, 6, n))  # -3: through the touch
    price = np.where(side == 1, mid - depth, mid + depth + 1) / 10
    qty = np.where(trade | (rng.random(n) < 0.7), rng.uniform(0.1, 2, n), 0.0)
    return MarketChunk(
        "X", ts, ts.copy(), kind, side, price.astype(np.float64), qty,
        np.arange(n, dtype=np.int64),
    )  # fmt: skip


@pytest.mark.parametrize("seed", range(6))
def test_the_book_check_agrees_with_a_row_by_row_walk(seed: int) -> None:
    rng = np.random.default_rng(seed)
    for _ in range(40):
        n = int(rng.integers(5, 600))
        data = random_book(rng, n)
        cuts = sorted(set(rng.integers(1, n, int(rng.integers(0, 5))).tolist()))
        config = ValidationConfig(on_error="skip", max_gap_ms=10**9)
        out, validator = run(split(data, *cuts), config)
        kept, dropped = reference(data, skip=True)  # type: ignore[misc]
        assert out.trade_id.tolist() == kept
        assert validator.skipped.get("crossed_book", 0) == dropped
        expected = reference(data, skip=False)
        if expected == -1:
            run(split(data, *cuts), RAISE.model_copy(update={"max_gap_ms": 10**9}))
        else:
            with pytest.raises(CrossedBook) as err:
                run(split(data, *cuts), RAISE.model_copy(update={"max_gap_ms": 10**9}))
            assert err.value.row == expected


@pytest.mark.parametrize("span", [1, 2**16, 2**16 + 1, 2**40])
def test_the_stable_order_of_book_keys_is_numpys_whatever_their_span(span: int) -> None:
    # keys whose max - min < 2**16 (span <= 2**16) take the radix sort; ties (many rows per
    # level) keep row order
    rng = np.random.default_rng(span)
    keys = -(10**12) + rng.integers(0, span, 5_000, dtype=np.int64)
    keys[:2] = -(10**12), -(10**12) + span - 1  # the whole span, so both ends are hit
    assert np.array_equal(_stable_order(keys), np.argsort(keys, kind="stable"))
    assert len(_stable_order(keys[:0])) == 0


def test_many_crossed_messages_cost_little_more_than_a_clean_stream() -> None:
    # skip mode restarts behind each crossed message: on a short window, so that a
    # stream where a fifth of the messages cross stays linear
    data = random_book(np.random.default_rng(9), 60_000)
    config = ValidationConfig(on_error="skip", max_gap_ms=10**9)
    out, validator = run(split(data, 20_000, 40_000), config)
    assert validator.skipped["crossed_book"] > 5_000
    assert out.trade_id.tolist() == reference(data, skip=True)[0]  # type: ignore[index]


def test_a_crossing_in_the_real_data_is_named_by_its_file_and_line(binance_dir: Path) -> None:
    chunks = list(open_market(binance_dir))  # not validated: the real file passes
    first = chunks[0]
    i = int(np.flatnonzero((first.kind == D) & (first.side == -1) & (first.qty > 0))[1_000])
    price = first.price.copy()
    price[i] = 1_000.0  # an ask far below every bid
    with pytest.raises(CrossedBook) as err:
        list(Validator(ValidationConfig()).validate([replace(first, price=price), *chunks[1:]]))
    message = np.flatnonzero(first.ts_local == first.ts_local[i])
    assert err.value.where == first.where(int(message[0]))  # the message's first row
    assert err.value.where.startswith(f"file {binance_dir / 'incremental_book_L2.csv.gz'} line ")
