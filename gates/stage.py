"""One verdict per stage: the KPI stage judged by the release policy (DESIGN §6).

`kpi_stage(journal, policy)` is the KPI stage's only judge; `mmbot gate kpi`,
`mmbot report kpi-gate`, the demo and the flows all call it, and reports render
what it returns. The candidate's journal and run.json are evidence; the policy
(the gate's profile) supplies every term the candidate is judged by:

- bounds: `gates.kpi`, and net_bps from `gates.net_bps_by_tier[fees.tier]` unless
  `gates.kpi` names net_bps itself;
- fees: each fill's fee is recomputed from the policy's fee tier (maker or taker
  rate by liquidity) before any KPI is computed, and a journal whose fees disagree
  with that tier FAILs the `fees` check, naming the tier and both rates;
- limits: inventory_ratio_p95 divides by the policy's risk.max_inventory_usd and
  quote_uptime uses its strategy.max_quote_distance_bps;
- mode: a KPI the run's mode (run.json) cannot measure is N/A (order latency in
  shadow mode, where no order leaves the bot).

The journal's quality suites (fills, orders) are the verdict's parts: KPIs are only
as good as the rows they come from. Fees there are held to the journal's own tier
(is the journal consistent with itself?); sizes and price bands to the policy.

The verdict also carries what a report needs to say what would change it, so that no
threshold arithmetic happens in a report: each KPI check's bad side (`direction`), the
net edge's signed decomposition and the gross edge each net bound needs (the net
check's detail, `EdgeDecomposition`), and the policy it was judged by
(`summary["policy"]`).

`release_verdict` is the release's verdict over the stage verdicts it is handed.

`policy_overrides` names the `--set` overrides a candidate may not bring to a stage:
those of the policy's own sections (`POLICY_SECTIONS`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Final

import pandas as pd

from bot.config import Bound, Settings
from bot.profiles import load_settings
from gates.accuracy import accuracy_gate
from gates.canary import canary_judge
from gates.kpi import (
    BPS,
    Journal,
    KpiReport,
    compute_kpis,
    fill_edges,
    interval_series,
    load_journal,
    nan_to_none,
    not_measurable,
)
from gates.kpi_gate import GATE, kpi_checks
from gates.quality import FEE_TOLERANCE_BPS, FillRules, QualityError, check_fills, check_orders
from gates.verdict import Check, Status, Verdict

# The sections of a profile that are the release policy, not the candidate: the venue
# and its model (instruments, fees, latencies, queue, faults) and the stages' own terms
# (gates, soak, tuning, canary, promote). A candidate that set them would judge itself:
# e.g. paper latency 0 to pass the dry-run compare, or promote.auto_approve to approve
# itself. (`data.*`, the market, stays with the stage's data source for now: the demo
# thins its synthetic book that way.)
POLICY_SECTIONS: Final = (
    "venue", "fees", "sim", "gates", "soak", "tuning", "canary", "promote",
)  # fmt: skip


def policy_overrides(overrides: Sequence[str]) -> list[str]:
    """The overrides (`key=value`) that reach into a section of the policy."""
    return [o for o in overrides if o.partition("=")[0].strip().split(".")[0] in POLICY_SECTIONS]


def net_bound(policy: Settings) -> Bound | None:
    """The net_bps bound the policy holds a run to: its own `gates.kpi.net_bps`, else its
    fee tier's entry in `gates.net_bps_by_tier`."""
    gates = policy.gates
    return gates.kpi.get("net_bps", gates.net_bps_by_tier.get(policy.fees.tier))


def policy_bounds(policy: Settings) -> dict[str, Bound]:
    bounds = dict(policy.gates.kpi)
    net = net_bound(policy)
    if net is not None:
        bounds["net_bps"] = net
    return bounds


def policy_view(journal: Journal, policy: Settings) -> Journal:
    """The journal as the policy judges it: fees recomputed from the policy's tier, and
    the policy's inventory limit and quote distance. Nothing else changes."""
    fills = journal.table("fills")
    notional = fills["price"].astype(float) * fills["qty"].astype(float)
    fees = notional * FillRules.from_settings(policy).rate_bps(fills["liquidity"]) / BPS
    tables = {**journal.tables, "fills": fills.assign(fee=fees.astype(float))}
    return Journal(tables, journal.manifest, journal.limits).judged_by(
        max_inventory_usd=policy.risk.max_inventory_usd,
        max_quote_distance_bps=policy.strategy.max_quote_distance_bps,
    )


def _rate(fee: pd.Series, notional: pd.Series) -> float:
    total = float(notional.sum())
    return float(fee.sum()) / total * BPS if total > 0 else float("nan")


def fees_check(journal: Journal, policy: Settings) -> Check:
    """The journal's fees against the policy's fee tier, per liquidity: the value is the
    largest per-fill disagreement in bps of notional; FAIL beyond FEE_TOLERANCE_BPS, with
    the tier, the expected rate and the journal's notional-weighted rate."""
    fills = journal.table("fills")
    name = policy.fees.tier
    if fills.empty:
        empty = {"tier": name, "fills": 0}
        return Check("fees", Status.PASS, 0.0, detail=empty, direction="max")
    notional = fills["price"].astype(float) * fills["qty"].astype(float)
    expected = FillRules.from_settings(policy).rate_bps(fills["liquidity"])
    error = (fills["fee"].astype(float) / notional * BPS - expected).abs()
    bad = error > FEE_TOLERANCE_BPS
    worst = float(error.max())
    detail: dict[str, Any] = {"tier": name, "fills": len(fills), "disagreeing": int(bad.sum())}
    if not bad.any():
        return Check("fees", Status.PASS, worst, None, FEE_TOLERANCE_BPS, "", detail, "max")
    tier = policy.fees.tiers[name]
    parts = []
    for liquidity, rate in (("maker", tier.maker_bps), ("taker", tier.taker_bps)):
        mine = (fills["liquidity"].astype(str) == liquidity) & bad
        if mine.any():
            seen = _rate(fills["fee"][mine].astype(float), notional[mine])
            parts.append(f"{liquidity} {rate:g} bps expected, journal {seen:.2f}")
    reason = f"fees disagree with policy tier {name}: {'; '.join(parts)}"
    return Check("fees", Status.FAIL, worst, None, FEE_TOLERANCE_BPS, reason, detail, "max")


def _quality(journal: Journal, policy: Settings) -> tuple[Verdict, Verdict]:
    try:
        own = FillRules.from_manifest(journal.manifest)
        rules = replace(
            FillRules.from_settings(policy), maker_bps=own.maker_bps, taker_bps=own.taker_bps
        )
        fills = check_fills(journal.table("fills"), rules)
    except QualityError as exc:
        fills = Verdict.of(
            "quality.fills", [Check("fills.rules", Status.FAIL, None, reason=str(exc))]
        )
    return fills, check_orders(journal.table("orders"))


@dataclass(frozen=True, slots=True)
class EdgeDecomposition:
    """Net edge as the sum of its signed contributions, bps per fill, notional-weighted
    over the fills that have a mid after the horizon (so the parts add up exactly to the
    net_bps KPI): gross + fee + adverse selection = net, where the contribution
    "adverse selection" is -adverse_bps (the KPI adverse_bps > 0 is a cost)."""

    gross_bps: float
    fee_bps: float
    adverse_bps: float
    net_bps: float
    fills: int
    fills_without_mid_h: int

    @property
    def adverse_selection_bps(self) -> float:
        return -self.adverse_bps

    def gross_needed_bps(self, net_target: float) -> float:
        """The captured spread (gross) that reaches `net_target` at today's fees and
        adverse selection: net = gross + fee - adverse, solved for gross."""
        return net_target - self.fee_bps + self.adverse_bps

    def adverse_allowed_bps(self, net_target: float) -> float:
        """The most adverse selection that still reaches `net_target` at today's gross
        and fees: the same identity solved for adverse."""
        return self.gross_bps + self.fee_bps - net_target

    def to_dict(self) -> dict[str, Any]:
        return {
            "gross_bps": self.gross_bps,
            "fee_bps": self.fee_bps,
            "adverse_selection_bps": self.adverse_selection_bps,
            "net_bps": self.net_bps,
            "fills": self.fills,
            "fills_without_mid_h": self.fills_without_mid_h,
        }


def edge_decomposition(journal: Journal, horizon_ms: int) -> EdgeDecomposition:
    """The decomposition of the journal's net edge (give the policy's view to get the
    numbers the verdict judged)."""
    edges = fill_edges(journal, horizon_ms)
    judged = edges[edges["net_bps"].notna()]
    notional = judged["notional"]
    total = float(notional.sum())

    def mean(column: str) -> float:
        return float((judged[column] * notional).sum()) / total if total > 0 else float("nan")

    return EdgeDecomposition(
        gross_bps=mean("gross_bps"),
        fee_bps=mean("fee_bps"),
        adverse_bps=mean("adverse_bps"),
        net_bps=mean("net_bps"),
        fills=len(judged),
        fills_without_mid_h=len(edges) - len(judged),
    )


def _with_needs(check: Check, edges: EdgeDecomposition) -> Check:
    """The net check with its decomposition and, per bound, the gross edge it needs."""
    if check.value is None or check.fail is None or check.warn is None:
        return check
    detail = {
        **edges.to_dict(),
        "gross_needed_fail_bps": edges.gross_needed_bps(check.fail),
        "gross_needed_warn_bps": edges.gross_needed_bps(check.warn),
        "adverse_allowed_fail_bps": edges.adverse_allowed_bps(check.fail),
        "adverse_allowed_warn_bps": edges.adverse_allowed_bps(check.warn),
    }
    return replace(check, detail=detail)


def policy_summary(policy: Settings, profile: str = "") -> dict[str, Any]:
    """The terms a verdict was judged by, as the decision box shows them."""
    tier = policy.fees.tiers[policy.fees.tier]
    return {
        "profile": profile or "(not named)",
        "fee_tier": policy.fees.tier,
        "maker_bps": tier.maker_bps,
        "taker_bps": tier.taker_bps,
        "horizon_ms": policy.gates.horizon_ms,
    }


def mode_of(journal: Journal) -> str:
    return str(journal.manifest.get("mode", ""))


def judged_kpis(journal: Journal, policy: Settings) -> KpiReport:
    """The KPIs the stage judges: the policy's view of the journal (see `policy_view`)."""
    return compute_kpis(policy_view(journal, policy), policy.gates.horizon_ms)


def _directed(checks: list[Check], bounds: Mapping[str, Bound]) -> list[Check]:
    return [
        replace(c, direction=bounds[c.name].direction) if c.name in bounds else c for c in checks
    ]


def kpi_stage(
    journal: Journal, policy: Settings, kpis: KpiReport | None = None, *, profile: str = ""
) -> Verdict:
    """The KPI stage's verdict: the policy's bounds over the policy's view of the journal,
    the fee check and the journal's quality suites (as parts). `kpis` may be given when
    the caller already computed `judged_kpis(journal, policy)`; `profile` names the
    policy in the verdict's summary."""
    report = kpis if kpis is not None else judged_kpis(journal, policy)
    bounds = policy_bounds(policy)
    mode = mode_of(journal)
    unmeasurable = not_measurable(journal)
    checks = _directed(kpi_checks(report.total, bounds, unmeasurable), bounds)
    if "net_bps" in bounds:
        edges = edge_decomposition(policy_view(journal, policy), policy.gates.horizon_ms)
        checks = [_with_needs(c, edges) if c.name == "net_bps" else c for c in checks]
    else:  # the edge is what a maker is for: never left unjudged
        reason = f"no net_bps bound for fee tier {policy.fees.tier!r} (gates.net_bps_by_tier)"
        checks.append(Check("net_bps", Status.FAIL, None, reason=reason))
    checks.append(fees_check(journal, policy))
    summary = {
        "kpis": nan_to_none(
            {n: report.total.get(n) for n in sorted(bounds) if n not in unmeasurable}
        ),
        "mode": mode or "unknown",
        "fee_tier": policy.fees.tier,
        "max_inventory_usd": policy.risk.max_inventory_usd,
        "policy": policy_summary(policy, profile),
    }
    return Verdict.of(GATE, checks, summary, parts=_quality(journal, policy))


def judge_run(
    journal_dir: Path | str, policy: Settings | str | Path, overrides: tuple[str, ...] = ()
) -> Verdict:
    """`kpi_stage` of a journal directory under a policy profile (a name, a YAML path or
    Settings): the one call an end-to-end suite needs. Raises JournalError, KpiError or
    ConfigError on inputs it cannot read."""
    settings = (
        policy if isinstance(policy, Settings) else load_settings(policy, overrides=overrides)
    )
    name = "" if isinstance(policy, Settings) else str(policy)
    return kpi_stage(load_journal(journal_dir), settings, profile=name)


def canary_stage(baseline: Journal, canary: Journal, policy: Settings) -> Verdict:
    """The canary stage's verdict: the canary judge over both journals' interval series
    on the policy's canary interval."""
    cfg, horizon = policy.canary, policy.gates.horizon_ms
    return canary_judge(
        interval_series(baseline, cfg.interval, horizon),
        interval_series(canary, cfg.interval, horizon),
        cfg,
    )


def accuracy_stage(shadow: Journal, sim: Journal, policy: Settings) -> Verdict:
    """The accuracy stage's verdict: the simulated run judged against the shadow run."""
    cfg, horizon = policy.gates.accuracy, policy.gates.horizon_ms
    return accuracy_gate(
        interval_series(shadow, cfg.interval, horizon),
        interval_series(sim, cfg.interval, horizon),
        cfg,
    )


# report stages that are judged as a KPI stage, and the ones that compare two journals
KPI_STAGES: Final = frozenset({"shadow", "soak-iteration", "soak-final", "kpi-gate", "tuning"})
TWO_JOURNAL_STAGES: Final = frozenset({"canary", "accuracy"})


class StageError(ValueError):
    """A stage that cannot be judged from what was given (no baseline, no gate)."""


def stage_verdict(
    stage: str,
    journal: Journal,
    policy: Settings,
    baseline: Journal | None = None,
    *,
    profile: str = "",
) -> Verdict:
    """The verdict of a report stage from its gate function: the KPI stage for the KPI
    stages; canary (baseline, then the canary journal) and accuracy (the journal is the
    shadow reference, `baseline` the simulated run) for the two-journal stages. `profile`
    names the policy in a KPI stage's summary."""
    if stage in KPI_STAGES:
        return kpi_stage(journal, policy, profile=profile)
    if stage in TWO_JOURNAL_STAGES:
        if baseline is None:
            raise StageError(f"stage {stage!r} compares two journals: give the baseline")
        if stage == "canary":
            return canary_stage(baseline, journal, policy)
        return accuracy_stage(journal, baseline, policy)
    raise StageError(f"stage {stage!r} has no gate of its own: pass its verdict")


# Soak iterations 1-4 are warm-up: the bot's estimators and guards settle, so a FAIL
# there is reported as a WARN (with its reasons kept) and does not stop the soak.
WARMUP_ITERATIONS: Final = 4


def soak_iteration_stage(
    journal: Journal, policy: Settings, iteration: int, warmup: int = WARMUP_ITERATIONS
) -> Verdict:
    """The in-run gate of soak iteration `iteration` (1-based): the KPI stage, under the
    warm-up rule (`warm_up`)."""
    return warm_up(kpi_stage(journal, policy), iteration, warmup)


def warm_up(verdict: Verdict, iteration: int, warmup: int = WARMUP_ITERATIONS) -> Verdict:
    """A soak iteration's KPI verdict under the warm-up rule: a FAIL during the first
    `warmup` iterations counts as a WARN. The checks that failed keep their FAIL status;
    a `warm_up` check says why the verdict is only a WARN."""
    if iteration < 1:
        raise StageError(f"soak iterations count from 1, got {iteration}")
    summary = {**verdict.summary, "iteration": iteration, "warm_up": iteration <= warmup}
    if iteration > warmup or verdict.status is not Status.FAIL:
        return replace(verdict, summary=summary)
    note = Check(
        "warm_up", Status.WARN, float(iteration), reason=(
            f"iteration {iteration} of {warmup} warm-up iterations: FAIL counts as WARN"
        ),
    )  # fmt: skip
    return replace(verdict, status=Status.WARN, checks=(*verdict.checks, note), summary=summary)


def joined(journals: Sequence[Journal]) -> Journal:
    """Consecutive segments of one run (soak iterations) as one journal: rows in order,
    the manifest of the last segment."""
    if not journals:
        raise StageError("no journal segments to join")
    tables = {
        name: pd.concat([j.table(name) for j in journals], ignore_index=True)
        for name in journals[0].tables
    }
    return Journal(tables, journals[-1].manifest, journals[-1].limits)


def soak_final_stage(
    iterations: Sequence[Journal], policy: Settings, warmup: int = WARMUP_ITERATIONS
) -> tuple[Verdict, Journal | None]:
    """The soak's final KPI gate: the KPI stage over the steady-state iterations (those
    after the warm-up), joined; and that joined journal. A soak with no iteration after
    its warm-up has no steady state: FAIL."""
    steady = list(iterations[warmup:])
    if not steady:
        reason = (
            f"no steady-state iteration: {len(iterations)} iterations, the first "
            f"{warmup} are warm-up"
        )
        return Verdict.of(GATE, [Check("steady_state", Status.FAIL, 0.0, reason=reason)]), None
    journal = joined(steady)
    verdict = kpi_stage(journal, policy)
    summary = {**verdict.summary, "steady_iterations": [warmup + 1, len(iterations)]}
    return replace(verdict, summary=summary), journal


# --- the release ---------------------------------------------------------------------

RELEASE_GATE: Final = "release"
# the stages a release may hand in, in lifecycle order (DESIGN §1)
RELEASE_STAGES: Final = ("shadow", "accuracy", "soak-final", "kpi-gate", "tuning", "canary")
# tuning is optional: a soak with auto_tune off, or a sweep that proposes nothing, is whole
RELEASE_REQUIRED: Final = ("shadow", "accuracy", "soak-final", "kpi-gate", "canary")


def _stage_check(stage: str, verdict: Verdict) -> Check:
    # a stage verdict is PASS, WARN or FAIL; one that judged nothing earns no PASS
    status = Status.FAIL if verdict.status is Status.NA else verdict.status
    reason = "; ".join(verdict.reasons) if status is not Status.PASS else ""
    return Check(stage, status, None, reason=reason, detail={"gate": verdict.gate})


def release_verdict(
    stages: Mapping[str, Verdict], required: Sequence[str] = RELEASE_REQUIRED
) -> Verdict:
    """The release's verdict over its stages' verdicts (keyed by stage name): one check
    per stage, with that stage's status and reasons; a required stage without a
    verdict is a FAIL naming it. So the release FAILs if any stage FAILs or is missing,
    WARNs if any WARNs, and FAILs when handed nothing at all."""
    unknown = sorted(set(stages) - set(RELEASE_STAGES))
    if unknown:
        raise StageError(f"release: unknown stages {unknown}; stages are {list(RELEASE_STAGES)}")
    checks = []
    for stage in RELEASE_STAGES:
        if stage in stages:
            checks.append(_stage_check(stage, stages[stage]))
        elif stage in required:
            reason = f"required stage {stage} has no verdict (not run, or the release stopped)"
            checks.append(Check(stage, Status.FAIL, None, reason=reason))
    if not checks:
        checks.append(Check("stages", Status.FAIL, None, reason="no stage verdicts"))
    summary = {"required": list(required), "judged": [s for s in RELEASE_STAGES if s in stages]}
    return Verdict.of(RELEASE_GATE, checks, summary)
