"""`mmbot kpi` and `mmbot gate kpi|accuracy|canary|readiness`: thin commands over
gates.kpi, gates.stage and gates.readiness.

stdout is data (a rich table, or JSON with `--json`), diagnostics go to stderr.
The JSON of `mmbot kpi --json` is a stable interface:
``{"total": {KPI: value}, "by_symbol": {SYMBOL: {KPI: value}}}`` plus, with
`--interval`, ``"intervals": [{"start": ISO-8601, COLUMN: value, ...}]``; NaN is
null, keys are sorted. `mmbot kpi` takes its horizon H from the profile's
`gates.horizon_ms` (as `mmbot gate kpi` does); `--horizon-ms` overrides it.

The profile of `kpi` and of every gate defaults to the one the journal ran with
(run.json `profile`); another one given with -p is used, with a one-line warning.
For a gate the profile is the release policy (bounds, fee tier, inventory limit) and
`--set` changes that policy; the journal is evidence.

`mmbot gate kpi` prints the KPI stage's verdict (`gates.stage.kpi_stage`), with the
journal's fills and orders quality suites as the verdict's `parts`; `gate accuracy`
the accuracy stage (`accuracy_stage`: a paper run against the shadow run of the same
market), `gate canary` the canary stage (`canary_stage`: the canary run against its
baseline), `gate readiness` the readiness score of a journal (`gates.readiness`: its
judged KPIs plus the sections given with --section). JSON is `Verdict.to_dict()`.
Exit 0 on PASS, 1 on FAIL, 2 on WARN (bot/exitcodes.py); a check the run's mode
cannot measure shows N/A and counts for neither. A bad `--interval` is a usage error
(64), found before any journal is read.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, NoReturn

import pandas as pd
import typer
from rich.console import Console
from rich.table import Table

from bot.cli_common import JournalProfileOpt, JsonOpt, SetOpt, fail, warn, with_log_options
from bot.config import Settings
from bot.exitcodes import ExitCode
from bot.journal import JournalError, read_manifest
from bot.profiles import ConfigError, load_settings
from gates.kpi import (
    KPI_NAMES,
    Journal,
    KpiError,
    KpiReport,
    compute_kpis,
    interval_ns,
    interval_series,
    load_journal,
    nan_to_none,
)
from gates.readiness import SECTION_KPI, WEIGHTS, ReadinessError, readiness
from gates.stage import accuracy_stage, canary_stage, judged_kpis, kpi_stage, policy_bounds
from gates.verdict import Status, Verdict

# A verdict's status is never N/A (Status.overall): only its checks can be
EXIT_OF_STATUS = {Status.PASS: ExitCode.OK, Status.FAIL: ExitCode.FAIL, Status.WARN: ExitCode.WARN}

JournalArg = Annotated[
    Path,
    typer.Argument(metavar="JOURNAL", help="journal directory (with run.json)", show_default=False),
]

gate_app = typer.Typer(
    no_args_is_help=True, add_completion=False, help="Judge a run: PASS/WARN/FAIL"
)


def _dumps(data: Any) -> str:
    return json.dumps(nan_to_none(data), indent=2, sort_keys=True, allow_nan=False)


def _intervals_json(series: pd.DataFrame) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    for position, start in enumerate(pd.DatetimeIndex(series.index)):
        row: dict[str, Any] = {"start": start.isoformat()}
        for column in series.columns:
            value = float(series[column].iloc[position])
            row[str(column)] = value if math.isfinite(value) else None
        rows.append(row)
    return rows


def _cell(value: float) -> str:
    return "—" if not math.isfinite(value) else f"{value:,.4g}"


def _kpi_table(report: KpiReport) -> Table:
    table = Table(title=f"KPIs (horizon {report.horizon_ms} ms)")
    table.add_column("kpi")
    table.add_column("total", justify="right")
    for symbol in report.by_symbol:
        table.add_column(symbol, justify="right")
    for name in report.total:
        table.add_row(
            name,
            _cell(report.total[name]),
            *(_cell(kpis[name]) for kpis in report.by_symbol.values()),
        )
    return table


def _series_table(series: pd.DataFrame) -> Table:
    table = Table(title="per interval")
    table.add_column("start")
    for column in series.columns:
        table.add_column(column, justify="right")
    for position, start in enumerate(pd.DatetimeIndex(series.index)):
        values = series.iloc[position].to_numpy(dtype=float)
        table.add_row(start.isoformat(), *(_cell(float(v)) for v in values))
    return table


DEFAULT_PROFILE = "base"  # for a journal whose run.json names none (written by hand)


def recorded_profile(journal: Path) -> str | None:
    """The profile the journal's run used (run.json `profile`); None when it names none.
    An unfinished journal is read too: refusing it is the judging path's job."""
    try:
        value = read_manifest(journal, allow_partial=True).get("profile")
    except JournalError as exc:
        raise fail(str(exc), ExitCode.DATA) from exc
    return str(value) if value else None


def policy_name(journal: Path, profile: str | None) -> str:
    """The name of the profile `policy_for` judges `journal` by (shown in the verdict)."""
    return profile or recorded_profile(journal) or DEFAULT_PROFILE


def policy_for(journal: Path, profile: str | None, overrides: list[str] | None) -> Settings:
    """The settings a command judges `journal` by: `profile` (with a one-line warning when
    it is not the journal's own), else the journal's own profile (DEFAULT_PROFILE, with a
    warning, when run.json names none), then `overrides`."""
    recorded = recorded_profile(journal)
    name = profile if profile is not None else recorded
    if name is None:
        name = DEFAULT_PROFILE
        warn(f"{journal}: run.json names no profile; using {name!r} (pass one with --profile)")
    elif profile is not None and recorded is not None and profile != recorded:
        warn(f"profile {profile!r} given; the journal ran with {recorded!r} (run.json)")
    try:
        return load_settings(name, overrides=tuple(overrides or ()))
    except ConfigError as exc:
        message = str(exc)
        if profile is None and not _loads(name):  # the run's profile itself: say whose
            message = f"the journal's profile {name!r} (run.json): {message}; pass --profile"
        raise fail(message, ExitCode.USAGE) from exc


def _loads(profile: str) -> bool:
    try:
        load_settings(profile)
    except ConfigError:
        return False
    return True


@with_log_options
def kpi_command(
    journal: JournalArg,
    as_json: JsonOpt = False,
    interval: Annotated[
        str | None, typer.Option(help="also print per-interval series, e.g. 1m")
    ] = None,
    profile: JournalProfileOpt = None,
    overrides: SetOpt = None,
    horizon_ms: Annotated[
        int | None,
        typer.Option(help="adverse-selection horizon H; default: the profile's gates.horizon_ms"),
    ] = None,
) -> None:
    """Every KPI of a journal (DESIGN §6), in total and per symbol."""
    if interval is not None:
        try:
            interval_ns(interval)
        except KpiError as exc:
            raise fail(f"--interval: {exc}", ExitCode.USAGE) from exc
    horizon = (
        horizon_ms
        if horizon_ms is not None
        else policy_for(journal, profile, overrides).gates.horizon_ms
    )
    try:
        loaded = load_journal(journal)
        report = compute_kpis(loaded, horizon)
        series = interval_series(loaded, interval, horizon) if interval else None
    except (JournalError, KpiError) as exc:
        raise fail(str(exc), ExitCode.DATA) from exc
    if as_json:
        data = report.to_json_dict()
        if series is not None:
            data["intervals"] = _intervals_json(series)
        typer.echo(_dumps(data))
        return
    console = Console(width=160)
    console.print(_kpi_table(report))
    if series is not None:
        console.print(_series_table(series))


def _verdict_table(verdict: Verdict) -> Table:
    table = Table(title=f"{verdict.gate} gate: {verdict.status.value}")
    for column in ("check", "status", "value", "warn", "fail", "reason"):
        table.add_column(column)
    for check in verdict.checks:
        table.add_row(
            check.name, check.status.value, _cell(math.nan if check.value is None else check.value),
            f"{check.warn:g}" if check.warn is not None else "",
            f"{check.fail:g}" if check.fail is not None else "",
            check.reason,
        )  # fmt: skip
    return table


def _judged(load: Callable[[], Verdict], as_json: bool, name: str) -> NoReturn:
    """Runs a gate, prints its verdict (a table, or JSON) and exits with its code."""
    try:
        verdict = load()
    except (JournalError, KpiError) as exc:
        raise fail(str(exc), ExitCode.DATA) from exc
    except ReadinessError as exc:
        raise fail(str(exc), ExitCode.USAGE) from exc
    if as_json:
        typer.echo(_dumps(verdict.to_dict()))
    else:
        _print_verdicts(verdict, name)
    raise typer.Exit(int(EXIT_OF_STATUS[verdict.status]))


@gate_app.command("kpi")
@with_log_options
def gate_kpi(
    journal: JournalArg,
    profile: JournalProfileOpt = None,
    overrides: SetOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """The KPI stage judged by the profile's policy: exit 0 PASS, 1 FAIL, 2 WARN.

    Usage: mmbot gate kpi JOURNAL [-p POLICY] [--set KEY=VALUE] [--json]
    """
    settings = policy_for(journal, profile, overrides)
    name = policy_name(journal, profile)
    _judged(lambda: kpi_stage(load_journal(journal), settings, profile=name), as_json, "kpi")


@gate_app.command("accuracy")
@with_log_options
def gate_accuracy(
    shadow: Annotated[
        Path,
        typer.Argument(
            metavar="SHADOW", help="the reference: a shadow run's journal", show_default=False
        ),
    ],
    paper: Annotated[
        Path,
        typer.Argument(
            metavar="PAPER",
            help="the judged run: a paper run of the same market",
            show_default=False,
        ),
    ],
    profile: JournalProfileOpt = None,
    overrides: SetOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """The accuracy stage: a paper run against the shadow run of its market.

    MAPE of net_bps, maker_share and fills per gates.accuracy.interval; exit 0 PASS,
    1 FAIL, 2 WARN.

    Usage: mmbot gate accuracy SHADOW PAPER [-p POLICY] [--set KEY=VALUE] [--json]
    (the policy defaults to PAPER's profile)
    """
    settings = policy_for(paper, profile, overrides)
    _judged(
        lambda: accuracy_stage(load_journal(shadow), load_journal(paper), settings),
        as_json,
        "accuracy",
    )


@gate_app.command("canary")
@with_log_options
def gate_canary(
    baseline: Annotated[
        Path,
        typer.Argument(metavar="BASELINE", help="the baseline run's journal", show_default=False),
    ],
    canary: Annotated[
        Path, typer.Argument(metavar="CANARY", help="the canary run's journal", show_default=False)
    ],
    profile: JournalProfileOpt = None,
    overrides: SetOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """The canary stage: the canary run judged against its baseline.

    Mann-Whitney per metric on canary.interval, at least canary.min_intervals
    intervals; exit 0 PASS, 1 FAIL, 2 WARN (MARGINAL).

    Usage: mmbot gate canary BASELINE CANARY [-p POLICY] [--set KEY=VALUE] [--json]
    (the policy defaults to CANARY's profile)
    """
    settings = policy_for(canary, profile, overrides)
    _judged(
        lambda: canary_stage(load_journal(baseline), load_journal(canary), settings),
        as_json,
        "canary",
    )


def readiness_sections(
    journal: Journal, policy: Settings, given: list[str] | None
) -> dict[str, float | None]:
    """The readiness sections: edge, latency and maker share from the journal's KPIs as
    the policy judges them, the others from `NAME=SHARE` strings (a share in [0, 1])."""
    total = judged_kpis(journal, policy).total
    sections: dict[str, float | None] = {name: total.get(kpi) for name, kpi in SECTION_KPI.items()}
    for item in given or ():
        name, sep, value = item.partition("=")
        name = name.strip()
        if not sep or name not in WEIGHTS:
            raise ReadinessError(
                f"--section {item!r}: expected NAME=SHARE, NAME one of "
                f"{', '.join(n for n in WEIGHTS if n not in SECTION_KPI)}"
            )
        if name in SECTION_KPI:
            raise ReadinessError(f"--section {name}: comes from the journal's {SECTION_KPI[name]}")
        try:
            sections[name] = float(value)
        except ValueError as exc:
            raise ReadinessError(f"--section {item!r}: {value!r} is not a number") from exc
    return sections


@gate_app.command("readiness")
@with_log_options
def gate_readiness(
    journal: JournalArg,
    section: Annotated[
        list[str] | None,
        typer.Option(
            "--section",
            metavar="NAME=SHARE",
            help="guards, chaos or tests: the share in [0, 1] that held (repeatable); "
            "a section not given scores 0",
        ),
    ] = None,
    profile: JournalProfileOpt = None,
    overrides: SetOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """The readiness score (0-100) of a journal: READY, HOLD or BLOCK.

    READY (exit 0) at >= gates.readiness_ready, HOLD (2) at >= gates.readiness_hold,
    else BLOCK (1).

    Usage: mmbot gate readiness JOURNAL [--section guards=0.9 ...] [-p POLICY] [--json]
    """
    settings = policy_for(journal, profile, overrides)
    gates = settings.gates

    def judge() -> Verdict:
        sections = readiness_sections(load_journal(journal), settings, section)
        return readiness(
            sections, policy_bounds(settings), gates.readiness_ready, gates.readiness_hold
        )

    _judged(judge, as_json, "readiness")


def _print_verdicts(verdict: Verdict, name: str) -> None:
    console = Console(width=160)
    console.print(_verdict_table(verdict))
    for part in verdict.parts:
        console.print(_verdict_table(part))
    console.print(f"gate {name}: {verdict.status.value}")


def register(app: typer.Typer) -> None:
    """Mount `kpi` and `gate` on a root app (the lead's flows/cli.py may call this)."""
    app.command("kpi")(kpi_command)
    app.add_typer(gate_app, name="gate")


__all__ = ["KPI_NAMES", "gate_app", "kpi_command", "register"]
