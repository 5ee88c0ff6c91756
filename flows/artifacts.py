"""The tasks every stage flow shares: publish its report, show it in Prefect, obey its verdict.

A stage flow runs its plain functions (bot, gates), renders a report (reports), then:

    published = publish_stage(report, settings, run_key)       # artifact store, retried
    show_stage(report, published, run_key, journal=journal_dir)  # Prefect artifacts
    obey(verdict, stage)                                       # FAIL -> failed flow run

`obey` is the only place a verdict turns into a flow state, and it decides nothing:
the verdict's status does. A FAIL raises `StageFailed` (the flow run ends Failed with
the verdict's reasons as its message); a WARN is logged as a warning and the run
completes.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from prefect import get_run_logger, task
from prefect.artifacts import (
    create_link_artifact,
    create_markdown_artifact,
    create_table_artifact,
)
from prefect.cache_policies import NO_CACHE

from bot.config import Settings
from flows.params import artifact_key
from gates.verdict import Status, Verdict
from reports.publish import ArtifactStore, from_url, publish_report
from reports.render import Report

# Prefect caps a Markdown artifact's size in its UI; a report above it is cut with a note
# pointing at the full HTML report in the store.
MAX_MARKDOWN_CHARS = 200_000


class StageStop(RuntimeError):
    """A run that stopped as designed: a gate said FAIL, or a person said no. Its
    message is the whole story; its traceback is only the call path to `obey`."""


class StageFailed(StageStop):
    """A stage whose gate said FAIL. The message is the stage and the verdict's reasons,
    which is what the flow run's failed state shows."""

    def __init__(self, stage: str, verdict: Verdict, report: str = "") -> None:
        self.stage = stage
        self.verdict = verdict
        self.report = report  # the URL of the stage's HTML report, when it has one
        reasons = "; ".join(verdict.reasons) or "no reason given"
        super().__init__(f"{stage}: {verdict.gate} FAIL: {reasons}")


@dataclass(frozen=True, slots=True)
class Published:
    """Where a stage's report went in the artifact store."""

    stage: str
    run_id: str
    urls: tuple[str, ...]

    def url(self, suffix: str) -> str:
        """The URL ending in `suffix` ("report.html", "report.md", "verdict.json")."""
        for url in self.urls:
            if url.endswith(suffix):
                return url
        raise KeyError(f"{self.stage}: no published {suffix} among {list(self.urls)}")


def store_for(settings: Settings, url: str | None = None) -> ArtifactStore:
    """The artifact store of a flow: `url`, else the profile's storage.artifacts_url."""
    return from_url(url, settings.storage, settings.secrets)


# The store may be S3 behind a network: a few retries with a pause. Reports are not
# cached (NO_CACHE): a retried release must publish its fresh report.
@task(retries=2, retry_delay_seconds=[1, 5], cache_policy=NO_CACHE)
def publish_stage(
    report: Report, settings: Settings, run_key: str, url: str | None = None
) -> Published:
    """Markdown, HTML and verdict JSON of `report` under `<stage>/<run_key>/` in the store."""
    urls = publish_report(report, store_for(settings, url), run_key)
    return Published(report.stage, run_key, tuple(urls))


def verdict_rows(verdict: Verdict) -> list[dict[str, Any]]:
    """One row per check, the verdict's parts' checks after its own (gate column says
    whose): what the Prefect table artifact shows."""
    rows = []
    for judged in (verdict, *verdict.parts):
        for check in judged.checks:
            rows.append(
                {
                    "gate": judged.gate,
                    "check": check.name,
                    "status": check.status.value,
                    "value": check.value,
                    "warn": check.warn,
                    "fail": check.fail,
                    "reason": check.reason,
                }
            )
    return rows


def kpi_rows(kpis: dict[str, Any]) -> list[dict[str, Any]]:
    return [{"kpi": name, "value": kpis[name]} for name in sorted(kpis)]


def _markdown(report: Report, published: Published) -> str:
    text = report.markdown
    if len(text) <= MAX_MARKDOWN_CHARS:
        return text
    full = published.url("report.html")
    return text[:MAX_MARKDOWN_CHARS] + f"\n\n... (cut; the whole report: {full})\n"


@task(cache_policy=NO_CACHE)
def show_stage(
    report: Report,
    published: Published,
    run_key: str,
    *,
    journal: Path | None = None,
    kpis: dict[str, Any] | None = None,
) -> None:
    """The stage's Prefect artifacts, keyed `<stage>-<run_key>-...`: its report as
    Markdown, the verdict's checks (and the KPIs) as tables, links to the HTML report,
    the verdict JSON and the journal."""
    key = artifact_key(report.stage, run_key)
    status = report.verdict.status.value if report.verdict is not None else "no verdict"
    create_markdown_artifact(
        _markdown(report, published), key=f"{key}-report",
        description=f"{report.stage} report ({status})",
    )  # fmt: skip
    if report.verdict is not None:
        create_table_artifact(
            verdict_rows(report.verdict), key=f"{key}-verdict",
            description=f"{report.stage}: {report.verdict.gate} {status}",
        )  # fmt: skip
    if kpis:
        create_table_artifact(kpi_rows(kpis), key=f"{key}-kpis", description=f"{report.stage} KPIs")
    create_link_artifact(
        published.url("report.html"), link_text=f"{report.stage} report (HTML)",
        key=f"{key}-html",
    )  # fmt: skip
    if report.verdict is not None:
        create_link_artifact(
            published.url("verdict.json"), link_text=f"{report.stage} verdict (JSON)",
            key=f"{key}-verdict-json",
        )  # fmt: skip
    if journal is not None:
        create_link_artifact(
            journal.resolve().as_uri(), link_text=f"{report.stage} journal",
            key=f"{key}-journal",
        )  # fmt: skip


def obey(verdict: Verdict, stage: str, published: Published | None = None) -> Verdict:
    """The flow state the verdict asks for: FAIL raises StageFailed (the run fails with
    the reasons; `published` gives it the stage's report), WARN logs them as a warning
    and returns, PASS returns."""
    if verdict.status is Status.FAIL:
        report = published.url("report.html") if published is not None else ""
        raise StageFailed(stage, verdict, report)
    if verdict.status is Status.WARN:
        get_run_logger().warning("%s: %s WARN: %s", stage, verdict.gate, "; ".join(verdict.reasons))
    return verdict


class _NoStopTracebacks(logging.Filter):
    """Drops the record Prefect's flow engine logs with a traceback ("Encountered
    exception during execution") when the exception is a StageStop: the run's
    "Finished in state Failed(...)" line that follows carries the same reason."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        return not isinstance(exc, StageStop)


def quiet_stage_stops() -> None:
    """On the console only (the Prefect API still gets every record): a gate FAIL or
    a rejection reads as its failed-state line, not a traceback. A crash keeps its
    traceback. Idempotent."""
    from prefect.logging.handlers import PrefectConsoleHandler

    for handler in logging.getLogger().handlers:
        if isinstance(handler, PrefectConsoleHandler) and not any(
            isinstance(f, _NoStopTracebacks) for f in handler.filters
        ):
            handler.addFilter(_NoStopTracebacks())
