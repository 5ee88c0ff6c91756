"""`canary`: the candidate revision at the canary size beside the baseline, same window.

Both sides trade at `canary.fraction` of their order size: a baseline at full size
would out-fill any canary and make every `fills` comparison Low. In paper mode (until
issue 10 brings the live shell) both run on the same replayed or synthetic window,
concurrently; the rollback triggers are walked interval by interval over the
canary's run and the first breach is where a live canary stops (`aborted_at` in the
verdict). The verdict is `gates.promotion.canary_with_rollback`: the canary judge of
gates/canary.py with the rollback walk as a part.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from prefect import flow, get_run_logger
from prefect.task_runners import ThreadPoolTaskRunner
from pydantic import Field

from bot.profiles import load_settings
from bot.runtime.clock import default_clock
from flows.artifacts import obey, publish_stage, show_stage
from flows.params import DataSource, StageParams
from flows.tune import candidate_run, run_spec
from gates.kpi import load_journal
from gates.promotion import canary_with_rollback
from reports.render import render_report


class CanaryParams(StageParams):
    """`profile` is the baseline and the policy that judges; `candidate` the revision."""

    candidate: str = Field(description="the candidate's profile: a name or a revision's path")
    source: DataSource = DataSource(kind="synth", seed=303)
    duration: str | None = Field(default=None, description="default: canary.duration_ms")


def size_override(profile: str, overrides: tuple[str, ...], fraction: float) -> str:
    """`--set strategy.order_qty=..` for `fraction` of the profile's order size; the
    strategy rounds it to the lot and lifts it to the venue's minimum."""
    qty = load_settings(profile, overrides=overrides).strategy.order_qty
    return f"strategy.order_qty={(Decimal(qty) * Decimal(str(fraction))).normalize()}"


@dataclass(frozen=True, slots=True)
class CanaryResult:
    candidate: str
    status: str
    decision: str
    aborted_at: str | None
    reports: tuple[str, ...]


@flow(name="canary", task_runner=ThreadPoolTaskRunner(max_workers=2))
def canary(params: CanaryParams) -> CanaryResult:
    """Baseline and candidate side by side at canary size; judged by the policy."""
    policy = load_settings(params.profile)
    fraction = policy.canary.fraction
    duration = params.duration or f"{policy.canary.duration_ms}ms"
    root = params.work_dir / "canary" / params.run_key
    base_size = size_override(params.profile, (), fraction)
    cand_size = size_override(params.candidate, params.overrides, fraction)
    baseline = run_spec(params.source, root / "baseline", params.profile, (base_size,), duration)
    candidate = run_spec(
        params.source, root / "candidate", params.candidate, (*params.overrides, cand_size),
        duration,
    )  # fmt: skip
    runs = [candidate_run.submit(spec, params.profile) for spec in (baseline, candidate)]
    base_run, cand_run = (future.result() for future in runs)
    verdict, walk = canary_with_rollback(
        load_journal(base_run.journal), load_journal(cand_run.journal), policy
    )
    if walk.aborted_at is not None:
        get_run_logger().warning("canary: rollback trigger fired at %s", walk.aborted_at)
    report = render_report(
        "canary", cand_run.journal, policy, default_clock(), verdict=verdict,
        run_id=params.run_key, baseline_path=base_run.journal,
    )  # fmt: skip
    published = publish_stage(report, policy, params.run_key, params.artifacts_url)
    show_stage(report, published, params.run_key, journal=cand_run.journal, kpis=cand_run.kpis)
    obey(verdict, "canary")
    return CanaryResult(
        candidate=params.candidate,
        status=verdict.status.value,
        decision=str(verdict.summary.get("decision", verdict.status.value)),
        aborted_at=walk.aborted_at.isoformat() if walk.aborted_at is not None else None,
        reports=published.urls,
    )
