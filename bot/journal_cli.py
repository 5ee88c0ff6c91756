"""`mmbot journal export`: a journal's table as CSV or Parquet (bot/journal_export.py)."""

from __future__ import annotations

import json
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer

from bot.cli_common import JsonOpt, fail, with_log_options
from bot.exitcodes import ExitCode
from bot.journal import TABLES, JournalError

journal_app = typer.Typer(no_args_is_help=True, help="Journals: export a table as CSV or Parquet")


class Format(StrEnum):
    csv = "csv"
    parquet = "parquet"


@journal_app.command("export")
@with_log_options
def export(
    journal: Annotated[
        Path,
        typer.Argument(metavar="RUN", help="journal directory (with run.json)", show_default=False),
    ],
    table: Annotated[str, typer.Option("--table", help=f"the journal table: {', '.join(TABLES)}")],
    fmt: Annotated[Format, typer.Option("--format", help="file format")] = Format.csv,
    out: Annotated[
        Path | None,
        typer.Option("--out", help="file to write (default: CSV on stdout)", show_default=False),
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Write one table of a whole journal as CSV or Parquet, with a UTC time column.

    Prints the file written (with --json: {table, format, rows, path}); exit 65 for a
    journal that is not whole (an interrupted run) or cannot be read.
    """
    from bot.journal_export import ExportError, export_table  # pyarrow.csv: pay only here

    if as_json and out is None:
        raise fail("--json describes the file written: give it with --out")
    try:
        done = export_table(journal, table, fmt.value, out)
    except ExportError as exc:  # before JournalError: a bad table, format or --out
        raise fail(str(exc), ExitCode.USAGE) from exc
    except JournalError as exc:
        raise fail(str(exc), ExitCode.DATA) from exc
    if out is None:
        return
    typer.echo(json.dumps(done.to_dict(), sort_keys=True) if as_json else done.path)
