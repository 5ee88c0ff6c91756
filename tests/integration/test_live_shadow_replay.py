"""Shadow on live data: `mmbot run --mode shadow --exchange bybit` on the local exchange's
streams (replaying the real BTCUSDT capture in real time) while `mmbot market record`
records the same window; a shadow replay of the recording then journals what the live
shadow journaled, and the accuracy gate compares the two (DESIGN §1's dry-run compare
on live data). Both bots are whole `mmbot` processes."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pandas as pd
import pytest

from bot.exitcodes import ExitCode
from bot.market.readers import open_market
from bot.runtime.run import RunSpec, execute
from flows.cli import main
from gates.accuracy import COMPARED
from gates.kpi import compute_kpis, load_journal
from tests.integration.live_bots import MMBOT
from tests.integration.local_exchange import ServerThread

pytestmark = pytest.mark.integration
TABLES = ("book", "quotes", "orders", "fills", "risk", "positions")


def run_both(server: ServerThread, recorded: Path, live: Path) -> None:
    """The recorder and the live shadow, started together on the same streams; the
    recorder runs on a little longer, so the recording holds the shadow's whole window."""
    common = ("--exchange", "bybit", "--exchange-url", server.base_url, "--log-level", "error")
    procs = [
        subprocess.Popen([MMBOT, "market", "record", *common, "--symbols", "BTC/USDT:USDT",
                          "--duration", "33s", "--out", str(recorded)],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True),
        subprocess.Popen([MMBOT, "run", "--mode", "shadow", *common, "--duration", "30s",
                          "--out", str(live), "--no-progress"],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True),
    ]  # fmt: skip
    for proc in procs:
        _, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err[-3000:]


def schema(journal: Path, table: str) -> list[tuple[str, str]]:
    frame = pd.read_parquet(journal / table)
    return [(str(name), str(dtype)) for name, dtype in frame.dtypes.items()]


def test_a_live_shadow_journals_what_a_replay_of_its_recorded_window_journals(
    binance_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    recorded, live, replay = tmp_path / "recorded", tmp_path / "live", tmp_path / "replay"
    with ServerThread() as server:
        server.call(lambda: server.venue.replay(open_market(binance_dir)))
        run_both(server, recorded, live)
    execute(RunSpec(mode="shadow", out_dir=replay, data=recorded / "BTCUSDT.parquet",
                    progress=False))  # fmt: skip

    # the same journal: every table, its columns and their types
    for table in TABLES:
        assert schema(live, table) == schema(replay, table), table
    # the same trading over the live window, within the noise of ccxt's book: it hands
    # the bot the book as it stands when the bot asks, so the live engine sees fewer,
    # merged book states than the recorder wrote (README, "Shadow on live data")
    live_fills = pd.read_parquet(live / "fills")
    end_ns = pd.read_parquet(live / "book")["ts_ns"].max()
    replay_fills = pd.read_parquet(replay / "fills")
    replay_fills = replay_fills[replay_fills["ts_ns"] <= end_ns]
    assert len(live_fills) >= 3
    assert abs(len(live_fills) - len(replay_fills)) <= max(2, len(live_fills) // 2)
    assert compute_kpis(load_journal(live)).total["fills"] == len(live_fills)
    # and the accuracy gate compares them window by window (3 s windows on 30 s)
    capsys.readouterr()
    gate = ["gate", "accuracy", str(live), str(replay), "--json", "--set",
            "gates.accuracy.interval=3s", "--set", "gates.accuracy.min_windows=2"]  # fmt: skip
    assert main(gate) in (ExitCode.OK, ExitCode.WARN, ExitCode.FAIL)
    verdict = json.loads(capsys.readouterr().out)
    assert verdict["summary"]["aligned_intervals"] >= 9
    compared = {c["name"]: c for c in verdict["checks"] if c["name"] in COMPARED}
    assert set(compared) == set(COMPARED)
    assert all(c["value"] is not None for c in compared.values()), compared
