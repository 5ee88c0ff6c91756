"""ccxt's real async bybit client against the local Bybit v5 server on 127.0.0.1."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

import ccxt
import pytest
from pydantic import SecretStr

from bot.market.schema import Kind
from bot.runtime.secrets import Credentials
from bot.venues.exchange import ccxt_exchange
from tests.integration.local_exchange import (
    CCXT_SYMBOL,
    TEST_KEY,
    ServerThread,
    ccxt_bybit,
    rows,
)

pytestmark = pytest.mark.integration


@pytest.fixture()
def fresh(server: ServerThread) -> ServerThread:
    server.reset()
    return server


def with_client(server: ServerThread, body: Callable[[Any], Awaitable[Any]], **kw: Any) -> Any:
    async def run() -> Any:
        exchange = ccxt_bybit(server.base_url, **kw)
        try:
            return await body(exchange)
        finally:
            await exchange.close()

    return asyncio.run(run())


async def post_only(ex: Any, side: str, qty: float, px: float, link: str) -> dict:
    params = {"postOnly": True, "clientOrderId": link}
    return await ex.create_order(CCXT_SYMBOL, "limit", side, qty, px, params)


def test_markets_and_order_book(fresh: ServerThread) -> None:
    async def body(ex: Any) -> tuple[dict, dict]:
        markets = await ex.load_markets()
        return markets[CCXT_SYMBOL], await ex.fetch_order_book(CCXT_SYMBOL, 5)

    market, book = with_client(fresh, body)
    assert market["linear"] and market["swap"] and market["id"] == "BTCUSDT"
    assert market["precision"]["price"] == 0.1 and market["precision"]["amount"] == 0.001
    assert book["bids"][0] == [60_000.0, 1.0] and book["asks"][0] == [60_000.5, 1.0]
    assert len(book["bids"]) == 5


def test_post_only_place_open_cancel(fresh: ServerThread) -> None:
    async def body(ex: Any) -> tuple[dict, list, dict, list]:
        placed = await post_only(ex, "buy", 0.002, 59_990.0, "q-1")
        opened = await ex.fetch_open_orders(CCXT_SYMBOL)
        cancelled = await ex.cancel_order(placed["id"], CCXT_SYMBOL)
        return placed, opened, cancelled, await ex.fetch_open_orders(CCXT_SYMBOL)

    placed, opened, cancelled, after = with_client(fresh, body)
    assert placed["clientOrderId"] == "q-1"
    assert [(o["clientOrderId"], o["price"], o["amount"], o["status"]) for o in opened] == [
        ("q-1", 59_990.0, 0.002, "open")
    ]
    assert opened[0]["timeInForce"] == "PO" and opened[0]["postOnly"] is True
    assert cancelled["id"] == placed["id"] and after == []
    assert fresh.venue.orders["q-1"].status == "Cancelled"


def test_fill_round_trip(fresh: ServerThread) -> None:
    async def place(ex: Any) -> dict:
        return await post_only(ex, "sell", 0.003, 60_000.5, "a-1")

    with_client(fresh, place)
    # a buyer sweeps through our ask: the whole order fills as maker
    fresh.call(lambda: fresh.venue.apply(rows(Kind.TRADE, [(1, 60_000.6, 5.0)], ts=2)))

    async def check(ex: Any) -> tuple[list, list, dict]:
        trades = await ex.fetch_my_trades(CCXT_SYMBOL)
        positions = await ex.fetch_positions([CCXT_SYMBOL])
        return trades, positions, await ex.fetch_balance()

    trades, positions, balance = with_client(fresh, check)
    assert [(t["side"], t["price"], t["amount"], t["takerOrMaker"]) for t in trades] == [
        ("sell", 60_000.5, 0.003, "maker")
    ]
    # maker rebate 0.5 bp of 180.0015 USDT, paid to us: a negative fee
    assert trades[0]["fee"]["cost"] == pytest.approx(-0.00900008, abs=1e-8)
    assert positions[0]["side"] == "short" and positions[0]["contracts"] == 0.003
    assert balance["USDT"]["total"] == pytest.approx(10_000.00900008)


def test_post_only_that_would_cross_is_cancelled_as_bybit_does(fresh: ServerThread) -> None:
    async def body(ex: Any) -> list:
        await post_only(ex, "buy", 0.001, 60_000.5, "x-1")
        return await ex.fetch_open_orders(CCXT_SYMBOL, params={"orderLinkId": "x-1"})

    (order,) = with_client(fresh, body)
    assert order["status"] == "canceled"
    assert order["info"]["rejectReason"] == "EC_PostOnlyWillTakeLiquidity"
    assert all(e.order_link_id != "x-1" for e in fresh.venue.executions)


def test_injected_post_only_reject(fresh: ServerThread) -> None:
    fresh.exchange.reject_post_only(1)

    async def body(ex: Any) -> list:
        for link in ("r-1", "r-2"):
            await post_only(ex, "buy", 0.001, 59_000.0, link)
        return await ex.fetch_open_orders(CCXT_SYMBOL)

    opened = with_client(fresh, body)
    assert [o["clientOrderId"] for o in opened] == ["r-2"]
    assert fresh.venue.orders["r-1"].reject_reason == "EC_PostOnlyWillTakeLiquidity"


def test_bad_signature_is_an_authentication_error(fresh: ServerThread) -> None:
    async def body(ex: Any) -> Any:
        return await ex.fetch_balance()

    with pytest.raises(ccxt.AuthenticationError, match="10004"):
        with_client(fresh, body, secret="not-the-secret")  # pragma: allowlist secret


@pytest.mark.parametrize(
    ("arm", "error"),
    [
        (lambda f: f.http_error(1, 503, path="/v5/market/orderbook"), ccxt.ExchangeNotAvailable),
        (lambda f: f.rate_limit(1, path="/v5/market/orderbook"), ccxt.RateLimitExceeded),
        (lambda f: f.delay(0.6, 1, path="/v5/market/orderbook"), ccxt.RequestTimeout),
    ],
    ids=["5xx", "rate-limit", "timeout"],
)
def test_faults_map_to_ccxt_errors(fresh: ServerThread, arm: Callable, error: type) -> None:
    async def body(ex: Any) -> Any:
        await ex.load_markets()
        arm(fresh.exchange.faults)
        with pytest.raises(error):
            await ex.fetch_order_book(CCXT_SYMBOL)
        # one fault, one request: the next one is answered
        return await ex.fetch_order_book(CCXT_SYMBOL)

    book = with_client(fresh, body, timeout_ms=300)
    assert book["bids"][0][0] == 60_000.0


def test_a_timed_out_placement_still_rests(fresh: ServerThread) -> None:
    async def body(ex: Any) -> list:
        await ex.load_markets()
        fresh.exchange.faults.delay(0.6, 1, path="/v5/order/create")
        with pytest.raises(ccxt.RequestTimeout):
            await post_only(ex, "buy", 0.001, 59_000.0, "t-1")
        return await ex.fetch_open_orders(CCXT_SYMBOL, params={"orderLinkId": "t-1"})

    (order,) = with_client(fresh, body, timeout_ms=300)
    assert order["clientOrderId"] == "t-1" and order["status"] == "open"


def pro_client(server: ServerThread, secret: str = TEST_KEY.secret) -> Any:
    """ccxt pro's bybit (REST + websocket) pointed at the local server."""
    credentials = Credentials(SecretStr(TEST_KEY.key), SecretStr(secret))
    exchange = ccxt_exchange("bybit", credentials, url=server.base_url, rate_limit=False)
    exchange.timeout_on_exit = 0
    return exchange


def test_streams_book_trades_orders_and_fills(fresh: ServerThread) -> None:
    async def body() -> dict[str, Any]:
        ex = pro_client(fresh)
        try:
            await ex.load_markets()
            seen: dict[str, Any] = {"book": await ex.watch_order_book(CCXT_SYMBOL, 50)}
            seen["book"] = {k: seen["book"][k][:2] for k in ("bids", "asks")}
            orders = asyncio.ensure_future(ex.watch_orders())
            fills = asyncio.ensure_future(ex.watch_my_trades())
            prints = asyncio.ensure_future(ex.watch_trades(CCXT_SYMBOL))
            await asyncio.sleep(0.1)  # subscribed before anything happens
            await post_only(ex, "sell", 0.002, 60_000.5, "w-1")
            seen["orders"] = [(o["clientOrderId"], o["status"]) for o in await orders]
            buy_through = rows(Kind.TRADE, [(1, 60_000.6, 5.0)], ts=3)
            fresh.call(lambda: fresh.venue.apply(buy_through))
            seen["fills"] = [(t["side"], t["price"], t["amount"], t["takerOrMaker"],
                              t["info"]["orderLinkId"]) for t in await fills]  # fmt: skip
            seen["prints"] = [(t["side"], t["price"], t["amount"]) for t in await prints]
            fresh.call(lambda: fresh.venue.apply(rows(Kind.DELTA, [(1, 60_000.1, 2.0)], ts=4)))
            book = await ex.watch_order_book(CCXT_SYMBOL, 50)
            seen["bid_after_delta"] = book["bids"][0]
            return seen
        finally:
            await ex.close()

    seen = asyncio.run(body())
    assert seen["book"] == {
        "bids": [[60_000.0, 1.0], [59_999.9, 1.0]],
        "asks": [[60_000.5, 1.0], [60_000.6, 1.0]],
    }
    assert seen["orders"] == [("w-1", "open")]
    assert seen["fills"] == [("sell", 60_000.5, 0.002, "maker", "w-1")]
    assert seen["prints"] == [("buy", 60_000.6, 5.0)]
    assert seen["bid_after_delta"] == [60_000.1, 2.0]


def test_private_stream_refuses_a_bad_signature(fresh: ServerThread) -> None:
    async def body() -> None:
        ex = pro_client(fresh, secret="wrong")
        ex.options["enableUnifiedMargin"], ex.options["enableUnifiedAccount"] = False, True
        try:
            await asyncio.wait_for(ex.watch_orders(), 5)
        finally:
            await ex.close()

    with pytest.raises(ccxt.AuthenticationError):
        asyncio.run(body())


def test_disconnection_protection_cancels_when_the_bot_vanishes(fresh: ServerThread) -> None:
    async def body() -> None:
        ex = pro_client(fresh)
        try:
            await ex.load_markets()
            await ex.cancel_all_orders_after(3_000)  # the shortest window Bybit accepts
            watching = asyncio.ensure_future(ex.watch_orders())
            await asyncio.sleep(0.2)  # authenticated on the private stream
            await post_only(ex, "buy", 0.001, 59_000.0, "dcp-1")
            await watching
        finally:
            await ex.close()  # the process dies: its private connection is gone

    asyncio.run(body())
    assert fresh.exchange.streams.dcp_window_s == 3
    assert fresh.venue.orders["dcp-1"].status == "New"  # not before the window
    time.sleep(3.3)
    assert fresh.venue.orders["dcp-1"].status == "Cancelled"
    assert fresh.exchange.streams.dcp_fired == 1
