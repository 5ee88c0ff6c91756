"""Chaos: a live bot (a real `mmbot run --mode live` process) through the local
server's faults: a 5xx storm, a rate-limit storm and dropped websockets while it is
being filled, and an exchange clock that is seconds off the bot's. It must end with
no order twice, no fill lost or journaled twice, and its position the venue's."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest

from bot.exitcodes import ExitCode
from bot.runtime.clock import WallClock
from bot.runtime.run import SUMMARY
from tests.integration.live_bots import (
    LiveBot,
    MarketTicks,
    hit_both_sides,
    our_orders,
    sell_through_best_bid,
    venue_position,
    wait_for,
)
from tests.integration.local_exchange import ServerThread

pytestmark = pytest.mark.integration
NS_PER_S = 1_000_000_000


@pytest.fixture
def server() -> Iterator[ServerThread]:
    """One per test: each starts on a flat account (a position left by another test
    would halt the start, rightly)."""
    with ServerThread() as running:
        yield running


class SkewedClock:
    """The exchange's clock, `offset_s` off the machine's."""

    def __init__(self, offset_s: float) -> None:
        self.offset_ns = int(offset_s * NS_PER_S)
        self.wall = WallClock()

    def now_ns(self) -> int:
        return self.wall.now_ns() + self.offset_ns


def check_books(server: ServerThread, bot: LiveBot, executions_before: int, position_before: int
                ) -> pd.DataFrame:  # fmt: skip
    """What every fault test ends with: the venue and the journal agree."""
    assert server.venue.open_orders(None) == []
    fills = bot.journal("fills")
    venue_fills = [e.exec_id for e in server.venue.executions[executions_before:]]
    assert sorted(fills["trade_id"]) == sorted(venue_fills)  # each once, none lost
    lots = int((fills["side"] * fills["qty_lots"]).sum())
    assert position_before + lots == venue_position(server)
    orders = bot.journal("orders")
    placed = orders[orders["event"] == "place"]["client_order_id"]
    assert placed.is_unique
    run = placed.iloc[0].split("-")[0]
    at_venue = [o.order_link_id for o in server.venue.orders.values()
                if o.order_link_id.startswith(f"{run}-")]  # fmt: skip
    assert set(at_venue) <= set(placed)
    return fills


def test_5xx_and_rate_limit_storms_and_dropped_streams_while_filled(
    server: ServerThread, tmp_path: Path
) -> None:
    server.reset()
    executions_before = len(server.venue.executions)
    position_before = venue_position(server)
    with MarketTicks(server):
        bot = LiveBot.start(server, tmp_path / "j")
        try:
            quotes = wait_for("quotes", lambda: our_orders(server), procs=(bot.proc,))
            run = quotes[0].order_link_id.split("-")[0]
            faults = server.exchange.faults
            # bursts within the venue's retry budget (RetryPolicy: 4 attempts): 3
            # failures in a row, whichever requests they hit, while fills make it trade
            server.call(lambda: faults.http_error(count=3, status=503))
            wait_for("fills in the 5xx burst", lambda: hit_both_sides(server, ts=300),
                     procs=(bot.proc,))  # fmt: skip
            wait_for("the 5xx burst spent", lambda: not server.call(lambda: faults.pending), 30,
                     (bot.proc,))  # fmt: skip
            server.call(lambda: faults.rate_limit(count=3))
            wait_for("fills in the rate-limit burst", lambda: hit_both_sides(server, ts=310),
                     procs=(bot.proc,))  # fmt: skip
            wait_for("the rate-limit burst spent", lambda: not server.call(lambda: faults.pending),
                     30, (bot.proc,))  # fmt: skip
            wait_for("quotes after the storms", lambda: our_orders(server, run), 30, (bot.proc,))
            dropped = server.submit(server.exchange.drop_streams())
            assert dropped >= 2  # public and private

            # filled while its streams are down: the REST resync must find it
            def fill_while_down() -> bool:
                return sell_through_best_bid(server, run, ts=400)

            wait_for("a fill with the streams down", fill_while_down, 30, (bot.proc,))
            wait_for("the fill journaled", lambda: len(bot.journal("fills")) >= 5, 30,
                     (bot.proc,))  # fmt: skip
        finally:
            code = bot.stop()
    assert code == ExitCode.OK, bot.stderr()
    fired = server.exchange.faults.fired
    assert fired.get("http_error") == 3 and fired.get("rate_limit") == 3
    fills = check_books(server, bot, executions_before, position_before)
    assert len(fills) >= 5
    summary = json.loads((bot.out / SUMMARY).read_text())
    assert summary["live"]["reconnects"] >= 2 and summary["live"]["reconciliation"]["matches"]


def test_a_5xx_storm_past_the_retry_budget_halts_in_one_line(
    server: ServerThread, tmp_path: Path
) -> None:
    """The storm outlasts the stop's patience too: the bot exits with its quotes open,
    and the venue's dead-man switch, armed at the start, cancels them."""
    server.reset()
    bot = LiveBot.start(server, tmp_path / "j", extra=("--set", "live.shutdown_patience_s=1",
                                                      "--set", "live.dead_man_s=3"))  # fmt: skip
    try:
        wait_for("quotes", lambda: our_orders(server), procs=(bot.proc,))
        server.call(lambda: server.exchange.faults.http_error(count=1_000, status=503))
        code = bot.proc.wait(timeout=60)
        assert our_orders(server)  # the venue never let the stop cancel them
        wait_for("the dead-man switch", lambda: not our_orders(server), timeout=10)
    finally:
        bot.stop()
        server.call(server.exchange.faults.clear)
    assert server.exchange.streams.dcp_fired == 1
    err = bot.stderr()
    assert code == ExitCode.FAIL, err
    lines = err.splitlines()
    assert lines[-2].startswith("halted: ExchangeNotAvailable: bybit")
    assert lines[-1].startswith("partial journal at")
    # the worker's failure is in the log (JSON, for the operator); nothing else printed
    assert all(line.startswith("{") for line in lines[:-2])
    assert any('"live_shutdown_unconfirmed"' in line and '"dead_man_armed": true' in line
               for line in lines)  # fmt: skip


def test_a_stop_in_a_5xx_storm_keeps_cancelling_until_nothing_is_open(
    server: ServerThread, tmp_path: Path
) -> None:
    """Cancel-all fails 10 times in a row (past the retry budget of one call, 4) when
    the bot is told to stop: the stop retries with backoff and exits with nothing open."""
    server.reset()
    bot = LiveBot.start(server, tmp_path / "j")
    executions_before, position_before = len(server.venue.executions), venue_position(server)
    try:
        wait_for("quotes", lambda: our_orders(server), procs=(bot.proc,))
        server.call(lambda: server.exchange.faults.http_error(
            count=10, status=503, path="/v5/order/cancel-all"))  # fmt: skip
        code = bot.stop()
        assert not our_orders(server)  # cancelled by the bot, not by the dead-man switch
    finally:
        bot.stop()
        server.call(server.exchange.faults.clear)
    err = bot.stderr()
    assert code == ExitCode.OK, err
    assert server.exchange.faults.fired.get("http_error") == 10
    assert server.exchange.streams.dcp_fired == 0
    assert err.count('"live_shutdown_retry"') >= 2
    check_books(server, bot, executions_before, position_before)


@pytest.mark.parametrize("offset_s", [-3.0, 3.0])
def test_an_exchange_clock_seconds_off_is_measured_and_trading_goes_on(
    server: ServerThread, tmp_path: Path, offset_s: float
) -> None:
    server.reset()
    executions_before = len(server.venue.executions)
    position_before = venue_position(server)
    wall = server.venue.clock
    server.call(lambda: setattr(server.venue, "clock", SkewedClock(offset_s)))
    try:
        with MarketTicks(server):
            bot = LiveBot.start(server, tmp_path / "j", health=True)
            try:
                quotes = wait_for("quotes", lambda: our_orders(server), procs=(bot.proc,))
                run = quotes[0].order_link_id.split("-")[0]
                wait_for("a fill", lambda: sell_through_best_bid(server, run, ts=500), 30,
                         (bot.proc,))  # fmt: skip
                wait_for("the fill journaled", lambda: len(bot.journal("fills")) >= 1, 30,
                         (bot.proc,))  # fmt: skip
                metrics = wait_for("metrics", lambda: bot.get_text("/metrics"), 30, (bot.proc,))
            finally:
                code = bot.stop()
    finally:
        server.call(lambda: setattr(server.venue, "clock", wall))
    assert code == ExitCode.OK, bot.stderr()
    check_books(server, bot, executions_before, position_before)
    # receipt - exchange time: the skew shows in the lag (exchange behind: positive)
    lag = next(float(line.split()[-1]) for line in metrics.splitlines()
               if line.startswith("mmbot_websocket_lag_seconds "))  # fmt: skip
    assert abs(lag + offset_s) < 1.0
