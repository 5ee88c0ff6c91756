"""The canary judge (Kayenta-style) and the rollback triggers.

`canary_judge(baseline, canary, cfg)` takes two per-interval frames
(`interval_series` of the baseline and of the canary over the same period) and
judges each metric of `cfg.metrics`:

- NoData: fewer than MIN_SAMPLES defined intervals on either side;
- High / Low: a two-sided Mann-Whitney U test rejects "same distribution" at
  `cfg.confidence` and the relative effect |median_c − median_b| / |median_b|
  exceeds the metric's tolerance (a zero baseline median with any change is an
  infinite effect); High when the canary's median is larger;
- Pass otherwise.

A metric fails when it is High and `bad` is "increase", or Low and `bad` is
"decrease"; a significant shift the good way passes. score = 100 × (weight of
passing metrics) / (total weight); NoData is not passing (a canary that shows
nothing has not earned trust). A failing critical metric forces the score to 0.
PASS at score ≥ pass_score, MARGINAL (Status.WARN: needs a person) at
≥ marginal_score, else FAIL.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final, Literal

import numpy as np
import pandas as pd
from scipy.stats import mannwhitneyu

from bot.config import CanaryConfig, CanaryMetric, RollbackTrigger
from gates.verdict import Check, Status, Verdict

GATE: Final = "canary"
MIN_SAMPLES: Final = 3
# trigger metric names that differ from the interval_series column holding them: the
# per-interval latency column already is the p95 of the interval's acks
SERIES_COLUMN: Final = {"order_latency_p95_ms": "order_latency_ms"}

Classification = Literal["Pass", "High", "Low", "NoData"]


class CanaryError(ValueError):
    """Inputs the canary judge or the rollback triggers cannot work with."""


@dataclass(frozen=True, slots=True)
class MetricResult:
    metric: str
    classification: Classification
    failed: bool
    p_value: float
    baseline_median: float
    canary_median: float
    effect: float  # (median_c − median_b) / |median_b|
    n_baseline: int
    n_canary: int

    @property
    def passed(self) -> bool:
        return self.classification != "NoData" and not self.failed


def _samples(frame: pd.DataFrame, column: str) -> np.ndarray:
    if column not in frame.columns:
        return np.empty(0)
    values = frame[column].to_numpy(dtype=float)
    return values[np.isfinite(values)]


def _effect(base: float, canary: float) -> float:
    if base != 0:
        return (canary - base) / abs(base)
    return 0.0 if canary == base else math.copysign(math.inf, canary - base)


def judge_metric(
    name: str, baseline: np.ndarray, canary: np.ndarray, spec: CanaryMetric, confidence: float
) -> MetricResult:
    n_b, n_c = int(baseline.size), int(canary.size)
    if n_b < MIN_SAMPLES or n_c < MIN_SAMPLES:
        return MetricResult(name, "NoData", False, math.nan, math.nan, math.nan, math.nan, n_b, n_c)
    med_b, med_c = float(np.median(baseline)), float(np.median(canary))
    effect = _effect(med_b, med_c)
    if np.ptp(np.concatenate([baseline, canary])) == 0:
        p_value = 1.0  # every sample equal: nothing to test
    else:
        p_value = float(mannwhitneyu(canary, baseline, alternative="two-sided").pvalue)
    significant = p_value < 1 - confidence and abs(effect) > spec.tolerance
    classification: Classification = "Pass"
    if significant:
        classification = "High" if med_c > med_b else "Low"
    failed = (classification == "High" and spec.bad == "increase") or (
        classification == "Low" and spec.bad == "decrease"
    )
    return MetricResult(name, classification, failed, p_value, med_b, med_c, effect, n_b, n_c)


def _metric_check(result: MetricResult, spec: CanaryMetric) -> Check:
    detail = {
        "classification": result.classification, "p_value": result.p_value,
        "baseline_median": result.baseline_median, "canary_median": result.canary_median,
        "effect": result.effect, "weight": spec.weight, "critical": spec.critical,
        "n_baseline": result.n_baseline, "n_canary": result.n_canary,
    }  # fmt: skip
    if result.classification == "NoData":
        reason = f"NoData: {result.n_baseline} baseline / {result.n_canary} canary samples"
        return Check(result.metric, Status.WARN, None, reason=reason, detail=detail)
    if result.failed:
        reason = (
            f"{result.classification}: median {result.baseline_median:.4g} -> "
            f"{result.canary_median:.4g} ({result.effect:+.1%}, p={result.p_value:.3g}), "
            f"bad is {spec.bad}" + (" [critical]" if spec.critical else "")
        )
        return Check(result.metric, Status.FAIL, result.effect, reason=reason, detail=detail)
    return Check(result.metric, Status.PASS, result.effect, detail=detail)


def _score_check(score: float, cfg: CanaryConfig, critical_failed: list[str]) -> Check:
    if score >= cfg.pass_score:
        status, reason = Status.PASS, ""
    elif score >= cfg.marginal_score:
        status = Status.WARN
        reason = f"MARGINAL {score:.1f} < {cfg.pass_score:g}: needs a person"
    else:
        status = Status.FAIL
        why = f" (critical failed: {', '.join(critical_failed)})" if critical_failed else ""
        reason = f"{score:.1f} < {cfg.marginal_score:g}{why}"
    return Check("score", status, score, cfg.pass_score, cfg.marginal_score, reason)


def canary_judge(baseline: pd.DataFrame, canary: pd.DataFrame, cfg: CanaryConfig) -> Verdict:
    """Score the canary against the baseline; the Verdict's status follows the score."""
    results = {
        name: judge_metric(
            name, _samples(baseline, name), _samples(canary, name), spec, cfg.confidence
        )
        for name, spec in cfg.metrics.items()
    }
    total = sum(spec.weight for spec in cfg.metrics.values())
    passing = sum(cfg.metrics[n].weight for n, r in results.items() if r.passed)
    critical_failed = [n for n, r in results.items() if r.failed and cfg.metrics[n].critical]
    score = 0.0 if critical_failed or total == 0 else 100.0 * passing / total
    score_check = _score_check(score, cfg, critical_failed)
    checks = [score_check, *(_metric_check(results[n], cfg.metrics[n]) for n in results)]
    summary = {
        "score": score,
        "decision": {Status.PASS: "PASS", Status.WARN: "MARGINAL", Status.FAIL: "FAIL"}[
            score_check.status
        ],
        "classification": {n: r.classification for n, r in results.items()},
    }
    return Verdict(GATE, score_check.status, tuple(checks), summary)


# --- rollback triggers ----------------------------------------------------------------


def _index_ns(series: pd.DataFrame) -> np.ndarray:
    index = series.index
    if isinstance(index, pd.DatetimeIndex):
        return index.as_unit("ns").asi8
    return index.to_numpy(dtype="int64")


def longest_breach_ms(
    series: pd.DataFrame, column: str, trigger: RollbackTrigger, step_ns: int
) -> float:
    """The longest run of consecutive intervals beyond the bound, in ms; each interval
    counts for its full length, a gap in the index or a NaN value ends a run."""
    values = series[column].to_numpy(dtype=float)
    with np.errstate(invalid="ignore"):
        beyond = values < trigger.bound if trigger.direction == "min" else values > trigger.bound
    if not beyond.any():
        return 0.0
    starts = _index_ns(series)[beyond]
    # a new run begins where the previous breached interval is not the one just before
    new_run = np.concatenate([[True], np.diff(starts) > step_ns])
    run_id = np.cumsum(new_run)
    frame = pd.DataFrame({"run": run_id, "start": starts})
    spans = frame.groupby("run")["start"].agg(["min", "max"])
    return float(((spans["max"] - spans["min"]) + step_ns).max() / 1e6)


def _step_ns(series: pd.DataFrame, interval: str | None) -> int:
    if interval is not None:
        return int(pd.Timedelta(interval).value)
    stamps = _index_ns(series)
    gaps = np.diff(np.sort(stamps))
    gaps = gaps[gaps > 0]
    if gaps.size == 0:
        raise CanaryError("cannot infer the interval from fewer than two rows; pass interval=")
    return int(gaps.min())


def rollback_triggers(
    series: pd.DataFrame, triggers: Sequence[RollbackTrigger], interval: str | None = None
) -> Verdict:
    """Each trigger fires (FAIL) when its metric stays beyond the bound for ≥ for_ms.

    `series` is an `interval_series` frame (index: interval starts); the interval
    length is `interval` or, when omitted, the smallest step of the index. A metric
    missing from the frame fails: a guard that cannot see must not say all clear.
    """
    checks: list[Check] = []
    step = _step_ns(series, interval) if len(series) > 1 or interval else 0
    for trigger in triggers:
        name = f"{trigger.metric} {'<' if trigger.direction == 'min' else '>'} {trigger.bound:g}"
        column = trigger.metric
        if column not in series.columns:
            column = SERIES_COLUMN.get(column, column)
        if column not in series.columns:
            checks.append(Check(name, Status.FAIL, None, reason="missing"))
            continue
        breach = longest_breach_ms(series[[column]], column, trigger, step) if step else 0.0
        fired = breach >= trigger.for_ms
        reason = f"beyond for {breach:g} ms ≥ {trigger.for_ms} ms: roll back" if fired else ""
        checks.append(
            Check(name, Status.FAIL if fired else Status.PASS, breach, None, trigger.for_ms, reason)
        )
    fired_names = [c.name for c in checks if c.status is Status.FAIL]
    return Verdict.of("rollback", checks, {"fired": fired_names})
