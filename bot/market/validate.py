"""Streaming checks of market-event chunks, with state carried across chunk boundaries.

`Validator.check(chunk)` looks at one chunk at a time and remembers what it needs
from the past (last timestamp, the price levels of the book, the open message), so
a 24 h file is checked with bounded memory. Every check is vectorised with numpy,
the crossed-book check too: the replay walks each book row once, in the sim loop,
and a second Python walk here cost a third of a replay.

A *message* is a run of rows sharing one `ts_local`: one venue message updates
several levels and the book may look crossed half-way through it, so the book is
checked only when `ts_local` changes. The validator therefore holds back the
rows of the last (possibly unfinished) message of each chunk and emits them with
the next chunk (or from `finish()`); consumers never see a message split across
two validated chunks.

On `on_error="raise"` a violation raises a typed `MarketDataError` naming the
file and line of the row (its global row index for rows of no file), its ts, the
column and the value (within one chunk the row checks run before the book check,
so a bad value may be reported before a crossed book a few rows earlier).
On `on_error="skip"` bad rows are dropped, counted per kind in `.skipped` and
logged; a gap drops nothing (the rows after it are fine, the data is just
missing) and is only counted; a message that would cross the book is dropped
whole and the book is rolled back to its state before that message.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field, replace
from typing import ClassVar, Final

import numpy as np
import structlog

from bot.config import ValidationConfig
from bot.market.schema import COLUMNS, Kind, MarketChunk, concat
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
# In skip mode a crossed message changes the book for the rows after it, so the
# check restarts behind it; it restarts on this many rows, doubling while clean, so
# that a file with many crossed messages costs no more than one with a few.
_RESTART_ROWS: Final = 64


# --- errors ------------------------------------------------------------------------


class MarketDataError(Exception):
    """Market data that cannot be replayed as it is."""


class MarketFormatError(MarketDataError):
    """A file whose layout is not what its format promises (columns, JSON, metadata)."""


class RowError(MarketDataError):
    """One row (or the message it belongs to) violates a rule of the event format.

    `where` is "file PATH line N" for rows read from a file; `row` is the row's
    index in the replay stream (which merges files), the only place of a row of
    generated data.
    """

    key: ClassVar[str] = "row"
    reason: ClassVar[str] = "bad row"

    def __init__(
        self,
        row: int,
        ts_ns: int,
        column: str,
        value: object,
        detail: str = "",
        where: str | None = None,
    ) -> None:
        self.row = row
        self.ts_ns = ts_ns
        self.column = column
        self.value = value
        self.detail = detail
        self.where = where or f"row {row} of the stream"
        extra = f" ({detail})" if detail else ""
        super().__init__(
            f"{self.where}: {self.reason}: column {column} = {value!r}{extra}; "
            f"ts_local {ts_ns} ({iso_utc(ts_ns)})"
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


def _kind_name(kind: int) -> str:
    return f"{Kind(kind).name.lower()} row" if kind in Kind._value2member_map_ else f"kind {kind}"


# --- the crossed-book check (vectorised) --------------------------------------------------
# Whether a book is crossed depends only on which levels hold a size, not on the sizes,
# so the book is two sorted arrays of price keys. For a run of complete messages, the
# best bid after each message is the highest key among the levels alive then: every
# row that sets a level opens an interval of messages during which it stands, closed
# by the next row of that level or by the next snapshot; the best bid per message is
# a max over covering intervals, answered for all messages at once (`_cover_max`).


def _cover_max(start: np.ndarray, end: np.ndarray, value: np.ndarray, points: int) -> np.ndarray:
    """For each point 0..points-1, the max `value` over the intervals [start, end) that
    cover it (INT64_MIN where none does).

    Blocks [i, i + 2**j) at every level j: an interval is the union of two blocks of
    the level below its length (they overlap), so it writes two cells; pushing each
    level down onto the two halves of its blocks leaves the answer at level 0. Two
    scatter-max calls and one pass per level, whatever the number of intervals.
    """
    keep = start < end
    start, end, value = start[keep], end[keep], value[keep]
    table = np.full((1, points), _INT64_MIN, dtype=np.int64)
    if not len(start):
        return table[0]
    level = np.frexp((end - start).astype(np.float64))[1] - 1  # floor(log2(length))
    table = np.full((int(level.max()) + 1, points), _INT64_MIN, dtype=np.int64)
    np.maximum.at(table, (level, start), value)
    np.maximum.at(table, (level, end - (1 << level)), value)
    for j in range(len(table) - 1, 0, -1):
        half = 1 << (j - 1)
        below = table[j - 1]
        np.maximum(below, table[j], out=below)
        np.maximum(below[half:], table[j][: points - half], out=below[half:])
    return table[0]


@dataclass(frozen=True, slots=True)
class _Window:
    """Book rows of whole messages: keys, live (size > 0), side, and per row its message
    (0-based, counted in this window) and whether it empties the book first (the first
    row of a run of snapshot rows)."""

    keys: np.ndarray
    live: np.ndarray
    side: np.ndarray
    message: np.ndarray
    clears: np.ndarray  # positions of the rows that empty the book
    messages: int

    def rows(self, start: int, stop: int) -> _Window:
        message = self.message[start:stop] - (self.message[start] if stop > start else 0)
        clears = self.clears[(self.clears >= start) & (self.clears < stop)] - start
        count = int(message[-1]) + 1 if len(message) else 0
        return _Window(
            self.keys[start:stop], self.live[start:stop], self.side[start:stop], message,
            clears, count,
        )  # fmt: skip


@dataclass(frozen=True, slots=True)
class _SideRows:
    """One side's rows of a window, grouped by level: signed keys (asks negated, so
    that the best key of either side is the max), positions in the window, live."""

    keys: np.ndarray
    pos: np.ndarray
    live: np.ndarray

    @classmethod
    def of(cls, window: _Window, side: int) -> _SideRows:
        pos = np.flatnonzero(window.side == side)
        keys = window.keys[pos] * side
        order = _stable_order(keys)  # by level, then row order
        return cls(keys[order], pos[order], window.live[pos[order]])


def _stable_order(keys: np.ndarray) -> np.ndarray:
    """`np.argsort(keys, kind="stable")`, by radix sort when the keys span less than
    2**16 (a chunk's price levels nearly always do): numpy radix-sorts only integers of
    16 bits or fewer and sorts int64 by timsort, several times slower on 100 k keys."""
    if len(keys) and int(keys.max()) - int(keys.min()) < 1 << 16:
        return np.argsort((keys - keys.min()).astype(np.uint16), kind="stable")
    return np.argsort(keys, kind="stable")


def _sides(window: _Window) -> tuple[_SideRows, _SideRows]:
    return _SideRows.of(window, 1), _SideRows.of(window, -1)


def _best_per_message(window: _Window, rows: _SideRows, carried: np.ndarray) -> np.ndarray:
    """The best signed key of one side after each message of `window` (INT64_MIN: no
    level), given `carried`, the side's signed live keys before the window."""
    n = len(window.keys)
    keys, pos, live = rows.keys, rows.pos, rows.live
    # the row that replaces each row's level: the level's next row or the next snapshot
    following = np.full(len(pos), n, dtype=np.int64)
    same = keys[1:] == keys[:-1]
    following[:-1][same] = pos[1:][same]
    clears = np.append(window.clears, n)
    following = np.minimum(following, clears[np.searchsorted(window.clears, pos, side="right")])
    message_at = np.append(window.message, window.messages)  # position n: never replaced
    # a level carried in stands until its first row here, or the first snapshot
    first = np.searchsorted(keys, carried)
    present = first < len(keys)
    present[present] = keys[first[present]] == carried[present]
    first_row = pos[np.minimum(first, len(pos) - 1)] if len(pos) else first
    carried_until = np.minimum(np.where(present, first_row, n), clears[0])
    return _cover_max(
        np.concatenate((window.message[pos][live], np.zeros(len(carried), np.int64))),
        np.concatenate((message_at[following][live], message_at[carried_until])),
        np.concatenate((keys[live], carried)),
        window.messages,
    )


def _after(levels: np.ndarray, rows: _SideRows, since: int) -> np.ndarray:
    """The sorted signed live keys of a side after its rows at positions >= `since`."""
    later = rows.pos >= since
    keys, live = rows.keys[later], rows.live[later]
    if len(keys) == 0:
        return levels
    last = np.append(keys[1:] != keys[:-1], True)  # the last row of each level wins
    touched, alive = keys[last], live[last]
    at = np.searchsorted(touched, levels)
    hit = at < len(touched)
    hit[hit] = touched[at[hit]] == levels[hit]
    return np.sort(np.concatenate((levels[~hit], touched[alive])))


@dataclass(slots=True)
class _Levels:
    """The signed price keys of the levels holding a size, per side, sorted: bids as
    they are, asks negated."""

    bids: np.ndarray = field(default_factory=lambda: np.empty(0, np.int64))
    neg_asks: np.ndarray = field(default_factory=lambda: np.empty(0, np.int64))

    def crossed(
        self, window: _Window, sides: tuple[_SideRows, _SideRows]
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(crossed?, best bid, best ask) per message of `window`, in keys."""
        bid = _best_per_message(window, sides[0], self.bids)
        neg_ask = _best_per_message(window, sides[1], self.neg_asks)
        both = (bid != _INT64_MIN) & (neg_ask != _INT64_MIN)
        return both & (bid >= -neg_ask), bid, -neg_ask

    def apply(self, window: _Window, sides: tuple[_SideRows, _SideRows]) -> None:
        """The levels after every row of `window`."""
        since = 0
        if len(window.clears):
            since = int(window.clears[-1])
            self.bids = self.neg_asks = np.empty(0, np.int64)
        self.bids = _after(self.bids, sides[0], since)
        self.neg_asks = _after(self.neg_asks, sides[1], since)

    def rescale(self, factor: int) -> None:
        """Keys times `factor` (more price decimals): the same book on a finer grid."""
        self.bids = self.bids * factor
        self.neg_asks = self.neg_asks * factor


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
        self._levels = _Levels()
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
            chunk = concat([self._held[0], chunk])
            rows = np.concatenate((self._held[1], rows))
            self._held = None
        if len(chunk) == 0:
            return chunk
        # hold back the last message: it may continue in the next chunk
        # Rows are in ts order here (backwards rows were dropped or raised), so the
        # last message starts at the first row carrying the last ts.
        ts = chunk.ts_local
        cut = int(np.searchsorted(ts, ts[-1], side="left"))
        self._held = (chunk.take(slice(cut, None)), rows[cut:])
        return self._book_checks(chunk.take(slice(0, cut)), rows[:cut])

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
        self._count(BadValue, chunk, rows, np.flatnonzero(bad_value))
        self._count(TimestampBackwards, chunk, rows, np.flatnonzero(back))
        self._count(DataGap, chunk, rows, np.flatnonzero(ok)[gaps])
        if ok.all():
            return chunk, rows
        return chunk.take(ok), rows[ok]

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
        row, where = int(rows[i]), chunk.where(i)
        if code[i]:
            column = _CODE_COLUMN[int(code[i])]
            value = getattr(chunk, column)[i].item()
            raise BadValue(row, ts, column, value, _kind_name(int(chunk.kind[i])), where)
        if back[i]:
            detail = f"an earlier row has ts_local {int(running[i])}"
            raise TimestampBackwards(row, ts, "ts_local", ts, detail, where)
        gap_ms = (ts - int(gap_prev[0])) / 1e6
        raise DataGap(row, ts, "ts_local", ts, f"{gap_ms:.0f} ms since the previous row", where)

    # --- crossed book (vectorised, at message boundaries) -----------------------------------

    def _book_checks(self, chunk: MarketChunk, rows: np.ndarray) -> MarketChunk:
        """Applies complete messages to the levels, checking the book after each one.

        Only book rows count: a message of trades alone cannot cross a book that was
        not crossed before it. A crossed message raises, or in skip mode is dropped
        whole (its trades too) and the check goes on from the book before it.
        """
        at = np.flatnonzero(chunk.kind != Kind.TRADE)
        if len(at) == 0:
            return chunk
        window = self._window(chunk, at)
        dropped: list[int] = []  # ts_local of the dropped messages
        start, size = 0, len(at)
        while start < len(at):
            stop = _message_end(window, min(start + size, len(at)) - 1)
            part = window.rows(start, stop)
            sides = _sides(part)
            crossed, bid, ask = self._levels.crossed(part, sides)
            hit = np.flatnonzero(crossed)
            if not len(hit):
                self._levels.apply(part, sides)
                start, size = stop, size * 2
                continue
            message = int(hit[0])
            first = int(np.searchsorted(part.message, message, side="left"))
            before = part.rows(0, first)
            self._levels.apply(before, _sides(before))
            ts = int(chunk.ts_local[at[start + first]])
            if not self._skip:
                raise self._crossed(chunk, rows, ts, (int(bid[message]), int(ask[message])))
            dropped.append(ts)
            start += int(np.searchsorted(part.message, message, side="right"))
            size = _RESTART_ROWS
        if not dropped:
            return chunk
        drop = np.isin(chunk.ts_local, dropped)
        self._count(CrossedBook, chunk, rows, np.flatnonzero(drop))  # one log line per chunk
        return chunk.take(~drop)

    def _window(self, chunk: MarketChunk, at: np.ndarray) -> _Window:
        """The book rows `at` of `chunk` (whole messages) as a `_Window`."""
        ts = chunk.ts_local[at]
        starts = np.ones(len(at), dtype=bool)
        starts[1:] = ts[1:] != ts[:-1]
        message = np.cumsum(starts) - 1
        snapshot = chunk.kind[at] == Kind.SNAPSHOT
        # a run of snapshot rows replaces the book; a delta in between ends the run
        after_snapshot = np.concatenate(([False], snapshot[:-1])) & ~starts
        return _Window(
            self._price_keys(chunk.price[at]), chunk.qty[at] > 0, chunk.side[at], message,
            np.flatnonzero(snapshot & ~after_snapshot), int(message[-1]) + 1,
        )  # fmt: skip

    def _crossed(
        self, chunk: MarketChunk, rows: np.ndarray, ts: int, touch: tuple[int, int]
    ) -> CrossedBook:
        span = np.flatnonzero(chunk.ts_local == ts)
        first, last = int(span[0]), int(span[-1])
        bid, ask = (key / 10**self._decimals for key in touch)
        end = chunk.where(last) or f"row {int(rows[last])}"
        detail = f"best bid {bid:.10g} >= best ask {ask:.10g}; the message runs to {end}"
        return CrossedBook(int(rows[first]), ts, "price", (bid, ask), detail, chunk.where(first))

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
            self._levels.rescale(10 ** (decimals - self._decimals))
            self._decimals = decimals
        return keys.astype(np.int64)

    def _count(
        self, error: type[RowError], chunk: MarketChunk, rows: np.ndarray, flagged: np.ndarray
    ) -> None:
        if len(flagged) == 0:
            return
        self.skipped[error.key] = self.skipped.get(error.key, 0) + len(flagged)
        first = int(flagged[0])
        log.warning(
            "market_rows_flagged",
            kind=error.key,
            rows=len(flagged),
            first_row=int(rows[first]),
            first_at=chunk.where(first),
            dropped=error is not DataGap,
            total=self.skipped[error.key],
        )


def _message_end(window: _Window, row: int) -> int:
    """The position after the last row of the message holding `row`."""
    return int(np.searchsorted(window.message, window.message[row], side="right"))


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
