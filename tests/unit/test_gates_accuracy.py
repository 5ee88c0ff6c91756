"""Accuracy gate: identical, shifted, too short, zero references; sim_to_real on journals."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from bot.config import AccuracyConfig
from gates.accuracy import SIM_TO_REAL, accuracy_gate, mape, sim_to_real
from gates.kpi import Journal
from gates.verdict import Status
from tests.unit import gates_helpers as h

CFG = AccuracyConfig()  # 24 windows, 15 % / 30 %, net_bps 0.25 / 1.5 bps


def series(n: int = 30, seed: int = 1) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    index = pd.date_range("2024-08-09", periods=n, freq="5min", tz="UTC", name="start")
    return pd.DataFrame(
        {
            "net_bps": rng.uniform(3.0, 6.0, n),
            "maker_share": rng.uniform(0.9, 1.0, n),
            "fills": rng.integers(20, 40, n).astype(float),
            "order_latency_ms": rng.uniform(50, 80, n),
        },
        index=index,
    )


def statuses(verdict: object) -> dict[str, Status]:
    return {c.name: c.status for c in verdict.checks}  # type: ignore[attr-defined]


def test_identical_runs_pass() -> None:
    a = series()
    verdict = accuracy_gate(a, a.copy(), CFG)
    assert verdict.status is Status.PASS
    compared = [c for c in verdict.checks if c.name != "order_latency_ms"]
    assert [c.name for c in compared] == ["net_bps", "maker_share", "fills"]
    assert all(c.value == 0 for c in compared)
    assert verdict.summary["aligned_intervals"] == 30


def test_latency_is_not_compared_shadow_vs_paper_but_is_sim_to_real() -> None:
    a = series()
    b = a.copy()
    b["order_latency_ms"] = a["order_latency_ms"] * 3  # MAPE 200 %: would FAIL if compared
    latency = next(c for c in accuracy_gate(a, b, CFG).checks if c.name == "order_latency_ms")
    assert (latency.status, latency.value) == (Status.NA, None)
    assert latency.reason.startswith("not comparable: reference is 0 in every interval")
    judged = accuracy_gate(a, b, CFG, SIM_TO_REAL)
    assert statuses(judged)["order_latency_ms"] is Status.FAIL
    assert next(c for c in judged.checks if c.name == "order_latency_ms").value == (
        pytest.approx(2.0)
    )


def test_twenty_percent_off_warns_and_fifty_fails() -> None:
    a = series()
    warn = accuracy_gate(a, a * 1.2, CFG)
    assert statuses(warn)["fills"] is Status.WARN
    assert next(c for c in warn.checks if c.name == "fills").value == pytest.approx(0.2)
    assert accuracy_gate(a, a * 1.5, CFG).status is Status.FAIL
    close = statuses(accuracy_gate(a, a * 1.1, CFG))  # MAPE 10 % < 15 %
    assert (close["fills"], close["maker_share"]) == (Status.PASS, Status.PASS)
    # net_bps in bps: 10 % of a 3-6 bps edge is 0.3-0.6 bps, past the 0.25 bps pass bound
    assert close["net_bps"] is Status.WARN


def net_check(a: pd.DataFrame, b: pd.DataFrame) -> tuple[Status, float, str]:
    check = next(c for c in accuracy_gate(a, b, CFG).checks if c.name == "net_bps")
    assert check.value is not None
    return check.status, check.value, check.reason


def test_net_bps_is_judged_in_bps_not_as_a_percentage() -> None:
    a = series()
    a["net_bps"] = np.resize([0.02, -0.03, 0.2, 0.4, -0.1], len(a))  # a rebate maker's edge
    b = a.copy()
    b["net_bps"] = a["net_bps"] + np.resize([0.1, -0.1], len(a))  # MAPE ~250 %: noise
    status, value, _ = net_check(a, b)
    assert (status, value) == (Status.PASS, pytest.approx(0.1))
    b["net_bps"] = a["net_bps"] - 0.6  # paper 0.6 bps worse in every window
    assert net_check(a, b) == (Status.WARN, pytest.approx(0.6), "median |delta| 0.6 bps > 0.25 bps")
    b.loc[b.index[:20], "net_bps"] = a["net_bps"].iloc[:20] + 2.0  # median |delta| = 2 bps
    assert net_check(a, b) == (Status.FAIL, pytest.approx(2.0), "median |delta| 2 bps > 1.5 bps")


def test_net_bounds_must_be_ordered() -> None:
    from bot.profiles import ConfigError, load_settings

    with pytest.raises(ConfigError, match=r"median_delta_pass_bps 2\.0 is above"):
        load_settings("base", overrides=["gates.accuracy.median_delta_pass_bps=2"])


def test_too_few_aligned_intervals_fail() -> None:
    a = series(30)
    b = series(30).iloc[:10]
    verdict = accuracy_gate(a, b, CFG)
    assert verdict.status is Status.FAIL
    assert "net_bps: insufficient data: 10 < 24" in verdict.reasons


def stepped(n: int = 40) -> pd.DataFrame:
    """Clear time structure: fills step up 10 -> 30 and net_bps down 6 -> 2 half-way."""
    index = pd.date_range("2024-08-09", periods=n, freq="5min", tz="UTC", name="start")
    half = n // 2
    return pd.DataFrame(
        {
            "net_bps": [6.0] * half + [2.0] * (n - half),
            "maker_share": 0.95,
            "fills": [10.0] * half + [30.0] * (n - half),
            "order_latency_ms": 60.0,
        },
        index=index,
    )


def test_only_shared_intervals_are_compared() -> None:
    a = stepped(40)
    shifted = a.copy()
    shifted.index = shifted.index + pd.Timedelta("50min")  # 10 intervals late
    verdict = accuracy_gate(a, shifted, CFG)
    assert verdict.summary["aligned_intervals"] == 30  # a's intervals 10..39
    # at a's interval k the shifted copy holds a[k-10]: they differ for k = 20..29 only
    # fills: |10-30|/30 on 10 of 30 pairs -> MAPE 2/9 = 22.2 %: WARN (15 % <= x < 30 %)
    # net_bps: |6-2| = 4 bps on 10 of 30 pairs, 0 on 20 -> median |delta| 0: PASS
    result = statuses(verdict)
    fills = next(c for c in verdict.checks if c.name == "fills")
    net = next(c for c in verdict.checks if c.name == "net_bps")
    assert (fills.status, fills.value) == (Status.WARN, pytest.approx(2 / 9))
    assert (net.status, net.value) == (Status.PASS, 0.0)
    assert net.detail["mape"] == pytest.approx(2 / 3)  # what a percentage would have said
    assert result["maker_share"] is Status.PASS
    assert verdict.status is Status.WARN
    aligned = shifted.copy()
    aligned.index = aligned.index - pd.Timedelta("50min")  # the same intervals again
    again = accuracy_gate(a, aligned, CFG)
    assert again.status is Status.PASS, again.reasons
    assert again.summary["aligned_intervals"] == 40


def test_zero_reference_is_excluded_and_counted() -> None:
    a = series()
    b = a.copy()
    a.loc[a.index[:5], "fills"] = 0.0
    b.loc[b.index[:5], "fills"] = 7.0  # would be an infinite percentage error
    check = next(c for c in accuracy_gate(a, b, CFG).checks if c.name == "fills")
    assert check.status is Status.PASS
    assert check.detail == {"pairs": 30, "zero_reference": 5}
    assert mape(a["fills"], b["fills"]) == 0.0


def test_all_zero_reference() -> None:
    a = series()
    a["fills"] = 0.0
    same = next(c for c in accuracy_gate(a, a.copy(), CFG).checks if c.name == "fills")
    assert same.status is Status.PASS
    b = a.copy()
    b["fills"] = 1.0
    differ = next(c for c in accuracy_gate(a, b, CFG).checks if c.name == "fills")
    assert differ.status is Status.FAIL and "MAPE undefined" in differ.reason


def test_sim_to_real_on_the_same_journal() -> None:
    journal = Journal.of(h.memory_tables(), h.MANIFEST)
    cfg = AccuracyConfig(interval="2s", min_windows=1)
    verdict = sim_to_real(journal, journal, cfg)
    assert verdict.gate == "sim_to_real"
    assert verdict.status is Status.PASS, verdict.reasons
    strict = sim_to_real(journal, journal, AccuracyConfig(interval="2s", min_windows=3))
    # only two 2 s intervals have a net edge (F4 has no mid after 1 s)
    assert "net_bps: insufficient data: 2 < 3" in strict.reasons
