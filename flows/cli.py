"""The whole `mmbot` command line, assembled in the outermost shell.

`bot/cli.py` holds the bot's own commands (config, market, run); the judging
and reporting commands come from `gates/` and `reports/`, and the pipeline
commands from here, so that no inner package imports an outer one.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Annotated, cast

import click
import typer

# typer >= 0.22 carries its own copy of click: its errors are not click's classes.
from typer._click import exceptions as typer_click

from bot.cli import app
from bot.exitcodes import ExitCode
from bot.profiles import ConfigError
from bot.runtime.clock import default_clock
from bot.runtime.telemetry import LogFormat, configure_logging, prefer
from gates.cli import register as register_gates
from reports.cli import report_command

register_gates(app)
app.command("report")(report_command)


@app.callback()
def root(
    log_level: Annotated[
        str | None, typer.Option(envvar="MMBOT_LOG_LEVEL", help="debug, info, warning or error")
    ] = None,
    log_format: Annotated[
        str | None, typer.Option(envvar="MMBOT_LOG_FORMAT", help="auto, json or console")
    ] = None,
) -> None:
    """mmbot: market-making rebate bot and its release pipeline. Logs go to stderr."""
    try:
        configure_logging(cast(LogFormat, log_format or "auto"), log_level or "info")
    except ValueError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(ExitCode.USAGE) from exc
    prefer(log_format, log_level)


@app.command("demo")
def demo(
    out: Annotated[Path, typer.Option(help="where the journal goes")] = Path("artifacts/demo"),
    profile: Annotated[str, typer.Option(help="profile name or YAML path")] = "demo",
    set_: Annotated[list[str] | None, typer.Option("--set", help="key=value override")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="result as JSON on stdout")] = False,
) -> None:
    """Synthetic market -> paper run -> KPIs -> KPI gate -> report, on embedded defaults.

    Exits 0 whatever the gate says: the demo shows a verdict, `mmbot gate kpi` enforces one.
    """
    from flows.demo import run_demo  # the pipeline imports pandas, GX, jinja2: pay only here
    from reports.publish import BadArtifactUrl, PublishError

    try:
        result = run_demo(out, default_clock(), profile=profile, overrides=tuple(set_ or ()))
    except (ConfigError, BadArtifactUrl) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(ExitCode.USAGE) from exc
    except PublishError as exc:  # the store was checked before the run
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(ExitCode.UNAVAILABLE) from exc
    total = result.kpis.total
    if as_json:
        payload = {
            "run_id": result.run.run_id, "journal": str(result.run.out_dir),
            "verdict": result.verdict.to_dict(), "reports": list(result.report_urls),
        }  # fmt: skip
        typer.echo(json.dumps(payload, sort_keys=True, default=str))
    else:
        typer.echo(
            f"demo: paper run {result.run.run_id} on profile {profile!r} "
            f"(synthetic market, simulated venue)\n"
            f"  journal  {result.run.out_dir}\n"
            f"  fills {total.get('fills', 0):.0f}  net {total.get('net_bps', float('nan')):.2f} bps"
            f"  maker share {total.get('maker_share', float('nan')):.3f}"
            f"  pnl {total.get('pnl_usd', float('nan')):.2f} USD\n"
            f"  KPI gate {result.verdict.status.value}"
            + "".join(f"\n    - {reason}" for reason in result.verdict.reasons)
            + "".join(f"\n  report   {url}" for url in result.report_urls)
        )


# Click says 2 for a usage error, which is our WARN: a script could not tell a typo from
# a gate warning. These map to USAGE (64); NoSuchOption and BadParameter are UsageErrors.
_USAGE_ERRORS: tuple[type[Exception], ...] = (typer_click.UsageError, click.exceptions.UsageError)
_OTHER_ERRORS: tuple[type[Exception], ...] = (
    typer_click.ClickException,
    click.exceptions.ClickException,
)
_ABORTS: tuple[type[BaseException], ...] = (
    typer.Abort,
    click.exceptions.Abort,
    KeyboardInterrupt,
)
_EXITS: tuple[type[Exception], ...] = (typer.Exit, click.exceptions.Exit)


def _exit_code(value: object) -> int:
    # Non-standalone Click returns the command's return value, or the code of an Exit.
    return value if isinstance(value, int) and not isinstance(value, bool) else ExitCode.OK


def _show(exc: Exception) -> None:
    # A bare `mmbot` has Typer print the help itself, then raise with an empty message.
    if exc.format_message():  # type: ignore[attr-defined]  # every ClickException has it
        exc.show()  # type: ignore[attr-defined]


def main(argv: Sequence[str] | None = None) -> int:
    """The `mmbot` console script: runs the app and returns the process exit code, with
    every exit named in ExitCode (usage errors 64, not Click's 2)."""
    try:
        return _exit_code(app(args=argv, prog_name="mmbot", standalone_mode=False))
    except _USAGE_ERRORS as exc:
        _show(exc)
        return int(ExitCode.USAGE)
    except _OTHER_ERRORS as exc:
        _show(exc)
        return int(getattr(exc, "exit_code", ExitCode.FAIL))
    except _ABORTS:
        typer.echo("Aborted!", err=True)
        return int(ExitCode.INTERRUPTED)
    except _EXITS as exc:
        return _exit_code(exc.exit_code)  # type: ignore[attr-defined]
