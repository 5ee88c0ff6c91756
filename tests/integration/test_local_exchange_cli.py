"""`mmbot exchange local` serves a replayed market that ccxt can read and trade on."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.integration.local_exchange import CCXT_SYMBOL, TEST_KEY, ccxt_bybit

pytestmark = pytest.mark.integration

SERVE = "from flows.cli import main; raise SystemExit(main())"


def test_the_rehearsal_server_serves_a_synthetic_market(tmp_path: Path) -> None:
    env = {**os.environ, "MMBOT_API_KEY": TEST_KEY.key, "MMBOT_API_SECRET": TEST_KEY.secret}
    argv = [sys.executable, "-c", SERVE, "exchange", "local", "--port", "0", "--synth", "3",
            "--json", "--log-level", "warning"]  # fmt: skip
    server = subprocess.Popen(argv, cwd=tmp_path, env=env, stdout=subprocess.PIPE, text=True)
    try:
        assert server.stdout is not None
        started = json.loads(server.stdout.readline())
        assert started["market"].startswith("synth:BTCUSDT:seed=3")

        async def trade() -> tuple[Any, Any, Any]:
            ex = ccxt_bybit(started["url"])
            try:
                book = await ex.fetch_order_book(CCXT_SYMBOL)
                below = round(book["bids"][0][0] - 50, 1)
                params = {"postOnly": True, "clientOrderId": "cli-1"}
                order = await ex.create_order(CCXT_SYMBOL, "limit", "buy", 0.001, below, params)
                return book, order, await ex.fetch_open_orders(CCXT_SYMBOL)
            finally:
                await ex.close()

        book, order, opened = asyncio.run(trade())
        assert book["bids"][0][0] < book["asks"][0][0]
        assert [o["clientOrderId"] for o in opened] == ["cli-1"] == [order["clientOrderId"]]
    finally:
        server.send_signal(signal.SIGINT)
        server.wait(10)
    assert server.returncode == 0


def test_the_rehearsal_server_names_what_is_missing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from flows.cli import main

    monkeypatch.setenv("MMBOT_API_KEY", TEST_KEY.key)
    monkeypatch.delenv("MMBOT_API_SECRET", raising=False)
    assert main(["exchange", "local", "--synth", "1"]) == 64
    assert "missing exchange credential api_secret (looked in MMBOT_API_SECRET)" in (
        capsys.readouterr().err
    )
    monkeypatch.setenv("MMBOT_API_SECRET", TEST_KEY.secret)
    assert main(["exchange", "local", "--data", str(tmp_path / "nothing")]) == 64
    assert "no such file or directory" in capsys.readouterr().err
