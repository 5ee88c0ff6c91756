"""Record an exchange's public streams into the market-data format: `mmbot market
record`. The rows are a Tape's (bot/market/tape.py): the books ccxt pro hands over,
as differences, a snapshot after a lost connection (a gap), and the trades, each
with the venue's stamp and the capture machine's (the injected clock).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Final

import structlog
from ccxt.base.errors import NetworkError

from bot.market.tape import Tape
from bot.runtime.clock import Clock

log = structlog.get_logger(__name__)

_RETRY_S: Final = 0.1


class LiveRecorder:
    """Public book and trade streams of some symbols, for a while, into Parquet files."""

    def __init__(self, exchange: Any, symbols: Mapping[str, str], clock: Clock, depth: int = 50):
        """`symbols`: ccxt symbol -> the venue id the file is named after."""
        self.exchange, self.clock, self.depth = exchange, clock, depth
        self.venue_ids = dict(symbols)
        self.tape = Tape(self.venue_ids.values())

    async def record(self, duration_s: float) -> None:
        tasks = []
        for symbol in self.venue_ids:
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
        """One `<VENUE_ID>.parquet` per symbol, keyed by the ccxt symbol."""
        files = self.tape.write(out_dir)
        return {symbol: files[venue_id] for symbol, venue_id in self.venue_ids.items()}

    async def _books(self, symbol: str) -> None:
        venue_id = self.venue_ids[symbol]
        while True:
            try:
                book = await self.exchange.watch_order_book(symbol, self.depth)
            except NetworkError as exc:
                self.tape.gap(venue_id)  # one gap per outage, however many retries
                log.warning("record_gap", symbol=symbol, error=type(exc).__name__)
                await asyncio.sleep(_RETRY_S)
                continue
            self.tape.book(venue_id, book, self.clock.now_ns())

    async def _trades(self, symbol: str) -> None:
        venue_id = self.venue_ids[symbol]
        while True:
            try:
                trades = await self.exchange.watch_trades(symbol)
            except NetworkError:
                await asyncio.sleep(_RETRY_S)
                continue
            local = self.clock.now_ns()
            for trade in trades:
                self.tape.trade(venue_id, trade, local)


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
