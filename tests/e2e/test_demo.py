"""`mmbot demo`: the whole path on embedded defaults, through the real CLI."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from flows.cli import app


@pytest.mark.slow
def test_demo_runs_judges_and_reports(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MMBOT_ARTIFACTS_URL", f"file://{tmp_path}/artifacts")
    monkeypatch.setenv("MMBOT_FREEZE_UTC", "2026-01-01T00:00:00Z")
    args = ["demo", "--out", str(tmp_path / "demo"), "--json", "--set", "run.duration=5m"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout.strip().splitlines()[-1])
    journal = Path(payload["journal"])
    assert (journal / "run.json").is_file()
    assert (journal / "fills").is_dir()
    assert payload["verdict"]["gate"] == "kpi"
    assert payload["verdict"]["status"] in {"PASS", "WARN", "FAIL"}
    html = [u for u in payload["reports"] if u.endswith(".html")]
    assert html, payload["reports"]
    page = Path(html[0].removeprefix("file://")).read_text()
    assert "<svg" in page
    assert "http://" not in page and "https://" not in page


def test_demo_with_a_typo_in_a_setting_is_a_usage_error(tmp_path: Path) -> None:
    args = ["demo", "--out", str(tmp_path), "--set", "strategy.min_edge_bp=1"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 64
    assert "min_edge_bps" in result.output
