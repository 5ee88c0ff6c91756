"""Portfolio: hand-worked PnL, fees vs rebates, idempotence, and exactness over 1 M fills."""

from __future__ import annotations

from dataclasses import fields
from decimal import Decimal
from fractions import Fraction
from math import gcd

import numpy as np
import pytest

from bot.journal import SCHEMAS
from bot.model import Instrument, Liquidity, OrderFill, Side
from bot.order_registry import RECENT_ORDERS
from bot.portfolio import (
    DEFAULT_DEDUP_CAPACITY,
    InvalidFill,
    MissingMark,
    Portfolio,
    PositionSnapshot,
    UnknownSymbol,
)

D = Decimal
BTC = Instrument(
    "BTCUSDT", tick_size=D("0.1"), lot_size=D("0.001"), min_qty_lots=1, min_notional=D(5)
)
ETH = Instrument(
    "ETHUSDT", tick_size=D("0.01"), lot_size=D("0.01"), min_qty_lots=1, min_notional=D(5)
)

_counter = iter(range(10**9))


def fill(
    side: Side,
    px: int,
    qty: int,
    *,
    symbol: str = "BTCUSDT",
    fee: str = "0",
    coid: str | None = None,
    trade_id: str | None = None,
) -> OrderFill:
    n = next(_counter)
    return OrderFill(
        ts_ns=n,
        symbol=symbol,
        client_order_id=coid or f"c{n}",
        trade_id=trade_id or f"t{n}",
        side=side,
        px=px,
        qty=qty,
        liquidity=Liquidity.MAKER,
        fee=D(fee),
    )


def portfolio() -> Portfolio:
    return Portfolio({"BTCUSDT": BTC, "ETHUSDT": ETH})


# --- hand-worked cases (BTC: 1 tick = 0.1 USD, 1 lot = 0.001 BTC) ----------------


def test_open_add_reduce_flip_close_worked_by_hand() -> None:
    p = portfolio()
    # open: buy 0.002 @ 100.0
    p.apply_fill(fill(Side.BUY, 1000, 2))
    assert p.position_lots("BTCUSDT") == 2
    assert p.position("BTCUSDT") == D("0.002")
    assert p.avg_px("BTCUSDT") == D("100.0")
    assert p.realized_pnl("BTCUSDT") == 0
    # add: buy 0.002 @ 110.0 -> avg (100 + 110) / 2 = 105
    p.apply_fill(fill(Side.BUY, 1100, 2))
    assert p.avg_px("BTCUSDT") == D("105")
    assert p.unrealized_pnl("BTCUSDT", D("110")) == D("0.020")  # 0.004 x (110 - 105)
    # reduce: sell 0.001 @ 120 -> realise (120 - 105) x 0.001; average unchanged
    p.apply_fill(fill(Side.SELL, 1200, 1))
    assert p.realized_pnl("BTCUSDT") == D("0.015")
    assert p.avg_px("BTCUSDT") == D("105")
    assert p.unrealized_pnl("BTCUSDT", D("110")) == D("0.015")  # 0.003 x 5
    # flip: sell 0.005 @ 100 closes 0.003 at a loss of 5 each, opens short 0.002 @ 100
    p.apply_fill(fill(Side.SELL, 1000, 5))
    assert p.realized_pnl("BTCUSDT") == 0  # 0.015 - 0.015
    assert p.position_lots("BTCUSDT") == -2
    assert p.avg_px("BTCUSDT") == D("100.0")
    assert p.unrealized_pnl("BTCUSDT", D("99")) == D("0.002")  # short 0.002, mid fell 1
    assert p.inventory_usd("BTCUSDT", D("99")) == D("-0.198")
    # close: buy 0.002 @ 95 -> realise (100 - 95) x 0.002
    p.apply_fill(fill(Side.BUY, 950, 2))
    assert p.position_lots("BTCUSDT") == 0
    assert p.avg_px("BTCUSDT") is None
    assert p.realized_pnl("BTCUSDT") == D("0.010")
    assert p.unrealized_pnl("BTCUSDT", D("123")) == 0
    # flat: total = realised = sells - buys = (1200 + 5000) - (2000 + 2200 + 1900) = 100
    # ticks x lots = 100 x 0.1 x 0.001 USD
    assert p.total_pnl({}) == D("0.01")


def test_short_side_realises_when_price_falls() -> None:
    p = portfolio()
    p.apply_fill(fill(Side.SELL, 2000, 3))
    p.apply_fill(fill(Side.BUY, 1990, 1))
    assert p.realized_pnl() == D("0.001")  # (200.0 - 199.0) x 0.001
    assert p.position_lots("BTCUSDT") == -2
    assert p.unrealized_pnl("BTCUSDT", D("201")) == D("-0.002")


def test_fractional_average_stays_exact() -> None:
    p = portfolio()
    p.apply_fill(fill(Side.BUY, 1000, 1))
    p.apply_fill(fill(Side.BUY, 1001, 2))
    assert p.avg_px("BTCUSDT") == D("300.2") / 3  # 3002/3 ticks, one division at the edge
    p.apply_fill(fill(Side.SELL, 1002, 1))
    # (1002 - 3002/3) ticks x 1 lot = 4/3 x 0.0001 USD
    assert p.realized_pnl("BTCUSDT") == D("0.0004") / 3
    assert p.avg_px("BTCUSDT") == D("300.2") / 3
    p.apply_fill(fill(Side.SELL, 1002, 2))
    assert p.realized_pnl("BTCUSDT") == D("0.0004")  # 3 x 1002 - 3002 = 4 ticks x lots


def test_fees_and_rebates_are_kept_apart_and_net() -> None:
    p = portfolio()
    p.apply_fill(fill(Side.BUY, 1000, 10, fee="0.05"))  # taker, paid
    p.apply_fill(fill(Side.SELL, 1010, 4, fee="-0.02"))  # maker rebate
    p.apply_fill(fill(Side.SELL, 1010, 6, fee="-0.03", symbol="BTCUSDT"))
    p.apply_fill(fill(Side.BUY, 100, 1, fee="-0.001", symbol="ETHUSDT"))
    assert p.fees_paid() == D("0.05")
    assert p.rebates() == D("0.051")
    assert p.rebates("BTCUSDT") == D("0.05")
    assert p.fees("BTCUSDT") == 0
    assert p.fees() == D("-0.001")
    # BTC flat: 10 lots x 10 ticks = 100 ticks x lots = 0.01 USD; ETH: 1 lot @ 1.00, mid 1.5
    assert p.realized_pnl() == D("0.01")
    assert p.total_pnl({"ETHUSDT": D("1.5")}) == D("0.01") + D("0.005") + D("0.001")


def test_duplicate_fill_is_refused_and_changes_nothing() -> None:
    p = portfolio()
    first = fill(Side.BUY, 1000, 2, fee="0.01", coid="o1", trade_id="x1")
    assert p.apply_fill(first) is True
    again = fill(Side.BUY, 1000, 2, fee="0.01", coid="o1", trade_id="x1")
    assert p.apply_fill(again) is False
    assert p.position_lots("BTCUSDT") == 2
    assert p.fees_paid() == D("0.01")
    # the same venue trade id on another order is a different fill
    assert p.apply_fill(fill(Side.BUY, 1000, 1, coid="o2", trade_id="x1")) is True
    assert p.position_lots("BTCUSDT") == 3


def test_dedup_memory_is_bounded_oldest_forgotten_first() -> None:
    p = Portfolio({"BTCUSDT": BTC}, dedup_capacity=2)
    a, b, c = (fill(Side.BUY, 1000, 1, coid=f"o{i}", trade_id="t") for i in range(3))
    for f in (a, b, c):
        assert p.apply_fill(f)
    assert p.apply_fill(c) is False
    assert p.apply_fill(a) is True  # forgotten: only the last 2 ids are remembered


def test_default_dedup_memory_is_bounded_and_covers_the_registrys_orders() -> None:
    # a days-long run: more fills than the default remembers, the position kept small
    assert DEFAULT_DEDUP_CAPACITY >= RECENT_ORDERS  # every remembered order's fill id
    p = Portfolio({"BTCUSDT": BTC})
    total = DEFAULT_DEDUP_CAPACITY + 100
    fills = [fill(Side.BUY if i % 2 else Side.SELL, 1000, 1, coid=f"o{i}", trade_id="t")
             for i in range(total)]  # fmt: skip
    for f in fills:
        assert p.apply_fill(f)
    assert p.apply_fill(fills[-DEFAULT_DEDUP_CAPACITY]) is False  # still remembered
    assert p.apply_fill(fills[99]) is True  # the 100 oldest ids are forgotten


def test_bad_inputs_are_typed_errors() -> None:
    p = portfolio()
    with pytest.raises(UnknownSymbol, match="XRPUSDT"):
        p.apply_fill(fill(Side.BUY, 1000, 1, symbol="XRPUSDT"))
    with pytest.raises(InvalidFill, match="qty 0 lots"):
        p.apply_fill(fill(Side.BUY, 1000, 0))
    p.apply_fill(fill(Side.BUY, 1000, 1))
    with pytest.raises(MissingMark, match="BTCUSDT holds 1 lots"):
        p.total_pnl({"ETHUSDT": D(1)})


def test_snapshot_maps_to_positions_table_in_order() -> None:
    p = portfolio()
    p.apply_fill(fill(Side.BUY, 1000, 2, fee="-0.001"))
    snap = p.snapshot(123, "BTCUSDT", D("101"))
    assert [f.name for f in fields(PositionSnapshot)] == SCHEMAS["positions"].names
    assert snap.row() == (123, "BTCUSDT", 0.002, 100.0, 101.0, 0.202, 0.0, 0.002, -0.001)
    flat = portfolio().snapshot(5, "ETHUSDT", D("2"))
    assert flat.avg_price is None
    assert flat.row()[3] is None


# --- exactness over 1 M random fills -----------------------------------------------


class _Reference:
    """Independent textbook average-cost bookkeeping: realise each reduction as it
    happens, as reduced integer ratios (plain ints and gcd, no Decimal, no floats)."""

    def __init__(self) -> None:
        self.position = 0
        self.avg_num, self.avg_den = 0, 1  # ticks
        self.real_num, self.real_den = 0, 1  # ticks x lots

    @property
    def avg(self) -> Fraction:
        return Fraction(self.avg_num, self.avg_den)

    @property
    def realized(self) -> Fraction:
        return Fraction(self.real_num, self.real_den)

    def apply(self, side: int, px: int, qty: int) -> None:
        pos = self.position
        self.position = pos + side * qty
        if pos == 0 or (pos > 0) == (side > 0):
            size = abs(pos)
            num = self.avg_num * size + px * qty * self.avg_den
            den = self.avg_den * (size + qty)
            g = gcd(num, den)
            self.avg_num, self.avg_den = num // g, den // g
            return
        closed = min(qty, abs(pos))
        direction = 1 if pos > 0 else -1
        gain = (px * self.avg_den - self.avg_num) * closed * direction  # over avg_den
        num = self.real_num * self.avg_den + gain * self.real_den
        den = self.real_den * self.avg_den
        g = gcd(num, den)
        self.real_num, self.real_den = num // g, den // g
        if self.position == 0:
            self.avg_num, self.avg_den = 0, 1
        elif (self.position > 0) != (pos > 0):
            self.avg_num, self.avg_den = px, 1


@pytest.mark.no_cover  # a long simulation: see tests/conftest.py untraced
def test_one_million_random_fills_stay_exact() -> None:
    n = 1_000_000
    rng = np.random.default_rng(20240808)
    # drawn up front as plain lists: the loop below does only the bookkeeping
    steps = rng.integers(-3, 4, n).tolist()
    coins = rng.random(n).tolist()
    offsets = rng.integers(-5, 6, n).tolist()
    qtys = rng.integers(1, 8, n).tolist()
    fee_units = rng.integers(-30, 61, n).tolist()  # micro-USD; negative = rebate
    fee_of = {u: Decimal(u).scaleb(-6) for u in range(-30, 61)}
    p = Portfolio({"BTCUSDT": BTC}, dedup_capacity=10_000)
    ref = _Reference()
    mid = 600_000  # ticks (60 000.0 USD)
    buys = sells = 0  # ticks x lots, for the flat round-trip identity
    fee_sum = Decimal(0)
    flats = 0
    for i in range(n):
        mid += steps[i]
        # mean-reverting inventory so the walk keeps crossing zero
        side = Side.BUY if coins[i] < 0.5 - ref.position / 400 else Side.SELL
        px = mid + offsets[i]
        qty = qtys[i]
        fee = fee_of[fee_units[i]]
        f = OrderFill(i, "BTCUSDT", "c", str(i), side, px, qty, Liquidity.MAKER, fee)
        assert p.apply_fill(f)
        ref.apply(int(side), px, qty)
        fee_sum += fee
        if side is Side.BUY:
            buys += px * qty
        else:
            sells += px * qty
        if ref.position == 0:
            flats += 1
            # a round trip that ends flat: PnL is exactly sells - buys
            assert p.realized_pnl() == Decimal(sells - buys) / 10_000
            assert p.total_pnl({}) == Decimal(sells - buys) / 10_000 - fee_sum
        if i % 997 == 0:
            assert _close(p.realized_pnl(), ref.realized / 10_000)
            assert p.position_lots("BTCUSDT") == ref.position
            avg = p.avg_px("BTCUSDT")
            assert (avg is None) if ref.position == 0 else _close(avg, ref.avg / 10)
    assert _close(p.realized_pnl(), ref.realized / 10_000)
    assert p.fees() == fee_sum
    assert flats > 1_000  # the walk really went through many round trips
    # realised + unrealised at any mark equals cash + position x mark exactly
    mark = Decimal(mid) / 10
    exact_unrealized = ref.position * (Fraction(mark) * 10 - ref.avg) / 10_000
    # total_pnl is exact (cash + position x mark), whatever the average price is
    assert Fraction(p.total_pnl({"BTCUSDT": mark}) + p.fees()) == (
        ref.realized / 10_000 + exact_unrealized
    )


def _close(value: Decimal, exact: Fraction) -> bool:
    """Equal to Decimal's 28 significant digits: the one division at the public edge."""
    return abs(Fraction(value) - exact) <= abs(exact) * Fraction(1, 10**26) + Fraction(1, 10**30)
