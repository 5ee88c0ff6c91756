"""`mmbot run --format`: the market data's format given, not guessed from the file name.

On the real Bybit ob500 sample (50 lines) under a name no reader recognises.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from bot.exitcodes import ExitCode
from bot.journal import read_manifest, read_table
from flows.cli import app

runner = CliRunner()


@pytest.fixture(scope="module")
def unnamed(bybit_ob500: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("data") / "xrp-book.jsonl"
    shutil.copy(bybit_ob500, path)
    return path


def run(data: Path, out: Path, *extra: str) -> tuple[int, str, str]:
    args = ["run", "--mode", "paper", "-p", "xrpusdt", "--data", str(data), "--out", str(out),
            "--no-progress", "--log-level", "error", *extra]  # fmt: skip
    result = runner.invoke(app, args)
    return result.exit_code, result.stdout, result.stderr


def test_without_format_an_unknown_name_is_refused_naming_the_option(
    unnamed: Path, tmp_path: Path
) -> None:
    code, _, stderr = run(unnamed, tmp_path / "j")
    assert code == ExitCode.DATA
    assert stderr.startswith(f"error: {unnamed}: cannot tell the format")
    assert "--format tardis|parquet|bybit" in stderr


def test_format_reads_the_file_with_the_reader_given(unnamed: Path, tmp_path: Path) -> None:
    code, stdout, _ = run(unnamed, tmp_path / "j", "--format", "bybit", "--json")
    assert code == ExitCode.OK
    summary = json.loads(stdout)
    assert summary["replay"]["messages"] == len(unnamed.read_text().splitlines())
    manifest = read_manifest(tmp_path / "j")
    assert manifest["data_source"] == str(unnamed)
    assert manifest["settings"]["data"]["format"] == "bybit"
    assert len(read_table(tmp_path / "j", "orders")) > 0  # the bot quoted on that book


@pytest.mark.parametrize("fmt", ["tardis", "parquet"])
def test_a_wrong_format_is_a_data_error_naming_the_file(
    unnamed: Path, tmp_path: Path, fmt: str
) -> None:
    code, _, stderr = run(unnamed, tmp_path / "j", "--format", fmt)
    assert code == ExitCode.DATA
    assert stderr.startswith("error: ") and str(unnamed) in stderr


def test_format_and_a_synthetic_market_are_a_usage_error(tmp_path: Path) -> None:
    result = runner.invoke(app, ["run", "--out", str(tmp_path / "j"), "--synth", "7",
                                 "--format", "bybit"])  # fmt: skip
    assert result.exit_code == ExitCode.USAGE
    assert result.stderr == "error: --format is the format of --data; a --synth market has none\n"


def test_an_unknown_format_is_a_usage_error_listing_the_formats(
    unnamed: Path, tmp_path: Path
) -> None:
    code, _, stderr = run(unnamed, tmp_path / "j", "--format", "csv")
    assert code == ExitCode.USAGE
    assert stderr.startswith("error: invalid value for '--format'")
    assert all(name in stderr for name in ("tardis", "bybit", "parquet"))
