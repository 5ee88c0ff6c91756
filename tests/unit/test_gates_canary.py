"""Canary judge (identical, worse, better, no data, direction of bad) and rollback triggers."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from bot.config import CanaryConfig, CanaryMetric, RollbackTrigger
from gates.canary import CanaryError, canary_judge, judge_metric, rollback_triggers
from gates.verdict import Status

CFG = CanaryConfig()  # net_bps 3 crit, inventory_ratio 2 crit, maker 1, latency 1, fills 1


def samples(n: int = 60, seed: int = 3) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    index = pd.date_range("2024-08-09", periods=n, freq="1min", tz="UTC", name="start")
    return pd.DataFrame(
        {
            "net_bps": rng.normal(3.0, 0.5, n),
            "inventory_ratio": rng.uniform(0.1, 0.3, n),
            "maker_share": rng.uniform(0.92, 0.99, n),
            "order_latency_ms": rng.normal(80, 5, n),
            "fills": rng.poisson(30, n).astype(float),
        },
        index=index,
    )


def test_identical_canary_passes_with_full_score() -> None:
    base = samples()
    verdict = canary_judge(base, samples(seed=4), CFG)  # same distribution, other draw
    assert verdict.status is Status.PASS, verdict.reasons
    assert verdict.summary["score"] == 100
    assert set(verdict.summary["classification"].values()) == {"Pass"}


def test_clearly_worse_critical_metric_forces_zero() -> None:
    base = samples()
    canary = samples(seed=4)
    canary["net_bps"] -= 2.0  # bad is "decrease", critical
    verdict = canary_judge(base, canary, CFG)
    assert verdict.status is Status.FAIL
    assert verdict.summary["score"] == 0
    assert verdict.summary["classification"]["net_bps"] == "Low"
    assert any(r.startswith("net_bps: Low") for r in verdict.reasons)


def test_clearly_better_is_not_a_failure() -> None:
    base = samples()
    canary = samples(seed=4)
    canary["net_bps"] += 2.0  # significant, but the good way
    canary["inventory_ratio"] *= 0.5  # bad is "increase": a decrease is good
    verdict = canary_judge(base, canary, CFG)
    assert verdict.status is Status.PASS
    assert verdict.summary["classification"]["net_bps"] == "High"
    assert verdict.summary["classification"]["inventory_ratio"] == "Low"
    assert verdict.summary["score"] == 100


def test_non_critical_failure_is_marginal_and_needs_a_person() -> None:
    base = samples()
    canary = samples(seed=4)
    canary["order_latency_ms"] += 40.0  # bad is "increase", weight 1 of 8
    verdict = canary_judge(base, canary, CFG)
    assert verdict.summary["score"] == pytest.approx(100 * 7 / 8)
    assert verdict.status is Status.WARN
    assert verdict.summary["decision"] == "MARGINAL"
    assert any("needs a person" in r for r in verdict.reasons)


def test_same_direction_means_opposite_verdicts_by_bad() -> None:
    base, canary = np.arange(20.0), np.arange(20.0) + 30.0
    up_bad = judge_metric("m", base, canary, CanaryMetric(bad="increase"), 0.95)
    down_bad = judge_metric("m", base, canary, CanaryMetric(bad="decrease"), 0.95)
    assert up_bad.classification == down_bad.classification == "High"
    assert up_bad.failed and not down_bad.failed


def test_shift_within_tolerance_passes() -> None:
    base = np.linspace(100, 110, 50)
    result = judge_metric(
        "fills", base, base * 0.9, CanaryMetric(bad="decrease", tolerance=0.25), 0.95
    )
    assert result.p_value < 0.05  # significant ...
    assert result.classification == "Pass"  # ... but a 10 % effect is under 25 %


def test_no_data_is_not_passing() -> None:
    base = samples()
    canary = samples(2)  # 2 < 3 samples per metric
    verdict = canary_judge(base, canary, CFG)
    assert set(verdict.summary["classification"].values()) == {"NoData"}
    assert verdict.summary["score"] == 0
    assert verdict.status is Status.FAIL
    no_data = next(c for c in verdict.checks if c.name == "maker_share")
    assert no_data.status is Status.WARN and no_data.reason.startswith("NoData")


def test_critical_metric_without_data_forces_zero() -> None:
    cfg = CanaryConfig(
        metrics={
            "net_bps": CanaryMetric(bad="decrease", weight=1, critical=True),
            "fills": CanaryMetric(bad="decrease", weight=19, tolerance=0.25),
        }
    )
    base = samples()
    canary = samples(seed=4)
    canary.loc[canary.index[2:], "net_bps"] = math.nan  # 2 < 3 defined samples: NoData
    verdict = canary_judge(base, canary, cfg)
    # fills passes: 19 of 20 weight would score 95 = pass_score, a PASS without the rule
    assert verdict.summary["classification"] == {"net_bps": "NoData", "fills": "Pass"}
    assert verdict.summary["score"] == 0
    assert verdict.status is Status.FAIL
    assert verdict.reasons == [
        "score: 0.0 < 75 (critical failed: net_bps (no data))",
        "net_bps: NoData: 60 baseline / 2 canary samples (< 3) "
        "[critical: cannot be judged, fails the canary]",
    ]


def test_nan_samples_are_ignored_and_constant_samples_pass() -> None:
    base = pd.DataFrame({"net_bps": [3.0, 3.0, 3.0, math.nan]})
    cfg = CanaryConfig(
        metrics={"net_bps": CanaryMetric(bad="decrease", critical=True)}, min_intervals=4
    )
    verdict = canary_judge(base, base.copy(), cfg)
    assert verdict.status is Status.PASS


def test_too_few_intervals_fail_whatever_the_score() -> None:
    """Six one-minute windows with p = 1.0 passed before; 24 are needed by default."""
    six, many = samples(6), samples(60, seed=4)
    verdict = canary_judge(six, six.copy(), CFG)
    assert verdict.summary["score"] == 100  # identical sides: nothing significant
    assert verdict.status is Status.FAIL
    assert verdict.reasons == ["intervals: too few intervals (6 < 24)"]
    assert canary_judge(many, six, CFG).status is Status.FAIL  # either side too short
    assert canary_judge(samples(24), samples(24, seed=4), CFG).status is Status.PASS
    relaxed = CanaryConfig(min_intervals=6)
    assert canary_judge(six, six.copy(), relaxed).status is Status.PASS


def test_importing_the_canary_judge_does_not_load_scipy() -> None:
    import subprocess
    import sys

    code = "import sys, gates.canary; print('scipy' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


# --- rollback triggers ------------------------------------------------------------------


def minutes(values: list[float], column: str = "maker_share") -> pd.DataFrame:
    index = pd.date_range("2024-08-09", periods=len(values), freq="1min", tz="UTC")
    return pd.DataFrame({column: values}, index=index)


MAKER = RollbackTrigger(metric="maker_share", bound=0.70, direction="min", for_ms=300_000)


def test_trigger_fires_after_continuous_breach() -> None:
    five_low = minutes([0.9, 0.6, 0.6, 0.6, 0.6, 0.6, 0.9])  # 5 min below 0.70
    verdict = rollback_triggers(five_low, [MAKER], "1m")
    assert verdict.status is Status.FAIL
    assert verdict.checks[0].value == 300_000
    assert verdict.summary["fired"] == ["maker_share < 0.7"]


def test_trigger_holds_when_breach_is_short_or_broken() -> None:
    four_low = minutes([0.9, 0.6, 0.6, 0.6, 0.6, 0.9])
    assert rollback_triggers(four_low, [MAKER], "1m").status is Status.PASS
    broken = minutes([0.6, 0.6, 0.6, 0.9, 0.6, 0.6, 0.6])  # 3 + 3 minutes
    assert rollback_triggers(broken, [MAKER], "1m").checks[0].value == 180_000
    gap = minutes([0.6, 0.6, 0.6, math.nan, 0.6, 0.6])  # no data is not a breach
    assert rollback_triggers(gap, [MAKER], "1m").status is Status.PASS


def test_trigger_index_gap_breaks_the_run() -> None:
    frame = minutes([0.6] * 6).drop(index=minutes([0.6] * 6).index[3])  # minute 3 missing
    verdict = rollback_triggers(frame, [MAKER], interval="1m")
    assert verdict.status is Status.PASS
    assert verdict.checks[0].value == 180_000


def test_max_direction_and_missing_metric() -> None:
    latency = RollbackTrigger(metric="error_rate", bound=0.05, direction="max", for_ms=60_000)
    frame = minutes([0.01, 0.2, 0.01], column="error_rate")
    verdict = rollback_triggers(frame, [latency, MAKER], "1m")
    assert [c.status for c in verdict.checks] == [Status.FAIL, Status.FAIL]
    assert verdict.reasons[1] == "maker_share < 0.7: missing"


def test_default_triggers_run_on_an_interval_series() -> None:
    # interval_series names the per-interval p95 latency "order_latency_ms"
    frame = pd.concat(
        [minutes([0.9] * 10), minutes([100.0] * 10, "order_latency_ms")], axis=1
    ).assign(inventory_ratio=0.1, error_rate=0.0)
    assert rollback_triggers(frame, CFG.rollback, CFG.interval).status is Status.PASS
    frame.loc[frame.index[2:6], "order_latency_ms"] = 900.0  # 4 min > 500 ms, for_ms is 3 min
    verdict = rollback_triggers(frame, CFG.rollback, CFG.interval)
    [latency] = [t for t in CFG.rollback if t.metric.startswith("order_latency")]
    assert verdict.summary["fired"] == [f"{latency.metric} > 500"]


def test_series_finer_than_the_interval_is_refused() -> None:
    frame = pd.DataFrame({"maker_share": [0.5, 0.5]}, index=pd.DatetimeIndex(["2024-08-09"] * 2))
    with pytest.raises(CanaryError, match="closer than the interval"):
        rollback_triggers(frame, [MAKER], "1m")
    with pytest.raises(CanaryError, match="closer than the interval '5m'"):
        rollback_triggers(minutes([0.9] * 3), [MAKER], "5m")  # a 1-minute series
    with pytest.raises(CanaryError, match="not a duration"):
        rollback_triggers(minutes([0.9]), [MAKER], "soon")


def test_one_interval_beyond_counts_for_one_interval() -> None:
    one = minutes([0.1])  # a single row, far below 0.70
    short = rollback_triggers(one, [MAKER], "1m")
    assert (short.status, short.checks[0].value) == (Status.PASS, 60_000)  # 1 min < 5 min
    long = rollback_triggers(one, [MAKER], "5m")
    assert (long.status, long.checks[0].value) == (Status.FAIL, 300_000)  # 5 min >= 5 min
    assert long.summary["fired"] == ["maker_share < 0.7"]


def test_a_trigger_that_cannot_see_fails() -> None:
    blind = minutes([math.nan, math.nan, math.nan])  # no fills: no maker share
    verdict = rollback_triggers(blind, [MAKER], "1m")
    assert verdict.status is Status.FAIL
    assert verdict.reasons == ["maker_share < 0.7: no data: no finite maker_share in 3 intervals"]
    empty = rollback_triggers(minutes([]), [MAKER], "1m")
    assert empty.status is Status.FAIL and empty.checks[0].reason.startswith("no data")
