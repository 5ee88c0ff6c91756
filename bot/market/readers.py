"""Readers of recorded market data into replay-ordered `MarketChunk`s.

Three sources, one output format (`bot/market/schema.py`):
- the project's Parquet files (`read_parquet`), one file or a directory of parts;
- Tardis.dev CSV (`read_tardis`): `incremental_book_L2` and `trades` files merged
  by `local_timestamp`;
- Bybit's historical order book files `*_ob500.data` (`read_bybit_ob500`).
`open_market` picks the reader from the path and optionally validates the stream.

Every reader streams: memory is bounded by a few chunks whatever the file size.
"""

from __future__ import annotations

import gzip
import io
import json
import zipfile
import zlib
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import replace
from pathlib import Path
from typing import IO, BinaryIO, Literal

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import structlog

from bot.config import ValidationConfig
from bot.market.schema import COLUMNS, SCHEMA, Kind, MarketChunk, Source, concat, origins
from bot.market.validate import MarketFormatError, Validator

log = structlog.get_logger(__name__)

Format = Literal["auto", "parquet", "tardis", "bybit"]
DEFAULT_CHUNK_ROWS = 262_144
# trade_id of book rows, as the synthetic generator writes them (venue ids are > 0).
NO_TRADE_ID = 0
_US_TO_NS = 1_000
_MS_TO_NS = 1_000_000
# pyarrow's streaming CSV reader batches by bytes and keeps dozens of blocks in flight:
# peak RSS grew ~35x the block size (751 MB at 20 MiB on an 880 MB file, 108 MB at
# 1 MiB). Here each block is parsed whole before the next is read, so memory is a few
# blocks; 4 MiB rather than 1 MiB costs a quarter of the per-call setup of read_csv
# (~1 % of a replay). `rechunk` builds the chunk_rows output.
_CSV_BLOCK_BYTES = 4 << 20


# A gzip member cut short raises EOFError (which Click would turn into "Aborted!"),
# damaged deflate data zlib.error, a file that is not gzip at all BadGzipFile.
_GZIP_ERRORS: tuple[type[Exception], ...] = (EOFError, zlib.error, gzip.BadGzipFile)
_ARCHIVE_ERRORS: tuple[type[Exception], ...] = (*_GZIP_ERRORS, zipfile.BadZipFile)


def _gzip_problem(file: Path, exc: Exception) -> MarketFormatError:
    what = "truncated" if isinstance(exc, EOFError) else "corrupt"
    what += " zip" if isinstance(exc, zipfile.BadZipFile) else " gzip"
    return MarketFormatError(f"file {file}: {what} ({exc}); fetch or compress it again")


# --- shared helpers ------------------------------------------------------------------


def rechunk(chunks: Iterable[MarketChunk], chunk_rows: int) -> Iterator[MarketChunk]:
    """The same rows in chunks of exactly `chunk_rows` (the last one may be shorter)."""
    if chunk_rows <= 0:
        raise ValueError(f"chunk_rows must be > 0, got {chunk_rows}")
    pending: list[MarketChunk] = []
    size = 0
    for chunk in chunks:
        if not len(chunk):
            continue
        pending.append(chunk)
        size += len(chunk)
        if size < chunk_rows:
            continue
        whole = concat(pending)
        start = 0
        while size - start >= chunk_rows:
            yield whole.take(slice(start, start + chunk_rows))
            start += chunk_rows
        pending = [whole.take(slice(start, size))] if start < size else []
        size -= start
    if size:
        yield concat(pending)


_NUMPY_OF: dict[pa.DataType, type[np.generic]] = {
    pa.int8(): np.int8,
    pa.int16(): np.int16,
    pa.int32(): np.int32,
    pa.int64(): np.int64,
    pa.uint8(): np.uint8,
    pa.uint16(): np.uint16,
    pa.uint32(): np.uint32,
    pa.uint64(): np.uint64,
    pa.float32(): np.float32,
    pa.float64(): np.float64,
}


def _bits(buf: pa.Buffer, offset: int, n: int) -> np.ndarray:
    """An Arrow bitmap (LSB first) as bools."""
    bits = np.unpackbits(np.frombuffer(buf, dtype=np.uint8), bitorder="little")
    return bits[offset : offset + n].astype(bool)


def _to_numpy(array: pa.Array, dtype: type[np.generic]) -> np.ndarray:
    """A primitive Arrow array as numpy `dtype`; nulls become NaN (floats) or raise (ints).

    pyarrow's own `to_numpy` imports pandas (over a second of start-up in this venv),
    which a whole-process replay should not pay for; primitive buffers need no pandas.
    """
    n = len(array)
    validity, values = array.buffers()[:2]
    if n == 0:
        return np.empty(0, dtype=dtype)
    if pa.types.is_boolean(array.type):
        out = _bits(values, array.offset, n).astype(dtype)
    else:
        native = np.dtype(_NUMPY_OF[array.type])
        raw = np.frombuffer(values, dtype=native, count=n, offset=array.offset * native.itemsize)
        out = raw.astype(dtype, copy=False)
    if array.null_count:
        if not np.issubdtype(dtype, np.floating):
            raise ValueError(f"{array.null_count} empty values in an integer column")
        out = out.astype(dtype, copy=True)
        out[~_bits(validity, array.offset, n)] = np.nan
    return out


# --- Parquet (the project's own format) -------------------------------------------------


def _parquet_files(path: Path) -> list[Path]:
    if path.is_dir():
        files = sorted(path.glob("*.parquet"))
        if not files:
            raise MarketFormatError(f"{path}: directory holds no *.parquet part files")
        return files
    if not path.exists():
        raise FileNotFoundError(f"market data not found: {path}")
    return [path]


def _parquet_symbol(file: Path, pf: pq.ParquetFile, symbol: str | None) -> str:
    meta = pf.schema_arrow.metadata or {}
    found = meta.get(b"symbol", b"").decode()
    if found and symbol and found != symbol:
        raise MarketFormatError(
            f"file {file}: holds symbol {found!r}, not the requested {symbol!r}"
        )
    if not (found or symbol):
        raise MarketFormatError(f"file {file}: no 'symbol' in the file metadata; pass the symbol")
    return found or str(symbol)


def _parquet_chunk(
    file: Path,
    symbol: str,
    batch: pa.RecordBatch,
    where: tuple[int, int],
    sources: tuple[Source, ...],
) -> MarketChunk:
    """One batch as a chunk; `where` is (index of `file` in `sources`, its first row, 1-based)."""
    source, first_row = where
    rows = np.arange(first_row, first_row + batch.num_rows, dtype=np.int64)
    try:
        columns = [_to_numpy(batch.column(c), _NUMPY_OF[SCHEMA.field(c).type]) for c in COLUMNS]
        return MarketChunk(symbol, *columns, origin=origins(source, rows), sources=sources)
    except (KeyError, ValueError) as exc:
        raise MarketFormatError(
            f"file {file}: column types do not fit the market schema: {exc}"
        ) from exc


def _open_parquet(file: Path) -> pq.ParquetFile:
    try:
        return pq.ParquetFile(file)
    except (pa.ArrowException, OSError) as exc:
        size = file.stat().st_size
        raise MarketFormatError(
            f"file {file}: not a readable Parquet file ({size} bytes): {exc}"
        ) from exc


def _parquet_batches(file: Path, pf: pq.ParquetFile, chunk_rows: int) -> Iterator[pa.RecordBatch]:
    try:
        yield from pf.iter_batches(batch_size=chunk_rows, columns=list(COLUMNS))
    except (pa.ArrowException, OSError) as exc:
        raise MarketFormatError(f"file {file}: corrupt Parquet data: {exc}") from exc


def read_parquet(
    path: str | Path, chunk_rows: int = DEFAULT_CHUNK_ROWS, symbol: str | None = None
) -> Iterator[MarketChunk]:
    """Chunks of a project Parquet file, or of a directory of part files in name order.

    The symbol comes from the file metadata key `symbol` (`symbol` is only a fallback
    for files without it, and a check for files with it).
    """
    files = _parquet_files(Path(path))
    sources = tuple(Source(str(file), "row") for file in files)
    for index, file in enumerate(files):
        pf = _open_parquet(file)
        name = _parquet_symbol(file, pf, symbol)
        missing = [c for c in COLUMNS if c not in pf.schema_arrow.names]
        if missing:
            raise MarketFormatError(
                f"file {file}: not a market-event file, missing columns {missing}"
            )
        first_row = 1
        for batch in _parquet_batches(file, pf, chunk_rows):
            yield _parquet_chunk(file, name, batch, (index, first_row), sources)
            first_row += batch.num_rows


# --- Tardis.dev CSV -------------------------------------------------------------------

_BOOK_COLUMNS = ("symbol", "timestamp", "local_timestamp", "is_snapshot", "side", "price", "amount")
_TRADE_COLUMNS = ("symbol", "timestamp", "local_timestamp", "id", "side", "price", "amount")
_DICT = pa.dictionary(pa.int32(), pa.string())
_CSV_TYPES = {
    "symbol": _DICT,
    "timestamp": pa.int64(),
    "local_timestamp": pa.int64(),
    "is_snapshot": pa.bool_(),
    "side": _DICT,
    "price": pa.float64(),
    "amount": pa.float64(),
    "id": pa.int64(),
}
# Unknown sides map to 0, which the validator reports as a bad value.
_BOOK_SIDES = {"bid": 1, "ask": -1}
_TRADE_SIDES = {"buy": 1, "sell": -1}


def _tardis_files(source: str | Path | Sequence[str | Path]) -> tuple[list[Path], list[Path]]:
    """(book files, trade files), each in name order; a file's header decides its kind."""
    if isinstance(source, str | Path):
        root = Path(source)
        if not root.exists():
            raise FileNotFoundError(f"market data not found: {root}")
        paths = sorted(root.glob("*.csv*")) if root.is_dir() else [root]
    else:
        paths = sorted(Path(p) for p in source)
    book: list[Path] = []
    trades: list[Path] = []
    for file in paths:
        header = _csv_header(file)
        if "is_snapshot" in header:
            book.append(file)
        elif "id" in header and "side" in header:
            trades.append(file)
        else:
            log.info("tardis_file_ignored", file=str(file), header=",".join(header))
    if not (book or trades):
        raise MarketFormatError(f"{source}: no Tardis incremental_book_L2 or trades CSV files")
    return book, trades


def _csv_header(file: Path) -> list[str]:
    try:
        with _open_binary(file) as fh:
            header = fh.readline().decode("utf-8").strip()
    except _GZIP_ERRORS as exc:
        raise _gzip_problem(file, exc) from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise MarketFormatError(f"file {file}: cannot read a CSV header: {exc}") from exc
    if not header:
        # an empty download is a failed one: replaying the other files alone would
        # silently run on half the market
        size = file.stat().st_size
        raise MarketFormatError(f"file {file}: empty ({size} bytes), no CSV header line")
    return header.split(",")


def _side_codes(column: pa.Array, mapping: dict[str, int]) -> np.ndarray:
    if column.null_count:
        column = column.fill_null("")
    dict_col = column if pa.types.is_dictionary(column.type) else column.dictionary_encode()
    lookup = np.array([mapping.get(str(v), 0) for v in dict_col.dictionary.to_pylist()], np.int8)
    return lookup[_to_numpy(dict_col.indices, np.int64)]


def _floats(batch: pa.RecordBatch, name: str) -> np.ndarray:
    # empty cells become NaN: the validator reports them with their line
    return _to_numpy(batch.column(name), np.float64)


class _SymbolFilter:
    """Keeps the rows of one symbol: the requested one, else the only one in the files."""

    def __init__(self, symbol: str | None) -> None:
        self.symbol = symbol
        self._given = symbol is not None

    def mask(self, column: pa.Array, file: Path) -> np.ndarray | None:
        values = [str(v) for v in column.dictionary.to_pylist()]
        indices = _to_numpy(column.indices, np.int64)
        found = sorted({values[i] for i in np.unique(indices).tolist()})
        if self.symbol is None:
            if len(found) > 1:
                raise MarketFormatError(
                    f"file {file}: several symbols {found}; pass one to read it"
                )
            self.symbol = found[0]
        if found == [self.symbol]:
            return None
        if not self._given:
            raise MarketFormatError(
                f"file {file}: symbols {found} after {self.symbol!r}; pass one to read it"
            )
        wanted = values.index(self.symbol) if self.symbol in values else -1
        return np.asarray(indices == wanted)


def _open_binary(file: Path) -> gzip.GzipFile | BinaryIO:
    if file.name.endswith(".gz"):
        return gzip.GzipFile(file, "rb")
    return open(file, "rb")


class InputMeter:
    """How much of its input files a reader has consumed: compressed bytes read over
    the files' sizes. A progress display's measure when a compressed file cannot say
    its data span up front."""

    def __init__(self) -> None:
        self._sizes: dict[Path, int] = {}
        self._read: dict[Path, int] = {}

    def expect(self, files: Iterable[Path]) -> None:
        for file in files:
            self._sizes[file] = file.stat().st_size
            self._read.setdefault(file, 0)

    def advance(self, file: Path, position: int) -> None:
        self._read[file] = position

    def fraction(self) -> float:
        total = sum(self._sizes.values())
        return min(sum(self._read.values()) / total, 1.0) if total else 0.0


def _position(raw: gzip.GzipFile | BinaryIO) -> int:
    """Bytes of the file itself read so far (for a gzip file, compressed bytes)."""
    source = raw.fileobj if isinstance(raw, gzip.GzipFile) else raw
    tell = getattr(source, "tell", None)
    return int(tell()) if callable(tell) else 0


def _line_blocks(file: Path, meter: InputMeter | None = None) -> Iterator[pa.Buffer]:
    """The data lines of a CSV file (its header skipped) in blocks of whole lines,
    as Arrow buffers over the bytes read (no copy).

    Python reads and decompresses; pyarrow only parses bytes already in memory. A
    pyarrow stream over a Python file object reads it from a pyarrow thread, and
    if the reader is still open when the interpreter exits (a data error leaves it
    in a traceback) that thread calls into a finalizing interpreter and the
    process aborts ("terminate called without an active exception").
    """
    try:
        with _open_binary(file) as raw:
            raw.readline()
            tail = b""
            while block := raw.read(_CSV_BLOCK_BYTES):
                data = tail + block
                cut = data.rfind(b"\n") + 1
                tail = data[cut:]
                if meter is not None:
                    meter.advance(file, _position(raw))
                if cut:
                    yield pa.py_buffer(data).slice(0, cut)
            if tail:
                yield pa.py_buffer(tail)
    except _GZIP_ERRORS as exc:
        raise _gzip_problem(file, exc) from exc


def _tardis_batches(
    files: list[Path], columns: tuple[str, ...], meter: InputMeter | None
) -> Iterator[tuple[Path, int, pa.RecordBatch]]:
    """(file, line of the first row, rows) of each block of every file in turn."""
    parse = pacsv.ParseOptions(ignore_empty_lines=False)  # one row per line: exact lines
    convert = pacsv.ConvertOptions(
        column_types={c: _CSV_TYPES[c] for c in columns},
        include_columns=list(columns),
        true_values=["true", "True", "1"],
        false_values=["false", "False", "0"],
    )
    for file in files:
        read = pacsv.ReadOptions(
            column_names=_csv_header(file), use_threads=False, block_size=_CSV_BLOCK_BYTES
        )
        line = 2  # the header is line 1
        for block in _line_blocks(file, meter):
            try:
                table = pacsv.read_csv(
                    pa.BufferReader(block), read_options=read, parse_options=parse,
                    convert_options=convert,
                )  # fmt: skip
            except (pa.ArrowInvalid, KeyError) as exc:
                last = line + max(block.to_pybytes().count(b"\n"), 1) - 1
                raise MarketFormatError(
                    f"file {file} lines {line}..{last}: not a Tardis CSV of columns "
                    f"{columns}: {exc}"
                ) from exc
            if table.num_rows:
                yield file, line, table.combine_chunks().to_batches()[0]
            line += table.num_rows


def _ints(batch: pa.RecordBatch, name: str, file: Path, first_line: int) -> np.ndarray:
    column = batch.column(name)
    if column.null_count:
        empty = int(np.flatnonzero(~_bits(column.buffers()[0], column.offset, len(column)))[0])
        raise MarketFormatError(
            f"file {file} line {first_line + empty}: column {name} is empty "
            f"({column.null_count} empty values in the lines from {first_line})"
        )
    return _to_numpy(column, np.int64)


def _tardis_stream(
    files: list[Path],
    is_book: bool,
    filt: _SymbolFilter,
    sources: tuple[Source, ...],
    meter: InputMeter | None = None,
) -> Iterator[tuple[MarketChunk, np.ndarray]]:
    """(chunk, merge key) of one file kind; the key is the running max of ts_local, so
    the merge keeps each file's own row order even where its timestamps go backwards
    (the validator reports those rows)."""
    columns = _BOOK_COLUMNS if is_book else _TRADE_COLUMNS
    index_of = {Path(s.path): i for i, s in enumerate(sources)}
    carry = np.iinfo(np.int64).min
    for file, line, batch in _tardis_batches(files, columns, meter):
        n = batch.num_rows
        if is_book:
            kind = _ints(batch, "is_snapshot", file, line)
            side = _side_codes(batch.column("side"), _BOOK_SIDES)
            trade_id = np.full(n, NO_TRADE_ID, dtype=np.int64)
        else:
            kind = np.full(n, int(Kind.TRADE))
            side = _side_codes(batch.column("side"), _TRADE_SIDES)
            trade_id = _ints(batch, "id", file, line)
        chunk = MarketChunk(
            "",
            _ints(batch, "local_timestamp", file, line) * _US_TO_NS,
            _ints(batch, "timestamp", file, line) * _US_TO_NS,
            kind.astype(np.int8),
            side,
            _floats(batch, "price"),
            _floats(batch, "amount"),
            trade_id,
            origin=origins(index_of[file], np.arange(line, line + n)),
            sources=sources,
        )
        keep = filt.mask(batch.column("symbol"), file)
        if keep is not None:
            chunk = chunk.take(keep)
        if not len(chunk):
            continue
        key = np.maximum.accumulate(np.concatenate(([carry], chunk.ts_local)))[1:]
        carry = int(key[-1])
        yield chunk, key


def _merge(
    book: Iterator[tuple[MarketChunk, np.ndarray]],
    trades: Iterator[tuple[MarketChunk, np.ndarray]],
) -> Iterator[MarketChunk]:
    """Merges two keyed streams by key; on equal keys book rows come first.

    Only the rows that no unread row can precede are emitted: book rows with key <=
    the last buffered trade key, trades with key < the last buffered book key. One
    buffer always empties, so each step reads at most one new chunk per stream.
    """
    b = next(book, None)
    t = next(trades, None)
    while b is not None and t is not None:
        (bc, bk), (tc, tk) = b, t
        nb = int(np.searchsorted(bk, tk[-1], side="right"))
        nt = int(np.searchsorted(tk, bk[-1], side="left"))
        keys = np.concatenate((bk[:nb], tk[:nt]))
        order = np.argsort(keys, kind="stable")  # stable: book rows were put first
        yield concat([bc.take(slice(0, nb)), tc.take(slice(0, nt))]).take(order)
        b = (bc.take(slice(nb, None)), bk[nb:]) if nb < len(bc) else next(book, None)
        t = (tc.take(slice(nt, None)), tk[nt:]) if nt < len(tc) else next(trades, None)
    rest, stream = (b, book) if b is not None else (t, trades)
    while rest is not None:
        yield rest[0]
        rest = next(stream, None)


def read_tardis(
    source: str | Path | Sequence[str | Path],
    symbol: str | None = None,
    chunk_rows: int = DEFAULT_CHUNK_ROWS,
    meter: InputMeter | None = None,
) -> Iterator[MarketChunk]:
    """Tardis.dev `incremental_book_L2` + `trades` CSV (plain or .gz) as one stream.

    `source` is a directory or a list of files; a file's header says which kind it
    is, and several files of one kind are read in name order (e.g. one per day).
    Timestamps are microseconds: `local_timestamp` becomes ts_local, `timestamp`
    ts_exch. `is_snapshot=true` rows are SNAPSHOT rows (a run of them, which Tardis
    also emits mid-file after a reconnect, replaces the book); amount 0 removes a
    level; a trade's `side` is the aggressor. Trade ids must be integers (true of
    the derivatives venues we trade). With several symbols in the files, `symbol`
    picks one. Every row keeps its file and line, for error messages. `meter`, if
    given, follows how much of the files is read.
    """
    book_files, trade_files = _tardis_files(source)
    if meter is not None:
        meter.expect([*book_files, *trade_files])
    sources = tuple(Source(str(file)) for file in (*book_files, *trade_files))
    filt = _SymbolFilter(symbol)
    book = _tardis_stream(book_files, True, filt, sources, meter)
    trades = _tardis_stream(trade_files, False, filt, sources, meter)
    rows = 0
    for chunk in rechunk(_merge(book, trades), chunk_rows):
        rows += len(chunk)
        yield replace(chunk, symbol=str(filt.symbol))
    if rows == 0:
        raise MarketFormatError(
            f"{source}: no rows" + (f" for symbol {symbol!r}" if symbol else "")
        )


# --- Bybit ob500 history -----------------------------------------------------------------


def _open_text(path: Path) -> IO[str]:
    """The text of a Bybit file: plain, .gz, or a .zip holding one file (as Bybit ships)."""
    if path.name.endswith(".gz"):
        return gzip.open(path, "rt", encoding="utf-8")
    if path.name.endswith(".zip"):
        archive = zipfile.ZipFile(path)
        names = [n for n in archive.namelist() if not n.endswith("/")]
        if len(names) != 1:
            raise MarketFormatError(f"{path}: zip must hold exactly one file, holds {names}")
        return io.TextIOWrapper(archive.open(names[0]), encoding="utf-8")
    return open(path, encoding="utf-8")


class _Rows:
    """Growing column lists of one output chunk (strings parsed by numpy at flush)."""

    def __init__(self, source: Source) -> None:
        self.source = source
        self.ts: list[int] = []
        self.kind: list[int] = []
        self.side: list[int] = []
        self.price: list[str] = []
        self.qty: list[str] = []
        self.line: list[int] = []

    def __len__(self) -> int:
        return len(self.ts)

    def add(self, line: int, ts: int, kind: int, side: int, levels: list[list[str]]) -> None:
        n = len(levels)
        self.line.extend([line] * n)
        self.ts.extend([ts] * n)
        self.kind.extend([kind] * n)
        self.side.extend([side] * n)
        self.price.extend([lv[0] for lv in levels])
        self.qty.extend([lv[1] for lv in levels])

    def flush(self, symbol: str) -> MarketChunk:
        ts = np.array(self.ts, dtype=np.int64)
        chunk = MarketChunk(
            symbol,
            ts,
            ts.copy(),
            np.array(self.kind, dtype=np.int8),
            np.array(self.side, dtype=np.int8),
            self._numbers(self.price, "price"),
            self._numbers(self.qty, "size"),
            np.full(len(ts), NO_TRADE_ID, dtype=np.int64),
            origin=origins(0, np.array(self.line, dtype=np.int64)),
            sources=(self.source,),
        )
        self.__init__(self.source)  # type: ignore[misc]
        return chunk

    def _numbers(self, texts: list[str], what: str) -> np.ndarray:
        try:
            return np.array(texts, dtype=np.float64)
        except ValueError:
            i = next(i for i, text in enumerate(texts) if not _is_number(text))
            raise MarketFormatError(
                f"file {self.source.path} line {self.line[i]}: {what} {texts[i]!r} is not a number"
            ) from None


def _is_number(text: str) -> bool:
    try:
        float(text)
    except (TypeError, ValueError):
        return False
    return True


def _ob500_message(path: Path, lineno: int, line: str) -> tuple[str, int, int, dict]:
    """(symbol, kind, ts ns, data) of one JSON line."""
    try:
        msg = json.loads(line)
        kind = {"snapshot": Kind.SNAPSHOT, "delta": Kind.DELTA}[msg["type"]]
        data = msg["data"]
        return str(data["s"]), int(kind), int(msg["ts"]) * _MS_TO_NS, data
    except (json.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
        raise MarketFormatError(
            f"file {path} line {lineno}: not a Bybit orderbook message "
            f"({type(exc).__name__}: {exc})"
        ) from exc


def read_bybit_ob500(
    path: str | Path, chunk_rows: int = DEFAULT_CHUNK_ROWS, symbol: str | None = None
) -> Iterator[MarketChunk]:
    """Bybit's historical order book file (`*_ob500.data`, or that file .gz / .zip'ed).

    JSON lines `{"topic": "orderbook.500.SYM", "type": "snapshot"|"delta", "ts": ms,
    "data": {"s", "b": [[px, sz], ..], "a": [..], "u", "seq"}, "cts": ms}`. A snapshot
    replaces the book; size "0" deletes a level. Rows of one message: bids, then asks.
    The file carries no receive time, so ts_local = ts_exch = `ts` (the time Bybit's
    system published the message; `cts`, the matching engine's time, is not used).
    """
    file = Path(path)
    if not file.exists():
        raise FileNotFoundError(f"market data not found: {file}")
    rows = _Rows(Source(str(file)))
    name = symbol
    try:
        with _open_text(file) as lines:
            for lineno, line in enumerate(lines, 1):
                if not line.strip():
                    continue
                sym, kind, ts, data = _ob500_message(file, lineno, line)
                if name is None:
                    name = sym
                elif sym != name:
                    raise MarketFormatError(
                        f"file {file} line {lineno}: symbol {sym!r}, expected {name!r}"
                    )
                rows.add(lineno, ts, kind, 1, data.get("b") or [])
                rows.add(lineno, ts, kind, -1, data.get("a") or [])
                if len(rows) >= chunk_rows:
                    yield from rechunk([rows.flush(name)], chunk_rows)
    except _ARCHIVE_ERRORS as exc:
        raise _gzip_problem(file, exc) from exc
    if len(rows):
        yield from rechunk([rows.flush(str(name))], chunk_rows)


# --- format detection ---------------------------------------------------------------------


def _is_bybit(path: Path) -> bool:
    return any(path.name.endswith(s) for s in (".data", ".data.zip", ".data.gz"))


def _is_tardis_csv(path: Path) -> bool:
    return path.name.endswith((".csv", ".csv.gz"))


def detect_format(path: str | Path) -> Literal["parquet", "tardis", "bybit"]:
    """The reader for `path`, from its name (or the names of a directory's files)."""
    p = Path(path)
    if not p.exists():
        raise FileNotFoundError(f"market data not found: {p}")
    names = sorted(p.iterdir()) if p.is_dir() else [p]
    if any(_is_tardis_csv(f) for f in names):
        return "tardis"
    if any(f.suffix == ".parquet" for f in names):
        return "parquet"
    if not p.is_dir() and _is_bybit(p):
        return "bybit"
    raise MarketFormatError(
        f"{p}: cannot tell the format (expected a Tardis CSV directory, *.parquet, or a Bybit "
        "*_ob500.data[.zip|.gz] file); pass it with --format tardis|parquet|bybit (data.format)"
    )


def open_market(
    path: str | Path,
    fmt: Format = "auto",
    chunk_rows: int = DEFAULT_CHUNK_ROWS,
    validation: ValidationConfig | None = None,
    symbol: str | None = None,
    meter: InputMeter | None = None,
) -> Iterator[MarketChunk]:
    """Replay-ordered chunks of any supported source, validated when `validation` is given;
    `meter` follows how much of a Tardis CSV source is read (the other readers ignore it).

    To read the skip counts of the validation, wrap the unvalidated stream yourself:
    `v = Validator(cfg); for chunk in v.validate(open_market(path)): ...; v.skipped`.
    """
    kind = detect_format(path) if fmt == "auto" else fmt
    chunks: Iterator[MarketChunk]
    if kind == "parquet":
        chunks = read_parquet(path, chunk_rows, symbol)
    elif kind == "tardis":
        chunks = read_tardis(path, symbol, chunk_rows, meter)
    elif kind == "bybit":
        chunks = read_bybit_ob500(path, chunk_rows, symbol)
    else:
        raise ValueError(f"unknown market data format {fmt!r}")
    log.info("market_open", path=str(path), format=kind, chunk_rows=chunk_rows)
    return Validator(validation).validate(chunks) if validation is not None else chunks
