"""An aiohttp server speaking the part of Bybit's v5 REST API that ccxt's bybit uses.

Point ccxt at it by overriding `exchange.urls['api']` (bot/venues/exchange.py
`pointed_at`); no ccxt code is patched. Every answer is Bybit's envelope {retCode, retMsg, result,
retExtInfo, time}; a refused request carries Bybit's retCode, which ccxt maps to
its error classes (10003/10004 AuthenticationError, 10006 RateLimitExceeded,
110001 OrderNotFound, ...). Private routes check the request signature (auth.py).
Before each request the market replay is advanced to the exchange clock.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Mapping
from decimal import Decimal, InvalidOperation
from typing import Any, Final

import structlog
from aiohttp import web

from bot.model import Instrument, Side
from bot.venues.local_exchange.auth import ApiKey, verify
from bot.venues.local_exchange.faults import FaultControl
from bot.venues.local_exchange.streams import PRIVATE_PATH, PUBLIC_PATH, StreamHub
from bot.venues.local_exchange.venue import (
    Execution,
    LocalVenue,
    LocalVenueError,
    OrderRecord,
    TradePrinted,
)

log = structlog.get_logger(__name__)

Params = dict[str, Any]
Handler = Callable[[Params], dict[str, Any]]
_SIDES: Final = {"Buy": Side.BUY, "Sell": Side.SELL}
_NAMES: Final = {Side.BUY: "Buy", Side.SELL: "Sell"}
_QUOTES: Final = ("USDT", "USDC")


def _text(value: Decimal) -> str:
    return format(value.normalize(), "f")


def _units(text: object, step: Decimal, what: str) -> int:
    """A decimal text as a whole number of `step`s, or Bybit's parameter error."""
    try:
        value = Decimal(str(text))
    except InvalidOperation:
        raise LocalVenueError(10001, f"params error: {what} {text!r} is not a number") from None
    units = value / step
    if units != units.to_integral_value() or units <= 0:
        raise LocalVenueError(10001, f"params error: {what} {text} is not a multiple of {step}")
    return int(units)


def _split(symbol: str) -> tuple[str, str]:
    for quote in _QUOTES:
        if symbol.endswith(quote):
            return symbol[: -len(quote)], quote
    raise LocalVenueError(10001, f"params error: symbol {symbol} has no USDT/USDC quote")


class LocalExchange:
    """The venue behind an HTTP listener on 127.0.0.1."""

    def __init__(
        self, venue: LocalVenue, keys: Mapping[str, ApiKey], faults: FaultControl | None = None
    ) -> None:
        self.venue = venue
        self.keys = dict(keys)
        self.faults = faults or FaultControl()
        self.requests: list[str] = []
        self.streams = StreamHub(venue, self, self.keys, self.faults)
        self._runner: web.AppRunner | None = None
        self._ticker: asyncio.Task[None] | None = None
        self.base_url = ""
        self._public: dict[str, Handler] = {
            "/v5/market/time": self._time,
            "/v5/market/instruments-info": self._instruments,
            "/v5/market/orderbook": self._orderbook,
            "/v5/market/recent-trade": self._recent_trades,
        }
        self._private: dict[str, Handler] = {
            "/v5/user/query-api": lambda _: {"unified": 0, "uta": 1, "readOnly": 0},
            "/v5/account/info": lambda _: {
                "unifiedMarginStatus": 6,
                "marginMode": "REGULAR_MARGIN",
            },
            "/v5/asset/coin/query-info": self._coins,
            "/v5/order/create": self._create,
            "/v5/order/cancel": self._cancel,
            "/v5/order/cancel-all": self._cancel_all,
            "/v5/order/disconnected-cancel-all": self._dcp,
            "/v5/order/realtime": self._realtime,
            "/v5/execution/list": self._executions,
            "/v5/position/list": self._positions,
            "/v5/account/wallet-balance": self._wallet,
        }

    # --- lifecycle -------------------------------------------------------------------

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> str:
        app = web.Application()
        app.router.add_get(PUBLIC_PATH, self.streams.serve)
        app.router.add_get(PRIVATE_PATH, self.streams.serve)
        app.router.add_route("*", "/{tail:.*}", self._dispatch)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, host, port)
        await site.start()
        bound = self._runner.addresses[0]
        self.base_url = f"http://{bound[0]}:{bound[1]}"
        self._ticker = asyncio.create_task(self._tick())
        log.info("local_exchange_started", url=self.base_url)
        return self.base_url

    async def _tick(self, period_s: float = 0.05) -> None:
        """Between requests the replay still plays, and the streams tell it."""
        while True:
            await asyncio.sleep(period_s)
            self.venue.advance()

    async def stop(self) -> None:
        if self._ticker is not None:
            self._ticker.cancel()
            self._ticker = None
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    @property
    def ws_url(self) -> str:
        return "ws" + self.base_url.removeprefix("http")

    async def drop_streams(self) -> int:
        """Cut every websocket connection (ccxt pro must reconnect and resubscribe)."""
        return await self.streams.drop_all()

    def reject_post_only(self, count: int = 1) -> None:
        """The next `count` post-only orders are cancelled as if they crossed."""
        self.venue.forced_post_only_rejects += count

    # --- dispatch --------------------------------------------------------------------

    async def _dispatch(self, request: web.Request) -> web.StreamResponse:
        path = request.path
        self.requests.append(f"{request.method} {path}")
        fault = self.faults.take(path)
        if fault is not None and fault.kind == "http_error":
            return web.Response(status=fault.status, text=f"{fault.status} injected fault")
        if fault is not None and fault.kind == "rate_limit":
            return self._envelope(10006, "Too many visits!", {})
        response = await self._answer(request, path)
        if fault is not None and fault.kind == "delay":
            await asyncio.sleep(fault.seconds)
        return response

    async def _answer(self, request: web.Request, path: str) -> web.Response:
        body = await request.text()
        handler = self._public.get(path)
        try:
            self.venue.advance()
            if handler is None:
                handler = self._private.get(path)
                if handler is None:
                    return web.Response(status=404, text=f"no route {path}")
                payload = body if request.method == "POST" else request.query_string
                verify(request.headers, payload, self.keys, self.venue.now_ms())
            params: Params = dict(request.query)
            if request.method == "POST" and body:
                params.update(json.loads(body))
            return self._envelope(0, "OK", handler(params))
        except LocalVenueError as exc:
            log.info("local_exchange_refused", path=path, ret_code=exc.ret_code, reason=str(exc))
            return self._envelope(exc.ret_code, str(exc), {})
        except json.JSONDecodeError:
            return self._envelope(10001, "params error: body is not JSON", {})

    def _envelope(self, code: int, message: str, result: dict[str, Any]) -> web.Response:
        doc = {
            "retCode": code,
            "retMsg": message,
            "result": result,
            "retExtInfo": {},
            "time": self.venue.now_ms(),
        }
        return web.json_response(doc)

    # --- helpers ---------------------------------------------------------------------

    def _instrument(self, params: Params) -> tuple[str, Instrument]:
        symbol = str(params.get("symbol", ""))
        inst = self.venue.instruments.get(symbol)
        if inst is None:
            raise LocalVenueError(10001, f"params error: symbol invalid: {symbol!r}")
        return symbol, inst

    def _px(self, inst: Instrument, px: int) -> str:
        return _text(px * inst.tick_size)

    def _qty(self, inst: Instrument, lots: int) -> str:
        return _text(lots * inst.lot_size)

    # --- public ----------------------------------------------------------------------

    def _time(self, _: Params) -> dict[str, Any]:
        ns = self.venue.clock.now_ns()
        return {"timeSecond": str(ns // 1_000_000_000), "timeNano": str(ns)}

    def _instruments(self, params: Params) -> dict[str, Any]:
        if params.get("category", "linear") != "linear" or params.get("status") == "PreLaunch":
            return {"category": params.get("category", "linear"), "list": [], "nextPageCursor": ""}
        return {
            "category": "linear",
            "list": [self._instrument_row(s, i) for s, i in self.venue.instruments.items()],
            "nextPageCursor": "",
        }

    def _instrument_row(self, symbol: str, inst: Instrument) -> dict[str, Any]:
        base, quote = _split(symbol)
        return {
            "symbol": symbol,
            "contractType": "LinearPerpetual",
            "status": "Trading",
            "baseCoin": base,
            "quoteCoin": quote,
            "settleCoin": quote,
            "launchTime": "1585526400000",
            "deliveryTime": "0",
            "priceScale": "2",
            "leverageFilter": {"minLeverage": "1", "maxLeverage": "100.00", "leverageStep": "0.01"},
            "priceFilter": {
                "minPrice": _text(inst.tick_size),
                "maxPrice": "1999999.80",
                "tickSize": _text(inst.tick_size),
            },
            "lotSizeFilter": {
                "maxOrderQty": "1190",
                "minOrderQty": self._qty(inst, inst.min_qty_lots or 1),
                "qtyStep": _text(inst.lot_size),
                "maxMktOrderQty": "500",
                "minNotionalValue": _text(inst.min_notional),
            },
            "unifiedMarginTrade": True,
            "fundingInterval": 480,
            "copyTrading": "both",
        }

    def _orderbook(self, params: Params) -> dict[str, Any]:
        symbol, _ = self._instrument(params)
        depth = int(params.get("limit", 25))
        now = self.venue.now_ms()
        u = self.streams.update_ids[symbol]
        return {
            "s": symbol, "b": self.book_side(symbol, 1, depth),
            "a": self.book_side(symbol, -1, depth), "ts": now, "u": u, "seq": u, "cts": now,
        }  # fmt: skip

    def book_side(self, symbol: str, side: int, depth: int) -> list[list[str]]:
        book = self.venue.books[symbol]
        return [self.level(symbol, px, q) for px, q in book.depth(side, depth)]

    def level(self, symbol: str, px: int, qty: int) -> list[str]:
        inst = self.venue.instruments[symbol]
        return [self._px(inst, px), self._qty(inst, qty)]

    def _recent_trades(self, params: Params) -> dict[str, Any]:
        symbol, inst = self._instrument(params)
        limit = int(params.get("limit", 500))
        rows = self.venue.trades[symbol][-limit:][::-1]
        listed = [
            {
                "execId": tid, "symbol": symbol, "price": self._px(inst, px),
                "size": self._qty(inst, q), "side": _NAMES[side], "time": str(ms),
                "isBlockTrade": False,
            }
            for tid, px, q, side, ms in rows
        ]  # fmt: skip
        return {"category": "linear", "list": listed}

    def trade_row(self, t: TradePrinted) -> dict[str, Any]:
        """A publicTrade stream row (short keys, as Bybit's stream writes them)."""
        inst = self.venue.instruments[t.symbol]
        return {
            "T": t.ts_ms, "s": t.symbol, "S": _NAMES[t.side], "v": self._qty(inst, t.qty),
            "p": self._px(inst, t.px), "L": "PlusTick", "i": t.trade_id, "BT": False,
        }  # fmt: skip

    # --- private ---------------------------------------------------------------------

    def _coins(self, _: Params) -> dict[str, Any]:
        coins = sorted({c for s in self.venue.instruments for c in _split(s)})
        return {"rows": [{"name": c, "coin": c, "remainAmount": "0", "chains": []} for c in coins]}

    def _create(self, params: Params) -> dict[str, Any]:
        symbol, inst = self._instrument(params)
        side = _SIDES.get(str(params.get("side")))
        if side is None:
            raise LocalVenueError(10001, f"params error: side {params.get('side')!r}")
        if params.get("orderType") != "Limit":
            raise LocalVenueError(10001, "params error: only Limit orders are supported here")
        px = _units(params.get("price"), inst.tick_size, "price")
        qty = _units(params.get("qty"), inst.lot_size, "qty")
        if qty < inst.min_qty_lots:
            raise LocalVenueError(10001, f"The number of contracts is below min: {params['qty']}")
        if inst.notional(px, qty) < inst.min_notional:
            raise LocalVenueError(110094, "Order does not meet minimum order value")
        link_id = str(params.get("orderLinkId") or f"auto-{len(self.venue.orders) + 1}")
        tif = str(params.get("timeInForce", "GTC"))
        order = self.venue.place(symbol, side, px, qty, link_id, tif)
        log.info("local_order_created", order_link_id=link_id, status=order.status)
        return {"orderId": order.order_id, "orderLinkId": order.order_link_id}

    def _cancel(self, params: Params) -> dict[str, Any]:
        symbol, _ = self._instrument(params)
        order = self.venue.cancel(symbol, params.get("orderId"), params.get("orderLinkId"))
        return {"orderId": order.order_id, "orderLinkId": order.order_link_id}

    def _cancel_all(self, params: Params) -> dict[str, Any]:
        symbol = params.get("symbol") or None
        if symbol is not None:
            self._instrument(params)
        doomed = self.venue.cancel_all(symbol)
        return {
            "list": [{"orderId": o.order_id, "orderLinkId": o.order_link_id} for o in doomed],
            "success": "1",
        }

    def _dcp(self, params: Params) -> dict[str, Any]:
        window = params.get("timeWindow")
        if not isinstance(window, int) or not 3 <= window <= 300:
            raise LocalVenueError(10001, f"params error: timeWindow {window!r} not in [3, 300]")
        self.streams.dcp_window_s = window
        return {}

    def _realtime(self, params: Params) -> dict[str, Any]:
        symbol = params.get("symbol") or None
        order_id, link_id = params.get("orderId"), params.get("orderLinkId")
        if order_id or link_id:
            # Bybit answers a lookup by id with the order whatever its status
            try:
                found = [self.venue.find(str(symbol), order_id, link_id)]
            except LocalVenueError:
                found = []
        else:
            found = self.venue.open_orders(symbol)
        return {
            "category": "linear",
            "list": [self.order_row(o) for o in found],
            "nextPageCursor": "",
        }

    def order_row(self, o: OrderRecord) -> dict[str, Any]:
        inst = self.venue.instruments[o.symbol]
        avg = o.cum_value / (o.cum_qty * inst.lot_size) if o.cum_qty else Decimal(0)
        return {
            "orderId": o.order_id,
            "orderLinkId": o.order_link_id,
            "symbol": o.symbol,
            "price": self._px(inst, o.px),
            "qty": self._qty(inst, o.qty),
            "side": _NAMES[o.side],
            "orderType": "Limit",
            "timeInForce": o.time_in_force,
            "orderStatus": o.status,
            "cumExecQty": self._qty(inst, o.cum_qty),
            "cumExecValue": _text(o.cum_value),
            "cumExecFee": _text(o.cum_fee),
            "leavesQty": self._qty(inst, o.qty - o.cum_qty),
            "avgPrice": _text(avg) if o.cum_qty else "",
            "rejectReason": o.reject_reason,
            "createdTime": str(o.created_ms),
            "updatedTime": str(o.updated_ms),
            "reduceOnly": False,
            "positionIdx": 0,
            "category": "linear",
            "triggerPrice": "",
            "takeProfit": "",
            "stopLoss": "",
            "isLeverage": "",
            "cancelType": "UNKNOWN",
        }

    def _executions(self, params: Params) -> dict[str, Any]:
        symbol = params.get("symbol") or None
        start = int(params.get("startTime", 0))
        rows = [
            e for e in self.venue.executions if symbol in (None, e.symbol) and e.ts_ms >= start
        ][::-1]
        limit = int(params.get("limit", 50))
        return {
            "category": "linear",
            "list": [self.execution_row(e) for e in rows[:limit]],
            "nextPageCursor": "",
        }

    def execution_row(self, e: Execution) -> dict[str, Any]:
        inst = self.venue.instruments[e.symbol]
        value = inst.notional(e.px, e.qty)
        rate = self.venue.fee.maker_bps if e.is_maker else self.venue.fee.taker_bps
        return {
            "symbol": e.symbol,
            "orderId": e.order_id,
            "orderLinkId": e.order_link_id,
            "side": _NAMES[e.side],
            "orderPrice": self._px(inst, e.px),
            "orderQty": self._qty(inst, e.qty),
            "orderType": "Limit",
            "execType": "Trade",
            "execId": e.exec_id,
            "execPrice": self._px(inst, e.px),
            "execQty": self._qty(inst, e.qty),
            "execValue": _text(value),
            "execFee": _text(e.fee),
            "feeRate": _text(Decimal(str(rate)) / 10_000),
            "execTime": str(e.ts_ms),
            "isMaker": e.is_maker,
            "category": "linear",
        }

    def _positions(self, params: Params) -> dict[str, Any]:
        rows = self.position_rows(params.get("symbol") or None)
        return {"category": "linear", "list": rows, "nextPageCursor": ""}

    def position_rows(self, wanted: str | None) -> list[dict[str, Any]]:
        rows = []
        for symbol, inst in self.venue.instruments.items():
            if wanted not in (None, symbol):
                continue
            pos = self.venue.account.positions.get(symbol)
            lots = pos.lots if pos else 0
            per_lot = pos.avg_per_lot if pos and lots else Decimal(0)
            avg = _text(per_lot / inst.lot_size)
            rows.append({
                "symbol": symbol, "side": "" if lots == 0 else _NAMES[Side(1 if lots > 0 else -1)],
                "size": self._qty(inst, abs(lots)), "avgPrice": avg,
                "positionValue": _text(abs(lots) * per_lot), "positionIdx": 0, "tradeMode": 0,
                "leverage": "10", "markPrice": avg, "unrealisedPnl": "0",
                "cumRealisedPnl": _text(pos.realised if pos else Decimal(0)), "createdTime": "0",
                "updatedTime": str(self.venue.now_ms()), "positionStatus": "Normal",
                "category": "linear",
            })  # fmt: skip
        return rows

    def _wallet(self, _: Params) -> dict[str, Any]:
        balance = _text(self.venue.account.balance)
        coin = {
            "coin": "USDT",
            "walletBalance": balance,
            "equity": balance,
            "locked": "0",
            "totalOrderIM": "0",
            "totalPositionIM": "0",
            "usdValue": balance,
        }
        return {"list": [{"accountType": "UNIFIED", "totalEquity": balance, "coin": [coin]}]}
