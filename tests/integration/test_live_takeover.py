"""A live restart onto the position the account's previous run left (bot/runtime/ledger.py):
`mmbot run --mode live --state` in process, against the local Bybit server and a
real redis-server. The restart trades on with the venue's position when the ledger and
the venue's trade history account for it, and halts when someone else traded."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import pytest

from bot.exitcodes import ExitCode
from bot.journal import OPENING, RECOVERED, read_manifest, read_table
from bot.market.schema import Kind
from bot.model import Side
from bot.runtime.ledger import AccountLedger, RunRecord
from bot.runtime.state import StateStore, connect
from flows.cli import main
from gates.kpi import compute_kpis, load_journal
from tests.integration.live_bots import (
    ARMED,
    flatten,
    our_orders,
    sell_through_best_bid,
    venue_position,
)
from tests.integration.local_exchange import SYMBOL, ServerThread, rows

pytestmark = pytest.mark.integration
ACCOUNT = "takeover"


@pytest.fixture(autouse=True)
def armed(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in ARMED.items():
        monkeypatch.setenv(name, value)


def live(server: ServerThread, state_url: str, out: Path, duration: str = "2s",
         *extra: str, account: str = ACCOUNT) -> int:  # fmt: skip
    return main(["run", "--mode", "live", "--exchange", "bybit", "--exchange-url",
                 server.base_url, "--out", str(out), "--duration", duration,
                 "--set", "live.enabled=true", "--set", "secrets.provider=env",
                 "--set", "run.timer_ms=50", "--json", "--state", state_url, "--account", account,
                 "--state-dir", str(out.parent / "state"), *extra])  # fmt: skip


def buy_once_quoted(server: ServerThread, done: threading.Event) -> None:
    """Once the bot quotes, a seller takes its best bid whole: the bot ends long."""
    while not done.is_set() and not sell_through_best_bid(server, "", ts=500):
        done.wait(0.05)


def test_a_restart_trades_on_with_the_position_its_predecessor_left(
    server: ServerThread, state_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    server.reset()
    done = threading.Event()
    seller = threading.Thread(target=buy_once_quoted, args=(server, done))
    seller.start()
    try:
        assert live(server, state_url, tmp_path / "first", "3s") == ExitCode.OK
    finally:
        done.set()
        seller.join()
    capsys.readouterr()
    held = venue_position(server)
    assert held > 0  # the first run bought and stopped long

    assert live(server, state_url, tmp_path / "second") == ExitCode.OK, capsys.readouterr().err
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    manifest = read_manifest(tmp_path / "second")
    lot = 0.001
    assert manifest[OPENING][SYMBOL]["qty"] == pytest.approx(held * lot)
    assert manifest[OPENING][SYMBOL]["price"] > 0
    first_run = read_manifest(tmp_path / "first")["run_id"]
    assert manifest[RECOVERED] == {"from_run": first_run, "fills": []}  # it heard them all
    assert summary["live"]["reconciliation"]["matches"]
    assert summary["open_orders"] == 0 and not our_orders(server)
    # the KPI's mark-to-market counts the opening as the engine did: the same PnL
    kpis = compute_kpis(load_journal(tmp_path / "second")).total
    assert kpis["pnl_usd"] == pytest.approx(summary["pnl_usd"], abs=1e-9)
    assert kpis["inventory_ratio_p95"] > 0  # the inherited position is inventory


def test_a_restart_halts_when_someone_else_traded_the_account(
    server: ServerThread, state_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    before = venue_position(server)
    # a person sells 3 lots on the account by hand between two runs
    server.call(lambda: server.venue.place(SYMBOL, Side.SELL, 600_005, 3, "hand-1", "PostOnly"))
    server.call(lambda: server.venue.apply(rows(Kind.TRADE, [(1, 60_000.6, 5.0)], ts=600)))
    assert venue_position(server) == before - 3
    placed = len(server.venue.orders)
    assert live(server, state_url, tmp_path / "third") == ExitCode.FAIL
    err = capsys.readouterr().err
    assert f"venue {before - 3} lots, bot {before} lots" in err
    assert "fills at the venue, 0 of them never journaled" in err and "Traceback" not in err
    assert len(server.venue.orders) == placed  # not one order sent


def fill_once_history_is_read(server: ServerThread) -> None:
    """The start's first read of the trade history is answered late (a delay fault);
    meanwhile a buyer takes 1 lot of the kept ask: a fill between the history read and
    the position read."""
    server.call(lambda: server.exchange.faults.delay(0.4, path="/v5/execution/list"))
    deadline = time.monotonic() + 20
    while not server.call(lambda: server.exchange.faults.fired.get("delay", 0)):
        assert time.monotonic() < deadline, "the start never read the trade history"
        time.sleep(0.01)
    server.call(lambda: server.venue.apply(rows(Kind.TRADE, [(1, 60_001.0, 0.001)], ts=1_101)))


def test_an_adopted_order_filled_during_the_start_is_counted_once_run_after_run(
    server: ServerThread, state_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    server.reset()
    flatten(server, ts=1_100)
    account = "adopting"
    store = StateStore(connect(state_url), account, state_url)
    # a previous run of the account left its 3-lot ask resting (and heard no fill)
    AccountLedger(store).begin(RunRecord("LPREV", {}, since_ms=int(time.time() * 1e3)))
    # (beyond the book's five ask levels, alone at its price: a trade there fills it in part)
    server.call(lambda: server.venue.place(SYMBOL, Side.SELL, 600_010, 3, "LPREV-1", "PostOnly"))
    server.call(lambda: server.exchange.faults.fired.clear())
    racer = threading.Thread(target=fill_once_history_is_read, args=(server,))
    racer.start()
    try:
        code = live(server, state_url, tmp_path / "adopting", "2s",
                    "--set", "live.orphans=adopt", account=account)  # fmt: skip
    finally:
        racer.join()
    assert code == ExitCode.OK, capsys.readouterr().err
    assert venue_position(server) == -1
    manifest = read_manifest(tmp_path / "adopting")
    assert manifest[OPENING][SYMBOL]["qty"] == pytest.approx(-0.001)  # the start's fill
    (recovered,) = manifest[RECOVERED]["fills"]  # the previous run's, never journaled
    assert manifest[RECOVERED]["from_run"] == "LPREV"
    fills = read_table(tmp_path / "adopting", "fills")
    assert recovered["trade_id"] not in set(fills["trade_id"])  # in the opening, not a fill
    orders = read_table(tmp_path / "adopting", "orders")
    adopted = orders[orders["client_order_id"] == "LPREV-1"].iloc[0]
    assert (adopted["event"], adopted["qty"]) == ("ack", pytest.approx(0.002))  # 2 lots left
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["live"]["orphans_adopted"] == 1
    assert summary["live"]["reconciliation"]["matches"]
    record = AccountLedger(store).last()
    assert record is not None and record.counted == (recovered["trade_id"],)

    # the next restart reads that fill again (LPREV-1 is now the adopting run's order):
    # counted once, in the opening it took over, so the venue's -1 lot is what it expects
    assert live(server, state_url, tmp_path / "next", "1s", account=account) == ExitCode.OK, (
        capsys.readouterr().err
    )
    assert read_manifest(tmp_path / "next")[OPENING][SYMBOL]["qty"] == pytest.approx(-0.001)
    capsys.readouterr()
    flatten(server, ts=1_102)
