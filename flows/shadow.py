"""`shadow_run`: the bot in shadow mode over a data source, judged and reported.

Market-data quality first: a FAIL there stops the stage before any KPI is judged,
since KPIs over a broken book mean nothing. Then the KPI stage (gates.stage.kpi_stage)
under the profile as written, the report, and the flow state the verdict asks for.
"""

from __future__ import annotations

from prefect import flow

from bot.runtime.clock import default_clock
from flows.artifacts import obey, publish_stage, show_stage
from flows.params import ShadowParams
from flows.runs import StageOutcome, market_quality, policy_of, run_mode, run_spec
from gates.kpi import load_journal
from gates.stage import judged_kpis, kpi_stage
from gates.verdict import Status, Verdict
from reports.render import render_report

DEFAULTS = ShadowParams()  # frozen: one default instance is safe
STAGE = "shadow"


@flow(name="shadow_run", log_prints=False)
def shadow_run(params: ShadowParams = DEFAULTS) -> StageOutcome:
    policy = policy_of(params)
    spec = run_spec(params, STAGE, "shadow", params.source, params.duration)
    journal_dir = run_mode(spec)
    quality = market_quality(journal_dir, policy)
    evidence: tuple[Verdict, ...] = ()
    kpis = None
    if quality.status is Status.FAIL:
        verdict = quality
    else:
        journal = load_journal(journal_dir)
        kpis = judged_kpis(journal, policy)
        verdict, evidence = kpi_stage(journal, policy, kpis), (quality,)
    report = render_report(
        STAGE, journal_dir, policy, default_clock(),
        verdict=verdict, evidence=evidence, run_id=params.run_key,
    )  # fmt: skip
    published = publish_stage(report, policy, params.run_key, params.artifacts_url)
    show_stage(
        report, published, params.run_key, journal=journal_dir,
        kpis=kpis.total if kpis is not None else None,
    )  # fmt: skip
    obey(verdict, STAGE, published)
    return StageOutcome(STAGE, verdict, published.urls, journal_dir)
