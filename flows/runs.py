"""Tasks that run the bot for a stage and judge what it wrote (wiring only).

A stage's candidate is its profile plus `overrides`; its policy is the profile as
written (`bot.profiles.load_settings(profile)`), as `mmbot gate kpi` judges. Journals
go under `<work_dir>/<stage>/<run_key>/<role>`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from prefect import task
from prefect.cache_policies import NO_CACHE

from bot.config import Settings
from bot.profiles import load_settings
from bot.runtime.run import RunMode, RunSpec, run_bot, settings_for
from bot.runtime.telemetry import configure_for
from flows.params import DataSource, StageParams
from gates.kpi import load_journal
from gates.quality import check_market_data
from gates.verdict import Verdict


class LiveDataNotSupported(ValueError):
    """A stage asked for live market data, which needs the live shell (issue 10)."""

    def __init__(self, stage: str) -> None:
        super().__init__(
            f"{stage}: data source 'live' needs the live shell, which does not exist yet "
            "(issue 10); use kind 'synth' (a seed) or 'replay' (a recorded file)"
        )


@dataclass(frozen=True, slots=True)
class StageOutcome:
    """What a stage flow returns: its verdict and where its evidence is."""

    stage: str
    verdict: Verdict
    report_urls: tuple[str, ...]
    journal: Path | None
    evidence: tuple[Verdict, ...] = ()  # further verdicts (the soak's readiness)
    facts: tuple[tuple[str, str], ...] = ()  # what the stage's report states beside its verdict

    @property
    def html(self) -> str:
        return next((u for u in self.report_urls if u.endswith("report.html")), "")


def policy_of(params: StageParams) -> Settings:
    """The release policy of a stage: its profile as written, without the overrides."""
    return load_settings(params.profile)


def journal_dir(params: StageParams, stage: str, role: str) -> Path:
    return params.work_dir / stage / params.run_key / role


def run_spec(
    params: StageParams,
    stage: str,
    mode: RunMode,
    source: DataSource,
    duration: str | None,
    role: str | None = None,
) -> RunSpec:
    """The RunSpec of one bot run of a stage; refuses live data (LiveDataNotSupported)."""
    if source.kind == "live":
        raise LiveDataNotSupported(stage)
    return RunSpec(
        mode=mode,
        out_dir=journal_dir(params, stage, role or mode),
        profile=params.profile,
        data=source.path,
        synth_seed=source.seed,
        duration=duration,
        overrides=params.overrides,
        force=True,  # a stage re-run under the same run key replaces its own journal
        progress=False,
    )


# No retries: a replay is deterministic, a second try fails the same way.
@task(cache_policy=NO_CACHE)
def run_mode(spec: RunSpec) -> Path:
    """One bot run (paper or shadow) to its journal directory."""
    settings = settings_for(spec)
    configure_for(settings)
    return run_bot(spec, settings).out_dir


@task(cache_policy=NO_CACHE)
def market_quality(journal: Path, policy: Settings) -> Verdict:
    """The market-data suite (gates.quality) over the top of book the bot saw."""
    book = load_journal(journal).table("book")
    return check_market_data(book, max_gap_ms=policy.data.validation.max_gap_ms)
