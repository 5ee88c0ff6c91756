"""The project's market-data event format: one columnar table per symbol.

Every row is one L2 level change, one snapshot level, or one trade. Rows are in
replay order, which is `ts_local` (the receiving machine's clock); `ts_exch` is
the venue's stamp and may go backwards across streams. A run of SNAPSHOT rows
sharing one `ts_local` replaces the whole book; a DELTA with qty 0 removes the
level. Prices and quantities are floats here (the edge); the sim converts them
to integer ticks and lots per chunk.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum

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


@dataclass(frozen=True, slots=True)
class MarketChunk:
    """A slice of replay-ordered rows as numpy arrays (no object per row)."""

    symbol: str
    ts_local: np.ndarray
    ts_exch: np.ndarray
    kind: np.ndarray
    side: np.ndarray
    price: np.ndarray
    qty: np.ndarray
    trade_id: np.ndarray

    def __len__(self) -> int:
        return int(self.ts_local.shape[0])

    def to_table(self) -> pa.Table:
        return pa.Table.from_arrays(
            [pa.array(getattr(self, name)) for name in COLUMNS], schema=SCHEMA
        ).replace_schema_metadata({**(SCHEMA.metadata or {}), b"symbol": self.symbol.encode()})

    @classmethod
    def from_table(cls, symbol: str, table: pa.Table) -> MarketChunk:
        cols = {name: table.column(name).to_numpy() for name in COLUMNS}
        return cls(symbol=symbol, **cols)
