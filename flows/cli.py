"""The whole `mmbot` command line, assembled in the outermost shell.

`bot/cli.py` holds the bot's own commands (config, market, run); the judging
and reporting commands come from `gates/` and `reports/`, and the pipeline
commands from here, so that no inner package imports an outer one.

The gates and reports commands are built on first use: their modules import
pandas, scipy, Great Expectations and Jinja2, seconds that `mmbot run` (and
`mmbot run --help`) must not pay.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import typer

# typer >= 0.22 carries its own copy of click: its errors are not click's classes.
from typer._click import exceptions as typer_click
from typer.core import TyperGroup

from bot.cli import app
from bot.cli_common import (
    JsonOpt,
    LogFormatOpt,
    LogLevelOpt,
    ProfileOpt,
    SetOpt,
    apply_logging,
    fail,
    show_click_error,
    with_log_options,
)
from bot.exitcodes import ExitCode
from bot.profiles import ConfigError
from bot.runtime.clock import default_clock
from bot.runtime.telemetry import level_given

DEMO_OUT = Path("artifacts/demo")  # the journal of `mmbot demo` without --out


def _kpi_command() -> Any:
    from gates.cli import kpi_command

    return _built("kpi", lambda holder: holder.command("kpi")(kpi_command))


def _gate_group() -> Any:
    from gates.cli import gate_app

    return _built("gate", lambda holder: holder.add_typer(gate_app, name="gate"))


def _report_command() -> Any:
    from reports.cli import report_command

    return _built("report", lambda holder: holder.command("report")(report_command))


def _built(name: str, register: Callable[[typer.Typer], object]) -> Any:
    """The Click command `name` as Typer builds it inside a root app (named, with help)."""
    holder = typer.Typer(add_completion=False)
    register(holder)
    return typer.main.get_group(holder).commands[name]


# name -> builder, in the order `mmbot --help` lists them after the bot's commands
_LAZY: dict[str, Callable[[], Any]] = {
    "kpi": _kpi_command,
    "gate": _gate_group,
    "report": _report_command,
}


@contextmanager
def _errors_in_our_style() -> Iterator[None]:
    # Click says 2 for a usage error, which is our WARN: a script could not tell a typo
    # from a gate warning. Its errors also print as "Error: ..." where ours are one
    # "error: ..." line. Caught here, on the root group, both hold for every way in: the
    # console script, `app()` and Typer's CliRunner.
    try:
        yield
    except typer_click.NoArgsIsHelpError as exc:  # a bare group: its help, as a usage error
        exc.exit_code = int(ExitCode.USAGE)
        raise
    except typer_click.UsageError as exc:
        show_click_error(exc)
        raise typer.Exit(int(ExitCode.USAGE)) from exc
    except typer_click.ClickException as exc:
        show_click_error(exc)
        raise typer.Exit(int(getattr(exc, "exit_code", ExitCode.FAIL))) from exc


class _RootGroup(TyperGroup):
    """`mmbot`: lazy gates and reports commands; usage errors exit 64, errors in our style."""

    def get_command(self, ctx: Any, cmd_name: str) -> Any:
        build = _LAZY.get(cmd_name)
        if build is not None and cmd_name not in self.commands:
            self.add_command(build(), cmd_name)
        return super().get_command(ctx, cmd_name)

    def list_commands(self, ctx: Any) -> list[str]:
        return [*super().list_commands(ctx), *(n for n in _LAZY if n not in self.commands)]

    def resolve_command(self, ctx: Any, args: list[str]) -> Any:
        try:
            return super().resolve_command(ctx, args)
        except typer_click.UsageError:
            if all(name in self.commands for name in _LAZY):
                raise
            self._build_all(ctx)  # so that a typo is matched against every command
            return super().resolve_command(ctx, args)

    def format_help(self, ctx: Any, formatter: Any) -> None:
        self._build_all(ctx)  # the rich help lists `self.commands`
        super().format_help(ctx, formatter)

    def make_context(self, *args: Any, **kwargs: Any) -> Any:
        with _errors_in_our_style():
            return super().make_context(*args, **kwargs)

    def invoke(self, ctx: Any) -> Any:
        with _errors_in_our_style():
            return super().invoke(ctx)

    def _build_all(self, ctx: Any) -> None:
        for name in _LAZY:
            self.get_command(ctx, name)


@app.callback(cls=_RootGroup)
def root(
    ctx: typer.Context, log_level: LogLevelOpt = None, log_format: LogFormatOpt = None
) -> None:
    """mmbot: market-making rebate bot and its release pipeline. Logs go to stderr."""
    apply_logging(
        ctx,
        level=log_level.value if log_level is not None else None,
        fmt=log_format.value if log_format is not None else None,
    )


class Approve(StrEnum):
    person = "person"
    auto = "auto"


def _release_demo(
    out: Path | None, profile: str, overrides: tuple[str, ...], approve: str, as_json: bool
) -> None:
    from flows.demo import DemoError, run_release_demo
    from reports.publish import BadArtifactUrl, PublishError

    reports_url = out.resolve().as_uri() if out is not None else None
    if not level_given():
        # each stage's run logs its freezes and orders: thousands of lines over a 24 h soak
        # that the stage reports already hold; Prefect's stage lines show the progress
        overrides = (*overrides, "telemetry.log_level=error")
    try:
        result = run_release_demo(out or DEMO_OUT, profile=profile, overrides=overrides,
                                  approve=approve, reports_url=reports_url)  # fmt: skip
    except (ConfigError, BadArtifactUrl, DemoError) as exc:
        raise fail(str(exc), ExitCode.USAGE) from exc
    except PublishError as exc:
        raise fail(str(exc), ExitCode.UNAVAILABLE) from exc
    if as_json:
        payload = {"verdict": result.verdict.to_dict(), "stopped": result.stopped,
                   "approval": result.approval, "reports": list(result.report_urls)}  # fmt: skip
        typer.echo(json.dumps(payload, sort_keys=True, default=str))
        return
    lines = [f"demo: release on profile {profile!r} (synthetic market, simulated venue)"]
    if result.approval == "auto":
        lines.append("  approval: auto (the profile allows it: promote.auto_approve)")
    lines += [
        f"  {stage:<10} {status:<4} {reason}".rstrip() for stage, status, reason in result.stages
    ]
    if result.not_reached:
        lines.append(f"  {'not run':<10} {', '.join(result.not_reached)}")
    if result.promotion:
        lines.append(f"  {'promotion':<10} {result.promotion}")
    stopped = f" (stopped at {result.stopped})" if result.stopped else ""
    if result.promotion.startswith("not promoted"):
        stopped = " (not promoted)"
    lines.append(f"  {'release':<10} {result.verdict.status.value}{stopped}")
    lines += [f"  {'report':<10} {url}" for url in result.report_urls]
    typer.echo("\n".join(lines))


@app.command("demo")
@with_log_options
def demo(
    out: Annotated[
        Path | None,
        typer.Option(
            help="the journal (DIR/journal) and the reports (file://DIR) go here "
            "(default: the journal in artifacts/demo, the reports to storage.artifacts_url)",
            show_default=False,
        ),
    ] = None,
    profile: ProfileOpt = "demo",
    set_: SetOpt = None,
    as_json: JsonOpt = False,
    release: Annotated[
        bool, typer.Option("--release", help="the whole release flow, with a simulated 24 h soak")
    ] = False,
    approve: Annotated[
        Approve, typer.Option(help="--release: who approves (auto: demo profile only)")
    ] = Approve.person,
) -> None:
    """Synthetic market -> paper run -> KPIs -> KPI gate -> report, on embedded defaults;
    with --release the Prefect release flow (shadow, dry-run compare, soak, tuning, canary).

    Exits 0 whatever the gate says: the demo shows a verdict, `mmbot gate kpi` enforces one.
    """
    if release:
        _release_demo(out, profile, tuple(set_ or ()), approve.value, as_json)
        return
    from flows.demo import run_demo  # the pipeline imports pandas, GX, jinja2: pay only here
    from reports.publish import BadArtifactUrl, PublishError

    where = out if out is not None else DEMO_OUT
    reports_url = out.resolve().as_uri() if out is not None else None
    try:
        result = run_demo(
            where, default_clock(), profile=profile, overrides=tuple(set_ or ()),
            reports_url=reports_url,
        )  # fmt: skip
    except (ConfigError, BadArtifactUrl) as exc:
        raise fail(str(exc), ExitCode.USAGE) from exc
    except PublishError as exc:  # the store was checked before the run
        raise fail(str(exc), ExitCode.UNAVAILABLE) from exc
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


# Usage errors map to USAGE (64); NoSuchOption and BadParameter are UsageErrors.
_Caught = tuple[type[BaseException], ...]
_USAGE_ERRORS: _Caught = (typer_click.UsageError,)
_OTHER_ERRORS: _Caught = (typer_click.ClickException,)
_ABORTS: _Caught = (typer.Abort, KeyboardInterrupt)
_EXITS: _Caught = (typer.Exit,)


def _and_clicks(ours: _Caught, name: str) -> _Caught:
    """`ours` and Click's own exception class `name`, if something in the process loaded
    Click: only then can one be raised, and importing Click just to catch them would
    cost every `mmbot` start (typer carries its own copy)."""
    click = sys.modules.get("click")
    return ours if click is None else (*ours, getattr(click.exceptions, name))


def _exit_code(value: object) -> int:
    # Non-standalone Click returns the command's return value, or the code of an Exit.
    return value if isinstance(value, int) and not isinstance(value, bool) else ExitCode.OK


def _show(exc: Exception) -> None:
    if isinstance(exc, typer_click.NoArgsIsHelpError):
        exc.show()  # the group's help
    # A bare `mmbot` has Typer print the help itself, then raise with an empty message.
    elif exc.format_message():  # type: ignore[attr-defined]  # every ClickException has it
        show_click_error(exc)


def main(argv: Sequence[str] | None = None) -> int:
    """The `mmbot` console script: runs the app and returns the process exit code, with
    every exit named in ExitCode (usage errors 64, not Click's 2)."""
    try:
        return _exit_code(app(args=argv, prog_name="mmbot", standalone_mode=False))
    except _and_clicks(_USAGE_ERRORS, "UsageError") as exc:
        _show(exc)
        return int(ExitCode.USAGE)
    except _and_clicks(_OTHER_ERRORS, "ClickException") as exc:
        _show(exc)
        return int(getattr(exc, "exit_code", ExitCode.FAIL))
    except _and_clicks(_ABORTS, "Abort"):
        typer.echo("Aborted!", err=True)
        return int(ExitCode.INTERRUPTED)
    except _and_clicks(_EXITS, "Exit") as exc:
        return _exit_code(exc.exit_code)  # type: ignore[attr-defined]
