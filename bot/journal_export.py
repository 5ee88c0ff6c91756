"""A journal table as a file users open in their own tools: CSV or Parquet.

The export is the table as `bot/journal.py` defines it (same columns, same order, same
values) with one column in front, `time_utc`, the row's `ts_ns` as a UTC time:

- Parquet keeps every type of the contract (int8 side, decimal128 `fee_exact`, int64
  ns stamps) and `time_utc` is `timestamp[ns, tz=UTC]`: `pandas.read_parquet` gives the
  journal's frame back, plus a `datetime64[ns, UTC]` column.
- CSV has no types: `time_utc` is ISO-8601 with nanoseconds and a Z
  (`2024-08-08T23:54:17.378229000Z`, `pd.to_datetime(..., utc=True)` reads it exactly),
  floats are written so that they read back to the same double, `fee_exact` is the exact
  decimal text (read it with `dtype={"fee_exact": str}` to keep it exact), and an
  empty text field is how CSV writes an empty string: pandas reads it as missing.

Only a whole journal is exported: an interrupted run's rows are not evidence
(IncompleteJournal, as the gates refuse it).
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Final, Literal

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pcsv
import pyarrow.parquet as pq

from bot.journal import SCHEMAS, TABLES, JournalError, read_manifest, read_table

ExportFormat = Literal["csv", "parquet"]
FORMATS: Final[tuple[ExportFormat, ...]] = ("csv", "parquet")
TIME_COLUMN: Final = "time_utc"
ISO_NS: Final = "%Y-%m-%dT%H:%M:%SZ"  # %S carries the nanoseconds of a timestamp[ns]


class ExportError(JournalError):
    """A table or format that cannot be exported, or an output that cannot be written."""


@dataclass(frozen=True, slots=True)
class Exported:
    table: str
    format: ExportFormat
    rows: int
    path: str  # "-" for stdout

    def to_dict(self) -> dict[str, object]:
        return {"table": self.table, "format": self.format, "rows": self.rows, "path": self.path}


def export_frame(root: Path, table: str) -> pa.Table:
    """The journal's `table` with `time_utc` in front, typed as Parquet stores it."""
    if table not in SCHEMAS:
        raise ExportError(f"unknown journal table {table!r}; tables are {', '.join(TABLES)}")
    read_manifest(root)  # IncompleteJournal for a partial or unfinished run
    frame = read_table(root, table)
    arrow = pa.Table.from_pandas(frame, schema=SCHEMAS[table], preserve_index=False)
    stamps = arrow["ts_ns"].cast(pa.timestamp("ns", tz="UTC"))
    return arrow.add_column(0, TIME_COLUMN, stamps)


def _as_csv_text(table: pa.Table) -> pa.Table:
    iso = pc.strftime(table[TIME_COLUMN], format=ISO_NS)
    return table.set_column(0, TIME_COLUMN, iso)


def export_table(root: Path, table: str, fmt: ExportFormat, out: Path | None = None) -> Exported:
    """Writes `table` of the journal at `root` to `out` (CSV to stdout when `out` is
    None; Parquet needs a file). Written under a temporary name and renamed at the end,
    so a failed export never leaves a finished-looking file."""
    if fmt not in FORMATS:
        raise ExportError(f"unknown export format {fmt!r}; formats are {', '.join(FORMATS)}")
    if out is None and fmt == "parquet":
        raise ExportError("a Parquet export is binary: give the file with --out")
    data = export_frame(Path(root), table)
    if out is None:
        pcsv.write_csv(_as_csv_text(data), sys.stdout.buffer)
        sys.stdout.buffer.flush()
        return Exported(table, fmt, data.num_rows, "-")
    partial = out.with_name(out.name + ".partial")
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        if fmt == "parquet":
            pq.write_table(data, partial)
        else:
            pcsv.write_csv(_as_csv_text(data), partial)
        partial.replace(out)
    except OSError as exc:
        raise ExportError(f"--out {out}: cannot write the export: {exc}") from exc
    finally:
        partial.unlink(missing_ok=True)
    return Exported(table, fmt, data.num_rows, str(out))
