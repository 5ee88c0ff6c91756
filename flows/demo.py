"""The demo pipeline: synthetic market -> paper run -> KPIs -> KPI gate -> report.

Plain wiring of bot, gates and reports on the embedded defaults (profile `demo`),
so that `make demo` shows the whole path on a new machine with no accounts and
no network. The Prefect release flow replaces it once it exists.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from bot.runtime.clock import Clock
from bot.runtime.run import RunResult, RunSpec, run_bot, settings_for
from bot.runtime.telemetry import configure_for
from gates.kpi import KpiReport, compute_kpis, load_journal
from gates.kpi_gate import kpi_gate
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
    """One paper run on the profile's synthetic market, judged and reported."""
    spec = RunSpec(
        mode="paper", out_dir=out_dir / "journal", profile=profile,
        overrides=overrides, force=True,
    )  # fmt: skip
    settings = settings_for(spec)
    configure_for(settings)
    run = run_bot(spec, settings)
    kpis = compute_kpis(load_journal(run.out_dir), horizon_ms=settings.gates.horizon_ms)
    verdict = kpi_gate(kpis, settings.gates.kpi)
    report = render_report(
        "kpi-gate", run.out_dir, settings, clock, verdict=verdict, run_id=run.run_id
    )
    store = ArtifactStore.from_url(
        settings.storage.artifacts_url.rstrip("/") + "/demo", settings.storage, settings.secrets
    )
    urls = publish_report(report, store, run.run_id)
    return DemoResult(run, kpis, verdict, tuple(urls))
