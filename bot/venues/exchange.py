"""The ccxt venue: the engine's commands to a real exchange, its answers as reports.

One ccxt exchange object per account (ccxt's rate limiter lives in it). Every
call turns ccxt's error classes into what the engine understands (bot/model.py
VenueReport types) or into a typed error the shell acts on:

- idempotent calls (cancel, cancel-all, lookups, positions, balance, trades) are
  retried on network errors with exponential backoff and jitter (tenacity);
- a placement is NOT idempotent: when it times out or the venue answers 5xx, the
  order is looked up by its client order id (Bybit's orderLinkId) before any new
  attempt, and a "duplicate orderLinkId" answer also means "already placed", so
  an order is never placed twice;
- order rejects (post-only would take, bad size, ...) become OrderReject;
- a rate-limit answer arms a throttle: every following call waits it out, and
  the wait doubles while the venue keeps refusing;
- an authentication error re-reads the credentials once (a rotated key); a
  second one raises ExchangeHalted with a message for a person.

Prices and sizes are integer ticks and lots inside; they become floats only in
the ccxt call. Time comes from the injected clock.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from decimal import Decimal
from functools import partial
from typing import Any, Final, TypeVar
from urllib.parse import urlsplit, urlunsplit

import ccxt.pro as ccxt_pro
import structlog
from ccxt.base.errors import (
    AuthenticationError,
    ExchangeError,
    InvalidOrder,
    NetworkError,
    OrderNotFound,
    RateLimitExceeded,
)
from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception_type,
    wait_exponential_jitter,
)

from bot.model import (
    CancelAck,
    CancelReject,
    Instrument,
    Liquidity,
    OrderAck,
    OrderFill,
    OrderReject,
    Place,
    Side,
    VenueReport,
)
from bot.runtime.clock import Clock
from bot.runtime.secrets import Credentials

log = structlog.get_logger(__name__)

T = TypeVar("T")
Sleep = Callable[[float], Awaitable[None]]
NS_PER_S: Final = 1_000_000_000
POST_ONLY_CANCEL: Final = "EC_PostOnlyWillTakeLiquidity"
_DUPLICATE_LINK_ID: Final = "110072"
_SIDE_NAMES: Final = {Side.BUY: "buy", Side.SELL: "sell"}


class BookSequenceGap(NetworkError):
    """A book delta whose update id is not the previous one + 1: messages were lost."""


class SequencedBybit(ccxt_pro.bybit):
    """ccxt pro's bybit with the order book's update ids checked.

    ccxt applies every delta it gets; a lost one leaves a wrong book that looks
    fine. Bybit's linear book stream counts its messages in `u` (+1 per message:
    see the ob500 capture in shared/data/real). A jump is a gap: the connection is
    failed, so that ccxt reconnects, resubscribes and rebuilds the book from the
    snapshot Bybit sends on subscribe. A `u` at or below the last one is a
    duplicate or a late message and is dropped. Only this handler is extended;
    the rest is ccxt's own.
    """

    def __init__(self, config: dict[str, Any] | None = None) -> None:
        super().__init__(config or {})
        self.book_update_ids: dict[tuple[str, str], int] = {}
        self.book_gaps = 0

    def handle_order_book(self, client: Any, message: dict[str, Any]) -> None:
        data = message.get("data") or {}
        key = (str(client.url), str(data.get("s")))
        update_id = data.get("u")
        last = self.book_update_ids.get(key)
        if message.get("type") != "snapshot" and last is not None and update_id is not None:
            if update_id <= last:
                return  # seen already (a duplicate) or overtaken (a late message)
            if update_id != last + 1:
                self.book_gaps += 1
                del self.book_update_ids[key]
                log.warning("book_sequence_gap", symbol=key[1], last=last, got=update_id)
                client.on_error(BookSequenceGap(f"{key[1]}: book update {update_id} after {last}"))
                return
        if update_id is not None:
            self.book_update_ids[key] = int(update_id)
        super().handle_order_book(client, message)


class ExchangeHalted(Exception):
    """The venue refused our credentials even after re-reading them: trading stops."""


class PlacementUnknown(Exception):
    """A placement whose outcome the venue would not tell us after every attempt."""


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    attempts: int = 4
    # a rate limit says "slower", not "broken": its holds have their own budget per call
    rate_limit_holds: int = 8
    initial_s: float = 0.05
    max_s: float = 2.0
    jitter_s: float = 0.05


@dataclass(frozen=True, slots=True)
class OpenOrder:
    symbol: str
    client_order_id: str
    venue_order_id: str
    side: Side
    px: int
    qty: int
    filled: int


class RateThrottle:
    """How long to hold every call after the venue said "too many requests"."""

    def __init__(self, clock: Clock, sleep: Sleep, first_s: float = 0.2, max_s: float = 10.0):
        self._clock, self._sleep = clock, sleep
        self._first_s, self._max_s = first_s, max_s
        self.delay_s = 0.0
        self.until_ns = 0
        self.hits = 0

    def hit(self) -> None:
        self.hits += 1
        self.delay_s = min(self._max_s, self.delay_s * 2 if self.delay_s else self._first_s)
        self.until_ns = self._clock.now_ns() + int(self.delay_s * NS_PER_S)
        log.warning("venue_rate_limited", hold_s=self.delay_s, hits=self.hits)

    def clear(self) -> None:
        self.delay_s = 0.0

    async def wait(self) -> None:
        remaining = self.until_ns - self._clock.now_ns()
        if remaining > 0:
            await self._sleep(remaining / NS_PER_S)


def _call_budget(policy: RetryPolicy) -> Callable[[RetryCallState], bool]:
    """Tenacity's stop for one idempotent call: `attempts` network failures, or
    `rate_limit_holds` rate limits, whichever comes first."""
    spent = {"failed": 0, "held": 0}

    def stop(state: RetryCallState) -> bool:
        error = state.outcome.exception() if state.outcome is not None else None
        kind = "held" if isinstance(error, RateLimitExceeded) else "failed"
        spent[kind] += 1
        return spent["failed"] >= policy.attempts or spent["held"] >= policy.rate_limit_holds

    return stop


def ccxt_exchange(
    name: str,
    credentials: Credentials | None,
    *,
    url: str | None = None,
    testnet: bool = False,
    rate_limit: bool = True,
) -> Any:
    """A ccxt pro exchange (REST and websocket) for one account; `url` points both at
    another server (the local exchange: REST at `url`, streams at the same paths on
    ws://), `testnet` switches on ccxt's sandbox mode. `rate_limit` is ccxt's own
    request pacing (Bybit's endpoint weights): keep it on against a real venue; a
    test against the local server may switch it off."""
    cls = SequencedBybit if name == "bybit" else getattr(ccxt_pro, name, None)
    if cls is None:
        raise ValueError(f"venue.name {name!r} is not an exchange ccxt knows")
    config: dict[str, Any] = {
        "enableRateLimit": rate_limit,
        # the exchange refuses a request stamped off its own clock (Bybit: outside
        # recv_window, or over 1 s ahead): ccxt measures the offset as it loads markets
        # and stamps requests on the exchange's time
        "options": {"fetchMarkets": {"types": ["linear"]}, "defaultType": "swap",
                    "adjustForTimeDifference": True},
    }  # fmt: skip
    if credentials is not None:  # None: public data only (the recorder)
        config["apiKey"] = credentials.api_key.get_secret_value()
        config["secret"] = credentials.api_secret.get_secret_value()
    exchange = cls(config)
    if testnet:
        exchange.set_sandbox_mode(True)
    if url is not None:
        exchange.urls["api"] = pointed_at(exchange.urls["api"], url)
    return exchange


def pointed_at(urls: Any, url: str) -> Any:
    """ccxt's URL tree with every host replaced by `url`'s: REST URLs become `url`,
    websocket URLs keep their path on `url`'s host over ws:// (or wss://)."""
    if isinstance(urls, dict):
        return {key: pointed_at(value, url) for key, value in urls.items()}
    if not isinstance(urls, str):
        return urls
    base = urlsplit(url)
    if urls.startswith(("ws://", "wss://")):
        scheme = "wss" if base.scheme == "https" else "ws"
        return urlunsplit((scheme, base.netloc, urlsplit(urls).path, "", ""))
    return url.rstrip("/")


class ExchangeVenue:
    """Commands in, VenueReports out, for one account on one ccxt exchange."""

    def __init__(
        self,
        exchange: Any,
        instruments: Mapping[str, Instrument],
        clock: Clock,
        *,
        credentials: Callable[[], Credentials],
        retry: RetryPolicy = RetryPolicy(),
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        self.exchange = exchange
        self.instruments = dict(instruments)
        self.clock = clock
        self.retry = retry
        self.throttle = RateThrottle(clock, sleep)
        self._credentials = credentials
        self._sleep = sleep
        self._symbols: dict[str, str] = {}
        self._ids: dict[str, str] = {}

    # --- setup -----------------------------------------------------------------------

    async def connect(self) -> None:
        """Measure the exchange's clock, load its markets and map our symbols (venue
        ids) to ccxt's. The clock first: loading markets signs a request (currencies)
        before ccxt would measure it."""
        await self._idempotent(self.exchange.load_time_difference)
        await self._idempotent(self.exchange.load_markets)
        by_id = self.exchange.markets_by_id or {}
        for symbol in self.instruments:
            markets = by_id.get(symbol)
            if not markets:
                raise ValueError(f"venue.symbols.{symbol}: not listed by {self.exchange.id}")
            self._symbols[symbol] = markets[0]["symbol"]
            self._ids[markets[0]["symbol"]] = symbol

    async def close(self) -> None:
        await self.exchange.close()

    async def arm_dead_man(self, window_s: int) -> bool:
        """The venue's own cancel-all if we vanish (Bybit: disconnection protection,
        all orders cancelled once the private stream is gone `window_s`); False where
        the venue has none."""
        if not self.exchange.has.get("cancelAllOrdersAfter"):
            return False
        await self._idempotent(lambda: self.exchange.cancel_all_orders_after(window_s * 1_000))
        log.info("dead_man_armed", window_s=window_s)
        return True

    def ccxt_symbol(self, symbol: str) -> str:
        return self._symbols[symbol]

    def venue_symbol(self, ccxt_symbol: str) -> str:
        return self._ids[ccxt_symbol]

    # --- orders ----------------------------------------------------------------------

    async def place(self, cmd: Place) -> list[VenueReport]:
        """Send one order; never twice, whatever the network does."""
        last: NetworkError | None = None
        for attempt in range(self.retry.attempts):
            if attempt:
                # the order may be live even though its answer was lost
                found = await self.order_reports(cmd.symbol, cmd.client_order_id)
                if found:
                    return found
                await self._sleep(self._backoff_s(attempt))
            try:
                order = await self._send(cmd)
            except RateLimitExceeded as exc:
                self.throttle.hit()
                return [self._reject(cmd, f"rate_limited: {exc}")]
            except InvalidOrder as exc:
                if _DUPLICATE_LINK_ID in str(exc):
                    found = await self.order_reports(cmd.symbol, cmd.client_order_id)
                    if found:
                        return found
                return [self._reject(cmd, str(exc))]
            except NetworkError as exc:
                log.warning(
                    "place_outcome_unknown", client_order_id=cmd.client_order_id,
                    attempt=attempt + 1, error=type(exc).__name__,
                )  # fmt: skip
                last = exc
                continue
            except ExchangeError as exc:
                return [self._reject(cmd, str(exc))]
            self.throttle.clear()
            ack = OrderAck(self.clock.now_ns(), cmd.symbol, cmd.client_order_id, str(order["id"]))
            return [ack]
        found = await self.order_reports(cmd.symbol, cmd.client_order_id)
        if found:
            return found
        raise PlacementUnknown(
            f"{cmd.symbol} {cmd.client_order_id}: no answer after {self.retry.attempts} "
            f"attempts ({type(last).__name__}); the order is not on the venue"
        )

    async def _send(self, cmd: Place) -> Any:
        inst = self.instruments[cmd.symbol]
        params: dict[str, Any] = {"clientOrderId": cmd.client_order_id}
        if cmd.post_only:
            params["postOnly"] = True
        if cmd.reduce_only:
            params["reduceOnly"] = True
        await self.throttle.wait()
        return await self._authenticated(
            lambda: self.exchange.create_order(
                self.ccxt_symbol(cmd.symbol), "limit", _SIDE_NAMES[cmd.side],
                float(cmd.qty * inst.lot_size), float(cmd.px * inst.tick_size), params,
            )
        )  # fmt: skip

    def _reject(self, cmd: Place, reason: str) -> OrderReject:
        log.info("order_rejected", client_order_id=cmd.client_order_id, reason=reason)
        return OrderReject(self.clock.now_ns(), cmd.symbol, cmd.client_order_id, reason)

    def _backoff_s(self, attempt: int) -> float:
        return float(min(self.retry.max_s, self.retry.initial_s * 2 ** (attempt - 1)))

    async def cancel(
        self, symbol: str, client_order_id: str, venue_order_id: str | None = None
    ) -> list[VenueReport]:
        """By our client id, or by the venue's id for an order placed without one."""
        params = {} if venue_order_id else {"orderLinkId": client_order_id}
        try:
            await self._idempotent(
                lambda: self.exchange.cancel_order(venue_order_id, self.ccxt_symbol(symbol), params)
            )
        except OrderNotFound as exc:
            return [CancelReject(self.clock.now_ns(), symbol, client_order_id, str(exc))]
        return [CancelAck(self.clock.now_ns(), symbol, client_order_id)]

    async def cancel_all(self, symbol: str | None) -> list[VenueReport]:
        symbols = [symbol] if symbol is not None else list(self.instruments)
        reports: list[VenueReport] = []
        for one in symbols:
            done = await self._idempotent(
                partial(self.exchange.cancel_all_orders, self.ccxt_symbol(one))
            )
            now = self.clock.now_ns()
            reports += [CancelAck(now, one, str(o.get("clientOrderId"))) for o in done]
        return reports

    # --- what the venue holds --------------------------------------------------------

    async def order_reports(self, symbol: str, client_order_id: str) -> list[VenueReport]:
        """What the venue says of one order, as the reports it implies ([] if unknown)."""
        params = {"orderLinkId": client_order_id}
        found = await self._idempotent(
            lambda: self.exchange.fetch_open_orders(self.ccxt_symbol(symbol), None, None, params)
        )
        now = self.clock.now_ns()
        return [r for order in found for r in order_reports(order, symbol, now)]

    async def open_orders(self, symbol: str) -> list[OpenOrder]:
        inst = self.instruments[symbol]
        found = await self._idempotent(
            lambda: self.exchange.fetch_open_orders(self.ccxt_symbol(symbol))
        )
        return [
            OpenOrder(
                symbol, str(o.get("clientOrderId") or ""), str(o["id"]),
                Side.BUY if o["side"] == "buy" else Side.SELL,
                units(o["price"], inst.tick_size), units(o["amount"], inst.lot_size),
                units(o.get("filled") or 0, inst.lot_size),
            )
            for o in found
        ]  # fmt: skip

    async def positions(self) -> dict[str, int]:
        """Net position per symbol in lots (+ long, - short)."""
        return {symbol: lots for symbol, (lots, _) in (await self.holdings()).items()}

    async def holdings(self) -> dict[str, tuple[int, int]]:
        """Net position per symbol: (lots, + long / - short; average entry price in ticks,
        0 when flat)."""
        wanted = [self.ccxt_symbol(s) for s in self.instruments]
        found = await self._idempotent(lambda: self.exchange.fetch_positions(wanted))
        held = dict.fromkeys(self.instruments, (0, 0))
        for pos in found:
            symbol = self._ids.get(pos["symbol"])
            if symbol is None:
                continue
            inst = self.instruments[symbol]
            size = units(pos.get("contracts") or 0, inst.lot_size)
            entry = units(pos.get("entryPrice") or 0, inst.tick_size) if size else 0
            held[symbol] = (-size if pos.get("side") == "short" else size, entry)
        return held

    async def balance(self, coin: str = "USDT") -> Decimal:
        found = await self._idempotent(self.exchange.fetch_balance)
        return Decimal(str((found.get(coin) or {}).get("total") or 0))

    async def account_fills(self, since_ms: int) -> list[OrderFill]:
        """The account's fills on every instrument since `since_ms`, any run's."""
        return [f for s in self.instruments for f in await self.my_trades(s, since_ms)]

    async def my_trades(self, symbol: str, since_ms: int | None = None) -> list[OrderFill]:
        inst = self.instruments[symbol]
        found = await self._idempotent(
            lambda: self.exchange.fetch_my_trades(self.ccxt_symbol(symbol), since_ms)
        )
        ordered = sorted(found, key=lambda t: (t["timestamp"] or 0, t["id"]))
        return [
            fill_from_ccxt(t, symbol, inst, int(t["timestamp"] or 0) * 1_000_000) for t in ordered
        ]

    # --- error policy ----------------------------------------------------------------

    async def _idempotent(self, call: Callable[[], Awaitable[T]]) -> T:
        """A call that is safe to repeat: retried on network errors with backoff and
        jitter, after waiting out any rate-limit hold."""
        policy = self.retry
        retrying = AsyncRetrying(
            stop=_call_budget(policy),
            wait=wait_exponential_jitter(policy.initial_s, policy.max_s, jitter=policy.jitter_s),
            retry=retry_if_exception_type(NetworkError),
            sleep=self._sleep,
            reraise=True,
        )
        async for attempt in retrying:
            with attempt:
                await self.throttle.wait()
                try:
                    result = await self._authenticated(call)
                except RateLimitExceeded:
                    self.throttle.hit()
                    raise
                self.throttle.clear()
                return result
        raise AssertionError("tenacity returns or raises")  # pragma: no cover

    async def _authenticated(self, call: Callable[[], Awaitable[T]]) -> T:
        try:
            return await call()
        except AuthenticationError:
            log.warning("venue_authentication_failed", action="re-reading credentials once")
        credentials = self._credentials()
        self.exchange.apiKey = credentials.api_key.get_secret_value()
        self.exchange.secret = credentials.api_secret.get_secret_value()
        try:
            return await call()
        except AuthenticationError as exc:
            raise ExchangeHalted(
                f"{self.exchange.id} refused the API credentials twice (the second time "
                f"after re-reading them): {_ret_code(exc)}. Check the key, its permissions "
                "and IP whitelist, and the system clock. The bot halts; orders already on the "
                "venue stay there until it can sign in again."
            ) from None


def order_reports(order: Mapping[str, Any], symbol: str, ts_ns: int) -> list[VenueReport]:
    """The reports one ccxt order (REST or stream) implies for the engine.

    Bybit accepts a post-only order that would cross and then cancels it with
    rejectReason EC_PostOnlyWillTakeLiquidity: that is a reject, not a cancel."""
    client_order_id = str(order.get("clientOrderId") or "")
    status = order.get("status")
    reason = str((order.get("info") or {}).get("rejectReason") or "")
    if status == "canceled" and reason == POST_ONLY_CANCEL:
        return [OrderReject(ts_ns, symbol, client_order_id, reason)]
    if status == "rejected":
        return [OrderReject(ts_ns, symbol, client_order_id, reason or "rejected")]
    reports: list[VenueReport] = [OrderAck(ts_ns, symbol, client_order_id, str(order["id"]))]
    if status == "canceled":
        reports.append(CancelAck(ts_ns, symbol, client_order_id))
    return reports


def fill_from_ccxt(
    trade: Mapping[str, Any], symbol: str, inst: Instrument, ts_ns: int
) -> OrderFill:
    """One of our executions (ccxt's trade structure) as the engine's fill."""
    fee = (trade.get("fee") or {}).get("cost") or 0
    match_ns = int(trade.get("timestamp") or 0) * 1_000_000
    return OrderFill(
        ts_ns, symbol, str((trade.get("info") or {}).get("orderLinkId") or ""), str(trade["id"]),
        Side.BUY if trade["side"] == "buy" else Side.SELL,
        units(trade["price"], inst.tick_size), units(trade["amount"], inst.lot_size),
        Liquidity.MAKER if trade.get("takerOrMaker") == "maker" else Liquidity.TAKER,
        Decimal(str(fee)), match_ts_ns=match_ns,
    )  # fmt: skip


def units(value: object, step: Decimal) -> int:
    """A float from ccxt as a whole number of ticks or lots (rounded: floats drift)."""
    return int((Decimal(str(value)) / step).to_integral_value())


def _ret_code(exc: Exception) -> str:
    text = str(exc)
    start = text.find('"retCode"')
    return text[start : text.find(",", start)] if start >= 0 else type(exc).__name__
