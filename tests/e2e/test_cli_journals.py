"""The judging commands on real journals: `gate accuracy|canary|readiness`, the profile
taken from run.json, and `journal export` round trips.

Journals: paper runs of the `mm3` profile on the real Binance capture (5.7 min) and
on 12 min of the seeded synthetic market (shadow, paper, paper with another latency
jitter seed, paper with 600 ms of order latency). 12 min on 30 s intervals are 24
intervals: the canary's and the accuracy gate's default minimum.
"""

from __future__ import annotations

import json
import shutil
from decimal import Decimal
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from bot.exitcodes import ExitCode
from bot.journal import MANIFEST, SCHEMAS, read_table
from bot.journal_export import TIME_COLUMN
from bot.profiles import load_settings
from bot.runtime.run import RunSpec, execute
from flows.cli import app
from tests.conftest import untraced

runner = CliRunner()
SYNTH = ("--synth", "7")
SLOW = ("sim.entry_latency_ms=600", "sim.cancel_latency_ms=600")
ON_30S = ("--set", "gates.accuracy.interval=30s", "--set", "canary.interval=30s")


def _run(out: Path, mode: str, overrides: tuple[str, ...] = (), **data: object) -> Path:
    spec = RunSpec(
        mode=mode,  # type: ignore[arg-type]
        out_dir=out, profile="mm3", overrides=overrides, progress=False, **data,  # type: ignore[arg-type]
    )  # fmt: skip
    execute(spec)
    return out


@pytest.fixture(scope="module")
def real(binance_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _run(tmp_path_factory.mktemp("real") / "paper", "paper", data=binance_dir)


@pytest.fixture(scope="module")
def synth(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("synth")
    short = ("run.duration=12m",)
    runs = {
        "shadow": ("shadow", short),
        "paper": ("paper", short),
        "reseeded": ("paper", (*short, "run.seed=8")),
        "slow": ("paper", (*short, *SLOW)),
    }
    with untraced(request.config):
        return {
            name: _run(root / name, mode, overrides, synth_seed=7)
            for name, (mode, overrides) in runs.items()
        }


def mmbot(*args: str | Path) -> tuple[int, dict[str, object], str]:
    result = runner.invoke(app, [str(a) for a in args])
    assert result.stdout, result.output
    return result.exit_code, json.loads(result.stdout), result.stderr


def checks(verdict: dict[str, object]) -> dict[str, str]:
    return {c["name"]: c["status"] for c in verdict["checks"]}  # type: ignore[attr-defined, index]


# --- gate accuracy --------------------------------------------------------------------


def test_accuracy_passes_the_same_bot_on_the_same_market(synth: dict[str, Path]) -> None:
    # another seed of the latency jitter: the same fills, interval by interval, near enough
    code, verdict, _ = mmbot("gate", "accuracy", synth["paper"], synth["reseeded"], *ON_30S,
                             "--json")  # fmt: skip
    assert (code, verdict["gate"], verdict["status"]) == (ExitCode.OK, "accuracy", "PASS")


def test_accuracy_fails_paper_with_600_ms_orders_against_shadow(synth: dict[str, Path]) -> None:
    # shadow infers fills by the paper venue's own rules without latency: 600 ms orders
    # miss the fills it sees
    code, verdict, _ = mmbot("gate", "accuracy", synth["shadow"], synth["slow"], *ON_30S,
                             "--json")  # fmt: skip
    assert (code, verdict["status"]) == (ExitCode.FAIL, "FAIL")
    assert checks(verdict)["fills"] == "FAIL"
    assert checks(verdict)["order_latency_ms"] == "N/A"  # a shadow run sends no orders


# --- gate canary ----------------------------------------------------------------------


def test_canary_passes_a_canary_like_its_baseline(synth: dict[str, Path]) -> None:
    code, verdict, _ = mmbot("gate", "canary", synth["paper"], synth["reseeded"], *ON_30S,
                             "--json")  # fmt: skip
    assert (code, verdict["gate"], verdict["status"]) == (ExitCode.OK, "canary", "PASS")
    assert checks(verdict)["intervals"] == "PASS"


def test_canary_with_slow_orders_needs_a_person(synth: dict[str, Path]) -> None:
    # 600 ms orders: latency is High (a failed metric), the rest holds, the score is
    # MARGINAL. (These runs used to halt the bot on a cancel-reject of a refused place,
    # and the canary failed on that instead.)
    code, verdict, _ = mmbot("gate", "canary", synth["paper"], synth["slow"], *ON_30S, "--json")
    assert (code, verdict["status"]) == (ExitCode.WARN, "WARN")
    assert verdict["summary"]["decision"] == "MARGINAL"  # type: ignore[index]
    assert checks(verdict)["order_latency_ms"] == "FAIL"
    assert verdict["summary"]["classification"]["order_latency_ms"] == "High"  # type: ignore[index]


def test_canary_fails_too_few_intervals(real: Path) -> None:
    # 5.7 min of data on the profile's 1 min interval: 6 intervals, fewer than it needs
    least = load_settings("mm3").canary.min_intervals
    assert least > 6
    code, verdict, _ = mmbot("gate", "canary", real, real, "--json")
    assert code == ExitCode.FAIL
    assert f"intervals: too few intervals (6 < {least})" in verdict["reasons"]  # type: ignore[operator]


# --- gate readiness -------------------------------------------------------------------

ALL_HELD = ("--section", "guards=1", "--section", "chaos=1", "--section", "tests=1")


def test_readiness_is_ready_with_every_section_held(real: Path) -> None:
    code, verdict, _ = mmbot("gate", "readiness", real, *ALL_HELD, "--json")
    assert (code, verdict["status"]) == (ExitCode.OK, "PASS")
    assert verdict["summary"]["decision"] == "READY"  # type: ignore[index]


def test_readiness_blocks_when_sections_are_missing(real: Path) -> None:
    code, verdict, _ = mmbot("gate", "readiness", real, "--json")
    assert (code, verdict["status"]) == (ExitCode.FAIL, "FAIL")
    assert {name for name, status in checks(verdict).items() if status == "FAIL"} >= {
        "guards", "chaos", "tests",
    }  # fmt: skip


@pytest.mark.parametrize(
    ("section", "message"),
    [
        ("edge=1", "comes from the journal's net_bps"),
        ("guards=2", "share in [0, 1]"),
        ("guards", "expected NAME=SHARE"),
    ],
)
def test_readiness_refuses_a_bad_section(real: Path, section: str, message: str) -> None:
    result = runner.invoke(app, ["gate", "readiness", str(real), "--section", section])
    assert result.exit_code == ExitCode.USAGE
    assert result.stderr.startswith("error: ") and message in result.stderr


# --- the profile recorded in run.json -------------------------------------------------


def test_gate_judges_by_the_journals_own_profile(real: Path) -> None:
    code, verdict, stderr = mmbot("gate", "kpi", real, "--json")
    assert code == ExitCode.OK  # the sensible mm3 bot on the real capture (README table)
    assert verdict["summary"]["fee_tier"] == "mm3"  # type: ignore[index]
    assert checks(verdict)["fees"] == "PASS"
    assert "warning" not in stderr


def test_another_profile_is_used_with_a_one_line_warning(real: Path) -> None:
    code, verdict, stderr = mmbot("gate", "kpi", real, "-p", "base", "--json")
    assert verdict["summary"]["fee_tier"] == "mm1"  # type: ignore[index]
    assert checks(verdict)["fees"] == "FAIL"  # the journal's mm3 rebate is not mm1's
    assert code == ExitCode.FAIL
    assert stderr.splitlines() == [
        "warning: profile 'base' given; the journal ran with 'mm3' (run.json)"
    ]


def test_kpi_takes_the_horizon_of_the_journals_profile(real: Path, tmp_path: Path) -> None:
    profile = tmp_path / "slow_edge.yaml"
    profile.write_text("extends: mm3\ngates:\n  horizon_ms: 5000\n")
    copy = tmp_path / "journal"
    shutil.copytree(real, copy)
    manifest = json.loads((copy / MANIFEST).read_text())
    (copy / MANIFEST).write_text(json.dumps({**manifest, "profile": str(profile)}))

    def adverse(*args: str | Path) -> float:
        code, data, _ = mmbot("kpi", *args, "--json")
        assert code == ExitCode.OK
        return float(data["total"]["adverse_bps"])  # type: ignore[index]

    assert adverse(copy) == adverse(real, "--horizon-ms", "5000")
    assert adverse(copy) != adverse(real)
    assert adverse(real, "--set", "gates.horizon_ms=5000") == adverse(copy)  # --set on kpi


def test_report_uses_the_journals_profile(real: Path, tmp_path: Path) -> None:
    _, gate, _ = mmbot("gate", "kpi", real, "--json")
    out = f"file://{tmp_path}/reports"
    code, published, stderr = mmbot("report", "kpi-gate", "--journal", real, "--out", out, "--json")
    assert published["status"] == gate["status"]
    assert code == {"PASS": 0, "WARN": 2, "FAIL": 1}[str(gate["status"])]
    assert "warning" not in stderr
    verdict = next(u for u in published["urls"] if u.endswith("verdict.json"))  # type: ignore[attr-defined]
    assert json.loads(Path(verdict.removeprefix("file://")).read_text())["summary"]["fee_tier"] == (
        "mm3"
    )


# --- journal export -------------------------------------------------------------------


@pytest.mark.parametrize("table", ["fills", "orders"])
def test_parquet_export_reads_back_as_the_journals_table(
    real: Path, tmp_path: Path, table: str
) -> None:
    out = tmp_path / f"{table}.parquet"
    code, done, _ = mmbot("journal", "export", real, "--table", table, "--format", "parquet",
                          "--out", out, "--json")  # fmt: skip
    assert code == ExitCode.OK
    journal = read_table(real, table)
    assert done == {"format": "parquet", "path": str(out), "rows": len(journal), "table": table}
    back = pd.read_parquet(out)
    pd.testing.assert_frame_equal(back.drop(columns=TIME_COLUMN), journal)  # dtypes too
    assert str(back[TIME_COLUMN].dtype) == "datetime64[ns, UTC]"
    assert (back[TIME_COLUMN].astype("int64") == journal["ts_ns"]).all()
    assert pq.read_schema(out).remove(0).equals(SCHEMAS[table], check_metadata=False)


def test_csv_export_reads_back_as_documented(real: Path, tmp_path: Path) -> None:
    out = tmp_path / "fills.csv"
    result = runner.invoke(app, ["journal", "export", str(real), "--table", "fills",
                                 "--out", str(out)])  # fmt: skip
    assert (result.exit_code, result.stdout.strip()) == (ExitCode.OK, str(out))
    journal = read_table(real, "fills")
    back = pd.read_csv(out, dtype={"fee_exact": str})
    assert list(back.columns) == [TIME_COLUMN, *journal.columns]
    times = pd.to_datetime(back[TIME_COLUMN], utc=True)
    assert (times.astype("int64") == journal["ts_ns"]).all()  # to the nanosecond
    assert back[TIME_COLUMN].iloc[0].endswith("Z")
    for column in ("price", "qty", "fee", "mid"):  # the same doubles
        assert (back[column].to_numpy() == journal[column].to_numpy()).all(), column
    for column in ("ts_ns", "side", "px_ticks", "qty_lots"):
        assert (back[column].to_numpy() == journal[column].to_numpy()).all(), column
    assert [Decimal(v) for v in back["fee_exact"]] == list(journal["fee_exact"])
    for column in ("symbol", "client_order_id", "trade_id", "liquidity"):
        assert back[column].tolist() == journal[column].tolist(), column


def test_csv_to_stdout_is_the_same_file(real: Path, tmp_path: Path) -> None:
    out = tmp_path / "orders.csv"
    runner.invoke(app, ["journal", "export", str(real), "--table", "orders", "--out", str(out)])
    piped = runner.invoke(app, ["journal", "export", str(real), "--table", "orders"])
    assert piped.exit_code == ExitCode.OK
    assert piped.stdout_bytes == out.read_bytes()
