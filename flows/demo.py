"""The demo pipeline: synthetic market -> paper run -> KPI stage verdict -> report.

Plain wiring of bot, gates and reports on the embedded defaults (profile `demo`),
so that `make demo` shows the whole path on a new machine with no accounts and
no network. The Prefect release flow replaces it once it exists.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from bot.profiles import load_settings
from bot.runtime.clock import Clock
from bot.runtime.run import RunResult, RunSpec, run_bot, settings_for
from bot.runtime.telemetry import configure_for
from gates.kpi import KpiReport, load_journal
from gates.stage import judged_kpis, kpi_stage
from gates.verdict import Verdict
from reports.publish import ArtifactStore, publish_report
from reports.render import render_report


@dataclass(frozen=True, slots=True)
class DemoResult:
    run: RunResult
    kpis: KpiReport
    verdict: Verdict
    report_urls: tuple[str, ...]


def run_demo(
    out_dir: Path, clock: Clock, *, profile: str = "demo", overrides: tuple[str, ...] = ()
) -> DemoResult:
    """One paper run on the profile's synthetic market, judged by the KPI stage
    (`gates.stage.kpi_stage`, as `mmbot gate kpi` judges it) and reported. The profile
    as written is the policy; `overrides` change the candidate only. Raises
    BadArtifactUrl / PublishError before the run when the artifact store cannot be used."""
    spec = RunSpec(
        mode="paper", out_dir=out_dir / "journal", profile=profile,
        overrides=overrides, force=True,
    )  # fmt: skip
    settings = settings_for(spec)
    configure_for(settings)
    # the store first: a bad or unreachable artifact URL fails before the run, not after
    store = ArtifactStore.from_url(
        settings.storage.artifacts_url.rstrip("/") + "/demo", settings.storage, settings.secrets
    )
    store.check()
    run = run_bot(spec, settings)
    journal = load_journal(run.out_dir)
    # the policy is the profile as written: `--set` changes the candidate, not its judge
    policy = load_settings(profile)
    kpis = judged_kpis(journal, policy)
    verdict = kpi_stage(journal, policy, kpis, profile=profile)
    report = render_report(
        "kpi-gate", run.out_dir, settings, clock, verdict=verdict, run_id=run.run_id
    )
    urls = publish_report(report, store, run.run_id)
    return DemoResult(run, kpis, verdict, tuple(urls))
