"""Great Expectations suites: a clean frame passes, each kind of bad row is caught."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from bot.config import Settings
from gates.kpi import KPI_NAMES, Journal, compute_kpis
from gates.quality import (
    FillRules,
    check_fills,
    check_iterations,
    check_market_data,
    check_orders,
)
from gates.verdict import Status, Verdict
from tests.unit import gates_helpers as h

MS = h.MS
RULES = FillRules(maker_bps=-0.5, taker_bps=3.0, price_band_bps=50.0, max_order_qty=2.0)


def failed(verdict: Verdict) -> dict[str, list[object]]:
    """expectation(column) -> sample bad values, for the failed checks."""
    return {
        f"{c.detail['expectation']}({c.detail['column']})": c.detail["unexpected"]
        for c in verdict.checks
        if c.status is Status.FAIL and c.detail
    }


def book() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "ts_ns": [h.T0 + k * 100 * MS for k in range(5)],
            "symbol": "BTCUSDT",
            "bid": [99.9, 99.9, 100.0, 100.0, 99.8],
            "ask": [100.1, 100.0, 100.1, 100.2, 99.9],
            "bid_qty": [1.0, 2.0, 1.5, 0.5, 1.0],
            "ask_qty": [1.0, 1.0, 1.0, 1.0, 3.0],
        }
    )


def test_clean_market_data_passes() -> None:
    trades = pd.DataFrame(
        {"ts_ns": [h.T0, h.T0, h.T0 + MS], "price": [100.0] * 3, "qty": [0.1] * 3}
    )
    verdict = check_market_data(book(), trades, max_gap_ms=1_000)
    assert verdict.status is Status.PASS, verdict.reasons
    assert len(verdict.checks) > 10


@pytest.mark.parametrize(
    ("column", "row", "value", "expectation", "sample"),
    [
        ("bid", 2, math.nan, "expect_column_values_to_not_be_null(bid)", None),
        (
            "ask",
            1,
            99.9,
            "expect_column_pair_values_a_to_be_greater_than_b(ask,bid)",
            [[99.9, 99.9]],
        ),
        ("bid_qty", 3, 0.0, "expect_column_values_to_be_between(bid_qty)", [0.0]),
        ("ask", 4, -1.0, "expect_column_values_to_be_between(ask)", [-1.0]),
        ("ts_ns", 3, h.T0 + 50 * MS, "expect_column_values_to_be_between(gap_ms)", [-150.0]),
        ("ts_ns", 4, h.T0 + 5_000 * MS, "expect_column_values_to_be_between(gap_ms)", [4700.0]),
    ],
)
def test_bad_market_rows_are_caught(
    column: str, row: int, value: float, expectation: str, sample: list[float] | None
) -> None:
    frame = book()
    frame.loc[row, column] = value
    verdict = check_market_data(frame, max_gap_ms=1_000)
    assert verdict.status is Status.FAIL
    bad = failed(verdict)
    assert expectation in bad, bad
    if sample is not None:
        assert bad[expectation] == sample


def test_empty_book_fails() -> None:
    verdict = check_market_data(book().iloc[0:0])
    assert verdict.status is Status.FAIL
    assert any("row_count" in c.name for c in verdict.checks if c.status is Status.FAIL)


def test_bad_trade_is_caught() -> None:
    trades = pd.DataFrame({"ts_ns": [h.T0, h.T0 + MS], "price": [100.0, 0.0], "qty": [0.1, 0.1]})
    verdict = check_market_data(book(), trades, max_gap_ms=1_000)
    assert failed(verdict) == {"expect_column_values_to_be_between(price)": [0.0]}


def fills() -> pd.DataFrame:
    rows = [
        # price, qty, liquidity, mid, side
        (99.9, 1.0, "maker", 100.0, 1),
        (100.1, 0.5, "maker", 100.0, -1),
        (100.2, 2.0, "taker", 100.1, 1),
    ]
    frame = pd.DataFrame(rows, columns=["price", "qty", "liquidity", "mid", "side"])
    rate = frame["liquidity"].map({"maker": -0.5, "taker": 3.0})
    frame["fee"] = frame["price"] * frame["qty"] * rate / 1e4  # the schedule, by construction
    frame["ts_ns"] = [h.T0, h.T0 + MS, h.T0 + 2 * MS]
    frame["symbol"] = "BTCUSDT"
    frame["client_order_id"] = ["a", "b", "c"]
    frame["trade_id"] = ["t1", "t2", "t3"]
    return frame


def test_clean_fills_pass() -> None:
    verdict = check_fills(fills(), RULES)
    assert verdict.status is Status.PASS, verdict.reasons


def test_maker_fee_paid_despite_rebate_is_caught() -> None:
    frame = fills()
    frame.loc[0, "fee"] = 0.005  # paid where the schedule gives a rebate
    bad = failed(check_fills(frame, RULES))
    assert bad["expect_column_values_to_be_between(fee)"] == [0.005]
    assert "expect_column_values_to_be_between(fee_error_bps)" in bad


def test_wrong_fee_size_is_caught() -> None:
    frame = fills()
    frame.loc[2, "fee"] = 100.2 * 2.0 * 5.5 / 1e4  # vip0 taker rate, not mm1's
    bad = failed(check_fills(frame, RULES))
    assert list(bad) == ["expect_column_values_to_be_between(fee_error_bps)"]
    assert bad["expect_column_values_to_be_between(fee_error_bps)"][0] == pytest.approx(2.5)


def test_fee_rounding_is_tolerated() -> None:
    frame = fills()
    frame["fee"] = frame["fee"].round(8)
    assert check_fills(frame, RULES).status is Status.PASS


@pytest.mark.parametrize(
    ("column", "value", "expectation"),
    [
        ("price", 101.0, "expect_column_values_to_be_between(mid_distance_bps)"),
        ("qty", 3.0, "expect_column_values_to_be_between(qty)"),
        ("liquidity", "maybe", "expect_column_values_to_be_in_set(liquidity)"),
        ("trade_id", None, "expect_column_values_to_not_be_null(trade_id)"),
        ("mid", None, "expect_column_values_to_not_be_null(mid)"),
    ],
)
def test_bad_fill_rows_are_caught(column: str, value: object, expectation: str) -> None:
    frame = fills()
    frame[column] = frame[column].astype(object)
    frame.loc[1, column] = value
    # keep the fee consistent so only the intended rule trips
    rate = frame["liquidity"].map({"maker": -0.5, "taker": 3.0}).fillna(3.0)
    frame["fee"] = frame["price"].astype(float) * frame["qty"].astype(float) * rate / 1e4
    bad = failed(check_fills(frame, RULES))
    assert expectation in bad, bad


@pytest.mark.parametrize("order", ["a", "b"])
def test_trade_applied_twice_is_caught(order: str) -> None:
    """The same execution twice, on the same order or booked to another one."""
    frame = fills()
    frame.loc[1, ["client_order_id", "trade_id"]] = [order, "t1"]
    bad = failed(check_fills(frame, RULES))
    assert bad == {"expect_column_values_to_be_unique(trade_id)": ["t1", "t1"]}


def test_fill_without_mid_is_caught_alone() -> None:
    frame = fills()
    frame.loc[2, "mid"] = math.nan  # the price band check cannot see it: NaN is not "bad"
    verdict = check_fills(frame, RULES)
    assert verdict.status is Status.FAIL
    assert list(failed(verdict)) == ["expect_column_values_to_not_be_null(mid)"]


def test_rules_from_settings() -> None:
    rules = FillRules.from_settings(Settings())
    assert rules == FillRules(maker_bps=-0.5, taker_bps=3.0, price_band_bps=50.0, max_order_qty=0.1)


def orders() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "ts_ns": [h.T0, h.T0 + 20 * MS, h.T0 + 30 * MS],
            "symbol": "BTCUSDT",
            "client_order_id": ["a", "a", "a"],
            "event": ["place", "ack", "cancel"],
            "ts_send_ns": [h.T0, h.T0, 0],
            "ts_ack_ns": [0, h.T0 + 20 * MS, 0],
        }
    )


def test_clean_orders_pass() -> None:
    assert check_orders(orders()).status is Status.PASS


def test_ack_before_send_is_caught() -> None:
    frame = orders()
    frame.loc[1, "ts_ack_ns"] = h.T0 - MS
    bad = failed(check_orders(frame))
    assert bad == {
        "expect_column_pair_values_a_to_be_greater_than_b(ts_ack_ns,ts_send_ns)": [
            [h.T0 - MS, h.T0]
        ]
    }


def test_unknown_order_event_is_caught() -> None:
    frame = orders()
    frame.loc[2, "event"] = "teleport"
    assert failed(check_orders(frame)) == {"expect_column_values_to_be_in_set(event)": ["teleport"]}


def test_journal_tables_of_the_hand_run() -> None:
    journal = Journal.of(h.memory_tables(), h.MANIFEST)
    assert check_market_data(journal.table("book")).status is Status.PASS
    # the hand journal has an ack whose ack stamp was never recorded (0 < send)
    assert check_orders(journal.table("orders")).status is Status.FAIL


def iterations() -> pd.DataFrame:
    kpis = compute_kpis(Journal.of(h.memory_tables(), h.MANIFEST)).total
    return pd.DataFrame([kpis, {**kpis, "net_bps": 3.5}])


def test_clean_iterations_pass() -> None:
    assert check_iterations(iterations()).status is Status.PASS


def test_iteration_missing_field_and_out_of_range() -> None:
    frame = iterations().drop(columns=["cancel_ratio"])
    frame.loc[1, "maker_share"] = 1.5
    frame.loc[0, "fills"] = math.nan
    verdict = check_iterations(frame)
    assert verdict.status is Status.FAIL
    reasons = verdict.reasons
    assert "iterations.expect_column_to_exist(cancel_ratio): column missing" in reasons
    bad = failed(verdict)
    assert bad["expect_column_values_to_be_between(maker_share)"] == [1.5]
    assert "expect_column_values_to_not_be_null(fills)" in bad
    assert set(KPI_NAMES) - set(frame.columns) == {"cancel_ratio"}
