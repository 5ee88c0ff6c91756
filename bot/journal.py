"""The journal: append-only columnar tables, the contract between the bot and
everything that judges it (DESIGN §5).

Layout of a journal directory::

    run.json                      run manifest (mode, profile, seed, symbols, redacted config)
    <table>/part-00000.parquet    one file per table per segment

A journal is whole once `run.json` says `"journal": {"complete": true, "parts": {..}}`:
the writer sets it on `close()`, after the last segment is on disk, with the number
of part files of each table. A run writes into `<out>.partial`
and renames it to `<out>` when it ends (bot/runtime/run.py); the readers refuse a
`.partial` directory or a manifest without the marker (`IncompleteJournal`), so no
gate judges a run that was interrupted or stopped by an error.

Units: timestamps int64 ns UTC; prices in quote currency; quantities in base
units; money (pnl, fee, notional) in quote currency (USD for USDT pairs).
`px_ticks` / `qty_lots` keep the exact integers so PnL recomputes exactly, and
`fee_exact` keeps the fee as a decimal.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final, Protocol

import pyarrow as pa
import pyarrow.parquet as pq

if TYPE_CHECKING:  # pandas costs a run ~0.5 s of start-up; only the readers need it
    import pandas as pd

FEE_DECIMAL: Final = pa.decimal128(38, 12)

SCHEMAS: Final[Mapping[str, pa.Schema]] = {
    # top of book, sampled (e.g. every 100 ms), not every delta
    "book": pa.schema(
        [
            ("ts_ns", pa.int64()),
            ("symbol", pa.string()),
            ("bid", pa.float64()),
            ("ask", pa.float64()),
            ("bid_qty", pa.float64()),
            ("ask_qty", pa.float64()),
            ("mid", pa.float64()),
        ]
    ),
    # the quotes the strategy wanted (side: +1 bid, -1 ask), one row per quote of a
    # decision, written only when the wanted set differs from the last one written
    # for the symbol: a decision that repeats it (same sides, levels, prices, sizes)
    # adds no rows, so a set holds from its ts_ns until the next decision (as-of)
    "quotes": pa.schema(
        [
            ("ts_ns", pa.int64()),
            ("symbol", pa.string()),
            ("side", pa.int8()),
            ("level", pa.int16()),
            ("price", pa.float64()),
            ("qty", pa.float64()),
            ("mid", pa.float64()),
        ]
    ),
    # every order event; event in {place, ack, reject, cancel, cancel_ack,
    # cancel_reject, fill, expired}; ts_send_ns is when the place was sent,
    # ts_ack_ns when the venue acknowledged it (0 while unknown)
    "orders": pa.schema(
        [
            ("ts_ns", pa.int64()),
            ("symbol", pa.string()),
            ("client_order_id", pa.string()),
            ("event", pa.string()),
            ("side", pa.int8()),
            ("price", pa.float64()),
            ("qty", pa.float64()),
            ("status", pa.string()),
            ("ts_send_ns", pa.int64()),
            ("ts_ack_ns", pa.int64()),
            ("reason", pa.string()),
        ]
    ),
    # fee: positive paid, negative rebate; mid: book mid at the fill
    "fills": pa.schema(
        [
            ("ts_ns", pa.int64()),
            ("symbol", pa.string()),
            ("client_order_id", pa.string()),
            ("trade_id", pa.string()),
            ("side", pa.int8()),
            ("price", pa.float64()),
            ("qty", pa.float64()),
            ("px_ticks", pa.int64()),
            ("qty_lots", pa.int64()),
            ("liquidity", pa.string()),
            ("fee", pa.float64()),
            ("fee_exact", FEE_DECIMAL),
            ("mid", pa.float64()),
        ]
    ),
    # kind in {block, freeze, unfreeze, reduce_only, resume, kill}; check names the rule
    "risk": pa.schema(
        [
            ("ts_ns", pa.int64()),
            ("symbol", pa.string()),
            ("kind", pa.string()),
            ("check", pa.string()),
            ("reason", pa.string()),
            ("state", pa.string()),
        ]
    ),
    # position snapshots; notional = position * mid (signed)
    "positions": pa.schema(
        [
            ("ts_ns", pa.int64()),
            ("symbol", pa.string()),
            ("position", pa.float64()),
            ("avg_price", pa.float64()),
            ("mid", pa.float64()),
            ("notional", pa.float64()),
            ("realized_pnl", pa.float64()),
            ("unrealized_pnl", pa.float64()),
            ("fees", pa.float64()),
        ]
    ),
}
TABLES: Final = tuple(SCHEMAS)
_APPEND: Final = list.append
MANIFEST: Final = "run.json"
WHOLE: Final = "journal"  # the manifest key: {"complete": bool, "parts": {table: n}}
PARTIAL_SUFFIX: Final = ".partial"
# A table's buffer is flushed at whichever bound it meets first. Rows alone let the
# slow tables (orders, positions) grow for a whole day; bytes bound the memory a
# buffer holds, data time bounds how much a crash of the process could lose.
SEGMENT_ROWS: Final = 200_000
SEGMENT_BYTES: Final = 16 * 1024 * 1024
SEGMENT_NS: Final = 3_600 * 1_000_000_000
_SLOT_BYTES: Final = 8  # a column list's pointer to the value object


class Recorder(Protocol):
    """Where the engine appends journal rows: values in the table's column order."""

    def append(self, table: str, *values: Any) -> None: ...


class JournalError(Exception):
    """A journal that cannot be written or read as the contract says."""


class IncompleteJournal(JournalError):
    """A journal whose run did not finish: interrupted, or stopped by an error."""


def partial_path(out: Path) -> Path:
    """Where a run writes the journal it will rename to `out` when it ends."""
    out = Path(out)
    return out.with_name(out.name + PARTIAL_SUFFIX)


class TableBuffer:
    """Rows of one table, kept as one list per column until the flush.

    Appending a row adds its values to the column lists and allocates nothing the
    garbage collector tracks (a tuple per row would: on the hot path those tuples
    triggered collections that were most of the tick-to-quote tail).
    """

    __slots__ = ("_bad_width", "_columns", "_row_bytes", "_rows", "_width", "first_ts", "name")

    def __init__(self, name: str) -> None:
        self.name = name
        self._width = len(SCHEMAS[name])
        self._rows = 0
        self._row_bytes = 0  # estimated from the first row of the run (see `row_bytes`)
        self._bad_width: int | None = None  # values in the first row of the wrong width
        self._columns: list[list[Any]] = []
        self.first_ts: Any = 0  # ts_ns (column 0) of the first row since the last take
        self._reset()

    def _reset(self) -> None:
        self._rows = 0
        self._columns = [[] for _ in range(self._width)]

    @property
    def rows(self) -> int:
        return self._rows

    @property
    def row_bytes(self) -> int:
        """Memory one buffered row holds, estimated once from the run's first row (its
        value objects and their list slots): 0 before any row. One estimate per run
        keeps the flush points, and so the segment files, the same for the same rows."""
        return self._row_bytes

    def _first_row(self, values: tuple[Any, ...]) -> None:
        if not self._row_bytes:
            self._row_bytes = sum(sys.getsizeof(v) + _SLOT_BYTES for v in values) or 1
        self.first_ts = values[0] if values else 0

    def append(self, *values: Any) -> None:
        self.add(values)

    def add(self, values: tuple[Any, ...]) -> None:
        """`append` for a row already packed as a tuple (the recorders' path)."""
        if not self._rows:
            self._first_row(values)
        if len(values) != self._width:
            # reported at the flush, like any other problem with the rows' contents
            if self._bad_width is None:
                self._bad_width = len(values)
            self._rows += 1
            return
        # one C-level pass: list.append returns None, so any() runs to the end
        any(map(_APPEND, self._columns, values))
        self._rows += 1

    def columns(self) -> list[list[Any]]:
        """Copies of the column lists (the buffer keeps its rows)."""
        self._check()
        return [list(column) for column in self._columns]

    def _check(self) -> None:
        if self._bad_width is not None:
            raise JournalError(
                f"{self.name}: row has {self._bad_width} values, table has {self._width} columns"
            )

    def take(self) -> pa.Table:
        """The rows as a typed table; the buffer starts empty again."""
        schema = SCHEMAS[self.name]
        self._check()
        columns = self._columns
        arrays = [
            pa.array(col, type=field.type) for col, field in zip(columns, schema, strict=True)
        ]
        self._reset()
        return pa.Table.from_arrays(arrays, schema=schema)


class JournalWriter:
    """Appends rows to per-table buffers and writes a Parquet part per segment.

    Memory stays flat: a table is flushed once its buffer holds `segment_rows` rows,
    or about `segment_bytes` of row objects, or rows spanning `segment_ns` of data
    time (ts_ns); `flush_all()` writes what is left and `close()` also marks the
    manifest complete. A writer that is never closed leaves an incomplete journal.
    """

    def __init__(
        self,
        root: Path,
        manifest: Mapping[str, Any],
        segment_rows: int = SEGMENT_ROWS,
        segment_bytes: int = SEGMENT_BYTES,
        segment_ns: int = SEGMENT_NS,
    ) -> None:
        if min(segment_rows, segment_bytes, segment_ns) <= 0:
            raise JournalError(
                f"segment bounds must be positive: rows={segment_rows} "
                f"bytes={segment_bytes} ns={segment_ns}"
            )
        self.root = Path(root)
        self.segment_rows = segment_rows
        self.segment_bytes = segment_bytes
        self.segment_ns = segment_ns
        self.root.mkdir(parents=True, exist_ok=True)
        self._manifest = {k: v for k, v in manifest.items() if k != WHOLE}
        self._write_manifest({**self._manifest, WHOLE: {"complete": False}})
        self.buffers = {name: TableBuffer(name) for name in TABLES}
        # per table: rows that fill a segment, set once its first row's size is known
        self._limits = dict.fromkeys(TABLES, 0)
        self._parts = dict.fromkeys(TABLES, 0)

    def _write_manifest(self, manifest: Mapping[str, Any]) -> None:
        (self.root / MANIFEST).write_text(
            json.dumps(manifest, indent=2, sort_keys=True, default=str)
        )

    def append(self, table: str, *values: Any) -> None:
        buffer = self.buffers[table]
        buffer.add(values)
        try:
            late = values[0] - buffer.first_ts >= self.segment_ns
        except (TypeError, IndexError):
            late = False  # a bad ts_ns is reported at the flush with the other row checks
        if late or buffer.rows >= (self._limits[table] or self._limit(buffer)):
            self.flush(table)

    def _limit(self, buffer: TableBuffer) -> int:
        """Rows of this table that reach the first of the row and byte bounds."""
        limit = max(1, min(self.segment_rows, self.segment_bytes // buffer.row_bytes))
        self._limits[buffer.name] = limit
        return limit

    def flush(self, table: str) -> None:
        buffer = self.buffers[table]
        if buffer.rows == 0 and self._parts[table] > 0:
            return
        directory = self.root / table
        directory.mkdir(exist_ok=True)
        path = directory / f"part-{self._parts[table]:05d}.parquet"
        # Fixed writer options and no pandas metadata: same rows -> same bytes. Written
        # under another name and renamed: a process killed mid-write leaves no torn part.
        part = path.with_name(path.name + ".tmp")
        pq.write_table(buffer.take(), part, compression="zstd", store_schema=False)
        os.replace(part, path)
        self._parts[table] += 1

    def flush_all(self) -> None:
        """Every buffered row to disk; the manifest stays incomplete (an interrupted run)."""
        for name in TABLES:
            self.flush(name)

    def close(self, extra: Mapping[str, Any] | None = None) -> None:
        """Flush everything, then mark the manifest complete (with `extra` keys added):
        the marker is written last, so a journal that has it has all its segments."""
        self.flush_all()
        whole = {"complete": True, "parts": dict(self._parts)}
        self._write_manifest({**self._manifest, **(extra or {}), WHOLE: whole})


class MemoryJournal:
    """A Recorder that keeps rows in memory; for tests and short in-process runs."""

    def __init__(self) -> None:
        self.buffers = {name: TableBuffer(name) for name in TABLES}

    def append(self, table: str, *values: Any) -> None:
        self.buffers[table].add(values)

    def frame(self, table: str) -> pd.DataFrame:
        """The rows so far as a DataFrame (the buffer keeps them)."""
        import pandas as pd

        columns = self.buffers[table].columns()
        return pd.DataFrame(dict(zip(SCHEMAS[table].names, columns, strict=True)))


def read_manifest(root: Path, allow_partial: bool = False) -> dict[str, Any]:
    """run.json of a whole journal; `allow_partial` also reads an unfinished one
    (to inspect what an interrupted run left, never to judge it)."""
    root = Path(root)
    path = root / MANIFEST
    if not path.is_file():
        raise JournalError(f"{root}: not a journal directory (no {MANIFEST})")
    try:
        data = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise JournalError(f"file {path}: corrupt run manifest, not JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise JournalError(f"file {path}: a run manifest is a JSON object, not {data!r:.40}")
    if not allow_partial:
        _check_whole(root, data)
    return data


def _check_whole(root: Path, manifest: Mapping[str, Any]) -> None:
    """IncompleteJournal unless the run finished and every part it wrote is there."""
    if root.name.endswith(PARTIAL_SUFFIX):
        raise IncompleteJournal(
            f"{root}: partial journal of a run that did not finish; rerun it to judge it"
        )
    whole = manifest.get(WHOLE)
    if not isinstance(whole, Mapping) or whole.get("complete") is not True:
        raise IncompleteJournal(
            f"{root}: incomplete journal ({MANIFEST} lacks {WHOLE}.complete=true: the run "
            "was interrupted or stopped by an error); rerun it to judge it"
        )
    for table, listed in dict(whole.get("parts") or {}).items():
        found = len(list((root / table).glob("part-*.parquet")))
        if found != listed:
            raise IncompleteJournal(
                f"{root}: table {table} has {found} part files, {MANIFEST} lists {listed}"
            )


def read_table(
    root: Path, table: str, columns: Sequence[str] | None = None, allow_partial: bool = True
) -> pd.DataFrame:
    """One journal table as a DataFrame with the contract's columns (or `columns` of
    them), possibly empty.

    Reads an unfinished journal too unless `allow_partial` is False; the judging path
    (`read_tables`) refuses one.
    """
    if table not in SCHEMAS:
        raise JournalError(f"unknown journal table {table!r}; tables are {', '.join(TABLES)}")
    if not allow_partial:
        read_manifest(root)
    schema = SCHEMAS[table]
    if columns is not None:
        unknown = [c for c in columns if c not in schema.names]
        if unknown:
            raise JournalError(f"table {table} has no columns {unknown}")
        schema = pa.schema([schema.field(c) for c in columns])
    directory = Path(root) / table
    parts = sorted(directory.glob("part-*.parquet")) if directory.is_dir() else []
    if not parts:
        return schema.empty_table().to_pandas()
    return pa.concat_tables(_read_part(p, schema) for p in parts).to_pandas()


def _read_part(path: Path, schema: pa.Schema) -> pa.Table:
    try:
        return pq.read_table(path, schema=schema, columns=schema.names)
    except (pa.ArrowException, OSError) as exc:
        size = path.stat().st_size
        raise JournalError(
            f"file {path}: not a readable Parquet part ({size} bytes): {exc}"
        ) from exc


def read_tables(
    root: Path, tables: Iterable[str] = TABLES, allow_partial: bool = False
) -> dict[str, pd.DataFrame]:
    """The tables of a whole journal (IncompleteJournal for an unfinished one)."""
    if not allow_partial:
        read_manifest(root)
    return {name: read_table(root, name) for name in tables}


def last_mids(book: pd.DataFrame, fills: pd.DataFrame) -> pd.Series:
    """Last book mid per symbol; the last fill mid for a symbol without book rows."""
    book = book.dropna(subset=["mid"]).sort_values("ts_ns", kind="stable")
    fills = fills.dropna(subset=["mid"]).sort_values("ts_ns", kind="stable")
    from_book = book.groupby("symbol")["mid"].last()
    from_fills = fills.groupby("symbol")["mid"].last()
    mids = from_book.combine_first(from_fills).astype(float)
    mids.index = mids.index.astype(str)
    return mids


def final_pnl_usd(fills: pd.DataFrame, book: pd.DataFrame) -> float:
    """The run's mark-to-market PnL (DESIGN §6 pnl_usd) from its journal rows: per
    symbol, cash Σ(−s·p·q) − Σfee plus the position Σ(s·q) at the symbol's last mid
    (`last_mids`), summed over symbols; NaN if a traded symbol has no mid at all.

    The one definition: `mmbot run` prints it and the KPI `pnl_usd` is it.
    """
    if fills.empty:
        return 0.0
    import pandas as pd  # the readers' dependency; a run reaches here only at its end

    ordered = fills.sort_values("ts_ns", kind="stable")
    side = ordered["side"].astype(float)
    qty = ordered["qty"].astype(float)
    flows = pd.DataFrame(
        {
            "symbol": ordered["symbol"].astype(str),
            "position": side * qty,
            "cash": -side * ordered["price"].astype(float) * qty - ordered["fee"].astype(float),
        }
    )
    sums = flows.groupby("symbol", sort=True)[["position", "cash"]].sum()
    mids = last_mids(book, fills).reindex(sums.index)
    total = 0.0
    for cash, position, mid in zip(sums["cash"], sums["position"], mids, strict=True):
        total += cash + position * mid  # NaN mid -> NaN total: a PnL the journal lacks
    return total
