"""Stream market chunks into one Parquet file with deterministic bytes.

Row groups have a fixed size whatever the chunking of the input, so the file's
layout depends only on the rows. Nothing time-dependent goes into the metadata
(pyarrow writes no timestamp; `created_by` names the library version only).
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Final

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import structlog

from bot.market.schema import COLUMNS, SCHEMA, MarketChunk

log = structlog.get_logger(__name__)

ROW_GROUP_ROWS: Final = 262_144
COMPRESSION: Final = "zstd"
COMPRESSION_LEVEL: Final = 3


class RecorderError(ValueError):
    """Chunks that cannot go into the file they were given for."""


def market_schema(symbol: str) -> pa.Schema:
    """The market-event schema with this file's symbol in its metadata."""
    return SCHEMA.with_metadata({**(SCHEMA.metadata or {}), b"symbol": symbol.encode()})


def _column(chunk: MarketChunk, name: str, type_: pa.DataType) -> pa.Array:
    values = np.asarray(getattr(chunk, name))
    column = np.ascontiguousarray(values, dtype=type_.to_pandas_dtype())
    # cast at the edge (a reader may hand over int64 kinds), but never change a value
    if column.dtype != values.dtype and not np.array_equal(column, values):
        raise RecorderError(f"column {name}: {values.dtype} values do not fit {type_}")
    # from_buffers, not pa.array: no copy, and no lazy import of pandas (seconds, once)
    return pa.Array.from_buffers(type_, len(column), [None, pa.py_buffer(column)])


def _table(chunk: MarketChunk, schema: pa.Schema) -> pa.Table:
    return pa.Table.from_arrays(
        [_column(chunk, name, schema.field(name).type) for name in COLUMNS], schema=schema
    )


def write_parquet(
    chunks: Iterable[MarketChunk], path: Path, symbol: str, row_group_rows: int = ROW_GROUP_ROWS
) -> Path:
    """Write every chunk of `symbol`, in order, to `path` (parents created); returns `path`."""
    if row_group_rows <= 0:
        raise RecorderError(f"row_group_rows must be > 0, got {row_group_rows}")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    schema = market_schema(symbol)
    pending: list[pa.Table] = []
    pending_rows = rows = 0
    with pq.ParquetWriter(
        path, schema, compression=COMPRESSION, compression_level=COMPRESSION_LEVEL
    ) as writer:
        for chunk in chunks:
            if chunk.symbol != symbol:
                raise RecorderError(
                    f"{path}: chunk of symbol {chunk.symbol!r} in a file of {symbol!r}"
                )
            if not len(chunk):
                continue
            pending.append(_table(chunk, schema))
            pending_rows += len(chunk)
            if pending_rows >= row_group_rows:
                buffered = pa.concat_tables(pending)
                full = (pending_rows // row_group_rows) * row_group_rows
                writer.write_table(buffered.slice(0, full), row_group_size=row_group_rows)
                pending, pending_rows = [buffered.slice(full)], pending_rows - full
                rows += full
        if pending_rows:
            writer.write_table(pa.concat_tables(pending), row_group_size=row_group_rows)
            rows += pending_rows
    log.info("market_written", path=str(path), symbol=symbol, rows=rows)
    return path
