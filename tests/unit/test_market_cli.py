"""`mmbot market info` and `mmbot market convert`, through Typer's CliRunner."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import structlog
from typer.testing import CliRunner

from bot.exitcodes import ExitCode
from bot.market.cli import market_app
from bot.market.readers import read_parquet, read_tardis
from bot.market.schema import COLUMNS

runner = CliRunner()


@pytest.fixture(autouse=True)
def _fresh_structlog() -> object:
    # another test may have bound structlog to a stream CliRunner has since closed
    structlog.reset_defaults()
    yield
    structlog.reset_defaults()


BAD_TRADES = """exchange,symbol,timestamp,local_timestamp,id,side,price,amount
x,BTCUSDT,1000,1000,1,buy,100.5,0.2
x,BTCUSDT,2000,2000,2,sell,-1,0.1
x,BTCUSDT,3000,3000,3,buy,100.5,0.3
"""


def test_info_json_on_real_binance(binance_dir: Path) -> None:
    result = runner.invoke(market_app, ["info", str(binance_dir), "--json"])
    assert result.exit_code == ExitCode.OK, result.output
    info = json.loads(result.stdout)
    assert info["symbol"] == "BTCUSDT" and info["format"] == "tardis"
    assert info["counts"] == {"DELTA": 443_193, "SNAPSHOT": 2_000, "TRADE": 21_308}
    assert info["start_utc"] == "2024-08-08T23:54:15.319702Z"
    assert info["ts_exch_inversions"] == 770
    assert info["ts_local_backwards"] == 0
    assert info["gaps_over_limit"] == 0
    assert 340 < info["duration_s"] < 350  # "about 5.7 minutes"
    assert info["violations"] == {}


def test_info_text_and_gap_limit(bybit_ob500: Path) -> None:
    result = runner.invoke(market_app, ["info", str(bybit_ob500), "--max-gap-ms", "100"])
    assert result.exit_code == ExitCode.OK, result.output
    assert "XRPUSDT" in result.stdout
    # Bybit publishes ob500 every ~100 ms: a few steps are 101-104 ms
    line = next(x for x in result.stdout.splitlines() if x.startswith("gaps_over_limit"))
    assert int(line.split()[1]) > 0


def test_info_missing_path_is_a_usage_error(tmp_path: Path) -> None:
    result = runner.invoke(market_app, ["info", str(tmp_path / "nope")])
    assert result.exit_code == ExitCode.USAGE
    assert "not found" in result.stderr


def test_convert_real_binance_round_trip(tmp_path: Path, binance_dir: Path) -> None:
    out = tmp_path / "btc" / "BTCUSDT.parquet"
    result = runner.invoke(market_app, ["convert", str(binance_dir), "--out", str(out)])
    assert result.exit_code == ExitCode.OK, result.output
    summary = json.loads(result.stdout)
    assert summary["rows"] == 466_501 and summary["symbol"] == "BTCUSDT"
    assert not out.with_name(out.name + ".partial").exists()
    source = list(read_tardis(binance_dir))
    back = list(read_parquet(out))
    for name in COLUMNS:
        a = np.concatenate([getattr(c, name) for c in source])
        b = np.concatenate([getattr(c, name) for c in back])
        assert np.array_equal(a, b), name


def test_convert_bad_data_exits_65_and_leaves_no_file(tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    (src / "trades.csv").write_text(BAD_TRADES)
    out = tmp_path / "out.parquet"
    result = runner.invoke(market_app, ["convert", str(src), "--out", str(out)])
    assert result.exit_code == ExitCode.DATA
    # the -1 price is on line 3 of the file (the header is line 1)
    assert f"file {src / 'trades.csv'} line 3: bad value: column price = -1.0" in result.stderr
    assert not out.exists() and not (tmp_path / "out.parquet.partial").exists()

    result = runner.invoke(
        market_app, ["convert", str(src), "--out", str(out), "--on-error", "skip"]
    )
    assert result.exit_code == ExitCode.OK, result.output
    assert json.loads(result.stdout)["skipped"] == {"bad_value": 1}
    assert [int(x) for c in read_parquet(out) for x in c.trade_id] == [1, 3]


def test_convert_unknown_format_layout_is_a_data_error(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("hello")
    result = runner.invoke(market_app, ["convert", str(tmp_path), "--out", str(tmp_path / "o")])
    assert result.exit_code == ExitCode.DATA
    assert "cannot tell the format" in result.stderr
