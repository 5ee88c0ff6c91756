"""Risk engine: every pre-trade check, the runtime guards, and the trading-state table
(bot/risk.py and its parts bot/pretrade.py, bot/guards.py, bot/trading_state.py).

Numbers used throughout (worked by hand): BTCUSDT, 1 tick = 0.1 USD, 1 lot =
0.001 BTC, mid = 600 000 ticks = 60 000 USD, so one lot is worth 60 USD and
1 bp of mid is 60 ticks.
"""

from __future__ import annotations

import itertools
import random
from dataclasses import fields
from decimal import Decimal

import pytest

from bot.config import RiskConfig
from bot.guards import EdgeGuard
from bot.journal import SCHEMAS
from bot.model import Instrument, Liquidity, OrderFill, Place, Side
from bot.pretrade import Denied
from bot.risk import RiskEngine
from bot.trading_state import (
    TRANSITIONS,
    InvalidRiskTransition,
    RiskAction,
    RiskError,
    RiskEvent,
    TradingState,
    next_state,
)

MS = 1_000_000
S = 1_000 * MS
MID = 600_000.0
BTC = Instrument(
    "BTCUSDT",
    tick_size=Decimal("0.1"),
    lot_size=Decimal("0.001"),
    min_qty_lots=1,
    min_notional=Decimal(5),
)
CFG = RiskConfig(
    max_order_qty=Decimal("0.01"),  # 10 lots
    max_order_notional=300.0,  # 5 lots at mid
    max_inventory_usd=1_200.0,  # 20 lots at mid
    max_total_inventory_usd=2_000.0,
    price_band_bps=50.0,  # 3 000 ticks at mid
    max_open_orders=4,
    max_orders_per_s=3,
    max_cancels_per_s=3,
    daily_loss_limit_usd=1_000.0,
    max_drawdown_usd=1_500.0,
    stale_data_ms=5_000,
    reject_rate_max=0.2,
    reject_window=10,
    edge_freeze_bps=1.5,
    edge_window_fills=50,
    edge_horizon_ms=1_000,
    freeze_cooldown_ms=60_000,
    reduce_only_inventory_ratio=0.8,  # REDUCING above 960 USD, back below 480 USD
)
_ids = itertools.count()


def engine(cfg: RiskConfig = CFG) -> RiskEngine:
    return RiskEngine(cfg, {"BTCUSDT": BTC})


def place(side: Side = Side.BUY, px: int = 599_990, qty: int = 1, ts_ns: int = 0) -> Place:
    return Place(ts_ns, "BTCUSDT", f"o{next(_ids)}", side, px, qty)


def check(
    risk: RiskEngine,
    order: Place,
    *,
    position: int = 0,
    open_orders: int = 0,
    total_usd: float = 0.0,
    mid: float = MID,
) -> Denied | None:
    return risk.check_new(
        order,
        mid_px=mid,
        position_lots=position,
        open_orders=open_orders,
        total_inventory_usd=total_usd,
    )


def denied_check(result: Denied | None) -> str | None:
    return None if result is None else result.check


# --- pre-trade checks: each fires, and passes just under its limit --------------------


def test_max_order_qty() -> None:
    risk = engine()
    assert check(risk, place(qty=10, px=300_000), mid=300_000.0) is None  # 10 lots x 30 USD
    denied = check(risk, place(qty=11, px=300_000), mid=300_000.0)
    assert denied is not None
    assert denied.check == "max_order_qty"
    assert denied.reason == "qty 11 lots > max 10 lots"


def test_max_order_notional_is_exact_at_the_limit() -> None:
    risk = engine()
    assert check(risk, place(px=600_000, qty=5)) is None  # exactly 300.00 USD
    denied = check(risk, place(px=600_001, qty=5))
    assert denied is not None
    assert denied.check == "max_order_notional"
    assert "notional 300.00 > max 300.00" in denied.reason  # 300.0005, shown to the cent


def test_price_band() -> None:
    risk = engine()
    assert check(risk, place(Side.SELL, px=603_000)) is None  # exactly 50 bps above mid
    assert check(risk, place(Side.BUY, px=597_000)) is None
    denied = check(risk, place(Side.SELL, px=603_001))
    assert denied is not None
    assert denied.check == "price_band"
    assert "+50.0 bps from mid 600000.0, band 50 bps" in denied.reason
    below = check(risk, place(Side.BUY, px=596_999))
    assert denied_check(below) == "price_band"


def test_symbol_inventory_limit_applies_to_increasing_orders_only() -> None:
    risk = engine()
    assert check(risk, place(qty=5), position=15) is None  # 20 lots = 1200 USD
    denied = check(risk, place(qty=5), position=16)
    assert denied is not None
    assert denied.check == "max_inventory_usd"
    assert denied.reason == "position would be 21 lots = 1260.00 USD > max 1200.00"
    # short side too
    assert denied_check(check(risk, place(Side.SELL, qty=1), position=-20)) == "max_inventory_usd"
    # already over the limit: a reducing order still passes
    assert check(risk, place(Side.SELL, qty=2), position=30) is None


def test_total_inventory_limit() -> None:
    risk = engine()
    # 5 more lots = 300 USD on top of 1700 USD elsewhere -> exactly 2000
    assert check(risk, place(qty=5), total_usd=1_700.0) is None
    denied = check(risk, place(qty=5), total_usd=1_760.0)
    assert denied is not None
    assert denied.check == "max_total_inventory_usd"
    assert denied.reason == "total inventory would be 2060.00 USD > max 2000.00"


def test_max_open_orders() -> None:
    risk = engine()
    assert check(risk, place(), open_orders=3) is None
    denied = check(risk, place(), open_orders=4)
    assert denied is not None
    assert denied.check == "max_open_orders"
    assert denied.reason == "4 open orders >= max 4"


def test_unknown_symbol_is_denied() -> None:
    risk = engine()
    order = Place(0, "DOGEUSDT", "x", Side.BUY, 100, 1)
    assert denied_check(check(risk, order)) == "instrument"


def test_order_rate_is_a_sliding_one_second_window_of_accepted_places() -> None:
    risk = engine()
    for ts in (0, 100 * MS, 200 * MS):
        assert check(risk, place(ts_ns=ts)) is None
    denied = check(risk, place(ts_ns=300 * MS))
    assert denied is not None
    assert denied.check == "max_orders_per_s"
    assert denied.reason == "3 orders in the last 1 s >= max 3/s"
    # a place denied by another check does not use up the rate
    assert denied_check(check(risk, place(ts_ns=999 * MS, qty=99))) == "max_order_qty"
    assert denied_check(check(risk, place(ts_ns=999 * MS))) == "max_orders_per_s"
    # the place at t=0 leaves the window at t=1 s exactly
    assert check(risk, place(ts_ns=1 * S)) is None
    assert denied_check(check(risk, place(ts_ns=1 * S + 50 * MS))) == "max_orders_per_s"
    assert check(risk, place(ts_ns=1 * S + 100 * MS)) is None


def test_checks_run_in_fixed_order_first_failure_wins() -> None:
    risk = engine()
    # breaks qty, notional, band and inventory at once: qty is checked first
    assert denied_check(check(risk, place(px=700_000, qty=50), position=100)) == "max_order_qty"
    assert denied_check(check(risk, place(px=700_000, qty=6), position=100)) == "max_order_notional"
    risk.freeze(0, "test")
    assert denied_check(check(risk, place(px=700_000, qty=50))) == "trading_state"


def test_denial_becomes_a_block_event() -> None:
    risk = engine()
    denied = check(risk, place(qty=11))
    assert denied is not None
    event = risk.denial_event(denied, 42, "BTCUSDT")
    assert event.row() == (
        42,
        "BTCUSDT",
        "block",
        "max_order_qty",
        f"{denied.client_order_id}: qty 11 lots > max 10 lots",
        "active",
    )


# --- cancels -------------------------------------------------------------------------


def test_cancels_are_never_blocked_but_a_cancel_storm_throttles_places() -> None:
    halted = engine()
    halted.kill(0, "operator test")
    # even HALTED, every cancel is accepted (check_cancel has no way to refuse one)
    for i in range(10):
        halted.check_cancel(i * MS)
    risk = engine()
    for i in range(10):
        risk.check_cancel(i * MS)
    events = risk.on_timer(30 * MS, 0.0, 0.0)
    assert [(e.kind, e.check) for e in events] == [("block", "cancel_rate")]
    assert events[0].reason == "4 cancels in 1 s > max 3/s; new orders throttled"
    assert risk.on_timer(40 * MS, 0.0, 0.0) == []  # reported once per breach
    # throttled until the oldest cancel of the breaching window (t=0) ages out at 1 s
    denied = check(risk, place(ts_ns=500 * MS))
    assert denied is not None
    assert denied.check == "cancel_rate"
    assert check(risk, place(ts_ns=1_010 * MS)) is None


def test_cancels_within_the_rate_do_not_throttle() -> None:
    risk = engine()
    for ts in (0, 400 * MS, 800 * MS, 1_100 * MS, 1_500 * MS):  # never 4 in one second
        risk.check_cancel(ts)
    assert check(risk, place(ts_ns=1_600 * MS)) is None
    assert risk.on_timer(1_700 * MS, 0.0, 0.0) == []


# --- runtime guards ----------------------------------------------------------------------


def test_stale_data_freezes_and_lifts_by_cooldown_only() -> None:
    risk = engine()
    assert risk.on_timer(10 * S, 0.0, 0.0) == []  # no book yet: guard not armed
    risk.on_book(10 * S, MID)
    assert risk.on_timer(15 * S - 1, 0.0, 0.0) == []
    [event] = risk.on_timer(15 * S, 0.0, 0.0)
    assert (event.kind, event.check, event.state) == ("freeze", "stale_data", "frozen")
    assert event.reason == "no book for * since 5000 ms >= 5000 ms"
    assert risk.freezes == 1
    risk.on_book(16 * S, MID)  # data is back: the freeze stays until the cool-down
    assert risk.on_timer(17 * S, 0.0, 0.0) == []
    assert risk.state is TradingState.FROZEN
    risk.on_book(74 * S, MID)
    [event] = risk.on_timer(75 * S, 0.0, 0.0)
    assert (event.kind, event.check, event.state) == ("unfreeze", "cooldown", "active")
    assert event.reason == "cool-down of 60000 ms over"


def test_stale_data_is_tracked_per_symbol() -> None:
    risk = engine()
    risk.on_book(0, MID, "BTCUSDT")
    risk.on_book(0, 2_000.0, "ETHUSDT")
    risk.on_book(4 * S, MID, "BTCUSDT")
    [event] = risk.on_timer(5 * S, 0.0, 0.0)
    assert event.reason == "no book for ETHUSDT since 5000 ms >= 5000 ms"


def test_cooldown_none_means_manual_unfreeze_only() -> None:
    risk = engine(CFG.model_copy(update={"freeze_cooldown_ms": None}))
    risk.freeze(0, "operator says so")
    assert risk.on_timer(10**6 * S, 0.0, 0.0) == []
    assert risk.state is TradingState.FROZEN
    assert denied_check(check(risk, place(ts_ns=10**6 * S))) == "trading_state"
    [event] = risk.unfreeze(10**6 * S, "checked by hand")
    assert (event.kind, event.check, event.state) == ("unfreeze", "operator", "active")
    assert check(risk, place(ts_ns=10**6 * S)) is None


def test_refreeze_restarts_cooldown_and_counts_once() -> None:
    risk = engine()
    risk.freeze(0, "a")
    risk.freeze(30 * S, "b")
    assert risk.freezes == 1
    assert risk.on_timer(60 * S, 0.0, 0.0) == []
    assert [e.kind for e in risk.on_timer(90 * S, 0.0, 0.0)] == ["unfreeze"]


def test_daily_loss_halts() -> None:
    risk = engine()
    assert risk.on_timer(1 * S, 0.0, 0.0) == []
    assert risk.on_timer(2 * S, -1_000.0, 0.0) == []  # at the limit, not beyond
    [event] = risk.on_timer(3 * S, -1_000.5, 0.0)
    assert (event.kind, event.check, event.state) == ("kill", "daily_loss", "halted")
    assert event.reason == "daily pnl -1000.50 USD < -1000.00 limit"
    assert denied_check(check(risk, place())) == "trading_state"


def test_daily_loss_restarts_each_utc_day() -> None:
    risk = engine()
    day = 86_400 * S
    risk.on_timer(0, 0.0, 0.0)
    risk.on_timer(day - S, -900.0, 0.0)
    assert risk.on_timer(day + S, -1_000.0, 0.0) == []  # -100 today
    assert risk.state is TradingState.ACTIVE


def test_drawdown_from_peak_halts() -> None:
    risk = engine()
    risk.on_timer(0, 0.0, 0.0)
    risk.on_timer(1 * S, 1_000.0, 0.0)  # peak
    assert risk.on_timer(2 * S, -500.0, 0.0) == []  # 1500 down: at the limit
    [event] = risk.on_timer(3 * S, -501.0, 0.0)
    assert (event.kind, event.check) == ("kill", "drawdown")
    assert event.reason == "drawdown 1501.00 USD from peak 1000.00 > max 1500.00"


def test_inventory_guard_reducing_with_hysteresis() -> None:
    risk = engine()
    assert risk.on_timer(0, 0.0, 960.0) == []
    [event] = risk.on_timer(1 * S, 0.0, -961.0)
    assert (event.kind, event.check, event.state) == ("reduce_only", "inventory", "reducing")
    assert event.reason == "inventory 961.00 USD > 960.00 (ratio x max_inventory_usd)"
    # REDUCING: reducing orders pass, increasing ones are refused
    assert check(risk, place(Side.BUY, qty=5, ts_ns=S), position=-16) is None
    denied = check(risk, place(Side.SELL, qty=1, ts_ns=S), position=-16)
    assert denied is not None
    assert denied.check == "trading_state"
    assert denied.reason == "reducing: sell 1 lots would not reduce position -16 lots"
    assert denied_check(check(risk, place(Side.BUY, ts_ns=S), position=0)) == "trading_state"
    # a flip to the same size on the other side does not reduce exposure; a smaller flip does
    assert (
        denied_check(check(risk, place(Side.BUY, qty=2, ts_ns=S), position=-1)) == "trading_state"
    )
    assert check(risk, place(Side.BUY, qty=3, ts_ns=S), position=-2) is None
    assert risk.on_timer(2 * S, 0.0, 481.0) == []  # still above the way back
    [event] = risk.on_timer(3 * S, 0.0, 480.0)
    assert (event.kind, event.check, event.state) == ("resume", "inventory", "active")


def test_unfreeze_goes_straight_to_reducing_when_inventory_is_high() -> None:
    risk = engine()
    risk.freeze(0, "x")
    assert risk.on_timer(1 * S, 0.0, 1_000.0) == []  # frozen: no reduce_only on top
    events = risk.unfreeze(2 * S, "ok")
    assert [(e.kind, e.state) for e in events] == [
        ("unfreeze", "active"),
        ("reduce_only", "reducing"),
    ]


def test_reject_rate_spike_freezes() -> None:
    risk = engine()
    for i in range(8):
        assert risk.on_order_result(i, rejected=False) == []
    assert risk.on_order_result(8, rejected=True) == []
    assert risk.on_order_result(9, rejected=True) == []  # 2/10 = max, not above
    [event] = risk.on_order_result(10, rejected=True)  # oldest ack leaves: 3/10
    assert (event.kind, event.check, event.state) == ("freeze", "reject_rate", "frozen")
    assert event.reason == "reject rate 0.30 over the last 10 orders > max 0.2"


REBATE = Decimal("0.00005")  # 0.5 bps of notional


def _fill(ts_ns: int, side: Side, px: int, qty: int = 1, rebate: Decimal = REBATE) -> OrderFill:
    """A maker fill whose fee is the rebate on its notional (1 tick x 1 lot = 0.0001 USD)."""
    fee = -(px * qty * Decimal("0.0001")) * rebate
    trade = f"t{ts_ns}"
    return OrderFill(ts_ns, "BTCUSDT", f"c{ts_ns}", trade, side, px, qty, Liquidity.MAKER, fee)


def edge_guard(window: int = 50) -> EdgeGuard:
    return EdgeGuard(freeze_bps=1.5, horizon_ms=1_000, window=window, min_fills=20)


def guard_fill(guard: EdgeGuard, fill: OrderFill, mid: float) -> None:
    notional = fill.px * fill.qty * 0.0001
    guard.on_fill(fill.symbol, fill.ts_ns, int(fill.side), fill.px, float(fill.fee), notional, mid)


def test_edge_completes_at_first_mid_at_or_after_the_horizon() -> None:
    guard = edge_guard()
    guard_fill(guard, _fill(0, Side.BUY, 599_880), MID)  # 2 bps inside mid
    assert not guard.on_mid(S - 1, MID, "BTCUSDT")
    assert guard.rolling_edge_bps() == (0.0, 0)
    assert guard.on_mid(S + 5, 599_940.0, "BTCUSDT")  # mid fell 1 bp
    edge, count = guard.rolling_edge_bps()
    # gross 2 + fee 0.5 (the rebate) - adverse 1 = 1.5 bps
    assert count == 1
    assert edge == pytest.approx(1.5, abs=1e-9)


def test_the_edge_guard_uses_the_fee_the_fill_carries() -> None:
    """The same fill paying a taker fee of 3 bps instead of the 0.5 bps rebate: 3.5 bps less."""
    guard = edge_guard()
    guard_fill(guard, _fill(0, Side.BUY, 599_880, rebate=Decimal("-0.0003")), MID)
    assert guard.on_mid(S, 599_940.0, None)  # None: the mid of every symbol
    assert guard.rolling_edge_bps()[0] == pytest.approx(-2.0, abs=1e-9)


def test_toxic_fills_freeze_on_rolling_net_edge() -> None:
    """Each buy 2 bps under mid, then mid drops 3 bps within the horizon:
    net = 2 + 0.5 (rebate) - 3 = -0.5 bps per fill."""
    risk = engine()
    events: list[RiskEvent] = []
    for k in range(20):
        t = k * 2 * S
        events += risk.on_book(t, MID)
        events += risk.on_fill(_fill(t, Side.BUY, 599_880), MID)
        events += risk.on_book(t + S, 599_820.0)
        if k < 19:
            assert events == []  # fewer than 20 complete fills: no judgement yet
    [event] = events
    assert (event.kind, event.check, event.state) == ("freeze", "edge", "frozen")
    assert event.reason == "net edge -0.50 bps over the last 20 fills < 1.5 bps"
    assert risk.freezes == 1


def test_benign_fills_do_not_freeze_and_edge_is_notional_weighted() -> None:
    risk = engine()
    for k in range(30):
        t = k * 2 * S
        risk.on_book(t, MID)
        # sells 2 bps over mid, mid unchanged: net 2.5 bps; one big fill of 4 lots at 1 bp
        px, qty = (600_060, 4) if k == 0 else (600_120, 1)
        risk.on_fill(_fill(t, Side.SELL, px, qty), MID)
        assert risk.on_book(t + S, MID) == []
    assert risk.state is TradingState.ACTIVE
    guard = edge_guard()  # the same fills through the guard alone: the weighting
    for k in range(30):
        t = k * 2 * S
        px, qty = (600_060, 4) if k == 0 else (600_120, 1)
        guard_fill(guard, _fill(t, Side.SELL, px, qty), MID)
        guard.on_mid(t + S, MID, "BTCUSDT")
    edge, count = guard.rolling_edge_bps()
    assert count == 30
    # weights by notional: 4 x 600060 at 1.5 bps and 29 x 600120 at 2.5 bps
    w_big, w_small = 4 * 600_060, 29 * 600_120
    assert edge == pytest.approx((w_big * 1.5 + w_small * 2.5) / (w_big + w_small), rel=1e-9)


# --- the state machine ---------------------------------------------------------------------


def test_a_kill_is_final() -> None:
    risk = engine()
    risk.on_timer(0, 0.0, 0.0)
    [event] = risk.kill(1 * S, "fat finger")
    assert (event.kind, event.check, event.reason, event.state) == (
        "kill",
        "operator",
        "fat finger",
        "halted",
    )
    with pytest.raises(InvalidRiskTransition, match="cannot unfreeze while halted"):
        risk.unfreeze(2 * S, "no")
    assert risk.freeze(2 * S, "guard")[0].state == "halted"  # stricter state stays
    assert risk.on_timer(3 * S, -5_000.0, 0.0) == []  # already halted
    assert risk.on_timer(90 * S, -5_000.0, 0.0) == []  # no cool-down lifts a halt
    assert denied_check(check(risk, place(ts_ns=90 * S))) == "trading_state"
    # one pair leads out of HALTED: an operator's unhalt
    out = {k[1]: v for k, v in TRANSITIONS.items() if k[0] is TradingState.HALTED}
    assert {a for a, v in out.items() if v is not TradingState.HALTED} == {RiskAction.UNHALT}
    assert out[RiskAction.UNHALT] is TradingState.ACTIVE


def test_transition_table_every_row_and_every_missing_pair() -> None:
    for state, action in itertools.product(TradingState, RiskAction):
        if (state, action) in TRANSITIONS:
            assert next_state(state, action) is TRANSITIONS[(state, action)]
        else:
            with pytest.raises(InvalidRiskTransition):
                next_state(state, action)
    assert len(TRANSITIONS) == 12


def test_invalid_manual_transitions() -> None:
    risk = engine()
    with pytest.raises(InvalidRiskTransition, match="cannot unfreeze while active"):
        risk.unfreeze(0, "not frozen")
    risk.freeze(0, "x")
    risk.unfreeze(1, "ok")
    with pytest.raises(InvalidRiskTransition, match="cannot unfreeze while active"):
        risk.unfreeze(2, "twice")
    assert risk.state is TradingState.ACTIVE


def test_risk_event_maps_to_journal_table() -> None:
    assert [f.name for f in fields(RiskEvent)] == SCHEMAS["risk"].names


def test_same_inputs_same_events() -> None:
    def run() -> list[tuple[int, str, str, str, str, str]]:
        risk = engine()
        rows = []
        for k in range(40):
            t = k * 500 * MS
            rows += [e.row() for e in risk.on_book(t, MID - k * 10)]
            rows += [e.row() for e in risk.on_fill(_fill(t, Side.BUY, int(MID) - 60), MID - k * 10)]
            risk.check_cancel(t)
            rows += [e.row() for e in risk.on_timer(t, -k * 40.0, k * 30.0)]
        return rows

    first = run()
    assert first == run()
    assert len(first) > 0


def test_fill_on_unknown_symbol_or_bad_mid_is_an_error() -> None:
    risk = engine()
    bad = OrderFill(0, "DOGEUSDT", "c", "t", Side.BUY, 1, 1, Liquidity.MAKER, Decimal(0))
    with pytest.raises(RiskError, match="unknown symbol 'DOGEUSDT'"):
        risk.on_fill(bad, 1.0)
    with pytest.raises(RiskError, match="must be > 0"):
        risk.on_fill(_fill(0, Side.BUY, 599_880), 0.0)


class _EveryGuardEveryTimer(RiskEngine):
    """The reference: forgets its quiet timer, so every guard runs on every timer."""

    def on_timer(self, ts_ns: int, pnl_usd: float, inventory_usd: float) -> list[RiskEvent]:
        self._quiet_until = 0
        return super().on_timer(ts_ns, pnl_usd, inventory_usd)


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_quiet_timers_answer_as_if_every_guard_ran(seed: int) -> None:
    """Random books (sometimes late, sometimes silent for seconds), repeated pnl and
    inventory figures, cancel storms, operator freezes, across UTC midnights."""
    rng = random.Random(seed)
    fast, slow = engine(), _EveryGuardEveryTimer(CFG, {"BTCUSDT": BTC})
    rows: list[list[tuple[int, str, str, str, str, str]]] = [[], []]
    ts = 86_400 * S - 30 * S
    pnl, inventory = 0.0, 0.0
    for _ in range(3_000):
        ts += rng.choice((100 * MS, 100 * MS, 100 * MS, 3 * S, 7 * S))
        roll = rng.random()
        late = rng.choice((0, 0, 0, 2 * S, 4_900 * MS))
        symbol = rng.choice(("BTCUSDT",) * 8 + (None, "ETHUSDT"))
        rng_burst = rng.choice((1, 2, 5))
        for i, risk in enumerate((fast, slow)):
            if roll < 0.3:
                events = risk.on_book(ts - late, MID, symbol)
            elif roll < 0.33:
                for k in range(rng_burst):  # a burst: over the 3/s limit when >= 4
                    risk.check_cancel(ts + k)
                events = []
            elif roll < 0.34 and risk.state is TradingState.ACTIVE:
                events = risk.freeze(ts, "operator")
            else:
                events = risk.on_timer(ts, pnl, inventory)
            rows[i] += [e.row() for e in events]
        if rng.random() < 0.05:
            pnl += rng.choice((-300.0, -10.0, 20.0, 250.0))
            inventory = rng.choice((0.0, 500.0, 970.0, 1_100.0))
    assert rows[0] == rows[1]
    checks = {row[3] for row in rows[0]}
    assert {"stale_data", "cancel_rate"} <= checks and len(checks) >= 4, checks


def test_a_late_book_brings_the_stale_deadline_forward() -> None:
    risk = engine()
    risk.on_book(0, MID)
    assert risk.on_timer(1 * S, 0.0, 0.0) == []  # quiet: nothing can go stale before 5 s
    risk.on_book(4 * S, MID)
    assert risk.on_timer(5 * S, 0.0, 0.0) == []  # quiet until 9 s
    risk.on_book(3 * S, MID)  # a late message: the last book is now 3 s old at 6 s
    [event] = risk.on_timer(8 * S, 0.0, 0.0)
    assert (event.check, event.reason) == ("stale_data", "no book for * since 5000 ms >= 5000 ms")
