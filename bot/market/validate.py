"""Streaming checks of market-event chunks, with state carried across chunk boundaries.

`Validator.check(chunk)` looks at one chunk at a time and remembers what it needs
from the past (last timestamp, the L2 book, the open message), so a 24 h file is
checked with bounded memory. The row-wise checks (values, timestamp order, gaps)
are vectorised with numpy; only the crossed-book check walks book rows one by
one, because it must apply them to an L2 book.

A *message* is a run of rows sharing one `ts_local`: one venue message updates
several levels and the book may look crossed half-way through it, so the book is
checked only when `ts_local` changes. The validator therefore holds back the
rows of the last (possibly unfinished) message of each chunk and emits them with
the next chunk (or from `finish()`); consumers never see a message split across
two validated chunks.

On `on_error="raise"` a violation raises a typed `MarketDataError` naming the
global row index, its ts, the column and the value (within one chunk the row
checks run before the book check, so a bad value may be reported before a
crossed book a few rows earlier).
On `on_error="skip"` bad rows are dropped, counted per kind in `.skipped` and
logged; a gap drops nothing (the rows after it are fine, the data is just
missing) and is only counted; a message that would cross the book is dropped
whole and the book is rolled back to its state before that message.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field, replace
from typing import ClassVar

import numpy as np
import structlog

from bot.config import ValidationConfig
from bot.market.book import NO_ASK, NO_BID, L2Book
from bot.market.schema import COLUMNS, Kind, MarketChunk
from bot.runtime.clock import iso_utc

log = structlog.get_logger(__name__)

# Prices become integer book keys in units of 10**-decimals, with the fewest decimals
# that put every price seen so far on the grid (1 for BTCUSDT's 0.1 tick): dense
# keys keep the book's walk to the next best level short. More decimals appearing
# later rescale the book; MAX_DECIMALS bounds the grid for any venue tick.
MAX_DECIMALS = 10
# in keys, plus 1e-12 relative: float error of a decimal price, far below half a key
_ON_GRID = 1e-6
_INT64_MIN = np.iinfo(np.int64).min
_KINDS = np.array([k.value for k in Kind], dtype=np.int64)
_DELTA = int(Kind.DELTA)


# --- errors ------------------------------------------------------------------------


class MarketDataError(Exception):
    """Market data that cannot be replayed as it is."""


class MarketFormatError(MarketDataError):
    """A file whose layout is not what its format promises (columns, JSON, metadata)."""


class RowError(MarketDataError):
    """One row (or the message it belongs to) violates a rule of the event format."""

    key: ClassVar[str] = "row"
    reason: ClassVar[str] = "bad row"

    def __init__(self, row: int, ts_ns: int, column: str, value: object, detail: str = "") -> None:
        self.row = row
        self.ts_ns = ts_ns
        self.column = column
        self.value = value
        self.detail = detail
        extra = f" ({detail})" if detail else ""
        super().__init__(
            f"{self.reason} at row {row} ts_local {ts_ns} ({iso_utc(ts_ns)}): "
            f"column {column} = {value!r}{extra}"
        )


class TimestampBackwards(RowError):
    key = "ts_backwards"
    reason = "ts_local went backwards (rows must be in replay order)"


class BadValue(RowError):
    key = "bad_value"
    reason = "bad value"


class DataGap(RowError):
    key = "gap"
    reason = "gap in the data over max_gap_ms"


class CrossedBook(RowError):
    key = "crossed_book"
    reason = "crossed book after a message (best bid >= best ask)"


# --- vectorised row checks -----------------------------------------------------------


def _value_problems(chunk: MarketChunk) -> tuple[np.ndarray, np.ndarray]:
    """(bad mask, code per row): 0 ok, 1 kind, 2 side, 3 price, 4 qty."""
    kind = chunk.kind
    price = chunk.price
    qty = chunk.qty
    is_trade = kind == Kind.TRADE
    bad_kind = ~np.isin(kind, _KINDS)
    bad_side = (chunk.side != 1) & (chunk.side != -1)
    # NaN fails every comparison, so `not (x > 0)` catches NaN and non-positive at once.
    bad_price = ~(price > 0) | np.isinf(price)
    bad_qty = np.where(is_trade, ~(qty > 0), ~(qty >= 0)) | np.isinf(qty)
    code = np.zeros(len(chunk), dtype=np.int8)
    code[bad_qty] = 4
    code[bad_price] = 3
    code[bad_side] = 2
    code[bad_kind] = 1
    return code != 0, code


_CODE_COLUMN = {1: "kind", 2: "side", 3: "price", 4: "qty"}


def _backwards(ts: np.ndarray, ok: np.ndarray, last_ts: int) -> tuple[np.ndarray, np.ndarray]:
    """(mask, running max): rows whose ts_local is below the max of the earlier good rows."""
    masked = np.where(ok, ts, _INT64_MIN)
    running = np.maximum.accumulate(np.concatenate(([last_ts], masked)))[:-1]
    return ok & (ts < running), running


def _take(chunk: MarketChunk, keep: np.ndarray | slice) -> MarketChunk:
    return MarketChunk(chunk.symbol, *(getattr(chunk, name)[keep] for name in COLUMNS))


def _concat(a: MarketChunk, b: MarketChunk) -> MarketChunk:
    return MarketChunk(b.symbol, *(np.concatenate((getattr(a, n), getattr(b, n))) for n in COLUMNS))


# --- the crossed-book check -------------------------------------------------------------


@dataclass(slots=True)
class _BookCheck:
    """Applies book rows message by message; can undo the last message in skip mode."""

    book: L2Book = field(default_factory=L2Book)
    # (side, key, previous qty) of every level the open message touched, for rollback
    undo: list[tuple[int, int, int]] = field(default_factory=list)
    saved: tuple[dict[int, int], dict[int, int], int, int] | None = None
    in_snapshot: bool = False

    def begin_message(self) -> None:
        self.undo.clear()
        self.saved = None
        self.in_snapshot = False

    def apply(self, kind: int, side: int, key: int, lots: int) -> None:
        book = self.book
        if kind == Kind.SNAPSHOT:
            if not self.in_snapshot:
                # A snapshot replaces the book: keep a copy so skip mode can undo it.
                self.saved = (dict(book.bids), dict(book.asks), book.best_bid, book.best_ask)
                self.in_snapshot = True
                book.clear()
            book.apply_snapshot_level(side, key, lots)
            return
        self.in_snapshot = False
        if self.saved is None:
            self.undo.append((side, key, book.qty_at(side, key)))
        book.apply_delta(side, key, lots)

    def rescale(self, factor: int) -> None:
        """Keys times `factor` (more price decimals): the same book on a finer grid."""
        book = self.book
        book.bids = {px * factor: q for px, q in book.bids.items()}
        book.asks = {px * factor: q for px, q in book.asks.items()}
        if book.has_bid():
            book.best_bid *= factor
        if book.has_ask():
            book.best_ask *= factor
        self.undo = [(side, key * factor, qty) for side, key, qty in self.undo]
        if self.saved is not None:
            bids, asks, best_bid, best_ask = self.saved
            self.saved = (
                {px * factor: q for px, q in bids.items()},
                {px * factor: q for px, q in asks.items()},
                best_bid * factor if best_bid != NO_BID else best_bid,
                best_ask * factor if best_ask != NO_ASK else best_ask,
            )

    def rollback(self) -> None:
        book = self.book
        if self.saved is not None:
            bids, asks, best_bid, best_ask = self.saved
            book.bids, book.asks = bids, asks
            book.best_bid, book.best_ask = best_bid, best_ask
        else:
            for side, key, qty in reversed(self.undo):
                book.apply_delta(side, key, qty)
        self.begin_message()


# --- the validator ------------------------------------------------------------------------


class Validator:
    """Checks a stream of chunks; see the module docstring for the rules."""

    def __init__(self, config: ValidationConfig | None = None) -> None:
        self.config = config or ValidationConfig()
        self.skipped: dict[str, int] = {}
        self._skip = self.config.on_error == "skip"
        self._max_gap_ns = self.config.max_gap_ms * 1_000_000
        self._next_row = 0  # global index of the next input row
        self._last_ts = _INT64_MIN  # ts_local of the last accepted row
        self._book = _BookCheck()
        self._decimals = 0  # book keys are prices in units of 10**-decimals
        self._held: tuple[MarketChunk, np.ndarray] | None = None  # open message + its row ids

    # --- public ---------------------------------------------------------------------

    def validate(self, chunks: Iterable[MarketChunk]) -> Iterator[MarketChunk]:
        for chunk in chunks:
            out = self.check(chunk)
            if len(out):
                yield out
        tail = self.finish()
        if len(tail):
            yield tail

    def check(self, chunk: MarketChunk) -> MarketChunk:
        """The rows of `chunk` (and of the held message before it) that passed, minus
        the rows of its last message, which are held until the next call."""
        rows = np.arange(self._next_row, self._next_row + len(chunk), dtype=np.int64)
        self._next_row += len(chunk)
        chunk, rows = self._row_checks(chunk, rows)
        if self._held is not None:
            chunk = _concat(self._held[0], chunk)
            rows = np.concatenate((self._held[1], rows))
            self._held = None
        if len(chunk) == 0:
            return chunk
        # hold back the last message: it may continue in the next chunk
        # Rows are in ts order here (backwards rows were dropped or raised), so the
        # last message starts at the first row carrying the last ts.
        ts = chunk.ts_local
        cut = int(np.searchsorted(ts, ts[-1], side="left"))
        self._held = (_take(chunk, slice(cut, None)), rows[cut:])
        return self._book_checks(_take(chunk, slice(0, cut)), rows[:cut])

    def finish(self) -> MarketChunk:
        """Check and return the held last message; call once at end of stream."""
        if self._held is None:
            return MarketChunk("", *(np.empty(0) for _ in COLUMNS))
        chunk, rows = self._held
        self._held = None
        return self._book_checks(chunk, rows)

    # --- row checks (vectorised) ---------------------------------------------------------

    def _row_checks(self, chunk: MarketChunk, rows: np.ndarray) -> tuple[MarketChunk, np.ndarray]:
        ts = chunk.ts_local
        bad_value, code = _value_problems(chunk)
        back, running = _backwards(ts, ~bad_value, self._last_ts)
        ok = ~(bad_value | back)
        kept_ts = ts[ok]
        prev = np.concatenate(([self._last_ts], kept_ts[:-1])) if len(kept_ts) else kept_ts
        gaps = (kept_ts - prev > self._max_gap_ns) & (prev != _INT64_MIN)
        if not self._skip:
            self._raise_first(
                chunk, rows, code, (back, running), np.flatnonzero(ok)[gaps], prev[gaps]
            )
        if len(kept_ts):
            self._last_ts = int(kept_ts[-1])
        self._count(BadValue, int(bad_value.sum()), rows[bad_value])
        self._count(TimestampBackwards, int(back.sum()), rows[back])
        self._count(DataGap, int(gaps.sum()), rows[np.flatnonzero(ok)[gaps]])
        if ok.all():
            return chunk, rows
        return _take(chunk, ok), rows[ok]

    def _raise_first(
        self,
        chunk: MarketChunk,
        rows: np.ndarray,
        code: np.ndarray,
        backwards: tuple[np.ndarray, np.ndarray],
        gap_at: np.ndarray,
        gap_prev: np.ndarray,
    ) -> None:
        back, running = backwards
        firsts = []
        if code.any():
            firsts.append(int(np.flatnonzero(code)[0]))
        if back.any():
            firsts.append(int(np.flatnonzero(back)[0]))
        if len(gap_at):
            firsts.append(int(gap_at[0]))
        if not firsts:
            return
        i = min(firsts)
        ts = int(chunk.ts_local[i])
        if code[i]:
            column = _CODE_COLUMN[int(code[i])]
            value = getattr(chunk, column)[i].item()
            raise BadValue(int(rows[i]), ts, column, value, f"kind {int(chunk.kind[i])}")
        if back[i]:
            detail = f"an earlier row has ts_local {int(running[i])}"
            raise TimestampBackwards(int(rows[i]), ts, "ts_local", ts, detail)
        gap_ms = (ts - int(gap_prev[0])) / 1e6
        raise DataGap(int(rows[i]), ts, "ts_local", ts, f"{gap_ms:.0f} ms since the previous row")

    # --- crossed book (row by row, at message boundaries) -----------------------------------

    def _book_checks(self, chunk: MarketChunk, rows: np.ndarray) -> MarketChunk:
        """Applies complete messages to the book, checking it after each one.

        Only book rows are walked: a message of trades alone cannot cross a book that
        was not crossed before it.
        """
        at = np.flatnonzero(chunk.kind != Kind.TRADE)
        if len(at) == 0:
            return chunk
        keys = self._price_keys(chunk.price[at]).tolist()
        # Sizes only matter as zero / non-zero here: any positive qty is one "lot".
        lots = (chunk.qty[at] > 0).astype(np.int64).tolist()
        kinds = chunk.kind[at].tolist()
        sides = chunk.side[at].tolist()
        stamps = chunk.ts_local[at].tolist()
        drop: list[tuple[int, int]] = []  # [start, end) of crossed messages (skip mode)
        check = self._book
        book = check.book
        apply = check.apply
        # the common row, a delta with no snapshot open in its message, is applied
        # here in one call: the undo entry gets the level's previous size from it
        set_level = book.apply_delta
        undo = check.undo
        current = stamps[0]
        for ts, kind, side, key, lot in zip(stamps, kinds, sides, keys, lots, strict=True):
            if ts != current:
                if book.best_bid >= book.best_ask:  # crossed (the sentinels never are)
                    self._end_message(chunk, rows, current, drop)
                else:
                    check.begin_message()
                current = ts
            if kind == _DELTA and check.saved is None:
                undo.append((side, key, set_level(side, key, lot)))
            else:
                apply(kind, side, key, lot)
        self._end_message(chunk, rows, current, drop)
        if not drop:
            return chunk
        keep = np.ones(len(chunk), dtype=bool)
        for lo, hi in drop:
            keep[lo:hi] = False
        self._count(CrossedBook, int((~keep).sum()), rows[~keep])  # one log line per chunk
        return _take(chunk, keep)

    def _price_keys(self, price: np.ndarray) -> np.ndarray:
        """Integer keys of `price`, refining the grid (and rescaling the book) if needed."""
        decimals = self._decimals
        while True:
            scaled = price * 10.0**decimals
            keys = np.rint(scaled)
            off = np.abs(scaled - keys)
            if decimals >= MAX_DECIMALS or bool(np.all(off < _ON_GRID + 1e-12 * np.abs(scaled))):
                break
            decimals += 1
        if decimals != self._decimals:
            self._book.rescale(10 ** (decimals - self._decimals))
            self._decimals = decimals
        return keys.astype(np.int64)

    def _end_message(
        self, chunk: MarketChunk, rows: np.ndarray, ts: int, drop: list[tuple[int, int]]
    ) -> None:
        check = self._book
        if check.book.is_crossed():
            start = int(np.searchsorted(chunk.ts_local, ts, side="left"))
            end = int(np.searchsorted(chunk.ts_local, ts, side="right"))
            bid = check.book.best_bid / 10**self._decimals
            ask = check.book.best_ask / 10**self._decimals
            if not self._skip:
                raise CrossedBook(
                    int(rows[start]),
                    ts,
                    "price",
                    (bid, ask),
                    f"best bid {bid:.10g} >= best ask {ask:.10g}; message rows "
                    f"{rows[start]}..{rows[end - 1]}",
                )
            check.rollback()
            drop.append((start, end))
        check.begin_message()

    def _count(self, error: type[RowError], n: int, rows: np.ndarray) -> None:
        if n == 0:
            return
        self.skipped[error.key] = self.skipped.get(error.key, 0) + n
        log.warning(
            "market_rows_flagged",
            kind=error.key,
            rows=n,
            first_row=int(rows[0]),
            dropped=error is not DataGap,
            total=self.skipped[error.key],
        )


def validate(
    chunks: Iterable[MarketChunk], config: ValidationConfig | None = None
) -> Iterator[MarketChunk]:
    """Validated chunks of `chunks` (a convenience over `Validator(config).validate`)."""
    return Validator(config).validate(chunks)


# --- data-quality figures (for `mmbot market info`) ------------------------------------------


@dataclass(frozen=True, slots=True)
class MarketStats:
    """What a stream holds and how clean its clocks are."""

    symbol: str
    rows: int
    messages: int  # runs of rows sharing one ts_local
    counts: dict[str, int]  # rows per Kind name
    start_ns: int
    end_ns: int
    gap_limit_ms: int
    gaps_over_limit: int
    largest_gap_ms: float
    ts_local_backwards: int  # rows earlier than a previous row in replay order
    ts_exch_inversions: int  # rows whose exchange ts is below an earlier row's
    # rows a skip-mode validator drops (or, for gaps, flags), per error key
    violations: dict[str, int] = field(default_factory=dict)

    @property
    def duration_s(self) -> float:
        return max(self.end_ns - self.start_ns, 0) / 1e9

    @property
    def rows_per_s(self) -> float:
        return self.rows / self.duration_s if self.duration_s > 0 else 0.0

    def to_dict(self) -> dict[str, object]:
        return {
            "symbol": self.symbol,
            "rows": self.rows,
            "messages": self.messages,
            "messages_per_s": round(self.messages / self.duration_s, 3) if self.duration_s else 0.0,
            "counts": dict(self.counts),
            "start_utc": iso_utc(self.start_ns) if self.rows else None,
            "end_utc": iso_utc(self.end_ns) if self.rows else None,
            "duration_s": round(self.duration_s, 6),
            "rows_per_s": round(self.rows_per_s, 3),
            "gap_limit_ms": self.gap_limit_ms,
            "gaps_over_limit": self.gaps_over_limit,
            "largest_gap_ms": round(self.largest_gap_ms, 3),
            "ts_local_backwards": self.ts_local_backwards,
            "ts_exch_inversions": self.ts_exch_inversions,
            "violations": dict(sorted(self.violations.items())),
        }


class StatsScan:
    """Accumulates `MarketStats` chunk by chunk (vectorised, state carried across chunks)."""

    def __init__(self, gap_limit_ms: int = ValidationConfig().max_gap_ms) -> None:
        self.gap_limit_ms = gap_limit_ms
        self._symbol = ""
        self._rows = 0
        self._messages = 0
        self._counts = np.zeros(len(Kind), dtype=np.int64)
        self._start = 0
        self._last_local = _INT64_MIN
        self._max_local = _INT64_MIN
        self._max_exch = _INT64_MIN
        self._gaps = 0
        self._largest_gap = 0
        self._local_back = 0
        self._exch_inv = 0

    def update(self, chunk: MarketChunk) -> None:
        n = len(chunk)
        if n == 0:
            return
        if self._rows == 0:
            self._symbol = chunk.symbol
            self._start = int(chunk.ts_local[0])
        self._rows += n
        kinds = chunk.kind.astype(np.int64)
        known = (kinds >= 0) & (kinds < len(Kind))
        self._counts += np.bincount(kinds[known], minlength=len(Kind))
        local = chunk.ts_local
        steps = np.diff(
            local, prepend=local[0] if self._last_local == _INT64_MIN else self._last_local
        )
        self._messages += int((steps != 0).sum()) + (self._last_local == _INT64_MIN)
        self._gaps += int((steps > self.gap_limit_ms * 1_000_000).sum())
        self._largest_gap = max(self._largest_gap, int(steps.max()))
        self._local_back += int(_below_running_max(local, self._max_local).sum())
        self._exch_inv += int(_below_running_max(chunk.ts_exch, self._max_exch).sum())
        self._last_local = int(local[-1])
        self._max_local = max(self._max_local, int(local.max()))
        self._max_exch = max(self._max_exch, int(chunk.ts_exch.max()))

    def result(self) -> MarketStats:
        return MarketStats(
            symbol=self._symbol,
            rows=self._rows,
            messages=self._messages,
            counts={k.name: int(self._counts[k.value]) for k in Kind},
            start_ns=self._start,
            end_ns=self._max_local if self._rows else 0,
            gap_limit_ms=self.gap_limit_ms,
            gaps_over_limit=self._gaps,
            largest_gap_ms=self._largest_gap / 1e6,
            ts_local_backwards=self._local_back,
            ts_exch_inversions=self._exch_inv,
        )


def _below_running_max(ts: np.ndarray, carry: int) -> np.ndarray:
    running = np.maximum.accumulate(np.concatenate(([carry], ts)))[:-1]
    return ts < running


def describe(chunks: Iterable[MarketChunk], gap_limit_ms: int | None = None) -> MarketStats:
    """Figures of a raw stream plus what a skip-mode validator would drop, in one pass."""
    config = ValidationConfig(
        on_error="skip", **({"max_gap_ms": gap_limit_ms} if gap_limit_ms else {})
    )
    scan = StatsScan(config.max_gap_ms)
    validator = Validator(config)
    for chunk in chunks:
        scan.update(chunk)
        validator.check(chunk)
    validator.finish()
    return replace(scan.result(), violations=dict(validator.skipped))
