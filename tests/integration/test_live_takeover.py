"""A live restart onto the position the account's previous run left (bot/runtime/ledger.py):
`mmbot run --mode live --state` in process, against the local Bybit server and a
real redis-server. The restart trades on with the venue's position when the ledger and
the venue's trade history account for it, and halts when someone else traded."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import pytest

from bot.exitcodes import ExitCode
from bot.journal import OPENING, RECOVERED, read_manifest
from bot.market.schema import Kind
from bot.model import Side
from flows.cli import main
from gates.kpi import compute_kpis, load_journal
from tests.integration.live_bots import ARMED, our_orders, sell_through_best_bid, venue_position
from tests.integration.local_exchange import SYMBOL, ServerThread, rows

pytestmark = pytest.mark.integration
ACCOUNT = "takeover"


@pytest.fixture(autouse=True)
def armed(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in ARMED.items():
        monkeypatch.setenv(name, value)


def live(server: ServerThread, state_url: str, out: Path, duration: str = "2s") -> int:
    return main(["run", "--mode", "live", "--exchange", "bybit", "--exchange-url",
                 server.base_url, "--out", str(out), "--duration", duration,
                 "--set", "live.enabled=true", "--set", "secrets.provider=env",
                 "--set", "run.timer_ms=50", "--json", "--state", state_url, "--account", ACCOUNT,
                 "--state-dir", str(out.parent / "state")])  # fmt: skip


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
