"""The KPI checks: each bounded KPI against its WARN and FAIL bound (DESIGN §6).

A bound is crossed strictly ("net_bps FAIL < 0"): a value equal to a bound is on
the good side. A KPI that is missing or NaN fails with its name in the reasons,
never a silent default. A KPI the run's mode cannot measure is N/A, with why: it
is no evidence for a PASS and no cause for a FAIL. A gate with no bound at all
judges nothing and FAILs ("no bounds configured").

These checks are one part of the KPI stage; the stage's verdict, with the policy's
fees, limits and the journal's quality suites, is `gates.stage.kpi_stage`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Final

from bot.config import Bound
from gates.verdict import Check, Status

GATE: Final = "kpi"
NO_BOUNDS: Final = "no bounds configured"


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


def kpi_checks(
    values: Mapping[str, float],
    bounds: Mapping[str, Bound],
    not_measurable: Mapping[str, str] | None = None,
) -> list[Check]:
    """One check per bound, in name order; `not_measurable` maps a KPI to why the run
    could not measure it (its check is N/A with that reason)."""
    if not bounds:
        return [Check("bounds", Status.FAIL, None, reason=NO_BOUNDS)]
    unmeasured = not_measurable or {}
    checks = []
    for name, bound in sorted(bounds.items()):
        if name in unmeasured:
            reason = f"N/A: {unmeasured[name]}"
            checks.append(Check(name, Status.NA, None, bound.warn, bound.fail, reason))
        else:
            checks.append(judge(name, values.get(name), bound))
    return checks
