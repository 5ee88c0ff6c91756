"""Market statistics: exact on a hand-made stream, and the synthetic market against the real one."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from bot.config import Settings, SynthConfig
from bot.market.readers import open_market
from bot.market.schema import Kind, MarketChunk
from bot.market.stats import (
    NS,
    SECONDS_PER_YEAR,
    MarketStats,
    StatsError,
    main,
    market_stats,
    walk,
)
from bot.market.synth import MarketShape, generate

TICK = 0.5
S = NS  # one second in ns
BID, ASK = 1, -1
D, P, T = int(Kind.DELTA), int(Kind.SNAPSHOT), int(Kind.TRADE)


def _stream(rows: list[tuple[int, int, int, int, float]]) -> MarketChunk:
    """(ts ns, kind, side, price in ticks, qty) rows as one chunk."""
    ts, kind, side, ticks, qty = (np.array(col) for col in zip(*rows, strict=True))
    return MarketChunk(
        "TEST", ts.astype(np.int64), ts.astype(np.int64), kind.astype(np.int8),
        side.astype(np.int8), ticks * TICK, qty.astype(float),
        np.where(kind == T, np.arange(len(ts)), 0).astype(np.int64),
    )  # fmt: skip


# Book 1000/1001 ticks; a buy at the ask; a message that moves the book up two ticks
# (its first row crosses the book for a moment); a sell at the new bid; a buy through
# the ask; the bid pulled for half a second (spread 3); a last size change at 8 s.
HAND = [
    (0, P, BID, 1000, 1.0), (0, P, BID, 999, 1.0), (0, P, ASK, 1001, 1.0), (0, P, ASK, 1002, 1.0),
    (1 * S, T, BID, 1001, 2.0),
    (3 * S // 2, D, BID, 1002, 1.0), (3 * S // 2, D, ASK, 1001, 0.0),
    (3 * S // 2, D, ASK, 1003, 1.0), (3 * S // 2, D, ASK, 1002, 0.0),
    (2 * S, T, ASK, 1002, 1.0),
    (5 * S // 2, T, BID, 1005, 1.0),
    (4 * S, D, BID, 1002, 0.0),
    (9 * S // 2, D, BID, 1002, 3.0),
    (8 * S, D, ASK, 1010, 1.0),
]  # fmt: skip


@pytest.fixture(scope="module")
def hand() -> MarketStats:
    return market_stats([_stream(HAND)], TICK)


def test_touch_tape_has_whole_messages_only() -> None:
    tapes = walk([_stream(HAND)], TICK)
    # the transient cross inside the 1.5 s message is never a touch
    assert list(zip(tapes.bid.tolist(), tapes.ask.tolist(), strict=True)) == [
        (1000, 1001), (1002, 1003), (1000, 1003), (1002, 1003),
    ]  # fmt: skip
    assert tapes.touch_ts.tolist() == [0, 3 * S // 2, 4 * S, 9 * S // 2]
    assert tapes.trade_bid.tolist() == [1000, 1002, 1002]
    assert tapes.trade_ask.tolist() == [1001, 1003, 1003]


def test_rates_and_spread_by_hand(hand: MarketStats) -> None:
    assert hand.duration_s == 8.0
    assert hand.book_rows_per_s == 11 / 8
    assert hand.book_messages_per_s == 5 / 8
    assert hand.trades_per_s == 3 / 8
    assert hand.touch_changes_per_s == 3 / 8
    # spread 3 ticks from 4 s to 4.5 s of 8 s, one tick otherwise
    assert hand.spread_1_tick_share == pytest.approx(7.5 / 8)
    assert hand.spread_2_ticks_share == 0
    assert hand.spread_3plus_ticks_share == pytest.approx(0.5 / 8)
    assert hand.spread_mean_ticks == pytest.approx(1 + 2 * 0.5 / 8)


def test_trade_sizes_and_touch_share_by_hand(hand: MarketStats) -> None:
    notional = [1001 * TICK * 2, 1002 * TICK, 1005 * TICK]
    assert hand.trade_notional_mean == pytest.approx(np.mean(notional))
    assert hand.trade_notional_median == pytest.approx(np.median(notional))
    assert hand.touch_trade_share == pytest.approx(2 / 3)  # the buy through the ask is not


def test_markouts_by_hand(hand: MarketStats) -> None:
    # the buy at 1001 (mid 1000.5) sees mid 1002.5 after 1 s and 5 s: the maker sold too
    # cheap; the sell at 1002 (mid 1002.5) sees no move; weights are the notionals
    buy = (1002.5 - 1000.5) / 1000.5 * 1e4
    weights = np.array([1001 * TICK * 2, 1002 * TICK])
    expected = float(np.average([buy, 0.0], weights=weights))
    assert hand.adverse_1s_bps == pytest.approx(expected)
    assert hand.adverse_5s_bps == pytest.approx(expected)
    assert hand.adverse_1s_bps > 0


def test_markout_sign_turns_when_the_mid_moves_the_maker_s_way() -> None:
    # the same book move after a sell at the bid: the maker bought just before a rise
    rows = [r if r[1] != T or r[0] != 1 * S else (1 * S, T, ASK, 1000, 2.0) for r in HAND]
    stats = market_stats([_stream(rows)], TICK)
    assert stats.adverse_1s_bps < 0


def test_volatility_on_the_one_second_grid(hand: MarketStats) -> None:
    mids = np.array([1000.5, 1000.5, 1002.5, 1002.5, 1001.5, 1002.5, 1002.5, 1002.5, 1002.5])
    expected = np.diff(np.log(mids)).std(ddof=1) * math.sqrt(SECONDS_PER_YEAR)
    assert hand.vol_1s_annual == pytest.approx(expected)
    assert math.isnan(hand.vol_1m_annual)  # 8 s hold no two 1-minute returns


def test_chunking_does_not_change_the_statistics(hand: MarketStats) -> None:
    rows = _stream(HAND)
    names = ("ts_local", "ts_exch", "kind", "side", "price", "qty", "trade_id")
    # a cut inside the 1.5 s message: it is settled only when whole
    parts = [MarketChunk("TEST", *(getattr(rows, n)[sl] for n in names))
             for sl in (slice(0, 6), slice(6, None))]  # fmt: skip
    split = market_stats(parts, TICK).as_dict()
    whole = hand.as_dict()
    assert math.isnan(split.pop("vol_1m_annual")) and math.isnan(whole.pop("vol_1m_annual"))
    assert split == whole


def test_a_stream_without_trades_is_refused() -> None:
    with pytest.raises(StatsError, match="0 trades"):
        market_stats([_stream([r for r in HAND if r[1] != T])], TICK)


# --- the synthetic market against the real capture -----------------------------------------

SETTINGS = Settings()
BTC = SETTINGS.venue.symbols["BTCUSDT"]

# (statistic, low, high) as multiples of the real figure, or ("abs", +-) for shares.
# The capture is 5.7 minutes of one busy evening. Its 1 s markout is 0.68 bps with a
# 10 s-block bootstrap standard error of 0.19 bps (90 % interval 0.38-0.99): the markout
# ranges are that interval. The synthetic 20 minutes move with the volatility regimes:
# across seeds their trade rate and 1 s vol swing by about +-25 %; the rate ranges take
# that plus the capture's own minute-to-minute swing. The book-row budget is met exactly
# by construction, so its range is narrow.
RANGES: dict[str, tuple[str, float, float]] = {
    "book_rows_per_s": ("rel", 0.9, 1.1),
    "book_messages_per_s": ("rel", 0.65, 1.35),
    "trades_per_s": ("rel", 0.6, 1.4),
    "touch_changes_per_s": ("rel", 0.5, 1.5),
    "spread_1_tick_share": ("abs", -0.01, 0.01),
    "trade_notional_median": ("rel", 0.6, 1.6),
    "vol_1s_annual": ("rel", 0.5, 1.5),
    "touch_trade_share": ("abs", -0.15, 0.15),
    "adverse_1s_bps": ("rel", 0.6, 1.5),
    "adverse_5s_bps": ("rel", 0.5, 1.5),
}


def _outside(synth: MarketStats, real: MarketStats) -> list[str]:
    """The statistics of `synth` outside their range around `real`, with both figures."""
    bad = []
    for name, (how, low, high) in RANGES.items():
        s, r = getattr(synth, name), getattr(real, name)
        lo, hi = (r + low, r + high) if how == "abs" else (r * low, r * high)
        if not lo <= s <= hi:
            bad.append(f"{name}: synthetic {s:.4g} outside [{lo:.4g}, {hi:.4g}] (real {r:.4g})")
    return bad


@pytest.fixture(scope="module")
def real(binance_dir: Path) -> MarketStats:
    return market_stats(open_market(binance_dir), float(BTC.tick_size))


def _synth(shape: MarketShape | None = None) -> MarketStats:
    cfg = SynthConfig.model_validate({**SETTINGS.data.synth.model_dump(), "duration": "20m"})
    stream = generate(cfg, BTC, 7, shape=shape or MarketShape())
    return market_stats(stream, float(BTC.tick_size))


def test_real_touch_quoter_is_adversely_selected_beyond_the_rebate(real: MarketStats) -> None:
    # what the synthetic market must reproduce: at the touch, the mm1 rebate (0.5 bps)
    # and the half tick of spread do not pay for the mid's move after a fill
    half_spread_bps = 0.5 * float(BTC.tick_size) / 61_800 * 1e4
    assert real.adverse_1s_bps > 0.5 + half_spread_bps
    assert real.adverse_5s_bps > real.adverse_1s_bps


def test_synthetic_market_statistics_are_within_range_of_the_real_capture(
    real: MarketStats,
) -> None:
    assert _outside(_synth(), real) == []


@pytest.mark.no_cover  # a long simulation: see tests/conftest.py untraced
def test_a_market_without_informed_sweeps_is_caught(real: MarketStats) -> None:
    # the same generator with its trades made uninformed (each sweep one trade, the rest
    # random background flow): the touch quoter's markout collapses and the check says so
    bad = _outside(_synth(MarketShape(sweep_trade_share=0.0)), real)
    assert any(b.startswith("adverse_1s_bps") for b in bad), bad


def test_module_entry_point_prints_the_table(capsys: pytest.CaptureFixture[str]) -> None:
    main(["--synth-seed", "3", "--duration", "2m", "--profile", "base"])
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "| statistic | synthetic (seed 3, 2m) |"
    assert any(line.startswith("| touch quoter markout 1 s, bps | ") for line in out)
    with pytest.raises(SystemExit):
        main([])
