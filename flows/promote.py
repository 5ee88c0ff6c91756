"""`promote`: evidence, a person's decision, then the ramp to full size.

1. The promotion gate (`gates.promotion.promotion_gate`): every stage the policy
   requires PASSed, or a recorded override names it. A FAIL stops here.
2. The decision: the flow waits for a person with `ApprovalInput` (approve, reviewer,
   comment) under a Markdown summary of the evidence. `wait="pause"` blocks this
   process (`pause_flow_run`, short waits); `wait="suspend"` ends it and the run
   starts again from a deployment when resumed (`suspend_flow_run`, long waits; the
   steps before the wait are cheap and run again). `approve="auto"` decides without a
   person where the profile allows it (`promote.auto_approve`: the demo), and says so.
   Resume from the UI (the run's Resume button shows the form) or the API:
   `prefect.flow_runs.resume_flow_run(id, run_input={"approve": true, ...})`.
3. Every decision goes to the append-only audit log in the artifact store
   (reports/audit.py: `audit/promotions.jsonl` in a file store, one object per record
   under `audit/promotions/` on S3), never rewritten: blocked, approved, rejected, each
   ramp step, rolled back, promoted.
4. Approved: the candidate ramps through `promote.ramp` (5 % -> 25 % -> 50 % -> 100 %),
   `promote.ramp_step` of trading at each size, the rollback triggers walked over each
   step (`gates.promotion.ramp_step_verdict`) before the next. Paper runs on the
   given data source until issue 10 brings the live shell. A rejection or a rollback
   fails the run with the reason.

`live_bot` runs a revision live (paper until issue 10). It and the ramp hold the one
slot of the global concurrency limit `mmbot-live` (limit 1, `strict=True`: a missing
limit is an error, not a free pass), so two live bots never trade at once. Create it
once per server: `prefect gcl create mmbot-live --limit 1` (`make ui` does).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal
from urllib.parse import unquote, urlparse

from prefect import flow, get_run_logger, task
from prefect.artifacts import (
    create_markdown_artifact,
    create_progress_artifact,
    create_table_artifact,
    update_progress_artifact,
)
from prefect.cache_policies import NO_CACHE
from prefect.concurrency.sync import concurrency
from prefect.context import FlowRunContext
from prefect.flow_runs import pause_flow_run, suspend_flow_run
from prefect.input import RunInput
from pydantic import Field

from bot.config import Settings
from bot.profiles import load_settings
from bot.runtime.clock import default_clock, iso_utc
from flows.artifacts import StageFailed, StageStop, obey, store_for, verdict_rows
from flows.canary import size_override
from flows.params import DataSource, ParamsError, StageParams, artifact_key
from flows.tune import candidate_run, run_spec
from gates.kpi import interval_series, load_journal
from gates.promotion import (
    Override,
    auto_approval,
    may_promote,
    promotion_gate,
    ramp_step_verdict,
)
from gates.stage import policy_view
from gates.verdict import Status, Verdict
from reports.audit import AuditLog, audit_log
from reports.render import verdict_from_dict

AUDIT_NAME = "promotions"  # audit/promotions.jsonl in a file store (reports/audit.py)
# the global concurrency limit every live trading run holds (limit 1)
LIVE_LIMIT = "mmbot-live"
LIVE_SLOT_WAIT_S = 60.0


class ApprovalInput(RunInput):
    """The form a person fills to decide a promotion."""

    approve: bool = Field(default=False, description="promote this candidate to live")
    reviewer: str = Field(min_length=1, description="who decides (recorded in the audit log)")
    comment: str = Field(default="", description="why (recorded in the audit log)")


class PromotionRejected(StageStop):
    """A person (or the API on their behalf) said no: the run fails with who and why."""


class PromoteParams(StageParams):
    """`profile` is the release policy; `candidate` the revision to promote."""

    candidate: str = Field(description="the candidate's profile: a name or a revision's path")
    evidence: dict[str, dict[str, Any] | str] = Field(
        default_factory=dict,
        description="stage -> its verdict (a Verdict dict, or the path/URL of its verdict.json)",
    )
    override_stages: tuple[str, ...] = Field(default=(), description="stages overridden")
    override_reviewer: str = ""
    override_reason: str = ""
    approve: Literal["person", "auto"] = "person"
    wait: Literal["pause", "suspend"] = "pause"
    poll_s: int = Field(default=5, ge=1, description="pause: how often the run checks")
    source: DataSource = DataSource(kind="synth", seed=404)


def audit_log_for(settings: Settings, url: str | None = None) -> AuditLog:
    """The promotion audit log in the flow's artifact store (file:// or s3://)."""
    return audit_log(store_for(settings, url), AUDIT_NAME)


def load_evidence(evidence: Mapping[str, Mapping[str, Any] | str]) -> dict[str, Verdict]:
    """Stage -> Verdict from Verdict dicts or verdict.json files (a path or file:// URL)."""
    verdicts = {}
    for stage, given in evidence.items():
        if isinstance(given, str):
            parsed = urlparse(given)
            path = Path(unquote(parsed.path) if parsed.scheme == "file" else given)
            try:
                given = json.loads(path.read_text())
            except (OSError, json.JSONDecodeError) as exc:
                raise ParamsError(f"evidence for {stage!r}: cannot read {given}: {exc}") from exc
        verdicts[stage] = verdict_from_dict(given)
    return verdicts


def evidence_markdown(candidate: str, gate: Verdict, evidence: Mapping[str, Verdict]) -> str:
    lines = [
        f"# Promote `{candidate}` to live?",
        "",
        f"Promotion gate: **{gate.status.value}**",
        "",
        "| stage | evidence | gate | reason |",
        "|---|---|---|---|",
    ]
    for check in gate.checks:
        seen = evidence.get(check.name)
        shown = seen.status.value if seen is not None else "missing"
        reason = check.reason.replace("|", "\\|")
        lines.append(f"| {check.name} | {shown} | {check.status.value} | {reason} |")
    lines += [
        "",
        "Approve: tick **approve**, give your name as **reviewer** and a **comment**. "
        "Reject: leave approve unticked. Either way the decision is kept in the audit log.",
    ]
    return "\n".join(lines) + "\n"


@dataclass(frozen=True, slots=True)
class Decision:
    approve: bool
    reviewer: str
    comment: str
    how: str  # "person" or "auto"


def ask(params: PromoteParams, policy: Settings, description: str) -> Decision:
    """Wait for the person's decision (or take the profile's automatic one)."""
    if params.approve == "auto":
        reviewer = auto_approval(policy)
        get_run_logger().warning("promote: approved automatically (promote.auto_approve)")
        return Decision(True, reviewer, "approved automatically: the profile allows it", "auto")
    form = ApprovalInput.with_initial_data(description=description, approve=False)
    timeout = policy.promote.approval_timeout_s
    if params.wait == "suspend":
        answer = suspend_flow_run(wait_for_input=form, timeout=timeout, key="approval")
    else:
        answer = pause_flow_run(
            wait_for_input=form, timeout=timeout, poll_interval=params.poll_s, key="approval"
        )
    return Decision(answer.approve, answer.reviewer, answer.comment, "person")


@task(cache_policy=NO_CACHE)
def judge_step(journal: Path, policy_profile: str, fraction: float) -> Verdict:
    policy = load_settings(policy_profile)
    seen = policy_view(load_journal(journal), policy)
    series = interval_series(seen, policy.canary.interval, policy.gates.horizon_ms)
    return ramp_step_verdict(series, policy, fraction)


def _step_source(source: DataSource, step: int) -> DataSource:
    # each step trades on the next stretch of market: another seed of the synthetic one
    if source.kind == "synth":
        return DataSource(kind="synth", seed=(source.seed or 0) + step)
    return source


def ramp(params: PromoteParams, policy: Settings, record: Callable[..., None]) -> list[Verdict]:
    """Each ramp step at its size, judged before the next; a FAIL raises StageFailed."""
    steps = policy.promote.ramp
    progress = create_progress_artifact(
        0.0, key=artifact_key("promote", params.run_key, "ramp"), description="ramp to live"
    )
    root = params.work_dir / "promote" / params.run_key
    verdicts = []
    with live_slot():
        for i, fraction in enumerate(steps):
            verdict = _ramp_step(params, i, fraction, root, record)
            verdicts.append(verdict)
            update_progress_artifact(progress, 100.0 * (i + 1) / len(steps))
            if verdict.status is Status.FAIL:
                record("rolled_back", fraction=fraction, reasons=verdict.reasons)
                raise StageFailed(f"promote ramp {fraction:.0%}", verdict)
    return verdicts


def live_slot() -> Any:
    """The one live slot; strict: a server without the limit refuses to trade live."""
    return concurrency(LIVE_LIMIT, occupy=1, timeout_seconds=LIVE_SLOT_WAIT_S, strict=True)


def _ramp_step(
    params: PromoteParams, i: int, fraction: float, root: Path, record: Callable[..., None]
) -> Verdict:
    """One step: the candidate at `fraction` of its size for `promote.ramp_step`, judged."""
    policy = load_settings(params.profile)
    size = size_override(params.candidate, params.overrides, fraction)
    spec = run_spec(_step_source(params.source, i), root / f"step-{i + 1}", params.candidate,
                    (*params.overrides, size), policy.promote.ramp_step)  # fmt: skip
    run = candidate_run(spec, params.profile)
    verdict = judge_step(run.journal, params.profile, fraction)
    record("ramp_step", fraction=fraction, status=verdict.status.value,
           reasons=verdict.reasons, journal=str(run.journal))  # fmt: skip
    return verdict


@dataclass(frozen=True, slots=True)
class PromoteResult:
    candidate: str
    reviewer: str
    steps: tuple[tuple[float, str], ...]
    audit_log: str


@flow(name="promote")
def promote(params: PromoteParams) -> PromoteResult:
    """Gate on the evidence, wait for a person, ramp the candidate to full size."""
    policy = load_settings(params.profile)
    evidence = load_evidence(params.evidence)
    override = (
        Override(params.override_stages, params.override_reviewer, params.override_reason)
        if params.override_stages
        else None
    )
    gate = promotion_gate(evidence, policy, override)
    summary = evidence_markdown(params.candidate, gate, evidence)
    key = artifact_key("promote", params.run_key)
    create_markdown_artifact(summary, key=f"{key}-evidence", description="promotion evidence")
    create_table_artifact(verdict_rows(gate), key=f"{key}-gate", description="promotion gate")
    audit = audit_log_for(policy, params.artifacts_url)
    context = FlowRunContext.get()
    run_id = str(context.flow_run.id) if context and context.flow_run else ""
    clock = default_clock()

    def record(event: str, **fields: Any) -> None:
        audit.append({
            "ts": iso_utc(clock.now_ns()), "event": event, "run_key": params.run_key,
            "flow_run_id": run_id, "candidate": params.candidate, **fields,
        })  # fmt: skip

    if not may_promote(gate):
        record("blocked", gate=gate.status.value, reasons=gate.reasons)
        obey(gate, "promote")
    decision = ask(params, policy, summary)
    record(
        "approved" if decision.approve else "rejected", reviewer=decision.reviewer,
        comment=decision.comment, how=decision.how, gate=gate.status.value,
        evidence={s: v.status.value for s, v in evidence.items()},
        override=gate.summary.get("override"),
    )  # fmt: skip
    if not decision.approve:
        raise PromotionRejected(
            f"promotion of {params.candidate} rejected by {decision.reviewer}: "
            f"{decision.comment or 'no comment'}"
        )
    steps = ramp(params, policy, record)
    record("promoted", reviewer=decision.reviewer, fractions=list(policy.promote.ramp))
    create_table_artifact(
        [{"fraction": v.summary["fraction"], "status": v.status.value,
          "reasons": "; ".join(v.reasons)} for v in steps],
        key=f"{key}-ramp", description="ramp steps",
    )  # fmt: skip
    return PromoteResult(
        params.candidate, decision.reviewer,
        tuple((float(v.summary["fraction"]), v.status.value) for v in steps), audit.url,
    )  # fmt: skip


class LiveParams(StageParams):
    """`profile` is the revision to trade live (the promoted one)."""

    source: DataSource = DataSource(kind="synth", seed=505)
    duration: str = Field(default="1h", description="data time to trade")


@dataclass(frozen=True, slots=True)
class LiveResult:
    profile: str
    journal: str
    kpis: dict[str, float]


@flow(name="live_bot")
def live_bot(params: LiveParams) -> LiveResult:
    """The live bot, holding the one `mmbot-live` slot while it trades. Paper mode on
    the data source until issue 10 brings the live shell."""
    spec = run_spec(params.source, params.work_dir / "live" / params.run_key, params.profile,
                    params.overrides, params.duration)  # fmt: skip
    with live_slot():
        run = candidate_run(spec, params.profile)
    return LiveResult(params.profile, str(run.journal), run.kpis)
