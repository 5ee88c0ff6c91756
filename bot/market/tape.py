"""The market a live process heard, as rows of the market-data format (bot/market/schema.py).

ccxt pro hands over the book it maintains, not the venue's raw messages, so each
book heard is written as the difference from the one before: changed levels as
DELTA rows (qty 0 removes a level), the first book, and the first one after a lost
connection, as a run of SNAPSHOT rows. A snapshot after a reconnect is the gap
mark (the replay resets the book and the queue positions there, DESIGN §4), and
`gaps` counts them. Every row carries the venue's stamp (`ts_exch`, from the
message) and the stamp of the process that heard it (`ts_local`).

`mmbot market record` (bot/market/live_record.py) and a live or shadow run with
`--record` (bot/runtime/live_loop.py) keep one; the run's tape holds exactly the
books and trades its engine heard, at the times it heard them.

Trade ids are integers in the format: a venue's numeric id is kept, any other (Bybit
sends UUIDs) becomes its first 15 hex digits as a number.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import numpy as np

from bot.market.recorder import write_parquet
from bot.market.schema import Kind, MarketChunk

NS_PER_MS: Final = 1_000_000


def trade_number(trade_id: object) -> int:
    text = str(trade_id)
    if text.isdigit():
        return int(text)
    digits = "".join(c for c in text.lower() if c in "0123456789abcdef")[:15]
    return int(digits or "0", 16)


@dataclass(slots=True)
class _Rows:
    """Rows of one symbol, appended as they come (columns, not objects)."""

    ts_local: list[int] = field(default_factory=list)
    ts_exch: list[int] = field(default_factory=list)
    kind: list[int] = field(default_factory=list)
    side: list[int] = field(default_factory=list)
    price: list[float] = field(default_factory=list)
    qty: list[float] = field(default_factory=list)
    trade_id: list[int] = field(default_factory=list)

    def add(
        self, local: int, exch: int, kind: Kind, side: int, px: float, qty: float, tid: int
    ) -> None:
        self.ts_local.append(local)
        self.ts_exch.append(exch)
        self.kind.append(int(kind))
        self.side.append(side)
        self.price.append(px)
        self.qty.append(qty)
        self.trade_id.append(tid)

    def chunk(self, symbol: str) -> MarketChunk:
        return MarketChunk(
            symbol, np.array(self.ts_local, dtype=np.int64), np.array(self.ts_exch, dtype=np.int64),
            np.array(self.kind, dtype=np.int8), np.array(self.side, dtype=np.int8),
            np.array(self.price, dtype=np.float64), np.array(self.qty, dtype=np.float64),
            np.array(self.trade_id, dtype=np.int64),
        )  # fmt: skip


@dataclass(slots=True)
class _Symbol:
    rows: _Rows = field(default_factory=_Rows)
    levels: dict[int, dict[float, float]] = field(default_factory=lambda: {1: {}, -1: {}})
    need_snapshot: bool = True
    gaps: int = 0
    trades: int = 0


class Tape:
    """Books and trades of some symbols (by the venue's id, the file's name) as heard."""

    def __init__(self, symbols: Iterable[str]) -> None:
        self.symbols = {symbol: _Symbol() for symbol in symbols}

    def gap(self, symbol: str) -> None:
        """The stream was lost: the next book is a snapshot, and one gap per outage."""
        state = self.symbols[symbol]
        if not state.need_snapshot:
            state.gaps += 1
            state.need_snapshot = True

    def book(self, symbol: str, book: Any, local: int) -> None:
        """A ccxt order book heard at `local` (ns)."""
        state = self.symbols[symbol]
        exch = int(book.get("timestamp") or local // NS_PER_MS) * NS_PER_MS
        new = {1: {float(p): float(q) for p, q, *_ in book["bids"]},
               -1: {float(p): float(q) for p, q, *_ in book["asks"]}}  # fmt: skip
        if state.need_snapshot:
            for side, levels in new.items():
                for px, qty in levels.items():
                    state.rows.add(local, exch, Kind.SNAPSHOT, side, px, qty, 0)
            state.need_snapshot = False
        else:
            for side, levels in new.items():
                old = state.levels[side]
                for px, qty in levels.items():
                    if old.get(px) != qty:
                        state.rows.add(local, exch, Kind.DELTA, side, px, qty, 0)
                for px in old.keys() - levels.keys():
                    state.rows.add(local, exch, Kind.DELTA, side, px, 0.0, 0)
        state.levels = new

    def trade(self, symbol: str, trade: Any, local: int) -> None:
        """A ccxt trade heard at `local` (ns)."""
        state = self.symbols[symbol]
        side = 1 if trade["side"] == "buy" else -1
        exch = int(trade.get("timestamp") or local // NS_PER_MS) * NS_PER_MS
        state.rows.add(local, exch, Kind.TRADE, side, float(trade["price"]),
                       float(trade["amount"]), trade_number(trade["id"]))  # fmt: skip
        state.trades += 1

    def write(self, out_dir: Path) -> dict[str, dict[str, Any]]:
        """One `<SYMBOL>.parquet` per symbol, written under a temporary name first."""
        out_dir.mkdir(parents=True, exist_ok=True)
        files = {}
        for symbol, state in self.symbols.items():
            out = out_dir / f"{symbol}.parquet"
            partial = out.with_name(out.name + ".partial")
            try:
                write_parquet([state.rows.chunk(symbol)], partial, symbol)
                partial.replace(out)
            finally:
                partial.unlink(missing_ok=True)
            files[symbol] = {"path": str(out), "rows": len(state.rows.kind),
                             "trades": state.trades, "gaps": state.gaps}  # fmt: skip
        return files
