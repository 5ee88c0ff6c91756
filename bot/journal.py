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
from typing import Any, Final, Protocol

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

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
    # the quotes the strategy wanted at each decision (side: +1 bid, -1 ask)
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
MANIFEST: Final = "run.json"


class Recorder(Protocol):
    """Where the engine appends journal rows: values in the table's column order."""

    def append(self, table: str, *values: Any) -> None: ...


class JournalError(Exception):
    """A journal that cannot be written or read as the contract says."""


class TableBuffer:
    """Rows of one table, kept as tuples and turned into columns at flush.

    A tuple append is the cheapest thing the hot path can do; the transpose to
    columns happens once per segment.
    """

    __slots__ = ("_rows", "name")

    def __init__(self, name: str) -> None:
        self.name = name
        self._rows: list[tuple[Any, ...]] = []

    @property
    def rows(self) -> int:
        return len(self._rows)

    def append(self, *values: Any) -> None:
        self._rows.append(values)

    def columns(self) -> list[list[Any]]:
        width = len(SCHEMAS[self.name])
        if not self._rows:
            return [[] for _ in range(width)]
        bad = next((row for row in self._rows if len(row) != width), None)
        if bad is not None:
            raise JournalError(f"{self.name}: row has {len(bad)} values, table has {width} columns")
        return [list(column) for column in zip(*self._rows, strict=True)]

    def take(self) -> pa.Table:
        schema = SCHEMAS[self.name]
        arrays = [
            pa.array(col, type=field.type)
            for col, field in zip(self.columns(), schema, strict=True)
        ]
        self._rows = []
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
        buffer.append(*values)
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
        self.buffers[table].append(*values)

    def frame(self, table: str) -> pd.DataFrame:
        """The rows so far as a DataFrame (the buffer keeps them)."""
        columns = self.buffers[table].columns()
        return pd.DataFrame(dict(zip(SCHEMAS[table].names, columns, strict=True)))


def read_manifest(root: Path) -> dict[str, Any]:
    path = Path(root) / MANIFEST
    if not path.is_file():
        raise JournalError(f"{root}: not a journal directory (no {MANIFEST})")
    data: dict[str, Any] = json.loads(path.read_text())
    return data


def read_table(root: Path, table: str) -> pd.DataFrame:
    """One journal table as a DataFrame with the contract's columns, possibly empty."""
    if table not in SCHEMAS:
        raise JournalError(f"unknown journal table {table!r}; tables are {', '.join(TABLES)}")
    directory = Path(root) / table
    parts = sorted(directory.glob("part-*.parquet")) if directory.is_dir() else []
    if not parts:
        return SCHEMAS[table].empty_table().to_pandas()
    return pa.concat_tables(pq.read_table(p, schema=SCHEMAS[table]) for p in parts).to_pandas()


def read_tables(root: Path, tables: Iterable[str] = TABLES) -> dict[str, pd.DataFrame]:
    return {name: read_table(root, name) for name in tables}
