"""The journal: append-only columnar tables, the contract between the bot and
everything that judges it (DESIGN §5).

Layout of a journal directory::

    run.json                      run manifest (mode, profile, seed, symbols, redacted config)
    <table>/part-00000.parquet    one file per table per segment

Units: timestamps int64 ns UTC; prices in quote currency; quantities in base
units; money (pnl, fee, notional) in quote currency (USD for USDT pairs).
`px_ticks` / `qty_lots` keep the exact integers so PnL recomputes exactly, and
`fee_exact` keeps the fee as a decimal.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
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


class Recorder(Protocol):
    """Where the engine appends journal rows: values in the table's column order."""

    def append(self, table: str, *values: Any) -> None: ...


class JournalError(Exception):
    """A journal that cannot be written or read as the contract says."""


class TableBuffer:
    """Rows of one table, kept as one list per column until the flush.

    Appending a row adds its values to the column lists and allocates nothing the
    garbage collector tracks (a tuple per row would: on the hot path those tuples
    triggered collections that were most of the tick-to-quote tail).
    """

    __slots__ = ("_bad_width", "_columns", "_rows", "_width", "name")

    def __init__(self, name: str) -> None:
        self.name = name
        self._width = len(SCHEMAS[name])
        self._rows = 0
        self._bad_width: int | None = None  # values in the first row of the wrong width
        self._columns: list[list[Any]] = []
        self._reset()

    def _reset(self) -> None:
        self._rows = 0
        self._columns = [[] for _ in range(self._width)]

    @property
    def rows(self) -> int:
        return self._rows

    def append(self, *values: Any) -> None:
        self.add(values)

    def add(self, values: tuple[Any, ...]) -> None:
        """`append` for a row already packed as a tuple (the recorders' path)."""
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

    Memory stays flat: a table is flushed once it holds `segment_rows` rows,
    and everything left is flushed on `close()`.
    """

    def __init__(
        self, root: Path, manifest: Mapping[str, Any], segment_rows: int = 200_000
    ) -> None:
        self.root = Path(root)
        self.segment_rows = segment_rows
        self.root.mkdir(parents=True, exist_ok=True)
        (self.root / MANIFEST).write_text(
            json.dumps(manifest, indent=2, sort_keys=True, default=str)
        )
        self.buffers = {name: TableBuffer(name) for name in TABLES}
        self._parts = dict.fromkeys(TABLES, 0)

    def append(self, table: str, *values: Any) -> None:
        buffer = self.buffers[table]
        buffer.add(values)
        if buffer.rows >= self.segment_rows:
            self.flush(table)

    def flush(self, table: str) -> None:
        buffer = self.buffers[table]
        if buffer.rows == 0 and self._parts[table] > 0:
            return
        directory = self.root / table
        directory.mkdir(exist_ok=True)
        path = directory / f"part-{self._parts[table]:05d}.parquet"
        # Fixed writer options and no pandas metadata: same rows -> same bytes.
        pq.write_table(buffer.take(), path, compression="zstd", store_schema=False)
        self._parts[table] += 1

    def close(self) -> None:
        for name in TABLES:
            self.flush(name)


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


def read_manifest(root: Path) -> dict[str, Any]:
    path = Path(root) / MANIFEST
    if not path.is_file():
        raise JournalError(f"{root}: not a journal directory (no {MANIFEST})")
    try:
        data = json.loads(path.read_text())
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise JournalError(f"file {path}: corrupt run manifest, not JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise JournalError(f"file {path}: a run manifest is a JSON object, not {data!r:.40}")
    return data


def read_table(root: Path, table: str) -> pd.DataFrame:
    """One journal table as a DataFrame with the contract's columns, possibly empty."""
    if table not in SCHEMAS:
        raise JournalError(f"unknown journal table {table!r}; tables are {', '.join(TABLES)}")
    directory = Path(root) / table
    parts = sorted(directory.glob("part-*.parquet")) if directory.is_dir() else []
    if not parts:
        return SCHEMAS[table].empty_table().to_pandas()
    return pa.concat_tables(_read_part(p, table) for p in parts).to_pandas()


def _read_part(path: Path, table: str) -> pa.Table:
    try:
        return pq.read_table(path, schema=SCHEMAS[table])
    except (pa.ArrowException, OSError) as exc:
        size = path.stat().st_size
        raise JournalError(
            f"file {path}: not a readable Parquet part ({size} bytes): {exc}"
        ) from exc


def read_tables(root: Path, tables: Iterable[str] = TABLES) -> dict[str, pd.DataFrame]:
    return {name: read_table(root, name) for name in tables}
