"""The journal writer without pandas: Arrow columns built from numpy buffers are the
arrays `pa.array` makes (same Parquet bytes, same refusals), and the summary's PnL,
tallied as rows flush, is the KPI's `final_pnl_usd` of the rows read back."""

from __future__ import annotations

import io
import math
from decimal import Decimal
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from bot.config import Settings, instruments
from bot.journal import (
    OPENING,
    RECOVERED,
    SCHEMAS,
    JournalWriter,
    arrow_column,
    final_pnl_usd,
    read_manifest,
    read_table,
)
from bot.portfolio import InvalidFill, Portfolio
from bot.runtime.run import RunSpec, execute
from gates.kpi import compute_kpis, load_journal, symbol_equity

NAN = math.nan
COLUMNS: list[tuple[pa.DataType, list[Any]]] = [
    (pa.int64(), [1, -2, 2**62, 0]),
    (pa.int64(), [None, 3, None]),
    (pa.int64(), [1.5, 2]),  # pa.array takes it (the fallback builds it)
    (pa.int8(), [1, -1, 127, -128]),
    (pa.int16(), [0, 5, -32768, None]),
    (pa.float64(), [1.0, NAN, -0.0, 1e300, 5, float("inf")]),
    (pa.float64(), [None, None, 1.5, NAN]),
    (pa.string(), ["a", "é", "", "paper-1"]),
    (pa.string(), [None, "a", None]),
    (SCHEMAS["fills"].field("fee_exact").type,
     [Decimal("0.1"), Decimal("-3.000000000001"), Decimal("-0E-12"), Decimal("1E-7"),
      Decimal("1.5000000000000000"), Decimal("12345678901234567890.5"), None]),
    (pa.float64(), []),
    (pa.string(), []),
]  # fmt: skip
# values a column must refuse, as pa.array does
REFUSED: list[tuple[pa.DataType, list[Any]]] = [
    (pa.int8(), [1, 300]),
    (pa.int8(), [None, -129]),
    (pa.int64(), [2**70]),
    (pa.string(), ["a", 1]),
    (pa.float64(), ["x"]),
    (SCHEMAS["fills"].field("fee_exact").type, [Decimal("1.0000000000001")]),
    (SCHEMAS["fills"].field("fee_exact").type, [Decimal("1E+27")]),
]


def parquet_bytes(array: pa.Array) -> bytes:
    out = io.BytesIO()
    pq.write_table(pa.table({"c": array}), out, compression="zstd", store_schema=False)
    return out.getvalue()


@pytest.mark.parametrize(("arrow", "values"), COLUMNS)
def test_a_column_is_the_array_pa_array_makes(arrow: pa.DataType, values: list[Any]) -> None:
    built, reference = arrow_column(values, arrow), pa.array(values, type=arrow)
    assert built.type == reference.type and built.null_count == reference.null_count
    assert repr(built.to_pylist()) == repr(reference.to_pylist())  # NaN, -0.0 included
    assert parquet_bytes(built) == parquet_bytes(reference)


@pytest.mark.parametrize(("arrow", "values"), REFUSED)
def test_a_column_refuses_what_pa_array_refuses(arrow: pa.DataType, values: list[Any]) -> None:
    with pytest.raises((pa.ArrowException, OverflowError)) as expected:
        pa.array(values, type=arrow)
    with pytest.raises(type(expected.value)):
        arrow_column(values, arrow)


def test_the_tally_is_the_pnl_of_the_rows_read_back_on_the_real_capture(
    tmp_path: Path, binance_dir: Path
) -> None:
    # segments of 10 rows: the fills and book rows reach disk in many parts, each tallied
    result = execute(RunSpec(mode="paper", out_dir=tmp_path / "j", data=binance_dir,
                             duration="150s", progress=False,
                             overrides=("storage.journal_segment_rows=10",)))  # fmt: skip
    out = result.out_dir
    fills, book = read_table(out, "fills"), read_table(out, "book")
    assert len(fills) > 10 and len(list((out / "fills").glob("part-*"))) > 1
    assert result.summary["pnl_usd"] == final_pnl_usd(fills, book)  # the same number
    turnover = float((fills["price"] * fills["qty"]).sum())
    assert result.summary["pnl_per_turnover_bps"] == pytest.approx(
        result.summary["pnl_usd"] / turnover * 1e4, rel=1e-12
    )


def test_the_pnl_marks_at_the_latest_book_row_whatever_the_flush_order(tmp_path: Path) -> None:
    writer = JournalWriter(tmp_path, {}, segment_rows=2)
    for ts, mid in ((5, 100.0), (9, 101.0), (9, 102.0), (7, 99.0), (11, NAN)):
        writer.append("book", ts, "BTCUSDT", mid - 0.5, mid + 0.5, 1.0, 1.0, mid)
    writer.append("fills", 3, "BTCUSDT", "o-1", "t-1", 1, 100.0, 2.0, 1000, 2000, "maker",
                  -0.01, Decimal("-0.01"), 100.5)  # fmt: skip
    writer.close()
    # bought 2 @ 100 with a 0.01 rebate, marked at the later of the two ts-9 rows: 102
    assert writer.figures.pnl_usd() == -200.0 + 0.01 + 2 * 102.0
    assert writer.figures.pnl_usd() == final_pnl_usd(
        read_table(tmp_path, "fills"), read_table(tmp_path, "book")
    )


def test_an_opening_position_counts_in_the_tally_the_kpi_and_the_engine(tmp_path: Path) -> None:
    """A live restart opens with the venue's position (1.5 BTC long at 100): the PnL is
    what it makes during the run, by the writer's tally, the KPI and the portfolio."""
    writer = JournalWriter(tmp_path, {"mode": "live"})
    writer.open_positions({"BTCUSDT": {"qty": 1.5, "price": 100.0}},
                          recovered={"from_run": "LOLD", "fills": []})  # fmt: skip
    assert read_manifest(tmp_path, allow_partial=True)[OPENING]["BTCUSDT"]["qty"] == 1.5
    for ts, mid in ((5, 101.0), (9, 103.0)):
        writer.append("book", ts, "BTCUSDT", mid - 0.5, mid + 0.5, 1.0, 1.0, mid)
    writer.append("fills", 7, "BTCUSDT", "o-1", "t-1", -1, 102.0, 0.5, 1020, 500, "maker",
                  -0.01, Decimal("-0.01"), 102.0)  # fmt: skip
    writer.close()
    # held 1.5 from 100, sold 0.5 at 102 (+0.01 rebate), 1.0 left marked at 103
    expected = -150.0 + 51.0 + 0.01 + 1.0 * 103.0
    assert writer.figures.pnl_usd() == pytest.approx(expected)
    journal = load_journal(tmp_path)
    assert journal.manifest[RECOVERED] == {"from_run": "LOLD", "fills": []}
    assert compute_kpis(journal).total["pnl_usd"] == pytest.approx(expected)
    curve = symbol_equity(journal)
    assert list(curve["position"]) == [1.5, 1.0]  # the opening is inventory from the start
    inst = instruments(Settings())["BTCUSDT"]
    portfolio = Portfolio({"BTCUSDT": inst})
    portfolio.open_position("BTCUSDT", 1_500, 1_000)  # lots of 0.001, ticks of 0.1
    assert portfolio.position_lots("BTCUSDT") == 1_500
    assert float(portfolio.unrealized_pnl("BTCUSDT", Decimal("103"))) == pytest.approx(4.5)
    with pytest.raises(InvalidFill, match="needs a flat book"):
        portfolio.open_position("BTCUSDT", 1, 1_000)
