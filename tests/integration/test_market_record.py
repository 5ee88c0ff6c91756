"""`mmbot market record` against the local exchange replaying real data, read back."""

from __future__ import annotations

import json
import threading
from itertools import islice
from pathlib import Path

import numpy as np
import pytest

from bot.market.readers import open_market
from bot.market.schema import Kind, concat
from flows.cli import main
from tests.integration.local_exchange import ServerThread

pytestmark = pytest.mark.integration


def cut_once_subscribed(server: ServerThread) -> None:
    """Drop every websocket 0.4 s after the recorder's book subscription is on."""

    def subscribed() -> bool:
        return any("orderbook.50.BTCUSDT" in c.topics for c in server.exchange.streams.connections)

    for _ in range(200):
        if server.call(subscribed):
            threading.Event().wait(0.4)
            server.submit(server.exchange.drop_streams())
            return
        threading.Event().wait(0.05)


def test_record_survives_a_disconnect_and_reads_back(
    binance_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source = list(islice(open_market(binance_dir, chunk_rows=8_192), 4))
    with ServerThread() as server:
        server.call(lambda: server.venue.replay(iter(source)))
        cut = threading.Thread(target=cut_once_subscribed, args=(server,))
        cut.start()
        argv = ["market", "record", "--exchange", "bybit", "--exchange-url", server.base_url,
                "--symbols", "BTC/USDT:USDT", "--duration", "1800ms",
                "--out", str(tmp_path)]  # fmt: skip
        code = main(argv)
        cut.join()
    assert code == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    info = summary["files"]["BTC/USDT:USDT"]
    assert info["gaps"] == 1 and info["trades"] > 0

    recorded = concat(list(open_market(tmp_path / "BTCUSDT.parquet")))
    kinds = recorded.kind
    assert len(recorded) == info["rows"] and kinds[0] == Kind.SNAPSHOT
    # the gap mark: a second run of snapshot rows after the first deltas
    starts = np.flatnonzero((kinds == Kind.SNAPSHOT) & (np.roll(kinds, 1) != Kind.SNAPSHOT))
    assert len(starts) == 2
    assert {Kind.DELTA, Kind.TRADE} <= set(kinds.tolist())
    assert np.all(np.diff(recorded.ts_local) >= 0)
    # trades keep the source's ids and prices
    real = concat(source)
    real_trades = dict(zip(real.trade_id[real.kind == Kind.TRADE].tolist(),
                           real.price[real.kind == Kind.TRADE].tolist(), strict=True))  # fmt: skip
    ours = recorded.kind == Kind.TRADE
    for trade_id, price in zip(
        recorded.trade_id[ours].tolist(), recorded.price[ours].tolist(), strict=True
    ):
        assert real_trades[trade_id] == price
