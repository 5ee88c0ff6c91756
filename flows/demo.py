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
    out_dir: Path,
    clock: Clock,
    *,
    profile: str = "demo",
    overrides: tuple[str, ...] = (),
    reports_url: str | None = None,
) -> DemoResult:
    """One paper run on the profile's synthetic market, judged by the KPI stage
    (`gates.stage.kpi_stage`, as `mmbot gate kpi` judges it) and reported to
    `reports_url` (default: the settings' `storage.artifacts_url` + /demo). The profile
    as written is the policy; `overrides` change the candidate only. Raises
    BadArtifactUrl / PublishError before the run when the artifact store cannot be used."""
    spec = RunSpec(
        mode="paper", out_dir=out_dir / "journal", profile=profile,
        overrides=overrides, force=True,
    )  # fmt: skip
    settings = settings_for(spec)
    configure_for(settings)
    # the store first: a bad or unreachable artifact URL fails before the run, not after
    url = reports_url or settings.storage.artifacts_url.rstrip("/") + "/demo"
    store = ArtifactStore.from_url(url, settings.storage, settings.secrets)
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


class DemoError(ValueError):
    """A demo asked for something its profile does not allow."""


@dataclass(frozen=True, slots=True)
class ReleaseDemo:
    """What `mmbot demo --release` shows: the release's verdict and its reports."""

    verdict: Verdict
    stopped: str
    stages: tuple[tuple[str, str, str], ...]  # (stage, status, reason) of the judged ones
    report_urls: tuple[str, ...]
    approval: str
    not_reached: tuple[str, ...] = ()  # required stages the release stopped before
    promotion: str = ""  # what the promote flow did, as the release report states it


# the soak profile's thinned synthetic book (250 rows/s, touch moves and trades as the
# real market): a simulated 24 h soak in minutes
DEMO_SOAK_OVERRIDES: tuple[str, ...] = ("data.synth.book_rate_hz=250",)


def approval_of(profile: str, approve: str) -> str:
    """The approval mode a demo runs with: `auto` only where the profile allows it
    (promote.auto_approve); raises DemoError otherwise."""
    if approve == "auto" and not load_settings(profile).promote.auto_approve:
        raise DemoError(
            f"--approve auto: profile {profile!r} does not allow it (promote.auto_approve); "
            "only the demo profile approves itself"
        )
    return approve


def run_release_demo(
    out_dir: Path, *, profile: str = "demo", overrides: tuple[str, ...] = (),
    approve: str = "person", soak_hours: float = 24.0, reports_url: str | None = None,
) -> ReleaseDemo:  # fmt: skip
    """The release flow (flows/release.py) on the profile's synthetic market with a
    simulated `soak_hours` soak; its journals under `out_dir`, its reports in the store
    at `reports_url` (default: the settings' storage.artifacts_url).
    Raises DemoError, BadArtifactUrl / PublishError before the flow runs."""
    from pydantic import ValidationError

    from flows.artifacts import quiet_stage_stops
    from flows.params import ReleaseParams
    from flows.release import release

    approval = approval_of(profile, approve)
    settings = load_settings(profile, overrides=overrides)
    url = reports_url or settings.storage.artifacts_url
    ArtifactStore.from_url(url, settings.storage, settings.secrets).check()
    try:
        params = ReleaseParams(
            profile=profile, run_key="demo", overrides=(*DEMO_SOAK_OVERRIDES, *overrides),
            artifacts_url=url, work_dir=out_dir,
            soak_hours=soak_hours, approve=approval,  # type: ignore[arg-type]
        )  # fmt: skip
    except ValidationError as exc:  # e.g. a --set into the release policy
        reasons = (str(e["msg"]).removeprefix("Value error, ") for e in exc.errors())
        raise DemoError("; ".join(reasons)) from None
    _ensure_live_limit()
    quiet_stage_stops()
    state = release(params, return_state=True)
    return _release_demo(state.result(raise_on_failure=False), approval)


def _ensure_live_limit() -> None:
    """The promote flow's ramp holds the one slot of the global concurrency limit
    `mmbot-live` (strict: a missing limit is an error); a fresh API (the demo's
    ephemeral one) has none yet, so the demo creates it."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.actions import GlobalConcurrencyLimitCreate
    from prefect.exceptions import ObjectNotFound

    from flows.promote import LIVE_LIMIT

    with get_client(sync_client=True) as client:
        try:
            client.read_global_concurrency_limit_by_name(LIVE_LIMIT)
        except ObjectNotFound:
            client.create_global_concurrency_limit(
                GlobalConcurrencyLimitCreate(name=LIVE_LIMIT, limit=1)
            )


def _release_demo(result: object, approval: str) -> ReleaseDemo:
    from flows.artifacts import StageFailed
    from flows.release import PromotionStopped
    from flows.runs import StageOutcome

    promotion = ""
    if isinstance(result, PromotionStopped):
        result = result.outcome  # every stage held; the promotion did not
    if isinstance(result, StageOutcome):
        verdict, urls = result.verdict, result.report_urls
        promotion = dict(result.facts).get("promotion", "")
    elif isinstance(result, StageFailed):
        verdict, urls = result.verdict, (result.report,) if result.report else ()
    else:
        raise DemoError(f"the release flow ended without a verdict: {result!r}")
    judged = set(verdict.summary.get("judged", ()))
    stages = tuple((c.name, c.status.value, c.reason) for c in verdict.checks if c.name in judged)
    missing = tuple(c.name for c in verdict.checks if c.name not in judged)
    stopped = next((name for name, status, _ in stages if status == "FAIL"), "")
    return ReleaseDemo(verdict, stopped, stages, tuple(urls), approval, missing, promotion)
