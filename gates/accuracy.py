"""The accuracy gate: do two runs over the same market window agree, interval by interval?

`accuracy_gate(a, b, cfg)` compares two `interval_series` frames; `a` is the
reference (shadow, or live) and `b` the run being judged (paper replay).

Which KPIs: shadow vs paper (`COMPARED`, the default) compares net_bps,
maker_share and fills. order_latency_ms is left out there and reported as an
N/A check with value None, "not comparable": a shadow run sends no orders, so
its acks are immediate and its latency is 0 in every interval by construction;
there is nothing to hold the paper run's latency to. `sim_to_real` (paper vs a
canary/live journal, whose latency is real) compares it too (`SIM_TO_REAL`).

Per KPI, over the intervals present in both frames where both values are defined:

- maker_share, fills (and latency): MAPE = mean(|b − a| / |a|). Intervals where the
  reference is 0 have no percentage error: they are left out of the MAPE and counted
  in the check's detail (`zero_reference`). If every pair has a zero reference, the
  KPI passes only when b is 0 there too (exact agreement), otherwise it fails.
  PASS if MAPE < mape_pass, WARN if < mape_warn, else FAIL.
- net_bps is judged in bps, not as a percentage: a rebate maker's net edge per
  window sits near 0 (e.g. 0.2 ± 0.2 bps per 5 min on the demo market), where a
  percentage of it is noise (a window at 0.013 bps against −0.26 bps is a 2,100 %
  error). The check's value is the median over windows of |b − a| in bps: PASS up
  to median_delta_pass_bps, WARN up to median_delta_warn_bps, else FAIL. Its MAPE
  is kept in the detail, for information.
- Fewer than min_windows pairs: FAIL "insufficient data: N < min_windows".
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Final

import numpy as np
import pandas as pd

from bot.config import AccuracyConfig
from gates.kpi import Journal, interval_series
from gates.verdict import Check, Status, Verdict

GATE: Final = "accuracy"
COMPARED: Final = ("net_bps", "maker_share", "fills")  # shadow (reference) vs paper
SIM_TO_REAL: Final = (*COMPARED, "order_latency_ms")  # live (reference) vs paper
NOT_COMPARABLE: Final = {
    "order_latency_ms": "not comparable: reference is 0 in every interval by construction "
    "(a shadow run sends no orders)",
}


def _pairs(a: pd.DataFrame, b: pd.DataFrame, column: str) -> tuple[np.ndarray, np.ndarray]:
    if column not in a.columns or column not in b.columns:
        return np.empty(0), np.empty(0)
    joined = pd.concat([a[column].rename("a"), b[column].rename("b")], axis=1, join="inner")
    joined = joined.dropna()
    return joined["a"].to_numpy(dtype=float), joined["b"].to_numpy(dtype=float)


def _mape_check(column: str, ref: np.ndarray, got: np.ndarray, cfg: AccuracyConfig) -> Check:
    n = ref.size
    if n < cfg.min_windows:
        return Check(
            column, Status.FAIL, None, reason=f"insufficient data: {n} < {cfg.min_windows}"
        )
    zero = ref == 0
    detail = {"pairs": n, "zero_reference": int(zero.sum())}
    if zero.all():
        exact = bool((got == 0).all())
        reason = "" if exact else "MAPE undefined: the reference is 0 in every interval"
        return Check(
            column, Status.PASS if exact else Status.FAIL, None, reason=reason, detail=detail
        )
    mape = float(np.mean(np.abs(got[~zero] - ref[~zero]) / np.abs(ref[~zero])))
    if mape < cfg.mape_pass:
        status, reason = Status.PASS, ""
    elif mape < cfg.mape_warn:
        status, reason = Status.WARN, f"MAPE {mape:.1%} ≥ {cfg.mape_pass:.0%}"
    else:
        status, reason = Status.FAIL, f"MAPE {mape:.1%} ≥ {cfg.mape_warn:.0%}"
    return Check(column, status, mape, cfg.mape_pass, cfg.mape_warn, reason, detail)


def _net_delta_check(ref: np.ndarray, got: np.ndarray, cfg: AccuracyConfig) -> Check:
    name = "net_bps"
    if ref.size < cfg.min_windows:
        return Check(
            name, Status.FAIL, None, reason=f"insufficient data: {ref.size} < {cfg.min_windows}"
        )
    delta = float(np.median(np.abs(got - ref)))
    nonzero = ref != 0
    mape = float(np.mean(np.abs(got - ref)[nonzero] / np.abs(ref[nonzero])))
    detail = {"pairs": int(ref.size), "unit": "bps", "mape": mape if nonzero.any() else None}
    passing, warning = cfg.median_delta_pass_bps, cfg.median_delta_warn_bps
    if delta <= passing:
        status, reason = Status.PASS, ""
    elif delta <= warning:
        status, reason = Status.WARN, f"median |delta| {delta:.3g} bps > {passing:g} bps"
    else:
        status, reason = Status.FAIL, f"median |delta| {delta:.3g} bps > {warning:g} bps"
    return Check(name, status, delta, passing, warning, reason, detail)


def accuracy_gate(
    a: pd.DataFrame, b: pd.DataFrame, cfg: AccuracyConfig, metrics: Sequence[str] = COMPARED
) -> Verdict:
    """Judge `b` against the reference `a` (both `interval_series` frames) on `metrics`;
    a metric of `NOT_COMPARABLE` left out of them is listed as N/A with its reason: the
    shadow run cannot measure it, so it is evidence neither way."""
    aligned = int(a.index.intersection(b.index).size)
    checks = []
    for column in metrics:
        ref, got = _pairs(a, b, column)
        if column == "net_bps":
            checks.append(_net_delta_check(ref, got, cfg))
        else:
            checks.append(_mape_check(column, ref, got, cfg))
    for column, why in NOT_COMPARABLE.items():
        if column not in metrics:
            checks.append(Check(column, Status.NA, None, reason=why, detail={"compared": False}))
    summary = {"aligned_intervals": aligned, "min_windows": cfg.min_windows}
    return Verdict.of(GATE, checks, summary)


def sim_to_real(
    paper_journal: Journal, live_journal: Journal, cfg: AccuracyConfig, horizon_ms: int = 1_000
) -> Verdict:
    """The paper replay judged against a canary/live journal over the same window."""
    live = interval_series(live_journal, cfg.interval, horizon_ms)
    paper = interval_series(paper_journal, cfg.interval, horizon_ms)
    verdict = accuracy_gate(live, paper, cfg, SIM_TO_REAL)
    return Verdict("sim_to_real", verdict.status, verdict.checks, verdict.summary)


def mape(reference: pd.Series, candidate: pd.Series) -> float:
    """MAPE of candidate against reference over their shared, non-zero-reference points."""
    ref, got = _pairs(reference.to_frame("x"), candidate.to_frame("x"), "x")
    keep = ref != 0
    return (
        float(np.mean(np.abs(got[keep] - ref[keep]) / np.abs(ref[keep])))
        if keep.any()
        else math.nan
    )
