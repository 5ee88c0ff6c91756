"""`mmbot config show | validate | diff`: look at settings and where they came from.

Data goes to stdout, diagnostics to stderr; a bad setting exits with USAGE (64).
The renderers are plain functions; the commands only call them and echo.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer

from bot.cli_common import ERROR_PREFIX, JsonOpt, ProfileOpt, SetOpt, with_log_options
from bot.exitcodes import ExitCode
from bot.profiles import (
    Change,
    ConfigError,
    Resolved,
    diff,
    redacted_dict,
    redacted_leaves,
    resolve,
)

config_app = typer.Typer(no_args_is_help=True, help="Settings: show, validate, diff profiles")


def _json(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False)


def render_show(resolved: Resolved, *, sources: bool = False, as_json: bool = False) -> str:
    """Every setting, secrets masked; with `sources`, the layer that set each one."""
    if as_json and not sources:
        return json.dumps(redacted_dict(resolved.settings), indent=2, ensure_ascii=False)
    leaves = redacted_leaves(resolved.settings)
    if as_json:
        table = {
            key: {"value": value, "source": resolved.sources[key]} for key, value in leaves.items()
        }
        return json.dumps(table, indent=2, ensure_ascii=False)
    width = max(map(len, leaves))
    lines = []
    for key, value in leaves.items():
        line = f"{key:<{width}} = {_json(value)}"
        lines.append(f"{line}  # {resolved.sources[key]}" if sources else line)
    return "\n".join(lines)


def render_diff(changes: Sequence[Change], *, as_json: bool = False) -> str:
    if as_json:
        rows = [
            {
                "key": c.key,
                "old": c.old,
                "new": c.new,
                "old_source": c.old_source,
                "new_source": c.new_source,
            }
            for c in changes
        ]
        return json.dumps(rows, indent=2, ensure_ascii=False)
    return "\n".join(
        f"{c.key}: {_json(c.old)} ({c.old_source}) -> {_json(c.new)} ({c.new_source})"
        for c in changes
    )


def validate_profiles(files: Iterable[str | Path]) -> dict[str, tuple[ConfigError, ...]]:
    """Each file resolved as a profile on its own (no env, no --set): file -> errors."""
    report: dict[str, tuple[ConfigError, ...]] = {}
    for file in files:
        try:
            resolve(Path(file), env={})
        except ConfigError as exc:
            report[str(file)] = exc.all()
        else:
            report[str(file)] = ()
    return report


def _fail(exc: ConfigError) -> NoReturn:
    for error in exc.all():
        typer.echo(f"{ERROR_PREFIX}{error.describe()}", err=True)
    raise typer.Exit(ExitCode.USAGE)


@config_app.command("show")
@with_log_options
def show(
    profile: ProfileOpt = "base",
    sources: Annotated[
        bool, typer.Option("--sources", help="print where each value came from")
    ] = False,
    as_json: JsonOpt = False,
    overrides: SetOpt = None,
) -> None:
    """Print the resolved settings (defaults -> profile -> MMBOT_ env -> --set)."""
    try:
        resolved = resolve(profile, overrides or ())
    except ConfigError as exc:
        _fail(exc)
    typer.echo(render_show(resolved, sources=sources, as_json=as_json))


@config_app.command("validate")
@with_log_options
def validate(
    files: Annotated[list[Path], typer.Argument(help="profile YAML files", show_default=False)],
    as_json: Annotated[
        bool, typer.Option("--json", help='{"file": ["error", ...]} on stdout instead of text')
    ] = False,
) -> None:
    """Check profile files: unknown keys, types, ranges, consistency."""
    report = validate_profiles(files)
    if as_json:
        payload = {f: [e.describe() for e in errors] for f, errors in report.items()}
        typer.echo(json.dumps(payload, indent=2, ensure_ascii=False))
    for file, errors in report.items():
        for error in errors:
            typer.echo(f"{ERROR_PREFIX}{error.describe()}", err=True)
        if not errors and not as_json:
            typer.echo(f"ok {file}")
    if any(report.values()):
        raise typer.Exit(ExitCode.USAGE)


@config_app.command("diff")
@with_log_options
def diff_command(
    a: Annotated[str, typer.Argument(help="profile name or YAML path")],
    b: Annotated[str, typer.Argument(help="profile name or YAML path")],
    as_json: JsonOpt = False,
    with_env: Annotated[
        bool, typer.Option("--env", help="apply MMBOT_ environment variables to both sides")
    ] = False,
) -> None:
    """Show the settings that differ between two profiles, with both sources."""
    env: dict[str, str] | None = None if with_env else {}
    try:
        changes = diff(resolve(a, env=env), resolve(b, env=env))
    except ConfigError as exc:
        _fail(exc)
    if not changes and not as_json:
        typer.echo(f"no differences between {a} and {b}", err=True)
        return
    typer.echo(render_diff(changes, as_json=as_json))
