"""The KPI gate's outcomes and the `mmbot kpi` / `mmbot gate kpi` commands."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from bot.config import Bound, GateConfig
from bot.exitcodes import ExitCode
from gates.cli import register
from gates.kpi_gate import kpi_gate
from gates.verdict import Status
from tests.unit import gates_helpers as h

BOUNDS = GateConfig().kpi  # the DESIGN §6 defaults
GOOD = {
    "net_bps": 3.0,
    "maker_share": 0.95,
    "order_latency_p95_ms": 120.0,
    "inventory_ratio_p95": 0.2,
    "adverse_p95_bps": 2.0,
    "cancel_ratio": 0.3,
}


def test_all_inside_bounds_pass() -> None:
    verdict = kpi_gate(GOOD, BOUNDS)
    assert verdict.status is Status.PASS
    assert verdict.reasons == []
    assert {c.name for c in verdict.checks} == set(BOUNDS)


@pytest.mark.parametrize(
    ("name", "value", "status"),
    [
        ("net_bps", 2.5, Status.WARN),  # min: below warn 2.7
        ("net_bps", 1.9, Status.FAIL),  # below fail 2.0
        ("net_bps", 2.7, Status.PASS),  # on the bound is not beyond it
        ("net_bps", 2.0, Status.WARN),
        ("order_latency_p95_ms", 360.0, Status.WARN),  # max: above warn 350
        ("order_latency_p95_ms", 401.0, Status.FAIL),
        ("cancel_ratio", 0.56, Status.WARN),
        ("maker_share", 0.84, Status.FAIL),
    ],
)
def test_bound_directions(name: str, value: float, status: Status) -> None:
    verdict = kpi_gate({**GOOD, name: value}, BOUNDS)
    assert verdict.status is status
    (check,) = [c for c in verdict.checks if c.name == name]
    assert check.status is status
    if status is not Status.PASS:
        assert verdict.reasons[0].startswith(f"{name}: {value:g}")


def test_missing_kpi_fails_by_name() -> None:
    values = {k: v for k, v in GOOD.items() if k != "net_bps"}
    verdict = kpi_gate(values, BOUNDS)
    assert verdict.status is Status.FAIL
    assert verdict.reasons == ["net_bps: missing"]


def test_nan_kpi_fails_by_name() -> None:
    verdict = kpi_gate({**GOOD, "maker_share": math.nan}, BOUNDS)
    assert verdict.status is Status.FAIL
    assert verdict.reasons == ["maker_share: missing"]
    assert verdict.summary["kpis"]["maker_share"] is None


def test_fail_outranks_warn() -> None:
    verdict = kpi_gate({**GOOD, "net_bps": 2.5, "cancel_ratio": 0.9}, BOUNDS)
    assert verdict.status is Status.FAIL
    assert len(verdict.reasons) == 2


def test_custom_bound() -> None:
    bounds = {"quote_uptime": Bound(warn=0.9, fail=0.8, direction="min")}
    assert kpi_gate({"quote_uptime": 0.85}, bounds).status is Status.WARN


# --- CLI ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def app() -> typer.Typer:
    root = typer.Typer()
    register(root)
    return root


@pytest.fixture(scope="module")
def journal_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return h.write_journal(tmp_path_factory.mktemp("cli") / "journal")


@pytest.fixture(scope="module")
def clean_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The hand journal without the ack of unknown stamp: its quality suites pass."""
    return h.write_journal(tmp_path_factory.mktemp("cli") / "clean", orders=h.CLEAN_ORDERS)


def test_kpi_json_is_the_stable_interface(app: typer.Typer, journal_dir: Path) -> None:
    result = CliRunner().invoke(app, ["kpi", str(journal_dir), "--json", "--interval", "2s"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert set(data) == {"total", "by_symbol", "intervals"}
    assert data["total"]["fills"] == 4
    assert data["total"]["cancel_ratio"] == pytest.approx(3 / 8)
    assert [row["fills"] for row in data["intervals"]] == [2, 1, 0, 1]
    assert data["intervals"][2]["net_bps"] is None  # NaN is null
    assert data["intervals"][0]["start"] == "2024-08-09T00:00:00+00:00"


def test_kpi_table(app: typer.Typer, journal_dir: Path) -> None:
    result = CliRunner().invoke(app, ["kpi", str(journal_dir)])
    assert result.exit_code == 0, result.output
    assert "net_bps" in result.stdout and "BTCUSDT" in result.stdout


def test_kpi_on_a_non_journal_is_a_data_error(app: typer.Typer, tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["kpi", str(tmp_path)])
    assert result.exit_code == ExitCode.DATA
    assert "not a journal directory" in result.stderr


# The hand journal: maker_share 0.80 (< 0.85 FAIL), adverse_p95 20.04 bps (> 6 FAIL),
# everything else inside the default bounds.
PASSING = [
    "--set", "gates.kpi.maker_share.warn=0.5", "--set", "gates.kpi.maker_share.fail=0.4",
    "--set", "gates.kpi.adverse_p95_bps.warn=25", "--set", "gates.kpi.adverse_p95_bps.fail=30",
]  # fmt: skip
WARNING = [*PASSING, "--set", "gates.kpi.maker_share.warn=0.85"]


@pytest.mark.parametrize(
    ("extra", "code", "status"),
    [
        ([], ExitCode.FAIL, "FAIL"),
        (PASSING, ExitCode.OK, "PASS"),
        (WARNING, ExitCode.WARN, "WARN"),
    ],
)
def test_gate_exit_codes(
    app: typer.Typer, clean_dir: Path, extra: list[str], code: ExitCode, status: str
) -> None:
    args = ["gate", "kpi", str(clean_dir), "--profile", "base", "--json", *extra]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == code, result.output
    verdict = json.loads(result.stdout)
    assert verdict["status"] == verdict["summary"]["kpi_status"] == status
    assert [q["status"] for q in verdict["quality"]] == ["PASS", "PASS"]


def test_gate_fails_on_journal_quality_the_kpis_cannot_see(
    app: typer.Typer, journal_dir: Path
) -> None:
    """The same KPIs with the unknown-stamp ack (latency leaves it out): orders FAIL."""
    args = ["gate", "kpi", str(journal_dir), "--json", *PASSING]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == ExitCode.FAIL, result.output
    verdict = json.loads(result.stdout)
    assert (verdict["status"], verdict["summary"]["kpi_status"]) == ("FAIL", "PASS")
    assert [(q["gate"], q["status"]) for q in verdict["quality"]] == [
        ("quality.fills", "PASS"),
        ("quality.orders", "FAIL"),
    ]
    assert verdict["reasons"] == [
        "orders.expect_column_pair_values_a_to_be_greater_than_b(ts_ack_ns,ts_send_ns): "
        f"1 bad rows, e.g. [[0, {h.T0 + 400 * h.MS}]]"
    ]


def test_gate_reasons_name_the_kpis(app: typer.Typer, journal_dir: Path) -> None:
    result = CliRunner().invoke(app, ["gate", "kpi", str(journal_dir)])
    assert result.exit_code == ExitCode.FAIL
    assert "maker_share" in result.stdout and "adverse_p95_bps" in result.stdout


def test_gate_bad_profile_is_a_usage_error(app: typer.Typer, journal_dir: Path) -> None:
    result = CliRunner().invoke(app, ["gate", "kpi", str(journal_dir), "--profile", "nope-xyz"])
    assert result.exit_code == ExitCode.USAGE
    assert "error:" in result.stderr
