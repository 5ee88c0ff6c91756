"""`dryrun_compare`: shadow and paper over the same window, run at once, then the
accuracy gate (gates.stage.accuracy_stage): is the simulated venue close enough to
what shadow mode saw for its KPIs to be believed?"""

from __future__ import annotations

from typing import Any, cast

from prefect import flow
from prefect.futures import PrefectFuture
from prefect.task_runners import TaskRunner, ThreadPoolTaskRunner

from bot.runtime.clock import default_clock
from flows.artifacts import obey, publish_stage, show_stage
from flows.params import CompareParams
from flows.runs import StageOutcome, policy_of, run_mode, run_spec
from gates.kpi import load_journal
from gates.stage import accuracy_stage
from reports.render import render_report

DEFAULTS = CompareParams()  # frozen: one default instance is safe
STAGE = "accuracy"
# the two runs at once (Prefect's own annotation of `task_runner` is narrower than the
# runners it ships, hence the cast)
_RUNNER = cast("TaskRunner[PrefectFuture[Any]]", ThreadPoolTaskRunner(max_workers=2))


@flow(name="dryrun_compare", task_runner=_RUNNER)
def dryrun_compare(params: CompareParams = DEFAULTS) -> StageOutcome:
    policy = policy_of(params)
    shadow = run_mode.submit(run_spec(params, STAGE, "shadow", params.source, params.duration))
    paper = run_mode.submit(run_spec(params, STAGE, "paper", params.source, params.duration))
    shadow_dir, paper_dir = shadow.result(), paper.result()
    verdict = accuracy_stage(load_journal(shadow_dir), load_journal(paper_dir), policy)
    report = render_report(
        STAGE, shadow_dir, policy, default_clock(),
        baseline_path=paper_dir, verdict=verdict, run_id=params.run_key,
    )  # fmt: skip
    published = publish_stage(report, policy, params.run_key, params.artifacts_url)
    show_stage(report, published, params.run_key, journal=paper_dir)
    obey(verdict, STAGE, published)
    return StageOutcome(STAGE, verdict, published.urls, paper_dir)
