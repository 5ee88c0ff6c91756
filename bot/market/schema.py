"""The project's market-data event format: one columnar table per symbol.

Every row is one L2 level change, one snapshot level, or one trade. Rows are in
replay order, which is `ts_local` (the receiving machine's clock); `ts_exch` is
the venue's stamp and may go backwards across streams. A run of SNAPSHOT rows
sharing one `ts_local` replaces the whole book; a DELTA with qty 0 removes the
level. Prices and quantities are floats here (the edge); the sim converts them
to integer ticks and lots per chunk.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import KW_ONLY, dataclass
from enum import IntEnum
from typing import Final, Literal

import numpy as np
import pyarrow as pa


class Kind(IntEnum):
    DELTA = 0
    SNAPSHOT = 1
    TRADE = 2


# side: +1 bid level / buy aggressor, -1 ask level / sell aggressor.
SCHEMA = pa.schema(
    [
        pa.field("ts_local", pa.int64(), nullable=False),
        pa.field("ts_exch", pa.int64(), nullable=False),
        pa.field("kind", pa.int8(), nullable=False),
        pa.field("side", pa.int8(), nullable=False),
        pa.field("price", pa.float64(), nullable=False),
        pa.field("qty", pa.float64(), nullable=False),
        pa.field("trade_id", pa.int64(), nullable=False),
    ],
    metadata={"format": "mmbot.market", "version": "1", "units": "ns,ns,-,-,quote,base,-"},
)
COLUMNS = tuple(SCHEMA.names)


# A row's origin packs the index of its file in `MarketChunk.sources` above the
# row's position in that file: one int64 column, so that slicing, merging and
# sorting carry it like any other column.
_POSITION_BITS: Final = 40
_POSITION_MASK: Final = (1 << _POSITION_BITS) - 1


@dataclass(frozen=True, slots=True)
class Source:
    """A file that rows were read from; `unit` says what a row's position counts:
    `line` a text file's line (1-based, the header counted), `row` a Parquet row
    (1-based)."""

    path: str
    unit: Literal["line", "row"] = "line"


def origins(source: int, positions: np.ndarray) -> np.ndarray:
    """The origin column of rows at `positions` of `sources[source]`."""
    return (np.int64(source) << _POSITION_BITS) | positions.astype(np.int64)


@dataclass(frozen=True, slots=True)
class MarketChunk:
    """A slice of replay-ordered rows as numpy arrays (no object per row).

    `origin` and `sources` say where each row was read from, so that a data error
    names the file and line a person can open; generated rows have neither.
    """

    symbol: str
    ts_local: np.ndarray
    ts_exch: np.ndarray
    kind: np.ndarray
    side: np.ndarray
    price: np.ndarray
    qty: np.ndarray
    trade_id: np.ndarray
    _: KW_ONLY
    origin: np.ndarray | None = None
    sources: tuple[Source, ...] = ()

    def __len__(self) -> int:
        return int(self.ts_local.shape[0])

    def take(self, index: np.ndarray | slice) -> MarketChunk:
        """The rows at `index` (a slice, a boolean mask or positions), origins included."""
        origin = None if self.origin is None else self.origin[index]
        columns = (getattr(self, name)[index] for name in COLUMNS)
        return MarketChunk(self.symbol, *columns, origin=origin, sources=self.sources)

    def where(self, i: int) -> str | None:
        """'file PATH line N' (or 'row N') for row `i`, None for rows of no file."""
        if self.origin is None:
            return None
        packed = int(self.origin[i])
        source = self.sources[packed >> _POSITION_BITS]
        return f"file {source.path} {source.unit} {packed & _POSITION_MASK}"

    def to_table(self) -> pa.Table:
        return pa.Table.from_arrays(
            [pa.array(getattr(self, name)) for name in COLUMNS], schema=SCHEMA
        ).replace_schema_metadata({**(SCHEMA.metadata or {}), b"symbol": self.symbol.encode()})

    @classmethod
    def from_table(cls, symbol: str, table: pa.Table) -> MarketChunk:
        cols = {name: table.column(name).to_numpy() for name in COLUMNS}
        return cls(symbol=symbol, **cols)


def concat(chunks: Sequence[MarketChunk]) -> MarketChunk:
    """The rows of `chunks` in order; origins survive when every chunk has them from
    the same files (the chunks of one read)."""
    if len(chunks) == 1:
        return chunks[0]
    first = chunks[0]
    columns = (np.concatenate([getattr(c, name) for c in chunks]) for name in COLUMNS)
    parts = [c.origin for c in chunks if c.origin is not None and c.sources == first.sources]
    if len(parts) < len(chunks):
        return MarketChunk(first.symbol, *columns)
    return MarketChunk(first.symbol, *columns, origin=np.concatenate(parts), sources=first.sources)
