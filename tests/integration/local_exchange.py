"""The local Bybit server on its own thread and loop, for tests that drive ccxt."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Coroutine
from decimal import Decimal
from typing import Any, TypeVar

import numpy as np

from bot.config import FeeTier, Settings, instruments
from bot.market.schema import Kind, MarketChunk
from bot.runtime.clock import WallClock
from bot.venues.exchange import pointed_at
from bot.venues.local_exchange import ApiKey, LocalExchange, LocalVenue

T = TypeVar("T")
TEST_KEY = ApiKey("test-key", "test-secret-0123456789")
SYMBOL = "BTCUSDT"
CCXT_SYMBOL = "BTC/USDT:USDT"


def rows(kind: Kind, levels: list[tuple[int, float, float]], ts: int = 1) -> MarketChunk:
    """Market rows of one kind at one exchange time: (side, price, qty) each; a venue
    sends each trade id once, so ids derive from `ts` (one call per ts, then)."""
    n = len(levels)
    stamp = np.full(n, ts, dtype=np.int64)
    return MarketChunk(
        SYMBOL, stamp, stamp, np.full(n, int(kind), dtype=np.int8),
        np.array([s for s, _, _ in levels], dtype=np.int8),
        np.array([p for _, p, _ in levels], dtype=np.float64),
        np.array([q for _, _, q in levels], dtype=np.float64),
        np.arange(n, dtype=np.int64) + ts * 1_000,  # trade ids unique across calls
    )  # fmt: skip


def snapshot(bid: float, ask: float, qty: float = 1.0, levels: int = 5) -> MarketChunk:
    book = [(1, bid - i * 0.1, qty) for i in range(levels)]
    book += [(-1, ask + i * 0.1, qty) for i in range(levels)]
    return rows(Kind.SNAPSHOT, book)


class ServerThread:
    """Runs a LocalExchange on a private event loop; `call` runs work on that loop."""

    def __init__(self, settings: Settings | None = None) -> None:
        settings = settings or Settings()
        self.venue = LocalVenue(
            instruments(settings), WallClock(), fee=FeeTier(maker_bps=-0.5, taker_bps=3.0),
            balance=Decimal(10_000),
        )  # fmt: skip
        self.exchange = LocalExchange(self.venue, {TEST_KEY.key: TEST_KEY})
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True)

    def __enter__(self) -> ServerThread:
        self._thread.start()
        self.base_url = self.submit(self.exchange.start())
        return self

    def __exit__(self, *exc: object) -> None:
        self.submit(self.exchange.stop())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(5)
        self.loop.close()

    def submit(self, coro: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(10)

    def call(self, fn: Callable[[], T]) -> T:
        """Run `fn` on the server's loop, so venue state never changes mid-request."""

        async def run() -> T:
            return fn()

        return self.submit(run())

    def reset(self, bid: float = 60_000.0, ask: float = 60_000.5) -> None:
        def fresh() -> None:
            self.exchange.faults.clear()
            self.exchange.streams.disarm_dcp()
            self.venue.forced_post_only_rejects = 0
            self.venue.cancel_all(None)
            self.venue.apply(snapshot(bid, ask))

        self.call(fresh)


def ccxt_bybit(base_url: str, *, secret: str = TEST_KEY.secret, timeout_ms: int = 2_000) -> Any:
    """ccxt's real async bybit client aimed at the local server (linear markets only)."""
    import ccxt.async_support as ccxt

    exchange = ccxt.bybit({
        "apiKey": TEST_KEY.key, "secret": secret, "timeout": timeout_ms,
        "enableRateLimit": False, "options": {"fetchMarkets": {"types": ["linear"]}},
    })  # fmt: skip
    exchange.urls["api"] = pointed_at(exchange.urls["api"], base_url)
    exchange.timeout_on_exit = 0  # no socket to drain on a local listener
    return exchange
