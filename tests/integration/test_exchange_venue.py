"""The ccxt venue (bot/venues/exchange.py) against the local Bybit server, with faults."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from decimal import Decimal
from typing import Any

import pytest
from ccxt.base.errors import RateLimitExceeded
from pydantic import SecretStr

from bot.config import Settings, instruments
from bot.market.schema import Kind
from bot.model import CancelAck, CancelReject, Liquidity, OrderAck, OrderReject, Place, Side
from bot.runtime.clock import FrozenClock, WallClock
from bot.runtime.secrets import Credentials, exchange_credentials, fresh_credentials, store_for
from bot.venues.exchange import (
    ExchangeHalted,
    ExchangeVenue,
    PlacementUnknown,
    RetryPolicy,
    ccxt_exchange,
)
from tests.integration.local_exchange import SYMBOL, TEST_KEY, ServerThread, rows

pytestmark = pytest.mark.integration


@pytest.fixture()
def fresh(server: ServerThread) -> ServerThread:
    server.reset()
    return server


class Sleeps(list[float]):
    """Records every wait the venue asks for, and does not wait (runs stay fast)."""

    async def __call__(self, seconds: float) -> None:
        self.append(seconds)


def run(
    server: ServerThread,
    body: Callable[[ExchangeVenue], Awaitable[Any]],
    *,
    secret: str = TEST_KEY.secret,
    credentials: Callable[[], Credentials] | None = None,
    sleeps: Sleeps | None = None,
) -> Any:
    def good() -> Credentials:
        return Credentials(SecretStr(TEST_KEY.key), SecretStr(TEST_KEY.secret))

    async def main() -> Any:
        first = Credentials(SecretStr(TEST_KEY.key), SecretStr(secret))
        exchange = ccxt_exchange("bybit", first, url=server.base_url, rate_limit=False)
        exchange.timeout = 300
        exchange.timeout_on_exit = 0  # no socket to drain on a local listener
        venue = ExchangeVenue(
            exchange, instruments(Settings()), WallClock(), credentials=credentials or good,
            retry=RetryPolicy(attempts=3, initial_s=0.01, max_s=0.05, jitter_s=0.01),
            sleep=sleeps if sleeps is not None else Sleeps(),
        )  # fmt: skip
        try:
            await venue.connect()
            return await body(venue)
        finally:
            await venue.close()

    return asyncio.run(main())


def bid(coid: str, px: int = 599_900, qty: int = 2) -> Place:
    return Place(0, SYMBOL, coid, Side.BUY, px, qty)


def creates(server: ServerThread) -> int:
    return server.exchange.requests.count("POST /v5/order/create")


def test_place_open_cancel(fresh: ServerThread) -> None:
    async def body(v: ExchangeVenue) -> tuple[list, list, list, list]:
        placed = await v.place(bid("p-1"))
        opened = await v.open_orders(SYMBOL)
        return placed, opened, await v.cancel(SYMBOL, "p-1"), await v.cancel(SYMBOL, "p-1")

    placed, opened, cancelled, again = run(fresh, body)
    assert [type(r) for r in placed] == [OrderAck] and placed[0].venue_order_id
    assert [(o.client_order_id, o.side, o.px, o.qty) for o in opened] == [
        ("p-1", Side.BUY, 599_900, 2)
    ]
    assert cancelled == [CancelAck(cancelled[0].ts_ns, SYMBOL, "p-1")]
    assert [type(r) for r in again] == [CancelReject] and "110001" in again[0].reason


def test_a_timed_out_placement_is_found_not_placed_twice(fresh: ServerThread) -> None:
    before = creates(fresh)
    fresh.exchange.faults.delay(0.6, 1, path="/v5/order/create")

    async def body(v: ExchangeVenue) -> list:
        return await v.place(bid("t-1"))

    reports = run(fresh, body)
    assert [type(r) for r in reports] == [OrderAck]
    assert creates(fresh) - before == 1  # looked up, not re-sent
    assert [o.order_link_id for o in fresh.venue.open_orders(SYMBOL)] == ["t-1"]


def test_a_5xx_placement_is_looked_up_then_sent_again(fresh: ServerThread) -> None:
    before = creates(fresh)
    fresh.exchange.faults.http_error(1, 502, path="/v5/order/create")

    async def body(v: ExchangeVenue) -> list:
        return await v.place(bid("f-1"))

    reports = run(fresh, body)
    assert [type(r) for r in reports] == [OrderAck]
    assert creates(fresh) - before == 2  # the first never reached the book
    assert "GET /v5/order/realtime" in fresh.exchange.requests
    assert [o.order_link_id for o in fresh.venue.open_orders(SYMBOL)] == ["f-1"]


def test_post_only_that_would_cross_becomes_a_reject_event(fresh: ServerThread) -> None:
    async def body(v: ExchangeVenue) -> tuple[list, list]:
        placed = await v.place(bid("x-1", px=600_005))
        return placed, await v.order_reports(SYMBOL, "x-1")

    placed, reports = run(fresh, body)
    assert [type(r) for r in placed] == [OrderAck]
    assert [(type(r), r.reason) for r in reports] == [(OrderReject, "EC_PostOnlyWillTakeLiquidity")]


def test_rate_limit_rejects_and_slows_the_next_call(fresh: ServerThread) -> None:
    fresh.exchange.faults.rate_limit(1, path="/v5/order/create")
    sleeps = Sleeps()

    async def body(v: ExchangeVenue) -> tuple[list, list, int]:
        limited = await v.place(bid("r-1"))
        waits_before = len(sleeps)
        ok = await v.place(bid("r-2"))
        return limited, ok, waits_before

    limited, ok, waits_before = run(fresh, body, sleeps=sleeps)
    assert [type(r) for r in limited] == [OrderReject] and "rate_limited" in limited[0].reason
    assert [type(r) for r in ok] == [OrderAck]
    # the second place waited out the hold the first one armed (0.2 s, less elapsed time)
    assert len(sleeps) == waits_before + 1 and 0.1 < sleeps[-1] <= 0.2


def test_rate_limited_idempotent_call_waits_and_retries(fresh: ServerThread) -> None:
    fresh.exchange.faults.rate_limit(2, path="/v5/position/list")
    sleeps = Sleeps()

    async def body(v: ExchangeVenue) -> tuple[dict, float]:
        return await v.positions(), v.throttle.delay_s

    positions, delay_after = run(fresh, body, sleeps=sleeps)
    assert positions == {SYMBOL: 0}
    assert delay_after == 0.0  # cleared by the answer that came through
    # two holds, the second twice the first, each followed by tenacity's backoff
    holds = [s for s in sleeps if s > 0.1]
    assert len(holds) == 2 and holds[1] > holds[0]


def test_rate_limits_have_their_own_budget_beside_network_failures(fresh: ServerThread) -> None:
    # 2 network failures and 5 rate limits in one call: more than the 3 attempts the
    # network budget allows here (run()'s RetryPolicy), but each within its own budget
    fresh.exchange.faults.http_error(count=2, status=503, path="/v5/position/list")
    fresh.exchange.faults.rate_limit(5, path="/v5/position/list")

    async def body(v: ExchangeVenue) -> dict:
        return await v.positions()

    assert run(fresh, body, sleeps=Sleeps()) == {SYMBOL: 0}
    fresh.exchange.faults.rate_limit(8, path="/v5/position/list")  # the rate-limit budget

    async def spent(v: ExchangeVenue) -> str:
        try:
            await v.positions()
        except RateLimitExceeded as exc:
            return type(exc).__name__
        return "answered"

    assert run(fresh, spent, sleeps=Sleeps()) == "RateLimitExceeded"


def test_authentication_error_rereads_credentials_once(fresh: ServerThread) -> None:
    # the store holds the stale key, well inside its TTL; the key is rotated at the
    # source; the venue's one re-read goes past the cache and signs in with the new one
    stale_secret = "stale-secret"  # pragma: allowlist secret
    env = {"MMBOT_API_KEY": TEST_KEY.key, "MMBOT_API_SECRET": stale_secret}
    settings = Settings(mode="live", secrets={"provider": "env", "cache_ttl_s": 3600})
    store = store_for(settings, env, FrozenClock(0))
    stale = exchange_credentials(settings, store=store)
    env["MMBOT_API_SECRET"] = TEST_KEY.secret
    assert exchange_credentials(settings, store=store) == stale  # cached: not seen yet

    async def body(v: ExchangeVenue) -> Decimal:
        return await v.balance()

    def reread() -> Credentials:
        return fresh_credentials(settings, store)

    secret = stale.api_secret.get_secret_value()
    assert run(fresh, body, secret=secret, credentials=reread) == Decimal(10_000)
    misses = [a.name for a in store.accesses if not a.hit]
    assert misses == ["api_key", "api_secret", "api_key", "api_secret"]


def test_authentication_error_twice_halts_with_a_message(fresh: ServerThread) -> None:
    def still_wrong() -> Credentials:
        return Credentials(SecretStr(TEST_KEY.key), SecretStr("still-wrong"))

    async def body(v: ExchangeVenue) -> Any:
        return await v.balance()

    with pytest.raises(ExchangeHalted, match="refused the API credentials twice") as halted:
        run(fresh, body, secret="stale", credentials=still_wrong)  # pragma: allowlist secret
    assert "10004" in str(halted.value) and "still-wrong" not in str(halted.value)


def test_fill_shows_in_trades_position_and_cancel_all(fresh: ServerThread) -> None:
    async def place(v: ExchangeVenue) -> None:
        await v.place(Place(0, SYMBOL, "a-1", Side.SELL, 600_005, 3))
        await v.place(bid("b-1"))

    run(fresh, place)
    fresh.call(lambda: fresh.venue.apply(rows(Kind.TRADE, [(1, 60_000.6, 5.0)], ts=2)))

    async def check(v: ExchangeVenue) -> tuple[list, dict, list, list]:
        fills = await v.my_trades(SYMBOL)
        positions = await v.positions()
        return fills, positions, await v.cancel_all(None), await v.open_orders(SYMBOL)

    fills, positions, cancelled, left = run(fresh, check)
    assert [(f.client_order_id, f.side, f.px, f.qty, f.liquidity) for f in fills] == [
        ("a-1", Side.SELL, 600_005, 3, Liquidity.MAKER)
    ]
    assert fills[0].fee < 0  # the maker rebate
    assert positions == {SYMBOL: -3}
    assert [c.client_order_id for c in cancelled] == ["b-1"] and left == []


def test_venue_rules_reject_and_a_duplicate_id_is_the_same_order(fresh: ServerThread) -> None:
    async def body(v: ExchangeVenue) -> tuple[list, list, list]:
        tiny = await v.place(Place(0, SYMBOL, "s-1", Side.BUY, 10, 1))  # 1 USDT < min notional
        first = await v.place(bid("d-1"))
        return tiny, first, await v.place(bid("d-1"))

    before = creates(fresh)
    tiny, first, again = run(fresh, body)
    assert [type(r) for r in tiny] == [OrderReject] and "110094" in tiny[0].reason
    assert again == [OrderAck(again[0].ts_ns, SYMBOL, "d-1", first[0].venue_order_id)]
    assert creates(fresh) - before == 3
    assert [o.order_link_id for o in fresh.venue.open_orders(SYMBOL)] == ["d-1"]


def test_a_placement_the_venue_never_answers_is_reported_unknown(fresh: ServerThread) -> None:
    fresh.exchange.faults.http_error(3, 503, path="/v5/order/create")

    async def body(v: ExchangeVenue) -> list:
        return await v.place(bid("u-1"))

    with pytest.raises(PlacementUnknown, match="u-1: no answer after 3 attempts"):
        run(fresh, body)
    assert fresh.venue.open_orders(SYMBOL) == []
