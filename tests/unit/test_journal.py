"""The journal contract: segments, manifest, empty tables, bad rows, stable bytes."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest

from bot.journal import (
    TABLES,
    JournalError,
    JournalWriter,
    MemoryJournal,
    read_manifest,
    read_table,
    read_tables,
)


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
    assert read_manifest(tmp_path) == {"mode": "paper"}


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
