"""`mmbot report STAGE --journal J --out URL`: render a stage report outside Prefect.

A thin command: settings from the profile, the report from reports.render, the
artifacts to the store at --out; stdout is the artifact URLs, one a line, and
diagnostics go to stderr. The report judges nothing: the stage's verdict comes
from its gate function (`gates.stage.stage_verdict`, the same call `mmbot gate kpi`
makes) or from `--verdict`. Once the report is published the command exits with
the verdict's code (0 PASS, 1 FAIL, 2 WARN), so a script cannot take a published
FAIL for a success. The release's verdict is `gates.stage.release_verdict` over the
stage verdicts given with `--input stages.json`; `tuning` and `soak-final` need their
sweep / iteration summaries the same way, and each refuses to render without (64).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from bot.config import Settings
from bot.exitcodes import ExitCode
from bot.journal import JournalError, read_manifest
from bot.profiles import ConfigError, load_settings
from bot.runtime.clock import default_clock
from bot.runtime.telemetry import configure_for
from gates.cli import EXIT_OF_STATUS
from gates.kpi import KpiError, load_journal
from gates.stage import StageError, release_verdict, stage_verdict
from gates.verdict import Verdict
from reports.inputs import StageInput, read_stage_input
from reports.publish import ArtifactStore, BadArtifactUrl, PublishError, publish_report
from reports.render import STAGES, MissingInput, ReportError, render_report, verdict_from_dict


def _fail(message: str, code: ExitCode) -> typer.Exit:
    typer.echo(f"error: {message}", err=True)
    return typer.Exit(int(code))


def _read_verdict(path: Path) -> Verdict:
    try:
        return verdict_from_dict(json.loads(path.read_text()))
    except (OSError, json.JSONDecodeError) as exc:
        raise ReportError(f"{path}: not a verdict JSON file ({exc})") from exc


def _journal_run_id(journal: Path) -> str:
    """The run id the journal's manifest names, else the directory's name."""
    try:
        return str(read_manifest(journal).get("run_id") or journal.resolve().name)
    except JournalError:
        return journal.resolve().name


def report_command(
    stage: Annotated[str, typer.Argument(help=f"one of: {', '.join(STAGES)}", show_default=False)],
    journal: Annotated[Path, typer.Option("--journal", help="journal directory (run.json)")],
    out: Annotated[
        str | None,
        typer.Option("--out", help="file://DIR or s3://bucket/prefix [storage.artifacts_url]"),
    ] = None,
    profile: Annotated[str, typer.Option("--profile", help="profile name or YAML path")] = "base",
    baseline: Annotated[
        Path | None,
        typer.Option("--baseline", help="second journal: canary baseline or accuracy sim run"),
    ] = None,
    verdict: Annotated[
        Path | None,
        typer.Option("--verdict", help="the stage gate's verdict.json (canary, accuracy)"),
    ] = None,
    evidence: Annotated[
        list[Path] | None,
        typer.Option("--evidence", help="further verdict.json files to show (repeatable)"),
    ] = None,
    run_id: Annotated[
        str | None, typer.Option("--run-id", help="default: the journal's run id (run.json)")
    ] = None,
    overrides: Annotated[
        list[str] | None, typer.Option("--set", help="a.b=c setting override (repeatable)")
    ] = None,
    stage_input: Annotated[
        Path | None,
        typer.Option(
            "--input",
            help="the stage's own input: tuning sweep CSV, soak-final iterations JSONL, "
            "release stages JSON (formats: reports.inputs)",
        ),
    ] = None,
) -> None:
    """Render STAGE's report (Markdown + HTML + verdict JSON), publish it, print the URLs."""
    stage = stage.replace("_", "-")
    if stage not in STAGES:
        raise _fail(f"unknown stage {stage!r}; stages are {', '.join(STAGES)}", ExitCode.USAGE)
    try:
        settings = load_settings(profile, overrides=overrides or ())
    except ConfigError as exc:
        raise _fail(str(exc), ExitCode.USAGE) from exc
    # Before anything logs: the redactor must know the secrets these settings carry
    # (an S3 endpoint password, a Redis URL password, API keys).
    configure_for(settings)
    run = run_id or _journal_run_id(journal)
    store = _store(out, settings)  # a bad --out is refused before any work
    try:
        given = read_stage_input(stage, stage_input)
        judged = (
            _read_verdict(verdict)
            if verdict
            else _gate_verdict(stage, journal, baseline, settings, given, profile)
        )
        report = render_report(
            stage,
            journal,
            settings,
            default_clock(),
            baseline_path=baseline,
            run_id=run,
            verdict=judged,
            evidence=[_read_verdict(p) for p in evidence or ()],
            tables=given.tables,
            stages=given.stages,
        )
    except (StageError, MissingInput) as exc:
        raise _fail(str(exc), ExitCode.USAGE) from exc
    except (ReportError, JournalError, KpiError) as exc:
        raise _fail(str(exc), ExitCode.DATA) from exc
    try:
        urls = publish_report(report, store, run)
    except PublishError as exc:
        raise _fail(str(exc), ExitCode.UNAVAILABLE) from exc
    for url in urls:
        typer.echo(url)
    if judged is not None:
        raise typer.Exit(int(EXIT_OF_STATUS[judged.status]))


def _store(out: str | None, settings: Settings) -> ArtifactStore:
    try:
        return ArtifactStore.from_url(out, settings.storage, settings.secrets)
    except BadArtifactUrl as exc:
        raise _fail(str(exc), ExitCode.USAGE) from exc
    except PublishError as exc:
        raise _fail(str(exc), ExitCode.UNAVAILABLE) from exc


def _gate_verdict(
    stage: str,
    journal: Path,
    baseline: Path | None,
    settings: Settings,
    given: StageInput,
    profile: str,
) -> Verdict | None:
    """The stage's verdict from its gate function; the release's from its stages'
    (none without them: the renderer refuses and says what it needs)."""
    if stage == "release":
        return release_verdict(given.verdicts()) if given.stages else None
    other = load_journal(baseline) if baseline is not None else None
    return stage_verdict(stage, load_journal(journal), settings, other, profile=profile)


def report_app() -> typer.Typer:
    """A one-command Typer app, for tests and for mounting with `app.command()(...)`."""
    app = typer.Typer(add_completion=False)
    app.command("report")(report_command)
    return app
