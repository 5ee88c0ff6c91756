"""Every `mmbot` command accepts the common options (bot/cli_common.py), and the log
options given on a subcommand work as they do on the root."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import typer
from typer.testing import CliRunner

from bot.exitcodes import ExitCode
from flows.cli import app

COMMON = ("--profile", "--set", "--json", "--log-level", "--log-format")
SHORT = {"--profile": "-p"}
NO_SETTINGS = "reads the file on its own: no setting applies (format, symbol, gaps are options)"
ALWAYS_JSON = "always prints one JSON object"
# command path -> {option: why the command does not take it}
EXEMPT: dict[str, dict[str, str]] = {
    "config validate": {
        "--profile": "the profile files to check are its arguments",
        "--set": "checks profile files as written: an override is no part of a file",
    },
    "config diff": {
        "--profile": "compares the two profiles given as its arguments",
        "--set": "an override would be on both sides of the diff and cancel out",
    },
    "market info": {"--profile": NO_SETTINGS, "--set": NO_SETTINGS},
    "market convert": {"--profile": NO_SETTINGS, "--set": NO_SETTINGS, "--json": ALWAYS_JSON},
    "market synth": {"--json": ALWAYS_JSON},
    "market record": {"--json": ALWAYS_JSON},
    "journal export": {
        "--profile": "exports the rows as the run wrote them: no setting applies",
        "--set": "exports the rows as the run wrote them: no setting applies",
    },
}


def _leaves(group: Any, ctx: Any, path: tuple[str, ...] = ()) -> Iterator[tuple[str, Any]]:
    for name in group.list_commands(ctx):
        command = group.get_command(ctx, name)
        if hasattr(command, "list_commands"):
            yield from _leaves(command, ctx, (*path, name))
        else:
            yield " ".join((*path, name)), command


def _commands() -> dict[str, Any]:
    root = typer.main.get_command(app)
    ctx = root.make_context("mmbot", ["--help"], resilient_parsing=True)
    return dict(_leaves(root, ctx))


COMMANDS = _commands()


def _options(command: Any) -> dict[str, Any]:
    return {opt: param for param in command.params for opt in param.opts}


def test_the_walk_sees_every_command() -> None:
    # a lazily built group (gate) and the bot's own groups are all walked
    seen = {"run", "demo", "kpi", "report", "gate kpi", "gate accuracy", "gate canary",
            "gate readiness", "journal export", "config show", "market synth"}  # fmt: skip
    assert seen <= set(COMMANDS)


def test_exemptions_name_real_commands_and_options() -> None:
    for path, exempt in EXEMPT.items():
        assert path in COMMANDS, path
        assert set(exempt) <= set(COMMON), path
        assert all(why for why in exempt.values())


@pytest.mark.parametrize("path", sorted(COMMANDS))
def test_every_command_takes_the_common_options(path: str) -> None:
    options = _options(COMMANDS[path])
    wanted = [o for o in COMMON if o not in EXEMPT.get(path, {})]
    missing = [o for o in wanted if o not in options]
    assert not missing, f"mmbot {path} lacks {missing}"
    for long, short in SHORT.items():
        if long in wanted:
            assert short in options[long].opts, f"mmbot {path} {long} has no {short}"
    for exempted in EXEMPT.get(path, {}):
        assert exempted not in options, f"mmbot {path} takes {exempted}: drop the exemption"


@pytest.mark.parametrize("path", sorted(COMMANDS))
def test_log_options_read_the_roots_environment_variables(path: str) -> None:
    root = typer.main.get_command(app)
    root_options = _options(root)
    options = _options(COMMANDS[path])
    for name in ("--log-level", "--log-format"):
        assert options[name].envvar == root_options[name].envvar, (path, name)
        assert options[name].envvar is not None


# --- the log options at work -----------------------------------------------------------

runner = CliRunner()


def _market_open_logged(args: list[str], env: dict[str, str] | None = None) -> bool:
    result = runner.invoke(app, args, env=env)
    assert result.exit_code == ExitCode.OK, result.output
    return "market_open" in result.stderr


def test_a_subcommands_log_level_works_like_the_roots(bybit_ob500: Path) -> None:
    info = ["market", "info", str(bybit_ob500), "--json"]  # logs market_open at info
    assert _market_open_logged(info)
    assert not _market_open_logged([*info, "--log-level", "warning"])
    assert not _market_open_logged(["--log-level", "warning", *info])
    # the last one given wins; the environment is below any option given
    assert _market_open_logged(["--log-level", "warning", *info, "--log-level", "info"])
    assert not _market_open_logged(info, env={"MMBOT_LOG_LEVEL": "warning"})
    assert _market_open_logged([*info, "--log-level", "info"], env={"MMBOT_LOG_LEVEL": "warning"})


def test_a_subcommands_log_format_works_like_the_roots(bybit_ob500: Path) -> None:
    args = ["market", "info", str(bybit_ob500), "--json", "--log-format", "json"]
    result = runner.invoke(app, args)
    assert result.exit_code == ExitCode.OK, result.output
    line = next(x for x in result.stderr.splitlines() if "market_open" in x)
    assert json.loads(line)["event"] == "market_open"


def test_a_bad_log_option_on_a_subcommand_is_a_usage_error() -> None:
    result = runner.invoke(app, ["config", "show", "--log-format", "xml"])
    assert result.exit_code == ExitCode.USAGE
    assert result.stderr.startswith("error: invalid value for '--log-format'")
