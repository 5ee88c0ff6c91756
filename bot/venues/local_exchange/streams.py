"""Bybit v5 websocket streams, as ccxt pro's bybit client expects them.

Public (/v5/public/linear): `orderbook.N.SYMBOL` (a snapshot on subscribe, then a
delta per change with `u` counting messages, so a gap shows as a jump) and
`publicTrade.SYMBOL`. Private (/v5/private): `auth` (HMAC of "GET/realtime" +
expires), then `order`, `execution` and `position`. Both answer `ping`.

Each connection has its own queue and writer task, so the venue (synchronous)
only ever enqueues. Faults the test arms on FaultControl act here: a dropped
connection, book deltas skipped (a sequence gap), duplicated messages and messages
sent out of order (one held back and sent after the next on its connection).
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import itertools
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final, Protocol

import structlog
from aiohttp import WSMsgType, web

from bot.venues.local_exchange.auth import ApiKey
from bot.venues.local_exchange.faults import FaultControl
from bot.venues.local_exchange.venue import (
    BookChanged,
    Executed,
    Execution,
    LocalVenue,
    OrderChanged,
    OrderRecord,
    TradePrinted,
    VenueNews,
)

log = structlog.get_logger(__name__)

PUBLIC_PATH: Final = "/v5/public/linear"
PRIVATE_PATH: Final = "/v5/private"
REORDER_HOLD_S: Final = 0.2


class Rows(Protocol):
    """How the REST side writes Bybit's rows; the streams send the same rows."""

    def order_row(self, o: OrderRecord) -> dict[str, Any]: ...
    def execution_row(self, e: Execution) -> dict[str, Any]: ...
    def position_rows(self, symbol: str | None) -> list[dict[str, Any]]: ...
    def book_side(self, symbol: str, side: int, depth: int) -> list[list[str]]: ...
    def level(self, symbol: str, px: int, qty: int) -> list[str]: ...
    def trade_row(self, t: TradePrinted) -> dict[str, Any]: ...


@dataclass(slots=True)
class _Connection:
    ws: web.WebSocketResponse
    private: bool
    conn_id: str
    topics: set[str] = field(default_factory=set)
    authed: bool = False
    queue: asyncio.Queue[dict[str, Any] | None] = field(default_factory=asyncio.Queue)
    held: dict[str, Any] | None = None  # a message held back, to go after the next one
    release: asyncio.TimerHandle | None = None


class StreamHub:
    def __init__(
        self, venue: LocalVenue, rows: Rows, keys: Mapping[str, ApiKey], faults: FaultControl
    ) -> None:
        self.venue, self.rows, self.keys, self.faults = venue, rows, keys, faults
        self.connections: list[_Connection] = []
        self._ids = itertools.count(1)
        # one update id per symbol's book stream: +1 per message, so a lost one is a jump
        self.update_ids: dict[str, int] = dict.fromkeys(venue.books, 1)
        # Bybit's disconnection protection (DCP): with a window set, losing every
        # private connection for that long cancels all orders
        self.dcp_window_s: int | None = None
        self._dcp_timer: asyncio.TimerHandle | None = None
        self.dcp_fired = 0
        venue.listeners.append(self.on_news)

    # --- connections ------------------------------------------------------------------

    async def serve(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(heartbeat=None)
        await ws.prepare(request)
        conn = _Connection(ws, request.path == PRIVATE_PATH, f"local-{next(self._ids)}")
        self.connections.append(conn)
        writer = asyncio.create_task(self._write(conn))
        try:
            async for msg in ws:
                if msg.type is not WSMsgType.TEXT:
                    break
                self._on_request(conn, json.loads(msg.data))
        finally:
            self.connections.remove(conn)
            if conn.private and conn.authed:
                self._private_gone()
            conn.queue.put_nowait(None)
            await writer
        return ws

    async def _write(self, conn: _Connection) -> None:
        while (message := await conn.queue.get()) is not None:
            if conn.ws.closed:
                return
            await conn.ws.send_str(json.dumps(message))

    def _private_gone(self) -> None:
        alive = any(c.private and c.authed for c in self.connections)
        if alive or self.dcp_window_s is None or self._dcp_timer is not None:
            return
        loop = asyncio.get_running_loop()
        self._dcp_timer = loop.call_later(self.dcp_window_s, self._dcp_fire)

    def disarm_dcp(self) -> None:
        """Switch disconnection protection off, a pending cancel-all with it."""
        self.dcp_window_s = None
        if self._dcp_timer is not None:
            self._dcp_timer.cancel()
            self._dcp_timer = None

    def _dcp_fire(self) -> None:
        self._dcp_timer = None
        self.dcp_fired += 1
        cancelled = self.venue.cancel_all(None)
        log.warning("local_dcp_cancelled_all", orders=len(cancelled), window_s=self.dcp_window_s)

    async def drop_all(self) -> int:
        """Close every connection, as a venue restart or a network cut does."""
        dropped = list(self.connections)
        for conn in dropped:
            await conn.ws.close()
        log.info("local_ws_dropped", connections=len(dropped))
        return len(dropped)

    def _send(self, conn: _Connection, message: dict[str, Any]) -> None:
        if conn.held is None and self.faults.take_ws("reorder"):
            conn.held = message
            log.info("local_ws_reordered", topic=message.get("topic") or message.get("op"))
            # out of order, not lost: with no next message it goes on its own
            conn.release = asyncio.get_running_loop().call_later(
                REORDER_HOLD_S, self._release, conn
            )
            return
        copies = 2 if self.faults.take_ws("duplicate") else 1
        for _ in range(copies):
            conn.queue.put_nowait(message)
        self._release(conn)

    def _release(self, conn: _Connection) -> None:
        if conn.release is not None:
            conn.release.cancel()
            conn.release = None
        if conn.held is not None:
            conn.queue.put_nowait(conn.held)
            conn.held = None

    # --- requests from a client ---------------------------------------------------------

    def _on_request(self, conn: _Connection, req: dict[str, Any]) -> None:
        op = req.get("op")
        reply: dict[str, Any] = {"success": True, "ret_msg": "", "conn_id": conn.conn_id,
                                 "req_id": req.get("req_id", ""), "op": op}  # fmt: skip
        if op == "ping":
            reply["ret_msg"] = "pong"
        elif op == "auth":
            conn.authed = self._auth(req.get("args") or [])
            if conn.authed and self._dcp_timer is not None:
                self._dcp_timer.cancel()  # back in time: nothing is cancelled
                self._dcp_timer = None
            reply.update(success=conn.authed, ret_msg="" if conn.authed else "Invalid sign")
        elif op == "subscribe":
            topics = [str(t) for t in req.get("args") or []]
            if conn.private and not conn.authed:
                reply.update(success=False, ret_msg="Request not authorized")
            else:
                conn.queue.put_nowait(reply)
                for topic in topics:
                    self._subscribe(conn, topic)
                return
        else:
            reply.update(success=False, ret_msg=f"unknown op {op!r}")
        conn.queue.put_nowait(reply)

    def _auth(self, args: list[Any]) -> bool:
        if len(args) != 3:
            return False
        key, expires, sign = (str(a) for a in args)
        api_key = self.keys.get(key)
        if api_key is None or not expires.isdigit() or int(expires) <= self.venue.now_ms():
            return False
        expected = hmac.new(
            api_key.secret.encode(), f"GET/realtime{expires}".encode(), hashlib.sha256
        ).hexdigest()
        return hmac.compare_digest(sign, expected)

    def _subscribe(self, conn: _Connection, topic: str) -> None:
        conn.topics.add(topic)
        parts = topic.split(".")
        if parts[0] == "orderbook" and len(parts) == 3:
            self._send(conn, self._snapshot(parts[2], int(parts[1]), topic))
        elif parts[0] == "position":
            self._send(conn, self._private("position", self.rows.position_rows(None)))

    def _snapshot(self, symbol: str, depth: int, topic: str) -> dict[str, Any]:
        u = self.update_ids[symbol]
        data = {"s": symbol, "b": self.rows.book_side(symbol, 1, depth),
                "a": self.rows.book_side(symbol, -1, depth), "u": u, "seq": u}  # fmt: skip
        now = self.venue.now_ms()
        return {"topic": topic, "type": "snapshot", "ts": now, "data": data, "cts": now}

    def _private(self, topic: str, data: list[dict[str, Any]]) -> dict[str, Any]:
        now = self.venue.now_ms()
        return {"id": f"{topic}-{now}", "topic": topic, "creationTime": now, "data": data}

    # --- news from the venue -------------------------------------------------------------

    def on_news(self, news: VenueNews) -> None:
        handlers: dict[type, Callable[[Any], None]] = {
            BookChanged: self._on_book, TradePrinted: self._on_trade,
            OrderChanged: self._on_order, Executed: self._on_execution,
        }  # fmt: skip
        handlers[type(news)](news)

    def _subscribers(self, topic: str) -> list[_Connection]:
        return [c for c in self.connections if topic in c.topics]

    def _on_book(self, news: BookChanged) -> None:
        self.update_ids[news.symbol] += 1
        skipped = not news.snapshot and self.faults.take_ws("skip")
        for conn in self.connections:
            for topic in [t for t in conn.topics if t.startswith("orderbook.")]:
                _, depth, symbol = topic.split(".")
                if symbol != news.symbol:
                    continue
                if news.snapshot:
                    self._send(conn, self._snapshot(symbol, int(depth), topic))
                    continue
                if skipped:
                    continue  # lost on the way: the next delta's `u` jumps
                self._send(conn, self._delta(news, topic))

    def _delta(self, news: BookChanged, topic: str) -> dict[str, Any]:
        sides: dict[int, list[list[str]]] = {1: [], -1: []}
        for side, px, qty in news.levels:
            sides[side].append(self.rows.level(news.symbol, px, qty))
        u = self.update_ids[news.symbol]
        now = self.venue.now_ms()
        data = {"s": news.symbol, "b": sides[1], "a": sides[-1], "u": u, "seq": u}
        return {"topic": topic, "type": "delta", "ts": now, "data": data, "cts": now}

    def _on_trade(self, news: TradePrinted) -> None:
        topic = f"publicTrade.{news.symbol}"
        message = {"topic": topic, "type": "snapshot", "ts": news.ts_ms,
                   "data": [self.rows.trade_row(news)]}  # fmt: skip
        for conn in self._subscribers(topic):
            self._send(conn, message)

    def _on_order(self, news: OrderChanged) -> None:
        message = self._private("order", [self.rows.order_row(news.order)])
        for conn in self._subscribers("order"):
            self._send(conn, message)

    def _on_execution(self, news: Executed) -> None:
        message = self._private("execution", [self.rows.execution_row(news.execution)])
        for conn in self._subscribers("execution"):
            self._send(conn, message)
        position = self._private("position", self.rows.position_rows(news.execution.symbol))
        for conn in self._subscribers("position"):
            self._send(conn, position)
