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
nothing has not earned trust). A failing critical metric forces the score to 0,
and so does a critical metric with NoData: what must be judged was not seen.
PASS at score ≥ pass_score, MARGINAL (Status.WARN: needs a person) at
≥ marginal_score, else FAIL. Fewer than `min_intervals` intervals on either side
FAILs whatever the score ("too few intervals (6 < 24)").
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final, Literal

import numpy as np
import pandas as pd

from bot.config import CanaryConfig, CanaryMetric, RollbackTrigger
from gates.kpi import KpiError, interval_ns
from gates.verdict import Check, Status, Verdict

GATE: Final = "canary"
MIN_SAMPLES: Final = 3
# trigger metric names that differ from the interval_series column holding them: the
# per-interval latency column already is the p95 of the interval's acks

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
        # scipy.stats costs ~1 s to import: only a judged metric pays for it, so that
        # importing this module (every `mmbot` command does) stays cheap
        from scipy.stats import mannwhitneyu

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
        if spec.critical:
            reason += f" (< {MIN_SAMPLES}) [critical: cannot be judged, fails the canary]"
            return Check(result.metric, Status.FAIL, None, reason=reason, detail=detail)
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


def _intervals_check(baseline: pd.DataFrame, canary: pd.DataFrame, cfg: CanaryConfig) -> Check:
    seen = min(len(baseline), len(canary))
    detail = {"n_baseline": len(baseline), "n_canary": len(canary)}
    if seen < cfg.min_intervals:
        reason = f"too few intervals ({seen} < {cfg.min_intervals})"
        return Check("intervals", Status.FAIL, float(seen), None, cfg.min_intervals, reason, detail)
    return Check("intervals", Status.PASS, float(seen), None, cfg.min_intervals, detail=detail)


def canary_judge(baseline: pd.DataFrame, canary: pd.DataFrame, cfg: CanaryConfig) -> Verdict:
    """Score the canary against the baseline; the Verdict's status follows the score,
    except that fewer than `cfg.min_intervals` intervals on either side is a FAIL
    whatever the score: a handful of windows cannot show a regression."""
    results = {
        name: judge_metric(
            name, _samples(baseline, name), _samples(canary, name), spec, cfg.confidence
        )
        for name, spec in cfg.metrics.items()
    }
    total = sum(spec.weight for spec in cfg.metrics.values())
    passing = sum(cfg.metrics[n].weight for n, r in results.items() if r.passed)
    critical_failed = [
        n if r.failed else f"{n} (no data)"
        for n, r in results.items()
        if cfg.metrics[n].critical and not r.passed
    ]
    score = 0.0 if critical_failed or total == 0 else 100.0 * passing / total
    score_check = _score_check(score, cfg, critical_failed)
    intervals = _intervals_check(baseline, canary, cfg)
    status = Status.worst([score_check.status, intervals.status])
    checks = [score_check, intervals, *(_metric_check(results[n], cfg.metrics[n]) for n in results)]
    summary = {
        "score": score,
        "decision": {Status.PASS: "PASS", Status.WARN: "MARGINAL", Status.FAIL: "FAIL"}[status],
        "classification": {n: r.classification for n, r in results.items()},
    }
    return Verdict(GATE, status, tuple(checks), summary)


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


def _step_ns(series: pd.DataFrame, interval: str) -> int:
    """The interval in ns, checked against the series: rows closer than one interval
    mean the series was built on another interval, and durations would be wrong."""
    try:
        step = interval_ns(interval)
    except KpiError as exc:
        raise CanaryError(str(exc)) from exc
    gaps = np.diff(np.sort(_index_ns(series)))
    if gaps.size and int(gaps.min()) < step:
        raise CanaryError(
            f"series rows {int(gaps.min()) / 1e9:g} s apart are closer than the interval "
            f"{interval!r}: build the series on the interval the triggers are judged on"
        )
    return step


def _trigger_check(series: pd.DataFrame, trigger: RollbackTrigger, step_ns: int) -> Check:
    name = f"{trigger.metric} {'<' if trigger.direction == 'min' else '>'} {trigger.bound:g}"
    column = trigger.metric
    if column not in series.columns:
        return Check(name, Status.FAIL, None, None, trigger.for_ms, "missing")
    if not np.isfinite(series[column].to_numpy(dtype=float)).any():
        reason = f"no data: no finite {column} in {len(series)} intervals"
        return Check(name, Status.FAIL, None, None, trigger.for_ms, reason)
    breach = longest_breach_ms(series[[column]], column, trigger, step_ns)
    if breach >= trigger.for_ms:
        reason = f"beyond for {breach:g} ms ≥ {trigger.for_ms} ms: roll back"
        return Check(name, Status.FAIL, breach, None, trigger.for_ms, reason)
    return Check(name, Status.PASS, breach, None, trigger.for_ms)


def rollback_triggers(
    series: pd.DataFrame, triggers: Sequence[RollbackTrigger], interval: str
) -> Verdict:
    """Each trigger fires (FAIL) when its metric stays beyond the bound for ≥ for_ms.

    `series` is an `interval_series` frame (index: interval starts) built on
    `interval` (the canary's `CanaryConfig.interval`): every interval beyond the bound
    counts for one interval of time, even a lone row. A guard that cannot see must not
    say all clear: a metric missing from the frame, or with no finite value in it,
    fails ("missing", "no data").
    """
    step = _step_ns(series, interval)
    checks = [_trigger_check(series, trigger, step) for trigger in triggers]
    fired_names = [c.name for c in checks if c.status is Status.FAIL]
    return Verdict.of("rollback", checks, {"fired": fired_names})
