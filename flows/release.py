"""`release`: shadow -> dry-run compare -> soak -> KPI gate -> tune/apply -> canary ->
promote, stopping at the first FAIL, with a release report that links every stage's
report.

Each stage is its own flow (a subflow run here). Its verdict is recorded under the
release stage name of gates.stage.RELEASE_STAGES: the soak gives two, `soak-final`
(its readiness score) and `kpi-gate` (the KPI gate over its steady-state iterations).
The release's verdict is gates.stage.release_verdict over what was recorded, so a
release that stopped early FAILs naming the stage that failed and every required
stage it never reached. When every stage held, `promote` (flows/promote.py) gates on
that evidence, waits for a person (or approves itself where the profile allows it)
and ramps; its outcome is a fact of the release report, and a rejection or a blocked
promotion fails the release run after the report is published.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from prefect import flow

from bot.runtime.clock import default_clock
from flows.artifacts import StageFailed, StageStop, obey, publish_stage, show_stage
from flows.canary import CanaryParams, canary
from flows.compare import dryrun_compare
from flows.params import CompareParams, ReleaseParams, ShadowParams, SoakParams, StageParams
from flows.promote import PromoteParams, PromotionRejected, promote
from flows.runs import StageOutcome, policy_of
from flows.shadow import shadow_run
from flows.soak import soak
from flows.tune import TuneParams, tune
from gates.stage import release_verdict
from gates.verdict import Verdict
from reports.render import StageEvidence, report_from_context, stage_context, verdict_from_dict

DEFAULTS = ReleaseParams()  # frozen: one default instance is safe


class ReleaseError(RuntimeError):
    """A stage's evidence the release cannot read back."""


class PromotionStopped(StageStop):
    """Every stage held but the promotion did not (its gate, or a person): raised after
    the release report is published, with the release's outcome and the cause's message."""

    def __init__(self, outcome: StageOutcome, cause: Exception) -> None:
        self.outcome = outcome
        super().__init__(str(cause))


@dataclass
class Evidence:
    """The stage verdicts a release has gathered so far, in order."""

    stages: list[StageEvidence] = field(default_factory=list)
    stopped: str = ""  # the stage whose FAIL stopped the release
    candidate: str = ""  # the profile the canary runs: tuning's revision, else the profile

    def add(self, stage: str, verdict: Verdict, report: str = "") -> None:
        self.stages.append(StageEvidence(stage, verdict, report))

    def verdicts(self) -> dict[str, Verdict]:
        return {s.stage: s.verdict for s in self.stages}


def _common(params: ReleaseParams) -> dict[str, Any]:
    """What every stage of the release shares: the StageParams fields."""
    return {name: getattr(params, name) for name in StageParams.model_fields}


def _shadow(params: ReleaseParams, evidence: Evidence) -> None:
    out = shadow_run(ShadowParams(**_common(params), source=params.source,
                                  duration=params.shadow_duration))  # fmt: skip
    evidence.add("shadow", out.verdict, out.html)


def _compare(params: ReleaseParams, evidence: Evidence) -> None:
    out = dryrun_compare(CompareParams(**_common(params), source=params.source,
                                       duration=params.compare_duration))  # fmt: skip
    evidence.add("accuracy", out.verdict, out.html)


def _soak(params: ReleaseParams, evidence: Evidence) -> None:
    out: StageOutcome = soak(SoakParams(**_common(params), source=params.source,
                                        hours=params.soak_hours,
                                        iteration=params.soak_iteration))  # fmt: skip
    for readiness in out.evidence:
        evidence.add("soak-final", readiness, out.html)
    evidence.add("kpi-gate", out.verdict, out.html)


def published_verdict(urls: Sequence[str]) -> Verdict:
    """The verdict a stage published (its verdict.json in a file:// store): the tune and
    canary flows return their status, the release records the whole verdict."""
    url = next((u for u in urls if u.endswith("/verdict.json")), None)
    if url is None or not url.startswith("file://"):
        raise ReleaseError(f"no verdict.json in a file:// store among {list(urls)}")
    return verdict_from_dict(json.loads(Path(url.removeprefix("file://")).read_text()))


def _html(urls: Sequence[str]) -> str:
    return next((u for u in urls if u.endswith("report.html")), "")


def _tune(params: ReleaseParams, evidence: Evidence) -> None:
    out = tune(TuneParams(**_common(params)))
    evidence.add("tuning", published_verdict(out.reports), _html(out.reports))
    evidence.candidate = out.profile


def _canary(params: ReleaseParams, evidence: Evidence) -> None:
    candidate = evidence.candidate or params.profile
    out = canary(CanaryParams(**_common(params), candidate=candidate))
    evidence.add("canary", published_verdict(out.reports), _html(out.reports))


# (the release stage a FAIL is recorded under, the step), in lifecycle order
STEPS: tuple[tuple[str, Callable[[ReleaseParams, Evidence], None]], ...] = (
    ("shadow", _shadow),
    ("accuracy", _compare),
    ("soak-final", _soak),
    ("tuning", _tune),
    ("canary", _canary),
)


def _promote(params: ReleaseParams, evidence: Evidence) -> tuple[str, Exception | None]:
    """The promotion after every stage held: what happened, and the error that stopped it
    (the promote flow's gate FAIL or a person's rejection), raised after the report."""
    candidate = evidence.candidate or params.profile
    given: dict[str, dict[str, Any] | str] = {s.stage: s.verdict.to_dict() for s in evidence.stages}
    try:
        out = promote(PromoteParams(**_common(params), candidate=candidate, evidence=given,
                                    approve=params.approve))  # fmt: skip
    except (StageFailed, PromotionRejected) as exc:
        return f"not promoted: {exc}", exc
    steps = ", ".join(f"{fraction:g} {status}" for fraction, status in out.steps)
    return f"promoted {candidate} (approved by {out.reviewer}; ramp {steps})", None


@flow(name="release")
def release(params: ReleaseParams = DEFAULTS) -> StageOutcome:
    policy = policy_of(params)
    evidence = Evidence()
    for stage, step in STEPS:
        try:
            step(params, evidence)
        except StageFailed as failed:
            evidence.add(stage, failed.verdict, failed.report)
            evidence.stopped = stage
            break
    promotion, stop = ("not reached", None) if evidence.stopped else _promote(params, evidence)
    verdict = release_verdict(evidence.verdicts())
    facts = (("stopped at", evidence.stopped or "-"), ("promotion", promotion),
             ("run key", params.run_key))  # fmt: skip
    context = stage_context(
        "release", policy, run_id=params.run_key, verdict=verdict,
        stages=tuple(evidence.stages), facts=facts,
        links=tuple((s.stage, s.report) for s in evidence.stages if s.report),
    )  # fmt: skip
    report = report_from_context(context, policy, default_clock())
    published = publish_stage(report, policy, params.run_key, params.artifacts_url)
    show_stage(report, published, params.run_key)
    obey(verdict, "release", published)
    outcome = StageOutcome("release", verdict, published.urls, None, facts=facts)
    if stop is not None:
        raise PromotionStopped(outcome, stop) from stop
    return outcome
