"""Value types shared by every part of the bot: events in, commands out.

Prices are integer ticks and quantities integer lots inside the engine; the
symbol's tick and lot sizes (config) convert them at the edges. Fees are
Decimal in quote currency: positive is paid, negative is a rebate.
All timestamps are integer nanoseconds since the Unix epoch (UTC).
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from enum import Enum, IntEnum


class Side(IntEnum):
    """Order side, or aggressor side for a trade; the value is the sign."""

    BUY = 1
    SELL = -1


class Liquidity(Enum):
    MAKER = "maker"
    TAKER = "taker"


class Mode(Enum):
    SHADOW = "shadow"
    PAPER = "paper"
    CANARY = "canary"
    LIVE = "live"


# --- market events -----------------------------------------------------------


@dataclass(frozen=True, slots=True)
class BookUpdate:
    """Top of book after a change at the touch (the engine never sees deeper deltas)."""

    ts_ns: int
    symbol: str
    bid_px: int
    bid_qty: int
    ask_px: int
    ask_qty: int


@dataclass(frozen=True, slots=True)
class Trade:
    """A market trade; `side` is the aggressor's."""

    ts_ns: int
    symbol: str
    trade_id: str
    px: int
    qty: int
    side: Side


# --- venue reports about our orders -------------------------------------------


@dataclass(frozen=True, slots=True)
class OrderAck:
    ts_ns: int
    symbol: str
    client_order_id: str
    venue_order_id: str = ""


@dataclass(frozen=True, slots=True)
class OrderReject:
    ts_ns: int
    symbol: str
    client_order_id: str
    reason: str


@dataclass(frozen=True, slots=True)
class OrderFill:
    ts_ns: int
    symbol: str
    client_order_id: str
    trade_id: str
    side: Side
    px: int
    qty: int
    liquidity: Liquidity
    fee: Decimal
    # the venue's match time and its mid then, in ticks (DESIGN §4): `ts_ns` is when
    # the report reaches the bot. -1 / 0.0: the venue did not say (live exchanges)
    match_ts_ns: int = -1
    match_mid_px: float = 0.0


@dataclass(frozen=True, slots=True)
class CancelAck:
    ts_ns: int
    symbol: str
    client_order_id: str


@dataclass(frozen=True, slots=True)
class CancelReject:
    """The venue refused a cancel (e.g. the order was already filled)."""

    ts_ns: int
    symbol: str
    client_order_id: str
    reason: str


@dataclass(frozen=True, slots=True)
class OrderExpired:
    ts_ns: int
    symbol: str
    client_order_id: str


# --- control events ------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Timer:
    ts_ns: int


@dataclass(frozen=True, slots=True)
class FreezeRequest:
    """An operator (or a guard outside the engine) asks to freeze or unfreeze.

    `source` is the journal's `check` for it (operator, lease); `author` who asked
    (empty: nobody named, e.g. a test or a guard); `hold`: a freeze that only an
    unfreeze lifts, never the profile's cool-down (an operator's, a lost lease's)."""

    ts_ns: int
    freeze: bool
    reason: str
    author: str = ""
    source: str = "operator"
    hold: bool = False


@dataclass(frozen=True, slots=True)
class UnhaltRequest:
    """An operator lifts a halt (the one way out of HALTED without a restart)."""

    ts_ns: int
    reason: str
    author: str


VenueReport = OrderAck | OrderReject | OrderFill | CancelAck | CancelReject | OrderExpired
MarketEvent = BookUpdate | Trade
Event = MarketEvent | VenueReport | Timer | FreezeRequest | UnhaltRequest


# --- commands ------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Place:
    ts_ns: int
    symbol: str
    client_order_id: str
    side: Side
    px: int
    qty: int
    post_only: bool = True
    reduce_only: bool = False


@dataclass(frozen=True, slots=True)
class Cancel:
    ts_ns: int
    symbol: str
    client_order_id: str


@dataclass(frozen=True, slots=True)
class CancelAll:
    ts_ns: int
    symbol: str | None
    reason: str


@dataclass(frozen=True, slots=True)
class Freeze:
    ts_ns: int
    reason: str


Command = Place | Cancel | CancelAll | Freeze


@dataclass(frozen=True, slots=True)
class Instrument:
    """Venue rules for one symbol, in the units the engine uses."""

    symbol: str
    tick_size: Decimal
    lot_size: Decimal
    min_qty_lots: int
    min_notional: Decimal

    def notional(self, px: int, qty: int) -> Decimal:
        return px * self.tick_size * qty * self.lot_size
