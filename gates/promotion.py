"""May a candidate be put before a person for promotion to live? And may it approve
itself?

`promotion_gate(evidence, policy, override)`: every stage the policy requires
(`promote.required_stages`) must have a verdict in `evidence` with status PASS. A
stage that is missing, WARN or FAIL blocks the promotion (FAIL) unless an override
names that stage, who overrode it and why: the stage then shows as WARN with the
override in its reason, so the report and the audit log carry it. An override is for
named stages only; there is no blanket override, and one without a reviewer or a
reason is refused.

`ramp_step_verdict(series, policy, step)`: the rollback triggers over one ramp step's
interval series (gates/canary.py), the same triggers the canary is held to.

`auto_approval(policy)`: `--approve auto` is a decision nobody made; only a profile
that sets `promote.auto_approve` (the demo) may ask for it.

`canary_with_rollback(baseline, canary, policy)`: the canary judge (gates.stage) with
the rollback triggers walked interval by interval over the canary's run as a part;
a trigger that fires makes the canary a FAIL whatever its score ("ROLLBACK").
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final

import pandas as pd

from bot.config import Settings
from gates.canary import rollback_triggers
from gates.kpi import Journal, interval_series
from gates.stage import canary_stage, policy_view
from gates.verdict import Check, Status, Verdict

GATE: Final = "promotion"
AUTO_REVIEWER: Final = "auto (promote.auto_approve)"


class PromotionRefused(ValueError):
    """A promotion request the policy does not allow (an auto approval, a bad override)."""


@dataclass(frozen=True, slots=True)
class Override:
    """A person's recorded decision to promote despite the named stages' evidence."""

    stages: tuple[str, ...]
    reviewer: str
    reason: str

    def __post_init__(self) -> None:
        if not self.stages:
            raise PromotionRefused("an override names the stages it covers; none given")
        if not self.reviewer.strip():
            raise PromotionRefused("an override needs the reviewer who takes it")
        if not self.reason.strip():
            raise PromotionRefused("an override needs a reason")


def _stage_check(stage: str, verdict: Verdict | None, override: Override | None) -> Check:
    if verdict is None:
        why = "no evidence (the stage did not run or its verdict was not kept)"
    elif verdict.status is Status.PASS:
        return Check(stage, Status.PASS, None, detail={"status": "PASS"})
    else:
        reasons = "; ".join(verdict.reasons) or "no reason given"
        why = f"{verdict.status.value}, not PASS: {reasons}"
    detail = {"status": "missing" if verdict is None else verdict.status.value}
    if override is not None and stage in override.stages:
        reason = f"overridden by {override.reviewer}: {override.reason} (evidence: {why})"
        return Check(stage, Status.WARN, None, reason=reason, detail={**detail, "overridden": True})
    return Check(stage, Status.FAIL, None, reason=why, detail=detail)


def promotion_gate(
    evidence: Mapping[str, Verdict], policy: Settings, override: Override | None = None
) -> Verdict:
    """PASS when every required stage PASSed; WARN when the only gaps are overridden;
    FAIL otherwise, naming each stage and why."""
    required = policy.promote.required_stages
    if override is not None:
        unknown = [s for s in override.stages if s not in required]
        if unknown:
            raise PromotionRefused(
                f"override names stages the policy does not require: {', '.join(unknown)}; "
                f"required: {', '.join(required)}"
            )
    checks = [_stage_check(stage, evidence.get(stage), override) for stage in required]
    summary = {
        "required": list(required),
        "override": None
        if override is None
        else {"stages": list(override.stages), "reviewer": override.reviewer,
              "reason": override.reason},
    }  # fmt: skip
    return Verdict.of(GATE, checks, summary)


def may_promote(verdict: Verdict) -> bool:
    """A promotion gate verdict that lets the candidate go before a person."""
    return verdict.gate == GATE and verdict.status is not Status.FAIL


def auto_approval(policy: Settings) -> str:
    """The reviewer name of an automatic approval; refused unless the profile allows it."""
    if not policy.promote.auto_approve:
        raise PromotionRefused(
            "--approve auto is not allowed by this profile (promote.auto_approve is false): "
            "a person approves in the Prefect UI or through the API"
        )
    return AUTO_REVIEWER


def ramp_step_verdict(series: pd.DataFrame, policy: Settings, fraction: float) -> Verdict:
    """The rollback triggers walked over one ramp step (see `rollback_walk`); a FAIL stops
    the ramp and rolls back, `aborted_at` says where."""
    walk = rollback_walk(series, policy)
    verdict = walk.verdict
    summary = {**verdict.summary, "fraction": fraction, "intervals_run": walk.intervals}
    if walk.aborted_at is not None:
        summary["aborted_at"] = walk.aborted_at.isoformat()
    return Verdict(f"ramp {fraction:.0%}", verdict.status, verdict.checks, summary)


@dataclass(frozen=True, slots=True)
class RollbackWalk:
    """The rollback triggers checked after each interval, as a running canary or ramp
    step checks them: `aborted_at` is the start of the interval at which a trigger first
    fired (None: it ran to the end), `verdict` the triggers over what ran until then."""

    verdict: Verdict
    aborted_at: pd.Timestamp | None
    intervals: int


def rollback_walk(series: pd.DataFrame, policy: Settings) -> RollbackWalk:
    """Walk `series` (an interval_series on `canary.interval`) interval by interval and
    stop at the first one after which a rollback trigger fires."""
    triggers, interval = policy.canary.rollback, policy.canary.interval
    for end in range(1, len(series) + 1):
        verdict = rollback_triggers(series.iloc[:end], triggers, interval)
        fired = [c for c in verdict.checks if c.status is Status.FAIL and c.value is not None]
        if fired:
            return RollbackWalk(verdict, pd.Timestamp(series.index[end - 1]), end)
    return RollbackWalk(rollback_triggers(series, triggers, interval), None, len(series))


def canary_with_rollback(
    baseline: Journal, canary: Journal, policy: Settings
) -> tuple[Verdict, RollbackWalk]:
    """The canary stage's verdict with the rollback walk as a part, and the walk. Both
    journals are seen as the policy sees them (its fees and inventory limit)."""
    baseline, canary = policy_view(baseline, policy), policy_view(canary, policy)
    series = interval_series(canary, policy.canary.interval, policy.gates.horizon_ms)
    walk = rollback_walk(series, policy)
    judged = canary_stage(baseline, canary, policy)
    summary = dict(judged.summary)
    status = Status.worst([judged.status, walk.verdict.status])
    if walk.aborted_at is not None:
        summary["decision"] = "ROLLBACK"
        summary["aborted_at"] = walk.aborted_at.isoformat()
        summary["intervals_run"] = walk.intervals
    elif status is Status.FAIL:
        summary["decision"] = "FAIL"
    return Verdict(judged.gate, status, judged.checks, summary, (*judged.parts, walk.verdict)), walk
