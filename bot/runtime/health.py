"""Metrics and health of a running bot: prometheus-client metrics and an HTTP
server on 127.0.0.1 with `/health`, `/ready` and `/metrics` (optional bearer token).

The trading loop feeds them itself (`RunMonitor.on_timer`, at most once per
`poll_ms` of wall time; never a side thread): the journal rows buffered since the
last poll are read where the engine wrote them (orders, fills, risk), so counting
costs the hot path nothing, and every row is counted once (the rows a flush takes
from a buffer that the polls had not reached yet are counted from the flushed
part). The server's thread only reads what the last poll left:

- `/health`: 200 while the loop polls (its last poll younger than `stale_s`, or than
  three poll periods when they are longer), else 503;
- `/ready`: 200 when market data is fresh, the venue connected, the lease held and
  Redis reachable (when the run shares state) and the bot neither frozen nor halted;
  else 503. Both answer JSON with each check and the failing reasons;
- `/metrics`: the Prometheus text format.
"""

from __future__ import annotations

import hmac
import json
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any, Final

import pyarrow as pa
import structlog
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)

from bot.config import LEASE_POLLS, StateConfig
from bot.runtime.clock import Clock

if TYPE_CHECKING:
    from bot.engine import Engine
    from bot.journal import JournalWriter
    from bot.model import Event
    from bot.runtime.control import StateLink

log = structlog.get_logger(__name__)

NS_PER_S: Final = 1_000_000_000
NS_PER_MS: Final = 1_000_000
HOST: Final = "127.0.0.1"
TOKEN_ENV: Final = "MMBOT_HEALTH_TOKEN"
# the gate's latency bounds (350 / 400 ms) fall on bucket edges
LATENCY_BUCKETS: Final = (0.005, 0.01, 0.025, 0.05, 0.1, 0.2, 0.3, 0.35, 0.4, 0.5, 1.0, 2.5)
_REASON_CHARS: Final = 40
_TAPPED: Final = ("orders", "fills", "risk")
DEFAULT_POLL_MS: Final = StateConfig().poll_ms  # the profile's `state.poll_ms` default
_STOPPED: Final = ("frozen", "halted")


def reason_label(reason: str) -> str:
    """A reject reason as a label of few values: the text before its first ':' (the
    rest carries ids and prices, one series each)."""
    return reason.split(":", 1)[0].strip()[:_REASON_CHARS] or "unknown"


class Metrics:
    """The bot's metrics in their own registry (one per run: tests run many)."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.orders = Counter("mmbot_orders", "Orders by outcome (placed, filled, rejected, "
                              "blocked) and reason", ["outcome", "reason"], registry=r)  # fmt: skip
        self.latency = Histogram("mmbot_order_latency_seconds", "Order send to ack",
                                 buckets=LATENCY_BUCKETS, registry=r)  # fmt: skip
        self.edge = Gauge("mmbot_edge_bps", "Spread captured per fill, notional-weighted "
                          "since start (gross_bps)", ["symbol"], registry=r)  # fmt: skip
        self.edge_after_fees = Gauge("mmbot_edge_after_fees_bps", "gross_bps + fee_bps since "
                                     "start (adverse selection not yet known)", ["symbol"],
                                     registry=r)  # fmt: skip
        self.net_edge = Gauge("mmbot_rolling_net_edge_bps", "The edge guard's net edge (gross "
                              "+ fee - adverse) over its window of fills", registry=r)  # fmt: skip
        self.position = Gauge("mmbot_position_notional_usd", "Signed position at its mark",
                              ["symbol"], registry=r)  # fmt: skip
        self.inventory_ratio = Gauge("mmbot_inventory_ratio", "Largest |position notional| "
                                     "/ risk.max_inventory_usd", registry=r)  # fmt: skip
        self.maker_share = Gauge("mmbot_maker_share", "Maker notional / all notional",
                                 registry=r)  # fmt: skip
        self.freezes = Counter("mmbot_freezes", "Freezes and halts by check", ["kind", "check"],
                               registry=r)  # fmt: skip
        self.ws_lag = Gauge("mmbot_websocket_lag_seconds", "Market data receipt - exchange "
                            "time (set by the live loop)", registry=r)  # fmt: skip
        self.redis_errors = Counter("mmbot_redis_errors", "Failed calls to the shared state",
                                    registry=r)  # fmt: skip
        self.config_reloads = Counter("mmbot_config_reloads", "Settings reloaded while running",
                                      registry=r)  # fmt: skip
        self.heartbeat_age = Gauge("mmbot_heartbeat_age_seconds", "Wall time since the "
                                   "trading loop last polled", registry=r)  # fmt: skip
        self.trading_state = Gauge("mmbot_trading_state", "1 for the bot's trading state",
                                   ["state"], registry=r)  # fmt: skip
        self.books_differ = Gauge("mmbot_books_differ", "1 while the last financial "
                                  "reconciliation with the venue differed (live only)",
                                  registry=r)  # fmt: skip
        # by account: the lease-lost alert asks whether any process of an account leads
        self.lease_held = Gauge("mmbot_lease_held", "1 while this process holds its "
                                "account's leader lease (with shared state only)", ["account"],
                                registry=r)  # fmt: skip

    def render(self) -> bytes:
        return generate_latest(self.registry)


@dataclass(frozen=True, slots=True)
class Readiness:
    """What the last poll saw; None: a check that does not apply to this run."""

    polled_ns: int = 0  # wall time of the poll (0: none yet)
    market_fresh: bool = False
    venue_connected: bool = False
    lease_held: bool | None = None
    redis_reachable: bool | None = None
    trading_state: str = "starting"

    def failing(self) -> list[str]:
        reasons = []
        if not self.polled_ns:
            reasons.append("the trading loop has not polled yet")
        if not self.market_fresh:
            reasons.append("market data is stale")
        if not self.venue_connected:
            reasons.append("venue not connected")
        if self.lease_held is False:
            reasons.append("leader lease not held")
        if self.redis_reachable is False:
            reasons.append("shared state (Redis) unreachable")
        if self.trading_state in _STOPPED:
            reasons.append(f"trading state {self.trading_state}")
        return reasons


@dataclass(slots=True)
class _Edge:
    """Notional-weighted sums of one symbol's fills."""

    notional: float = 0.0
    gross: float = 0.0
    fee: float = 0.0


@dataclass(slots=True)
class _Fills:
    by_symbol: dict[str, _Edge] = field(default_factory=dict)
    maker: float = 0.0
    total: float = 0.0


class RunMonitor:
    """The loop's side: metrics and readiness from the engine and its journal rows."""

    def __init__(
        self, wall: Clock, *, poll_ms: int = DEFAULT_POLL_MS, stale_s: float = 5.0,
        venue_connected: Callable[[], bool] = lambda: True,
        books_differ: Callable[[], bool] = lambda: False,
    ) -> None:  # fmt: skip
        self.metrics = Metrics()
        self.wall = wall
        self.poll_ns = poll_ms * NS_PER_MS
        # a loop polling every poll_ms (state.poll_ms) is alive until it misses a few
        # polls: a slow poll period must not make /health flap between its polls
        self.stale_ns = max(int(stale_s * NS_PER_S), LEASE_POLLS * self.poll_ns)
        self.venue_connected = venue_connected
        self.books_differ = books_differ
        self.readiness = Readiness()
        self._engine: Engine | None = None
        self._writer: JournalWriter | None = None
        self._link: StateLink | None = None
        self._max_inventory = 0.0
        self._stale_data_ns = 0
        self._seen = dict.fromkeys(_TAPPED, 0)  # rows of each buffer already counted
        self._fills = _Fills()
        self._redis_errors = 0
        self._next_poll_ns = 0
        self.metrics.heartbeat_age.set_function(self.heartbeat_age_s)

    def attach(
        self, engine: Engine, writer: JournalWriter, max_inventory_usd: float,
        stale_data_ms: int, link: StateLink | None = None,
    ) -> None:  # fmt: skip
        self._engine, self._writer, self._link = engine, writer, link
        self._max_inventory = max_inventory_usd
        self._stale_data_ns = stale_data_ms * NS_PER_MS
        writer.on_flush.append(self.on_flush)

    def heartbeat_age_s(self) -> float:
        polled = self.readiness.polled_ns
        return (self.wall.now_ns() - polled) / NS_PER_S if polled else float("nan")

    # --- the loop's calls ------------------------------------------------------------

    def on_timer(self, ts_ns: int, market_ns: int, ack_ns: int) -> list[Event]:
        """Update the metrics and readiness (at most once per poll_ms); no events."""
        now = self.wall.now_ns()
        if now < self._next_poll_ns or self._engine is None or self._writer is None:
            return []
        self._next_poll_ns = now + self.poll_ns
        for table in _TAPPED:
            buffer = self._writer.buffers[table]
            seen, rows = self._seen[table], buffer.rows
            if rows > seen:
                self._count(table, [column[seen:rows] for column in buffer.values()])
                self._seen[table] = rows
        self._gauges()
        self.readiness = self._readiness(now, ts_ns, market_ns)
        return []

    def on_flush(self, table: str, part: int, rows: pa.Table) -> None:
        """A part went to disk and its buffer restarted: count what no poll had yet."""
        if table not in self._seen:
            return
        seen, self._seen[table] = self._seen[table], 0
        if rows.num_rows > seen:
            self._count(table, [c.to_pylist() for c in rows.slice(seen).columns])

    # --- counting rows ------------------------------------------------------------

    def _count(self, table: str, columns: Sequence[list[Any]]) -> None:
        if table == "orders":
            self._orders(columns)
        elif table == "fills":
            self._fill_rows(columns)
        else:
            self._risk(columns)

    def _orders(self, c: Sequence[list[Any]]) -> None:
        orders, latency = self.metrics.orders, self.metrics.latency
        # columns: ts_ns symbol client_order_id event side price qty status ts_send ts_ack reason
        for event, send, ack, reason in zip(c[3], c[8], c[9], c[10], strict=True):
            if event == "place":
                orders.labels("placed", "").inc()
            elif event == "reject":
                orders.labels("rejected", reason_label(reason or "")).inc()
            elif event == "ack" and ack and send:
                latency.observe((ack - send) / NS_PER_S)

    def _fill_rows(self, c: Sequence[list[Any]]) -> None:
        fills = self._fills
        filled = self.metrics.orders
        # columns: ts_ns symbol coid trade_id side price qty px_ticks qty_lots liquidity fee
        # fee_exact mid
        for symbol, side, price, qty, liquidity, fee, mid in zip(
            c[1], c[4], c[5], c[6], c[9], c[10], c[12], strict=True
        ):
            filled.labels("filled", liquidity).inc()
            notional = price * qty
            edge = fills.by_symbol.setdefault(symbol, _Edge())
            edge.notional += notional
            if mid:
                edge.gross += side * (mid - price) / mid * 1e4 * notional
            edge.fee -= fee * 1e4
            fills.total += notional
            if liquidity == "maker":
                fills.maker += notional
        for symbol, edge in fills.by_symbol.items():
            if edge.notional:
                self.metrics.edge.labels(symbol).set(edge.gross / edge.notional)
                self.metrics.edge_after_fees.labels(symbol).set(
                    (edge.gross + edge.fee) / edge.notional
                )
        if fills.total:
            self.metrics.maker_share.set(fills.maker / fills.total)

    def _risk(self, c: Sequence[list[Any]]) -> None:
        m = self.metrics
        # columns: ts_ns symbol kind check reason state
        for kind, check in zip(c[2], c[3], strict=True):
            if kind == "block":
                m.orders.labels("blocked", check).inc()
            elif kind in ("freeze", "kill"):
                m.freezes.labels(kind, check).inc()

    # --- gauges and readiness -----------------------------------------------------------

    def _gauges(self) -> None:
        assert self._engine is not None
        m = self.metrics
        exposure = self._engine.exposure()
        for symbol, usd in exposure.items():
            m.position.labels(symbol).set(usd)
        if self._max_inventory > 0:
            largest = max((abs(v) for v in exposure.values()), default=0.0)
            m.inventory_ratio.set(largest / self._max_inventory)
        edge, count = self._engine.rolling_net_edge_bps()
        if count:
            m.net_edge.set(edge)
        m.books_differ.set(1 if self.books_differ() else 0)
        state = self._engine.risk.state.value
        for name in ("active", "reducing", "frozen", "halted"):
            m.trading_state.labels(name).set(1 if name == state else 0)
        link = self._link
        if link is not None:
            m.lease_held.labels(link.store.account).set(1 if link.leader else 0)
            errors = link.redis_errors + (link.stream.redis_errors if link.stream else 0)
            if errors > self._redis_errors:
                m.redis_errors.inc(errors - self._redis_errors)
                self._redis_errors = errors

    def _readiness(self, now: int, ts_ns: int, market_ns: int) -> Readiness:
        assert self._engine is not None
        link = self._link
        return Readiness(
            polled_ns=now,
            market_fresh=market_ns >= 0 and ts_ns - market_ns <= self._stale_data_ns,
            venue_connected=self.venue_connected(),
            lease_held=None if link is None else link.leader,
            redis_reachable=None if link is None else link.reachable,
            trading_state=self._engine.risk.state.value,
        )

    # --- what the server answers --------------------------------------------------------

    def health(self) -> tuple[int, dict[str, Any]]:
        age = self.heartbeat_age_s()
        alive = self.readiness.polled_ns > 0 and age * NS_PER_S <= self.stale_ns
        body = {"status": "ok" if alive else "stale", "loop_age_s": None if age != age else age}
        return (200 if alive else 503), body

    def ready(self) -> tuple[int, dict[str, Any]]:
        readiness = self.readiness
        failing = readiness.failing()
        if self.health()[0] != 200:
            failing.insert(0, "the trading loop is not polling")
        checks = {k: v for k, v in asdict(readiness).items() if k != "polled_ns"}
        return (503 if failing else 200), {"ready": not failing, "failing": failing,
                                            "checks": checks}  # fmt: skip


class HealthServer:
    """`/health`, `/ready`, `/metrics` on 127.0.0.1:`port` (0: any free port) in a
    daemon thread; with a token, every request needs `Authorization: Bearer TOKEN`."""

    def __init__(self, monitor: RunMonitor, port: int, token: str | None = None) -> None:
        self.monitor = monitor
        handler = _handler(monitor, token)
        self.httpd = ThreadingHTTPServer((HOST, port), handler)
        self.httpd.daemon_threads = True
        self.port = int(self.httpd.server_address[1])
        self._thread = threading.Thread(target=self.httpd.serve_forever, name="mmbot-health",
                                        daemon=True)  # fmt: skip

    def start(self) -> HealthServer:
        self._thread.start()
        log.info("health_listening", host=HOST, port=self.port)
        return self

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def _handler(monitor: RunMonitor, token: str | None) -> type[BaseHTTPRequestHandler]:
    expected = f"Bearer {token}".encode() if token else None
    routes: Mapping[str, Callable[[], tuple[int, dict[str, Any]]]] = {
        "/health": monitor.health, "/ready": monitor.ready,
    }  # fmt: skip

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if expected is not None:
                given = (self.headers.get("Authorization") or "").encode()
                if not hmac.compare_digest(given, expected):
                    self._send(401, b'{"error": "bearer token required"}', "application/json")
                    return
            path = self.path.split("?", 1)[0]
            if path == "/metrics":
                self._send(200, monitor.metrics.render(), CONTENT_TYPE_LATEST)
            elif path in routes:
                code, body = routes[path]()
                self._send(code, json.dumps(body, sort_keys=True).encode(), "application/json")
            else:
                self._send(404, b'{"error": "not found"}', "application/json")

        def _send(self, code: int, body: bytes, content_type: str) -> None:
            self.send_response(code)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            log.debug("health_request", line=format % args)

    return Handler
