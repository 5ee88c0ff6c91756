"""The live shell in the shared state: a real `mmbot run --mode live --state` process
against the local Bybit server, steered by a real `mmbot freeze` from another
process, seen through its health server."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from bot.exitcodes import ExitCode
from bot.journal import read_manifest
from bot.runtime.state import open_store
from flows.cli import main
from tests.integration.live_bots import ARMED, MMBOT, LiveBot, our_orders, wait_for
from tests.integration.local_exchange import ServerThread

pytestmark = pytest.mark.integration


def test_freeze_from_another_process_empties_a_live_bots_book(
    server: ServerThread, state_url: str, tmp_path: Path
) -> None:
    server.reset()
    account = "live-freeze"
    bot = LiveBot.start(server, tmp_path / "j", state=state_url, account=account, health=True)
    store = open_store(state_url, account)
    try:
        quoting = wait_for("quotes at the venue", lambda: our_orders(server), procs=(bot.proc,))
        prefix = quoting[0].order_link_id.split("-")[0]
        ready = wait_for("/ready 200", lambda: (r := bot.get("/ready")) and r[0] == 200 and r,
                         procs=(bot.proc,))  # fmt: skip
        assert ready[1]["checks"]["lease_held"] and ready[1]["checks"]["redis_reachable"]
        beat = store.heartbeat()
        assert beat is not None and beat.market_ns > 0  # the loop's own heartbeat, with data time
        done = subprocess.run(
            [MMBOT, "freeze", "--reason", "exchange incident", "--author", "dana",
             "--state", state_url, "--account", account,
             "--audit-log", str(tmp_path / "audit.jsonl")],
            capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
        wait_for("the venue's book of the bot empty", lambda: not our_orders(server, prefix),
                 procs=(bot.proc,))  # fmt: skip
        code, body = wait_for("/ready 503", lambda: (r := bot.get("/ready")) and r[0] == 503 and r,
                              procs=(bot.proc,))  # fmt: skip
        assert "trading state frozen" in body["failing"]
        metrics = wait_for("metrics", lambda: bot.get_text("/metrics"), procs=(bot.proc,))
        assert 'mmbot_lease_held{account="live-freeze"} 1.0' in metrics
    finally:
        code = bot.stop()
    assert code == ExitCode.OK, bot.stderr()
    assert store.holder() is None  # released at the end
    risk = bot.journal("risk")
    operator = risk[risk["check"] == "operator"]
    assert operator[["kind", "reason"]].values.tolist() == [
        ["freeze", "exchange incident (by dana)"], ["freeze", "shutdown"],
    ]
    orders = bot.journal("orders")
    frozen_at = int(operator["ts_ns"].iloc[0])
    assert orders[(orders["event"] == "place") & (orders["ts_ns"] > frozen_at)].empty
    assert not our_orders(server)


def test_a_second_live_bot_on_a_led_account_is_refused(
    server: ServerThread, state_url: str, tmp_path: Path
) -> None:
    server.reset()
    first = LiveBot.start(server, tmp_path / "a", state=state_url, account="led")
    try:
        wait_for("the first bot's quotes", lambda: our_orders(server), procs=(first.proc,))
        second = LiveBot.start(server, tmp_path / "b", state=state_url, account="led")
        assert second.proc.wait(timeout=60) == ExitCode.UNAVAILABLE
        assert "the leader lease is held by" in second.stderr()
    finally:
        assert first.stop() == ExitCode.OK, first.stderr()


def test_a_live_run_in_process_leads_streams_its_journal_and_serves_health(
    server: ServerThread, state_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    server.reset()
    for name, value in ARMED.items():
        monkeypatch.setenv(name, value)
    out = tmp_path / "j"
    argv = ["run", "--mode", "live", "--exchange", "bybit", "--exchange-url", server.base_url,
            "--out", str(out), "--duration", "2s", "--set", "live.enabled=true",
            "--set", "secrets.provider=env", "--set", "run.timer_ms=50", "--json",
            "--state", state_url, "--account", "inproc", "--state-dir", str(tmp_path),
            "--health-port", "0"]  # fmt: skip
    assert main(argv) == ExitCode.OK
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    shared = summary["shared_state"]
    assert (shared["account"], shared["fenced"], shared["redis_errors"]) == ("inproc", 0, 0)
    parts = read_manifest(out)["journal"]["parts"]
    assert shared["journal_stream"]["published"] == sum(parts.values())
    store = open_store(state_url, "inproc")
    assert store.holder() is None  # released at the end
    beat = store.heartbeat()
    assert beat is not None and beat.token == shared["token"] and beat.market_ns > 0
    assert summary["open_orders"] == 0 and not our_orders(server)
