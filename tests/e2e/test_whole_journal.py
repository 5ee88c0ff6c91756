"""Journals that are whole: a run is published only when it finished, what an
interrupted run leaves is refused by every judge, the summary's PnL is the KPI's,
and run.json says how much data the run really replayed."""

from __future__ import annotations

import gzip
import json
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from structlog.testing import capture_logs
from typer.testing import CliRunner

from bot.exitcodes import ExitCode
from bot.journal import (
    IncompleteJournal,
    JournalWriter,
    partial_path,
    read_manifest,
    read_table,
    read_tables,
)
from bot.market.synth import generate
from bot.market.validate import MarketDataError
from bot.profiles import load_settings
from bot.runtime.run import RunError, RunResult, RunSpec, execute, summary_lines
from flows.cli import app
from gates.kpi import compute_kpis, load_journal

MMBOT = Path(sys.executable).parent / "mmbot"
NS_PER_S = 1_000_000_000
runner = CliRunner()


def judges_refuse(journal: Path, tmp_path: Path) -> list[str]:
    """`kpi`, `gate kpi` and `report` on `journal`: each must exit 65; their messages."""
    messages = []
    for args in (
        ["kpi", str(journal)],
        ["gate", "kpi", str(journal)],
        ["report", "kpi-gate", "--journal", str(journal), "--out", f"file://{tmp_path}/rep"],
    ):
        result = runner.invoke(app, args)
        assert result.exit_code == ExitCode.DATA, (args, result.output)
        messages.append(result.output.strip())
    return messages


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_an_interrupted_run_leaves_a_partial_journal_that_no_judge_accepts(
    sig: signal.Signals, tmp_path: Path
) -> None:
    assert MMBOT.is_file(), f"the mmbot console script is missing: {MMBOT}"
    out = tmp_path / "run"
    partial = partial_path(out)
    # 24 h of synthetic market: far more than the seconds before the signal
    proc = subprocess.Popen(
        [str(MMBOT), "--log-level", "error", "run", "--out", str(out), "--synth", "3",
         "--duration", "24h", "--no-progress"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    deadline = time.monotonic() + 120
    while not (partial / "run.json").exists() and proc.poll() is None:
        assert time.monotonic() < deadline, "the run never started its journal"
        time.sleep(0.05)
    time.sleep(1.5)  # into the replay
    proc.send_signal(sig)
    stdout, stderr = proc.communicate(timeout=120)
    assert proc.returncode == ExitCode.INTERRUPTED, stderr
    assert stderr.strip().splitlines() == [f"interrupted; partial journal at {partial}"]
    assert stdout == "" and not out.exists()
    # what the run had is on disk, and it stopped long before the end of its data
    orders = read_table(partial, "orders")
    assert len(orders) > 0
    assert orders.ts_ns.max() - orders.ts_ns.min() < 23 * 3_600 * NS_PER_S
    assert read_manifest(partial, allow_partial=True)["journal"] == {"complete": False}
    assert all("partial journal" in m for m in judges_refuse(partial, tmp_path))
    # renamed by hand, it is still incomplete: the manifest has no completion marker
    renamed = tmp_path / "renamed"
    shutil.copytree(partial, renamed)
    assert all("incomplete journal" in m for m in judges_refuse(renamed, tmp_path))


@pytest.fixture(scope="module")
def broken_capture(binance_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The real BTCUSDT capture with a zero price in trade 15,000 of 21,308 (about 70 %
    into the 5.7 min): the validator stops the replay there."""
    root = tmp_path_factory.mktemp("broken")
    shutil.copy(binance_dir / "incremental_book_L2.csv.gz", root)
    with gzip.open(binance_dir / "trades.csv.gz", "rt") as fh:
        lines = fh.read().splitlines()
    header = lines[0].split(",")
    cells = lines[15_000].split(",")
    cells[header.index("price")] = "0"
    lines[15_000] = ",".join(cells)
    (root / "trades.csv").write_text("\n".join(lines) + "\n")
    return root


def test_a_data_error_mid_run_names_the_error_and_the_partial_journal(
    broken_capture: Path, tmp_path: Path
) -> None:
    out = tmp_path / "run"
    result = runner.invoke(app, ["run", "--out", str(out), "--data", str(broken_capture)])
    assert result.exit_code == ExitCode.DATA, result.output
    lines = result.output.strip().splitlines()
    assert lines[-2].startswith("error: ") and "bad value" in lines[-2]
    assert lines[-1] == f"partial journal at {partial_path(out)}"
    assert not out.exists()
    assert len(read_table(partial_path(out), "book")) > 0  # the rows before the error
    judges_refuse(partial_path(out), tmp_path)
    # the next run does not replace the partial journal without --force
    again = runner.invoke(app, ["run", "--out", str(out), "--synth", "1", "--duration", "1m"])
    assert again.exit_code == ExitCode.USAGE
    assert "holds the partial journal of an interrupted run; pass --force" in again.output


def test_a_forced_run_replaces_the_journal_only_when_it_finishes(
    binance_dir: Path, broken_capture: Path, tmp_path: Path
) -> None:
    out = tmp_path / "run"
    first = execute(RunSpec(mode="paper", out_dir=out, data=binance_dir, duration="60s"))
    (out / "notes.txt").write_text("mine")
    # a forced run that dies on bad data leaves the old journal whole
    with pytest.raises(MarketDataError, match="bad value"):
        execute(RunSpec(mode="paper", out_dir=out, data=broken_capture, force=True))
    assert read_manifest(out)["run_id"] == first.run_id
    assert len(read_tables(out)["fills"]) == first.summary["fills"]
    assert partial_path(out).is_dir()
    # the next forced run replaces both the partial and the old journal; the user's file stays
    again = execute(
        RunSpec(mode="paper", out_dir=out, data=binance_dir, duration="90s", force=True)
    )
    assert read_manifest(out)["run_id"] == again.run_id != first.run_id
    assert (out / "notes.txt").read_text() == "mine"
    assert not partial_path(out).exists()


def test_a_partial_directory_that_is_not_a_journal_is_left_alone(tmp_path: Path) -> None:
    out = tmp_path / "run"
    partial_path(out).mkdir()
    (partial_path(out) / "data.csv").write_text("x")
    with pytest.raises(RunError, match=r"run\.partial exists and is not a partial journal"):
        execute(RunSpec(mode="paper", out_dir=out, synth_seed=1, duration="1m", force=True))
    assert (partial_path(out) / "data.csv").exists()


def duration_events(logs: list[dict[str, object]]) -> list[dict[str, object]]:
    return [e for e in logs if str(e["event"]).startswith("duration_")]


def test_a_duration_longer_than_the_data_warns_and_run_json_has_the_real_span(
    binance_dir: Path, tmp_path: Path
) -> None:
    with capture_logs() as logs:
        result = execute(RunSpec(mode="paper", out_dir=tmp_path, data=binance_dir, duration="6h"))
    (event,) = duration_events(logs)
    assert event["event"] == "duration_exceeds_data" and event["log_level"] == "warning"
    assert event["detail"] == "duration 6h is longer than the data (5.7m)"
    manifest = read_manifest(tmp_path)
    replay = result.summary["replay"]
    assert manifest["duration"] == "6h"
    assert manifest["data_span"]["first_ts_ns"] == replay["first_ts_ns"]
    assert manifest["data_span"]["last_ts_ns"] == replay["last_ts_ns"]
    assert 340 < manifest["data_span"]["seconds"] < 350 and manifest["data_span"]["text"] == "5.7m"
    assert manifest["data_span"]["cut_by_duration"] is False


def test_a_duration_that_cuts_a_compressed_capture_short_warns_after_the_replay(
    binance_dir: Path, tmp_path: Path
) -> None:
    with capture_logs() as logs:
        execute(RunSpec(mode="paper", out_dir=tmp_path, data=binance_dir, duration="100s"))
    (event,) = duration_events(logs)
    assert event["event"] == "duration_cuts_data"
    assert str(event["detail"]).startswith("duration 100s stops before the end of the data")
    span = read_manifest(tmp_path)["data_span"]
    assert span["cut_by_duration"] is True and span["seconds"] <= 100


@pytest.fixture(scope="module")
def ten_minutes_parquet(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """10 minutes of synthetic BTCUSDT in the project's Parquet format."""
    import pyarrow.parquet as pq

    settings = load_settings("base", overrides=["data.synth.duration=10m"])
    cfg = settings.data.synth
    path = tmp_path_factory.mktemp("pq") / "synth.parquet"
    writer = None
    for chunk in generate(cfg, settings.venue.symbols[cfg.symbol], 5):
        table = chunk.to_table()
        writer = writer or pq.ParquetWriter(path, table.schema)
        writer.write_table(table)
    assert writer is not None
    writer.close()
    return path


def test_a_duration_that_cuts_a_parquet_file_short_warns_before_the_replay(
    ten_minutes_parquet: Path, tmp_path: Path
) -> None:
    with capture_logs() as logs:
        execute(RunSpec(mode="paper", out_dir=tmp_path, data=ten_minutes_parquet, duration="4m"))
    names = [e["event"] for e in logs]
    (event,) = duration_events(logs)
    # from the file's metadata, before the replay starts
    assert names.index("duration_cuts_data") < names.index("run_start")
    assert event["detail"] == "duration 4m stops before the end of the data (10m)"
    assert read_manifest(tmp_path)["data_span"]["cut_by_duration"] is True


def test_a_duration_that_fits_the_data_does_not_warn(
    ten_minutes_parquet: Path, tmp_path: Path
) -> None:
    with capture_logs() as logs:
        execute(RunSpec(mode="paper", out_dir=tmp_path / "pq", data=ten_minutes_parquet,
                        duration="10m"))  # fmt: skip
        # the profile's synthetic market: run.duration and data.synth.duration agree
        execute(RunSpec(mode="paper", out_dir=tmp_path / "synth", synth_seed=2, duration="2m"))
    assert duration_events(logs) == []
    with capture_logs() as logs:
        execute(RunSpec(mode="paper", out_dir=tmp_path / "short", synth_seed=2,
                        overrides=("run.duration=3m", "data.synth.duration=2m")))  # fmt: skip
    (event,) = duration_events(logs)
    assert event["detail"] == "duration 3m is longer than the data (2m)"


def test_the_run_summary_pnl_is_the_kpi_pnl(real_paper_run: RunResult) -> None:
    result, journal = real_paper_run, real_paper_run.out_dir
    kpis = compute_kpis(load_journal(journal)).total
    assert result.summary["fills"] > 10  # a PnL worth comparing
    assert result.summary["pnl_usd"] == kpis["pnl_usd"]  # one figure, not two close ones
    assert f"pnl {kpis['pnl_usd']:.4f} USD" in "\n".join(summary_lines(result.summary))
    assert json.loads((journal / "summary.json").read_text())["pnl_usd"] == kpis["pnl_usd"]


def test_the_run_summary_shows_risk_blocks_with_their_top_check(
    binance_dir: Path, tmp_path: Path
) -> None:
    # a 0.01 BTC quote is about 600 USD: a 100 USD notional limit blocks every place
    args = ["run", "--out", str(tmp_path), "--data", str(binance_dir), "--duration", "60s",
            "--set", "risk.max_order_notional=100"]  # fmt: skip
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    risk = read_table(tmp_path, "risk")
    blocks = risk[risk.kind == "block"]
    assert len(blocks) > 100 and set(blocks.check) == {"max_order_notional"}
    assert f"risk blocks {len(blocks):,} (top: max_order_notional)" in result.output
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["blocks"] == len(blocks)
    assert summary["blocks_by_check"] == {"max_order_notional": len(blocks)}


def test_same_seed_same_bytes_across_time_bounded_segments(tmp_path: Path) -> None:
    a, b = tmp_path / "a", tmp_path / "b"
    for out in (a, b):
        execute(RunSpec(mode="paper", out_dir=out, synth_seed=11, duration="12m",
                        overrides=("storage.journal_segment=10m",)))  # fmt: skip
    # 12 min of data time: the busy tables cross the 10 min bound into a second part
    assert sorted(p.name for p in (a / "orders").iterdir()) == [
        "part-00000.parquet", "part-00001.parquet",
    ]  # fmt: skip
    files = sorted(p.relative_to(a) for p in a.rglob("*.parquet"))
    for rel in [*files, Path("run.json")]:
        assert (a / rel).read_bytes() == (b / rel).read_bytes(), rel


def test_a_leftover_partial_journal_is_not_judged_even_with_its_marker(tmp_path: Path) -> None:
    out = tmp_path / "run"
    writer = JournalWriter(partial_path(out), {"mode": "paper"})
    writer.close()
    with pytest.raises(IncompleteJournal, match="partial journal of a run that did not finish"):
        load_journal(partial_path(out))
