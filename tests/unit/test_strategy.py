"""QuotePolicy: every expected price and size below is worked by hand in the comments."""

from __future__ import annotations

import math
from decimal import Decimal

import pytest

from bot.config import StrategyConfig
from bot.model import Instrument, Side
from bot.strategy import EwmaVol, Quote, QuotePolicy, StrategyError, base_lots, edge_floor_bps

SYM = "BTCUSDT"


def inst(
    tick: str = "0.01", lot: str = "0.001", min_qty_lots: int = 1, min_notional: str = "5"
) -> Instrument:
    return Instrument(SYM, Decimal(tick), Decimal(lot), min_qty_lots, Decimal(min_notional))


def cfg(**overrides: object) -> StrategyConfig:
    # a flat 1.5 bps half-spread: vol off, edge floor 0.5 + 1.0 + 0 fee = 1.5
    base: dict[str, object] = {
        "fair_value": "mid",
        "vol_multiplier": 0.0,
        "min_half_spread_bps": 1.5,
        "min_edge_bps": 0.5,
        "expected_adverse_bps": 1.0,
        "order_qty": Decimal("0.01"),
        "skew_bps_per_inventory": 5.0,
        "skew_cap_bps": 10.0,
        "min_interval_ms": 50,
    }
    base.update(overrides)
    return StrategyConfig.model_validate(base)


def policy(
    c: StrategyConfig | None = None,
    instrument: Instrument | None = None,
    fee_bps: float = 0.0,
    max_inventory_usd: float = 1000.0,
    **kw: float,
) -> QuotePolicy:
    return QuotePolicy(c or cfg(), instrument or inst(), fee_bps, max_inventory_usd, **kw)


# touch around mid 50000.00 with tick 0.01: bid 49999.90 / ask 50000.10
BID, ASK = 4_999_990, 5_000_010


def test_hand_worked_50000_case() -> None:
    # 50000 x 1.5e-4 = 7.5 -> buy 49992.50, sell 50007.50
    quotes = policy().wanted(0, BID, 3, ASK, 3, 0)
    assert quotes == (
        Quote(SYM, Side.BUY, 0, 4_999_250, 10),
        Quote(SYM, Side.SELL, 0, 5_000_750, 10),
    )
    tick = Decimal("0.01")
    assert quotes[0].px * tick == Decimal("49992.50")
    assert quotes[1].px * tick == Decimal("50007.50")


def test_prices_round_away_from_the_touch() -> None:
    # mid = (4_999_999 + 5_000_002) / 2 = 5_000_000.5 ticks; 1.5 bps of it = 750.000075
    # bid 4_999_250.499925 -> floor 4_999_250; ask 5_000_750.500075 -> ceil 5_000_751
    bid, ask = policy().wanted(0, 4_999_999, 1, 5_000_002, 1, 0)
    assert (bid.px, ask.px) == (4_999_250, 5_000_751)


def test_edge_floor_counts_the_rebate_and_the_fee() -> None:
    rebate = cfg(min_half_spread_bps=0.5, min_edge_bps=0.5, expected_adverse_bps=2.0)
    # 0.5 + 2.0 - 1.0 rebate = 1.5
    assert edge_floor_bps(rebate, -1.0) == pytest.approx(1.5)
    # paying 2 bps: 0.5 + 2.0 + 2.0 = 4.5 -> 50000 x 4.5e-4 = 22.5 -> 49977.50 / 50022.50
    assert edge_floor_bps(rebate, 2.0) == pytest.approx(4.5)
    bid, ask = policy(rebate, fee_bps=2.0).wanted(0, BID, 1, ASK, 1, 0)
    assert (bid.px, ask.px) == (4_997_750, 5_002_250)
    # min_half_spread wins when it is the larger: 3 bps = 15.00
    wide = cfg(min_half_spread_bps=3.0)
    assert edge_floor_bps(wide, -1.0) == 3.0
    bid, ask = policy(wide, fee_bps=-1.0).wanted(0, BID, 1, ASK, 1, 0)
    assert (bid.px, ask.px) == (4_998_500, 5_001_500)


def test_microprice_leans_toward_the_thin_side() -> None:
    c = cfg(
        fair_value="microprice", min_half_spread_bps=1.0, min_edge_bps=0.0, expected_adverse_bps=0.0
    )
    # bid 100.00 x 3, ask 100.10 x 1 -> micro = (10000*1 + 10010*3) / 4 = 10007.5
    # 1 bps of 10007.5 = 1.00075 -> bid floor(10006.49925) = 10006, ask ceil(10008.50075) = 10009
    bid, ask = policy(c).wanted(0, 10_000, 3, 10_010, 1, 0)
    assert (bid.px, ask.px) == (10_006, 10_009)


def test_quotes_never_cross_the_touch() -> None:
    c = cfg(
        fair_value="microprice", min_half_spread_bps=0.0, min_edge_bps=0.0, expected_adverse_bps=0.0
    )
    # ask qty 0 -> microprice = ask = 10002; a zero half-spread bid would sit on the
    # ask and cross: it moves to best_ask - 1 = 10001. The ask stays above the bid.
    bid, ask = policy(c).wanted(0, 10_000, 5, 10_002, 0, 0)
    assert bid.px == 10_001
    assert ask.px == 10_002
    # bid qty 0 -> micro = bid = 10000: ask would sit on the best bid -> 10001
    bid, ask = policy(c).wanted(0, 10_000, 0, 10_002, 5, 0)
    assert (bid.px, ask.px) == (10_000, 10_001)


def test_no_quotes_on_a_crossed_or_empty_book() -> None:
    p = policy()
    assert p.wanted(0, 100, 1, 100, 1, 0) == ()
    assert p.wanted(0, 101, 1, 100, 1, 0) == ()
    assert p.wanted(0, 0, 1, 100, 1, 0) == ()


def test_min_qty_raises_the_size() -> None:
    # order_qty 0.002 = 2 lots, min qty 5 lots -> 5
    p = policy(cfg(order_qty=Decimal("0.002")), inst(min_qty_lots=5))
    assert [q.qty for q in p.wanted(0, BID, 1, ASK, 1, 0)] == [5, 5]


def test_min_notional_raises_the_size_per_side() -> None:
    # min notional 300: at 49992.50, 6 lots = 299.955 < 300 -> 7 lots;
    # at 50007.50, 6 lots = 300.045 >= 300 -> 6 lots
    p = policy(cfg(order_qty=Decimal("0.002")), inst(min_notional="300"))
    bid, ask = p.wanted(0, BID, 1, ASK, 1, 0)
    assert (bid.qty, ask.qty) == (7, 6)
    assert p.min_lots_at(5_000_000) == 6  # 50000 x 0.006 = 300 exactly


def test_size_rounds_down_to_the_lot_and_canary_fraction() -> None:
    i = inst()
    assert base_lots(Decimal("0.0109"), 1.0, i) == 10  # 10.9 lots -> 10
    assert base_lots(Decimal("1"), 0.05, i) == 50
    assert base_lots(Decimal("0.01"), 0.333, i) == 3  # 3.33 -> 3
    assert base_lots(Decimal("0.01"), 0.05, i) == 1  # 0.5 lot -> min qty 1
    assert base_lots(Decimal("0.01"), 0.05, inst(min_qty_lots=4)) == 4
    with pytest.raises(StrategyError, match="fraction"):
        base_lots(Decimal("0.01"), 0.0, i)
    p = policy(cfg(order_qty=Decimal("1")), size_fraction=0.05)
    assert {q.qty for q in p.wanted(0, BID, 1, ASK, 1, 0)} == {50}


def test_linear_skew_moves_quotes_away_from_inventory() -> None:
    # lot 0.001 at 50000 = 50 USD; 10 lots = 500 USD = 0.5 of max 1000 -> 5 x 0.5 = 2.5 bps
    p = policy()
    assert p.skew_bps(10, 5_000_000) == pytest.approx(2.5)
    # long: bid 1.5 + 2.5 = 4 bps = 20.00 below; ask max(1.5 - 2.5, floor 1.5) = 7.50 above
    bid, ask = p.wanted(0, BID, 1, ASK, 1, 10)
    assert (bid.px, ask.px) == (4_998_000, 5_000_750)
    # short mirrors it
    bid, ask = p.wanted(0, BID, 1, ASK, 1, -10)
    assert (bid.px, ask.px) == (4_999_250, 5_002_000)


def test_skew_narrows_the_reducing_side_down_to_the_floor_only() -> None:
    # half-spread 4 bps (min), floor from edge 1.5: long 10 lots -> skew 2.5 bps
    p = policy(cfg(min_half_spread_bps=1.5, vol_multiplier=1.0))
    p.vol.sigma_bps = 4.0  # as if measured; EwmaVol is tested on its own below
    bid, ask = p.wanted(0, BID, 1, ASK, 1, 10)
    # bid 4 + 2.5 = 6.5 bps = 32.50; ask 4 - 2.5 = 1.5 bps = 7.50
    assert (bid.px, ask.px) == (4_996_750, 5_000_750)


def test_skew_is_capped_and_relative_to_target() -> None:
    p = policy(cfg(skew_cap_bps=2.0))
    assert p.skew_bps(20, 5_000_000) == 2.0  # 5 bps x 1.0 capped
    assert p.skew_bps(-20, 5_000_000) == -2.0
    target = policy(cfg(target_inventory=Decimal("0.01")))  # 10 lots
    assert target.skew_bps(10, 5_000_000) == 0.0
    assert target.skew_bps(0, 5_000_000) == pytest.approx(-2.5)


def test_ewma_vol_worked_example() -> None:
    v = EwmaVol(1000)
    v.observe(0, 100.0)
    assert v.sigma_bps == 0.0
    v.observe(1_000_000_000, 100.0 * math.exp(0.001))
    # one return r = 0.001 after one window: var over 1 s = r^2 / (1 - e^-1)
    # sigma = 1e-3 / sqrt(0.6321206) x 1e4 = 12.5776 bps
    assert v.sigma_bps == pytest.approx(12.5776, abs=1e-3)


def test_ewma_vol_recovers_a_constant_rate() -> None:
    # +-1 bp every 10 ms: variance 1e-8 per 10 ms = 1e-6 per s -> sigma 10 bps over 1 s
    v = EwmaVol(1000)
    mid = 1_000_000.0
    for i in range(2001):
        mid *= math.exp(1e-4 if i % 2 else -1e-4)
        v.observe(i * 10_000_000, mid)
    assert v.sigma_bps == pytest.approx(10.0, rel=0.01)
    # a step back in time (interleaved feeds) does not decay or break the estimate
    before = v.sigma_bps
    v.observe(5_000_000_000, mid)
    assert v.sigma_bps == pytest.approx(before)


def test_avellaneda_stoikov_skew() -> None:
    c = cfg(skew_model="avellaneda_stoikov", risk_aversion=0.1, vol_window_ms=1000)
    p = policy(c)
    p.observe_mid(0, 100.0)
    p.observe_mid(1_000_000_000, 100.0 * math.exp(0.001))
    # var = 158.198 bps^2 (example above); q = 10 lots x 50 USD / 1000 = 0.5; T = 1 s
    # skew = 0.1 x 0.5 x 158.198 x 1 = 7.9099 bps (cap 10)
    assert p.skew_bps(10, 5_000_000) == pytest.approx(7.9099, abs=1e-3)
    assert p.skew_bps(-10, 5_000_000) == pytest.approx(-7.9099, abs=1e-3)
    assert (
        policy(cfg(skew_model="avellaneda_stoikov", skew_cap_bps=3.0, vol_window_ms=1000)).skew_bps(
            10, 5_000_000
        )
        == 0.0
    )


def test_vol_widens_the_half_spread() -> None:
    p = policy(cfg(vol_multiplier=2.0))
    p.vol.sigma_bps = 1.0  # 2 x 1.0 = 2.0 > floor 1.5
    assert p.half_spread_bps() == 2.0
    p.vol.sigma_bps = 0.5  # 2 x 0.5 = 1.0 < floor 1.5
    assert p.half_spread_bps() == 1.5


def test_ladder_levels_are_spaced() -> None:
    p = policy(cfg(levels=3, level_spacing_bps=1.0))
    quotes = p.wanted(0, BID, 1, ASK, 1, 0)
    bids = [q.px for q in quotes if q.side is Side.BUY]
    asks = [q.px for q in quotes if q.side is Side.SELL]
    # 1.5, 2.5, 3.5 bps of 50000 = 7.50, 12.50, 17.50
    assert bids == [4_999_250, 4_998_750, 4_998_250]
    assert asks == [5_000_750, 5_001_250, 5_001_750]
    assert [q.level for q in quotes] == [0, 0, 1, 1, 2, 2]


def test_ladder_levels_stay_distinct_with_zero_spacing() -> None:
    p = policy(cfg(levels=3, level_spacing_bps=0.0))
    quotes = p.wanted(0, BID, 1, ASK, 1, 0)
    assert [q.px for q in quotes if q.side is Side.BUY] == [4_999_250, 4_999_249, 4_999_248]
    assert [q.px for q in quotes if q.side is Side.SELL] == [5_000_750, 5_000_751, 5_000_752]


def test_min_interval_throttle() -> None:
    p = policy()  # min_interval 50 ms
    assert p.may_requote(0)
    p.requoted(1_000_000_000)
    assert not p.may_requote(1_049_000_000)
    assert p.may_requote(1_050_000_000)
    assert p.requote_threshold_bps == 0.5
    assert p.max_quote_age_ns == 5_000_000_000


def test_bad_parameters_are_refused() -> None:
    with pytest.raises(StrategyError, match="max_inventory_usd"):
        policy(max_inventory_usd=0.0)
    with pytest.raises(StrategyError, match="vol_window_ms"):
        EwmaVol(0)
