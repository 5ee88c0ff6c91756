"""`tune`: a parameter sweep around the profile, re-checked out of sample, applied as a
bounded profile revision.

Thin wiring; the rules are `bot/tuning.py` (sweep space, constraints, re-check,
bounded step, revision) and the verdict is `gates.stage.kpi_stage` of the chosen
parameters' out-of-sample run. Each candidate is a short paper run (`candidate_run`,
also used by the canary and promote flows). The flow runs its candidates on Prefect's
process pool (`ProcessPoolTaskRunner`, two workers: the machine's cores); for a
cluster, run it with another task runner:

    tune.with_options(task_runner=DaskTaskRunner(address="tcp://scheduler:8786"))(params)
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.cache_policies import NO_CACHE
from prefect.task_runners import ProcessPoolTaskRunner
from pydantic import Field

from bot.config import Settings
from bot.profiles import load_settings, resolve
from bot.runtime.clock import default_clock
from bot.runtime.run import RunSpec, run_bot, settings_for
from bot.runtime.telemetry import configure_for
from bot.tuning import (
    Candidate,
    Constraints,
    Revision,
    Score,
    Selection,
    apply_tuning,
    current_values,
    finalists,
    score,
    select_winner,
    sweep,
)
from flows.artifacts import obey, publish_stage, show_stage
from flows.params import DataSource, ParamsError, StageParams, artifact_key
from gates.kpi import load_journal
from gates.stage import judged_kpis, kpi_stage
from reports.render import Table, render_report


class TuneParams(StageParams):
    in_sample: DataSource = DataSource(kind="synth", seed=101)
    out_of_sample: DataSource = DataSource(kind="synth", seed=202)
    duration: str = Field(default="10m", description="data time of each candidate run")
    method: Literal["grid", "random"] = "grid"
    samples: int = Field(default=8, ge=1, description="random: how many candidates")
    seed: int = Field(default=0, description="random: the draw's seed")
    finalists: int = Field(default=2, ge=1, description="re-checked out of sample")
    revisions_dir: Path | None = Field(
        default=None, description="where the revision goes; default <work_dir>/profiles"
    )


@dataclass(frozen=True, slots=True)
class CandidateRun:
    """A finished candidate run: its journal and the KPIs the policy judges."""

    journal: Path
    kpis: dict[str, float]


def run_spec(
    source: DataSource, out: Path, profile: str, overrides: tuple[str, ...], duration: str | None
) -> RunSpec:
    """A paper run of `profile` on `source`: what `mmbot run` would be told."""
    if source.kind == "live":
        raise ParamsError("data source 'live' needs the live shell (issue 10); use synth or replay")
    return RunSpec(
        mode="paper", out_dir=out, profile=profile, data=source.path, synth_seed=source.seed,
        duration=duration, overrides=overrides, force=True, progress=False,
    )  # fmt: skip


# A paper run reads only local data and writes a local journal: nothing a retry cures.
@task(cache_policy=NO_CACHE)
def candidate_run(spec: RunSpec, policy_profile: str) -> CandidateRun:
    """One paper run, its KPIs judged as the policy (the profile as written) sees them.
    It may run in a worker process of the pool, which logs as its settings say."""
    settings = settings_for(spec)
    configure_for(settings)
    run_bot(spec, settings)
    policy = load_settings(policy_profile)
    kpis = judged_kpis(load_journal(spec.out_dir), policy).total
    return CandidateRun(spec.out_dir, {k: float(v) for k, v in kpis.items()})


def _runs(
    params: TuneParams, window: str, source: DataSource, candidates: list[Candidate]
) -> dict[Candidate, CandidateRun]:
    root = params.work_dir / "tune" / params.run_key / window
    futures = {}
    for i, c in enumerate(candidates):
        overrides = (*params.overrides, *c.overrides())
        spec = run_spec(source, root / f"c{i:03d}", params.profile, overrides, params.duration)
        futures[c] = candidate_run.submit(spec, params.profile)
    return {c: f.result() for c, f in futures.items()}


def _scores(
    runs: dict[Candidate, CandidateRun], settings: Settings, constraints: Constraints
) -> dict[Candidate, Score]:
    objective = settings.tuning.objective
    return {c: score(c, r.kpis, objective, constraints) for c, r in runs.items()}


def sweep_table(
    in_sample: dict[Candidate, Score],
    out: dict[Candidate, Score],
    selection: Selection,
    current: Candidate,
) -> Table:
    accepted = {r.in_sample.candidate: r for r in selection.rechecks}
    rows = []
    for c, s in in_sample.items():
        recheck = accepted.get(c)
        oos = out.get(c)
        label = f"{c.label} (current)" if c == current else c.label
        verdict = "" if recheck is None else ("accepted" if recheck.accepted else recheck.reason)
        feasible = "yes" if s.feasible else "no"
        rechecked = oos.objective if oos is not None else "not re-checked"
        rows.append((label, s.objective, feasible, "; ".join(s.violations), rechecked, verdict))
    columns = ("candidate", "in-sample", "feasible", "violations", "out-of-sample", "re-check")
    return Table("sweep", "Sweep (in sample) and re-check (out of sample)", columns, tuple(rows))


def revision_markdown(revision: Revision | None, selection: Selection) -> str:
    if revision is None:
        return f"# Tuning: no revision\n\n{selection.reason}\n"
    lines = [
        f"# Tuning: revision {revision.number} of `{revision.parent}`",
        "",
        f"Later stages name `{revision.path}` as their profile. {selection.reason}.",
        "",
        "| setting | current | wanted | revision |",
        "|---|---|---|---|",
        *(f"| {c.key} | {c.old:g} | {c.wanted:g} | {c.new:g} |" for c in revision.changes),
        "",
        "`mmbot config diff` of the current profile and the revision:",
        "",
        "```",
        *(f"{c.key}: {c.old!r} -> {c.new!r}" for c in revision.diff),
        "```",
    ]
    return "\n".join(lines) + "\n"


@dataclass(frozen=True, slots=True)
class TuneResult:
    profile: str  # the revision's path, or the current profile when nothing won
    revision: int | None
    changes: dict[str, float]
    status: str
    reports: tuple[str, ...]


@flow(name="tune", task_runner=ProcessPoolTaskRunner(max_workers=2), log_prints=False)
def tune(params: TuneParams) -> TuneResult:
    """Sweep in sample, re-check the finalists out of sample, write the bounded revision,
    and judge the chosen parameters' out-of-sample run with the KPI stage."""
    log = get_run_logger()
    settings = resolve(params.profile, params.overrides).settings
    policy = load_settings(params.profile)
    constraints = Constraints.from_policy(policy)
    current = Candidate.of(current_values(settings, settings.tuning.bounds))
    grid = sweep(settings.tuning, current.as_dict(), params.method,
                 samples=params.samples, seed=params.seed)  # fmt: skip
    in_runs = _runs(params, "in-sample", params.in_sample, list(dict.fromkeys([current, *grid])))
    in_scores = _scores(in_runs, settings, constraints)
    best = finalists([in_scores[c] for c in grid], params.finalists)
    wanted = list(dict.fromkeys([current, *(s.candidate for s in best)]))
    out_runs = _runs(params, "out-of-sample", params.out_of_sample, wanted)
    out_scores = _scores(out_runs, settings, constraints)
    selection = select_winner([(s, out_scores[s.candidate]) for s in best], out_scores[current])
    log.info("tune: %d candidates, winner %s", len(grid), selection.reason)
    revision = None
    if selection.winner is not None and selection.winner != current:
        revision = apply_tuning(
            params.profile, selection.winner.as_dict(),
            params.revisions_dir or params.work_dir / "profiles", note=selection.reason,
        )  # fmt: skip
    chosen = selection.winner or current
    journal = out_runs[chosen].journal
    verdict = kpi_stage(load_journal(journal), policy)
    table = sweep_table(in_scores, out_scores, selection, current)
    report = render_report(
        "tuning", journal, policy, default_clock(), verdict=verdict,
        run_id=params.run_key, tables=[table],
    )  # fmt: skip
    published = publish_stage(report, policy, params.run_key, params.artifacts_url)
    show_stage(report, published, params.run_key, journal=journal, kpis=out_runs[chosen].kpis)
    key = artifact_key("tuning", params.run_key)
    create_markdown_artifact(revision_markdown(revision, selection), key=f"{key}-revision",
                             description="profile revision and its diff")  # fmt: skip
    create_table_artifact(
        [dict(zip(table.columns, row, strict=True)) for row in table.rows],
        key=f"{key}-sweep", description="sweep scores",
    )  # fmt: skip
    obey(verdict, "tune")
    return TuneResult(
        profile=str(revision.path) if revision is not None else params.profile,
        revision=revision.number if revision is not None else None,
        changes={c.key: c.new for c in revision.changes} if revision is not None else {},
        status=verdict.status.value,
        reports=published.urls,
    )
