"""The seeded synthetic market: determinism, a consistent book, and its statistics.

Its calibration against the real capture is tested in test_market_stats.py."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from bot.cli import app
from bot.config import Settings, SymbolSpec, SynthConfig
from bot.market.recorder import RecorderError, write_parquet
from bot.market.schema import SCHEMA, Kind, MarketChunk
from bot.market.synth import MarketShape, SynthConfigError, derive_rates, generate
from bot.runtime.clock import parse_duration, parse_utc

SPEC = Settings().venue.symbols["BTCUSDT"]
TICK = 0.1
NS = 1_000_000_000


def _cfg(**changes: object) -> SynthConfig:
    return SynthConfig.model_validate({**SynthConfig().model_dump(), **changes})


# Structure tests replay every row in Python: they use a thin book-row budget. Only the
# size-change filler shrinks; touch moves, trades and bursts are those of the default.
THIN = {"book_rate_hz": 250.0}


def _thin(**changes: object) -> SynthConfig:
    return _cfg(**{**THIN, **changes})


def _concat(chunks: list[MarketChunk]) -> MarketChunk:
    names = ("ts_local", "ts_exch", "kind", "side", "price", "qty", "trade_id")
    return MarketChunk(
        chunks[0].symbol, *(np.concatenate([getattr(c, n) for c in chunks]) for n in names)
    )


@dataclass(frozen=True)
class Replay:
    """Top of book after every row, rebuilt with plain dicts (independent of the code)."""

    stream: MarketChunk
    bid: np.ndarray  # ticks after each row
    ask: np.ndarray
    crossed_rows: int
    empty_rows: int
    min_depth: int  # fewest levels on a side once all rows of one timestamp are in
    max_depth: int


def _replay(stream: MarketChunk) -> Replay:
    books: dict[int, dict[int, float]] = {1: {}, -1: {}}
    n = len(stream)
    bid, ask = np.zeros(n, np.int64), np.zeros(n, np.int64)
    crossed = empty = 0
    min_depth, max_depth = 10**9, 0
    ticks = np.rint(stream.price / TICK).astype(np.int64).tolist()
    kinds, sides, qtys, ts = (
        stream.kind.tolist(),
        stream.side.tolist(),
        stream.qty.tolist(),
        stream.ts_local.tolist(),
    )
    snapshot_ts = None
    for i in range(n):
        kind, side = kinds[i], sides[i]
        if kind == Kind.SNAPSHOT:
            if snapshot_ts != ts[i]:
                books, snapshot_ts = {1: {}, -1: {}}, ts[i]
            books[side][ticks[i]] = qtys[i]
        elif kind == Kind.DELTA:
            if qtys[i] == 0:
                books[side].pop(ticks[i], None)
            else:
                books[side][ticks[i]] = qtys[i]
        bids, asks = books[1], books[-1]
        if not bids or not asks:
            empty += kind != Kind.SNAPSHOT  # a snapshot fills one side, then the other
            continue
        bid[i], ask[i] = max(bids), min(asks)
        if bid[i] >= ask[i]:
            crossed += 1
        # a touch move's rows share one ts: count depth once the last of them is in
        if (i + 1 == n or ts[i + 1] != ts[i]) and kind != Kind.SNAPSHOT:
            min_depth = min(min_depth, len(bids), len(asks))
            max_depth = max(max_depth, len(bids), len(asks))
    return Replay(stream, bid, ask, crossed, empty, min_depth, max_depth)


@pytest.fixture(scope="module")
def hour() -> Replay:
    return _replay(_concat(list(generate(_thin(duration="30m"), SPEC, seed=11))))


@pytest.fixture(scope="module")
def day() -> MarketChunk:
    return _concat(list(generate(_thin(duration="3h"), SPEC, seed=3)))


# --- determinism --------------------------------------------------------------------------


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_same_seed_same_arrays_and_bytes_other_seed_differs(tmp_path: Path) -> None:
    cfg = _cfg(duration="10m")
    a, b = _concat(list(generate(cfg, SPEC, 5))), _concat(list(generate(cfg, SPEC, 5)))
    for name in ("ts_local", "ts_exch", "kind", "side", "price", "qty", "trade_id"):
        assert np.array_equal(getattr(a, name), getattr(b, name)), name
    paths = [
        write_parquet(generate(cfg, SPEC, seed), tmp_path / f"{i}.parquet", "BTCUSDT")
        for i, seed in enumerate((5, 5, 6))
    ]
    assert _digest(paths[0]) == _digest(paths[1])
    assert _digest(paths[0]) != _digest(paths[2])


def test_chunks_are_bounded_by_chunk_seconds_and_continue_each_other() -> None:
    chunks = list(generate(_thin(duration="30m"), SPEC, 2, chunk_seconds=300))
    start = parse_utc(SynthConfig().start)
    assert len(chunks) == 6
    for i, chunk in enumerate(chunks):
        assert chunk.ts_local[0] >= start + i * 300 * NS
        assert chunk.ts_local[-1] < start + (i + 1) * 300 * NS
    trade_ids = np.concatenate([c.trade_id[c.kind == Kind.TRADE] for c in chunks])
    assert np.array_equal(trade_ids, np.arange(1, len(trade_ids) + 1))


# --- format and book consistency -----------------------------------------------------------


def test_stream_starts_with_snapshot_of_at_least_depth_levels_a_side(hour: Replay) -> None:
    s = hour.stream
    snap = s.kind == Kind.SNAPSHOT
    n_snap = int(snap.sum())
    assert snap[:n_snap].all() and n_snap == 40
    assert (s.side[:n_snap] == 1).sum() == 20 and (s.side[:n_snap] == -1).sum() == 20
    assert (s.ts_local[:n_snap] == parse_utc(SynthConfig().start)).all()
    assert hour.min_depth == hour.max_depth == 20


def test_deeper_book_keeps_its_depth() -> None:
    replay = _replay(_concat(list(generate(_thin(duration="5m", depth_levels=35), SPEC, 1))))
    assert (replay.stream.kind == Kind.SNAPSHOT).sum() == 70
    assert replay.min_depth == replay.max_depth == 35


def test_book_never_crosses_nor_empties(hour: Replay) -> None:
    assert hour.crossed_rows == 0
    assert hour.empty_rows == 0


@pytest.mark.parametrize("seed", [4, 12, 30])
def test_book_stays_consistent_across_many_chunk_boundaries(seed: int) -> None:
    # short chunks: the state carried between them (touch, spread, pending steps) is exercised
    stream = _concat(list(generate(_thin(duration="15m"), SPEC, seed, chunk_seconds=20)))
    replay = _replay(stream)
    assert replay.crossed_rows == 0 and replay.empty_rows == 0
    assert replay.min_depth == replay.max_depth == 20


def test_rows_are_in_replay_order_with_small_exchange_latency(day: MarketChunk) -> None:
    assert (np.diff(day.ts_local) >= 0).all()
    latency_ms = (day.ts_local - day.ts_exch) / 1e6
    assert latency_ms.min() > 0.4
    assert 2.0 < np.median(latency_ms) < 6.0
    assert np.quantile(latency_ms, 0.999) < 50


def test_prices_are_tick_aligned_and_quantities_lot_aligned(day: MarketChunk) -> None:
    ticks = day.price / TICK
    assert np.abs(ticks - np.rint(ticks)).max() < 1e-6
    # the double nearest to the decimal price, as a venue's feed would print it
    assert {str(p) for p in day.price[:3]} <= {
        str(float(Decimal(round(t)) * Decimal("0.1"))) for t in ticks[:3]
    }
    lots = day.qty / 0.001
    assert np.abs(lots - np.rint(lots)).max() < 1e-6
    book = day.kind != Kind.TRADE
    assert (day.qty[~book] > 0).all()
    assert (day.qty[book] >= 0).all()


def test_touch_holds_the_queue_and_sizes_behind_it_grow_with_distance(hour: Replay) -> None:
    # as on the real book: a large touch level, a thin book just behind it
    s = hour.stream
    adds = (s.kind == Kind.DELTA) & (s.qty > 0) & (hour.bid > 0)
    distance = np.where(
        s.side > 0, hour.bid - np.rint(s.price / TICK), np.rint(s.price / TICK) - hour.ask
    )[adds]
    qty = s.qty[adds]
    touch, near, far = (np.median(qty[m]) for m in (
        distance == 0, (distance >= 1) & (distance <= 3), distance >= 12))  # fmt: skip
    assert touch > 3 * near
    assert far > 1.5 * near


# --- statistics --------------------------------------------------------------------------


def test_spread_mostly_one_tick_sometimes_wider(hour: Replay) -> None:
    spread = hour.ask - hour.bid
    ts = hour.stream.ts_local
    # time-weighted: how long each spread stood
    held = np.diff(np.append(ts, ts[-1]))
    shares = {w: held[spread == w].sum() / held.sum() for w in np.unique(spread)}
    shares = {w: share for w, share in shares.items() if share > 0}
    # real BTCUSDT: one tick 99.3 % of the time, now and then a side pulls back many ticks
    assert max(shares, key=lambda w: shares[w]) == 1
    assert 0.97 <= shares[1] <= 0.999
    assert sum(share for w, share in shares.items() if w >= 3) > 0


def _rates(cfg: SynthConfig, seed: int) -> tuple[float, float, float]:
    """(trades, book rows, book messages) per second, counted chunk by chunk."""
    trades = book = messages = 0
    for chunk in generate(cfg, SPEC, seed):
        delta = chunk.kind == Kind.DELTA
        trades += int((chunk.kind == Kind.TRADE).sum())
        book += int(delta.sum())
        messages += len(np.unique(chunk.ts_local[delta]))
    seconds = parse_duration(cfg.duration) / NS
    return trades / seconds, book / seconds, messages / seconds


def test_trade_and_book_row_rates_near_the_default_config() -> None:
    # the defaults are the real capture's rates. The book-row budget is met every
    # chunk (size changes fill what touch moves leave); the trade rate follows the
    # volatility regimes, whose hour-long swings (+-50 %) 6 h average down to +-20 %
    _, book, messages = _rates(_cfg(duration="1h"), 3)
    assert book == pytest.approx(1_300.0, rel=0.05)
    assert 10 < messages < 30  # real: 19 book messages/s
    trades, _, _ = _rates(_thin(duration="6h"), 3)
    assert trades == pytest.approx(60.0, rel=0.2)


def test_other_rates_follow_the_config() -> None:
    trades, book, _ = _rates(_cfg(duration="6h", trade_rate_hz=5.0, book_rate_hz=120.0), 4)
    assert trades == pytest.approx(5.0, rel=0.15)
    assert book == pytest.approx(120.0, rel=0.15)


def test_trades_cluster_in_time(day: MarketChunk) -> None:
    # a Poisson process has a gap CV of 1; self-excited / clustered flow has more
    ts = day.ts_local[day.kind == Kind.TRADE]
    gaps = np.diff(ts).astype(float)
    assert gaps.std() / gaps.mean() > 1.5


def test_trades_print_at_the_touch_or_through_it_on_displayed_levels(hour: Replay) -> None:
    s = hour.stream
    trade = np.flatnonzero(s.kind == Kind.TRADE)
    ticks = np.rint(s.price[trade] / TICK)
    # a trade row leaves the book as it was: compare with the touch in force
    buys = s.side[trade] > 0
    through = np.where(buys, ticks - hour.ask[trade], hour.bid[trade] - ticks)
    assert through.min() == 0 and through.max() <= 19  # never inside the spread or off the book
    # sweeps print through the touch before the book shows their move (real: 46 % at the touch)
    assert 0.3 < (through == 0).mean() < 0.7


def _mid_after(replay: Replay, horizon_ns: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(side, mid at the trade, first mid at or after trade + horizon), in ticks."""
    s = replay.stream
    mid = (replay.bid + replay.ask) / 2.0
    trade = np.flatnonzero(s.kind == Kind.TRADE)
    later = np.searchsorted(s.ts_local, s.ts_local[trade] + horizon_ns, side="left")
    keep = later < len(s)
    trade, later = trade[keep], later[keep]
    return s.side[trade].astype(float), mid[trade], mid[later]


def test_trade_sign_predicts_the_next_second_of_mid(hour: Replay) -> None:
    side, mid, mid_1s = _mid_after(hour, NS)
    move = mid_1s - mid
    after_buy, after_sell = move[side > 0], move[side < 0]
    for moves, sign in ((after_buy, 1), (after_sell, -1)):
        t_stat = moves.mean() / (moves.std() / np.sqrt(len(moves)))
        assert sign * t_stat > 5, (sign, moves.mean(), t_stat)


def test_naive_touch_quoter_loses_even_with_the_rebate(hour: Replay) -> None:
    # the maker of each trade at the touch: earns mid-to-price, loses the mid's move
    # against it (DESIGN §6); the mm1 rebate of 0.5 bps does not cover it
    s = hour.stream
    side, mid, mid_1s = _mid_after(hour, NS)
    trade = np.flatnonzero(s.kind == Kind.TRADE)[: len(side)]
    price = np.rint(s.price[trade] / TICK)
    at_touch = np.where(side > 0, price == hour.ask[trade], price == hour.bid[trade])
    maker = -side[at_touch]
    gross = maker * (mid[at_touch] - price[at_touch])
    adverse = maker * (mid[at_touch] - mid_1s[at_touch])
    bps = TICK / 60_000 * 1e4
    assert gross.mean() > 0
    assert (gross - adverse).mean() * bps + 0.5 < 0


def _max_window_imbalance(stream: MarketChunk, window_s: int = 60) -> float:
    trade = stream.kind == Kind.TRADE
    bucket = (stream.ts_local[trade] - stream.ts_local[0]) // (window_s * NS)
    signs = stream.side[trade].astype(float)
    n = np.bincount(bucket)
    net = np.bincount(bucket, weights=signs)
    full = n >= 50
    return float(np.max(np.abs(net[full]) / n[full]))


def test_toxic_bursts_present_when_frequent_absent_when_off() -> None:
    calm = _concat(list(generate(_thin(duration="3h", toxic_burst_rate_per_h=0.0), SPEC, 8)))
    toxic = _concat(list(generate(_thin(duration="3h", toxic_burst_rate_per_h=6.0), SPEC, 8)))
    # sweeps are runs of same-sign trades, so calm minutes lean one way too (real trade
    # signs have a lag-1 autocorrelation of 0.76), but a burst minute is nearly all one way
    assert _max_window_imbalance(calm) < 0.85
    assert _max_window_imbalance(toxic) > 0.95


def test_toxic_burst_trends_the_price_its_way() -> None:
    # in the minutes of one-sided flow the price moves with the flow, and further than
    # in the other minutes (jumps off)
    cfg = _thin(duration="3h", toxic_burst_rate_per_h=6.0, jump_rate_per_h=0.0)
    stream = _concat(list(generate(cfg, SPEC, 21)))
    trade = stream.kind == Kind.TRADE
    ts, price = stream.ts_local[trade], stream.price[trade]
    minute = (ts - ts[0]) // (60 * NS)
    n = np.bincount(minute)
    imbalance = np.bincount(minute, weights=stream.side[trade].astype(float)) / n
    last = np.r_[np.flatnonzero(np.diff(minute)), len(ts) - 1]
    move = np.diff(price[last])  # over minute 1, 2, ...
    burst = np.abs(imbalance[1:]) > 0.75
    assert burst.sum() >= 10
    assert (np.sign(move[burst]) == np.sign(imbalance[1:][burst])).mean() > 0.8
    assert np.abs(move[burst]).mean() > 2 * np.abs(move[~burst]).mean()


def _move_dispersion(stream: MarketChunk) -> float:
    """Variance / mean of the count of touch moves per 5-minute window (Poisson: 1)."""
    removes = stream.ts_local[(stream.kind == Kind.DELTA) & (stream.qty == 0)]
    moves = np.unique(removes)  # the rows of one move share its timestamp
    counts = np.bincount((moves - stream.ts_local[0]) // (300 * NS))[:-1]
    return float(counts.var() / counts.mean())


def test_volatility_regimes_change_the_rate_of_moves(day: MarketChunk) -> None:
    # sweep families alone overdisperse the counts a little; regimes do it far more
    flat = MarketShape(regime_sigma=(1.0, 1.0, 1.0))
    without = _concat(list(generate(_thin(duration="3h"), SPEC, 3, shape=flat)))
    assert _move_dispersion(day) > 2 * _move_dispersion(without)


# --- rates and config errors --------------------------------------------------------------


def test_the_rates_carry_the_target_volatility_on_fine_and_coarse_ticks() -> None:
    btc = derive_rates(_cfg(), SPEC)
    assert btc.effective_vol == pytest.approx(btc.target_vol, rel=1e-9)
    # touch moves are a small part of the real capture's book-row rate
    assert btc.touch_rows_hz < 0.1 * SynthConfig().book_rate_hz
    coarse = SymbolSpec(
        tick_size=Decimal("2"),
        lot_size=Decimal("0.001"),
        min_qty=Decimal("0.001"),
        min_notional=Decimal("5"),
    )
    reach = derive_rates(_cfg(annual_vol=0.6, book_rate_hz=50.0), coarse)
    assert reach.effective_vol == pytest.approx(0.6, rel=1e-9)


def test_realized_volatility_follows_the_target() -> None:
    # 5-minute returns of the last trade price over 6 h (72 of them): the estimate's
    # sampling error is ~1/sqrt(2 * 72) = 8 %, and regimes add some: +-30 % holds it
    def realized(vol: float) -> float:
        ends = []
        for chunk in generate(_thin(duration="6h", annual_vol=vol), SPEC, 5, chunk_seconds=300):
            ends.append(chunk.price[chunk.kind == Kind.TRADE][-1])
        returns = np.diff(np.log(ends))
        return float(returns.std(ddof=1) * np.sqrt(365 * 24 * 12))

    assert realized(0.6) == pytest.approx(0.6, rel=0.3)
    assert realized(0.2) == pytest.approx(0.2, rel=0.3)


def test_a_book_rate_too_thin_for_the_touch_moves_is_refused() -> None:
    need = derive_rates(_cfg(), SPEC).touch_rows_hz
    with pytest.raises(SynthConfigError, match=r"book_rate_hz=20\.0 is below the"):
        derive_rates(_cfg(book_rate_hz=20.0), SPEC)
    assert derive_rates(_cfg(book_rate_hz=need * 1.01), SPEC).size_change_hz > 0


def test_initial_mid_too_small_for_the_depth_is_refused() -> None:
    with pytest.raises(SynthConfigError, match="initial_mid"):
        next(generate(_cfg(initial_mid=1.0), SPEC, 1))
    with pytest.raises(SynthConfigError, match="chunk_seconds"):
        next(generate(_cfg(), SPEC, 1, chunk_seconds=0))


# --- recorder -----------------------------------------------------------------------------


def test_parquet_has_schema_symbol_fixed_row_groups_and_all_rows(tmp_path: Path) -> None:
    chunks = list(generate(_thin(duration="20m"), SPEC, 9, chunk_seconds=100))
    total = sum(len(c) for c in chunks)
    path = write_parquet(
        iter(chunks), tmp_path / "sub" / "x.parquet", "BTCUSDT", row_group_rows=10_000
    )
    meta = pq.ParquetFile(path)
    sizes = [meta.metadata.row_group(i).num_rows for i in range(meta.num_row_groups)]
    assert sizes[:-1] == [10_000] * (len(sizes) - 1) and sum(sizes) == total
    schema = meta.schema_arrow
    assert schema.remove_metadata().equals(SCHEMA.remove_metadata())
    assert schema.metadata[b"symbol"] == b"BTCUSDT"
    assert meta.metadata.row_group(0).column(0).compression == "ZSTD"
    back = pq.read_table(path)
    assert np.array_equal(back.column("price").to_numpy(), _concat(chunks).price)


def test_parquet_bytes_do_not_depend_on_chunking_of_the_input(tmp_path: Path) -> None:
    stream = _concat(list(generate(_thin(duration="10m"), SPEC, 9)))
    halves = [
        MarketChunk(
            stream.symbol,
            *(
                getattr(stream, n)[sl]
                for n in ("ts_local", "ts_exch", "kind", "side", "price", "qty", "trade_id")
            ),
        )
        for sl in (slice(0, 1234), slice(1234, None))
    ]
    a = write_parquet([stream], tmp_path / "a.parquet", "BTCUSDT", row_group_rows=5_000)
    b = write_parquet(halves, tmp_path / "b.parquet", "BTCUSDT", row_group_rows=5_000)
    assert _digest(a) == _digest(b)


def test_recorder_refuses_a_chunk_of_another_symbol(tmp_path: Path) -> None:
    chunk = next(generate(_cfg(duration="1m"), SPEC, 1))
    with pytest.raises(RecorderError, match="ETHUSDT"):
        write_parquet([chunk], tmp_path / "x.parquet", "ETHUSDT")


# --- CLI -----------------------------------------------------------------------------------


def test_cli_writes_file_and_prints_summary(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        app,
        [
            "market",
            "synth",
            "--seed",
            "7",
            "--duration",
            "5m",
            "--symbol",
            "BTCUSDT",
            "--out",
            str(tmp_path),
        ],
    )
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    path = tmp_path / "BTCUSDT.parquet"
    assert summary["path"] == str(path) and path.is_file()
    table = pq.read_table(path)
    assert summary["rows"] == table.num_rows == summary["book_rows"] + summary["trades"]
    assert summary["trades"] == int(np.sum(table.column("kind").to_numpy() == Kind.TRADE))
    assert summary["start"] == "2024-08-08T00:00:00.000000Z"
    assert summary["end"].startswith("2024-08-08T00:04:")
    assert not list(tmp_path.glob("*.partial"))


def test_cli_unknown_symbol_is_a_usage_error(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        app, ["market", "synth", "--symbol", "NOPE", "--out", str(tmp_path)]
    )
    assert result.exit_code == 64
    assert "NOPE" in result.output
    assert not list(tmp_path.iterdir())


def test_recorder_casts_wider_integer_columns_but_refuses_values_that_do_not_fit(
    tmp_path: Path,
) -> None:
    c = next(generate(_cfg(duration="1m"), SPEC, 1))
    wide = MarketChunk(
        c.symbol, c.ts_local, c.ts_exch, c.kind.astype(np.int64), c.side, c.price, c.qty, c.trade_id
    )
    back = pq.read_table(write_parquet([wide], tmp_path / "w.parquet", "BTCUSDT"))
    assert np.array_equal(back.column("kind").to_numpy(), c.kind)
    bad = MarketChunk(
        c.symbol,
        c.ts_local,
        c.ts_exch,
        c.kind.astype(np.int64) + 300,
        c.side,
        c.price,
        c.qty,
        c.trade_id,
    )
    with pytest.raises(RecorderError, match="kind"):
        write_parquet([bad], tmp_path / "b.parquet", "BTCUSDT")
