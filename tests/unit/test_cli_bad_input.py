"""Bad input through the installed `mmbot` script: one `error:` line naming the file
(and line), the named exit code, never a traceback (issue 7 §6).

Every case starts from the real captures in shared/data, damaged the way downloads
and disks damage files; the intact files pass the same commands elsewhere
(test_market_cli, test_run_sim).
"""

from __future__ import annotations

import gzip
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from bot.exitcodes import ExitCode

MMBOT = Path(sys.executable).parent / "mmbot"
BOOK = "incremental_book_L2.csv.gz"
TRADES = "trades.csv.gz"
NAN_LINE = 3001  # 1-based, the header is line 1


def mmbot(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MMBOT_")}
    return subprocess.run(
        [str(MMBOT), *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=300
    )


def one_error_line(done: subprocess.CompletedProcess[str], code: int) -> str:
    """The single `error:` line of a failed command, after checking its exit code."""
    assert done.returncode == code, done.stderr[-2000:]
    assert "Traceback" not in done.stderr and "Aborted" not in done.stderr, done.stderr[-2000:]
    errors = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, done.stderr[-2000:]
    return errors[0]


@pytest.fixture(scope="module")
def nan_dir(tmp_path_factory: pytest.TempPathFactory, binance_dir: Path) -> Path:
    """The real capture with price NaN on line 3001 of the book file (gzip'ed again)."""
    out = tmp_path_factory.mktemp("nan")
    lines = gzip.decompress((binance_dir / BOOK).read_bytes()).split(b"\n")
    fields = lines[NAN_LINE - 1].split(b",")
    fields[6] = b"NaN"  # exchange,symbol,timestamp,local_timestamp,is_snapshot,side,price
    lines[NAN_LINE - 1] = b",".join(fields)
    (out / BOOK).write_bytes(gzip.compress(b"\n".join(lines), compresslevel=1))
    shutil.copy(binance_dir / TRADES, out / TRADES)
    return out


# --- damaged files ----------------------------------------------------------------------


def test_a_truncated_gzip_is_a_data_error_naming_the_file(
    tmp_path: Path, binance_dir: Path
) -> None:
    data = tmp_path / "cut"
    data.mkdir()
    (data / BOOK).write_bytes((binance_dir / BOOK).read_bytes()[:100_000])
    shutil.copy(binance_dir / TRADES, data / TRADES)
    for args in (["market", "info", str(data)], ["run", "--data", str(data), "--out", "j"]):
        line = one_error_line(mmbot(*args, cwd=tmp_path), ExitCode.DATA)
        assert line.startswith(f"error: file {data / BOOK}: truncated gzip"), line


def test_a_zero_byte_book_file_is_a_data_error_not_a_trades_only_run(
    tmp_path: Path, binance_dir: Path
) -> None:
    data = tmp_path / "empty"
    data.mkdir()
    (data / BOOK).write_bytes(b"")
    shutil.copy(binance_dir / TRADES, data / TRADES)
    line = one_error_line(mmbot("run", "--data", str(data), "--out", "j", cwd=tmp_path), 65)
    assert line == f"error: file {data / BOOK}: empty (0 bytes), no CSV header line"


@pytest.mark.parametrize("damage", ["empty", "truncated", "garbage"])
def test_a_damaged_parquet_file_is_a_data_error(
    tmp_path: Path, binance_dir: Path, damage: str
) -> None:
    good = tmp_path / "BTCUSDT.parquet"
    done = mmbot("market", "convert", str(binance_dir), "--out", str(good), cwd=tmp_path)
    assert done.returncode == ExitCode.OK, done.stderr[-2000:]
    assert mmbot("market", "info", str(good), cwd=tmp_path).returncode == ExitCode.OK
    bad = tmp_path / f"{damage}.parquet"
    whole = good.read_bytes()
    bad.write_bytes({"empty": b"", "truncated": whole[: len(whole) // 2],
                     "garbage": b"PAR1" + bytes(range(256)) * 40}[damage])  # fmt: skip
    for args in (["market", "info", str(bad)], ["run", "--data", str(bad), "--out", "j"]):
        line = one_error_line(mmbot(*args, cwd=tmp_path), ExitCode.DATA)
        assert line.startswith(f"error: file {bad}: "), line


@pytest.fixture(scope="module")
def journal(tmp_path_factory: pytest.TempPathFactory, binance_dir: Path) -> Path:
    root = tmp_path_factory.mktemp("journal")
    done = mmbot("run", "--data", str(binance_dir), "--duration", "60s", "--out", "j", cwd=root)
    assert done.returncode == ExitCode.OK, done.stderr[-2000:]
    return root / "j"


def test_a_corrupt_run_json_is_a_data_error(journal: Path, tmp_path: Path) -> None:
    assert mmbot("kpi", str(journal), cwd=tmp_path).returncode == ExitCode.OK
    broken = tmp_path / "j"
    shutil.copytree(journal, broken)
    manifest = broken / "run.json"
    manifest.write_text(manifest.read_text()[:40])
    for args in (["kpi", str(broken)], ["gate", "kpi", str(broken)]):
        line = one_error_line(mmbot(*args, cwd=tmp_path), ExitCode.DATA)
        assert line.startswith(f"error: file {manifest}: corrupt run manifest"), line


def test_an_empty_journal_part_is_a_data_error(journal: Path, tmp_path: Path) -> None:
    broken = tmp_path / "j"
    shutil.copytree(journal, broken)
    part = sorted((broken / "fills").glob("part-*.parquet"))[0]
    part.write_bytes(b"")
    line = one_error_line(mmbot("kpi", str(broken), cwd=tmp_path), ExitCode.DATA)
    assert line.startswith(f"error: file {part}: not a readable Parquet part (0 bytes)"), line


# --- data errors name the file and its line -----------------------------------------------


def test_a_nan_price_names_the_file_and_line(nan_dir: Path, binance_dir: Path) -> None:
    info = mmbot("market", "info", str(nan_dir), "--json", cwd=nan_dir)
    assert info.returncode == ExitCode.OK, info.stderr[-2000:]  # `info` counts bad rows
    assert json.loads(info.stdout)["violations"] == {"bad_value": 1}
    done = mmbot("market", "convert", str(nan_dir), "--out", "x.parquet", cwd=nan_dir)
    line = one_error_line(done, ExitCode.DATA)
    assert line.startswith(f"error: file {nan_dir / BOOK} line {NAN_LINE}: bad value: "), line
    assert "column price = nan (delta row)" in line
    # the line named is the one that was changed, counted as `sed -n 3001p` would
    source = gzip.decompress((binance_dir / BOOK).read_bytes()).split(b"\n")
    damaged = gzip.decompress((nan_dir / BOOK).read_bytes()).split(b"\n")
    assert [i + 1 for i, (a, b) in enumerate(zip(source, damaged, strict=True)) if a != b] == [
        NAN_LINE
    ]


def test_a_bybit_line_with_a_bad_size_is_named(tmp_path: Path, bybit_ob500: Path) -> None:
    lines = bybit_ob500.read_text().splitlines()
    lines[9] = lines[9].replace('"b":[["', '"b":[["-', 1)  # a negative bid price, line 10
    assert lines[9] != bybit_ob500.read_text().splitlines()[9]
    bad = tmp_path / "2024-12-01_XRPUSDT_ob500.data"
    bad.write_text("\n".join(lines) + "\n")
    done = mmbot("market", "convert", str(bad), "--out", "x.parquet", cwd=tmp_path)
    line = one_error_line(done, ExitCode.DATA)
    assert line.startswith(f"error: file {bad} line 10: bad value: column price = -"), line


# --- the intermittent SIGABRT of `market convert` ------------------------------------------
# Cause: pyarrow's CSV stream read a Python file object from a pyarrow thread. A data
# error leaves that stream open inside the error's traceback; when the process exits
# with it still alive, the thread calls into a finalizing interpreter and the process
# aborts ("terminate called without an active exception" / "Fatal Python error:
# PyGILState_Release"). Before the fix the script below aborted 6 runs in 6.

ERROR_ALIVE_AT_EXIT = """
import sys
from bot.config import ValidationConfig
from bot.market.readers import read_tardis
from bot.market.validate import MarketDataError, Validator

try:
    for _ in Validator(ValidationConfig()).validate(read_tardis(sys.argv[1], chunk_rows=1000)):
        pass
except MarketDataError as exc:
    kept = exc  # the traceback, and the reader in it, live until the interpreter exits
"""


def test_a_data_error_alive_at_exit_does_not_abort_the_process(nan_dir: Path) -> None:
    for _ in range(4):
        done = subprocess.run(
            [sys.executable, "-c", ERROR_ALIVE_AT_EXIT, str(nan_dir)],
            capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr[-2000:]
        assert "Fatal" not in done.stderr and "terminate" not in done.stderr


def test_convert_on_a_nan_price_exits_65_every_time(nan_dir: Path, tmp_path: Path) -> None:
    # the first 20,000 lines of the damaged book file: the same error, a quicker process
    small = tmp_path / "small"
    small.mkdir()
    lines = gzip.decompress((nan_dir / BOOK).read_bytes()).split(b"\n")[:20_001]
    (small / BOOK).write_bytes(gzip.compress(b"\n".join(lines) + b"\n", compresslevel=1))
    for run in range(16):
        done = mmbot("market", "convert", str(small), "--out", "x.parquet", cwd=tmp_path)
        assert done.returncode == ExitCode.DATA, f"run {run}: {done.stderr[-2000:]}"
        assert "terminate" not in done.stderr and "Fatal" not in done.stderr
        assert not (tmp_path / "x.parquet").exists()


# --- the command line itself ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "choices"),
    [
        (["--log-format", "xml", "config", "show"], "'auto', 'json', 'console'"),
        (["--log-level", "loud", "config", "show"], "'debug', 'info', 'warning', 'error'"),
    ],
)
def test_a_bad_log_option_is_a_usage_error_listing_the_choices(
    args: list[str], choices: str, tmp_path: Path
) -> None:
    done = mmbot(*args, cwd=tmp_path)
    assert done.returncode == ExitCode.USAGE, done.stderr
    assert choices in done.stderr and "Traceback" not in done.stderr
    assert done.stdout == ""


def test_good_log_options_are_taken(tmp_path: Path) -> None:
    done = mmbot("--log-format", "json", "--log-level", "warning", "config", "show", cwd=tmp_path)
    assert done.returncode == ExitCode.OK, done.stderr
    env = {**os.environ, "MMBOT_LOG_FORMAT": "xml"}
    bad = subprocess.run([str(MMBOT), "config", "show"], cwd=tmp_path, env=env,
                         capture_output=True, text=True, timeout=120)  # fmt: skip
    assert bad.returncode == ExitCode.USAGE and "MMBOT_LOG_FORMAT" in bad.stderr
