"""What `mmbot run` reports about itself: risk blocks by check, the span of its data
read from metadata, and how a signal stops the replay."""

from __future__ import annotations

import gzip
import json
import signal
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from bot.journal import JournalFigures, JournalWriter
from bot.market.schema import MarketChunk
from bot.runtime.data_span import file_span, span_text
from bot.runtime.run import StopRequest, journal_figures, summary_lines

SUMMARY = {
    "run_id": "paper-x", "mode": "paper", "state": "active", "data_source": "synth",
    "fills": 0, "maker_share": None, "turnover_usd": 0.0, "pnl_usd": 0.0,
    "pnl_per_turnover_bps": None, "fees_usd": 0.0, "places": 10, "cancels": 2,
    "rejects": 0, "freezes": 1, "out": "runs/x",
}  # fmt: skip


def risk_journal(root: Path, checks: list[str]) -> JournalFigures:
    """The figures of a journal of these blocks and a freeze, as its writer tallied them."""
    writer = JournalWriter(root, {})
    for i, check in enumerate(checks):
        writer.append("risk", i, "BTCUSDT", "block", check, f"o-{i}: over", "active")
    writer.append("risk", 99, "*", "freeze", "edge", "net edge low", "frozen")
    writer.close()
    return writer.figures


def test_blocks_are_counted_by_check_most_frequent_first(tmp_path: Path) -> None:
    checks = ["price_band", "max_order_notional", "max_order_notional", "max_open_orders",
              "max_order_notional", "price_band"]  # fmt: skip
    figures = journal_figures(risk_journal(tmp_path, checks))
    assert figures["blocks"] == 6  # the freeze row is not a block
    assert list(figures["blocks_by_check"].items()) == [
        ("max_order_notional", 3), ("price_band", 2), ("max_open_orders", 1),
    ]  # fmt: skip
    lines = summary_lines({**SUMMARY, **figures})
    assert "rejects 0  risk blocks 6 (top: max_order_notional)  freezes 1" in lines[4]


def test_no_blocks_shows_no_top_check(tmp_path: Path) -> None:
    figures = journal_figures(risk_journal(tmp_path, []))
    assert figures["blocks"] == 0 and figures["blocks_by_check"] == {}
    assert "risk blocks 0  freezes 1" in summary_lines({**SUMMARY, **figures})[4]


def test_thousands_are_grouped_and_ties_go_by_name() -> None:
    figures = {"blocks": 1284, "blocks_by_check": {"cancel_rate": 642, "price_band": 642}}
    assert "risk blocks 1,284 (top: cancel_rate)" in summary_lines({**SUMMARY, **figures})[4]


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(344.5, "5.7m"), (3_600, "1h"), (5_400, "1.5h"), (1_800, "30m"), (42, "42s")],
)
def test_span_text(seconds: float, text: str) -> None:
    assert span_text(int(seconds * 1e9)) == text


def test_the_span_of_a_bybit_file_is_its_first_and_last_message(bybit_ob500: Path) -> None:
    stamps = [json.loads(line)["ts"] for line in bybit_ob500.read_text().splitlines() if line]
    span = file_span(bybit_ob500)
    assert span is not None
    assert (span.first_ns, span.last_ns) == (stamps[0] * 1_000_000, stamps[-1] * 1_000_000)


def test_the_span_of_a_tardis_capture(binance_dir: Path, tmp_path: Path) -> None:
    # compressed: its end cannot be read without decompressing it all
    assert file_span(binance_dir) is None
    with gzip.open(binance_dir / "trades.csv.gz", "rt") as fh:
        (tmp_path / "trades.csv").write_text(fh.read())
    span = file_span(tmp_path)
    local = pd.read_csv(tmp_path / "trades.csv", usecols=["local_timestamp"])["local_timestamp"]
    assert span is not None
    assert (span.first_ns, span.last_ns) == (local.iloc[0] * 1_000, local.iloc[-1] * 1_000)
    assert 340 < span.ns / 1e9 < 350


def test_a_damaged_file_has_an_unknown_span(tmp_path: Path) -> None:
    (tmp_path / "x.parquet").write_bytes(b"not parquet")
    assert file_span(tmp_path / "x.parquet") is None


def chunk(ts: int) -> MarketChunk:
    one = np.array([ts], dtype=np.int64)
    return MarketChunk("BTCUSDT", one, one, np.array([2], np.int8), np.array([1], np.int8),
                       np.array([1.0]), np.array([1.0]), one)  # fmt: skip


def test_a_signal_stops_the_replay_at_the_next_chunk_and_a_second_at_once() -> None:
    stop = StopRequest()
    replayed = []
    with pytest.raises(KeyboardInterrupt, match="SIGTERM"):
        for item in stop.chunks(chunk(t) for t in range(5)):
            replayed.append(int(item.ts_local[0]))
            if len(replayed) == 2:
                stop(signal.SIGTERM, None)  # arrives while chunk 1 is replayed
    assert replayed == [0, 1]
    with pytest.raises(KeyboardInterrupt):
        stop(signal.SIGINT, None)
