"""The KPI checks' outcomes and the `mmbot kpi` / `mmbot gate kpi` commands."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from bot.config import Bound, GateConfig, Settings
from bot.exitcodes import ExitCode
from bot.profiles import load_settings
from gates.cli import register
from gates.kpi_gate import kpi_checks
from gates.stage import policy_bounds
from gates.verdict import Status, Verdict
from tests.unit import gates_helpers as h

BOUNDS = policy_bounds(Settings())  # the defaults, net_bps of the default tier mm1
GOOD = {
    "net_bps": 0.4,
    "maker_share": 0.95,
    "order_latency_p95_ms": 120.0,
    "inventory_ratio_p95": 0.2,
    "adverse_p95_bps": 2.0,
    "cancel_ratio": 0.3,
    "fills": 400.0,
    "quote_uptime": 0.9,
}


def kpi_gate(
    values: dict[str, float], bounds: dict[str, Bound], why: dict[str, str] | None = None
) -> Verdict:
    """The KPI checks as a verdict, the way gates.stage.kpi_stage assembles them."""
    return Verdict.of("kpi", kpi_checks(values, bounds, why))


def test_all_inside_bounds_pass() -> None:
    verdict = kpi_gate(GOOD, BOUNDS)
    assert verdict.status is Status.PASS
    assert verdict.reasons == []
    assert {c.name for c in verdict.checks} == set(BOUNDS)


@pytest.mark.parametrize(
    ("name", "value", "status"),
    [
        ("net_bps", 0.02, Status.WARN),  # min: below warn 0.05 (mm1)
        ("net_bps", -0.1, Status.FAIL),  # below fail 0
        ("net_bps", 0.05, Status.PASS),  # on the bound is not beyond it
        ("net_bps", 0.0, Status.WARN),
        ("fills", 19.0, Status.FAIL),  # the activity floors
        ("quote_uptime", 0.4, Status.WARN),
        ("quote_uptime", 0.0, Status.FAIL),
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
    (check,) = [c for c in verdict.checks if c.name == "maker_share"]
    assert check.value is None


def test_fail_outranks_warn() -> None:
    verdict = kpi_gate({**GOOD, "net_bps": 0.02, "cancel_ratio": 0.9}, BOUNDS)
    assert verdict.status is Status.FAIL
    assert len(verdict.reasons) == 2


def test_custom_bound() -> None:
    bounds = {"quote_uptime": Bound(warn=0.9, fail=0.8, direction="min")}
    assert kpi_gate({"quote_uptime": 0.85}, bounds).status is Status.WARN


def test_a_gate_with_no_bounds_fails() -> None:
    verdict = kpi_gate(GOOD, {})
    assert verdict.status is Status.FAIL
    assert verdict.reasons == ["bounds: no bounds configured"]
    assert kpi_gate(GOOD, BOUNDS).status is Status.PASS  # the same KPIs, judged


def test_a_kpi_the_mode_cannot_measure_is_na_not_pass() -> None:
    why = {"order_latency_p95_ms": "shadow mode sends no orders"}
    verdict = kpi_gate({**GOOD, "order_latency_p95_ms": 0.0}, BOUNDS, why)
    (check,) = [c for c in verdict.checks if c.name == "order_latency_p95_ms"]
    assert (check.status, check.value) == (Status.NA, None)
    assert check.reason == "N/A: shadow mode sends no orders"
    assert verdict.status is Status.PASS  # no cause for a FAIL...
    assert verdict.reasons == []  # an N/A is not a reason against the run
    # ...and no evidence for a PASS: a gate of N/A checks alone has judged nothing
    only = {"order_latency_p95_ms": BOUNDS["order_latency_p95_ms"]}
    assert kpi_gate(GOOD, only, why).status is Status.FAIL
    # a KPI another mode can measure is judged as usual, a missing one still FAILs
    assert kpi_gate({**GOOD, "order_latency_p95_ms": 500.0}, BOUNDS).status is Status.FAIL


def test_set_of_a_mapping_merges_into_the_bounds() -> None:
    """`--set gates.kpi={...}` changes the bounds it names and keeps the others, as a
    profile YAML does; `null` removes one."""
    base = load_settings("base").gates.kpi
    merged = load_settings(
        "base", overrides=("gates.kpi={fills: {warn: 5, fail: 2, direction: min}}",)
    ).gates.kpi
    assert set(merged) == set(base)
    assert (merged["fills"].warn, merged["fills"].fail) == (5, 2)
    assert merged["maker_share"] == base["maker_share"]
    added = load_settings(
        "base", overrides=("gates.kpi={pnl_usd: {warn: 0, fail: -10, direction: min}}",)
    ).gates.kpi
    assert set(added) == {*base, "pnl_usd"}
    dropped = load_settings("base", overrides=("gates.kpi={fills: null}",)).gates.kpi
    assert set(dropped) == set(base) - {"fills"}
    # a scalar key of a mapping is still set as before
    one = load_settings("base", overrides=("gates.kpi.fills.fail=3",)).gates.kpi
    assert one["fills"].fail == 3 and set(one) == set(base)
    assert GateConfig().kpi.keys() == base.keys()  # base.yaml restates the defaults


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


# The hand journal under a policy of its own fee tier ("hand": maker -1, taker 3 bps):
# maker_share 0.80 (< 0.85 FAIL), adverse_p95 20.04 bps (> 6 FAIL), 4 fills (< 20
# FAIL) and no ask ever on the book (quote_uptime 0 < 0.25 FAIL); PASSING relaxes those.
# The policy's order size limit is the one fills are held to: the hand fills are 1-2 lots.
HAND_LIMITS = ["--set", "risk.max_order_qty=2"]
HAND_TIER = [
    *HAND_LIMITS,
    "--set", "fees.tiers.hand={maker_bps: -1.0, taker_bps: 3.0}", "--set", "fees.tier=hand",
    "--set", "gates.kpi.net_bps={warn: 2.7, fail: 2.0, direction: min}",
]  # fmt: skip
RELAXED = [
    "--set", "gates.kpi.maker_share.warn=0.5", "--set", "gates.kpi.maker_share.fail=0.4",
    "--set", "gates.kpi.adverse_p95_bps.warn=25", "--set", "gates.kpi.adverse_p95_bps.fail=30",
    "--set", "gates.kpi={fills: {warn: 4, fail: 2, direction: min}, quote_uptime: null}",
]  # fmt: skip
PASSING = [*HAND_TIER, *RELAXED]
WARNING = [*PASSING, "--set", "gates.kpi.maker_share.warn=0.85"]


def _statuses(verdict: dict) -> dict[str, str]:
    return {c["name"]: c["status"] for c in verdict["checks"]}


@pytest.mark.parametrize(
    ("extra", "code", "status"),
    [
        (HAND_TIER, ExitCode.FAIL, "FAIL"),
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
    assert verdict["status"] == status
    assert [q["status"] for q in verdict["parts"]] == ["PASS", "PASS"]
    assert _statuses(verdict)["fees"] == "PASS"


def test_gate_fails_when_fees_disagree_with_the_policy_tier(
    app: typer.Typer, clean_dir: Path
) -> None:
    """The same journal under the default policy (tier mm1, maker -0.5 bps): its maker
    fills booked a -1 bps rebate, so the fee check FAILs and names the tier."""
    args = ["gate", "kpi", str(clean_dir), "--json", *HAND_LIMITS, *RELAXED]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == ExitCode.FAIL, result.output
    verdict = json.loads(result.stdout)
    fees = [r for r in verdict["reasons"] if r.startswith("fees:")]
    assert fees == [
        "fees: fees disagree with policy tier mm1: maker -0.5 bps expected, journal -1.00"
    ]
    # the journal agrees with its own run.json, so its quality suites still pass
    assert [q["status"] for q in verdict["parts"]] == ["PASS", "PASS"]


def test_gate_fails_on_journal_quality_the_kpis_cannot_see(
    app: typer.Typer, journal_dir: Path
) -> None:
    """The same KPIs with the unknown-stamp ack (latency leaves it out): orders FAIL."""
    args = ["gate", "kpi", str(journal_dir), "--json", *PASSING]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == ExitCode.FAIL, result.output
    verdict = json.loads(result.stdout)
    assert verdict["status"] == "FAIL"
    assert set(_statuses(verdict).values()) == {"PASS"}  # every KPI check passes
    assert [(q["gate"], q["status"]) for q in verdict["parts"]] == [
        ("quality.fills", "PASS"),
        ("quality.orders", "FAIL"),
    ]
    assert verdict["reasons"] == [
        "orders.expect_column_pair_values_a_to_be_greater_than_b(ts_ack_ns,ts_send_ns): "
        f"1 bad rows, e.g. [[0, {h.T0 + 400 * h.MS}]]"
    ]


def test_kpi_with_a_bad_interval_is_a_usage_error(app: typer.Typer, journal_dir: Path) -> None:
    for bad in ("7x", "0s", "soon"):
        result = CliRunner().invoke(app, ["kpi", str(journal_dir), "--interval", bad])
        assert result.exit_code == ExitCode.USAGE, (bad, result.output)
        assert "--interval" in result.stderr
    good = CliRunner().invoke(app, ["kpi", str(journal_dir), "--interval", "2s"])
    assert good.exit_code == ExitCode.OK


def test_gate_reasons_name_the_kpis(app: typer.Typer, journal_dir: Path) -> None:
    result = CliRunner().invoke(app, ["gate", "kpi", str(journal_dir)])
    assert result.exit_code == ExitCode.FAIL
    assert "maker_share" in result.stdout and "adverse_p95_bps" in result.stdout


def test_gate_bad_profile_is_a_usage_error(app: typer.Typer, journal_dir: Path) -> None:
    result = CliRunner().invoke(app, ["gate", "kpi", str(journal_dir), "--profile", "nope-xyz"])
    assert result.exit_code == ExitCode.USAGE
    assert "error:" in result.stderr


@pytest.mark.parametrize("key", ["canary.interval", "gates.accuracy.interval"])
def test_a_bad_interval_in_the_settings_is_a_usage_error(
    app: typer.Typer, journal_dir: Path, key: str
) -> None:
    """The canary and accuracy intervals are checked where settings load, so every
    command that takes `--set` refuses them with 64 before reading a journal."""
    result = CliRunner().invoke(app, ["gate", "kpi", str(journal_dir), "--set", f"{key}=7x"])
    assert result.exit_code == ExitCode.USAGE, result.output
    assert f"{key}: interval '7x'" in result.stderr
    assert load_settings("base", overrides=(f"{key}=90s",)) is not None
