"""The journal contract: segments, manifest, empty tables, bad rows, stable bytes,
wholeness (the completion marker), the one final PnL."""

from __future__ import annotations

import json
import math
import shutil
from decimal import Decimal
from pathlib import Path

import pandas as pd
import pytest

from bot.journal import (
    MANIFEST,
    TABLES,
    IncompleteJournal,
    JournalError,
    JournalWriter,
    MemoryJournal,
    final_pnl_usd,
    partial_path,
    read_manifest,
    read_table,
    read_tables,
)
from bot.profiles import ConfigError, load_settings

NS_PER_S = 1_000_000_000


def fill_row(i: int) -> tuple[object, ...]:
    return (
        1_000 + i, "BTCUSDT", f"c-{i}", f"t-{i}", 1 if i % 2 else -1, 60000.0 + i / 10, 0.001,
        600_000 + i, 1, "maker", -0.003, Decimal("-0.003"), 60000.05,
    )  # fmt: skip


def test_segments_flush_every_segment_rows_and_read_back_in_order(tmp_path: Path) -> None:
    writer = JournalWriter(tmp_path, {"mode": "paper"}, segment_rows=4)
    for i in range(10):
        writer.append("fills", *fill_row(i))
    writer.close()
    parts = sorted((tmp_path / "fills").glob("part-*.parquet"))
    assert [p.name for p in parts] == [
        "part-00000.parquet", "part-00001.parquet", "part-00002.parquet",
    ]  # fmt: skip
    fills = read_table(tmp_path, "fills")
    assert fills["client_order_id"].tolist() == [f"c-{i}" for i in range(10)]
    assert fills["fee_exact"].iloc[3] == Decimal("-0.003")
    parts = {name: 3 if name == "fills" else 1 for name in TABLES}
    assert read_manifest(tmp_path) == {
        "mode": "paper", "journal": {"complete": True, "parts": parts},
    }  # fmt: skip


def test_a_flush_each_table_is_on_disk_at_every_row_before_any_close(tmp_path: Path) -> None:
    writer = JournalWriter(tmp_path, {}, flush_each=frozenset({"fills"}))
    for i in range(3):
        writer.append("fills", *fill_row(i))
        # what a process killed now leaves: this row and every one before it
        on_disk = read_table(tmp_path, "fills")["trade_id"].tolist()
        assert on_disk == [f"t-{j}" for j in range(i + 1)]
    writer.append("risk", 1_000, "BTCUSDT", "block", "quote", "why", "active")
    assert not (tmp_path / "risk").exists()  # the other tables keep their segments


def test_every_table_exists_after_close_even_when_empty(tmp_path: Path) -> None:
    JournalWriter(tmp_path, {}).close()
    tables = read_tables(tmp_path)
    assert set(tables) == set(TABLES)
    assert all(frame.empty for frame in tables.values())
    assert list(tables["book"].columns) == [
        "ts_ns",
        "symbol",
        "bid",
        "ask",
        "bid_qty",
        "ask_qty",
        "mid",
    ]


def test_same_rows_give_identical_bytes(tmp_path: Path) -> None:
    for name in ("a", "b"):
        writer = JournalWriter(tmp_path / name, {"seed": 7})
        for i in range(50):
            writer.append("fills", *fill_row(i))
        writer.close()
    for table in TABLES:
        first = (tmp_path / "a" / table / "part-00000.parquet").read_bytes()
        assert first == (tmp_path / "b" / table / "part-00000.parquet").read_bytes()


def test_a_row_of_the_wrong_width_is_an_error_naming_the_table(tmp_path: Path) -> None:
    writer = JournalWriter(tmp_path, {})
    writer.append("risk", 1, "BTCUSDT", "freeze")
    with pytest.raises(JournalError, match="risk: row has 3 values, table has 6 columns"):
        writer.flush("risk")


def test_unknown_table_and_missing_manifest_are_errors(tmp_path: Path) -> None:
    with pytest.raises(JournalError, match="unknown journal table 'trades'"):
        read_table(tmp_path, "trades")
    with pytest.raises(JournalError, match="not a journal directory"):
        read_manifest(tmp_path)


def test_memory_journal_frames_keep_rows() -> None:
    journal = MemoryJournal()
    journal.append("fills", *fill_row(1))
    journal.append("fills", *fill_row(2))
    frame = journal.frame("fills")
    assert frame["trade_id"].tolist() == ["t-1", "t-2"]
    assert journal.frame("fills").shape == (2, 13)
    assert journal.frame("book").empty


def test_a_journal_is_whole_only_after_close(tmp_path: Path) -> None:
    writer = JournalWriter(tmp_path, {"mode": "paper"})
    for i in range(3):
        writer.append("fills", *fill_row(i))
    writer.flush_all()  # what an interrupted run does: the rows are on disk ...
    assert len(read_table(tmp_path, "fills")) == 3
    # ... but nothing that judges a journal reads it
    with pytest.raises(IncompleteJournal, match=r"incomplete journal .*journal\.complete=true"):
        read_manifest(tmp_path)
    with pytest.raises(IncompleteJournal, match="incomplete journal"):
        read_tables(tmp_path)
    with pytest.raises(IncompleteJournal):
        read_table(tmp_path, "fills", allow_partial=False)
    assert read_manifest(tmp_path, allow_partial=True)["journal"] == {"complete": False}
    writer.close({"data_span": {"seconds": 1.5}})
    manifest = read_manifest(tmp_path)
    assert manifest["data_span"] == {"seconds": 1.5} and manifest["mode"] == "paper"
    assert len(read_tables(tmp_path)["fills"]) == 3


def test_a_partial_directory_and_a_missing_part_are_refused(tmp_path: Path) -> None:
    out = tmp_path / "run"
    writer = JournalWriter(partial_path(out), {})
    for i in range(10):
        writer.append("fills", *fill_row(i))
    writer.close()
    assert partial_path(out).name == "run.partial"
    # complete, but never renamed: the run stopped between the last flush and the rename
    with pytest.raises(IncompleteJournal, match=r"run\.partial: partial journal"):
        read_tables(partial_path(out))
    shutil.copytree(partial_path(out), out)
    assert len(read_tables(out)["fills"]) == 10
    next(iter((out / "book").glob("part-*.parquet"))).unlink()
    with pytest.raises(IncompleteJournal, match=r"table book has 0 part files, run\.json lists 1"):
        read_tables(out)


def test_an_unreadable_manifest_is_a_journal_error(tmp_path: Path) -> None:
    (tmp_path / MANIFEST).write_text('{"mode": "pap')
    with pytest.raises(JournalError, match=r"run\.json: corrupt run manifest, not JSON"):
        read_manifest(tmp_path)
    (tmp_path / MANIFEST).write_text("[1, 2]")
    with pytest.raises(JournalError, match=r"a run manifest is a JSON object, not \[1, 2\]"):
        read_manifest(tmp_path)


def parts_of(root: Path, table: str) -> list[int]:
    """Rows per part file of one table, in part order."""
    parts = sorted((root / table).glob("part-*.parquet"))
    return [len(pd.read_parquet(p)) for p in parts]


def test_a_buffer_is_flushed_at_its_byte_bound(tmp_path: Path) -> None:
    writer = JournalWriter(tmp_path, {}, segment_bytes=10_000)
    for i in range(100):
        writer.append("fills", *fill_row(i))
    row_bytes = writer.buffers["fills"].row_bytes
    writer.close()
    per_part = 10_000 // row_bytes
    assert 10 < per_part < 100  # the bound cut the table, and more than one row a part
    sizes = parts_of(tmp_path, "fills")
    assert sizes[:-1] == [per_part] * (len(sizes) - 1) and sum(sizes) == 100
    # no row dropped or reordered across the parts
    assert read_table(tmp_path, "fills")["client_order_id"].tolist() == [
        f"c-{i}" for i in range(100)
    ]


def test_a_buffer_is_flushed_when_its_rows_span_the_time_bound(tmp_path: Path) -> None:
    writer = JournalWriter(tmp_path, {}, segment_ns=10 * NS_PER_S)
    for second in range(35):  # one position row a second: rows 0..10 span 10 s
        writer.append("positions", second * NS_PER_S, "BTCUSDT", 0.0, 0.0, 6e4, 0.0, 0.0, 0.0, 0.0)
    writer.close()
    assert parts_of(tmp_path, "positions") == [11, 11, 11, 2]
    # the row bound alone (the default) keeps all of them in one segment
    writer = JournalWriter(tmp_path / "rows", {})
    for second in range(35):
        writer.append("positions", second * NS_PER_S, "BTCUSDT", 0.0, 0.0, 6e4, 0.0, 0.0, 0.0, 0.0)
    writer.close()
    assert parts_of(tmp_path / "rows", "positions") == [35]


def test_segment_bounds_must_be_positive(tmp_path: Path) -> None:
    with pytest.raises(JournalError, match="segment bounds must be positive: rows=200000 bytes=0"):
        JournalWriter(tmp_path, {}, segment_bytes=0)


@pytest.mark.parametrize(("value", "why"), [("0s", "must be positive"), ("7x", "bad duration")])
def test_a_bad_journal_segment_is_a_config_error_naming_the_key(value: str, why: str) -> None:
    with pytest.raises(ConfigError, match=f"storage.journal_segment: interval '{value}'.*{why}"):
        load_settings("base", overrides=(f"storage.journal_segment={value}",))
    quarter = load_settings("base", overrides=("storage.journal_segment=15m",))
    assert quarter.storage.journal_segment_ns == 15 * 60 * NS_PER_S


def fills_frame(rows: list[tuple[str, int, float, float, float, float]]) -> pd.DataFrame:
    """(symbol, side, price, qty, fee, mid) -> a fills frame with the columns PnL uses."""
    return pd.DataFrame(
        [
            {"ts_ns": i, "symbol": sym, "side": side, "price": px, "qty": qty, "fee": fee,
             "mid": mid}
            for i, (sym, side, px, qty, fee, mid) in enumerate(rows)
        ]
    )  # fmt: skip


def test_final_pnl_marks_each_symbol_at_its_last_book_mid() -> None:
    fills = fills_frame([
        ("BTCUSDT", 1, 100.0, 2.0, -0.01, 100.5),   # buy 2 @ 100
        ("BTCUSDT", -1, 103.0, 1.0, -0.01, 102.5),  # sell 1 @ 103: 1 left
        ("ETHUSDT", -1, 10.0, 3.0, 0.02, 10.0),     # sell 3 @ 10
    ])  # fmt: skip
    book = pd.DataFrame(
        {"ts_ns": [5, 9, 7], "symbol": ["BTCUSDT", "BTCUSDT", "ETHUSDT"], "mid": [99, 101, 11.0]}
    )
    btc = -200.0 + 103.0 + 0.02 + 1 * 101.0  # the last BTC book row (ts 9) is the mark
    eth = 30.0 - 0.02 - 3 * 11.0
    assert final_pnl_usd(fills, book) == pytest.approx(btc + eth, abs=1e-12)
    # a symbol without book rows is marked at its last fill mid
    assert final_pnl_usd(fills, book[book.symbol == "BTCUSDT"]) == pytest.approx(
        btc + 30.0 - 0.02 - 3 * 10.0, abs=1e-12
    )
    assert final_pnl_usd(fills.iloc[0:0], book) == 0.0


def test_final_pnl_is_nan_when_a_traded_symbol_has_no_mid() -> None:
    fills = fills_frame([("BTCUSDT", 1, 100.0, 2.0, -0.01, math.nan)])
    book = pd.DataFrame({"ts_ns": [1], "symbol": ["ETHUSDT"], "mid": [10.0]})
    assert math.isnan(final_pnl_usd(fills, book))


def test_read_table_reads_the_columns_asked_for(tmp_path: Path) -> None:
    writer = JournalWriter(tmp_path, {})
    writer.append("fills", *fill_row(1))
    writer.close()
    frame = read_table(tmp_path, "fills", ["ts_ns", "mid"])
    assert list(frame.columns) == ["ts_ns", "mid"] and frame["mid"].tolist() == [60000.05]
    with pytest.raises(JournalError, match=r"table fills has no columns \['px'\]"):
        read_table(tmp_path, "fills", ["px"])
    assert json.loads((tmp_path / MANIFEST).read_text())["journal"]["complete"] is True
