"""One verdict per stage: a doctored journal gets the same FAIL, naming the same checks,
from `mmbot gate kpi`, `mmbot report kpi-gate` and `gates.stage.kpi_stage`; the demo
judges its run with the same function, by the profile as written (the policy)."""

from __future__ import annotations

import json
import shutil
from decimal import Decimal
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from bot.exitcodes import ExitCode
from bot.journal import SCHEMAS, read_table
from bot.profiles import load_settings
from flows.cli import app
from gates.kpi import load_journal
from gates.stage import kpi_stage

pytestmark = pytest.mark.slow

FREEZE = {"MMBOT_FREEZE_UTC": "2026-01-01T00:00:00Z"}
FEE_REASON = "fees: fees disagree with policy tier mm1: maker -0.5 bps expected, journal -1.50"
MM3_FEE_REASON = "fees: fees disagree with policy tier mm3: maker -1 bps expected, journal -3.00"


def triple_fees(journal: Path) -> None:
    """Every fill's fee x3, in both fee columns, as if the journal had been edited."""
    fills = read_table(journal, "fills")
    fills["fee"] = fills["fee"] * 3
    fills["fee_exact"] = [Decimal(v) * 3 for v in fills["fee_exact"]]
    for part in (journal / "fills").glob("part-*.parquet"):
        part.unlink()
    table = pa.Table.from_pandas(fills, schema=SCHEMAS["fills"], preserve_index=False)
    pq.write_table(table, journal / "fills" / "part-00000.parquet")


@pytest.fixture(scope="module")
def journals(binance_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("one-verdict")
    honest, doctored = root / "honest", root / "doctored"
    args = ["run", "--mode", "paper", "--data", str(binance_dir), "--duration", "120s"]
    result = CliRunner().invoke(app, [*args, "--out", str(honest)])
    assert result.exit_code == 0, result.output
    shutil.copytree(honest, doctored)
    triple_fees(doctored)
    return {"root": root, "honest": honest, "doctored": doctored}


def gate_json(journal: Path) -> tuple[int, dict]:
    result = CliRunner().invoke(app, ["gate", "kpi", str(journal), "--json"])
    return result.exit_code, json.loads(result.stdout)


def report_of(journal: Path, out: Path) -> tuple[int, dict, str]:
    args = ["report", "kpi-gate", "--journal", str(journal), "--out", out.as_uri()]
    result = CliRunner(env=FREEZE).invoke(app, args)
    urls = result.stdout.split()
    assert len(urls) == 3, result.output  # published whatever the verdict
    verdict = json.loads(Path(urls[2].removeprefix("file://")).read_text())
    markdown = Path(urls[0].removeprefix("file://")).read_text()
    return result.exit_code, verdict, markdown


def test_tripled_fees_fail_the_same_way_from_every_entry_point(journals: dict[str, Path]) -> None:
    doctored = journals["doctored"]
    code, gate = gate_json(doctored)
    assert (code, gate["status"]) == (ExitCode.FAIL, "FAIL")
    assert FEE_REASON in gate["reasons"]  # the policy's fee schedule...
    assert any("fee_error_bps" in r for r in gate["reasons"])  # ...and its own run.json

    report_code, published, markdown = report_of(doctored, journals["root"] / "reports")
    assert report_code == ExitCode.FAIL
    assert (published["status"], published["reasons"]) == (gate["status"], gate["reasons"])
    assert markdown.startswith("# KPI gate: ❌ FAIL")
    assert FEE_REASON.split(": ", 1)[1] in markdown and "✅ PASS\n" not in markdown[:80]

    direct = kpi_stage(load_journal(doctored), load_settings("base"))
    assert (direct.status.value, direct.reasons) == (gate["status"], gate["reasons"])


def test_the_honest_journal_is_judged_alike_too(journals: dict[str, Path]) -> None:
    code, gate = gate_json(journals["honest"])
    assert FEE_REASON not in gate["reasons"] and gate["reasons"]  # it fails on other checks
    report_code, published, _ = report_of(journals["honest"], journals["root"] / "honest-reports")
    assert report_code == code
    assert published["reasons"] == gate["reasons"]


def test_demo_judges_by_the_profile_not_by_its_overrides(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A demo run told it earns a tripled rebate: its fills say -3.0 bps, the policy's
    tier mm3 says -1.0, and the demo's verdict is the same FAIL on `fees`."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MMBOT_ARTIFACTS_URL", f"file://{tmp_path}/artifacts")
    monkeypatch.setenv("MMBOT_FREEZE_UTC", "2026-01-01T00:00:00Z")
    args = ["demo", "--out", str(tmp_path / "demo"), "--json", "--set", "run.duration=5m",
            "--set", "fees.tiers.mm3.maker_bps=-3.0"]  # fmt: skip
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output  # the demo shows a verdict
    verdict = json.loads(result.stdout.strip().splitlines()[-1])["verdict"]
    assert verdict["status"] == "FAIL"
    assert MM3_FEE_REASON in verdict["reasons"]
    journal = load_journal(tmp_path / "demo" / "journal")
    direct = kpi_stage(journal, load_settings("demo"))
    assert direct.reasons == verdict["reasons"]
