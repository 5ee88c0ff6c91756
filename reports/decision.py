"""The decision box on top of every stage report: may this trade, why, what would change it.

Everything here is wording over the verdict a report is handed. The answer comes from
the verdict's status alone (PASS: yes, WARN: yes with warnings, FAIL: no). Each WARN or
FAIL check gets a sentence in trading terms from one phrase table keyed by check name
(per gate, since the canary's `net_bps` is a change against a baseline, not the KPI),
with a fallback that still names the value and the bounds. "What would change it"
prints numbers the gate put in the verdict: the bounds of a check, on its bad side
(`Check.direction`), and for the net edge the gross edge and the adverse selection each
bound needs (`gates.stage.EdgeDecomposition`, in the net check's detail). No threshold
is computed here.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Final

from gates.verdict import Check, Status, Verdict
from reports.numbers import fmt_quantity, fmt_value, measure, unit_of

ANSWERS: Final[Mapping[Status, str]] = {
    Status.PASS: "yes",
    Status.WARN: "yes, with warnings",
    Status.FAIL: "no",
    Status.NA: "no",
}


@dataclass(frozen=True, slots=True)
class Finding:
    """One WARN or FAIL check, in trading terms."""

    gate: str
    check: str
    status: Status
    meaning: str
    change: str


@dataclass(frozen=True, slots=True)
class DecisionBox:
    status: Status
    answer: str
    counts: str
    findings: tuple[Finding, ...]
    policy: str


def _pct(value: float) -> str:
    return f"{value * 100:.0f} %"


def _shown(check: Check, gate: str = "kpi") -> str:
    """The check's value in its unit, with the unit where one reads it aloud; only the
    KPI gate's checks are in KPI units (the accuracy gate's `fills` is an error ratio)."""
    unit = unit_of(check.name) if gate == "kpi" else ""
    text = fmt_quantity(check.value, unit)
    return f"{text} {unit}" if unit in ("bps", "ms", "USD") else text


# --- what each check means --------------------------------------------------------------

Phrase = Callable[[Check, Mapping[str, Any]], str]


def _net(c: Check, policy: Mapping[str, Any]) -> str:
    assert c.value is not None  # a missing value takes the generic phrase
    if c.value < 0:
        return (
            f"net edge {_shown(c)} per fill: the bot loses money after fees and adverse selection"
        )
    return f"net edge {_shown(c)} per fill: it earns, but less than the policy asks for"


def _adverse_p95(c: Check, policy: Mapping[str, Any]) -> str:
    horizon = policy.get("horizon_ms")
    within = f" within {fmt_value(horizon)} ms" if horizon is not None else ""
    return (
        f"adverse selection p95 {_shown(c)}: on the worst 5 % of fills the mid moved "
        f"that much or more against the bot{within}"
    )


def _maker_share(c: Check, policy: Mapping[str, Any]) -> str:
    assert c.value is not None
    return (
        f"maker share {_shown(c)}: {_pct(c.value)} of the notional traded as maker; "
        "the rest crossed the spread and paid the taker fee"
    )


def _fills(c: Check, policy: Mapping[str, Any]) -> str:
    return f"fills {_shown(c)}: too few fills to judge the edge"


def _uptime(c: Check, policy: Mapping[str, Any]) -> str:
    assert c.value is not None
    return f"quote uptime {_shown(c)}: both quotes were on the book {_pct(c.value)} of the time"


def _latency(c: Check, policy: Mapping[str, Any]) -> str:
    return (
        f"order latency p95 {_shown(c)}: one order in twenty took longer than that "
        "from send to acknowledgement, so quotes trail the market"
    )


def _inventory(c: Check, policy: Mapping[str, Any]) -> str:
    assert c.value is not None
    return (
        f"inventory p95 {_shown(c)}: 5 % of the time the position was above "
        f"{_pct(c.value)} of the policy's inventory limit"
    )


def _cancels(c: Check, policy: Mapping[str, Any]) -> str:
    assert c.value is not None
    return f"cancel ratio {_shown(c)}: {_pct(c.value)} of order actions were cancels"


def _fees(c: Check, policy: Mapping[str, Any]) -> str:
    return f"the journal's fees do not match the policy's fee tier ({c.reason})"


def _no_bounds(c: Check, policy: Mapping[str, Any]) -> str:
    return "the gate has no bounds configured: it judged nothing"


def _canary_score(c: Check, policy: Mapping[str, Any]) -> str:
    score = fmt_value(c.value)
    return f"canary score {score} of 100: the canary did worse than the baseline ({c.reason})"


def _canary_intervals(c: Check, policy: Mapping[str, Any]) -> str:
    return f"{fmt_quantity(c.value, 'count')} intervals of canary data: too few to compare"


PHRASES: Final[Mapping[str, Mapping[str, Phrase]]] = {
    "kpi": {
        "net_bps": _net,
        "adverse_p95_bps": _adverse_p95,
        "maker_share": _maker_share,
        "fills": _fills,
        "quote_uptime": _uptime,
        "order_latency_p95_ms": _latency,
        "inventory_ratio_p95": _inventory,
        "cancel_ratio": _cancels,
        "fees": _fees,
        "bounds": _no_bounds,
    },
    "canary": {"score": _canary_score, "intervals": _canary_intervals},
}
# a gate's checks without a phrase of their own: one sentence per gate
GATE_PHRASES: Final[Mapping[str, Callable[[Check], str]]] = {
    "canary": lambda c: f"the canary's {c.name} is worse than the baseline's: {c.reason}",
    "accuracy": lambda c: f"the simulation does not track shadow on {c.name}: {c.reason}",
    "readiness": lambda c: f"readiness {c.name}: {fmt_value(c.value)} points ({c.reason})",
    "release": lambda c: (
        f"the {c.name} stage {'FAILed' if c.status is Status.FAIL else 'WARNed'}: {c.reason}"
        if "gate" in c.detail
        else f"the {c.name} stage has no verdict: it did not run, or the release stopped before it"
    ),
}


def _bounds_text(gate: str, c: Check) -> str:
    unit = unit_of(c.name) if gate == "kpi" else ""
    bounds = [
        f"{label} {fmt_quantity(b, unit)}"
        for label, b in (("WARN", c.warn), ("FAIL", c.fail))
        if b is not None
    ]
    return f" (bounds {', '.join(bounds)})" if bounds else ""


def meaning(gate: str, check: Check, policy: Mapping[str, Any]) -> str:
    phrase = PHRASES.get(gate, {}).get(check.name)
    if phrase is not None and check.value is not None:
        return phrase(check, policy)
    if gate.startswith("quality."):
        return f"journal rows fail a data-quality expectation, {check.name}: {check.reason}"
    if gate in GATE_PHRASES:
        return GATE_PHRASES[gate](check)
    value = "missing" if check.value is None else _shown(check, gate)
    return f"{check.name} {value}{_bounds_text(gate, check)}: {check.reason}"


# --- what would change it -------------------------------------------------------------


def _target(check: Check) -> tuple[float | None, str]:
    """The bound that lifts the check's status: FAIL -> the fail bound, WARN -> warn."""
    if check.status is Status.FAIL and check.fail is not None:
        return check.fail, "fail"
    return check.warn, "warn"


def _fee_terms(policy: Mapping[str, Any]) -> str:
    maker, tier = policy.get("maker_bps"), policy.get("fee_tier", "?")
    if maker is None:
        return f"on fee tier {tier}"
    if maker < 0:
        return f"with a {fmt_quantity(-maker, 'bps')} bps rebate (tier {tier})"
    return f"with a {fmt_quantity(maker, 'bps')} bps maker fee (tier {tier})"


def _net_change(check: Check, policy: Mapping[str, Any]) -> str | None:
    bound, which = _target(check)
    d = check.detail
    gross = d.get(f"gross_needed_{which}_bps")
    adverse = d.get(f"adverse_allowed_{which}_bps")
    if bound is None or gross is None or adverse is None:
        return None
    today_adverse = -float(d["adverse_selection_bps"])
    return (
        f"{_fee_terms(policy)}, net >= {fmt_quantity(bound, 'bps')} bps needs >= "
        f"{fmt_quantity(gross, 'bps')} bps of captured spread (gross) at today's adverse "
        f"{fmt_quantity(today_adverse, 'bps')} bps (gross today "
        f"{fmt_quantity(d['gross_bps'], 'bps')} bps, fees {d['fee_bps']:+.2f} bps per fill); "
        f"or, at today's gross, adverse selection <= {fmt_quantity(adverse, 'bps')} bps"
    )


def _direction(check: Check) -> str:
    """The check's bad side; where the gate stated none, read from its two bounds (a
    floor has WARN above FAIL), as the bounds column of the checks table does."""
    if check.direction in ("min", "max"):
        return check.direction
    if check.warn is None or check.fail is None or check.warn == check.fail:
        return ""
    return "min" if check.warn > check.fail else "max"


def _bound_change(gate: str, check: Check) -> str | None:
    bound, which = _target(check)
    direction = _direction(check)
    if bound is None or not direction:
        return None
    op = ">=" if direction == "min" else "<="
    found = measure(check.name) if gate == "kpi" else None
    unit = found.unit if found else ""
    label = found.label if found else f"{gate} {check.name}"
    shown = fmt_quantity(bound, unit)
    text = f"needs {op} {shown} {label}" if unit == "count" else f"needs {label} {op} {shown}"
    if unit in ("bps", "ms", "USD"):
        text += f" {unit}"
    if which == "fail" and check.warn is not None and check.warn != check.fail:
        text += f" to lift the FAIL ({fmt_quantity(check.warn, unit)} to pass)"
    return text


def change(gate: str, check: Check, policy: Mapping[str, Any]) -> str:
    if gate == "release":
        if "gate" not in check.detail:
            return f"run the {check.name} stage and hand in its verdict"
        return f"the {check.name} stage must PASS (or WARN): its report says what would change it"
    if gate.startswith("quality."):
        return "fix the rows named: KPIs are only as good as the journal they come from"
    if gate == "canary" and "baseline_median" in check.detail:
        d = check.detail
        return (
            f"needs the canary's {check.name} back near the baseline's median "
            f"{fmt_value(d['baseline_median'])} (canary {fmt_value(d.get('canary_median'))})"
        )
    if gate == "readiness" and "max" in check.detail:
        return f"needs more of the section's {fmt_value(check.detail['max'])} points"
    if check.value is None:
        return f"needs {check.name} measured: {check.reason or 'the journal lacks it'}"
    if gate == "kpi" and check.name == "net_bps":
        net = _net_change(check, policy)
        if net is not None:
            return net
    if gate == "kpi" and check.name == "fees":
        return (
            f"fees within {fmt_quantity(check.fail, 'bps')} bps of tier "
            f"{policy.get('fee_tier', '?')}: run the candidate on that tier, or judge it by a "
            "policy on the tier it will trade"
        )
    bounded = _bound_change(gate, check)
    if bounded is not None:
        return bounded
    return f"see the reason{_bounds_text(gate, check)}"


# --- the box ------------------------------------------------------------------------------


def _flagged(verdict: Verdict) -> Iterator[tuple[str, Check]]:
    for check in verdict.checks:
        if check.status in (Status.WARN, Status.FAIL):
            yield verdict.gate, check
    for part in verdict.parts:
        yield from _flagged(part)


def _policy_text(verdict: Verdict) -> str:
    policy = verdict.summary.get("policy")
    if isinstance(policy, Mapping):
        return (
            f"profile {policy.get('profile', '?')}, fee tier {policy.get('fee_tier', '?')} "
            f"(maker {fmt_value(policy.get('maker_bps'))} bps, "
            f"taker {fmt_value(policy.get('taker_bps'))} bps; a negative fee is a rebate), "
            f"KPI horizon {fmt_value(policy.get('horizon_ms'))} ms"
        )
    if verdict.gate == "release":
        required = verdict.summary.get("required", [])
        return f"the release policy: required stages {', '.join(map(str, required)) or 'none'}"
    return f"gate {verdict.gate} with the bounds in its checks below"


def _counts(findings: tuple[Finding, ...]) -> str:
    fails = sum(f.status is Status.FAIL for f in findings)
    warns = sum(f.status is Status.WARN for f in findings)
    if not findings:
        return "every check passed"
    parts = [
        f"{n} check{'s' if n != 1 else ''} {word}"
        for n, word in ((fails, "failed"), (warns, "warned"))
        if n
    ]
    return ", ".join(parts)


def decision_box(verdict: Verdict) -> DecisionBox:
    """The box of a stage's verdict: the answer from its status, FAILs first."""
    policy = verdict.summary.get("policy")
    terms: Mapping[str, Any] = policy if isinstance(policy, Mapping) else {}
    flagged = sorted(_flagged(verdict), key=lambda gc: -gc[1].status.rank)
    findings = tuple(
        Finding(gate, c.name, c.status, meaning(gate, c, terms), change(gate, c, terms))
        for gate, c in flagged
    )
    return DecisionBox(
        verdict.status, ANSWERS[verdict.status], _counts(findings), findings,
        _policy_text(verdict),
    )  # fmt: skip
