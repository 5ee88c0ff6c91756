"""bot/journal_export.py and `mmbot journal export` on the gates' hand journal: every
table round-trips, and what cannot be exported is refused with a named exit code.
(The round trips on a real run are in tests/e2e/test_cli_journals.py.)"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from bot.exitcodes import ExitCode
from bot.journal import MANIFEST, TABLES, read_table
from bot.journal_export import TIME_COLUMN, ExportError, export_table
from flows.cli import app
from tests.unit import gates_helpers as h

runner = CliRunner()


@pytest.fixture(scope="module")
def journal(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return h.write_journal(tmp_path_factory.mktemp("export") / "run-7")


@pytest.mark.parametrize("table", TABLES)
def test_every_table_round_trips_through_parquet(journal: Path, tmp_path: Path, table: str) -> None:
    out = tmp_path / f"{table}.parquet"
    done = export_table(journal, table, "parquet", out)
    back = pd.read_parquet(out)
    pd.testing.assert_frame_equal(back.drop(columns=TIME_COLUMN), read_table(journal, table))
    assert done.rows == len(back)


def test_csv_writes_an_empty_text_field_for_an_empty_string(journal: Path, tmp_path: Path) -> None:
    # as documented: CSV cannot tell "" from missing, so pandas reads the reason as NaN
    out = tmp_path / "orders.csv"
    export_table(journal, "orders", "csv", out)
    assert (read_table(journal, "orders")["reason"] == "").all()
    assert pd.read_csv(out)["reason"].isna().all()
    assert (pd.read_csv(out, keep_default_na=False)["reason"] == "").all()


def _incomplete(journal: Path, tmp_path: Path) -> Path:
    copy = tmp_path / "interrupted"
    shutil.copytree(journal, copy)
    manifest = json.loads((copy / MANIFEST).read_text())
    manifest.pop("journal")
    (copy / MANIFEST).write_text(json.dumps(manifest))
    return copy


def export(*args: str | Path) -> tuple[int, str]:
    result = runner.invoke(app, ["journal", "export", *map(str, args)])
    return result.exit_code, result.stderr


def test_an_incomplete_journal_is_refused_like_the_gates_refuse_it(
    journal: Path, tmp_path: Path
) -> None:
    out = tmp_path / "fills.csv"
    code, stderr = export(_incomplete(journal, tmp_path), "--table", "fills", "--out", out)
    assert code == ExitCode.DATA
    assert stderr.startswith("error: ") and "incomplete journal" in stderr
    assert not out.exists()
    # the same journal, whole, exports
    assert export(journal, "--table", "fills", "--out", out) == (ExitCode.OK, "")


def test_a_partial_directory_is_refused(journal: Path, tmp_path: Path) -> None:
    partial = tmp_path / "run.partial"
    shutil.copytree(journal, partial)
    code, stderr = export(partial, "--table", "fills")
    assert code == ExitCode.DATA and "partial journal" in stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--table", "fillz"), "unknown journal table 'fillz'; tables are book, quotes"),
        (("--table", "fills", "--format", "parquet"), "give the file with --out"),
        (("--table", "fills", "--json"), "--json describes the file written"),
    ],
)
def test_usage_errors_name_what_is_wrong(
    journal: Path, args: tuple[str, ...], message: str
) -> None:
    code, stderr = export(journal, *args)
    assert code == ExitCode.USAGE
    assert stderr.startswith("error: ") and message in stderr


def test_not_a_journal_is_a_data_error(tmp_path: Path) -> None:
    code, stderr = export(tmp_path, "--table", "fills")
    assert code == ExitCode.DATA and "not a journal directory" in stderr
    with pytest.raises(ExportError, match="unknown export format 'xlsx'"):
        export_table(tmp_path, "fills", "xlsx", tmp_path / "x")  # type: ignore[arg-type]
