"""`mmbot report`: the command renders, publishes and prints the URLs."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import structlog
from typer.testing import CliRunner

from bot.exitcodes import ExitCode
from bot.runtime.clock import FREEZE_ENV
from reports.cli import report_app
from tests.unit import reports_helpers as h

runner = CliRunner()


@pytest.fixture(autouse=True)
def logs_to_stderr() -> Iterator[None]:
    # what the root `mmbot` app does at start: stdout is data, logs go to stderr
    structlog.configure(logger_factory=structlog.PrintLoggerFactory(sys.stderr))
    yield
    structlog.reset_defaults()


@pytest.fixture()
def journal(tmp_path: Path) -> Path:
    return h.write_journal(tmp_path / "run-7")


def test_report_publishes_md_html_and_verdict(journal: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    result = runner.invoke(
        report_app(),
        ["kpi-gate", "--journal", str(journal), "--out", f"file://{out}"],
        env={FREEZE_ENV: h.FROZEN},
    )
    # published, then the verdict's exit code: the hand journal's maker share FAILs
    assert result.exit_code == ExitCode.FAIL, result.output
    assert result.stdout.splitlines() == [
        (out / "kpi-gate/run-7" / name).as_uri()
        for name in ("report.md", "report.html", "verdict.json")
    ]
    published = json.loads((out / "kpi-gate/run-7/verdict.json").read_text())
    assert (published["gate"], published["status"]) == ("kpi", "FAIL")
    assert "2024-08-10T12:00:00.000000Z" in (out / "kpi-gate/run-7/report.html").read_text()


def test_canary_takes_a_baseline_and_the_gate_verdict(journal: Path, tmp_path: Path) -> None:
    baseline = h.write_journal(tmp_path / "base")
    verdict = tmp_path / "canary-verdict.json"
    verdict.write_text(json.dumps(h.canary_verdict().to_dict()))
    args = [
        "canary",
        "--journal",
        str(journal),
        "--baseline",
        str(baseline),
        "--verdict",
        str(verdict),
        "--out",
        f"file://{tmp_path / 'out'}",
        "--run-id",
        "c1",
    ]
    result = runner.invoke(report_app(), args)
    assert result.exit_code == ExitCode.WARN, result.output  # the verdict handed: MARGINAL
    assert "dist-net_bps" in (tmp_path / "out/canary/c1/report.html").read_text()


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (["soak"], ExitCode.USAGE, "unknown stage 'soak'"),
        (["canary"], ExitCode.USAGE, "compares two journals"),
        (["shadow", "--profile", "no-such-profile"], ExitCode.USAGE, "no-such-profile"),
        (["shadow", "--out", "ftp://x"], ExitCode.USAGE, "scheme must be file:// or s3://"),
    ],
)
def test_errors_go_to_stderr_with_named_exit_codes(
    journal: Path, args: list[str], code: ExitCode, message: str
) -> None:
    result = runner.invoke(report_app(), [*args, "--journal", str(journal)])
    assert result.exit_code == code, result.output
    assert message in result.stderr and result.stdout == ""
