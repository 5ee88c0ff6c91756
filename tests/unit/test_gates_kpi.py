"""KPIs against values worked out by hand from the journal in gates_helpers."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from bot.journal import MemoryJournal
from gates.kpi import (
    EXTRA_NAMES,
    KPI_NAMES,
    Journal,
    KpiError,
    compute_kpis,
    equity_curve,
    fill_edges,
    interval_series,
    load_journal,
    nearest_rank,
    nearest_rank_by,
    quoted_samples,
)
from tests.unit import gates_helpers as h

# per fill, by hand: gross = s(m-p)/m, fee = -fee/n, adverse = s(m-m_H)/m (all x1e4)
GROSS = [(100.0 - 99.9) / 100.0 * 1e4, -(100.2 - 100.3) / 100.2 * 1e4,
         (99.8 - 99.9) / 99.8 * 1e4, -(100.0 - 100.1) / 100.0 * 1e4]  # fmt: skip
NOTIONAL = [199.8, 100.3, 99.9, 100.1]
FEE = [0.02 / 199.8 * 1e4, 0.01 / 100.3 * 1e4, -0.03 / 99.9 * 1e4, 0.01 / 100.1 * 1e4]
# m_H at t+1 s: F1 -> 100.2 (t=1000), F2 -> 99.8 (t=2500), F3 -> 99.6 (t=3000), F4 -> none
ADVERSE = [(100.0 - 100.2) / 100.0 * 1e4, -(100.2 - 99.8) / 100.2 * 1e4,
           (99.8 - 99.6) / 99.8 * 1e4, math.nan]  # fmt: skip
NET = [g + f - a for g, f, a in zip(GROSS, FEE, ADVERSE, strict=True)]


@pytest.fixture(scope="module")
def journal(tmp_path_factory: pytest.TempPathFactory) -> Journal:
    return load_journal(h.write_journal(tmp_path_factory.mktemp("kpi") / "journal"))


def test_nearest_rank_on_hand_lists() -> None:
    assert nearest_rank(np.arange(1, 21)) == 19  # ceil(0.95*20) = 19th of 1..20
    assert nearest_rank(np.array([5.0, 1.0, 3.0])) == 5  # ceil(2.85) = 3rd
    assert nearest_rank(np.arange(1, 101)) == 95
    assert nearest_rank(np.array([math.nan, 2.0])) == 2
    assert math.isnan(nearest_rank(np.array([])))
    by = nearest_rank_by(pd.Series([1, 1, 1, 2]), pd.Series([3.0, 1.0, 2.0, 7.0]))
    assert by.to_dict() == {1: 3.0, 2: 7.0}


def test_fill_edges_match_hand_values(journal: Journal) -> None:
    edges = fill_edges(journal, 1_000)
    np.testing.assert_allclose(edges["gross_bps"], GROSS)
    np.testing.assert_allclose(edges["fee_bps"], FEE)
    np.testing.assert_allclose(edges["adverse_bps"], ADVERSE)  # NaN where no m_H
    np.testing.assert_allclose(edges["net_bps"], NET)
    np.testing.assert_allclose(edges["mid_h"], [100.2, 99.8, 99.6, math.nan])


def test_aggregates_are_notional_weighted(journal: Journal) -> None:
    kpis = compute_kpis(journal).total
    weighted = sum(g * n for g, n in zip(GROSS, NOTIONAL, strict=True)) / sum(NOTIONAL)
    assert kpis["gross_bps"] == pytest.approx(weighted)
    assert kpis["gross_bps"] != pytest.approx(sum(GROSS) / 4)  # not a plain mean
    known = NOTIONAL[:3]  # F4 has no m_H: out of adverse and net
    assert kpis["adverse_bps"] == pytest.approx(
        sum(a * n for a, n in zip(ADVERSE[:3], known, strict=True)) / sum(known)
    )
    assert kpis["net_bps"] == pytest.approx(
        sum(x * n for x, n in zip(NET[:3], known, strict=True)) / sum(known)
    )
    assert kpis["fee_bps"] == pytest.approx(
        sum(f * n for f, n in zip(FEE, NOTIONAL, strict=True)) / sum(NOTIONAL)
    )
    assert kpis["adverse_p95_bps"] == pytest.approx(ADVERSE[2])  # ceil(0.95*3)=3rd of 3


def test_run_kpis_match_hand_values(journal: Journal) -> None:
    kpis = compute_kpis(journal).total
    assert kpis["fills"] == 4
    assert kpis["turnover_usd"] == pytest.approx(500.1)
    assert kpis["maker_share"] == pytest.approx((199.8 + 100.3 + 100.1) / 500.1)
    # cash = -199.8 + 100.3 - 99.9 + 100.1 - (-0.01 fees) ; final position +1 at mid 100
    assert kpis["pnl_usd"] == pytest.approx(-99.3 + 0.01 + 100.0)
    # equity peaks at 0.73 (t=1.5 s) and bottoms at -0.20 (t=3 s, mid 99.6, position 2)
    assert kpis["max_drawdown_usd"] == pytest.approx(0.93)
    # |position·mid| / 1000 on 15 book samples: the 15th of 15 (ceil 14.25) = 2·100.2/1000
    assert kpis["inventory_ratio_p95"] == pytest.approx(0.2004)
    assert kpis["order_latency_p95_ms"] == pytest.approx(40.0)  # 10, 40, 20, 30 -> 4th
    assert kpis["cancel_ratio"] == pytest.approx(3 / 8)
    # every acknowledged order of this journal is a bid: never both sides on the book
    # (the wanted quotes were two-sided, but the venue never held an ask)
    assert kpis["quote_uptime"] == 0
    assert kpis["freezes"] == 2


def test_five_second_horizon(journal: Journal) -> None:
    # m_5s: F1 -> 100.0 (t=5 s), F2 -> 100.0 (6.2 -> 6.5 s), F3 -> 100.0 (7 s), F4 none
    adverse = [0.0, -(100.2 - 100.0) / 100.2 * 1e4, (99.8 - 100.0) / 99.8 * 1e4]
    kpis = compute_kpis(journal).total
    known = NOTIONAL[:3]
    expected = sum(a * n for a, n in zip(adverse, known, strict=True)) / sum(known)
    assert kpis["adverse_5s_bps"] == pytest.approx(expected)


def test_report_shape_and_json(journal: Journal) -> None:
    report = compute_kpis(journal)
    data = report.to_dict()
    assert set(data) == {"total", "by_symbol"}
    assert set(data["total"]) == set(KPI_NAMES) | set(EXTRA_NAMES)
    assert set(data["by_symbol"]) == {h.SYMBOL}
    assert data["by_symbol"][h.SYMBOL]["net_bps"] == pytest.approx(data["total"]["net_bps"])


def test_no_fills_gives_nan_not_zero() -> None:
    tables = h.memory_tables()
    tables["fills"] = tables["fills"].iloc[0:0]
    kpis = compute_kpis(Journal.of(tables, h.MANIFEST)).total
    for name in ("net_bps", "gross_bps", "adverse_bps", "maker_share", "adverse_p95_bps"):
        assert math.isnan(kpis[name]), name
    assert kpis["fills"] == 0 and kpis["turnover_usd"] == 0 and kpis["pnl_usd"] == 0


def test_empty_journal_is_all_undefined() -> None:
    kpis = compute_kpis(Journal.of({}, {})).total
    for name in ("order_latency_p95_ms", "cancel_ratio", "quote_uptime", "max_drawdown_usd"):
        assert math.isnan(kpis[name]), name
    assert kpis["freezes"] == 0


def test_missing_inventory_limit_is_nan() -> None:
    kpis = compute_kpis(Journal.of(h.memory_tables(), {"mode": "paper"})).total
    assert math.isnan(kpis["inventory_ratio_p95"])


def test_limit_read_from_settings_in_manifest() -> None:
    manifest = {"settings": {"risk": {"max_inventory_usd": 500.0}}}
    kpis = compute_kpis(Journal.of(h.memory_tables(), manifest)).total
    assert kpis["inventory_ratio_p95"] == pytest.approx(0.4008)


def test_interval_series_by_hand(journal: Journal) -> None:
    series = interval_series(journal, "2s")
    assert list(series.index) == list(
        pd.to_datetime([h.T0 + k * 2_000 * h.MS for k in range(4)], unit="ns", utc=True)
    )
    assert series["fills"].tolist() == [2, 1, 0, 1]
    first = (NET[0] * 199.8 + NET[1] * 100.3) / (199.8 + 100.3)
    assert series["net_bps"].iloc[0] == pytest.approx(first)
    assert series["net_bps"].iloc[1] == pytest.approx(NET[2])
    assert series["net_bps"].iloc[2:].isna().all()  # no fills; F4 has no m_H
    assert series["maker_share"].tolist()[:2] == [1.0, 0.0]
    np.testing.assert_allclose(series["pnl_usd"], [0.73, 0.60, 0.60, 0.71])
    np.testing.assert_allclose(series["inventory_ratio"], [0.2004, 0.2, 0.2, 0.2])
    np.testing.assert_allclose(series["turnover_usd"], [300.1, 99.9, 0.0, 100.1])
    assert series["order_latency_ms"].iloc[0] == 40.0
    assert series["error_rate"].iloc[0] == 0.0  # 5 acks, no reject
    assert series["error_rate"].iloc[1] == 1.0  # the reject at 2.1 s


def test_bad_interval_is_a_typed_error(journal: Journal) -> None:
    with pytest.raises(KpiError, match="interval"):
        interval_series(journal, "soon")


def test_two_symbols_split_and_sum(tmp_path: Path) -> None:
    memory = MemoryJournal()
    h.record(memory, "BTCUSDT")
    h.record(memory, "ETHUSDT")
    memory.append("risk", h.T0, "*", "freeze", "edge", "global", "FROZEN")  # the whole bot
    tables = {name: memory.frame(name) for name in memory.buffers}
    journal = Journal.of(tables, h.MANIFEST)
    report = compute_kpis(journal)
    assert set(report.by_symbol) == {"BTCUSDT", "ETHUSDT"}
    assert report.by_symbol["ETHUSDT"]["fills"] == 4
    assert report.total["fills"] == 8
    assert report.total["freezes"] == 2 + 2 + 1
    assert report.by_symbol["ETHUSDT"]["freezes"] == 2 + 1  # its own and the global one
    assert report.total["pnl_usd"] == pytest.approx(2 * 0.71)
    assert report.total["net_bps"] == pytest.approx(report.by_symbol["BTCUSDT"]["net_bps"])
    curve = equity_curve(journal)
    assert curve["pnl_usd"].iloc[-1] == pytest.approx(1.42)
    assert curve["position"].isna().all()  # base units of two symbols do not add
    assert report.total["max_drawdown_usd"] == pytest.approx(2 * 0.93)


# (t_ms, client_order_id, event, side, price, status) on the helper's book (mids every
# 500 ms, 15 samples); quote distance 15 bps (the manifest's)
ORDER_LIFE = [
    (0, "b1", "ack", 1, 99.9, "OPEN"),
    (200, "a1", "ack", -1, 100.1, "OPEN"),
    (1200, "a1", "fill", -1, 100.1, "FILLED"),  # filled whole: off the book
    (1600, "a2", "ack", -1, 99.9, "OPEN"),
    (1900, "b1", "cancel", 1, 99.9, "PENDING_CANCEL"),  # sent, not done: still on the book
    (2100, "b1", "cancel_ack", 1, 99.9, "CANCELED"),
    (2600, "b2", "ack", 1, 99.7, "OPEN"),
    (2800, "a2", "cancel", -1, 99.9, "PENDING_CANCEL"),
    (3000, "a2", "cancel_ack", -1, 99.9, "CANCELED"),  # gone at 3 s (the end is exclusive)
    (3900, "b3", "ack", 1, 99.95, "OPEN"),
    (3900, "a4", "ack", -1, 100.05, "OPEN"),
    (4200, "b3", "fill", 1, 99.95, "PARTIALLY_FILLED"),  # a partial fill keeps it working
    (5200, "a4", "expired", -1, 100.05, "EXPIRED"),
    (5600, "a5", "place", -1, 100.05, "PENDING_NEW"),  # in flight to the end: not on book
]


def order_life_tables() -> dict[str, pd.DataFrame]:
    tables = h.memory_tables()
    memory = MemoryJournal()
    for t, cid, event, side, price, status in ORDER_LIFE:
        ts = h.T0 + t * h.MS
        ack = ts if event == "ack" else 0
        memory.append("orders", ts, h.SYMBOL, cid, event, side, price, 1.0, status, ts, ack, "")
    tables["orders"] = memory.frame("orders")
    return tables


def test_quote_uptime_counts_acknowledged_orders_on_the_book() -> None:
    """By hand, sample by sample (mid; best bid / ask on the book within 15 bps):
    0 s: b1 only (a1 not acked yet); 0.5 s: b1 99.9, a1 100.1 around 100.0 -> quoted;
    1 s and 1.5 s: b1 is 29.9 bps under 100.2, a1 filled at 1.2 s; 2 s: mid 99.8, b1
    (cancel sent, not acked) and a2 99.9 -> quoted; 2.5 s: no bid; 3 s and 3.5 s: b2
    99.7 is too far under 100.0 (3.5 s) and a2 is gone (3 s); 4, 4.5, 5 s: b3 99.95,
    a4 100.05 -> quoted; from 5.5 s no ask (a4 expired, a5 never acked): 5 of 15."""
    journal = Journal.of(order_life_tables(), h.MANIFEST)
    samples = quoted_samples(journal)
    quoted_at = {500, 2000, 4000, 4500, 5000}
    assert samples["quoted"].tolist() == [t in quoted_at for t in sorted(h.MIDS)]
    assert compute_kpis(journal).total["quote_uptime"] == pytest.approx(5 / 15)
    # the policy's distance is the one used: at 5 bps only 4-5 s keeps both sides
    narrow = journal.judged_by(max_quote_distance_bps=5.0)
    assert compute_kpis(narrow).total["quote_uptime"] == pytest.approx(3 / 15)


def test_quote_uptime_without_orders_is_zero_and_without_book_undefined() -> None:
    tables = h.memory_tables()
    tables["orders"] = tables["orders"].iloc[0:0]
    assert compute_kpis(Journal.of(tables, h.MANIFEST)).total["quote_uptime"] == 0
    tables["book"] = tables["book"].iloc[0:0]
    assert math.isnan(compute_kpis(Journal.of(tables, h.MANIFEST)).total["quote_uptime"])
