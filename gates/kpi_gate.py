"""The KPI gate: each bounded KPI against its WARN and FAIL bound (DESIGN §6).

A bound is crossed strictly ("net_bps WARN < 2.7"): a value equal to a bound is
on the good side. A KPI that is missing or NaN fails with its name in the
reasons, never a silent default.

`judge_journal` is the gate at the boundary (`mmbot gate kpi`): KPIs are only as
good as the journal they come from, so the journal's quality suites run too and
the judgment is the worst of the KPI verdict and theirs.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

from bot.config import Bound
from gates.kpi import Journal, KpiReport, compute_kpis, nan_to_none
from gates.quality import check_journal
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


@dataclass(frozen=True, slots=True)
class JournalVerdict:
    """The KPI verdict and the quality verdicts of the journal it was computed from."""

    kpi: Verdict
    quality: tuple[Verdict, ...]

    @property
    def status(self) -> Status:
        return Status.worst([self.kpi.status, *(q.status for q in self.quality)])

    @property
    def reasons(self) -> list[str]:
        return [*self.kpi.reasons, *(r for q in self.quality for r in q.reasons)]

    def to_dict(self) -> dict[str, Any]:
        """The KPI verdict's dict with the combined status and reasons, the KPI verdict's
        own status in `summary.kpi_status`, and a `quality` list of verdict dicts; JSON-ready
        (NaN as None)."""
        data = self.kpi.to_dict()
        data["status"] = self.status.value
        data["reasons"] = self.reasons
        data["summary"] = {**data["summary"], "kpi_status": self.kpi.status.value}
        data["quality"] = [q.to_dict() for q in self.quality]
        result: dict[str, Any] = nan_to_none(data)
        return result


def judge_journal(
    journal: Journal, bounds: Mapping[str, Bound], horizon_ms: int = 1_000
) -> JournalVerdict:
    """The KPI gate over a journal, with the fills and orders suites of that journal."""
    verdict = kpi_gate(compute_kpis(journal, horizon_ms), bounds)
    return JournalVerdict(verdict, check_journal(journal))
