"""`mmbot config show | validate | diff` through Typer's CliRunner."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from typer.testing import CliRunner

from bot.cli import app
from bot.config import SECRET_MASK
from bot.exitcodes import ExitCode
from bot.profiles import PACKAGED_PROFILES

SECRET = "s3cr3t-DO-NOT-PRINT-7f41"  # pragma: allowlist secret


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner()


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith("MMBOT_"):
            monkeypatch.delenv(name)


@pytest.fixture
def here(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, clean_env: None) -> Path:
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_show_sources_text(runner: CliRunner, here: Path) -> None:
    result = runner.invoke(
        app, ["config", "show", "--profile", "live", "--sources", "--set", "run.seed=3"]
    )
    assert result.exit_code == ExitCode.OK, result.output
    lines = {line.split()[0]: line for line in result.stdout.splitlines()}
    assert lines["mode"].endswith(f"# profile:{PACKAGED_PROFILES / 'live.yaml'}")
    assert '"live"' in lines["mode"]
    assert lines["run.seed"].endswith("# cli:--set run.seed=3")
    assert lines["risk.max_open_orders"].split("=")[1].split("#")[0].strip() == "10"
    assert lines["strategy.levels"].endswith("# default")


def test_show_json_with_sources(
    runner: CliRunner, here: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MMBOT_RISK__MAX_INVENTORY_USD", "5000")
    result = runner.invoke(app, ["config", "show", "-p", "demo", "--sources", "--json"])
    assert result.exit_code == ExitCode.OK, result.output
    table = json.loads(result.stdout)
    assert table["risk.max_inventory_usd"] == {
        "value": 5000.0,
        "source": "env:MMBOT_RISK__MAX_INVENTORY_USD",
    }
    assert table["run.duration"]["value"] == "30m"


def test_show_json_is_the_nested_tree(runner: CliRunner, here: Path) -> None:
    result = runner.invoke(app, ["config", "show", "-p", "demo", "--json"])
    assert result.exit_code == ExitCode.OK
    tree = json.loads(result.stdout)
    assert tree["mode"] == "paper" and tree["run"]["seed"] == 7


@pytest.mark.parametrize("flags", [[], ["--sources"], ["--json"], ["--json", "--sources"]])
def test_show_never_prints_a_secret(
    runner: CliRunner, here: Path, monkeypatch: pytest.MonkeyPatch, flags: list[str]
) -> None:
    monkeypatch.setenv("MMBOT_SECRETS__API_SECRET", SECRET)
    monkeypatch.setenv("MMBOT_REDIS_URL", f"redis://bot:{SECRET}@localhost:6379/0")
    result = runner.invoke(
        app, ["config", "show", "-p", "canary", "--set", f"secrets.api_key={SECRET}", *flags]
    )
    assert result.exit_code == ExitCode.OK, result.output
    assert SECRET not in result.output
    assert SECRET_MASK in result.stdout


def test_show_error_goes_to_stderr_with_usage_exit(runner: CliRunner, here: Path) -> None:
    result = runner.invoke(app, ["config", "show", "--set", "strategy.min_edge_bp=1"])
    assert result.exit_code == ExitCode.USAGE
    assert result.stdout == ""
    assert "did you mean 'strategy.min_edge_bps'?" in result.stderr


def test_validate_all_shipped(runner: CliRunner, here: Path) -> None:
    files = sorted(str(p) for p in PACKAGED_PROFILES.glob("*.yaml"))
    assert len(files) >= 6
    result = runner.invoke(app, ["config", "validate", *files])
    assert result.exit_code == ExitCode.OK, result.output
    assert result.stdout.count("ok ") == len(files)


def test_validate_reports_each_bad_file(runner: CliRunner, here: Path) -> None:
    good = here / "good.yaml"
    good.write_text("extends: base\nrun:\n  seed: 3\n", encoding="utf-8")
    typo = here / "typo.yaml"
    typo.write_text("extends: base\nrisk:\n  max_inventry_usd: 1\n", encoding="utf-8")
    broken = here / "broken.yaml"
    broken.write_text("risk: [\n", encoding="utf-8")
    result = runner.invoke(app, ["config", "validate", str(good), str(typo), str(broken)])
    assert result.exit_code == ExitCode.USAGE
    assert result.stdout.strip() == f"ok {good}"
    assert "typo.yaml:3: unknown key 'risk.max_inventry_usd'" in result.stderr
    assert "broken.yaml" in result.stderr and "malformed YAML" in result.stderr


def test_validate_json_lists_each_files_errors(runner: CliRunner, here: Path) -> None:
    good = here / "good.yaml"
    good.write_text("extends: base\n", encoding="utf-8")
    typo = here / "typo.yaml"
    typo.write_text("extends: base\nrisk:\n  max_inventry_usd: 1\n", encoding="utf-8")
    result = runner.invoke(app, ["config", "validate", str(good), str(typo), "--json"])
    assert result.exit_code == ExitCode.USAGE
    report = json.loads(result.stdout)
    assert report[str(good)] == []
    assert len(report[str(typo)]) == 1 and "max_inventry_usd" in report[str(typo)][0]
    assert f"error: {report[str(typo)][0]}" in result.stderr  # stderr says it too
    clean = runner.invoke(app, ["config", "validate", str(good), "--json"])
    assert (clean.exit_code, json.loads(clean.stdout)) == (ExitCode.OK, {str(good): []})


def test_validate_ignores_the_environment(
    runner: CliRunner, here: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MMBOT_RISK__MAX_INVENTORY_USD", "-1")
    result = runner.invoke(app, ["config", "validate", str(PACKAGED_PROFILES / "base.yaml")])
    assert result.exit_code == ExitCode.OK, result.output


def test_diff_shows_both_sources(runner: CliRunner, here: Path) -> None:
    result = runner.invoke(app, ["config", "diff", "base", "live"])
    assert result.exit_code == ExitCode.OK, result.output
    lines = {line.split(":")[0]: line for line in result.stdout.splitlines()}
    assert lines["mode"] == (
        f'mode: "paper" (profile:{PACKAGED_PROFILES / "base.yaml"}) -> '
        f'"live" (profile:{PACKAGED_PROFILES / "live.yaml"})'
    )
    assert "(default) -> 10000.0" in lines["risk.max_inventory_usd"]
    assert "strategy.levels" not in lines


def test_diff_json_and_no_difference(runner: CliRunner, here: Path) -> None:
    result = runner.invoke(app, ["config", "diff", "demo", "demo", "--json"])
    assert result.exit_code == ExitCode.OK and json.loads(result.stdout) == []
    result = runner.invoke(app, ["config", "diff", "demo", "demo"])
    assert result.stdout == "" and "no differences" in result.stderr
    result = runner.invoke(app, ["config", "diff", "base", "canary", "--json"])
    rows = {row["key"]: row for row in json.loads(result.stdout)}
    assert "canary.fraction" not in rows  # the profile restates the default 0.05
    assert (rows["mode"]["old"], rows["mode"]["new"]) == ("paper", "canary")
    assert rows["secrets.provider"]["new_source"].endswith("canary.yaml")


def test_diff_of_a_missing_profile_is_usage(runner: CliRunner, here: Path) -> None:
    result = runner.invoke(app, ["config", "diff", "base", "nope"])
    assert result.exit_code == ExitCode.USAGE
    assert "unknown profile 'nope'" in result.stderr
