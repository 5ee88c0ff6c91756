"""What every `mmbot` command shares: its common options and one style of error line.

Common options (DESIGN §7 precedence: the profile, then `--set`):

- `-p/--profile`: a profile name or a YAML path;
- `--set KEY=VALUE`: override one setting (the value is YAML), repeatable;
- `--json`: data as JSON on stdout;
- `--log-level`, `--log-format`: accepted on the root (`mmbot --log-level debug run`) and
  on every subcommand (`mmbot run --log-level debug`), with the same environment variables
  (MMBOT_LOG_LEVEL, MMBOT_LOG_FORMAT). `with_log_options` adds the last two to a command.

Errors: every message a command prints for the user is one stderr line
``error: <what is wrong, and where>``, the same prefix and layout as Click's own usage
errors, which `show_click_error` rewrites (with Click's usage hint below the line).
A warning is one ``warning: ...`` line.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from enum import StrEnum
from typing import Annotated, Any, Final, TypeVar, cast

import typer

from bot.exitcodes import ExitCode

ERROR_PREFIX: Final = "error: "
WARNING_PREFIX: Final = "warning: "


# The choices of configure_logging (bot/runtime/telemetry.py), as Click choices so that
# a bad value is a usage error listing them.
class LogLevel(StrEnum):
    debug = "debug"
    info = "info"
    warning = "warning"
    error = "error"


class LogFormatChoice(StrEnum):
    auto = "auto"
    json = "json"
    console = "console"


ProfileOpt = Annotated[
    str, typer.Option("--profile", "-p", help="profile name (profiles/<name>.yaml) or YAML path")
]
JournalProfileOpt = Annotated[
    str | None,
    typer.Option(
        "--profile",
        "-p",
        help="profile name or YAML path (default: the journal's own, from run.json)",
        show_default=False,
    ),
]
SetOpt = Annotated[
    list[str] | None,
    typer.Option("--set", metavar="KEY=VALUE", help="override one setting; value is YAML"),
]
JsonOpt = Annotated[bool, typer.Option("--json", help="JSON on stdout instead of text")]

_LOG_KEY: Final = "mmbot.log"  # Click context meta: what the command line said so far


def fail(message: str, code: int = ExitCode.USAGE) -> typer.Exit:
    """Prints `error: message` on stderr; returns the Exit to raise with `code`."""
    typer.echo(f"{ERROR_PREFIX}{message}", err=True)
    return typer.Exit(int(code))


def warn(message: str) -> None:
    typer.echo(f"{WARNING_PREFIX}{message}", err=True)


def _sentence(message: str) -> str:
    # Click says "Missing argument 'JOURNAL'."; our lines start lower case, with no stop
    text = message.strip().rstrip(".")
    return text[:1].lower() + text[1:]


def show_click_error(exc: Any) -> None:
    """A Click error (usage or other) in our layout: the `error:` line, then Click's usage
    line and its `--help` hint when it has a command context."""
    lines = [f"{ERROR_PREFIX}{_sentence(exc.format_message())}"]
    ctx = getattr(exc, "ctx", None)
    if ctx is not None:
        lines.append(ctx.get_usage())
        if ctx.command.get_help_option(ctx) is not None:
            lines.append(f"Try '{ctx.command_path} {ctx.help_option_names[0]}' for help.")
    typer.echo("\n".join(lines), err=True)


def apply_logging(ctx: Any, *, level: str | None = None, fmt: str | None = None) -> None:
    """Logging as the command line says: the root's options, then a subcommand's (the
    last one given wins); the profile's telemetry settings apply where neither did."""
    from bot.runtime.telemetry import LogFormat, configure_logging, prefer

    given: dict[str, str] = ctx.find_root().meta.setdefault(_LOG_KEY, {})
    given.update({k: v for k, v in (("level", level), ("fmt", fmt)) if v is not None})
    configure_logging(cast(LogFormat, given.get("fmt", "auto")), given.get("level", "info"))
    prefer(given.get("fmt"), given.get("level"))


def _from_command_line(ctx: Any, param: Any) -> bool:
    # The root option already read the environment variable; a subcommand's copy of it
    # must not undo a root option given on the command line.
    source = ctx.get_parameter_source(param.name)
    return source is not None and source.name == "COMMANDLINE"


def _level_given(ctx: Any, param: Any, value: LogLevel | None) -> LogLevel | None:
    if value is not None and _from_command_line(ctx, param):
        apply_logging(ctx, level=value.value)
    return value


def _format_given(ctx: Any, param: Any, value: LogFormatChoice | None) -> LogFormatChoice | None:
    if value is not None and _from_command_line(ctx, param):
        apply_logging(ctx, fmt=value.value)
    return value


LogLevelOpt = Annotated[
    LogLevel | None,
    typer.Option(
        "--log-level",
        envvar="MMBOT_LOG_LEVEL",
        case_sensitive=False,
        callback=_level_given,
        help="log level of the stderr log (default: the profile's telemetry.log_level)",
    ),
]
LogFormatOpt = Annotated[
    LogFormatChoice | None,
    typer.Option(
        "--log-format",
        envvar="MMBOT_LOG_FORMAT",
        case_sensitive=False,
        callback=_format_given,
        help="stderr log as JSON lines or console text; auto: console on a terminal",
    ),
]

F = TypeVar("F", bound=Callable[..., Any])
_LOG_PARAMS: Final = ("log_level", "log_format")


def with_log_options(command: F) -> F:
    """`command` with `--log-level` and `--log-format` added to its signature; their
    callbacks configure logging as they are parsed, so the command never sees them."""

    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        for name in _LOG_PARAMS:
            kwargs.pop(name, None)
        return command(*args, **kwargs)

    signature = inspect.signature(command, eval_str=True)
    extra = [
        inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=None, annotation=hint)
        for name, hint in zip(_LOG_PARAMS, (LogLevelOpt, LogFormatOpt), strict=True)
    ]
    params = [p.replace(kind=inspect.Parameter.KEYWORD_ONLY) for p in signature.parameters.values()]
    wrapper.__signature__ = signature.replace(parameters=[*params, *extra])  # type: ignore[attr-defined]
    wrapper.__annotations__ = {
        **{p.name: p.annotation for p in params},
        "log_level": LogLevelOpt,
        "log_format": LogFormatOpt,
        "return": signature.return_annotation,
    }
    return cast(F, wrapper)
