"""`mmbot kpi` and `mmbot gate kpi` through Typer's CliRunner: the horizon comes from the
profile, and the gate judges the journal's quality along with its KPIs."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import typer
from typer.testing import CliRunner

from bot.exitcodes import ExitCode
from bot.journal import SCHEMAS, read_table
from bot.runtime.run import RunResult
from gates.cli import register
from tests.unit import gates_helpers as h

app = typer.Typer()
register(app)
runner = CliRunner()

# m_H per fill (gates_helpers timeline): at t+1 s F1 100.2, F2 99.8, F3 99.6; at t+5 s all
# three 100.0; F4 has none. adverse = s·(m − m_H)/m·1e4, notional-weighted over F1..F3.
NOTIONAL = (199.8, 100.3, 99.9)
ADVERSE_1S = ((100.0 - 100.2) / 100.0 * 1e4, -(100.2 - 99.8) / 100.2 * 1e4,
              (99.8 - 99.6) / 99.8 * 1e4)  # fmt: skip
ADVERSE_5S = (0.0, -(100.2 - 100.0) / 100.2 * 1e4, (99.8 - 100.0) / 99.8 * 1e4)


def weighted(values: tuple[float, ...]) -> float:
    return sum(v * n for v, n in zip(values, NOTIONAL, strict=True)) / sum(NOTIONAL)


@pytest.fixture(scope="module")
def hand_journal(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return h.write_journal(tmp_path_factory.mktemp("cli") / "journal")


@pytest.fixture(scope="module")
def five_second_profile(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("profiles") / "slow_edge.yaml"
    path.write_text("extends: base\ngates:\n  horizon_ms: 5000\n")
    return path


def adverse_bps(*args: str) -> float:
    result = runner.invoke(app, ["kpi", *args, "--json"])
    assert result.exit_code == 0, result.output
    value: float = json.loads(result.stdout)["total"]["adverse_bps"]
    return value


def test_kpi_horizon_comes_from_the_profile(hand_journal: Path, five_second_profile: Path) -> None:
    journal = str(hand_journal)
    assert adverse_bps(journal) == pytest.approx(weighted(ADVERSE_1S))  # base: 1000 ms
    from_profile = adverse_bps(journal, "--profile", str(five_second_profile))
    assert from_profile == pytest.approx(weighted(ADVERSE_5S))
    explicit = adverse_bps(journal, "--profile", str(five_second_profile), "--horizon-ms", "1000")
    assert explicit == pytest.approx(weighted(ADVERSE_1S))  # an explicit horizon wins


def test_kpi_unknown_profile_is_a_usage_error(hand_journal: Path) -> None:
    result = runner.invoke(app, ["kpi", str(hand_journal), "--profile", "no-such-profile"])
    assert result.exit_code == ExitCode.USAGE
    assert "no-such-profile" in result.stderr


# --- gate kpi: KPIs and quality --------------------------------------------------------

# bounds the real run's KPIs meet, so that only the journal's quality can fail the gate
LOOSE = ("--set", "gates.kpi.net_bps={warn: -100, fail: -200, direction: min}",
         "--set", "gates.kpi.adverse_p95_bps.warn=100",
         "--set", "gates.kpi.adverse_p95_bps.fail=200",
         "--set", "gates.kpi.fills={warn: 5, fail: 2, direction: min}",
         "--set", "gates.kpi.quote_uptime={warn: 0.05, fail: 0.02, direction: min}")  # fmt: skip


@pytest.fixture(scope="module")
def journals(
    real_paper_run: RunResult, tmp_path_factory: pytest.TempPathFactory
) -> tuple[Path, Path]:
    """A paper run on the real data, and a copy whose third fill has lost its mid."""
    clean, bad = real_paper_run.out_dir, tmp_path_factory.mktemp("gate") / "bad"
    shutil.copytree(clean, bad)
    fills = read_table(bad, "fills")
    fills.loc[2, "mid"] = None
    for part in (bad / "fills").glob("part-*.parquet"):
        part.unlink()
    table = pa.Table.from_pandas(fills, schema=SCHEMAS["fills"], preserve_index=False)
    pq.write_table(table, bad / "fills" / "part-00000.parquet")
    return clean, bad


def gate(journal: Path) -> tuple[int, dict[str, object]]:
    result = runner.invoke(app, ["gate", "kpi", str(journal), *LOOSE, "--json"])
    return result.exit_code, json.loads(result.stdout)


def test_gate_passes_a_clean_journal(journals: tuple[Path, Path]) -> None:
    code, data = gate(journals[0])
    assert (code, data["status"], data["reasons"]) == (ExitCode.OK, "PASS", [])
    quality = data["parts"]
    assert isinstance(quality, list)
    assert [(q["gate"], q["status"]) for q in quality] == [
        ("quality.fills", "PASS"),
        ("quality.orders", "PASS"),
    ]


def test_gate_fails_on_a_bad_fill_row_even_when_kpis_pass(journals: tuple[Path, Path]) -> None:
    code, data = gate(journals[1])
    assert code == ExitCode.FAIL
    assert data["status"] == "FAIL"
    assert data["gate"] == "kpi"
    checks = data["checks"]
    assert isinstance(checks, list)
    assert {c["name"] for c in checks} == {  # the bounds, the floors and the fee check
        "net_bps", "maker_share", "order_latency_p95_ms", "inventory_ratio_p95",
        "adverse_p95_bps", "cancel_ratio", "fills", "quote_uptime", "fees",
    }  # fmt: skip
    assert all(c["status"] == "PASS" for c in checks)  # only the journal's quality fails
    assert data["reasons"] == [
        "fills.expect_column_values_to_not_be_null(mid): 1 bad rows, e.g. [nan]"
    ]
    fills, orders = data["parts"]  # type: ignore[misc]
    assert (fills["gate"], fills["status"]) == ("quality.fills", "FAIL")
    assert orders["status"] == "PASS"


def test_gate_table_shows_every_verdict(journals: tuple[Path, Path]) -> None:
    result = runner.invoke(app, ["gate", "kpi", str(journals[1]), *LOOSE])
    assert result.exit_code == ExitCode.FAIL
    for title in ("kpi gate: FAIL", "quality.fills gate: FAIL", "quality.orders gate: PASS"):
        assert title in result.stdout
    assert result.stdout.rstrip().endswith("gate kpi: FAIL")


def test_gate_fails_a_journal_whose_fills_cannot_be_checked(tmp_path: Path) -> None:
    # a manifest that names its fee tier but gives no rates: the fills cannot be checked
    manifest = {**h.MANIFEST, "fee_tier": "mm1"}
    journal = h.write_journal(tmp_path / "journal", manifest, h.CLEAN_ORDERS)
    code, data = gate(journal)
    assert code == ExitCode.FAIL
    fills = data["parts"][0]  # type: ignore[index]
    assert fills["checks"][0]["name"] == "fills.rules"
    assert "run.json lacks the fee tier or risk limits" in fills["checks"][0]["reason"]


# --- the journal's own profile ---------------------------------------------------------


def test_a_journals_profile_that_cannot_be_loaded_says_whose_it_is(tmp_path: Path) -> None:
    journal = h.write_journal(tmp_path / "journal", {**h.MANIFEST, "profile": "gone-since"})
    result = runner.invoke(app, ["gate", "kpi", str(journal)])
    assert result.exit_code == ExitCode.USAGE
    assert result.stderr.startswith("error: the journal's profile 'gone-since' (run.json): ")
    assert result.stderr.rstrip().endswith("; pass --profile")
    # a typo in --set is the user's, not the journal's
    typo = runner.invoke(app, ["gate", "kpi", str(journal), "-p", "base", "--set", "gates.kpi.x=1"])
    assert typo.exit_code == ExitCode.USAGE and "run.json): " not in typo.stderr
    # with a profile given, the journal is judged (and the user told it is not its own)
    judged = runner.invoke(app, ["gate", "kpi", str(journal), "-p", "base", "--json"])
    assert judged.exit_code in (ExitCode.OK, ExitCode.WARN, ExitCode.FAIL)
    assert json.loads(judged.stdout)["gate"] == "kpi"
    assert judged.stderr == (
        "warning: profile 'base' given; the journal ran with 'gone-since' (run.json)\n"
    )


def test_a_journal_without_a_profile_is_judged_by_base_with_a_warning(
    hand_journal: Path,
) -> None:
    result = runner.invoke(app, ["gate", "kpi", str(hand_journal), "--json"])
    assert json.loads(result.stdout)["summary"]["fee_tier"] == "mm1"  # base's tier
    assert result.stderr == (
        f"warning: {hand_journal}: run.json names no profile; using 'base' "
        "(pass one with --profile)\n"
    )
