"""The periodic financial reconciliation of a live run (bot/runtime/reconcile.py)
against the local Bybit server: the books agree round after round while the bot is
filled, and someone else trading the account halts it after two rounds."""

from __future__ import annotations

import asyncio
import threading
from decimal import Decimal
from pathlib import Path

import pytest
from pydantic import SecretStr

from bot.config import Settings, instruments
from bot.engine import Engine
from bot.journal import MemoryJournal
from bot.market.schema import Kind
from bot.model import Liquidity, OrderFill, Side
from bot.runtime.clock import WallClock
from bot.runtime.health import RunMonitor
from bot.runtime.live_loop import LiveHalt, LiveLoop, LiveLoopConfig, LiveStats
from bot.runtime.live_run import live_settings, run_live
from bot.runtime.reconcile import balance_change, differences, tally
from bot.runtime.run import RunSpec
from bot.runtime.secrets import Credentials
from bot.venues.exchange import ExchangeVenue, ccxt_exchange
from tests.integration.live_bots import (
    ARMED,
    flatten,
    our_orders,
    sell_through_best_bid,
    venue_position,
)
from tests.integration.local_exchange import SYMBOL, TEST_KEY, ServerThread, rows

pytestmark = pytest.mark.integration


def spec(out: Path, duration: str) -> RunSpec:
    overrides = ("secrets.provider=env", "live.enabled=true", "run.timer_ms=50",
                 "live.reconcile_every_s=0.4")  # fmt: skip
    return RunSpec(mode="live", out_dir=out, duration=duration, overrides=overrides)


def keep_hitting(server: ServerThread, done: threading.Event, ts: int) -> None:
    """Sell through the bot's best bid every 0.3 s: it is filled between rounds."""
    while not done.is_set():
        if sell_through_best_bid(server, "", ts=ts):
            ts += 1
        done.wait(0.3)


def test_the_books_agree_round_after_round_while_filled(server: ServerThread, tmp_path: Path
                                                         ) -> None:  # fmt: skip
    server.reset()
    flatten(server, ts=700)
    done = threading.Event()
    seller = threading.Thread(target=keep_hitting, args=(server, done, 701))
    seller.start()
    run = spec(tmp_path / "j", "3s")
    try:
        result = run_live(run, live_settings(run, exchange_url=server.base_url, env=ARMED), ARMED)
    finally:
        done.set()
        seller.join()
    stats = result.stats
    assert stats.reconciliations >= 4 and stats.reconcile_differences == []
    assert result.summary["fills"] >= 2  # filled between the rounds
    assert stats.reconciliation is not None and stats.reconciliation["matches"]
    flatten(server, ts=800)


def test_someone_else_trading_the_account_halts_after_two_rounds(
    server: ServerThread, tmp_path: Path
) -> None:
    server.reset()
    flatten(server, ts=900)
    done = threading.Event()

    def trade_by_hand() -> None:  # once the run quotes: 3 lots sold on the account
        while not done.is_set() and not our_orders(server):
            done.wait(0.05)
        server.call(lambda: server.venue.place(SYMBOL, Side.SELL, 600_005, 3, "hand-9",
                                               "PostOnly"))  # fmt: skip
        server.call(lambda: server.venue.apply(rows(Kind.TRADE, [(1, 60_000.6, 5.0)], ts=901)))

    hand = threading.Thread(target=trade_by_hand)
    hand.start()
    run = spec(tmp_path / "j", "20s")
    monitor = RunMonitor(WallClock(), poll_ms=50)
    settings = live_settings(run, exchange_url=server.base_url, env=ARMED)
    try:
        with pytest.raises(
            LiveHalt,
            match=r"two rounds in a row: BTCUSDT: venue position -3 "
            r"lots, the run's opening and fills 0 lots",
        ):
            run_live(run, settings, ARMED, monitor=monitor)
    finally:
        done.set()
        hand.join()
    # the first round that differed showed on /metrics (the alert MmbotBooksDiffer)
    assert monitor.metrics.registry.get_sample_value("mmbot_books_differ") == 1
    assert not server.venue.open_orders(SYMBOL)  # halted clean: everything cancelled
    assert venue_position(server) == -3
    flatten(server, ts=902)


def test_fees_or_turnover_off_by_a_cent_differ() -> None:
    insts = instruments(Settings())
    fill = OrderFill(1, SYMBOL, "r-1", "t-1", Side.BUY, 600_000, 10, Liquidity.MAKER,
                     Decimal("-0.012"))  # fmt: skip
    venue = tally([fill], insts)
    assert differences(venue, tally([fill], insts), {SYMBOL: 10}, {}) == []
    cheaper = OrderFill(1, SYMBOL, "r-1", "t-1", Side.BUY, 600_000, 10, Liquidity.MAKER,
                        Decimal("-0.03"))  # fmt: skip
    found = differences(venue, tally([cheaper], insts), {SYMBOL: 10}, {})
    assert found == ["BTCUSDT: venue 1 fills, turnover 600.00, fees -0.0120; "
                     "bot 1 fills, turnover 600.00, fees -0.0300"]  # fmt: skip
    assert differences(venue, tally([fill], insts), {SYMBOL: 13}, {SYMBOL: 2}) == [
        "BTCUSDT: venue position 13 lots, the run's opening and fills 12 lots"
    ]


def test_the_balance_change_is_shown_against_the_bots_cash() -> None:
    bot = {"realized_pnl_usd": 1.25, "fees_usd": -0.25}  # its cash: +1.50
    agrees = balance_change(100_000.0, 100_001.5, bot)
    assert agrees["change"] == pytest.approx(1.5) and agrees["difference"] == pytest.approx(0)
    # a funding payment (or another run's trade) moved the wallet: shown, by how much
    funded = balance_change(100_000.0, 99_998.5, bot)
    assert funded["difference"] == pytest.approx(-3.0)
    assert balance_change(None, 99_998.5, bot)["difference"] is None  # never read: unknown


def test_a_deposed_leader_does_not_reconcile_the_account(server: ServerThread) -> None:
    """While another process leads the account its position is not this run's books."""
    server.reset()
    leading = {"now": False}

    async def main() -> LiveStats:
        settings = Settings()
        key = Credentials(SecretStr(TEST_KEY.key), SecretStr(TEST_KEY.secret))
        exchange = ccxt_exchange("bybit", key, url=server.base_url)
        venue = ExchangeVenue(exchange, instruments(settings), WallClock(), credentials=lambda: key)
        engine = Engine(settings, MemoryJournal(), id_prefix="LDEPOSED")
        cfg = LiveLoopConfig(duration_ns=2_000_000_000, reconcile_every_s=0.2, dead_man_s=None)
        loop = LiveLoop(engine, venue, WallClock(), cfg, leads=lambda: leading["now"])
        try:
            return await loop.run()
        finally:
            await venue.close()

    assert asyncio.run(main()).reconciliations == 0
    leading["now"] = True
    assert asyncio.run(main()).reconciliations >= 2
