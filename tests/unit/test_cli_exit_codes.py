"""The installed `mmbot` script: every exit is a named ExitCode, usage errors are 64.

Run as a subprocess of the console script itself, so the entry point in
pyproject.toml is what is tested, not the Typer app behind it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from bot.exitcodes import ExitCode
from flows.cli import main
from tests.unit import gates_helpers as h

MMBOT = Path(sys.executable).parent / "mmbot"
# A policy of the hand journal's own fee tier and size limit, the bounds it fails
# removed and a fill-count floor it WARNs on (a few fills, never 1000). `--set
# gates.kpi={...}` merges into the profile's bounds, so the others are named here.
WARNING = [
    "--set", "fees.tiers.hand={maker_bps: -1.0, taker_bps: 3.0}", "--set", "fees.tier=hand",
    "--set", "risk.max_order_qty=2",
    "--set", "gates.kpi={maker_share: null, adverse_p95_bps: null, quote_uptime: null, "
    "net_bps: {warn: 0, fail: -100, direction: min}, "
    "fills: {warn: 1000, fail: 0, direction: min}}",
]  # fmt: skip


def mmbot(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MMBOT_")}
    return subprocess.run(
        [str(MMBOT), *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=120
    )


@pytest.fixture(scope="module")
def journal(tmp_path_factory: pytest.TempPathFactory) -> Path:
    # the gates' clean hand journal: its quality suites pass, so only the KPIs judge
    return h.write_journal(tmp_path_factory.mktemp("exit") / "run-7", orders=h.CLEAN_ORDERS)


def test_the_console_script_is_flows_script_main() -> None:
    # flows.script.main runs flows.cli.main (its imports with the GC paused)
    assert MMBOT.is_file()
    assert "from flows.script import main" in MMBOT.read_text()


@pytest.mark.parametrize(
    "args",
    [
        ["config", "show", "--sourcez"],  # mistyped option
        ["gate", "kpi"],  # missing argument
    ],
)
def test_usage_errors_exit_64_with_the_reason_on_stderr(args: list[str], tmp_path: Path) -> None:
    done = mmbot(*args, cwd=tmp_path)
    assert done.returncode == ExitCode.USAGE == 64, done.stderr
    first, usage, hint = done.stderr.splitlines()  # our one error line, then Click's hint
    assert first.startswith("error: ") and usage.startswith("Usage: mmbot ")
    assert hint.startswith("Try 'mmbot ") and hint.endswith(" --help' for help.")
    assert done.stdout == ""


@pytest.mark.parametrize(
    "args",
    [
        ["--no-such-flag"],  # on the root
        ["config", "show", "--profile"],  # an option without its value
        ["no-such-command"],
        ["kpi", "journal-dir", "--interval"],
        ["run", "--out", "x", "--synth", "not-a-number"],  # BadParameter
    ],
)
def test_every_usage_error_maps_to_64(args: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    assert main(args) == ExitCode.USAGE
    assert capsys.readouterr().err.startswith("error: ")


def test_help_exits_0(tmp_path: Path) -> None:
    done = mmbot("--help", cwd=tmp_path)
    assert done.returncode == ExitCode.OK
    assert "gate" in done.stdout


def test_a_warn_verdict_still_exits_2(journal: Path, tmp_path: Path) -> None:
    done = mmbot("gate", "kpi", str(journal), "--json", *WARNING, cwd=tmp_path)
    assert done.returncode == ExitCode.WARN == 2, done.stderr
    assert json.loads(done.stdout)["status"] == "WARN"


def test_a_fail_verdict_exits_1(journal: Path) -> None:
    assert main(["gate", "kpi", str(journal)]) == ExitCode.FAIL


def test_a_command_error_keeps_its_own_code(capsys: pytest.CaptureFixture[str]) -> None:
    # typer.Exit(64) from inside a command (bad profile) is passed through as is
    assert main(["config", "show", "--profile", "nope-xyz"]) == ExitCode.USAGE
    assert "nope-xyz" in capsys.readouterr().err


def test_main_returns_codes_without_exiting(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--help"]) == ExitCode.OK
    assert main([]) == ExitCode.USAGE  # bare `mmbot`: the help, as a usage error
    assert "Usage: mmbot" in capsys.readouterr().out


def test_ctrl_c_exits_130(monkeypatch: pytest.MonkeyPatch) -> None:
    # A real SIGINT would race the interpreter's start-up; a command that raises
    # KeyboardInterrupt is what the handler sees either way.
    import bot.config_cli

    def interrupted(*_: object, **__: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(bot.config_cli, "resolve", interrupted)
    assert main(["config", "show"]) == ExitCode.INTERRUPTED == 130


@pytest.mark.parametrize(
    "args",
    [
        ["run"],  # missing --out
        ["run", "--out", "x", "--bogus"],  # unknown option
        ["market", "info"],  # missing argument
        ["--log-format", "xml", "run", "--help"],  # not one of the choices
    ],
)
def test_usage_errors_are_64_through_typers_runner_too(args: list[str]) -> None:
    # the code is set on the root group, so `app()` and CliRunner see 64 as well as main()
    from typer.testing import CliRunner

    from flows.cli import app

    result = CliRunner().invoke(app, args)
    assert result.exit_code == ExitCode.USAGE, result.output
    assert result.stderr.startswith("error: ") and "\nUsage: " in result.stderr
