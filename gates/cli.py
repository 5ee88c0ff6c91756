"""`mmbot kpi` and `mmbot gate kpi`: thin commands over gates.kpi and gates.stage.

stdout is data (a rich table, or JSON with `--json`), diagnostics go to stderr.
The JSON of `mmbot kpi --json` is a stable interface:
``{"total": {KPI: value}, "by_symbol": {SYMBOL: {KPI: value}}}`` plus, with
`--interval`, ``"intervals": [{"start": ISO-8601, COLUMN: value, ...}]``; NaN is
null, keys are sorted. `mmbot kpi` takes its horizon H from the profile's
`gates.horizon_ms` (as `mmbot gate kpi` does); `--horizon-ms` overrides it.

`mmbot gate kpi` prints the KPI stage's verdict (`gates.stage.kpi_stage`): the
profile is the release policy (bounds, fee tier, inventory limit), the journal
is evidence, and the journal's fills and orders quality suites are the
verdict's `parts`. Its JSON is `Verdict.to_dict()`. Exit 0 on PASS, 1 on FAIL,
2 on WARN; a check the run's mode cannot measure shows N/A and counts for
neither. A bad `--interval` is a usage error (64), found before any journal is read.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Annotated, Any

import pandas as pd
import typer
from rich.console import Console
from rich.table import Table

from bot.config import Settings
from bot.exitcodes import ExitCode
from bot.journal import JournalError
from bot.profiles import ConfigError, load_settings
from gates.kpi import (
    KPI_NAMES,
    KpiError,
    KpiReport,
    compute_kpis,
    interval_ns,
    interval_series,
    load_journal,
    nan_to_none,
)
from gates.stage import kpi_stage
from gates.verdict import Status, Verdict

# A verdict's status is never N/A (Status.overall): only its checks can be
EXIT_OF_STATUS = {Status.PASS: ExitCode.OK, Status.FAIL: ExitCode.FAIL, Status.WARN: ExitCode.WARN}

JournalArg = Annotated[
    Path, typer.Argument(help="journal directory (with run.json)", show_default=False)
]
JsonOpt = Annotated[bool, typer.Option("--json", help="JSON on stdout instead of a table")]
ProfileOpt = Annotated[
    str, typer.Option(help="profile name or YAML path (gates settings: bounds, horizon)")
]

gate_app = typer.Typer(
    no_args_is_help=True, add_completion=False, help="Judge a run: PASS/WARN/FAIL"
)


def _fail(message: str, code: ExitCode) -> typer.Exit:
    typer.echo(f"error: {message}", err=True)
    return typer.Exit(int(code))


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


def _settings(profile: str, overrides: list[str] | None = None) -> Settings:
    try:
        return load_settings(profile, overrides=tuple(overrides or ()))
    except ConfigError as exc:
        raise _fail(str(exc), ExitCode.USAGE) from exc


def kpi_command(
    journal: JournalArg,
    as_json: JsonOpt = False,
    interval: Annotated[
        str | None, typer.Option(help="also print per-interval series, e.g. 1m")
    ] = None,
    profile: ProfileOpt = "base",
    horizon_ms: Annotated[
        int | None,
        typer.Option(help="adverse-selection horizon H; default: the profile's gates.horizon_ms"),
    ] = None,
) -> None:
    """Every KPI of a journal (DESIGN §6), in total and per symbol."""
    horizon = horizon_ms if horizon_ms is not None else _settings(profile).gates.horizon_ms
    if interval is not None:
        try:
            interval_ns(interval)
        except KpiError as exc:
            raise _fail(f"--interval: {exc}", ExitCode.USAGE) from exc
    try:
        loaded = load_journal(journal)
        report = compute_kpis(loaded, horizon)
        series = interval_series(loaded, interval, horizon) if interval else None
    except (JournalError, KpiError) as exc:
        raise _fail(str(exc), ExitCode.DATA) from exc
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


@gate_app.command("kpi")
def gate_kpi(
    journal: JournalArg,
    profile: ProfileOpt = "base",
    overrides: Annotated[
        list[str] | None, typer.Option("--set", help="override a setting: gates.kpi.net_bps.warn=3")
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """The KPI stage judged by the profile's policy: exit 0 PASS, 1 FAIL, 2 WARN."""
    settings = _settings(profile, overrides)
    try:
        verdict = kpi_stage(load_journal(journal), settings, profile=profile)
    except (JournalError, KpiError) as exc:
        raise _fail(str(exc), ExitCode.DATA) from exc
    if as_json:
        typer.echo(_dumps(verdict.to_dict()))
    else:
        _print_verdicts(verdict)
    raise typer.Exit(int(EXIT_OF_STATUS[verdict.status]))


def _print_verdicts(verdict: Verdict) -> None:
    console = Console(width=160)
    console.print(_verdict_table(verdict))
    for part in verdict.parts:
        console.print(_verdict_table(part))
    console.print(f"gate kpi: {verdict.status.value}")


def register(app: typer.Typer) -> None:
    """Mount `kpi` and `gate` on a root app (the lead's flows/cli.py may call this)."""
    app.command("kpi")(kpi_command)
    app.add_typer(gate_app, name="gate")


__all__ = ["KPI_NAMES", "gate_app", "kpi_command", "register"]
