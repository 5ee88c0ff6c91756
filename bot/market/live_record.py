"""Record an exchange's public streams into the market-data format (bot/market/schema.py).

ccxt pro hands over the book it maintains, not the venue's raw messages, so each
update is written as the difference from the book last written: changed levels as
DELTA rows (qty 0 removes a level), the first book, and the first one after a lost
connection, as a run of SNAPSHOT rows. A snapshot after a reconnect is the gap
mark (the replay resets the book and the queue positions there, DESIGN §4), and
`gaps` in the summary counts them. Every row carries the venue's stamp
(`ts_exch`, from the message) and the capture machine's (`ts_local`, from the
injected clock).

Trade ids are integers in the format: a venue's numeric id is kept, any other (Bybit
sends UUIDs) becomes its first 15 hex digits as a number.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import numpy as np
import structlog
from ccxt.base.errors import NetworkError

from bot.market.recorder import write_parquet
from bot.market.schema import Kind, MarketChunk
from bot.runtime.clock import Clock

log = structlog.get_logger(__name__)

NS_PER_MS: Final = 1_000_000
_RETRY_S: Final = 0.1


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
    venue_id: str
    rows: _Rows = field(default_factory=_Rows)
    levels: dict[int, dict[float, float]] = field(default_factory=lambda: {1: {}, -1: {}})
    need_snapshot: bool = True
    gaps: int = 0
    trades: int = 0


class LiveRecorder:
    """Public book and trade streams of some symbols, for a while, into Parquet files."""

    def __init__(self, exchange: Any, symbols: Mapping[str, str], clock: Clock, depth: int = 50):
        """`symbols`: ccxt symbol -> the venue id the file is named after."""
        self.exchange, self.clock, self.depth = exchange, clock, depth
        self.symbols = {s: _Symbol(venue_id) for s, venue_id in symbols.items()}

    async def record(self, duration_s: float) -> None:
        tasks = []
        for symbol in self.symbols:
            tasks += [
                asyncio.create_task(self._books(symbol)),
                asyncio.create_task(self._trades(symbol)),
            ]
        try:
            await asyncio.sleep(duration_s)
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    def write(self, out_dir: Path) -> dict[str, Any]:
        """One `<VENUE_ID>.parquet` per symbol, written under a temporary name first."""
        files = {}
        for symbol, state in self.symbols.items():
            out = out_dir / f"{state.venue_id}.parquet"
            partial = out.with_name(out.name + ".partial")
            try:
                write_parquet([state.rows.chunk(state.venue_id)], partial, state.venue_id)
                partial.replace(out)
            finally:
                partial.unlink(missing_ok=True)
            files[symbol] = {"path": str(out), "rows": len(state.rows.kind),
                             "trades": state.trades, "gaps": state.gaps}  # fmt: skip
        return files

    async def _books(self, symbol: str) -> None:
        state = self.symbols[symbol]
        while True:
            try:
                book = await self.exchange.watch_order_book(symbol, self.depth)
            except NetworkError as exc:
                if not state.need_snapshot:  # one gap per outage, however many retries
                    state.gaps += 1
                    state.need_snapshot = True
                log.warning("record_gap", symbol=symbol, error=type(exc).__name__)
                await asyncio.sleep(_RETRY_S)
                continue
            self._book_rows(state, book)

    def _book_rows(self, state: _Symbol, book: Any) -> None:
        local = self.clock.now_ns()
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

    async def _trades(self, symbol: str) -> None:
        state = self.symbols[symbol]
        while True:
            try:
                trades = await self.exchange.watch_trades(symbol)
            except NetworkError:
                await asyncio.sleep(_RETRY_S)
                continue
            local = self.clock.now_ns()
            for t in trades:
                side = 1 if t["side"] == "buy" else -1
                exch = int(t.get("timestamp") or local // NS_PER_MS) * NS_PER_MS
                state.rows.add(local, exch, Kind.TRADE, side, float(t["price"]), float(t["amount"]),
                               trade_number(t["id"]))  # fmt: skip
                state.trades += 1


async def record_market(
    exchange: Any, symbols: list[str], duration_s: float, out_dir: Path, clock: Clock
) -> dict[str, Any]:
    """Load markets, record `symbols` (ccxt symbols) for `duration_s`, write the files."""
    try:
        await exchange.load_markets()
        unknown = [s for s in symbols if s not in exchange.markets]
        if unknown:
            raise ValueError(f"--symbols: {', '.join(unknown)} not listed by {exchange.id}")
        recorder = LiveRecorder(exchange, {s: exchange.markets[s]["id"] for s in symbols}, clock)
        with contextlib.suppress(asyncio.CancelledError):
            await recorder.record(duration_s)
    finally:
        await exchange.close()
    return recorder.write(out_dir)
