"""The user's path through the real `mmbot` app on real data: run, kpi, gate, report,
and no secret in any byte that path writes or prints."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from bot.exitcodes import ExitCode
from flows.cli import app
from gates.kpi import KPI_NAMES
from reports.charts import plotly_js

API_KEY = "sk-live-7f3a9c1e5b2d8f4a"  # pragma: allowlist secret
API_SECRET = "shh-2b9e4c7a1f6d3e8b"  # pragma: allowlist secret
SECRET_SETTINGS = ("--set", f"secrets.api_key={API_KEY}", "--set", "secrets.provider=env")


@pytest.fixture(scope="module")
def outputs(binance_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    root = tmp_path_factory.mktemp("pipeline")
    journal, artifacts = root / "journal", root / "artifacts"
    env = {"MMBOT_API_SECRET": API_SECRET, "MMBOT_FREEZE_UTC": "2026-01-01T00:00:00Z"}
    runner = CliRunner(env=env)
    run = runner.invoke(
        app,
        ["--log-level", "debug", "run", "--mode", "paper", "--data", str(binance_dir),
         "--duration", "120s", "--out", str(journal), "--json", *SECRET_SETTINGS],
    )  # fmt: skip
    kpi = runner.invoke(app, ["kpi", str(journal), "--json"])
    gate = runner.invoke(app, ["gate", "kpi", str(journal), "--profile", "base", "--json"])
    report = runner.invoke(
        app,
        ["--log-level", "debug", "report", "kpi-gate", "--journal", str(journal),
         "--out", artifacts.as_uri(), *SECRET_SETTINGS],
    )  # fmt: skip
    show = runner.invoke(app, ["config", "show", "--profile", "base", *SECRET_SETTINGS])
    return {"root": root, "journal": journal, "run": run, "kpi": kpi, "gate": gate,
            "report": report, "show": show}  # fmt: skip


def test_run_prints_a_json_summary_and_writes_the_journal(outputs: dict) -> None:
    run = outputs["run"]
    assert run.exit_code == 0, run.stderr
    summary = json.loads(run.stdout)
    assert summary["fills"] > 0
    assert (outputs["journal"] / "fills").is_dir()


def test_kpi_json_is_the_documented_interface(outputs: dict) -> None:
    kpi = outputs["kpi"]
    assert kpi.exit_code == 0, kpi.stderr
    data = json.loads(kpi.stdout)
    assert set(KPI_NAMES) <= set(data["total"])
    assert set(data["by_symbol"]) == {"BTCUSDT"}
    assert data["total"]["fills"] == json.loads(outputs["run"].stdout)["fills"]


def test_gate_exit_code_matches_its_verdict(outputs: dict) -> None:
    gate = outputs["gate"]
    status = json.loads(gate.stdout)["status"]
    expected = {"PASS": ExitCode.OK, "FAIL": ExitCode.FAIL, "WARN": ExitCode.WARN}[status]
    assert gate.exit_code == expected


def test_report_publishes_markdown_and_self_contained_html(outputs: dict) -> None:
    report = outputs["report"]
    # published, then the exit code of the verdict it shows: the gate's, on the same policy
    assert report.exit_code == outputs["gate"].exit_code, report.stderr
    urls = report.stdout.split()
    run_id = json.loads(outputs["run"].stdout)["run_id"]
    assert all(f"/kpi-gate/{run_id}/" in url for url in urls), urls
    html = Path(next(u for u in urls if u.endswith(".html")).removeprefix("file://"))
    # outside the inlined plotly.js the page names no URL and loads no script
    page = html.read_text().replace(plotly_js(), "")
    assert page.count('<div class="plot"') >= 3
    assert "https://" not in page and "http://" not in page and "<script src" not in page


def test_no_secret_in_any_output_or_file(outputs: dict) -> None:
    assert outputs["show"].exit_code == 0
    printed = "".join(
        outputs[name].stdout + outputs[name].stderr
        for name in ("run", "kpi", "gate", "report", "show")
    )
    # the places a secret would leak to were written, and hold the mask instead
    assert "**********" in outputs["show"].stdout
    assert "run_start" in outputs["run"].stderr and "artifact_put" in outputs["report"].stderr
    assert "**********" in (outputs["journal"] / "run.json").read_text()
    files = [p for p in outputs["root"].rglob("*") if p.is_file()]
    assert len(files) > 10
    for secret in (API_KEY, API_SECRET):
        assert secret not in printed
        for path in files:
            assert secret.encode() not in path.read_bytes(), path
