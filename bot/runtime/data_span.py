"""How much data time a market source holds, read cheaply before a run replays it.

A run compares its duration with the data's span up front, so that a duration
that outlasts the data or stops before its end is a warning, not a surprise in
the report. The span comes from what a file says about itself without a pass
over its rows: Parquet row-group statistics, the first and last line of a plain
text file (one seek). A compressed text file (.gz, .zip) cannot be read from its
end, so its span is unknown here (None) and the run names it after the replay.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import pyarrow as pa
import pyarrow.parquet as pq

from bot.market.readers import detect_format
from bot.market.validate import MarketDataError

NS_PER_S: Final = 1_000_000_000
_US_TO_NS: Final = 1_000
_MS_TO_NS: Final = 1_000_000
_TAIL_BYTES: Final = 64 * 1024  # more than any one line of the formats we read


@dataclass(frozen=True, slots=True)
class DataSpan:
    """First and last ts_local (ns) of a market source."""

    first_ns: int
    last_ns: int

    @property
    def ns(self) -> int:
        return self.last_ns - self.first_ns

    def to_dict(self) -> dict[str, int | float | str]:
        return {
            "first_ts_ns": self.first_ns,
            "last_ts_ns": self.last_ns,
            "seconds": self.ns / NS_PER_S,
            "text": span_text(self.ns),
        }


def span_text(ns: int) -> str:
    """A span as a person reads it: '344s' is '5.7m', 3600 s is '1h', 1.5 h '1.5h'."""
    seconds = ns / NS_PER_S
    if seconds >= 3_600:
        value, unit = seconds / 3_600, "h"
    elif seconds >= 60:
        value, unit = seconds / 60, "m"
    else:
        value, unit = seconds, "s"
    return f"{value:.1f}".removesuffix(".0") + unit


def _joined(spans: Iterable[DataSpan | None]) -> DataSpan | None:
    """The span covering all of them; None if any is unknown."""
    known = list(spans)
    if not known or any(s is None for s in known):
        return None
    return DataSpan(min(s.first_ns for s in known if s), max(s.last_ns for s in known if s))


def _parquet_span(file: Path) -> DataSpan | None:
    meta = pq.ParquetFile(file).metadata
    names = [meta.schema.column(i).name for i in range(meta.num_columns)]
    if "ts_local" not in names or meta.num_row_groups == 0:
        return None
    column = names.index("ts_local")
    lows, highs = [], []
    for i in range(meta.num_row_groups):
        stats = meta.row_group(i).column(column).statistics
        if stats is None or not stats.has_min_max:
            return None
        lows.append(int(stats.min))
        highs.append(int(stats.max))
    return DataSpan(min(lows), max(highs))


def _first_and_last_lines(file: Path) -> tuple[str, str] | None:
    """The first line after any header and the last line of a plain text file."""
    with open(file, "rb") as fh:
        head = fh.readline()
        first = fh.readline() if not head.lstrip().startswith(b"{") else head
        size = os.fstat(fh.fileno()).st_size
        fh.seek(max(0, size - _TAIL_BYTES))
        lines = [line for line in fh.read().splitlines() if line.strip()]
    if not first.strip() or not lines:
        return None
    return first.decode(errors="replace"), lines[-1].decode(errors="replace")


def _csv_span(file: Path) -> DataSpan | None:
    """Tardis CSV: the `local_timestamp` (µs) of the first and last rows."""
    if not file.name.endswith(".csv"):
        return None
    with open(file, encoding="utf-8", errors="replace") as fh:
        header = fh.readline().strip().split(",")
    lines = _first_and_last_lines(file)
    if lines is None or "local_timestamp" not in header:
        return None
    column = header.index("local_timestamp")
    try:
        first, last = (int(line.split(",")[column]) * _US_TO_NS for line in lines)
    except (IndexError, ValueError):
        return None  # the reader reports the bad row; the span just stays unknown
    return DataSpan(first, last)


def _ob500_span(file: Path) -> DataSpan | None:
    """Bybit ob500: the `ts` (ms) of the first and last messages."""
    if not file.name.endswith(".data"):
        return None
    lines = _first_and_last_lines(file)
    if lines is None:
        return None
    try:
        first, last = (int(json.loads(line)["ts"]) * _MS_TO_NS for line in lines)
    except (KeyError, TypeError, ValueError):
        return None
    return DataSpan(first, last)


def file_span(path: Path, fmt: str = "auto") -> DataSpan | None:
    """The span of a market file or directory, from metadata only; None if unknown
    (including a file too damaged to say: the reader reports that one properly)."""
    try:
        return _file_span(path, fmt)
    except (OSError, ValueError, pa.ArrowException, MarketDataError):
        return None


def _file_span(path: Path, fmt: str) -> DataSpan | None:
    kind = detect_format(path) if fmt == "auto" else fmt
    files = sorted(p for p in path.iterdir() if p.is_file()) if path.is_dir() else [path]
    if kind == "parquet":
        return _joined(_parquet_span(f) for f in files if f.suffix == ".parquet")
    if kind == "tardis":
        return _joined(_csv_span(f) for f in files if f.name.endswith((".csv", ".csv.gz")))
    if kind == "bybit":
        return _joined(_ob500_span(f) for f in files)
    return None
