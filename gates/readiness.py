"""The readiness score: 0–100 from weighted sections, READY / HOLD / BLOCK.

Sections and their points (a section's input is a number, a Verdict, or None):

- edge (25): net_bps against the policy's net bound (its fee tier's, min):
  25 × clamp((net_bps − fail) / (warn − fail), 0, 1) — full marks at the warn
  bound or better, 0 at the fail bound or worse.
- latency (20): order_latency_p95_ms against its bound (max):
  20 × clamp((fail − latency) / (fail − warn), 0, 1).
- maker_share (15): 15 × clamp((maker_share − fail) / (warn − fail), 0, 1).
- guards (20): share of guard checks that held, in [0, 1]: 20 × share.
- chaos (10): share of chaos (fault-injection) scenarios survived: 10 × share.
- tests (10): share of tests passed: 10 × share.

Any section may instead be given a Verdict: PASS scores full marks, WARN half,
FAIL nothing. A missing section (absent, None or NaN) scores 0 and is named in
the reasons. READY at score ≥ ready (PASS), HOLD at ≥ hold (WARN), else BLOCK
(FAIL).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Final

from bot.config import Bound, GateConfig, Settings
from gates.stage import policy_bounds
from gates.verdict import Check, Status, Verdict

GATE: Final = "readiness"
WEIGHTS: Final[Mapping[str, float]] = {
    "edge": 25,
    "latency": 20,
    "maker_share": 15,
    "guards": 20,
    "chaos": 10,
    "tests": 10,
}
# the KPI bound each metric section is scored against
SECTION_KPI: Final[Mapping[str, str]] = {
    "edge": "net_bps",
    "latency": "order_latency_p95_ms",
    "maker_share": "maker_share",
}
STATUS_SHARE: Final[Mapping[Status, float]] = {Status.PASS: 1.0, Status.WARN: 0.5, Status.FAIL: 0.0}
DECISION: Final[Mapping[Status, str]] = {
    Status.PASS: "READY",
    Status.WARN: "HOLD",
    Status.FAIL: "BLOCK",
}

SectionInput = float | int | Verdict | None


class ReadinessError(ValueError):
    """A section input that cannot be scored (unknown section, share outside [0, 1])."""


def _clamp(x: float) -> float:
    return min(1.0, max(0.0, x))


def between_bounds(value: float, bound: Bound) -> float:
    """1 at the warn bound or better, 0 at the fail bound or worse, linear between."""
    if bound.warn == bound.fail:
        good = value >= bound.warn if bound.direction == "min" else value <= bound.warn
        return 1.0 if good else 0.0
    return _clamp((value - bound.fail) / (bound.warn - bound.fail))


def section_share(name: str, value: SectionInput, bounds: Mapping[str, Bound]) -> float | None:
    """The fraction of a section's points earned; None when the input is missing."""
    if isinstance(value, Verdict):
        return STATUS_SHARE[value.status]
    if value is None or math.isnan(float(value)):
        return None
    if name in SECTION_KPI:
        kpi = SECTION_KPI[name]
        if kpi not in bounds:
            raise ReadinessError(f"section {name!r} needs a bound for {kpi!r}")
        return between_bounds(float(value), bounds[kpi])
    if not 0.0 <= float(value) <= 1.0:
        raise ReadinessError(f"section {name!r} takes a share in [0, 1], got {value!r}")
    return float(value)


def _section_check(name: str, share: float | None) -> Check:
    weight = WEIGHTS[name]
    if share is None:
        return Check(name, Status.FAIL, 0.0, reason="missing: scores 0", detail={"max": weight})
    points = weight * share
    status = Status.PASS if share >= 1.0 else Status.WARN if share > 0 else Status.FAIL
    reason = "" if status is Status.PASS else f"{points:.1f} of {weight:g} points"
    return Check(name, status, points, reason=reason, detail={"max": weight})


def readiness(
    sections: Mapping[str, SectionInput],
    bounds: Mapping[str, Bound] | None = None,
    ready: float | None = None,
    hold: float | None = None,
) -> Verdict:
    """Score the sections (see the module docstring); bounds default to the default
    policy's (`gates.stage.policy_bounds`: net_bps of its fee tier), thresholds to
    GateConfig's."""
    defaults = GateConfig()
    bounds = policy_bounds(Settings()) if bounds is None else bounds
    ready = defaults.readiness_ready if ready is None else ready
    hold = defaults.readiness_hold if hold is None else hold
    unknown = set(sections) - set(WEIGHTS)
    if unknown:
        raise ReadinessError(f"unknown sections {sorted(unknown)}; sections are {list(WEIGHTS)}")
    checks = [_section_check(n, section_share(n, sections.get(n), bounds)) for n in WEIGHTS]
    score = sum(c.value or 0.0 for c in checks)
    status = Status.PASS if score >= ready else Status.WARN if score >= hold else Status.FAIL
    decision = DECISION[status]
    reason = (
        ""
        if status is Status.PASS
        else f"{decision}: {score:.1f} < {ready if status is Status.WARN else hold:g}"
    )
    overall = Check("score", status, score, ready, hold, reason)
    summary = {"score": score, "decision": decision}
    return Verdict(GATE, status, (overall, *checks), summary)
