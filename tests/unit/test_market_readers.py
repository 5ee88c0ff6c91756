"""Readers: real Binance (Tardis CSV) and Bybit ob500 files, hand-made files, Parquet."""

from __future__ import annotations

import gzip
import json
import zipfile
from pathlib import Path

import numpy as np
import pytest

from bot.market.readers import (
    _merge,
    detect_format,
    open_market,
    read_bybit_ob500,
    read_parquet,
    read_tardis,
    rechunk,
)
from bot.market.recorder import write_parquet
from bot.market.schema import COLUMNS, Kind, MarketChunk
from bot.market.validate import MarketFormatError

BID, ASK = 1, -1


def _all(chunks: object) -> MarketChunk:
    parts = list(chunks)  # type: ignore[call-overload]
    assert parts, "no chunks"
    return MarketChunk(
        parts[0].symbol, *(np.concatenate([getattr(c, n) for c in parts]) for n in COLUMNS)
    )


def _book_after(data: MarketChunk, rows: int) -> tuple[dict[float, float], dict[float, float]]:
    """A plain dict book from the first `rows` rows (independent of bot.market.book)."""
    bids: dict[float, float] = {}
    asks: dict[float, float] = {}
    in_snapshot = False
    for i in range(rows):
        kind = int(data.kind[i])
        if kind == Kind.TRADE:
            continue
        if kind == Kind.SNAPSHOT and not in_snapshot:
            bids.clear()
            asks.clear()
        in_snapshot = kind == Kind.SNAPSHOT
        levels = bids if data.side[i] == BID else asks
        if data.qty[i] == 0:
            levels.pop(float(data.price[i]), None)
        else:
            levels[float(data.price[i])] = float(data.qty[i])
    return bids, asks


# --- real Binance data in Tardis layout ------------------------------------------------


@pytest.fixture(scope="module")
def binance(binance_dir: Path) -> MarketChunk:
    return _all(read_tardis(binance_dir))


def test_binance_row_counts_match_the_csv_files(binance: MarketChunk) -> None:
    # zcat incremental_book_L2.csv.gz | wc -l -> 445194 (header + 445193 rows), of
    # which grep -c ',true,' -> 2000 snapshot rows; zcat trades.csv.gz | wc -l -> 21309.
    assert binance.symbol == "BTCUSDT"
    assert len(binance) == 445_193 + 21_308
    assert int((binance.kind == Kind.SNAPSHOT).sum()) == 2_000
    assert int((binance.kind == Kind.DELTA).sum()) == 443_193
    assert int((binance.kind == Kind.TRADE).sum()) == 21_308


def test_binance_replay_order_and_units(binance: MarketChunk) -> None:
    assert (np.diff(binance.ts_local) >= 0).all()
    # first CSV row: timestamp 1723161256501000 us, local_timestamp 1723161255319702 us
    assert binance.ts_local[0] == 1_723_161_255_319_702_000
    assert binance.ts_exch[0] == 1_723_161_256_501_000_000
    # the capture clock ran ~1.2 s behind the exchange
    assert binance.ts_exch[0] - binance.ts_local[0] == 1_181_298_000


def test_binance_starts_with_the_snapshot_and_its_touch(binance: MarketChunk) -> None:
    assert (binance.kind[:2000] == Kind.SNAPSHOT).all()
    assert binance.kind[2000] != Kind.SNAPSHOT
    assert int((binance.side[:2000] == BID).sum()) == 1000
    bids, asks = _book_after(binance, 2000)
    # from the CSV by hand (awk max/min over the snapshot rows): 61800.20 x 2.909 / 61800.30 x 1.072
    assert max(bids) == 61800.2 and bids[61800.2] == 2.909
    assert min(asks) == 61800.3 and asks[61800.3] == 1.072


def test_binance_first_trade_and_its_position(binance: MarketChunk) -> None:
    # trades.csv.gz row 1: local 1723161255354596, id 5266583940, buy 61800.30 x 0.003;
    # it falls after the first diff message (local 1723161255343040)
    first = int(np.flatnonzero(binance.kind == Kind.TRADE)[0])
    assert binance.ts_local[first] == 1_723_161_255_354_596_000
    assert binance.trade_id[first] == 5_266_583_940
    assert binance.side[first] == 1
    assert binance.price[first] == 61800.3 and binance.qty[first] == 0.003
    assert binance.ts_local[first - 1] <= binance.ts_local[first]
    assert (binance.trade_id[binance.kind != Kind.TRADE] == 0).all()


def test_binance_exchange_time_goes_backwards_about_770_times(binance: MarketChunk) -> None:
    # rows whose exchange ts is below an earlier row's: counted with pandas
    # (concat + stable sort by local_timestamp) while exploring the data -> 770
    running = np.maximum.accumulate(binance.ts_exch)
    assert int((binance.ts_exch < running).sum()) == 770


def test_binance_chunking_does_not_change_the_rows(binance_dir: Path, binance: MarketChunk) -> None:
    chunks = list(read_tardis(binance_dir, chunk_rows=100_000))
    assert [len(c) for c in chunks[:-1]] == [100_000] * (len(chunks) - 1)
    merged = _all(chunks)
    for name in COLUMNS:
        assert np.array_equal(getattr(merged, name), getattr(binance, name)), name


def test_binance_convert_to_parquet_and_back_is_identical(
    tmp_path: Path, binance_dir: Path, binance: MarketChunk
) -> None:
    out = write_parquet(open_market(binance_dir), tmp_path / "btc.parquet", "BTCUSDT")
    back = _all(read_parquet(out, chunk_rows=50_000))
    assert back.symbol == "BTCUSDT"
    for name in COLUMNS:
        assert np.array_equal(getattr(back, name), getattr(binance, name)), name
        assert getattr(back, name).dtype == getattr(binance, name).dtype, name


# --- a hand-made Tardis pair --------------------------------------------------------------

BOOK_CSV = """exchange,symbol,timestamp,local_timestamp,is_snapshot,side,price,amount
x,BTCUSDT,1000,1100,true,bid,100.0,1.0
x,BTCUSDT,1000,1100,true,bid,99.5,2.0
x,BTCUSDT,1000,1100,true,ask,100.5,1.5
x,BTCUSDT,1000,1100,true,ask,101.0,3.0
x,BTCUSDT,2000,2100,false,bid,100.0,0
x,BTCUSDT,2000,2100,false,ask,100.5,0.5
x,BTCUSDT,3000,3200,true,bid,98.0,1.0
x,BTCUSDT,3000,3200,true,ask,99.0,1.0
"""
TRADES_CSV = """exchange,symbol,timestamp,local_timestamp,id,side,price,amount
x,BTCUSDT,1500,1100,7,buy,100.5,0.2
x,BTCUSDT,1400,2000,8,sell,100.0,0.1
x,BTCUSDT,2500,2100,9,buy,100.5,0.3
x,BTCUSDT,4000,4000,10,sell,98.0,0.4
"""
# (ts_local us, kind, side, price, qty, trade_id) in the order worked out by hand:
# book rows first on equal local_timestamp.
EXPECTED = [
    (1100, 1, 1, 100.0, 1.0, 0),
    (1100, 1, 1, 99.5, 2.0, 0),
    (1100, 1, -1, 100.5, 1.5, 0),
    (1100, 1, -1, 101.0, 3.0, 0),
    (1100, 2, 1, 100.5, 0.2, 7),
    (2000, 2, -1, 100.0, 0.1, 8),
    (2100, 0, 1, 100.0, 0.0, 0),
    (2100, 0, -1, 100.5, 0.5, 0),
    (2100, 2, 1, 100.5, 0.3, 9),
    (3200, 1, 1, 98.0, 1.0, 0),
    (3200, 1, -1, 99.0, 1.0, 0),
    (4000, 2, -1, 98.0, 0.4, 10),
]


def _write(path: Path, text: str) -> Path:
    if path.name.endswith(".gz"):
        with gzip.open(path, "wt") as fh:
            fh.write(text)
    else:
        path.write_text(text)
    return path


def _as_rows(data: MarketChunk) -> list[tuple[int, int, int, float, float, int]]:
    return [
        (
            int(data.ts_local[i]) // 1000,
            int(data.kind[i]),
            int(data.side[i]),
            float(data.price[i]),
            float(data.qty[i]),
            int(data.trade_id[i]),
        )
        for i in range(len(data))
    ]


@pytest.mark.parametrize("suffix", [".csv", ".csv.gz"])
@pytest.mark.parametrize("chunk_rows", [1, 2, 5, 1000])
def test_tardis_hand_made_merge(tmp_path: Path, suffix: str, chunk_rows: int) -> None:
    _write(tmp_path / f"x_incremental_book_L2_2024-01-01_BTCUSDT{suffix}", BOOK_CSV)
    _write(tmp_path / f"x_trades_2024-01-01_BTCUSDT{suffix}", TRADES_CSV)
    chunks = list(read_tardis(tmp_path, chunk_rows=chunk_rows))
    assert all(len(c) <= chunk_rows for c in chunks)
    data = _all(chunks)
    assert data.symbol == "BTCUSDT"
    assert _as_rows(data) == EXPECTED
    assert list(data.ts_exch // 1000) == [1000] * 4 + [
        1500,
        1400,
        2000,
        2000,
        2500,
        3000,
        3000,
        4000,
    ]


def test_tardis_several_files_per_kind_are_read_in_name_order(tmp_path: Path) -> None:
    lines = BOOK_CSV.splitlines(keepends=True)
    header, rows = lines[0], lines[1:]
    _write(tmp_path / "a_incremental_book_L2.csv", header + "".join(rows[:5]))
    _write(tmp_path / "b_incremental_book_L2.csv.gz", header + "".join(rows[5:]))
    t_lines = TRADES_CSV.splitlines(keepends=True)
    _write(tmp_path / "a_trades.csv", "".join(t_lines[:2]))
    _write(tmp_path / "b_trades.csv", t_lines[0] + "".join(t_lines[2:]))
    assert _as_rows(_all(read_tardis(tmp_path, chunk_rows=3))) == EXPECTED
    listed = sorted(tmp_path.iterdir())
    assert _as_rows(_all(read_tardis(listed))) == EXPECTED


def test_tardis_mid_file_snapshot_resets_the_book(tmp_path: Path) -> None:
    _write(tmp_path / "incremental_book_L2.csv", BOOK_CSV)
    data = _all(read_tardis(tmp_path))
    bids, asks = _book_after(data, 6)
    assert bids == {99.5: 2.0} and asks == {100.5: 0.5, 101.0: 3.0}
    bids, asks = _book_after(data, 8)
    assert bids == {98.0: 1.0} and asks == {99.0: 1.0}


def test_tardis_symbol_selection(tmp_path: Path) -> None:
    other = BOOK_CSV.replace("BTCUSDT", "ETHUSDT").splitlines(keepends=True)[1:]
    _write(tmp_path / "incremental_book_L2.csv", BOOK_CSV + "".join(other))
    with pytest.raises(MarketFormatError, match="several symbols"):
        list(read_tardis(tmp_path))
    eth = _all(read_tardis(tmp_path, symbol="ETHUSDT"))
    assert eth.symbol == "ETHUSDT" and len(eth) == 8
    with pytest.raises(MarketFormatError, match="no rows"):
        list(read_tardis(tmp_path, symbol="SOLUSDT"))


def test_tardis_unknown_side_maps_to_zero(tmp_path: Path) -> None:
    _write(tmp_path / "trades.csv", TRADES_CSV.replace("sell", "unknown"))
    data = _all(read_tardis(tmp_path))
    assert list(data.side) == [1, 0, 1, 0]


def test_tardis_bad_files(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        list(read_tardis(tmp_path / "missing"))
    _write(tmp_path / "notes.csv", "a,b\n1,2\n")
    with pytest.raises(MarketFormatError, match="no Tardis"):
        list(read_tardis(tmp_path))
    _write(tmp_path / "trades.csv", TRADES_CSV.replace(",7,", ",seven,"))
    with pytest.raises(MarketFormatError, match="not a Tardis CSV"):
        list(read_tardis(tmp_path))


@pytest.mark.parametrize("seed", range(5))
def test_merge_matches_a_stable_sort_for_any_split(seed: int) -> None:
    rng = np.random.default_rng(seed)
    book_ts = np.sort(rng.integers(0, 300, 400))
    trade_ts = np.sort(rng.integers(0, 300, 150))

    def stream(ts: np.ndarray, kind: int) -> list[tuple[MarketChunk, np.ndarray]]:
        cuts = np.sort(rng.choice(np.arange(1, len(ts)), size=rng.integers(0, 12), replace=False))
        out = []
        for part in np.split(np.arange(len(ts)), cuts):
            chunk = MarketChunk(
                "",
                ts[part],
                ts[part],
                np.full(len(part), kind, np.int8),
                np.ones(len(part), np.int8),
                part.astype(float),
                np.ones(len(part)),
                part.astype(np.int64),
            )
            out.append((chunk, ts[part]))
        return out

    merged = _all(_merge(iter(stream(book_ts, 0)), iter(stream(trade_ts, 2))))
    kinds = np.concatenate([np.zeros(len(book_ts)), np.full(len(trade_ts), 2)])
    ts = np.concatenate([book_ts, trade_ts])
    ids = np.concatenate([np.arange(len(book_ts)), np.arange(len(trade_ts))])
    order = np.lexsort((kinds, ts))  # by ts, then book before trade; file order kept
    assert np.array_equal(merged.ts_local, ts[order])
    assert np.array_equal(merged.kind, kinds[order])
    assert np.array_equal(merged.trade_id, ids[order])


def test_rechunk_sizes() -> None:
    n = 23
    chunk = MarketChunk("S", *(np.arange(n) for _ in COLUMNS))
    parts = [
        MarketChunk("S", *(getattr(chunk, c)[a:b] for c in COLUMNS))
        for a, b in [(0, 3), (3, 3), (3, 17), (17, 23)]
    ]
    out = list(rechunk(parts, 5))
    assert [len(c) for c in out] == [5, 5, 5, 5, 3]
    assert np.array_equal(np.concatenate([c.ts_local for c in out]), np.arange(n))


# --- Bybit ob500 ------------------------------------------------------------------------


def test_bybit_real_file_snapshot_then_deltas(bybit_ob500: Path) -> None:
    data = _all(read_bybit_ob500(bybit_ob500))
    assert data.symbol == "XRPUSDT"
    # line 1 is a snapshot of 500 bids + 500 asks; the other 49 lines are deltas
    assert (data.kind[:1000] == Kind.SNAPSHOT).all()
    assert (data.kind[1000:] == Kind.DELTA).all()
    assert (data.side[:500] == BID).all() and (data.side[500:1000] == ASK).all()
    assert data.ts_local[0] == 1_733_011_200_691_000_000
    assert np.array_equal(data.ts_local, data.ts_exch)
    assert (np.diff(data.ts_local) >= 0).all()
    assert len(np.unique(data.ts_local)) == 50


def test_bybit_real_file_book_by_hand(bybit_ob500: Path) -> None:
    data = _all(read_bybit_ob500(bybit_ob500))
    stamps = np.unique(data.ts_local)
    after = [int(np.searchsorted(data.ts_local, t, side="right")) for t in stamps]
    # line 1 (snapshot): best bid 1.9531 x 6203, best ask 1.9532 x 10480
    bids, asks = _book_after(data, after[0])
    assert max(bids) == 1.9531 and bids[1.9531] == 6203
    assert min(asks) == 1.9532 and asks[1.9532] == 10480
    # line 2 (first delta): bid 1.9531 -> 6198; its asks start at 1.9535, touch unchanged
    bids, asks = _book_after(data, after[1])
    assert max(bids) == 1.9531 and bids[1.9531] == 6198
    assert min(asks) == 1.9532 and asks[1.9532] == 10480
    # line 9: asks 1.9532, 1.9533, 1.9535 size "0" (removed), bids 1.9533 x 18918 and
    # 1.9532 x 18252 added; 1.9534 was last set to 1071 on line 6 -> the new best ask
    bids, asks = _book_after(data, after[8])
    assert not {1.9532, 1.9533, 1.9535} & set(asks)
    assert max(bids) == 1.9533 and bids[1.9533] == 18918
    assert min(asks) == 1.9534 and asks[1.9534] == 1071


def _ob500_line(kind: str, ts: int, bids: list[list[str]], asks: list[list[str]]) -> str:
    return json.dumps(
        {
            "topic": "orderbook.500.XRPUSDT",
            "type": kind,
            "ts": ts,
            "data": {"s": "XRPUSDT", "b": bids, "a": asks, "u": 1, "seq": 1},
            "cts": ts - 1,
        }
    )


OB500 = (
    "\n".join(
        [
            _ob500_line("snapshot", 1000, [["1.0", "5"], ["0.9", "7"]], [["1.1", "3"]]),
            _ob500_line("delta", 1100, [["1.0", "0"]], [["1.2", "4"]]),
            _ob500_line("snapshot", 1200, [["0.8", "1"]], [["0.85", "2"]]),
        ]
    )
    + "\n"
)


@pytest.mark.parametrize("wrap", ["plain", "gz", "zip"])
def test_bybit_hand_made_file(tmp_path: Path, wrap: str) -> None:
    path = tmp_path / "2024-12-01_XRPUSDT_ob500.data"
    path.write_text(OB500)
    if wrap == "gz":
        path = _write(tmp_path / "2024-12-01_XRPUSDT_ob500.data.gz", OB500)
    elif wrap == "zip":
        zipped = tmp_path / "2024-12-01_XRPUSDT_ob500.data.zip"
        with zipfile.ZipFile(zipped, "w") as archive:
            archive.write(path, path.name)
        path = zipped
    assert detect_format(path) == "bybit"
    data = _all(open_market(path, chunk_rows=2))
    assert list(data.ts_local // 1_000_000) == [1000] * 3 + [1100] * 2 + [1200] * 2
    assert list(data.kind) == [1, 1, 1, 0, 0, 1, 1]
    assert list(data.side) == [1, 1, -1, 1, -1, 1, -1]
    assert list(data.price) == [1.0, 0.9, 1.1, 1.0, 1.2, 0.8, 0.85]
    assert list(data.qty) == [5, 7, 3, 0, 4, 1, 2]
    bids, asks = _book_after(data, 5)
    assert bids == {0.9: 7} and asks == {1.1: 3, 1.2: 4}
    bids, asks = _book_after(data, 7)
    assert bids == {0.8: 1} and asks == {0.85: 2}


def test_bybit_bad_lines(tmp_path: Path) -> None:
    path = tmp_path / "x_ob500.data"
    path.write_text(OB500 + "{not json\n")
    with pytest.raises(MarketFormatError, match=f"file {path} line 4: not a Bybit"):
        list(read_bybit_ob500(path))
    path.write_text(OB500.replace('"1.2"', '"one"'))
    line = next(n for n, text in enumerate(OB500.splitlines(), 1) if '"1.2"' in text)
    with pytest.raises(MarketFormatError, match=f"line {line}: price 'one' is not a number"):
        list(read_bybit_ob500(path))
    path.write_text(OB500)
    with pytest.raises(MarketFormatError, match="symbol"):
        list(read_bybit_ob500(path, symbol="BTCUSDT"))


# --- Parquet and format detection ----------------------------------------------------------


def test_parquet_directory_of_parts_in_name_order(tmp_path: Path) -> None:
    rows = np.arange(10)
    chunk = MarketChunk(
        "ETHUSDT",
        rows * 10,
        rows * 10,
        np.zeros(10, np.int8),
        np.ones(10, np.int8),
        rows + 1.0,
        rows + 0.5,
        np.zeros(10, np.int64),
    )
    half = [
        MarketChunk("ETHUSDT", *(getattr(chunk, c)[s] for c in COLUMNS))
        for s in (slice(0, 4), slice(4, 10))
    ]
    write_parquet([half[1]], tmp_path / "part-1.parquet", "ETHUSDT")
    write_parquet([half[0]], tmp_path / "part-0.parquet", "ETHUSDT")
    assert detect_format(tmp_path) == "parquet"
    back = _all(open_market(tmp_path, chunk_rows=3))
    assert back.symbol == "ETHUSDT"
    for name in COLUMNS:
        assert np.array_equal(getattr(back, name), getattr(chunk, name)), name
    with pytest.raises(MarketFormatError, match="not the requested"):
        list(read_parquet(tmp_path, symbol="BTCUSDT"))


def test_detect_format(tmp_path: Path, binance_dir: Path, bybit_ob500: Path) -> None:
    assert detect_format(binance_dir) == "tardis"
    assert detect_format(bybit_ob500) == "bybit"
    (tmp_path / "readme.txt").write_text("x")
    with pytest.raises(MarketFormatError, match="cannot tell the format"):
        detect_format(tmp_path)
    with pytest.raises(FileNotFoundError):
        detect_format(tmp_path / "nope")
