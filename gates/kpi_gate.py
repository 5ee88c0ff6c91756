"""The KPI gate: each bounded KPI against its WARN and FAIL bound (DESIGN §6).

A bound is crossed strictly ("net_bps WARN < 2.7"): a value equal to a bound is
on the good side. A KPI that is missing or NaN fails with its name in the
reasons, never a silent default.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Final

from bot.config import Bound
from gates.kpi import KpiReport
from gates.verdict import Check, Status, Verdict

GATE: Final = "kpi"


def judge(name: str, value: float | None, bound: Bound) -> Check:
    """One KPI against its bound: FAIL beyond the fail bound, WARN beyond warn, else PASS."""
    if value is None or not math.isfinite(value):
        return Check(name, Status.FAIL, None, bound.warn, bound.fail, "missing")
    if bound.direction == "min":
        worse = "<"
        beyond_fail, beyond_warn = value < bound.fail, value < bound.warn
    else:
        worse = ">"
        beyond_fail, beyond_warn = value > bound.fail, value > bound.warn
    if beyond_fail:
        status, reason = Status.FAIL, f"{value:.6g} {worse} fail bound {bound.fail:g}"
    elif beyond_warn:
        status, reason = Status.WARN, f"{value:.6g} {worse} warn bound {bound.warn:g}"
    else:
        status, reason = Status.PASS, ""
    return Check(name, status, float(value), bound.warn, bound.fail, reason)


def kpi_gate(kpis: KpiReport | Mapping[str, float], bounds: Mapping[str, Bound]) -> Verdict:
    """Judge the run's KPIs (a KpiReport's `total`, or a flat mapping) against the bounds."""
    values: Mapping[str, float] = kpis.total if isinstance(kpis, KpiReport) else kpis
    checks = [judge(name, values.get(name), bound) for name, bound in sorted(bounds.items())]
    summary = {name: _plain(values.get(name)) for name in sorted(bounds)}
    return Verdict.of(GATE, checks, {"kpis": summary})


def _plain(value: float | None) -> float | None:
    return float(value) if value is not None and math.isfinite(value) else None
