"""Position, average entry price, realised/unrealised PnL, fees and rebates.

Exact by construction. Per symbol we keep integers only:

- ``position`` in lots (signed);
- ``cash`` in ticks x lots: the sum of ``-side * px * qty`` over every fill;
- the average entry price in ticks as an exact ratio ``avg_num / avg_den``.

Average-cost accounting, as Bybit and most perpetual venues report it: adding
to a position moves the average price, reducing it realises
``(exit - avg) * qty`` and leaves the average where it was, and a fill that
crosses zero closes the old position and opens the rest at the fill price.
With those rules the realised PnL is always ``cash + position * avg``, so it
never accumulates rounding: it is derived from integers on demand. The
average is a ratio (not ticks) because a reduction after an uneven add leaves
a fractional average; the ratio is kept reduced and resets to an integer every
time the position goes flat or flips.

Decimal appears only at the edge (the public getters), float only in
``PositionSnapshot.row()`` for the journal.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from math import gcd
from typing import Final

import structlog

from bot.model import Instrument, OrderFill

log = structlog.get_logger(__name__)

ZERO: Final = Decimal(0)
# Fill ids remembered for the duplicate check. In the engine a fill reaches the portfolio
# only for an order the registry still remembers (its last RECENT_ORDERS = 10 000
# terminal ones, bot/order_registry.py), and that order's own trade ids refuse a repeat
# first; twice that window covers those orders' fills, partials included. A million ids
# (~250 B each) grew for the whole of a 72 h soak, which fills some 30 k times.
DEFAULT_DEDUP_CAPACITY: Final = 20_000


class PortfolioError(Exception):
    """A fill or a query the portfolio cannot account for."""


class UnknownSymbol(PortfolioError, KeyError):
    def __init__(self, symbol: str, known: Mapping[str, object]) -> None:
        super().__init__(f"unknown symbol {symbol!r}; the portfolio knows {sorted(known)}")

    def __str__(self) -> str:  # KeyError would repr() the message
        return str(self.args[0])


class InvalidFill(PortfolioError):
    """The venue reported a fill that cannot be real (a bug upstream or on the venue)."""


class MissingMark(PortfolioError):
    """A symbol holds a position but no mid was given to mark it."""


@dataclass(frozen=True, slots=True)
class PositionSnapshot:
    """One row of the journal ``positions`` table, exact until ``row()``.

    Field order is the table's column order. ``notional`` is signed
    position x mid; ``avg_price`` is None while flat.
    """

    ts_ns: int
    symbol: str
    position: Decimal
    avg_price: Decimal | None
    mid: Decimal
    notional: Decimal
    realized_pnl: Decimal
    unrealized_pnl: Decimal
    fees: Decimal

    def row(self) -> tuple[int, str, float, float | None, float, float, float, float, float]:
        """Values in the ``positions`` table's column order, floats at the edge."""
        avg = None if self.avg_price is None else float(self.avg_price)
        return (
            self.ts_ns,
            self.symbol,
            float(self.position),
            avg,
            float(self.mid),
            float(self.notional),
            float(self.realized_pnl),
            float(self.unrealized_pnl),
            float(self.fees),
        )


class _Ledger:
    """Mutable integer state of one symbol (internal; never leaves the portfolio)."""

    __slots__ = ("avg_den", "avg_num", "cash", "fees_paid", "position", "rebates")

    def __init__(self) -> None:
        self.position = 0  # lots, signed
        self.cash = 0  # ticks x lots
        self.avg_num = 0  # average entry price in ticks = avg_num / avg_den
        self.avg_den = 1
        self.fees_paid = ZERO  # >= 0, quote currency
        self.rebates = ZERO  # >= 0, quote currency

    def realized_ratio(self) -> tuple[int, int]:
        """Realised PnL in ticks x lots as (numerator, denominator)."""
        return self.cash * self.avg_den + self.position * self.avg_num, self.avg_den


class Portfolio:
    """Positions and PnL of every symbol, updated by fills, idempotent on fill ids.

    A fill is identified by ``(client_order_id, trade_id)``; a duplicate is
    refused and changes nothing. The ids remembered for that are bounded by
    ``dedup_capacity`` (oldest forgotten first; None = unbounded) so a 72 h
    soak keeps flat memory; venues redeliver duplicates within seconds, and the
    engine's order registry refuses fills of orders older than that anyway.
    """

    def __init__(
        self,
        instruments: Mapping[str, Instrument],
        *,
        dedup_capacity: int | None = DEFAULT_DEDUP_CAPACITY,
    ) -> None:
        if dedup_capacity is not None and dedup_capacity <= 0:
            raise ValueError(f"dedup_capacity must be positive or None, got {dedup_capacity}")
        self._instruments = dict(instruments)
        self._ledgers = {symbol: _Ledger() for symbol in self._instruments}
        # quote currency per (tick x lot) and per lot, exact
        self._tick_lot = {s: i.tick_size * i.lot_size for s, i in self._instruments.items()}
        self._seen: set[tuple[str, str]] = set()
        self._seen_order: deque[tuple[str, str]] = deque()  # oldest first, for eviction
        self._dedup_capacity = dedup_capacity

    # --- updates ----------------------------------------------------------------

    def apply_fill(self, fill: OrderFill) -> bool:
        """Book one fill; False (and no change) if this fill was already applied."""
        key = (fill.client_order_id, fill.trade_id)
        if key in self._seen:
            log.info(
                "duplicate_fill_ignored",
                symbol=fill.symbol,
                client_order_id=fill.client_order_id,
                trade_id=fill.trade_id,
            )
            return False
        ledger = self._ledger(fill.symbol)
        qty = fill.qty
        px = fill.px
        if qty <= 0 or px <= 0:
            raise InvalidFill(
                f"fill {fill.client_order_id}/{fill.trade_id} on {fill.symbol}: "
                f"qty {qty} lots and px {px} ticks must both be positive"
            )
        signed = qty if fill.side > 0 else -qty
        old = ledger.position
        new = old + signed
        ledger.cash -= signed * px
        if old == 0 or (old > 0) == (signed > 0):
            self._add(ledger, old, px, qty)
        elif new == 0:
            ledger.avg_num, ledger.avg_den = 0, 1
        elif (new > 0) != (old > 0):
            # crossed zero: the old position closed at px, the rest opened at px
            ledger.avg_num, ledger.avg_den = px, 1
        # else a plain reduction: the average entry price does not move
        ledger.position = new
        fee = fill.fee
        if fee > 0:
            ledger.fees_paid += fee
        elif fee < 0:
            ledger.rebates -= fee
        self._remember(key)
        return True

    def open_position(self, symbol: str, lots: int, px: int) -> None:
        """Start `symbol` at a position held before this run (a restart onto the
        venue's position), entered at `px` ticks: what it earns from here is this run's."""
        ledger = self._ledger(symbol)
        if ledger.position or ledger.cash or (lots and px <= 0):
            raise InvalidFill(
                f"{symbol}: an opening position of {lots} lots at {px} ticks needs a flat "
                "book and a positive price"
            )
        ledger.position, ledger.cash = lots, -lots * px
        ledger.avg_num, ledger.avg_den = (px, 1) if lots else (0, 1)

    @staticmethod
    def _add(ledger: _Ledger, old: int, px: int, qty: int) -> None:
        """Open or add: new average = (avg * |old| + px * qty) / (|old| + qty)."""
        size = abs(old)
        num = ledger.avg_num * size + px * qty * ledger.avg_den
        den = ledger.avg_den * (size + qty)
        g = gcd(num, den)
        ledger.avg_num, ledger.avg_den = num // g, den // g

    def _remember(self, key: tuple[str, str]) -> None:
        self._seen.add(key)
        if self._dedup_capacity is not None:
            order = self._seen_order
            order.append(key)
            if len(order) > self._dedup_capacity:
                self._seen.discard(order.popleft())

    def _ledger(self, symbol: str) -> _Ledger:
        try:
            return self._ledgers[symbol]
        except KeyError:
            raise UnknownSymbol(symbol, self._ledgers) from None

    def _selected(self, symbol: str | None) -> list[tuple[str, _Ledger]]:
        if symbol is None:
            return list(self._ledgers.items())
        return [(symbol, self._ledger(symbol))]

    # --- public getters (Decimal at the edge) ------------------------------------

    def position_lots(self, symbol: str) -> int:
        return self._ledger(symbol).position

    def position(self, symbol: str) -> Decimal:
        """Signed position in base units."""
        return self._ledger(symbol).position * self._instruments[symbol].lot_size

    def avg_px(self, symbol: str) -> Decimal | None:
        """Average entry price in price units; None while flat."""
        ledger = self._ledger(symbol)
        if ledger.position == 0:
            return None
        tick = self._instruments[symbol].tick_size
        return _ratio_to_decimal(ledger.avg_num, ledger.avg_den, tick)

    def realized_pnl(self, symbol: str | None = None) -> Decimal:
        """Realised PnL before fees, quote currency."""
        total = ZERO
        for sym, ledger in self._selected(symbol):
            num, den = ledger.realized_ratio()
            total += _ratio_to_decimal(num, den, self._tick_lot[sym])
        return total

    def unrealized_pnl(self, symbol: str, mid: Decimal) -> Decimal:
        """Mark-to-mid PnL of the open position: position x (mid - avg)."""
        ledger = self._ledger(symbol)
        if ledger.position == 0:
            return ZERO
        inst = self._instruments[symbol]
        marked = ledger.position * inst.lot_size * mid
        cost = _ratio_to_decimal(
            ledger.position * ledger.avg_num, ledger.avg_den, self._tick_lot[symbol]
        )
        return marked - cost

    def fees_paid(self, symbol: str | None = None) -> Decimal:
        return sum((ledger.fees_paid for _, ledger in self._selected(symbol)), ZERO)

    def rebates(self, symbol: str | None = None) -> Decimal:
        return sum((ledger.rebates for _, ledger in self._selected(symbol)), ZERO)

    def fees(self, symbol: str | None = None) -> Decimal:
        """Net fees: positive when more was paid than received in rebates."""
        return self.fees_paid(symbol) - self.rebates(symbol)

    def inventory_usd(self, symbol: str, mid: Decimal) -> Decimal:
        """Signed position x mid, quote currency."""
        return self._ledger(symbol).position * self._instruments[symbol].lot_size * mid

    def total_pnl(self, mids: Mapping[str, Decimal]) -> Decimal:
        """Realised + unrealised - net fees over every symbol.

        Computed as cash + position x mid - fees, which is the same sum
        without the average price, so it is exact whatever the average is.
        A symbol with a position and no mid in ``mids`` is an error.
        """
        total = ZERO
        for sym, ledger in self._ledgers.items():
            total += ledger.cash * self._tick_lot[sym] - (ledger.fees_paid - ledger.rebates)
            if ledger.position != 0:
                if sym not in mids:
                    raise MissingMark(
                        f"{sym} holds {ledger.position} lots but no mid was given; "
                        f"mids cover {sorted(mids)}"
                    )
                total += ledger.position * self._instruments[sym].lot_size * mids[sym]
        return total

    def snapshot(self, ts_ns: int, symbol: str, mid: Decimal) -> PositionSnapshot:
        """The getters' values for one symbol, read from its ledger in one pass (the
        engine samples every symbol once a second: the getters' loops cost)."""
        ledger = self._ledger(symbol)
        position = ledger.position * self._instruments[symbol].lot_size
        num, den = ledger.realized_ratio()
        flat = ledger.position == 0
        return PositionSnapshot(
            ts_ns=ts_ns,
            symbol=symbol,
            position=position,
            avg_price=None if flat else self.avg_px(symbol),
            mid=mid,
            notional=position * mid,
            realized_pnl=_ratio_to_decimal(num, den, self._tick_lot[symbol]),
            unrealized_pnl=ZERO if flat else self.unrealized_pnl(symbol, mid),
            fees=ledger.fees_paid - ledger.rebates,
        )


def _ratio_to_decimal(num: int, den: int, unit: Decimal) -> Decimal:
    """(num / den) x unit as a Decimal: exact when den is 1 (the usual case)."""
    if den == 1:
        return num * unit
    return (num * unit) / den
