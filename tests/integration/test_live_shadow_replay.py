"""Shadow on live data: `mmbot run --mode shadow --exchange bybit --record DIR` on the
local exchange's streams (replaying the real BTCUSDT capture in real time) writes the
market it heard; a shadow replay of that recording journals what the live shadow
journaled, and the accuracy gate compares the two (DESIGN §1's dry-run
compare on live data). The live bot is a whole `mmbot` process."""

from __future__ import annotations

import json
import subprocess
from collections import Counter
from pathlib import Path

import pandas as pd
import pytest

from bot.exitcodes import ExitCode
from bot.market.readers import open_market
from bot.runtime.run import RunSpec, execute
from flows.cli import main
from gates.accuracy import COMPARED
from tests.integration.live_bots import MMBOT
from tests.integration.local_exchange import ServerThread

pytestmark = pytest.mark.integration
TABLES = ("book", "quotes", "orders", "fills", "risk", "positions")


def schema(journal: Path, table: str) -> list[tuple[str, str]]:
    frame = pd.read_parquet(journal / table)
    return [(str(name), str(dtype)) for name, dtype in frame.dtypes.items()]


def fills(journal: Path) -> list[tuple[int, float, float]]:
    frame = pd.read_parquet(journal / "fills")
    return list(frame[["side", "price", "qty"]].itertuples(index=False, name=None))


def test_a_live_shadow_journals_what_a_replay_of_the_market_it_heard_journals(
    binance_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    live, tape, replay = tmp_path / "live", tmp_path / "tape", tmp_path / "replay"
    with ServerThread() as server:
        server.call(lambda: server.venue.replay(open_market(binance_dir)))
        done = subprocess.run(
            [MMBOT, "run", "--mode", "shadow", "--exchange", "bybit", "--exchange-url",
             server.base_url, "--duration", "30s", "--out", str(live), "--record", str(tape),
             "--no-progress", "--log-level", "error", "--json"],
            capture_output=True, text=True, timeout=120,
        )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    recorded = json.loads(done.stdout.strip().splitlines()[-1])["recorded"]["BTCUSDT"]
    assert recorded["rows"] > 10_000 and recorded["trades"] > 100 and recorded["gaps"] == 0
    execute(RunSpec(mode="shadow", out_dir=replay, data=Path(recorded["path"]),
                    progress=False))  # fmt: skip

    # the same journal: every table, its columns and their types
    for table in TABLES:
        assert schema(live, table) == schema(replay, table), table
    # the same trading: the fills on the same side, price and size. Fill for fill in
    # a calm market such as this one; where streams race (a fast market, a loaded
    # machine) the order heard and the exchange's order can differ (README)
    heard, replayed = Counter(fills(live)), Counter(fills(replay))
    assert sum(heard.values()) >= 3
    both = sum((heard & replayed).values())
    assert both >= 0.5 * max(sum(heard.values()), sum(replayed.values())), (heard, replayed)
    # and the accuracy gate compares them window by window (3 s windows on 30 s)
    capsys.readouterr()
    gate = ["gate", "accuracy", str(live), str(replay), "--json", "--set",
            "gates.accuracy.interval=3s", "--set", "gates.accuracy.min_windows=2"]  # fmt: skip
    code = main(gate)
    verdict = json.loads(capsys.readouterr().out)
    assert verdict["summary"]["aligned_intervals"] >= 9
    compared = {c["name"]: c["status"] for c in verdict["checks"] if c["name"] in COMPARED}
    # (a verdict, not an error: its figures vary with the divergence measured in the README)
    assert set(compared) == set(COMPARED) and code in (ExitCode.OK, ExitCode.WARN, ExitCode.FAIL)
    assert all(c["value"] is not None for c in verdict["checks"] if c["name"] in COMPARED)


def test_record_is_refused_for_a_replay(tmp_path: Path, capsys: pytest.CaptureFixture[str]
                                        ) -> None:  # fmt: skip
    argv = ["run", "--synth", "1", "--duration", "1m", "--out", str(tmp_path / "j"),
            "--record", str(tmp_path / "tape")]  # fmt: skip
    assert main(argv) == ExitCode.USAGE
    assert "--record is for a run on an exchange's streams" in capsys.readouterr().err
    assert not (tmp_path / "j").exists()
