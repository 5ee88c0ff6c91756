"""A live run of the bot (bot/runtime/live_run.py) against the local Bybit server."""

from __future__ import annotations

import json
import threading
from dataclasses import replace
from pathlib import Path

import pandas as pd
import pytest

from bot.exitcodes import ExitCode
from bot.market.readers import open_market
from bot.market.schema import Kind, concat
from bot.model import Side
from bot.runtime.live_loop import LiveHalt
from bot.runtime.live_run import NotArmed, check_armed, live_settings, run_live
from bot.runtime.run import RunSpec
from flows.cli import main
from tests.integration.local_exchange import SYMBOL, TEST_KEY, ServerThread, rows

pytestmark = pytest.mark.integration

ARMED = {
    "MMBOT_API_KEY": TEST_KEY.key, "MMBOT_API_SECRET": TEST_KEY.secret, "MMBOT_LIVE_ARMED": "1",
}  # fmt: skip


def spec(out: Path, duration: str = "3s", *extra: str) -> RunSpec:
    overrides = ("secrets.provider=env", "live.enabled=true", "run.timer_ms=50", *extra)
    return RunSpec(mode="live", out_dir=out, duration=duration, overrides=overrides)


def test_live_needs_both_arms(tmp_path: Path) -> None:
    armed = live_settings(spec(tmp_path), env=ARMED)
    check_armed(armed, ARMED)
    with pytest.raises(NotArmed, match="MMBOT_LIVE_ARMED=1 is not set"):
        check_armed(armed, {**ARMED, "MMBOT_LIVE_ARMED": "0"})
    disarmed = live_settings(spec(tmp_path, "3s", "live.enabled=false"), env=ARMED)
    with pytest.raises(NotArmed, match=r"live\.enabled is not true"):
        check_armed(disarmed, ARMED)


def sweep_our_quotes(server: ServerThread, done: threading.Event) -> None:
    """Once the bot quotes, a seller hits through its best bid and a buyer lifts
    through its best ask: both fill as maker."""

    def sweep() -> bool:
        venue = server.venue
        bids = [o.px for o in venue.open_orders(SYMBOL) if o.side > 0]
        asks = [o.px for o in venue.open_orders(SYMBOL) if o.side < 0]
        if not bids or not asks:
            return False
        venue.apply(rows(Kind.TRADE, [(-1, (max(bids) - 1) / 10, 5.0)], ts=10))
        venue.apply(rows(Kind.TRADE, [(1, (min(asks) + 1) / 10, 5.0)], ts=11))
        return True

    while not done.is_set():
        if server.call(sweep):
            return
        done.wait(0.1)


def test_a_live_run_trades_and_shuts_down_clean(server: ServerThread, tmp_path: Path) -> None:
    server.reset()
    before = len(server.venue.executions)
    out = tmp_path / "live"
    settings = live_settings(spec(out), exchange="bybit", exchange_url=server.base_url, env=ARMED)
    done = threading.Event()
    market = threading.Thread(target=sweep_our_quotes, args=(server, done), daemon=True)
    market.start()
    try:
        result = run_live(spec(out), settings, ARMED)
    finally:
        done.set()
        market.join(5)
    assert result.stats.stop_reason == "duration reached"
    assert server.venue.open_orders(None) == []  # shutdown cancelled everything
    venue_fills = {e.exec_id for e in server.venue.executions[before:]}
    assert len(venue_fills) == 2
    fills = pd.read_parquet(out / "fills")
    assert set(fills["trade_id"]) == venue_fills  # every venue fill, journaled once
    assert result.summary["fills"] == 2 and result.summary["open_orders"] == 0
    assert result.summary["live"]["dead_man"] and server.exchange.streams.dcp_window_s == 10
    recon = result.summary["live"]["reconciliation"]
    assert recon["matches"] and recon["venue"]["fills"] == 2
    assert recon["venue"]["fees_usd"] < 0  # maker rebates, on both books alike
    # the wallet moved by the round trip's realized PnL and rebates, as the bot booked them
    balance = recon["balance"]
    assert balance["change"] > 0 and balance["end"] == float(server.venue.account.balance)
    assert balance["bot"] == pytest.approx(
        result.summary["realized_pnl_usd"] - result.summary["fees_usd"]
    )
    assert balance["difference"] == pytest.approx(0, abs=0.01)
    assert main(["kpi", str(out), "--json"]) == 0


def test_cli_refuses_live_without_the_environment_arm(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    for name, value in ARMED.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("MMBOT_LIVE_ARMED")
    argv = ["run", "--mode", "live", "--out", str(tmp_path / "j"), "--set", "live.enabled=true",
            "--set", "secrets.provider=env", "--exchange-url", "http://127.0.0.1:9"]  # fmt: skip
    assert main(argv) == ExitCode.USAGE
    assert "needs two arms: MMBOT_LIVE_ARMED=1 is not set" in capsys.readouterr().err
    assert not (tmp_path / "j").exists() and not (tmp_path / "j.partial").exists()


def test_cli_live_run_against_the_local_server(
    server: ServerThread,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    server.reset()
    placed_before = len(server.venue.orders)
    for name, value in ARMED.items():
        monkeypatch.setenv(name, value)
    out = tmp_path / "cli"
    argv = ["run", "--mode", "live", "--exchange", "bybit", "--exchange-url", server.base_url,
            "--out", str(out), "--duration", "1s", "--set", "live.enabled=true",
            "--set", "secrets.provider=env", "--json"]  # fmt: skip
    assert main(argv) == ExitCode.OK
    printed = capsys.readouterr()
    assert json.loads(printed.out.strip().splitlines()[-1])["live"]["stop_reason"]
    assert TEST_KEY.secret not in printed.out + printed.err  # nor in any log line
    assert TEST_KEY.secret not in (out / "run.json").read_text()
    assert len(server.venue.orders) > placed_before  # it quoted
    assert server.venue.open_orders(None) == []  # and left nothing behind
    assert (out / "run.json").is_file() and not (tmp_path / "cli.partial").exists()
    assert main(["kpi", str(out), "--json"]) == ExitCode.OK


def break_the_streams_then_sweep(server: ServerThread, done: threading.Event) -> None:
    """Once the bot quotes: cut every websocket, then lose one book delta (a gap) among
    duplicated messages, and fill both quotes while the streams recover and send
    messages out of order."""

    def quoting() -> bool:
        sides = {o.side for o in server.venue.open_orders(SYMBOL)}
        return len(sides) == 2

    while not done.is_set() and not server.call(quoting):
        done.wait(0.05)
    server.submit(server.exchange.drop_streams())
    done.wait(0.5)  # reconnected (first retry after 0.1 s)
    server.exchange.faults.ws_skip(1)
    server.exchange.faults.ws_duplicate(6)
    for i, qty in enumerate((3.0, 4.0, 5.0)):  # away from our quotes: the touch's size
        server.call(
            lambda q=qty, i=i: server.venue.apply(rows(Kind.DELTA, [(1, 59_990.0, q)], ts=20 + i))
        )
    done.wait(0.3)
    server.exchange.faults.ws_reorder(8)
    sweep_our_quotes(server, done)


def test_a_live_run_survives_dropped_streams_gaps_and_duplicates(
    server: ServerThread, tmp_path: Path
) -> None:
    server.reset()
    before = len(server.venue.executions)
    out = tmp_path / "faults"
    run = replace(spec(out, "4s"), record=tmp_path / "tape")  # the market it heard, too
    settings = live_settings(run, exchange="bybit", exchange_url=server.base_url, env=ARMED)
    done = threading.Event()
    market = threading.Thread(target=break_the_streams_then_sweep, args=(server, done))
    market.start()
    try:
        result = run_live(run, settings, ARMED)
    finally:
        done.set()
        market.join(5)
    stats = result.stats
    assert stats.stop_reason == "duration reached"
    assert stats.reconnects >= 2 and stats.book_gaps >= 1  # the cut, then the gap
    assert server.exchange.faults.fired["duplicate"] >= 1
    assert server.exchange.faults.fired["reorder"] >= 1
    assert server.venue.open_orders(None) == []
    venue_fills = {e.exec_id for e in server.venue.executions[before:]}
    journal = pd.read_parquet(out / "fills")
    assert len(venue_fills) == 2 and sorted(journal["trade_id"]) == sorted(venue_fills)
    assert result.summary["fills"] == 2
    # the recording marks the cut and the sequence gap: a snapshot after each
    tape = result.summary["recorded"][SYMBOL]
    assert tape["gaps"] == 2
    recorded = concat(list(open_market(Path(tape["path"]))))
    snapshots = set(recorded.ts_local[recorded.kind == Kind.SNAPSHOT].tolist())
    assert len(snapshots) == tape["gaps"] + 1 and len(recorded) == tape["rows"]


def rest_orphan(server: ServerThread, link_id: str) -> None:
    """An order left on the account by an earlier process."""
    server.call(lambda: server.venue.place(SYMBOL, Side.BUY, 590_000, 2, link_id, "PostOnly"))


def test_start_cancels_orphans_or_refuses_per_profile(server: ServerThread, tmp_path: Path) -> None:
    server.reset()
    rest_orphan(server, "old-1")
    refuse = spec(tmp_path / "refused", "1s", "live.orphans=refuse")
    settings = live_settings(refuse, exchange_url=server.base_url, env=ARMED)
    with pytest.raises(LiveHalt, match="1 open orders not placed by this run"):
        run_live(refuse, settings, ARMED)
    assert [o.order_link_id for o in server.venue.open_orders(SYMBOL)] == ["old-1"]

    cancel = spec(tmp_path / "cancelled", "1s")
    settings = live_settings(cancel, exchange_url=server.base_url, env=ARMED)
    result = run_live(cancel, settings, ARMED, stop=None)
    assert result.stats.orphans_cancelled == 1
    assert server.venue.orders["old-1"].status == "Cancelled"


def test_a_position_mismatch_halts_before_trading(server: ServerThread, tmp_path: Path) -> None:
    server.reset()
    # the account holds 3 lots short that this (fresh, flat) bot knows nothing of
    rest_orphan(server, "pos-1")
    server.call(lambda: server.venue.cancel(SYMBOL, None, "pos-1"))
    server.call(lambda: server.venue.place(SYMBOL, Side.SELL, 600_005, 3, "pos-2", "PostOnly"))
    server.call(lambda: server.venue.apply(rows(Kind.TRADE, [(1, 60_000.6, 5.0)], ts=30)))
    placed_before = len(server.venue.orders)
    run = spec(tmp_path / "mismatch", "1s", "live.position_tolerance_lots=2")
    settings = live_settings(run, exchange_url=server.base_url, env=ARMED)
    with pytest.raises(LiveHalt, match=r"BTCUSDT: venue -3 lots, bot 0 lots"):
        run_live(run, settings, ARMED)
    assert len(server.venue.orders) == placed_before  # not one order sent
    # flatten again for the tests after this one
    server.call(lambda: server.venue.place(SYMBOL, Side.BUY, 599_995, 3, "pos-3", "PostOnly"))
    server.call(lambda: server.venue.apply(rows(Kind.TRADE, [(-1, 59_999.4, 5.0)], ts=31)))
    assert server.call(lambda: server.venue.account.positions[SYMBOL].lots) == 0


def print_through_the_market(server: ServerThread, done: threading.Event) -> None:
    """Once a client follows the public trades: a seller far below the bid and a buyer
    far above the ask, so any quote the bot holds is traded through."""

    def following() -> bool:
        return any("publicTrade.BTCUSDT" in c.topics for c in server.exchange.streams.connections)

    while not done.is_set() and not server.call(following):
        done.wait(0.05)
    done.wait(1.0)  # the engine has seen the book and quoted by now
    server.call(lambda: server.venue.apply(rows(Kind.TRADE, [(-1, 59_900.0, 50.0)], ts=40)))
    done.wait(0.3)  # the bot requotes after its fill
    server.call(lambda: server.venue.apply(rows(Kind.TRADE, [(1, 60_100.0, 50.0)], ts=41)))


def test_shadow_on_the_exchange_streams_sends_nothing(
    server: ServerThread, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    server.reset()
    for name in ("MMBOT_API_KEY", "MMBOT_API_SECRET", "MMBOT_LIVE_ARMED"):
        monkeypatch.delenv(name, raising=False)
    placed_before, requests_before = len(server.venue.orders), len(server.exchange.requests)
    out = tmp_path / "shadow"
    done = threading.Event()
    market = threading.Thread(target=print_through_the_market, args=(server, done))
    market.start()
    argv = ["run", "--mode", "shadow", "--exchange", "bybit", "--exchange-url", server.base_url,
            "--out", str(out), "--duration", "2500ms", "--set", "run.timer_ms=50"]  # fmt: skip
    try:
        assert main(argv) == ExitCode.OK
    finally:
        done.set()
        market.join(5)
    assert len(server.venue.orders) == placed_before  # not one order reached the exchange
    private = [r for r in server.exchange.requests[requests_before:] if "/v5/market/" not in r]
    assert private == []  # and nothing of the account was read
    fills = pd.read_parquet(out / "fills")
    assert sorted(fills["side"].tolist()) == [-1, 1]  # both would-be quotes traded through
    assert main(["kpi", str(out), "--json"]) == ExitCode.OK


def test_cli_live_run_with_no_exchange_there_halts_in_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    for name, value in ARMED.items():
        monkeypatch.setenv(name, value)
    argv = ["run", "--mode", "live", "--exchange-url", "http://127.0.0.1:9", "--out",
            str(tmp_path / "j"), "--duration", "1s", "--set", "live.enabled=true",
            "--set", "secrets.provider=env"]  # fmt: skip
    assert main(argv) == ExitCode.FAIL
    err = capsys.readouterr().err
    assert "halted: ExchangeNotAvailable" in err and "Traceback" not in err
    assert "test-secret" not in err
