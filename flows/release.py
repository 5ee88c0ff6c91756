"""`release`: shadow -> dry-run compare -> soak -> KPI gate -> ... , stopping at the
first FAIL, with a release report that links every stage's report.

Each stage is its own flow (a subflow run here). Its verdict is recorded under the
release stage name of gates.stage.RELEASE_STAGES: the soak gives two, `soak-final`
(its readiness score) and `kpi-gate` (the KPI gate over its steady-state iterations).
The release's verdict is gates.stage.release_verdict over what was recorded, so a
release that stopped early FAILs naming the stage that failed and every required
stage it never reached.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from prefect import flow

from bot.runtime.clock import default_clock
from flows.artifacts import StageFailed, obey, publish_stage, show_stage
from flows.compare import dryrun_compare
from flows.params import CompareParams, ReleaseParams, ShadowParams, SoakParams, StageParams
from flows.runs import StageOutcome, policy_of
from flows.shadow import shadow_run
from flows.soak import soak
from gates.stage import release_verdict
from gates.verdict import Verdict
from reports.render import StageEvidence, report_from_context, stage_context

DEFAULTS = ReleaseParams()  # frozen: one default instance is safe


@dataclass
class Evidence:
    """The stage verdicts a release has gathered so far, in order."""

    stages: list[StageEvidence] = field(default_factory=list)
    stopped: str = ""  # the stage whose FAIL stopped the release

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


# (release stage a FAIL is recorded under, the step); tune, canary and promote are the
# promote helper's flows and join this list when they exist
STEPS: tuple[tuple[str, Callable[[ReleaseParams, Evidence], None]], ...] = (
    ("shadow", _shadow),
    ("accuracy", _compare),
    ("soak-final", _soak),
)


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
    verdict = release_verdict(evidence.verdicts())
    facts = (("stopped at", evidence.stopped or "-"), ("run key", params.run_key))
    context = stage_context(
        "release", policy, run_id=params.run_key, verdict=verdict,
        stages=tuple(evidence.stages), facts=facts,
        links=tuple((s.stage, s.report) for s in evidence.stages if s.report),
    )  # fmt: skip
    report = report_from_context(context, policy, default_clock())
    published = publish_stage(report, policy, params.run_key, params.artifacts_url)
    show_stage(report, published, params.run_key)
    obey(verdict, "release", published)
    return StageOutcome("release", verdict, published.urls, None)
