"""`mmbot demo`: the whole path on embedded defaults, through the real CLI."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from flows.cli import app
from reports.charts import plotly_js


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
    # --out takes the reports too, over storage.artifacts_url
    assert all(u.startswith((tmp_path / "demo").as_uri() + "/") for u in payload["reports"])
    # outside the inlined plotly.js the page names no URL
    page = Path(html[0].removeprefix("file://")).read_text().replace(plotly_js(), "")
    assert '<div class="plot"' in page
    assert "http://" not in page and "https://" not in page


def test_demo_with_a_typo_in_a_setting_is_a_usage_error(tmp_path: Path) -> None:
    args = ["demo", "--out", str(tmp_path), "--set", "strategy.min_edge_bp=1"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 64
    assert "min_edge_bps" in result.output


def test_demo_with_a_bad_artifact_url_fails_before_the_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)  # without --out, the store is storage.artifacts_url
    out = tmp_path / "artifacts" / "demo"
    args = ["demo", "--set", "storage.artifacts_url=ftp://host/reports"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 64, result.output
    assert result.stderr.splitlines() == [
        "error: artifact URL 'ftp://host/reports/demo': scheme must be file:// or s3:// "
        "(storage.artifacts_url)"
    ]
    assert not (out / "journal").exists()  # refused before the run, not after it


def test_demo_with_an_unreachable_store_fails_before_the_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import socket

    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "test")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "test")
    monkeypatch.chdir(tmp_path)  # without --out, the store is storage.artifacts_url
    out = tmp_path / "artifacts" / "demo"
    args = ["demo", "--set", "storage.artifacts_url=s3://reports/mmbot",
            "--set", f"storage.s3_endpoint_url=http://127.0.0.1:{port}",
            "--set", "storage.s3_retry_attempts=1"]  # fmt: skip
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 69, result.output
    assert len(result.stderr.strip().splitlines()) == 1 and "error: " in result.stderr
    assert "Traceback" not in result.output
    assert not (out / "journal").exists()


def test_demo_release_approves_itself_only_where_the_profile_allows_it(tmp_path: Path) -> None:
    args = ["demo", "--release", "--approve", "auto", "--profile", "soak",
            "--out", str(tmp_path)]  # fmt: skip
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 64, result.output
    assert "profile 'soak' does not allow it (promote.auto_approve)" in result.stderr
    assert not any(tmp_path.iterdir())  # refused before anything ran


def test_the_release_demo_refuses_a_candidate_setting_its_own_venue(tmp_path: Path) -> None:
    # paper latency 0 would make the dry-run compare agree by construction
    args = ["demo", "--release", "--approve", "auto", "--out", str(tmp_path),
            "--set", "sim.entry_latency_ms=0"]  # fmt: skip
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 64, result.output
    assert result.stderr.splitlines() == [
        "error: sim.entry_latency_ms=0: the candidate's overrides cannot set the release policy "
        "(venue.*, fees.*, sim.*, gates.*, soak.*, tuning.*, canary.*, promote.*); change the "
        "policy's profile instead"
    ]
    assert not any(tmp_path.iterdir())  # refused before any run
